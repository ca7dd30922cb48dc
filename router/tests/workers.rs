//! Real workers: in-process enclaves with simulated evidence register with a router in
//! this process (by hand, and through the enclave's own registration loop), are listed,
//! and serve sealed requests through it that only the client can open.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use silk_protocol::attestation::checks::offer;
use silk_protocol::network::{self, Registered, Registration, WorkerList};
use silk_protocol::receipt::{Receipt, SignedOffer};
use silk_protocol::{seal_request, wire, Claims, EvidenceBundle, StreamOpener};

/// What a worker would post, gathered from an enclave's plain listener by hand.
async fn gather(router: SocketAddr, enclave: &silk_enclave::start::Running) -> Registration {
    let (status, body) = get(router, network::PATH_CHALLENGE).await;
    assert_eq!(status, StatusCode::OK);
    let ch: network::Challenge = serde_json::from_slice(&body).unwrap();
    let plain = enclave.plain_addr.expect("plain listener");
    let path = format!("{}?nonce={}", wire::PATH_ATTESTATION, ch.challenge);
    let (status, fresh) = get(plain, &path).await;
    assert_eq!(status, StatusCode::OK);
    let (_, base) = get(plain, wire::PATH_ATTESTATION).await;
    let (status, offer) = get(plain, network::PATH_OFFER).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&offer)
    );
    Registration {
        challenge: ch.challenge,
        fresh: EvidenceBundle::from_json(&fresh).unwrap(),
        base: EvidenceBundle::from_json(&base).unwrap(),
        model: "smollm2".into(),
        offer: serde_json::from_slice::<SignedOffer>(&offer).unwrap(),
        address: enclave.addr.to_string(),
    }
}

async fn register(router: SocketAddr, reg: &Registration) -> (StatusCode, Vec<u8>) {
    post_json(
        router,
        network::PATH_WORKERS,
        serde_json::to_vec(reg).unwrap(),
    )
    .await
}

fn chat(max_tokens: usize) -> Vec<u8> {
    serde_json::json!({
        "model": "smollm2",
        "messages": [{"role": "user", "content": "Name three colours."}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": true,
    })
    .to_string()
    .into_bytes()
}

/// Seals `body` to `claims` and sends it through the router to worker `id`.
async fn send_sealed(
    router: SocketAddr,
    id: &str,
    claims: &Claims,
    offer: Option<&SignedOffer>,
    body: &[u8],
) -> (hyper::Response<hyper::body::Incoming>, StreamOpener) {
    let digest = claims.digest().unwrap();
    let (sealed, opener) = seal_request(
        &claims.hpke_public_key,
        &digest,
        body,
        &mut silk_protocol::seal::os_rng(),
    )
    .unwrap();
    let mut req = request(router, "POST", wire::PATH_SEALED)
        .header(hyper::header::CONTENT_TYPE, wire::SEALED_REQUEST_TYPE)
        .header(network::HEADER_WORKER, id);
    if let Some(o) = offer {
        req = req.header(network::HEADER_OFFER, hex::encode(o.digest()));
    }
    let response = send(router, req.body(Full::new(Bytes::from(sealed))).unwrap()).await;
    (response, opener)
}

/// Reads a sealed answer whole and opens it: the plaintext and the opener.
async fn open_all(
    response: hyper::Response<hyper::body::Incoming>,
    mut opener: StreamOpener,
) -> (String, StreamOpener) {
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers().get(hyper::header::CONTENT_TYPE).unwrap(),
        wire::SEALED_STREAM_TYPE
    );
    let mut body = response.into_body();
    let mut text = String::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("frame").into_data() {
            for plain in opener.push(&data).expect("chunk opens") {
                text.push_str(&String::from_utf8_lossy(&plain));
            }
        }
    }
    opener
        .finish()
        .expect("the stream ended with its last chunk");
    (text, opener)
}

