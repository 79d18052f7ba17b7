//! Templates (`cmnd/{id}/power`), the rules for client ids, topic names and topic filters, and
//! `*` globs.
//!
//! Templates are parsed once per group and expanded per device, so a syntax error is reported
//! once, not once per expanded device.

use std::fmt::Write as _;

use crate::output::{Escaped, is_unsafe};

/// Longest client id fleetsim generates. MQTT 5 lets brokers refuse ids over 23 bytes; 64 is a
/// limit every broker we target accepts, while leaving room for readable names.
pub(super) const MAX_ID_LEN: usize = 64;

/// Topic names are UTF-8 strings with a two-byte length prefix (MQTT 5, 1.5.4).
pub(super) const MAX_TOPIC_BYTES: usize = 65_535;

/// `{response_info}` as written. It is never expanded here: the device replaces it once CONNACK
/// says what the broker's Response Information is, so expansion keeps it as this text.
pub(super) const RESPONSE_INFO: &str = "{response_info}";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Var {
    Id,
    N,
    Target,
    /// Kept as `{response_info}` by `expand`; see [`RESPONSE_INFO`].
    ResponseInfo,
}

impl Var {
    fn name(self) -> &'static str {
        match self {
            Var::Id => "id",
            Var::N => "n",
            Var::Target => "target",
            Var::ResponseInfo => "response_info",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Text(String),
    Var(Var),
}

/// A parsed template: literal text and variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Template {
    segments: Vec<Segment>,
}

/// Values for the variables of one expansion.
#[derive(Debug, Clone, Copy)]
pub(super) struct Vars<'a> {
    pub id: &'a str,
    pub n: u32,
    pub target: Option<&'a str>,
}

impl Template {
    /// Parse `text`, allowing only the variables in `allowed`. `{` opens a variable and must be
    /// closed; a lone `}` is literal text (it is legal in topics).
    pub fn parse(text: &str, allowed: &[Var]) -> Result<Template, String> {
        let mut segments = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                segments.push(Segment::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let Some(close) = after.find('}') else {
                return Err(format!(
                    "unclosed `{{` in `{text}` (variables look like {})",
                    list(allowed)
                ));
            };
            let name = &after[..close];
            let var = match name {
                "id" => Var::Id,
                "n" => Var::N,
                "target" => Var::Target,
                "response_info" => Var::ResponseInfo,
                _ => {
                    return Err(format!(
                        "unknown template variable `{{{name}}}` in `{text}` (allowed: {})",
                        list(allowed)
                    ));
                }
            };
            if !allowed.contains(&var) {
                let why = match var {
                    Var::Target => {
                        "is only available in the response_topic of a phone with targets"
                    }
                    Var::ResponseInfo => "is only available in the response_topic of a phone",
                    Var::Id => "cannot be used in an id",
                    Var::N => "is not available here",
                };
                return Err(format!(
                    "`{{{name}}}` {why} (in `{text}`; allowed here: {})",
                    list(allowed)
                ));
            }
            segments.push(Segment::Var(var));
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            segments.push(Segment::Text(rest.to_string()));
        }
        Ok(Template { segments })
    }

    /// Parse `text` where only `{name}` of an allowed variable is a variable and every other
    /// brace is plain text. For payloads, which are often JSON: `{"id":"{id}"}` keeps its
    /// outer braces and replaces `{id}`. Never fails.
    pub fn parse_loose(text: &str, allowed: &[Var]) -> Template {
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            literal.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let var = allowed.iter().copied().find(|v| {
                after
                    .strip_prefix(v.name())
                    .is_some_and(|tail| tail.starts_with('}'))
            });
            match var {
                Some(var) => {
                    if !literal.is_empty() {
                        segments.push(Segment::Text(std::mem::take(&mut literal)));
                    }
                    segments.push(Segment::Var(var));
                    rest = &after[var.name().len() + 1..];
                }
                None => {
                    literal.push('{');
                    rest = after;
                }
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            segments.push(Segment::Text(literal));
        }
        Template { segments }
    }

