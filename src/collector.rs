//! The collector actor: the one place device events are counted. The runner asks it for
//! progress while the run goes on and for the final [`Report`] at the end.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, Context, Handler, Message, MessageResult};
use bytes::Bytes;

use crate::events::{DeviceEvent, Event, Outcome, Refused, Skip};
use crate::fleet::Fleet;
use crate::report::{
    Devices, DurationHistogram, FaultEvent, Faults, Refusal, Refusals, Report, Requests,
    Responders, ResponseInfo, ResponseInfoUse, Telemetry, Wills,
};
use crate::supervisor::RunStarted;
use crate::trace::ExchangeTrace;

pub struct Collector {
    fleet: Arc<Fleet>,
    connected: Vec<bool>,
    ready: u64,
    connect_failures: Vec<(String, String)>,
    /// Connection counts; `total`, `connected` and `by_kind` are filled in by the report.
    links: Devices,
    disconnected: Duration,
    requests: Requests,
    latency: DurationHistogram,
    responders: Responders,
    telemetry: Telemetry,
    response_info: ResponseInfo,
    refusals: Refusals,
    faults: Faults,
    /// Fault events waiting for the outcome of their request, by Correlation Data (one
    /// request may carry several faults: a spoiled request to a misbehaving responder).
    fault_effects: HashMap<Bytes, Vec<usize>>,
    started: Instant,
    trace: ExchangeTrace,
}

/// How many refusals and Response Information uses the report tells in full.
const TOLD_IN_FULL: usize = 20;

impl Collector {
    /// `show_exchanges`: how many request/response exchanges to print step by step as they
    /// complete (0: none).
    pub fn new(fleet: Arc<Fleet>, show_exchanges: usize) -> Self {
        let devices = fleet.devices.len();
        Self {
            fleet,
            connected: vec![false; devices],
            ready: 0,
            connect_failures: Vec::new(),
            links: Devices::default(),
            disconnected: Duration::ZERO,
            requests: Requests::default(),
            latency: DurationHistogram::default(),
            responders: Responders::default(),
            telemetry: Telemetry::default(),
            response_info: ResponseInfo::default(),
            refusals: Refusals::default(),
            faults: Faults::default(),
            fault_effects: HashMap::new(),
            started: Instant::now(),
            trace: ExchangeTrace::new(show_exchanges),
        }
    }

    fn device_id(&self, device: u32) -> &str {
        self.fleet
            .devices
            .get(device as usize)
            .map_or("?", |d| d.id.as_str())
    }

    fn in_flight(&self) -> u64 {
        let q = &self.requests;
        // Saturating, so a double count (a fleetsim bug) cannot wrap: `adds_up` then fails.
        q.sent
            .saturating_sub(q.matched + q.late + q.timed_out + q.failed)
    }

