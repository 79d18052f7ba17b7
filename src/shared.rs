//! What the devices of every shard share with each other and with the runner: the run's
//! progress (who is ready, who gave up, who still has requests in flight), the stories of
//! faults (a request spoiled by a phone on one shard ends at a light on another), and the
//! exchange trace. Each sits behind a lock that is taken rarely; where devices would touch one
//! on every request, an atomic says first whether there is anything to do.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::Notify;

use crate::fleet::{FaultKind, Fleet};
use crate::narrate::{NarrationOptions, Narrator};
use crate::report::{FaultEvent, Faults};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Everything shared, one per run.
#[derive(Debug)]
pub struct Shared {
    pub progress: Progress,
    pub stories: Stories,
    pub narration: Narration,
    pub outside: Outside,
    pub wills: WillsSeen,
    /// When the run phase began (fault times in the report count from it).
    started: OnceLock<Instant>,
}

impl Shared {
    pub fn new(narration: NarrationOptions) -> Arc<Self> {
        Arc::new(Self {
            progress: Progress::default(),
            stories: Stories::default(),
            narration: Narration::new(narration),
            outside: Outside::default(),
            wills: WillsSeen::default(),
            started: OnceLock::new(),
        })
    }

    pub fn set_started(&self, at: Instant) {
        let _ = self.started.set(at);
    }

    pub fn started(&self) -> Option<Instant> {
        self.started.get().copied()
    }
}

/// Wills the supervisor saw published and acked, as they happen (`--metrics`; the report's
/// `wills` come from the supervisor's book at the end).
#[derive(Debug, Default)]
pub struct WillsSeen {
    published: AtomicU64,
    acked: AtomicU64,
}

impl WillsSeen {
    pub fn published(&self) {
        self.published.fetch_add(1, Ordering::Relaxed);
    }

    pub fn acked(&self) {
        self.acked.fetch_add(1, Ordering::Relaxed);
    }

    /// (published, acked) so far.
    pub fn seen(&self) -> (u64, u64) {
        (
            self.published.load(Ordering::Relaxed),
            self.acked.load(Ordering::Relaxed),
        )
    }
}

/// How many requests from outside the fleet are remembered, for telling their answers from
/// strays (the oldest is forgotten first).
pub const OUTSIDE_REMEMBERED: usize = 256;
/// Longest Response Topic plus Correlation Data remembered of one outside request: the
/// remembered requests stay a few hundred KiB however large the requests were.
pub const OUTSIDE_KEY_BYTES: usize = 1024;

/// Requests from clients outside the fleet (a trainee with MQTTX, another service) that the
/// fleet's responders answered. A fleet phone that shares their Response Topic (the article's
/// `state/{target}/power`) receives those answers too: they are somebody else's, not strays.
///
/// Only requests with Correlation Data are remembered, and only answers carrying the same
/// Correlation Data on the same topic are excused: an answer without it could be anyone's,
/// and stays unmatched. The broker must say who published a request: the embedded broker
/// puts the publisher's client id in an `x-mqtt-client-id` User Property (and strips one a
/// client set itself). Elsewhere nothing is excused, unless a client sets that property
/// itself: fleetsim never excuses an answer it cannot account for.
#[derive(Debug, Default)]
pub struct Outside {
    /// The fleet's client ids (the supervisor's too), gathered the first time a broker names
    /// a publisher: runs on brokers that do not never hold them.
    fleet: OnceLock<HashSet<Box<str>>>,
    /// Whether any is remembered: false keeps phones off the lock.
    any: AtomicBool,
    recent: Mutex<Recent>,
}

/// The last [`OUTSIDE_REMEMBERED`] (Response Topic, Correlation Data), in order to forget the
/// oldest, and as a set to look them up.
#[derive(Debug, Default)]
struct Recent {
    order: VecDeque<(Box<str>, Bytes)>,
    set: HashSet<(Box<str>, Bytes)>,
}

