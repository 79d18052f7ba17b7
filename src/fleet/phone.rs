//! Checks the settings only phones have: where requests go (`targets` or `request_topic`),
//! the response topic, payloads and timing. Targets are only parsed here; resolving them needs
//! the whole fleet and happens in `expand`.

use std::time::Duration;

use serde_saphyr::{Location, Spanned};

use super::answer::{AnswerCheck, check_answer};
use super::fields::{Located, topic_template};
use super::model::{Connection, Pace};
use super::raw::RawGroup;
use super::response_info::check_response_topic;
use super::template::{Template, Var, is_id_char};
use super::values::{DurationRule, Problems, duration};

#[derive(Debug)]
pub(super) struct PhonePlan {
    pub dest: PhoneDest,
    pub response_topic: Located<Template>,
    /// None: the default payloads of each target's kind.
    pub payloads: Option<Vec<String>>,
    pub pace: PacePlan,
    pub timeout: Duration,
    pub max_requests: Option<u64>,
    pub correlation_data: bool,
    pub expect_answer: Option<std::sync::Arc<AnswerCheck>>,
}

/// The load model as the group asks for it; `group_rate` becomes each phone's `Rate` once
/// the group's phones are counted.
#[derive(Debug, Clone, Copy)]
pub(super) enum PacePlan {
    Phone(Pace),
    GroupRate(f64),
}

/// The most requests a second a phone (or a group) may ask for.
const MAX_RATE: f64 = 1_000_000.0;
/// The most requests a phone may keep outstanding.
const MAX_IN_FLIGHT: i64 = 65_535;

#[derive(Debug)]
pub(super) enum PhoneDest {
    Targets {
        patterns: Vec<Located<TargetPattern>>,
        /// Position of the `targets` list, for problems about the whole list.
        loc: Location,
    },
    Topic(Located<Template>),
}

#[derive(Debug)]
pub(super) enum TargetPattern {
    /// A device id.
    Exact(String),
    /// A pattern with `*`.
    Glob(String),
    /// An id with `{n}`, resolved per phone (`light-{n}` pairs phone n with light n).
    PerPhone(Template),
}

pub(super) fn check_phone(
    problems: &mut Problems,
    g: &RawGroup,
    index: usize,
    group_loc: Location,
    connection: &Connection,
) -> Option<PhonePlan> {
    let at = |name: &str| format!("devices[{index}].{name}");
    let dest = match (&g.targets, &g.request_topic) {
        (Some(_), Some(topic)) => {
            problems.at(
                topic.referenced,
                at("request_topic"),
                "a phone takes either `targets` or `request_topic`, not both",
            );
            None
        }
        (None, None) => {
            problems.at(
                group_loc,
                format!("devices[{index}]"),
                "a phone needs `targets` (devices of this fleet) or `request_topic` (a topic answered outside the fleet)",
            );
            None
        }
        (Some(targets), None) => check_targets(problems, targets, index),
        (None, Some(_)) => topic_template(
            problems,
            g.request_topic.as_ref(),
            at("request_topic"),
            "",
            &[Var::Id, Var::N],
            group_loc,
        )
        .map(PhoneDest::Topic),
    };
    let response_vars: &[Var] = if g.request_topic.is_some() {
        &[Var::Id, Var::N, Var::ResponseInfo]
    } else {
        &[Var::Id, Var::N, Var::Target, Var::ResponseInfo]
    };
    const DEFAULT_RESPONSE_TOPIC: &str = "resp/{id}";
    let response_topic = topic_template(
        problems,
        g.response_topic.as_ref(),
        at("response_topic"),
        DEFAULT_RESPONSE_TOPIC,
        response_vars,
        group_loc,
    );
    if let Some(topic) = &response_topic {
        let text = g
            .response_topic
            .as_ref()
            .map_or(DEFAULT_RESPONSE_TOPIC, |t| t.value.as_str());
        check_response_topic(problems, topic, text, connection);
    }
    let payloads = match &g.payloads {
        None => Some(None),
        Some(p) if p.value.is_empty() => {
            problems.at(
                p.referenced,
                at("payloads"),
                "payloads must not be empty (leave the field out for the defaults)",
            );
            None
        }
        Some(p) => Some(Some(p.value.iter().map(|s| s.value.clone()).collect())),
    };
    let pace = check_pace(problems, g, &at);
    let timeout = duration(
        problems,
        g.timeout.as_ref(),
        &at("timeout"),
        Duration::from_secs(2),
        DurationRule::Positive,
    );
    // Timers tick in milliseconds: a shorter timeout could never be met, only missed late.
    if let (Some(t), Some(raw)) = (timeout, &g.timeout)
        && t < MIN_TIMEOUT
    {
        problems.at(
            raw.referenced,
            at("timeout"),
            format!("timeout must be at least 1ms, got `{}`", raw.value),
        );
    }
    let expect_answer = match &g.expect_answer {
        None => Some(None),
        Some(raw) => check_answer(problems, raw, &at("expect_answer")).map(Some),
    };
    let max_requests = match &g.requests {
        None => Some(None),
        Some(r) => match u64::try_from(r.value) {
            Ok(n) if n >= 1 => Some(Some(n)),
            _ => {
                problems.at(
                    r.referenced,
                    at("requests"),
                    format!("requests must be at least 1, got {}", r.value),
                );
                None
            }
        },
    };
    Some(PhonePlan {
        dest: dest?,
        response_topic: response_topic?,
        payloads: payloads.flatten(),
        pace,
        timeout: timeout.unwrap_or(Duration::from_secs(2)),
        max_requests: max_requests.flatten(),
        correlation_data: g.correlation_data.as_ref().is_none_or(|c| c.value),
        expect_answer: expect_answer.flatten().map(std::sync::Arc::new),
    })
}

