//! What every silk command line does alike.
//!
//! - [`Style`]: whether a stream gets symbols (✔/✗) and colour, or plain words. Plain when
//!   the stream is not a terminal or `NO_COLOR` is set (<https://no-color.org>), so that
//!   logs, pipes and files never carry escape bytes or symbols a script must know.
//! - [`json`]: a report as one JSON document on stdout, the same way for every command.
//! - `log` (feature `log`): one set-up for every binary: filters from `RUST_LOG`, text or
//!   JSON lines on stderr (`--log-format`, `SILK_LOG_FORMAT`).
//! - `progress` (feature `progress`): progress bars on stderr, hidden off a terminal.
//! - `docs` (feature `docs`): `completions SHELL` and `man` subcommands.

mod style;

#[cfg(feature = "docs")]
pub mod docs;
#[cfg(feature = "log")]
pub mod log;
#[cfg(feature = "progress")]
pub mod progress;

pub use style::{no_color, Style};

/// Writes `value` as one pretty-printed JSON document and a newline: what `--json` prints
/// on every command.
pub fn json<T: serde::Serialize + ?Sized>(
    out: &mut dyn std::io::Write,
    value: &T,
) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)
}