/// The User Property the embedded broker (`mqtt5`) adds to every PUBLISH it forwards.
pub const PUBLISHER_PROPERTY: &str = "x-mqtt-client-id";

impl Outside {
    /// Whether a request published by `publisher` came from outside `fleet`.
    pub fn is_outsider(&self, publisher: &str, fleet: &Fleet) -> bool {
        let ids = self.fleet.get_or_init(|| {
            let devices = fleet.devices.iter().map(|d| d.id.as_str().into());
            devices.chain([fleet.supervisor_id().into()]).collect()
        });
        !ids.contains(publisher)
    }

    /// A responder is answering an outside request on `response_topic`.
    pub fn answering(&self, response_topic: &str, correlation: Option<&Bytes>) {
        let Some(correlation) = correlation.filter(|c| !c.is_empty()) else {
            return;
        };
        if response_topic.len() + correlation.len() > OUTSIDE_KEY_BYTES {
            return;
        }
        // A copy: the received Correlation Data shares the whole read buffer of its frame.
        let key: (Box<str>, Bytes) = (response_topic.into(), Bytes::copy_from_slice(correlation));
        let mut recent = lock(&self.recent);
        if recent.set.contains(&key) {
            return;
        }
        if recent.order.len() == OUTSIDE_REMEMBERED
            && let Some(oldest) = recent.order.pop_front()
        {
            recent.set.remove(&oldest);
        }
        recent.order.push_back(key.clone());
        recent.set.insert(key);
        self.any.store(true, Ordering::Relaxed);
    }

    /// Whether an answer a phone cannot match answers an outside request.
    pub fn answered(&self, topic: &str, correlation: Option<&[u8]>) -> bool {
        let Some(correlation) = correlation.filter(|c| !c.is_empty()) else {
            return false;
        };
        if !self.any.load(Ordering::Relaxed) {
            return false;
        }
        let key = (Box::<str>::from(topic), Bytes::copy_from_slice(correlation));
        lock(&self.recent).set.contains(&key)
    }
}

/// Where the run stands, for the runner's phases: it waits on `changed` instead of polling.
#[derive(Debug, Default)]
pub struct Progress {
    /// Devices started whose first connection has no CONNACK yet: until then the broker may
    /// not even have accepted the socket, which then fills its listen backlog.
    dialing: AtomicU64,
    /// Devices accepted (CONNACK) for the first time but not yet subscribed.
    handshaking: AtomicU64,
    ready: AtomicU64,
    supervisor: AtomicBool,
    failure: Mutex<Option<(String, String)>>,
    /// Phones that still have requests in flight after the run's duration.
    draining: AtomicU64,
    /// Devices that said goodbye and wait for the broker to close their connection.
    leaving: AtomicU64,
    pub changed: Notify,
}

impl Progress {
    /// The runner started a device.
    pub fn dialing_started(&self) {
        self.dialing.fetch_add(1, Ordering::Relaxed);
    }

    /// A device's first connection was accepted (CONNACK): it leaves the dialling window.
    pub fn accepted(&self) {
        self.dialing.fetch_sub(1, Ordering::Relaxed);
        self.handshaking.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_one();
    }

    /// A device is connected and subscribed for the first time.
    pub fn ready(&self) {
        self.handshaking.fetch_sub(1, Ordering::Relaxed);
        self.ready.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_one();
    }

    pub fn dialing(&self) -> u64 {
        self.dialing.load(Ordering::Relaxed)
    }

    pub fn handshaking(&self) -> u64 {
        self.handshaking.load(Ordering::Relaxed)
    }

    /// The supervisor's connection is up and subscribed.
    pub fn supervisor_ready(&self) {
        self.supervisor.store(true, Ordering::Relaxed);
        self.changed.notify_one();
    }

    pub fn supervisor_is_ready(&self) -> bool {
        self.supervisor.load(Ordering::Relaxed)
    }

    pub fn ready_count(&self) -> u64 {
        self.ready.load(Ordering::Relaxed)
    }

