//! Printing to stdout and stderr when the reader may be gone: `fleetsim validate f.yaml | head`
//! closes the pipe after ten lines, and `println!` panics on the broken pipe that follows.
//!
//! Once a write fails the stream is given up: nothing more is printed to it, and whatever the
//! caller was doing (a run, its report file) goes on. A broken pipe is silent (the reader left
//! on purpose); any other error is logged once.

use std::fmt::Display;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_GONE: AtomicBool = AtomicBool::new(false);
static STDERR_GONE: AtomicBool = AtomicBool::new(false);
/// Set when stdout carries the JSON report (`--report -`): what people read goes to stderr.
static HUMAN_ON_STDERR: AtomicBool = AtomicBool::new(false);

/// From now on, [`human`] prints to stderr, leaving stdout to a machine-readable document.
pub fn keep_stdout_for_data() {
    HUMAN_ON_STDERR.store(true, Ordering::Relaxed);
}

/// Text for people (the exchange trace, the summary): stdout, unless stdout was kept for data.
pub fn human(text: impl Display) {
    if HUMAN_ON_STDERR.load(Ordering::Relaxed) {
        error_line(text);
    } else {
        line(text);
    }
}

/// `text` and a newline on stdout, unless stdout is gone.
pub fn line(text: impl Display) {
    write_line(&mut io::stdout().lock(), &STDOUT_GONE, "stdout", text);
}

/// `text` and a newline on stderr, unless stderr is gone.
pub fn error_line(text: impl Display) {
    write_line(&mut io::stderr().lock(), &STDERR_GONE, "stderr", text);
}

fn write_line(out: &mut impl Write, gone: &AtomicBool, name: &str, text: impl Display) {
    if gone.load(Ordering::Relaxed) {
        return;
    }
    // Flushed here so the error shows now, not in a later line or never (at exit, unseen).
    if let Err(e) = writeln!(out, "{text}").and_then(|()| out.flush())
        && !gone.swap(true, Ordering::Relaxed)
        && e.kind() != io::ErrorKind::BrokenPipe
    {
        tracing::warn!("cannot write to {name}, printing no more there: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes `ok` bytes, then fails every write with `kind`.
    struct Failing {
        ok: usize,
        kind: io::ErrorKind,
        written: Vec<u8>,
        attempts: usize,
    }

    impl Write for Failing {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.attempts += 1;
            let room = self.ok - self.written.len();
            if room == 0 {
                return Err(self.kind.into());
            }
            let n = buf.len().min(room);
            self.written.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_broken_pipe_stops_printing_without_panicking() {
        let gone = AtomicBool::new(false);
        let mut out = Failing {
            ok: 4,
            kind: io::ErrorKind::BrokenPipe,
            written: Vec::new(),
            attempts: 0,
        };
        write_line(&mut out, &gone, "stdout", "first line");
        assert!(gone.load(Ordering::Relaxed));
        let attempts = out.attempts;
        write_line(&mut out, &gone, "stdout", "second line");
        assert_eq!(out.attempts, attempts, "no write after the pipe broke");
        assert_eq!(out.written, b"firs");
    }

    #[test]
    fn lines_are_written_whole_while_the_reader_is_there() {
        let gone = AtomicBool::new(false);
        let mut out = Vec::new();
        write_line(&mut out, &gone, "stdout", "a");
        write_line(&mut out, &gone, "stdout", format_args!("b{}", 1));
        assert_eq!(out, b"a\nb1\n");
        assert!(!gone.load(Ordering::Relaxed));
    }
}
