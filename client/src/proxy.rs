//! `silk proxy`: the OpenAI HTTP API on localhost, every request sealed to the verified
//! enclave. Unmodified OpenAI clients and SDKs point their base URL here.
//!
//! The proxy holds no secret beyond what its own process sees; it exists so that the
//! plaintext never leaves the user's machine unsealed. Attestation failures are answered
//! with 502 and an error naming the failed checks — never by falling back to anything.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;
use silk_protocol::wire::{self, ErrorBody};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::session::{ClientError, ErrorKind, Session};

/// The proxy's router over a verified session.
pub fn router(session: Arc<Session>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/models", get(models))
        .route("/healthz", get(health))
        .layer(axum::extract::DefaultBodyLimit::max(wire::MAX_SEALED_BODY))
        .with_state(session)
}

/// Serves the proxy on `listen` until the process ends.
pub async fn serve(listen: SocketAddr, session: Arc<Session>) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    // Every streamed token is a small write: without TCP_NODELAY, Nagle's algorithm can
    // hold one back for tens of milliseconds.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router(session)).await
}

fn json(status: StatusCode, body: Vec<u8>) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Maps a client error to the HTTP answer an OpenAI client understands.
pub fn error_response(e: &ClientError) -> Response {
    let (status, kind, code) = match e.kind() {
        ErrorKind::Configuration => (StatusCode::BAD_REQUEST, "invalid_request_error", "config"),
        ErrorKind::Transport => (StatusCode::BAD_GATEWAY, "server_error", "transport"),
        ErrorKind::Attestation => (StatusCode::BAD_GATEWAY, "attestation_error", "attestation"),
        ErrorKind::Api => {
            if let ClientError::Api { status, body } = e {
                let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY);
                return json(status, body.to_json());
            }
            (StatusCode::BAD_GATEWAY, "server_error", "api")
        }
    };
    json(status, ErrorBody::new(kind, code, e.to_string()).to_json())
}

fn bad_request(message: &str) -> Response {
    json(
        StatusCode::BAD_REQUEST,
        ErrorBody::new("invalid_request_error", "bad_request", message).to_json(),
    )
}

async fn chat(State(s): State<Arc<Session>>, body: Bytes) -> Response {
    forward(s, body, "messages").await
}

async fn completions(State(s): State<Arc<Session>>, body: Bytes) -> Response {
    forward(s, body, "prompt").await
}

async fn forward(session: Arc<Session>, body: Bytes, key: &str) -> Response {
    // Only the shape is read here: which API, and whether to stream.
    let stream = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(o)) if o.contains_key(key) => {
            o.get("stream").and_then(Value::as_bool).unwrap_or(false)
        }
        Ok(_) => return bad_request(&format!("the body must be a JSON object with `{key}`")),
        Err(e) => return bad_request(&format!("the body is not valid JSON: {e}")),
    };
    let mut answer = match session.send(&body).await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!("sealed request failed: {e}");
            return error_response(&e);
        }
    };
    let status = answer.status();
    if status != StatusCode::OK || !stream {
        return match answer.collect().await {
            Ok(plain) => json(status, plain.to_vec()),
            Err(e) => error_response(&e),
        };
    }
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(32);
    tokio::spawn(async move {
        loop {
            match answer.next_chunk().await {
                Ok(Some(chunk)) => {
                    if tx.send(Ok(Bytes::from(chunk.to_vec()))).await.is_err() {
                        return; // The client left; dropping the answer cancels upstream.
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    // Headers are gone already: say so in-band and end without [DONE],
                    // so the client cannot take a cut stream for a whole one.
                    tracing::warn!("sealed stream failed: {e}");
                    let event = format!(
                        "data: {}\n\n",
                        String::from_utf8_lossy(
                            &ErrorBody::new("server_error", "integrity", e.to_string()).to_json()
                        )
                    );
                    let _ = tx.send(Ok(Bytes::from(event))).await;
                    let _ = tx
                        .send(Err(std::io::Error::other("sealed stream failed")))
                        .await;
                    return;
                }
            }
        }
    });
    let mut r = Response::new(Body::from_stream(ReceiverStream::new(rx)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

async fn models(State(s): State<Arc<Session>>) -> Response {
    match s.get(wire::PATH_MODELS).await {
        Ok((status, body)) => json(status, body),
        Err(e) => error_response(&e),
    }
}

async fn health(State(s): State<Arc<Session>>) -> Response {
    let body = match s.verified() {
        Some(v) => serde_json::json!({
            "status": "ok",
            "verified": v.verdict.accepted(),
            "simulated": v.verdict.simulated,
            "model": v.claims.model,
        }),
        None => serde_json::json!({"status": "unverified"}),
    };
    json(StatusCode::OK, body.to_string().into_bytes())
}
