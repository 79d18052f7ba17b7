//! Will feedback end to end: faults cause outages, Wills carry a Response Topic and Correlation
//! Data, consumers ack them, the supervisor and the devices draw their conclusions.

mod common;

use std::time::Duration;

use common::*;
use fleetsim::fleet::{BrokerTarget, Fleet};
use fleetsim::report::Report;

fn will_feedback(broker: BrokerTarget) -> Fleet {
    // 10 s is enough: the last fault fires at 6 s and the drain waits for every story to end.
    repo_fleet("fleets/will-feedback.yaml", broker, Duration::from_secs(10))
}

fn without_consumers(mut fleet: Fleet) -> Fleet {
    for device in &mut fleet.devices {
        device.consume_wills = None;
    }
    fleet
}

/// Each of the five faults ends as the broker must make it end.
fn assert_every_fault_told_right(report: &Report, consumed: bool) {
    let w = &report.wills;
    let outcome = |device: &str| {
        w.outages
            .iter()
            .find(|o| o.device == device)
            .unwrap_or_else(|| panic!("no outage of {device}: {w:#?}"))
    };
    let will_faults = ["light-in-bedroom", "light-in-kitchen", "sensor-2"];
    for device in will_faults {
        let o = outcome(device);
        assert!(o.will_expected, "{o:?}");
        assert!(
            o.will_after_s.is_some(),
            "Will of {device} not published: {o:?}"
        );
        assert_eq!(o.incarnation, 1, "{o:?}");
        assert!(o.back_at_s.is_some(), "{device} never came back: {o:?}");
        if consumed {
            assert_eq!(o.outcome, "consumed", "{o:?}");
            assert_eq!(o.acked_by, ["phone"], "{o:?}");
            assert!(o.learned_at_s.is_some(), "{device} never learned: {o:?}");
        } else {
            assert_eq!(o.outcome, "unconsumed", "{o:?}");
            assert!(o.acked_by.is_empty() && o.learned_at_s.is_none(), "{o:?}");
        }
    }
    assert_eq!(outcome("light-in-bedroom").fault, "kill");
    // A stall is only noticed after 1.5 x the 2 s keepalive, counted from the last packet.
    let stall = outcome("light-in-kitchen");
    assert_eq!(stall.fault, "stall");
    assert!(stall.will_after_s.unwrap() > 0.5, "{stall:?}");
    for (device, fault) in [("sensor-1", "disconnect"), ("light-in-hall", "flap")] {
        let o = outcome(device);
        assert_eq!(o.fault, fault);
        assert_eq!(o.outcome, "suppressed", "{o:?}");
        assert!(!o.will_expected && o.will_after_s.is_none(), "{o:?}");
        assert!(o.back_at_s.is_some(), "{o:?}");
    }
    assert_eq!(w.outages.len(), 5);
    assert_eq!((w.expected, w.published, w.missing), (3, 3, 0));
    assert_eq!((w.unexpected, w.suppressed), (0, 2));
    // Requests to lights that were away were queued in their sessions and answered later.
    assert_adds_up(report);
    assert_eq!(
        report.requests.matched, report.requests.sent,
        "{:?}",
        report.requests
    );
}

#[test]
fn every_fault_on_the_embedded_broker_ends_in_the_right_story() {
    let report = run_fleet(will_feedback(embedded()));
    assert_every_fault_told_right(&report, true);
    let w = &report.wills;
    assert_eq!(
        (w.consumed, w.unconsumed, w.learned_on_reconnect),
        (3, 0, 3)
    );
    assert!(report.ok, "{:?}", report.problems);
}

#[test]
fn every_fault_on_mosquitto_ends_in_the_right_story() {
    let Some(mosquitto) = Mosquitto::start() else {
        return;
    };
    let report = run_fleet(will_feedback(mosquitto.target()));
    assert_every_fault_told_right(&report, true);
    let w = &report.wills;
    assert_eq!(
        (w.consumed, w.unconsumed, w.learned_on_reconnect),
        (3, 0, 3)
    );
    assert!(report.ok, "{:?}", report.problems);
}

#[test]
fn without_a_consumer_every_will_is_unconsumed_and_the_run_fails() {
    let report = run_fleet(without_consumers(will_feedback(embedded())));
    assert_every_fault_told_right(&report, false);
    let w = &report.wills;
    assert_eq!(
        (w.consumed, w.unconsumed, w.learned_on_reconnect),
        (0, 3, 0)
    );
    assert!(!report.ok);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("3 published Wills were never acked"))
    );
}

