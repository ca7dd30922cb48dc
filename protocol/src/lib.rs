//! The sealed session between a client and an attested enclave.
//!
//! - [`claims`]: the document the enclave attests and its canonical encoding, whose
//!   SHA-512 is the hardware report's REPORT_DATA.
//! - [`seal`]: HPKE-sealed requests (RFC 9180) bound to those claims, and the numbered,
//!   authenticated response stream keyed from the same HPKE context.
//! - [`bundle`]: the evidence bundle an enclave serves, and its verification: platform
//!   evidence under the policy, REPORT_DATA bound to the claims, challenge and freshness.
//! - [`ratls`]: TLS 1.3 certificates carrying the bundle, and the rustls verifier that
//!   trusts a server only through its verified claims.
//! - [`gpu`]: GPU evidence bound to the claims by a nonce derived from the enclave's keys.
//! - [`spread`]: a request any one of K verified workers can open (non-targetability).
//! - [`receipt`]: offers, usage receipts signed inside the enclave, and clients'
//!   acknowledgements of them.
//! - [`network`]: the router's HTTP surface (registration, discovery, forwarding).
//! - [`wire`]: the HTTP surface both sides agree on: paths, media types, limits, errors.
//!
//! Everything here is pure: bytes in, bytes out. `docs/protocol.md` is the specification.

/// Re-exported so that crates above see the same attestation types.
pub use silk_attestation as attestation;

pub mod bundle;
mod canon;
pub mod claims;
pub mod gpu;
pub mod network;
pub mod ratls;
pub mod receipt;
pub mod seal;
pub mod spread;
pub mod wire;

pub use bundle::{BundleError, EvidenceBundle, Expectations, PlatformEvidence};
pub use claims::{Claims, ClaimsError};
pub use seal::{
    open_request, seal_request, EnclaveKeys, SealError, StreamError, StreamOpener, StreamSealer,
};
