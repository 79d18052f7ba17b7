//! The problem collector and the checks of single values: durations and bounded integers.
//!
//! Each check returns the value when it is good and records a problem otherwise. On a problem
//! it still returns something (the default or `None`) so that later checks can run and the
//! user sees every problem at once; the fleet is never built when any problem was recorded.

use std::collections::HashSet;
use std::time::Duration;

use serde_saphyr::{Location, Spanned};

use super::Problem;

/// Collects problems; `once` keys keep one problem per field when the same template fails for
/// thousands of expanded devices.
#[derive(Debug, Default)]
pub(super) struct Problems {
    list: Vec<Problem>,
    reported: HashSet<String>,
    /// Places (line, column) whose value already has its problem, so later checks of the same
    /// value add none: a topic with an unset `${VAR}` is not also reported as a bad topic.
    silenced: HashSet<(usize, usize)>,
}

impl Problems {
    pub fn at(&mut self, loc: Location, field: impl Into<String>, message: impl Into<String>) {
        let (line, column) = (to_usize(loc.line()), to_usize(loc.column()));
        if self.silenced.contains(&(line, column)) {
            return;
        }
        self.list.push(Problem {
            line,
            column,
            field: field.into(),
            message: message.into(),
        });
    }

    /// No further problem at `loc`: the one recorded there says what is wrong.
    pub fn silence(&mut self, loc: Location) {
        self.silenced
            .insert((to_usize(loc.line()), to_usize(loc.column())));
    }

    /// Like `at`, but only the first problem with this `key` is kept.
    pub fn once(
        &mut self,
        key: &str,
        loc: Location,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        if self.reported.insert(key.to_string()) {
            self.at(loc, field, message);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// All problems in file order (checks run in several passes, the reader reads top-down).
    pub fn into_sorted(mut self) -> Vec<Problem> {
        self.list.sort_by_key(|p| (p.line, p.column));
        self.list
    }
}

fn to_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// The longest any duration field may be, unless its rule says otherwise: far beyond any run,
/// and far below where adding it to a clock reading (a deadline) could overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

/// The largest magnitude of a signal's numbers: readings, their steps and the spread of a
/// range stay finite (a range from -1e308 to 1e308 has no finite width to draw from).
pub(super) const MAX_SIGNAL: f64 = 1e12;

/// [`MAX_DURATION`] as a message shows it.
pub fn max_duration_text() -> String {
    humantime::format_duration(MAX_DURATION).to_string()
}

/// A humantime duration within [`MAX_DURATION`]; the error words the whole complaint.
pub(super) fn parse_duration(text: &str) -> Result<Duration, String> {
    let parsed = humantime::parse_duration(text.trim())
        .map_err(|e| format!("invalid duration `{text}`: {e}"))?;
    at_most_max(parsed, text)
}

/// `parsed` (from `text`) when within [`MAX_DURATION`].
pub(super) fn at_most_max(parsed: Duration, text: &str) -> Result<Duration, String> {
    if parsed > MAX_DURATION {
        return Err(format!(
            "must be at most {}, got `{text}`",
            max_duration_text()
        ));
    }
    Ok(parsed)
}

/// What a duration field accepts besides "parses".
#[derive(Debug, Clone, Copy)]
pub(super) enum DurationRule {
    /// Strictly positive (intervals, timeouts, the run length).
    Positive,
    /// Zero allowed (delays, jitter).
    NonNegative,
    /// Sent as an integer number of seconds in CONNECT, so fractions would be silently lost:
    /// whole seconds only, up to `max` seconds: the protocol's bound, instead of
    /// [`MAX_DURATION`] (4294967295s, "never" for a session expiry, is worth testing).
    WholeSeconds { max: u64 },
}

/// Parse a humantime duration (`10s`, `1m30s`, `500ms`); `default` when the field is absent.
/// At most [`MAX_DURATION`], or the rule's own bound.
pub(super) fn duration(
    problems: &mut Problems,
    raw: Option<&Spanned<String>>,
    field: &str,
    default: Duration,
    rule: DurationRule,
) -> Option<Duration> {
    let Some(raw) = raw else {
        return Some(default);
    };
    let text = raw.value.trim();
    let parsed = match humantime::parse_duration(text) {
        Ok(d) => d,
        Err(e) => {
            problems.at(
                raw.referenced,
                field,
                format!("invalid duration `{}`: {e}", raw.value),
            );
            return None;
        }
    };
    let complaint = match rule {
        DurationRule::Positive if parsed.is_zero() => {
            Some(format!("must be greater than 0, got `{}`", raw.value))
        }
        DurationRule::WholeSeconds { .. } if parsed.subsec_nanos() != 0 => Some(format!(
            "must be a whole number of seconds, got `{}`",
            raw.value
        )),
        DurationRule::WholeSeconds { max } if parsed.as_secs() > max => Some(format!(
            "must be at most {max}s, got `{}` ({}s)",
            raw.value,
            parsed.as_secs()
        )),
        DurationRule::WholeSeconds { .. } => None,
        DurationRule::Positive | DurationRule::NonNegative => at_most_max(parsed, &raw.value).err(),
    };
    match complaint {
        Some(message) => {
            problems.at(raw.referenced, field, message);
            None
        }
        None => Some(parsed),
    }
}

/// An integer that must lie in `min..=max`; `message` words the complaint (it is followed by
/// ", got N").
pub(super) fn int_in_range(
    problems: &mut Problems,
    raw: Option<&Spanned<i64>>,
    field: &str,
    default: i64,
    (min, max): (i64, i64),
    message: &str,
) -> Option<i64> {
    let Some(raw) = raw else {
        return Some(default);
    };
    if (min..=max).contains(&raw.value) {
        Some(raw.value)
    } else {
        problems.at(
            raw.referenced,
            field,
            format!("{message}, got {}", raw.value),
        );
        None
    }
}

/// A finite number within ±[`MAX_SIGNAL`] (YAML allows `.nan` and `.inf`, which no signal can
/// use).
pub(super) fn finite(
    problems: &mut Problems,
    raw: Option<&Spanned<f64>>,
    field: &str,
) -> Option<Option<f64>> {
    match raw {
        None => Some(None),
        // A range test: NaN and the infinities fail it too.
        Some(raw) if (-MAX_SIGNAL..=MAX_SIGNAL).contains(&raw.value) => Some(Some(raw.value)),
        Some(raw) => {
            problems.at(
                raw.referenced,
                field,
                format!(
                    "must be a finite number within -{MAX_SIGNAL:e}..={MAX_SIGNAL:e}, got {}",
                    raw.value
                ),
            );
            None
        }
    }
}
