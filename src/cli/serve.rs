//! `fleetsim broker FLEET`: the embedded broker held up with the fleet's lights and sensors
//! answering, until Ctrl-C, so a trainee can play the phone by hand (MQTTX, `mosquitto_rr`)
//! and see each request they send told as it arrives.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::{Exit, fail, finish, output_target, write_output};
use crate::fleet::{self, BrokerTarget, Fleet, Role};
use crate::lang::Lang;
use crate::output::{self, Escaped};
use crate::report::{FleetFacts, Report};
use crate::run::{OnReady, RunOptions, run};

#[derive(Debug, Args)]
pub struct BrokerArgs {
    /// The fleet file whose lights and sensors answer (its phones, faults and expectations
    /// are left out: you are the phone).
    pub fleet: PathBuf,
    /// Port to listen on, on 127.0.0.1 (0: a free one, printed).
    #[arg(long, default_value_t = 1883)]
    pub port: u16,
    /// Threads (arbiters) to spread the device actors over [default: one per core].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: Option<u16>,
    /// Also write the report as JSON to this file when stopped (`-`: to stdout).
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,
}

/// One request a trainee can send by hand: to a responder of the fleet, and where to ask for
/// the answer.
#[derive(Debug, Clone, PartialEq)]
struct Try {
    topic: String,
    response_topic: String,
    payload: &'static str,
}

/// Most responders the banner shows commands for.
const TRIES_SHOWN: usize = 3;

/// Requests to try, one per responder: the Response Topic a phone of the fleet uses for that
/// responder when there is one (the article's `state/light-in-bedroom/power`), else
/// `reply/<responder id>`.
fn tries(fleet: &Fleet) -> Vec<Try> {
    // One pass over the phones' targets: the first usable Response Topic of each responder.
    let mut answered_on: HashMap<u32, String> = HashMap::new();
    for device in &fleet.devices {
        if let Role::Phone(phone) = &device.role {
            for i in 0..phone.targets.len() {
                let topic = phone.targets.response_topic(i);
                // `{response_info}` is the broker's to fill in: not something to type.
                if let Some(target) = phone.targets.device(i)
                    && !topic.contains('{')
                {
                    answered_on
                        .entry(target)
                        .or_insert_with(|| topic.to_string());
                }
            }
        }
    }
    fleet
        .devices
        .iter()
        .enumerate()
        .filter_map(|(index, device)| {
            let payload = match device.role {
                Role::Light(_) => "ON",
                Role::Sensor(_) => "get",
                Role::Phone(_) => return None,
            };
            Some(Try {
                topic: device.request_topic()?.to_owned(),
                response_topic: answered_on
                    .remove(&(index as u32))
                    .unwrap_or_else(|| format!("reply/{}", device.id)),
                payload,
            })
        })
        .collect()
}

/// A word as a POSIX shell reads it back unchanged: bare when it is plain, else single-quoted.
fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// What to paste to play the phone, once the broker and the responders are up.
fn banner(addr: SocketAddr, fleet_name: &str, responders: usize, tries: &[Try]) -> String {
    let (host, port) = (addr.ip(), addr.port());
    let mut text = format!(
        "fleetsim broker: MQTT 5 broker on mqtt://{addr} with the {responders} responder{} of \"{}\" answering requests (Ctrl-C stops it)\n",
        if responders == 1 { "" } else { "s" },
        Escaped::value(fleet_name)
    );
    text += "\nPlay the phone yourself. With Mosquitto's clients (Response Topic -e, Correlation Data -D):\n";
    for t in tries.iter().take(TRIES_SHOWN) {
        text += &format!(
            "  mosquitto_rr -h {host} -p {port} -t {} -e {} -D publish correlation-data req-1 -m {} -v\n",
            shell_word(&t.topic),
            shell_word(&t.response_topic),
            t.payload
        );
    }
    if tries.len() > TRIES_SHOWN {
        text += &format!(
            "  (and {} more responders: `fleetsim validate` lists their topics)\n",
            tries.len() - TRIES_SHOWN
        );
    }
    if let Some(t) = tries.first() {
        text += &format!(
            "With MQTTX: a new connection to {host}, port {port}, MQTT version 5.0; subscribe to\n  {}; then publish {} to {}\n  with Response Topic {} and Correlation Data req-1.\n",
            Escaped::value(&t.response_topic),
            t.payload,
            Escaped::value(&t.topic),
            Escaped::value(&t.response_topic),
        );
    }
    text += &format!(
        "Watch every message and its properties:\n  mosquitto_sub -h {host} -p {port} -V mqttv5 -t '#' -F '%t %p  (Response Topic %R, Correlation Data %D)'\n"
    );
    text += "\nEach request from outside the fleet is told below as it arrives.";
    text
}

