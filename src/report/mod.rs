//! The end-of-run report: the numbers (serialised as the `--report` JSON) and their rendering
//! as a table for people. Collecting them is `collector`'s job; this module only holds and shows.

mod file;
mod histogram;
mod junit;
mod merge;
mod render;
mod verdict;
mod words;

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::timeline::{TargetReport, TimelineReport};
use serde::{Deserialize, Serialize};

/// Everything a run measured. Field names are the JSON report's; see docs/report.md.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    pub fleet: String,
    /// `embedded 127.0.0.1:PORT` or the URL given.
    pub broker: String,
    pub seed: u64,
    /// Time from the start signal to the end of the drain, in seconds.
    pub duration_s: f64,
    /// The run's verdict; `problems` says why not, when false.
    pub ok: bool,
    pub problems: Vec<String>,
    pub devices: Devices,
    pub requests: Requests,
    pub load: Load,
    pub responders: Responders,
    pub telemetry: Telemetry,
    pub response_info: ResponseInfo,
    pub refusals: Refusals,
    pub wills: Wills,
    pub faults: Faults,
    /// The fleet's `expect:` entries, each with its outcome (empty without `expect:`).
    pub expectations: Vec<ExpectationResult>,
    /// The run second by second (devices connected, requests and their outcomes, p99).
    pub timeline: TimelineReport,
    /// The requests by request topic, with when each topic's answers began and stopped.
    pub targets: Vec<TargetReport>,
    /// A signal ended the run early: the counts cover only what happened until then.
    pub interrupted: bool,
    /// Which one (`SIGINT`, `SIGTERM`).
    pub signal: Option<crate::interrupt::Signal>,
    /// Why the run could not be carried out (exit codes 2 and 3); the counts are then empty.
    pub error: Option<RunFailure>,
    /// Which shard of the fleet this report covers (`--shard I/N`); null for a whole run.
    pub shard: Option<ShardInfo>,
    /// What `fleetsim merge` adds up, in a shard's report only.
    pub snapshot: Option<Snapshot>,
    /// In a report made by `fleetsim merge`: how many shards it adds up.
    pub merged_shards: Option<u32>,
    /// The narrated steps as a Mermaid sequence diagram, when `--sequence` asked for one; a
    /// file of its own, not part of the JSON.
    #[serde(skip)]
    pub sequence: Option<String>,
}

/// What a report of a failed run says of its fleet.
#[derive(Debug, Clone)]
pub struct FleetFacts {
    pub name: String,
    pub seed: u64,
    pub devices: u64,
}

impl From<&crate::fleet::Fleet> for FleetFacts {
    fn from(fleet: &crate::fleet::Fleet) -> Self {
        Self {
            name: fleet.name.clone(),
            seed: fleet.seed,
            devices: fleet.devices.len() as u64,
        }
    }
}

/// The `error` object of a report of a run that could not be carried out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunFailure {
    /// `invalid` (exit code 2: fleet file, arguments, certificate files, open-files limit),
    /// `broker` (exit code 3: unreachable or refusing), or `system`.
    pub kind: &'static str,
    pub message: String,
}

impl Report {
    /// The report of a run that never got going: `ok` false, the error, and what is known of
    /// the fleet when its file could be read.
    pub fn failed(fleet: Option<FleetFacts>, kind: &'static str, message: String) -> Self {
        let mut report = Self {
            problems: vec![format!("the run could not be carried out ({kind})")],
            error: Some(RunFailure { kind, message }),
            ..Self::default()
        };
        if let Some(fleet) = fleet {
            report.fleet = fleet.name;
            report.seed = fleet.seed;
            report.devices.total = fleet.devices;
        }
        report
    }
}

/// Every fault injected: counts, and the first few with what they did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Faults {
    pub injected: u64,
    pub by_kind: BTreeMap<Cow<'static, str>, u64>,
    pub events: Vec<FaultEvent>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultEvent {
    /// From the start of the run.
    pub at_s: f64,
    pub device: String,
    pub kind: Cow<'static, str>,
    /// What the device did, and what came of it.
    pub effect: String,
    /// A connection fault (its story is told with the Wills too).
    #[serde(skip)]
    pub connection: bool,
}

impl Faults {
    /// How many events are told in full.
    pub const TOLD: usize = 200;

