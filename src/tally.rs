//! What devices count, where they run: one [`Tally`] per shard (an arbiter and its devices),
//! updated in place as things happen, with no message per request. The runner takes snapshots
//! (at the end, and whenever it wants to show progress) and adds them up: a snapshot is plain
//! serde data and tallies merge by addition, so shards of several processes can be merged the
//! same way.

use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::report::{
    AnswerSample, Devices, DurationHistogram, Refusal, Refusals, Requests, Responders,
    ResponseInfo, ResponseInfoUse, Telemetry,
};
use crate::timeline::{ByTarget, Timeline};

/// How many refusals and Response Information uses a tally keeps in full (the rest are only
/// counted).
pub const TOLD_IN_FULL: usize = 20;

/// The counts of one shard. `links.total`, `links.by_kind`, `requests.in_flight` and
/// `requests.latency_ms` are filled in by the report, from the fleet and the histogram.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    pub links: Devices,
    pub requests: Requests,
    /// Round trips of matched requests.
    pub latency: DurationHistogram,
    pub responders: Responders,
    pub telemetry: Telemetry,
    pub response_info: ResponseInfo,
    pub refusals: Refusals,
    /// The run second by second.
    pub timeline: Timeline,
    /// The requests by request topic.
    pub targets: ByTarget,
}

impl Tally {
    /// Adds `other` to this tally. Samples told in full keep the first [`TOLD_IN_FULL`].
    pub fn merge(&mut self, other: &Tally) {
        let (a, b) = (&mut self.links, &other.links);
        a.connected += b.connected;
        a.reconnects += b.reconnects;
        a.unplanned_drops += b.unplanned_drops;
        add_map(&mut a.drops_by_reason, &b.drops_by_reason);
        a.planned_drops += b.planned_drops;
        a.offline_at_end += b.offline_at_end;
        a.disconnected_s += b.disconnected_s;
        a.queue_overflows += b.queue_overflows;
        a.unsent_too_large += b.unsent_too_large;
        a.poison_dropped += b.poison_dropped;

        add_requests(&mut self.requests, &other.requests);
        keep_first(&mut self.requests.samples, &other.requests.samples);
        self.latency.merge(&other.latency);
        add_responders(&mut self.responders, &other.responders);

        let (a, b) = (&mut self.telemetry, &other.telemetry);
        a.published += b.published;
        a.skipped_offline += b.skipped_offline;
        a.skipped_backlog += b.skipped_backlog;

        let (a, b) = (&mut self.response_info, &other.response_info);
        a.requested += b.requested;
        a.received += b.received;
        a.fallback += b.fallback;
        keep_first(&mut a.devices, &b.devices);

        let (a, b) = (&mut self.refusals, &other.refusals);
        a.connect += b.connect;
        a.subscribe += b.subscribe;
        a.publish += b.publish;
        add_map(&mut a.by_reason, &b.by_reason);
        keep_first(&mut a.events, &b.events);

        self.timeline.merge(&other.timeline);
        self.targets.merge(&other.targets);
    }

    /// A refusal, counted, and told in full while there is room.
    /// Whether another answer sample would still be kept (check before building one).
    pub fn wants_sample(&self) -> bool {
        self.requests.samples.len() < TOLD_IN_FULL
    }

    pub fn sample(&mut self, sample: AnswerSample) {
        if self.wants_sample() {
            self.requests.samples.push(sample);
        }
    }

    pub fn refusal(&mut self, refusal: Refusal) {
        let r = &mut self.refusals;
        match refusal.what.as_str() {
            "connect" => r.connect += 1,
            "subscribe" => r.subscribe += 1,
            _ => r.publish += 1,
        }
        *r.by_reason.entry(refusal.reason.clone()).or_insert(0) += 1;
        if r.events.len() < TOLD_IN_FULL {
            r.events.push(refusal);
        }
    }

    /// What a device made of Response Information on its first connection.
    pub fn response_info(&mut self, used: ResponseInfoUse) {
        let r = &mut self.response_info;
        r.requested += 1;
        if used.fallback {
            r.fallback += 1;
        } else {
            r.received += 1;
        }
        if r.devices.len() < TOLD_IN_FULL {
            r.devices.push(used);
        }
    }
}

fn add_map(
    into: &mut std::collections::BTreeMap<String, u64>,
    from: &std::collections::BTreeMap<String, u64>,
) {
    for (key, n) in from {
        *into.entry(key.clone()).or_insert(0) += n;
    }
}

