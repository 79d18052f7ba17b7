//! The report as JUnit XML (`--junit PATH`), the test-result format CI systems read (GitHub
//! Actions reporters, GitLab, Jenkins): one `<testcase>` per `expect:` entry, with actual vs
//! limit, and one for the verdict, failing with every problem; a run that could not be carried
//! out is one `<testcase>` with an `<error>`.
//!
//! The shape is the common subset of the Ant/Jenkins JUnit schema: `testsuites` > `testsuite`
//! (`name`, `tests`, `failures`, `errors`, `skipped`, `time`) > `testcase` (`name`,
//! `classname`, `time`) > `failure`/`error` (`message`, `type`, text). A dozen fixed elements
//! do not need an XML library; [`escape`] covers what XML 1.0 allows in text and attributes.

use std::fmt::Write as _;

use super::Report;

/// One `<testcase>`.
struct Case {
    name: String,
    /// What went wrong, if anything.
    outcome: Option<Outcome>,
}

struct Outcome {
    /// `failure` (the run measured something it must not) or `error` (it could not run).
    element: &'static str,
    /// `expectation`, `verdict`, or the error's kind (`invalid`, `broker`, `system`).
    kind: &'static str,
    message: String,
    text: String,
}

/// The report as a JUnit XML document.
pub fn junit(report: &Report) -> String {
    let mut cases = Vec::new();
    if let Some(error) = &report.error {
        cases.push(Case {
            name: "run".into(),
            outcome: Some(Outcome {
                element: "error",
                kind: error.kind,
                message: error.message.clone(),
                text: error.message.clone(),
            }),
        });
    } else {
        for e in &report.expectations {
            let outcome = (!e.ok).then(|| {
                let got = e
                    .actual
                    .map_or_else(|| "no data".to_owned(), |a| format!("{a}"));
                let message = format!("expected {}, got {got}", e.name);
                Outcome {
                    element: "failure",
                    kind: "expectation",
                    text: format!("{message} (limit {})", e.limit),
                    message,
                }
            });
            cases.push(Case {
                name: format!("expect: {}", e.name),
                outcome,
            });
        }
        let verdict = (!report.ok).then(|| {
            let first = report.problems.first().cloned().unwrap_or_default();
            let more = report.problems.len().saturating_sub(1);
            let message = match more {
                0 => first,
                n => format!("{first} (and {n} more)"),
            };
            Outcome {
                element: "failure",
                kind: "verdict",
                message,
                text: report.problems.join("\n"),
            }
        });
        cases.push(Case {
            name: "verdict".into(),
            outcome: verdict,
        });
    }
    let count = |kind: &str| {
        cases
            .iter()
            .filter(|c| c.outcome.as_ref().is_some_and(|o| o.element == kind))
            .count()
    };
    let (tests, failures, errors) = (cases.len(), count("failure"), count("error"));
    let suite = escape(&format!("fleet {}", report.fleet));
    let time = format!("{:.3}", report.duration_s);
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuites name=\"fleetsim\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{time}\">"
    );
    let _ = writeln!(
        xml,
        "  <testsuite name=\"{suite}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"0\" time=\"{time}\">"
    );
    let _ = writeln!(
        xml,
        "    <properties>\n      <property name=\"broker\" value=\"{}\"/>\n      <property name=\"seed\" value=\"{}\"/>\n      <property name=\"interrupted\" value=\"{}\"/>\n    </properties>",
        escape(&report.broker),
        report.seed,
        report.interrupted
    );
    let classname = escape(&format!("fleetsim.{}", report.fleet));
    for case in &cases {
        let name = escape(&case.name);
        match &case.outcome {
            None => {
                let _ = writeln!(
                    xml,
                    "    <testcase name=\"{name}\" classname=\"{classname}\" time=\"{time}\"/>"
                );
            }
            Some(o) => {
                let _ = writeln!(
                    xml,
                    "    <testcase name=\"{name}\" classname=\"{classname}\" time=\"{time}\">\n      <{e} message=\"{}\" type=\"{}\">{}</{e}>\n    </testcase>",
                    escape(&o.message),
                    o.kind,
                    escape(&o.text),
                    e = o.element,
                );
            }
        }
    }
    xml.push_str("  </testsuite>\n</testsuites>\n");
    xml
}

/// Text fit for XML 1.0 text and attribute values: markup characters as entities, line breaks
/// kept (as `&#10;`, so attributes keep them too), and characters XML cannot hold at all
/// (control characters, lone surrogates cannot occur in a `str`, U+FFFE/U+FFFF) as `\u{..}`.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' => out.push_str("&#9;"),
            '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{ExpectationResult, RunFailure};

    #[test]
    fn escape_keeps_xml_well_formed() {
        assert_eq!(escape(r#"a<b>&"c"'"#), "a&lt;b&gt;&amp;&quot;c&quot;&apos;");
        assert_eq!(escape("x\u{1b}[2J\ny"), "x\\u{1b}[2J&#10;y");
        assert_eq!(escape("\u{ffff}é"), "\\u{ffff}é");
    }

    #[test]
    fn every_expectation_and_the_verdict_are_testcases_with_actual_vs_limit() {
        let report = Report {
            fleet: "b<e>".into(),
            ok: false,
            problems: vec![
                "expected timed_out == 0, got 3".into(),
                "1 of 2 devices were offline at the end".into(),
            ],
            expectations: vec![
                ExpectationResult {
                    name: "timed_out == 0".into(),
                    ok: false,
                    actual: Some(3.0),
                    limit: 0.0,
                },
                ExpectationResult {
                    name: "latency_p99_ms < 200".into(),
                    ok: true,
                    actual: Some(12.5),
                    limit: 200.0,
                },
            ],
            ..Report::default()
        };
        let xml = junit(&report);
        assert!(
            xml.contains(r#"<testsuites name="fleetsim" tests="3" failures="2" errors="0""#),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<testsuite name="fleet b&lt;e&gt;""#),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<testcase name="expect: timed_out == 0""#),
            "{xml}"
        );
        assert!(
            xml.contains(
                r#"<failure message="expected timed_out == 0, got 3" type="expectation">"#
            ),
            "{xml}"
        );
        assert!(xml.contains(r#"<testcase name="expect: latency_p99_ms &lt; 200" classname="fleetsim.b&lt;e&gt;" time="0.000"/>"#), "{xml}");
        assert!(xml.contains("got 3 (and 1 more)"), "{xml}");
        assert!(
            xml.contains("got 3&#10;1 of 2 devices were offline"),
            "{xml}"
        );
    }

    #[test]
    fn a_run_that_could_not_run_is_an_error() {
        let report = Report {
            ok: false,
            error: Some(RunFailure {
                kind: "broker",
                message: "broker 127.0.0.1:1 unreachable".into(),
            }),
            ..Report::default()
        };
        let xml = junit(&report);
        assert!(
            xml.contains(r#"tests="1" failures="0" errors="1""#),
            "{xml}"
        );
        assert!(xml.contains(r#"<error message="broker 127.0.0.1:1 unreachable" type="broker">broker 127.0.0.1:1 unreachable</error>"#), "{xml}");
    }
}
