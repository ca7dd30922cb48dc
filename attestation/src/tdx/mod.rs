//! Intel TDX and SGX DCAP quotes, verified with their collateral through `dcap-qvl`.
//!
//! [`Quote::from_bytes`] parses a quote without trusting it. [`verify`] runs `dcap-qvl`'s
//! full verification — PCK certificate chain to Intel's SGX root CA, CRLs, QE report
//! signature and identity, the attestation key's binding to the QE report, the quote
//! signature over header and body, and the TCB info and QE identity signatures — and
//! checks the collateral's validity window itself so that a stale collateral is reported
//! by name. Measurements, TD attributes and REPORT_DATA are left to the policy.

mod collateral;
mod quote;
mod sigdata;
mod tcb;

pub use collateral::{CollateralError, TdxCollateral};
pub use quote::{Quote, QuoteBody, QuoteError, SgxReport, TdAttributes, TdReport, TeeType};
pub use tcb::{TcbStatus, TcbVerdict, UnknownTcbStatus};

use time::OffsetDateTime;

use crate::format_time as fmt_time;
use crate::verdict::{Check, Stage, Verdict};

/// Name of the check that the quote and collateral verify up to Intel's root.
pub const CHECK_QUOTE_SIGNATURE: &str = "tdx.quote_signature";
/// Name of the check that the platform's TCB matches a (non-revoked) level of the TCB info.
pub const CHECK_TCB_LEVEL: &str = "tdx.tcb_level";
/// Name of the check that the TD attributes are acceptable to Intel's appraisal.
pub const CHECK_TD_ATTRIBUTES: &str = "tdx.td_attributes";
/// Name of the check that `now` lies within the collateral's validity window.
pub const CHECK_COLLATERAL_WINDOW: &str = "tdx.collateral_window";

/// Verifies the quote's signature chain and its collateral at `now` with `dcap-qvl`.
///
/// Pushes these checks onto `verdict`:
/// - `tdx.quote_signature` (`Stage::Signature`): `dcap-qvl`'s verification of every
///   signature and certificate; on failure the reason is `dcap-qvl`'s error text.
/// - `tdx.tcb_level` (`Stage::Platform`), only when it fails: the signatures verified but
///   the platform's TCB matches no level of the TCB info, or a revoked one.
/// - `tdx.td_attributes` (`Stage::Platform`), only when it fails: the signatures verified
///   but the TD is migratable, profiled, bound to a service TD, lacks SEPT_VE_DISABLE or
///   sets reserved attribute bits. (Debug is left to the policy's `tdx.debug`.)
/// - `tdx.collateral_window` (`Stage::Freshness`): `now` lies within
///   [[`TdxCollateral::latest_issue_date`], [`TdxCollateral::earliest_next_update`]].
///
/// Returns the parsed quote, and the TCB status when `tdx.quote_signature` passed. A
/// quote that does not parse is an `Err`, and no check is pushed.
pub fn verify(
    raw: &[u8],
    collateral: &TdxCollateral,
    now: OffsetDateTime,
    verdict: &mut Verdict,
) -> Result<(Quote, Option<TcbVerdict>), QuoteError> {
    let quote = Quote::from_bytes(raw)?;
    let tcb = signature_check(raw, collateral, now, verdict);
    verdict.push(window_check(collateral, now));
    Ok((quote, tcb))
}

/// Where in `dcap-qvl`'s pipeline a failure happened. Its errors are text (anyhow), so the
/// step is recognised from the message; `dcap-qvl` is pinned to an exact version in the
/// workspace for that reason, and `tests/tdx_quote.rs` covers each class on real vectors.
#[derive(Debug, PartialEq, Eq)]
enum FailureStep {
    /// Signatures, certificate chains, CRLs, collateral dates: nothing verified.
    Chain,
    /// Every signature verified, but the platform's TCB matches no level in the TCB info
    /// (or the TCB info is for another platform or TDX module).
    TcbLevel,
    /// Every signature verified and the TCB level is `Revoked`.
    Revoked,
    /// Every signature verified, but the TD attributes are unacceptable to `dcap-qvl`.
    Attributes,
}

fn failure_step(message: &str) -> FailureStep {
    // These steps run in verify_impl after the QE report, QE identity, PCK chain and
    // quote signatures all verified.
    const TCB_LEVEL: &[&str] = &[
        "No matching TCB level found",
        "Fmspc mismatch",
        "with non-TDX TCB info",
        "with non-SGX TCB info",
        "TDX TCB Info is missing tdxModule",
        "TDX module",
    ];
    const ATTRIBUTES: &[&str] = &[
        "TD profiling is enabled",
        "Reserved bits in TD attributes",
        "TD migration is enabled",
        "SERVTD_EXT is enabled",
        "SEPT_VE_DISABLE is not enabled",
        "Invalid MR service TD",
    ];
    let first_line = message.lines().next().unwrap_or_default();
    if TCB_LEVEL.iter().any(|m| first_line.contains(m)) {
        FailureStep::TcbLevel
    } else if first_line.contains("TCB status is invalid: Revoked") {
        FailureStep::Revoked
    } else if ATTRIBUTES.iter().any(|m| first_line.contains(m)) {
        FailureStep::Attributes
    } else {
        FailureStep::Chain
    }
}

