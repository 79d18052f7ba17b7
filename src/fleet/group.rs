//! Checks one `devices:` entry on its own: kind, id template and count, connection settings
//! and the settings of its kind. Anything that needs the other groups (duplicate ids, phone
//! targets, expanded topics) is left to `expand`.

use std::time::Duration;

use serde_saphyr::{Location, Spanned};

use super::access::check_login;
use super::fields::{Located, loc_of, qos_of, topic_template};
use super::model::{Connection, Kind, Signal};
use super::phone::{PhonePlan, check_phone};
use super::raw::{RawGroup, RawSignal};
use super::response_info::check_device_settings;
use super::secret::Env;
use super::template::{MAX_ID_LEN, Template, Var, Vars, is_id_char};
use super::values::{DurationRule, Problems, duration, finite, int_in_range};
use super::will::{ConsumerPlan, SESSION_EXPIRY_WITH_WILL, WillPlan, check_consumer, check_will};
use crate::output::Escaped;

/// Largest `count` of one group, and of the whole fleet: far beyond what one machine can
/// simulate, small enough that expanding a typo like `count: 1000000000000` cannot exhaust
/// memory.
pub(super) const MAX_DEVICES: u32 = 1_000_000;

/// A checked group, as far as it could be checked. `None` parts had problems (already
/// recorded) that leave nothing to expand. A bad plain value (a QoS of 3, a zero interval) is
/// replaced by its default instead, so expansion still runs and finds the problems that only
/// show across groups; any recorded problem rejects the fleet, so those stand-ins never escape.
#[derive(Debug)]
pub(super) struct GroupPlan {
    pub index: usize,
    /// Position of the group's mapping, for problems about what it lacks.
    pub loc: Location,
    pub kind: Option<Kind>,
    pub ids: Option<IdPlan>,
    /// Shared by the group's devices; each gets its own `username` from the template below.
    pub connection: Connection,
    /// None: no `username`, or one with problems.
    pub username: Option<Located<Template>>,
    pub role: Option<RolePlan>,
    /// None: the group has no `will`.
    pub will: Option<WillPlan>,
    /// None: no `consume_wills`, or one with problems.
    pub consume_wills: Option<ConsumerPlan>,
}

#[derive(Debug)]
pub(super) struct IdPlan {
    pub template: Template,
    /// Number of devices to expand. When `count` or the id was bad this is 1, so the group's
    /// ids still exist and targets naming them do not report a second, misleading problem.
    pub count: u32,
    pub loc: Location,
}

#[derive(Debug)]
pub(super) enum RolePlan {
    Light {
        command_topic: Located<Template>,
        delay: Duration,
        initially_on: bool,
    },
    Sensor {
        telemetry_topic: Located<Template>,
        every: Duration,
        request_topic: Located<Template>,
        unit: String,
        signal: Signal,
    },
    Phone(PhonePlan),
}

const DEFAULT_SIGNAL: Signal = Signal::Walk {
    start: 20.0,
    step: 0.5,
    min: 0.0,
    max: 40.0,
};

const LIGHT_FIELDS: &[&str] = &["command_topic", "delay", "initial"];
const SENSOR_FIELDS: &[&str] = &[
    "telemetry_topic",
    "every",
    "request_topic",
    "unit",
    "signal",
];
const PHONE_FIELDS: &[&str] = &[
    "targets",
    "request_topic",
    "response_topic",
    "payloads",
    "every",
    "jitter",
    "rate",
    "group_rate",
    "in_flight",
    "timeout",
    "requests",
    "correlation_data",
    "expect_answer",
];

