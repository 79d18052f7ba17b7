//! Top-level checks (`name`, `broker`, `duration`, `seed`, `will_ack_timeout`, `devices`,
//! `faults`) and the assembly of the final [`Fleet`] from the checked groups.

use std::time::Duration;

use serde_saphyr::Spanned;

use super::Problem;
use super::expand::expand;
use super::faults::check_faults;
use super::group::check_group;
use super::model::{BrokerTarget, Fleet};
use super::raw::{RawBroker, RawFleet};
use super::values::{DurationRule, Problems, duration};

const DEFAULT_MQTT_PORT: u16 = 1883;

/// Check everything; the fleet only when no problem at all was found.
pub(super) fn validate(raw: Spanned<RawFleet>) -> Result<Fleet, Vec<Problem>> {
    let mut problems = Problems::default();
    let top = raw.referenced;
    let f = &raw.value;

    let name = match &f.name {
        None => {
            problems.at(top, "name", "missing required field `name`");
            None
        }
        Some(n) if n.value.trim().is_empty() => {
            problems.at(n.referenced, "name", "name must not be empty");
            None
        }
        Some(n) => Some(n.value.clone()),
    };
    let broker = match &f.broker {
        None => Some(BrokerTarget::Embedded { port: 0 }),
        Some(b) => match &b.value {
            RawBroker::Embedded { port: None } => Some(BrokerTarget::Embedded { port: 0 }),
            RawBroker::Embedded { port: Some(port) } => match u16::try_from(port.value) {
                Ok(port) => Some(BrokerTarget::Embedded { port }),
                Err(_) => {
                    problems.at(
                        port.referenced,
                        "broker.embedded.port",
                        format!(
                            "port must be 0..=65535 (0: any free port), got {}",
                            port.value
                        ),
                    );
                    None
                }
            },
            RawBroker::Text(text) => match parse_broker(text) {
                Ok(target) => Some(target),
                Err(message) => {
                    problems.at(b.referenced, "broker", message);
                    None
                }
            },
        },
    };
    let run_for = duration(
        &mut problems,
        f.duration.as_ref(),
        "duration",
        Duration::from_secs(10),
        DurationRule::Positive,
    );
    let seed = f.seed.as_ref().map_or(0, |s| s.value);
    let will_ack_timeout = duration(
        &mut problems,
        f.will_ack_timeout.as_ref(),
        "will_ack_timeout",
        Duration::from_secs(5),
        DurationRule::Positive,
    );

    let plans: Vec<_> = match &f.devices {
        None => {
            problems.at(top, "devices", "missing required field `devices`");
            Vec::new()
        }
        Some(d) if d.value.is_empty() => {
            problems.at(
                d.referenced,
                "devices",
                "devices must list at least one group",
            );
            Vec::new()
        }
        Some(d) => d
            .value
            .iter()
            .enumerate()
            .map(|(i, g)| check_group(&mut problems, i, g))
            .collect(),
    };
    // With no groups there is nothing to expand: faults are still checked on their own, but
    // not matched against devices (that would only repeat that there are none).
    let expanded = (!plans.is_empty()).then(|| expand(&mut problems, &plans));
    let faults = check_faults(
        &mut problems,
        f.faults.as_ref(),
        run_for,
        &plans,
        expanded.as_ref().and_then(|e| e.entries.as_deref()),
    );
    let devices = expanded.map(|e| e.devices).unwrap_or_default();

    match (name, broker, run_for, will_ack_timeout) {
        (Some(name), Some(broker), Some(duration), Some(will_ack_timeout))
            if problems.is_empty() =>
        {
            Ok(Fleet {
                name,
                broker,
                duration,
                seed,
                devices,
                will_ack_timeout,
                faults,
            })
        }
        _ => Err(problems.into_sorted()),
    }
}

/// `embedded` or `mqtt://host[:port]` (IPv6 hosts in brackets: `mqtt://[::1]:1883`).
pub fn parse_broker(text: &str) -> Result<BrokerTarget, String> {
    if text == "embedded" {
        return Ok(BrokerTarget::Embedded { port: 0 });
    }
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err(format!(
            "broker must be `embedded`, `{{embedded: {{port: N}}}}` or a URL like mqtt://host:1883, got `{text}`"
        ));
    };
    if !scheme.eq_ignore_ascii_case("mqtt") {
        return Err(format!(
            "unsupported scheme `{scheme}` in `{text}`; only mqtt:// is supported for now"
        ));
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '@', '?', '#']) {
        return Err(format!(
            "broker URL `{text}` must be just mqtt://host:port (no path, user or query)"
        ));
    }
    let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
        let Some((host, after)) = bracketed.split_once(']') else {
            return Err(format!("unclosed `[` in broker URL `{text}`"));
        };
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(format!("unexpected `{after}` after `]` in `{text}`")),
            },
        }
    } else {
        match rest.split_once(':') {
            Some((_, port)) if port.contains(':') => {
                return Err(format!(
                    "IPv6 hosts must be in brackets, like mqtt://[::1]:1883, got `{text}`"
                ));
            }
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    if host.is_empty() {
        return Err(format!("broker URL `{text}` has no host"));
    }
    let port = match port {
        None => DEFAULT_MQTT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => {
                return Err(format!(
                    "broker port must be a number from 1 to 65535, got `{p}` in `{text}`"
                ));
            }
        },
    };
    Ok(BrokerTarget::External {
        host: host.to_string(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn external(host: &str, port: u16) -> BrokerTarget {
        BrokerTarget::External {
            host: host.to_string(),
            port,
        }
    }

    #[test]
    fn broker_urls_parse_with_default_port_and_ipv6() {
        assert_eq!(parse_broker("mqtt://h:1884"), Ok(external("h", 1884)));
        assert_eq!(parse_broker("mqtt://h"), Ok(external("h", 1883)));
        assert_eq!(parse_broker("MQTT://h/"), Ok(external("h", 1883)));
        assert_eq!(parse_broker("mqtt://[::1]:9"), Ok(external("::1", 9)));
        assert_eq!(parse_broker("mqtt://[::1]"), Ok(external("::1", 1883)));
    }

    #[test]
    fn broker_urls_with_bad_parts_are_refused() {
        for bad in [
            "mqtts://h",
            "h:1883",
            "mqtt://",
            "mqtt://:1883",
            "mqtt://h:0",
            "mqtt://h:65536",
            "mqtt://h:x",
            "mqtt://::1",
            "mqtt://[::1",
            "mqtt://[::1]x",
            "mqtt://u@h",
            "mqtt://h/path",
            "",
        ] {
            assert!(parse_broker(bad).is_err(), "{bad}");
        }
        assert!(
            parse_broker("mqtts://h")
                .unwrap_err()
                .contains("unsupported scheme `mqtts`")
        );
    }
}
