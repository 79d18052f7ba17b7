//! `faults:`, the faults to inject. Each entry is checked on its own (kind, schedule against
//! the run's `duration`, `down_for`, the options of its kind), then its target is matched
//! against the expanded fleet and `fault_targets` checks the devices it hits.

use std::collections::HashMap;
use std::time::Duration;

use serde_saphyr::{Location, Spanned};

use super::expand::{Entry, MAX_TARGETS};
use super::fault_options::{check_params, kinds_of};
use super::fault_targets::Hit;
use super::fields::loc_of;
use super::group::GroupPlan;
use super::model::{Fault, FaultClass, FaultKind, MAX_INJECTIONS, Schedule};
use super::raw::RawFault;
use super::template::{glob_match, is_id_char};
use super::values::{DurationRule, Problems, duration};

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
    let mut injections: u64 = 0;
    let mut faults = Vec::with_capacity(raw.value.len());
    for (i, f) in raw.value.iter().enumerate() {
        let at = |name: &str| format!("faults[{i}].{name}");
        let kind = check_kind(problems, &f.value, f.referenced, &at("kind"));
        let class = kind.map(FaultKind::class);
        let schedule = check_schedule(problems, &f.value, f.referenced, i, class, run_for);
        let down_for = check_down_for(problems, &f.value, f.referenced, &at("down_for"), class);
        let params = check_params(problems, &f.value, f.referenced, i, kind);
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
            pattern: &target.value,
            target_loc: target.referenced,
            field: &field,
            down_for,
        };
        let down_loc = loc_of(&f.value.down_for).unwrap_or(f.referenced);
        hit.check(kind, problems, (down_loc, &at("down_for")));
        let (Some(schedule), Some(params)) = (schedule, params) else {
            continue;
        };
        let fault = Fault {
            kind,
            schedule,
            targets,
            down_for,
            params,
        };
        // `run_for` is known: a schedule was only checked against a good one.
        let firings = run_for.map_or(0, |run_for| fault.firings(run_for));
        injections = injections.saturating_add(firings.saturating_mul(fault.targets.len() as u64));
        if injections > MAX_INJECTIONS {
            let (loc, name) = match &f.value.every {
                Some(every) => (every.referenced, "every"),
                None => (target.referenced, "target"),
            };
            problems.at(
                loc,
                at(name),
                format!(
                    "faults would fire {injections} times or more in all in a run of {} (max {MAX_INJECTIONS}); use a longer `every`, narrower targets or a shorter run",
                    humantime::format_duration(run_for.unwrap_or_default())
                ),
            );
            break;
        }
        faults.push(fault);
    }
    faults
}

/// "a connection fault (kill, ...), a request fault (...), a responder fault (...), a network
/// fault (...) or a protocol fault (...)".
fn kinds_text() -> String {
    let class = |c: FaultClass| kinds_of(|k| k.class() == c, "or");
    format!(
        "a connection fault ({}), a request fault ({}), a responder fault ({}), a network fault ({}) or a protocol fault ({})",
        class(FaultClass::Connection),
        class(FaultClass::Request),
        class(FaultClass::Responder),
        class(FaultClass::Network),
        class(FaultClass::Protocol)
    )
}

/// The class as messages name it: "connection" (fault).
fn class_name(class: FaultClass) -> &'static str {
    match class {
        FaultClass::Connection => "connection",
        FaultClass::Request => "request",
        FaultClass::Responder => "responder",
        FaultClass::Network => "network",
        FaultClass::Protocol => "protocol",
    }
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
            format!("missing required field `kind` ({})", kinds_text()),
        );
        return None;
    };
    let found = FaultKind::ALL
        .into_iter()
        .find(|k| k.as_str() == kind.value);
    if found.is_none() {
        problems.at(
            kind.referenced,
            field,
            format!("fault kind must be {}, got `{}`", kinds_text(), kind.value),
        );
    }
    found
}

