//! The router's HTTP surface: challenges, registration, the worker list, fresh evidence
//! through the router, health and metrics. Sealed forwarding is in [`crate::forward`].
//!
//! Logs carry outcomes, worker id prefixes, sizes and timings — never content, and never
//! a client's address (the connection layer's `peer` fields are hidden unless
//! `--log-client-addresses`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use silk_protocol::attestation::Policy;
use silk_protocol::gpu::GpuInputs;
use silk_protocol::network::{self, Challenge, Registered, Registration, WorkerEntry, WorkerList};
use silk_protocol::wire;
use tokio::sync::{mpsc, Semaphore};

use crate::error::{json, ApiError};
use crate::metrics::{Deadline, Metrics};
use crate::pool::{Connector, FetchError, Pool};
use crate::registry::{Lookup, Reason, Registry, Worker, CHALLENGE_TTL};
use silk_net::body::{declared_length, read_body, BodyError};

/// Registrations checked at once (each verifies two bundles and opens a connection);
/// beyond it registrants hear 503 and retry.
pub const ADMISSIONS_AT_ONCE: usize = 8;
/// Fresh-evidence requests forwarded at once, over all workers.
pub const ATTESTATIONS_AT_ONCE: usize = 64;
/// Largest evidence answer relayed from a worker.
pub const MAX_ATTESTATION: usize = 1 << 20;
/// Largest health answer read from a worker.
pub const MAX_HEALTH: usize = 64 << 10;
/// Longest wait for a worker's fresh evidence.
pub const ATTESTATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Deadlines of the router's own requests to workers.
#[derive(Clone, Debug)]
pub struct Timeouts {
    /// From forwarding a sealed request to the answer's first byte.
    pub first_byte: Duration,
    /// Between two chunks of an answer.
    pub idle: Duration,
    /// A health check's request and answer.
    pub health: Duration,
}

/// Everything the handlers share.
pub struct AppState {
    /// Challenges and workers.
    pub registry: Registry<Pool>,
    /// Opens RA-TLS connections to workers.
    pub connector: Connector,
    /// The admission policy.
    pub policy: Arc<Policy>,
    /// RIMs for GPU evidence.
    pub gpu: Arc<GpuInputs>,
    /// Metrics.
    pub metrics: Metrics,
    /// Listener deadlines and bounds (the body deadline and budget too).
    pub limits: Arc<silk_net::Limits>,
    /// Bytes of request bodies that may be held at once (one permit a byte).
    pub body_budget: Semaphore,
    /// Registrations checked at once.
    pub admissions: Semaphore,
    /// Fresh-evidence requests forwarded at once.
    pub attestations: Semaphore,
    /// Deadlines of requests to workers.
    pub timeouts: Timeouts,
    /// The heartbeat announced to workers, in whole seconds.
    pub heartbeat_secs: u64,
    /// Where receipt log lines go, when a receipt log is kept.
    pub receipts: Option<mpsc::Sender<String>>,
}

impl AppState {
    /// Counts a body refusal where it belongs: the body deadline and budget with the
    /// connection layer's counters, every refusal as an error class.
    /// Reads a request body of at most `max` bytes within the listener's bounds; a
    /// refusal is counted and answered with its named error.
    pub async fn read_body(
        &self,
        max: usize,
        declared: Option<usize>,
        body: Body,
    ) -> Result<(Vec<u8>, tokio::sync::SemaphorePermit<'_>), ApiError> {
        read_body(&self.body_budget, &self.limits, max, declared, body)
            .await
            .map_err(|e| {
                self.body_refused(&e);
                ApiError::from(&e)
            })
    }

    fn body_refused(&self, e: &BodyError) {
        match e {
            BodyError::Timeout(_) => self.metrics.conn.timed_out(Deadline::RequestBody),
            BodyError::Budget { .. } => {
                self.metrics.conn.body_budget_refusals.inc();
            }
            _ => {}
        }
        self.metrics.error(match e {
            BodyError::TooLarge { .. } => "too_large",
            BodyError::Budget { .. } => "body_budget",
            BodyError::Timeout(_) => "body_timeout",
            BodyError::Read(_) => "body_read",
        });
    }

    /// Takes `worker` off the list for `reason` (unless it was re-registered meanwhile),
    /// counting and logging it with `detail`.
    pub fn unlist(&self, worker: &Arc<Worker<Pool>>, reason: Reason, detail: &str) {
        let id = &worker.listing.id;
        if self
            .registry
            .unlist(id, Some(worker), reason, Instant::now())
            .is_some()
        {
            self.unlisted(worker, reason, detail);
        }
    }

    /// Counts and logs a worker the registry already took off the list.
    pub fn unlisted(&self, worker: &Worker<Pool>, reason: Reason, detail: &str) {
        self.metrics
            .unlisting(reason.as_str(), worker.listing.short_id());
        self.metrics.workers_listed.set(self.registry.len() as i64);
        tracing::info!(
            worker = worker.listing.short_id(),
            reason = reason.as_str(),
            "worker unlisted: {detail}"
        );
    }
}

