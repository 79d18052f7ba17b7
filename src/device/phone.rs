//! The phone: a requester. It sends requests carrying a Response Topic and a Correlation Data
//! unique per request, and matches each answer back to its request by that Correlation Data.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use mqtt5_protocol::packet::publish::PublishPacket;
use rand::Rng;

use super::{DeviceActor, RoleState, correlation_of};
use crate::events::{Event, Exchange, Outcome, Skip};
use crate::fleet::{self, FaultClass, FaultKind, FaultParams};
use crate::mqtt::{Outgoing, PublishProperties};

/// The template variable a Response Topic may hold until CONNACK says what it is.
const RESPONSE_INFO: &str = "{response_info}";

/// How many finished requests a phone remembers, to tell a duplicate or late answer from one
/// that names no request at all. Older ones are forgotten, keeping a phone's memory bounded.
const REMEMBERED: u64 = 512;

/// Correlation bookkeeping for one phone, free of I/O so it is tested on its own.
///
/// Correlation Data is `{phone id}:{sequence}`: unique per request, readable in a trace, and
/// parseable back to the request without a lookup table keyed by arbitrary bytes.
pub struct RequestTracker {
    prefix: String,
    /// An answer later than this after its request is late, whether or not the request's
    /// timer has fired yet.
    timeout: Duration,
    next_seq: u64,
    in_flight: HashMap<u64, InFlight>,
    /// How each remembered request ended, and when it was sent.
    finished: HashMap<u64, (Finished, Instant)>,
}

struct InFlight {
    sent_at: Instant,
    tag: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Finished {
    Matched,
    TimedOut,
    /// Timed out, then answered after all.
    Late,
    Failed,
}

/// What an incoming answer turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The first answer to a request in flight, within its timeout.
    Matched { seq: u64, latency: Duration },
    /// The first answer to a request in flight, but after its timeout (before its timer
    /// fired): the request ends late, never matched.
    Overdue { seq: u64, latency: Duration },
    /// Another answer to a request already matched.
    Duplicate,
    /// The first answer to a request that had already timed out: the request now counts as
    /// late instead of timed out.
    Late { seq: u64, latency: Duration },
    /// Correlation Data that names no request of this phone (or none at all).
    Unmatched,
}

impl RequestTracker {
    pub fn new(phone_id: &str, timeout: Duration) -> Self {
        Self {
            prefix: format!("{phone_id}:"),
            timeout,
            next_seq: 1,
            in_flight: HashMap::new(),
            finished: HashMap::new(),
        }
    }

