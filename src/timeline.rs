//! The run second by second, and target by target: what was sent, answered, timed out, how
//! slow the answers were and how many devices were connected, so a backend that crashed at
//! second 12 shows as the second its answers stopped (and which of its topics went silent),
//! not as 10 % loss spread over the run.
//!
//! Each shard's [`Timeline`] counts events into the slot of the second they happen in (an
//! index computed from the run's start, no timer, no allocation once a slot exists) and
//! timelines merge by addition like the rest of the tally. At most [`MAX_SLOTS`] slots are
//! kept: past that a slot covers twice as long (2 s, then 4 s, ...), so memory stays bounded
//! however long the run.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Slots kept at most; a longer run halves its resolution instead of growing.
pub const MAX_SLOTS: usize = 3600;
/// Request topics counted one by one; the requests to any further topic are counted together
/// as `other`.
pub const MAX_TARGETS: usize = 1000;
/// Latency buckets: four per doubling from 50 us, so the last one starts past 50 s.
const BUCKETS: usize = 80;
const FIRST_BUCKET_US: f64 = 50.0;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// Seconds each slot covers.
    pub width_s: u32,
    pub slots: Vec<Slot>,
}

impl Default for Timeline {
    fn default() -> Self {
        Self {
            width_s: 1,
            slots: Vec::new(),
        }
    }
}

/// What happened in one slot. `connected` is the change in connected devices during it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Slot {
    pub sent: u64,
    pub matched: u64,
    pub late: u64,
    pub timed_out: u64,
    pub failed: u64,
    pub error_answers: u64,
    pub connected: i64,
    /// Matched round trips by latency bucket; empty until the first.
    pub latency: Vec<u32>,
}

impl Timeline {
    /// Devices connected at the latest slot: the changes of every slot added up.
    pub fn connected(&self) -> i64 {
        self.slots.iter().map(|s| s.connected).sum()
    }

    /// The slot for an event `since` the run started (the dial-in counts in the first).
    pub fn at(&mut self, since: Duration) -> &mut Slot {
        let mut index = since.as_secs() / u64::from(self.width_s);
        while index >= MAX_SLOTS as u64 {
            self.coarsen();
            index = since.as_secs() / u64::from(self.width_s);
        }
        let index = index as usize;
        if self.slots.len() <= index {
            self.slots.resize_with(index + 1, Slot::default);
        }
        &mut self.slots[index]
    }

    /// Halves the resolution: each slot covers twice as long, the counts of each pair added.
    fn coarsen(&mut self) {
        let slots = std::mem::take(&mut self.slots);
        let mut pairs = slots.chunks(2);
        self.slots = pairs
            .by_ref()
            .map(|pair| {
                let mut slot = pair[0].clone();
                if let Some(next) = pair.get(1) {
                    slot.add(next);
                }
                slot
            })
            .collect();
        self.width_s = self.width_s.saturating_mul(2);
    }

    /// Adds `other` in (shards' timelines; the coarser resolution wins).
    pub fn merge(&mut self, other: &Timeline) {
        let mut other = other.clone();
        while other.width_s < self.width_s {
            other.coarsen();
        }
        while self.width_s < other.width_s {
            self.coarsen();
        }
        if self.slots.len() < other.slots.len() {
            self.slots.resize_with(other.slots.len(), Slot::default);
        }
        for (a, b) in self.slots.iter_mut().zip(&other.slots) {
            a.add(b);
        }
    }
}

impl Slot {
    pub fn record_latency(&mut self, latency: Duration) {
        if self.latency.is_empty() {
            self.latency = vec![0; BUCKETS];
        }
        let us = latency.as_secs_f64() * 1e6;
        let bucket = if us <= FIRST_BUCKET_US {
            0
        } else {
            ((us / FIRST_BUCKET_US).log2() * 4.0) as usize
        };
        let bucket = bucket.min(BUCKETS - 1);
        self.latency[bucket] = self.latency[bucket].saturating_add(1);
    }

    fn add(&mut self, other: &Slot) {
        self.sent += other.sent;
        self.matched += other.matched;
        self.late += other.late;
        self.timed_out += other.timed_out;
        self.failed += other.failed;
        self.error_answers += other.error_answers;
        self.connected += other.connected;
        if !other.latency.is_empty() {
            if self.latency.is_empty() {
                self.latency = vec![0; BUCKETS];
            }
            for (a, b) in self.latency.iter_mut().zip(&other.latency) {
                *a = a.saturating_add(*b);
            }
        }
    }

    /// The 99th percentile of the slot's round trips, in ms, as the upper edge of its bucket
    /// (within a fifth of the true value); None without any.
    pub fn p99_ms(&self) -> Option<f64> {
        self.percentile_ms(99)
    }