fn signature_check(
    raw: &[u8],
    collateral: &TdxCollateral,
    now: OffsetDateTime,
    verdict: &mut Verdict,
) -> Option<TcbVerdict> {
    const EXPECTED: &str =
        "quote, QE report and collateral signed through the Intel SGX Root CA, none revoked";
    let chain_fail = |reason: String| {
        Check::fail(
            CHECK_QUOTE_SIGNATURE,
            Stage::Signature,
            EXPECTED,
            "invalid",
            reason,
        )
    };
    let Ok(now_secs) = u64::try_from(now.unix_timestamp()) else {
        verdict.push(chain_fail(format!(
            "now ({}) is before the Unix epoch",
            fmt_time(now)
        )));
        return None;
    };
    // Debug TDs and enclaves are the policy's call (`tdx.debug`, `sgx.debug`), so that a
    // debug quote is reported by that name rather than as a bad signature.
    let verifier = dcap_qvl::verify::QuoteVerifier::new_prod().allow_debug(true);
    let report = match verifier.verify(raw, collateral.as_dcap(), now_secs) {
        Ok(report) => report,
        Err(e) => {
            // `{:#}` keeps anyhow's context chain, which says which step failed.
            let message = format!("{e:#}");
            let step = failure_step(&message);
            if step == FailureStep::Chain {
                verdict.push(chain_fail(message));
                return None;
            }
            verdict.push(Check::pass(
                CHECK_QUOTE_SIGNATURE,
                Stage::Signature,
                EXPECTED,
                "valid",
            ));
            verdict.push(match step {
                FailureStep::TcbLevel => tcb_level_failure(raw, collateral, &message),
                FailureStep::Revoked => Check::fail(
                    CHECK_TCB_LEVEL,
                    Stage::Platform,
                    "a TCB level that is not revoked",
                    "Revoked",
                    message,
                ),
                _ => Check::fail(
                    CHECK_TD_ATTRIBUTES,
                    Stage::Platform,
                    "no profiling, migration, service-TD binding or reserved bits; SEPT_VE_DISABLE set",
                    "unacceptable TD attributes",
                    message,
                ),
            });
            return None;
        }
    };
    let status = match report.status.parse::<TcbStatus>() {
        Ok(status) => status,
        Err(e) => {
            verdict.push(chain_fail(format!(
                "dcap-qvl verified the quote but reported {e}"
            )));
            return None;
        }
    };
    let found = if report.advisory_ids.is_empty() {
        format!("valid, TCB {status}")
    } else {
        format!("valid, TCB {status} ({})", report.advisory_ids.join(", "))
    };
    verdict.push(Check::pass(
        CHECK_QUOTE_SIGNATURE,
        Stage::Signature,
        EXPECTED,
        found,
    ));
    Some(TcbVerdict {
        status,
        advisory_ids: report.advisory_ids,
    })
}

/// The TCB-level failure, in the words that fit its cause: collateral for another
/// platform (the FMSPCs differ), or a TCB below every level Intel lists.
fn tcb_level_failure(raw: &[u8], collateral: &TdxCollateral, message: &str) -> Check {
    const EXPECTED: &str =
        "the platform TCB (PCK certificate, TEE TCB SVN) matches a level of the TCB info";
    if message.contains("Fmspc mismatch") {
        let quote_fmspc = dcap_qvl::quote::Quote::parse(raw)
            .ok()
            .and_then(|q| dcap_qvl::intel::quote_fmspc(&q).ok())
            .map(hex::encode_upper);
        let tcb_fmspc = collateral.tcb_info_fmspc();
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "unreadable".into());
        return Check::fail(
            CHECK_TCB_LEVEL,
            Stage::Platform,
            format!("the collateral's TCB info for FMSPC {}", show(&tcb_fmspc)),
            format!("the quote's platform FMSPC {}", show(&quote_fmspc)),
            format!(
                "the FMSPCs differ: the quote's PCK certificate says FMSPC {}, the \
                 collateral's TCB info is for FMSPC {}; the collateral belongs to another \
                 platform (fetch the TCB info for FMSPC {})",
                show(&quote_fmspc),
                show(&tcb_fmspc),
                show(&quote_fmspc)
            ),
        );
    }
    Check::fail(
        CHECK_TCB_LEVEL,
        Stage::Platform,
        EXPECTED,
        "no matching level",
        format!(
            "{message}: the platform's TCB is below every level Intel lists for it, so \
             Intel's appraisal gives it no status (TCB not supported)"
        ),
    )
}

fn window_check(collateral: &TdxCollateral, now: OffsetDateTime) -> Check {
    let issued = collateral.latest_issue_date();
    let next_update = collateral.earliest_next_update();
    let expected = format!(
        "now within the collateral's validity [{}, {}]",
        fmt_time(issued),
        fmt_time(next_update)
    );
    let found = fmt_time(now);
    Check::from_bool(
        CHECK_COLLATERAL_WINDOW,
        Stage::Freshness,
        issued <= now && now <= next_update,
        expected,
        found,
        || {
            let parts = collateral.parts();
            if now < issued {
                let early: Vec<String> = parts
                    .iter()
                    .filter(|(_, issue, _)| now < *issue)
                    .map(|(part, issue, _)| format!("the {part} was issued {}", fmt_time(*issue)))
                    .collect();
                format!("collateral is not yet valid: {}", early.join(", "))
            } else {
                let stale: Vec<String> = parts
                    .iter()
                    .filter_map(|(part, _, next)| {
                        next.filter(|n| *n < now)
                            .map(|n| format!("the {part}'s next update was due {}", fmt_time(n)))
                    })
                    .collect();
                format!("collateral is stale: {}", stale.join(", "))
            }
        },
    )
}
