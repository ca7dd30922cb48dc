//! A stub worker in the benchmark's process: it registers with the router as a real enclave
//! does (simulated evidence from the run's development chain, the RA-TLS certificate, a
//! receipt key in its claims, fresh evidence over the router's challenge, a signed offer)
//! and answers `POST /v1/sealed` at once with `K` frames of `B` bytes and a signed receipt.
//!
//! It opens nothing: the frames are opaque bytes in the sealed stream's framing (the router
//! does not look inside them), and the receipt ends the stream as the enclave ends it — a
//! final frame flagged as the sealed receipt, then the receipt's clear copy, which the
//! router verifies and counts. So the router does all of its real per-request work.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::{BufMut, Bytes, BytesMut};
use hyper::Request;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use sha2::{Digest, Sha256, Sha384};
use silk_protocol::attestation::snp::simulated::SimulatedPlatform;
use silk_protocol::bundle::Bytes as B64;
use silk_protocol::network::{self, Challenge, Registered, Registration};
use silk_protocol::ratls::{self, TlsIdentity};
use silk_protocol::receipt::{Offer, Receipt, SignedOffer, SigningKeyPair};
use silk_protocol::seal::{EnclaveKeys, CHUNK_HEADER, FLAG_CLEAR_RECEIPT};
use silk_protocol::{wire, Claims, EvidenceBundle, PlatformEvidence};
use tokio::net::TcpListener;

use super::setup::http;

/// The model the stub offers (so that clients asking for the enclave's never pick it).
pub const STUB_MODEL: &str = "bench-stub";
/// What the stub's simulated measurement and image digest are made from.
const LABEL: &[u8] = b"silk bench router: stub worker";
/// The sealed stream's flags of its final chunk when that chunk is the receipt (`seal.rs`
/// keeps them private: `FLAG_LAST | FLAG_RECEIPT`).
const FLAG_LAST_RECEIPT: u8 = 0x01 | 0x02;
/// An AES-GCM tag: what sealing adds to the receipt in the final chunk.
const TAG: usize = 16;

/// The stub's simulated launch measurement (admitted by the router's policy beside the
/// enclave binary's).
pub fn measurement() -> [u8; 48] {
    Sha384::digest(LABEL).into()
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// How the stub answers: `chunks` frames of `chunk_bytes` (after each 5-byte header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Frames before the receipt.
    pub chunks: usize,
    /// Bytes in each frame after its header (what a sealed chunk's ciphertext would be).
    pub chunk_bytes: usize,
}

impl Shape {
    /// Bytes of one answer carrying a signed receipt of `receipt_len` bytes.
    pub fn answer_len(&self, receipt_len: usize) -> usize {
        self.chunks * (CHUNK_HEADER + self.chunk_bytes)
            + (CHUNK_HEADER + receipt_len + TAG)
            + (CHUNK_HEADER + receipt_len)
    }
}

/// One opaque data frame of `chunk_bytes`, shared by every answer.
pub fn data_frame(chunk_bytes: usize) -> Bytes {
    let mut f = BytesMut::with_capacity(CHUNK_HEADER + chunk_bytes);
    f.put_u8(0);
    f.put_u32(chunk_bytes as u32);
    f.put_bytes(0x5a, chunk_bytes);
    f.freeze()
}

/// The end of an answer: the final frame (flagged as the sealed receipt; opaque here) and
/// the receipt's clear copy.
pub fn receipt_tail(signed_receipt: &[u8]) -> Bytes {
    let n = signed_receipt.len();
    let mut t = BytesMut::with_capacity(2 * CHUNK_HEADER + 2 * n + TAG);
    t.put_u8(FLAG_LAST_RECEIPT);
    t.put_u32((n + TAG) as u32);
    t.put_bytes(0xa5, n + TAG);
    t.put_u8(FLAG_CLEAR_RECEIPT);
    t.put_u32(n as u32);
    t.put_slice(signed_receipt);
    t.freeze()
}

/// The frames of one answer, in order, as the stub sends them (one HTTP chunk each).
pub fn answer_frames(shape: Shape, frame: &Bytes, signed_receipt: &[u8]) -> Vec<Bytes> {
    let mut out = vec![frame.clone(); shape.chunks];
    out.push(receipt_tail(signed_receipt));
    out
}

/// The stub's keys, claims and evidence.
pub struct Identity {
    platform: Arc<SimulatedPlatform>,
    receipt_key: SigningKeyPair,
    tls: TlsIdentity,
    base_claims: Claims,
    base: EvidenceBundle,
    id: [u8; 32],
    offer: SignedOffer,
}

