//! `silk-host`: the GPU owner's side.
//!
//! It prepares GPUs for passthrough ([`vfio`]), checks the host ([`preflight`]), builds the
//! QEMU command line for SEV-SNP, TDX or no TEE ([`qemu`]), supervises QEMU
//! ([`supervisor`]), relays client connections to the enclave as opaque bytes ([`relay`]),
//! and reports health and counters ([`admin`], [`metrics`]). [`app`] ties them together
//! for `silk-host run`.
//!
//! By design it depends on no crate that can open a sealed request: it holds no key, and
//! it never parses what it relays.

pub mod admin;
pub mod app;
pub mod dry_run;
pub mod metrics;
pub mod pci;
pub mod preflight;
pub mod qemu;
pub mod relay;
pub mod settle;
pub mod supervisor;
pub mod vfio;
