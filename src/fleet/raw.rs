//! The fleet file as written: serde structs that only enforce YAML shape, names and types.
//!
//! Every field is `Option<Spanned<_>>` so that a missing field, a default and a bad value can
//! all be reported later with a position. Numbers that have a range are read as `i64` so an
//! out-of-range value becomes a located semantic problem ("QoS must be 0, 1 or 2, got 3")
//! instead of a bare serde type error. Durations are read as text and parsed by `values`.

use std::fmt;

use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// Parse YAML text; on failure, the rendered serde-saphyr message (position and snippet).
pub(super) fn parse(text: &str, origin: &str) -> Result<Spanned<RawFleet>, String> {
    serde_saphyr::from_str::<Spanned<RawFleet>>(text).map_err(|e| {
        // A snippet shows the lines around the error, which may hold a literal password.
        let snippets = if may_show_password(text) {
            serde_saphyr::SnippetMode::Off
        } else {
            serde_saphyr::SnippetMode::Auto
        };
        let rendered = e.render_with_options(serde_saphyr::render_options! {
            source_name: Some(origin),
            snippets: snippets,
        });
        // The origin is printed in front by `FleetError`; a second "error:" would be noise.
        rendered
            .strip_prefix("error: ")
            .map(str::to_string)
            .unwrap_or(rendered)
    })
}

/// Key names that may hold a secret, in lower case: the format's `password`, and what a user
/// might have meant by one.
const SECRET_KEYS: [&str; 3] = ["password", "passwd", "secret"];

fn is_secret_key(key: &str) -> bool {
    let key = key.to_lowercase();
    SECRET_KEYS.iter().any(|s| key.contains(s))
}

/// Whether a snippet of `text` could show a secret: some key that looks like a password (any
/// case, however the YAML spells it: `"pass\x77ord"`, `'PASSWORD'`) with anything but `${VAR}`
/// references as its value. Decided on the YAML's structure when it is well-formed (the error
/// was about the fleet format), so escapes, flow mappings, block scalars and aliases are seen
/// as serde sees them; line by line otherwise, saying yes when unsure.
fn may_show_password(text: &str) -> bool {
    match serde_saphyr::from_str::<serde_json::Value>(text) {
        Ok(doc) => holds_secret(&doc),
        Err(_) => text.lines().any(line_may_show_password),
    }
}

/// A secret-looking key with a value other than `${VAR}` references, anywhere in `value`.
fn holds_secret(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::Object(map) => map.iter().any(|(key, value)| {
            let shown = match value {
                Value::Null => false,
                Value::String(s) => !only_variables(s),
                _ => true,
            };
            (is_secret_key(key) && shown) || holds_secret(value)
        }),
        Value::Array(items) => items.iter().any(holds_secret),
        _ => false,
    }
}

/// For text that is not even YAML: a line with an escape (a quoted `"pass\x77ord"` may spell
/// anything), or with a secret-looking word followed by anything but `${VAR}` references (a
/// value on the next line or a block scalar count as something).
fn line_may_show_password(line: &str) -> bool {
    if line.contains('\\') {
        return true;
    }
    // ASCII lower case keeps byte positions, so `at` indexes `line` too.
    let lower = line.to_ascii_lowercase();
    SECRET_KEYS.iter().any(|word| {
        lower.match_indices(word).any(|(at, _)| {
            let after_key = line[at + word.len()..].trim_start_matches(['"', '\'']);
            match after_key.trim_start().strip_prefix(':') {
                Some(value) => !only_variables(value),
                None => true,
            }
        })
    })
}

/// `value` (the rest of a line) is one or more `${NAME}`, with only quotes, blanks and the
/// ends of flow collections around them.
fn only_variables(value: &str) -> bool {
    let mut rest = value;
    let mut seen = false;
    loop {
        rest = rest.trim_start_matches([' ', '\t', '"', '\'', ',', '}', ']']);
        if rest.is_empty() {
            return seen;
        }
        let Some(var) = rest.strip_prefix("${") else {
            return false;
        };
        let Some(end) = var.find('}') else {
            return false;
        };
        if !var[..end]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return false;
        }
        seen = true;
        rest = &var[end + 1..];
    }
}

// The `///` comments on these types and fields are the descriptions of `fleetsim schema`
// (`docs/fleet.schema.json`), which editors show while a fleet file is written: they speak to
// the user, like `docs/fleet-format.md`. Notes for developers are `//` comments.
//
// `Spanned` is serde-saphyr's and `JsonSchema` is schemars', so neither crate's type can get
// the other's trait here (the orphan rule): each field says with `#[schemars(with = ...)]`
// what it holds without the span. Types with a hand-written `Deserialize` have a hand-written
// `JsonSchema` in `schema`.

