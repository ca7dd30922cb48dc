//! AMD SEV-SNP attestation reports and their AMD certificate chains.
//!
//! [`report`] parses the firmware's `ATTESTATION_REPORT` at the fixed offsets of AMD's SNP
//! Firmware ABI specification. [`certs`] holds AMD's pinned root (ARK) and signing (ASK)
//! certificates for each product line and loads VCEK/VLEK chains; `chain` verifies them up
//! to a pinned root and `vek` ties the report to its VEK, recording each step as a named
//! [`crate::Check`]. `rules` evaluates the policy's `[snp]` section (measurements, debug,
//! minimum TCB) against [`AttestationReport`]. [`simulated`] is silk's development
//! stand-in for the platform.

pub mod certs;
mod chain;
pub mod kds;
pub mod report;
mod rules;
pub mod simulated;
mod tcb;
mod vek;

pub use certs::{verify_signature_chain, CertError, SnpCertificates, VekExtensions, VekKind};
pub use chain::LinkError;
pub use report::{
    AttestationReport, Cpuid, EcdsaSignature, FirmwareVersion, GuestPolicy, OversizedScalar,
    PlatformInfo, ProductLine, ReportError, SigningKey, TcbParts, TcbVersion, REPORT_SIZE,
    SIGNED_LEN,
};
pub use vek::VekError;
