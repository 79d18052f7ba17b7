//! Load models on the embedded broker: an open loop sends at the rate asked for, a group rate is
//! split over its phones, a closed loop keeps its requests outstanding.

mod common;

use common::*;

fn lights_and_phones(phones: &str) -> fleetsim::report::Report {
    let report = run_fleet(fleet_from(&format!(
        "name: load\nduration: 2s\ndevices:\n  - {{ kind: light, id: \"light-{{n}}\", count: 4 }}\n  - {{ kind: phone, id: \"phone-{{n}}\", count: 4, targets: [\"light-{{n}}\"], payloads: [ON], {phones} }}\n"
    )));
    assert_adds_up(&report);
    assert!(report.ok, "{:?}", report.problems);
    report
}

#[test]
fn an_open_loop_sends_at_the_rate_asked_for() {
    let report = lights_and_phones("rate: 250/s");
    let load = &report.load;
    assert_eq!(load.offered_rps, Some(1000.0));
    // Paced against the start: within 1 % of the rate over the run (a request or two at the
    // edges of the 2 s).
    let off = (load.achieved_rps - 1000.0).abs() / 1000.0;
    assert!(off < 0.01, "{load:?}");
    let q = &report.requests;
    assert_eq!(q.matched, q.sent, "{q:?}");
    assert!((1980..=2020).contains(&q.sent), "{q:?}");
}

#[test]
fn a_group_rate_is_split_over_the_groups_phones() {
    let report = lights_and_phones("group_rate: 400/s");
    assert_eq!(report.load.offered_rps, Some(400.0));
    assert!(
        (790..=810).contains(&report.requests.sent),
        "{:?}",
        report.requests
    );
}

#[test]
fn a_closed_loop_keeps_its_window_full_and_offers_no_rate() {
    let report = lights_and_phones("in_flight: 4");
    assert_eq!(report.load.offered_rps, None);
    let q = &report.requests;
    // Each of 4 phones keeps 4 outstanding for 2 s on loopback: thousands of round trips.
    assert!(q.sent > 1000, "{q:?}");
    assert_eq!(q.matched, q.sent);
    assert!(report.load.achieved_rps > 500.0, "{:?}", report.load);
}

#[test]
fn requests_caps_a_closed_loop_too() {
    let report = lights_and_phones("in_flight: 8, requests: 50");
    assert_eq!(report.requests.sent, 200);
    assert_eq!(report.requests.matched, 200);
}

#[test]
fn a_phone_told_to_stop_after_n_requests_asks_for_no_more_than_n_over_the_run() {
    let report = run_fleet(fleet_from(
        r#"
name: capped
duration: 2s
devices:
  - { kind: light, id: lamp }
  - { kind: phone, id: phone, targets: [lamp], every: 100ms, requests: 2 }
"#,
    ));
    assert_eq!(report.requests.sent, 2);
    // 10/s by its pace, but 2 requests over a 2 s run: 1/s asked for, as sent.
    assert_eq!(report.load.offered_rps, Some(1.0));
    assert!(
        (report.load.achieved_rps - 1.0).abs() < 0.01,
        "{:?}",
        report.load
    );
}