/// The router of all endpoints.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(network::PATH_CHALLENGE, get(challenge))
        .route(network::PATH_WORKERS, post(register).get(list))
        .route("/v1/workers/{id}/attestation", get(attestation))
        .route(wire::PATH_SEALED, post(crate::forward::sealed))
        .route(wire::PATH_HEALTH, get(health))
        .route(wire::PATH_METRICS, get(metrics))
        .fallback(not_found)
        .with_state(state)
}

/// Counts a request's outcome under `endpoint` and answers it.
fn answer(s: &AppState, endpoint: &'static str, r: Result<Response, ApiError>) -> Response {
    match r {
        Ok(r) => {
            s.metrics.request(endpoint, "ok");
            r
        }
        Err(e) => {
            s.metrics.request(endpoint, e.code);
            e.into_response()
        }
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Response, ApiError> {
    serde_json::to_vec(v)
        .map(|b| json(StatusCode::OK, b))
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))
}

async fn challenge(State(s): State<Arc<AppState>>) -> Response {
    let mut nonce = [0u8; 32];
    rand::Rng::fill(&mut rand::thread_rng(), &mut nonce);
    let r = match s.registry.issue_challenge(nonce, Instant::now()) {
        Ok(()) => to_json(&Challenge {
            challenge: hex::encode(nonce),
            expires_in: CHALLENGE_TTL.as_secs(),
            heartbeat_secs: s.heartbeat_secs,
        }),
        Err(e) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "challenges_full",
            e.to_string(),
        )
        .retry_after(1)),
    };
    answer(&s, "challenge", r)
}

async fn register(State(s): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let r = admit(&s, &headers, body).await;
    let outcome = r.as_ref().map_or_else(|e| e.code, |_| "ok");
    s.metrics.registration(outcome);
    if let Err(e) = &r {
        // Debug only: anyone can send junk, and the registrant reads the refusal itself.
        tracing::debug!(code = e.code, "registration refused: {}", e.message);
    }
    answer(&s, "register", r.and_then(|reg| to_json(&reg)))
}

/// A registration's checks, in order; the first that fails answers.
async fn admit(s: &Arc<AppState>, headers: &HeaderMap, body: Body) -> Result<Registered, ApiError> {
    let declared = declared_length(headers);
    let (bytes, budget) = s
        .read_body(network::MAX_REGISTRATION, declared, body)
        .await?;
    let reg: Registration = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_json",
            format!("the registration is not valid JSON of its shape: {e}"),
        )
    })?;
    drop((bytes, budget));
    let _admitting = s.admissions.try_acquire().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "registrations_busy",
            format!("{ADMISSIONS_AT_ONCE} registrations are being checked; retry shortly"),
        )
        .retry_after(1)
    })?;
    let bad_challenge = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "bad_challenge", m);
    let nonce = hex::decode(&reg.challenge)
        .map_err(|_| bad_challenge("the challenge is not hex".into()))?;
    s.registry
        .consume_challenge(&nonce, Instant::now())
        .map_err(|e| bad_challenge(e.to_string()))?;
    // Evidence verification is CPU work (signatures, certificate chains): off the
    // runtime's threads.
    let (policy, gpu) = (s.policy.clone(), s.gpu.clone());
    let listing = tokio::task::spawn_blocking(move || {
        crate::admission::check(reg, &nonce, &policy, &gpu, time::OffsetDateTime::now_utc())
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
    .map_err(|e| e.to_api())?;
    let full = || {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "registry_full",
            format!(
                "{} workers are listed, the most this router holds",
                s.registry.limits().max_workers
            ),
        )
        .retry_after(s.heartbeat_secs)
    };
    if !s.registry.has_room_for(&listing.id) {
        return Err(full());
    }
    // The same worker at the same address keeps its pool (re-registration every
    // heartbeat reuses a warm connection).
    let pool = match s.registry.lookup(&listing.id) {
        Lookup::Listed(w) if w.conn.address() == listing.address => w.conn.clone(),
        _ => Arc::new(Pool::new(listing.address.clone(), listing.id_bytes)),
    };
    let waiting = probe(s, &pool).await.map_err(|e| {
        let code = match &e {
            FetchError::Pool(crate::pool::PoolError::Mismatch { .. }) => "worker_mismatch",
            _ => "worker_unreachable",
        };
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            code,
            format!("the router could not reach the worker over RA-TLS: {e}"),
        )
    })?;
    let short = listing.short_id().to_owned();
    let model = listing.model.clone();
    let refresh = matches!(s.registry.lookup(&listing.id), Lookup::Listed(_));
    let worker = s
        .registry
        .list(listing, pool, Instant::now())
        .map_err(|_| full())?;
    worker.load.set_queue(waiting);
    s.metrics.workers_listed.set(s.registry.len() as i64);
    if refresh {
        tracing::debug!(worker = %short, "worker re-registered");
    } else {
        tracing::info!(worker = %short, model = %model, "worker listed");
    }
    Ok(Registered {
        id: worker.listing.id.clone(),
        heartbeat_secs: s.heartbeat_secs,
    })
}

