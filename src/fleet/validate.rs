//! Top-level checks (`name`, `broker`, `duration`, `seed`, `will_ack_timeout`, `tls`,
//! `devices`, `faults`, `expect`, `source_addresses`) and the assembly of the final [`Fleet`] from the checked groups.

use std::path::Path;
use std::time::Duration;

use serde_saphyr::Spanned;

use super::Overrides;
use super::Problem;
use super::access::{check_embedded, check_supervisor, check_usernames};
use super::expand::expand;
use super::expect::check_expect;
use super::faults::check_faults;
use super::group::check_group;
use super::model::{BrokerTarget, EmbeddedSettings, Fleet};
use super::phone::per_second;
use super::raw::{RawBroker, RawFleet};
use super::secret::Env;
use super::sources::check_sources;
use super::template::unsafe_char;
use super::tls::{check_ca_for, check_tls};
use super::values::{DurationRule, Problems, duration};
use super::vars;
use crate::output::Escaped;

const DEFAULT_MQTT_PORT: u16 = 1883;
const DEFAULT_MQTTS_PORT: u16 = 8883;

/// What validation needs besides the text.
pub(super) struct Context<'a> {
    /// The fleet file's directory, which relative `tls` paths are relative to; None when the
    /// text came from no file (they then stay as written).
    pub base: Option<&'a Path>,
    /// Where `${VAR}` is looked up.
    pub env: Env<'a>,
    /// What the command line says instead of the file.
    pub overrides: &'a Overrides,
}

/// Check everything; the fleet only when no problem at all was found.
pub(super) fn validate(
    mut raw: Spanned<RawFleet>,
    ctx: &Context<'_>,
) -> Result<Fleet, Vec<Problem>> {
    let mut problems = Problems::default();
    // First, so that every check below sees the values as they will run.
    vars::resolve(
        &mut problems,
        &mut raw.value,
        ctx.env,
        ctx.overrides.broker.is_some(),
    );
    let top = raw.referenced;
    let f = &raw.value;

    let name = match &f.name {
        None => {
            problems.at(top, "name", "missing required field `name`");
            None
        }
        Some(n) => {
            // The name heads the summary and the report.
            let complaint = if n.value.trim().is_empty() {
                Some("name must not be empty".to_string())
            } else {
                unsafe_char(&n.value)
                    .map(|what| format!("name `{}` contains {what}", Escaped::value(&n.value)))
            };
            match complaint {
                Some(message) => {
                    problems.at(n.referenced, "name", message);
                    None
                }
                None => Some(n.value.clone()),
            }
        }
    };
    let raw_embedded = match f.broker.as_ref().map(|b| &b.value) {
        Some(RawBroker::Embedded(e)) => Some(e.as_ref()),
        _ => None,
    };
    let o = ctx.overrides;
    let broker = match &o.broker {
        Some(broker) => Some(broker.clone()),
        None => check_broker(&mut problems, f.broker.as_ref()),
    };
    let embedded = raw_embedded.map_or_else(
        || EmbeddedSettings {
            allow_anonymous: true,
            ..EmbeddedSettings::default()
        },
        |e| check_embedded(&mut problems, e, ctx.env),
    );
    let mut tls = check_tls(&mut problems, f.tls.as_ref(), ctx.base);
    if let Some(ca_file) = &o.ca_file {
        tls.ca_file = Some(ca_file.clone());
    }
    if let Some((cert, key)) = &o.client_cert {
        tls.cert_file = Some(cert.clone());
        tls.key_file = Some(key.clone());
    }
    if o.ca_file.is_none() {
        check_ca_for(
            &mut problems,
            broker.as_ref(),
            f.broker.as_ref().map_or(top, |b| b.referenced),
            f.tls.as_ref(),
        );
    }
    let run_for = match o.duration {
        Some(d) => Some(d),
        None => duration(
            &mut problems,
            f.duration.as_ref(),
            "duration",
            Duration::from_secs(10),
            DurationRule::Positive,
        ),
    };
    let seed = o
        .seed
        .unwrap_or_else(|| f.seed.as_ref().map_or(0, |s| s.value));
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
            .map(|(i, g)| check_group(&mut problems, i, g, ctx.env))
            .collect(),
    };
    // With no groups there is nothing to expand: faults are still checked on their own, but
    // not matched against devices (that would only repeat that there are none).
    let id_prefix = match &ctx.overrides.id_prefix {
        Some(prefix) => prefix.clone(),
        None => check_id_prefix(&mut problems, f.id_prefix.as_ref()),
    };
    let expanded = (!plans.is_empty()).then(|| expand(&mut problems, &plans, &id_prefix));
    if let (Some(e), Some(entries)) = (
        raw_embedded,
        expanded.as_ref().and_then(|x| x.entries.as_deref()),
    ) {
        let usernames: Vec<_> = plans.iter().map(|p| p.username.as_ref()).collect();
        let devices = entries.iter().map(|d| (d.group, d.id.as_str(), d.n));
        check_usernames(&mut problems, &usernames, devices, e);
    }
    let faults = check_faults(
        &mut problems,
        f.faults.as_ref(),
        run_for,
        &plans,
        expanded.as_ref().and_then(|e| e.entries.as_deref()),
    );
    let expect = check_expect(&mut problems, f.expect.as_ref());
    let ramp = f
        .ramp
        .as_ref()
        .and_then(|r| per_second(&mut problems, r, "ramp"));
    let supervisor = check_supervisor(&mut problems, f.supervisor.as_ref(), ctx.env);
    let source_addresses = check_sources(&mut problems, f.source_addresses.as_ref());
    let devices = expanded.map(|e| e.devices).unwrap_or_default();
    let show_exchanges = f
        .show_exchanges
        .as_ref()
        .and_then(|n| match usize::try_from(n.value) {
            Ok(n) if n <= MAX_SHOW_EXCHANGES => Some(n),
            _ => {
                problems.at(
                    n.referenced,
                    "show_exchanges",
                    format!(
                        "show_exchanges must be 0 to {MAX_SHOW_EXCHANGES}, got {}",
                        n.value
                    ),
                );
                None
            }
        });

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
                embedded,
                tls,
                expect,
                supervisor,
                id_prefix,
                ramp,
                source_addresses,
                show_exchanges,
            })
        }
        _ => Err(problems.into_sorted()),
    }
}