    /// Connection faults are told by the supervisor's outage stories.
    pub fn add_outages(&mut self, wills: &Wills) {
        // Unplanned drops are the effects of other faults (or of the network), not faults.
        for o in wills.outages.iter().filter(|o| o.outcome != "dropped") {
            if o.outcome != "skipped" {
                self.injected += 1;
                *self.by_kind.entry(o.fault.clone()).or_insert(0) += 1;
            }
            if self.events.len() < Self::TOLD {
                self.events.push(FaultEvent {
                    at_s: o.at_s,
                    device: o.device.clone(),
                    kind: o.fault.clone(),
                    effect: o.story.clone(),
                    connection: true,
                });
            }
        }
        self.events.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExpectationResult {
    /// As written: `success_rate >= 0.95`.
    pub name: String,
    pub ok: bool,
    /// None (`null`) when the run had no data for it: then it fails.
    pub actual: Option<f64>,
    pub limit: f64,
}

/// How many devices how fared with Response Information.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResponseInfo {
    /// Devices that asked for it (Request Response Information = 1).
    pub requested: u64,
    /// Of those, devices whose CONNACK carried it.
    pub received: u64,
    /// Of those, devices that used their configured fallback instead.
    pub fallback: u64,
    /// What the first few devices made of it.
    pub devices: Vec<ResponseInfoUse>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseInfoUse {
    pub device: String,
    /// The Response Information received, if any.
    pub received: Option<String>,
    pub fallback: bool,
    /// The Response Topics built from it.
    pub topics: Vec<String>,
}

/// What the broker refused, counted, and the first few told in full.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Refusals {
    pub connect: u64,
    pub subscribe: u64,
    pub publish: u64,
    /// e.g. `"NotAuthorized (0x87)": 3`.
    pub by_reason: BTreeMap<String, u64>,
    pub events: Vec<Refusal>,
}

impl Refusals {
    pub fn total(&self) -> u64 {
        self.connect + self.subscribe + self.publish
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refusal {
    pub device: String,
    /// connect, subscribe or publish.
    pub what: String,
    pub topic: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Devices {
    pub total: u64,
    /// Devices that completed at least one CONNECT/CONNACK.
    pub connected: u64,
    pub by_kind: BTreeMap<String, u64>,
    /// Connections re-established after a drop, planned or not.
    pub reconnects: u64,
    /// Connections that dropped without a fault doing it: the broker closed them, sent
    /// DISCONNECT, took the session over, sent bad data, stopped answering PINGREQ...
    pub unplanned_drops: u64,
    /// Unplanned drops by reason (`broker_closed`, `session_taken_over`, ...).
    pub drops_by_reason: BTreeMap<String, u64>,
    /// Connections a fault ended on purpose.
    pub planned_drops: u64,
    /// Devices not connected when the run ended.
    pub offline_at_end: u64,
    /// Seconds devices spent disconnected after unplanned drops while the run was on, summed
    /// over devices.
    pub disconnected_s: f64,
    /// Answers and Will acks not published because their session's queue was full
    /// (`MAX_QUEUED` unsent publishes).
    pub queue_overflows: u64,
    /// Answers, Will acks and readings not published because they exceed the broker's
    /// Maximum Packet Size (requests that do are `failed`).
    pub unsent_too_large: u64,
    /// Messages from the broker that closed a connection and, redelivered, would have closed
    /// the next one too (an invalid UTF-8 topic, a packet over our Maximum Packet Size...):
    /// acknowledged and let go the second time instead.
    pub poison_dropped: u64,
}

/// Requester-side accounting. `sent == matched + late + timed_out + failed + in_flight` always.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Requests {
    pub sent: u64,
    pub matched: u64,
    /// Answered, but only after the timeout.
    pub late: u64,
    pub timed_out: u64,
    /// Refused by the broker (PUBACK/PUBREC reason >= 0x80).
    pub failed: u64,
    /// Still waiting when the report was taken.
    pub in_flight: u64,
    /// Requests due while their phone was disconnected: not sent, and in none of the above.
    pub skipped_offline: u64,
    /// Requests due while their phone's session already held `MAX_QUEUED` unsent publishes
    /// (the broker acks too slowly for the pace): not sent either.
    pub skipped_backlog: u64,
    /// Answers whose Correlation Data names no request of the phone that got them.
    pub unmatched_responses: u64,
    /// Second and later answers to one request.
    pub duplicate_responses: u64,
    /// Answers to requests from outside the fleet that reached a phone sharing their Response
    /// Topic: somebody else's, so neither matched nor unmatched (see `responders.from_outside`).
    pub others_answers: u64,
    /// Of `matched`: answers a phone without Correlation Data (`correlation_data: false`)
    /// took for its oldest open request that were in truth the answer to another request
    /// (fleetsim's responders say which, in a `fleetsim-request` User Property).
    pub mixed_up: u64,
    /// Matched answers that are a JSON object with an `error` field: the backend answered,
    /// but to say it failed.
    pub error_answers: u64,
    /// Matched answers that fail their phone's `expect_answer:`.
    pub bad_answers: u64,
    pub latency_ms: Latency,
    /// The first answers that were bad, error answers, unmatched or duplicates, as they came
    /// (at most 20 per shard; the counts above have them all).
    pub samples: Vec<AnswerSample>,
}

/// One answer worth seeing, shown as text: what came, where, and why it is here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerSample {
    /// `bad`, `error`, `unmatched`, `duplicate`.
    pub kind: String,
    pub phone: String,
    pub topic: String,
    /// As the narration shows it: quoted text, or hex.
    pub correlation: String,
    /// The first 120 characters (or 60 bytes, in hex).
    pub payload: String,
    /// Seconds since the run started.
    pub at_s: f64,
    pub why: String,
}

impl Requests {
    /// The accounting identity every report must satisfy.
    pub fn adds_up(&self) -> bool {
        self.sent == self.matched + self.late + self.timed_out + self.failed + self.in_flight
    }
}

/// The load the phones asked for and what they sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Load {
    /// Requests a second the phones asked for, added up; null when one keeps a closed loop
    /// (`in_flight`), whose rate is whatever the backend allows.
    pub offered_rps: Option<f64>,
    /// Requests sent a second over the run phase.
    pub achieved_rps: f64,
    /// Seconds of the run phase: from the start signal to the end of the duration (or to an
    /// interrupt).
    pub run_s: f64,
}

/// Round-trip percentiles of matched requests, from an HDR histogram (microsecond precision).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// Responder-side counts (lights and sensors answering requests).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Responders {
    /// Requests received by lights and sensors.
    pub received: u64,
    /// Answers published to a Response Topic.
    pub answered: u64,
    /// Requests applied but not answered because they carried no Response Topic.
    pub without_response_topic: u64,
    /// Requests whose payload the responder did not understand (answered with an error).
    pub rejected: u64,
    /// Answers held back on purpose (`no_answer` faults).
    pub withheld: u64,
    /// Of `received`: requests from clients outside the fleet (told in the narration). Only
    /// a broker that names a message's publisher tells them apart: the embedded one does.
    pub from_outside: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Telemetry {
    pub published: u64,
    /// Readings due while their sensor was disconnected: skipped, not queued.
    pub skipped_offline: u64,
    /// Readings due while their sensor's session queue was full.
    pub skipped_backlog: u64,
}

/// What became of every outage's Will: published, consumed, learned by its device.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Wills {
    /// Outages after which the broker should publish the device's Will.
    pub expected: u64,
    /// Of those, Wills seen published.
    pub published: u64,
    /// Of those, Wills acked on their Response Topic.
    pub consumed: u64,
    /// Published Wills nobody acked within `will_ack_timeout`.
    pub unconsumed: u64,
    /// Wills published when none should have been (see `unexpected_wills`).
    pub unexpected: u64,
    /// Expected Wills never published.
    pub missing: u64,
    /// Outages of devices with a Will after which, rightly, none was published.
    pub suppressed: u64,
    /// Outages whose ack the device itself received once back.
    pub learned_on_reconnect: u64,
    /// From the fault to the Will's publication.
    pub publish_latency_ms: Latency,
    /// From the Will's publication to its first ack.
    pub ack_latency_ms: Latency,
    pub outages: Vec<Outage>,
    pub unexpected_wills: Vec<UnexpectedWill>,
}