/// A fleetsim fleet file: a broker, a run length and groups of simulated MQTT 5 devices.
/// Phones send requests; lights and sensors answer them. See docs/fleet-format.md.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "fleetsim fleet file")]
pub(super) struct RawFleet {
    /// The fleet's name, shown in the summary and the report. Required, not blank.
    #[schemars(with = "String", required)]
    pub name: Option<Spanned<String>>,
    /// Which broker the devices connect to: `embedded` (default), `{embedded: {port: N, ...}}`,
    /// `mqtt://host:port` or `mqtts://host:port`. `${VAR}` and `${VAR:-default}` read the
    /// environment; `--broker` and the FLEETSIM_BROKER variable override it.
    #[schemars(with = "Option<RawBroker>")]
    pub broker: Option<Spanned<RawBroker>>,
    /// How long phones send and sensors publish, once every device is connected and
    /// subscribed: a duration above 0 like `10s` or `1m30s` (default `10s`).
    #[schemars(with = "Option<String>")]
    pub duration: Option<Spanned<String>>,
    /// Seeds every random choice (jitter, readings, faults): the same seed gives the same run
    /// (default 0).
    #[schemars(with = "Option<u64>")]
    pub seed: Option<Spanned<u64>>,
    /// The device groups, at least one. Each is a `phone`, `light` or `sensor` group.
    #[schemars(with = "Vec<RawGroup>", required, length(min = 1))]
    pub devices: Option<Spanned<Vec<Spanned<RawGroup>>>>,
    /// How long after a Will is published its ack may take before the Will counts as
    /// unconsumed: a duration above 0 (default `5s`).
    #[schemars(with = "Option<String>")]
    pub will_ack_timeout: Option<Spanned<String>>,
    /// Faults to inject: connection, request, responder, network and protocol faults.
    #[schemars(with = "Option<Vec<RawFault>>")]
    pub faults: Option<Spanned<Vec<Spanned<RawFault>>>>,
    /// Certificate files (PEM) for `mqtts://` brokers.
    #[schemars(with = "Option<RawTls>")]
    pub tls: Option<Spanned<RawTls>>,
    /// What the run must achieve, metric name -> `"OP NUMBER"` (`success_rate: ">= 0.95"`);
    /// when present, these decide whether the run is ok.
    #[schemars(with = "Option<RawExpect>")]
    pub expect: Option<Spanned<RawExpect>>,
    /// The login of the supervisor's own connection, for an external broker that wants one.
    #[schemars(with = "Option<RawSupervisor>")]
    pub supervisor: Option<Spanned<RawSupervisor>>,
    /// Put in front of every client id (and so of every topic built from `{id}`): at most 64
    /// bytes, no `/`, `+`, `#`, blanks or control characters. `--id-prefix` overrides it.
    #[schemars(with = "Option<String>")]
    pub id_prefix: Option<Spanned<String>>,
    /// At most this many devices started a second while dialling in: `N/s` or `N/m`.
    #[schemars(with = "Option<String>")]
    pub ramp: Option<Spanned<String>>,
    /// Local addresses devices connect from, dealt round-robin: IP addresses and inclusive
    /// ranges `FIRST-LAST` of one family.
    // Parsed by `sources`.
    #[schemars(with = "Option<Vec<String>>")]
    pub source_addresses: Option<Spanned<Vec<Spanned<String>>>>,
    /// How many requests the narration tells step by step, 0 to 1000 (default 3;
    /// `--show-exchanges` overrides it).
    #[schemars(with = "Option<i64>")]
    pub show_exchanges: Option<Spanned<i64>>,
}

/// The login of the supervisor's own connection on an external broker.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Supervisor")]
pub(super) struct RawSupervisor {
    /// User Name of the supervisor's CONNECT; required, not empty. `${VAR}` and
    /// `${VAR:-default}` read the environment.
    #[schemars(with = "String", required)]
    pub username: Option<Spanned<String>>,
    /// Its Password.
    #[schemars(with = "Option<RawSecret>")]
    pub password: Option<Spanned<RawSecret>>,
}

/// Client-side certificate files (PEM) for `mqtts://` brokers. Relative paths are relative to
/// the fleet file's directory.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Tls")]
pub(super) struct RawTls {
    /// CA certificate(s) the broker's certificate is checked against; `mqtts://` needs it.
    #[schemars(with = "Option<String>")]
    pub ca_file: Option<Spanned<String>>,
    /// Client certificate, for brokers that ask for one; needs `key_file`.
    #[schemars(with = "Option<String>")]
    pub cert_file: Option<Spanned<String>>,
    /// The client certificate's private key; needs `cert_file`.
    #[schemars(with = "Option<String>")]
    pub key_file: Option<Spanned<String>>,
}

