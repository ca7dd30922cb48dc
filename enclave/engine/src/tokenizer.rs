//! Tokenizers: `tokenizer.json`, or rebuilt from GGUF `tokenizer.ggml.*` metadata.
