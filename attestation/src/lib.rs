//! Attestation evidence and its verification: bytes in, verdict out.
//!
//! This crate knows the wire formats of confidential-computing evidence — AMD SEV-SNP
//! attestation reports with their VCEK/VLEK certificate chains, Intel TDX (and SGX)
//! DCAP quotes with their collateral, and NVIDIA GPU SPDM reports with their device
//! chains and signed reference manifests ([`gpu`]) — and checks them offline against a [`policy::Policy`].
//! It does no I/O: callers hand it bytes and a time, and get back a [`Verdict`] that lists
//! every check with what was expected and what was found. Nothing is accepted by default:
//! an empty policy rejects, and a verdict accepts only when every check ran and passed.

pub mod checks;
pub mod evidence;
pub mod gpu;
pub mod policy;
pub mod signature;
pub mod snp;
pub mod tdx;
pub mod verdict;

pub use checks::CheckId;
pub use evidence::{verify_quote, verify_snp, Evidence, EvidenceError, EvidenceKind};
pub use policy::Policy;
pub use verdict::{Check, Fact, Outcome, Platform, Stage, Verdict};

/// Formats a time as RFC 3339 (`2025-06-19T10:16:03Z`), the form every check and fact uses.
pub fn format_time(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| format!("{} s after the Unix epoch", t.unix_timestamp()))
}
