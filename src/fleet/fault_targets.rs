//! What a fault needs from the devices it hits: a request fault only phones, a responder fault
//! only lights and sensors, a network or protocol fault any device; a stall and a flap must be able to do
//! what they are for on every device, and a fault that publishes a Will must not come back as
//! the Will falls due.
//!
//! A fault hitting many devices reports each kind of shortfall once, naming the first device
//! (or, for a stall, the one needing the longest `down_for`) and how many others share it.

use std::time::Duration;

use serde_saphyr::Location;

use super::expand::Entry;
use super::group::GroupPlan;
use super::model::{FaultClass, FaultKind, Kind, will_due_after};
use super::values::Problems;

/// One fault's resolved targets, for the checks that depend on the devices it hits.
pub(super) struct Hit<'a> {
    pub plans: &'a [GroupPlan],
    pub entries: &'a [Entry],
    pub targets: &'a [usize],
    /// The `target` as written, and where.
    pub pattern: &'a str,
    pub target_loc: Location,
    pub field: &'a str,
    /// Zero for request and responder faults.
    pub down_for: Duration,
}

impl Hit<'_> {
    /// Every check that applies to a fault of this kind; `down_for` problems go to `down_at`.
    pub fn check(&self, kind: FaultKind, problems: &mut Problems, down_at: (Location, &str)) {
        match kind.class() {
            FaultClass::Connection => {
                match kind {
                    FaultKind::Stall => self.check_stall(problems, down_at.0, down_at.1),
                    FaultKind::Flap => self.check_flap(problems),
                    _ => {}
                }
                if kind.publishes_will() {
                    self.check_will_race(kind, problems);
                }
            }
            FaultClass::Request => self.check_kinds(
                kind,
                problems,
                |k| k == Kind::Phone,
                "phones (it alters the requests they send)",
            ),
            FaultClass::Responder => self.check_kinds(
                kind,
                problems,
                |k| k != Kind::Phone,
                "lights and sensors (it alters their answers)",
            ),
            // The proxy sits on every device's connection, and every device speaks MQTT,
            // whatever the kind.
            FaultClass::Network | FaultClass::Protocol => {}
        }
    }

    /// A request or responder fault acts on what one kind of device does; a target that also
    /// matches devices of another kind is most likely a pattern wider than meant.
    fn check_kinds(
        &self,
        kind: FaultKind,
        problems: &mut Problems,
        fits: fn(Kind) -> bool,
        who: &str,
    ) {
        let wrong: Vec<(&Entry, Kind)> = self
            .targets
            .iter()
            .filter_map(|&i| self.entries.get(i))
            // An entry without a kind had a bad `kind:`, already a problem.
            .filter_map(|e| e.kind.filter(|&k| !fits(k)).map(|k| (e, k)))
            .collect();
        if let Some((first, first_kind)) = wrong.first() {
            problems.at(
                self.target_loc,
                self.field,
                format!(
                    "{} only acts on {who}, but target `{}` matches {}, a {}{}",
                    kind.as_str(),
                    self.pattern,
                    first.id,
                    first_kind.as_str(),
                    others(wrong.len())
                ),
            );
        }
    }

    /// Each target with its group's plan. Indexes come from `Resolver`, which only hands out
    /// positions in `entries`, and each entry's group is a position in `plans`.
    fn devices(&self) -> impl Iterator<Item = (&Entry, &GroupPlan)> {
        self.targets.iter().filter_map(|&i| {
            let entry = self.entries.get(i)?;
            Some((entry, self.plans.get(entry.group)?))
        })
    }

    /// The broker only gives up on a silent client after 1.5 x its keepalive, so a stall must
    /// last longer than that for the Will to be published.
    fn check_stall(&self, problems: &mut Problems, down_loc: Location, down_field: &str) {
        let fmt = humantime::format_duration;
        let no_keepalive: Vec<&Entry> = self
            .devices()
            .filter(|(_, p)| p.connection.keepalive.is_zero())
            .map(|(e, _)| e)
            .collect();
        if let Some(first) = no_keepalive.first() {
            problems.at(
                self.target_loc,
                self.field,
                format!(
                    "stall of {}{} needs keepalive > 0 (a broker never times out a client without one), got 0s",
                    first.id,
                    others(no_keepalive.len())
                ),
            );
        }
        // The longest threshold (the first device with it): a down_for past it is past every
        // other one too.
        let longest = self
            .devices()
            .map(|(e, p)| (e, p.connection.keepalive * 3 / 2))
            .filter(|(_, limit)| !limit.is_zero())
            .reduce(|best, next| if next.1 > best.1 { next } else { best });
        if let Some((entry, limit)) = longest
            && self.down_for <= limit
        {
            problems.at(
                down_loc,
                down_field,
                format!(
                    "stall needs down_for longer than 1.5 x keepalive ({} for {}), got {}",
                    fmt(limit),
                    entry.id,
                    fmt(self.down_for)
                ),
            );
        }
    }

    /// A flap comes back within the Will Delay, with a second to spare for reconnecting, and
    /// within the session's expiry (the broker publishes the Will when the session ends, delay
    /// or not).
    fn check_flap(&self, problems: &mut Problems) {
        let fmt = humantime::format_duration;
        // Delays are whole seconds: round the need up so the message names a usable value.
        let need = self.down_for.saturating_add(Duration::from_secs(1));
        let need = Duration::from_secs(
            need.as_secs()
                .saturating_add(u64::from(need.subsec_nanos() > 0)),
        );
        let why = format!("(down_for {} + 1s)", fmt(self.down_for));
        let mut no_will = Vec::new();
        let mut short_delay = Vec::new();
        let mut short_session = Vec::new();
        for (entry, plan) in self.devices() {
            match &plan.will {
                None => no_will.push(entry),
                // A bad delay is already a problem.
                Some(will) => {
                    if let Some(delay) = will.delay
                        && delay < need
                    {
                        short_delay.push((entry, delay));
                    }
                    if Duration::from_secs(u64::from(plan.connection.session_expiry)) < need {
                        short_session.push((entry, plan.connection.session_expiry));
                    }
                }
            }
        }
        let mut report = |message: String| problems.at(self.target_loc, self.field, message);
        if let Some(first) = no_will.first() {
            report(format!(
                "flap of {}{} needs a `will` with delay of at least {} {why}, it has none",
                first.id,
                others(no_will.len()),
                fmt(need)
            ));
        }
        if let Some((first, delay)) = short_delay.first() {
            report(format!(
                "flap of {}{} needs will.delay of at least {} {why}, got {}",
                first.id,
                others(short_delay.len()),
                fmt(need),
                fmt(*delay)
            ));
        }
        if let Some((first, expiry)) = short_session.first() {
            report(format!(
                "flap of {}{} needs session_expiry of at least {} (down_for {} + 1s; the broker publishes the Will when the session ends), got {expiry}s",
                first.id,
                others(short_session.len()),
                fmt(need),
                fmt(self.down_for)
            ));
        }
    }
}

