//! The tools behind the `silk` command, beside the client library (`silk-client`).
//!
//! What needs more than the protocol and the attestation verifier lives here, so that an
//! app that only wants `silk_client::Session` does not compile it:
//!
//! - [`verify`]: `silk verify`, evidence files verified offline (`--image` computes the
//!   expected measurement with [`measure`]).
//! - [`measure`], [`model_disk`]: `silk measure` (the measurement a guest image will have,
//!   and a policy for it) and `silk image model-disk` (dm-verity model disks); they need
//!   `silk-images`.
//! - [`demo`]: `silk demo`, a local simulated enclave verified and asked a question end to
//!   end; the tests start their enclaves with it too.
//! - [`bench`], [`bench_sealed`], [`bench_router`]: `silk bench engine`, `silk bench
//!   sealed` and `silk bench router`; they call the engine in-process (`silk-engine`) and
//!   stand up stub workers (`silk-net`); [`bench_llama`] runs llama.cpp's own benchmark
//!   tools beside the engine.
//! - [`pay`], [`policy_ton`]: `silk pay` and `silk policy from-ton`, on TON through
//!   `silk-ledger`.

pub mod bench;
pub mod bench_gpu;
pub mod bench_llama;
pub mod bench_router;
pub mod bench_sealed;
pub mod collateral;
pub mod demo;
pub mod measure;
pub mod model_disk;
mod oneshot;
pub mod pay;
mod pay_channel;
mod pay_send;
pub mod policy_ton;
pub mod verify;
mod verify_gpu;
