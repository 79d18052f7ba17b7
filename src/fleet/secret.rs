//! Passwords and `${VAR}`: each `${NAME}` is replaced by the environment variable NAME while the
//! fleet is validated, so a fleet file can be shared without its secrets.
//!
//! Messages name the variable (and the caller names the field), never the text around it: that
//! text may be a literal password.

use std::env::VarError;

use super::model::Secret;

/// Reads one environment variable. `parse` and `load` use the process environment
/// ([`process_env`]); tests pass a closure, because tests run in parallel threads and setting
/// a process-wide variable in one would race with the others.
pub(super) type Env<'a> = &'a dyn Fn(&str) -> Result<String, VarError>;

pub(super) fn process_env(name: &str) -> Result<String, VarError> {
    std::env::var(name)
}

/// The Password of CONNECT carries a two-byte length (MQTT 5, 3.1.3.6).
const MAX_PASSWORD_BYTES: usize = 65_535;

/// Replace every `${NAME}` in `text`. A `$` not followed by `{` is literal, and a variable's
/// value is taken as is (a `${...}` inside it stays). On failure, every problem found, each
/// safe to print.
pub(super) fn expand_secret(text: &str, env: Env<'_>) -> Result<Secret, Vec<String>> {
    let mut out = String::with_capacity(text.len());
    let mut problems = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            problems.push(
                "`${` is not closed by `}` (environment variables are written `${NAME}`)"
                    .to_string(),
            );
            rest = "";
            break;
        };
        let name = &after[..end];
        rest = &after[end + 1..];
        // Checked before the lookup: the name is then safe to print (it cannot be a stray
        // piece of a literal password with spaces or punctuation), and `std::env::var` is
        // never asked about an empty name or one with `=` or NUL.
        if !is_var_name(name) {
            problems.push(
                "`${...}` must hold an environment variable name: letters, digits and `_`, not starting with a digit"
                    .to_string(),
            );
            continue;
        }
        match env(name) {
            Ok(value) => out.push_str(&value),
            Err(VarError::NotPresent) => {
                problems.push(format!("environment variable {name} is not set"));
            }
            Err(VarError::NotUnicode(_)) => {
                problems.push(format!("environment variable {name} is not valid UTF-8"));
            }
        }
    }
    out.push_str(rest);
    if problems.is_empty() && out.len() > MAX_PASSWORD_BYTES {
        problems.push(format!(
            "password is {} bytes long (max {MAX_PASSWORD_BYTES})",
            out.len()
        ));
    }
    if problems.is_empty() {
        Ok(Secret::new(out))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Result<String, VarError> {
        match name {
            "PASS" => Ok("s3cr3t".to_string()),
            "EMPTY" => Ok(String::new()),
            "NESTED" => Ok("${PASS}".to_string()),
            _ => Err(VarError::NotPresent),
        }
    }

    fn expand(text: &str) -> Result<String, Vec<String>> {
        expand_secret(text, &env).map(|s| s.expose().to_string())
    }

    #[test]
    fn variables_are_replaced_and_dollars_otherwise_literal() {
        assert_eq!(expand("${PASS}"), Ok("s3cr3t".into()));
        assert_eq!(expand("a${PASS}b${EMPTY}c"), Ok("as3cr3tbc".into()));
        assert_eq!(expand("$a$$b$"), Ok("$a$$b$".into()));
        assert_eq!(expand("${NESTED}"), Ok("${PASS}".into()));
        assert_eq!(expand(""), Ok(String::new()));
    }

    #[test]
    fn every_missing_or_malformed_variable_is_named_without_the_text() {
        let problems = expand("pw-${NOPE}-${ALSO_NOPE}").unwrap_err();
        assert_eq!(
            problems,
            [
                "environment variable NOPE is not set",
                "environment variable ALSO_NOPE is not set"
            ]
        );
        for bad in [
            "hunter${",
            "hunter${}",
            "hunter${a b}",
            "hunter${1X}",
            "hunter${=}",
        ] {
            let problems = expand(bad).unwrap_err();
            assert_eq!(problems.len(), 1, "{bad}");
            assert!(!problems[0].contains("hunter"), "{bad}: {problems:?}");
        }
    }

    #[test]
    fn non_unicode_values_and_huge_passwords_are_refused() {
        let not_unicode = |_: &str| Err(VarError::NotUnicode("x".into()));
        let problems = expand_secret("${X}", &not_unicode).unwrap_err();
        assert_eq!(problems, ["environment variable X is not valid UTF-8"]);
        let huge = "x".repeat(MAX_PASSWORD_BYTES + 1);
        let problems = expand(&huge).unwrap_err();
        assert!(problems[0].contains("65536 bytes"), "{problems:?}");
    }
}