/// The most requests a narration may tell: it is for reading.
const MAX_SHOW_EXCHANGES: usize = 1000;

/// `id_prefix:`, put in front of every client id; empty when absent or bad.
fn check_id_prefix(problems: &mut Problems, raw: Option<&Spanned<String>>) -> String {
    let Some(raw) = raw else {
        return String::new();
    };
    match id_prefix_problem(&raw.value) {
        Some(message) => {
            problems.at(raw.referenced, "id_prefix", message);
            String::new()
        }
        None => raw.value.clone(),
    }
}

/// Longest `id_prefix`: client ids stay readable, and within what brokers commonly allow.
const MAX_ID_PREFIX: usize = 64;

/// What is wrong with an id prefix, if anything. It becomes part of client ids and of every
/// topic built from `{id}`, so it may hold no topic separator or wildcard.
pub fn id_prefix_problem(prefix: &str) -> Option<String> {
    if prefix.len() > MAX_ID_PREFIX {
        return Some(format!(
            "id_prefix is {} bytes long (max {MAX_ID_PREFIX})",
            prefix.len()
        ));
    }
    prefix
        .chars()
        .find(|c| matches!(c, '/' | '+' | '#') || c.is_control() || c.is_whitespace())
        .map(|c| format!("id_prefix may not contain {c:?}: it goes into client ids and topics"))
}

/// `broker:` as the target to connect to; None after recording a problem.
fn check_broker(problems: &mut Problems, raw: Option<&Spanned<RawBroker>>) -> Option<BrokerTarget> {
    let Some(b) = raw else {
        return Some(BrokerTarget::Embedded { port: 0 });
    };
    match &b.value {
        RawBroker::Embedded(e) => match &e.port {
            None => Some(BrokerTarget::Embedded { port: 0 }),
            Some(port) => match u16::try_from(port.value) {
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
        },
        RawBroker::Text(text) => match parse_broker(text) {
            Ok(target) => Some(target),
            Err(message) => {
                problems.at(b.referenced, "broker", message);
                None
            }
        },
    }
}

/// `embedded`, `mqtt://host[:port]` or `mqtts://host[:port]` (IPv6 hosts in brackets:
/// `mqtt://[::1]:1883`).
pub fn parse_broker(text: &str) -> Result<BrokerTarget, String> {
    if text == "embedded" {
        return Ok(BrokerTarget::Embedded { port: 0 });
    }
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err(format!(
            "broker must be `embedded`, `{{embedded: {{port: N}}}}` or a URL like mqtt://host:1883 or mqtts://host:8883, got `{text}`"
        ));
    };
    let (tls, default_port) = if scheme.eq_ignore_ascii_case("mqtt") {
        (false, DEFAULT_MQTT_PORT)
    } else if scheme.eq_ignore_ascii_case("mqtts") {
        (true, DEFAULT_MQTTS_PORT)
    } else {
        return Err(format!(
            "unsupported scheme `{scheme}` in `{text}`; only mqtt:// and mqtts:// are supported"
        ));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '@', '?', '#']) {
        return Err(format!(
            "broker URL `{text}` must be just {scheme}://host:port (no path, user or query)"
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
                    "IPv6 hosts must be in brackets, like {scheme}://[::1]:{default_port}, got `{text}`"
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
        None => default_port,
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
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn external(host: &str, port: u16) -> BrokerTarget {
        BrokerTarget::External {
            host: host.to_string(),
            port,
            tls: false,
        }
    }

    fn secure(host: &str, port: u16) -> BrokerTarget {
        BrokerTarget::External {
            host: host.to_string(),
            port,
            tls: true,
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
    fn mqtts_urls_ask_for_tls_and_default_to_port_8883() {
        assert_eq!(parse_broker("mqtts://h"), Ok(secure("h", 8883)));
        assert_eq!(parse_broker("MQTTS://h:1883/"), Ok(secure("h", 1883)));
        assert_eq!(parse_broker("mqtts://[::1]"), Ok(secure("::1", 8883)));
        let e = parse_broker("mqtts://h/x").unwrap_err();
        assert!(e.contains("must be just mqtts://host:port"), "{e}");
        let e = parse_broker("mqtts://::1").unwrap_err();
        assert!(e.contains("mqtts://[::1]:8883"), "{e}");
    }

    #[test]
    fn broker_urls_with_bad_parts_are_refused() {
        for bad in [
            "ws://h",
            "h:1883",
            "mqtt://",
            "mqtts://",
            "mqtt://:1883",
            "mqtt://h:0",
            "mqtts://h:65536",
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
        let e = parse_broker("wss://h").unwrap_err();
        assert!(
            e.contains("unsupported scheme `wss`") && e.contains("mqtts://"),
            "{e}"
        );
    }
}
