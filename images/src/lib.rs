//! The sealed guest image and its measurement.
//!
//! It will hold the image manifest, and the code that predicts what the hardware reports
//! for an image (the SEV-SNP launch digest, TDX MRTD and RTMRs) and the dm-verity root of a
//! model disk, so that a verifier can rebuild the image and check an allowlist itself.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod ovmf;
pub mod snp;
pub mod verity;
pub mod pe;
pub mod tdx;
