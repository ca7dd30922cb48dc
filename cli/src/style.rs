//! Symbols and colour on a terminal, plain words elsewhere.

use std::io::IsTerminal;

/// Whether `NO_COLOR` asks for no colour: set and not empty, as <https://no-color.org>
/// defines it.
pub fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// How a report is decorated on one stream. The default is [`Style::Plain`]: what is not
/// known to be a terminal gets no symbols.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Style {
    /// A person at a terminal: ✔/✗ marks, colour where a command uses it.
    Terminal,
    /// A pipe, a file, or `NO_COLOR`: `PASS`/`FAIL` words, no escape sequences.
    #[default]
    Plain,
}

impl Style {
    /// The style for a stream: [`Style::Terminal`] only when it is a terminal and
    /// `NO_COLOR` is not set.
    pub fn of(stream: &impl IsTerminal) -> Self {
        if stream.is_terminal() && !no_color() {
            Self::Terminal
        } else {
            Self::Plain
        }
    }

    /// The style for standard output, where reports go.
    pub fn stdout() -> Self {
        Self::of(&std::io::stdout())
    }

    /// The style for standard error, where logs, errors and progress go.
    pub fn stderr() -> Self {
        Self::of(&std::io::stderr())
    }

    /// Whether symbols and colour may be written.
    pub fn decorated(self) -> bool {
        self == Self::Terminal
    }

    /// The mark for a passed or failed check: `✔`/`✗`, or `PASS`/`FAIL`.
    pub fn mark(self, passed: bool) -> &'static str {
        match (self, passed) {
            (Self::Terminal, true) => "✔",
            (Self::Terminal, false) => "✗",
            (Self::Plain, true) => "PASS",
            (Self::Plain, false) => "FAIL",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_marks_are_words_without_symbols() {
        for passed in [true, false] {
            let m = Style::Plain.mark(passed);
            assert!(
                m.is_ascii() && m.chars().all(|c| c.is_ascii_uppercase()),
                "{m}"
            );
        }
        assert_ne!(Style::Plain.mark(true), Style::Plain.mark(false));
        assert_eq!(Style::Terminal.mark(true), "✔");
        assert_eq!(Style::Terminal.mark(false), "✗");
    }

    #[test]
    fn a_file_is_not_a_terminal() {
        let f = tempfile_like();
        assert_eq!(Style::of(&f), Style::Plain);
    }

    /// Any open regular file will do; the crate's own manifest is always there.
    fn tempfile_like() -> std::fs::File {
        std::fs::File::open(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap()
    }
}