    /// A device (or the supervisor's connection) gave up connecting; the first one is kept.
    pub fn failed(&self, device: &str, reason: String) {
        lock(&self.failure).get_or_insert_with(|| (device.to_owned(), reason));
        self.changed.notify_one();
    }

    pub fn failure(&self) -> Option<(String, String)> {
        lock(&self.failure).clone()
    }

    /// A phone winds down with requests in flight; [`Progress::drained`] when they have ended.
    pub fn draining(&self) {
        self.draining.fetch_add(1, Ordering::Relaxed);
    }

    pub fn drained(&self) {
        self.draining.fetch_sub(1, Ordering::Relaxed);
        self.changed.notify_one();
    }

    pub fn still_draining(&self) -> u64 {
        self.draining.load(Ordering::Relaxed)
    }

    /// A device sent its goodbye DISCONNECT; [`Progress::left`] once its connection is closed.
    pub fn leaving(&self) {
        self.leaving.fetch_add(1, Ordering::Relaxed);
    }

    pub fn left(&self) {
        self.leaving.fetch_sub(1, Ordering::Relaxed);
        self.changed.notify_one();
    }

    pub fn still_leaving(&self) -> u64 {
        self.leaving.load(Ordering::Relaxed)
    }
}

/// The faults of the run and what came of each, told in the report. A request or responder
/// fault is keyed by the request's Correlation Data, a connection-level one by a key of its
/// own; what comes of it later (the request's outcome, a late answer, the connection lost and
/// regained) is appended to its entry, whichever device and shard it happens on.
#[derive(Debug, Default)]
pub struct Stories {
    /// Keys waiting for effects: zero in a run without such faults, so the devices' check on
    /// every request outcome is one atomic load.
    watched: AtomicUsize,
    inner: Mutex<StoriesInner>,
}

#[derive(Debug, Default)]
struct StoriesInner {
    faults: Faults,
    by_key: HashMap<Bytes, Vec<usize>>,
}