/// Health-checks a worker over its pool: `GET /healthz` must answer 200; returns the
/// worker's queue length (`waiting`, 0 when absent).
pub async fn probe(s: &AppState, pool: &Arc<Pool>) -> Result<u64, FetchError> {
    let (status, body) = pool
        .fetch(
            &s.connector,
            wire::PATH_HEALTH,
            s.timeouts.health,
            MAX_HEALTH,
        )
        .await
        .inspect_err(|e| s.metrics.error(e.class()))?;
    if status != StatusCode::OK {
        s.metrics.error("health_status");
        return Err(FetchError::Failed(format!("/healthz answered {status}")));
    }
    let waiting = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("waiting")?.as_u64())
        .unwrap_or(0);
    Ok(waiting)
}

#[derive(Deserialize)]
struct ListQuery {
    model: Option<String>,
}

async fn list(
    State(s): State<Arc<AppState>>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let r = q
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_query", e.body_text()))
        .and_then(|Query(q)| {
            let workers = s
                .registry
                .workers(q.model.as_deref(), Instant::now())
                .into_iter()
                .map(|(w, load)| WorkerEntry {
                    id: w.listing.id.clone(),
                    model: w.listing.model.clone(),
                    bundle: w.listing.bundle.clone(),
                    offer: w.listing.offer.clone(),
                    load,
                })
                .collect();
            to_json(&WorkerList { workers })
        });
    answer(&s, "list", r)
}

#[derive(Deserialize)]
struct NonceQuery {
    nonce: Option<String>,
}

/// Finds a listed worker, or says why not: 404 when unknown, 503 when it was unlisted.
pub fn listed(s: &AppState, id: &str) -> Result<Arc<Worker<Pool>>, ApiError> {
    match s.registry.lookup(&id.to_ascii_lowercase()) {
        Lookup::Listed(w) => Ok(w),
        Lookup::Unlisted(reason) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "worker_unlisted",
            format!(
                "the worker was unlisted ({}); it is listed again when it re-registers",
                reason.as_str()
            ),
        )
        .retry_after(s.heartbeat_secs)),
        Lookup::Unknown => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_worker",
            "no worker with this id is listed",
        )),
    }
}

async fn attestation(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
    q: Result<Query<NonceQuery>, QueryRejection>,
) -> Response {
    let r = fresh_evidence(&s, &id, q).await;
    answer(&s, "attestation", r)
}

async fn fresh_evidence(
    s: &AppState,
    id: &str,
    q: Result<Query<NonceQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let bad_nonce = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_nonce",
            format!("nonce must be 1 to {} bytes of hex", wire::MAX_NONCE),
        )
    };
    let Ok(Query(NonceQuery { nonce: Some(nonce) })) = q else {
        return Err(bad_nonce());
    };
    match hex::decode(&nonce) {
        Ok(n) if !n.is_empty() && n.len() <= wire::MAX_NONCE => {}
        _ => return Err(bad_nonce()),
    }
    let worker = listed(s, id)?;
    let _permit = s.attestations.try_acquire().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy_attestations",
            format!("{ATTESTATIONS_AT_ONCE} evidence requests are in flight; retry shortly"),
        )
        .retry_after(1)
    })?;
    let path = format!("{}?nonce={nonce}", wire::PATH_ATTESTATION);
    let (status, body) = worker
        .conn
        .fetch(&s.connector, &path, ATTESTATION_TIMEOUT, MAX_ATTESTATION)
        .await
        .map_err(|e| {
            s.metrics.error(e.class());
            let code = match &e {
                FetchError::Pool(_) => "worker_unreachable",
                FetchError::Timeout(_) => "worker_timeout",
                FetchError::TooLarge(_) => "worker_answer_too_large",
                FetchError::Failed(_) => "worker_failed",
            };
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                code,
                format!("fresh evidence from the worker: {e}"),
            )
        })?;
    Ok(json(status, body))
}

async fn health(State(s): State<Arc<AppState>>) -> Response {
    let body = serde_json::json!({"status": "ok", "workers": s.registry.len()});
    answer(
        &s,
        "health",
        Ok(json(StatusCode::OK, body.to_string().into_bytes())),
    )
}

async fn metrics(State(s): State<Arc<AppState>>) -> Response {
    let mut r = s.metrics.render().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    answer(&s, "metrics", Ok(r))
}

async fn not_found(State(s): State<Arc<AppState>>) -> Response {
    answer(
        &s,
        "other",
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such endpoint",
        )),
    )
}
