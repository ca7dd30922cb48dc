//! `silk receipts verify`: checks usage receipts offline against the worker's evidence.
//!
//! The worker's bundle is verified under the policy first (a receipt is only as good as
//! the attestation of the key that signed it); then every receipt line: its signature by
//! the receipt key in the bundle's claims, that it names that worker, the client's
//! acknowledgement when there is one, and that no request or receipt number is counted
//! twice. Exit 0 when everything verified, 1 when a check failed, 2 when the inputs could
//! not be used.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use silk_protocol::receipt::{Ack, Receipt, ReceiptError};
use silk_protocol::{EvidenceBundle, Expectations};

use crate::receipts::ReceiptLine;
use silk_protocol::attestation::checks::{ack, receipt};

/// One receipt's result.
#[derive(Debug, serde::Serialize)]
pub struct LineResult {
    /// 1-based line number in the file.
    pub line: usize,
    /// The receipt's number, when it decoded.
    pub counter: Option<u64>,
    /// Prompt and completion tokens, when it verified.
    pub tokens: Option<(u32, u32)>,
    /// The client key that acknowledged it (hex), when an acknowledgement verified.
    pub acked_by: Option<String>,
    /// The failed check's name and detail, if any.
    pub failure: Option<(String, String)>,
}

/// The whole result.
#[derive(Debug, serde::Serialize)]
pub struct Report {
    /// The worker id (hex claims digest) the receipts must name.
    pub worker: String,
    /// Per line.
    pub lines: Vec<LineResult>,
    /// Prompt tokens over the receipts that verified.
    pub prompt_tokens: u64,
    /// Completion tokens over the receipts that verified.
    pub completion_tokens: u64,
}

impl Report {
    /// Whether every line verified.
    pub fn ok(&self) -> bool {
        self.lines.iter().all(|l| l.failure.is_none())
    }
}

/// Why the inputs could not be used (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A file could not be read.
    #[error("{0}")]
    Read(String),
    /// The bundle or policy is unusable.
    #[error("{0}")]
    Input(String),
}

/// Verifies the bundle under the policy; an `Err(Ok(..))` is a rejected bundle (exit 1).
fn verify_bundle(
    bundle: &Path,
    policy: &Path,
) -> Result<Result<silk_protocol::Claims, String>, InputError> {
    let text = std::fs::read(bundle)
        .map_err(|e| InputError::Read(format!("bundle {}: {e}", bundle.display())))?;
    let policy = crate::chat::load_policy(policy).map_err(|e| InputError::Input(e.to_string()))?;
    let bundle = EvidenceBundle::from_json(&text)
        .map_err(|e| InputError::Input(format!("bundle {}: {e}", bundle.display())))?;
    let (claims, verdict) = match bundle.verify(
        &policy,
        &Expectations::default(),
        time::OffsetDateTime::now_utc(),
    ) {
        Ok(v) => v,
        Err(e) => return Ok(Err(format!("bundle: {e}"))),
    };
    if !verdict.accepted() {
        let names: Vec<_> = verdict.failures().map(|c| c.name.to_string()).collect();
        return Ok(Err(format!(
            "the worker's evidence failed: {}",
            names.join(", ")
        )));
    }
    Ok(Ok(claims))
}

/// Checks every line of `file` against the verified claims.
pub fn check_lines(text: &str, claims: &silk_protocol::Claims) -> Result<Report, InputError> {
    let worker = claims
        .digest()
        .map_err(|e| InputError::Input(format!("claims: {e}")))?;
    let mut seen_requests = HashSet::new();
    let mut seen_counters = HashSet::new();
    let mut report = Report {
        worker: hex::encode(worker),
        lines: Vec::new(),
        prompt_tokens: 0,
        completion_tokens: 0,
    };
    for (i, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let mut result = LineResult {
            line: i + 1,
            counter: None,
            tokens: None,
            acked_by: None,
            failure: None,
        };
        let checked = (|| -> Result<(), ReceiptError> {
            let fmt = |detail: String| ReceiptError::Format {
                check: &receipt::FORMAT,
                detail,
            };
            let line: ReceiptLine =
                serde_json::from_str(raw).map_err(|e| fmt(format!("not a receipt line: {e}")))?;
            let signed =
                hex::decode(&line.receipt).map_err(|e| fmt(format!("receipt hex: {e}")))?;
            let r = Receipt::verify(&signed, &claims.receipt_public_key)?;
            result.counter = Some(r.counter);
            if r.worker_id != worker {
                return Err(ReceiptError::Mismatch {
                    check: &receipt::WORKER,
                    expected: hex::encode(worker),
                    found: hex::encode(r.worker_id),
                });
            }
            if let Some(ack) = &line.ack {
                let ack = hex::decode(ack).map_err(|e| ReceiptError::Format {
                    check: &ack::FORMAT,
                    detail: format!("ack hex: {e}"),
                })?;
                result.acked_by = Some(hex::encode(Ack::verify(&ack, &signed)?.client_key));
            }
            if !seen_requests.insert(r.request_digest) {
                return Err(ReceiptError::Duplicate(format!(
                    "a second receipt for request {}",
                    hex::encode(&r.request_digest[..8])
                )));
            }
            if !seen_counters.insert(r.counter) {
                return Err(ReceiptError::Duplicate(format!(
                    "receipt number {} appears twice",
                    r.counter
                )));
            }
            result.tokens = Some((r.prompt_tokens, r.completion_tokens));
            report.prompt_tokens += u64::from(r.prompt_tokens);
            report.completion_tokens += u64::from(r.completion_tokens);
            Ok(())
        })();
        if let Err(e) = checked {
            result.failure = Some((e.check().to_owned(), e.to_string()));
        }
        report.lines.push(result);
    }
    Ok(report)
}

/// Runs `silk receipts verify`; returns the exit status.
pub fn run(
    file: &Path,
    bundle: &Path,
    policy: &Path,
    json: bool,
    out: &mut dyn Write,
) -> Result<u8, InputError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| InputError::Read(format!("receipts {}: {e}", file.display())))?;
    let claims = match verify_bundle(bundle, policy)? {
        Ok(c) => c,
        Err(why) => {
            let _ = writeln!(out, "REJECTED: {why}");
            return Ok(1);
        }
    };
    let report = check_lines(&text, &claims)?;
    if json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        let _ = writeln!(out, "worker {}", report.worker);
        for l in &report.lines {
            match (&l.failure, l.tokens) {
                (Some((check, detail)), _) => {
                    let _ = writeln!(out, "  line {:>4}  FAIL  {check}: {detail}", l.line);
                }
                (None, Some((p, c))) => {
                    let _ =
                        writeln!(
                            out,
                            "  line {:>4}  ok    #{:<6} {p:>6} prompt {c:>6} completion  {}",
                            l.line,
                            l.counter.unwrap_or(0),
                            l.acked_by.as_deref().map_or(
                                "not acknowledged".to_owned(),
                                |k| format!("acknowledged by {}", &k[..16])
                            )
                        );
                }
                (None, None) => {}
            }
        }
        let good = report.lines.iter().filter(|l| l.failure.is_none()).count();
        let _ = writeln!(
            out,
            "{}: {good} of {} receipts verified, {} prompt + {} completion tokens",
            if report.ok() { "VERIFIED" } else { "REJECTED" },
            report.lines.len(),
            report.prompt_tokens,
            report.completion_tokens
        );
    }
    Ok(if report.ok() { 0 } else { 1 })
}
