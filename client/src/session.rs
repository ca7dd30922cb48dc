//! A verified session with one enclave: attest, then seal requests and open answers.
//!
//! [`Session::connect`] challenges the enclave with a fresh nonce and verifies its
//! evidence under the caller's policy before anything else is sent. Over `https://` every
//! connection is RA-TLS: the server's certificate must carry evidence that verifies and
//! claims that carry that certificate's key, and those claims must be the ones the session
//! verified — otherwise the session attests again (keys rotate when an enclave restarts).
//! Over `http://` (through a router that terminates TLS) the seal alone protects content.
//!
//! Errors say what the caller can do about them: [`ErrorKind`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use sha2::{Digest, Sha256};
use silk_protocol::attestation::{checks, Policy, Verdict};
use silk_protocol::ratls::{self, RaTlsVerifier};
use silk_protocol::wire::{self, ErrorBody};
use silk_protocol::{seal_request, Claims, EvidenceBundle, Expectations};
use tokio::net::TcpStream;

pub use crate::answer::SealedAnswer;

/// What the caller can do about an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Fix the call (bad endpoint, unreadable policy, oversized request).
    Configuration,
    /// Retry, perhaps elsewhere (network failure, a relay altering bytes).
    Transport,
    /// Never retry and never fall back: the enclave did not prove what the policy requires.
    Attestation,
    /// The enclave refused the request itself (bad parameters, busy).
    Api,
}

/// A client error, classified.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The call or the configuration is wrong.
    #[error("configuration: {0}")]
    Config(String),
    /// The network or the path failed.
    #[error("transport: {0}")]
    Transport(String),
    /// The enclave's evidence was refused; `summary` names the failed checks.
    #[error("attestation refused: {summary}")]
    Attestation {
        /// The failed checks, in words.
        summary: String,
        /// The full verdict, when evidence was evaluated.
        verdict: Option<Box<Verdict>>,
    },
    /// The sealed answer failed its integrity check (altered, reordered, replayed,
    /// truncated or spliced on the way); nothing of it may be used.
    #[error("sealed answer rejected by check `{check}`: {detail}")]
    Integrity {
        /// The check that failed.
        check: &'static str,
        /// What it found.
        detail: String,
    },
    /// A deadline passed: which one, and after how long.
    #[error("transport: {which} timeout after {:.1} s", after.as_secs_f64())]
    Timeout {
        /// The deadline's name (`connect`, `TLS handshake`, `first answer byte`, `idle
        /// between answer chunks`).
        which: &'static str,
        /// How long it was.
        after: Duration,
    },
    /// The enclave answered with an error.
    #[error("API error {status}: {} ({})", body.error.message, body.error.code)]
    Api {
        /// The HTTP status.
        status: u16,
        /// The OpenAI-style error.
        body: ErrorBody,
    },
}

impl ClientError {
    /// How to react to this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ClientError::Config(_) => ErrorKind::Configuration,
            ClientError::Transport(_)
            | ClientError::Integrity { .. }
            | ClientError::Timeout { .. } => ErrorKind::Transport,
            ClientError::Attestation { .. } => ErrorKind::Attestation,
            ClientError::Api { .. } => ErrorKind::Api,
        }
    }
}

/// Claims the session verified, and how.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The enclave's base claims (the ones sealed requests are bound to).
    pub claims: Claims,
    /// Their digest.
    pub claims_digest: [u8; 32],
    /// The verdict over the fresh (challenged) evidence.
    pub verdict: Verdict,
    /// SHA-256 of the fresh evidence bundle.
    pub evidence_digest: [u8; 32],
    /// When it was verified.
    pub at: Instant,
}

/// Options of a session.
#[derive(Clone, Debug)]
pub struct Options {
    /// Re-attest after this long.
    pub claims_ttl: Duration,
    /// Oldest acceptable fresh evidence.
    pub max_evidence_age: Duration,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// From connected to a finished TLS handshake (evidence checked).
    pub tls_handshake_timeout: Duration,
    /// From sending a request to the answer's first sealed chunk: covers writing the
    /// request, the enclave's queue and the prompt's prefill.
    pub first_byte_timeout: Duration,
    /// Longest wait between two chunks of an answer; longer than the engine's worst time
    /// per token under a full batch.
    pub idle_timeout: Duration,
    /// NVIDIA RIMs and revocation data for enclaves with GPUs.
    pub gpu: silk_protocol::gpu::GpuInputs,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            claims_ttl: Duration::from_secs(600),
            max_evidence_age: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(10),
            tls_handshake_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(60),
            gpu: Default::default(),
        }
    }
}

