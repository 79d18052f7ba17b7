//! `faults:`, the connection faults to inject. Each entry is checked on its own (kind, schedule
//! against the run's `duration`, `down_for`), then against the expanded fleet: its target must
//! match devices, and a stall or a flap must be able to do what it is for on every one of them.
//!
//! A fault hitting many devices reports each kind of shortfall once, naming the first device
//! (or, for a stall, the one needing the longest `down_for`) and how many others share it.

use std::collections::HashMap;
use std::time::Duration;

use serde_saphyr::{Location, Spanned};

use super::expand::{Entry, MAX_TARGETS};
use super::group::{GroupPlan, loc_of};
use super::model::{Fault, FaultKind, Schedule};
use super::raw::RawFault;
use super::template::{glob_match, is_id_char};
use super::values::{DurationRule, Problems, duration};

const KINDS: &str = "kill, stall, disconnect, disconnect_with_will or flap";

/// Check every fault; the list is only meaningful when no problem was recorded.
/// `run_for` is None when `duration` itself was bad, `entries` when the fleet was not expanded.
pub(super) fn check_faults(
    problems: &mut Problems,
    raw: Option<&Spanned<Vec<Spanned<RawFault>>>>,
    run_for: Option<Duration>,
    plans: &[GroupPlan],
    entries: Option<&[Entry]>,
) -> Vec<Fault> {
    let Some(raw) = raw else {
        return Vec::new();
    };
    let mut resolver = entries.map(Resolver::new);
    let mut pairs: u64 = 0;
    let mut faults = Vec::with_capacity(raw.value.len());
    for (i, f) in raw.value.iter().enumerate() {
        let at = |name: &str| format!("faults[{i}].{name}");
        let kind = check_kind(problems, &f.value, f.referenced, &at("kind"));
        let schedule = check_schedule(problems, &f.value, f.referenced, i, run_for);
        let down_for = match &f.value.down_for {
            None => {
                problems.at(
                    f.referenced,
                    at("down_for"),
                    "missing required field `down_for` (how long the device stays away)",
                );
                None
            }
            some => duration(
                problems,
                some.as_ref(),
                &at("down_for"),
                Duration::ZERO,
                DurationRule::Positive,
            ),
        };
        let Some(target) = &f.value.target else {
            problems.at(
                f.referenced,
                at("target"),
                "missing required field `target` (a device id or a `*` pattern)",
            );
            continue;
        };
        let field = at("target");
        if let Err(message) = check_pattern(&target.value) {
            problems.at(target.referenced, field, message);
            continue;
        }
        // Without the expanded fleet (already a problem) there is nothing to match against.
        let Some(resolver) = resolver.as_mut() else {
            continue;
        };
        let targets = resolver.resolve(&target.value);
        if targets.is_empty() {
            problems.at(
                target.referenced,
                field,
                format!(
                    "target `{}` matches no device id in this fleet",
                    target.value
                ),
            );
            continue;
        }
        pairs = pairs.saturating_add(targets.len() as u64);
        if pairs > MAX_TARGETS {
            problems.at(
                target.referenced,
                field,
                format!(
                    "faults would have {pairs} targets or more in all (max {MAX_TARGETS}); use narrower targets"
                ),
            );
            break;
        }
        let (Some(kind), Some(down_for)) = (kind, down_for) else {
            continue;
        };
        let hit = Hit {
            plans,
            entries: resolver.entries,
            targets: &targets,
            target_loc: target.referenced,
            field: &field,
            down_for,
        };
        match kind {
            FaultKind::Stall => {
                let down_loc = loc_of(&f.value.down_for).unwrap_or(f.referenced);
                hit.check_stall(problems, down_loc, &at("down_for"));
            }
            FaultKind::Flap => hit.check_flap(problems),
            FaultKind::Kill | FaultKind::Disconnect | FaultKind::DisconnectWithWill => {}
        }
        if kind.publishes_will() {
            hit.check_will_race(kind, problems);
        }
        let Some(schedule) = schedule else {
            continue;
        };
        faults.push(Fault {
            kind,
            schedule,
            targets,
            down_for,
        });
    }
    faults
}

fn check_kind(
    problems: &mut Problems,
    f: &RawFault,
    fault_loc: Location,
    field: &str,
) -> Option<FaultKind> {
    let Some(kind) = &f.kind else {
        problems.at(
            fault_loc,
            field,
            format!("missing required field `kind` ({KINDS})"),
        );
        return None;
    };
    let found = [
        FaultKind::Kill,
        FaultKind::Stall,
        FaultKind::Disconnect,
        FaultKind::DisconnectWithWill,
        FaultKind::Flap,
    ]
    .into_iter()
    .find(|k| k.as_str() == kind.value);
    if found.is_none() {
        problems.at(
            kind.referenced,
            field,
            format!("fault kind must be {KINDS}, got `{}`", kind.value),
        );
    }
    found
}

