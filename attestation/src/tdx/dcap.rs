//! Intel's DCAP verification of a quote through `dcap-qvl`, reported as
//! `tdx.quote_signature` and, when the signatures verified but Intel's appraisal failed,
//! `tdx.tcb_level` or `tdx.td_attributes`.

use time::OffsetDateTime;

use super::{TcbStatus, TcbVerdict, TdxCollateral};
use crate::checks::tdx;
use crate::format_time as fmt_time;
use crate::verdict::{Check, Verdict};

/// How a `dcap-qvl` verification failed, by the step it failed at.
///
/// `dcap-qvl` 0.7.1 has no error type to match: `QuoteVerifier::verify` runs every step in
/// one private function and reports each failure as an `anyhow::Error` made from text
/// (`bail!("No matching TCB level found")`), and its typed `Policy` hook runs only after
/// all of them passed. So the step is recognised from the message's first line, here and
/// nowhere else ([`DcapFailure::classify`]). That is why the workspace pins `dcap-qvl` to
/// one exact version, and `tests/tdx_quote.rs` covers each class with real vectors, so
/// that an upgrade that rewords a message fails a test instead of misreporting a step.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DcapFailure {
    /// Signatures, certificate chains, CRLs or collateral dates: nothing is known to have
    /// verified.
    #[error("{message}")]
    Chain {
        /// `dcap-qvl`'s message, with its context chain.
        message: String,
    },
    /// Every signature verified, but the TCB info is for another platform (its FMSPC
    /// differs from the PCK certificate's).
    #[error("{message}")]
    OtherPlatform {
        /// `dcap-qvl`'s message.
        message: String,
    },
    /// Every signature verified, but the platform's TCB matches no level of the TCB info
    /// (or the TCB info is for another TEE type or TDX module).
    #[error("{message}")]
    NoTcbLevel {
        /// `dcap-qvl`'s message.
        message: String,
    },
    /// Every signature verified, and the matching TCB level is `Revoked`.
    #[error("{message}")]
    Revoked {
        /// `dcap-qvl`'s message.
        message: String,
    },
    /// Every signature verified, but the TD attributes are unacceptable.
    #[error("{message}")]
    Attributes {
        /// `dcap-qvl`'s message.
        message: String,
    },
}

impl DcapFailure {
    /// Tells the step from `dcap-qvl`'s message (`{:#}`, with its context chain). Only the
    /// first line is read, so that text quoted from the input further down cannot steer
    /// the classification.
    pub fn classify(message: String) -> Self {
        // These steps run in dcap-qvl's verify_impl after the QE report, QE identity, PCK
        // chain and quote signatures all verified.
        const NO_TCB_LEVEL: &[&str] = &[
            "No matching TCB level found",
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
        let first = message.lines().next().unwrap_or_default();
        if first.contains("Fmspc mismatch") {
            DcapFailure::OtherPlatform { message }
        } else if NO_TCB_LEVEL.iter().any(|m| first.contains(m)) {
            DcapFailure::NoTcbLevel { message }
        } else if first.contains("TCB status is invalid: Revoked") {
            DcapFailure::Revoked { message }
        } else if ATTRIBUTES.iter().any(|m| first.contains(m)) {
            DcapFailure::Attributes { message }
        } else {
            DcapFailure::Chain { message }
        }
    }

    /// Whether every signature verified before this failure.
    pub fn signatures_verified(&self) -> bool {
        !matches!(self, DcapFailure::Chain { .. })
    }
}

pub(super) fn signature_check(
    raw: &[u8],
    collateral: &TdxCollateral,
    now: OffsetDateTime,
    verdict: &mut Verdict,
) -> Option<TcbVerdict> {
    const EXPECTED: &str =
        "quote, QE report and collateral signed through the Intel SGX Root CA, none revoked";
    let chain_fail =
        |reason: String| Check::fail(&tdx::QUOTE_SIGNATURE, EXPECTED, "invalid", reason);
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
            let failure = DcapFailure::classify(format!("{e:#}"));
            if !failure.signatures_verified() {
                verdict.push(chain_fail(failure.to_string()));
                return None;
            }
            verdict.push(Check::pass(&tdx::QUOTE_SIGNATURE, EXPECTED, "valid"));
            verdict.push(appraisal_failure(raw, collateral, failure));
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
    verdict.push(Check::pass(&tdx::QUOTE_SIGNATURE, EXPECTED, found));
    Some(TcbVerdict {
        status,
        advisory_ids: report.advisory_ids,
    })
}

/// The check for a failure after the signatures verified, in the words that fit its
/// cause: collateral for another platform (both FMSPCs named), a TCB below every level
/// Intel lists, a revoked level, or TD attributes Intel's appraisal refuses.
fn appraisal_failure(raw: &[u8], collateral: &TdxCollateral, failure: DcapFailure) -> Check {
    const EXPECTED: &str =
        "the platform TCB (PCK certificate, TEE TCB SVN) matches a level of the TCB info";
    match failure {
        DcapFailure::OtherPlatform { .. } => {
            let quote_fmspc = dcap_qvl::quote::Quote::parse(raw)
                .ok()
                .and_then(|q| dcap_qvl::intel::quote_fmspc(&q).ok())
                .map(hex::encode_upper);
            let tcb_fmspc = collateral.tcb_info_fmspc();
            let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "unreadable".into());
            Check::fail(
                &tdx::TCB_LEVEL,
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
            )
        }
        DcapFailure::Revoked { message } => Check::fail(
            &tdx::TCB_LEVEL,
            "a TCB level that is not revoked",
            "Revoked",
            message,
        ),
        DcapFailure::Attributes { message } => Check::fail(
            &tdx::TD_ATTRIBUTES,
            "no profiling, migration, service-TD binding or reserved bits; SEPT_VE_DISABLE set",
            "unacceptable TD attributes",
            message,
        ),
        DcapFailure::NoTcbLevel { message } | DcapFailure::Chain { message } => Check::fail(
            &tdx::TCB_LEVEL,
            EXPECTED,
            "no matching level",
            format!(
                "{message}: the platform's TCB is below every level Intel lists for it, so \
                 Intel's appraisal gives it no status (TCB not supported)"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_step_is_told_from_its_first_line() {
        let c = |m: &str| DcapFailure::classify(m.to_owned());
        assert!(matches!(
            c("No matching TCB level found"),
            DcapFailure::NoTcbLevel { .. }
        ));
        assert!(matches!(
            c("Fmspc mismatch"),
            DcapFailure::OtherPlatform { .. }
        ));
        assert!(matches!(
            c("TCB status is invalid: Revoked"),
            DcapFailure::Revoked { .. }
        ));
        assert!(matches!(
            c("TD migration is enabled"),
            DcapFailure::Attributes { .. }
        ));
        assert!(matches!(
            c("Signature is invalid for tcb_info in quote_collateral"),
            DcapFailure::Chain { .. }
        ));
        // Text further down (quoted input, a context chain) does not steer it.
        assert!(matches!(
            c("Failed to decode quote\nNo matching TCB level found"),
            DcapFailure::Chain { .. }
        ));
        assert!(!c("CRL expired").signatures_verified());
    }
}
