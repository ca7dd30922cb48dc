//! `silk-enclave`: the program that runs inside the confidential VM.
//!
//! It generates its keys at boot, obtains hardware evidence through the kernel's
//! attestation interfaces ([`evidence`]: configfs-tsm, `/dev/sev-guest`, `/dev/tdx_guest`,
//! or the simulated provider for development), runs the inference engine and serves the
//! sealed session. Nothing that opens a prompt ever leaves this process. The HTTP server
//! is the next step.
#![warn(missing_docs)]

pub mod evidence;
