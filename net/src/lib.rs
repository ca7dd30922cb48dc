//! The server side of silk's connections, shared by `silk-enclave` and `silk-router`,
//! and the bounded client they use to reach public services.
//!
//! - [`conn`]: listeners whose connections are capped, timed at every stage (TLS
//!   handshake, request head, keep-alive idle) and evicted when idle at the cap.
//! - [`body`]: request bodies read within a size limit, a shared budget and the body
//!   deadline; refused ones drained.
//! - [`tasks`]: a server's background tasks (stopped with it) and the stop signals.
//! - [`metrics`]: what that layer counts, for the process's own Prometheus registry.
//! - [`fetch`]: the one way out: a bounded GET to a public service (collateral).
// The workspace denies unsafe code; this crate raises the process's open-file limit
// (getrlimit/setrlimit) and sets socket options that std does not expose.
#![allow(unsafe_code)]

pub mod body;
pub mod conn;
pub mod fetch;
pub mod metrics;
pub mod tasks;

pub use conn::{serve, Limits};