/// A password: text where `${VAR}` is replaced by the environment variable VAR and
/// `${VAR:-default}` by VAR, or `default` when VAR is unset or empty. Never printed.
// Its `Debug` hides it, so no debug print of the raw file can leak a literal password.
#[derive(Deserialize, JsonSchema)]
#[serde(transparent)]
#[schemars(rename = "Password")]
pub(super) struct RawSecret(pub String);

impl fmt::Debug for RawSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A group of `count` devices of one `kind` that share their settings.
// All kinds share this struct (kind-specific fields are checked by hand), because a
// serde-tagged enum would lose the positions of the fields inside it and could not say "field
// `every` is not valid for a light" with a line number.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Group")]
pub(super) struct RawGroup {
    /// What the devices do: `phone` sends requests, `light` and `sensor` answer them.
    #[schemars(with = "super::schema::DeviceKindName", required)]
    pub kind: Option<Spanned<String>>,
    /// The MQTT client id of each device; with `count` above 1 it must contain `{n}`
    /// (`light-{n}`). After expansion 1 to 64 characters of `A-Z a-z 0-9 _ . -`, unique.
    #[schemars(with = "String", required)]
    pub id: Option<Spanned<String>>,
    /// Number of devices in the group, 1 to 1000000 (default 1).
    #[schemars(with = "Option<i64>", range(min = 1, max = 1_000_000))]
    pub count: Option<Spanned<i64>>,
    /// QoS of everything the devices publish and subscribe to: 0, 1 or 2 (default 1).
    #[schemars(with = "Option<i64>", range(min = 0, max = 2))]
    pub qos: Option<Spanned<i64>>,
    /// Keep Alive sent in CONNECT: a duration in whole seconds up to 65535s (default `30s`;
    /// `0s` disables it).
    #[schemars(with = "Option<String>")]
    pub keepalive: Option<Spanned<String>>,
    /// Clean Start flag in CONNECT (default true).
    #[schemars(with = "Option<bool>")]
    pub clean_start: Option<Spanned<bool>>,
    /// Session Expiry Interval in CONNECT: a duration in whole seconds (default `0s`, or `5m`
    /// with a `will`).
    #[schemars(with = "Option<String>")]
    pub session_expiry: Option<Spanned<String>>,
    /// Receive Maximum announced in CONNECT, 1 to 65535 (default 100).
    #[schemars(with = "Option<i64>", range(min = 1, max = 65535))]
    pub receive_maximum: Option<Spanned<i64>>,
    /// User Name sent in CONNECT: a template (`{id}`, `{n}`), not empty. `${VAR}` and
    /// `${VAR:-default}` read the environment.
    #[schemars(with = "Option<String>")]
    pub username: Option<Spanned<String>>,
    /// Password sent in CONNECT; only with `username`.
    #[schemars(with = "Option<RawSecret>")]
    pub password: Option<Spanned<RawSecret>>,
    /// Set Request Response Information in CONNECT (default false).
    #[schemars(with = "Option<bool>")]
    pub request_response_info: Option<Spanned<bool>>,
    /// What `{response_info}` becomes when CONNACK carries no Response Information (default
    /// `resp/`); no `+`, `#` or NUL.
    #[schemars(with = "Option<String>")]
    pub response_info_fallback: Option<Spanned<String>>,
    // light
    /// Light: topic it subscribes to for commands, a template (`{id}`, `{n}`; default
    /// `cmnd/{id}/power`).
    #[schemars(with = "Option<String>")]
    pub command_topic: Option<Spanned<String>>,
    /// Light: simulated processing time before it answers, a duration (default `0ms`).
    #[schemars(with = "Option<String>")]
    pub delay: Option<Spanned<String>>,
    /// Light: state at start, `ON` or `OFF` in any case (default `OFF`).
    #[schemars(with = "Option<String>")]
    pub initial: Option<Spanned<String>>,
    // sensor (`every` and `request_topic` are shared with phone)
    /// Sensor: where readings are published, a template (`{id}`, `{n}`; default
    /// `tele/{id}/reading`).
    #[schemars(with = "Option<String>")]
    pub telemetry_topic: Option<Spanned<String>>,
    /// Sensor: telemetry interval. Phone: mean time between two requests. A duration above 0
    /// (default `1s`).
    #[schemars(with = "Option<String>")]
    pub every: Option<Spanned<String>>,
    /// Sensor: topic it subscribes to for `get` requests (default `cmnd/{id}/get`). Phone:
    /// instead of `targets`, one topic answered outside the fleet. A template (`{id}`,
    /// `{n}`); `${VAR}` and `${VAR:-default}` read the environment.
    #[schemars(with = "Option<String>")]
    pub request_topic: Option<Spanned<String>>,
    /// Sensor: unit sent with readings (default empty).
    #[schemars(with = "Option<String>")]
    pub unit: Option<Spanned<String>>,
    /// Sensor: how readings evolve, `{walk: {...}}` or `{range: {...}}`.
    #[schemars(with = "Option<RawSignal>")]
    pub signal: Option<Spanned<RawSignal>>,
    // phone
    /// Phone: lights and sensors of this fleet to send requests to, in turn: ids, `*`
    /// patterns (`"sensor-*"`) or ids with `{n}` (the phone's own). `${VAR}` and
    /// `${VAR:-default}` read the environment.
    #[schemars(with = "Option<Vec<String>>")]
    pub targets: Option<Spanned<Vec<Spanned<String>>>>,
    /// Phone: Response Topic put on each request, and subscribed to; a template (`{id}`,
    /// `{n}`, `{target}`, `{response_info}`; default `resp/{id}`).
    #[schemars(with = "Option<String>")]
    pub response_topic: Option<Spanned<String>>,
    /// Phone: payloads to send, cycled in order (default per target: light `[ON, OFF,
    /// TOGGLE]`, sensor `[get]`, `request_topic` `[ping]`).
    #[schemars(with = "Option<Vec<String>>")]
    pub payloads: Option<Spanned<Vec<Spanned<String>>>>,
    /// Phone: each interval is `every` plus a seeded offset within `[-jitter, +jitter]`; a
    /// duration below `every` (default `0ms`).
    #[schemars(with = "Option<String>")]
    pub jitter: Option<Spanned<String>>,
    /// Phone: instead of `every`, an open loop at this rate: `N/s` or `N/m`.
    #[schemars(with = "Option<String>")]
    pub rate: Option<Spanned<String>>,
    /// Phone: instead of `every`, this rate (`N/s` or `N/m`) for the whole group, split over
    /// its phones.
    #[schemars(with = "Option<String>")]
    pub group_rate: Option<Spanned<String>>,
    /// Phone: instead of `every`, a closed loop keeping this many requests outstanding (1 to
    /// 65535).
    #[schemars(with = "Option<i64>", range(min = 1, max = 65535))]
    pub in_flight: Option<Spanned<i64>>,
    /// Phone: how long a request may wait for its answer, at least `1ms` (default `2s`).
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Spanned<String>>,
    /// Phone: stop after this many requests (default unlimited).
    #[schemars(with = "Option<i64>", range(min = 1))]
    pub requests: Option<Spanned<i64>>,
    /// Phone: `false` sends requests without Correlation Data, as before MQTT 5 (default
    /// true).
    #[schemars(with = "Option<bool>")]
    pub correlation_data: Option<Spanned<bool>>,
    /// Phone: what every matched answer must look like (`json`, `contains`, `regex`).
    #[schemars(with = "Option<super::answer::RawAnswerCheck>")]
    pub expect_answer: Option<Spanned<super::answer::RawAnswerCheck>>,
    // any kind. `will:` with nothing after it is null: kept apart from an absent field (see
    // `present`) so it means "a Will with every default" rather than silently none.
    /// The Last Will each device registers in CONNECT; `will: {}` or an empty `will:` takes
    /// every default.
    #[serde(default, deserialize_with = "present")]
    #[schemars(with = "Option<RawWill>")]
    pub will: Option<Spanned<Option<RawWill>>>,
    /// Subscribe to other devices' Wills and ack them: a topic filter, a list of them, or
    /// `{topics, ack_delay, ack_drop}`.
    #[serde(default, deserialize_with = "present")]
    #[schemars(with = "Option<RawConsumeWills>")]
    pub consume_wills: Option<Spanned<Option<RawConsumeWills>>>,
}

