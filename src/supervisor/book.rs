//! The outage book: the story of every outage, from the fault to the Will, its ack, and the
//! device learning of it. Pure bookkeeping, told facts with their times, so it is tested
//! without a broker.

use std::time::{Duration, Instant};

use crate::fleet::FaultKind;
use crate::report::{DurationHistogram, Outage as OutageReport, UnexpectedWill, Wills};

/// Brokers publish delayed Wills from a timer (Mosquitto's ticks once a second), and notice a
/// dead socket a little late: how long past its due time a Will may still count as on time.
const WILL_SLACK: Duration = Duration::from_secs(3);
/// After a device is back and its ack was published, how long it may take to reach it.
const LEARN_SLACK: Duration = Duration::from_secs(2);

/// What the book needs to know of a device's Will to judge its timing.
#[derive(Debug, Clone)]
pub struct WillTiming {
    pub delay: Duration,
    pub keepalive: Duration,
    /// The broker publishes a pending Will when the session ends, delay or not.
    pub session_expiry: Duration,
}

/// One device as the book sees it.
#[derive(Debug, Clone)]
pub struct Watched {
    pub id: String,
    pub will: Option<WillTiming>,
}

#[derive(Debug)]
struct Outage {
    device: usize,
    kind: FaultKind,
    /// Not a fault of the schedule: the connection dropped (a network or protocol fault, a
    /// keepalive timeout, the broker). Its Will may or may not come; either is right.
    unplanned: bool,
    incarnation: u32,
    began: Instant,
    /// How long the fault keeps the device away.
    down_for: Duration,
    expect_will: bool,
    /// Why the fault did not happen (the device was not connected), if it did not.
    skipped: Option<String>,
    will_at: Option<Instant>,
    /// Acks in arrival order: who, when.
    acks: Vec<(String, Instant)>,
    back_at: Option<Instant>,
    learned_at: Option<Instant>,
}

impl WillTiming {
    /// How long after the fault the broker publishes the Will, if the device stays away
    /// ([`crate::fleet::will_due_after`], the one rule).
    pub fn due_after(&self, kind: FaultKind) -> Duration {
        let session_expiry = u32::try_from(self.session_expiry.as_secs()).unwrap_or(u32::MAX);
        crate::fleet::will_due_after(kind, self.keepalive, self.delay, session_expiry)
    }

    /// Whether the broker should publish the Will after this fault: the fault must be one that
    /// publishes it, and the device must stay away past its due time. Back sooner, it resumes
    /// its session inside the Will Delay and the broker must drop the Will (that is what `flap`
    /// tests on purpose).
    pub fn expected_after(&self, kind: FaultKind, down_for: Duration) -> bool {
        kind.publishes_will() && down_for > self.due_after(kind)
    }
}

impl Outage {
    /// When the Will should have been published at the latest.
    fn will_deadline(&self, timing: &WillTiming) -> Instant {
        self.began + timing.due_after(self.kind) + WILL_SLACK
    }
}

#[derive(Debug)]
struct Unexpected {
    device: usize,
    incarnation: u32,
    at: Instant,
    /// The fault that preceded it, when the Will belongs to a recorded outage.
    after: Option<FaultKind>,
}

pub struct OutageBook {
    start: Instant,
    ack_timeout: Duration,
    devices: Vec<Watched>,
    by_id: std::collections::HashMap<String, usize>,
    outages: Vec<Outage>,
    unexpected: Vec<Unexpected>,
    /// Acks seen before the outage they answer was known (see [`OutageBook::dropped`]).
    early_acks: Vec<(usize, u32, String, Instant)>,
}

impl OutageBook {
    pub fn new(devices: Vec<Watched>, ack_timeout: Duration, start: Instant) -> Self {
        let by_id = devices
            .iter()
            .enumerate()
            .map(|(i, d)| (d.id.clone(), i))
            .collect();
        Self {
            start,
            ack_timeout,
            by_id,
            devices,
            outages: Vec::new(),
            unexpected: Vec::new(),
            early_acks: Vec::new(),
        }
    }

    /// Times in the report count from here: the start of the run.
    pub fn set_start(&mut self, start: Instant) {
        self.start = start;
    }

