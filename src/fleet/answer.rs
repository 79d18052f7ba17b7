//! `expect_answer:` of a phone group: what every matched answer must look like, checked as
//! answers arrive (`requests.bad_answers`). A backend that answers every request with
//! `{"error": ...}`, or with the wrong state, is then caught by content, not only by count.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

use super::values::Problems;

/// What every matched answer must look like: all of the checks given, at least one.
// The `///` comments are the descriptions of `fleetsim schema`, like those in `raw`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "AnswerCheck")]
pub(super) struct RawAnswerCheck {
    /// Dotted paths into a JSON answer (`state.power`, `items.0.id`) and the value each must
    /// hold.
    #[schemars(with = "Option<BTreeMap<String, serde_json::Value>>")]
    pub json: Option<Spanned<BTreeMap<String, serde_json::Value>>>,
    /// Text the answer must contain.
    #[schemars(with = "Option<String>")]
    pub contains: Option<Spanned<String>>,
    /// A regular expression (Rust `regex` syntax) the answer must match somewhere.
    #[schemars(with = "Option<String>")]
    pub regex: Option<Spanned<String>>,
}

/// What every matched answer of a phone must satisfy: all of the checks given.
#[derive(Debug, Clone)]
pub struct AnswerCheck {
    pub json: Vec<(String, serde_json::Value)>,
    pub contains: Option<String>,
    pub regex: Option<regex::Regex>,
}

impl PartialEq for AnswerCheck {
    fn eq(&self, other: &Self) -> bool {
        self.json == other.json
            && self.contains == other.contains
            && self.regex.as_ref().map(regex::Regex::as_str)
                == other.regex.as_ref().map(regex::Regex::as_str)
    }
}

/// The longest pattern accepted: a regex is compiled once, but a huge one is a mistake.
const MAX_PATTERN: usize = 4096;

pub(super) fn check_answer(
    problems: &mut Problems,
    raw: &Spanned<RawAnswerCheck>,
    at: &str,
) -> Option<AnswerCheck> {
    let r = &raw.value;
    if r.json.is_none() && r.contains.is_none() && r.regex.is_none() {
        problems.at(
            raw.referenced,
            at,
            "expect_answer needs at least one of `json`, `contains`, `regex`",
        );
        return None;
    }
    let mut ok = true;
    let json = match &r.json {
        Some(map) if map.value.is_empty() => {
            problems.at(
                map.referenced,
                format!("{at}.json"),
                "json must name at least one path",
            );
            ok = false;
            Vec::new()
        }
        Some(map) => {
            for path in map.value.keys() {
                if path.is_empty() || path.split('.').any(str::is_empty) {
                    problems.at(
                        map.referenced,
                        format!("{at}.json"),
                        format!("`{path}` is not a path: write keys joined by dots, like `state.power` or `items.0.id`"),
                    );
                    ok = false;
                }
            }
            map.value
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        }
        None => Vec::new(),
    };
    let regex = match &r.regex {
        Some(pattern) => compile(problems, pattern.referenced, &pattern.value, at).or_else(|| {
            ok = false;
            None
        }),
        None => None,
    };
    ok.then(|| AnswerCheck {
        json,
        contains: r.contains.as_ref().map(|c| c.value.clone()),
        regex,
    })
}

fn compile(
    problems: &mut Problems,
    loc: Location,
    pattern: &str,
    at: &str,
) -> Option<regex::Regex> {
    if pattern.len() > MAX_PATTERN {
        problems.at(
            loc,
            format!("{at}.regex"),
            format!(
                "regex is {} bytes long, at most {MAX_PATTERN}",
                pattern.len()
            ),
        );
        return None;
    }
    match regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
    {
        Ok(re) => Some(re),
        Err(e) => {
            problems.at(
                loc,
                format!("{at}.regex"),
                format!("not a valid regex: {e}"),
            );
            None
        }
    }
}

impl AnswerCheck {
    /// Why `payload` fails the check, or None when it passes.
    pub fn failure(&self, payload: &[u8]) -> Option<String> {
        if !self.json.is_empty() {
            let Ok(value) = serde_json::from_slice::<serde_json::Value>(payload) else {
                return Some("not JSON".into());
            };
            for (path, want) in &self.json {
                match lookup(&value, path) {
                    None => return Some(format!("no `{path}`")),
                    Some(got) if !same(got, want) => {
                        return Some(format!("`{path}` is {got}, expected {want}"));
                    }
                    Some(_) => {}
                }
            }
        }
        let text = String::from_utf8_lossy(payload);
        if let Some(needle) = &self.contains
            && !text.contains(needle.as_str())
        {
            return Some(format!("does not contain {needle:?}"));
        }
        if let Some(re) = &self.regex
            && !re.is_match(&text)
        {
            return Some(format!("does not match /{}/", re.as_str()));
        }
        None
    }
}

/// `a.b.0.c` into a JSON value: object keys, and array indexes where the value is an array.
fn lookup<'a>(value: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    path.split('.').try_fold(value, |v, key| match v {
        serde_json::Value::Object(map) => map.get(key),
        serde_json::Value::Array(items) => items.get(key.parse::<usize>().ok()?),
        _ => None,
    })
}

/// Equal, with numbers compared as numbers (`1` and `1.0` are the same reading).
fn same(got: &serde_json::Value, want: &serde_json::Value) -> bool {
    match (got.as_f64(), want.as_f64()) {
        (Some(a), Some(b)) => a == b,
        _ => got == want,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(
        json: &[(&str, serde_json::Value)],
        contains: Option<&str>,
        regex: Option<&str>,
    ) -> AnswerCheck {
        AnswerCheck {
            json: json
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            contains: contains.map(str::to_owned),
            regex: regex.map(|r| regex::Regex::new(r).unwrap()),
        }
    }

    #[test]
    fn json_paths_must_hold_their_values() {
        let c = check(
            &[("power", "ON".into()), ("state.level", 3.into())],
            None,
            None,
        );
        assert_eq!(c.failure(br#"{"power":"ON","state":{"level":3.0}}"#), None);
        assert_eq!(
            c.failure(br#"{"power":"OFF","state":{"level":3}}"#)
                .unwrap(),
            "`power` is \"OFF\", expected \"ON\""
        );
        assert_eq!(c.failure(br#"{"power":"ON"}"#).unwrap(), "no `state.level`");
        assert_eq!(c.failure(b"relay stuck").unwrap(), "not JSON");
        let items = check(&[("items.1.id", "b".into())], None, None);
        assert_eq!(items.failure(br#"{"items":[{"id":"a"},{"id":"b"}]}"#), None);
        assert_eq!(
            items.failure(br#"{"items":[{"id":"a"}]}"#).unwrap(),
            "no `items.1.id`"
        );
    }

    #[test]
    fn contains_and_regex_look_at_the_text() {
        let c = check(&[], Some("ok"), Some(r"^\{.*\}$"));
        assert_eq!(c.failure(br#"{"ok":true}"#), None);
        assert_eq!(
            c.failure(br#"{"error":"relay stuck"}"#).unwrap(),
            "does not contain \"ok\""
        );
        assert_eq!(c.failure(b"ok").unwrap(), "does not match /^\\{.*\\}$/");
    }
}
