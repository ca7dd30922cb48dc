//! `silk proxy`'s verification page at `/verify`: the browser challenges the enclave with
//! its own nonce, verifies the evidence itself with the WebAssembly build of silk's
//! verifier under the policy the proxy was started with, then seals a prompt in the page
//! and streams the answer. The proxy only serves the files and relays bytes
//! ([`crate::verify_relay`]).
//!
//! Routes (all under `/verify`, every answer with a strict Content-Security-Policy):
//! - `GET /verify`, `/verify/`: the page; `GET /verify/verify.js`, `/verify/verify.css`,
//!   `/verify/favicon.svg`, `/verify/pkg/silk_verifier_wasm.js`,
//!   `/verify/pkg/silk_verifier_wasm_bg.wasm`: its
//!   files, embedded in the binary.
//! - `GET /verify/api/info`: the policy (TOML text), the WASM's SHA-256, the target and
//!   whether the proxy's own check accepted it; `GET /verify/api/policy.toml`: the policy.
//! - `GET /verify/api/attestation?nonce=HEX`: the enclave's `/v1/attestation` answer to
//!   the browser's nonce, unchanged; without `nonce`, its base evidence (the claims a
//!   sealed request is bound to), unchanged.
//! - `POST /verify/api/sealed`: a request the browser sealed, to the enclave's
//!   `/v1/sealed`; its sealed answer streamed back unchanged as it arrives.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use silk_protocol::wire::{self, ErrorBody};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::verify_relay::{Relay, RelayError};

/// The Content-Security-Policy of every `/verify` answer: only this origin's files, no
/// inline script or style, WebAssembly compiled only from what those scripts load.
pub const CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const INDEX_HTML: &str = include_str!("../web/verify/index.html");
const VERIFY_JS: &str = include_str!("../web/verify/verify.js");
const VERIFY_CSS: &str = include_str!("../web/verify/verify.css");
const FAVICON: &str = include_str!("../web/verify/favicon.svg");
/// The verifier's JS glue and WebAssembly, as built by `verifier/wasm` (`wasm-bindgen
/// --target web`).
const WASM_JS: &str = include_str!("../../verifier/wasm/pkg/silk_verifier_wasm.js");
const WASM: &[u8] = include_bytes!("../../verifier/wasm/pkg/silk_verifier_wasm_bg.wasm");

/// SHA-256 of the embedded WebAssembly, hex: what the page prints, and what a reproducible
/// build of `verifier/wasm` prints.
pub fn wasm_sha256() -> String {
    hex::encode(Sha256::digest(WASM))
}

/// What the proxy's own check at start said about the enclave.
#[derive(Clone, Debug)]
pub enum ProxyCheck {
    /// The proxy verified the enclave (or, with `--router`, verifies workers per request).
    Accepted,
    /// The proxy refused the enclave and serves only this page (`--serve-on-refusal`).
    Refused {
        /// The error, in words.
        summary: String,
        /// The failed checks' names, when evidence was evaluated.
        failed: Vec<String>,
    },
}

/// The page's configuration.
pub struct Page {
    policy_toml: String,
    target: String,
    relay: Result<Relay, String>,
    check: ProxyCheck,
    wasm_sha256: String,
}

impl Page {
    /// A page showing `policy_toml`, relaying to `relay` (or answering 501 with the
    /// reason), after the proxy's own check `check` of `target`.
    pub fn new(
        policy_toml: String,
        target: String,
        relay: Result<Relay, String>,
        check: ProxyCheck,
    ) -> Self {
        Self {
            policy_toml,
            target,
            relay,
            check,
            wasm_sha256: wasm_sha256(),
        }
    }
}

/// The `/verify` routes over `page`.
pub fn routes(page: Arc<Page>) -> Router {
    Router::new()
        .route("/verify", get(index))
        .route("/verify/", get(index))
        .route(
            "/verify/verify.js",
            get(|| asset(JS_TYPE, VERIFY_JS.as_bytes())),
        )
        .route(
            "/verify/verify.css",
            get(|| asset("text/css; charset=utf-8", VERIFY_CSS.as_bytes())),
        )
        .route(
            "/verify/pkg/silk_verifier_wasm.js",
            get(|| asset(JS_TYPE, WASM_JS.as_bytes())),
        )
        .route(
            "/verify/pkg/silk_verifier_wasm_bg.wasm",
            get(|| asset("application/wasm", WASM)),
        )
        .route(
            "/verify/favicon.svg",
            get(|| asset("image/svg+xml", FAVICON.as_bytes())),
        )
        .route("/verify/api/info", get(info))
        .route("/verify/api/policy.toml", get(policy))
        .route("/verify/api/attestation", get(attestation))
        .route("/verify/api/sealed", post(sealed))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(page)
}

const JS_TYPE: &str = "text/javascript; charset=utf-8";

/// Adds the page's security headers to an answer.
fn secure(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn typed(status: StatusCode, kind: &'static str, body: impl Into<Body>) -> Response {
    let mut r = (status, body.into()).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    secure(r)
}

async fn asset(kind: &'static str, bytes: &'static [u8]) -> Response {
    typed(StatusCode::OK, kind, Bytes::from_static(bytes))
}

async fn index() -> Response {
    typed(
        StatusCode::OK,
        "text/html; charset=utf-8",
        Bytes::from_static(INDEX_HTML.as_bytes()),
    )
}

fn error(status: StatusCode, code: &str, message: String) -> Response {
    let kind = if status.is_server_error() {
        "server_error"
    } else {
        "invalid_request_error"
    };
    typed(
        status,
        "application/json",
        ErrorBody::new(kind, code, message).to_json(),
    )
}

fn relay_error(e: &RelayError) -> Response {
    let (status, code) = match e {
        RelayError::Endpoint { .. } => (StatusCode::NOT_IMPLEMENTED, "relay_unsupported"),
        RelayError::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "relay_timeout"),
        RelayError::TooLarge { .. } => (StatusCode::BAD_GATEWAY, "relay_too_large"),
        RelayError::Transport(_) => (StatusCode::BAD_GATEWAY, "relay_transport"),
    };
    error(status, code, e.to_string())
}