    pub fn device_index(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    fn timing(&self, device: usize) -> Option<&WillTiming> {
        self.devices.get(device).and_then(|d| d.will.as_ref())
    }

    /// A fault took connection `incarnation` of `device` down for `down_for`.
    pub fn began(
        &mut self,
        device: usize,
        kind: FaultKind,
        incarnation: u32,
        down_for: Duration,
        at: Instant,
    ) {
        let expect_will = self
            .timing(device)
            .is_some_and(|t| t.expected_after(kind, down_for));
        self.open(device, kind, incarnation, down_for, at)
            .expect_will = expect_will;
    }

    /// A new outage that expects no Will, for the callers to fill in.
    fn open(
        &mut self,
        device: usize,
        kind: FaultKind,
        incarnation: u32,
        down_for: Duration,
        at: Instant,
    ) -> &mut Outage {
        self.outages.push(Outage {
            device,
            kind,
            incarnation,
            began: at,
            down_for,
            unplanned: false,
            expect_will: false,
            skipped: None,
            will_at: None,
            acks: Vec::new(),
            back_at: None,
            learned_at: None,
        });
        let last = self.outages.len() - 1;
        &mut self.outages[last]
    }

    /// A fault was due but the device was not connected.
    pub fn skipped(&mut self, device: usize, kind: FaultKind, at: Instant, reason: String) {
        self.open(device, kind, 0, Duration::ZERO, at).skipped = Some(reason);
    }

    /// Connection `incarnation` of `device` dropped without a scheduled fault.
    ///
    /// The broker publishes the Will as it drops the connection, and the supervisor's own
    /// connection may see it (and its ack) before the device, noticing the drop, says so:
    /// what was filed as unexpected for this connection is adopted here.
    pub fn dropped(&mut self, device: usize, incarnation: u32, at: Instant) {
        let same = |d: usize, i: u32| d == device && i == incarnation;
        let early_will = self
            .unexpected
            .iter()
            .position(|u| same(u.device, u.incarnation) && u.after.is_none())
            .map(|i| self.unexpected.remove(i).at);
        let (acks, others): (Vec<_>, Vec<_>) = std::mem::take(&mut self.early_acks)
            .into_iter()
            .partition(|(d, i, _, _)| same(*d, *i));
        self.early_acks = others;
        // `Kill` is what it looks like to the broker: a socket gone without DISCONNECT.
        let outage = self.open(device, FaultKind::Kill, incarnation, Duration::ZERO, at);
        outage.unplanned = true;
        outage.will_at = early_will;
        outage.acks = acks.into_iter().map(|(_, _, by, at)| (by, at)).collect();
    }

    /// The device is connected again after its latest outage.
    pub fn back(&mut self, device: usize, at: Instant) {
        if let Some(outage) = self
            .outages
            .iter_mut()
            .rev()
            .find(|o| o.device == device && o.skipped.is_none())
            && outage.back_at.is_none()
        {
            outage.back_at = Some(at);
        }
    }

    fn outage_mut(&mut self, device: usize, incarnation: u32) -> Option<&mut Outage> {
        self.outages
            .iter_mut()
            .rev()
            .find(|o| o.device == device && o.incarnation == incarnation && o.skipped.is_none())
    }

    /// The Will of connection `incarnation` of `device` was published.
    pub fn will_seen(&mut self, device: usize, incarnation: u32, at: Instant) {
        match self.outage_mut(device, incarnation) {
            Some(outage) if outage.expect_will => {
                // A QoS 1 Will may arrive twice; the first publication is the one that counts.
                outage.will_at.get_or_insert(at);
            }
            Some(outage) if outage.unplanned => {
                outage.will_at.get_or_insert(at);
            }
            Some(outage) => {
                let after = Some(outage.kind);
                outage.will_at.get_or_insert(at);
                self.unexpected.push(Unexpected {
                    device,
                    incarnation,
                    at,
                    after,
                });
            }
            None => self.unexpected.push(Unexpected {
                device,
                incarnation,
                at,
                after: None,
            }),
        }
    }

    /// Someone acked the Will of connection `incarnation` of `device`.
    pub fn ack_seen(&mut self, device: usize, incarnation: u32, by: String, at: Instant) {
        match self.outage_mut(device, incarnation) {
            Some(outage) => {
                if !outage.acks.iter().any(|(who, _)| *who == by) {
                    outage.acks.push((by, at));
                }
            }
            // Its outage may not be known yet (see `dropped`).
            None => self.early_acks.push((device, incarnation, by, at)),
        }
    }

    /// The device itself received the ack of its connection `incarnation`'s Will.
    pub fn learned(&mut self, device: usize, incarnation: u32, at: Instant) {
        if let Some(outage) = self.outage_mut(device, incarnation) {
            outage.learned_at.get_or_insert(at);
        }
    }

    /// Outages whose story may still change: a Will not yet due, an ack not yet timed out, a
    /// device not yet back, an ack on its way to a device that is back.
    pub fn pending(&self, now: Instant) -> usize {
        self.outages
            .iter()
            .filter(|o| self.open_until(o, now).is_some())
            .count()
    }

    /// When every story that may still change will have settled at the latest (None: all
    /// have): the drain waits no longer than that.
    pub fn settled_by(&self, now: Instant) -> Option<Instant> {
        self.outages
            .iter()
            .filter_map(|o| self.open_until(o, now))
            .max()
    }

    /// Until when this outage's story may still change, if it may.
    fn open_until(&self, o: &Outage, now: Instant) -> Option<Instant> {
        if o.skipped.is_some() {
            return None;
        }
        let will_due = self
            .timing(o.device)
            .filter(|_| o.expect_will && o.will_at.is_none())
            .map(|t| o.will_deadline(t));
        let ack_due = o
            .will_at
            .filter(|_| o.acks.is_empty())
            .map(|will| will + self.ack_timeout);
        let back_due = o
            .back_at
            .is_none()
            .then(|| o.began + o.down_for + LEARN_SLACK);
        let learning = match (o.acks.last(), o.back_at, o.learned_at) {
            (Some((_, ack)), Some(back), None) => Some((*ack).max(back) + LEARN_SLACK),
            _ => None,
        };
        [will_due, ack_due, back_due, learning]
            .into_iter()
            .flatten()
            .filter(|until| now < *until)
            .max()
    }

    fn since_start(&self, at: Instant) -> f64 {
        secs(at.saturating_duration_since(self.start))
    }

    pub fn report(&self) -> Wills {
        let mut wills = Wills::default();
        let mut publish = DurationHistogram::default();
        let mut ack = DurationHistogram::default();
        // Faults scheduled together reach the book in any order: list them by time (to the
        // tenth of a second), then fleet order, so the same run prints the same stories.
        let mut outages: Vec<&Outage> = self.outages.iter().collect();
        outages.sort_by_key(|o| {
            (
                o.began.saturating_duration_since(self.start).as_millis() / 100,
                o.device,
            )
        });
        for o in outages {
            let device = &self.devices[o.device].id;
            let outcome = self.outcome(o);
            match outcome {
                "consumed" | "unconsumed" | "missing" => {
                    wills.expected += 1;
                    if o.will_at.is_some() {
                        wills.published += 1;
                    }
                }
                "suppressed" => wills.suppressed += 1,
                _ => {}
            }
            match outcome {
                "consumed" => wills.consumed += 1,
                "unconsumed" => wills.unconsumed += 1,
                "missing" => wills.missing += 1,
                _ => {}
            }
            if o.learned_at.is_some() {
                wills.learned_on_reconnect += 1;
            }
            let will_after = o.will_at.map(|w| w.saturating_duration_since(o.began));
            let ack_after = match (o.will_at, o.acks.first()) {
                (Some(will), Some((_, at))) => Some(at.saturating_duration_since(will)),
                _ => None,
            };
            if o.expect_will {
                if let Some(d) = will_after {
                    publish.record(d);
                }
                if let Some(d) = ack_after {
                    ack.record(d);
                }
            }
            let report = OutageReport {
                device: device.clone(),
                incarnation: o.incarnation,
                fault: if o.unplanned {
                    "dropped".into()
                } else {
                    o.kind.as_str().into()
                },
                at_s: self.since_start(o.began),
                will_expected: o.expect_will,
                outcome: outcome.into(),
                will_after_s: will_after.map(secs),
                acked_by: o.acks.iter().map(|(who, _)| who.clone()).collect(),
                ack_after_s: ack_after.map(secs),
                back_at_s: o.back_at.map(|at| self.since_start(at)),
                learned_at_s: o.learned_at.map(|at| self.since_start(at)),
                story: String::new(),
            };
            wills.outages.push(OutageReport {
                story: story(&report, o.skipped.as_deref(), self.ack_timeout),
                ..report
            });
        }
        wills.unexpected = self.unexpected.len() as u64;
        wills.unexpected_wills = self
            .unexpected
            .iter()
            .map(|u| UnexpectedWill {
                device: self.devices[u.device].id.clone(),
                incarnation: u.incarnation,
                at_s: self.since_start(u.at),
                after_fault: u.after.map(|k| k.as_str().into()),
            })
            .collect();
        wills.publish_latency_ms = publish.latency();
        wills.ack_latency_ms = ack.latency();
        wills
    }

    fn outcome(&self, o: &Outage) -> &'static str {
        if o.skipped.is_some() {
            return "skipped";
        }
        if o.unplanned {
            return "dropped";
        }
        if self.timing(o.device).is_none() {
            return "no_will";
        }
        match (o.expect_will, o.will_at.is_some(), o.acks.is_empty()) {
            (true, false, _) => "missing",
            (true, true, true) => "unconsumed",
            (true, true, false) => "consumed",
            (false, true, _) => "unexpected",
            (false, false, _) => "suppressed",
        }
    }
}