/// For `#[serde(default, deserialize_with = "present")]`: a field written as null becomes
/// `Some(None)`, so only a field left out is `None`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Spanned<Option<T>>>, D::Error>
where
    D: de::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Spanned::<Option<T>>::deserialize(deserializer).map(Some)
}

/// The Last Will of each device of a group; every field is optional.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Will")]
pub(super) struct RawWill {
    /// Topic the Will is published to, a template (`{id}`, `{n}`; default `status/{id}`).
    #[schemars(with = "Option<String>")]
    pub topic: Option<Spanned<String>>,
    /// The Will's payload; `{id}` and `{n}` are replaced (default
    /// `{"id":"{id}","status":"offline"}`).
    #[schemars(with = "Option<String>")]
    pub payload: Option<Spanned<String>>,
    /// Will QoS: 0, 1 or 2 (default 1).
    #[schemars(with = "Option<i64>", range(min = 0, max = 2))]
    pub qos: Option<Spanned<i64>>,
    /// Will Retain (default false).
    #[schemars(with = "Option<bool>")]
    pub retain: Option<Spanned<bool>>,
    /// Will Delay Interval: how long the broker waits before publishing, whole seconds
    /// (default `0s`).
    #[schemars(with = "Option<String>")]
    pub delay: Option<Spanned<String>>,
    /// Message Expiry Interval of the Will, whole seconds, at least `1s` (default none).
    #[schemars(with = "Option<String>")]
    pub message_expiry: Option<Spanned<String>>,
    /// User Properties of the Will, name -> value, in the order written.
    #[schemars(with = "Option<RawProperties>")]
    pub user_properties: Option<Spanned<RawProperties>>,
    /// Response Topic of the Will, a template (`{id}`, `{n}`; default `will-ack/{id}`); the
    /// device subscribes to it and consumers ack there.
    #[schemars(with = "Option<String>")]
    pub response_topic: Option<Spanned<String>>,
}

