//! Bad input over real sockets to a router running in this process: every refusal has
//! its code, every bound holds, and the router keeps answering.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use hyper::StatusCode;
use silk_protocol::bundle::Bytes as B64;
use silk_protocol::network::{self, Registration};
use silk_protocol::receipt::SignedOffer;
use silk_protocol::{wire, EvidenceBundle, PlatformEvidence};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn some_policy() -> silk_protocol::attestation::Policy {
    policy(&[1; 32])
}

/// A registration of the right shape whose contents are junk.
fn junk_registration(challenge: &str) -> Vec<u8> {
    let bundle = EvidenceBundle {
        version: 1,
        platform: PlatformEvidence::SevSnp {
            report: B64(vec![0; 16]),
            vek: B64(vec![0; 16]),
            ask: None,
            ark: None,
        },
        claims: B64(vec![0; 16]),
        gpus: vec![],
    };
    serde_json::to_vec(&Registration {
        challenge: challenge.into(),
        fresh: bundle.clone(),
        base: bundle,
        model: "m".into(),
        offer: SignedOffer {
            body: B64(vec![1]),
            signature: B64(vec![2]),
        },
        address: "127.0.0.1:1".into(),
    })
    .unwrap()
}

#[tokio::test]
async fn malformed_registrations_are_refused_by_name() {
    let r = router(config(some_policy())).await;
    let a = r.addr;

    let (status, body) = post_json(a, network::PATH_WORKERS, b"{not json".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(code(&body), "bad_json");
    assert!(
        message(&body).contains("key must be a string"),
        "{}",
        message(&body)
    );

    let (status, body) =
        post_json(a, network::PATH_WORKERS, br#"{"challenge":"00"}"#.to_vec()).await;
    assert_eq!(
        (status, code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "bad_json")
    );
    assert!(
        message(&body).contains("missing field"),
        "{}",
        message(&body)
    );

    // Right shape, a challenge the router never issued.
    let (status, body) = post_json(
        a,
        network::PATH_WORKERS,
        junk_registration(&"ab".repeat(32)),
    )
    .await;
    assert_eq!(
        (status, code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "bad_challenge")
    );
    let (status, body) = post_json(a, network::PATH_WORKERS, junk_registration("zz")).await;
    assert_eq!(
        (status, code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "bad_challenge")
    );

    // A real challenge, junk evidence; the challenge is then used up.
    let (status, body) = get(a, network::PATH_CHALLENGE).await;
    assert_eq!(status, StatusCode::OK);
    let ch: network::Challenge = serde_json::from_slice(&body).unwrap();
    assert_eq!(ch.expires_in, 60);
    assert_eq!(ch.heartbeat_secs, 30);
    let (status, body) =
        post_json(a, network::PATH_WORKERS, junk_registration(&ch.challenge)).await;
    assert_eq!(
        (status, code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "bad_bundle")
    );
    let (status, body) =
        post_json(a, network::PATH_WORKERS, junk_registration(&ch.challenge)).await;
    assert_eq!(
        (status, code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "bad_challenge")
    );

    // Declared too large, then sent too large without a length.
    let big = vec![b' '; network::MAX_REGISTRATION + 1];
    let (status, body) = post_json(a, network::PATH_WORKERS, big.clone()).await;
    assert_eq!(
        (status, code(&body).as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
    );
    let chunked = futures_body(big);
    let req = request(a, "POST", network::PATH_WORKERS)
        .body(chunked)
        .unwrap();
    let (status, _, body) = exchange_stream(a, req).await;
    assert_eq!(
        (status, code(&body).as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
    );

    assert_eq!(
        metric(a, "silk_router_registrations_total", &["bad_json"]).await,
        2.0
    );
    assert_eq!(
        metric(a, "silk_router_registrations_total", &["too_large"]).await,
        2.0
    );
    assert_eq!(
        metric(
            a,
            "silk_router_requests_total",
            &["endpoint=\"register\"", "bad_challenge"]
        )
        .await,
        3.0
    );
}

type Frames = std::vec::IntoIter<Result<hyper::body::Frame<Bytes>, std::io::Error>>;

/// A body sent in chunks, with no declared length.
fn futures_body(bytes: Vec<u8>) -> http_body_util::StreamBody<tokio_stream::Iter<Frames>> {
    let frames: Vec<_> = bytes
        .chunks(64 << 10)
        .map(|c| Ok(hyper::body::Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    http_body_util::StreamBody::new(tokio_stream::iter(frames))
}

async fn exchange_stream<B>(
    addr: std::net::SocketAddr,
    req: hyper::Request<B>,
) -> (StatusCode, hyper::HeaderMap, Vec<u8>)
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use http_body_util::BodyExt;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let r = sender.send_request(req).await.unwrap();
    let (status, headers) = (r.status(), r.headers().clone());
    let body = r.into_body().collect().await.unwrap().to_bytes().to_vec();
    (status, headers, body)
}

#[tokio::test]
async fn sealed_requests_must_name_a_listed_worker() {
    let r = router(config(some_policy())).await;
    let a = r.addr;
    let sealed = |worker: Option<&str>| {
        let mut b = request(a, "POST", wire::PATH_SEALED)
            .header(hyper::header::CONTENT_TYPE, wire::SEALED_REQUEST_TYPE);
        if let Some(w) = worker {
            b = b.header(network::HEADER_WORKER, w);
        }
        b.body(Full::new(Bytes::from(vec![1u8; 1000]))).unwrap()
    };
    let (status, _, body) = exchange(a, sealed(None)).await;
    assert_eq!(
        (status, code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "missing_worker")
    );
    let (status, _, body) = exchange(a, sealed(Some("not-an-id"))).await;
    assert_eq!(
        (status, code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "missing_worker")
    );
    let (status, _, body) = exchange(a, sealed(Some(&"cd".repeat(32)))).await;
    assert_eq!(
        (status, code(&body).as_str()),
        (StatusCode::NOT_FOUND, "unknown_worker")
    );

    let (status, body) = get(a, &network::attestation_path(&"cd".repeat(32))).await;
    assert_eq!(
        (status, code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "bad_nonce")
    );
    let path = format!("{}?nonce=00ff", network::attestation_path(&"cd".repeat(32)));
    let (status, body) = get(a, &path).await;
    assert_eq!(
        (status, code(&body).as_str()),
        (StatusCode::NOT_FOUND, "unknown_worker")
    );
    let path = format!(
        "{}?nonce={}",
        network::attestation_path(&"cd".repeat(32)),
        "00".repeat(65)
    );
    let (status, body) = get(a, &path).await;
    assert_eq!(
        (status, code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "bad_nonce")
    );

    let (status, body) = get(a, "/v1/workers?model=x").await;
    assert_eq!(status, StatusCode::OK);
    let list: network::WorkerList = serde_json::from_slice(&body).unwrap();
    assert!(list.workers.is_empty());
    let (status, body) = get(a, "/nope").await;
    assert_eq!(
        (status, code(&body).as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    assert_eq!(
        metric(
            a,
            "silk_router_requests_total",
            &["endpoint=\"sealed\"", "missing_worker"]
        )
        .await,
        2.0
    );
}

#[tokio::test]
async fn challenges_are_bounded() {
    let mut c = config(some_policy());
    c.max_challenges = 2;
    let r = router(c).await;
    for _ in 0..2 {
        assert_eq!(get(r.addr, network::PATH_CHALLENGE).await.0, StatusCode::OK);
    }
    let req = request(r.addr, "GET", network::PATH_CHALLENGE)
        .body(Full::default())
        .unwrap();
    let (status, headers, body) = exchange(r.addr, req).await;
    assert_eq!(
        (status, code(&body).as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "challenges_full")
    );
    assert_eq!(headers.get("retry-after").unwrap(), "1");
}

#[tokio::test]
async fn a_slow_request_head_is_closed_at_its_deadline_and_counted() {
    let mut c = config(some_policy());
    c.limits.request_head = Duration::from_secs(1);
    let r = router(c).await;
    let mut tcp = TcpStream::connect(r.addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHo").await.unwrap();
    let started = Instant::now();
    // One byte a while, slower than the deadline allows.
    let mut buf = [0u8; 256];
    let closed = loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if tcp.write_all(b"s").await.is_err() {
            break true;
        }
        match tokio::time::timeout(Duration::from_millis(10), tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(_)) => panic!("the router answered an incomplete head"),
            Err(_) if started.elapsed() > Duration::from_secs(10) => break false,
            Err(_) => {}
        }
    };
    assert!(closed, "the slow head was not closed");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "closed after {took:?}");
    assert!(
        eventually(Duration::from_secs(3), || async {
            metric(
                r.addr,
                "silk_router_deadline_closures_total",
                &["RequestHead"],
            )
            .await
                >= 1.0
        })
        .await,
        "the closure was not counted"
    );
    println!("slow-loris head closed after {:.1} s", took.as_secs_f64());
}

/// The soft open-files limit of this process (the router raised it to the hard limit).
fn open_files_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        })
        .unwrap_or(1024)
}

/// `wanted` connections, or as many as this process's descriptors allow (said when fewer).
fn how_many(wanted: usize, per_connection: usize) -> usize {
    let n = wanted.min(open_files_limit().saturating_sub(256) / per_connection);
    if n < wanted {
        println!(
            "only {n} connections: the open-files limit is {}",
            open_files_limit()
        );
    }
    n
}

#[tokio::test]
async fn ten_thousand_idle_connections_do_not_starve_health() {
    let mut c = config(some_policy());
    c.limits.max_connections = Some(64);
    let r = router(c).await;
    assert_eq!(r.cap, 64);
    // Only the client's side stays open: the router holds at most 64.
    let wanted = how_many(10_000, 1);
    let before = rss_kib();
    let mut idle = Vec::with_capacity(wanted);
    for _ in 0..wanted {
        idle.push(TcpStream::connect(r.addr).await.expect("connect"));
    }
    const CAP: usize = 64;
    let idle_count = idle.len();
    // Health still answers, through the cap, with every idle peer holding on.
    let started = Instant::now();
    let (status, body) = get(r.addr, "/healthz").await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["workers"], 0);
    let health_ms = started.elapsed().as_millis();
    let text = String::from_utf8_lossy(&get(r.addr, "/metrics").await.1).into_owned();
    let evicted = sum_metric(&text, "silk_router_connections_evicted_total", &[]);
    let open = sum_metric(&text, "silk_router_open_connections", &[]);
    assert!(evicted >= (idle_count - CAP) as f64, "evicted {evicted}");
    assert!(open <= CAP as f64, "open {open}");
    let after = rss_kib();
    println!(
        "{idle_count} idle connections (cap {CAP}): /healthz in {health_ms} ms, {evicted} evicted, \
         {open} open; RSS of the test process (router in-process) {after} KiB \
         ({:+} KiB since before the connections)",
        after as i64 - before as i64
    );
    drop(idle);
}

#[tokio::test]
async fn thousands_of_held_idle_connections_cost_little_memory() {
    let mut c = config(some_policy());
    c.limits.max_connections = Some(8_192);
    c.limits.request_head = Duration::from_secs(60);
    let r = router(c).await;
    // Both ends are in this process.
    let idle_n = how_many(4_000, 2);
    let before = rss_kib();
    let mut idle = Vec::with_capacity(idle_n);
    for _ in 0..idle_n {
        idle.push(TcpStream::connect(r.addr).await.expect("connect"));
    }
    // Every one is held open by the router (none evicted below the cap).
    assert!(
        eventually(Duration::from_secs(5), || async {
            metric(r.addr, "silk_router_open_connections", &[]).await >= idle_n as f64
        })
        .await,
        "the idle connections were not all accepted"
    );
    let (status, _) = get(r.addr, "/healthz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        metric(r.addr, "silk_router_connections_evicted_total", &[]).await,
        0.0
    );
    let after = rss_kib();
    println!(
        "{idle_n} idle connections held open (cap 8192): RSS of the test process (router \
         in-process) {after} KiB, {:+} KiB for the connections (~{} bytes each)",
        after as i64 - before as i64,
        (after.saturating_sub(before) * 1024) / idle_n.max(1) as u64
    );
    drop(idle);
}
