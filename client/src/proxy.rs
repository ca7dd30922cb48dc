//! `silk proxy`: the OpenAI HTTP API on localhost, every request sealed to the verified
//! enclave. Unmodified OpenAI clients and SDKs point their base URL here.
//!
//! The proxy holds no secret beyond what its own process sees; it exists so that the
//! plaintext never leaves the user's machine unsealed. Attestation failures are answered
//! with 502 and an error naming the failed checks — never by falling back to anything.

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

use crate::session::{ClientError, ErrorKind};
use crate::upstream::{Target, Upstream};

/// The proxy's router over a verified session.
pub fn router(session: Arc<Upstream>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/models", get(models))
        .route("/healthz", get(health))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Bodies are read (and their size refused) by the handlers, in OpenAI's words.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(session)
}

async fn not_found(uri: axum::http::Uri) -> Response {
    json(
        StatusCode::NOT_FOUND,
        ErrorBody::new(
            "invalid_request_error",
            "unknown_url",
            format!("unknown path {}: silk proxy serves /v1/chat/completions, /v1/completions, /v1/models, /healthz and the verification page /verify", uri.path()),
        )
        .to_json(),
    )
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    json(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorBody::new(
            "invalid_request_error",
            "method_not_allowed",
            format!("{method} is not allowed on {}", uri.path()),
        )
        .to_json(),
    )
}

/// Reads a request body up to the largest the enclave accepts.
async fn read_body(body: Body) -> Result<Bytes, Response> {
    axum::body::to_bytes(body, wire::MAX_SEALED_BODY - 4096)
        .await
        .map_err(|e| {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                || e.to_string().contains("length limit");
            if too_large {
                json(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorBody::new(
                        "invalid_request_error",
                        "request_too_large",
                        format!(
                            "the request body is over {} bytes, the most a sealed request carries",
                            wire::MAX_SEALED_BODY - 4096
                        ),
                    )
                    .to_json(),
                )
            } else {
                bad_request(&format!("the request body could not be read: {e}"))
            }
        })
}

/// How long a local client may take to send a request head, or sit idle between
/// requests, before the proxy closes its connection.
pub const HEAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The proxy's router over a verified session, with the verification page at `/verify`.
pub fn router_with_page(session: Arc<Upstream>, page: Arc<crate::verify_page::Page>) -> Router {
    router(session).merge(crate::verify_page::routes(page))
}

/// The router of a proxy that refused its enclave at start (`--serve-on-refusal`): every
/// OpenAI route and `/healthz` answer 502 naming the failed checks — nothing falls back —
/// while `/verify` shows the browser's own verdict of the same enclave.
pub fn refused_router(summary: String, page: Arc<crate::verify_page::Page>) -> Router {
    let refused = Arc::new(summary);
    let answer = |refused: Arc<String>| {
        move || async move {
            json(
                StatusCode::BAD_GATEWAY,
                ErrorBody::new(
                    "attestation_error",
                    "attestation",
                    format!(
                        "attestation refused: {refused}; this proxy serves only /verify, which shows why"
                    ),
                )
                .to_json(),
            )
        }
    };
    Router::new()
        .route("/v1/{*rest}", axum::routing::any(answer(refused.clone())))
        .route("/healthz", get(answer(refused)))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .merge(crate::verify_page::routes(page))
}

/// Serves the proxy on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, session: Arc<Upstream>) {
    serve_router(listener, router(session)).await
}

/// Serves `app` (a router of this module) on `listener` until the process ends.
pub async fn serve_router(listener: tokio::net::TcpListener, app: Router) {
    let mut backoff = std::time::Duration::from_millis(5);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => {
                backoff = std::time::Duration::from_millis(5);
                c
            }
            Err(e) => {
                // Out of descriptors and the like: back off rather than spin.
                tracing::warn!("proxy accept failed: {e}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(std::time::Duration::from_secs(1));
                continue;
            }
        };
        // Every streamed token is a small write: without TCP_NODELAY, Nagle's algorithm
        // can hold one back for tens of milliseconds.
        let _ = tcp.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            // hyper's head deadline also runs while a keep-alive connection waits for
            // its next request, so it is the idle deadline too.
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), service);
            if let Err(e) = conn.await {
                tracing::debug!(%peer, "proxy connection ended: {e}");
            }
        });
    }
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

async fn chat(State(s): State<Arc<Upstream>>, body: Body) -> Response {
    match read_body(body).await {
        Ok(body) => forward(s, body, "messages").await,
        Err(r) => r,
    }
}