async fn listed(router: SocketAddr, model: &str) -> WorkerList {
    let (status, body) = get(router, &format!("{}?model={model}", network::PATH_WORKERS)).await;
    assert_eq!(status, StatusCode::OK);
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_worker_is_listed_and_serves_sealed_requests_through_the_router() {
    let (pem, root) = dev_chain();
    let dir = tempfile::tempdir().unwrap();
    let receipts = dir.path().join("receipts.jsonl");
    let mut c = config(policy(&root));
    c.receipts = Some(receipts.clone());
    let r = router(c).await;
    let e = enclave(pem, vec![]).await;
    let id = hex::encode(e.claims.digest().unwrap());

    let reg = gather(r.addr, &e).await;
    let (status, body) = register(r.addr, &reg).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let registered: Registered = serde_json::from_slice(&body).unwrap();
    assert_eq!(registered.id, id);
    assert_eq!(registered.heartbeat_secs, 30);
    // The same challenge twice: refused.
    let (status, body) = register(r.addr, &reg).await;
    assert_eq!(
        (status, code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "bad_challenge")
    );
    // Re-registration refreshes the one entry.
    let (status, _) = register(r.addr, &gather(r.addr, &e).await).await;
    assert_eq!(status, StatusCode::OK);

    let list = listed(r.addr, "smollm2").await;
    assert_eq!(list.workers.len(), 1);
    let entry = &list.workers[0];
    assert_eq!(entry.id, id);
    assert_eq!(entry.bundle, reg.base);
    assert_eq!(entry.offer, reg.offer);
    assert_eq!(entry.load.in_flight, 0);
    assert!(listed(r.addr, "other").await.workers.is_empty());

    // Fresh evidence through the router, over the worker's RA-TLS connection.
    let path = format!("{}?nonce=0a0b0c", network::attestation_path(&id));
    let (status, body) = get(r.addr, &path).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let fresh = EvidenceBundle::from_json(&body).unwrap();
    assert_eq!(
        Claims::decode(&fresh.claims.0).unwrap().challenge,
        vec![10, 11, 12]
    );

    // A sealed request through the router: only this client opens the answer.
    let (response, opener) =
        send_sealed(r.addr, &id, &e.claims, Some(&entry.offer), &chat(12)).await;
    let (text, opener) = open_all(response, opener).await;
    assert!(text.contains("data: "), "{text}");
    let receipt = opener
        .receipt()
        .expect("a receipt ends the answer")
        .to_vec();
    assert_eq!(opener.clear_receipt(), Some(receipt.as_slice()));
    let verified = Receipt::verify(&receipt, &e.claims.receipt_public_key).unwrap();
    assert!(verified.completion_tokens > 0);
    assert_eq!(verified.offer_digest, entry.offer.digest());

    assert!(
        eventually(Duration::from_secs(5), || async {
            metric(r.addr, "silk_router_receipts_seen_total", &[]).await == 1.0
        })
        .await,
        "the receipt was not counted"
    );
    assert_eq!(
        metric(r.addr, "silk_router_receipts_invalid_total", &[]).await,
        0.0
    );
    let short = format!("worker=\"{}\"", &id[..16]);
    assert_eq!(
        metric(r.addr, "silk_router_first_byte_seconds_count", &[&short]).await,
        1.0
    );
    assert!(metric(r.addr, "silk_router_bytes_down_total", &[]).await > 0.0);
    assert_eq!(
        metric(
            r.addr,
            "silk_router_requests_total",
            &["endpoint=\"sealed\"", "outcome=\"ok\""]
        )
        .await,
        1.0
    );
    let load = &listed(r.addr, "smollm2").await.workers[0].load;
    assert_eq!(load.in_flight, 0);
    let expected = f64::from(verified.completion_tokens) / 60.0;
    assert!((load.tokens_per_s - expected).abs() < 1e-9, "{load:?}");

    // The receipt log has the line, written off the stream's path.
    assert!(
        eventually(Duration::from_secs(5), || async {
            std::fs::read_to_string(&receipts).is_ok_and(|t| t.lines().count() == 1)
        })
        .await
    );
    let line: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&receipts).unwrap().trim()).unwrap();
    assert_eq!(line["worker"], id.as_str());
    assert_eq!(line["receipt"], hex::encode(&receipt).as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_that_fail_a_check_are_refused_naming_it() {
    let (pem, root) = dev_chain();
    let a = enclave(pem.clone(), vec![]).await;
    let b = enclave(pem, vec![]).await;

    // A router whose policy pins another development root.
    let (_, other_root) = dev_chain();
    let strict = router(config(policy(&other_root))).await;
    let (status, body) = register(strict.addr, &gather(strict.addr, &a).await).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(code(&body), "admission_refused");
    assert!(
        message(&body).contains("failed checks:"),
        "{}",
        message(&body)
    );
    assert!(message(&body).contains("sim"), "{}", message(&body));

    let r = router(config(policy(&root))).await;
    let refused = |reg: Registration,
                   want_status: StatusCode,
                   want_code: &'static str,
                   word: &'static str| {
        let addr = r.addr;
        async move {
            let (status, body) = register(addr, &reg).await;
            assert_eq!(
                (status, code(&body).as_str()),
                (want_status, want_code),
                "{}",
                String::from_utf8_lossy(&body)
            );
            assert!(message(&body).contains(word), "{}", message(&body));
        }
    };

    // An offer signed by another worker's key.
    let mut reg = gather(r.addr, &a).await;
    reg.offer = gather(r.addr, &b).await.offer;
    refused(
        reg,
        StatusCode::BAD_REQUEST,
        "bad_offer",
        offer::SIGNATURE.name,
    )
    .await;
    // The offer is for another model than the registration names.
    let mut reg = gather(r.addr, &a).await;
    reg.model = "another-model".into();
    refused(reg, StatusCode::BAD_REQUEST, "bad_offer", offer::MODEL.name).await;
    // Fresh evidence of one enclave, base of another.
    let mut reg = gather(r.addr, &a).await;
    reg.base = gather(r.addr, &b).await.base;
    refused(
        reg,
        StatusCode::FORBIDDEN,
        "claims_mismatch",
        "hpke_public_key",
    )
    .await;
    // Evidence that does not answer the challenge.
    let mut reg = gather(r.addr, &a).await;
    reg.fresh = reg.base.clone();
    refused(
        reg,
        StatusCode::FORBIDDEN,
        "admission_refused",
        silk_protocol::attestation::checks::claims::CHALLENGE.name,
    )
    .await;
    // Not host:port.
    let mut reg = gather(r.addr, &a).await;
    reg.address = "http://x".into();
    refused(reg, StatusCode::BAD_REQUEST, "bad_address", "host:port").await;
    // Nothing listens there.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut reg = gather(r.addr, &a).await;
    reg.address = closed.local_addr().unwrap().to_string();
    drop(closed);
    refused(
        reg,
        StatusCode::BAD_GATEWAY,
        "worker_unreachable",
        "connect",
    )
    .await;
    // Another worker's listener: its RA-TLS claims are not this registration's.
    let mut reg = gather(r.addr, &a).await;
    reg.address = b.addr.to_string();
    refused(reg, StatusCode::BAD_GATEWAY, "worker_mismatch", "worker id").await;

    assert!(listed(r.addr, "smollm2").await.workers.is_empty());
    for (outcome, n) in [
        ("bad_offer", 2.0),
        ("claims_mismatch", 1.0),
        ("admission_refused", 1.0),
        ("worker_unreachable", 1.0),
        ("worker_mismatch", 1.0),
    ] {
        let label = format!("name=\"{outcome}\"");
        assert_eq!(
            metric(r.addr, "silk_router_registrations_total", &[&label]).await,
            n,
            "{outcome}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_workers_refuse_and_stopped_workers_are_unlisted() {
    let (pem, root) = dev_chain();
    let mut c = config(policy(&root));
    c.heartbeat = Duration::from_secs(1);
    c.worker_concurrency = 1;
    let r = router(c).await;
    // The enclave registers itself and keeps re-registering every heartbeat.
    let e = enclave(pem, vec![format!("http://{}", r.addr)]).await;
    let id = hex::encode(e.claims.digest().unwrap());
    assert!(
        eventually(Duration::from_secs(20), || async {
            listed(r.addr, "smollm2").await.workers.len() == 1
        })
        .await,
        "the worker did not register itself"
    );
    // Still listed after several heartbeats: re-registration keeps it there.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(listed(r.addr, "smollm2").await.workers.len(), 1);

    // One request in flight fills the worker's single slot.
    let (first, _opener) = send_sealed(r.addr, &id, &e.claims, None, &chat(400)).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(listed(r.addr, "smollm2").await.workers[0].load.in_flight, 1);
    let (second, _) = send_sealed(r.addr, &id, &e.claims, None, &chat(4)).await;
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(second.headers().get("retry-after").unwrap(), "1");
    let body = second.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(code(&body), "worker_busy");
    // The client goes away mid-answer: the slot comes back.
    drop(first);
    assert!(
        eventually(Duration::from_secs(5), || async {
            listed(r.addr, "smollm2").await.workers[0].load.in_flight == 0
        })
        .await,
        "the slot was not given back"
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            metric(r.addr, "silk_router_requests_total", &["client_gone"]).await == 1.0
        })
        .await
    );
    let (again, opener) = send_sealed(r.addr, &id, &e.claims, None, &chat(4)).await;
    open_all(again, opener).await;

    // The worker stops: it misses its heartbeats and is unlisted.
    let claims = e.claims.clone();
    drop(e);
    assert!(
        eventually(Duration::from_secs(8), || async {
            listed(r.addr, "smollm2").await.workers.is_empty()
        })
        .await,
        "the stopped worker stayed listed"
    );
    let unlisted = metric(r.addr, "silk_router_unlisted_total", &[]).await;
    assert_eq!(unlisted, 1.0);
    let (refused, _) = send_sealed(r.addr, &id, &claims, None, &chat(4)).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.headers().get("retry-after").is_some());
    let body = refused.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(code(&body), "worker_unlisted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_worker_is_cut_at_each_deadline_and_an_unreachable_one_unlisted() {
    let (pem, root) = dev_chain();
    let mut c = config(policy(&root));
    c.first_byte_timeout = Duration::from_secs(1);
    c.idle_timeout = Duration::from_secs(1);
    let r = router(c).await;
    let e = enclave(pem, vec![]).await;
    let id = hex::encode(e.claims.digest().unwrap());
    // The router reaches the worker through a relay that can stall it.
    let relay = Relay::start(e.addr).await;
    let mut reg = gather(r.addr, &e).await;
    reg.address = relay.addr.to_string();
    let (status, body) = register(r.addr, &reg).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));

    // No response head within the first-byte deadline: 504, named.
    relay.hold(true);
    let (response, _) = send_sealed(r.addr, &id, &e.claims, None, &chat(4)).await;
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(code(&body), "first_byte_timeout");
    relay.hold(false);

    // The answer starts, then stalls: it is cut after the idle deadline and the client
    // holds a truncated sealed stream.
    let (response, mut opener) = send_sealed(r.addr, &id, &e.claims, None, &chat(400)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let first = body.frame().await.expect("a first chunk").expect("frame");
    opener.push(first.data_ref().unwrap()).expect("it opens");
    relay.hold(true);
    let started = std::time::Instant::now();
    let cut = loop {
        match body.frame().await {
            Some(Ok(f)) => {
                if let Some(d) = f.data_ref() {
                    opener.push(d).expect("chunks open");
                }
            }
            Some(Err(_)) => break true,
            None => break false,
        }
    };
    assert!(cut, "the stalled answer ended as if complete");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        opener.finish().is_err(),
        "the client must see a truncated stream"
    );
    assert!(
        eventually(Duration::from_secs(3), || async {
            metric(r.addr, "silk_router_errors_total", &["idle_timeout"]).await == 1.0
        })
        .await
    );
    assert_eq!(
        metric(r.addr, "silk_router_errors_total", &["first_byte_timeout"]).await,
        1.0
    );
    assert_eq!(
        metric(
            r.addr,
            "silk_router_requests_total",
            &["endpoint=\"sealed\"", "idle_timeout"]
        )
        .await,
        1.0
    );
    assert_eq!(listed(r.addr, "smollm2").await.workers[0].load.in_flight, 0);

    // The worker becomes unreachable: the router unlists it and the client hears 502,
    // then 503 with a retry hint.
    relay.stop();
    let (response, _) = send_sealed(r.addr, &id, &e.claims, None, &chat(4)).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(code(&body), "worker_unreachable");
    assert!(listed(r.addr, "smollm2").await.workers.is_empty());
    assert_eq!(
        metric(r.addr, "silk_router_unlisted_total", &["forward_failed"]).await,
        1.0
    );
    let (response, _) = send_sealed(r.addr, &id, &e.claims, None, &chat(4)).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}