/// A verified session with one enclave endpoint.
pub struct Session {
    host: String,
    port: u16,
    tls: Option<tokio_rustls::TlsConnector>,
    verifier: Arc<RaTlsVerifier>,
    policy: Arc<Policy>,
    options: Options,
    state: Mutex<Option<Arc<Verified>>>,
}

/// One HTTP exchange's response, with what the TLS layer verified about the peer.
struct Exchange {
    response: Response<Incoming>,
    peer: Option<ratls::Accepted>,
}

impl Session {
    /// Connects to `endpoint` (`https://host:port` for RA-TLS, `http://host:port` behind
    /// a TLS-terminating router), challenges it and verifies its evidence under `policy`.
    pub async fn connect(endpoint: &str, policy: Policy) -> Result<Self, ClientError> {
        Self::connect_with(endpoint, policy, Options::default()).await
    }

    /// [`Session::connect`] with options.
    pub async fn connect_with(
        endpoint: &str,
        policy: Policy,
        options: Options,
    ) -> Result<Self, ClientError> {
        let uri: Uri = endpoint
            .parse()
            .map_err(|e| ClientError::Config(format!("endpoint `{endpoint}`: {e}")))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => {
                return Err(ClientError::Config(format!(
                    "endpoint `{endpoint}` must start with https:// or http://"
                )))
            }
        };
        let host = uri
            .host()
            .ok_or_else(|| ClientError::Config(format!("endpoint `{endpoint}` has no host")))?
            .trim_matches(|c| c == '[' || c == ']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let policy = Arc::new(policy);
        let verifier = Arc::new(RaTlsVerifier::new(policy.clone()));
        let tls = if https {
            let config = ratls::client_config(verifier.clone())
                .map_err(|e| ClientError::Config(e.to_string()))?;
            Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
        } else {
            None
        };
        let session = Self {
            host,
            port,
            tls,
            verifier,
            policy,
            options,
            state: Mutex::new(None),
        };
        session.attest().await?;
        Ok(session)
    }

    /// What the session verified most recently.
    pub fn verified(&self) -> Option<Arc<Verified>> {
        self.state.lock().ok()?.clone()
    }

    /// Challenges the enclave and verifies fresh evidence; replaces the session's claims.
    pub async fn attest(&self) -> Result<Arc<Verified>, ClientError> {
        let mut nonce = [0u8; 32];
        rand::Rng::fill(&mut rand::thread_rng(), &mut nonce);
        let path = format!("{}?nonce={}", wire::PATH_ATTESTATION, hex::encode(nonce));
        let ex = self.exchange(Request::get(path), Bytes::new()).await?;
        let status = ex.response.status();
        let body = read_all(ex.response).await?;
        if status != StatusCode::OK {
            return Err(api_error(status, &body));
        }
        let (fresh, verdict) = verify_fresh(&body, &nonce, &self.policy, &self.options)?;
        // The fresh claims stand for the base claims: same keys, same image and model.
        let mut base = fresh.clone();
        base.challenge = Vec::new();
        if let Some(peer) = &ex.peer {
            let p = &peer.claims;
            if (
                p.hpke_public_key,
                p.tls_spki_sha256,
                p.image_digest,
                &p.model,
            ) != (
                base.hpke_public_key,
                base.tls_spki_sha256,
                base.image_digest,
                &base.model,
            ) {
                return Err(ClientError::Attestation {
                    summary: format!(
                        "{}: the fresh evidence comes from another enclave than the TLS peer",
                        checks::claims::SAME_ENCLAVE.name
                    ),
                    verdict: Some(Box::new(verdict)),
                });
            }
            base = p.clone();
        } else {
            // Without TLS the base claims are not seen; they differ from the fresh ones only
            // in challenge and time, which the enclave's digest covers, so ask for them.
            base = self.base_claims_plain(&fresh).await?;
        }
        let verified = Arc::new(Verified {
            claims_digest: base
                .digest()
                .map_err(|e| ClientError::Transport(e.to_string()))?,
            claims: base,
            verdict,
            evidence_digest: Sha256::digest(&body).into(),
            at: Instant::now(),
        });
        if let Ok(mut s) = self.state.lock() {
            *s = Some(verified.clone());
        }
        Ok(verified)
    }

