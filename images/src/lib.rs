//! The sealed guest image and its measurement.
//!
//! It will hold the image manifest, and the code that predicts what the hardware reports
//! for an image (the SEV-SNP launch digest, TDX MRTD and RTMRs) and the dm-verity root of a
//! model disk, so that a verifier can rebuild the image and check an allowlist itself.
//!
//! Measurement is pure: bytes in, digests out (see `docs/measurement.md`).
//!
//! - [`snp::launch_digest`]: the SEV-SNP launch digest of OVMF + kernel + initrd +
//!   command line for N vCPUs of a vCPU type under a VMM.
//! - [`tdx::mrtd`] and [`tdx::rtmrs`]: TDX MRTD from TDVF metadata, and RTMR1/RTMR2 of a
//!   QEMU direct kernel boot (RTMR0 is recorded per VMM configuration, not predicted).
//! - [`verity::format`] and [`verity::build_model_disk`]: dm-verity hash trees and model
//!   disks, byte for byte as `veritysetup format` makes them.

pub mod cpio;
pub mod kmod;
pub mod manifest;
pub mod ovmf;
pub mod pe;
pub mod snp;
pub mod tdx;
pub mod verity;
