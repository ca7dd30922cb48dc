//! The enclave as a network worker: its signed offer, its usage receipts, and keeping
//! itself listed with routers.
//!
//! The offer is re-signed (never re-attested) when prices change or it nears expiry; the
//! last few stay acceptable so a client that listed a worker a moment ago is not refused.
//! Receipts are numbered per boot. Registration proves freshness to a router by evidence
//! over the router's own challenge, and repeats every heartbeat: a router unlists a worker
//! that stops, so a dead worker disappears without anyone telling the router.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use silk_protocol::network::{self, Challenge, Registered, Registration};
use silk_protocol::receipt::{Offer, ReceiptError, SignedOffer};

use crate::identity::Identity;

/// What the worker charges and where it is paid, and the routers it registers with.
#[derive(Clone, Debug, Default)]
pub struct WorkerConfig {
    /// The owner's payout address (bound in the claims).
    pub payout_address: String,
    /// Nanotons per million prompt tokens.
    pub price_prompt: u64,
    /// Nanotons per million completion tokens.
    pub price_completion: u64,
    /// How long a signed offer holds (default 24 h).
    pub offer_ttl: Option<Duration>,
    /// Routers to register with (`http://host:port`).
    pub register: Vec<String>,
    /// `host:port` at which routers reach this worker's RA-TLS listener (default: the
    /// bound address, with 127.0.0.1 for an unspecified one).
    pub advertise: Option<String>,
}

/// Offers recently signed that a client may still name.
const KEPT_OFFERS: usize = 4;

/// The worker's current signed offer and the few before it.
pub struct Offers {
    model: String,
    price_prompt: u64,
    price_completion: u64,
    payout: String,
    ttl: Duration,
    book: Mutex<Vec<(SignedOffer, [u8; 32], u64)>>,
}

pub(crate) fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(crate) fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Offers {
    /// Offers for `model` under `config`'s prices.
    pub fn new(model: &str, config: &WorkerConfig) -> Self {
        Self {
            model: model.to_owned(),
            price_prompt: config.price_prompt,
            price_completion: config.price_completion,
            payout: config.payout_address.clone(),
            ttl: config
                .offer_ttl
                .unwrap_or(Duration::from_secs(24 * 3600))
                .max(Duration::from_secs(60)),
            book: Mutex::new(Vec::new()),
        }
    }

    /// The offer in force, signed anew when there is none or it has used half its life.
    pub fn current(&self, identity: &Identity) -> Result<(SignedOffer, [u8; 32]), ReceiptError> {
        let now = unix_secs();
        let mut book = self.book.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((offer, digest, expires)) = book.last() {
            if now + self.ttl.as_secs() / 2 < *expires {
                return Ok((offer.clone(), *digest));
            }
        }
        let expires_at = now + self.ttl.as_secs();
        let signed = identity.sign_offer(&Offer {
            worker_id: identity.worker_id(),
            model: self.model.clone(),
            price_prompt: self.price_prompt,
            price_completion: self.price_completion,
            payout_address: self.payout.clone(),
            expires_at,
        })?;
        let digest = signed.digest();
        book.push((signed.clone(), digest, expires_at));
        if book.len() > KEPT_OFFERS {
            book.remove(0);
        }
        Ok((signed, digest))
    }

    /// The offer a request is served under: the one its `silk-offer` header names (which
    /// must be one of ours and unexpired), else the current one.
    pub fn accept(
        &self,
        identity: &Identity,
        named: Option<&str>,
    ) -> Result<[u8; 32], OfferRefusal> {
        let (_, current) = self.current(identity).map_err(|_| OfferRefusal::Unsigned)?;
        let Some(named) = named else {
            return Ok(current);
        };
        // A spread request names one offer per worker it may go to: ours is among them.
        let mut digests = Vec::new();
        for part in named.split(',') {
            let d = hex::decode(part.trim())
                .ok()
                .and_then(|v| <[u8; 32]>::try_from(v).ok())
                .ok_or(OfferRefusal::Malformed)?;
            digests.push(d);
        }
        let now = unix_secs();
        let book = self.book.lock().unwrap_or_else(|p| p.into_inner());
        book.iter()
            .rev()
            .find(|(_, d, expires)| digests.contains(d) && *expires > now)
            .map(|(_, d, _)| *d)
            .ok_or(OfferRefusal::Unknown)
    }
}