/// One line per outage, e.g.
/// `kill@5.0s -> will +10ms -> acked by phone +30ms -> learned on reconnect @8.0s`.
fn story(o: &OutageReport, skipped: Option<&str>, ack_timeout: Duration) -> String {
    let mut s = format!("{}@{:.1}s", o.fault, o.at_s);
    if let Some(reason) = skipped {
        return s + &format!(" -> skipped: {reason}");
    }
    match (o.outcome.as_ref(), o.will_after_s) {
        ("no_will", _) => s += " -> no Will registered",
        ("dropped", None) => s += " -> no Will (back in time, or none due)",
        ("dropped", Some(after)) => s += &format!(" -> will {}", offset(after)),
        ("missing", _) => s += " -> Will never published (missing)",
        ("suppressed", _) => s += " -> no Will, as expected (suppressed)",
        ("unexpected", Some(after)) => {
            let after = offset(after);
            s += &format!(" -> Will {after} although none was expected (unexpected)");
        }
        (_, Some(after)) => s += &format!(" -> will {}", offset(after)),
        _ => {}
    }
    if o.will_after_s.is_some() {
        match (o.acked_by.as_slice(), o.ack_after_s) {
            ([], _) => {
                s += &format!(
                    " -> no ack within {} (unconsumed)",
                    humantime::format_duration(ack_timeout)
                )
            }
            (who, Some(after)) => {
                s += &format!(" -> acked by {} {}", who.join(", "), offset(after));
            }
            _ => {}
        }
    }
    match (o.learned_at_s, o.back_at_s) {
        (Some(at), _) => s += &format!(" -> learned on reconnect @{at:.1}s"),
        (None, Some(at)) if !o.acked_by.is_empty() => {
            s += &format!(" -> back @{at:.1}s, never learned of the ack");
        }
        (None, Some(at)) => s += &format!(" -> back @{at:.1}s"),
        (None, None) => {}
    }
    s
}

