//! The report of a finished run: the shards' tallies added up, the supervisor's outage stories,
//! the fault stories, the load asked for and achieved, and the verdict.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::fleet::{Fleet, Role};
use crate::interrupt::Signal;
use crate::report::{Faults, Load, Report, Wills};
use crate::tally::Tally;
use crate::timeline::TimelineReport;

#[allow(clippy::too_many_arguments)]
pub(super) fn assemble(
    fleet: &Fleet,
    tallies: impl Iterator<Item = Tally>,
    wills: Wills,
    mut faults: Faults,
    broker: String,
    duration: Duration,
    ran: Duration,
    signal: Option<Signal>,
) -> Report {
    let mut tally = Tally::default();
    for shard in tallies {
        tally.merge(&shard);
    }
    let mut by_kind = BTreeMap::new();
    for device in &fleet.devices {
        *by_kind
            .entry(device.kind().as_str().to_owned())
            .or_insert(0) += 1;
    }
    let mut devices = tally.links;
    devices.total = fleet.devices.len() as u64;
    devices.by_kind = by_kind;
    devices.disconnected_s = (devices.disconnected_s * 1000.0).round() / 1000.0;
    let mut requests = tally.requests;
    requests.latency_ms = tally.latency.latency();
    // Saturating, so a double count (a fleetsim bug) cannot wrap: `adds_up` then fails.
    requests.in_flight = requests
        .sent
        .saturating_sub(requests.matched + requests.late + requests.timed_out + requests.failed);
    faults.add_outages(&wills);
    let run_s = ran.as_secs_f64();
    let load = Load {
        offered_rps: offered_rate(fleet).map(round),
        achieved_rps: if run_s > 0.0 {
            round(requests.sent as f64 / run_s)
        } else {
            0.0
        },
        run_s: round(run_s),
    };
    let mut report = Report {
        fleet: fleet.name.clone(),
        broker,
        seed: fleet.seed,
        duration_s: (duration.as_secs_f64() * 1000.0).round() / 1000.0,
        devices,
        requests,
        load,
        responders: tally.responders,
        telemetry: tally.telemetry,
        response_info: tally.response_info,
        refusals: tally.refusals,
        wills,
        faults,
        timeline: TimelineReport::from(&tally.timeline),
        targets: tally.targets.report(),
        interrupted: signal.is_some(),
        signal,
        ..Report::default()
    };
    report.judge(&fleet.expect);
    report
}

/// Requests a second the phones ask for, added up; None when a phone keeps a closed loop
/// (its rate is whatever the backend allows) or there are no phones.
fn offered_rate(fleet: &Fleet) -> Option<f64> {
    let mut total = None;
    for device in &fleet.devices {
        if let Role::Phone(phone) = &device.role {
            let rate = phone.pace.offered_rate()?;
            *total.get_or_insert(0.0) += rate;
        }
    }
    total
}

fn round(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}
