//! `fleetsim merge r1.json r2.json ...`: the shards of one run added up into the fleet's report,
//! judged on the fleet's `expect:` as a whole.

use std::path::PathBuf;

use clap::Args;

use super::{Exit, fail, finish};
use crate::lang::Lang;
use crate::output;
use crate::report::{ReportTarget, ShardFile, junit, merge};

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
    let target = args.report.as_deref().map(ReportTarget::from_arg);
    let junit_target = args.junit.clone().map(ReportTarget::File);
    // Checked before anything is read: a bad path fails at once, and an input is never
    // written over by the merge of itself.
    for (what, target) in [("report", &target), ("JUnit file", &junit_target)] {
        let Some(target) = target else { continue };
        if let ReportTarget::File(out) = target {
            let same = |input: &PathBuf| {
                input == out
                    || matches!(
                        (input.canonicalize(), out.canonicalize()),
                        (Ok(a), Ok(b)) if a == b
                    )
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
        if let Err(e) = target.check() {
            return fail(
                Exit::Invalid,
                format!("cannot write the {what} to {target}: {e}"),
            );
        }
    }
    if target == Some(ReportTarget::Stdout) {
        output::keep_stdout_for_data();
    }
    let mut files = Vec::with_capacity(args.reports.len());
    for path in &args.reports {
        let name = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => return fail(Exit::Invalid, format!("cannot read {name}: {e}")),
        };
        match serde_json::from_str::<ShardFile>(&text) {
            Ok(file) => files.push((name, file)),
            Err(e) => {
                return fail(Exit::Invalid, format!("{name}: not a fleetsim report: {e}"));
            }
        }
    }
    let report = match merge(&files) {
        Ok(report) => report,
        Err(e) => return fail(Exit::Invalid, e),
    };
    finish(&report, lang);
    if let Some(target) = &target
        && let Err(e) = target.write(&report.to_json())
    {
        return fail(
            Exit::NotOk,
            format!("cannot write the report to {target}: {e}"),
        );
    }
    if let Some(target) = &junit_target
        && let Err(e) = target.write(&junit(&report))
    {
        return fail(
            Exit::NotOk,
            format!("cannot write the JUnit file to {target}: {e}"),
        );
    }
    if report.ok { Exit::Ok } else { Exit::NotOk }
}
