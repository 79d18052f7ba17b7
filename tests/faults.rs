//! Request and responder faults: each kind's observable effect on the requester's accounting,
//! expectations, and determinism.

mod common;

use std::collections::BTreeMap;

use common::*;
use fleetsim::report::Report;

/// One phone and one light per fault kind, so each effect can be read off on its own. Every
/// fault is armed at the start: it hits the pair's first request or answer.
fn isolated(kinds: &[(&str, &str)]) -> String {
    let mut devices = String::new();
    let mut faults = String::new();
    for (kind, extra) in kinds {
        let short = kind.replace('_', "-");
        devices += &format!(
            "  - {{ kind: light, id: l-{short} }}\n  - {{ kind: phone, id: p-{short}, targets: [l-{short}], every: 250ms, timeout: 1s, requests: 3 }}\n"
        );
        let target = if is_request_fault(kind) { "p" } else { "l" };
        faults += &format!("  - {{ kind: {kind}, target: {target}-{short}, at: 0s{extra} }}\n");
    }
    format!("name: isolated\nduration: 2s\nseed: 5\ndevices:\n{devices}faults:\n{faults}")
}

fn is_request_fault(kind: &str) -> bool {
    [
        "no_response_topic",
        "no_correlation_data",
        "empty_correlation_data",
        "wildcard_response_topic",
        "huge_payload",
        "binary_payload",
    ]
    .contains(&kind)
}

/// kind -> effect text of its (single) fault event.
fn effects(report: &Report) -> BTreeMap<String, String> {
    report
        .faults
        .events
        .iter()
        .map(|e| (e.kind.to_string(), e.effect.clone()))
        .collect()
}

#[test]
fn each_responder_fault_shows_in_the_requesters_accounting() {
    let fleet = fleet_from(&isolated(&[
        ("slow", ", delay: 1500ms"),
        ("no_answer", ""),
        ("wrong_correlation", ""),
        ("duplicate_answer", ""),
        ("wrong_topic", ""),
        ("error_payload", ""),
    ]));
    let report = run_fleet(fleet);
    assert_adds_up(&report);
    let q = &report.requests;
    assert_eq!(q.sent, 18, "6 phones x 3 requests: {q:?}");
    // slow: timed out, then answered late. no_answer, wrong_correlation, wrong_topic: timed out.
    assert_eq!(q.late, 1, "{q:?}");
    assert_eq!(q.timed_out, 3, "{q:?}");
    assert_eq!(q.matched, 14, "{q:?}");
    assert_eq!(
        q.unmatched_responses, 1,
        "the wrong Correlation Data: {q:?}"
    );
    assert_eq!(q.duplicate_responses, 1, "{q:?}");
    assert_eq!(q.error_answers, 1, "{q:?}");
    assert_eq!(report.responders.withheld, 1);

    let e = effects(&report);
    assert_eq!(report.faults.injected, 6);
    assert!(
        e["slow"].contains("answered 1500 ms late on purpose"),
        "{e:?}"
    );
    assert!(
        e["slow"].contains("timed out") && e["slow"].contains("late"),
        "{e:?}"
    );
    assert!(
        e["no_answer"].contains("did not answer -> no answer: timed out"),
        "{e:?}"
    );
    assert!(e["wrong_topic"].contains("timed out"), "{e:?}");
    assert!(e["duplicate_answer"].contains("duplicate answer"), "{e:?}");
    assert!(e["error_payload"].contains("answered in"), "{e:?}");
}

#[test]
fn each_request_fault_reaches_the_backend_and_is_accounted_for() {
    let fleet = fleet_from(&isolated(&[
        ("no_response_topic", ""),
        ("no_correlation_data", ""),
        ("empty_correlation_data", ""),
        ("huge_payload", ", size: 300KiB"),
        ("binary_payload", ""),
    ]));
    let report = run_fleet(fleet);
    assert_adds_up(&report);
    let q = &report.requests;
    assert_eq!(q.sent, 15, "{q:?}");
    // No Response Topic: nobody can answer. No or empty Correlation Data: the answer names no
    // request (unmatched) and the request times out.
    assert_eq!(q.timed_out, 3, "{q:?}");
    assert_eq!(q.unmatched_responses, 2, "{q:?}");
    assert_eq!(report.responders.without_response_topic, 1);
    // A huge or binary command is not understood: answered with an error, still matched.
    assert_eq!(report.responders.rejected, 2);
    assert_eq!(q.error_answers, 2, "{q:?}");
    assert_eq!(q.matched, 12, "{q:?}");
    let e = effects(&report);
    assert!(e["huge_payload"].contains("307200 byte payload"), "{e:?}");
    assert!(
        e["no_response_topic"].contains("sent without Response Topic -> no answer"),
        "{e:?}"
    );
}

