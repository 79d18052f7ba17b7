//! The report of a finished run: the shards' tallies added up, the supervisor's outage stories,
//! the fault stories, the load asked for and achieved, and the verdict.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::fleet::{Fleet, Role};
use crate::interrupt::Signal;
use crate::report::{ExpectSpec, Faults, Report, ShardInfo, Snapshot, Wills};
use crate::tally::Tally;

#[allow(clippy::too_many_arguments)]
pub(super) fn assemble(
    fleet: &Fleet,
    tallies: impl Iterator<Item = Tally>,
    wills: Wills,
    faults: Faults,
    broker: String,
    duration: Duration,
    ran: Duration,
    signal: Option<Signal>,
    run_id: Option<String>,
) -> Report {
    let mut tally = Tally::default();
    for shard in tallies {
        tally.merge(&shard);
    }
    let mut by_kind = BTreeMap::new();
    for i in fleet.shard_devices() {
        *by_kind
            .entry(fleet.devices[i].kind().as_str().to_owned())
            .or_insert(0) += 1;
    }
    let (offered_rps, closed_loop) = offered_rate(fleet);
    let snapshot = Snapshot {
        tally,
        wills,
        faults,
        devices: fleet.shard_len() as u64,
        by_kind,
        offered_rps,
        closed_loop,
        duration_s: duration.as_secs_f64(),
        run_s: ran.as_secs_f64(),
        expect: fleet.expect.iter().map(ExpectSpec::from).collect(),
        signal,
    };
    let mut report = snapshot.report(&fleet.name, &broker, fleet.seed);
    if !fleet.shard.is_whole() {
        report.shard = Some(ShardInfo {
            index: fleet.shard.index + 1,
            count: fleet.shard.count,
            run_id,
        });
        report.snapshot = Some(snapshot);
    }
    report
}

/// Requests a second this shard's phones ask for, added up (None without phones), and whether
/// one keeps a closed loop (then the rate is whatever the backend allows).
///
/// A phone told to stop after `requests: N` asks for no more than N over the run.
fn offered_rate(fleet: &Fleet) -> (Option<f64>, bool) {
    let run_s = fleet.duration.as_secs_f64().max(f64::MIN_POSITIVE);
    let mut total = None;
    for i in fleet.shard_devices() {
        if let Role::Phone(phone) = &fleet.devices[i].role {
            match phone.pace.offered_rate() {
                Some(rate) => {
                    let capped = phone
                        .max_requests
                        .map_or(rate, |max| rate.min(max as f64 / run_s));
                    *total.get_or_insert(0.0) += capped;
                }
                None => return (None, true),
            }
        }
    }
    (total, false)
}
