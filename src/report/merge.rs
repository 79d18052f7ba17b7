//! Shards and their merge. A sharded run's report carries a [`Snapshot`]: everything the
//! report is made from, in a form that adds up (counters add, HDR histograms merge exactly,
//! stories concatenate). `fleetsim merge` adds the shards' snapshots and makes the fleet's
//! report from the sum, the same way a single run makes it from its own, so percentiles come
//! from the merged histogram, not an average of the shards'.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{DurationHistogram, Faults, Load, Report, Wills};
use crate::fleet::{Expectation, Metric, Op};
use crate::tally::Tally;
use crate::timeline::TimelineReport;

/// Which shard of a run a report covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// From 1.
    pub index: u32,
    pub count: u32,
    /// `--run-id`, when the shards were started together through the broker.
    pub run_id: Option<String>,
}

/// One `expect:` entry, as a report can carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpectSpec {
    pub metric: String,
    pub op: String,
    pub limit: f64,
}

impl From<&Expectation> for ExpectSpec {
    fn from(e: &Expectation) -> Self {
        Self {
            metric: e.metric.as_str().to_owned(),
            op: e.op.as_str().to_owned(),
            limit: e.limit,
        }
    }
}

impl ExpectSpec {
    fn expectation(&self) -> Option<Expectation> {
        let metric = Metric::ALL
            .into_iter()
            .find(|m| m.as_str() == self.metric)?;
        let op = [Op::AtLeast, Op::AtMost, Op::Above, Op::Below, Op::Equal]
            .into_iter()
            .find(|o| o.as_str() == self.op)?;
        Some(Expectation {
            metric,
            op,
            limit: self.limit,
        })
    }
}

/// What a report is made from, in a form that adds up.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Every shard tally of the process, added up.
    pub tally: Tally,
    pub wills: Wills,
    /// Faults injected into devices (connection faults are added from `wills` when the
    /// report is made).
    pub faults: Faults,
    pub devices: u64,
    pub by_kind: BTreeMap<String, u64>,
    /// Requests a second the phones asked for; None without phones or with a closed loop.
    pub offered_rps: Option<f64>,
    /// A phone keeps a closed loop: the offered rate is whatever the backend allows.
    pub closed_loop: bool,
    pub duration_s: f64,
    pub run_s: f64,
    pub expect: Vec<ExpectSpec>,
    /// The signal that ended the run early, if one did: the counts cover only what ran.
    pub signal: Option<crate::interrupt::Signal>,
}

impl Snapshot {
    /// Adds `other` in.
    pub fn merge(&mut self, other: &Snapshot) {
        self.tally.merge(&other.tally);
        merge_wills(&mut self.wills, &other.wills);
        let (a, b) = (&mut self.faults, &other.faults);
        a.injected += b.injected;
        for (kind, n) in &b.by_kind {
            *a.by_kind.entry(kind.clone()).or_insert(0) += n;
        }
        a.events.extend(b.events.iter().cloned());
        a.events.sort_by(|x, y| x.at_s.total_cmp(&y.at_s));
        a.events.truncate(Faults::TOLD);
        self.devices += other.devices;
        for (kind, n) in &other.by_kind {
            *self.by_kind.entry(kind.clone()).or_insert(0) += n;
        }
        self.offered_rps = match (self.offered_rps, other.offered_rps) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        self.closed_loop |= other.closed_loop;
        self.duration_s = self.duration_s.max(other.duration_s);
        self.run_s = self.run_s.max(other.run_s);
        // A shard stopped early leaves the whole run short: it is said of the merge too.
        self.signal = self.signal.or(other.signal);
    }