/// A step's delay as a person reads it: `+0.8ms`, `+12ms`, `+2.35s`.
fn offset(secs: f64) -> String {
    match secs {
        s if s < 0.01 => format!("+{:.1}ms", s * 1000.0),
        s if s < 1.0 => format!("+{:.0}ms", s * 1000.0),
        s => format!("+{s:.2}s"),
    }
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;
    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn book(start: Instant) -> OutageBook {
        let with_will = |id: &str, delay| Watched {
            id: id.into(),
            will: Some(WillTiming {
                delay,
                keepalive: S(2),
                session_expiry: S(300),
            }),
        };
        OutageBook::new(
            vec![
                with_will("light", S(0)),
                with_will("flappy", S(5)),
                Watched {
                    id: "plain".into(),
                    will: None,
                },
            ],
            S(5),
            start,
        )
    }

    #[test]
    fn a_killed_device_whose_will_is_acked_and_learned_tells_the_whole_story() {
        let t0 = Instant::now();
        let mut b = book(t0);
        b.began(0, FaultKind::Kill, 1, S(10), t0 + S(5));
        b.will_seen(0, 1, t0 + S(5) + MS(10));
        b.ack_seen(0, 1, "phone".into(), t0 + S(5) + MS(40));
        b.back(0, t0 + S(8));
        b.learned(0, 1, t0 + S(8) + MS(5));
        assert_eq!(b.pending(t0 + S(9)), 0);
        let w = b.report();
        assert_eq!(
            (w.expected, w.published, w.consumed, w.unconsumed),
            (1, 1, 1, 0)
        );
        assert_eq!((w.missing, w.unexpected, w.learned_on_reconnect), (0, 0, 1));
        let o = &w.outages[0];
        assert_eq!(o.outcome, "consumed");
        assert_eq!(o.acked_by, ["phone"]);
        assert_eq!(o.will_after_s, Some(0.01));
        assert_eq!(o.ack_after_s, Some(0.03));
        assert_eq!(
            o.story,
            "kill@5.0s -> will +10ms -> acked by phone +30ms -> learned on reconnect @8.0s"
        );
        assert!((w.publish_latency_ms.max - 10.0).abs() < 0.1);
        assert!((w.ack_latency_ms.p50 - 30.0).abs() < 0.1);
    }

    #[test]
    fn a_will_nobody_acks_is_unconsumed_once_the_ack_timeout_passes() {
        let t0 = Instant::now();
        let mut b = book(t0);
        b.began(0, FaultKind::DisconnectWithWill, 1, S(10), t0);
        b.will_seen(0, 1, t0 + MS(5));
        b.back(0, t0 + S(1));
        assert_eq!(b.pending(t0 + S(4)), 1, "still within the ack timeout");
        assert_eq!(b.pending(t0 + S(6)), 0);
        let w = b.report();
        assert_eq!(
            (w.expected, w.published, w.consumed, w.unconsumed),
            (1, 1, 0, 1)
        );
        assert!(w.outages[0].story.contains("no ack within 5s (unconsumed)"));
    }

    #[test]
    fn an_expected_will_that_never_comes_is_missing_after_its_deadline() {
        let t0 = Instant::now();
        let mut b = book(t0);
        b.began(0, FaultKind::Stall, 1, S(10), t0);
        b.back(0, t0 + S(1));
        // Stall: 1.5 x 2 s keepalive + 0 s delay + slack.
        assert_eq!(b.pending(t0 + S(5)), 1);
        assert_eq!(b.pending(t0 + S(7)), 0);
        let w = b.report();
        assert_eq!((w.expected, w.published, w.missing), (1, 0, 1));
        assert_eq!(w.outages[0].outcome, "missing");
    }

    #[test]
    fn a_will_is_expected_only_when_the_device_stays_away_past_its_due_time() {
        let timing = WillTiming {
            delay: S(3),
            keepalive: S(2),
            session_expiry: S(300),
        };
        assert!(timing.expected_after(FaultKind::Kill, S(4)));
        assert!(
            !timing.expected_after(FaultKind::Kill, S(2)),
            "back within the delay"
        );
        // A stall is noticed after 1.5 x keepalive (3 s), then the 3 s delay runs.
        assert!(!timing.expected_after(FaultKind::Stall, S(5)));
        assert!(timing.expected_after(FaultKind::Stall, S(7)));
        assert!(!timing.expected_after(FaultKind::Disconnect, S(60)));
        assert!(!timing.expected_after(FaultKind::Flap, S(1)));
        // A session that ends before the delay publishes the Will then.
        let short = WillTiming {
            session_expiry: S(1),
            ..timing
        };
        assert!(short.expected_after(FaultKind::Kill, S(2)));
    }

    #[test]
    fn a_flap_without_will_is_suppressed_and_with_one_is_unexpected() {
        let t0 = Instant::now();
        let mut b = book(t0);
        b.began(1, FaultKind::Flap, 1, S(10), t0);
        b.back(1, t0 + S(1));
        b.began(1, FaultKind::Flap, 2, S(10), t0 + S(10));
        b.will_seen(1, 2, t0 + S(15));
        let w = b.report();
        assert_eq!((w.expected, w.suppressed, w.unexpected), (0, 1, 1));
        assert_eq!(w.outages[0].outcome, "suppressed");
        assert_eq!(w.outages[1].outcome, "unexpected");
        assert_eq!(w.unexpected_wills[0].after_fault.as_deref(), Some("flap"));
        assert_eq!(w.unexpected_wills[0].incarnation, 2);
    }

    #[test]
    fn an_unplanned_drop_tells_its_story_without_counting_as_expected_or_unexpected() {
        let t0 = Instant::now();
        let mut b = book(t0);
        b.dropped(0, 1, t0 + S(2));
        b.will_seen(0, 1, t0 + S(2) + MS(1));
        b.ack_seen(0, 1, "phone".into(), t0 + S(2) + MS(3));
        b.back(0, t0 + S(2) + MS(200));
        b.learned(0, 1, t0 + S(2) + MS(201));
        let w = b.report();
        assert_eq!(
            (w.expected, w.published, w.unexpected, w.unconsumed),
            (0, 0, 0, 0)
        );
        let o = &w.outages[0];
        assert_eq!(
            (o.fault.as_ref(), o.outcome.as_ref()),
            ("dropped", "dropped")
        );
        assert_eq!(o.acked_by, ["phone"]);
        assert_eq!(
            o.story,
            "dropped@2.0s -> will +1.0ms -> acked by phone +2.0ms -> learned on reconnect @2.2s"
        );
    }

    #[test]
    fn a_will_and_ack_seen_before_the_drop_is_reported_are_adopted_by_it() {
        let t0 = Instant::now();
        let mut b = book(t0);
        b.will_seen(0, 2, t0 + MS(1));
        b.ack_seen(0, 2, "phone".into(), t0 + MS(2));
        b.dropped(0, 2, t0 + MS(5));
        let w = b.report();
        assert_eq!(w.unexpected, 0, "{w:#?}");
        assert_eq!(w.outages[0].outcome, "dropped");
        assert_eq!(w.outages[0].acked_by, ["phone"]);
    }

    #[test]
    fn a_will_with_no_outage_behind_it_is_unexpected() {
        let t0 = Instant::now();
        let mut b = book(t0);
        b.will_seen(0, 3, t0 + S(1));
        let w = b.report();
        assert_eq!(w.unexpected, 1);
        assert_eq!(w.unexpected_wills[0].after_fault, None);
        assert_eq!(w.expected, 0);
    }

    #[test]
    fn acks_name_their_incarnation_so_an_old_ack_does_not_answer_a_new_outage() {
        let t0 = Instant::now();
        let mut b = book(t0);
        b.began(0, FaultKind::Kill, 1, S(10), t0);
        b.will_seen(0, 1, t0 + MS(1));
        b.began(0, FaultKind::Kill, 2, S(10), t0 + S(3));
        b.will_seen(0, 2, t0 + S(3));
        b.ack_seen(0, 1, "phone".into(), t0 + S(4));
        let w = b.report();
        assert_eq!(w.outages[0].acked_by, ["phone"]);
        assert!(w.outages[1].acked_by.is_empty());
        assert_eq!((w.consumed, w.unconsumed), (1, 1));
    }

    #[test]
    fn duplicate_wills_and_acks_count_once() {
        let t0 = Instant::now();
        let mut b = book(t0);
        b.began(0, FaultKind::Kill, 1, S(10), t0);
        b.will_seen(0, 1, t0 + MS(1));
        b.will_seen(0, 1, t0 + MS(2));
        b.ack_seen(0, 1, "phone".into(), t0 + MS(3));
        b.ack_seen(0, 1, "phone".into(), t0 + MS(4));
        b.ack_seen(0, 1, "hub".into(), t0 + MS(5));
        let w = b.report();
        assert_eq!((w.published, w.unexpected), (1, 0));
        assert_eq!(w.outages[0].acked_by, ["phone", "hub"]);
    }

    #[test]
    fn skipped_faults_and_devices_without_will_expect_nothing() {
        let t0 = Instant::now();
        let mut b = book(t0);
        b.skipped(0, FaultKind::Kill, t0, "not connected".into());
        b.began(2, FaultKind::Kill, 1, S(10), t0);
        assert_eq!(b.pending(t0), 1, "the device is not back yet");
        b.back(2, t0 + S(10));
        assert_eq!(b.pending(t0 + S(10)), 0);
        let w = b.report();
        assert_eq!(w.expected, 0);
        assert_eq!(w.outages[0].outcome, "skipped");
        assert_eq!(w.outages[0].story, "kill@0.0s -> skipped: not connected");
        assert_eq!(w.outages[1].outcome, "no_will");
    }
}