    /// Over plain HTTP: fetch the base bundle and check that it is the same enclave as
    /// the verified fresh claims. The base bundle's own evidence is verified too.
    async fn base_claims_plain(&self, fresh: &Claims) -> Result<Claims, ClientError> {
        let ex = self
            .exchange(Request::get(wire::PATH_ATTESTATION), Bytes::new())
            .await?;
        let status = ex.response.status();
        let body = read_all(ex.response).await?;
        if status != StatusCode::OK {
            return Err(api_error(status, &body));
        }
        let refused = |summary: String| ClientError::Attestation {
            summary,
            verdict: None,
        };
        let bundle =
            EvidenceBundle::from_json(&body).map_err(|e| refused(format!("base bundle: {e}")))?;
        let (base, verdict) = bundle
            .verify(
                &self.policy,
                &Expectations::default(),
                time::OffsetDateTime::now_utc(),
            )
            .map_err(|e| refused(format!("base bundle: {e}")))?;
        if !verdict.accepted() {
            return Err(refused("the base evidence does not verify".into()));
        }
        if (
            base.hpke_public_key,
            base.tls_spki_sha256,
            base.image_digest,
            &base.model,
        ) != (
            fresh.hpke_public_key,
            fresh.tls_spki_sha256,
            fresh.image_digest,
            &fresh.model,
        ) {
            return Err(refused(format!(
                "{}: base and fresh evidence come from different enclaves",
                checks::claims::SAME_ENCLAVE.name
            )));
        }
        Ok(base)
    }

    /// Seals an OpenAI `chat/completions` or `completions` body and sends it; the answer
    /// is opened as it streams. Re-attests once when the enclave's keys have changed.
    pub async fn send(&self, body: &[u8]) -> Result<SealedAnswer, ClientError> {
        let mut retried = false;
        loop {
            let verified = match self.verified() {
                Some(v) if v.at.elapsed() < self.options.claims_ttl => v,
                _ => self.attest().await?,
            };
            let (sender, peer) = self.open().await?;
            let changed = peer.as_ref().is_some_and(|p| {
                p.claims.hpke_public_key != verified.claims.hpke_public_key
                    || p.claims.tls_spki_sha256 != verified.claims.tls_spki_sha256
            });
            if changed {
                // Another boot answered: never send it a request sealed for the old one.
                if retried {
                    return Err(ClientError::Transport(
                        "the enclave's keys changed again while re-attesting".into(),
                    ));
                }
                retried = true;
                self.attest().await?;
                continue;
            }
            let (wire_bytes, opener) = seal_request(
                &verified.claims.hpke_public_key,
                &verified.claims_digest,
                body,
                &mut silk_protocol::seal::os_rng(),
            )
            .map_err(|e| ClientError::Attestation {
                summary: e.to_string(),
                verdict: None,
            })?;
            let expect = crate::receipts::ReceiptExpect {
                workers: vec![crate::receipts::SealedTo {
                    worker_id: verified.claims_digest,
                    receipt_key: verified.claims.receipt_public_key,
                    offer_digest: None,
                    offer: None,
                }],
                request_digest: Sha256::digest(&wire_bytes).into(),
            };
            let req = Request::post(wire::PATH_SEALED)
                .header(hyper::header::CONTENT_TYPE, wire::SEALED_REQUEST_TYPE);
            let sent = tokio::time::Instant::now();
            let response = self.send_on(sender, req, Bytes::from(wire_bytes)).await?;
            let ex = Exchange { response, peer };
            let status = ex.response.status();
            let sealed = ex
                .response
                .headers()
                .get(hyper::header::CONTENT_TYPE)
                .is_some_and(|v| v == wire::SEALED_STREAM_TYPE);
            if sealed {
                return Ok(SealedAnswer {
                    status,
                    body: ex.response.into_body(),
                    opener,
                    pending: Vec::new(),
                    ended: false,
                    idle: self.options.idle_timeout,
                    first: Some((
                        sent + self.options.first_byte_timeout,
                        self.options.first_byte_timeout,
                    )),
                    expect,
                    tally: Default::default(),
                    receipt: None,
                    worker: None,
                });
            }
            let text = read_all(ex.response).await?;
            let err = api_error(status, &text);
            if let ClientError::Api { body, .. } = &err {
                if body.error.code == "bad_seal" && !retried {
                    // The enclave may have restarted behind a relay: re-attest once.
                    retried = true;
                    self.attest().await?;
                    continue;
                }
                if body.error.code == "bad_seal" {
                    return Err(ClientError::Transport(format!(
                        "the enclave could not open the sealed request: {}",
                        body.error.message
                    )));
                }
            }
            return Err(err);
        }
    }