/// `user_properties: {name: value, ...}`, in the order written (MQTT keeps their order, and
/// a map type would not).
#[derive(Debug)]
pub(super) struct RawProperties(pub Vec<(String, Spanned<String>)>);

impl<'de> Deserialize<'de> for RawProperties {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PropertiesVisitor;

        impl<'de> Visitor<'de> for PropertiesVisitor {
            type Value = RawProperties;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping of user property names to values")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawProperties, A::Error> {
                let mut pairs = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    pairs.push((name, map.next_value::<Spanned<String>>()?));
                }
                Ok(RawProperties(pairs))
            }
        }

        deserializer.deserialize_map(PropertiesVisitor)
    }
}

/// `consume_wills:` as a filter, a list of filters, or a mapping with settings.
#[derive(Debug)]
pub(super) enum RawConsumeWills {
    Filters(RawFilters),
    Settings(Box<RawConsumerSettings>),
}

/// One topic filter (`status/+`) or a list of them.
#[derive(Debug)]
pub(super) enum RawFilters {
    One(String),
    Many(Vec<Spanned<String>>),
}

/// `consume_wills` with settings.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "ConsumerSettings")]
pub(super) struct RawConsumerSettings {
    /// Topic filters to subscribe to: one or a list; templates (`{id}`, `{n}`), wildcards
    /// allowed. Required.
    #[schemars(with = "RawFilters", required)]
    pub topics: Option<Spanned<RawFilters>>,
    /// Wait this long before each ack, a duration (default `0ms`).
    #[schemars(with = "Option<String>")]
    pub ack_delay: Option<Spanned<String>>,
    /// Share of Wills left unacked on purpose, 0.0 to 1.0, chosen with the seed (default 0).
    #[schemars(with = "Option<f64>", range(min = 0.0, max = 1.0))]
    pub ack_drop: Option<Spanned<f64>>,
}

/// Visits a filter or a list of filters; with `settings`, also the mapping form.
struct FiltersVisitor {
    settings: bool,
}

impl<'de> Visitor<'de> for FiltersVisitor {
    type Value = RawConsumeWills;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.settings {
            f.write_str(
                "a topic filter, a list of them, or `{topics: ..., ack_delay: ..., ack_drop: ...}`",
            )
        } else {
            f.write_str("a topic filter or a list of them")
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<RawConsumeWills, E> {
        Ok(RawConsumeWills::Filters(RawFilters::One(v.to_string())))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawConsumeWills, A::Error> {
        let mut filters = Vec::new();
        while let Some(filter) = seq.next_element::<Spanned<String>>()? {
            filters.push(filter);
        }
        Ok(RawConsumeWills::Filters(RawFilters::Many(filters)))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawConsumeWills, A::Error> {
        if !self.settings {
            return Err(de::Error::invalid_type(de::Unexpected::Map, &self));
        }
        RawConsumerSettings::deserialize(de::value::MapAccessDeserializer::new(map))
            .map(|s| RawConsumeWills::Settings(Box::new(s)))
    }
}

// Hand-written for the same reason as `RawBroker`: an untagged enum would lose both the
// positions inside and serde's precise messages.
impl<'de> Deserialize<'de> for RawConsumeWills {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FiltersVisitor { settings: true })
    }
}

impl<'de> Deserialize<'de> for RawFilters {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match deserializer.deserialize_any(FiltersVisitor { settings: false })? {
            RawConsumeWills::Filters(f) => Ok(f),
            // The visitor refuses mappings when `settings` is off.
            RawConsumeWills::Settings(_) => Err(de::Error::custom(
                "expected a topic filter or a list of them",
            )),
        }
    }
}