impl Identity {
    /// New keys and evidence over the base claims from `platform`, and a signed offer.
    pub fn new(platform: Arc<SimulatedPlatform>) -> Result<Self, String> {
        let receipt_key = SigningKeyPair::generate();
        let tls = TlsIdentity::generate().map_err(|e| e.to_string())?;
        let hpke_public_key =
            EnclaveKeys::generate(&mut silk_protocol::seal::os_rng()).public_key();
        let image_digest: [u8; 32] = Sha256::digest(LABEL).into();
        let base_claims = Claims {
            hpke_public_key,
            tls_spki_sha256: tls.spki_sha256(),
            image_digest,
            model: format!("sha256:{}", hex::encode(image_digest)),
            gpu_nonce: Vec::new(),
            challenge: Vec::new(),
            created_at: unix_ms() / 1000,
            software_version: format!("silk-bench-stub {}", env!("CARGO_PKG_VERSION")),
            receipt_public_key: receipt_key.public_key(),
            payout_address: String::new(),
            evidence_provider: "simulated".into(),
            gpu_policy_sha256: Vec::new(),
        };
        let id = base_claims.digest().map_err(|e| e.to_string())?;
        let mut me = Self {
            platform,
            receipt_key,
            tls,
            base: EvidenceBundle {
                version: 1,
                platform: PlatformEvidence::SevSnp {
                    report: B64(Vec::new()),
                    vek: B64(Vec::new()),
                    ask: None,
                    ark: None,
                },
                claims: B64(Vec::new()),
                gpus: Vec::new(),
            },
            base_claims,
            id,
            offer: SignedOffer {
                body: B64(Vec::new()),
                signature: B64(Vec::new()),
            },
        };
        me.base = me.attest(&me.base_claims)?;
        me.offer = Offer {
            worker_id: id,
            model: STUB_MODEL.into(),
            price_prompt: 0,
            price_completion: 0,
            payout_address: String::new(),
            expires_at: unix_ms() / 1000 + 24 * 3600,
        }
        .sign(&me.receipt_key)
        .map_err(|e| e.to_string())?;
        Ok(me)
    }

    fn attest(&self, claims: &Claims) -> Result<EvidenceBundle, String> {
        let report_data = claims.report_data().map_err(|e| e.to_string())?;
        let chain = self.platform.chain();
        Ok(EvidenceBundle {
            version: 1,
            platform: PlatformEvidence::SevSnp {
                report: B64(self.platform.report(&measurement(), &report_data)),
                vek: B64(chain.vcek.clone()),
                ask: Some(B64(chain.ask.clone())),
                ark: Some(B64(chain.ark.clone())),
            },
            claims: B64(claims.encode().map_err(|e| e.to_string())?),
            gpus: Vec::new(),
        })
    }

    /// The worker id (hex SHA-256 of the base claims).
    pub fn id(&self) -> String {
        hex::encode(self.id)
    }

    /// The receipt key's public half (as the claims carry it).
    pub fn receipt_public_key(&self) -> [u8; 32] {
        self.receipt_key.public_key()
    }

    /// Evidence over the base claims.
    pub fn bundle(&self) -> &EvidenceBundle {
        &self.base
    }

    /// A registration answering `challenge` (hex) for the listener at `address`.
    pub fn registration(&self, challenge: &str, address: &str) -> Result<Registration, String> {
        let nonce = hex::decode(challenge).map_err(|e| format!("challenge: {e}"))?;
        let fresh = Claims {
            challenge: nonce,
            created_at: unix_ms() / 1000,
            ..self.base_claims.clone()
        };
        Ok(Registration {
            challenge: challenge.to_owned(),
            fresh: self.attest(&fresh)?,
            base: self.base.clone(),
            model: STUB_MODEL.into(),
            offer: self.offer.clone(),
            address: address.to_owned(),
        })
    }

    /// The signed receipt of one request: `sealed` is the request body as received.
    pub fn receipt(&self, sealed: &[u8], completion_tokens: u32, counter: u64) -> Vec<u8> {
        let now = unix_ms();
        Receipt {
            worker_id: self.id,
            request_digest: Sha256::digest(sealed).into(),
            model: STUB_MODEL.into(),
            prompt_tokens: 0,
            completion_tokens,
            offer_digest: self.offer.digest(),
            started_at_ms: now,
            ended_at_ms: now,
            counter,
        }
        .sign(&self.receipt_key)
        // A fixed-size body under MAX_SIGNED: encoding cannot fail.
        .unwrap_or_default()
    }

