//! Talking to the silk network: list workers through untrusted routers, verify each one
//! yourself, choose by load and price, seal to the chosen worker and fail over.
//!
//! Nothing a router says is believed: every listed bundle is verified under the client's
//! policy (cached by the bundle's digest), a listed id must be the digest of the claims
//! it lists, the offer must be signed by the receipt key in those claims, and the chosen
//! worker proves freshness over the client's own nonce before it gets a request. A
//! request is sealed to one worker's key; when that worker fails before the first sealed
//! byte of its answer, the body is sealed anew to another verified worker (never the same
//! ciphertext sent elsewhere). After the first byte a failure is an error naming the
//! worker: retrying then could duplicate output.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use rand::seq::SliceRandom;
use sha2::{Digest, Sha256};
use silk_protocol::attestation::{checks, Policy, Verdict};
use silk_protocol::network::{self, Load, WorkerList};
use silk_protocol::receipt::SignedOffer;
use silk_protocol::wire;
use silk_protocol::{seal_request, Claims, EvidenceBundle, Expectations};

use crate::receipts::{ReceiptExpect, SealedTo};
use crate::session::{api_error, describe_hyper, describe_io, ClientError, Options, SealedAnswer};
use silk_protocol::attestation::checks::offer;

/// Largest worker list or evidence answer read from a router.
const MAX_LISTING: usize = 16 << 20;
/// How long a listing is reused before asking the routers again.
const LIST_TTL: Duration = Duration::from_secs(1);

/// How to use the network.
#[derive(Clone, Debug)]
pub struct NetworkOptions {
    /// Routers (`http://host:port`), asked in turn.
    pub routers: Vec<String>,
    /// The model to ask for (`None`: any).
    pub model: Option<String>,
    /// Refuse offers whose prompt or completion price (nanotons per million tokens) is
    /// above this.
    pub max_price: Option<u64>,
    /// Seal each request so that any one of this many verified workers (listed by the
    /// same router) can open it, and let the router pick by load; 1: seal to one worker.
    pub spread: usize,
    /// Deadlines and evidence options, as for a direct session.
    pub session: Options,
}

/// A worker whose listed evidence verified under the client's policy.
#[derive(Debug)]
pub struct VerifiedWorker {
    /// SHA-256 of its base claims.
    pub id: [u8; 32],
    /// Its base claims.
    pub claims: Claims,
    /// The verdict over its listed evidence.
    pub verdict: Verdict,
}

/// A worker the client may send to, through one router.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// Index of the router it was listed by.
    pub router: usize,
    /// The verified worker.
    pub worker: Arc<VerifiedWorker>,
    /// Its verified offer and that offer's digest.
    pub offer: (SignedOffer, [u8; 32]),
    /// Load, as the router reports it (used only to choose).
    pub load: Load,
}

impl Candidate {
    fn score(&self) -> f64 {
        (self.load.in_flight + self.load.queue) as f64 / self.load.limit.max(1) as f64
    }

    /// The first 16 hex digits of the worker id, as errors and logs name it.
    pub fn label(&self) -> String {
        hex::encode(&self.worker.id[..8])
    }
}

/// Why a listed worker was not used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dropped {
    /// The id the router listed (hex, maybe a lie).
    pub listed_id: String,
    /// The check that failed, e.g. `worker.id`, `offer.signature`, `offer.price`.
    pub check: String,
    /// What it found.
    pub detail: String,
}

/// A client of the silk network.
pub struct Network {
    routers: Vec<(String, String, u16)>,
    policy: Arc<Policy>,
    options: NetworkOptions,
    verified: Mutex<HashMap<[u8; 32], Arc<VerifiedWorker>>>,
    fresh: Mutex<HashMap<[u8; 32], Instant>>,
    listing: Mutex<Option<(Instant, Vec<Candidate>)>>,
    refresh: tokio::sync::Mutex<()>,
    dropped: Mutex<Vec<Dropped>>,
}

