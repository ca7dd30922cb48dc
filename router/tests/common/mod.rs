//! Shared set-up of the router's tests: a router in this process, a plain HTTP/1 client
//! over real sockets, Prometheus text parsing, and an in-process enclave with simulated
//! evidence.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{HeaderMap, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use silk_enclave::evidence::ProviderKind;
use silk_enclave::start::{self, EvidenceChoice};
use silk_protocol::attestation::snp::simulated::SimulatedPlatform;
use silk_protocol::attestation::Policy;
use silk_router::{Config, Running};
use tokio::net::TcpStream;
use zeroize::Zeroizing;

/// Logs to the test's output when `RUST_LOG` is set.
pub fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A development platform, as PEM, and the root a policy pins.
pub fn dev_chain() -> (Zeroizing<String>, [u8; 32]) {
    let p = SimulatedPlatform::generate().expect("development chain");
    (p.to_pem().expect("pem"), p.chain().root_digest())
}

/// The policy that accepts simulated enclaves of this test binary under `root`.
pub fn policy(root: &[u8; 32]) -> Policy {
    let measurement = start::simulated_measurement().expect("measurement");
    silk_tools::demo::demo_policy(root, &measurement).expect("policy")
}

/// A router config on a free local port with short listener deadlines.
pub fn config(policy: Policy) -> Config {
    let mut c = Config::new(policy);
    c.listen = "127.0.0.1:0".parse().unwrap();
    c.limits.request_head = Duration::from_secs(2);
    c.limits.keep_alive = Duration::from_secs(5);
    c
}

/// Starts a router.
pub async fn router(config: Config) -> Running {
    logs();
    silk_router::start(config).await.expect("router starts")
}

/// The default model (fetched by scripts/setup.sh).
pub fn default_model() -> PathBuf {
    let p =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        p.is_file(),
        "{} is missing: run scripts/fetch-model.sh",
        p.display()
    );
    p
}

/// Starts an enclave with simulated evidence from `pem`, on local ports, as a worker with
/// this payout address registering with `register` (if any).
pub async fn enclave(pem: Zeroizing<String>, register: Vec<String>) -> start::Running {
    start::start(start::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        plain_listen: Some("127.0.0.1:0".parse().unwrap()),
        model: default_model(),
        model_name: Some("smollm2".into()),
        model_id: Some("sha256:router-tests".into()),
        device: Default::default(),
        evidence: EvidenceChoice::Kind(ProviderKind::Simulated),
        sim_chain_pem: Some(pem),
        collateral: None,
        image_digest: Some([7; 32]),
        engine: silk_engine::EngineConfig::default(),
        gpu: None,
        limits: Default::default(),
        worker: silk_enclave::worker::WorkerConfig {
            payout_address: "EQ-router-tests".into(),
            price_prompt: 1_000,
            price_completion: 2_000,
            offer_ttl: None,
            register,
            advertise: None,
        },
    })
    .await
    .expect("enclave starts")
}

/// Sends one request on a new connection and returns the response with its body unread.
pub async fn send(addr: SocketAddr, req: Request<Full<Bytes>>) -> Response<Incoming> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender.send_request(req).await.expect("response")
}

/// A request to `addr`.
pub fn request(addr: SocketAddr, method: &str, path: &str) -> hyper::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, addr.to_string())
}

/// Sends a request and reads the whole answer.
pub async fn exchange(
    addr: SocketAddr,
    req: Request<Full<Bytes>>,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let r = send(addr, req).await;
    let status = r.status();
    let headers = r.headers().clone();
    let body = r.into_body().collect().await.expect("body").to_bytes();
    (status, headers, body.to_vec())
}

/// `GET path`.
pub async fn get(addr: SocketAddr, path: &str) -> (StatusCode, Vec<u8>) {
    let req = request(addr, "GET", path).body(Full::default()).unwrap();
    let (status, _, body) = exchange(addr, req).await;
    (status, body)
}

/// `POST path` with a JSON body.
pub async fn post_json(addr: SocketAddr, path: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    let req = request(addr, "POST", path)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let (status, _, body) = exchange(addr, req).await;
    (status, body)
}

/// The error code of an `ErrorBody` answer.
pub fn code(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)));
    v["error"]["code"].as_str().unwrap_or_default().to_owned()
}

/// The error message of an `ErrorBody` answer.
pub fn message(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).expect("JSON");
    v["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The sum of the samples of metric `name` (exact name, any labels) whose labels contain
/// every one of `labels`, from the router's `/metrics`.
pub async fn metric(addr: SocketAddr, name: &str, labels: &[&str]) -> f64 {
    let (status, body) = get(addr, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    sum_metric(&String::from_utf8_lossy(&body), name, labels)
}

/// [`metric`] over exposition text.
pub fn sum_metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, rest) = series.split_once('{').unwrap_or((series, ""));
            (n == name && labels.iter().all(|want| rest.contains(want)))
                .then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// Waits up to `within` for `check` to hold, polling.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// This process's resident memory, in KiB (VmRSS).
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// A TCP relay in front of a worker that can hold back the worker's bytes (a stalled
/// worker as the router sees it: TLS passes through untouched) and be stopped.
pub struct Relay {
    /// Where it listens.
    pub addr: SocketAddr,
    hold: std::sync::Arc<std::sync::atomic::AtomicBool>,
    tasks: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Relay {
    /// A relay to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hold = Arc::new(AtomicBool::new(false));
        let tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (h, t) = (hold.clone(), tasks.clone());
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(target).await else {
                    continue;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut cr, &mut sw).await;
                    let _ = sw.shutdown().await;
                });
                let hold = h.clone();
                let down = tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 << 10];
                    loop {
                        let n = match sr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        // Held: what the worker sent waits here.
                        while hold.load(Ordering::Acquire) {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        if cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = cw.shutdown().await;
                });
                if let Ok(mut t) = t.lock() {
                    t.push(up);
                    t.push(down);
                }
            }
        });
        tasks.lock().unwrap().push(accept);
        Self { addr, hold, tasks }
    }

    /// Holds back (or lets through) the worker's bytes.
    pub fn hold(&self, on: bool) {
        self.hold.store(on, std::sync::atomic::Ordering::Release);
    }

    /// Stops listening and cuts every relayed connection.
    pub fn stop(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}