    pub fn expand(&self, vars: Vars<'_>) -> String {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Text(t) => out.push_str(t),
                Segment::Var(Var::Id) => out.push_str(vars.id),
                Segment::Var(Var::N) => {
                    // Writing to a String cannot fail.
                    let _ = write!(out, "{}", vars.n);
                }
                Segment::Var(Var::Target) => out.push_str(vars.target.unwrap_or_default()),
                Segment::Var(Var::ResponseInfo) => out.push_str(RESPONSE_INFO),
            }
        }
        out
    }

    pub fn uses(&self, var: Var) -> bool {
        self.segments.contains(&Segment::Var(var))
    }

    /// The literal text between variables.
    pub fn literals(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Text(t) => Some(t.as_str()),
            Segment::Var(_) => None,
        })
    }
}

fn list(allowed: &[Var]) -> String {
    if allowed.is_empty() {
        return "none".to_string();
    }
    allowed
        .iter()
        .map(|v| format!("{{{}}}", v.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// Check an expanded topic name (or response topic): what a broker would refuse in PUBLISH.
/// What makes `text` unfit for a topic, an id or a name, if anything: NUL (MQTT forbids it),
/// other control characters (MQTT 5, 1.5.4: strings should not hold them; a client id or topic
/// with one is a typo or an attack) and bidirectional-text controls (a terminal showing the
/// value would reorder what follows). Worded to follow "contains".
pub(super) fn unsafe_char(text: &str) -> Option<String> {
    let c = text.chars().find(|&c| is_unsafe(c))?;
    Some(match c {
        '\0' => "a NUL character".to_string(),
        c if c.is_control() => format!("the control character U+{:04X}", u32::from(c)),
        c => format!(
            "the invisible formatting character U+{:04X}, which reorders or breaks the text around it",
            u32::from(c)
        ),
    })
}

pub(super) fn check_topic(topic: &str) -> Result<(), String> {
    if topic.is_empty() {
        return Err("topic must not be empty".to_string());
    }
    if let Some(what) = unsafe_char(topic) {
        return Err(format!("topic `{}` contains {what}", Escaped::value(topic)));
    }
    if topic.len() > MAX_TOPIC_BYTES {
        return Err(format!(
            "topic is {} bytes long (max {MAX_TOPIC_BYTES}), starting `{}`",
            topic.len(),
            topic.chars().take(40).collect::<String>()
        ));
    }
    // The protocol's rules are the protocol crate's; what is left here is saying which one a
    // topic breaks.
    if !mqtt5_protocol::validation::is_valid_topic_name(topic) {
        let w = topic
            .chars()
            .find(|c| matches!(c, '+' | '#'))
            .unwrap_or('#');
        return Err(format!(
            "topic `{topic}` contains the wildcard `{w}`; only subscriptions may use + and #"
        ));
    }
    Ok(())
}

/// Check a topic filter (a subscription): what a broker would refuse in SUBSCRIBE. `#` must be
/// a whole level and the last one; `+` must be a whole level.
pub(super) fn check_filter(filter: &str) -> Result<(), String> {
    if filter.is_empty() {
        return Err("topic filter must not be empty".to_string());
    }
    if let Some(what) = unsafe_char(filter) {
        return Err(format!(
            "topic filter `{}` contains {what}",
            Escaped::value(filter)
        ));
    }
    if filter.len() > MAX_TOPIC_BYTES {
        return Err(format!(
            "topic filter is {} bytes long (max {MAX_TOPIC_BYTES}), starting `{}`",
            filter.len(),
            filter.chars().take(40).collect::<String>()
        ));
    }
    if mqtt5_protocol::validation::is_valid_topic_filter(filter) {
        return Ok(());
    }
    // Refused by the protocol crate's rules: say which wildcard is misplaced.
    let hash_ok = filter
        .find('#')
        .is_none_or(|at| at + 1 == filter.len() && (at == 0 || filter[..at].ends_with('/')));
    Err(if hash_ok {
        format!(
            "topic filter `{filter}` misplaces `+`: it must be a whole level (like `status/+/state`)"
        )
    } else {
        format!(
            "topic filter `{filter}` misplaces `#`: it must be a whole level, and the last one (like `status/#`)"
        )
    })
}

/// Does `id` match `pattern`, where `*` matches any run of characters (including none)?
pub(super) fn glob_match(pattern: &str, id: &str) -> bool {
    // Classic greedy matcher with backtracking to the last `*`: O(len(pattern) * len(id)) at
    // worst, and ids are at most 64 characters.
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = id.chars().collect();
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, si));
            pi += 1;
        } else if pi < p.len() && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[Var] = &[Var::Id, Var::N, Var::Target];

    #[test]
    fn expands_every_variable() {
        let t = Template::parse("r/{id}/{n}/{target}}", ALL).unwrap();
        let vars = Vars {
            id: "p",
            n: 7,
            target: Some("l-1"),
        };
        assert_eq!(t.expand(vars), "r/p/7/l-1}");
        assert!(t.uses(Var::N));
    }

    #[test]
    fn rejects_unknown_unclosed_and_disallowed_variables() {
        let e = Template::parse("a/{foo}", ALL).unwrap_err();
        assert!(e.contains("unknown template variable `{foo}`"), "{e}");
        let e = Template::parse("a/{id", ALL).unwrap_err();
        assert!(e.contains("unclosed `{`"), "{e}");
        let e = Template::parse("a/{target}", &[Var::Id, Var::N]).unwrap_err();
        assert!(e.contains("`{target}` is only available"), "{e}");
    }

    #[test]
    fn response_info_is_kept_for_the_device_to_fill_in() {
        let t = Template::parse("{response_info}{id}", &[Var::Id, Var::ResponseInfo]).unwrap();
        assert!(t.uses(Var::ResponseInfo));
        let vars = Vars {
            id: "p",
            n: 1,
            target: None,
        };
        assert_eq!(t.expand(vars), "{response_info}p");
        let e = Template::parse("{response_info}x", &[Var::Id]).unwrap_err();
        assert!(
            e.contains("only available in the response_topic of a phone"),
            "{e}"
        );
    }

    #[test]
    fn loose_templates_keep_other_braces_as_text() {
        let t = Template::parse_loose(
            r#"{"id":"{id}","n":{n},"x":"{target}"}{"#,
            &[Var::Id, Var::N],
        );
        let vars = Vars {
            id: "l-1",
            n: 3,
            target: Some("t"),
        };
        assert_eq!(t.expand(vars), r#"{"id":"l-1","n":3,"x":"{target}"}{"#);
        assert_eq!(Template::parse_loose("", &[Var::Id]).expand(vars), "");
        assert_eq!(Template::parse_loose("{id", &[Var::Id]).expand(vars), "{id");
    }

    #[test]
    fn topic_filters_allow_wildcards_only_as_whole_levels() {
        for good in ["a/b", "+", "#", "status/+", "a/+/c/#", "/+", "$share/g/a/#"] {
            assert!(check_filter(good).is_ok(), "{good}");
        }
        for bad in ["", "a/#/b", "a#", "a/b#", "a+/b", "a/+b", "a\0b", "##"] {
            assert!(check_filter(bad).is_err(), "{bad}");
        }
        assert!(check_filter(&"x".repeat(65_536)).is_err());
    }

    #[test]
    fn globs_match_like_shell_stars() {
        assert!(glob_match("sensor-*", "sensor-1"));
        assert!(glob_match("*", "x"));
        assert!(glob_match("a*b*c", "aXbYbc"));
        assert!(glob_match("light", "light"));
        assert!(!glob_match("light", "light-1"));
        assert!(!glob_match("a*b", "aXc"));
        assert!(glob_match("**", ""));
    }

    #[test]
    fn topics_with_wildcards_nul_or_nothing_are_refused() {
        assert!(check_topic("a/b").is_ok());
        assert!(check_topic("").is_err());
        assert!(check_topic("a/+").unwrap_err().contains('+'));
        assert!(check_topic("a/#").unwrap_err().contains('#'));
        assert!(check_topic("a\0b").is_err());
        assert!(check_topic(&"x".repeat(65_536)).is_err());
    }
}
