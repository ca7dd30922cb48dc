//! AMD SEV-SNP attestation reports and their AMD certificate chains.
//!
//! [`report`] parses the firmware's `ATTESTATION_REPORT` at the fixed offsets of AMD's SNP
//! Firmware ABI specification. [`certs`] holds AMD's pinned root (ARK) and signing (ASK)
//! certificates for each product line, loads VCEK/VLEK chains, and verifies a report's
//! signature up to a pinned root, recording each step as a named [`crate::Check`].
//! Policy (measurements, debug, minimum TCB) is evaluated elsewhere against
//! [`AttestationReport`]. [`simulated`] is silk's development stand-in for the platform.

pub mod certs;
mod chain;
pub mod report;
pub mod simulated;
mod tcb;

pub use certs::{verify_signature_chain, CertError, SnpCertificates, VekExtensions, VekKind};
pub use report::{
    AttestationReport, Cpuid, EcdsaSignature, FirmwareVersion, GuestPolicy, PlatformInfo,
    ProductLine, ReportError, SigningKey, TcbParts, TcbVersion, REPORT_SIZE, SIGNED_LEN,
};