/// Why the offer a request names is not served.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OfferRefusal {
    /// The header is not 64 hex digits (or a comma-separated list of them).
    #[error("the silk-offer header must be offer digests (SHA-256, hex), separated by commas")]
    Malformed,
    /// Not an offer of this worker, or expired: the client should list again.
    #[error("this worker has no unexpired offer with that digest; list its offer again")]
    Unknown,
    /// The offer could not be signed.
    #[error("the worker's offer could not be signed")]
    Unsigned,
}

/// This boot's receipt numbers: from 1, never repeated.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// The next number.
    pub fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::AcqRel) + 1
    }
}

/// Deadline of each call to a router.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest router answer read.
const MAX_ANSWER: usize = 64 << 10;

/// Registers with `router` and re-registers every heartbeat it asks for, for ever. Each
/// failure is logged with its reason and retried after a growing pause (1 s up to the
/// heartbeat), so a router restart is healed by the next registration.
pub async fn keep_registered(state: Arc<crate::server::AppState>, router: String, address: String) {
    let mut pause = Duration::from_secs(1);
    loop {
        match register_once(&state, &router, &address).await {
            Ok(r) => {
                tracing::debug!(router, id = %&r.id[..16.min(r.id.len())], "registered");
                pause = Duration::from_secs(1);
                // Twice per heartbeat: a router unlists after two missed heartbeats, so one
                // slow or lost registration (a busy machine, a router restart) is not fatal.
                let every = Duration::from_secs_f64(r.heartbeat_secs.max(1) as f64 * 0.5);
                tokio::time::sleep(every).await;
            }
            Err(e) => {
                tracing::warn!(router, "registration failed: {e}; retrying in {pause:?}");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(30));
            }
        }
    }
}

async fn register_once(
    state: &Arc<crate::server::AppState>,
    router: &str,
    address: &str,
) -> Result<Registered, String> {
    let (status, body) = call(router, Request::get(network::PATH_CHALLENGE), Bytes::new()).await?;
    if status != StatusCode::OK {
        return Err(format!("challenge: HTTP {status}: {}", text(&body)));
    }
    let challenge: Challenge =
        serde_json::from_slice(&body).map_err(|e| format!("challenge: {e}"))?;
    let nonce = hex::decode(&challenge.challenge).map_err(|e| format!("challenge: {e}"))?;
    let s = state.clone();
    let fresh = tokio::task::spawn_blocking(move || s.identity.fresh_bundle(&nonce))
        .await
        .map_err(|e| format!("evidence task: {e}"))?
        .map_err(|e| format!("fresh evidence: {e}"))?;
    let (offer, _) = state
        .offers
        .current(&state.identity)
        .map_err(|e| e.to_string())?;
    let registration = Registration {
        challenge: challenge.challenge,
        fresh,
        base: state.identity.bundle(),
        model: state.model_name.clone(),
        offer,
        address: address.to_owned(),
    };
    let body = serde_json::to_vec(&registration).map_err(|e| e.to_string())?;
    let req = Request::post(network::PATH_WORKERS)
        .header(hyper::header::CONTENT_TYPE, "application/json");
    let (status, answer) = call(router, req, Bytes::from(body)).await?;
    if status != StatusCode::OK {
        return Err(format!("HTTP {status}: {}", text(&answer)));
    }
    serde_json::from_slice(&answer).map_err(|e| format!("registration answer: {e}"))
}

fn text(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned()
}

/// One HTTP/1.1 exchange with a router over a fresh connection, within [`CALL_TIMEOUT`]
/// and [`MAX_ANSWER`].
async fn call(
    router: &str,
    req: hyper::http::request::Builder,
    body: Bytes,
) -> Result<(StatusCode, Vec<u8>), String> {
    let uri: Uri = router.parse().map_err(|e| format!("router URL: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!(
            "router URL `{router}` must start with http:// (content is sealed end to end)"
        ));
    }
    let host = uri.host().ok_or("router URL has no host")?.to_owned();
    let port = uri.port_u16().unwrap_or(80);
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
            .await
            .map_err(|e| format!("connect to {host}:{port}: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| format!("HTTP handshake: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = req
            .header(hyper::header::HOST, format!("{host}:{port}"))
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(req)
            .await
            .map_err(|e| format!("HTTP request: {e}"))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        Ok((status, body.to_vec()))
    };
    tokio::time::timeout(CALL_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("no answer within {CALL_TIMEOUT:?}"))?
}
