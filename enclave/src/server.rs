//! The enclave's HTTP server: evidence, sealed OpenAI requests, health and metrics.
//!
//! Served over TLS 1.3 with the RA-TLS certificate, and optionally over plain HTTP for a
//! router that terminates its own TLS (the content is sealed end to end either way). Logs
//! carry outcomes, sizes and timings — never a prompt, an answer or an error message that
//! could quote one.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use silk_engine::{Engine, SubmitError};
use silk_net::body::{self, BodyError};
use silk_protocol::wire::{self, ErrorBody};
use silk_protocol::StreamSealer;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::identity::Identity;
use crate::metrics::{Metrics, Outcome};
use crate::openai::{self, AnswerHead};
use crate::pump::{Pump, Ticket};

/// Everything the handlers share.
pub struct AppState {
    /// Keys, claims and evidence of this boot.
    pub identity: Identity,
    /// The inference engine.
    pub engine: Engine,
    /// The served model's name (`/v1/models`, answers' `model`).
    pub model_name: String,
    /// Metrics.
    pub metrics: Metrics,
    /// Bounds concurrent fresh-evidence requests (each is a firmware call).
    pub fresh_limit: tokio::sync::Semaphore,
    /// Why sealed requests are refused (a configured GPU that does not verify), if they are.
    pub refusal: Option<String>,
    /// Encapsulated keys of requests already opened.
    pub replay: std::sync::Mutex<crate::replay::ReplayGuard>,
    /// Bytes of request bodies that may be held at once (one permit a byte).
    pub body_budget: tokio::sync::Semaphore,
    /// Deadlines and bounds.
    pub limits: Arc<crate::conn::Limits>,
    /// The signed offers.
    pub offers: crate::worker::Offers,
    /// This boot's receipt numbers.
    pub receipts: crate::worker::Counter,
}

/// The router of all endpoints.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(wire::PATH_ATTESTATION, get(attestation))
        .route(wire::PATH_SEALED, post(sealed))
        .route(wire::PATH_MODELS, get(models))
        .route(silk_protocol::network::PATH_OFFER, get(offer))
        .route(wire::PATH_HEALTH, get(health))
        .route(wire::PATH_METRICS, get(metrics))
        .with_state(state)
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn plain_error(status: StatusCode, kind: &str, code: &str, message: String) -> Response {
    json_response(status, ErrorBody::new(kind, code, message).to_json())
}

#[derive(Deserialize)]
struct NonceQuery {
    nonce: Option<String>,
}

async fn attestation(State(s): State<Arc<AppState>>, Query(q): Query<NonceQuery>) -> Response {
    let Some(hex_nonce) = q.nonce else {
        s.metrics.attestations.inc();
        return json_response(StatusCode::OK, s.identity.bundle().to_json());
    };
    let nonce = match hex::decode(&hex_nonce) {
        Ok(n) if !n.is_empty() && n.len() <= wire::MAX_NONCE => n,
        _ => {
            return plain_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "bad_nonce",
                format!("nonce must be 1 to {} bytes of hex", wire::MAX_NONCE),
            )
        }
    };
    let Ok(_permit) = s.fresh_limit.acquire().await else {
        return plain_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "shutting_down",
            "the enclave is stopping".into(),
        );
    };
    let state = s.clone();
    let fresh = tokio::task::spawn_blocking(move || state.identity.fresh_bundle(&nonce)).await;
    match fresh {
        Ok(Ok(bundle)) => {
            s.metrics.attestations.inc();
            json_response(StatusCode::OK, bundle.to_json())
        }
        Ok(Err(e)) => {
            s.metrics.attestation_failures.inc();
            tracing::error!("fresh evidence failed: {e}");
            plain_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "evidence_unavailable",
                format!("fresh evidence failed: {e}"),
            )
        }
        Err(_) => plain_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal",
            "evidence task failed".into(),
        ),
    }
}

async fn models(State(s): State<Arc<AppState>>) -> Response {
    let body = serde_json::json!({
        "object": "list",
        "data": [{"id": s.model_name, "object": "model", "created": 0, "owned_by": "silk"}],
    });
    json_response(StatusCode::OK, body.to_string().into_bytes())
}