/// A fault to inject: its `kind`, the devices it hits (`target`) and when (exactly one of
/// `at`, `every` and `probability`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Fault")]
pub(super) struct RawFault {
    /// What goes wrong.
    #[schemars(with = "super::schema::FaultKindName", required)]
    pub kind: Option<Spanned<String>>,
    /// The devices it hits: one id, or a `*` pattern over the ids of every kind.
    #[schemars(with = "String", required)]
    pub target: Option<Spanned<String>>,
    /// Once, at this time after the start of the run (a duration).
    #[schemars(with = "Option<String>")]
    pub at: Option<Spanned<String>>,
    /// Again and again, this often (a duration above 0).
    #[schemars(with = "Option<String>")]
    pub every: Option<Spanned<String>>,
    /// Connection faults: how long the device stays away (a duration above 0).
    #[schemars(with = "Option<String>")]
    pub down_for: Option<Spanned<String>>,
    /// Request and responder faults: the chance, 0.0 to 1.0, that each request or answer is
    /// hit.
    #[schemars(with = "Option<f64>", range(min = 0.0, max = 1.0))]
    pub probability: Option<Spanned<f64>>,
    /// `slow`: how long the answer is held back, one duration or `MIN..MAX`.
    // Parsed by `fault_options`, like the options below.
    #[schemars(with = "Option<String>")]
    pub delay: Option<Spanned<String>>,
    /// `huge_payload`, `binary_payload`, `oversize_packet`: bytes, `64` or with a unit
    /// (`300KiB`), 1B to 16MiB.
    // A bare integer arrives as its text too.
    #[schemars(with = "Option<super::schema::SizeText>")]
    pub size: Option<Spanned<String>>,
    /// Network faults: `upstream`, `downstream` or `both`.
    #[schemars(with = "Option<String>")]
    pub direction: Option<Spanned<String>>,
    /// Network faults and `withhold_acks`: how long the fault lasts (a duration above 0).
    #[schemars(with = "Option<String>")]
    pub lasts: Option<Spanned<String>>,
    /// `latency`: delay added to the bytes (a duration).
    #[schemars(with = "Option<String>")]
    pub latency: Option<Spanned<String>>,
    /// `latency`: a seeded spread around `latency`, at most `latency` (a duration).
    #[schemars(with = "Option<String>")]
    pub jitter: Option<Spanned<String>>,
    /// `bandwidth`: bytes a second, in the syntax of `size`.
    #[schemars(with = "Option<super::schema::SizeText>")]
    pub rate: Option<Spanned<String>>,
    /// `slicer`: bytes per slice, in the syntax of `size`.
    #[schemars(with = "Option<super::schema::SizeText>")]
    pub slice: Option<Spanned<String>>,
    /// `slicer`: pause between slices (a duration).
    #[schemars(with = "Option<String>")]
    pub slice_delay: Option<Spanned<String>>,
    /// `limit_data`: bytes let through before the connection is closed, in the syntax of
    /// `size`.
    #[schemars(with = "Option<super::schema::SizeText>")]
    pub limit: Option<Spanned<String>>,
}

/// `expect:`, metric name -> `"OP NUMBER"`, in the order written.
#[derive(Debug)]
pub(super) struct RawExpect(pub Vec<(Spanned<String>, Spanned<RawLimit>)>);

/// The value of one `expect:` entry: text, or a bare number (kept apart so that the message
/// can say how to write it).
#[derive(Debug)]
pub(super) enum RawLimit {
    Text(String),
    /// The number as YAML gave it, for the message.
    Number(String),
}

impl<'de> Deserialize<'de> for RawExpect {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ExpectVisitor;

        impl<'de> Visitor<'de> for ExpectVisitor {
            type Value = RawExpect;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a mapping of metric names to \"OP NUMBER\", like `success_rate: \">= 0.95\"`",
                )
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawExpect, A::Error> {
                let mut pairs = Vec::new();
                while let Some(name) = map.next_key::<Spanned<String>>()? {
                    pairs.push((name, map.next_value::<Spanned<RawLimit>>()?));
                }
                Ok(RawExpect(pairs))
            }
        }

        deserializer.deserialize_map(ExpectVisitor)
    }
}

