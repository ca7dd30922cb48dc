//! The first verified answer from nothing, split into its parts, and how long verifying
//! recorded real SNP and TDX evidence takes (issue: a first answer in under 100 ms plus
//! the engine's own time to first token, re-verification of a cached bundle in 2 ms).

use std::time::Instant;

use hyper::StatusCode;
use silk_protocol::attestation::Policy;
use silk_protocol::bundle::Bytes as B64;
use silk_protocol::{Claims, EvidenceBundle, Expectations, PlatformEvidence};

use super::{chat_body, quantile, SealedBenchError, SseTimer, PROMPTS};
use crate::demo::LocalEnclave;
use silk_client::session::Session;

/// Tokens asked for in each first answer: only its first token is timed.
const FIRST_ANSWER_TOKENS: usize = 4;

/// The first verified answer, medians over fresh sessions, milliseconds.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct FirstAnswerFigures {
    /// From [`Session::connect`] to the first token of the first answer.
    pub total_ms: f64,
    /// [`Session::connect`]: TCP, the RA-TLS handshake (the certificate's evidence
    /// verified), the challenge, the enclave's fresh evidence and its verification.
    pub connect_ms: f64,
    /// Of `connect_ms`: verifying the fresh bundle ([`EvidenceBundle::verify`]).
    pub verification_ms: f64,
    /// Of `connect_ms`: the rest (connection, handshake, fresh evidence).
    pub handshake_ms: f64,
    /// From sending the first request to its first token: sealing, a new RA-TLS
    /// connection, the enclave's queue, prefill and the first decode step.
    pub first_token_ms: f64,
    /// The engine's own time to first token (the direct path, fewest sessions).
    pub engine_ttft_ms: f64,
    /// `total_ms - engine_ttft_ms`: what attestation and the sealed path add.
    pub added_ms: f64,
    /// Fresh sessions measured.
    pub reps: usize,
}

/// Verification of recorded real evidence, medians, milliseconds.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RecordedFigures {
    /// An SNP bundle (the Milan report, its VCEK, the AMD chain): parse and verify.
    pub snp_ms: f64,
    /// A TDX bundle (the quote with its collateral inside): parse and verify.
    pub tdx_ms: f64,
    /// The same TDX bundle verified again, already parsed (a client's cached bundle).
    pub tdx_cached_ms: f64,
    /// Repetitions.
    pub reps: usize,
}

/// Times `reps` first answers, each on a fresh session.
pub(super) async fn first_answers(
    local: &LocalEnclave,
    reps: usize,
) -> Result<FirstAnswerFigures, SealedBenchError> {
    let fail = |what: String| SealedBenchError::Setup(format!("first answer: {what}"));
    let body = chat_body(PROMPTS[0], FIRST_ANSWER_TOKENS);
    let (mut total, mut connect, mut first, mut verify) = (vec![], vec![], vec![], vec![]);
    for _ in 0..reps.max(1) {
        let t0 = Instant::now();
        let session = Session::connect(&local.endpoint, local.policy.clone()).await?;
        let connected = Instant::now();
        let mut answer = session.send(&body).await?;
        if answer.status() != StatusCode::OK {
            return Err(fail(format!("HTTP {}", answer.status())));
        }
        let mut timer = SseTimer::default();
        let mut first_at = None;
        while let Some(chunk) = answer.next_chunk().await? {
            timer.push(&chunk).map_err(&fail)?;
            if first_at.is_none() {
                first_at = timer.first;
            }
        }
        let first_at = first_at.ok_or_else(|| fail("no text in the answer".into()))?;
        total.push(ms(first_at - t0));
        connect.push(ms(connected - t0));
        first.push(ms(first_at - connected));
        verify.push(fresh_verification(&session, local).await?);
    }
    let connect_ms = quantile(&connect, 0.5);
    let verification_ms = quantile(&verify, 0.5);
    Ok(FirstAnswerFigures {
        total_ms: quantile(&total, 0.5),
        connect_ms,
        verification_ms,
        handshake_ms: connect_ms - verification_ms,
        first_token_ms: quantile(&first, 0.5),
        reps: reps.max(1),
        ..FirstAnswerFigures::default()
    })
}

/// How long verifying a fresh bundle from this enclave takes, as [`Session::connect`]
/// verifies it.
async fn fresh_verification(
    session: &Session,
    local: &LocalEnclave,
) -> Result<f64, SealedBenchError> {
    let nonce: [u8; 32] = rand::random();
    let path = format!(
        "{}?nonce={}",
        silk_protocol::wire::PATH_ATTESTATION,
        hex::encode(nonce)
    );
    let (status, body) = session.get(&path).await?;
    let fail = |what: String| SealedBenchError::Setup(format!("fresh bundle: {what}"));
    if status != StatusCode::OK {
        return Err(fail(format!("HTTP {status}")));
    }
    let expect = Expectations {
        challenge: Some(nonce.to_vec()),
        max_age_secs: Some(300),
        ..Expectations::default()
    };
    let t = Instant::now();
    let bundle = EvidenceBundle::from_json(&body).map_err(|e| fail(e.to_string()))?;
    let (_, verdict) = bundle
        .verify(&local.policy, &expect, time::OffsetDateTime::now_utc())
        .map_err(|e| fail(e.to_string()))?;
    let took = ms(t.elapsed());
    if !verdict.accepted() {
        return Err(fail("it does not verify".into()));
    }
    Ok(took)
}