impl Network {
    /// A client of the routers in `options`, verifying workers under `policy`.
    pub fn new(policy: Policy, options: NetworkOptions) -> Result<Self, ClientError> {
        if options.routers.is_empty() {
            return Err(ClientError::Config("no router given".into()));
        }
        let mut routers = Vec::new();
        for r in &options.routers {
            let uri: Uri = r
                .parse()
                .map_err(|e| ClientError::Config(format!("router `{r}`: {e}")))?;
            if uri.scheme_str() != Some("http") {
                return Err(ClientError::Config(format!(
                    "router `{r}` must start with http:// (requests are sealed end to end)"
                )));
            }
            let host = uri
                .host()
                .ok_or_else(|| ClientError::Config(format!("router `{r}` has no host")))?
                .trim_matches(['[', ']'])
                .to_owned();
            routers.push((r.clone(), host, uri.port_u16().unwrap_or(80)));
        }
        Ok(Self {
            routers,
            policy: Arc::new(policy),
            options,
            verified: Mutex::new(HashMap::new()),
            fresh: Mutex::new(HashMap::new()),
            listing: Mutex::new(None),
            refresh: tokio::sync::Mutex::new(()),
            dropped: Mutex::new(Vec::new()),
        })
    }

    /// Listed workers that were refused, and why (most recent listing).
    pub fn dropped(&self) -> Vec<Dropped> {
        self.dropped.lock().map(|d| d.clone()).unwrap_or_default()
    }

    /// Lists workers through every router and keeps those that verify, least loaded
    /// first (ties in random order, so that clients spread over equal workers).
    pub async fn candidates(&self) -> Result<Vec<Candidate>, ClientError> {
        let cached = || {
            let l = self.listing.lock().ok()?;
            let (at, c) = l.as_ref()?;
            (at.elapsed() < LIST_TTL).then(|| c.clone())
        };
        if let Some(c) = cached() {
            return Ok(c);
        }
        // One refresh at a time: concurrent requests wait for it rather than each asking
        // every router for the whole list.
        let _refreshing = self.refresh.lock().await;
        if let Some(c) = cached() {
            return Ok(c);
        }
        let mut out = Vec::new();
        let mut dropped = Vec::new();
        let mut errors = Vec::new();
        for i in 0..self.routers.len() {
            match self.list(i, &mut dropped).await {
                Ok(mut c) => out.append(&mut c),
                Err(e) => errors.push(format!("{}: {e}", self.routers[i].0)),
            }
        }
        for d in &dropped {
            tracing::warn!(listed = %d.listed_id, check = %d.check, "listed worker refused: {}", d.detail);
        }
        if let Ok(mut d) = self.dropped.lock() {
            *d = dropped;
        }
        if out.is_empty() && !errors.is_empty() {
            return Err(ClientError::Transport(format!(
                "no router answered: {}",
                errors.join("; ")
            )));
        }
        out.shuffle(&mut rand::thread_rng());
        out.sort_by(|a, b| a.score().total_cmp(&b.score()));
        if let Ok(mut l) = self.listing.lock() {
            *l = Some((Instant::now(), out.clone()));
        }
        Ok(out)
    }

    async fn list(
        &self,
        router: usize,
        dropped: &mut Vec<Dropped>,
    ) -> Result<Vec<Candidate>, ClientError> {
        let mut path = network::PATH_WORKERS.to_owned();
        if let Some(m) = &self.options.model {
            path.push('?');
            path.push_str(
                &form_urlencoded::Serializer::new(String::new())
                    .append_pair("model", m)
                    .finish(),
            );
        }
        let (status, body) = self.get(router, &path).await?;
        if status != StatusCode::OK {
            return Err(api_error(status, &body));
        }
        let list: WorkerList = serde_json::from_slice(&body)
            .map_err(|e| ClientError::Transport(format!("worker list: {e}")))?;
        let now = unix_now();
        let mut out = Vec::new();
        for entry in list.workers {
            let refuse = |check: &str, detail: String| Dropped {
                listed_id: entry.id.clone(),
                check: check.to_owned(),
                detail,
            };
            let worker = match self.verify_listed(&entry.bundle) {
                Ok(w) => w,
                Err(e) => {
                    dropped.push(refuse("worker.evidence", e.to_string()));
                    continue;
                }
            };
            if entry.id != hex::encode(worker.id) {
                dropped.push(refuse(
                    "worker.id",
                    format!(
                        "listed as {} but its evidence is worker {}",
                        entry.id,
                        hex::encode(worker.id)
                    ),
                ));
                continue;
            }
            let offer = match entry.offer.verify(&worker.claims, &worker.id, now) {
                Ok(o) => o,
                Err(e) => {
                    dropped.push(refuse(e.check(), e.to_string()));
                    continue;
                }
            };
            if let Some(m) = &self.options.model {
                if &offer.model != m {
                    dropped.push(refuse(
                        offer::MODEL.name,
                        format!("offers {:?}, not {m:?}", offer.model),
                    ));
                    continue;
                }
            }
            if let Some(max) = self.options.max_price {
                if offer.price_prompt > max || offer.price_completion > max {
                    dropped.push(refuse(
                        offer::PRICE.name,
                        format!(
                            "{} / {} nanotons per million prompt / completion tokens, above --max-price {max}",
                            offer.price_prompt, offer.price_completion
                        ),
                    ));
                    continue;
                }
            }
            let digest = entry.offer.digest();
            out.push(Candidate {
                router,
                worker,
                offer: (entry.offer, digest),
                load: entry.load,
            });
        }
        Ok(out)
    }

