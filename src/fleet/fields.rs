//! Fields several parts of the fleet file share, checked the same way everywhere: a value
//! located at its line and field path, topic templates (given or default), a QoS, where a
//! field was written. A leaf: it imports nothing else of the fleet module but the leaves
//! `raw`, `template`, `values` and `model`, so the rest can use it without import loops.

use serde_saphyr::{Location, Spanned};

use super::model::Qos;
use super::template::{Template, Var, Vars, check_topic};
use super::values::Problems;

/// A value with the place and field path it came from, for problems found after expansion.
#[derive(Debug)]
pub(super) struct Located<T> {
    pub value: T,
    pub loc: Location,
    pub field: String,
}

/// Where a field was written, if it was.
pub(super) fn loc_of<T>(field: &Option<Spanned<T>>) -> Option<Location> {
    field.as_ref().map(|s| s.referenced)
}

/// A QoS already checked to be 0, 1 or 2 (1 when absent).
pub(super) fn qos_of(checked: Option<i64>) -> Qos {
    match checked {
        Some(0) => Qos::AtMostOnce,
        Some(2) => Qos::ExactlyOnce,
        _ => Qos::AtLeastOnce,
    }
}

/// A topic template given in the file, or the default; `None` after recording a problem.
pub(super) fn topic_template(
    problems: &mut Problems,
    raw: Option<&Spanned<String>>,
    field: String,
    default: &str,
    allowed: &[Var],
    group_loc: Location,
) -> Option<Located<Template>> {
    let (text, loc) = match raw {
        Some(s) => (s.value.as_str(), s.referenced),
        None => (default, group_loc),
    };
    match Template::parse(text, allowed) {
        Ok(value) => {
            // Variables expand to id characters and digits, so a wildcard, NUL or emptiness
            // shows in the template itself: report it here, once, even if expansion never runs
            // (say, because the phone's targets are bad). Expansion checks again, for length,
            // under the same key.
            if let Err(message) = check_topic(text) {
                problems.once(&field, loc, &field, message);
            }
            Some(Located { value, loc, field })
        }
        Err(e) => {
            problems.at(loc, field, e);
            None
        }
    }
}

/// Expand a topic template and check the result (one problem per field at most).
pub(super) fn topic(
    problems: &mut Problems,
    template: &Located<Template>,
    vars: Vars<'_>,
) -> String {
    let topic = template.value.expand(vars);
    if let Err(message) = check_topic(&topic) {
        problems.once(&template.field, template.loc, &template.field, message);
    }
    topic
}