#[test]
fn the_same_seed_gives_the_same_faults_and_the_same_outcomes() {
    let text = r#"
name: dice
duration: 2s
seed: 77
devices:
  - kind: light
    id: lamp-{n}
    count: 2
  - kind: phone
    id: phone-{n}
    count: 2
    targets: ["lamp-{n}"]
    every: 100ms
    timeout: 500ms
    requests: 12
faults:
  - { kind: no_answer, target: "lamp-*", probability: 0.25 }
  - { kind: no_correlation_data, target: phone-1, probability: 0.2 }
  - { kind: duplicate_answer, target: lamp-2, probability: 0.3 }
"#;
    let counts = |report: &Report| {
        let q = &report.requests;
        (
            report.faults.by_kind.clone(),
            (
                q.sent,
                q.matched,
                q.timed_out,
                q.unmatched_responses,
                q.duplicate_responses,
            ),
        )
    };
    let first = run_fleet(fleet_from(text));
    let second = run_fleet(fleet_from(text));
    assert_adds_up(&first);
    assert_eq!(counts(&first), counts(&second));
    assert!(first.faults.injected > 0, "{:?}", first.faults);
    assert!(first.requests.timed_out > 0);
}

#[test]
fn a_requester_that_dies_with_requests_in_flight_counts_their_answers_late() {
    // The phone keeps a session: answers published while it is away wait there for it.
    let report = run_fleet(fleet_from(
        r#"
name: requester-dies
duration: 3s
devices:
  - { kind: light, id: lamp, delay: 100ms }
  - { kind: phone, id: phone, targets: [lamp], every: 200ms, timeout: 500ms, session_expiry: 60s }
faults:
  - { kind: kill, target: phone, at: 1s, down_for: 1500ms }
"#,
    ));
    assert_adds_up(&report);
    let q = &report.requests;
    assert!(q.late >= 1, "{q:?}");
    assert_eq!(
        q.unmatched_responses, 0,
        "no answer is lost or stray: {q:?}"
    );
    assert_eq!(q.in_flight, 0, "{q:?}");
}

#[test]
fn the_faults_demo_injects_every_kind_records_each_effect_and_passes() {
    let dir = tempfile::tempdir().unwrap();
    let report_path = dir.path().join("r.json");
    let out = common::fleetsim_command()
        .arg(repo_file("fleets/faults.yaml"))
        .args(["-q", "--report"])
        .arg(&report_path)
        .output()
        .expect("run fleetsim");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    let by_kind = json["faults"]["by_kind"].as_object().unwrap();
    assert_eq!(by_kind.len(), 27, "every fault kind: {by_kind:?}");
    for event in json["faults"]["events"].as_array().unwrap() {
        let effect = event["effect"].as_str().unwrap();
        assert!(
            effect.contains("->"),
            "no observed effect recorded: {event}"
        );
    }
    let r = &json["requests"];
    let n = |k: &str| r[k].as_u64().unwrap();
    assert_eq!(
        n("sent"),
        n("matched") + n("late") + n("timed_out") + n("failed") + n("in_flight")
    );
    assert!(
        json["expectations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["ok"] == true)
    );
}

#[test]
fn failing_expectations_exit_1_and_are_named() {
    let out = common::fleetsim_command()
        .arg(repo_file("fleets/faults-failing.yaml"))
        .args(["-q", "--duration", "2s"])
        .output()
        .expect("run fleetsim");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL success_rate >= 0.99"), "{stdout}");
    assert!(stdout.contains("expected timed_out == 0, got"), "{stdout}");
}