/// The load model: `every` (with `jitter`), `rate`, `group_rate` or `in_flight`, one at most;
/// a request every second without any. After a problem (recorded) it still returns one, so
/// the rest of the group is checked too.
fn check_pace(problems: &mut Problems, g: &RawGroup, at: &dyn Fn(&str) -> String) -> PacePlan {
    pace_of(problems, g, at).unwrap_or(PacePlan::Phone(Pace::Every {
        every: Duration::from_secs(1),
        jitter: Duration::ZERO,
    }))
}

fn pace_of(problems: &mut Problems, g: &RawGroup, at: &dyn Fn(&str) -> String) -> Option<PacePlan> {
    let given: Vec<(&str, Location)> = [
        ("every", g.every.as_ref().map(|s| s.referenced)),
        ("rate", g.rate.as_ref().map(|s| s.referenced)),
        ("group_rate", g.group_rate.as_ref().map(|s| s.referenced)),
        ("in_flight", g.in_flight.as_ref().map(|s| s.referenced)),
    ]
    .into_iter()
    .filter_map(|(name, loc)| Some((name, loc?)))
    .collect();
    if let [(first, _), (second, loc), ..] = given[..] {
        problems.at(
            loc,
            at(second),
            format!("a phone takes one of `every`, `rate`, `group_rate` and `in_flight`: `{first}` is given already"),
        );
        return None;
    }
    if let Some(jitter) = &g.jitter
        && g.every.is_none()
        && !given.is_empty()
    {
        problems.at(
            jitter.referenced,
            at("jitter"),
            "jitter goes with `every` only (a `rate` is paced exactly, `in_flight` by the answers)",
        );
        return None;
    }
    if let Some(rate) = &g.rate {
        return per_second(problems, rate, &at("rate")).map(|per_second| {
            PacePlan::Phone(Pace::Rate {
                per_second,
                offset: None,
            })
        });
    }
    if let Some(rate) = &g.group_rate {
        return per_second(problems, rate, &at("group_rate")).map(PacePlan::GroupRate);
    }
    if let Some(n) = &g.in_flight {
        if !(1..=MAX_IN_FLIGHT).contains(&n.value) {
            problems.at(
                n.referenced,
                at("in_flight"),
                format!(
                    "in_flight must be from 1 to {MAX_IN_FLIGHT}, got {}",
                    n.value
                ),
            );
            return None;
        }
        return Some(PacePlan::Phone(Pace::InFlight(n.value as u32)));
    }
    let every = duration(
        problems,
        g.every.as_ref(),
        &at("every"),
        Duration::from_secs(1),
        DurationRule::Positive,
    );
    let jitter = duration(
        problems,
        g.jitter.as_ref(),
        &at("jitter"),
        Duration::ZERO,
        DurationRule::NonNegative,
    );
    // The interval is every ± jitter; it must stay positive.
    if let (Some(every), Some(jitter), Some(raw)) = (every, jitter, &g.jitter)
        && jitter >= every
    {
        problems.at(
            raw.referenced,
            at("jitter"),
            format!(
                "jitter must be less than every ({}), got `{}`",
                humantime::format_duration(every),
                raw.value
            ),
        );
        return None;
    }
    Some(PacePlan::Phone(Pace::Every {
        every: every?,
        jitter: jitter?,
    }))
}

