//! The `[sgx]` rules of a policy, evaluated against a verified SGX quote.

use time::OffsetDateTime;

use super::rules::{collateral_age_check, report_data_check, tcb_checks, QuoteChecks};
use super::{SgxReport, TcbVerdict, TdxCollateral};
use crate::checks::sgx;
use crate::policy::{debug_check, one_of, SgxPolicy};
use crate::verdict::{Check, Verdict};

const SGX: QuoteChecks = QuoteChecks {
    tcb_status: &sgx::TCB_STATUS,
    advisories: &sgx::ADVISORIES,
    report_data: &sgx::REPORT_DATA,
    collateral_age: &sgx::COLLATERAL_AGE,
};

impl SgxPolicy {
    /// Checks a verified SGX quote against these rules.
    pub fn evaluate(
        &self,
        report: &SgxReport,
        tcb: Option<&TcbVerdict>,
        collateral: &TdxCollateral,
        now: OffsetDateTime,
        verdict: &mut Verdict,
    ) {
        debug_check(
            &sgx::DEBUG,
            self.allow_debug,
            report.debug(),
            "the enclave",
            verdict,
        );
        tcb_checks(
            &SGX,
            &self.allowed_tcb_statuses,
            self.allowed_advisory_ids.as_deref(),
            tcb,
            verdict,
        );
        if let Some(min) = self.min_isv_svn {
            verdict.push(Check::from_bool(
                &sgx::ISV_SVN,
                report.isv_svn >= min,
                format!(">= {min}"),
                report.isv_svn.to_string(),
                || "ISV SVN below minimum".into(),
            ));
        }
        let found = hex::encode(report.mr_enclave);
        if self.allow_any_measurement {
            verdict.warn("policy accepts ANY MRENCLAVE");
            verdict.push(Check::pass(&sgx::MR_ENCLAVE, "any (!)", found));
        } else {
            verdict.push(Check::from_bool(
                &sgx::MR_ENCLAVE,
                self.mr_enclave.iter().any(|m| m.0 == report.mr_enclave),
                one_of(&self.mr_enclave),
                found,
                || "MRENCLAVE is not in the policy's allowlist".into(),
            ));
        }
        if !self.mr_signer.is_empty() {
            verdict.push(Check::from_bool(
                &sgx::MR_SIGNER,
                self.mr_signer.iter().any(|m| m.0 == report.mr_signer),
                one_of(&self.mr_signer),
                hex::encode(report.mr_signer),
                || "MRSIGNER is not allowed".into(),
            ));
        }
        report_data_check(
            &SGX,
            self.report_data.as_ref(),
            &report.report_data,
            verdict,
        );
        collateral_age_check(&SGX, self.max_collateral_age, collateral, now, verdict);
    }
}
