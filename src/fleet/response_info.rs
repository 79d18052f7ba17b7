//! Response Information (MQTT 5, 3.1.2.11.7 and 3.2.2.3.15): what the embedded broker returns
//! in CONNACK, whether a device asks for it, what it falls back to, and `{response_info}` in a
//! phone's response topic.
//!
//! `{response_info}` is not expanded: the device replaces it once CONNACK arrives. Topics that
//! hold it are checked as they would be sent with the fallback, since that is the one value
//! known now (the broker's own value is checked on its own: no wildcards, no NUL).

use std::borrow::Cow;

use serde_saphyr::Spanned;

use super::fields::Located;
use super::model::Connection;
use super::raw::RawGroup;
use super::template::{
    MAX_TOPIC_BYTES, RESPONSE_INFO, Template, Var, Vars, check_topic, unsafe_char,
};
use super::values::Problems;
use crate::output::Escaped;

/// What `{response_info}` becomes when CONNACK carries none (Mosquitto never sends any).
pub(super) const DEFAULT_FALLBACK: &str = "resp/";

/// A group's `request_response_info` and `response_info_fallback`.
pub(super) fn check_device_settings(
    problems: &mut Problems,
    g: &RawGroup,
    index: usize,
) -> (bool, String) {
    let request = g.request_response_info.as_ref().is_some_and(|r| r.value);
    let fallback = match &g.response_info_fallback {
        None => DEFAULT_FALLBACK.to_string(),
        Some(f) => {
            let field = format!("devices[{index}].response_info_fallback");
            check_prefix(problems, f, &field, true);
            f.value.clone()
        }
    };
    (request, fallback)
}

/// Check a value that begins topic names (`response_information`, a fallback): no wildcards,
/// no NUL, not too long; empty only when `may_be_empty`.
pub(super) fn check_prefix(
    problems: &mut Problems,
    raw: &Spanned<String>,
    field: &str,
    may_be_empty: bool,
) {
    let text = raw.value.as_str();
    let complaint = if text.is_empty() && !may_be_empty {
        Some(format!(
            "{} must not be empty (leave it out for none)",
            last_part(field)
        ))
    } else if let Some(what) = unsafe_char(text) {
        Some(format!("`{}` contains {what}", Escaped::value(text)))
    } else if let Some(w) = text.chars().find(|c| matches!(c, '+' | '#')) {
        Some(format!(
            "`{text}` contains the wildcard `{w}`; it begins topic names, which cannot hold wildcards"
        ))
    } else if text.len() > MAX_TOPIC_BYTES {
        Some(format!(
            "{} is {} bytes long (max {MAX_TOPIC_BYTES})",
            last_part(field),
            text.len()
        ))
    } else {
        None
    };
    if let Some(message) = complaint {
        problems.at(raw.referenced, field, message);
    }
}

fn last_part(field: &str) -> &str {
    field.rsplit('.').next().unwrap_or(field)
}

/// A phone's `response_topic`, once parsed: `{response_info}` needs `request_response_info`,
/// and the topic must be valid with the fallback in its place. `text` is the template as
/// written.
pub(super) fn check_response_topic(
    problems: &mut Problems,
    topic: &Located<Template>,
    text: &str,
    connection: &Connection,
) {
    if !topic.value.uses(Var::ResponseInfo) {
        return;
    }
    if !connection.request_response_info {
        problems.at(
            topic.loc,
            &topic.field,
            "`{response_info}` needs request_response_info: true",
        );
    }
    let fallback = &connection.response_info_fallback;
    // Same key as the plain topic check: a template that is bad either way is one problem.
    if let Err(message) = check_topic(&text.replace(RESPONSE_INFO, fallback)) {
        problems.once(
            &topic.field,
            topic.loc,
            &topic.field,
            with_fallback(message, fallback),
        );
    }
}

/// Expand a phone's response topic for one target, keeping `{response_info}`, and check it as
/// it would be sent with the fallback.
pub(super) fn expand_response_topic(
    problems: &mut Problems,
    template: &Located<Template>,
    vars: Vars<'_>,
    fallback: &str,
) -> String {
    let topic = template.value.expand(vars);
    if let Err(message) = check_topic(&as_sent(&topic, fallback)) {
        let message = if topic.contains(RESPONSE_INFO) {
            with_fallback(message, fallback)
        } else {
            message
        };
        problems.once(&template.field, template.loc, &template.field, message);
    }
    topic
}

/// `topic` with `{response_info}` replaced by `fallback`: the topic a device uses when the
/// broker returns no Response Information.
pub(super) fn as_sent<'a>(topic: &'a str, fallback: &str) -> Cow<'a, str> {
    if topic.contains(RESPONSE_INFO) {
        Cow::Owned(topic.replace(RESPONSE_INFO, fallback))
    } else {
        Cow::Borrowed(topic)
    }
}

fn with_fallback(message: String, fallback: &str) -> String {
    format!("{message} (with `{{response_info}}` replaced by its fallback `{fallback}`)")
}
