//! `silk-enclave`: the program that runs inside the confidential VM.
//!
//! It will generate its keys at boot, obtain hardware evidence through the kernel's
//! attestation interfaces (configfs-tsm, `/dev/sev-guest`, `/dev/tdx_guest`, or a simulated
//! provider for development), run the inference engine and serve the sealed session over an
//! RA-TLS HTTPS listener. Nothing that opens a prompt ever leaves this process.
#![warn(missing_docs)]
