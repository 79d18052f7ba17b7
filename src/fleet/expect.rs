//! `expect:`, what a run must achieve: metric name -> `"OP NUMBER"`, each checked against what
//! the metric can be (a rate from 0 to 1, a whole count, milliseconds).

use serde_saphyr::Spanned;

use super::model::{Expectation, Metric, Op};
use super::raw::{RawExpect, RawLimit};
use super::values::Problems;

/// Longest operators first, so `>=` is not read as `>` followed by `=`.
const OPS: [(&str, Op); 5] = [
    (">=", Op::AtLeast),
    ("<=", Op::AtMost),
    ("==", Op::Equal),
    (">", Op::Above),
    ("<", Op::Below),
];

/// What values a metric takes, which bounds a sensible limit.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Measure {
    Rate,
    Count,
    Millis,
}

fn measure(metric: Metric) -> Measure {
    match metric {
        Metric::SuccessRate | Metric::WillsConsumedRate | Metric::DisconnectedShare => {
            Measure::Rate
        }
        Metric::LatencyP50Ms
        | Metric::LatencyP90Ms
        | Metric::LatencyP99Ms
        | Metric::LatencyMaxMs => Measure::Millis,
        Metric::Sent
        | Metric::Matched
        | Metric::TimedOut
        | Metric::Late
        | Metric::Failed
        | Metric::Unmatched
        | Metric::Duplicate
        | Metric::MixedUp
        | Metric::ErrorAnswers
        | Metric::BadAnswers
        | Metric::WillsUnconsumed
        | Metric::WillsMissing
        | Metric::WillsUnexpected
        | Metric::Refusals
        | Metric::FaultsInjected
        | Metric::Reconnects
        | Metric::UnplannedDrops
        | Metric::OfflineAtEnd => Measure::Count,
    }
}

/// Check every entry; the list (in file order) is only meaningful when no problem was recorded.
pub(super) fn check_expect(
    problems: &mut Problems,
    raw: Option<&Spanned<RawExpect>>,
) -> Vec<Expectation> {
    let Some(raw) = raw else {
        return Vec::new();
    };
    let mut expect = Vec::with_capacity(raw.value.0.len());
    for (name, limit) in &raw.value.0 {
        let field = format!("expect.{}", name.value);
        let metric = Metric::ALL.into_iter().find(|m| m.as_str() == name.value);
        if metric.is_none() {
            let names: Vec<&str> = Metric::ALL.iter().map(|m| m.as_str()).collect();
            problems.at(
                name.referenced,
                &field,
                format!(
                    "unknown metric `{}`; expected one of {}",
                    name.value,
                    names.join(", ")
                ),
            );
        }
        let parsed = match &limit.value {
            RawLimit::Text(text) => parse_limit(text)
                .ok_or_else(|| format!(r#"expected "OP NUMBER" like ">= 0.95", got "{text}""#)),
            RawLimit::Number(n) => {
                let op = match metric.map(measure) {
                    Some(Measure::Rate) => ">=",
                    _ => "<=",
                };
                Err(format!(
                    r#"expected "OP NUMBER" like ">= 0.95", got {n}: write it as "== {n}" or "{op} {n}""#
                ))
            }
        };
        let (op, value) = match parsed {
            Ok(parsed) => parsed,
            Err(message) => {
                problems.at(limit.referenced, &field, message);
                continue;
            }
        };
        let Some(metric) = metric else {
            continue;
        };
        if let Err(message) = check_range(metric, value) {
            problems.at(limit.referenced, &field, message);
            continue;
        }
        expect.push(Expectation {
            metric,
            op,
            limit: value,
        });
    }
    expect
}

/// `">= 0.95"`, `"<250"`, `"== 0"`: an operator, then a finite number.
fn parse_limit(text: &str) -> Option<(Op, f64)> {
    let text = text.trim();
    let (op, rest) = OPS
        .iter()
        .find_map(|&(symbol, op)| text.strip_prefix(symbol).map(|rest| (op, rest)))?;
    // Rust's float syntax also takes `inf` and `NaN`, which no measure can be compared with.
    rest.trim()
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite())
        .map(|n| (op, n))
}

fn check_range(metric: Metric, limit: f64) -> Result<(), String> {
    let name = metric.as_str();
    match measure(metric) {
        Measure::Rate if !(0.0..=1.0).contains(&limit) => Err(format!(
            "{name} is a rate: the limit must be from 0 to 1, got {limit}"
        )),
        Measure::Count if limit < 0.0 || limit.fract() != 0.0 => Err(format!(
            "{name} is a count: the limit must be a whole number >= 0, got {limit}"
        )),
        Measure::Millis if limit < 0.0 => Err(format!(
            "{name} is in milliseconds: the limit must be >= 0, got {limit}"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_take_every_operator_with_or_without_spaces() {
        assert_eq!(parse_limit(">= 0.95"), Some((Op::AtLeast, 0.95)));
        assert_eq!(parse_limit(">=0.95"), Some((Op::AtLeast, 0.95)));
        assert_eq!(parse_limit(" <= 3 "), Some((Op::AtMost, 3.0)));
        assert_eq!(parse_limit("> 1e2"), Some((Op::Above, 100.0)));
        assert_eq!(parse_limit("<250"), Some((Op::Below, 250.0)));
        assert_eq!(parse_limit("== -1"), Some((Op::Equal, -1.0)));
        for bad in [
            "95%", "0.95", "=> 1", "= 1", ">== 1", ">=", "< inf", "== NaN", "", "!= 1",
        ] {
            assert_eq!(parse_limit(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_metric_has_a_measure_that_bounds_its_limit() {
        assert!(check_range(Metric::SuccessRate, 1.0).is_ok());
        assert!(check_range(Metric::WillsConsumedRate, 1.01).is_err());
        assert!(check_range(Metric::TimedOut, 0.0).is_ok());
        assert!(check_range(Metric::Refusals, 2.5).is_err());
        assert!(check_range(Metric::FaultsInjected, -1.0).is_err());
        assert!(check_range(Metric::LatencyP99Ms, 12.5).is_ok());
        assert!(check_range(Metric::LatencyMaxMs, -0.5).is_err());
    }
}