fn check_schedule(
    problems: &mut Problems,
    f: &RawFault,
    fault_loc: Location,
    index: usize,
    run_for: Option<Duration>,
) -> Option<Schedule> {
    let at_field = format!("faults[{index}].at");
    let every_field = format!("faults[{index}].every");
    match (&f.at, &f.every) {
        (None, None) => {
            problems.at(
                fault_loc,
                format!("faults[{index}]"),
                "a fault needs `at` (fire once) or `every` (fire repeatedly)",
            );
            None
        }
        (Some(_), Some(every)) => {
            problems.at(
                every.referenced,
                every_field,
                "a fault takes either `at` or `every`, not both",
            );
            None
        }
        (Some(raw), None) => {
            let at = duration(
                problems,
                Some(raw),
                &at_field,
                Duration::ZERO,
                DurationRule::NonNegative,
            )?;
            let fmt = humantime::format_duration;
            if let Some(run_for) = run_for
                && at >= run_for
            {
                let when = if at == run_for { "as" } else { "after" };
                problems.at(
                    raw.referenced,
                    at_field,
                    format!(
                        "fault at {} would fire {when} the run ends at {}",
                        fmt(at),
                        fmt(run_for)
                    ),
                );
                return None;
            }
            Some(Schedule::At(at))
        }
        (None, Some(raw)) => {
            let every = duration(
                problems,
                Some(raw),
                &every_field,
                Duration::ZERO,
                DurationRule::Positive,
            )?;
            let fmt = humantime::format_duration;
            if let Some(run_for) = run_for
                && every >= run_for
            {
                problems.at(
                    raw.referenced,
                    every_field,
                    format!(
                        "fault every {} would never fire: the run ends at {}",
                        fmt(every),
                        fmt(run_for)
                    ),
                );
                return None;
            }
            Some(Schedule::Every(every))
        }
    }
}

/// A fault target is a device id or a `*` pattern over ids (of any kind).
fn check_pattern(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err("target must not be empty".to_string());
    }
    match text.chars().find(|&c| !is_id_char(c) && c != '*') {
        Some(bad) => Err(format!(
            "target `{text}` contains `{bad}` and can never match: ids only use A-Z a-z 0-9 _ . - (and `*` matches any run of them)"
        )),
        None => Ok(()),
    }
}

/// Matches fault targets against every expanded id, caching each pattern's result.
struct Resolver<'a> {
    entries: &'a [Entry],
    /// Built on the first exact id, so a fleet without faults pays nothing.
    by_id: Option<HashMap<&'a str, usize>>,
    globs: HashMap<String, Vec<usize>>,
}

impl<'a> Resolver<'a> {
    fn new(entries: &'a [Entry]) -> Self {
        Resolver {
            entries,
            by_id: None,
            globs: HashMap::new(),
        }
    }

    /// Indexes of the matching entries, in fleet order.
    fn resolve(&mut self, pattern: &str) -> Vec<usize> {
        let entries = self.entries;
        if pattern.contains('*') {
            return self
                .globs
                .entry(pattern.to_string())
                .or_insert_with(|| {
                    (0..entries.len())
                        .filter(|&i| glob_match(pattern, &entries[i].id))
                        .collect()
                })
                .clone();
        }
        let by_id = self.by_id.get_or_insert_with(|| {
            let mut by_id = HashMap::with_capacity(entries.len());
            for (i, e) in entries.iter().enumerate() {
                // A duplicate id is already a problem; the first one stands.
                by_id.entry(e.id.as_str()).or_insert(i);
            }
            by_id
        });
        by_id.get(pattern).map(|&i| vec![i]).unwrap_or_default()
    }
}

/// One fault's resolved targets, for the checks that depend on the devices it hits.
struct Hit<'a> {
    plans: &'a [GroupPlan],
    entries: &'a [Entry],
    targets: &'a [usize],
    target_loc: Location,
    field: &'a str,
    down_for: Duration,
}

impl Hit<'_> {
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
                let session = Duration::from_secs(u64::from(plan.connection.session_expiry));
                let noticed = match kind {
                    FaultKind::Stall => plan.connection.keepalive * 3 / 2,
                    _ => Duration::ZERO,
                };
                let due = noticed + delay.min(session);
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
