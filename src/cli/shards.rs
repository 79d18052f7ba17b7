//! Which shard of a fleet this process runs: `--shard I/N`, `FLEETSIM_SHARD=I/N`, or, in a
//! Kubernetes Indexed Job, `--shards N` with the pod's `JOB_COMPLETION_INDEX` (from 0).

use std::ffi::OsString;

use crate::fleet::Shard;

pub const SHARD_ENV: &str = "FLEETSIM_SHARD";
pub const INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
pub const RUN_ID_ENV: &str = "FLEETSIM_RUN_ID";

/// The text of environment variable `name` (read with `env`); None when unset or empty, an
/// error naming it when it is not UTF-8.
pub fn env_text(
    env: &dyn Fn(&str) -> Option<OsString>,
    name: &str,
) -> Result<Option<String>, String> {
    match env(name).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .into_string()
            .map(Some)
            .map_err(|_| format!("{name} is not valid UTF-8")),
    }
}

/// The shard the command line and the environment (read with `env`) chose; None: the whole
/// fleet. `--shard` wins over `FLEETSIM_SHARD`; `--shards` needs `JOB_COMPLETION_INDEX`.
pub fn chosen_shard(
    flag: Option<Shard>,
    shards: Option<u32>,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Option<Shard>, String> {
    let text = |name: &str| env_text(env, name);
    if let Some(n) = shards {
        let Some(index) = text(INDEX_ENV)? else {
            return Err(format!(
                "--shards {n} takes this shard's index from {INDEX_ENV} (set by a Kubernetes Indexed Job), which is not set: use --shard I/{n} elsewhere"
            ));
        };
        let index: u32 = index.trim().parse().map_err(|_| {
            format!(
                "{INDEX_ENV} is `{index}`, not a shard index (0 to {})",
                n.saturating_sub(1)
            )
        })?;
        return Shard::parse(&format!("{}/{n}", u64::from(index) + 1))
            .map(Some)
            .map_err(|e| format!("--shards {n} with {INDEX_ENV}={index}: {e}"));
    }
    if flag.is_some() {
        return Ok(flag);
    }
    match text(SHARD_ENV)? {
        None => Ok(None),
        Some(value) => Shard::parse(&value)
            .map(Some)
            .map_err(|e| format!("{SHARD_ENV}: {e}")),
    }
}

/// `--run-id` (checked by clap already), else `FLEETSIM_RUN_ID`, checked here.
pub fn chosen_run_id(
    flag: Option<String>,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Option<String>, String> {
    if flag.is_some() {
        return Ok(flag);
    }
    env_text(env, RUN_ID_ENV)?
        .map(|id| parse_run_id(&id).map_err(|e| format!("{RUN_ID_ENV}: {e}")))
        .transpose()
}

/// A run id goes into topics: letters, digits, `-`, `_`, `.`, at most 64.
pub fn parse_run_id(text: &str) -> Result<String, String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
    if text.is_empty() || text.len() > 64 || !text.chars().all(ok) {
        return Err(format!(
            "`{text}` is not a run id: 1 to 64 letters, digits, `-`, `_` or `.`"
        ));
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<OsString> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn the_flag_wins_then_the_environment_and_an_indexed_job_counts_from_0() {
        let two_of_three = Shard { index: 1, count: 3 };
        let none = env(&[]);
        assert_eq!(chosen_shard(None, None, &none), Ok(None));
        assert_eq!(
            chosen_shard(Some(two_of_three), None, &env(&[(SHARD_ENV, "1/2")])),
            Ok(Some(two_of_three))
        );
        assert_eq!(
            chosen_shard(None, None, &env(&[(SHARD_ENV, "2/3")])),
            Ok(Some(two_of_three))
        );
        assert_eq!(
            chosen_shard(None, Some(3), &env(&[(INDEX_ENV, "1")])),
            Ok(Some(two_of_three))
        );
        let e = chosen_shard(None, Some(3), &none).unwrap_err();
        assert!(
            e.contains("JOB_COMPLETION_INDEX") && e.contains("not set"),
            "{e}"
        );
        let e = chosen_shard(None, Some(3), &env(&[(INDEX_ENV, "3")])).unwrap_err();
        assert!(e.contains("JOB_COMPLETION_INDEX=3"), "{e}");
        let e = chosen_shard(None, None, &env(&[(SHARD_ENV, "0/3")])).unwrap_err();
        assert!(e.starts_with("FLEETSIM_SHARD: "), "{e}");
    }

    #[test]
    fn run_ids_are_safe_in_topics() {
        assert_eq!(
            parse_run_id("nightly-2026.12.02"),
            Ok("nightly-2026.12.02".into())
        );
        assert!(parse_run_id("a/b").is_err());
        assert!(parse_run_id("+").is_err());
        assert!(parse_run_id("").is_err());
        assert_eq!(
            chosen_run_id(None, &env(&[(RUN_ID_ENV, "r1")])),
            Ok(Some("r1".into()))
        );
        assert_eq!(
            chosen_run_id(Some("r2".into()), &env(&[(RUN_ID_ENV, "r1")])),
            Ok(Some("r2".into()))
        );
        let e = chosen_run_id(None, &env(&[(RUN_ID_ENV, "a/b")])).unwrap_err();
        assert!(
            e.starts_with("FLEETSIM_RUN_ID: `a/b` is not a run id"),
            "{e}"
        );
    }
}
