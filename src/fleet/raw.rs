//! The fleet file as written: serde structs that only enforce YAML shape, names and types.
//!
//! Every field is `Option<Spanned<_>>` so that a missing field, a default and a bad value can
//! all be reported later with a position. Numbers that have a range are read as `i64` so an
//! out-of-range value becomes a located semantic problem ("QoS must be 0, 1 or 2, got 3")
//! instead of a bare serde type error. Durations are read as text and parsed by `values`.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};
use serde_saphyr::Spanned;

/// Parse YAML text; on failure, the rendered serde-saphyr message (position and snippet).
pub(super) fn parse(text: &str, origin: &str) -> Result<Spanned<RawFleet>, String> {
    serde_saphyr::from_str::<Spanned<RawFleet>>(text).map_err(|e| {
        let rendered = e.render_with_options(serde_saphyr::render_options! {
            source_name: Some(origin),
        });
        // The origin is printed in front by `FleetError`; a second "error:" would be noise.
        rendered
            .strip_prefix("error: ")
            .map(str::to_string)
            .unwrap_or(rendered)
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFleet {
    pub name: Option<Spanned<String>>,
    pub broker: Option<Spanned<RawBroker>>,
    pub duration: Option<Spanned<String>>,
    pub seed: Option<Spanned<u64>>,
    pub devices: Option<Spanned<Vec<Spanned<RawGroup>>>>,
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
    pub timeout: Option<Spanned<String>>,
    pub requests: Option<Spanned<i64>>,
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

/// `broker: embedded`, `broker: {embedded: {port: N}}` or `broker: "mqtt://host:port"`.
#[derive(Debug)]
pub(super) enum RawBroker {
    /// A plain string: `embedded` or a URL, told apart in `validate`.
    Text(String),
    Embedded {
        port: Option<Spanned<i64>>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmbeddedSettings {
    port: Option<Spanned<i64>>,
}

// Hand-written instead of `#[serde(untagged)]`: untagged enums report only "data did not match
// any variant", while this keeps serde's precise messages (unknown field, bad port type).
impl<'de> Deserialize<'de> for RawBroker {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BrokerVisitor;

        impl<'de> Visitor<'de> for BrokerVisitor {
            type Value = RawBroker;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`embedded`, `{embedded: {port: N}}` or a URL like mqtt://host:1883")
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
                let settings = map.next_value::<Option<EmbeddedSettings>>()?;
                if let Some(extra) = map.next_key::<String>()? {
                    return Err(de::Error::unknown_field(&extra, FIELDS));
                }
                Ok(RawBroker::Embedded {
                    port: settings.and_then(|s| s.port),
                })
            }
        }

        deserializer.deserialize_any(BrokerVisitor)
    }
}
