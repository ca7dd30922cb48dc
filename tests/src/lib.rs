//! End-to-end tests live in `tests/tests/`; this library holds what they share.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod vm;