#[test]
fn without_a_consumer_on_mosquitto_every_will_is_unconsumed() {
    let Some(mosquitto) = Mosquitto::start() else {
        return;
    };
    let report = run_fleet(without_consumers(will_feedback(mosquitto.target())));
    assert_every_fault_told_right(&report, false);
    assert_eq!(report.wills.unconsumed, 3);
    assert!(!report.ok);
}

#[test]
fn each_connection_registers_its_own_will_and_acks_name_it() {
    // Killed twice: the Wills of connections 1 and 2 are told apart by their Correlation Data,
    // and each ack lands on the outage it answers.
    let fleet = fleet_from(
        r#"
name: twice
duration: 7s
devices:
  - kind: light
    id: lamp
    will: {}
  - kind: sensor
    id: hub
    consume_wills: status/#
faults:
  - { kind: kill, target: lamp, every: 3s, down_for: 1500ms }
"#,
    );
    let report = run_fleet(fleet);
    let w = &report.wills;
    let seen: Vec<(u32, &str, &[String])> = w
        .outages
        .iter()
        .map(|o| (o.incarnation, o.outcome, o.acked_by.as_slice()))
        .collect();
    let hub = ["hub".to_owned()];
    assert_eq!(seen, [(1, "consumed", &hub[..]), (2, "consumed", &hub[..])]);
    assert!(w.outages.iter().all(|o| o.learned_at_s.is_some()), "{w:#?}");
    assert_eq!(w.learned_on_reconnect, 2);
    assert!(report.ok, "{:?}", report.problems);
}

#[test]
fn a_third_party_consumer_is_seen_acking_wills() {
    let broker = fleetsim::broker::EmbeddedBroker::start(0, 1).expect("embedded broker");
    let port = broker.addr().port();
    let _consumer = ShellResponder::start_with(
        port,
        "status/+",
        r#"{"seen":true}"#,
        "-D publish user-property consumed-by backend",
    );
    let mut fleet = fleet_from(
        r#"
name: backend-consumes
duration: 4s
devices:
  - kind: light
    id: lamp
    will: {}
faults:
  - { kind: kill, target: lamp, at: 1s, down_for: 2s }
"#,
    );
    fleet.broker = loopback(port);
    let report = run_fleet(fleet);
    let o = &report.wills.outages[0];
    assert_eq!(o.outcome, "consumed", "{o:?}");
    assert_eq!(o.acked_by, ["backend"]);
    assert!(o.learned_at_s.is_some(), "{o:?}");
    assert!(report.ok, "{:?}", report.problems);
}

#[test]
fn a_will_published_without_an_outage_is_unexpected() {
    // Somebody publishes what looks like the lamp's Will while the lamp is fine.
    let broker = fleetsim::broker::EmbeddedBroker::start(0, 1).expect("embedded broker");
    let port = broker.addr().port();
    let mut fleet = fleet_from(
        r#"
name: impostor
duration: 2s
devices:
  - kind: light
    id: lamp
    will: {}
"#,
    );
    fleet.broker = loopback(port);
    let runner = std::thread::spawn(move || run_fleet(fleet));
    std::thread::sleep(Duration::from_millis(800));
    common::hand::publish(port, None, "status/lamp", "offline", Some(b"lamp#1"));
    let report = runner.join().expect("run thread");
    let w = &report.wills;
    assert_eq!(w.unexpected, 1, "{w:#?}");
    assert_eq!(w.unexpected_wills[0].device, "lamp");
    assert_eq!(w.unexpected_wills[0].incarnation, 1);
    assert_eq!(w.unexpected_wills[0].after_fault, None);
    assert!(!report.ok);
}

#[test]
fn on_a_broker_that_wants_logins_the_supervisor_uses_the_fleets_supervisor_login() {
    let Some(mosquitto) = Mosquitto::start_with(|dir, _| {
        let passwords = password_file(dir, &[("lamp", "l"), ("phone", "p"), ("watcher", "w")]);
        format!(
            "allow_anonymous false\npassword_file {}\n",
            passwords.display()
        )
    }) else {
        return;
    };
    let mut fleet = fleet_from(
        r#"
name: locked-wills
duration: 4s
supervisor: { username: watcher, password: w }
devices:
  - { kind: light, id: lamp, username: lamp, password: l, will: {} }
  - { kind: phone, id: phone, username: phone, password: p, targets: [lamp], consume_wills: status/+ }
faults:
  - { kind: kill, target: lamp, at: 1s, down_for: 2s }
"#,
    );
    fleet.broker = mosquitto.target();
    let report = run_fleet(fleet);
    let w = &report.wills;
    assert_eq!((w.expected, w.published, w.consumed), (1, 1, 1), "{w:#?}");
    assert!(report.ok, "{:?}", report.problems);
}
