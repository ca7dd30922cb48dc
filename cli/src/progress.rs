//! Progress bars on stderr, for a person watching: hidden when stderr is not a terminal,
//! so logs and CI output get no redraw sequences.

use std::borrow::Cow;
use std::io::IsTerminal;
use std::time::Duration;

pub use indicatif::ProgressBar;
use indicatif::{ProgressDrawTarget, ProgressStyle};

/// Where bars draw: stderr when it is a terminal, nowhere otherwise.
fn target() -> ProgressDrawTarget {
    if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

fn styled(len: Option<u64>, template: &str, message: impl Into<Cow<'static, str>>) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(len, target());
    // The templates are constants below; a bad one is a programming error caught by the
    // tests, and the bar then keeps indicatif's default look rather than failing the run.
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message);
    bar
}

const BYTES: &str =
    "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} ({binary_bytes_per_sec}, {eta})";
const STEPS: &str = "{msg} [{bar:30}] {pos}/{len} ({elapsed})";
const SPINNER: &str = "{spinner} {msg} ({elapsed})";

/// A bar for `len` bytes of work (a download, a file hashed or copied).
pub fn bytes(len: u64, message: impl Into<Cow<'static, str>>) -> ProgressBar {
    styled(Some(len), BYTES, message)
}

/// A bar for `len` steps (benchmark rounds, files packed).
pub fn steps(len: u64, message: impl Into<Cow<'static, str>>) -> ProgressBar {
    styled(Some(len), STEPS, message)
}

/// A spinner for work of unknown length; it ticks by itself.
pub fn spinner(message: impl Into<Cow<'static, str>>) -> ProgressBar {
    let bar = styled(None, SPINNER, message);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Says what `bar` is doing now: its message on a terminal, a line on stderr otherwise
/// (where the bar is hidden), so that a log still shows how far a long run got.
pub fn say(bar: &ProgressBar, message: impl Into<Cow<'static, str>>) {
    let message = message.into();
    if bar.is_hidden() {
        eprintln!("{message}");
    } else {
        bar.set_message(message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse() {
        for t in [BYTES, STEPS, SPINNER] {
            ProgressStyle::with_template(t).unwrap();
        }
    }

    #[test]
    fn off_a_terminal_bars_are_hidden() {
        // The test harness captures stderr, so it is not a terminal here.
        if !std::io::stderr().is_terminal() {
            assert!(bytes(10, "x").is_hidden());
            assert!(steps(10, "x").is_hidden());
        }
    }
}
