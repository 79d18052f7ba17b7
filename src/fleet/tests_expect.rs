//! Tests of `expect:`: good entries in file order, and bad metrics, operators and limits with
//! their messages.

use super::test_support::problems;
use super::*;

/// `expect:` is on line 4, so its first entry is on line 5.
fn with_expect(body: &str) -> String {
    format!("name: t\ndevices:\n  - {{kind: light, id: l}}\nexpect:\n{body}")
}

#[test]
fn expectations_keep_file_order_with_or_without_spaces() {
    let yaml = with_expect(
        "  timed_out: \"<= 3\"\n  success_rate: \">=0.95\"\n  latency_p99_ms: '< 250.5'\n  wills_consumed_rate: \"== 1\"\n  sent: '>10'\n",
    );
    let f = match parse(&yaml, "t.yaml") {
        Ok(f) => f,
        Err(e) => panic!("{e}"),
    };
    let e = |metric, op, limit| Expectation { metric, op, limit };
    assert_eq!(
        f.expect,
        [
            e(Metric::TimedOut, Op::AtMost, 3.0),
            e(Metric::SuccessRate, Op::AtLeast, 0.95),
            e(Metric::LatencyP99Ms, Op::Below, 250.5),
            e(Metric::WillsConsumedRate, Op::Equal, 1.0),
            e(Metric::Sent, Op::Above, 10.0),
        ]
    );
}

#[test]
fn no_or_empty_expect_expects_nothing() {
    for yaml in [
        "name: t\ndevices: [{kind: light, id: l}]\n",
        &with_expect(""),
        &with_expect("  {}\n"),
    ] {
        match parse(yaml, "t.yaml") {
            Ok(f) => assert_eq!(f.expect, [], "{yaml}"),
            Err(e) => panic!("{yaml}: {e}"),
        }
    }
}

#[test]
fn every_metric_name_is_accepted() {
    for metric in Metric::ALL {
        let yaml = with_expect(&format!("  {}: \">= 0\"\n", metric.as_str()));
        match parse(&yaml, "t.yaml") {
            Ok(f) => assert_eq!(f.expect[0].metric, metric),
            Err(e) => panic!("{}: {e}", metric.as_str()),
        }
    }
}

#[test]
fn bad_expectations_name_line_field_and_value() {
    let cases: &[(&str, &str)] = &[
        (
            "  succes_rate: \">= 0.9\"\n",
            "5:3: expect.succes_rate: unknown metric `succes_rate`; expected one of success_rate, latency_p50_ms, latency_p90_ms, latency_p99_ms, latency_max_ms, sent, matched, timed_out, late, failed, unmatched, duplicate, mixed_up, error_answers, bad_answers, wills_consumed_rate, wills_unconsumed, wills_missing, wills_unexpected, refusals, faults_injected",
        ),
        (
            "  success_rate: \"95%\"\n",
            r#"5:17: expect.success_rate: expected "OP NUMBER" like ">= 0.95", got "95%""#,
        ),
        (
            "  success_rate: \"=> 0.9\"\n",
            r#"expect.success_rate: expected "OP NUMBER" like ">= 0.95", got "=> 0.9""#,
        ),
        ("  latency_p50_ms: \"< inf\"\n", r#"got "< inf""#),
        (
            "  timed_out: 0\n",
            r#"5:14: expect.timed_out: expected "OP NUMBER" like ">= 0.95", got 0: write it as "== 0" or "<= 0""#,
        ),
        (
            "  success_rate: 0.95\n",
            r#"got 0.95: write it as "== 0.95" or ">= 0.95""#,
        ),
        (
            "  success_rate: \">= 95\"\n",
            "expect.success_rate: success_rate is a rate: the limit must be from 0 to 1, got 95",
        ),
        (
            "  wills_consumed_rate: \">= -0.1\"\n",
            "wills_consumed_rate is a rate: the limit must be from 0 to 1, got -0.1",
        ),
        (
            "  timed_out: \"<= 2.5\"\n",
            "timed_out is a count: the limit must be a whole number >= 0, got 2.5",
        ),
        (
            "  wills_missing: \"< -1\"\n",
            "wills_missing is a count: the limit must be a whole number >= 0, got -1",
        ),
        (
            "  latency_max_ms: \"< -5\"\n",
            "latency_max_ms is in milliseconds: the limit must be >= 0, got -5",
        ),
    ];
    for (body, want) in cases {
        let p = problems(&with_expect(body));
        assert!(
            p.iter().any(|p| p.contains(want)),
            "{body}: want `{want}` in {p:#?}"
        );
    }
}

#[test]
fn expect_that_is_not_a_mapping_or_holds_no_text_is_a_yaml_error() {
    for body in [
        "  - success_rate\n",
        "  sent: true\n",
        "  sent: ~\n",
        "  sent: {a: 1}\n",
    ] {
        match parse(&with_expect(body), "t.yaml") {
            Err(FleetError::Yaml { message, .. }) => {
                assert!(
                    message.contains("line 5") || message.contains("line 4"),
                    "{message}"
                )
            }
            other => panic!("{body}: expected a YAML error, got {other:?}"),
        }
    }
}

#[test]
fn every_bad_expectation_is_reported_at_once() {
    let p = problems(&with_expect(
        "  nope: \">= 1\"\n  sent: \"lots\"\n  success_rate: \"> 2\"\n",
    ));
    assert_eq!(p.len(), 3, "{p:#?}");
    assert!(p[0].starts_with("5:3: expect.nope:"), "{p:#?}");
    assert!(p[1].starts_with("6:9: expect.sent:"), "{p:#?}");
    assert!(p[2].starts_with("7:17: expect.success_rate:"), "{p:#?}");
}