    /// Verifies listed base evidence (cached by the bundle's digest).
    fn verify_listed(&self, bundle: &EvidenceBundle) -> Result<Arc<VerifiedWorker>, ClientError> {
        let key: [u8; 32] = Sha256::digest(bundle.to_json()).into();
        if let Some(w) = self.verified.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(w);
        }
        let (claims, verdict) = bundle
            .verify(
                &self.policy,
                &Expectations {
                    gpu: self.options.session.gpu.clone(),
                    ..Default::default()
                },
                time::OffsetDateTime::now_utc(),
            )
            .map_err(|e| ClientError::Attestation {
                summary: format!("evidence bundle: {e}"),
                verdict: None,
            })?;
        if !verdict.accepted() {
            let names: Vec<_> = verdict.failures().map(|c| c.name.to_string()).collect();
            return Err(ClientError::Attestation {
                summary: format!("failed checks: {}", names.join(", ")),
                verdict: Some(Box::new(verdict)),
            });
        }
        let id = claims
            .digest()
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let w = Arc::new(VerifiedWorker {
            id,
            claims,
            verdict,
        });
        if let Ok(mut c) = self.verified.lock() {
            if c.len() > 4096 {
                c.clear();
            }
            c.insert(key, w.clone());
        }
        Ok(w)
    }

    /// Asks the worker, through the router, for evidence over a fresh nonce and checks that
    /// it is the listed enclave, unless that was done within the claims TTL.
    pub async fn ensure_fresh(&self, c: &Candidate) -> Result<(), ClientError> {
        let ttl = self.options.session.claims_ttl;
        let recent = self
            .fresh
            .lock()
            .ok()
            .and_then(|f| f.get(&c.worker.id).copied())
            .is_some_and(|at| at.elapsed() < ttl);
        if recent {
            return Ok(());
        }
        let mut nonce = [0u8; 32];
        rand::Rng::fill(&mut rand::thread_rng(), &mut nonce);
        let path = format!(
            "{}?nonce={}",
            network::attestation_path(&hex::encode(c.worker.id)),
            hex::encode(nonce)
        );
        let (status, body) = self.get(c.router, &path).await?;
        if status != StatusCode::OK {
            return Err(api_error(status, &body));
        }
        let (fresh, verdict) =
            crate::session::verify_fresh(&body, &nonce, &self.policy, &self.options.session)?;
        let mut base = fresh;
        base.challenge = Vec::new();
        base.created_at = c.worker.claims.created_at;
        if base != c.worker.claims {
            return Err(ClientError::Attestation {
                summary: format!(
                    "{}: the fresh evidence comes from another enclave than the listed worker",
                    checks::claims::SAME_ENCLAVE.name
                ),
                verdict: Some(Box::new(verdict)),
            });
        }
        if let Ok(mut f) = self.fresh.lock() {
            f.insert(c.worker.id, Instant::now());
        }
        Ok(())
    }

    /// Seals `body` to the least loaded verified worker and sends it through its router;
    /// fails over to the next one while nothing of the answer has arrived.
    ///
    /// When every worker is full (429) or unavailable (503), which routers say with
    /// `Retry-After`, it waits (1 s, doubling to 8 s) and tries again, within the
    /// first-byte deadline: a busy network delays an answer, it does not lose it.
    pub async fn send(&self, body: &[u8]) -> Result<SealedAnswer, ClientError> {
        let deadline = tokio::time::Instant::now() + self.options.session.first_byte_timeout;
        let mut pause = Duration::from_secs(1);
        loop {
            match self.send_once(body).await {
                Err(SendError::AllBusy(e)) if tokio::time::Instant::now() + pause < deadline => {
                    tracing::debug!("every worker is busy; retrying in {pause:?}: {e}");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(8));
                }
                Err(SendError::AllBusy(e) | SendError::Other(e)) => return Err(e),
                Ok(answer) => return Ok(answer),
            }
        }
    }

    async fn send_once(&self, body: &[u8]) -> Result<SealedAnswer, SendError> {
        let candidates = self.candidates().await.map_err(SendError::Other)?;
        if candidates.is_empty() {
            let dropped = self.dropped();
            let why = if dropped.is_empty() {
                String::new()
            } else {
                let d: Vec<_> = dropped
                    .iter()
                    .map(|d| format!("{}: {}", short(&d.listed_id), d.check))
                    .collect();
                format!("; refused: {}", d.join(", "))
            };
            return Err(SendError::Other(ClientError::Transport(format!(
                "no verified worker{} is listed{why}",
                self.options
                    .model
                    .as_ref()
                    .map_or(String::new(), |m| format!(" for model {m:?}"))
            ))));
        }
        let mut all_busy = true;
        let mut tried = HashSet::new();
        let mut failures = Vec::new();
        // The most telling failure is reported with its own kind and check: an altered
        // answer or refused evidence says more than "every worker failed".
        let mut worst: Option<ClientError> = None;
        for (i, c) in candidates.iter().enumerate() {
            if tried.contains(&c.worker.id) {
                continue;
            }
            // The set: this worker, and with --spread the next least loaded ones listed by
            // the same router (the router then picks among them by load).
            let set: Vec<Candidate> = std::iter::once(c.clone())
                .chain(
                    candidates[i + 1..]
                        .iter()
                        .filter(|o| o.router == c.router && !tried.contains(&o.worker.id))
                        .filter(|o| o.worker.id != c.worker.id)
                        .cloned(),
                )
                .take(
                    self.options
                        .spread
                        .clamp(1, silk_protocol::spread::MAX_RECIPIENTS),
                )
                .collect();
            for s in &set {
                tried.insert(s.worker.id);
            }
            match self.try_set(&set, body).await {
                Ok(answer) => return Ok(answer),
                Err(e) => {
                    tracing::warn!(worker = %c.label(), "worker failed before answering: {e}");
                    if let Ok(mut l) = self.listing.lock() {
                        *l = None;
                    }
                    let retry = match &e {
                        ClientError::Api { status, body } => {
                            matches!(status, 404 | 409 | 429 | 502 | 503 | 504)
                                || body.error.code == "bad_seal"
                        }
                        ClientError::Config(_) => false,
                        _ => true,
                    };
                    all_busy &= matches!(
                        &e,
                        ClientError::Api {
                            status: 429 | 503,
                            ..
                        }
                    );
                    failures.push(format!("worker {}: {e}", c.label()));
                    if !retry {
                        return Err(SendError::Other(e));
                    }
                    let rank = |e: &ClientError| match e {
                        ClientError::Integrity { .. } => 2,
                        ClientError::Attestation { .. } => 1,
                        _ => 0,
                    };
                    if worst.as_ref().is_none_or(|w| rank(&e) > rank(w)) {
                        worst = Some(e);
                    }
                }
            }
        }
        let all = failures.join("; ");
        let e = match worst {
            Some(ClientError::Integrity { check, .. }) => ClientError::Integrity {
                check,
                detail: format!("every verified worker failed before answering: {all}"),
            },
            Some(ClientError::Attestation { summary, verdict }) => ClientError::Attestation {
                summary: format!("{summary} (every verified worker failed: {all})"),
                verdict,
            },
            _ => ClientError::Transport(format!(
                "every verified worker failed before answering: {all}"
            )),
        };
        Err(if all_busy {
            SendError::AllBusy(e)
        } else {
            SendError::Other(e)
        })
    }

    /// Seals `body` to `set` (one worker, or the K of a spread request, all listed by the
    /// same router) and sends it; returns once the answer's first chunk is in.
    async fn try_set(&self, set: &[Candidate], body: &[u8]) -> Result<SealedAnswer, ClientError> {
        for c in set {
            self.ensure_fresh(c).await?;
        }
        let rng = &mut silk_protocol::seal::os_rng();
        let sealed = match set {
            [c] => seal_request(&c.worker.claims.hpke_public_key, &c.worker.id, body, rng),
            _ => {
                let recipients: Vec<_> = set
                    .iter()
                    .map(|c| silk_protocol::spread::Recipient {
                        hpke_public_key: c.worker.claims.hpke_public_key,
                        claims_digest: c.worker.id,
                    })
                    .collect();
                silk_protocol::spread::seal(&recipients, body, rng)
            }
        };
        let (wire_bytes, opener) = sealed.map_err(|e| ClientError::Attestation {
            summary: e.to_string(),
            verdict: None,
        })?;
        let expect = ReceiptExpect {
            workers: set
                .iter()
                .map(|c| SealedTo {
                    worker_id: c.worker.id,
                    receipt_key: c.worker.claims.receipt_public_key,
                    offer_digest: Some(c.offer.1),
                    offer: Some(c.offer.0.clone()),
                })
                .collect(),
            request_digest: Sha256::digest(&wire_bytes).into(),
        };
        let join =
            |f: &dyn Fn(&Candidate) -> String| set.iter().map(f).collect::<Vec<_>>().join(",");
        let req = Request::post(wire::PATH_SEALED)
            .header(hyper::header::CONTENT_TYPE, wire::SEALED_REQUEST_TYPE)
            .header(network::HEADER_WORKER, join(&|c| hex::encode(c.worker.id)))
            .header(network::HEADER_OFFER, join(&|c| hex::encode(c.offer.1)));
        let label = match set {
            [c] => c.label(),
            _ => format!("one of {}", join(&|c| c.label())),
        };
        let c = &set[0];
        let opts = &self.options.session;
        let sent = tokio::time::Instant::now();
        let response = self
            .request(
                c.router,
                req,
                Bytes::from(wire_bytes),
                opts.first_byte_timeout,
            )
            .await?;
        let status = response.status();
        let sealed = response
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .is_some_and(|v| v == wire::SEALED_STREAM_TYPE);
        if !sealed {
            let text = read_limited(response).await?;
            return Err(api_error(status, &text));
        }
        let mut answer = SealedAnswer {
            status,
            body: response.into_body(),
            opener,
            pending: Vec::new(),
            ended: false,
            idle: opts.idle_timeout,
            first: Some((sent + opts.first_byte_timeout, opts.first_byte_timeout)),
            expect,
            tally: Default::default(),
            receipt: None,
            worker: Some(label),
        };
        if matches!(status.as_u16(), 429 | 503) {
            // A sealed refusal (the worker's engine is full or stopping): nothing of an
            // answer was shown, so another worker may take the request.
            let text = answer.collect_error().await?;
            return Err(api_error(status, &text));
        }
        answer.prefetch().await?;
        Ok(answer)
    }

    async fn get(&self, router: usize, path: &str) -> Result<(StatusCode, Vec<u8>), ClientError> {
        let after = self.options.session.first_byte_timeout;
        let response = self
            .request(router, Request::get(path), Bytes::new(), after)
            .await?;
        let status = response.status();
        Ok((status, read_limited(response).await?))
    }

    /// One exchange with a router over a new connection, within the session's connect
    /// and first-byte deadlines.
    async fn request(
        &self,
        router: usize,
        req: hyper::http::request::Builder,
        body: Bytes,
        first_byte: Duration,
    ) -> Result<Response<Incoming>, ClientError> {
        let (url, host, port) = &self.routers[router];
        let after = self.options.session.connect_timeout;
        let tcp = tokio::time::timeout(
            after,
            tokio::net::TcpStream::connect((host.as_str(), *port)),
        )
        .await
        .map_err(|_| ClientError::Timeout {
            which: "connect",
            after,
        })?
        .map_err(|e| ClientError::Transport(format!("connect to {url}: {}", describe_io(&e))))?;
        let _ = tcp.set_nodelay(true);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| {
                ClientError::Transport(format!("HTTP handshake: {}", describe_hyper(&e)))
            })?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let req = req
            .header(hyper::header::HOST, authority)
            .body(Full::new(body))
            .map_err(|e| ClientError::Config(e.to_string()))?;
        tokio::time::timeout(first_byte, sender.send_request(req))
            .await
            .map_err(|_| ClientError::Timeout {
                which: "first answer byte",
                after: first_byte,
            })?
            .map_err(|e| ClientError::Transport(format!("{url}: {}", describe_hyper(&e))))
    }
}

/// How one pass over the candidates failed.
enum SendError {
    /// Every worker answered 429 or 503: worth waiting for.
    AllBusy(ClientError),
    /// Anything else.
    Other(ClientError),
}

async fn read_limited(response: Response<Incoming>) -> Result<Vec<u8>, ClientError> {
    let body = Limited::new(response.into_body(), MAX_LISTING)
        .collect()
        .await
        .map_err(|e| ClientError::Transport(format!("reading the router's answer: {e}")))?;
    Ok(body.to_bytes().to_vec())
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn short(id: &str) -> &str {
    id.get(..16).unwrap_or(id)
}
