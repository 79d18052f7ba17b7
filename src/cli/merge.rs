//! `fleetsim merge r1.json r2.json ...`: the shards of one run added up into the fleet's report,
//! judged on the fleet's `expect:` as a whole.

use std::path::{Path, PathBuf};

use clap::Args;

use super::{Exit, fail, finish, output_target, write_output};
use crate::lang::Lang;
use crate::report::{junit, merge, read_shard};

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The shards' JSON reports (`--report` of each `--shard I/N` run), one per shard.
    #[arg(required = true, value_name = "REPORT")]
    pub reports: Vec<PathBuf>,
    /// Write the merged report as JSON to this file (`-`: to stdout).
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,
    /// Also write the merged verdict as JUnit XML.
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
}

/// Reads, checks and adds up the shards' reports; exit 0 ok, 1 not ok, 2 refused.
pub fn run(args: MergeArgs, lang: Lang) -> Exit {
    // An input is never written over by the merge of itself.
    for (what, out) in [("report", &args.report), ("JUnit file", &args.junit)] {
        let Some(out) = out.as_deref().filter(|o| *o != Path::new("-")) else {
            continue;
        };
        let same = |input: &PathBuf| {
            input == out
                || matches!((input.canonicalize(), out.canonicalize()), (Ok(a), Ok(b)) if a == b)
        };
        if args.reports.iter().any(same) {
            return fail(
                Exit::Invalid,
                format!(
                    "the merged {what} would overwrite {}, one of the reports to merge",
                    out.display()
                ),
            );
        }
    }
    let target = match output_target(args.report.as_deref(), "report", true) {
        Ok(target) => target,
        Err(exit) => return exit,
    };
    let junit_target = match output_target(args.junit.as_deref(), "JUnit file", false) {
        Ok(target) => target,
        Err(exit) => return exit,
    };
    let mut files = Vec::with_capacity(args.reports.len());
    for path in &args.reports {
        let name = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => return fail(Exit::Invalid, format!("cannot read {name}: {e}")),
        };
        match read_shard(&name, &text) {
            Ok(file) => files.push((name, file)),
            Err(e) => return fail(Exit::Invalid, e),
        }
    }
    let report = match merge(&files) {
        Ok(report) => report,
        Err(e) => return fail(Exit::Invalid, e),
    };
    finish(&report, lang);
    let written = write_output(target.as_ref(), "report", || report.to_json());
    if let Err(exit) = written.and(write_output(junit_target.as_ref(), "JUnit file", || {
        junit(&report)
    })) {
        return exit;
    }
    if report.ok { Exit::Ok } else { Exit::NotOk }
}
