//! The sealed path end to end against a real enclave (simulated TEE, default model):
//! answers over RA-TLS, tampering on the way detected, bad evidence refused before any
//! prompt is sent, bad input answered with clear statuses.

mod common;

use common::relay::{self, Tamper};
use common::{answer_text, chat_body, enclave, enclave_with, metric, Local};
use silk_client::session::{ClientError, ErrorKind, Session};
use silk_engine::EngineConfig;
use silk_protocol::attestation::checks::{claims, sim};
use silk_protocol::attestation::Policy;
use silk_protocol::wire::ErrorBody;
use silk_protocol::{seal_request, Claims, EvidenceBundle};

fn failed_check(e: &ClientError) -> String {
    match e {
        ClientError::Attestation { summary, verdict } => {
            let mut s = summary.clone();
            if let Some(v) = verdict {
                for c in v.failures() {
                    s.push(' ');
                    s.push_str(c.name);
                }
            }
            s
        }
        other => panic!("expected an attestation refusal, got {other:?}"),
    }
}

async fn stream_text(
    session: &Session,
    prompt: &str,
    max_tokens: usize,
) -> Result<String, ClientError> {
    let mut answer = session.send(&chat_body(prompt, max_tokens, true)).await?;
    assert_eq!(answer.status(), 200);
    let mut parser = silk_client::sse::SseParser::default();
    let mut text = String::new();
    let mut done = false;
    while let Some(chunk) = answer.next_chunk().await? {
        for ev in parser.push(&chunk) {
            match ev {
                silk_client::sse::SseEvent::Done => done = true,
                silk_client::sse::SseEvent::Data(d) => {
                    let v: serde_json::Value = serde_json::from_str(&d).unwrap();
                    if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
                        text.push_str(t);
                    }
                }
            }
        }
    }
    assert!(done, "the stream ends with [DONE]");
    Ok(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sealed_chat_over_ratls_answers_and_streams_the_same_text() {
    let local = enclave().await;
    let session = Session::connect(&local.https(), local.policy.clone())
        .await
        .expect("attestation accepted");
    let v = session.verified().unwrap();
    assert!(v.verdict.accepted() && v.verdict.simulated);
    assert_eq!(v.claims, local.running.claims);

    let whole = session
        .send(&chat_body(
            "What is the capital of France? Answer in one sentence.",
            24,
            false,
        ))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let text = answer_text(&whole);
    assert!(text.contains("Paris"), "answer: {text}");
    let streamed = stream_text(
        &session,
        "What is the capital of France? Answer in one sentence.",
        24,
    )
    .await
    .unwrap();
    assert_eq!(streamed, text, "greedy streamed and whole answers agree");
    assert_eq!(
        metric(local.plain(), "silk_enclave_sealed_requests_total").await,
        2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_kind_of_tampering_on_the_way_is_detected() {
    let local = enclave().await;
    let cases = [
        (Tamper::FlipRequest, "bad_seal"),
        (Tamper::FlipResponse, "seal.chunk_authentic"),
        (Tamper::DropChunk, "seal.chunk_authentic"),
        (Tamper::ReorderChunks, "seal.chunk_authentic"),
        (Tamper::ReplayChunk, "seal.chunk_authentic"),
        (Tamper::Truncate, "seal.stream_complete"),
        (Tamper::ReplayRequest, "replayed"),
    ];
    for (tamper, expect) in cases {
        let addr = relay::router(local.plain(), tamper).await;
        let session = Session::connect(&format!("http://{addr}"), local.policy.clone())
            .await
            .expect("attestation passes through the router");
        let err = stream_text(&session, "Name three colours.", 8)
            .await
            .expect_err(&format!("{tamper:?} must not yield an answer"));
        let found = match &err {
            ClientError::Integrity { check, .. } => check.to_string(),
            ClientError::Api { body, .. } => body.error.code.clone(),
            ClientError::Transport(m) if m.contains("could not open") => "bad_seal".into(),
            other => format!("{other:?}"),
        };
        assert_eq!(found, expect, "{tamper:?}: {err}");
        assert_ne!(err.kind(), ErrorKind::Attestation, "{tamper:?}");
    }
    // The untouched path still works through the same router code.
    let addr = relay::router(local.plain(), Tamper::None).await;
    let session = Session::connect(&format!("http://{addr}"), local.policy.clone())
        .await
        .unwrap();
    assert!(!stream_text(&session, "Name three colours.", 8)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_evidence_is_refused_before_any_prompt_is_sent() {
    let (pem, root) = common::dev_chain();
    let a = enclave_with(pem.clone(), root, EngineConfig::default()).await;
    let b = enclave_with(pem, root, EngineConfig::default()).await;

    // Simulated evidence under a policy that does not allow it.
    let measurement = silk_enclave::start::simulated_measurement().unwrap();
    let strict = Policy::from_toml(&format!(
        "simulated_roots = [\"{}\"]\n[snp]\nmeasurements = [\"{}\"]\nmin_tcb = {{}}\n",
        hex::encode(root),
        hex::encode(measurement)
    ))
    .unwrap();
    let e = Session::connect(&a.https(), strict).await.err().unwrap();
    assert!(failed_check(&e).contains(sim::ALLOWED.name), "{e}");

    // A stale answer to an earlier challenge.
    let stale = relay::router(a.plain(), Tamper::StaleAttestation).await;
    Session::connect(&format!("http://{stale}"), a.policy.clone())
        .await
        .expect("the first challenge is answered honestly");
    let e = Session::connect(&format!("http://{stale}"), a.policy.clone())
        .await
        .err()
        .unwrap();
    assert!(failed_check(&e).contains(claims::CHALLENGE.name), "{e}");

    // Fresh evidence from another enclave instance than the one that would get the prompt.
    let mixed = relay::router(a.plain(), Tamper::OtherEnclave(b.plain())).await;
    let e = Session::connect(&format!("http://{mixed}"), a.policy.clone())
        .await
        .err()
        .unwrap();
    assert!(failed_check(&e).contains(claims::SAME_ENCLAVE.name), "{e}");

    // A TLS server presenting A's genuine evidence under a key of its own.
    let mitm = mitm_with_evidence_of(&a).await;
    let e = Session::connect(&format!("https://{mitm}"), a.policy.clone())
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::Attestation);
    assert!(failed_check(&e).contains(claims::TLS_KEY.name), "{e}");

    for enclave in [&a, &b] {
        assert_eq!(
            metric(enclave.plain(), "silk_enclave_sealed_requests_total").await,
            0.0,
            "no sealed request reached an enclave"
        );
    }
}

/// Serves TLS with a fresh key whose certificate carries `victim`'s real evidence bundle.
async fn mitm_with_evidence_of(victim: &Local) -> std::net::SocketAddr {
    let (_, body) = relay::http_get(victim.plain(), "/v1/attestation").await;
    let bundle = EvidenceBundle::from_json(&body).unwrap();
    let identity = silk_protocol::ratls::TlsIdentity::generate().unwrap();
    let (cert, key) = identity.certificate(&bundle).unwrap();
    let config = std::sync::Arc::new(silk_protocol::ratls::server_config(cert, key).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = acceptor.accept(tcp).await;
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_gets_a_clear_status_and_never_a_panic() {
    let local = enclave().await;
    let plain = local.plain();
    let (status, _, body) = relay::http_post(plain, "/v1/sealed", vec![1; 10]).await;
    assert_eq!(status, 400);
    let err: ErrorBody = serde_json::from_slice(&body).unwrap();
    assert_eq!(err.error.code, "bad_seal");

    let mut unknown = vec![9u8; 200];
    unknown[0] = 9;
    let (status, _, body) = relay::http_post(plain, "/v1/sealed", unknown).await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("version 9"));

    let (status, _, _) = relay::http_post(plain, "/v1/sealed", vec![1; 5 << 20]).await;
    assert_eq!(status, 413);

    let (status, _) = relay::http_get(plain, "/v1/attestation?nonce=zz").await;
    assert_eq!(status, 400);

    // Malformed JSON inside a good seal: the error comes back sealed.
    let (_, base) = relay::http_get(plain, "/v1/attestation").await;
    let bundle = EvidenceBundle::from_json(&base).unwrap();
    let claims = Claims::decode(&bundle.claims.0).unwrap();
    let (wire, mut opener) = seal_request(
        &claims.hpke_public_key,
        &claims.digest().unwrap(),
        b"{not json",
        &mut silk_protocol::seal::os_rng(),
    )
    .unwrap();
    let (status, ct, body) = relay::http_post(plain, "/v1/sealed", wire).await;
    assert_eq!(
        (status, ct.as_str()),
        (400, "application/vnd.silk.sealed-stream")
    );
    let plain_err: Vec<u8> = opener
        .push(&body)
        .unwrap()
        .iter()
        .flat_map(|c| c.to_vec())
        .collect();
    opener.finish().unwrap();
    let err: ErrorBody = serde_json::from_slice(&plain_err).unwrap();
    assert_eq!(err.error.code, "bad_request");
    assert!(!String::from_utf8_lossy(&body).contains("not json"));
    // The enclave is still serving.
    let (status, _) = relay::http_get(plain, "/healthz").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_enclave_is_attested_again_before_it_gets_a_request() {
    let (pem, root) = common::dev_chain();
    let first = enclave_with(pem.clone(), root, EngineConfig::default()).await;
    let (addr, _, target) = relay::switchable_relay(first.running.addr).await;
    let session = Session::connect(&format!("https://{addr}"), first.policy.clone())
        .await
        .unwrap();
    let before = session.verified().unwrap();
    stream_text(&session, "Say hello.", 4).await.unwrap();

    // The host restarts the VM: new keys, new evidence, same address.
    let second = enclave_with(pem, root, EngineConfig::default()).await;
    *target.lock().unwrap() = second.running.addr;
    drop(first);
    stream_text(&session, "Say hello.", 4).await.unwrap();
    let after = session.verified().unwrap();
    assert_ne!(after.claims.hpke_public_key, before.claims.hpke_public_key);
    assert_eq!(after.claims, second.running.claims);
    assert_eq!(
        metric(second.plain(), "silk_enclave_sealed_requests_total").await,
        1.0,
        "the new enclave got exactly the request sealed for it"
    );
}
