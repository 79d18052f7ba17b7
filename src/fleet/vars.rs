//! Environment variables in fleet files: `${NAME}` and `${NAME:-default}` in the fields that
//! differ from one place to another (the broker, user names, passwords, request topics and
//! targets), replaced while the fleet is read, so one file serves a laptop and CI.
//!
//! `resolve` replaces them in the raw file before any other check, so every check after it
//! sees the values as they will run; passwords are expanded apart (`secret`), since their
//! values must never be printed. Messages name the variable, never the text around it.

use std::env::VarError;

use serde_saphyr::Spanned;

use super::raw::{RawBroker, RawFleet};
use super::values::Problems;

/// Reads one environment variable. `parse` and `load` use the process environment
/// ([`process_env`]); tests pass a closure, because tests run in parallel threads and setting
/// a process-wide variable in one would race with the others.
pub(super) type Env<'a> = &'a dyn Fn(&str) -> Result<String, VarError>;

pub(super) fn process_env(name: &str) -> Result<String, VarError> {
    std::env::var(name)
}

/// Replace every `${NAME}` in `text` by the variable NAME, and every `${NAME:-default}` by
/// NAME or, when NAME is unset or empty (as in the shell), by `default` as written. `$${` is
/// a literal `${`; any other `$` is plain text. A value is taken as is (a `${...}` inside it
/// stays). On failure, every problem found, each safe to print: none quotes `text`.
pub(super) fn expand(text: &str, env: Env<'_>) -> Result<String, Vec<String>> {
    let mut out = String::with_capacity(text.len());
    let mut problems = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        if rest[..start].ends_with('$') {
            // `$${`: the first `$` escapes the rest.
            out.push_str(&rest[..start - 1]);
            out.push_str("${");
            rest = &rest[start + 2..];
            continue;
        }
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            problems.push(
                "`${` is not closed by `}` (environment variables are written `${NAME}` or `${NAME:-default}`)"
                    .to_string(),
            );
            rest = "";
            break;
        };
        let inside = &after[..end];
        rest = &after[end + 1..];
        let (name, default) = match inside.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (inside, None),
        };
        // Checked before the lookup: the name is then safe to print (it cannot be a stray
        // piece of a literal password with spaces or punctuation), and `std::env::var` is
        // never asked about an empty name or one with `=` or NUL.
        if !is_var_name(name) {
            problems.push(
                "`${...}` must hold an environment variable name (letters, digits and `_`, not starting with a digit), optionally followed by `:-default`"
                    .to_string(),
            );
            continue;
        }
        match (env(name), default) {
            (Ok(value), Some(default)) if value.is_empty() => out.push_str(default),
            (Ok(value), _) => out.push_str(&value),
            (Err(VarError::NotPresent), Some(default)) => out.push_str(default),
            (Err(VarError::NotPresent), None) => {
                problems.push(format!("environment variable {name} is not set"));
            }
            // Not a default's case: the variable is set, to something unusable.
            (Err(VarError::NotUnicode(_)), _) => {
                problems.push(format!("environment variable {name} is not valid UTF-8"));
            }
        }
    }
    out.push_str(rest);
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Replace the variables of every field that takes them, in place. A field whose variables
/// cannot be replaced keeps its text, gets its problems, and no other problem is reported at
/// its place (a topic with an unset variable is not also a bad topic). `broker_overridden`:
/// `--broker` or FLEETSIM_BROKER replaces the file's broker, so its variables are not read.
pub(super) fn resolve(
    problems: &mut Problems,
    fleet: &mut RawFleet,
    env: Env<'_>,
    broker_overridden: bool,
) {
    let mut one = |field: &str, value: &mut Spanned<String>| {
        resolve_text(problems, field, &mut value.value, value.referenced, env);
    };
    if let Some(s) = &mut fleet.supervisor
        && let Some(name) = &mut s.value.username
    {
        one("supervisor.username", name);
    }
    for (i, group) in fleet
        .devices
        .iter_mut()
        .flat_map(|d| &mut d.value)
        .enumerate()
    {
        let g = &mut group.value;
        if let Some(name) = &mut g.username {
            one(&format!("devices[{i}].username"), name);
        }
        if let Some(topic) = &mut g.request_topic {
            one(&format!("devices[{i}].request_topic"), topic);
        }
        for (j, target) in g.targets.iter_mut().flat_map(|t| &mut t.value).enumerate() {
            one(&format!("devices[{i}].targets[{j}]"), target);
        }
    }
    let Some(broker) = &mut fleet.broker else {
        return;
    };
    match &mut broker.value {
        RawBroker::Text(text) if !broker_overridden => {
            resolve_text(problems, "broker", text, broker.referenced, env);
        }
        RawBroker::Text(_) => {}
        RawBroker::Embedded(embedded) => {
            for (k, user) in embedded
                .users
                .iter_mut()
                .flat_map(|u| &mut u.value)
                .enumerate()
            {
                if let Some(name) = &mut user.value.name {
                    one(&format!("broker.embedded.users[{k}].name"), name);
                }
            }
        }
    }
}

