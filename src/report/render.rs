//! The human summary printed at the end of a run: which rows to show and how they line up.
//! The words of each row, in each language, are `words`'.

use std::fmt;

use super::Report;
use super::words::{self, Row};
use crate::lang::{self, Lang};

/// `Display`s a report as the end-of-run summary table, in a language.
pub struct Table<'a>(pub &'a Report, pub Lang);

impl fmt::Display for Table<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (r, lang) = (self.0, self.1);
        let row = |f: &mut fmt::Formatter<'_>, row: Row, value: String| {
            let label = lang::pad(words::label(lang, row), words::label_columns(lang));
            writeln!(f, "  {label} {value}")
        };
        let mut heading = words::heading(lang, &r.fleet, &r.broker, r.seed);
        if let Some(shard) = &r.shard {
            heading += &words::of_shard(lang, shard.index, shard.count);
        }
        if let Some(n) = r.merged_shards {
            heading += &words::merged(lang, n);
        }
        writeln!(f, "{heading}")?;
        let kinds = counts(&r.devices.by_kind, lang);
        let d = &r.devices;
        let total = d.total;
        row(
            f,
            Row::Devices,
            words::devices(lang, total, &kinds, d.connected, d.reconnects),
        )?;
        let reasons = counts(&d.drops_by_reason, lang);
        row(f, Row::Connections, words::connections(lang, d, &reasons))?;
        let q = &r.requests;
        row(f, Row::Requests, words::requests(lang, q))?;
        if q.sent + q.skipped_offline + q.skipped_backlog > 0 {
            let load = &r.load;
            let text = words::load(lang, load.offered_rps, load.achieved_rps, load.run_s);
            row(f, Row::Load, text)?;
        }
        row(f, Row::Strays, words::strays(lang, q))?;
        if q.others_answers > 0 {
            let text = words::others_answers(lang, q.others_answers);
            row(f, Row::OthersAnswers, text)?;
        }
        if q.bad_answers > 0 {
            row(f, Row::BadAnswers, words::bad_answers(lang, q.bad_answers))?;
        }
        // The first few answers worth seeing, so a stray answer is not only a number.
        const SHOWN: usize = 5;
        for sample in q.samples.iter().take(SHOWN) {
            writeln!(f, "{}", words::sample(lang, sample))?;
        }
        if q.samples.len() > SHOWN {
            writeln!(f, "{}", words::more_samples(lang, q.samples.len() - SHOWN))?;
        }
        if q.matched > 0 {
            let l = q.latency_ms;
            row(
                f,
                Row::RoundTrip,
                format!(
                    "p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
                    l.p50, l.p90, l.p99, l.max
                ),
            )?;
        }
        let silent = r.silent_targets();
        for (target, stopped) in silent.iter().take(SHOWN) {
            row(f, Row::Silent, words::silent(lang, target, *stopped))?;
        }
        if silent.len() > SHOWN {
            writeln!(f, "{}", words::more_silent(lang, silent.len() - SHOWN))?;
        }
        // Rows about devices a fleet does not have (e.g. a backend test with phones only) are
        // left out.
        let s = &r.responders;
        if s.received > 0 {
            row(f, Row::Responders, words::responders(lang, s))?;
        }
        let t = &r.telemetry;
        if t.published + t.skipped_offline + t.skipped_backlog > 0 {
            let text = words::telemetry(lang, t.published, t.skipped_offline, t.skipped_backlog);
            row(f, Row::Telemetry, text)?;
        }
        let ri = &r.response_info;
        if ri.requested > 0 {
            row(f, Row::ResponseInfo, words::response_info(lang, ri))?;
            let width = ri.devices.iter().map(|d| d.device.len()).max().unwrap_or(0);
            for d in &ri.devices {
                let line = words::response_info_device(
                    lang,
                    &d.device,
                    width,
                    d.received.as_deref(),
                    &d.topics.join(", "),
                );
                writeln!(f, "{line}")?;
            }
        }
        let refusals = &r.refusals;
        if refusals.total() > 0 {
            row(f, Row::Refused, words::refused(lang, refusals))?;
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
                let line = words::refusal(lang, &e.device, width, &e.what, &topic, &e.reason);
                writeln!(f, "{line}")?;
            }
        }
        let w = &r.wills;
        if !w.outages.is_empty() || w.unexpected > 0 {
            row(f, Row::Wills, words::wills(lang, w))?;
            let width = w.outages.iter().map(|o| o.device.len()).max().unwrap_or(0);
            for o in &w.outages {
                writeln!(f, "    {:<width$}  {}", o.device, o.story)?;
            }
            for u in &w.unexpected_wills {
                let line = words::unexpected_will(
                    lang,
                    &u.device,
                    width,
                    u.incarnation,
                    u.at_s,
                    u.after_fault.as_deref(),
                );
                writeln!(f, "{line}")?;
            }
        }
        let faults = &r.faults;
        if faults.injected > 0 {
            let kinds = counts(&faults.by_kind, lang);
            row(f, Row::Faults, words::faults(lang, faults.injected, &kinds))?;
            // Connection faults are told above, as Will stories; these are the others.
            const FAULTS_SHOWN: usize = 10;
            let per_message: Vec<_> = faults.events.iter().filter(|e| !e.connection).collect();
            for e in per_message.iter().take(FAULTS_SHOWN) {
                writeln!(
                    f,
                    "    @{:<5.1} {}  {}: {}",
                    e.at_s, e.device, e.kind, e.effect
                )?;
            }
            if per_message.len() > FAULTS_SHOWN {
                let more = per_message.len() - FAULTS_SHOWN;
                writeln!(f, "{}", words::more_faults(lang, more))?;
            }
        }
        for e in &r.expectations {
            row(
                f,
                Row::Expect,
                words::expectation(lang, e.ok, &e.name, e.actual),
            )?;
        }
        row(f, Row::Verdict, words::verdict(lang, r.ok, r.duration_s))?;
        for problem in &r.problems {
            writeln!(f, "  - {problem}")?;
        }
        Ok(())
    }
}

/// "2 phone, 1 light" from counts by name (names are the report's own, in every language).
fn counts<'a, K: fmt::Display + 'a, N: fmt::Display + 'a>(
    by: impl IntoIterator<Item = (&'a K, &'a N)>,
    lang: Lang,
) -> String {
    let parts: Vec<String> = by
        .into_iter()
        .map(|(name, n)| format!("{n} {name}"))
        .collect();
    parts.join(lang.pick(", ", "、"))
}