    fn record(&mut self, device: u32, event: Event) {
        match event {
            Event::Connected { back, .. } => {
                if let Some(seen) = self.connected.get_mut(device as usize) {
                    *seen = true;
                }
                if let Some(back) = back {
                    self.links.reconnects += 1;
                    self.disconnected += back.unplanned;
                }
            }
            Event::Ready => self.ready += 1,
            Event::ConnectFailed { reason } => {
                let id = self.device_id(device).to_owned();
                self.connect_failures.push((id, reason));
            }
            Event::Dropped { reason, planned } => {
                let links = &mut self.links;
                if planned {
                    links.planned_drops += 1;
                } else {
                    links.unplanned_drops += 1;
                    *links.drops_by_reason.entry(reason.key()).or_insert(0) += 1;
                }
            }
            Event::OfflineAtEnd(outage) => {
                self.links.offline_at_end += 1;
                self.disconnected += outage.unplanned;
            }
            Event::RequestSent(exchange) => {
                self.requests.sent += 1;
                let id = self.device_id(device).to_owned();
                self.trace.request(&id, exchange);
            }
            Event::RequestDone {
                correlation,
                outcome,
            } => {
                self.fault_effect(&correlation, || match &outcome {
                    Outcome::Matched { latency, .. } => {
                        format!("answered in {:.1} ms", latency.as_secs_f64() * 1000.0)
                    }
                    Outcome::TimedOut { after } => {
                        format!("no answer: timed out after {:.1}s", after.as_secs_f64())
                    }
                    Outcome::Late { latency } => {
                        format!("answered late, {:.2}s after sending", latency.as_secs_f64())
                    }
                    Outcome::Failed { reason } => format!("failed: {reason}"),
                });
                match &outcome {
                    Outcome::Matched { latency, payload } => {
                        self.requests.matched += 1;
                        self.latency.record(*latency);
                        if is_error_answer(payload) {
                            self.requests.error_answers += 1;
                        }
                    }
                    Outcome::TimedOut { .. } => self.requests.timed_out += 1,
                    Outcome::Late { .. } => self.requests.late += 1,
                    Outcome::Failed { .. } => self.requests.failed += 1,
                }
                self.trace.done(&correlation, &outcome);
            }
            Event::UnmatchedResponse { .. } => self.requests.unmatched_responses += 1,
            Event::DuplicateResponse { correlation } => {
                self.requests.duplicate_responses += 1;
                self.fault_effect(&correlation, || "then a duplicate answer".into());
            }
            Event::LateAnswer {
                correlation,
                latency,
            } => {
                self.fault_effect(&correlation, || {
                    format!(
                        "then answered late, {:.2}s after sending",
                        latency.as_secs_f64()
                    )
                });
                // The request was counted timed out; it ends as late instead.
                self.requests.timed_out = self.requests.timed_out.saturating_sub(1);
                self.requests.late += 1;
            }
            Event::Handled(handled) => {
                self.responders.received += 1;
                if handled.rejected {
                    self.responders.rejected += 1;
                }
                if handled.answer.is_some() {
                    self.responders.answered += 1;
                } else if handled.withheld {
                    self.responders.withheld += 1;
                } else {
                    self.responders.without_response_topic += 1;
                }
                let id = self.device_id(device).to_owned();
                self.trace.handled(&id, handled);
            }
            Event::TelemetryPublished => self.telemetry.published += 1,
            Event::PoisonDropped => self.links.poison_dropped += 1,
            Event::Skipped(skip) => match skip {
                Skip::RequestOffline => self.requests.skipped_offline += 1,
                Skip::RequestBacklog => self.requests.skipped_backlog += 1,
                Skip::ReadingOffline => self.telemetry.skipped_offline += 1,
                Skip::ReadingBacklog => self.telemetry.skipped_backlog += 1,
                Skip::QueueOverflow => self.links.queue_overflows += 1,
                Skip::TooLarge => self.links.unsent_too_large += 1,
            },
            Event::Refusal {
                what,
                topic,
                reason,
            } => {
                let r = &mut self.refusals;
                match what {
                    Refused::Connect => r.connect += 1,
                    Refused::Subscribe => r.subscribe += 1,
                    Refused::Publish => r.publish += 1,
                }
                *r.by_reason.entry(reason.clone()).or_insert(0) += 1;
                if r.events.len() < TOLD_IN_FULL {
                    let device = self.device_id(device).to_owned();
                    self.refusals.events.push(Refusal {
                        device,
                        what: what.as_str(),
                        topic,
                        reason,
                    });
                }
            }
            Event::FaultEffect { key, effect } => self.fault_effect(&key, || effect),
            Event::FaultInjected {
                kind,
                correlation,
                what,
                applied,
            } => {
                let f = &mut self.faults;
                if applied {
                    f.injected += 1;
                    *f.by_kind.entry(kind.as_str()).or_insert(0) += 1;
                }
                if f.events.len() < Faults::TOLD {
                    // Empty Correlation Data names no request: nothing to wait for.
                    if !correlation.is_empty() {
                        let events = self.fault_effects.entry(correlation).or_default();
                        events.push(f.events.len());
                    }
                    let device = self.device_id(device).to_owned();
                    self.faults.events.push(FaultEvent {
                        at_s: self.started.elapsed().as_secs_f64(),
                        device,
                        kind: kind.as_str(),
                        effect: what,
                        connection: false,
                    });
                }
            }
            Event::ResponseInfo(info) => {
                let r = &mut self.response_info;
                r.requested += 1;
                if info.fallback {
                    r.fallback += 1;
                } else {
                    r.received += 1;
                }
                if r.devices.len() < TOLD_IN_FULL {
                    let device = self.device_id(device).to_owned();
                    self.response_info.devices.push(ResponseInfoUse {
                        device,
                        received: info.received.clone(),
                        fallback: info.fallback,
                        topics: info.topics.clone(),
                    });
                }
            }
        }
    }

