//! The demo fleets and request/response accounting on the embedded broker.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn home_fleet_matches_every_request() {
    let report = run_fleet(repo_fleet(
        "fleets/home.yaml",
        embedded(),
        Duration::from_secs(3),
    ));
    assert_adds_up(&report);
    assert!(report.ok, "{:?}", report.problems);
    assert_eq!(report.devices.total, 5);
    assert_eq!(report.devices.connected, 5);
    assert_eq!(report.devices.by_kind.get("phone"), Some(&2));
    assert_eq!(report.devices.by_kind.get("light"), Some(&1));
    assert_eq!(report.devices.by_kind.get("sensor"), Some(&2));
    let q = &report.requests;
    // The phone sends about one request a second, the tablet one every 2 s: 3 s gives >= 2.
    assert!(q.sent >= 2, "{q:?}");
    assert_eq!(q.matched, q.sent);
    assert_eq!((q.timed_out, q.failed, q.in_flight), (0, 0, 0));
    assert_eq!((q.unmatched_responses, q.duplicate_responses), (0, 0));
    // Every request was answered by exactly one responder.
    assert_eq!(report.responders.answered, q.sent);
    assert_eq!(report.responders.received, q.sent);
    // Two sensors, one reading a second each, for 3 s.
    assert!(report.telemetry.published >= 4, "{:?}", report.telemetry);
    assert!(q.latency_ms.p50 > 0.0 && q.latency_ms.max >= q.latency_ms.p99);
}

#[test]
fn multi_fleet_keeps_answers_apart() {
    let report = run_fleet(repo_fleet(
        "fleets/multi.yaml",
        embedded(),
        Duration::from_secs(2),
    ));
    assert_adds_up(&report);
    assert!(report.ok, "{:?}", report.problems);
    let q = &report.requests;
    // 4 phones at ~3 requests a second for 2 s.
    assert!(q.sent >= 12, "{q:?}");
    assert_eq!(q.matched, q.sent);
    assert_eq!(q.unmatched_responses, 0);
    assert_eq!(q.duplicate_responses, 0);
}

#[test]
fn a_shared_response_topic_shows_up_as_unmatched_answers() {
    // Two phones share one Response Topic: each also receives the other's answers. Correlation
    // Data still matches every request, and every foreign answer is counted as unmatched.
    let fleet = fleet_from(
        r#"
name: shared
duration: 2s
devices:
  - kind: light
    id: lamp
  - kind: phone
    id: phone-{n}
    count: 2
    targets: [lamp]
    response_topic: replies/shared
    every: 200ms
    requests: 5
"#,
    );
    let report = run_fleet(fleet);
    assert_adds_up(&report);
    let q = &report.requests;
    assert_eq!(q.sent, 10);
    assert_eq!(q.matched, 10);
    assert_eq!(q.unmatched_responses, 10);
    assert!(!report.ok);
}

#[test]
fn requests_nobody_answers_time_out_and_fail_the_run() {
    let fleet = fleet_from(
        r#"
name: silence
duration: 1s
devices:
  - kind: phone
    id: phone
    request_topic: nobody/listens
    every: 200ms
    timeout: 300ms
    requests: 3
"#,
    );
    let report = run_fleet(fleet);
    assert_adds_up(&report);
    let q = &report.requests;
    assert_eq!(q.sent, 3);
    assert_eq!(q.timed_out, 3);
    assert_eq!(q.matched, 0);
    assert!(!report.ok);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("3 requests timed out"))
    );
}

#[test]
fn a_request_the_responder_does_not_understand_is_answered_with_an_error() {
    // A sensor asked for something it does not know still answers (with an error) and counts it
    // as rejected; the phone matches the answer all the same.
    let fleet = fleet_from(
        r#"
name: sensor-get
duration: 1s
devices:
  - kind: sensor
    id: probe
    every: 100ms
  - kind: phone
    id: phone
    targets: [probe]
    payloads: [get, reboot]
    every: 100ms
    requests: 4
"#,
    );
    let report = run_fleet(fleet);
    assert_adds_up(&report);
    assert_eq!(report.requests.matched, 4);
    assert_eq!(report.responders.answered, 4);
    assert_eq!(report.responders.rejected, 2);
    assert!(report.telemetry.published >= 5);
}

