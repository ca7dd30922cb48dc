//! Shared set-up of the end-to-end tests: an in-process enclave on the default model with
//! a simulated TEE, the policy that pins it, and relays that sit between client and
//! enclave the way a host or a router would.
#![allow(dead_code)]

pub mod evil;
pub mod hostile;
pub mod procs;
pub mod relay;

use std::net::SocketAddr;
use std::path::PathBuf;

use silk_enclave::evidence::ProviderKind;
use silk_enclave::start::{self, Config, EvidenceChoice, Running};
use silk_engine::EngineConfig;
use silk_protocol::attestation::snp::simulated::SimulatedPlatform;
use silk_protocol::attestation::Policy;
use zeroize::Zeroizing;

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

/// A development platform, as PEM, and the root a policy pins.
pub fn dev_chain() -> (Zeroizing<String>, [u8; 32]) {
    let p = SimulatedPlatform::generate().expect("development chain");
    (p.to_pem().expect("pem"), p.chain().root_digest())
}

/// An enclave running in this process, with its policy.
pub struct Local {
    /// The enclave.
    pub running: Running,
    /// A policy that accepts exactly it.
    pub policy: Policy,
}

impl Local {
    /// `https://` endpoint (RA-TLS).
    pub fn https(&self) -> String {
        format!("https://{}", self.running.addr)
    }
    /// The plain-HTTP listener's address.
    pub fn plain(&self) -> SocketAddr {
        self.running.plain_addr.expect("plain listener")
    }
}

/// Starts an enclave with the development chain `pem` (rooted at `root`).
pub async fn enclave_with(pem: Zeroizing<String>, root: [u8; 32], engine: EngineConfig) -> Local {
    enclave_full(pem, root, engine, Default::default()).await
}

/// Starts an enclave with a fresh development chain and these listener limits.
pub async fn enclave_limited(limits: silk_enclave::conn::Limits) -> Local {
    let (pem, root) = dev_chain();
    enclave_full(pem, root, EngineConfig::default(), limits).await
}

async fn enclave_full(
    pem: Zeroizing<String>,
    root: [u8; 32],
    engine: EngineConfig,
    limits: silk_enclave::conn::Limits,
) -> Local {
    worker_full(pem, root, engine, limits, Default::default()).await
}

/// Starts an enclave that is also a network worker (`worker`: routers, offer, payout).
pub async fn worker(
    pem: Zeroizing<String>,
    root: [u8; 32],
    worker: silk_enclave::worker::WorkerConfig,
) -> Local {
    worker_full(
        pem,
        root,
        EngineConfig::default(),
        Default::default(),
        worker,
    )
    .await
}

async fn worker_full(
    pem: Zeroizing<String>,
    root: [u8; 32],
    engine: EngineConfig,
    limits: silk_enclave::conn::Limits,
    worker: silk_enclave::worker::WorkerConfig,
) -> Local {
    let running = start::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        plain_listen: Some("127.0.0.1:0".parse().unwrap()),
        model: default_model(),
        model_name: Some("smollm2".into()),
        model_id: None,
        device: Default::default(),
        evidence: EvidenceChoice::Kind(ProviderKind::Simulated),
        sim_chain_pem: Some(pem),
        collateral: None,
        image_digest: Some([7; 32]),
        engine,
        gpu: None,
        limits,
        worker,
    })
    .await
    .expect("enclave starts");
    let measurement = start::simulated_measurement().expect("measurement");
    let policy = silk_tools::demo::demo_policy(&root, &measurement).expect("policy");
    Local { running, policy }
}

/// Starts an enclave with a fresh development chain.
pub async fn enclave() -> Local {
    let (pem, root) = dev_chain();
    enclave_with(pem, root, EngineConfig::default()).await
}

/// A chat body asking `prompt`, greedy.
pub fn chat_body(prompt: &str, max_tokens: usize, stream: bool) -> Vec<u8> {
    serde_json::json!({
        "model": "smollm2",
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": stream,
    })
    .to_string()
    .into_bytes()
}

/// The sum of a Prometheus counter family's samples, read from the enclave's `/metrics`.
pub async fn metric(plain: SocketAddr, name: &str) -> f64 {
    let (_, body) = relay::http_get(plain, "/metrics").await;
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The whole text of a non-streamed chat answer.
pub fn answer_text(plain: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(plain).expect("answer is JSON");
    v["choices"][0]["message"]["content"]
        .as_str()
        .expect("content")
        .to_owned()
}

/// The byte forms a secret could leak in: itself, UTF-16 both ways, and base64 at each
/// alignment (trimmed to the characters that do not depend on its neighbours).
pub fn leak_forms(secret: &str) -> Vec<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use base64::Engine as _;
    let mut out = vec![secret.as_bytes().to_vec()];
    out.push(secret.encode_utf16().flat_map(u16::to_le_bytes).collect());
    out.push(secret.encode_utf16().flat_map(u16::to_be_bytes).collect());
    for pad in 0..3 {
        let mut shifted = vec![b'x'; pad];
        shifted.extend_from_slice(secret.as_bytes());
        for enc in [STANDARD.encode(&shifted), URL_SAFE_NO_PAD.encode(&shifted)] {
            let skip = if pad == 0 { 0 } else { 4 };
            let body = enc.trim_end_matches('=');
            let keep = body.len().saturating_sub(4);
            if keep > skip + 8 {
                out.push(body.as_bytes()[skip..keep].to_vec());
            }
        }
    }
    out
}

/// What must not leak from one exchange: the prompt, a marker inside it, the answer, and a
/// stretch from the middle of the answer (in case only part of it leaked).
pub fn secrets(prompt: &str, marker: &str, answer: &str) -> Vec<String> {
    assert!(
        answer.chars().count() >= 24,
        "answer long enough to test: {answer}"
    );
    let chars: Vec<char> = answer.chars().collect();
    let middle = chars[chars.len() / 2 - 8..chars.len() / 2 + 8]
        .iter()
        .collect();
    vec![
        prompt.to_owned(),
        marker.to_owned(),
        answer.to_owned(),
        middle,
    ]
}

/// Fails when any form ([`leak_forms`]) of any secret occurs in `hay`, naming `what`.
pub fn assert_no_leak(hay: &[u8], secrets: &[String], what: &str) {
    assert!(!hay.is_empty(), "{what}: nothing was captured");
    for s in secrets {
        for form in leak_forms(s) {
            assert!(!contains(hay, &form), "{what} leak {s:?}");
        }
    }
}

/// Whether `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Log output captured in memory (a `tracing` writer), to scan for leaks.
#[derive(Clone, Default)]
pub struct Captured(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Sends every log event of this process, at every level, to a [`Captured`] buffer.
pub fn capture_logs() -> Captured {
    let logs = Captured::default();
    let sink = logs.clone();
    tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .init();
    logs
}

/// Serves the proxy's router over `session` on a free loopback port.
pub async fn proxy(session: std::sync::Arc<silk_client::session::Session>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            silk_client::proxy::router(std::sync::Arc::new(silk_client::upstream::Upstream::new(
                silk_client::upstream::Target::Direct(session),
            ))),
        )
        .await
        .unwrap()
    });
    addr
}
