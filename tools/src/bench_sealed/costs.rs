//! One-time and per-request costs of the sealed path, without the engine.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::{Request, StatusCode};
use silk_protocol::seal::{open_request, os_rng, seal_request, EnclaveKeys};
use silk_protocol::wire;
use silk_protocol::{EvidenceBundle, Expectations};

use super::{chat_body, proxy_request, quantile, SealedBenchError, PROMPTS};
use crate::demo::LocalEnclave;
use silk_client::session::Session;

/// Attestation costs, milliseconds.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct AttestFigures {
    /// Median [`Session::connect`]: nonce, RA-TLS handshake, fresh evidence, verification.
    pub connect_ms: f64,
    /// Median [`EvidenceBundle::verify`] of one fetched fresh bundle.
    pub verify_ms: f64,
    /// How many of each.
    pub reps: usize,
}

/// What the path adds to every request, without the engine: medians, milliseconds.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PathFigures {
    /// `GET /v1/models` through the proxy: client -> proxy -> new RA-TLS connection ->
    /// enclave, and back.
    pub via_proxy_ms: f64,
    /// The same through [`Session::get`] (a new RA-TLS connection), without the proxy.
    pub session_ms: f64,
    /// `GET /healthz`, which the proxy answers itself: the local HTTP hop.
    pub proxy_hop_ms: f64,
    /// Sealing a chat request (client) and opening it (enclave), HPKE both ways.
    pub seal_open_ms: f64,
}

/// Measures attestation and the per-request path costs, `reps` times each.
pub(super) async fn measure(
    local: &LocalEnclave,
    session: &Session,
    proxy: SocketAddr,
    reps: usize,
) -> Result<(AttestFigures, PathFigures), SealedBenchError> {
    let reps = reps.max(1);
    let attest = measure_attestation(local, session, reps).await?;
    let fail = |what: String| SealedBenchError::Setup(format!("path costs: {what}"));
    let mut via_proxy = Vec::new();
    let mut direct = Vec::new();
    let mut hop = Vec::new();
    for _ in 0..reps {
        for (path, times) in [(wire::PATH_MODELS, &mut via_proxy), ("/healthz", &mut hop)] {
            let t = Instant::now();
            let r = proxy_request(proxy, Request::get(path), Bytes::new())
                .await
                .map_err(fail)?;
            let status = r.status();
            r.into_body()
                .collect()
                .await
                .map_err(|e| fail(e.to_string()))?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
            if status != StatusCode::OK {
                return Err(fail(format!("{path}: HTTP {status}")));
            }
        }
        let t = Instant::now();
        let (status, _) = session.get(wire::PATH_MODELS).await?;
        direct.push(t.elapsed().as_secs_f64() * 1e3);
        if status != StatusCode::OK {
            return Err(fail(format!("Session::get: HTTP {status}")));
        }
    }
    // The HPKE work of one request, on keys like the enclave's.
    let keys = EnclaveKeys::generate(&mut os_rng());
    let digest = [7u8; 32];
    let body = chat_body(PROMPTS[0], 64);
    let mut seal = Vec::new();
    for _ in 0..reps {
        let t = Instant::now();
        let (wire_bytes, _) = seal_request(&keys.public_key(), &digest, &body, &mut os_rng())
            .map_err(|e| fail(e.to_string()))?;
        open_request(&keys, &digest, &wire_bytes).map_err(|e| fail(e.to_string()))?;
        seal.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok((
        attest,
        PathFigures {
            via_proxy_ms: quantile(&via_proxy, 0.5),
            session_ms: quantile(&direct, 0.5),
            proxy_hop_ms: quantile(&hop, 0.5),
            seal_open_ms: quantile(&seal, 0.5),
        },
    ))
}

async fn measure_attestation(
    local: &LocalEnclave,
    session: &Session,
    reps: usize,
) -> Result<AttestFigures, SealedBenchError> {
    let reps = reps.max(1);
    let mut connect = Vec::new();
    for _ in 0..reps {
        let t = Instant::now();
        let s = Session::connect(&local.endpoint, local.policy.clone()).await?;
        connect.push(t.elapsed().as_secs_f64() * 1e3);
        drop(s);
    }
    let mut nonce = [0u8; 32];
    rand::Rng::fill(&mut rand::thread_rng(), &mut nonce);
    let path = format!("{}?nonce={}", wire::PATH_ATTESTATION, hex::encode(nonce));
    let (status, body) = session.get(&path).await?;
    let setup = |what: String| SealedBenchError::Setup(format!("attestation bundle: {what}"));
    if status != StatusCode::OK {
        return Err(setup(format!("HTTP {status}")));
    }
    let bundle = EvidenceBundle::from_json(&body).map_err(|e| setup(e.to_string()))?;
    let expect = Expectations {
        challenge: Some(nonce.to_vec()),
        max_age_secs: Some(300),
        ..Expectations::default()
    };
    let mut verify = Vec::new();
    for _ in 0..reps {
        let t = Instant::now();
        let (_, verdict) = bundle
            .verify(&local.policy, &expect, time::OffsetDateTime::now_utc())
            .map_err(|e| setup(e.to_string()))?;
        verify.push(t.elapsed().as_secs_f64() * 1e3);
        if !verdict.accepted() {
            return Err(setup("the fetched bundle does not verify".into()));
        }
    }
    Ok(AttestFigures {
        connect_ms: quantile(&connect, 0.5),
        verify_ms: quantile(&verify, 0.5),
        reps,
    })
}
