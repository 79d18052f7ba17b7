//! When things happened, not only how many: the report's per-second timeline and its
//! per-topic breakdown show a responder that dies mid-run as the second its answers stopped.

mod common;

use common::*;

/// Two lamps answer one phone; `lamp-a` is killed at 2 s and stays down past the end.
fn fleet() -> fleetsim::fleet::Fleet {
    let mut fleet = fleet_from(
        r#"
name: timeline
duration: 5s
devices:
  - { kind: light, id: lamp-a }
  - { kind: light, id: lamp-b }
  - kind: phone
    id: phone
    targets: [lamp-a, lamp-b]
    every: 50ms
    timeout: 300ms
faults:
  - { kind: kill, target: lamp-a, at: 2s, down_for: 60s }
"#,
    );
    fleet.broker = embedded();
    fleet
}

#[test]
fn a_responder_killed_mid_run_shows_as_the_second_its_answers_stopped() {
    let report = run_fleet(fleet());
    assert_adds_up(&report);
    let q = &report.requests;

    // The timeline adds up to the totals.
    let seconds = &report.timeline.seconds;
    assert_eq!(report.timeline.width_s, 1);
    let sum = |f: fn(&fleetsim::timeline::Second) -> u64| seconds.iter().map(f).sum::<u64>();
    assert_eq!(sum(|s| s.sent), q.sent);
    assert_eq!(sum(|s| s.matched), q.matched);
    assert_eq!(sum(|s| s.timed_out), q.timed_out);
    assert_eq!(sum(|s| s.late), q.late);
    assert_eq!(sum(|s| s.failed), q.failed);

    // All three connected before the kill, one fewer after it.
    assert_eq!(seconds[1].connected, 3, "{seconds:?}");
    assert_eq!(seconds[3].connected, 2, "{seconds:?}");
    // Before the kill every request is answered; after it, half of them time out.
    assert!(
        seconds[1].matched > 0 && seconds[1].timed_out == 0,
        "{seconds:?}"
    );
    assert!(seconds[3].timed_out > 0, "{seconds:?}");
    assert!(seconds[1].p99_ms.is_some());

    // By topic: lamp-a's answers stopped at the kill, lamp-b's went on to the end.
    let topic = |id: &str| {
        report
            .targets
            .iter()
            .find(|t| t.topic.contains(id))
            .unwrap_or_else(|| panic!("no target for {id}: {:?}", report.targets))
    };
    let (a, b) = (topic("lamp-a"), topic("lamp-b"));
    assert_eq!(report.targets.len(), 2);
    assert_eq!(a.sent + b.sent, q.sent);
    assert_eq!(a.matched + b.matched, q.matched);
    assert_eq!(b.timed_out, 0, "{b:?}");
    assert!(a.timed_out > 0, "{a:?}");
    let a_last = a.last_answer_s.expect("lamp-a answered before the kill");
    assert!((1.5..2.3).contains(&a_last), "{a:?}");
    assert!(b.last_answer_s.unwrap() > 4.5, "{b:?}");
    assert!(a.first_answer_s.unwrap() < 0.5, "{a:?}");

    // The summary names the topic that went silent, and only that one.
    let silent = report.silent_targets();
    assert_eq!(silent.len(), 1, "{silent:?}");
    assert!(silent[0].0.topic.contains("lamp-a"));
    let table = fleetsim::report::Table(&report, fleetsim::lang::Lang::En).to_string();
    let line = table
        .lines()
        .find(|l| l.contains("went silent"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(line.contains("lamp-a") && line.contains(&format!("answered until {a_last:.1}s")));
    assert!(
        line.contains(&format!("{} timed out", a.timed_out)),
        "{line}"
    );
}