    fn certificate(
        &self,
    ) -> Result<
        (
            rustls::pki_types::CertificateDer<'static>,
            rustls::pki_types::PrivateKeyDer<'static>,
        ),
        String,
    > {
        self.tls.certificate(&self.base).map_err(|e| e.to_string())
    }
}

struct StubState {
    identity: Identity,
    shape: Shape,
    frame: Bytes,
    counter: AtomicU64,
    /// RA-TLS connections accepted (handshake done).
    connections: AtomicU64,
}

/// A running stub worker; its tasks stop when it is dropped.
pub struct StubWorker {
    /// Its id.
    pub id: String,
    /// Its RA-TLS listener.
    pub addr: SocketAddr,
    state: Arc<StubState>,
    tasks: silk_net::tasks::Tasks,
}

impl StubWorker {
    /// Answers served so far.
    pub fn served(&self) -> u64 {
        self.state.counter.load(Ordering::Relaxed)
    }

    /// RA-TLS connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::Relaxed)
    }

    /// Starts the RA-TLS listener on 127.0.0.1.
    pub async fn start(identity: Identity, shape: Shape) -> Result<Self, String> {
        let (cert, key) = identity.certificate()?;
        let tls = ratls::server_config(cert, key).map_err(|e| e.to_string())?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("stub listener: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("stub listener: {e}"))?;
        let state = Arc::new(StubState {
            identity,
            frame: data_frame(shape.chunk_bytes),
            shape,
            counter: AtomicU64::new(0),
            connections: AtomicU64::new(0),
        });
        let app = axum::Router::new()
            .route(wire::PATH_HEALTH, get(health))
            .route(wire::PATH_SEALED, post(sealed))
            .with_state(state.clone());
        let counted = state.clone();
        let serve = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let (acceptor, app, counted) = (acceptor.clone(), app.clone(), counted.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    counted.connections.fetch_add(1, Ordering::Relaxed);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                        .await;
                });
            }
        });
        Ok(Self {
            id: state.identity.id(),
            addr,
            state,
            tasks: {
                let mut tasks = silk_net::tasks::Tasks::default();
                tasks.push(serve);
                tasks
            },
        })
    }

    /// Registers once with the router at `router` (its answer is the error when it
    /// refuses), then keeps re-registering twice per heartbeat as an enclave does.
    pub async fn register(&mut self, router: SocketAddr) -> Result<Registered, String> {
        let registered = register_once(&self.state.identity, router, self.addr).await?;
        let every = Duration::from_secs_f64(registered.heartbeat_secs.max(1) as f64 * 0.5);
        let (state, addr) = (self.state.clone(), self.addr);
        self.tasks.push(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Err(e) = register_once(&state.identity, router, addr).await {
                    tracing::warn!("stub worker: re-registration failed: {e}");
                }
            }
        }));
        Ok(registered)
    }
}