async fn completions(State(s): State<Arc<Upstream>>, body: Body) -> Response {
    match read_body(body).await {
        Ok(body) => forward(s, body, "prompt").await,
        Err(r) => r,
    }
}

async fn forward(session: Arc<Upstream>, body: Bytes, key: &str) -> Response {
    // Only the shape is read here: which API, and whether to stream.
    let stream = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(o)) if o.contains_key(key) => {
            o.get("stream").and_then(Value::as_bool).unwrap_or(false)
        }
        Ok(_) => {
            // OpenAI's answer to a body without its endpoint's required field.
            return json(
                StatusCode::BAD_REQUEST,
                ErrorBody::new(
                    "invalid_request_error",
                    "missing_required_parameter",
                    format!("the body must be a JSON object with `{key}`"),
                )
                .with_param(key)
                .to_json(),
            );
        }
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
        return match answer.collect_with_receipt().await {
            Ok((plain, receipt)) => {
                session.acknowledge(&receipt);
                json(status, plain.to_vec())
            }
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
                Ok(None) => {
                    if let Some(r) = answer.receipt() {
                        session.acknowledge(r);
                    }
                    return;
                }
                Err(e) => {
                    // Headers are gone already: say so in-band, as an event whose `error`
                    // OpenAI's SDKs raise as an APIError with this message, then end the
                    // stream without [DONE]. (Aborting the HTTP stream instead would make
                    // the SDK report a bare connection error and drop the event.)
                    tracing::warn!("sealed stream failed: {e}");
                    let code = match &e {
                        ClientError::Integrity { .. } => "integrity",
                        ClientError::Timeout { .. } => "timeout",
                        _ => "transport",
                    };
                    let event = format!(
                        "data: {}\n\n",
                        String::from_utf8_lossy(
                            &ErrorBody::new("server_error", code, e.to_string()).to_json()
                        )
                    );
                    let _ = tx.send(Ok(Bytes::from(event))).await;
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

async fn models(State(s): State<Arc<Upstream>>) -> Response {
    match s.models().await {
        Ok((status, body)) => json(status, body),
        Err(e) => error_response(&e),
    }
}

/// How long `/healthz` waits for the enclave's own health.
const HEALTH_PROBE: std::time::Duration = std::time::Duration::from_secs(2);

/// Healthy only when the session is verified and the enclave answers its health check
/// now, over the verified channel: a proxy whose enclave is gone says so.
async fn health(State(up): State<Arc<Upstream>>) -> Response {
    let s = match &up.target {
        Target::Direct(s) => s,
        Target::Network(n) => return network_health(n).await,
    };
    let Some(v) = s.verified() else {
        let body = serde_json::json!({"status": "unverified"});
        return json(
            StatusCode::SERVICE_UNAVAILABLE,
            body.to_string().into_bytes(),
        );
    };
    let probe = tokio::time::timeout(HEALTH_PROBE, s.get(wire::PATH_HEALTH)).await;
    let enclave = match probe {
        Ok(Ok((status, _))) if status.is_success() => Ok(()),
        Ok(Ok((status, body))) => Err(format!(
            "the enclave answered {status}: {}",
            String::from_utf8_lossy(&body)
        )),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "the enclave did not answer its health check within {HEALTH_PROBE:?}"
        )),
    };
    let (status, body) = match enclave {
        Ok(()) => (
            StatusCode::OK,
            serde_json::json!({
                "status": "ok",
                "verified": v.verdict.accepted(),
                "simulated": v.verdict.simulated,
                "model": v.claims.model,
            }),
        ),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({
                "status": "unreachable",
                "verified": v.verdict.accepted(),
                "reason": reason,
            }),
        ),
    };
    json(status, body.to_string().into_bytes())
}

/// Healthy when at least one listed worker verifies and the routers answered.
async fn network_health(n: &crate::network::Network) -> Response {
    let (status, body) = match tokio::time::timeout(HEALTH_PROBE, n.candidates()).await {
        Ok(Ok(c)) if !c.is_empty() => (
            StatusCode::OK,
            serde_json::json!({"status": "ok", "verified_workers": c.len()}),
        ),
        Ok(Ok(_)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "no_workers", "refused": n.dropped().len()}),
        ),
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "unreachable", "reason": e.to_string()}),
        ),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "unreachable", "reason": "the routers did not answer in time"}),
        ),
    };
    json(status, body.to_string().into_bytes())
}
