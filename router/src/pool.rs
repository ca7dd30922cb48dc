//! RA-TLS connections to workers, pooled per worker.
//!
//! Every new connection is RA-TLS under the admission policy: the worker's certificate
//! must carry evidence that verifies and claims bound to the certificate's key, and the
//! digest of those claims must be the worker's id — so a registration cannot point the
//! router at another machine, and a worker that restarted (new keys, new id) is not
//! reached under its old listing. Idle HTTP/1 senders are kept (a bounded number per
//! worker) and reused once ready; a connection goes back to the pool only after its
//! response body ended.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use silk_protocol::ratls::{self, RaTlsVerifier};
use tokio::net::TcpStream;

/// A sender on one HTTP/1 connection to a worker.
pub type Sender = SendRequest<Full<Bytes>>;

/// Most idle connections kept per worker.
pub const MAX_IDLE: usize = 32;

/// How long a released connection may take to be ready for its next request before it
/// is dropped instead of pooled.
const READY_WAIT: Duration = Duration::from_secs(5);

/// Why a connection to a worker could not be opened.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PoolError {
    /// TCP connect took too long.
    #[error("connect timeout after {0:?}")]
    ConnectTimeout(Duration),
    /// TCP connect failed.
    #[error("connect failed: {0}")]
    Connect(String),
    /// The TLS handshake (with the evidence check) took too long.
    #[error("TLS handshake timeout after {0:?}")]
    TlsTimeout(Duration),
    /// The TLS handshake failed, e.g. because the evidence did not verify.
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    /// The peer's attested claims are another worker's.
    #[error(
        "worker_mismatch: the TLS peer's claims digest is {found}, not the worker id {expected}"
    )]
    Mismatch {
        /// The worker id.
        expected: String,
        /// The peer's claims digest.
        found: String,
    },
    /// The HTTP/1 handshake failed.
    #[error("HTTP handshake failed: {0}")]
    Handshake(String),
}

impl PoolError {
    /// The error class for metrics.
    pub fn class(&self) -> &'static str {
        match self {
            PoolError::ConnectTimeout(_) => "connect_timeout",
            PoolError::Connect(_) => "connect_failed",
            PoolError::TlsTimeout(_) => "tls_timeout",
            PoolError::Tls(_) => "tls_failed",
            PoolError::Mismatch { .. } => "worker_mismatch",
            PoolError::Handshake(_) => "http_handshake",
        }
    }
}

/// What opening connections needs: the RA-TLS client and its deadlines.
pub struct Connector {
    tls: tokio_rustls::TlsConnector,
    verifier: Arc<RaTlsVerifier>,
    /// TCP connect deadline.
    pub connect_timeout: Duration,
    /// TLS handshake deadline (evidence verification included).
    pub tls_timeout: Duration,
}

impl Connector {
    /// A connector trusting workers through `verifier`.
    pub fn new(
        verifier: Arc<RaTlsVerifier>,
        connect_timeout: Duration,
        tls_timeout: Duration,
    ) -> Result<Self, ratls::RaTlsError> {
        let config = ratls::client_config(verifier.clone())?;
        Ok(Self {
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            verifier,
            connect_timeout,
            tls_timeout,
        })
    }

    /// Opens an RA-TLS connection to `address` whose peer must be the worker `worker_id`.
    pub async fn open(&self, address: &str, worker_id: &[u8; 32]) -> Result<Sender, PoolError> {
        let tcp = tokio::time::timeout(self.connect_timeout, TcpStream::connect(address))
            .await
            .map_err(|_| PoolError::ConnectTimeout(self.connect_timeout))?
            .map_err(|e| PoolError::Connect(e.to_string()))?;
        // Sealed chunks are small writes; Nagle would hold each back.
        let _ = tcp.set_nodelay(true);
        // The certificate is self-signed and trusted only through its evidence; the name
        // is a constant.
        let name = ServerName::try_from("silk-enclave")
            .map_err(|e| PoolError::Tls(format!("server name: {e}")))?;
        let stream = tokio::time::timeout(self.tls_timeout, self.tls.connect(name, tcp))
            .await
            .map_err(|_| PoolError::TlsTimeout(self.tls_timeout))?
            .map_err(|e| match self.verifier.last_refusal() {
                Some(r) if e.to_string().contains("certificate") => {
                    PoolError::Tls(format!("the worker's evidence was refused: {r}"))
                }
                _ => PoolError::Tls(e.to_string()),
            })?;
        let accepted = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| self.verifier.accepted_for(c.as_ref()))
            .ok_or_else(|| PoolError::Tls("the peer's verified evidence is not known".into()))?;
        let found = accepted
            .claims
            .digest()
            .map_err(|e| PoolError::Tls(format!("the peer's claims: {e}")))?;
        if &found != worker_id {
            return Err(PoolError::Mismatch {
                expected: hex::encode(worker_id),
                found: hex::encode(found),
            });
        }
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| PoolError::Handshake(e.to_string()))?;
        // The connection runs until its sender is dropped and its last response is read.
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }
}