    /// The report these counts make: devices, requests with percentiles from the histogram,
    /// load, Wills, faults, timeline, targets, and the verdict on `expect`.
    pub fn report(&self, fleet: &str, broker: &str, seed: u64) -> Report {
        let tally = &self.tally;
        let mut devices = tally.links.clone();
        devices.total = self.devices;
        devices.by_kind = self.by_kind.clone();
        devices.disconnected_s = round(devices.disconnected_s);
        let mut requests = tally.requests.clone();
        requests.latency_ms = tally.latency.latency();
        // Saturating, so a double count (a fleetsim bug) cannot wrap: `adds_up` then fails.
        requests.in_flight = requests.sent.saturating_sub(
            requests.matched + requests.late + requests.timed_out + requests.failed,
        );
        let mut faults = self.faults.clone();
        faults.add_outages(&self.wills);
        let load = Load {
            offered_rps: if self.closed_loop {
                None
            } else {
                self.offered_rps.map(round)
            },
            achieved_rps: if self.run_s > 0.0 {
                round(requests.sent as f64 / self.run_s)
            } else {
                0.0
            },
            run_s: round(self.run_s),
        };
        let mut report = Report {
            fleet: fleet.to_owned(),
            broker: broker.to_owned(),
            seed,
            duration_s: round(self.duration_s),
            devices,
            requests,
            load,
            responders: tally.responders.clone(),
            telemetry: tally.telemetry.clone(),
            response_info: tally.response_info.clone(),
            refusals: tally.refusals.clone(),
            wills: self.wills.clone(),
            faults,
            timeline: TimelineReport::from(&tally.timeline),
            targets: tally.targets.report(),
            interrupted: self.signal.is_some(),
            signal: self.signal,
            ..Report::default()
        };
        let expect: Vec<Expectation> = self
            .expect
            .iter()
            .filter_map(ExpectSpec::expectation)
            .collect();
        report.judge(&expect);
        report
    }
}

/// Wills of two shards together (their latencies: [`will_latencies`]).
fn merge_wills(a: &mut Wills, b: &Wills) {
    a.expected += b.expected;
    a.published += b.published;
    a.consumed += b.consumed;
    a.unconsumed += b.unconsumed;
    a.unexpected += b.unexpected;
    a.missing += b.missing;
    a.suppressed += b.suppressed;
    a.learned_on_reconnect += b.learned_on_reconnect;
    a.outages.extend(b.outages.iter().cloned());
    a.outages.sort_by(|x, y| x.at_s.total_cmp(&y.at_s));
    a.unexpected_wills
        .extend(b.unexpected_wills.iter().cloned());
}

/// The Will latencies of merged shards, once all are in, from their stories: each shard's
/// book measured its own, and the stories hold every one, to the millisecond.
fn will_latencies(a: &mut Wills) {
    let (mut publish, mut ack) = (DurationHistogram::default(), DurationHistogram::default());
    for o in a.outages.iter().filter(|o| o.will_expected) {
        if let Some(s) = o.will_after_s {
            publish.record(Duration::from_secs_f64(s.max(0.0)));
        }
        if let Some(s) = o.ack_after_s {
            ack.record(Duration::from_secs_f64(s.max(0.0)));
        }
    }
    a.publish_latency_ms = publish.latency();
    a.ack_latency_ms = ack.latency();
}

fn round(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// Why shards' reports cannot be merged.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MergeError {
    #[error("{file}: not the report of a shard (run with --shard I/N or --shards N)")]
    NotAShard { file: String },
    #[error(
        "{file}: {what} is {theirs}, but {first} says {ours}: the reports are of different runs"
    )]
    Different {
        file: String,
        first: String,
        what: &'static str,
        ours: String,
        theirs: String,
    },
    #[error("shard {index} of {count} is given twice: {first} and {second}")]
    Duplicate {
        index: u32,
        count: u32,
        first: String,
        second: String,
    },
    #[error("missing shard{} {} of {count}", if missing.len() == 1 { "" } else { "s" }, missing.iter().map(u32::to_string).collect::<Vec<_>>().join(", "))]
    Missing { missing: Vec<u32>, count: u32 },
    #[error("{file}: the shard could not run ({reason}): there is nothing of it to merge")]
    Failed { file: String, reason: String },
    #[error(
        "{file}: shard {index} of {count} is no shard of a run (1 <= index <= count <= {})",
        crate::fleet::MAX_SHARDS
    )]
    OutOfRange {
        file: String,
        index: u32,
        count: u32,
    },
    #[error("{file}: not a report fleetsim wrote: {why}")]
    Unsound { file: String, why: String },
}

/// The largest count a shard's report may hold: far beyond any run, and small enough that
/// 10,000 shards of it still add up within a u64.
const MAX_COUNT: u64 = 1 << 48;

