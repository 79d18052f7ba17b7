//! The Last Will a device registers (`will:`) and the Wills it consumes (`consume_wills:`),
//! both open to every kind: checks per group, expansion per device, and the one check that
//! needs the expanded device (its Will ack topic must not be a topic its role subscribes to).

use std::time::Duration;

use serde_saphyr::{Location, Spanned};

use super::fields::{Located, qos_of, topic, topic_template};
use super::model::{Device, Qos, Role, Will, WillConsumer};
use super::raw::{RawConsumeWills, RawConsumerSettings, RawFilters, RawGroup, RawWill};
use super::response_info::as_sent;
use super::template::{Template, Var, Vars, check_filter};
use super::values::{DurationRule, Problems, duration, int_in_range};

/// Session Expiry a device with a Will gets when it sets none: long enough to outlive its
/// outages, so the Will Delay applies and Will acks queued for it wait until it is back.
pub(super) const SESSION_EXPIRY_WITH_WILL: Duration = Duration::from_secs(300);

const DEFAULT_TOPIC: &str = "status/{id}";
const DEFAULT_PAYLOAD: &str = r#"{"id":"{id}","status":"offline"}"#;
const DEFAULT_RESPONSE_TOPIC: &str = "will-ack/{id}";

/// MQTT strings (user property names and values) carry a two-byte length.
const MAX_STRING_BYTES: usize = 65_535;

/// A group's checked `will`. Parts that had a problem are `None` (topics) or a stand-in; a
/// recorded problem rejects the fleet, so stand-ins never escape.
#[derive(Debug)]
pub(super) struct WillPlan {
    pub topic: Option<Located<Template>>,
    pub payload: Template,
    pub qos: Qos,
    pub retain: bool,
    /// None when the value had a problem: checks that need it (a flap's) are skipped.
    pub delay: Option<Duration>,
    pub message_expiry: Option<Duration>,
    pub user_properties: Vec<(String, String)>,
    pub response_topic: Option<Located<Template>>,
}

/// A group's checked `consume_wills`.
#[derive(Debug)]
pub(super) struct ConsumerPlan {
    pub filters: Vec<Located<Template>>,
    pub ack_delay: Duration,
    pub ack_drop: f64,
}

pub(super) fn check_will(problems: &mut Problems, g: &RawGroup, index: usize) -> Option<WillPlan> {
    let raw = g.will.as_ref()?;
    let empty = RawWill::default();
    let w = raw.value.as_ref().unwrap_or(&empty);
    let at = |name: &str| format!("devices[{index}].will.{name}");
    let vars = &[Var::Id, Var::N];
    let topic = topic_template(
        problems,
        w.topic.as_ref(),
        at("topic"),
        DEFAULT_TOPIC,
        vars,
        raw.referenced,
    );
    let response_topic = topic_template(
        problems,
        w.response_topic.as_ref(),
        at("response_topic"),
        DEFAULT_RESPONSE_TOPIC,
        vars,
        raw.referenced,
    );
    let payload = w
        .payload
        .as_ref()
        .map_or(DEFAULT_PAYLOAD, |p| p.value.as_str());
    let qos = int_in_range(
        problems,
        w.qos.as_ref(),
        &at("qos"),
        1,
        (0, 2),
        "QoS must be 0, 1 or 2",
    );
    let whole_seconds = DurationRule::WholeSeconds {
        max: u64::from(u32::MAX),
    };
    let delay = duration(
        problems,
        w.delay.as_ref(),
        &at("delay"),
        Duration::ZERO,
        whole_seconds,
    );
    let message_expiry = match &w.message_expiry {
        None => None,
        Some(raw) => {
            let field = at("message_expiry");
            let expiry = duration(problems, Some(raw), &field, Duration::ZERO, whole_seconds);
            if expiry == Some(Duration::ZERO) {
                problems.at(
                    raw.referenced,
                    field,
                    format!(
                        "must be greater than 0 (leave it out for no expiry), got `{}`",
                        raw.value
                    ),
                );
            }
            expiry
        }
    };
    Some(WillPlan {
        topic,
        payload: Template::parse_loose(payload, vars),
        qos: qos_of(qos),
        retain: w.retain.as_ref().is_some_and(|r| r.value),
        delay,
        message_expiry,
        user_properties: check_properties(problems, w, &at("user_properties")),
        response_topic,
    })
}

fn check_properties(problems: &mut Problems, w: &RawWill, field: &str) -> Vec<(String, String)> {
    let Some(raw) = &w.user_properties else {
        return Vec::new();
    };
    let mut pairs = Vec::with_capacity(raw.value.0.len());
    for (name, value) in &raw.value.0 {
        for text in [name, &value.value] {
            let complaint = if text.contains('\0') {
                Some(format!(
                    "user property `{}` contains a NUL character",
                    text.escape_debug()
                ))
            } else if text.len() > MAX_STRING_BYTES {
                Some(format!(
                    "user property is {} bytes long (max {MAX_STRING_BYTES}), starting `{}`",
                    text.len(),
                    text.chars().take(40).collect::<String>()
                ))
            } else {
                None
            };
            if let Some(message) = complaint {
                problems.at(value.referenced, format!("{field}.{name}"), message);
            }
        }
        pairs.push((name.clone(), value.value.clone()));
    }
    pairs
}