async fn register_once(
    identity: &Identity,
    router: SocketAddr,
    addr: SocketAddr,
) -> Result<Registered, String> {
    let (status, body) = http(router, Request::get(network::PATH_CHALLENGE), Bytes::new()).await?;
    if status != StatusCode::OK {
        return Err(format!(
            "the router refused a challenge: HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    let challenge: Challenge =
        serde_json::from_slice(&body).map_err(|e| format!("challenge: {e}"))?;
    let reg = identity.registration(&challenge.challenge, &addr.to_string())?;
    let json = serde_json::to_vec(&reg).map_err(|e| e.to_string())?;
    let req = Request::post(network::PATH_WORKERS).header(header::CONTENT_TYPE, "application/json");
    let (status, body) = http(router, req, Bytes::from(json)).await?;
    if status != StatusCode::OK {
        return Err(format!(
            "the router refused the stub's registration: HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    serde_json::from_slice(&body).map_err(|e| format!("registration answer: {e}"))
}

async fn health() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ok","waiting":0}"#,
    )
        .into_response()
}

async fn sealed(State(s): State<Arc<StubState>>, body: Bytes) -> Response {
    let counter = s.counter.fetch_add(1, Ordering::Relaxed) + 1;
    let receipt = s
        .identity
        .receipt(&body, s.shape.chunks.min(u32::MAX as usize) as u32, counter);
    let frames = answer_frames(s.shape, &s.frame, &receipt);
    let stream = tokio_stream::iter(frames.into_iter().map(Ok::<_, Infallible>));
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(wire::SEALED_STREAM_TYPE),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use silk_protocol::network::FrameScanner;
    use silk_protocol::Expectations;

    fn identity() -> Identity {
        Identity::new(Arc::new(SimulatedPlatform::generate().unwrap())).unwrap()
    }

    #[test]
    fn answers_are_framed_as_sealed_streams_and_end_with_a_receipt_that_verifies() {
        let id = identity();
        let shape = Shape {
            chunks: 3,
            chunk_bytes: 40,
        };
        let receipt = id.receipt(b"the sealed request", 3, 7);
        let frames = answer_frames(shape, &data_frame(40), &receipt);
        assert_eq!(frames.len(), 4);
        let all: Vec<u8> = frames.concat();
        assert_eq!(all.len(), shape.answer_len(receipt.len()));
        // Data frames: no flags, the length after the header.
        for f in &frames[..3] {
            assert_eq!(f[..CHUNK_HEADER], [0, 0, 0, 0, 40]);
            assert_eq!(f.len(), CHUNK_HEADER + 40);
        }
        // The final chunk is flagged last + receipt, as the sealer flags it.
        let tail = &frames[3];
        assert_eq!(tail[0], FLAG_LAST_RECEIPT);
        let sealed_len = u32::from_be_bytes(tail[1..5].try_into().unwrap()) as usize;
        assert_eq!(sealed_len, receipt.len() + TAG);
        assert_eq!(tail[CHUNK_HEADER + sealed_len], FLAG_CLEAR_RECEIPT);

        // What the router does with it: scan the framing as it passes, in any pieces.
        let mut scanner = FrameScanner::default();
        for piece in all[..all.len() - 1].chunks(7) {
            scanner.push(piece);
        }
        assert!(scanner.clear_receipt().is_none(), "not before it is whole");
        scanner.push(&all[all.len() - 1..]);
        let clear = scanner.clear_receipt().expect("the clear receipt");
        assert_eq!(clear, &receipt[..]);
        let r = Receipt::verify(clear, &id.receipt_public_key()).unwrap();
        assert_eq!(hex::encode(r.worker_id), id.id());
        assert_eq!(
            r.request_digest,
            <[u8; 32]>::from(Sha256::digest(b"the sealed request"))
        );
        assert_eq!((r.completion_tokens, r.counter), (3, 7));
        assert_eq!(r.model, STUB_MODEL);
    }

    #[test]
    fn registrations_carry_evidence_and_an_offer_an_admission_policy_accepts() {
        let platform = Arc::new(SimulatedPlatform::generate().unwrap());
        let root = platform.chain().root_digest();
        let id = Identity::new(platform).unwrap();
        let policy = crate::demo::demo_policy(&root, &measurement()).unwrap();
        let challenge = [7u8; 32];
        let reg = id
            .registration(&hex::encode(challenge), "127.0.0.1:8443")
            .unwrap();
        let now = time::OffsetDateTime::now_utc();
        let fresh_expect = Expectations {
            challenge: Some(challenge.to_vec()),
            max_age_secs: Some(120),
            ..Expectations::default()
        };
        let (fresh, verdict) = reg.fresh.verify(&policy, &fresh_expect, now).unwrap();
        assert!(verdict.accepted());
        let (base, verdict) = reg
            .base
            .verify(&policy, &Expectations::default(), now)
            .unwrap();
        assert!(verdict.accepted());
        assert_eq!(fresh.receipt_public_key, base.receipt_public_key);
        assert_eq!(fresh.tls_spki_sha256, base.tls_spki_sha256);
        let worker = base.digest().unwrap();
        assert_eq!(hex::encode(worker), id.id());
        let offer = reg
            .offer
            .verify(&base, &worker, now.unix_timestamp() as u64)
            .unwrap();
        assert_eq!(
            (offer.model.as_str(), reg.model.as_str()),
            (STUB_MODEL, STUB_MODEL)
        );
        // Another development root is refused.
        let other = SimulatedPlatform::generate().unwrap().chain().root_digest();
        let strict = crate::demo::demo_policy(&other, &measurement()).unwrap();
        let (_, verdict) = reg
            .base
            .verify(&strict, &Expectations::default(), now)
            .unwrap();
        assert!(!verdict.accepted());
    }
}
