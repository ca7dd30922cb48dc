//! `sim.*`: silk's simulated SEV-SNP platform, which stands in for AMD's chain in
//! development.

use super::{family, CheckId, Family};
use crate::policy::key;

family! {
    prefix: "sim", title: "silk's simulated SEV-SNP platform (development only)",
    paths: ["attestation/src/snp/simulated.rs"];

    ALLOWED = "sim.allowed", Signature, "attestation/src/snp/simulated.rs",
        [key::ALLOW_SIMULATED],
        "The policy allows simulated evidence. Every simulated verdict is marked SIMULATED \
         and warns that it proves nothing about the machine.";
    ROOT_PINNED = "sim.root_pinned", Signature, "attestation/src/snp/simulated.rs",
        [key::SIMULATED_ROOTS],
        "The development root's SHA-256 is one of the policy's `simulated_roots`.";
    CHAIN = "sim.chain", Signature, "attestation/src/snp/simulated.rs", [],
        "The development root signed itself and the signing key, which signed the simulated \
         VCEK (ECDSA P-384).";
    REPORT_SIGNATURE = "sim.report_signature", Signature,
        "attestation/src/snp/simulated.rs", [],
        "The report's signature verifies with the simulated VCEK's key.";
}
