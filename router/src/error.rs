//! The router's own refusals: an HTTP status, a stable code, a message naming the check
//! or bound that refused, and for temporary refusals a `Retry-After`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use silk_net::body::BodyError;
use silk_protocol::wire::ErrorBody;

/// A refusal, answered as an OpenAI-style JSON [`ErrorBody`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable machine-readable code, e.g. `bad_challenge`, `worker_busy`.
    pub code: &'static str,
    /// What refused, in words (never request content).
    pub message: String,
    /// Seconds after which a retry may succeed, for temporary refusals.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// A refusal.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The same refusal, with `Retry-After: secs`.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs.max(1));
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // OpenAI's error types: the caller's fault, or the service's (busy counts as ours).
        let kind = if self.status.is_client_error() && self.status != StatusCode::TOO_MANY_REQUESTS
        {
            "invalid_request_error"
        } else {
            "server_error"
        };
        let body = ErrorBody::new(kind, self.code, self.message).to_json();
        let mut r = json(self.status, body);
        if let Some(secs) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        r
    }
}

/// A JSON response.
pub fn json(status: StatusCode, body: Vec<u8>) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// The refusal a client sees for a body that was not read.
impl From<&BodyError> for ApiError {
    fn from(e: &BodyError) -> Self {
        let (status, code) = match e {
            BodyError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            BodyError::Budget { .. } => (StatusCode::SERVICE_UNAVAILABLE, "busy_bodies"),
            BodyError::Timeout(_) => (StatusCode::REQUEST_TIMEOUT, "body_timeout"),
            BodyError::Read(_) => (StatusCode::BAD_REQUEST, "bad_body"),
        };
        let api = ApiError::new(status, code, e.to_string());
        match e {
            BodyError::Budget { .. } => api.retry_after(1),
            _ => api,
        }
    }
}
