//! What answers say, not only whether they come: `expect_answer:`, error answers in the
//! verdict, and samples of the answers worth seeing.

mod common;

use common::*;

fn fleet(payload: &str, expect_answer: &str, expect: &str) -> fleetsim::fleet::Fleet {
    let mut fleet = fleet_from(&format!(
        r#"
name: answers
duration: 1s
devices:
  - {{ kind: light, id: lamp }}
  - kind: phone
    id: phone
    targets: [lamp]
    payloads: ["{payload}"]
    every: 100ms
    requests: 4
{expect_answer}
{expect}
"#
    ));
    fleet.broker = embedded();
    fleet
}

#[test]
fn answers_that_fail_expect_answer_are_counted_sampled_and_fail_the_run() {
    let report = run_fleet(fleet(
        "ON",
        "    expect_answer: { json: { power: \"OFF\" }, contains: power }",
        "",
    ));
    assert_adds_up(&report);
    let q = &report.requests;
    assert_eq!(q.matched, 4, "{q:?}");
    assert_eq!(q.bad_answers, 4);
    assert!(!report.ok);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p == "4 matched answers failed expect_answer"),
        "{:?}",
        report.problems
    );
    let sample = &q.samples[0];
    assert_eq!(
        (sample.kind.as_str(), sample.phone.as_str()),
        ("bad", "phone")
    );
    assert_eq!(sample.payload, r#"{"power":"ON"}"#);
    assert_eq!(sample.correlation, "\"phone:1\"");
    assert_eq!(
        sample.why,
        "fails expect_answer: `power` is \"ON\", expected \"OFF\""
    );
}

#[test]
fn answers_that_pass_expect_answer_keep_the_run_ok() {
    let report = run_fleet(fleet(
        "ON",
        "    expect_answer: { json: { power: \"ON\" }, regex: '^\\{.*\\}$' }",
        "",
    ));
    assert_eq!(report.requests.bad_answers, 0);
    assert!(report.ok, "{:?}", report.problems);
}

/// A backend answering every request with an error passes no longer: matched, but failed.
#[test]
fn error_answers_fail_the_default_verdict_and_are_an_expect_metric() {
    let report = run_fleet(fleet("JAM", "", ""));
    let q = &report.requests;
    assert_eq!((q.matched, q.error_answers), (4, 4), "{q:?}");
    assert!(!report.ok);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.starts_with("4 matched answers carried an error")),
        "{:?}",
        report.problems
    );
    assert_eq!(q.samples[0].kind, "error");

    let allowed = run_fleet(fleet(
        "JAM",
        "",
        "expect: { error_answers: \"<= 4\", matched: \"== 4\" }",
    ));
    assert!(allowed.ok, "{:?}", allowed.problems);
    let refused = run_fleet(fleet("JAM", "", "expect: { error_answers: \"== 0\" }"));
    assert!(!refused.ok);
}

#[test]
fn expect_answer_is_checked_when_the_file_is_read() {
    let bad = |check: &str| {
        let yaml = format!(
            "name: x\ndevices:\n  - {{ kind: light, id: l }}\n  - {{ kind: phone, id: p, targets: [l], expect_answer: {check} }}\n"
        );
        fleetsim::fleet::parse(&yaml, "<test>")
            .unwrap_err()
            .to_string()
    };
    assert!(bad("{}").contains("expect_answer needs at least one of `json`, `contains`, `regex`"));
    assert!(bad("{ regex: '(' }").contains("devices[1].expect_answer.regex"));
    assert!(bad("{ json: { 'a..b': 1 } }").contains("`a..b` is not a path"));
    assert!(bad("{ jsn: {} }").contains("unknown field"));
    let light = "name: x\ndevices:\n  - { kind: light, id: l, expect_answer: { contains: x } }\n";
    assert!(fleetsim::fleet::parse(light, "<test>").is_err());
}
