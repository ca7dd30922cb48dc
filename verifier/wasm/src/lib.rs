//! silk's verifier in WebAssembly: the same verification core as `silk verify`, for the
//! browser and Node.
//!
//! `verifyEvidence` and `verifyBundle` ([`Request::verdict_json`]) call
//! [`silk_verifier::verify`] and [`silk_verifier::verdict_json`], the functions behind
//! `silk verify --json`, so the same inputs give the same JSON, byte for byte. `attest`
//! ([`attest_json`]) and `SealedRequest` ([`Sealed`]) are what the `/verify` page needs
//! beyond that: a bundle verified against a challenge made in the browser, then a request
//! sealed (HPKE) to the key its claims carry and its answer opened as it streams.
//!
//! Nothing here starts a thread, opens a file or reads a clock of its own: the time is an
//! RFC 3339 argument, or the host's `Date.now()` when it is left out. Randomness (only for
//! sealing) comes from the host's `crypto.getRandomValues`.
//!
//! The JS bindings (`bindings`, wasm-bindgen) exist only on wasm32: natively this crate is
//! the plain Rust below them, so the workspace's native builds gain no crate for it.
//! `verifier/wasm/README.md` shows the JS use; `scripts/build-wasm.sh` builds the npm
//! package into `verifier/wasm/pkg/`.

#[cfg(target_arch = "wasm32")]
mod bindings;
#[cfg(target_arch = "wasm32")]
mod js;
mod options;
mod session;

pub use options::{Collateral, Request, Rim, DEFAULT_MAX_AGE_SECS, DEFAULT_SOURCE};
pub use session::{attest_json, Sealed, ATTEST_SOURCE};

/// The package's version, as `silk-verifier-wasm X.Y.Z`.
pub fn version() -> String {
    format!("silk-verifier-wasm {}", env!("CARGO_PKG_VERSION"))
}
