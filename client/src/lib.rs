//! silk client library.
