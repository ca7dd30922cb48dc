//! Streaming detokenisation: UTF-8-safe text deltas and stop strings.
