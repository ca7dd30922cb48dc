//! Revocation data for the device and RIM certificate chains.
//!
//! NVIDIA answers OCSP for its device and RIM chains (`ocsp.ndis.nvidia.com`). This crate
//! does no I/O, so revocation is an explicit input: the caller either fetched responses or
//! has none. Verifying saved OCSP responses (RFC 6960: responder signature, CertID match,
//! thisUpdate/nextUpdate window) is not implemented yet: responses given here are refused
//! with that reason, so they can never be mistaken for a checked "good" status. Without
//! responses, the policy's `allow_missing_revocation` decides, and a verdict that relied
//! on it warns.

/// What the verifier knows about revocation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Revocation {
    /// No revocation data (offline, or not fetched).
    #[default]
    Unavailable,
    /// DER OCSP responses (`application/ocsp-response`) for the chains' certificates.
    OcspResponses(Vec<Vec<u8>>),
}
