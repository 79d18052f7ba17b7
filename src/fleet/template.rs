//! Templates (`cmnd/{id}/power`), the rules for client ids and topic names, and `*` globs.
//!
//! Templates are parsed once per group and expanded per device, so a syntax error is reported
//! once, not once per expanded device.

use std::fmt::Write as _;

/// Longest client id fleetsim generates. MQTT 5 lets brokers refuse ids over 23 bytes; 64 is a
/// limit every broker we target accepts, while leaving room for readable names.
pub(super) const MAX_ID_LEN: usize = 64;

/// Topic names are UTF-8 strings with a two-byte length prefix (MQTT 5, 1.5.4).
const MAX_TOPIC_BYTES: usize = 65_535;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Var {
    Id,
    N,
    Target,
}

impl Var {
    fn name(self) -> &'static str {
        match self {
            Var::Id => "id",
            Var::N => "n",
            Var::Target => "target",
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
pub(super) fn check_topic(topic: &str) -> Result<(), String> {
    if topic.is_empty() {
        return Err("topic must not be empty".to_string());
    }
    if let Some(w) = topic.chars().find(|c| matches!(c, '+' | '#')) {
        return Err(format!(
            "topic `{topic}` contains the wildcard `{w}`; only subscriptions may use + and #"
        ));
    }
    if topic.contains('\0') {
        return Err(format!(
            "topic `{}` contains a NUL character",
            topic.escape_debug()
        ));
    }
    if topic.len() > MAX_TOPIC_BYTES {
        return Err(format!(
            "topic is {} bytes long (max {MAX_TOPIC_BYTES}), starting `{}`",
            topic.len(),
            topic.chars().take(40).collect::<String>()
        ));
    }
    Ok(())
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