impl Stories {
    /// A fault was applied (or was due and could not act: `applied` false).
    pub fn injected(
        &self,
        at_s: f64,
        device: &str,
        kind: FaultKind,
        key: Bytes,
        what: String,
        applied: bool,
    ) {
        let mut inner = lock(&self.inner);
        let f = &mut inner.faults;
        if applied {
            f.injected += 1;
            *f.by_kind.entry(kind.as_str().into()).or_insert(0) += 1;
        }
        if f.events.len() >= Faults::TOLD {
            return;
        }
        let index = f.events.len();
        f.events.push(FaultEvent {
            at_s,
            device: device.to_owned(),
            kind: kind.as_str().into(),
            effect: what,
            connection: false,
        });
        // Empty Correlation Data names no request: nothing to wait for.
        if !key.is_empty() {
            inner.by_key.entry(key).or_default().push(index);
            self.watched.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// What came of the fault keyed `key`, if one is: `effect` is only called then.
    pub fn effect(&self, key: &[u8], effect: impl FnOnce() -> String) {
        if self.watched.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut inner = lock(&self.inner);
        let Some(indexes) = inner.by_key.get(key).cloned() else {
            return;
        };
        let effect = effect();
        for i in indexes {
            if let Some(event) = inner.faults.events.get_mut(i) {
                event.effect = format!("{} -> {effect}", event.effect);
            }
        }
    }

    /// Faults injected so far (`--metrics`).
    pub fn injected_so_far(&self) -> u64 {
        lock(&self.inner).faults.injected
    }

    pub fn faults(&self) -> Faults {
        lock(&self.inner).faults.clone()
    }
}

/// The narration, while it still has something to tell: `active` turns false once the first
/// few exchanges are told, and from then on a request costs one atomic load; `setup` says
/// whether connection set-up is told at all (small fleets).
#[derive(Debug)]
pub struct Narration {
    active: AtomicBool,
    /// Requests from outside the fleet are still told (see [`Narrator::tells_outside`]).
    outside: AtomicBool,
    setup: bool,
    inner: Mutex<Narrator>,
}

impl Narration {
    fn new(options: NarrationOptions) -> Self {
        Self {
            active: AtomicBool::new(options.exchanges > 0),
            outside: AtomicBool::new(options.outside > 0),
            setup: options.setup,
            inner: Mutex::new(Narrator::new(options)),
        }
    }

    pub fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// Requests from outside the fleet are still told: one atomic load once they are not.
    pub fn tells_outside(&self) -> bool {
        self.outside.load(Ordering::Relaxed)
    }

    /// Connection set-up is told: a small fleet, and exchanges still to tell.
    pub fn tells_setup(&self) -> bool {
        self.setup && self.active()
    }

    /// Tells a step, under the lock, so steps from every shard come out in the order they
    /// happen.
    pub fn tell(&self, f: impl FnOnce(&mut Narrator)) {
        let mut narrator = lock(&self.inner);
        f(&mut narrator);
        if narrator.finished() {
            self.active.store(false, Ordering::Relaxed);
        }
        if !narrator.tells_outside() {
            self.outside.store(false, Ordering::Relaxed);
        }
    }

    /// The sequence diagram of the narrated steps, if one was asked for.
    pub fn take_diagram(&self) -> Option<String> {
        lock(&self.inner).take_diagram()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effects_reach_the_fault_they_answer_and_cost_nothing_without_one() {
        let stories = Stories::default();
        let mut asked = false;
        stories.effect(b"p:1", || {
            asked = true;
            String::new()
        });
        assert!(!asked, "no fault watched: the effect is never even made");
        let key = Bytes::from_static(b"p:1");
        stories.injected(
            1.0,
            "p",
            FaultKind::NoAnswer,
            key,
            "did not answer".into(),
            true,
        );
        stories.effect(b"p:2", || "other".into());
        stories.effect(b"p:1", || "timed out".into());
        let faults = stories.faults();
        assert_eq!(faults.injected, 1);
        assert_eq!(faults.events[0].effect, "did not answer -> timed out");
    }

    #[test]
    fn only_outside_requests_with_correlation_data_excuse_answers_and_only_the_last_256() {
        let outside = Outside::default();
        let topic = "state/light-in-bedroom/power";
        assert!(!outside.answered(topic, Some(b"req-1")), "nothing seen yet");
        outside.answering(topic, Some(&Bytes::from_static(b"req-1")));
        assert!(outside.answered(topic, Some(b"req-1")));
        assert!(
            !outside.answered(topic, Some(b"req-2")),
            "another request's"
        );
        assert!(
            !outside.answered("state/other", Some(b"req-1")),
            "another topic"
        );
        // Without Correlation Data an answer could be anyone's: it stays unmatched.
        outside.answering(topic, None);
        outside.answering(topic, Some(&Bytes::new()));
        assert!(!outside.answered(topic, None));
        assert!(!outside.answered(topic, Some(b"")));
        // Keys too long to be worth keeping are not kept.
        let long = Bytes::from(vec![b'x'; OUTSIDE_KEY_BYTES]);
        outside.answering(topic, Some(&long));
        assert!(!outside.answered(topic, Some(&long[..])));
        // The oldest is forgotten first.
        for i in 0..OUTSIDE_REMEMBERED {
            outside.answering(topic, Some(&Bytes::from(format!("n{i}"))));
        }
        assert!(!outside.answered(topic, Some(b"req-1")), "forgotten");
        assert!(outside.answered(topic, Some(b"n0")));
        assert_eq!(lock(&outside.recent).set.len(), OUTSIDE_REMEMBERED);
    }

    #[test]
    fn progress_keeps_the_first_failure() {
        let p = Progress::default();
        p.ready();
        p.failed("a", "refused".into());
        p.failed("b", "other".into());
        assert_eq!(p.ready_count(), 1);
        assert_eq!(p.failure(), Some(("a".into(), "refused".into())));
    }
}
