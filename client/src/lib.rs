//! The silk client: the library behind the `silk` command.
//!
//! Today it verifies attestation evidence offline ([`verify`]); the sealed session
//! (`Session::connect`, chat and the OpenAI-compatible proxy) builds on it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bench;
pub mod render;
pub mod verify;
