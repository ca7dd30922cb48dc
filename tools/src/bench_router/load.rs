//! Load on the stub worker: many concurrent HTTP/1 clients, each on one keep-alive
//! connection, posting sealed-request-sized bodies either through the router (plain HTTP,
//! `silk-worker: <id>`) or straight to the stub over RA-TLS.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use silk_protocol::attestation::Policy;
use silk_protocol::network::HEADER_WORKER;
use silk_protocol::ratls::{self, RaTlsVerifier};
use silk_protocol::wire;

/// Where the load goes.
#[derive(Clone)]
pub enum Target {
    /// Plain HTTP to the router, naming the worker.
    Routed {
        /// The router.
        router: SocketAddr,
        /// The worker id.
        worker: String,
    },
    /// RA-TLS straight to the stub.
    Direct {
        /// The stub's listener.
        stub: SocketAddr,
        /// Verifies the stub's certificate evidence under the stub policy.
        tls: tokio_rustls::TlsConnector,
    },
}

impl Target {
    /// RA-TLS to `stub`, trusted through its evidence under `policy`.
    pub fn direct(stub: SocketAddr, policy: Policy) -> Result<Self, String> {
        let verifier = Arc::new(RaTlsVerifier::new(Arc::new(policy)));
        let config = ratls::client_config(verifier).map_err(|e| e.to_string())?;
        Ok(Target::Direct {
            stub,
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }

    fn addr(&self) -> SocketAddr {
        match self {
            Target::Routed { router, .. } => *router,
            Target::Direct { stub, .. } => *stub,
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let addr = self.addr();
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        macro_rules! handshake {
            ($io:expr) => {{
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new($io))
                    .await
                    .map_err(|e| format!("HTTP handshake with {addr}: {e}"))?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                sender
            }};
        }
        Ok(match self {
            Target::Routed { .. } => handshake!(tcp),
            Target::Direct { tls, .. } => {
                let name = ServerName::try_from("silk-enclave").map_err(|e| e.to_string())?;
                let stream = tls
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("RA-TLS handshake with the stub: {e}"))?;
                handshake!(stream)
            }
        })
    }

    fn request(&self, body: Bytes) -> Result<Request<Full<Bytes>>, String> {
        let mut req = Request::post(wire::PATH_SEALED)
            .header(hyper::header::HOST, self.addr().to_string())
            .header(hyper::header::CONTENT_TYPE, wire::SEALED_REQUEST_TYPE);
        if let Target::Routed { worker, .. } = self {
            req = req.header(HEADER_WORKER, worker.as_str());
        }
        req.body(Full::new(body)).map_err(|e| e.to_string())
    }
}

/// One round of load.
#[derive(Clone, Debug, Default)]
pub struct Round {
    /// Each request's time from sending to the end of its answer, milliseconds.
    pub latencies_ms: Vec<f64>,
    /// Answer bytes received.
    pub bytes: u64,
    /// From the first request sent to the last answer ended.
    pub wall: Duration,
}

/// `requests` requests over `clients` connections, each answer checked to be 200 with
/// `expect_len` bytes.
pub async fn round(
    target: &Target,
    clients: usize,
    requests: usize,
    body: Bytes,
    expect_len: usize,
) -> Result<Round, String> {
    // Connections first, so that the round times requests, not handshakes.
    let mut senders = Vec::with_capacity(clients);
    for _ in 0..clients.min(requests).max(1) {
        senders.push(target.connect().await?);
    }
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for mut sender in senders {
        let (target, next, body) = (target.clone(), next.clone(), body.clone());
        set.spawn(async move {
            let mut lat = Vec::new();
            let mut bytes = 0u64;
            while next.fetch_add(1, Ordering::Relaxed) < requests {
                sender
                    .ready()
                    .await
                    .map_err(|e| format!("connection to {}: {e}", target.addr()))?;
                let req = target.request(body.clone())?;
                let t = Instant::now();
                let response = sender
                    .send_request(req)
                    .await
                    .map_err(|e| format!("request to {}: {e}", target.addr()))?;
                let status = response.status();
                let answer = response
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| format!("answer from {}: {e}", target.addr()))?
                    .to_bytes();
                lat.push(t.elapsed().as_secs_f64() * 1e3);
                if status != StatusCode::OK || answer.len() != expect_len {
                    return Err(format!(
                        "{} answered HTTP {status} with {} bytes (expected 200 with {expect_len}): {}",
                        target.addr(),
                        answer.len(),
                        String::from_utf8_lossy(&answer[..answer.len().min(400)])
                    ));
                }
                bytes += answer.len() as u64;
            }
            Ok::<_, String>((lat, bytes))
        });
    }
    let mut out = Round::default();
    while let Some(r) = set.join_next().await {
        let (lat, bytes) = r.map_err(|e| format!("load task: {e}"))??;
        out.latencies_ms.extend(lat);
        out.bytes += bytes;
    }
    out.wall = start.elapsed();
    Ok(out)
}