fn resolve_text(
    problems: &mut Problems,
    field: &str,
    text: &mut String,
    at: serde_saphyr::Location,
    env: Env<'_>,
) {
    // Most fields hold no variable: nothing to allocate or look up.
    if !text.contains("${") {
        return;
    }
    match expand(text, env) {
        Ok(value) => *text = value,
        Err(messages) => {
            for message in messages {
                problems.at(at, field, message);
            }
            problems.silence(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Result<String, VarError> {
        match name {
            "HOST" => Ok("broker.local".to_string()),
            "EMPTY" => Ok(String::new()),
            "NESTED" => Ok("${HOST}".to_string()),
            "BAD" => Err(VarError::NotUnicode("\u{fffd}".into())),
            _ => Err(VarError::NotPresent),
        }
    }

    fn expanded(text: &str) -> Result<String, Vec<String>> {
        expand(text, &env)
    }

    #[test]
    fn variables_and_defaults_are_replaced_like_the_shell_does() {
        assert_eq!(
            expanded("mqtt://${HOST}:1883"),
            Ok("mqtt://broker.local:1883".into())
        );
        assert_eq!(expanded("${HOST:-x}"), Ok("broker.local".into()));
        assert_eq!(expanded("${NOPE:-localhost}"), Ok("localhost".into()));
        // An empty variable takes the default, as `:-` does in the shell.
        assert_eq!(expanded("a${EMPTY:-b}c"), Ok("abc".into()));
        assert_eq!(expanded("a${EMPTY}c"), Ok("ac".into()));
        assert_eq!(expanded("${NOPE:-}"), Ok(String::new()));
        // The default is text as written: no variables inside it.
        assert_eq!(expanded("${NOPE:-a:-b$x}"), Ok("a:-b$x".into()));
        assert_eq!(expanded("${NESTED}"), Ok("${HOST}".into()));
    }

    #[test]
    fn a_doubled_dollar_writes_a_literal_variable_and_lone_dollars_stay() {
        assert_eq!(expanded("$${HOST}"), Ok("${HOST}".into()));
        assert_eq!(expanded("$$${HOST}"), Ok("$${HOST}".into()));
        assert_eq!(expanded("$a$$b$"), Ok("$a$$b$".into()));
        assert_eq!(expanded("cost$"), Ok("cost$".into()));
    }

    #[test]
    fn unset_unclosed_and_malformed_variables_are_named_without_the_text() {
        assert_eq!(
            expanded("t/${NOPE}/${ALSO_NOPE}"),
            Err(vec![
                "environment variable NOPE is not set".to_string(),
                "environment variable ALSO_NOPE is not set".to_string(),
            ])
        );
        assert_eq!(
            expanded("${BAD:-fine}"),
            Err(vec![
                "environment variable BAD is not valid UTF-8".to_string()
            ])
        );
        for bad in [
            "secret${",
            "secret${}",
            "secret${a b}",
            "secret${1X}",
            "secret${X-y}",
            "secret${:-y}",
        ] {
            let problems = expanded(bad).unwrap_err();
            assert_eq!(problems.len(), 1, "{bad}");
            assert!(!problems[0].contains("secret"), "{bad}: {problems:?}");
        }
    }
}