/// `500/s`, `30/m`, `2.5/s`: so many a second, within (0, [`MAX_RATE`]].
pub(super) fn per_second(
    problems: &mut Problems,
    raw: &Spanned<String>,
    field: &str,
) -> Option<f64> {
    let text = raw.value.trim();
    let parsed = text
        .strip_suffix("/s")
        .map(|n| (n, 1.0))
        .or_else(|| text.strip_suffix("/m").map(|n| (n, 60.0)))
        .and_then(|(n, per)| n.trim().parse::<f64>().ok().map(|n| n / per))
        .filter(|r| r.is_finite());
    match parsed {
        Some(rate) if rate > 0.0 && rate <= MAX_RATE => Some(rate),
        Some(_) => {
            problems.at(
                raw.referenced,
                field,
                format!("a rate must be above 0 and at most {MAX_RATE}/s, got `{text}`"),
            );
            None
        }
        None => {
            problems.at(
                raw.referenced,
                field,
                format!("expected a rate like `500/s` or `30/m`, got `{text}`"),
            );
            None
        }
    }
}

/// The shortest request timeout a phone accepts.
const MIN_TIMEOUT: Duration = Duration::from_millis(1);

fn check_targets(
    problems: &mut Problems,
    targets: &Spanned<Vec<Spanned<String>>>,
    index: usize,
) -> Option<PhoneDest> {
    if targets.value.is_empty() {
        problems.at(
            targets.referenced,
            format!("devices[{index}].targets"),
            "targets must not be empty",
        );
        return None;
    }
    let mut patterns = Vec::new();
    let mut ok = true;
    for (i, t) in targets.value.iter().enumerate() {
        let field = format!("devices[{index}].targets[{i}]");
        match check_target(&t.value) {
            Ok(value) => patterns.push(Located {
                value,
                loc: t.referenced,
                field,
            }),
            Err(message) => {
                problems.at(t.referenced, field, message);
                ok = false;
            }
        }
    }
    ok.then_some(PhoneDest::Targets {
        patterns,
        loc: targets.referenced,
    })
}

fn check_target(text: &str) -> Result<TargetPattern, String> {
    if text.is_empty() {
        return Err("target must not be empty".to_string());
    }
    let template = Template::parse(text, &[Var::N])?;
    if let Some(bad) = template
        .literals()
        .flat_map(str::chars)
        .find(|&c| !is_id_char(c) && c != '*')
    {
        return Err(format!(
            "target `{text}` contains `{bad}` and can never match: ids only use A-Z a-z 0-9 _ . - (and `*` matches any run of them)"
        ));
    }
    let has_star = text.contains('*');
    if template.uses(Var::N) {
        if has_star {
            return Err(format!(
                "target `{text}` combines `{{n}}` and `*`; use one or the other"
            ));
        }
        return Ok(TargetPattern::PerPhone(template));
    }
    Ok(if has_star {
        TargetPattern::Glob(text.to_string())
    } else {
        TargetPattern::Exact(text.to_string())
    })
}
