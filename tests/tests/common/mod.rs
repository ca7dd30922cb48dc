//! Shared set-up of the end-to-end tests: an in-process enclave on the default model with
//! a simulated TEE, the policy that pins it, and relays that sit between client and
//! enclave the way a host or a router would.
#![allow(dead_code)]

pub mod hostile;
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
    let running = start::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        plain_listen: Some("127.0.0.1:0".parse().unwrap()),
        model: default_model(),
        model_name: Some("smollm2".into()),
        model_id: None,
        device: Default::default(),
        evidence: EvidenceChoice::Kind(ProviderKind::Simulated),
        sim_chain_pem: Some(pem),
        image_digest: Some([7; 32]),
        engine,
        gpu: None,
        limits,
        worker: Default::default(),
    })
    .await
    .expect("enclave starts");
    let measurement = start::simulated_measurement().expect("measurement");
    let policy = silk_client::demo::demo_policy(&root, &measurement).expect("policy");
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
