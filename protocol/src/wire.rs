//! The HTTP surface of an enclave, as both sides must agree on it.
//!
//! `POST /v1/sealed` carries a sealed request ([`crate::seal`]) whose plaintext is exactly
//! an OpenAI `chat/completions` body (it has `messages`) or `completions` body (it has
//! `prompt`); the answer is a sealed stream whose plaintext is exactly what OpenAI would
//! send: one JSON object, or the SSE events of a streamed answer. Errors the enclave can
//! only know after opening the seal (bad JSON, bad parameters) travel sealed too, as an
//! OpenAI error object, so a relay learns no more than that the request failed.

use serde::{Deserialize, Serialize};

/// Evidence bundle (JSON); `?nonce=HEX` asks for fresh evidence whose claims carry it.
pub const PATH_ATTESTATION: &str = "/v1/attestation";
/// Sealed OpenAI requests.
pub const PATH_SEALED: &str = "/v1/sealed";
/// The served models (public: the model identity is in the claims anyway).
pub const PATH_MODELS: &str = "/v1/models";
/// Liveness and readiness.
pub const PATH_HEALTH: &str = "/healthz";
/// Prometheus metrics: counts and latencies only.
pub const PATH_METRICS: &str = "/metrics";

/// Media type of a sealed request body.
pub const SEALED_REQUEST_TYPE: &str = "application/vnd.silk.sealed-request";
/// Media type of a sealed response stream.
pub const SEALED_STREAM_TYPE: &str = "application/vnd.silk.sealed-stream";

/// Largest sealed request body an enclave reads.
pub const MAX_SEALED_BODY: usize = 4 << 20;
/// Longest challenge nonce, in bytes.
pub const MAX_NONCE: usize = 64;

/// An OpenAI-style error body: `{"error": {...}}`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The inside of an [`ErrorBody`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorDetail {
    /// A human-readable message (never containing request content).
    pub message: String,
    /// OpenAI's error type, e.g. `invalid_request_error`, `server_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A stable machine-readable code, e.g. `bad_seal`, `busy`.
    pub code: String,
    /// The request parameter at fault, when there is one (OpenAI's `param`; the SDKs
    /// expose it as `error.param`). Always written, `null` when absent, as OpenAI does.
    #[serde(default)]
    pub param: Option<String>,
}

impl ErrorBody {
    /// An error body.
    pub fn new(kind: &str, code: &str, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                message: message.into(),
                kind: kind.into(),
                code: code.into(),
                param: None,
            },
        }
    }

    /// The same error, naming the request parameter at fault.
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.error.param = Some(param.into());
        self
    }

    /// As JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Which OpenAI API a sealed body is for, judged by its shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// `/v1/chat/completions`: the body has `messages`.
    ChatCompletions,
    /// `/v1/completions`: the body has `prompt`.
    Completions,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_have_openais_shape_with_param() {
        let v: serde_json::Value = serde_json::from_slice(
            &ErrorBody::new("invalid_request_error", "unsupported_parameter", "no tools")
                .with_param("tools")
                .to_json(),
        )
        .unwrap();
        assert_eq!(v["error"]["param"], "tools");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        let plain: serde_json::Value =
            serde_json::from_slice(&ErrorBody::new("server_error", "busy", "m").to_json()).unwrap();
        assert!(plain["error"].as_object().unwrap()["param"].is_null());
        // Bodies written before `param` existed still parse.
        let old: ErrorBody =
            serde_json::from_str(r#"{"error":{"message":"m","type":"t","code":"c"}}"#).unwrap();
        assert_eq!(old.error.param, None);
    }
}
