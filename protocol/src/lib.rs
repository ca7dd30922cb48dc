//! The sealed session between a client and an attested enclave.
//!
//! This crate will hold the claims document whose SHA-512 is the hardware REPORT_DATA, the
//! HPKE-sealed request format (RFC 9180), the numbered sealed response stream and the
//! RA-TLS certificate and verifier. It builds on `silk-attestation` for every trust
//! decision. See `docs/` and the design map for the wire formats as they land.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