    /// Opens a request and returns its sequence number and Correlation Data.
    pub fn open(&mut self, tag: u64, now: Instant) -> (u64, Bytes) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.in_flight.insert(seq, InFlight { sent_at: now, tag });
        // Each request is remembered once it ends, and forgotten REMEMBERED requests later:
        // one removal per request keeps the memory bounded without scanning it.
        if let Some(old) = seq.checked_sub(REMEMBERED) {
            self.finished.remove(&old);
        }
        (seq, Bytes::from(format!("{}{seq}", self.prefix)))
    }

    /// Sequence number a Correlation Data names, if it is one of ours.
    fn seq_of(&self, correlation: &[u8]) -> Option<u64> {
        let rest = correlation.strip_prefix(self.prefix.as_bytes())?;
        std::str::from_utf8(rest).ok()?.parse().ok()
    }

    pub fn answer(&mut self, correlation: Option<&[u8]>, now: Instant) -> Verdict {
        let Some(seq) = correlation.and_then(|c| self.seq_of(c)) else {
            return Verdict::Unmatched;
        };
        if let Some(request) = self.in_flight.remove(&seq) {
            let latency = now.saturating_duration_since(request.sent_at);
            if latency > self.timeout {
                self.finished.insert(seq, (Finished::Late, request.sent_at));
                return Verdict::Overdue { seq, latency };
            }
            self.finished
                .insert(seq, (Finished::Matched, request.sent_at));
            return Verdict::Matched { seq, latency };
        }
        match self.finished.get(&seq).map(|(how, _)| *how) {
            Some(Finished::Matched | Finished::Late) => Verdict::Duplicate,
            Some(Finished::TimedOut) => {
                let entry = self.finished.get_mut(&seq);
                let sent_at = entry.map_or(now, |(how, sent_at)| {
                    *how = Finished::Late;
                    *sent_at
                });
                Verdict::Late {
                    seq,
                    latency: now.saturating_duration_since(sent_at),
                }
            }
            // A refused request never reached a responder: an answer cannot be to it.
            Some(Finished::Failed) | None => Verdict::Unmatched,
        }
    }

    /// The request's timer ran out: returns how long it waited if it was still in flight.
    pub fn expire(&mut self, seq: u64, now: Instant) -> Option<Duration> {
        let request = self.in_flight.remove(&seq)?;
        self.finished
            .insert(seq, (Finished::TimedOut, request.sent_at));
        Some(now.saturating_duration_since(request.sent_at))
    }

    /// The broker refused the publish with this tag: returns the request it carried.
    pub fn refuse(&mut self, tag: u64) -> Option<u64> {
        let seq = self
            .in_flight
            .iter()
            .find_map(|(seq, r)| (r.tag == tag).then_some(*seq))?;
        if let Some(request) = self.in_flight.remove(&seq) {
            self.finished
                .insert(seq, (Finished::Failed, request.sent_at));
        }
        Some(seq)
    }

    pub fn correlation(&self, seq: u64) -> Bytes {
        Bytes::from(format!("{}{seq}", self.prefix))
    }

    pub fn sent(&self) -> u64 {
        self.next_seq - 1
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

#[derive(Debug, Clone, Copy)]
struct Pace {
    every: Duration,
    jitter: Duration,
    timeout: Duration,
    max_requests: Option<u64>,
}

pub(super) struct PhoneState {
    /// The phone's pace: all it keeps of its spec besides the targets (fleets are large).
    pace: Pace,
    tracker: RequestTracker,
    /// Targets with their topics shared, so each request's trace event costs no string copies.
    targets: Vec<TargetTopics>,
}

struct TargetTopics {
    request_topic: Arc<str>,
    /// As configured: may hold `{response_info}`.
    response_template: Arc<str>,
    /// As used, once the Response Information is known.
    response_topic: Arc<str>,
    /// Why the broker refused the subscription to the Response Topic, if it did: requests
    /// answered there could never be heard, so they fail at once.
    refused: Option<String>,
    payloads: Vec<Bytes>,
}

impl PhoneState {
    pub(super) fn new(id: &str, spec: &fleet::Phone) -> Self {
        let targets = spec
            .targets
            .iter()
            .map(|t| TargetTopics {
                request_topic: t.request_topic.as_str().into(),
                response_template: t.response_topic.as_str().into(),
                response_topic: t.response_topic.as_str().into(),
                refused: None,
                payloads: t.payloads.iter().map(|p| Bytes::from(p.clone())).collect(),
            })
            .collect();
        Self {
            pace: Pace {
                every: spec.every,
                jitter: spec.jitter,
                timeout: spec.timeout,
                max_requests: spec.max_requests,
            },
            tracker: RequestTracker::new(id, spec.timeout),
            targets,
        }
    }

    /// Builds the Response Topics from the Response Information (a prefix: `{response_info}`
    /// is replaced by it) and returns them, each once.
    pub(super) fn resolve_response_info(&mut self, value: &str) -> Vec<String> {
        for target in &mut self.targets {
            if target.response_template.contains(RESPONSE_INFO) {
                target.response_topic = target
                    .response_template
                    .replace(RESPONSE_INFO, value)
                    .into();
            }
        }
        self.response_topics().collect()
    }

    /// The broker refused the subscription to `topic`.
    pub(super) fn refuse_response_topic(&mut self, topic: &str, reason: &str) {
        for target in &mut self.targets {
            if &*target.response_topic == topic {
                target.refused = Some(reason.to_owned());
            }
        }
    }

    /// Response topics to subscribe to, each once.
    pub(super) fn response_topics(&self) -> impl Iterator<Item = String> {
        let mut topics: Vec<String> = self
            .targets
            .iter()
            .map(|t| t.response_topic.to_string())
            .collect();
        topics.sort();
        topics.dedup();
        topics.into_iter()
    }
}

impl DeviceActor {
    fn phone(&mut self) -> Option<&mut PhoneState> {
        match &mut self.role {
            RoleState::Phone(state) => Some(state),
            _ => None,
        }
    }

    /// Schedules the next request: `every` plus seeded jitter; the first one at a seeded point
    /// inside the first interval, so phones do not all fire at once.
    pub(super) fn schedule_request(&mut self, ctx: &mut Context<Self>, first: bool) {
        let Some(phone) = self.phone() else {
            return;
        };
        let every = phone.pace.every.as_secs_f64();
        let jitter = phone.pace.jitter.as_secs_f64();
        let wait = if first {
            self.rng.random_range(0.0..every)
        } else if jitter > 0.0 {
            every + self.rng.random_range(-jitter..=jitter)
        } else {
            every
        };
        ctx.run_later(Duration::from_secs_f64(wait.max(0.0)), |act, ctx| {
            if act.running && act.send_request(ctx) {
                act.schedule_request(ctx, false);
            }
        });
    }

    /// Sends one request; false when the phone has sent all it was asked to. A request due
    /// while the phone is offline, or while its session already holds as many unsent
    /// publishes as it may, is skipped and counted as such: it was never sent.
    fn send_request(&mut self, ctx: &mut Context<Self>) -> bool {
        let qos = self.qos;
        // The tag `publish` will give this request's PUBLISH, so a refusal finds the request.
        let tag = self.next_tag + 1;
        let skip = if !self.online() {
            Some(Skip::RequestOffline)
        } else if self.session.queue_full() {
            Some(Skip::RequestBacklog)
        } else {
            None
        };
        let Some(state) = self.phone() else {
            return false;
        };
        let sent = state.tracker.sent();
        let spec = &state.pace;
        if spec.max_requests.is_some_and(|max| sent >= max) || state.targets.is_empty() {
            return false;
        }
        if let Some(skip) = skip {
            self.emit(Event::Skipped(skip));
            return true;
        }
        let timeout = spec.timeout;
        let target = &state.targets[(sent % state.targets.len() as u64) as usize];
        let round = sent / state.targets.len() as u64;
        let refused = target.refused.clone();
        let exchange = Exchange {
            published: refused.is_none(),
            topic: target.request_topic.clone(),
            response_topic: target.response_topic.clone(),
            correlation: Bytes::new(),
            payload: target.payloads[(round % target.payloads.len() as u64) as usize].clone(),
        };
        let (seq, correlation) = state.tracker.open(tag, Instant::now());
        let more = state.pace.max_requests.is_none_or(|max| seq < max);
        let exchange = Arc::new(Exchange {
            correlation: correlation.clone(),
            ..exchange
        });
        self.emit(Event::RequestSent(exchange.clone()));

        if let Some(refused) = refused {
            // Nobody could ever hear the answer: the request fails without being sent.
            if let Some(state) = self.phone() {
                state.tracker.refuse(tag);
            }
            let reason = format!(
                "its Response Topic {} was refused: {refused}",
                exchange.response_topic
            );
            self.emit(Event::RequestDone {
                correlation,
                outcome: Outcome::Failed { reason },
            });
            return more;
        }
        let mut msg = Outgoing {
            topic: exchange.topic.to_string(),
            payload: exchange.payload.clone(),
            qos,
            retain: false,
            properties: PublishProperties {
                response_topic: Some(exchange.response_topic.to_string()),
                correlation_data: Some(correlation.clone()),
                ..PublishProperties::default()
            },
            tag: 0,
        };
        let mut twice = false;
        if let Some((kind, params)) = self.next_fault(FaultClass::Request) {
            twice = kind == FaultKind::DuplicateRequest;
            let what = self.spoil_request(&mut msg, kind, params);
            if kind == FaultKind::WildcardResponseTopic {
                // What the broker makes of it shows on the connection.
                self.watched_fault = Some((correlation.clone(), Instant::now()));
            }
            self.emit(Event::FaultInjected {
                kind,
                correlation,
                what,
                applied: true,
            });
        }
        let again = twice.then(|| msg.clone());
        if let Err(e) = self.publish(msg) {
            // The queue had room a moment ago: only a refusal of this very message gets here.
            self.phone_refused(tag, e.to_string());
            return more;
        }
        if let Some(again) = again {
            // The same request, Correlation Data and all: the backend should answer once, or
            // the phone counts a duplicate answer.
            self.publish_counted(again);
        }
        ctx.run_later(timeout, move |act, _| act.expire_request(seq));
        more
    }

    /// Makes a request malformed the way `kind` says, for the backend to cope with; returns
    /// what was done, for the report.
    fn spoil_request(
        &mut self,
        msg: &mut Outgoing,
        kind: FaultKind,
        params: FaultParams,
    ) -> String {
        let props = &mut msg.properties;
        match kind {
            FaultKind::NoResponseTopic => {
                props.response_topic = None;
                "sent without Response Topic".into()
            }
            FaultKind::NoCorrelationData => {
                props.correlation_data = None;
                "sent without Correlation Data".into()
            }
            FaultKind::EmptyCorrelationData => {
                props.correlation_data = Some(Bytes::new());
                "sent with empty Correlation Data".into()
            }
            FaultKind::WildcardResponseTopic => {
                let topic = format!("{}/#", props.response_topic.as_deref().unwrap_or("resp"));
                let what = format!("sent with Response Topic {topic}");
                props.response_topic = Some(topic);
                // A broker may rightly close the connection for it. At QoS 1 the session would
                // send it again on every reconnect, and be thrown out again, forever.
                msg.qos = mqtt5_protocol::QoS::AtMostOnce;
                what
            }
            FaultKind::HugePayload => {
                msg.payload = Bytes::from(vec![b'x'; params.size]);
                format!("sent with a {} byte payload", params.size)
            }
            FaultKind::BinaryPayload => {
                let mut bytes = vec![0u8; params.size];
                self.rng.fill(&mut bytes[..]);
                msg.payload = Bytes::from(bytes);
                format!("sent with {} random bytes as payload", params.size)
            }
            FaultKind::DuplicateRequest => "sent twice with the same Correlation Data".into(),
            other => format!("{} does not apply to a request", other.as_str()),
        }
    }

    fn expire_request(&mut self, seq: u64) {
        let Some(state) = self.phone() else {
            return;
        };
        if let Some(after) = state.tracker.expire(seq, Instant::now()) {
            let correlation = state.tracker.correlation(seq);
            tracing::debug!(device = %self.id, seq, "request timed out");
            self.emit(Event::RequestDone {
                correlation,
                outcome: Outcome::TimedOut { after },
            });
        }
    }

    pub(super) fn phone_response(&mut self, publish: PublishPacket) {
        let correlation = correlation_of(&publish);
        let Some(state) = self.phone() else {
            return;
        };
        let verdict = state.tracker.answer(correlation.as_deref(), Instant::now());
        let event = match verdict {
            Verdict::Matched { latency, .. } => Event::RequestDone {
                correlation: correlation.unwrap_or_default(),
                outcome: Outcome::Matched {
                    latency,
                    payload: publish.payload,
                },
            },
            // A redelivery (DUP) is the broker keeping its QoS promise after a lost ack, not a
            // responder answering twice.
            Verdict::Duplicate if publish.dup => {
                tracing::debug!(device = %self.id, "answer redelivered with DUP");
                return;
            }
            Verdict::Duplicate => Event::DuplicateResponse {
                correlation: correlation.unwrap_or_default(),
            },
            Verdict::Late { latency, .. } => Event::LateAnswer {
                correlation: correlation.unwrap_or_default(),
                latency,
            },
            Verdict::Overdue { latency, .. } => Event::RequestDone {
                correlation: correlation.unwrap_or_default(),
                outcome: Outcome::Late { latency },
            },
            Verdict::Unmatched => Event::UnmatchedResponse { correlation },
        };
        self.emit(event);
    }

    pub(super) fn phone_refused(&mut self, tag: u64, reason: String) {
        let Some(state) = self.phone() else {
            return;
        };
        if let Some(seq) = state.tracker.refuse(tag) {
            let correlation = state.tracker.correlation(seq);
            tracing::warn!(device = %self.id, seq, %reason, "request failed");
            self.emit(Event::RequestDone {
                correlation,
                outcome: Outcome::Failed { reason },
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(2);

    #[test]
    fn an_answer_after_the_timeout_is_late_even_before_the_timer_fires() {
        let mut t = RequestTracker::new("p", Duration::from_millis(5));
        let now = Instant::now();
        let (seq, corr) = t.open(1, now);
        let later = now + Duration::from_millis(6);
        assert_eq!(
            t.answer(Some(&corr), later),
            Verdict::Overdue {
                seq,
                latency: Duration::from_millis(6)
            }
        );
        // Its timer fires afterwards: nothing left to time out; a second answer is a duplicate.
        assert_eq!(t.expire(seq, later), None);
        assert_eq!(t.answer(Some(&corr), later), Verdict::Duplicate);
        // Exactly at the timeout is still in time.
        let (seq, corr) = t.open(2, now);
        let at = now + Duration::from_millis(5);
        assert!(matches!(t.answer(Some(&corr), at), Verdict::Matched { seq: s, .. } if s == seq));
    }

    #[test]
    fn correlation_data_is_unique_per_request_and_names_the_phone() {
        let mut t = RequestTracker::new("phone-1", TIMEOUT);
        let now = Instant::now();
        let (s1, c1) = t.open(1, now);
        let (s2, c2) = t.open(2, now);
        assert_eq!((s1, s2), (1, 2));
        assert_eq!(&c1[..], b"phone-1:1");
        assert_ne!(c1, c2);
        assert_eq!(t.sent(), 2);
    }

    #[test]
    fn first_answer_matches_with_its_latency_and_second_is_a_duplicate() {
        let mut t = RequestTracker::new("p", TIMEOUT);
        let now = Instant::now();
        let (seq, corr) = t.open(1, now);
        let later = now + Duration::from_millis(7);
        assert_eq!(
            t.answer(Some(&corr), later),
            Verdict::Matched {
                seq,
                latency: Duration::from_millis(7)
            }
        );
        assert_eq!(t.answer(Some(&corr), later), Verdict::Duplicate);
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn answers_out_of_order_each_find_their_own_request() {
        let mut t = RequestTracker::new("p", TIMEOUT);
        let now = Instant::now();
        let (s1, c1) = t.open(1, now);
        let (s2, c2) = t.open(2, now + Duration::from_millis(1));
        let at = now + Duration::from_millis(10);
        assert!(matches!(t.answer(Some(&c2), at), Verdict::Matched { seq, .. } if seq == s2));
        assert!(matches!(t.answer(Some(&c1), at), Verdict::Matched { seq, .. } if seq == s1));
    }

    #[test]
    fn unknown_or_missing_correlation_is_unmatched() {
        let mut t = RequestTracker::new("p", TIMEOUT);
        let now = Instant::now();
        t.open(1, now);
        assert_eq!(t.answer(None, now), Verdict::Unmatched);
        assert_eq!(t.answer(Some(b"other:1"), now), Verdict::Unmatched);
        assert_eq!(t.answer(Some(b"p:99"), now), Verdict::Unmatched);
        assert_eq!(t.answer(Some(b"p:x"), now), Verdict::Unmatched);
        assert_eq!(t.answer(Some(&[0xff, 0x00]), now), Verdict::Unmatched);
        assert_eq!(t.in_flight(), 1);
    }

    #[test]
    fn expired_request_times_out_once_and_its_first_later_answer_makes_it_late() {
        let mut t = RequestTracker::new("p", TIMEOUT);
        let now = Instant::now();
        let (seq, corr) = t.open(1, now);
        let deadline = now + Duration::from_secs(2);
        assert_eq!(t.expire(seq, deadline), Some(Duration::from_secs(2)));
        assert_eq!(t.expire(seq, deadline), None);
        let later = deadline + Duration::from_secs(1);
        assert_eq!(
            t.answer(Some(&corr), later),
            Verdict::Late {
                seq,
                latency: Duration::from_secs(3)
            }
        );
        assert_eq!(
            t.answer(Some(&corr), later),
            Verdict::Duplicate,
            "late once"
        );
    }

    #[test]
    fn expire_after_match_does_nothing() {
        let mut t = RequestTracker::new("p", TIMEOUT);
        let now = Instant::now();
        let (seq, corr) = t.open(1, now);
        t.answer(Some(&corr), now);
        assert_eq!(t.expire(seq, now), None);
    }

    #[test]
    fn refused_publish_fails_its_request_by_tag() {
        let mut t = RequestTracker::new("p", TIMEOUT);
        let now = Instant::now();
        t.open(10, now);
        let (seq, corr) = t.open(11, now);
        assert_eq!(t.refuse(11), Some(seq));
        assert_eq!(t.refuse(11), None);
        assert_eq!(t.answer(Some(&corr), now), Verdict::Unmatched);
        assert_eq!(t.in_flight(), 1);
    }

    #[test]
    fn memory_of_finished_requests_is_bounded() {
        let mut t = RequestTracker::new("p", TIMEOUT);
        let now = Instant::now();
        for tag in 0..(REMEMBERED * 3) {
            let (seq, corr) = t.open(tag, now);
            t.answer(Some(&corr), now);
            assert!(seq > 0);
        }
        assert!(t.finished.len() as u64 <= REMEMBERED + 1);
    }
}
