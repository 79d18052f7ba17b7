//! Passwords and `${VAR}`: each `${NAME}` (or `${NAME:-default}`) is replaced by the
//! environment variable NAME while the fleet is validated (the rules are `vars`'), so a fleet
//! file can be shared without its secrets.
//!
//! Messages name the variable (and the caller names the field), never the text around it: that
//! text may be a literal password.

use super::model::Secret;
pub(super) use super::vars::{Env, process_env};

/// The Password of CONNECT carries a two-byte length (MQTT 5, 3.1.3.6).
const MAX_PASSWORD_BYTES: usize = 65_535;

/// Replace every variable in `text` (see [`super::vars::expand`]). On failure, every problem
/// found, each safe to print.
pub(super) fn expand_secret(text: &str, env: Env<'_>) -> Result<Secret, Vec<String>> {
    let out = super::vars::expand(text, env)?;
    if out.len() > MAX_PASSWORD_BYTES {
        return Err(vec![format!(
            "password is {} bytes long (max {MAX_PASSWORD_BYTES})",
            out.len()
        )]);
    }
    Ok(Secret::new(out))
}

#[cfg(test)]
mod tests {
    use std::env::VarError;

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