pub(super) fn check_consumer(
    problems: &mut Problems,
    g: &RawGroup,
    index: usize,
) -> Option<ConsumerPlan> {
    let raw = g.consume_wills.as_ref()?;
    let field = format!("devices[{index}].consume_wills");
    let no_filter = "consume_wills needs a topic filter, a list of them, or `{topics: ...}` (a lone `#` starts a YAML comment: quote it, \"#\")";
    let (filters, settings) = match &raw.value {
        None => {
            problems.at(raw.referenced, &field, no_filter);
            return None;
        }
        Some(RawConsumeWills::Filters(f)) => {
            (check_filters(problems, f, raw.referenced, &field), None)
        }
        Some(RawConsumeWills::Settings(s)) => {
            let topics_field = format!("{field}.topics");
            let filters = match &s.topics {
                None => {
                    problems.at(
                        raw.referenced,
                        &topics_field,
                        "missing required field `topics` (a topic filter or a list of them; quote a lone \"#\")",
                    );
                    None
                }
                Some(t) => check_filters(problems, &t.value, t.referenced, &topics_field),
            };
            (filters, Some(s))
        }
    };
    let (ack_delay, ack_drop) = settings.map_or((Some(Duration::ZERO), Some(0.0)), |s| {
        check_ack(problems, s, &field)
    });
    Some(ConsumerPlan {
        filters: filters?,
        ack_delay: ack_delay?,
        ack_drop: ack_drop?,
    })
}

fn check_filters(
    problems: &mut Problems,
    raw: &RawFilters,
    loc: Location,
    field: &str,
) -> Option<Vec<Located<Template>>> {
    let one;
    let list: Vec<(&Spanned<String>, String)> = match raw {
        RawFilters::One(text) => {
            one = Spanned::new(text.clone(), loc, loc);
            vec![(&one, field.to_string())]
        }
        RawFilters::Many(list) if list.is_empty() => {
            problems.at(loc, field, "the list of topic filters must not be empty");
            return None;
        }
        RawFilters::Many(list) => list
            .iter()
            .enumerate()
            .map(|(i, f)| (f, format!("{field}[{i}]")))
            .collect(),
    };
    let mut filters = Vec::with_capacity(list.len());
    let mut ok = true;
    for (raw, field) in list {
        match Template::parse(&raw.value, &[Var::Id, Var::N]) {
            Ok(value) => {
                // Variables expand to id characters and digits, never `/`, `+` or `#`: the
                // levels of the template are those of every expansion.
                if let Err(message) = check_filter(&raw.value) {
                    problems.once(&field, raw.referenced, &field, message);
                    ok = false;
                }
                filters.push(Located {
                    value,
                    loc: raw.referenced,
                    field,
                });
            }
            Err(message) => {
                problems.at(raw.referenced, field, message);
                ok = false;
            }
        }
    }
    ok.then_some(filters)
}

fn check_ack(
    problems: &mut Problems,
    s: &RawConsumerSettings,
    field: &str,
) -> (Option<Duration>, Option<f64>) {
    let ack_delay = duration(
        problems,
        s.ack_delay.as_ref(),
        &format!("{field}.ack_delay"),
        Duration::ZERO,
        DurationRule::NonNegative,
    );
    let ack_drop = match &s.ack_drop {
        None => Some(0.0),
        // `contains` is false for NaN too.
        Some(d) if (0.0..=1.0).contains(&d.value) => Some(d.value),
        Some(d) => {
            problems.at(
                d.referenced,
                format!("{field}.ack_drop"),
                format!(
                    "ack_drop is the share of Wills left unacked, from 0.0 to 1.0, got {}",
                    d.value
                ),
            );
            None
        }
    };
    (ack_delay, ack_drop)
}

impl WillPlan {
    /// The device's Will; None when a topic template was bad (already reported).
    pub fn expand(&self, problems: &mut Problems, vars: Vars<'_>) -> Option<Will> {
        let (Some(will_topic), Some(response_topic)) = (&self.topic, &self.response_topic) else {
            return None;
        };
        Some(Will {
            topic: topic(problems, will_topic, vars),
            payload: self.payload.expand(vars),
            qos: self.qos,
            retain: self.retain,
            delay: self.delay.unwrap_or_default(),
            message_expiry: self.message_expiry,
            user_properties: self.user_properties.clone(),
            response_topic: topic(problems, response_topic, vars),
        })
    }
}

impl ConsumerPlan {
    pub fn expand(&self, problems: &mut Problems, vars: Vars<'_>) -> WillConsumer {
        let filters = self
            .filters
            .iter()
            .map(|f| {
                let filter = f.value.expand(vars);
                // Only the length can change with expansion; see `check_filters`.
                if let Err(message) = check_filter(&filter) {
                    problems.once(&f.field, f.loc, &f.field, message);
                }
                filter
            })
            .collect();
        WillConsumer {
            filters,
            ack_delay: self.ack_delay,
            ack_drop: self.ack_drop,
        }
    }
}

/// A Will ack arriving on a topic the device already subscribes to for its role would be
/// taken for a command, request or response: refuse the overlap (once per group).
pub(super) fn check_ack_topic(problems: &mut Problems, plan: &WillPlan, device: &Device) {
    let (Some(located), Some(will)) = (&plan.response_topic, &device.will) else {
        return;
    };
    let ack = will.response_topic.as_str();
    let clash = match &device.role {
        // Compared as sent without Response Information: the best guess available now.
        Role::Phone(p) => p
            .targets
            .response_topics
            .iter()
            .any(|t| as_sent(t, &device.connection.response_info_fallback) == ack)
            .then_some(
                "a response topic it subscribes to, so Will acks would be taken for responses",
            ),
        Role::Light(l) => (l.command_topic == ack)
            .then_some("its command topic, so Will acks would be taken for commands"),
        Role::Sensor(s) => (s.request_topic == ack)
            .then_some("its request topic, so Will acks would be taken for requests"),
    };
    if let Some(why) = clash {
        problems.once(
            &format!("{}/role", located.field),
            located.loc,
            &located.field,
            format!(
                "will.response_topic `{ack}` of `{}` is also {why}; give the acks a topic of their own",
                device.id
            ),
        );
    }
}
