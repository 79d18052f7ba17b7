//! The phone: a requester. It sends requests carrying a Response Topic and a Correlation Data
//! unique per request, paced by its load model, and matches each answer back to its request.
//!
//! Requests are tracked in a ring ordered by sequence, so deadlines come in order too: the
//! device's one timer only needs the oldest open request's deadline, and no request has a
//! timer of its own. Finished requests are remembered as two bits each, for the last
//! [`REMEMBERED`], to tell a duplicate or a late answer from a stranger's.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqtt5_protocol::packet::publish::PublishPacket;
use rand::Rng;

use super::core::{Device, Out, Role};
use crate::events::{Exchange, Failure, Outcome};
use crate::fleet::{self, FaultClass, FaultKind, FaultParams, Pace};
use crate::mqtt::{Outgoing, PublishProperties};
use crate::narrate::Stray;
use crate::report::AnswerSample;
use crate::timeline::TargetCounts;

/// The template variable a Response Topic may hold until CONNACK says what it is.
const RESPONSE_INFO: &str = "{response_info}";

/// How many finished requests a phone remembers, to tell a duplicate or late answer from one
/// that names no request at all. Older ones are forgotten, keeping a phone's memory bounded.
pub const REMEMBERED: u64 = 512;

/// Most requests a phone sends in one go when it is behind its rate (after a stall of the
/// machine): it catches up over several turns rather than holding its thread.
const CATCH_UP: usize = 256;

/// The high bit marks publish tags that are not requests: a request's tag is its sequence.
pub(super) const NOT_A_REQUEST: u64 = 1 << 63;

/// How a request ended, as remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Open = 0,
    /// Matched, or answered late: a further answer is a duplicate.
    Answered = 1,
    /// An answer now would be late.
    TimedOut = 2,
    /// Refused (or never sent): no answer can be to it.
    Failed = 3,
}

