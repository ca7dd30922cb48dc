//! `silk-host`: the GPU owner's side.
//!
//! It will prepare the GPU for passthrough (vfio), build and supervise the QEMU command line
//! for SEV-SNP, TDX or no TEE, relay client connections to the enclave as opaque bytes, and
//! report the VM's health. By design it depends on no crate that can open a sealed request.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod metrics;
pub mod pci;
pub mod preflight;
pub mod qemu;
pub mod relay;
pub mod supervisor;
pub mod vfio;