/// Required and > 0 for connection faults; refused for the others, which take no device away
/// (zero for them, so their target checks still run).
fn check_down_for(
    problems: &mut Problems,
    f: &RawFault,
    fault_loc: Location,
    field: &str,
    class: Option<FaultClass>,
) -> Option<Duration> {
    match (class, &f.down_for) {
        (Some(FaultClass::Connection), None) => {
            problems.at(
                fault_loc,
                field,
                "missing required field `down_for` (how long the device stays away)",
            );
            None
        }
        (
            Some(
                FaultClass::Request
                | FaultClass::Responder
                | FaultClass::Network
                | FaultClass::Protocol,
            ),
            raw,
        ) => {
            if let Some(raw) = raw {
                problems.at(
                    raw.referenced,
                    field,
                    format!(
                        "`down_for` is only for {}",
                        kinds_of(|k| k.class() == FaultClass::Connection, "and")
                    ),
                );
            }
            Some(Duration::ZERO)
        }
        // A connection fault, or a bad kind: the value is still checked.
        (_, raw) => duration(
            problems,
            raw.as_ref(),
            field,
            Duration::ZERO,
            DurationRule::Positive,
        ),
    }
}

fn check_schedule(
    problems: &mut Problems,
    f: &RawFault,
    fault_loc: Location,
    index: usize,
    class: Option<FaultClass>,
    run_for: Option<Duration>,
) -> Option<Schedule> {
    let field = |name: &str| format!("faults[{index}].{name}");
    if let (
        Some(c @ (FaultClass::Connection | FaultClass::Network | FaultClass::Protocol)),
        Some(p),
    ) = (class, &f.probability)
    {
        problems.at(
            p.referenced,
            field("probability"),
            format!(
                "`probability` is only for request and responder faults: {} faults need `at` or `every`",
                class_name(c)
            ),
        );
        return None;
    }
    match (&f.at, &f.every, &f.probability) {
        (None, None, None) => {
            let message = match class {
                Some(FaultClass::Request | FaultClass::Responder) => {
                    "a fault needs `at` (fire once), `every` (fire repeatedly) or `probability` (each request or answer, with that chance)"
                }
                _ => "a fault needs `at` (fire once) or `every` (fire repeatedly)",
            };
            problems.at(fault_loc, format!("faults[{index}]"), message);
            None
        }
        (Some(_), Some(every), None) => {
            problems.at(
                every.referenced,
                field("every"),
                "a fault takes either `at` or `every`, not both",
            );
            None
        }
        (Some(_), _, Some(p)) | (_, Some(_), Some(p)) => {
            problems.at(
                p.referenced,
                field("probability"),
                "a fault takes only one of `at`, `every` and `probability`",
            );
            None
        }
        (Some(raw), None, None) => check_at(problems, raw, &field("at"), run_for),
        (None, Some(raw), None) => check_every(problems, raw, &field("every"), run_for),
        (None, None, Some(p)) => {
            // Written as a negated range so NaN fails it too.
            if !(0.0..=1.0).contains(&p.value) {
                problems.at(
                    p.referenced,
                    field("probability"),
                    format!(
                        "probability must be a number from 0.0 to 1.0, got {}",
                        p.value
                    ),
                );
                return None;
            }
            Some(Schedule::Probability(p.value))
        }
    }
}

fn check_at(
    problems: &mut Problems,
    raw: &Spanned<String>,
    field: &str,
    run_for: Option<Duration>,
) -> Option<Schedule> {
    let at = duration(
        problems,
        Some(raw),
        field,
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
            field,
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

fn check_every(
    problems: &mut Problems,
    raw: &Spanned<String>,
    field: &str,
    run_for: Option<Duration>,
) -> Option<Schedule> {
    let every = duration(
        problems,
        Some(raw),
        field,
        Duration::ZERO,
        DurationRule::Positive,
    )?;
    let fmt = humantime::format_duration;
    if let Some(run_for) = run_for
        && every >= run_for
    {
        problems.at(
            raw.referenced,
            field,
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
