//! The fleet file: read YAML, check it, and expand it into the immutable [`Fleet`] model.
//!
//! # Layout
//! - `raw`: serde structs mirroring the YAML, every value wrapped in `Spanned` so checks can
//!   point at its line and column. Only syntax and types are enforced there.
//! - `values`: the problem collector and checks of single values (durations, ranges).
//! - `template`: `{id}`/`{n}`/`{target}`/`{response_info}` templates, topic-name rules and `*`
//!   globs.
//! - `vars`: `${VAR}` and `${VAR:-default}` (the broker, user names, request topics,
//!   targets), read from an injectable environment before any other check.
//! - `secret`: passwords, with their `${VAR}`s replaced by `vars`' rules.
//! - `fields`: what several parts share: `Located` values, topic templates, QoS (a leaf, so
//!   the modules below import it and not each other).
//! - `group`: checks one `devices:` entry into a plan (kind, id, connection, role settings).
//! - `phone`: the phone part of that: targets or request topic, payloads, timing.
//! - `will`: the `will` and `consume_wills` parts of a group (any kind), and their expansion.
//! - `access`: the embedded broker's users and ACL, each group's username and password, and
//!   device user names matched against the broker's users.
//! - `response_info`: Response Information: the embedded broker's, a device's request and
//!   fallback, and `{response_info}` in a phone's response topic.
//! - `tls`: the `tls:` certificate paths, and `mqtts://` needing a CA file.
//! - `sources`: `source_addresses:`, addresses and ranges devices connect from.
//! - `expand`: turns the plans into devices: ids, duplicate ids, topics, Wills, phone targets.
//! - `faults`: the top-level `faults:` list: kind, schedule (`at`/`every`/`probability`),
//!   `down_for`, and matching each target against the expanded devices.
//! - `fault_options`: the options of some fault kinds (`delay` of `slow`, `size` of
//!   `huge_payload`/`binary_payload`/`oversize_packet`, `direction`, `lasts`... of network
//!   faults, `lasts` of `withhold_acks`) into `FaultParams`.
//! - `fault_targets`: what a fault needs from the devices it hits (right kind of device, stall
//!   and flap needs, no race with a Will's due time; network and protocol faults: any device).
//! - `expect`: the top-level `expect:` mapping, metric -> `"OP NUMBER"`.
//! - `validate`: the top level, tying the above together.
//! - `model`: the validated result the rest of fleetsim runs.
//! - `warnings`: what a valid fleet may still run into (payloads over a Maximum Packet Size).
//! - `schema`: the JSON Schema of the file, generated from `raw` (`fleetsim schema`).
//!
//! Parsing stops at the first YAML error (serde cannot go on), but semantic checks collect every
//! problem so a user fixes a file in one round.

mod access;
mod answer;
mod expand;
mod expect;
mod fault_options;
mod fault_targets;
mod faults;
mod fields;
mod group;
pub mod model;
mod phone;
mod raw;
mod response_info;
mod schema;
mod secret;
mod sources;
mod template;
mod tls;
mod validate;
mod values;
mod vars;
mod warnings;
mod will;

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_access;
#[cfg(test)]
mod tests_bounds;
#[cfg(test)]
mod tests_expect;
#[cfg(test)]
mod tests_faults;
#[cfg(test)]
mod tests_network;
#[cfg(test)]
mod tests_protocol;
#[cfg(test)]
mod tests_sources;
#[cfg(test)]
mod tests_text;
#[cfg(test)]
mod tests_vars;

use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

pub use answer::AnswerCheck;
pub use model::*;
pub use schema::json_schema;
pub use validate::{id_prefix_problem, parse_broker};
pub use values::{MAX_DURATION, max_duration_text};

