//! Protocol faults on a device's own connection: the broker must answer them, and only the
//! faulty connection may suffer.

mod common;

use common::*;
use fleetsim::report::Report;

/// Two lamp/phone pairs; `faults` hit the first lamp (`lamp-1`) or phone (`phone-1`).
fn two_pairs(faults: &str) -> Report {
    let text = format!(
        "name: protocol\nduration: 3s\nseed: 3\ndevices:\n  - {{ kind: light, id: \"lamp-{{n}}\", count: 2, session_expiry: 60s }}\n  - {{ kind: phone, id: \"phone-{{n}}\", count: 2, targets: [\"lamp-{{n}}\"], every: 250ms, timeout: 2s, requests: 8 }}\nfaults:\n{faults}"
    );
    let report = run_fleet(fleet_from(&text));
    assert_adds_up(&report);
    report
}

#[test]
fn a_malformed_packet_closes_that_connection_and_no_other() {
    let report = two_pairs("  - { kind: malformed_packet, target: lamp-1, at: 500ms }\n");
    assert_eq!(
        report.devices.reconnects, 1,
        "only lamp-1: {:?}",
        report.devices
    );
    let e = fault_effect(&report, "malformed_packet");
    assert!(
        e.contains("connection lost") && e.contains("reconnected"),
        "{e}"
    );
    // The other pair never noticed; lamp-1's requests are answered after it is back.
    assert!(report.requests.matched >= 14, "{:?}", report.requests);
}

#[test]
fn an_oversize_packet_closes_that_connection() {
    let report = two_pairs("  - { kind: oversize_packet, target: phone-1, at: 500ms }\n");
    assert_eq!(report.devices.reconnects, 1, "{:?}", report.devices);
    let e = fault_effect(&report, "oversize_packet");
    assert!(
        e.contains("2097152 byte PUBLISH") && e.contains("connection lost"),
        "{e}"
    );
}

#[test]
fn withheld_acks_are_redelivered_with_dup_when_the_session_resumes() {
    let report = two_pairs("  - { kind: withhold_acks, target: lamp-1, at: 300ms, lasts: 1s }\n");
    let e = fault_effect(&report, "withhold_acks");
    assert!(e.contains(" held back; reconnecting"), "{e}");
    let redelivered: u32 = e
        .split("redelivered ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no redelivery count in {e}"));
    assert!(redelivered >= 1, "{e}");
    // lamp-1 answers each redelivered request again: its phone counts duplicates.
    assert!(
        report.requests.duplicate_responses >= 1,
        "{:?}",
        report.requests
    );
    assert_eq!(report.requests.matched, 16, "{:?}", report.requests);
}

#[test]
fn a_duplicate_request_draws_a_duplicate_answer() {
    let report = two_pairs("  - { kind: duplicate_request, target: phone-2, at: 500ms }\n");
    let q = &report.requests;
    assert_eq!((q.sent, q.matched), (16, 16), "{q:?}");
    assert_eq!(q.duplicate_responses, 1, "{q:?}");
    assert!(fault_effect(&report, "duplicate_request").contains("then a duplicate answer"));
}
