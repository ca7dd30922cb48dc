//! Intel TDX and SGX DCAP quotes, verified with their collateral through `dcap-qvl`.
//!
//! [`Quote::from_bytes`] parses a quote without trusting it. [`verify`] runs `dcap-qvl`'s
//! full verification — PCK certificate chain to Intel's SGX root CA, CRLs, QE report
//! signature and identity, the attestation key's binding to the QE report, the quote
//! signature over header and body, and the TCB info and QE identity signatures — and
//! checks the collateral's validity window itself so that a stale collateral is reported
//! by name. Measurements, TD attributes and REPORT_DATA are left to the policy.

mod collateral;
mod dcap;
pub mod event_log;
pub mod pcs;
mod quote;
pub mod replay;
mod rules;
mod sgx;
mod sigdata;
mod tcb;

pub use collateral::{CollateralError, TdxCollateral};
pub use dcap::DcapFailure;
pub use quote::{Quote, QuoteBody, QuoteError, SgxReport, TdAttributes, TdReport, TeeType};
pub use sigdata::Uncanonical;
pub use tcb::{TcbStatus, TcbVerdict, UnknownTcbStatus};

use time::OffsetDateTime;

use crate::verdict::Verdict;

/// Verifies the quote's signature chain and its collateral at `now` with `dcap-qvl`.
///
/// Pushes these checks onto `verdict`:
/// - `tdx.quote_signature` (`Stage::Signature`): `dcap-qvl`'s verification of every
///   signature and certificate; on failure the reason is `dcap-qvl`'s error text (see
///   [`DcapFailure`] for how its failures are told apart).
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
    let tcb = dcap::signature_check(raw, collateral, now, verdict);
    verdict.push(collateral.window_check(now));
    Ok((quote, tcb))
}