/// How close to a Will's due time a device may come back before the outcome is a race.
const RACE_MARGIN: Duration = Duration::from_secs(1);

impl Hit<'_> {
    /// A fault that publishes the Will does so only if the device stays away past the Will's
    /// due time: when the broker notices (1.5 x keepalive for a stall), plus the Will Delay or
    /// the session's end, whichever comes first. Coming back within a second of that, the
    /// broker may or may not publish it, and the supervisor could not tell right from wrong.
    fn check_will_race(&self, kind: FaultKind, problems: &mut Problems) {
        let fmt = humantime::format_duration;
        let racing: Vec<(&Entry, Duration)> = self
            .devices()
            .filter_map(|(entry, plan)| {
                let delay = plan.will.as_ref()?.delay?;
                let c = &plan.connection;
                let due = will_due_after(kind, c.keepalive, delay, c.session_expiry);
                (self.down_for.abs_diff(due) < RACE_MARGIN).then_some((entry, due))
            })
            .collect();
        if let Some((first, due)) = racing.first() {
            problems.at(
                self.target_loc,
                self.field,
                format!(
                    "{} of {}{} comes back after {}, within a second of when its Will is due ({}): the broker may or may not publish it; use a down_for of at least {} (Will published) or at most {} (Will suppressed)",
                    kind.as_str(),
                    first.id,
                    others(racing.len()),
                    fmt(self.down_for),
                    fmt(*due),
                    fmt(*due + RACE_MARGIN),
                    fmt(due.saturating_sub(RACE_MARGIN)),
                ),
            );
        }
    }
}

/// " (and N other targets)" after the first of `count` devices, or nothing.
fn others(count: usize) -> String {
    match count {
        0 | 1 => String::new(),
        2 => " (and 1 other target)".to_string(),
        n => format!(" (and {} other targets)", n - 1),
    }
}