/// Reads a shard's JSON report, refusing one no run could have written: a count too large to
/// be real (adding it up would overflow), a timeline that cannot be merged.
pub fn read_shard(file: &str, text: &str) -> Result<ShardFile, MergeError> {
    let unsound = |why: String| MergeError::Unsound {
        file: file.to_owned(),
        why,
    };
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| unsound(e.to_string()))?;
    if let Some(path) = too_large(&value, String::new()) {
        return Err(unsound(format!("{path} is larger than {MAX_COUNT}")));
    }
    let shard: ShardFile = serde_json::from_value(value).map_err(|e| unsound(e.to_string()))?;
    if let Some(snapshot) = &shard.snapshot {
        let width = snapshot.tally.timeline.width_s;
        if !width.is_power_of_two() {
            return Err(unsound(format!(
                "timeline width_s {width} is not a power of two"
            )));
        }
        let q = &snapshot.tally.requests;
        if q.matched + q.late + q.timed_out + q.failed > q.sent {
            return Err(unsound(format!(
                "more requests ended ({}) than were sent ({})",
                q.matched + q.late + q.timed_out + q.failed,
                q.sent
            )));
        }
    }
    Ok(shard)
}

/// The path of the first number in `value` above [`MAX_COUNT`].
fn too_large(value: &serde_json::Value, path: String) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.as_u64().is_some_and(|n| n > MAX_COUNT) => Some(path),
        Value::Number(n) if n.as_f64().is_some_and(|n| n.abs() > MAX_COUNT as f64) => Some(path),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| too_large(v, format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            let path = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            too_large(v, path)
        }),
        _ => None,
    }
}

/// The fleet's `expect:` as text, to compare shards' by.
fn expect_text(expect: &[ExpectSpec]) -> String {
    let each: Vec<String> = expect
        .iter()
        .map(|e| format!("{} {} {}", e.metric, e.op, e.limit))
        .collect();
    if each.is_empty() {
        "none".into()
    } else {
        each.join(", ")
    }
}