    /// Sends a plain GET (e.g. `/v1/models`) over the verified channel.
    pub async fn get(&self, path: &str) -> Result<(StatusCode, Vec<u8>), ClientError> {
        let ex = self.exchange(Request::get(path), Bytes::new()).await?;
        let status = ex.response.status();
        Ok((status, read_all(ex.response).await?))
    }

    async fn exchange(
        &self,
        req: hyper::http::request::Builder,
        body: Bytes,
    ) -> Result<Exchange, ClientError> {
        let (sender, peer) = self.open().await?;
        let response = self.send_on(sender, req, body).await?;
        Ok(Exchange { response, peer })
    }

    async fn send_on(
        &self,
        mut sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
        req: hyper::http::request::Builder,
        body: Bytes,
    ) -> Result<Response<Incoming>, ClientError> {
        let authority = if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        };
        let req = req
            .header(hyper::header::HOST, authority)
            .body(Full::new(body))
            .map_err(|e| ClientError::Config(e.to_string()))?;
        let after = self.options.first_byte_timeout;
        tokio::time::timeout(after, sender.send_request(req))
            .await
            .map_err(|_| ClientError::Timeout {
                which: "first answer byte",
                after,
            })?
            .map_err(|e| ClientError::Transport(format!("HTTP request: {}", describe_hyper(&e))))
    }

    /// Opens a connection; over TLS, also returns what the verifier accepted about the peer
    /// — before any request is written to it.
    async fn open(
        &self,
    ) -> Result<
        (
            hyper::client::conn::http1::SendRequest<Full<Bytes>>,
            Option<ratls::Accepted>,
        ),
        ClientError,
    > {
        let addr = format!("{}:{}", self.host, self.port);
        let after = self.options.connect_timeout;
        let tcp = tokio::time::timeout(after, TcpStream::connect(&addr))
            .await
            .map_err(|_| ClientError::Timeout {
                which: "connect",
                after,
            })?
            .map_err(|e| {
                ClientError::Transport(format!("connect to {addr}: {}", describe_io(&e)))
            })?;
        let _ = tcp.set_nodelay(true);
        tracing::debug!(%addr, "connected");
        let Some(connector) = &self.tls else {
            return Ok((handshake(tcp).await?, None));
        };
        // The certificate is self-signed and trusted only through its evidence; the name
        // is a constant.
        let name =
            ServerName::try_from("silk-enclave").map_err(|e| ClientError::Config(e.to_string()))?;
        let after = self.options.tls_handshake_timeout;
        let stream = tokio::time::timeout(after, connector.connect(name, tcp))
            .await
            .map_err(|_| ClientError::Timeout {
                which: "TLS handshake",
                after,
            })?
            .map_err(|e| match self.verifier.last_refusal() {
                Some(r) if e.to_string().contains("certificate") => refusal_error(r),
                _ => ClientError::Transport(format!("TLS handshake: {}", describe_io(&e))),
            })?;
        let tls_state = stream.get_ref().1;
        tracing::debug!(
            %addr,
            version = ?tls_state.protocol_version(),
            suite = ?tls_state.negotiated_cipher_suite().map(|s| s.suite()),
            "TLS handshake done"
        );
        let peer = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| self.verifier.accepted_for(c.as_ref()))
            .ok_or_else(|| {
                ClientError::Transport("the TLS peer's verified evidence is not known".into())
            })?;
        Ok((handshake(stream).await?, Some(peer)))
    }
}

