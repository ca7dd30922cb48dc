//! `silk-enclave`: the program that runs inside the confidential VM.
//!
//! It generates its keys at boot ([`identity`]), obtains hardware evidence through the
//! kernel's attestation interfaces ([`evidence`]: configfs-tsm, `/dev/sev-guest`,
//! `/dev/tdx_guest`, or the simulated provider for development), runs the inference
//! engine and serves the sealed session ([`server`]: RA-TLS, `/v1/attestation`,
//! `/v1/sealed`, health and metrics) and keeps itself listed with routers ([`worker`]:
//! signed offers, usage receipts, registration). Nothing that opens a prompt ever leaves this process.
// The workspace denies unsafe code; the enclave must issue the guest devices' ioctls
// (/dev/sev-guest, /dev/tdx_guest) and load the GPU driver's NVML at run time.
#![allow(unsafe_code)]

pub use silk_net::conn;
pub mod collateral;
pub mod evidence;
pub mod identity;
pub mod metrics;
pub mod openai;
mod pump;
pub mod replay;
pub mod server;
pub mod start;
pub mod worker;
