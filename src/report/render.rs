//! The human summary printed at the end of a run.

use std::fmt;

use super::Report;

/// `Display`s a report as the end-of-run summary table.
pub struct Table<'a>(pub &'a Report);

impl fmt::Display for Table<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        let verdict = if r.ok { "OK" } else { "NOT OK" };
        writeln!(f, "fleet {}  on {}  seed {}", r.fleet, r.broker, r.seed)?;
        let kinds: Vec<String> = r
            .devices
            .by_kind
            .iter()
            .map(|(kind, n)| format!("{n} {kind}"))
            .collect();
        row(
            f,
            "devices",
            format!(
                "{} ({}), {} connected, {} reconnects",
                r.devices.total,
                kinds.join(", "),
                r.devices.connected,
                r.devices.reconnects
            ),
        )?;
        let d = &r.devices;
        let reasons: Vec<String> = d
            .drops_by_reason
            .iter()
            .map(|(reason, n)| format!("{n} {reason}"))
            .collect();
        let reasons = if reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", reasons.join(", "))
        };
        row(
            f,
            "connections",
            format!(
                "{} unplanned drops{reasons}, {} planned; {:.1} s disconnected; {} offline at the end",
                d.unplanned_drops, d.planned_drops, d.disconnected_s, d.offline_at_end
            ),
        )?;
        let q = &r.requests;
        row(
            f,
            "requests",
            format!(
                "{} sent: {} matched, {} late, {} timed out, {} failed, {} in flight{}",
                q.sent,
                q.matched,
                q.late,
                q.timed_out,
                q.failed,
                q.in_flight,
                skipped(q.skipped_offline, q.skipped_backlog)
            ),
        )?;
        if q.sent + q.skipped_offline + q.skipped_backlog > 0 {
            let offered = match r.load.offered_rps {
                Some(rate) => format!("{rate:.1}/s asked for"),
                None => "a closed loop".to_owned(),
            };
            row(
                f,
                "load",
                format!(
                    "{offered}, {:.1}/s sent over {:.1}s",
                    r.load.achieved_rps, r.load.run_s
                ),
            )?;
        }
        row(
            f,
            "stray answers",
            format!(
                "{} unmatched, {} duplicate; {} matched answers carried an error{}",
                q.unmatched_responses,
                q.duplicate_responses,
                q.error_answers,
                if q.mixed_up > 0 {
                    format!("; {} taken for the wrong request", q.mixed_up)
                } else {
                    String::new()
                },
            ),
        )?;
        if q.others_answers > 0 {
            row(
                f,
                "others' answers",
                format!(
                    "{} answers to requests from outside the fleet, on a shared Response Topic (not counted against the run)",
                    q.others_answers
                ),
            )?;
        }
        if q.bad_answers > 0 {
            row(
                f,
                "bad answers",
                format!("{} matched answers failed expect_answer", q.bad_answers),
            )?;
        }
        // The first few answers worth seeing, so a stray answer is not only a number.
        const SHOWN: usize = 5;
        for sample in q.samples.iter().take(SHOWN) {
            writeln!(
                f,
                "    {} {} @{:.1}s: {} on {}, Correlation Data {}: {}",
                sample.phone,
                sample.kind,
                sample.at_s,
                sample.payload,
                sample.topic,
                sample.correlation,
                sample.why,
            )?;
        }
        if q.samples.len() > SHOWN {
            writeln!(
                f,
                "    ... {} more samples in the JSON report",
                q.samples.len() - SHOWN
            )?;
        }
        if q.matched > 0 {
            let l = q.latency_ms;
            row(
                f,
                "round trip ms",
                format!(
                    "p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
                    l.p50, l.p90, l.p99, l.max
                ),
            )?;
        }
        let silent = r.silent_targets();
        for (target, stopped) in silent.iter().take(SHOWN) {
            let when = match stopped {
                Some(s) => format!("answered until {s:.1}s"),
                None => "never answered".to_owned(),
            };
            row(
                f,
                "went silent",
                format!(
                    "{}: {when}, then {} timed out, {} failed of {} sent",
                    target.topic, target.timed_out, target.failed, target.sent
                ),
            )?;
        }
        if silent.len() > SHOWN {
            writeln!(
                f,
                "    ... {} more silent topics in the JSON report (targets)",
                silent.len() - SHOWN
            )?;
        }
        // Rows about devices a fleet does not have (e.g. a backend test with phones only) are
        // left out.
        let s = &r.responders;
        if s.received > 0 {
            row(
                f,
                "responders",
                format!(
                    "{} requests received, {} answered, {} without Response Topic, {} rejected, {} withheld{}",
                    s.received,
                    s.answered,
                    s.without_response_topic,
                    s.rejected,
                    s.withheld,
                    if s.from_outside > 0 {
                        format!("; {} from outside the fleet", s.from_outside)
                    } else {
                        String::new()
                    }
                ),
            )?;
        }
        let t = &r.telemetry;
        if t.published + t.skipped_offline + t.skipped_backlog > 0 {
            row(
                f,
                "telemetry",
                format!(
                    "{} readings published{}",
                    t.published,
                    skipped(t.skipped_offline, t.skipped_backlog)
                ),
            )?;
        }
        let ri = &r.response_info;
        if ri.requested > 0 {
            row(
                f,
                "response info",
                format!(
                    "{} asked for it: {} got it in CONNACK, {} used their fallback",
                    ri.requested, ri.received, ri.fallback
                ),
            )?;
            let width = ri.devices.iter().map(|d| d.device.len()).max().unwrap_or(0);
            for d in &ri.devices {
                let how = match &d.received {
                    Some(value) => format!("the broker answered {value:?}"),
                    None => "the broker answered nothing, so the fallback".to_owned(),
                };
                writeln!(
                    f,
                    "    {:<width$}  asked for Response Information: {how}; Response Topic {}",
                    d.device,
                    d.topics.join(", ")
                )?;
            }
        }
        let refusals = &r.refusals;
        if refusals.total() > 0 {
            row(
                f,
                "refused",
                format!(
                    "{} connects, {} subscriptions, {} publishes",
                    refusals.connect, refusals.subscribe, refusals.publish
                ),
            )?;
            let width = refusals
                .events
                .iter()
                .map(|e| e.device.len())
                .max()
                .unwrap_or(0);
            for e in &refusals.events {
                let topic = e
                    .topic
                    .as_deref()
                    .map(|t| format!(" {t}"))
                    .unwrap_or_default();
                writeln!(
                    f,
                    "    {:<width$}  the broker refused its {}{topic}: {}",
                    e.device, e.what, e.reason
                )?;
            }
        }
        let w = &r.wills;
        if !w.outages.is_empty() || w.unexpected > 0 {
            row(
                f,
                "wills",
                format!(
                    "{} expected: {} published, {} consumed, {} unconsumed, {} missing; \
                     {} unexpected, {} suppressed, {} learned on reconnect",
                    w.expected,
                    w.published,
                    w.consumed,
                    w.unconsumed,
                    w.missing,
                    w.unexpected,
                    w.suppressed,
                    w.learned_on_reconnect
                ),
            )?;
            let width = w.outages.iter().map(|o| o.device.len()).max().unwrap_or(0);
            for o in &w.outages {
                writeln!(f, "    {:<width$}  {}", o.device, o.story)?;
            }
            for u in &w.unexpected_wills {
                let after = u
                    .after_fault
                    .as_ref()
                    .map(|k| format!(" after {k}"))
                    .unwrap_or_default();
                writeln!(
                    f,
                    "    {:<width$}  unexpected Will of connection {} @{:.1}s{after}",
                    u.device, u.incarnation, u.at_s
                )?;
            }
        }
        let faults = &r.faults;
        if faults.injected > 0 {
            let kinds: Vec<String> = faults
                .by_kind
                .iter()
                .map(|(kind, n)| format!("{n} {kind}"))
                .collect();
            row(
                f,
                "faults",
                format!("{} injected: {}", faults.injected, kinds.join(", ")),
            )?;
            // Connection faults are told above, as Will stories; these are the others.
            let per_message = faults.events.iter().filter(|e| !e.connection);
            for e in per_message.take(10) {
                writeln!(
                    f,
                    "    @{:<5.1} {}  {}: {}",
                    e.at_s, e.device, e.kind, e.effect
                )?;
            }
        }
        for e in &r.expectations {
            let mark = if e.ok { "ok  " } else { "FAIL" };
            let actual = match e.actual {
                Some(actual) => format!("actual {}", (actual * 10_000.0).round() / 10_000.0),
                None => "no data".to_owned(),
            };
            row(f, "expect", format!("{mark} {} ({actual})", e.name))?;
        }
        row(
            f,
            "verdict",
            format!("{verdict} after {:.1}s", r.duration_s),
        )?;
        for problem in &r.problems {
            writeln!(f, "  - {problem}")?;
        }
        Ok(())
    }
}

/// `; not sent: 3 while offline, 1 with the queue full`, or nothing when nothing was skipped.
fn skipped(offline: u64, backlog: u64) -> String {
    let mut parts = Vec::new();
    if offline > 0 {
        parts.push(format!("{offline} while offline"));
    }
    if backlog > 0 {
        parts.push(format!("{backlog} with the queue full"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("; not sent: {}", parts.join(", "))
    }
}

fn row(f: &mut fmt::Formatter<'_>, label: &str, value: String) -> fmt::Result {
    writeln!(f, "  {label:<14} {value}")
}