/// Times verifying bundles made of recorded real evidence (compiled in from `vectors/`),
/// `reps` times each. Their reports are not over silk claims, so the verdicts fail
/// `claims.report_data` (and only that is expected to fail): every other check runs.
pub(super) fn recorded(reps: usize) -> Result<RecordedFigures, SealedBenchError> {
    let fail = |what: String| SealedBenchError::Setup(format!("recorded evidence: {what}"));
    let (snp, tdx) = recorded_bundles().map_err(&fail)?;
    let snp_policy = Policy::from_toml(SNP_POLICY).map_err(|e| fail(e.to_string()))?;
    let tdx_policy = Policy::from_toml(TDX_POLICY).map_err(|e| fail(e.to_string()))?;
    // Inside the collateral's window and the VCEK's validity (2023-04-03 to 2030-04-03),
    // so the figures do not change with the date they are taken on.
    let tdx_now = time::macros::datetime!(2025-06-20 00:00 UTC);
    let snp_now = tdx_now;
    let expect = Expectations::default();
    let (mut s, mut t, mut c) = (vec![], vec![], vec![]);
    let parsed = EvidenceBundle::from_json(&tdx).map_err(|e| fail(e.to_string()))?;
    for _ in 0..reps.max(1) {
        for (json, policy, now, times) in [
            (&snp, &snp_policy, snp_now, &mut s),
            (&tdx, &tdx_policy, tdx_now, &mut t),
        ] {
            let start = Instant::now();
            let bundle = EvidenceBundle::from_json(json).map_err(|e| fail(e.to_string()))?;
            let (_, v) = bundle
                .verify(policy, &expect, now)
                .map_err(|e| fail(e.to_string()))?;
            times.push(ms(start.elapsed()));
            only_binding_fails(&v).map_err(&fail)?;
        }
        let start = Instant::now();
        let (_, v) = parsed
            .verify(&tdx_policy, &expect, tdx_now)
            .map_err(|e| fail(e.to_string()))?;
        c.push(ms(start.elapsed()));
        only_binding_fails(&v).map_err(&fail)?;
    }
    Ok(RecordedFigures {
        snp_ms: quantile(&s, 0.5),
        tdx_ms: quantile(&t, 0.5),
        tdx_cached_ms: quantile(&c, 0.5),
        reps: reps.max(1),
    })
}

const SNP_POLICY: &str = include_str!("../../../docs/examples/snp-milan-sample.toml");
const TDX_POLICY: &str = include_str!("../../../docs/examples/tdx-sample.toml");

/// The recorded SNP and TDX bundles, as JSON.
fn recorded_bundles() -> Result<(Vec<u8>, Vec<u8>), String> {
    let report_hex = include_str!("../../../vectors/snp/milan/report_milan.hex");
    let report = hex::decode(report_hex.trim()).map_err(|e| e.to_string())?;
    let vcek = include_bytes!("../../../vectors/snp/milan/vcek_milan.der").to_vec();
    let chain = silk_protocol::attestation::snp::certs::pem_bundle(
        include_bytes!("../../../vectors/snp/milan/cert_chain.pem"),
        "cert_chain.pem",
    )
    .map_err(|e| e.to_string())?;
    let [ask, ark] =
        <[Vec<u8>; 2]>::try_from(chain).map_err(|_| "cert_chain.pem: not ASK + ARK")?;
    let claims = Claims {
        hpke_public_key: [1; 32],
        tls_spki_sha256: [2; 32],
        image_digest: [3; 32],
        model: "sha256:00".into(),
        gpu_nonce: Vec::new(),
        challenge: Vec::new(),
        created_at: 0,
        software_version: "bench".into(),
        receipt_public_key: [4; 32],
        payout_address: String::new(),
        evidence_provider: "simulated".into(),
        gpu_policy_sha256: Vec::new(),
    }
    .encode()
    .map_err(|e| e.to_string())?;
    let bundle = |platform| {
        EvidenceBundle {
            version: 1,
            platform,
            claims: B64(claims.clone()),
            gpus: Vec::new(),
        }
        .to_json()
    };
    let snp = bundle(PlatformEvidence::SevSnp {
        report: B64(report),
        vek: B64(vcek),
        ask: Some(B64(ask)),
        ark: Some(B64(ark)),
    });
    let tdx = bundle(PlatformEvidence::Tdx {
        quote: B64(include_bytes!("../../../vectors/tdx/tdx_quote").to_vec()),
        collateral: Some(B64(include_bytes!(
            "../../../vectors/tdx/tdx_quote_collateral.json"
        )
        .to_vec())),
        event_log: None,
    });
    Ok((snp, tdx))
}

/// The recorded verdicts must fail only at the claims binding; anything else failing
/// would mean the timing is of a verification cut short.
fn only_binding_fails(v: &silk_protocol::attestation::Verdict) -> Result<(), String> {
    let binding = silk_protocol::attestation::checks::claims::REPORT_DATA.name;
    let other: Vec<_> = v
        .failures()
        .map(|c| c.name)
        .filter(|n| *n != binding)
        .collect();
    if other.is_empty() {
        Ok(())
    } else {
        Err(format!("unexpected failed checks: {}", other.join(", ")))
    }
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