pub(super) fn check_group(
    problems: &mut Problems,
    index: usize,
    raw: &Spanned<RawGroup>,
    env: Env<'_>,
) -> GroupPlan {
    let g = &raw.value;
    let at = |name: &str| format!("devices[{index}].{name}");
    let kind = check_kind(problems, g, &at("kind"), raw.referenced);
    if let Some(kind) = kind {
        check_fields_fit_kind(problems, g, kind, index);
    }
    let ids = check_ids(problems, g, index, raw.referenced);
    let login = check_login(problems, g, index, env);
    let connection = Connection {
        password: login.password,
        ..check_connection(problems, g, index)
    };
    let role = match kind {
        Some(Kind::Light) => check_light(problems, g, index, raw.referenced),
        Some(Kind::Sensor) => check_sensor(problems, g, index, raw.referenced),
        Some(Kind::Phone) => {
            check_phone(problems, g, index, raw.referenced, &connection).map(RolePlan::Phone)
        }
        None => None,
    };
    GroupPlan {
        index,
        loc: raw.referenced,
        kind,
        ids,
        connection,
        username: login.username,
        role,
        will: check_will(problems, g, index),
        consume_wills: check_consumer(problems, g, index),
    }
}

fn check_kind(
    problems: &mut Problems,
    g: &RawGroup,
    field: &str,
    group_loc: Location,
) -> Option<Kind> {
    let Some(kind) = &g.kind else {
        problems.at(
            group_loc,
            field,
            "missing required field `kind` (phone, light or sensor)",
        );
        return None;
    };
    match kind.value.as_str() {
        "phone" => Some(Kind::Phone),
        "light" => Some(Kind::Light),
        "sensor" => Some(Kind::Sensor),
        other => {
            problems.at(
                kind.referenced,
                field,
                format!("kind must be phone, light or sensor, got `{other}`"),
            );
            None
        }
    }
}

