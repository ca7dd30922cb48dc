//! `sgx.*`: the `[sgx]` rules for Intel SGX DCAP quotes (whose vendor checks are the
//! `tdx.*` ones).

use super::{family, CheckId, Family};
use crate::policy::key;

family! {
    prefix: "sgx", title: "Intel SGX", paths: ["attestation/src/tdx/"];

    QUOTE_FORMAT = "sgx.quote_format", Signature, "attestation/src/tdx/quote.rs", [],
        "The evidence parses as an SGX DCAP quote (version 3) in its canonical encoding. \
         When it fails, nothing else runs.";
    DEBUG = "sgx.debug", Platform, "attestation/src/tdx/sgx.rs", [key::SGX_ALLOW_DEBUG],
        "The enclave's DEBUG attribute is clear, unless the policy allows debug (then every \
         verdict warns).";
    TCB_STATUS = "sgx.tcb_status", Platform, "attestation/src/tdx/sgx.rs",
        [key::SGX_ALLOWED_TCB_STATUSES],
        "Intel's TCB status for the platform is one the policy allows (default `UpToDate` \
         only).";
    ADVISORIES = "sgx.advisories", Platform, "attestation/src/tdx/sgx.rs",
        [key::SGX_ALLOWED_ADVISORY_IDS],
        "Runs when `allowed_advisory_ids` is set: every advisory id of the TCB status is \
         listed.";
    ISV_SVN = "sgx.isv_svn", Platform, "attestation/src/tdx/sgx.rs", [key::SGX_MIN_ISV_SVN],
        "Runs when `min_isv_svn` is set: ISVSVN is at least that.";
    MR_ENCLAVE = "sgx.mr_enclave", Measurement, "attestation/src/tdx/sgx.rs",
        [key::SGX_MR_ENCLAVE, key::SGX_ALLOW_ANY_MEASUREMENT],
        "MRENCLAVE is in the allowlist (or any is allowed, with a warning).";
    MR_SIGNER = "sgx.mr_signer", Measurement, "attestation/src/tdx/sgx.rs",
        [key::SGX_MR_SIGNER],
        "Runs when `mr_signer` is set: MRSIGNER is one of them.";
    REPORT_DATA = "sgx.report_data", Binding, "attestation/src/tdx/sgx.rs",
        [key::SGX_REPORT_DATA],
        "Runs when `report_data` is set: REPORT_DATA equals it (otherwise the verdict \
         warns).";
    COLLATERAL_AGE = "sgx.collateral_age", Freshness, "attestation/src/tdx/sgx.rs",
        [key::SGX_MAX_COLLATERAL_AGE],
        "Runs when `max_collateral_age` is set: the TCB info was issued within that span.";
}