/// The request counters of `b` added to `a` (not the samples, kept by who asks for them).
fn add_requests(a: &mut Requests, b: &Requests) {
    a.sent += b.sent;
    a.matched += b.matched;
    a.late += b.late;
    a.timed_out += b.timed_out;
    a.failed += b.failed;
    a.skipped_offline += b.skipped_offline;
    a.skipped_backlog += b.skipped_backlog;
    a.unmatched_responses += b.unmatched_responses;
    a.duplicate_responses += b.duplicate_responses;
    a.others_answers += b.others_answers;
    a.mixed_up += b.mixed_up;
    a.error_answers += b.error_answers;
    a.bad_answers += b.bad_answers;
}

fn add_responders(a: &mut Responders, b: &Responders) {
    a.received += b.received;
    a.answered += b.answered;
    a.without_response_topic += b.without_response_topic;
    a.rejected += b.rejected;
    a.withheld += b.withheld;
    a.from_outside += b.from_outside;
}

fn keep_first<T: Clone>(into: &mut Vec<T>, from: &[T]) {
    let room = TOLD_IN_FULL.saturating_sub(into.len());
    into.extend(from.iter().take(room).cloned());
}

/// A shard's tally, shared by its devices (all on one thread: the lock is never contended but
/// by the runner's rare snapshots).
#[derive(Debug, Clone, Default)]
pub struct ShardTally(Arc<Mutex<Tally>>);

impl ShardTally {
    pub fn lock(&self) -> MutexGuard<'_, Tally> {
        // A device that panicked while counting leaves counts that are still counts.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn snapshot(&self) -> Tally {
        self.lock().clone()
    }
}

/// What a live view of the run reads (the progress line, `--metrics`): the counters and the
/// round-trip histogram, added up over the shards, each read under its lock without copying
/// its samples, timeline or per-topic counts.
#[derive(Debug, Clone, Default)]
pub struct Glance {
    pub requests: Requests,
    pub responders: Responders,
    pub unplanned_drops: u64,
    /// Devices connected now.
    pub connected: i64,
    pub latency: DurationHistogram,
}

impl Glance {
    pub fn of<'a>(shards: impl IntoIterator<Item = &'a ShardTally>) -> Self {
        let mut glance = Self::default();
        for shard in shards {
            let t = shard.lock();
            add_requests(&mut glance.requests, &t.requests);
            add_responders(&mut glance.responders, &t.responders);
            glance.unplanned_drops += t.links.unplanned_drops;
            glance.connected += t.timeline.connected();
            glance.latency.merge(&t.latency);
        }
        glance
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn refusal(device: &str) -> Refusal {
        Refusal {
            device: device.into(),
            what: "publish".into(),
            topic: Some("t".into()),
            reason: "NotAuthorized (0x87)".into(),
        }
    }

    #[test]
    fn tallies_merge_by_addition_and_keep_the_first_samples() {
        let mut a = Tally::default();
        let mut b = Tally::default();
        a.requests.sent = 3;
        a.requests.matched = 3;
        a.latency.record(Duration::from_millis(1));
        b.requests.sent = 4;
        b.requests.timed_out = 4;
        b.latency.record(Duration::from_millis(9));
        a.links.drops_by_reason.insert("broker_closed".into(), 1);
        b.links.drops_by_reason.insert("broker_closed".into(), 2);
        b.links
            .drops_by_reason
            .insert("keepalive_timeout".into(), 1);
        for i in 0..15 {
            a.refusal(refusal(&format!("a{i}")));
            b.refusal(refusal(&format!("b{i}")));
        }
        // Through JSON, as snapshots of other processes would come.
        let b: Tally = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
        a.merge(&b);
        assert_eq!(
            (a.requests.sent, a.requests.matched, a.requests.timed_out),
            (7, 3, 4)
        );
        assert_eq!(a.latency.len(), 2);
        assert_eq!(a.links.drops_by_reason["broker_closed"], 3);
        assert_eq!(a.links.drops_by_reason["keepalive_timeout"], 1);
        assert_eq!(a.refusals.publish, 30);
        assert_eq!(a.refusals.events.len(), TOLD_IN_FULL);
        assert_eq!(a.refusals.events[15].device, "b0", "a's first, then b's");
    }
}
