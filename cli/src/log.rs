//! One log set-up for every silk binary: `RUST_LOG` filters, lines on stderr as text or
//! JSON.
//!
//! ```text
//! RUST_LOG=debug silk-host run …                 more detail
//! RUST_LOG=silk_router=debug,rustls=trace …      per crate
//! silk-router --log-format json …                one JSON object per line
//! SILK_LOG_FORMAT=json silk-enclave …            the same, from the environment
//! ```
//!
//! Text lines carry colour only when stderr is a terminal and `NO_COLOR` is not set.

use std::fmt;

use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, Json, Writer};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use crate::Style;

/// The variable every binary reads its log filter from.
pub const FILTER_ENV: &str = "RUST_LOG";

/// The variable that chooses the log format when `--log-format` is not given.
pub const FORMAT_ENV: &str = "SILK_LOG_FORMAT";

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Text,
    /// One JSON object per event (timestamp, level, target, fields, spans).
    Json,
}

/// The logging flags every silk binary takes (flatten into its top-level parser).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LogArgs {
    /// Log lines on stderr as `text` or `json` (one object per line). Which lines: the
    /// RUST_LOG filter, e.g. RUST_LOG=debug, or per crate RUST_LOG=info,rustls=trace.
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "FORMAT",
        env = FORMAT_ENV,
        default_value = "text"
    )]
    pub log_format: LogFormat,
}

impl LogArgs {
    /// Sets up logging (see [`init`]).
    pub fn init(&self, default_filter: &str) {
        init(self.log_format, default_filter, &[]);
    }
}

/// Sets up the global logger: `RUST_LOG`'s filter (else `default_filter`), stderr, in
/// `format`. Fields named in `hidden` are left out of every line (the router's client
/// addresses, unless its operator asks for them). A second call does nothing.
pub fn init(format: LogFormat, default_filter: &str, hidden: &'static [&'static str]) {
    let filter = filter(default_filter);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // try_init: a test harness (or a second call) may have set one already; keep it.
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(Style::stderr().decorated())
            .fmt_fields(TextFields { hidden })
            .try_init(),
        LogFormat::Json => builder
            .fmt_fields(format::JsonFields::new())
            .event_format(HidingJson {
                inner: format::format().json(),
                hidden,
            })
            .try_init(),
    };
}

/// `RUST_LOG`'s filter; a malformed one is reported and the default used instead, so that
/// a typo does not silence the logs without a word.
fn filter(default_filter: &str) -> EnvFilter {
    let spec = std::env::var(FILTER_ENV).ok();
    let (filter, complaint) = parse_filter(spec.as_deref(), default_filter);
    if let Some(c) = complaint {
        eprintln!("{c}");
    }
    filter
}

/// The filter from `spec` (unset or blank: `default_filter`), and what to say when `spec`
/// does not parse.
fn parse_filter(spec: Option<&str>, default_filter: &str) -> (EnvFilter, Option<String>) {
    match spec.filter(|s| !s.trim().is_empty()) {
        None => (EnvFilter::new(default_filter), None),
        Some(spec) => match EnvFilter::try_new(spec) {
            Ok(f) => (f, None),
            Err(e) => (
                EnvFilter::new(default_filter),
                Some(format!(
                    "{FILTER_ENV}={spec:?} is not a log filter ({e}); using {default_filter:?}"
                )),
            ),
        },
    }
}

/// Text fields: `message`, then ` name=value`, leaving out the hidden names and the `log.*`
/// fields that events forwarded from the `log` crate carry (their target is shown already).
struct TextFields {
    hidden: &'static [&'static str],
}

impl<'w> FormatFields<'w> for TextFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut result = Ok(());
        let mut first = true;
        fields.record(
            &mut |field: &tracing::field::Field, value: &dyn fmt::Debug| {
                let name = field.name();
                if result.is_err() || self.hidden.contains(&name) || name.starts_with("log.") {
                    return;
                }
                let sep = if first { "" } else { " " };
                result = if name == "message" {
                    write!(writer, "{sep}{value:?}")
                } else {
                    write!(writer, "{sep}{name}={value:?}")
                };
                first = false;
            },
        );
        result
    }
}

/// tracing-subscriber's JSON lines with the hidden fields taken out. Its JSON formatter
/// writes event fields itself (no [`FormatFields`] hook), so the line is formatted, parsed
/// and written again: a cost paid only when fields are hidden.
struct HidingJson {
    inner: format::Format<Json>,
    hidden: &'static [&'static str],
}

impl<S, N> FormatEvent<S, N> for HidingJson
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
    format::Format<Json>: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        if self.hidden.is_empty() {
            return self.inner.format_event(ctx, writer, event);
        }
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        // Unparseable would mean a hidden field could slip through: write nothing then.
        let mut value: serde_json::Value =
            serde_json::from_str(line.trim_end()).map_err(|_| fmt::Error)?;
        // The event's fields, and the fields of the spans it happened in.
        let spans = value
            .get("spans")
            .and_then(|s| s.as_array())
            .map_or(0, Vec::len);
        let places = ["/fields".to_owned(), "/span".to_owned()]
            .into_iter()
            .chain((0..spans).map(|i| format!("/spans/{i}")));
        for place in places {
            if let Some(fields) = value.pointer_mut(&place).and_then(|f| f.as_object_mut()) {
                for name in self.hidden {
                    fields.remove(*name);
                }
            }
        }
        writeln!(writer, "{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;

    /// A writer the test reads back.
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    impl Buf {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    const HIDDEN: &[&str] = &["peer"];

    fn event() {
        let span = tracing::info_span!("conn", peer = "198.51.100.7:4000", id = 3);
        let _g = span.enter();
        tracing::info!(peer = "198.51.100.7:4000", n = 5, "handled");
    }

    #[test]
    fn json_lines_parse_and_leave_hidden_fields_out() {
        let buf = Buf::default();
        let sub = tracing_subscriber::fmt()
            .with_writer(buf.clone())
            .fmt_fields(format::JsonFields::new())
            .event_format(HidingJson {
                inner: format::format().json(),
                hidden: HIDDEN,
            })
            .finish();
        tracing::subscriber::with_default(sub, event);
        let text = buf.text();
        let v: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(v["fields"]["message"], "handled");
        assert_eq!(v["fields"]["n"], 5);
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["span"]["id"], 3);
        assert!(!text.contains("198.51.100.7"), "{text}");
    }

    #[test]
    fn text_lines_leave_hidden_fields_out_and_carry_no_escapes() {
        let buf = Buf::default();
        let sub = tracing_subscriber::fmt()
            .with_writer(buf.clone())
            .with_ansi(false)
            .fmt_fields(TextFields { hidden: HIDDEN })
            .finish();
        tracing::subscriber::with_default(sub, event);
        let text = buf.text();
        assert!(text.contains("handled n=5"), "{text}");
        assert!(!text.contains("peer="), "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
    }

    #[test]
    fn a_malformed_filter_is_named_and_the_default_used() {
        let (f, said) = parse_filter(Some("silk=notalevel"), "warn");
        assert_eq!(f.to_string(), "warn");
        let said = said.unwrap();
        assert!(said.contains("RUST_LOG=\"silk=notalevel\""), "{said}");
        let (f, said) = parse_filter(Some("silk_router=debug"), "warn");
        assert_eq!((f.to_string().as_str(), said), ("silk_router=debug", None));
        assert_eq!(parse_filter(Some(" "), "info").0.to_string(), "info");
        assert_eq!(parse_filter(None, "info").0.to_string(), "info");
    }
}
