//! The verdict: the value of each metric an expectation can name, and whether the run is ok.

use super::{ExpectationResult, Report};
use crate::fleet::{Expectation, Metric};

/// Up to 4 decimals, as people read rates and milliseconds.
fn round(value: f64) -> f64 {
    (value * 10_000.0).round() / 10_000.0
}

impl Report {
    /// The value an expectation compares, from this report; None when the run has no data
    /// for it (a rate of nothing, a percentile of no matched request): such an expectation
    /// fails, as nothing shows it holds.
    pub fn metric(&self, metric: Metric) -> Option<f64> {
        let (q, w, d) = (&self.requests, &self.wills, &self.devices);
        let rate = |part: u64, whole: u64| (whole > 0).then(|| part as f64 / whole as f64);
        let latency = |ms: f64| (q.matched > 0).then_some(ms);
        let count = |n: u64| Some(n as f64);
        match metric {
            Metric::SuccessRate => rate(q.matched, q.sent),
            Metric::LatencyP50Ms => latency(q.latency_ms.p50),
            Metric::LatencyP90Ms => latency(q.latency_ms.p90),
            Metric::LatencyP99Ms => latency(q.latency_ms.p99),
            Metric::LatencyMaxMs => latency(q.latency_ms.max),
            Metric::Sent => count(q.sent),
            Metric::Matched => count(q.matched),
            Metric::TimedOut => count(q.timed_out),
            Metric::Late => count(q.late),
            Metric::Failed => count(q.failed),
            Metric::Unmatched => count(q.unmatched_responses),
            Metric::Duplicate => count(q.duplicate_responses),
            Metric::MixedUp => count(q.mixed_up),
            Metric::ErrorAnswers => count(q.error_answers),
            Metric::BadAnswers => count(q.bad_answers),
            Metric::WillsConsumedRate => rate(w.consumed, w.expected),
            Metric::WillsUnconsumed => count(w.unconsumed),
            Metric::WillsMissing => count(w.missing),
            Metric::WillsUnexpected => count(w.unexpected),
            Metric::Refusals => count(self.refusals.total()),
            Metric::FaultsInjected => count(self.faults.injected),
            Metric::Reconnects => count(d.reconnects),
            Metric::UnplannedDrops => count(d.unplanned_drops),
            Metric::OfflineAtEnd => count(d.offline_at_end),
            Metric::DisconnectedShare => {
                let device_seconds = d.total as f64 * self.duration_s;
                (device_seconds > 0.0).then(|| (d.disconnected_s / device_seconds).min(1.0))
            }
        }
    }

    /// Sets `ok`, `problems` and `expectations`. With expectations, they decide what they
    /// measure (a run with faults on purpose is judged by what it promised); without, any
    /// timeout, refusal, stray answer or Will gone wrong fails the run. Either way, a device
    /// offline at the end or a connection dropped without a fault doing it fails the run,
    /// unless an expectation on that measure (`offline_at_end`; `unplanned_drops`,
    /// `reconnects` or `disconnected_share`) says what is acceptable. Documented in
    /// docs/report.md.
    pub fn judge(&mut self, expect: &[Expectation]) {
        let mut problems = if expect.is_empty() {
            self.strict_problems()
        } else {
            self.expectation_problems(expect)
        };
        problems.extend(self.connectivity_problems(expect));
        if let Some(signal) = self.signal {
            problems.push(format!(
                "interrupted by {} after {:.1} s: the counts cover only that",
                signal.name(),
                self.duration_s
            ));
        }
        if !self.requests.adds_up() {
            problems.push("request accounting does not add up (a fleetsim bug)".into());
        }
        self.ok = problems.is_empty();
        self.problems = problems;
    }

    fn expectation_problems(&mut self, expect: &[Expectation]) -> Vec<String> {
        self.expectations = expect
            .iter()
            .map(|e| {
                let actual = self.metric(e.metric);
                ExpectationResult {
                    name: format!("{} {} {}", e.metric.as_str(), e.op.as_str(), e.limit),
                    ok: actual.is_some_and(|actual| e.op.holds(actual, e.limit)),
                    actual,
                    limit: e.limit,
                }
            })
            .collect();
        self.expectations
            .iter()
            .filter(|e| !e.ok)
            .map(|e| match e.actual {
                Some(actual) => format!("expected {}, got {}", e.name, round(actual)),
                None => format!("expected {}, got no data", e.name),
            })
            .collect()
    }

