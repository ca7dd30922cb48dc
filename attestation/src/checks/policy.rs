//! `policy.*`: whether the policy has a section for the evidence at all.

use super::{family, CheckId, Family};
use crate::policy::key;

family! {
    prefix: "policy", title: "the policy's sections", paths: ["attestation/src/policy/"];

    SNP = "policy.snp", Measurement, "attestation/src/policy/mod.rs", [key::SNP],
        "The policy has an `[snp]` section; without it SEV-SNP evidence is rejected.";
    TDX = "policy.tdx", Measurement, "attestation/src/policy/mod.rs", [key::TDX],
        "The policy has a `[tdx]` section; without it TDX evidence is rejected.";
    SGX = "policy.sgx", Measurement, "attestation/src/policy/mod.rs", [key::SGX],
        "The policy has an `[sgx]` section; without it SGX evidence is rejected.";
    GPU = "policy.gpu", Measurement, "attestation/src/policy/mod.rs", [key::GPU],
        "The policy has a `[gpu]` section; without it GPU evidence is rejected.";
}