    /// Adds what came of a fault's request to its event. An effect may come in steps (timed
    /// out, then answered late), so each is appended.
    fn fault_effect(&mut self, correlation: &Bytes, effect: impl FnOnce() -> String) {
        let Some(indexes) = self.fault_effects.get(correlation) else {
            return;
        };
        let effect = effect();
        for &i in indexes {
            if let Some(event) = self.faults.events.get_mut(i) {
                event.effect = format!("{} -> {effect}", event.effect);
            }
        }
    }

    fn report(&self, broker: String, duration: Duration) -> Report {
        let fleet = &self.fleet;
        let mut by_kind = BTreeMap::new();
        for device in &fleet.devices {
            *by_kind.entry(device.kind().as_str()).or_insert(0) += 1;
        }
        let devices = Devices {
            total: fleet.devices.len() as u64,
            connected: self.connected.iter().filter(|c| **c).count() as u64,
            by_kind,
            disconnected_s: (self.disconnected.as_secs_f64() * 1000.0).round() / 1000.0,
            ..self.links.clone()
        };
        let requests = Requests {
            in_flight: self.in_flight(),
            latency_ms: self.latency.latency(),
            ..self.requests.clone()
        };
        let report = Report {
            fleet: fleet.name.clone(),
            broker,
            seed: fleet.seed,
            duration_s: (duration.as_secs_f64() * 1000.0).round() / 1000.0,
            ok: false,
            problems: Vec::new(),
            devices,
            requests,
            responders: self.responders.clone(),
            telemetry: self.telemetry.clone(),
            response_info: self.response_info.clone(),
            refusals: self.refusals.clone(),
            wills: Wills::default(),
            faults: self.faults.clone(),
            ..Report::default()
        };
        // The runner judges it, once the supervisor's Wills are in.
        report
    }
}

/// A JSON object with an `error` field, as fleetsim's responders and many backends answer a
/// request they could not carry out.
fn is_error_answer(payload: &[u8]) -> bool {
    // The collector is one actor for the whole fleet: only small JSON objects that mention
    // the key at all are parsed.
    payload.len() <= 4096
        && payload.first() == Some(&b'{')
        && payload.windows(7).any(|w| w == b"\"error\"")
        && serde_json::from_slice::<serde_json::Value>(payload)
            .is_ok_and(|v| v.get("error").is_some())
}

#[cfg(test)]
mod tests {
    use super::is_error_answer;

    #[test]
    fn only_json_objects_with_an_error_field_are_error_answers() {
        assert!(is_error_answer(
            br#"{"power":"OFF","error":"unknown command"}"#
        ));
        assert!(!is_error_answer(br#"{"power":"ON"}"#));
        assert!(!is_error_answer(br#"{"note":"no \"error\" here"}"#));
        assert!(!is_error_answer(b"error"));
        assert!(!is_error_answer(&[b'{'; 5000]));
    }
}

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<DeviceEvent> for Collector {
    type Result = ();

    fn handle(&mut self, msg: DeviceEvent, _: &mut Context<Self>) {
        self.record(msg.device, msg.event);
    }
}

/// Fault times count from the start of the run.
impl Handler<RunStarted> for Collector {
    type Result = ();

    fn handle(&mut self, msg: RunStarted, _: &mut Context<Self>) {
        self.started = msg.at;
    }
}

/// Where the run stands, for the runner's phase changes.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub ready: u64,
    pub connect_failures: Vec<(String, String)>,
    pub in_flight: u64,
}

#[derive(Message)]
#[rtype(result = "Progress")]
pub struct GetProgress;

impl Handler<GetProgress> for Collector {
    type Result = MessageResult<GetProgress>;

    fn handle(&mut self, _: GetProgress, _: &mut Context<Self>) -> Self::Result {
        MessageResult(Progress {
            ready: self.ready,
            connect_failures: self.connect_failures.clone(),
            in_flight: self.in_flight(),
        })
    }
}

#[derive(Message)]
#[rtype(result = "Report")]
pub struct GetReport {
    pub broker: String,
    pub duration: Duration,
}

impl Handler<GetReport> for Collector {
    type Result = MessageResult<GetReport>;

    fn handle(&mut self, msg: GetReport, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.report(msg.broker, msg.duration))
    }
}
