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

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::verdict::{Check, Stage, Verdict};

/// Name of the check that the quote and collateral verify up to Intel's root.
pub const CHECK_QUOTE_SIGNATURE: &str = "tdx.quote_signature";
/// Name of the check that `now` lies within the collateral's validity window.
pub const CHECK_COLLATERAL_WINDOW: &str = "tdx.collateral_window";

/// Verifies the quote's signature chain and its collateral at `now` with `dcap-qvl`.
///
/// Pushes two checks onto `verdict`:
/// - `tdx.quote_signature` (`Stage::Signature`): `dcap-qvl`'s full verification with its
///   default strictness; on failure the reason is `dcap-qvl`'s error text. That
///   strictness also rejects TDs that run in debug mode, are migratable, lack
///   SEPT_VE_DISABLE, set reserved attribute bits or are bound to service TDs, and SGX
///   debug enclaves, and a `Revoked` platform.
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
    let (check, tcb) = signature_check(raw, collateral, now);
    verdict.push(check);
    verdict.push(window_check(collateral, now));
    Ok((quote, tcb))
}

fn signature_check(
    raw: &[u8],
    collateral: &TdxCollateral,
    now: OffsetDateTime,
) -> (Check, Option<TcbVerdict>) {
    const EXPECTED: &str =
        "quote, QE report and collateral signed through the Intel SGX Root CA, none revoked";
    let fail = |reason: String| {
        (
            Check::fail(
                CHECK_QUOTE_SIGNATURE,
                Stage::Signature,
                EXPECTED,
                "invalid",
                reason,
            ),
            None,
        )
    };
    let Ok(now_secs) = u64::try_from(now.unix_timestamp()) else {
        return fail(format!("now ({}) is before the Unix epoch", fmt_time(now)));
    };
    let report = match dcap_qvl::verify::verify(raw, collateral.as_dcap(), now_secs) {
        Ok(report) => report,
        // `{:#}` keeps anyhow's context chain, which says which step failed.
        Err(e) => return fail(format!("{e:#}")),
    };
    let status = match report.status.parse::<TcbStatus>() {
        Ok(status) => status,
        Err(e) => return fail(format!("dcap-qvl verified the quote but reported {e}")),
    };
    let found = if report.advisory_ids.is_empty() {
        format!("valid, TCB {status}")
    } else {
        format!("valid, TCB {status} ({})", report.advisory_ids.join(", "))
    };
    (
        Check::pass(CHECK_QUOTE_SIGNATURE, Stage::Signature, EXPECTED, found),
        Some(TcbVerdict {
            status,
            advisory_ids: report.advisory_ids,
        }),
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
            if now < issued {
                format!("collateral is not yet valid: issued {}", fmt_time(issued))
            } else {
                format!(
                    "collateral is stale: next update was due {}",
                    fmt_time(next_update)
                )
            }
        },
    )
}

fn fmt_time(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .unwrap_or_else(|_| format!("{} s after the Unix epoch", t.unix_timestamp()))
}