/// The idle connections to one worker.
#[derive(Debug)]
pub struct Pool {
    address: String,
    worker_id: [u8; 32],
    idle: Mutex<Vec<Sender>>,
}

/// A connection taken from (or opened for) a pool.
pub struct Conn {
    /// The sender.
    pub sender: Sender,
    /// Whether it was reused from the pool (a reused connection may have been closed by
    /// the worker just now; a request that fails on it may be retried on a new one).
    pub reused: bool,
}

impl Pool {
    /// An empty pool for the worker `worker_id` at `address`.
    pub fn new(address: String, worker_id: [u8; 32]) -> Self {
        Self {
            address,
            worker_id,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The worker's address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// A ready idle connection, or a new one.
    pub async fn get(&self, connector: &Connector) -> Result<Conn, PoolError> {
        if let Some(sender) = self.take_idle() {
            return Ok(Conn {
                sender,
                reused: true,
            });
        }
        self.open(connector).await
    }

    /// A new connection, never a pooled one.
    pub async fn open(&self, connector: &Connector) -> Result<Conn, PoolError> {
        let sender = connector.open(&self.address, &self.worker_id).await?;
        Ok(Conn {
            sender,
            reused: false,
        })
    }

    fn take_idle(&self) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(s) = idle.pop() {
            if s.is_ready() && !s.is_closed() {
                return Some(s);
            }
        }
        None
    }

    /// Gives back a connection whose response body ended: pooled once it is ready for
    /// another request (the connection task may still be finishing the last one), or
    /// dropped if it closes, takes too long, or the pool is full.
    pub fn release(self: &Arc<Self>, mut sender: Sender) {
        let pool = Arc::downgrade(self);
        tokio::spawn(async move {
            if !matches!(
                tokio::time::timeout(READY_WAIT, sender.ready()).await,
                Ok(Ok(()))
            ) {
                return;
            }
            let Some(pool) = pool.upgrade() else { return };
            let mut idle = pool.idle.lock().unwrap_or_else(|e| e.into_inner());
            idle.retain(|s| !s.is_closed());
            if idle.len() < MAX_IDLE {
                idle.push(sender);
            }
        });
    }

    /// Idle connections held now.
    pub fn idle(&self) -> usize {
        self.idle.lock().map_or(0, |i| i.len())
    }

    /// `GET path` on a pooled connection: the status and a body of at most `max` bytes,
    /// within `timeout` from sending the request to the body's end. A request that fails
    /// on a reused connection (the worker may have just closed it) is retried once on a
    /// new one; a GET is safe to repeat.
    pub async fn fetch(
        self: &Arc<Self>,
        connector: &Connector,
        path: &str,
        timeout: Duration,
        max: usize,
    ) -> Result<(hyper::StatusCode, Vec<u8>), FetchError> {
        let mut conn = self.get(connector).await?;
        loop {
            let req = hyper::Request::get(path)
                .header(hyper::header::HOST, self.address.as_str())
                .body(Full::new(Bytes::new()))
                .map_err(|e| FetchError::Failed(e.to_string()))?;
            let sent = conn.sender.send_request(req);
            let response = match tokio::time::timeout(timeout, sent).await {
                Err(_) => return Err(FetchError::Timeout(timeout)),
                Ok(Ok(r)) => r,
                Ok(Err(_)) if conn.reused => {
                    conn = self.open(connector).await?;
                    continue;
                }
                Ok(Err(e)) => return Err(FetchError::Failed(e.to_string())),
            };
            let status = response.status();
            let body = tokio::time::timeout(timeout, read_limited(response.into_body(), max))
                .await
                .map_err(|_| FetchError::Timeout(timeout))??;
            self.release(conn.sender);
            return Ok((status, body));
        }
    }
}

/// Why a [`Pool::fetch`] failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    /// No connection.
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// No full answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The answer is larger than allowed.
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    /// The exchange failed.
    #[error("the exchange failed: {0}")]
    Failed(String),
}

impl FetchError {
    /// The error class for metrics.
    pub fn class(&self) -> &'static str {
        match self {
            FetchError::Pool(e) => e.class(),
            FetchError::Timeout(_) => "fetch_timeout",
            FetchError::TooLarge(_) => "fetch_too_large",
            FetchError::Failed(_) => "fetch_failed",
        }
    }
}

async fn read_limited(mut body: hyper::body::Incoming, max: usize) -> Result<Vec<u8>, FetchError> {
    use http_body_util::BodyExt;
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| FetchError::Failed(e.to_string()))?;
        if let Some(d) = frame.data_ref() {
            if out.len() + d.len() > max {
                return Err(FetchError::TooLarge(max));
            }
            out.extend_from_slice(d);
        }
    }
    Ok(out)
}
