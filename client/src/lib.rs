//! The silk client library: verify an enclave's attestation, then talk to it through the
//! sealed path.
//!
//! - [`session`]: `Session::connect` — attest an enclave, then seal requests and open
//!   answers; errors classified by what the caller can do.
//! - [`network`], [`upstream`], [`receipts`]: the silk network through routers (verified
//!   choice and failover), and the usage receipts every answer ends with.
//! - [`chat`], [`proxy`], [`proxy_start`]: `silk chat`, and the OpenAI-compatible
//!   `silk proxy`; [`verify_page`], [`verify_relay`]: the proxy's `/verify` page, where
//!   the browser verifies the enclave itself and seals its own prompt.
//! - [`receipts_cli`]: `silk receipts verify`, receipts checked offline against a bundle.
//! - [`answer`], [`sse`], [`render`]: a sealed answer read to its end, the server-sent
//!   events inside it, and the verification table.
//!
//! Among silk's crates it depends on `silk-protocol` and `silk-attestation` only. The
//! `silk` command and the tools that need more (offline `verify` of evidence files,
//! `measure`, `image`, `demo`, `bench`, `pay`, `policy`) are in `silk-tools`
//! (`tools/`); `docs/architecture.md` draws the crates.

pub mod answer;
pub mod chat;
pub mod network;
pub mod proxy;
pub mod proxy_start;
pub mod receipts;
pub mod receipts_cli;
pub mod render;
pub mod session;
pub mod sse;
pub mod upstream;
pub mod verify_page;
pub mod verify_relay;

pub use session::{ClientError, ErrorKind, Session};