/// Verifies a fresh bundle (JSON) over `nonce` under `policy`: the evidence, the binding,
/// the challenge and the age. Every refusal is an attestation error naming its checks.
pub(crate) fn verify_fresh(
    body: &[u8],
    nonce: &[u8],
    policy: &Policy,
    options: &Options,
) -> Result<(Claims, Verdict), ClientError> {
    let refused = |summary: String, verdict: Option<Verdict>| ClientError::Attestation {
        summary,
        verdict: verdict.map(Box::new),
    };
    let bundle = EvidenceBundle::from_json(body)
        .map_err(|e| refused(format!("evidence bundle: {e}"), None))?;
    let expect = Expectations {
        challenge: Some(nonce.to_vec()),
        max_age_secs: Some(options.max_evidence_age.as_secs()),
        collateral: None,
        gpu: options.gpu.clone(),
        image_events: None,
    };
    let (fresh, verdict) = bundle
        .verify(policy, &expect, time::OffsetDateTime::now_utc())
        .map_err(|e| refused(format!("evidence bundle: {e}"), None))?;
    if !verdict.accepted() {
        let names: Vec<_> = verdict.failures().map(|c| c.name.to_string()).collect();
        return Err(refused(
            format!("failed checks: {}", names.join(", ")),
            Some(verdict),
        ));
    }
    Ok((fresh, verdict))
}

fn refusal_error(r: ratls::Refusal) -> ClientError {
    let summary = r.to_string();
    let verdict = match r {
        ratls::Refusal::Evidence(v) => Some(v),
        _ => None,
    };
    ClientError::Attestation { summary, verdict }
}

async fn handshake<S>(
    stream: S,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, ClientError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| ClientError::Transport(format!("HTTP handshake: {}", describe_hyper(&e))))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn read_all(response: Response<Incoming>) -> Result<Vec<u8>, ClientError> {
    let body = response.into_body().collect().await.map_err(|e| {
        ClientError::Transport(format!("reading the response: {}", describe_hyper(&e)))
    })?;
    Ok(body.to_bytes().to_vec())
}

/// An I/O error in words a user can act on: refused, reset, cut, or a TLS record that
/// failed its authentication (bytes altered on the way).
pub(crate) fn describe_io(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => format!("connection refused (nothing listens there): {e}"),
        K::ConnectionReset => format!("connection reset by the peer or a relay: {e}"),
        K::ConnectionAborted => format!("connection aborted: {e}"),
        K::UnexpectedEof if e.to_string().contains("close_notify") => {
            "the stream was cut short (closed without a TLS close_notify)".to_owned()
        }
        K::UnexpectedEof => format!("the stream was cut short: {e}"),
        K::TimedOut => format!("timed out in the operating system: {e}"),
        _ if altered_tls_record(e) => {
            format!("TLS record authentication failed: the bytes were altered on the way ({e})")
        }
        _ => e.to_string(),
    }
}

/// Whether rustls refused a record whose authentication failed (ours to decrypt, or the
/// peer's `bad_record_mac` alert about ours): bytes altered on the way.
pub(crate) fn altered_tls_record(e: &std::io::Error) -> bool {
    use rustls::{AlertDescription, Error as Tls};
    matches!(
        e.get_ref().and_then(|inner| inner.downcast_ref::<Tls>()),
        Some(Tls::DecryptError | Tls::AlertReceived(AlertDescription::BadRecordMac))
    )
}

/// The I/O error under a hyper error, if one caused it.
pub(crate) fn io_cause(e: &hyper::Error) -> Option<&std::io::Error> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        source = s.source();
    }
    None
}

/// A hyper error in words: which side ended what, and the I/O cause when there is one.
pub(crate) fn describe_hyper(e: &hyper::Error) -> String {
    if let Some(io) = io_cause(e) {
        return describe_io(io);
    }
    if e.is_parse() || e.is_parse_status() {
        format!("the HTTP framing is corrupt (altered, dropped or spliced on the way): {e}")
    } else if e.is_incomplete_message() {
        "the connection closed before the message was complete (cut on the way?)".into()
    } else if e.is_canceled() {
        "the connection closed before the request was answered".into()
    } else if e.is_closed() {
        "the connection was closed".into()
    } else {
        e.to_string()
    }
}

pub(crate) fn api_error(status: StatusCode, body: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(body) => ClientError::Api {
            status: status.as_u16(),
            body,
        },
        Err(_) => ClientError::Transport(format!(
            "unexpected HTTP {status} without an error body ({} bytes)",
            body.len()
        )),
    }
}