/// What the command line says instead of the fleet file, applied while validating so the
/// result is checked as a whole.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// In front of every client id (`--id-prefix`); already checked with
    /// [`id_prefix_problem`].
    pub id_prefix: Option<String>,
    /// `--broker`.
    pub broker: Option<BrokerTarget>,
    /// `--duration`: the faults are scheduled, and counted, against it.
    pub duration: Option<std::time::Duration>,
    /// `--seed`.
    pub seed: Option<u64>,
    /// `--ca-file`.
    pub ca_file: Option<PathBuf>,
    /// `--cert-file` and `--key-file`.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// `--shard I/N`.
    pub shard: Option<Shard>,
}
pub use warnings::oversized_payloads;

use validate::Context;

/// Why a fleet file could not be turned into a [`Fleet`].
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("cannot read fleet file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read fleet file {}: larger than {} MiB", path.display(), MAX_FLEET_BYTES >> 20)]
    TooLarge { path: PathBuf },
    /// Not YAML, or YAML that does not fit the format (unknown field, wrong type). `message`
    /// already names the line and column and shows a snippet.
    #[error("{origin}: {message}")]
    Yaml { origin: String, message: String },
    /// Well-formed YAML with values that do not make a runnable fleet; every problem found.
    #[error("{}", ProblemList { origin, problems })]
    Invalid {
        origin: String,
        problems: Vec<Problem>,
    },
}

/// One semantic problem, located at the offending value (or at the mapping that lacks a field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub column: usize,
    /// Path of the field, e.g. `devices[2].targets[0]`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.line, self.column, self.field, self.message
        )
    }
}

/// Renders `Invalid` as one `origin:line:col: field: message` line per problem, so editors and
/// terminals can jump to each.
struct ProblemList<'a> {
    origin: &'a str,
    problems: &'a [Problem],
}

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:{problem}", self.origin)?;
        }
        Ok(())
    }
}

/// The largest fleet file read: a million devices written out one by one fit, and `/dev/zero`
/// given by mistake ends in a message instead of exhausting memory. Not a regular-file check:
/// `fleetsim validate <(generate-fleet)` reads a pipe, and should.
pub const MAX_FLEET_BYTES: u64 = 64 * 1024 * 1024;

/// Read and validate a fleet file. Errors name the file, line, column and field. Relative
/// `tls` paths are taken relative to the file's directory; `${VAR}` in passwords is read from
/// the environment.
pub fn load(path: &Path) -> Result<Fleet, FleetError> {
    load_with(path, &Overrides::default())
}

/// [`load`], with the command line's overrides.
pub fn load_with(path: &Path, overrides: &Overrides) -> Result<Fleet, FleetError> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_FLEET_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|source| FleetError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    if bytes.len() as u64 > MAX_FLEET_BYTES {
        return Err(FleetError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    let origin = path.display().to_string();
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    // Lexical; fails only when the current directory is unknown, and then the relative
    // directory still resolves the same way for the rest of this run.
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let ctx = Context {
        base: Some(&dir),
        env: &secret::process_env,
        overrides,
    };
    // Decoding here rather than with read_to_string keeps "not text" a format error with a
    // position, instead of an I/O error that suggests the file is missing or unreadable.
    match String::from_utf8(bytes) {
        Ok(text) => parse_in(&text, &origin, &ctx),
        Err(e) => Err(FleetError::Yaml {
            origin,
            message: format!(
                "not UTF-8 text: invalid byte at offset {}",
                e.utf8_error().valid_up_to()
            ),
        }),
    }
}

/// Same from text; `origin` is what error messages call the file (a path or "<string>").
/// With no file, relative `tls` paths stay as written (relative to the current directory).
pub fn parse(text: &str, origin: &str) -> Result<Fleet, FleetError> {
    let ctx = Context {
        base: None,
        env: &secret::process_env,
        overrides: &Overrides::default(),
    };
    parse_in(text, origin, &ctx)
}

/// `parse` with the directory and environment given: tests pass their own environment.
fn parse_in(text: &str, origin: &str, ctx: &Context<'_>) -> Result<Fleet, FleetError> {
    let raw = raw::parse(text, origin).map_err(|message| FleetError::Yaml {
        origin: origin.to_string(),
        message,
    })?;
    validate::validate(raw, ctx).map_err(|problems| FleetError::Invalid {
        origin: origin.to_string(),
        problems,
    })
}