    /// The `percent`th percentile of the slot's round trips, in ms (see [`Slot::p99_ms`]).
    pub fn percentile_ms(&self, percent: u64) -> Option<f64> {
        let total: u64 = self.latency.iter().map(|&n| u64::from(n)).sum();
        if total == 0 {
            return None;
        }
        let want = (total * percent).div_ceil(100);
        let mut seen = 0;
        for (i, &n) in self.latency.iter().enumerate() {
            seen += u64::from(n);
            if seen >= want {
                let upper_us = FIRST_BUCKET_US * 2f64.powf((i + 1) as f64 / 4.0);
                return Some((upper_us / 1000.0 * 1000.0).round() / 1000.0);
            }
        }
        None
    }
}

/// One slot as the report shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Second {
    /// Start of the slot, in seconds since the run started.
    pub t_s: u64,
    pub sent: u64,
    pub matched: u64,
    pub late: u64,
    pub timed_out: u64,
    pub failed: u64,
    pub error_answers: u64,
    /// Devices connected at the end of the slot.
    pub connected: i64,
    pub p99_ms: Option<f64>,
}

/// The report's `timeline`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TimelineReport {
    pub width_s: u32,
    pub seconds: Vec<Second>,
}

impl From<&Timeline> for TimelineReport {
    fn from(t: &Timeline) -> Self {
        let mut connected = 0;
        let seconds = t
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| {
                connected += s.connected;
                Second {
                    t_s: i as u64 * u64::from(t.width_s),
                    sent: s.sent,
                    matched: s.matched,
                    late: s.late,
                    timed_out: s.timed_out,
                    failed: s.failed,
                    error_answers: s.error_answers,
                    connected,
                    p99_ms: s.p99_ms(),
                }
            })
            .collect();
        Self {
            width_s: t.width_s,
            seconds,
        }
    }
}

/// The requests to one topic: counts, latency, and when its answers began and stopped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetCounts {
    pub counts: Slot,
    /// Seconds from the run's start to the first and the last matched answer.
    pub first_answer_s: Option<f64>,
    pub last_answer_s: Option<f64>,
}

impl TargetCounts {
    /// A matched answer, `at_s` seconds into the run.
    pub fn answered(&mut self, at_s: f64) {
        self.first_answer_s = Some(self.first_answer_s.map_or(at_s, |s| s.min(at_s)));
        self.last_answer_s = Some(self.last_answer_s.map_or(at_s, |s| s.max(at_s)));
    }

    fn add(&mut self, other: &TargetCounts) {
        self.counts.add(&other.counts);
        for (mine, theirs, pick) in [
            (
                &mut self.first_answer_s,
                other.first_answer_s,
                f64::min as fn(f64, f64) -> f64,
            ),
            (&mut self.last_answer_s, other.last_answer_s, f64::max),
        ] {
            *mine = match (*mine, theirs) {
                (Some(a), Some(b)) => Some(pick(a, b)),
                (a, b) => a.or(b),
            };
        }
    }
}

/// The requests of a shard by request topic, bounded by [`MAX_TARGETS`]. Looking a topic up
/// allocates nothing; a topic's first request allocates its name once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ByTarget {
    pub topics: HashMap<String, TargetCounts>,
    /// Every topic past the first [`MAX_TARGETS`], together.
    pub other: TargetCounts,
}

impl ByTarget {
    pub fn topic(&mut self, topic: &str) -> &mut TargetCounts {
        if self.topics.len() >= MAX_TARGETS && !self.topics.contains_key(topic) {
            return &mut self.other;
        }
        // Two lookups on a topic's first request only, so later ones allocate nothing.
        if !self.topics.contains_key(topic) {
            self.topics
                .insert(topic.to_owned(), TargetCounts::default());
        }
        self.topics.get_mut(topic).expect("inserted above")
    }

    pub fn merge(&mut self, other: &ByTarget) {
        for (topic, counts) in &other.topics {
            self.topic(topic).add(counts);
        }
        self.other.add(&other.other);
    }
}

/// One request topic as the report shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetReport {
    /// The request topic; `(other topics)` for those past the first [`MAX_TARGETS`].
    pub topic: String,
    pub sent: u64,
    pub matched: u64,
    pub late: u64,
    pub timed_out: u64,
    pub failed: u64,
    pub error_answers: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub first_answer_s: Option<f64>,
    pub last_answer_s: Option<f64>,
}