/// One outage's story. Times in seconds, `*_at_s` from the start of the run, `*_after_s` from
/// the step before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outage {
    pub device: String,
    /// Which connection of the device the fault ended (1 for the first); its Will's
    /// Correlation Data is `{device}#{incarnation}`.
    pub incarnation: u32,
    pub fault: Cow<'static, str>,
    pub at_s: f64,
    pub will_expected: bool,
    /// consumed, unconsumed, missing, suppressed, unexpected, no_will or skipped.
    pub outcome: Cow<'static, str>,
    pub will_after_s: Option<f64>,
    pub acked_by: Vec<String>,
    pub ack_after_s: Option<f64>,
    pub back_at_s: Option<f64>,
    pub learned_at_s: Option<f64>,
    /// The same, in one line, as printed in the summary.
    pub story: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnexpectedWill {
    pub device: String,
    /// Which connection of the device the Will belonged to (from its Correlation Data).
    pub incarnation: u32,
    pub at_s: f64,
    /// The fault before it, if the Will belonged to a recorded outage (e.g. a flap).
    pub after_fault: Option<Cow<'static, str>>,
}

impl Report {
    /// Request topics whose answers stopped while requests to them went unanswered: never
    /// answered, or last answered before the final tenth of the run (and over a second before
    /// its end), with the time of the last answer.
    pub fn silent_targets(&self) -> Vec<(&TargetReport, Option<f64>)> {
        let cutoff = self.load.run_s * 0.9 - 1.0;
        self.targets
            .iter()
            // Failed requests never reached the topic (refused by the broker, or their
            // Response Topic was): they say nothing of whoever answers there.
            .filter(|t| t.timed_out > 0)
            .filter(|t| t.last_answer_s.is_none_or(|last| last < cutoff))
            .map(|t| (t, t.last_answer_s))
            .collect()
    }

    pub fn to_json(&self) -> String {
        // Serialising plain structs of numbers and strings cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The JSON on one line (`--format json`).
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

pub use file::ReportTarget;
pub use junit::junit;
pub use merge::{ExpectSpec, MergeError, ShardFile, ShardInfo, Snapshot, merge, read_shard};

pub use histogram::DurationHistogram;
pub use render::Table;
