//! `runtime.*`: what the enclave was started with, as its claims state it, against the
//! policy's `[runtime]` pins.

use super::{family, CheckId, Family};
use crate::policy::key;

family! {
    prefix: "runtime", title: "what the enclave was started with",
    paths: ["attestation/src/policy/runtime.rs"];

    MODEL = "runtime.model", Measurement, "attestation/src/policy/runtime.rs",
        [key::RUNTIME_MODELS],
        "Runs when `models` is set: the model identity the enclave serves (its claims' \
         `model`, e.g. `verity:<root>`) is one of them.";
    EVIDENCE_PROVIDER = "runtime.evidence_provider", Measurement,
        "attestation/src/policy/runtime.rs", [key::RUNTIME_EVIDENCE_PROVIDERS],
        "Runs when `evidence_providers` is set: the evidence provider the enclave was started \
         with (`configfs-tsm`, `sev-guest`, `tdx-guest`, `simulated`) is one of them.";
    GPU_POLICY = "runtime.gpu_policy", Measurement, "attestation/src/policy/runtime.rs",
        [key::RUNTIME_GPU_POLICIES],
        "Runs when `gpu_policies` is set: SHA-256 of the policy the enclave checks its own \
         GPUs against (`none` when it checks none) is one of them.";
    PAYOUT_ADDRESS = "runtime.payout_address", Measurement,
        "attestation/src/policy/runtime.rs", [key::RUNTIME_PAYOUT_ADDRESSES],
        "Runs when `payout_addresses` is set: the address the enclave's receipts name for \
         payment is one of them.";
}