impl ByTarget {
    /// The report's `targets`, by topic name, `(other topics)` last.
    pub fn report(&self) -> Vec<TargetReport> {
        let row = |topic: &str, t: &TargetCounts| TargetReport {
            topic: topic.to_owned(),
            sent: t.counts.sent,
            matched: t.counts.matched,
            late: t.counts.late,
            timed_out: t.counts.timed_out,
            failed: t.counts.failed,
            error_answers: t.counts.error_answers,
            p50_ms: t.counts.percentile_ms(50),
            p99_ms: t.counts.p99_ms(),
            first_answer_s: t.first_answer_s,
            last_answer_s: t.last_answer_s,
        };
        let mut rows: Vec<_> = self.topics.iter().map(|(k, v)| row(k, v)).collect();
        rows.sort_by(|a, b| a.topic.cmp(&b.topic));
        if self.other.counts.sent > 0 {
            rows.push(row("(other topics)", &self.other));
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_land_in_the_second_they_happen_in() {
        let mut t = Timeline::default();
        t.at(Duration::from_millis(300)).sent += 1;
        t.at(Duration::from_millis(2_100)).sent += 2;
        assert_eq!(t.slots.len(), 3);
        assert_eq!(
            t.slots.iter().map(|s| s.sent).collect::<Vec<_>>(),
            [1, 0, 2]
        );
    }

    #[test]
    fn a_long_run_halves_its_resolution_instead_of_growing() {
        let mut t = Timeline::default();
        for s in 0..(MAX_SLOTS as u64 * 3) {
            t.at(Duration::from_secs(s)).sent += 1;
        }
        assert_eq!(t.width_s, 4);
        assert!(t.slots.len() <= MAX_SLOTS);
        assert_eq!(
            t.slots.iter().map(|s| s.sent).sum::<u64>(),
            MAX_SLOTS as u64 * 3
        );
        assert_eq!(t.slots[0].sent, 4);
    }

    #[test]
    fn timelines_merge_by_addition_at_the_coarser_resolution() {
        let (mut a, mut b) = (Timeline::default(), Timeline::default());
        a.at(Duration::from_secs(1)).matched += 1;
        for s in 0..(MAX_SLOTS as u64 + 1) {
            b.at(Duration::from_secs(s)).sent += 1;
        }
        a.merge(&b);
        assert_eq!(a.width_s, 2);
        assert_eq!((a.slots[0].sent, a.slots[0].matched), (2, 1));
        assert_eq!(
            a.slots.iter().map(|s| s.sent).sum::<u64>(),
            MAX_SLOTS as u64 + 1
        );
    }

    #[test]
    fn p99_is_read_from_the_buckets_within_a_fifth() {
        let mut s = Slot::default();
        for _ in 0..99 {
            s.record_latency(Duration::from_micros(400));
        }
        s.record_latency(Duration::from_millis(30));
        let p99 = s.p99_ms().unwrap();
        assert!((0.4..=0.48).contains(&p99), "{p99}");
        s.record_latency(Duration::from_millis(30));
        let p99 = s.p99_ms().unwrap();
        assert!((30.0..=36.0).contains(&p99), "{p99}");
        assert_eq!(Slot::default().p99_ms(), None);
    }

    #[test]
    fn connected_is_the_running_sum_of_changes() {
        let mut t = Timeline::default();
        t.at(Duration::ZERO).connected += 3;
        t.at(Duration::from_secs(2)).connected -= 1;
        let r = TimelineReport::from(&t);
        assert_eq!(
            r.seconds.iter().map(|s| s.connected).collect::<Vec<_>>(),
            [3, 3, 2]
        );
    }

    #[test]
    fn targets_are_bounded_and_merge_by_topic_keeping_first_and_last_answers() {
        let mut a = ByTarget::default();
        for i in 0..(MAX_TARGETS + 5) {
            a.topic(&format!("cmnd/{i}")).counts.sent += 1;
        }
        assert_eq!(a.topics.len(), MAX_TARGETS);
        assert_eq!(a.other.counts.sent, 5);
        let mut b = ByTarget::default();
        b.topic("cmnd/0").answered(3.0);
        b.topic("cmnd/0").answered(9.5);
        a.topic("cmnd/0").answered(1.0);
        b.topic("cmnd/new").counts.sent = 2;
        a.merge(&b);
        let zero = &a.topics["cmnd/0"];
        assert_eq!(
            (zero.first_answer_s, zero.last_answer_s),
            (Some(1.0), Some(9.5))
        );
        assert_eq!(
            a.other.counts.sent, 7,
            "a topic past the bound joins the others"
        );
        let rows = a.report();
        assert_eq!(rows.len(), MAX_TARGETS + 1);
        assert_eq!(rows.last().unwrap().topic, "(other topics)");
        assert_eq!(
            rows.iter().map(|r| r.sent).sum::<u64>(),
            MAX_TARGETS as u64 + 7
        );
    }
}