async fn info(State(page): State<Arc<Page>>) -> Response {
    let (accepted, summary, failed) = match &page.check {
        ProxyCheck::Accepted => (true, None, Vec::new()),
        ProxyCheck::Refused { summary, failed } => (false, Some(summary.clone()), failed.clone()),
    };
    let body = serde_json::json!({
        "policy": page.policy_toml,
        "target": page.target,
        "relay": page.relay.is_ok(),
        "relay_unavailable": page.relay.as_ref().err(),
        "proxy_check": {"accepted": accepted, "summary": summary, "failed_checks": failed},
        "wasm_sha256": page.wasm_sha256,
        "silk_version": env!("CARGO_PKG_VERSION"),
    });
    typed(StatusCode::OK, "application/json", body.to_string())
}

async fn policy(State(page): State<Arc<Page>>) -> Response {
    typed(
        StatusCode::OK,
        "text/plain; charset=utf-8",
        page.policy_toml.clone(),
    )
}

/// The answer for a target the page cannot relay to.
fn unsupported(why: &str) -> Response {
    error(
        StatusCode::NOT_IMPLEMENTED,
        "relay_unsupported",
        why.to_owned(),
    )
}

#[derive(serde::Deserialize)]
struct NonceQuery {
    nonce: Option<String>,
}

async fn attestation(State(page): State<Arc<Page>>, Query(q): Query<NonceQuery>) -> Response {
    let relay = match &page.relay {
        Ok(r) => r,
        Err(why) => return unsupported(why),
    };
    if let Some(nonce) = &q.nonce {
        let ok = !nonce.is_empty()
            && nonce.len() <= 2 * wire::MAX_NONCE
            && nonce.len() % 2 == 0
            && nonce.bytes().all(|b| b.is_ascii_hexdigit());
        if !ok {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_nonce",
                format!("the nonce must be 1 to {} bytes of hex", wire::MAX_NONCE),
            );
        }
    }
    match relay.attestation(q.nonce.as_deref()).await {
        Ok((status, kind, body)) => {
            let mut r = (status, body).into_response();
            if let Some(kind) = kind {
                r.headers_mut().insert(header::CONTENT_TYPE, kind);
            }
            secure(r)
        }
        Err(e) => {
            tracing::warn!("verify page: evidence relay failed: {e}");
            relay_error(&e)
        }
    }
}

async fn sealed(State(page): State<Arc<Page>>, headers: HeaderMap, body: Body) -> Response {
    if let ProxyCheck::Refused { summary, .. } = &page.check {
        // The page refuses too, from its own verdict; this is the proxy's word as well.
        return error(
            StatusCode::BAD_GATEWAY,
            "attestation",
            format!(
                "the proxy refused this enclave at start and relays no request to it: {summary}"
            ),
        );
    }
    let relay = match &page.relay {
        Ok(r) => r,
        Err(why) => return unsupported(why),
    };
    // Only the page's own fetch sends this type (a cross-site form cannot).
    let typed_ok = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v == wire::SEALED_REQUEST_TYPE);
    if !typed_ok {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "bad_content_type",
            format!("a sealed request is sent as {}", wire::SEALED_REQUEST_TYPE),
        );
    }
    let sealed = match axum::body::to_bytes(body, wire::MAX_SEALED_BODY).await {
        Ok(b) => b,
        Err(e) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                || e.to_string().contains("length limit");
            return if too_large {
                error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request_too_large",
                    format!(
                        "relay bound `MAX_SEALED_BODY` fired: the sealed request is over {} bytes",
                        wire::MAX_SEALED_BODY
                    ),
                )
            } else {
                error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("the sealed request could not be read: {e}"),
                )
            };
        }
    };
    let upstream = match relay.sealed(sealed).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("verify page: sealed relay failed: {e}");
            return relay_error(&e);
        }
    };
    let status = upstream.status();
    let kind = upstream.headers().get(header::CONTENT_TYPE).cloned();
    let limits = relay.limits();
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(32);
    tokio::spawn(async move {
        let mut body = upstream.into_body();
        let (mut which, mut after) = ("first answer byte", limits.first_byte);
        loop {
            let frame = match tokio::time::timeout(after, body.frame()).await {
                Ok(Some(Ok(frame))) => frame,
                Ok(None) => return,
                Ok(Some(Err(e))) => {
                    let why = format!("the enclave's answer broke off: {e}");
                    tracing::warn!("verify page: {why}");
                    let _ = tx.send(Err(std::io::Error::other(why))).await;
                    return;
                }
                Err(_) => {
                    // The answer is sealed: nothing can be said in-band. Cutting it makes
                    // the page's `finish()` report a truncated answer; the log names why.
                    let why = RelayError::Timeout { which, after };
                    tracing::warn!("verify page: {why}");
                    let _ = tx.send(Err(std::io::Error::other(why.to_string()))).await;
                    return;
                }
            };
            (which, after) = ("idle", limits.idle);
            if let Ok(data) = frame.into_data() {
                if tx.send(Ok(data)).await.is_err() {
                    return; // The page left; dropping the body ends the upstream request.
                }
            }
        }
    });
    let mut r = Response::new(Body::from_stream(ReceiverStream::new(rx)));
    *r.status_mut() = status;
    if let Some(kind) = kind {
        r.headers_mut().insert(header::CONTENT_TYPE, kind);
    }
    secure(r)
}