/// Runs the fleet's responders on the embedded broker until a signal, telling every request
/// that comes from outside.
pub fn serve(args: BrokerArgs, quiet: bool, lang: Lang) -> Exit {
    let target = match output_target(args.report.as_deref(), "report", true) {
        Ok(target) => target,
        Err(exit) => return exit,
    };
    let overrides = fleet::Overrides {
        broker: Some(BrokerTarget::Embedded { port: args.port }),
        ..fleet::Overrides::default()
    };
    let fleet = match fleet::load_with(&args.fleet, &overrides) {
        Ok(fleet) => fleet,
        Err(e) => return fail(Exit::Invalid, e),
    };
    let tries = tries(&fleet);
    if tries.is_empty() {
        return fail(
            Exit::Invalid,
            format!(
                "{}: no lights or sensors to answer requests (fleetsim broker runs a fleet's responders)",
                args.fleet.display()
            ),
        );
    }
    let mut fleet = fleet.responders_only();
    // Until Ctrl-C: the longest run a fleet may ask for.
    fleet.duration = fleet::MAX_DURATION;
    let (name, responders) = (fleet.name.clone(), fleet.devices.len());
    let on_ready = OnReady(Arc::new(move |addr| {
        output::human(banner(addr, &name, responders, &tries));
    }));
    let options = RunOptions {
        threads: super::threads(args.threads),
        lang,
        handle_signals: true,
        tell_outside: if quiet { 0 } else { usize::MAX },
        on_ready: Some(on_ready),
        ..RunOptions::default()
    };
    let known = FleetFacts::from(&fleet);
    let (report, exit) = match run(fleet, &options) {
        Ok(mut report) => {
            // Stopping is how a broker session ends: judged on what happened until then, not
            // failed for being stopped (`interrupted` still says it was).
            if report.signal.take().is_some() {
                report.judge(&[]);
            }
            let exit = if report.ok { Exit::Ok } else { Exit::NotOk };
            finish(&report, lang);
            (report, exit)
        }
        Err(e) => {
            let hint = if matches!(e, crate::run::RunError::Embedded(_)) {
                " (another broker may hold the port: try --port 0 for a free one)"
            } else {
                ""
            };
            let message = format!("{e}{hint}");
            fail(Exit::Broker, &message);
            (Report::failed(Some(known), "broker", message), Exit::Broker)
        }
    };
    write_output(target.as_ref(), "report", || report.to_json())
        .err()
        .unwrap_or(exit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tries_use_the_fleets_own_response_topics_and_a_reply_topic_otherwise() {
        let fleet = crate::fleet::parse(
            "name: home\ndevices:\n  - {kind: light, id: lamp, command_topic: 'cmnd/{id}/power'}\n  - {kind: sensor, id: temp}\n  - {kind: phone, id: phone, targets: [lamp], response_topic: 'state/{target}/power'}\n",
            "<test>",
        )
        .unwrap();
        let tries = tries(&fleet);
        assert_eq!(tries.len(), 2, "{tries:?}");
        assert_eq!(tries[0].topic, "cmnd/lamp/power");
        assert_eq!(tries[0].response_topic, "state/lamp/power");
        assert_eq!(tries[0].payload, "ON");
        assert_eq!(tries[1].response_topic, "reply/temp");
        assert_eq!(tries[1].payload, "get");
        assert!(
            fleet
                .responders_only()
                .devices
                .iter()
                .all(|d| d.kind() != fleet::Kind::Phone)
        );
    }

    #[test]
    fn the_banner_gives_commands_a_shell_takes_as_they_are() {
        assert_eq!(shell_word("cmnd/lamp/power"), "cmnd/lamp/power");
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
        let addr: SocketAddr = "127.0.0.1:40001".parse().unwrap();
        let tries: Vec<Try> = (0..5)
            .map(|i| Try {
                topic: format!("cmnd/l{i}"),
                response_topic: "state/$x y".into(),
                payload: "ON",
            })
            .collect();
        let text = banner(addr, "home", 5, &tries);
        assert!(
            text.contains("mosquitto_rr -h 127.0.0.1 -p 40001 -t cmnd/l0 -e 'state/$x y' -D publish correlation-data req-1 -m ON -v"),
            "{text}"
        );
        assert_eq!(text.matches("mosquitto_rr").count(), TRIES_SHOWN, "{text}");
        assert!(text.contains("and 2 more responders"), "{text}");
        assert!(text.contains("port 40001, MQTT version 5.0"), "{text}");
    }
}