    /// The default connectivity checks the fleet's expectations leave in force.
    fn connectivity_problems(&self, expect: &[Expectation]) -> Vec<String> {
        let d = &self.devices;
        let names = |metrics: &[Metric]| expect.iter().any(|e| metrics.contains(&e.metric));
        let mut problems = Vec::new();
        if d.offline_at_end > 0 && !names(&[Metric::OfflineAtEnd]) {
            problems.push(format!(
                "{} of {} devices were offline at the end",
                d.offline_at_end, d.total
            ));
        }
        let drop_metrics = [
            Metric::UnplannedDrops,
            Metric::Reconnects,
            Metric::DisconnectedShare,
        ];
        if d.unplanned_drops > 0 && !names(&drop_metrics) {
            let reasons: Vec<String> = d
                .drops_by_reason
                .iter()
                .map(|(reason, n)| format!("{n} {reason}"))
                .collect();
            problems.push(format!(
                "{} connections dropped without a fault doing it ({}); {:.1} s disconnected",
                d.unplanned_drops,
                reasons.join(", "),
                d.disconnected_s
            ));
        }
        problems
    }

    fn strict_problems(&self) -> Vec<String> {
        let (d, q, w) = (&self.devices, &self.requests, &self.wills);
        let mut problems = Vec::new();
        if d.connected < d.total {
            problems.push(format!(
                "{} of {} devices never connected",
                d.total - d.connected,
                d.total
            ));
        }
        // (count, said of one, said of several)
        let counts = [
            (q.timed_out, "request timed out", "requests timed out"),
            (
                q.late,
                "request was answered only after its timeout",
                "requests were answered only after their timeout",
            ),
            (
                q.failed,
                "request failed (refused by the broker, or its Response Topic was)",
                "requests failed (refused by the broker, or their Response Topic was)",
            ),
            (
                q.in_flight,
                "request was still unanswered at the end",
                "requests were still unanswered at the end",
            ),
            (
                q.skipped_backlog,
                "request was not sent: its phone's queue of unsent publishes was full",
                "requests were not sent: their phone's queue of unsent publishes was full",
            ),
            (
                self.telemetry.skipped_backlog,
                "reading was not sent: its sensor's queue of unsent publishes was full",
                "readings were not sent: their sensor's queue of unsent publishes was full",
            ),
            (
                d.queue_overflows,
                "answer or Will ack was not sent: its session's queue was full",
                "answers or Will acks were not sent: their session's queue was full",
            ),
            (
                d.poison_dropped,
                "message from the broker was let go undelivered: it closed a connection and came again",
                "messages from the broker were let go undelivered: each closed a connection and came again",
            ),
            (
                d.unsent_too_large,
                "answer, Will ack or reading was not sent: larger than the broker's Maximum Packet Size",
                "answers, Will acks or readings were not sent: larger than the broker's Maximum Packet Size",
            ),
            (
                q.unmatched_responses,
                "answer matched no request",
                "answers matched no request",
            ),
            (
                q.duplicate_responses,
                "duplicate answer arrived",
                "duplicate answers arrived",
            ),
            (
                q.mixed_up,
                "answer was taken for the wrong request (phones without Correlation Data)",
                "answers were taken for the wrong request (phones without Correlation Data)",
            ),
            (
                q.error_answers,
                "matched answer carried an error (a JSON object with an `error` field)",
                "matched answers carried an error (a JSON object with an `error` field)",
            ),
            (
                q.bad_answers,
                "matched answer failed expect_answer",
                "matched answers failed expect_answer",
            ),
            (
                w.missing,
                "expected Will was never published",
                "expected Wills were never published",
            ),
            (
                w.unconsumed,
                "published Will was never acked",
                "published Wills were never acked",
            ),
            (
                w.unexpected,
                "Will was published when none should have been",
                "Wills were published when none should have been",
            ),
        ];
        for (count, one, many) in counts {
            if count > 0 {
                problems.push(format!("{count} {}", if count == 1 { one } else { many }));
            }
        }
        let refused = self.refusals.total();
        if refused > 0 {
            problems.push(format!(
                "the broker refused {refused} connects, subscriptions or publishes"
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::Op;
    use crate::report::{
        Devices, Faults, Refusals, Requests, Responders, ResponseInfo, Telemetry, Wills,
    };

    fn report() -> Report {
        Report {
            fleet: "t".into(),
            broker: "b".into(),
            seed: 0,
            duration_s: 10.0,
            ok: false,
            problems: Vec::new(),
            devices: Devices {
                total: 4,
                connected: 4,
                ..Devices::default()
            },
            requests: Requests {
                sent: 10,
                matched: 10,
                ..Requests::default()
            },
            responders: Responders::default(),
            telemetry: Telemetry::default(),
            response_info: ResponseInfo::default(),
            refusals: Refusals::default(),
            wills: Wills::default(),
            faults: Faults::default(),
            ..Report::default()
        }
    }

    fn expect(metric: Metric, op: Op, limit: f64) -> Expectation {
        Expectation { metric, op, limit }
    }

    fn dropped(r: &mut Report) {
        r.devices.unplanned_drops = 2;
        r.devices.drops_by_reason.insert("broker_closed".into(), 2);
        r.devices.disconnected_s = 4.0;
    }

    #[test]
    fn a_clean_run_is_ok() {
        let mut r = report();
        r.judge(&[]);
        assert!(r.ok, "{:?}", r.problems);
    }

    #[test]
    fn unplanned_drops_fail_the_default_verdict_and_name_their_reasons() {
        let mut r = report();
        dropped(&mut r);
        r.judge(&[]);
        assert!(!r.ok);
        assert!(
            r.problems[0].contains("2 connections dropped")
                && r.problems[0].contains("2 broker_closed"),
            "{:?}",
            r.problems
        );
        // Expectations on something else leave the connectivity check in force.
        let mut r = report();
        dropped(&mut r);
        r.judge(&[expect(Metric::SuccessRate, Op::AtLeast, 0.9)]);
        assert!(!r.ok, "{:?}", r.problems);
    }

    #[test]
    fn planned_drops_do_not_fail_the_run() {
        let mut r = report();
        r.devices.planned_drops = 3;
        r.devices.reconnects = 3;
        r.judge(&[]);
        assert!(r.ok, "{:?}", r.problems);
    }

    #[test]
    fn an_expectation_on_drops_replaces_the_default_check() {
        for metric in [Metric::UnplannedDrops, Metric::Reconnects] {
            let mut r = report();
            dropped(&mut r);
            r.judge(&[expect(metric, Op::AtMost, 5.0)]);
            assert!(r.ok, "{metric:?}: {:?}", r.problems);
        }
        let mut r = report();
        dropped(&mut r);
        // 4 s over 4 devices x 10 s is a tenth of the run.
        let share = r.metric(Metric::DisconnectedShare).unwrap();
        assert!((share - 0.1).abs() < 1e-9, "{share}");
        r.judge(&[expect(Metric::DisconnectedShare, Op::Below, 0.05)]);
        assert!(!r.ok);
        assert_eq!(
            r.problems.len(),
            1,
            "only the expectation: {:?}",
            r.problems
        );
    }

    #[test]
    fn rates_and_latencies_with_no_data_fail() {
        let mut r = report();
        r.requests = Requests::default();
        let checks = [
            expect(Metric::LatencyP99Ms, Op::Below, 200.0),
            expect(Metric::SuccessRate, Op::AtLeast, 0.9),
            expect(Metric::WillsConsumedRate, Op::Equal, 1.0),
            expect(Metric::TimedOut, Op::Equal, 0.0),
        ];
        r.judge(&checks);
        assert!(!r.ok);
        let failed: Vec<&str> = r
            .expectations
            .iter()
            .filter(|e| !e.ok)
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(
            failed,
            [
                "latency_p99_ms < 200",
                "success_rate >= 0.9",
                "wills_consumed_rate == 1"
            ]
        );
        assert_eq!(r.expectations[0].actual, None);
        assert_eq!(
            r.expectations[3].actual,
            Some(0.0),
            "a count of nothing is 0"
        );
        assert!(r.problems[0].ends_with("got no data"), "{:?}", r.problems);
    }

    #[test]
    fn devices_offline_at_the_end_fail_unless_expected() {
        let mut r = report();
        r.devices.offline_at_end = 1;
        r.judge(&[]);
        assert!(!r.ok);
        assert!(r.problems[0].contains("1 of 4 devices were offline at the end"));
        let mut r = report();
        r.devices.offline_at_end = 1;
        r.judge(&[expect(Metric::OfflineAtEnd, Op::AtMost, 1.0)]);
        assert!(r.ok, "{:?}", r.problems);
    }
}