/// What `fleetsim merge` reads of a shard's JSON report.
#[derive(Debug, Clone, Deserialize)]
pub struct ShardFile {
    pub fleet: String,
    pub broker: String,
    pub seed: u64,
    pub error: Option<FileError>,
    pub shard: Option<ShardInfo>,
    pub snapshot: Option<Snapshot>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FileError {
    pub message: String,
}

/// The shards' reports (with the file each came from), checked to be the N shards of one run
/// and added up into the fleet's report.
pub fn merge(reports: &[(String, ShardFile)]) -> Result<Report, MergeError> {
    let mut first: Option<(&str, &ShardFile, &ShardInfo)> = None;
    let mut by_index: BTreeMap<u32, &str> = BTreeMap::new();
    let mut sum: Option<Snapshot> = None;
    for (file, report) in reports {
        if let Some(error) = &report.error {
            return Err(MergeError::Failed {
                file: file.clone(),
                reason: error.message.clone(),
            });
        }
        let (Some(shard), Some(snapshot)) = (&report.shard, &report.snapshot) else {
            return Err(MergeError::NotAShard { file: file.clone() });
        };
        if !(1..=crate::fleet::MAX_SHARDS).contains(&shard.count)
            || !(1..=shard.count).contains(&shard.index)
        {
            return Err(MergeError::OutOfRange {
                file: file.clone(),
                index: shard.index,
                count: shard.count,
            });
        }
        if let Some(spec) = snapshot.expect.iter().find(|e| e.expectation().is_none()) {
            return Err(MergeError::Unsound {
                file: file.clone(),
                why: format!(
                    "unknown expectation `{} {} {}`",
                    spec.metric, spec.op, spec.limit
                ),
            });
        }
        if let Some((first_file, r, s)) = first {
            let differ = |what: &'static str, ours: String, theirs: String| {
                (ours != theirs).then(|| MergeError::Different {
                    file: file.clone(),
                    first: first_file.to_owned(),
                    what,
                    ours,
                    theirs,
                })
            };
            let checks = [
                differ("the fleet", r.fleet.clone(), report.fleet.clone()),
                differ("the seed", r.seed.to_string(), report.seed.to_string()),
                differ(
                    "the shard count",
                    s.count.to_string(),
                    shard.count.to_string(),
                ),
                differ(
                    "the fleet's expect:",
                    expect_text(
                        &r.snapshot
                            .as_ref()
                            .map(|s| s.expect.clone())
                            .unwrap_or_default(),
                    ),
                    expect_text(&snapshot.expect),
                ),
                differ(
                    "the run id",
                    s.run_id.clone().unwrap_or_else(|| "none".into()),
                    shard.run_id.clone().unwrap_or_else(|| "none".into()),
                ),
            ];
            if let Some(e) = checks.into_iter().flatten().next() {
                return Err(e);
            }
        } else {
            first = Some((file, report, shard));
        }
        if let Some(earlier) = by_index.insert(shard.index, file) {
            return Err(MergeError::Duplicate {
                index: shard.index,
                count: shard.count,
                first: earlier.to_owned(),
                second: file.clone(),
            });
        }
        match &mut sum {
            None => sum = Some(snapshot.clone()),
            Some(sum) => sum.merge(snapshot),
        }
    }
    let (Some((_, r, s)), Some(sum)) = (first, sum) else {
        return Err(MergeError::Missing {
            missing: Vec::new(),
            count: 0,
        });
    };
    let missing: Vec<u32> = (1..=s.count)
        .filter(|i| !by_index.contains_key(i))
        .collect();
    if !missing.is_empty() {
        return Err(MergeError::Missing {
            missing,
            count: s.count,
        });
    }
    let mut sum = sum;
    if reports.len() > 1 {
        will_latencies(&mut sum.wills);
    }
    let mut report = sum.report(&r.fleet, &r.broker, r.seed);
    report.merged_shards = Some(s.count);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shard `index` of `count`, with `sent` requests all matched in `ms` milliseconds.
    fn shard(index: u32, count: u32, sent: u64, ms: u64) -> (String, ShardFile) {
        let mut tally = Tally::default();
        tally.requests.sent = sent;
        tally.requests.matched = sent;
        tally.links.connected = 2;
        for _ in 0..sent {
            tally.latency.record(Duration::from_millis(ms));
        }
        let faults = Faults {
            injected: 1,
            by_kind: [("slow".into(), 1)].into(),
            ..Faults::default()
        };
        let snapshot = Snapshot {
            tally,
            faults,
            devices: 2,
            by_kind: [("light".to_owned(), 1), ("phone".to_owned(), 1)].into(),
            offered_rps: Some(1.0),
            duration_s: 10.0 + f64::from(index),
            run_s: 8.0,
            expect: vec![ExpectSpec {
                metric: "latency_p99_ms".into(),
                op: "<".into(),
                limit: 50.0,
            }],
            ..Snapshot::default()
        };
        let file = ShardFile {
            fleet: "big".into(),
            broker: "mqtt://b:1883".into(),
            seed: 7,
            error: None,
            shard: Some(ShardInfo {
                index,
                count,
                run_id: Some("r1".into()),
            }),
            snapshot: Some(snapshot),
        };
        (format!("s{index}.json"), file)
    }

    #[test]
    fn counters_add_histograms_merge_exactly_and_the_fleets_expect_is_judged_on_the_sum() {
        // Shards 1 and 2 are fast, shard 3 slow: its 2 % of the requests sets the p99.
        let files = [shard(1, 3, 98, 2), shard(2, 3, 98, 2), shard(3, 3, 4, 100)];
        let report = merge(&files).expect("three shards of one run");
        assert_eq!(report.devices.total, 6);
        assert_eq!(report.devices.connected, 6);
        assert_eq!(report.devices.by_kind["phone"], 3);
        assert_eq!(report.requests.sent, 200);
        assert_eq!(
            (report.requests.matched, report.requests.in_flight),
            (200, 0)
        );
        assert_eq!(report.faults.injected, 3);
        assert_eq!(report.faults.by_kind["slow"], 3);
        assert_eq!(report.load.offered_rps, Some(3.0));
        assert_eq!(report.load.achieved_rps, 25.0);
        assert_eq!(report.duration_s, 13.0);
        assert_eq!(report.merged_shards, Some(3));
        // The merged histogram's p99 is the slow shard's (~100 ms): an average of the
        // shards' p99s (~35 ms) would pass the expectation.
        assert!(
            report.requests.latency_ms.p99 > 99.0,
            "{:?}",
            report.requests.latency_ms
        );
        assert!(!report.ok);
        assert_eq!(report.expectations[0].name, "latency_p99_ms < 50");
        assert!(!report.expectations[0].ok);
    }

