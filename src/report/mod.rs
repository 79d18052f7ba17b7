//! The end-of-run report: the numbers (serialised as the `--report` JSON) and their rendering
//! as a table for people. Collecting them is `collector`'s job; this module only holds and shows.

mod render;

use std::collections::BTreeMap;

use serde::Serialize;

/// Everything a run measured. Field names are the JSON report's; see docs/report.md.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
    pub responders: Responders,
    pub telemetry: Telemetry,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Devices {
    pub total: u64,
    /// Devices that completed at least one CONNECT/CONNACK.
    pub connected: u64,
    pub by_kind: BTreeMap<&'static str, u64>,
    /// Connections re-established after an unexpected drop.
    pub reconnects: u64,
}

/// Requester-side accounting. `sent == matched + timed_out + failed + in_flight` always.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Requests {
    pub sent: u64,
    pub matched: u64,
    pub timed_out: u64,
    /// Refused by the broker (PUBACK/PUBREC reason >= 0x80).
    pub failed: u64,
    /// Still waiting when the report was taken.
    pub in_flight: u64,
    /// Answers whose Correlation Data names no request of the phone that got them.
    pub unmatched_responses: u64,
    /// Second and later answers to one request.
    pub duplicate_responses: u64,
    /// Answers to requests that had already timed out or failed (the request stays counted there).
    pub late_responses: u64,
    pub latency_ms: Latency,
}

impl Requests {
    /// The accounting identity every report must satisfy.
    pub fn adds_up(&self) -> bool {
        self.sent == self.matched + self.timed_out + self.failed + self.in_flight
    }
}

/// Round-trip percentiles of matched requests, from an HDR histogram (microsecond precision).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// Responder-side counts (lights and sensors answering requests).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Responders {
    /// Requests received by lights and sensors.
    pub received: u64,
    /// Answers published to a Response Topic.
    pub answered: u64,
    /// Requests applied but not answered because they carried no Response Topic.
    pub without_response_topic: u64,
    /// Requests whose payload the responder did not understand (answered with an error).
    pub rejected: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Telemetry {
    pub published: u64,
}

impl Report {
    pub fn to_json(&self) -> String {
        // Serialising plain structs of numbers and strings cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

pub use render::Table;
