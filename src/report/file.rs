//! Writing the JSON report where `--report` says: atomically (a temporary file beside it, then
//! a rename), so a run that dies midway, or a second run that fails, never leaves a truncated
//! report or destroys the last good one.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Where the report goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportTarget {
    /// `--report -`: JSON on stdout (the summary then goes to stderr).
    Stdout,
    File(PathBuf),
}

impl ReportTarget {
    pub fn from_arg(arg: &Path) -> Self {
        if arg == Path::new("-") {
            Self::Stdout
        } else {
            Self::File(arg.to_path_buf())
        }
    }

    /// Checks, before the run, that the report can be written there: a bad path fails in a
    /// second, not after the run. Touches nothing at `path` itself.
    pub fn check(&self) -> io::Result<()> {
        let Self::File(path) = self else {
            return Ok(());
        };
        if path.is_dir() {
            return Err(io::Error::other("it is a directory"));
        }
        let probe = temporary_beside(path, "probe");
        File::create(&probe)?;
        fs::remove_file(&probe)
    }

    pub fn write(&self, json: &str) -> io::Result<()> {
        match self {
            Self::Stdout => {
                crate::output::line(json);
                Ok(())
            }
            Self::File(path) => write_atomically(path, json),
        }
    }
}

impl std::fmt::Display for ReportTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Stdout => f.write_str("stdout"),
            Self::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// A name in `path`'s directory (so a rename stays on one file system) that no other run uses.
fn temporary_beside(path: &Path, what: &str) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "report".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.{what}-{}", std::process::id()))
}

fn write_atomically(path: &Path, text: &str) -> io::Result<()> {
    let temporary = temporary_beside(path, "tmp");
    let written = (|| {
        let mut file = File::create(&temporary)?;
        writeln!(file, "{text}")?;
        file.sync_all()?;
        fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_replaces_the_old_one_whole_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        fs::write(&path, "old").unwrap();
        let target = ReportTarget::from_arg(&path);
        target.check().unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "old",
            "checking touches nothing"
        );
        target.write("{\"ok\":true}").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "{\"ok\":true}\n");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["r.json"]);
    }

    #[test]
    fn a_path_that_cannot_be_written_fails_the_check() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            ReportTarget::from_arg(dir.path()).check().is_err(),
            "a directory"
        );
        let missing = dir.path().join("no/such/dir/r.json");
        assert!(ReportTarget::from_arg(&missing).check().is_err());
        assert_eq!(ReportTarget::from_arg(Path::new("-")), ReportTarget::Stdout);
    }
}