    #[test]
    fn a_shard_stopped_by_a_signal_leaves_the_merged_run_interrupted_and_not_ok() {
        let mut stopped = shard(2, 2, 1, 1);
        if let Some(s) = &mut stopped.1.snapshot {
            s.signal = Some(crate::interrupt::Signal::Term);
        }
        let report = merge(&[shard(1, 2, 1, 1), stopped]).expect("two shards");
        assert!(report.interrupted);
        assert!(!report.ok);
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.starts_with("interrupted by SIGTERM")),
            "{:?}",
            report.problems
        );
    }

    #[test]
    fn impossible_shards_other_expectations_and_unsound_files_are_refused() {
        for (index, count) in [(0, 2), (3, 2), (7, 0)] {
            let e = merge(&[shard(index, count, 1, 1)]).unwrap_err();
            assert!(
                matches!(e, MergeError::OutOfRange { .. }),
                "{index}/{count}: {e}"
            );
        }
        let mut other = shard(2, 2, 1, 1);
        if let Some(s) = &mut other.1.snapshot {
            s.expect[0].limit = 500.0;
        }
        let e = merge(&[shard(1, 2, 1, 1), other]).unwrap_err();
        assert!(
            e.to_string()
                .contains("the fleet's expect: is latency_p99_ms < 500"),
            "{e}"
        );

        // A shard's report as the file holds it (the fields merge reads).
        let text = |f: &ShardFile| {
            serde_json::json!({
                "fleet": f.fleet, "broker": f.broker, "seed": f.seed,
                "error": null, "shard": f.shard, "snapshot": f.snapshot,
            })
        };
        let good = text(&shard(1, 1, 2, 1).1);
        assert!(read_shard("ok.json", &good.to_string()).is_ok());
        let mut huge = good.clone();
        huge["snapshot"]["tally"]["requests"]["sent"] = serde_json::json!(u64::MAX);
        let e = read_shard("huge.json", &huge.to_string()).unwrap_err();
        assert!(
            e.to_string()
                .contains("snapshot.tally.requests.sent is larger than"),
            "{e}"
        );
        let mut flat = good.clone();
        flat["snapshot"]["tally"]["timeline"]["width_s"] = serde_json::json!(0);
        let e = read_shard("flat.json", &flat.to_string()).unwrap_err();
        assert!(
            e.to_string().contains("width_s 0 is not a power of two"),
            "{e}"
        );
        let mut more = good;
        more["snapshot"]["tally"]["requests"]["matched"] = serde_json::json!(3);
        let e = read_shard("more.json", &more.to_string()).unwrap_err();
        assert!(
            e.to_string()
                .contains("more requests ended (3) than were sent (2)"),
            "{e}"
        );
    }

    #[test]
    fn different_runs_and_missing_or_doubled_shards_are_refused() {
        let e = merge(&[shard(1, 3, 1, 1), shard(3, 3, 1, 1)]).unwrap_err();
        assert_eq!(e.to_string(), "missing shard 2 of 3");
        let e = merge(&[shard(1, 2, 1, 1), shard(1, 2, 1, 1)]).unwrap_err();
        assert!(matches!(e, MergeError::Duplicate { index: 1, .. }), "{e}");
        let e = merge(&[shard(1, 2, 1, 1), shard(2, 3, 1, 1)]).unwrap_err();
        assert!(e.to_string().contains("the shard count is 3"), "{e}");
        let mut other_seed = shard(2, 2, 1, 1);
        other_seed.1.seed = 8;
        let e = merge(&[shard(1, 2, 1, 1), other_seed]).unwrap_err();
        assert!(
            e.to_string().contains("the seed is 8, but s1.json says 7"),
            "{e}"
        );
        let mut other_fleet = shard(2, 2, 1, 1);
        other_fleet.1.fleet = "small".into();
        assert!(merge(&[shard(1, 2, 1, 1), other_fleet]).is_err());
        let mut whole = shard(1, 1, 1, 1);
        whole.1.shard = None;
        assert!(matches!(
            merge(&[whole]).unwrap_err(),
            MergeError::NotAShard { .. }
        ));
    }
}
