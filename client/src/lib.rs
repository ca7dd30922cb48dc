//! The silk client: the library behind the `silk` command.
//!
//! - [`verify`]: offline verification of attestation evidence.
//! - [`session`]: `Session::connect` — attest an enclave, then seal requests and open
//!   answers; errors classified by what the caller can do.
//! - [`network`], [`upstream`], [`receipts`]: the silk network through routers (verified
//!   choice and failover), and the usage receipts every answer ends with.
//! - [`chat`], [`proxy`], [`demo`]: `silk chat`, the OpenAI-compatible `silk proxy`, and
//!   `silk demo` (a local simulated enclave, end to end).
//! - [`bench`], [`bench_sealed`], [`bench_router`]: `silk bench engine`, `silk bench sealed`
//!   and `silk bench router`.
//! - [`measure`], [`model_disk`]: `silk measure` (the measurement a guest image will have,
//!   and a policy for it) and `silk image model-disk` (dm-verity model disks).

pub mod answer;
pub mod bench;
pub mod bench_router;
pub mod bench_sealed;
pub mod chat;
pub mod demo;
pub mod measure;
pub mod model_disk;
pub mod network;
mod oneshot;
pub mod pay;
mod pay_channel;
mod pay_send;
pub mod policy_ton;
pub mod proxy;
pub mod receipts;
pub mod receipts_cli;
pub mod render;
pub mod session;
pub mod sse;
pub mod upstream;
pub mod verify;
mod verify_gpu;

pub use session::{ClientError, ErrorKind, Session};