impl<'de> Deserialize<'de> for RawLimit {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LimitVisitor;

        impl Visitor<'_> for LimitVisitor {
            type Value = RawLimit;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"OP NUMBER\", like \">= 0.95\"")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawLimit, E> {
                Ok(RawLimit::Text(v.to_string()))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawLimit, E> {
                Ok(RawLimit::Number(v.to_string()))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawLimit, E> {
                Ok(RawLimit::Number(v.to_string()))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawLimit, E> {
                Ok(RawLimit::Number(v.to_string()))
            }
        }

        deserializer.deserialize_any(LimitVisitor)
    }
}

/// How a sensor's readings evolve, driven by the seed.
// Externally tagged, which (unlike internally tagged or untagged enums) keeps the positions of
// the inner fields.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
#[schemars(rename = "Signal")]
pub(super) enum RawSignal {
    /// Each reading moves from the last by a uniform step within `[-step, +step]`, kept
    /// within `[min, max]`.
    Walk {
        /// First reading (default halfway between `min` and `max`).
        #[schemars(with = "Option<f64>")]
        start: Option<Spanned<f64>>,
        /// Largest step, at least 0 (default 0.5).
        #[schemars(with = "Option<f64>")]
        step: Option<Spanned<f64>>,
        /// Lowest reading (default 0).
        #[schemars(with = "Option<f64>")]
        min: Option<Spanned<f64>>,
        /// Highest reading (default 40).
        #[schemars(with = "Option<f64>")]
        max: Option<Spanned<f64>>,
    },
    /// Each reading is uniform within `[min, max]`.
    Range {
        /// Lowest reading (default 0).
        #[schemars(with = "Option<f64>")]
        min: Option<Spanned<f64>>,
        /// Highest reading (default 40).
        #[schemars(with = "Option<f64>")]
        max: Option<Spanned<f64>>,
    },
}

/// `broker: embedded`, `broker: {embedded: {port: N, ...}}` or `broker: "mqtt://host:port"`.
#[derive(Debug)]
pub(super) enum RawBroker {
    /// A plain string: `embedded` or a URL, told apart in `validate`.
    Text(String),
    Embedded(Box<RawEmbedded>),
}

/// The settings of the embedded broker; `embedded:` with nothing after it takes every default.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Embedded")]
pub(super) struct RawEmbedded {
    /// Port on 127.0.0.1, 0 to 65535; 0 picks any free port (default 0).
    #[schemars(with = "Option<i64>", range(min = 0, max = 65535))]
    pub port: Option<Spanned<i64>>,
    /// Response Information returned in CONNACK to clients that ask for it; not empty, no
    /// `+`, `#` or NUL.
    #[schemars(with = "Option<String>")]
    pub response_information: Option<Spanned<String>>,
    /// Whether clients without a user name may connect (default true without `users`, false
    /// with them).
    #[schemars(with = "Option<bool>")]
    pub allow_anonymous: Option<Spanned<bool>>,
    /// Who may log in.
    #[schemars(with = "Option<Vec<RawUser>>")]
    pub users: Option<Spanned<Vec<Spanned<RawUser>>>>,
    /// What users may do; with rules, what no rule allows is refused.
    #[schemars(with = "Option<Vec<RawAclRule>>")]
    pub acl: Option<Spanned<Vec<Spanned<RawAclRule>>>>,
}

/// A user of the embedded broker.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "User")]
pub(super) struct RawUser {
    /// User name: not empty, no `+`, `#` or `/`, not `*` nor `fleetsim-supervisor`, unique.
    /// `${VAR}` and `${VAR:-default}` read the environment.
    #[schemars(with = "String", required)]
    pub name: Option<Spanned<String>>,
    /// Password (`""` for an empty one).
    #[schemars(with = "RawSecret", required)]
    pub password: Option<Spanned<RawSecret>>,
}

/// An ACL rule of the embedded broker.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "AclRule")]
pub(super) struct RawAclRule {
    /// A name from `users`, or `*` for every user.
    #[schemars(with = "String", required)]
    pub user: Option<Spanned<String>>,
    /// A topic filter (wildcards allowed) where `%u` stands for the user name.
    #[schemars(with = "String", required)]
    pub topic: Option<Spanned<String>>,
    /// `read`, `write`, `readwrite` or `deny`.
    #[schemars(with = "String", required, extend("enum" = ["read", "write", "readwrite", "deny"]))]
    pub access: Option<Spanned<String>>,
}