impl Ended {
    fn from_bits(bits: u64) -> Self {
        match bits & 3 {
            1 => Ended::Answered,
            2 => Ended::TimedOut,
            3 => Ended::Failed,
            _ => Ended::Open,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Request {
    sent_at: Instant,
    ended: Ended,
}

/// What an incoming answer turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The first answer to a request in flight, within its timeout.
    Matched { seq: u64, latency: Duration },
    /// The first answer to a request in flight, but after its timeout (before its deadline was
    /// looked at): the request ends late, never matched.
    Overdue { seq: u64, latency: Duration },
    /// Another answer to a request already answered.
    Duplicate,
    /// The first answer to a request that had already timed out: the request now counts as
    /// late instead of timed out.
    Late { seq: u64, latency: Duration },
    /// Correlation Data that names no request of this phone (or none at all).
    Unmatched,
}

/// Correlation bookkeeping for one phone, free of I/O so it is tested on its own.
///
/// Correlation Data is `{phone id}:{sequence}`: unique per request, readable in a trace, and
/// parsed straight back to the sequence number.
#[derive(Debug)]
pub struct RequestTracker {
    prefix: Box<str>,
    timeout: Duration,
    /// The sequence of the next request (the first is 1).
    next_seq: u64,
    /// Requests from `base` on, oldest first; those before `base` have ended.
    window: VecDeque<Request>,
    base: u64,
    open: usize,
    /// Two bits per request before `base`, for the last [`REMEMBERED`]; allocated when the
    /// first request ends.
    ended: Option<Box<[u64; (REMEMBERED / 32) as usize]>>,
    /// Requests before `base` that timed out, with when they were sent, for a late answer's
    /// latency.
    timed_out: VecDeque<(u64, Instant)>,
}

/// When a request that was `waited` old at `now` reached its `timeout`: the second its
/// timeout counts in. Never after `now` (a late answer whose sending time is no longer known).
fn deadline(now: Instant, waited: Duration, timeout: Duration) -> Instant {
    now.checked_sub(waited)
        .and_then(|sent| sent.checked_add(timeout))
        .map_or(now, |at| at.min(now))
}

impl RequestTracker {
    pub fn new(phone_id: &str, timeout: Duration) -> Self {
        Self {
            prefix: format!("{phone_id}:").into(),
            timeout,
            next_seq: 1,
            window: VecDeque::new(),
            base: 1,
            open: 0,
            ended: None,
            timed_out: VecDeque::new(),
        }
    }

    /// Opens a request and returns its sequence number and Correlation Data.
    pub fn open(&mut self, now: Instant) -> (u64, Bytes) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.window.push_back(Request {
            sent_at: now,
            ended: Ended::Open,
        });
        self.open += 1;
        (seq, self.correlation(seq))
    }

    pub fn correlation(&self, seq: u64) -> Bytes {
        let mut data = Vec::with_capacity(self.prefix.len() + 20);
        data.extend_from_slice(self.prefix.as_bytes());
        data.extend_from_slice(itoa(seq, &mut [0; 20]));
        Bytes::from(data)
    }

    /// Sequence number a Correlation Data names, if it is one of ours.
    fn seq_of(&self, correlation: &[u8]) -> Option<u64> {
        let digits = correlation.strip_prefix(self.prefix.as_bytes())?;
        if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(digits.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0')))
    }

    pub fn answer(&mut self, correlation: Option<&[u8]>, now: Instant) -> Verdict {
        let Some(seq) = correlation.and_then(|c| self.seq_of(c)) else {
            return Verdict::Unmatched;
        };
        if seq == 0 || seq >= self.next_seq {
            return Verdict::Unmatched;
        }
        if seq >= self.base {
            let timeout = self.timeout;
            let request = &mut self.window[(seq - self.base) as usize];
            let latency = now.saturating_duration_since(request.sent_at);
            let verdict = match request.ended {
                Ended::Open if latency > timeout => Verdict::Overdue { seq, latency },
                Ended::Open => Verdict::Matched { seq, latency },
                Ended::Answered => return Verdict::Duplicate,
                Ended::TimedOut => Verdict::Late { seq, latency },
                Ended::Failed => return Verdict::Unmatched,
            };
            if request.ended == Ended::Open {
                self.open -= 1;
            }
            request.ended = Ended::Answered;
            self.retire();
            return verdict;
        }
        if seq + REMEMBERED < self.next_seq {
            return Verdict::Unmatched;
        }
        match self.ended_before_base(seq) {
            Ended::Answered => Verdict::Duplicate,
            Ended::TimedOut => {
                self.set_ended_bits(seq, Ended::Answered);
                let sent_at = self
                    .timed_out
                    .binary_search_by_key(&seq, |(s, _)| *s)
                    .ok()
                    .map(|i| self.timed_out[i].1);
                let latency =
                    sent_at.map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
                Verdict::Late { seq, latency }
            }
            Ended::Failed | Ended::Open => Verdict::Unmatched,
        }
    }

    /// An answer with no Correlation Data, taken for the oldest request still open (all a
    /// requester can do without it), with that request's name; `Unmatched` when none is open.
    pub fn answer_oldest(&mut self, now: Instant) -> (Verdict, Bytes) {
        let oldest = (self.base..)
            .zip(&self.window)
            .find(|(_, r)| r.ended == Ended::Open)
            .map(|(seq, _)| seq);
        match oldest {
            Some(seq) => {
                let name = self.correlation(seq);
                (self.answer(Some(&name), now), name)
            }
            None => (Verdict::Unmatched, Bytes::new()),
        }
    }

    /// Times out every open request whose deadline has passed at `now`, oldest first, telling
    /// `each` its sequence and how long it waited.
    pub fn expire(&mut self, now: Instant, mut each: impl FnMut(u64, Duration)) {
        for (seq, request) in (self.base..).zip(self.window.iter_mut()) {
            if request.ended == Ended::Open {
                let waited = now.saturating_duration_since(request.sent_at);
                if waited < self.timeout {
                    // Deadlines come in the order requests were sent.
                    break;
                }
                request.ended = Ended::TimedOut;
                self.open -= 1;
                each(seq, waited);
            }
        }
        self.retire();
    }

    /// The broker refused the request `seq` (or it was never sent): true if it was open.
    pub fn fail(&mut self, seq: u64) -> bool {
        let Some(request) = seq
            .checked_sub(self.base)
            .and_then(|i| self.window.get_mut(i as usize))
        else {
            return false;
        };
        if request.ended != Ended::Open {
            return false;
        }
        request.ended = Ended::Failed;
        self.open -= 1;
        self.retire();
        true
    }

    /// When the oldest open request times out.
    pub fn next_deadline(&self) -> Option<Instant> {
        let oldest = self.window.iter().find(|r| r.ended == Ended::Open)?;
        oldest.sent_at.checked_add(self.timeout)
    }

    pub fn sent(&self) -> u64 {
        self.next_seq - 1
    }

    pub fn in_flight(&self) -> usize {
        self.open
    }

    /// Moves ended requests off the front of the window into the bits.
    fn retire(&mut self) {
        while let Some(front) = self.window.front().copied() {
            if front.ended == Ended::Open {
                break;
            }
            self.window.pop_front();
            let seq = self.base;
            self.base += 1;
            self.set_ended_bits(seq, front.ended);
            if front.ended == Ended::TimedOut {
                self.timed_out.push_back((seq, front.sent_at));
            }
        }
        let forgotten = self.next_seq.saturating_sub(REMEMBERED);
        while self
            .timed_out
            .front()
            .is_some_and(|(seq, _)| *seq < forgotten)
        {
            self.timed_out.pop_front();
        }
    }

    fn set_ended_bits(&mut self, seq: u64, ended: Ended) {
        let bits = self
            .ended
            .get_or_insert_with(|| Box::new([0; (REMEMBERED / 32) as usize]));
        let slot = seq % REMEMBERED;
        let (word, shift) = ((slot / 32) as usize, (slot % 32) * 2);
        bits[word] = (bits[word] & !(3 << shift)) | ((ended as u64) << shift);
    }

    fn ended_before_base(&self, seq: u64) -> Ended {
        let Some(bits) = &self.ended else {
            return Ended::Open;
        };
        let slot = seq % REMEMBERED;
        Ended::from_bits(bits[(slot / 32) as usize] >> ((slot % 32) * 2))
    }
}

/// Decimal digits of `n` without allocating.
fn itoa(mut n: u64, buffer: &mut [u8; 20]) -> &[u8] {
    let mut i = buffer.len();
    loop {
        i -= 1;
        buffer[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buffer[i..];
        }
    }
}

/// When the next request is due, by the phone's load model.
#[derive(Debug)]
struct Pacer {
    pace: Pace,
    /// Every/Rate: when the next request is due; None before `begin`.
    next: Option<Instant>,
    /// Rate: the run's start, and requests due so far.
    start: Option<Instant>,
    due_count: u64,
    /// InFlight: requests it may still send now (a slot freed while it could not send).
    owed: u32,
}

impl Pacer {
    fn new(pace: Pace) -> Self {
        Self {
            pace,
            next: None,
            start: None,
            due_count: 0,
            owed: 0,
        }
    }

    /// The run starts at `now`: when the first request is due (or how many at once).
    fn begin(&mut self, now: Instant, rng: &mut impl Rng) {
        match self.pace {
            Pace::Every { every, .. } => {
                let first = every.mul_f64(rng.random_range(0.0..1.0));
                self.next = now.checked_add(first);
            }
            Pace::Rate { per_second, offset } => {
                let offset = offset.unwrap_or_else(|| {
                    Duration::from_secs_f64(rng.random_range(0.0..1.0) / per_second)
                });
                self.start = now.checked_add(offset);
                self.next = self.start;
            }
            Pace::InFlight(n) => self.owed = n,
        }
    }

    /// A request was due at `self.next`: when the one after it is.
    fn advance(&mut self, rng: &mut impl Rng) {
        let Some(due) = self.next else { return };
        self.next = match self.pace {
            Pace::Every { every, jitter } => {
                let wait = if jitter.is_zero() {
                    every
                } else {
                    let j = jitter.as_secs_f64();
                    Duration::from_secs_f64(
                        (every.as_secs_f64() + rng.random_range(-j..=j)).max(0.0),
                    )
                };
                due.checked_add(wait)
            }
            Pace::Rate { per_second, .. } => {
                self.due_count += 1;
                let since = Duration::from_secs_f64(self.due_count as f64 / per_second);
                self.start.and_then(|start| start.checked_add(since))
            }
            Pace::InFlight(_) => None,
        };
    }
}

pub(super) struct Phone {
    tracker: RequestTracker,
    pacer: Pacer,
    /// Response Topics built from Response Information, per target (when the template has
    /// `{response_info}`); None: the fleet's topics as they are.
    resolved: Option<Vec<Arc<str>>>,
    /// Response Topics the broker refused to subscribe to, with why: requests answered there
    /// could never be heard, so they fail at once.
    refused: Vec<(String, String)>,
    /// Wound down with requests in flight: the runner waits for them.
    draining: bool,
}

impl Phone {
    pub(super) fn new(id: &str, spec: &fleet::Phone) -> Self {
        Self {
            tracker: RequestTracker::new(id, spec.timeout),
            pacer: Pacer::new(spec.pace),
            resolved: None,
            refused: Vec::new(),
            draining: false,
        }
    }

    pub(super) fn next_wakeup(&self, running: bool) -> Option<Instant> {
        let send = if running { self.pacer.next } else { None };
        [send, self.tracker.next_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    pub(super) fn wind(&mut self, out: &mut Out<'_>) {
        self.pacer.next = None;
        self.pacer.owed = 0;
        if self.tracker.in_flight() > 0 {
            self.draining = true;
            out.shared.progress.draining();
        }
    }

    /// After a request ended: when winding down and none is left, the runner hears of it.
    fn check_drained(&mut self, out: &mut Out<'_>) {
        if self.draining && self.tracker.in_flight() == 0 {
            self.draining = false;
            out.shared.progress.drained();
        }
    }

    fn response_topic<'a>(&'a self, target: usize, spec: &'a fleet::Phone) -> &'a Arc<str> {
        match &self.resolved {
            Some(topics) => &topics[if topics.len() == 1 { 0 } else { target }],
            None => spec.targets.response_topic(target),
        }
    }

    /// Response topics to subscribe to, each once.
    pub(super) fn response_topics(&self, spec: &fleet::Device) -> Vec<String> {
        let fleet::Role::Phone(phone) = &spec.role else {
            return Vec::new();
        };
        let count = phone.targets.response_topics.len();
        let mut topics: Vec<String> = (0..count)
            .map(|i| self.response_topic(i, phone).to_string())
            .collect();
        topics.sort();
        topics.dedup();
        topics
    }

    /// Builds the Response Topics from the Response Information (a prefix: `{response_info}`
    /// is replaced by it) and returns them, each once.
    pub(super) fn resolve_response_info(
        &mut self,
        value: &str,
        spec: &fleet::Device,
    ) -> Vec<String> {
        if let fleet::Role::Phone(phone) = &spec.role {
            let topics = &phone.targets.response_topics;
            if topics.iter().any(|t| t.contains(RESPONSE_INFO)) {
                let resolved = topics
                    .iter()
                    .map(|t| t.replace(RESPONSE_INFO, value).into());
                self.resolved = Some(resolved.collect());
            }
        }
        self.response_topics(spec)
    }

    /// The broker refused the subscription to `topic`.
    pub(super) fn refuse_response_topic(&mut self, topic: &str, reason: &str) {
        self.refused.push((topic.to_owned(), reason.to_owned()));
    }
}

impl Device {
    fn phone(&mut self) -> Option<&mut Phone> {
        match &mut self.role {
            Role::Phone(phone) => Some(phone),
            _ => None,
        }
    }

    fn phone_spec(&self) -> Option<&fleet::Phone> {
        match &self.spec().role {
            fleet::Role::Phone(p) => Some(p),
            _ => None,
        }
    }

    pub(super) fn phone_begin(&mut self, now: Instant, out: &mut Out<'_>) {
        let Role::Phone(phone) = &mut self.role else {
            return;
        };
        phone.pacer.begin(now, &mut self.rng.pacing);
        // A closed loop starts with its window full.
        self.phone_tick(now, out);
    }

    /// Times out what is due, then sends what the load model says is due.
    pub(super) fn phone_tick(&mut self, now: Instant, out: &mut Out<'_>) {
        self.expire_requests(now, out);
        if !self.running {
            return;
        }
        let Role::Phone(phone) = &self.role else {
            return;
        };
        if let Pace::InFlight(_) = phone.pacer.pace {
            return self.send_owed(now, out);
        }
        for _ in 0..CATCH_UP {
            let due = match &self.role {
                Role::Phone(phone) => phone.pacer.next.is_some_and(|next| next <= now),
                _ => false,
            };
            if !due {
                break;
            }
            let more = self.send_request(now, out);
            let Role::Phone(phone) = &mut self.role else {
                return;
            };
            if more {
                phone.pacer.advance(&mut self.rng.pacing);
            } else {
                phone.pacer.next = None;
            }
        }
    }

    /// A closed loop sends as many requests as it has free slots, when it can.
    fn send_owed(&mut self, now: Instant, out: &mut Out<'_>) {
        while self.running && self.online() {
            let Some(phone) = self.phone() else { return };
            if phone.pacer.owed == 0 {
                return;
            }
            phone.pacer.owed -= 1;
            if !self.send_request(now, out) {
                if let Some(phone) = self.phone() {
                    phone.pacer.owed = 0;
                }
                return;
            }
        }
    }

    /// A request ended (matched, timed out, failed): a closed loop sends the next one.
    fn request_ended(&mut self, now: Instant, out: &mut Out<'_>) {
        let Some(phone) = self.phone() else { return };
        phone.check_drained(out);
        if let Pace::InFlight(_) = phone.pacer.pace
            && self.running
        {
            if let Some(phone) = self.phone() {
                phone.pacer.owed += 1;
            }
            self.send_owed(now, out);
        }
    }

    /// Back online: a closed loop fills the slots it could not use meanwhile.
    pub(super) fn phone_online(&mut self, now: Instant, out: &mut Out<'_>) {
        if matches!(&self.role, Role::Phone(p) if matches!(p.pacer.pace, Pace::InFlight(_))) {
            self.send_owed(now, out);
        }
    }

    fn expire_requests(&mut self, now: Instant, out: &mut Out<'_>) {
        let Some(phone) = self.phone() else { return };
        if phone
            .tracker
            .next_deadline()
            .is_none_or(|deadline| deadline > now)
        {
            return;
        }
        let mut expired = Vec::new();
        phone
            .tracker
            .expire(now, |seq, waited| expired.push((seq, waited)));
        let phone_timeout = phone.tracker.timeout;
        for (seq, after) in expired {
            let Some(phone) = self.phone() else { return };
            let correlation = phone.tracker.correlation(seq);
            tracing::debug!(device = %self.id(), seq, "request timed out");
            out.tally.requests.timed_out += 1;
            // Counted in the second of its deadline, where a late answer takes it back.
            out.second(deadline(now, after, phone_timeout)).timed_out += 1;
            if let Some(target) = self.target_of(seq, out) {
                target.counts.timed_out += 1;
            }
            self.ended(&correlation, Outcome::TimedOut { after }, "", out);
            self.request_ended(now, out);
        }
    }

    /// Tells the narration and the fault stories how the request with `correlation` ended;
    /// `topic` is the answer's, if one came.
    fn ended(&self, correlation: &Bytes, outcome: Outcome, topic: &str, out: &mut Out<'_>) {
        out.shared.stories.effect(correlation, || match &outcome {
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
        if out.shared.narration.active() {
            out.shared
                .narration
                .tell(|n| n.done(correlation, &outcome, topic));
        }
    }

    /// The counts of the topic request `seq` went to: requests cycle through the targets in
    /// order, request `seq` to target `(seq - 1) % targets` (see [`Device::send_request`]).
    fn target_of<'o>(&self, seq: u64, out: &'o mut Out<'_>) -> Option<&'o mut TargetCounts> {
        let spec = self.phone_spec()?;
        let targets = spec.targets.len() as u64;
        let index = seq.checked_sub(1)? % targets.max(1);
        let topic = spec.targets.request_topic(index as usize, &self.fleet);
        Some(out.tally.targets.topic(topic))
    }

    /// Sends one request; false when the phone has sent all it was asked to. A request due
    /// while the phone is offline, or while its session already holds as many unsent
    /// publishes as it may, is skipped and counted as such: it was never sent.
    fn send_request(&mut self, now: Instant, out: &mut Out<'_>) -> bool {
        let Some(spec) = self.phone_spec() else {
            return false;
        };
        let Role::Phone(phone) = &self.role else {
            return false;
        };
        let sent = phone.tracker.sent();
        if spec.max_requests.is_some_and(|max| sent >= max) || spec.targets.is_empty() {
            return false;
        }
        if !self.online() {
            out.tally.requests.skipped_offline += 1;
            return true;
        }
        if self.session.queue_full() {
            out.tally.requests.skipped_backlog += 1;
            return true;
        }
        let fleet = self.fleet.clone();
        let fleet::Role::Phone(spec) = &fleet.devices[self.index as usize].role else {
            return false;
        };
        let targets = spec.targets.len() as u64;
        let target_index = (sent % targets) as usize;
        let request_topic = spec.targets.request_topic(target_index, &fleet);
        let payloads = spec.targets.payloads(target_index, &fleet);
        let payload = payloads[((sent / targets) % payloads.len() as u64) as usize].clone();
        let Some(phone) = self.phone() else {
            return false;
        };
        let response_topic = phone.response_topic(target_index, spec).clone();
        let refused = phone
            .refused
            .iter()
            .find(|(topic, _)| **topic == *response_topic)
            .map(|(_, reason)| reason.clone());
        let (seq, correlation) = phone.tracker.open(now);
        let more = spec.max_requests.is_none_or(|max| seq < max);
        out.tally.requests.sent += 1;
        out.second(now).sent += 1;
        out.tally.targets.topic(request_topic).counts.sent += 1;
        if out.shared.narration.active() {
            let exchange = Exchange {
                published: refused.is_none(),
                topic: request_topic.into(),
                response_topic: response_topic.clone(),
                correlation: correlation.clone(),
                payload: payload.clone(),
                without_correlation: !spec.correlation_data,
            };
            out.shared
                .narration
                .tell(|n| n.request(self.id(), seq, &exchange));
        }
        if let Some(refused) = refused {
            // Nobody could ever hear the answer: the request fails without being sent.
            let reason = Failure::ResponseTopicRefused {
                topic: response_topic.to_string(),
                reason: refused,
            };
            self.request_failed(seq, reason, now, out);
            return more;
        }
        let mut msg = Outgoing {
            topic: request_topic.to_owned(),
            payload,
            qos: self.qos,
            retain: false,
            properties: if spec.correlation_data {
                PublishProperties {
                    response_topic: Some(response_topic.to_string()),
                    correlation_data: Some(correlation.clone()),
                    ..PublishProperties::default()
                }
            } else {
                // As before MQTT 5: nothing on the request ties an answer to it. Its name
                // goes along for the report only (see `REQUEST_TAG`).
                let name = String::from_utf8_lossy(&correlation).into_owned();
                PublishProperties {
                    response_topic: Some(response_topic.to_string()),
                    user_properties: vec![(super::REQUEST_TAG.to_owned(), name)],
                    ..PublishProperties::default()
                }
            },
            tag: 0,
        };
        let mut twice = false;
        if let Some((kind, params)) = self.next_fault(FaultClass::Request) {
            twice = kind == FaultKind::DuplicateRequest;
            let what = self.spoil_request(&mut msg, kind, params);
            if kind == FaultKind::WildcardResponseTopic {
                // What the broker makes of it shows on the connection.
                self.watch_fault(correlation.clone(), now);
            }
            let at_s = self.run_time(now, out.shared);
            out.shared
                .stories
                .injected(at_s, self.id(), kind, correlation, what, true);
        }
        let again = twice.then(|| msg.clone());
        if let Err(e) = self.publish_tagged(msg, seq, now, out) {
            self.request_failed(seq, Failure::NotSent(e.to_string()), now, out);
            return more;
        }
        if let Some(again) = again {
            // The same request, Correlation Data and all: the backend should answer once, or
            // the phone counts a duplicate answer.
            self.publish_counted(again, now, out);
        }
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
                self.rng.payloads.fill(&mut bytes[..]);
                msg.payload = Bytes::from(bytes);
                format!("sent with {} random bytes as payload", params.size)
            }
            FaultKind::DuplicateRequest => "sent twice with the same Correlation Data".into(),
            other => format!("{} does not apply to a request", other.as_str()),
        }
    }

    /// An answer arrived on one of the phone's Response Topics.
    pub(super) fn phone_answer(&mut self, publish: PublishPacket, now: Instant, out: &mut Out<'_>) {
        let with_correlation = self.phone_spec().is_none_or(|p| p.correlation_data);
        let Some(phone) = self.phone() else { return };
        // Read once: the answer's own Correlation Data (`correlation` below is the request's
        // name, which a phone without Correlation Data takes from its oldest request).
        let received = super::correlation_of(&publish);
        let (verdict, correlation) = if with_correlation {
            let verdict = phone.tracker.answer(received.as_deref(), now);
            (verdict, received.clone().unwrap_or_default())
        } else {
            // Without Correlation Data an answer can only be taken for the oldest request
            // still open: right if answers come back in order and are all this phone's.
            let (verdict, name) = phone.tracker.answer_oldest(now);
            if let Verdict::Matched { .. } | Verdict::Overdue { .. } = verdict {
                let truth = super::user_property(&publish, super::REQUEST_TAG);
                if truth.is_some_and(|t| t.as_bytes() != &name[..]) {
                    out.tally.requests.mixed_up += 1;
                    self.tell_mixed_up(&publish, &name, truth.unwrap_or_default(), out);
                }
            }
            (verdict, name)
        };
        let timeout = self.phone_spec().map(|p| p.timeout);
        let second = out.second(now);
        match verdict {
            Verdict::Matched { latency, seq } => {
                second.matched += 1;
                second.record_latency(latency);
                let error = is_error_answer(&publish.payload);
                second.error_answers += u64::from(error);
                let at_s = self.run_time(now, out.shared);
                if let Some(target) = self.target_of(seq, out) {
                    target.counts.matched += 1;
                    target.counts.record_latency(latency);
                    target.counts.error_answers += u64::from(error);
                    target.answered((at_s * 1000.0).round() / 1000.0);
                }
                out.tally.requests.matched += 1;
                out.tally.latency.record(latency);
                if error {
                    out.tally.requests.error_answers += 1;
                    self.sample("error", &publish, now, out, || {
                        "a JSON object with an `error` field".into()
                    });
                }
                if let Some(why) = self
                    .phone_spec()
                    .and_then(|p| p.expect_answer.as_ref())
                    .and_then(|check| check.failure(&publish.payload))
                {
                    out.tally.requests.bad_answers += 1;
                    self.sample("bad", &publish, now, out, || {
                        format!("fails expect_answer: {why}")
                    });
                }
                let payload = publish.payload.clone();
                let outcome = Outcome::Matched { latency, payload };
                self.ended(&correlation, outcome, &publish.topic_name, out);
                self.request_ended(now, out);
            }
            Verdict::Overdue { latency, seq } => {
                second.late += 1;
                out.tally.requests.late += 1;
                if let Some(target) = self.target_of(seq, out) {
                    target.counts.late += 1;
                }
                self.ended(
                    &correlation,
                    Outcome::Late { latency },
                    &publish.topic_name,
                    out,
                );
                self.request_ended(now, out);
            }
            // A redelivery (DUP) is the broker keeping its QoS promise after a lost ack, not a
            // responder answering twice.
            Verdict::Duplicate if publish.dup => {
                tracing::debug!(device = %self.id(), "answer redelivered with DUP");
            }
            Verdict::Duplicate => {
                out.tally.requests.duplicate_responses += 1;
                out.shared
                    .stories
                    .effect(&correlation, || "then a duplicate answer".into());
                self.sample("duplicate", &publish, now, out, || {
                    "a second answer to one request".into()
                });
                self.tell_stray(&publish, Stray::Duplicate, out);
            }
            Verdict::Late { latency, seq } => {
                // The request was counted timed out; it ends as late instead, in the timeline
                // too: its deadline passed `timeout` after it was sent.
                second.late += 1;
                let q = &mut out.tally.requests;
                q.timed_out = q.timed_out.saturating_sub(1);
                q.late += 1;
                if let Some(timeout) = timeout {
                    let slot = out.second(deadline(now, latency, timeout));
                    slot.timed_out = slot.timed_out.saturating_sub(1);
                }
                if let Some(target) = self.target_of(seq, out) {
                    target.counts.late += 1;
                    target.counts.timed_out = target.counts.timed_out.saturating_sub(1);
                }
                let ms = latency.as_secs_f64() * 1000.0;
                self.tell_stray(&publish, Stray::Late { ms }, out);
                out.shared.stories.effect(&correlation, || {
                    format!(
                        "then answered late, {:.2}s after sending",
                        latency.as_secs_f64()
                    )
                });
            }
            Verdict::Unmatched
                if out
                    .shared
                    .outside
                    .answered(&publish.topic_name, received.as_deref()) =>
            {
                out.tally.requests.others_answers += 1;
                self.tell_stray(&publish, Stray::Outsiders, out);
            }
            Verdict::Unmatched => {
                out.tally.requests.unmatched_responses += 1;
                let has_correlation = received.is_some();
                self.sample("unmatched", &publish, now, out, || {
                    if has_correlation {
                        "its Correlation Data names no request of this phone".into()
                    } else {
                        "it carries no Correlation Data, so it names no request".into()
                    }
                });
                let why = if with_correlation {
                    Stray::Unmatched
                } else {
                    Stray::NothingOpen
                };
                self.tell_stray(&publish, why, out);
            }
        }
    }

    /// Narrates an answer taken for request `name` that belonged to request `truth`.
    fn tell_mixed_up(&self, publish: &PublishPacket, name: &Bytes, truth: &str, out: &mut Out<'_>) {
        if out.shared.narration.active() {
            let why = Stray::MixedUp {
                taken: String::from_utf8_lossy(name).into_owned(),
                truth: truth.to_owned(),
            };
            out.shared
                .narration
                .tell(|n| n.mixed_up(self.id(), &publish.topic_name, &publish.payload, name, &why));
        }
    }

    /// Keeps an answer as a sample for the report, while the shard keeps samples.
    fn sample(
        &self,
        kind: &str,
        publish: &PublishPacket,
        now: Instant,
        out: &mut Out<'_>,
        why: impl FnOnce() -> String,
    ) {
        if !out.tally.wants_sample() {
            return;
        }
        let show = crate::narrate::show;
        let sample = AnswerSample {
            kind: kind.to_owned(),
            phone: self.id().to_owned(),
            topic: publish.topic_name.clone(),
            correlation: super::correlation_of(publish).map_or_else(|| "none".into(), |c| show(&c)),
            payload: show(&publish.payload),
            at_s: (self.run_time(now, out.shared) * 1000.0).round() / 1000.0,
            why: why(),
        };
        out.tally.sample(sample);
    }

    /// Narrates an answer that ended no request.
    fn tell_stray(&self, publish: &PublishPacket, why: Stray, out: &mut Out<'_>) {
        if out.shared.narration.active() {
            let correlation = super::correlation_of(publish);
            out.shared.narration.tell(|n| {
                let correlation = correlation.as_deref();
                n.stray(
                    self.id(),
                    &publish.topic_name,
                    &publish.payload,
                    correlation,
                    &why,
                )
            });
        }
    }

    /// The request `seq` failed: refused by the broker, or held back.
    pub(super) fn request_failed(
        &mut self,
        seq: u64,
        reason: Failure,
        now: Instant,
        out: &mut Out<'_>,
    ) {
        if seq & NOT_A_REQUEST != 0 {
            return;
        }
        let Some(phone) = self.phone() else { return };
        if !phone.tracker.fail(seq) {
            return;
        }
        let correlation = phone.tracker.correlation(seq);
        tracing::debug!(device = %self.id(), seq, %reason, "request failed");
        out.tally.requests.failed += 1;
        out.second(now).failed += 1;
        if let Some(target) = self.target_of(seq, out) {
            target.counts.failed += 1;
        }
        self.ended(&correlation, Outcome::Failed { reason }, "", out);
        self.request_ended(now, out);
    }
}

/// A JSON object with an `error` field, as fleetsim's responders and many backends answer a
/// request they could not carry out. Only small objects that mention the key at all are
/// parsed: this runs on every matched answer.
fn is_error_answer(payload: &[u8]) -> bool {
    payload.len() <= 4096
        && payload.first() == Some(&b'{')
        && payload.windows(7).any(|w| w == b"\"error\"")
        && serde_json::from_slice::<serde_json::Value>(payload)
            .is_ok_and(|v| v.get("error").is_some())
}

#[cfg(test)]
mod tests;
