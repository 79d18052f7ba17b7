//! What fleetsim prints, made safe for whoever reads it.
//!
//! - The reader may be gone: `fleetsim validate f.yaml | head` closes the pipe after ten lines,
//!   and `println!` panics on the broken pipe that follows. Once a write fails the stream is
//!   given up: nothing more is printed to it, and whatever the caller was doing (a run, its
//!   report file) goes on. A broken pipe is silent (the reader left on purpose); any other
//!   error is logged once.
//! - The text may be hostile: ids, topics and messages come from fleet files and brokers, and
//!   an `ESC[2J` in one would clear the reader's screen, a U+202E reverse what follows it.
//!   [`Escaped`] shows such characters as `\u{1b}` instead, and cuts long values short.

use std::fmt::{self, Display, Write as _};
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

/// Characters a terminal acts on instead of showing: C0 controls (NUL, ESC, CR...), DEL, C1
/// controls (MQTT 5, 1.5.4: strings should not hold any of these), the bidirectional-text
/// controls (U+061C, U+200E/F, U+202A-U+202E, U+2066-U+2069) that reorder what follows them,
/// and the Unicode line and paragraph separators.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
                | '\u{2028}'
                | '\u{2029}'
        )
}

/// How many characters of one value [`Escaped::value`] shows.
pub const VALUE_CHARS: usize = 120;
/// How many characters of one line [`Escaped::lines`] shows.
pub const LINE_CHARS: usize = 1000;

/// Text shown with every [`is_unsafe`] character escaped (`\n`, `\r`, `\t`, else
/// `\u{1b}`), cut after a number of characters with a note of how many were left out. A
/// backslash is shown as is, so an escape cannot be told from the same text written out; what
/// matters is that no character reaches the terminal raw.
pub struct Escaped<'a> {
    text: &'a str,
    /// Keep `\n` as a line break (and count the limit per line).
    lines: bool,
    limit: usize,
}

impl<'a> Escaped<'a> {
    /// One value (an id, a topic): newlines escaped too, at most [`VALUE_CHARS`] characters.
    pub fn value(text: &'a str) -> Self {
        Self {
            text,
            lines: false,
            limit: VALUE_CHARS,
        }
    }

    /// A message or a table of several lines: line breaks kept, each line at most
    /// [`LINE_CHARS`] characters.
    pub fn lines(text: &'a str) -> Self {
        Self {
            text,
            lines: true,
            limit: LINE_CHARS,
        }
    }
}

impl Escaped<'_> {
    fn piece(&self, f: &mut fmt::Formatter<'_>, piece: &str) -> fmt::Result {
        let mut chars = piece.chars();
        for c in chars.by_ref().take(self.limit) {
            match c {
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                '\0' => f.write_str("\\0")?,
                c if is_unsafe(c) => write!(f, "\\u{{{:x}}}", u32::from(c))?,
                c => f.write_char(c)?,
            }
        }
        match chars.count() {
            0 => Ok(()),
            1 => f.write_str("... (1 more character)"),
            cut => write!(f, "... ({cut} more characters)"),
        }
    }
}

impl Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.lines {
            return self.piece(f, self.text);
        }
        for (i, line) in self.text.split('\n').enumerate() {
            if i > 0 {
                f.write_char('\n')?;
            }
            self.piece(f, line)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unsafe_class_is_escaped() {
        let cases = [
            ("a\u{1b}[2Jb", "a\\u{1b}[2Jb"),
            ("\0", "\\0"),
            ("x\ry\tz", "x\\ry\\tz"),
            ("del\u{7f}", "del\\u{7f}"),
            ("c1\u{85}\u{9b}", "c1\\u{85}\\u{9b}"),
            ("\u{202e}evil", "\\u{202e}evil"),
            (
                "\u{202a}\u{202b}\u{202c}\u{202d}",
                "\\u{202a}\\u{202b}\\u{202c}\\u{202d}",
            ),
            (
                "\u{2066}\u{2067}\u{2068}\u{2069}",
                "\\u{2066}\\u{2067}\\u{2068}\\u{2069}",
            ),
            ("\u{200e}\u{200f}\u{61c}", "\\u{200e}\\u{200f}\\u{61c}"),
            ("\u{2028}\u{2029}", "\\u{2028}\\u{2029}"),
            ("°C café ✓ ünïcode", "°C café ✓ ünïcode"),
        ];
        for (raw, shown) in cases {
            assert_eq!(Escaped::value(raw).to_string(), shown, "{raw:?}");
        }
        assert_eq!(Escaped::value("a\nb").to_string(), "a\\nb");
        assert_eq!(
            Escaped::lines("one\u{1b}\ntwo\u{202e}").to_string(),
            "one\\u{1b}\ntwo\\u{202e}"
        );
    }

    #[test]
    fn long_values_and_lines_are_cut_saying_how_much() {
        let long = "x".repeat(VALUE_CHARS + 30);
        let shown = Escaped::value(&long).to_string();
        assert_eq!(
            shown,
            format!("{}... (30 more characters)", "x".repeat(VALUE_CHARS))
        );
        let exactly = "y".repeat(VALUE_CHARS);
        assert_eq!(Escaped::value(&exactly).to_string(), exactly);
        // Characters, not bytes: a cut never splits one.
        let wide = "é".repeat(VALUE_CHARS + 1);
        assert!(
            Escaped::value(&wide)
                .to_string()
                .ends_with("é... (1 more character)")
        );
        let text = format!("short\n{}", "z".repeat(LINE_CHARS + 2));
        let shown = Escaped::lines(&text).to_string();
        assert_eq!(
            shown,
            format!("short\n{}... (2 more characters)", "z".repeat(LINE_CHARS))
        );
    }

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
