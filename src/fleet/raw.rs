//! The fleet file as written: serde structs that only enforce YAML shape, names and types.
//!
//! Every field is `Option<Spanned<_>>` so that a missing field, a default and a bad value can
//! all be reported later with a position. Numbers that have a range are read as `i64` so an
//! out-of-range value becomes a located semantic problem ("QoS must be 0, 1 or 2, got 3")
//! instead of a bare serde type error. Durations are read as text and parsed by `values`.

use std::fmt;

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFleet {
    pub name: Option<Spanned<String>>,
    pub broker: Option<Spanned<RawBroker>>,
    pub duration: Option<Spanned<String>>,
    pub seed: Option<Spanned<u64>>,
    pub devices: Option<Spanned<Vec<Spanned<RawGroup>>>>,
    pub will_ack_timeout: Option<Spanned<String>>,
    pub faults: Option<Spanned<Vec<Spanned<RawFault>>>>,
    pub tls: Option<Spanned<RawTls>>,
    pub expect: Option<Spanned<RawExpect>>,
    pub supervisor: Option<Spanned<RawSupervisor>>,
    pub id_prefix: Option<Spanned<String>>,
    pub ramp: Option<Spanned<String>>,
    /// Addresses and `A-B` ranges, parsed by `sources`.
    pub source_addresses: Option<Spanned<Vec<Spanned<String>>>>,
    pub show_exchanges: Option<Spanned<i64>>,
}

/// `supervisor:`, the login of the supervisor's own connection on an external broker.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSupervisor {
    pub username: Option<Spanned<String>>,
    pub password: Option<Spanned<RawSecret>>,
}

/// `tls:`, client-side certificate files for `mqtts://` brokers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub ca_file: Option<Spanned<String>>,
    pub cert_file: Option<Spanned<String>>,
    pub key_file: Option<Spanned<String>>,
}

/// A password as written (`hunter2` or `${VAR}`). Its `Debug` hides it, so no debug print of
/// the raw file can leak a literal password.
#[derive(Deserialize)]
#[serde(transparent)]
pub(super) struct RawSecret(pub String);

impl fmt::Debug for RawSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// One entry of `devices:`. All kinds share this struct (kind-specific fields are checked by
/// hand), because a serde-tagged enum would lose the positions of the fields inside it and
/// could not say "field `every` is not valid for a light" with a line number.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGroup {
    pub kind: Option<Spanned<String>>,
    pub id: Option<Spanned<String>>,
    pub count: Option<Spanned<i64>>,
    pub qos: Option<Spanned<i64>>,
    pub keepalive: Option<Spanned<String>>,
    pub clean_start: Option<Spanned<bool>>,
    pub session_expiry: Option<Spanned<String>>,
    pub receive_maximum: Option<Spanned<i64>>,
    pub username: Option<Spanned<String>>,
    pub password: Option<Spanned<RawSecret>>,
    pub request_response_info: Option<Spanned<bool>>,
    pub response_info_fallback: Option<Spanned<String>>,
    // light
    pub command_topic: Option<Spanned<String>>,
    pub delay: Option<Spanned<String>>,
    pub initial: Option<Spanned<String>>,
    // sensor (`every` and `request_topic` are shared with phone)
    pub telemetry_topic: Option<Spanned<String>>,
    pub every: Option<Spanned<String>>,
    pub request_topic: Option<Spanned<String>>,
    pub unit: Option<Spanned<String>>,
    pub signal: Option<Spanned<RawSignal>>,
    // phone
    pub targets: Option<Spanned<Vec<Spanned<String>>>>,
    pub response_topic: Option<Spanned<String>>,
    pub payloads: Option<Spanned<Vec<Spanned<String>>>>,
    pub jitter: Option<Spanned<String>>,
    pub rate: Option<Spanned<String>>,
    pub group_rate: Option<Spanned<String>>,
    pub in_flight: Option<Spanned<i64>>,
    pub timeout: Option<Spanned<String>>,
    pub requests: Option<Spanned<i64>>,
    pub correlation_data: Option<Spanned<bool>>,
    pub expect_answer: Option<Spanned<super::answer::RawAnswerCheck>>,
    // any kind. `will:` with nothing after it is null: kept apart from an absent field (see
    // `present`) so it means "a Will with every default" rather than silently none.
    #[serde(default, deserialize_with = "present")]
    pub will: Option<Spanned<Option<RawWill>>>,
    #[serde(default, deserialize_with = "present")]
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

/// `will:` of a group.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWill {
    pub topic: Option<Spanned<String>>,
    pub payload: Option<Spanned<String>>,
    pub qos: Option<Spanned<i64>>,
    pub retain: Option<Spanned<bool>>,
    pub delay: Option<Spanned<String>>,
    pub message_expiry: Option<Spanned<String>>,
    pub user_properties: Option<Spanned<RawProperties>>,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConsumerSettings {
    pub topics: Option<Spanned<RawFilters>>,
    pub ack_delay: Option<Spanned<String>>,
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

/// One entry of `faults:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFault {
    pub kind: Option<Spanned<String>>,
    pub target: Option<Spanned<String>>,
    pub at: Option<Spanned<String>>,
    pub every: Option<Spanned<String>>,
    pub down_for: Option<Spanned<String>>,
    pub probability: Option<Spanned<f64>>,
    /// `MIN..MAX` or one duration, parsed by `fault_options`.
    pub delay: Option<Spanned<String>>,
    /// `64`, `300KiB`...: a bare integer arrives as its text too.
    pub size: Option<Spanned<String>>,
    // Network faults; parsed by `fault_options` like `delay` and `size`.
    /// `upstream`, `downstream` or `both`.
    pub direction: Option<Spanned<String>>,
    pub lasts: Option<Spanned<String>>,
    pub latency: Option<Spanned<String>>,
    pub jitter: Option<Spanned<String>>,
    /// Bytes a second, in the syntax of `size`.
    pub rate: Option<Spanned<String>>,
    /// Bytes, in the syntax of `size`.
    pub slice: Option<Spanned<String>>,
    pub slice_delay: Option<Spanned<String>>,
    /// Bytes, in the syntax of `size`.
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

/// `signal: {walk: {...}}` or `signal: {range: {...}}`. Externally tagged, which (unlike
/// internally tagged or untagged enums) keeps the positions of the inner fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub(super) enum RawSignal {
    Walk {
        start: Option<Spanned<f64>>,
        step: Option<Spanned<f64>>,
        min: Option<Spanned<f64>>,
        max: Option<Spanned<f64>>,
    },
    Range {
        min: Option<Spanned<f64>>,
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
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEmbedded {
    pub port: Option<Spanned<i64>>,
    pub response_information: Option<Spanned<String>>,
    pub allow_anonymous: Option<Spanned<bool>>,
    pub users: Option<Spanned<Vec<Spanned<RawUser>>>>,
    pub acl: Option<Spanned<Vec<Spanned<RawAclRule>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUser {
    pub name: Option<Spanned<String>>,
    pub password: Option<Spanned<RawSecret>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAclRule {
    pub user: Option<Spanned<String>>,
    pub topic: Option<Spanned<String>>,
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