async fn offer(State(s): State<Arc<AppState>>) -> Response {
    match s.offers.current(&s.identity) {
        Ok((offer, _)) => json_response(
            StatusCode::OK,
            serde_json::to_vec(&offer).unwrap_or_default(),
        ),
        Err(e) => plain_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "offer_unavailable",
            e.to_string(),
        ),
    }
}

async fn health(State(s): State<Arc<AppState>>) -> Response {
    if let Some(why) = &s.refusal {
        let body = serde_json::json!({"status": "refusing", "reason": why});
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            body.to_string().into_bytes(),
        );
    }
    let stats = s.engine.stats();
    let body = serde_json::json!({
        "status": "ok",
        "evidence": s.identity.provider_name(),
        "model": s.model_name,
        "running": stats.running,
        "waiting": stats.waiting,
        "gpus": s.identity.gpus().len(),
    });
    json_response(StatusCode::OK, body.to_string().into_bytes())
}

async fn metrics(State(s): State<Arc<AppState>>) -> Response {
    let mut r = s.metrics.render(s.engine.stats()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}

fn sealed_response(status: StatusCode, body: Body) -> Response {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(wire::SEALED_STREAM_TYPE),
    );
    r
}

/// An error the client can only read after opening: sent sealed, then the receipt (for
/// no completion tokens), so every sealed answer ends the same way.
fn sealed_error(
    s: &AppState,
    mut sealer: StreamSealer,
    ticket: &Ticket,
    status: StatusCode,
    error: ErrorBody,
) -> Response {
    let body = error.to_json();
    let frames = sealer.seal(&body, false).and_then(|mut f| {
        f.extend(sealer.seal_receipt(&ticket.receipt(s, 0, 0))?);
        Ok(f)
    });
    match frames {
        Ok(frames) => sealed_response(status, Body::from(frames)),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn sealed(
    State(s): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    request: Body,
) -> Response {
    let start = Instant::now();
    if let Some(why) = &s.refusal {
        return plain_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "not_serving",
            why.clone(),
        );
    }
    let declared = body::declared_length(&headers);
    let read = body::read_body(
        &s.body_budget,
        &s.limits,
        wire::MAX_SEALED_BODY,
        declared,
        request,
    )
    .await;
    let (wire_bytes, _budget) = match read {
        Ok(b) => b,
        Err(e) => {
            let (status, kind, code) = match &e {
                BodyError::TooLarge { .. } => {
                    s.metrics.outcome(Outcome::TooLarge);
                    (
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "invalid_request_error",
                        "too_large",
                    )
                }
                BodyError::Budget { .. } => {
                    s.metrics.conn.body_budget_refusals.inc();
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "server_error",
                        "busy_bodies",
                    )
                }
                BodyError::Timeout(_) => {
                    s.metrics
                        .conn
                        .timed_out(crate::metrics::Deadline::RequestBody);
                    (
                        StatusCode::REQUEST_TIMEOUT,
                        "invalid_request_error",
                        "body_timeout",
                    )
                }
                BodyError::Read(_) => {
                    (StatusCode::BAD_REQUEST, "invalid_request_error", "bad_body")
                }
            };
            tracing::info!(code, "sealed request body refused: {e}");
            return plain_error(status, kind, code, e.to_string());
        }
    };
    let (plain, sealer) = match s.identity.open(&wire_bytes) {
        Ok(opened) => opened,
        Err(e) => {
            s.metrics.outcome(Outcome::BadSeal);
            tracing::info!(bytes = wire_bytes.len(), "sealed request refused: {e}");
            return plain_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "bad_seal",
                e.to_string(),
            );
        }
    };
    let request_digest: [u8; 32] = sha2::Digest::finalize(sha2::Digest::chain_update(
        sha2::Sha256::default(),
        &wire_bytes,
    ))
    .into();
    let fresh = s
        .replay
        .lock()
        .map(|mut g| g.first_use(request_digest))
        .unwrap_or(false);
    if !fresh {
        s.metrics.outcome(Outcome::Replayed);
        tracing::warn!("sealed request refused: replayed");
        return plain_error(
            StatusCode::CONFLICT,
            "invalid_request_error",
            "replayed",
            "this sealed request was already received (replay)".into(),
        );
    }
    // Checked once the seal has opened, so that a request sent to the wrong worker is
    // refused as such (`bad_seal`) rather than for an offer this worker never made.
    let named_offer = headers
        .get(silk_protocol::network::HEADER_OFFER)
        .and_then(|v| v.to_str().ok());
    let offer_digest = match s.offers.accept(&s.identity, named_offer) {
        Ok(d) => d,
        Err(e) => {
            s.metrics.outcome(Outcome::BadRequest);
            return plain_error(
                StatusCode::CONFLICT,
                "invalid_request_error",
                "offer_changed",
                e.to_string(),
            );
        }
    };
    let ticket = Ticket {
        request_digest,
        offer_digest,
        model: s.model_name.clone(),
        started_at_ms: crate::worker::unix_millis(),
    };
    let parsed = openai::parse(&plain);
    drop(plain);
    let parsed = match parsed {
        Ok(p) => p,
        Err(e) => {
            s.metrics.outcome(Outcome::BadRequest);
            tracing::info!(param = ?e.param, "sealed request invalid");
            return sealed_error(&s, sealer, &ticket, StatusCode::BAD_REQUEST, e.to_body());
        }
    };
    let logprobs = parsed.generate.logprobs.is_some();
    let generation = match s.engine.submit(parsed.generate) {
        Ok(g) => g,
        Err(e) => {
            let (status, code, outcome) = match &e {
                SubmitError::Busy { .. } => (StatusCode::TOO_MANY_REQUESTS, "busy", Outcome::Busy),
                SubmitError::Stopped => {
                    (StatusCode::SERVICE_UNAVAILABLE, "stopped", Outcome::Failed)
                }
                SubmitError::TooLarge(_) => (
                    StatusCode::BAD_REQUEST,
                    "context_length_exceeded",
                    Outcome::BadRequest,
                ),
                SubmitError::Params(_) => (
                    StatusCode::BAD_REQUEST,
                    "invalid_value",
                    Outcome::BadRequest,
                ),
                SubmitError::Prompt(_) => {
                    (StatusCode::BAD_REQUEST, "bad_request", Outcome::BadRequest)
                }
            };
            s.metrics.outcome(outcome);
            tracing::info!(code, "sealed request not admitted");
            let kind = if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                "server_error"
            } else {
                "invalid_request_error"
            };
            let mut body = ErrorBody::new(kind, code, e.to_string());
            if let SubmitError::Params(p) = &e {
                // The engine's checks (logit_bias ids, JSON room) name the parameter too.
                body = body.with_param(p.name);
            }
            return sealed_error(&s, sealer, &ticket, status, body);
        }
    };
    s.metrics
        .prompt_tokens
        .inc_by(generation.prompt_tokens as u64);
    let head = AnswerHead {
        api: parsed.api,
        id: answer_id(parsed.api),
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        // The model that answers, whatever the request named (as OpenAI names the
        // snapshot behind an alias).
        model: s.model_name.clone(),
        logprobs,
    };
    let prompt_tokens = generation.prompt_tokens;
    let (tx, rx) = mpsc::channel::<Result<Vec<u8>, std::io::Error>>(64);
    let job = Pump {
        state: s.clone(),
        head,
        stream: parsed.stream,
        include_usage: parsed.include_usage,
        sealer,
        tx,
        start,
        done: false,
        ticket,
        prompt_tokens,
        deltas: 0,
    };
    if parsed.stream {
        tokio::task::spawn_blocking(move || job.run(generation));
        return sealed_response(StatusCode::OK, Body::from_stream(ReceiverStream::new(rx)));
    }
    // A whole answer: wait for it so that a failure gets its own status.
    let outcome = tokio::task::spawn_blocking(move || job.run(generation)).await;
    let status = match outcome {
        Ok(Outcome::Ok) => StatusCode::OK,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    sealed_response(status, Body::from_stream(ReceiverStream::new(rx)))
}

fn answer_id(api: wire::Api) -> String {
    let mut raw = [0u8; 12];
    rand::Rng::fill(&mut rand::thread_rng(), &mut raw);
    match api {
        wire::Api::ChatCompletions => format!("chatcmpl-{}", hex::encode(raw)),
        wire::Api::Completions => format!("cmpl-{}", hex::encode(raw)),
    }
}