/// Kind-specific fields present in the group, with their positions.
fn specific_fields(g: &RawGroup) -> [(&'static str, Option<Location>); 19] {
    [
        ("command_topic", loc_of(&g.command_topic)),
        ("delay", loc_of(&g.delay)),
        ("initial", loc_of(&g.initial)),
        ("telemetry_topic", loc_of(&g.telemetry_topic)),
        ("every", loc_of(&g.every)),
        ("request_topic", loc_of(&g.request_topic)),
        ("unit", loc_of(&g.unit)),
        ("signal", loc_of(&g.signal)),
        ("targets", loc_of(&g.targets)),
        ("response_topic", loc_of(&g.response_topic)),
        ("payloads", loc_of(&g.payloads)),
        ("jitter", loc_of(&g.jitter)),
        ("rate", loc_of(&g.rate)),
        ("group_rate", loc_of(&g.group_rate)),
        ("in_flight", loc_of(&g.in_flight)),
        ("timeout", loc_of(&g.timeout)),
        ("requests", loc_of(&g.requests)),
        ("correlation_data", loc_of(&g.correlation_data)),
        ("expect_answer", loc_of(&g.expect_answer)),
    ]
}

fn check_fields_fit_kind(problems: &mut Problems, g: &RawGroup, kind: Kind, index: usize) {
    let allowed = match kind {
        Kind::Light => LIGHT_FIELDS,
        Kind::Sensor => SENSOR_FIELDS,
        Kind::Phone => PHONE_FIELDS,
    };
    for (name, loc) in specific_fields(g) {
        if let Some(loc) = loc
            && !allowed.contains(&name)
        {
            problems.at(
                loc,
                format!("devices[{index}].{name}"),
                format!(
                    "field `{name}` is not valid for a {} ({} fields: {})",
                    kind.as_str(),
                    kind.as_str(),
                    allowed.join(", ")
                ),
            );
        }
    }
}

fn check_ids(
    problems: &mut Problems,
    g: &RawGroup,
    index: usize,
    group_loc: Location,
) -> Option<IdPlan> {
    let count_field = format!("devices[{index}].count");
    let count = match &g.count {
        None => Some(1),
        Some(c) if c.value < 1 => {
            problems.at(
                c.referenced,
                &count_field,
                format!("count must be at least 1, got {}", c.value),
            );
            None
        }
        Some(c) => match u32::try_from(c.value) {
            Ok(n) if n <= MAX_DEVICES => Some(n),
            _ => {
                problems.at(
                    c.referenced,
                    &count_field,
                    format!("count too large (max {MAX_DEVICES}), got {}", c.value),
                );
                None
            }
        },
    };

    let id_field = format!("devices[{index}].id");
    let Some(id) = &g.id else {
        problems.at(group_loc, &id_field, "missing required field `id`");
        return None;
    };
    let template = match Template::parse(&id.value, &[Var::N]) {
        Ok(t) => t,
        Err(e) => {
            problems.at(id.referenced, &id_field, e);
            return None;
        }
    };
    let problem = |message: String| (id.referenced, id_field.clone(), message);
    let mut found = Vec::new();
    if id.value.is_empty() {
        found.push(problem("id must not be empty".to_string()));
    }
    if let Some(bad) = template
        .literals()
        .flat_map(str::chars)
        .find(|&c| !is_id_char(c))
    {
        found.push(problem(format!(
            "id `{}` contains `{}`; ids may only use A-Z a-z 0-9 _ . -",
            Escaped::value(&id.value),
            Escaped::value(bad.encode_utf8(&mut [0; 4]))
        )));
    }
    let real_count = count.unwrap_or(1);
    if real_count > 1 && !template.uses(Var::N) {
        found.push(problem(format!(
            "id `{}` has no `{{n}}` but count is {real_count}; add `{{n}}` so each device gets its own id",
            id.value
        )));
    }
    // The longest expansion is the one with the most digits, i.e. n = count.
    let longest = template.expand(Vars {
        id: "",
        n: real_count,
        target: None,
    });
    if longest.chars().count() > MAX_ID_LEN {
        found.push(problem(format!(
            "id `{longest}` is {} characters long (max {MAX_ID_LEN})",
            longest.chars().count()
        )));
    }
    // A bad id still names one device, so targets naming it resolve; expanding all `count`
    // of them would only repeat the same mistake (slowly, for a million).
    let count = if found.is_empty() { real_count } else { 1 };
    for (loc, field, message) in found {
        problems.at(loc, field, message);
    }
    Some(IdPlan {
        count,
        template,
        loc: id.referenced,
    })
}

fn check_connection(problems: &mut Problems, g: &RawGroup, index: usize) -> Connection {
    let at = |name: &str| format!("devices[{index}].{name}");
    let qos = int_in_range(
        problems,
        g.qos.as_ref(),
        &at("qos"),
        1,
        (0, 2),
        "QoS must be 0, 1 or 2",
    );
    let keepalive = duration(
        problems,
        g.keepalive.as_ref(),
        &at("keepalive"),
        Duration::from_secs(30),
        DurationRule::WholeSeconds {
            max: u64::from(u16::MAX),
        },
    );
    let default_expiry = if g.will.is_some() {
        SESSION_EXPIRY_WITH_WILL
    } else {
        Duration::ZERO
    };
    let session_expiry = duration(
        problems,
        g.session_expiry.as_ref(),
        &at("session_expiry"),
        default_expiry,
        DurationRule::WholeSeconds {
            max: u64::from(u32::MAX),
        },
    );
    let receive_maximum = int_in_range(
        problems,
        g.receive_maximum.as_ref(),
        &at("receive_maximum"),
        100,
        (1, i64::from(u16::MAX)),
        "receive_maximum must be between 1 and 65535",
    );
    let (request_response_info, response_info_fallback) = check_device_settings(problems, g, index);
    Connection {
        keepalive: keepalive.unwrap_or(Duration::from_secs(30)),
        clean_start: g.clean_start.as_ref().is_none_or(|c| c.value),
        // Both checked against the target type's range above.
        session_expiry: session_expiry
            .unwrap_or(default_expiry)
            .as_secs()
            .try_into()
            .unwrap_or(0),
        qos: qos_of(qos),
        receive_maximum: receive_maximum
            .and_then(|r| u16::try_from(r).ok())
            .unwrap_or(100),
        // Per device (`device` in `expand`) and per group (`check_group`).
        username: None,
        password: None,
        request_response_info,
        response_info_fallback,
    }
}

/// The QoS of a checked `qos` value; QoS 1 (the default) when it had a problem.
fn check_light(
    problems: &mut Problems,
    g: &RawGroup,
    index: usize,
    group_loc: Location,
) -> Option<RolePlan> {
    let at = |name: &str| format!("devices[{index}].{name}");
    let command_topic = topic_template(
        problems,
        g.command_topic.as_ref(),
        at("command_topic"),
        "cmnd/{id}/power",
        &[Var::Id, Var::N],
        group_loc,
    );
    let delay = duration(
        problems,
        g.delay.as_ref(),
        &at("delay"),
        Duration::ZERO,
        DurationRule::NonNegative,
    );
    let initially_on = match &g.initial {
        None => Some(false),
        Some(s) if s.value.eq_ignore_ascii_case("on") => Some(true),
        Some(s) if s.value.eq_ignore_ascii_case("off") => Some(false),
        Some(s) => {
            problems.at(
                s.referenced,
                at("initial"),
                format!("initial must be ON or OFF, got `{}`", s.value),
            );
            None
        }
    };
    Some(RolePlan::Light {
        command_topic: command_topic?,
        delay: delay.unwrap_or_default(),
        initially_on: initially_on.unwrap_or_default(),
    })
}

fn check_sensor(
    problems: &mut Problems,
    g: &RawGroup,
    index: usize,
    group_loc: Location,
) -> Option<RolePlan> {
    let at = |name: &str| format!("devices[{index}].{name}");
    let telemetry_topic = topic_template(
        problems,
        g.telemetry_topic.as_ref(),
        at("telemetry_topic"),
        "tele/{id}/reading",
        &[Var::Id, Var::N],
        group_loc,
    );
    let request_topic = topic_template(
        problems,
        g.request_topic.as_ref(),
        at("request_topic"),
        "cmnd/{id}/get",
        &[Var::Id, Var::N],
        group_loc,
    );
    let every = duration(
        problems,
        g.every.as_ref(),
        &at("every"),
        Duration::from_secs(1),
        DurationRule::Positive,
    );
    let signal = check_signal(problems, g.signal.as_ref(), &at("signal"));
    Some(RolePlan::Sensor {
        telemetry_topic: telemetry_topic?,
        every: every.unwrap_or(Duration::from_secs(1)),
        request_topic: request_topic?,
        unit: g.unit.as_ref().map(|u| u.value.clone()).unwrap_or_default(),
        signal: signal.unwrap_or(DEFAULT_SIGNAL),
    })
}

fn check_signal(
    problems: &mut Problems,
    raw: Option<&Spanned<RawSignal>>,
    field: &str,
) -> Option<Signal> {
    let Some(raw) = raw else {
        return Some(DEFAULT_SIGNAL);
    };
    let none = None;
    let (name, min_raw, max_raw, start_raw, step_raw) = match &raw.value {
        RawSignal::Walk {
            start,
            step,
            min,
            max,
        } => ("walk", min, max, start, step),
        RawSignal::Range { min, max } => ("range", min, max, &none, &none),
    };
    let at = |f: &str| format!("{field}.{name}.{f}");
    // All four first, so that every non-finite number is reported, not just the first.
    let min = finite(problems, min_raw.as_ref(), &at("min"));
    let max = finite(problems, max_raw.as_ref(), &at("max"));
    let start = finite(problems, start_raw.as_ref(), &at("start"));
    let step = finite(problems, step_raw.as_ref(), &at("step"));
    let (min, max) = (min?.unwrap_or(0.0), max?.unwrap_or(40.0));
    if min > max {
        let loc = loc_of(max_raw)
            .or(loc_of(min_raw))
            .unwrap_or(raw.referenced);
        problems.at(
            loc,
            at("max"),
            format!("min must not exceed max, got min {min} and max {max}"),
        );
        return None;
    }
    if let RawSignal::Range { .. } = raw.value {
        return Some(Signal::Range { min, max });
    }
    // Without a start, begin in the middle: 20 for the default 0..40.
    let start = start?.unwrap_or(min + (max - min) / 2.0);
    let step = step?.unwrap_or(0.5);
    let mut ok = true;
    if !(min..=max).contains(&start) {
        problems.at(
            loc_of(start_raw).unwrap_or(raw.referenced),
            at("start"),
            format!("start must lie within min..=max ({min}..={max}), got {start}"),
        );
        ok = false;
    }
    if step < 0.0 {
        problems.at(
            loc_of(step_raw).unwrap_or(raw.referenced),
            at("step"),
            format!("step must not be negative, got {step}"),
        );
        ok = false;
    }
    ok.then_some(Signal::Walk {
        start,
        step,
        min,
        max,
    })
}