// Hand-written instead of `#[serde(untagged)]`: untagged enums report only "data did not match
// any variant", while this keeps serde's precise messages (unknown field, bad port type).
impl<'de> Deserialize<'de> for RawBroker {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BrokerVisitor;

        impl<'de> Visitor<'de> for BrokerVisitor {
            type Value = RawBroker;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "`embedded`, `{embedded: {port: N, ...}}` or a URL like mqtt://host:1883",
                )
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawBroker, E> {
                Ok(RawBroker::Text(v.to_string()))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawBroker, A::Error> {
                const FIELDS: &[&str] = &["embedded"];
                let Some(key) = map.next_key::<String>()? else {
                    return Err(de::Error::missing_field("embedded"));
                };
                if key != "embedded" {
                    return Err(de::Error::unknown_field(&key, FIELDS));
                }
                // `embedded:` with nothing after it is null, hence the Option.
                let settings = map.next_value::<Option<RawEmbedded>>()?;
                if let Some(extra) = map.next_key::<String>()? {
                    return Err(de::Error::unknown_field(&extra, FIELDS));
                }
                Ok(RawBroker::Embedded(Box::new(settings.unwrap_or_default())))
            }
        }

        deserializer.deserialize_any(BrokerVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lines_with_nothing_but_variables_after_password_are_safe_to_show() {
        for safe in [
            "name: x\n",
            "password: ${A}\n",
            "  - { name: a, password: \"${A_1}\" }\n",
            "'password': '${A}${B}'\n",
            "password:\n",
        ] {
            assert!(!may_show_password(safe), "{safe}");
        }
        for unsafe_ in [
            "password: hunter2\n",
            "password: pre-${A}\n",
            "password:\n  hunter2\n",
            "password: |\n  hunter2\n",
            "password: ${A b}\n",
            "password: ${A\n",
            "password: 1234\n",
            "\"pass\\x77ord\": hunter2\n",
            "\"p\\u0061ssword\": hunter2\n",
            "'PASSWORD': hunter2\n",
            "Password: hunter2\n",
            "users: [{name: a, \"pass\\x77ord\": hunter2}]\n",
            "users:\n  - name: a\n    Passwd: >-\n      hunter2\n",
            "x: &p hunter2\nsecret_key: *p\n",
        ] {
            assert!(may_show_password(unsafe_), "{unsafe_}");
        }
    }

    #[test]
    fn text_that_is_not_yaml_is_judged_line_by_line_and_cautiously() {
        // Unclosed flow mappings: not YAML, so no structure to go by.
        for unsafe_ in [
            "devices: [{id: l, \"pass\\x77ord\": hunter2\n",
            "devices: [{id: l, PassWord: hunter2\n",
            "devices: [{id: l, \"any\\u0020escape\": x\n",
            "devices: [{id: l,\n  secret:\n    hunter2\n",
        ] {
            assert!(
                serde_saphyr::from_str::<serde_json::Value>(unsafe_).is_err(),
                "{unsafe_}"
            );
            assert!(may_show_password(unsafe_), "{unsafe_}");
        }
        let safe = "devices: [{id: l, password: \"${P}\"\n";
        assert!(!may_show_password(safe), "{safe}");
    }

    /// Each spelling of a password key next to a format error: the error names the place, and
    /// never shows the value.
    #[test]
    fn no_spelling_of_a_password_key_leaks_into_a_yaml_error() {
        const SECRET: &str = "hunter2-literal";
        let cases = [
            format!("    \"pass\\x77ord\": {SECRET}\n    colour: red\n"),
            format!("    \"p\\u0061ssword\": {SECRET}\n    colour: red\n"),
            format!("    'PASSWORD': {SECRET}\n"),
            format!("    Password: {SECRET}\n"),
            format!("    will: {{payload: x, \"pass\\x77ord\": {SECRET}}}\n"),
            format!("    password: |\n      {SECRET}\n    colour: red\n"),
            format!("    password: >-\n      {SECRET}\n    colour: red\n"),
            format!("    password: \"{SECRET}\n      -continued\"\n    colour: red\n"),
        ];
        for body in cases {
            let text =
                format!("name: t\ndevices:\n  - kind: light\n    id: l\n    username: u\n{body}");
            let err = parse(&text, "f.yaml").expect_err("a format error");
            assert!(!err.contains(SECRET), "{body}: {err}");
            assert!(err.contains("line "), "{body}: {err}");
        }
    }
}