#[test]
fn a_responder_that_is_not_fleetsim_is_matched() {
    // The broker is started here, not by the run, so the third-party responder can subscribe
    // before the phone sends its first request.
    let broker = fleetsim::broker::EmbeddedBroker::start(0, 1).expect("embedded broker");
    let port = broker.addr().port();
    let _responder = ShellResponder::start(port, "hub/cmd", r#"{"pong":true}"#);
    let mut fleet = fleet_from(
        r#"
name: third-party
duration: 2s
devices:
  - kind: phone
    id: phone
    request_topic: hub/cmd
    payloads: [ping]
    every: 150ms
    requests: 6
"#,
    );
    fleet.broker = loopback(port);
    let report = run_fleet(fleet);
    assert_adds_up(&report);
    assert_eq!(report.requests.sent, 6);
    assert_eq!(report.requests.matched, 6, "{:?}", report.requests);
    assert!(report.ok, "{:?}", report.problems);
}

#[test]
fn a_device_whose_session_is_taken_over_reconnects() {
    let broker = fleetsim::broker::EmbeddedBroker::start(0, 1).expect("embedded broker");
    let port = broker.addr().port();
    let mut fleet = fleet_from(
        r#"
name: takeover
duration: 2s
devices:
  - kind: light
    id: lamp
  - kind: phone
    id: phone
    targets: [lamp]
    every: 250ms
    requests: 8
"#,
    );
    fleet.broker = loopback(port);
    let runner = std::thread::spawn(move || run_fleet(fleet));
    std::thread::sleep(Duration::from_millis(600));
    // Another client with the lamp's client id: the broker disconnects the lamp (0x8E).
    common::hand::publish(port, Some("lamp"), "intruder", "hello", None);
    let report = runner.join().expect("run thread");
    assert_adds_up(&report);
    let d = &report.devices;
    assert_eq!(d.reconnects, 1, "{d:?}");
    // Another client taking a device's session over is no fault of the plan: the run says so.
    assert_eq!(
        d.drops_by_reason.get("session_taken_over"),
        Some(&1),
        "{d:?}"
    );
    assert!(!report.ok);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("session_taken_over")),
        "{:?}",
        report.problems
    );
    assert_eq!(report.requests.sent, 8);
    // At most the request or two around the takeover may go unanswered.
    assert!(report.requests.matched >= 6, "{:?}", report.requests);
}

#[test]
fn a_command_without_response_topic_is_applied_and_counted_but_not_answered() {
    let broker = fleetsim::broker::EmbeddedBroker::start(0, 1).expect("embedded broker");
    let port = broker.addr().port();
    let mut fleet = fleet_from(
        r#"
name: fire-and-forget
duration: 1500ms
devices:
  - kind: light
    id: lamp
"#,
    );
    fleet.broker = loopback(port);
    let runner = std::thread::spawn(move || run_fleet(fleet));
    std::thread::sleep(Duration::from_millis(700));
    for command in ["ON", "TOGGLE"] {
        common::hand::publish(port, None, "cmnd/lamp/power", command, None);
    }
    let report = runner.join().expect("run thread");
    assert_eq!(report.responders.received, 2);
    assert_eq!(report.responders.without_response_topic, 2);
    assert_eq!(report.responders.answered, 0);
    assert!(report.ok, "{:?}", report.problems);
}

#[test]
fn qos_2_requests_and_answers_complete_their_flows_exactly_once() {
    let report = run_fleet(fleet_from(
        r#"
name: exactly-once
duration: 2s
devices:
  - { kind: light, id: lamp, qos: 2 }
  - { kind: phone, id: phone, targets: [lamp], qos: 2, every: 100ms, requests: 10 }
"#,
    ));
    assert_adds_up(&report);
    let q = &report.requests;
    assert_eq!((q.sent, q.matched), (10, 10), "{q:?}");
    assert_eq!(
        (q.duplicate_responses, q.unmatched_responses),
        (0, 0),
        "{q:?}"
    );
    assert_eq!(
        report.responders.received, 10,
        "each request delivered once"
    );
}

#[test]
fn a_request_over_the_brokers_maximum_packet_size_fails_once_and_never_loops() {
    // The embedded broker allows 1 MiB: a 2 MiB request would get the phone thrown out, and
    // its session would send it again on every reconnect.
    let report = run_fleet(fleet_from(
        r#"
name: too-large
duration: 1500ms
devices:
  - { kind: light, id: lamp }
  - { kind: phone, id: phone, targets: [lamp], every: 200ms, session_expiry: 60s, will: {} }
faults:
  - { kind: huge_payload, target: phone, at: 300ms, size: 2MiB }
"#,
    ));
    assert_adds_up(&report);
    let q = &report.requests;
    assert_eq!(q.failed, 1, "{q:?}");
    assert_eq!(q.matched + q.failed, q.sent, "{q:?}");
    let d = &report.devices;
    assert_eq!((d.reconnects, d.unplanned_drops), (0, 0), "{d:?}");
    assert_eq!(
        report.wills.unexpected, 0,
        "no Will published: the phone never dropped"
    );
    let effect = fault_effect(&report, "huge_payload");
    assert!(effect.contains("failed: packet_too_large"), "{effect}");
}
