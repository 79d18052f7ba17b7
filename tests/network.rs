//! Network faults through the in-process proxy: each toxic's observable effect.

mod common;

use common::*;
use fleetsim::report::Report;

/// A lamp and a phone asking it every `every`, plus `faults`.
fn pair(every: &str, timeout: &str, requests: u32, faults: &str) -> Report {
    let text = format!(
        "name: net\nduration: 3s\nseed: 9\ndevices:\n  - {{ kind: light, id: lamp }}\n  - {{ kind: phone, id: phone, targets: [lamp], every: {every}, timeout: {timeout}, requests: {requests} }}\nfaults:\n{faults}"
    );
    let report = run_fleet(fleet_from(&text));
    assert_adds_up(&report);
    report
}

#[test]
fn latency_delays_every_answer() {
    let report = pair(
        "200ms",
        "2s",
        5,
        "  - { kind: latency, target: phone, at: 0s, latency: 250ms, direction: downstream }\n",
    );
    let q = &report.requests;
    assert_eq!(q.matched, 5, "{q:?}");
    assert!(q.latency_ms.p50 >= 250.0, "{:?}", q.latency_ms);
    assert!(fault_effect(&report, "latency").contains("latency 250 ms"));
}

#[test]
fn slicer_still_delivers_in_small_segments() {
    let report = pair(
        "200ms",
        "2s",
        4,
        "  - { kind: slicer, target: phone, at: 0s, slice: 4, slice_delay: 3ms, direction: upstream }\n",
    );
    let q = &report.requests;
    assert_eq!(q.matched, 4, "the broker reassembles the segments: {q:?}");
    // A request PUBLISH is some 60 bytes: 15 segments, 3 ms apart.
    assert!(q.latency_ms.p50 >= 30.0, "{:?}", q.latency_ms);
}

#[test]
fn bandwidth_throttles_large_requests() {
    let report = pair(
        "1500ms",
        "5s",
        2,
        "  - { kind: bandwidth, target: phone, at: 0s, rate: 4KiB, direction: upstream }\n  - { kind: huge_payload, target: phone, probability: 1.0, size: 8KiB }\n",
    );
    let q = &report.requests;
    assert_eq!(q.matched, 2, "{q:?}");
    // 8 KiB at 4 KiB/s: about 2 s each way up.
    assert!(q.latency_ms.p50 >= 1500.0, "{:?}", q.latency_ms);
}

#[test]
fn blackhole_holds_requests_until_lifted() {
    let report = pair(
        "250ms",
        "700ms",
        8,
        "  - { kind: blackhole, target: lamp, at: 500ms, lasts: 1500ms, direction: downstream }\n",
    );
    let q = &report.requests;
    // Requests sent while the lamp hears nothing are answered once the blackhole lifts: late.
    assert!(q.late >= 1, "{q:?}");
    assert_eq!(q.matched + q.late + q.timed_out, 8, "{q:?}");
    assert!(
        fault_effect(&report, "blackhole").contains("lifted"),
        "{:?}",
        report.faults
    );
}

#[test]
fn reset_drops_the_connection_and_the_device_comes_back() {
    let report = pair(
        "300ms",
        "2s",
        6,
        "  - { kind: reset, target: lamp, at: 500ms }\n",
    );
    assert!(report.devices.reconnects >= 1, "{:?}", report.devices);
    let e = fault_effect(&report, "reset");
    assert!(
        e.contains("connection lost") && e.contains("reconnected"),
        "{e}"
    );
    assert!(report.requests.matched >= 4, "{:?}", report.requests);
}

#[test]
fn limit_data_closes_the_connection_after_so_many_bytes() {
    let report = pair(
        "300ms",
        "2s",
        6,
        "  - { kind: limit_data, target: lamp, at: 500ms, limit: 100B, direction: upstream }\n",
    );
    assert!(report.devices.reconnects >= 1, "{:?}", report.devices);
    let e = fault_effect(&report, "limit_data");
    assert!(
        e.contains("after 100 more bytes") && e.contains("connection lost"),
        "{e}"
    );
}

#[test]
fn a_will_device_dropped_by_a_network_fault_tells_its_will_story_without_failing() {
    let report = run_fleet(fleet_from(
        r#"
name: drop-will
duration: 3s
devices:
  - { kind: light, id: lamp, will: {} }
  - { kind: phone, id: phone, targets: [lamp], every: 300ms, consume_wills: status/+ }
faults:
  - { kind: reset, target: lamp, at: 1s }
"#,
    ));
    assert_adds_up(&report);
    let w = &report.wills;
    assert_eq!((w.unexpected, w.expected), (0, 0), "{w:#?}");
    let o = &w.outages[0];
    assert_eq!(
        (o.fault.as_ref(), o.outcome.as_ref()),
        ("dropped", "dropped")
    );
    assert_eq!(
        o.acked_by,
        ["phone"],
        "the Will of the dropped connection was consumed"
    );
    assert_eq!(report.faults.by_kind.get("reset"), Some(&1));
    assert_eq!(
        report.faults.by_kind.get("dropped"),
        None,
        "a drop is an effect, not a fault"
    );
    assert!(report.ok, "{:?}", report.problems);
}
