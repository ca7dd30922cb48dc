//! Replaying a TDX event log into RTMR0–3, comparing the replay with the quote, and
//! comparing the logged events with those an image's recipe predicts.
//!
//! A log is evidence only through the quote: its events are trusted exactly when replaying
//! them gives the registers the quote reports (`tdx.event_log`). Then each event says what
//! was measured, so a register that differs from the image's prediction can be explained
//! by the first event that differs (`tdx.image_events`): its register, its place in the
//! log, the component the image predicts there and both digests.

use sha2::{Digest, Sha384};

use super::event_log::{EventLog, EventLogError};
use crate::checks::tdx;
use crate::verdict::{Check, Verdict};

/// A 48-byte TDX measurement register or SHA-384 event digest.
pub type Mr = [u8; 48];

/// RTMR ← SHA-384(RTMR ‖ digest) over `digests`, from 48 zero bytes.
pub fn extend_all(digests: &[Mr]) -> Mr {
    digests.iter().fold([0u8; 48], |mr, d| {
        Sha384::new()
            .chain_update(mr)
            .chain_update(d)
            .finalize()
            .into()
    })
}

/// One event an image's recipe predicts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PredictedEvent {
    /// What it measures, in words (`kernel`, `initrd`, `command line`, …).
    pub component: String,
    /// Its SHA-384 digest.
    pub digest: Mr,
}

/// The events an image predicts, register by register; `None` where the image predicts
/// nothing (RTMR0 depends on the VMM, RTMR3 on the running guest).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Predicted {
    /// RTMR0–3.
    pub rtmr: [Option<Vec<PredictedEvent>>; 4],
}

/// The first logged event that differs from the prediction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drift {
    /// The register (0–3).
    pub rtmr: usize,
    /// The event's place among the register's events (0-based).
    pub position: usize,
    /// The logged event's number and offset in the log, when the log has one there.
    pub logged: Option<(usize, usize, String)>,
    /// What the image predicts there, or what the log holds that the image does not.
    pub component: String,
    /// The predicted digest, when the image predicts an event there.
    pub expected: Option<Mr>,
    /// The logged digest, when the log has an event there.
    pub found: Option<Mr>,
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hex_or = |d: &Option<Mr>, none: &str| d.map_or_else(|| none.to_owned(), hex::encode);
        match &self.logged {
            Some((number, offset, kind)) => write!(
                f,
                "RTMR{} event {} (log event {number} at offset {offset:#x}, {kind})",
                self.rtmr, self.position
            )?,
            None => write!(
                f,
                "RTMR{} event {} (missing from the log)",
                self.rtmr, self.position
            )?,
        }
        write!(
            f,
            ", {}: expected {}, found {}",
            self.component,
            hex_or(&self.expected, "no event"),
            hex_or(&self.found, "no event")
        )
    }
}

/// The first event, in log order, that differs from `predicted` in a register it
/// predicts; then, if the log ran out first, the first predicted event it lacks.
pub fn first_difference(log: &EventLog, predicted: &Predicted) -> Option<Drift> {
    let mut seen = [0usize; 4];
    for e in &log.events {
        let Some(r) = e.rtmr() else { continue };
        let Some(want) = &predicted.rtmr[r] else {
            continue;
        };
        let position = seen[r];
        seen[r] += 1;
        let logged = Some((e.number, e.offset, e.type_name()));
        match want.get(position) {
            Some(p) if p.digest == e.sha384 => {}
            Some(p) => {
                return Some(Drift {
                    rtmr: r,
                    position,
                    logged,
                    component: p.component.clone(),
                    expected: Some(p.digest),
                    found: Some(e.sha384),
                })
            }
            None => {
                return Some(Drift {
                    rtmr: r,
                    position,
                    logged,
                    component: "an event the image does not predict".into(),
                    expected: None,
                    found: Some(e.sha384),
                })
            }
        }
    }
    (0..4).find_map(|r| {
        let p = predicted.rtmr[r].as_ref()?.get(seen[r])?;
        Some(Drift {
            rtmr: r,
            position: seen[r],
            logged: None,
            component: p.component.clone(),
            expected: Some(p.digest),
            found: None,
        })
    })
}

/// Checks an event log against the quote's RTMR0–3 (`tdx.event_log`) and, when the image's
/// events are given, against them (`tdx.image_events`). A log that does not parse fails
/// `tdx.event_log` with the parser's reason. Returns whether the log parsed.
pub fn verify(
    raw: &[u8],
    quoted: &[Mr; 4],
    predicted: Option<&Predicted>,
    verdict: &mut Verdict,
) -> bool {
    let log = match EventLog::parse(raw) {
        Ok(log) => log,
        Err(e) => {
            verdict.push(parse_failure(&e));
            return false;
        }
    };
    verdict.fact(
        "event_log",
        format!(
            "{} events, {} bytes (of {})",
            log.events.len(),
            log.length,
            raw.len()
        ),
    );
    verdict.push(replay_check(&log, quoted));
    if let Some(p) = predicted {
        verdict.push(image_check(&log, p));
    }
    true
}

fn parse_failure(e: &EventLogError) -> Check {
    Check::fail(
        &tdx::EVENT_LOG,
        "a TCG crypto-agile event log (CCEL) that replays to the quote's RTMR0-3",
        "does not parse",
        e.to_string(),
    )
}

/// `tdx.event_log`: the log replays to the quote's RTMR0–3; a failure names every
/// register that differs with both values.
pub fn replay_check(log: &EventLog, quoted: &[Mr; 4]) -> Check {
    let replayed = log.replay();
    let differ: Vec<usize> = (0..4).filter(|&i| replayed[i] != quoted[i]).collect();
    let extending = log.events.iter().filter(|e| e.rtmr().is_some()).count();
    let expected = "RTMR0-3 replayed from the event log equal the quote's";
    if differ.is_empty() {
        return Check::pass(
            &tdx::EVENT_LOG,
            expected,
            format!("{extending} events replay to the quoted RTMR0-3"),
        );
    }
    let found = differ
        .iter()
        .map(|&i| {
            format!(
                "RTMR{i}: replayed {}, quoted {}",
                hex::encode(replayed[i]),
                hex::encode(quoted[i])
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let names = differ
        .iter()
        .map(|i| format!("RTMR{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    Check::fail(
        &tdx::EVENT_LOG,
        expected,
        found,
        format!(
            "the event log does not replay to the quote's registers ({names}): it is not the \
             log of this TD's boot"
        ),
    )
}

/// `tdx.image_events`: every event the log holds for a register the image predicts is the
/// predicted one, in order; a failure names the first that differs.
pub fn image_check(log: &EventLog, predicted: &Predicted) -> Check {
    let registers: Vec<String> = (0..4)
        .filter(|&r| predicted.rtmr[r].is_some())
        .map(|r| format!("RTMR{r}"))
        .collect();
    let count: usize = predicted.rtmr.iter().flatten().map(Vec::len).sum();
    let expected = format!(
        "the {count} events the image predicts for {}",
        registers.join(" and ")
    );
    match first_difference(log, predicted) {
        None => Check::pass(
            &tdx::IMAGE_EVENTS,
            expected,
            format!("the log's {} events are those", registers.join(" and ")),
        ),
        Some(d) => Check::fail(
            &tdx::IMAGE_EVENTS,
            expected,
            d.to_string(),
            format!("the first logged event that differs from the image: {d}"),
        ),
    }
}

#[cfg(test)]
#[path = "replay_tests.rs"]
mod tests;
