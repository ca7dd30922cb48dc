//! The silk network end to end: workers register with routers, clients list them through
//! the routers, verify each one themselves, seal to the one they choose and check the
//! receipt that ends every answer. Routers are untrusted: a recording relay on each side
//! of them sees no plaintext, and a malicious router is caught by named checks.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::evil::{evil_router, Evil};
use common::relay::{http_get, switchable_relay, Recording};
use common::{chat_body, dev_chain, Local};
use silk_client::network::{Network, NetworkOptions};
use silk_client::ClientError;
use silk_enclave::worker::WorkerConfig;
use silk_protocol::attestation::checks::receipt;
use silk_protocol::attestation::Policy;
use silk_protocol::network::WorkerList;

/// Routers and workers of one test network.
struct Net {
    routers: Vec<silk_router::Running>,
    workers: Vec<Local>,
    policy: Policy,
    /// Recordings of the router→worker relays (when asked for).
    worker_links: Vec<Arc<std::sync::Mutex<Recording>>>,
    /// Where the routers write the receipts they see.
    dir: tempfile::TempDir,
}

/// Receipts the routers wrote, and their completion tokens.
fn router_receipts(net: &Net) -> (usize, u64) {
    let (mut count, mut tokens) = (0, 0u64);
    for i in 0..net.routers.len() {
        let text = std::fs::read_to_string(net.dir.path().join(format!("router-{i}.jsonl")))
            .unwrap_or_default();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let signed = hex::decode(v["receipt"].as_str().unwrap()).unwrap();
            let r = silk_protocol::receipt::Receipt::decode(&signed[..signed.len() - 64]).unwrap();
            count += 1;
            tokens += u64::from(r.completion_tokens);
        }
    }
    (count, tokens)
}

impl Net {
    fn router_url(&self, i: usize) -> String {
        format!("http://{}", self.routers[i].addr)
    }

    fn client(&self, routers: Vec<String>) -> Network {
        self.client_spread(routers, 1)
    }

    fn client_spread(&self, routers: Vec<String>, spread: usize) -> Network {
        Network::new(
            self.policy.clone(),
            NetworkOptions {
                routers,
                model: Some("smollm2".into()),
                max_price: None,
                spread,
                session: Default::default(),
            },
        )
        .expect("network client")
    }
}

fn worker_config(routers: &[String], advertise: Option<String>, price: u64) -> WorkerConfig {
    WorkerConfig {
        payout_address: "EQ-test-owner".into(),
        price_prompt: price,
        price_completion: 2 * price,
        offer_ttl: None,
        register: routers.to_vec(),
        advertise,
    }
}

/// Starts `routers` routers and `workers` workers registered with all of them; with
/// `record`, each worker is reached through a recording relay.
async fn network(workers: usize, routers: usize, record: bool) -> Net {
    network_with(workers, routers, record, Duration::from_secs(2)).await
}

async fn network_with(workers: usize, routers: usize, record: bool, heartbeat: Duration) -> Net {
    let (pem, root) = dev_chain();
    let measurement = silk_enclave::start::simulated_measurement().unwrap();
    let policy = silk_tools::demo::demo_policy(&root, &measurement).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut rs = Vec::new();
    for i in 0..routers {
        let mut c = silk_router::Config::new(policy.clone());
        c.listen = "127.0.0.1:0".parse().unwrap();
        c.heartbeat = heartbeat;
        c.receipts = Some(dir.path().join(format!("router-{i}.jsonl")));
        rs.push(silk_router::start(c).await.expect("router starts"));
    }
    let urls: Vec<String> = rs.iter().map(|r| format!("http://{}", r.addr)).collect();
    let mut ws = Vec::new();
    let mut links = Vec::new();
    for _ in 0..workers {
        let relay = if record {
            let dummy: SocketAddr = "127.0.0.1:9".parse().unwrap();
            Some(switchable_relay(dummy).await)
        } else {
            None
        };
        let advertise = relay.as_ref().map(|(a, _, _)| a.to_string());
        let w = common::worker(pem.clone(), root, worker_config(&urls, advertise, 1000)).await;
        if let Some((_, rec, target)) = relay {
            *target.lock().unwrap() = w.running.addr;
            links.push(rec);
        }
        ws.push(w);
    }
    let net = Net {
        routers: rs,
        workers: ws,
        policy,
        worker_links: links,
        dir,
    };
    for r in &net.routers {
        wait_listed(r.addr, workers, Duration::from_secs(30)).await;
    }
    net
}

async fn listed(router: SocketAddr) -> WorkerList {
    let (status, body) = http_get(router, "/v1/workers?model=smollm2").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

async fn wait_listed(router: SocketAddr, n: usize, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if listed(router).await.workers.len() == n {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "router {router} did not list {n} workers within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asks `prompt` greedily (non-streamed) and returns the text and the receipt's counts.
async fn ask(net: &Network, prompt: &str, max_tokens: usize) -> Result<(String, u32), ClientError> {
    let answer = net.send(&chat_body(prompt, max_tokens, false)).await?;
    let (plain, receipt) = answer.collect_with_receipt().await?;
    let v: serde_json::Value = serde_json::from_slice(&plain).unwrap();
    let usage = v["usage"]["completion_tokens"].as_u64().unwrap() as u32;
    assert_eq!(receipt.receipt.completion_tokens, usage);
    Ok((common::answer_text(&plain), usage))
}

const PROMPT: &str = "Describe the lighthouse keeper Marisol-Quenby-2291 in one sentence.";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_workers_two_routers_verified_answers_and_no_plaintext_on_the_path() {
    let logs = common::capture_logs();
    let net = network(3, 2, true).await;
    let mut up_links = Vec::new();
    let mut answers = Vec::new();
    for i in 0..2 {
        let (via, rec) = common::relay::recording_relay(net.routers[i].addr).await;
        up_links.push(rec);
        let client = net.client(vec![format!("http://{via}")]);
        let candidates = client.candidates().await.unwrap();
        assert_eq!(candidates.len(), 3, "every worker verified by the client");
        for _ in 0..2 {
            answers.push(ask(&client, PROMPT, 24).await.expect("answer").0);
        }
        // A streamed answer too: its receipt counts at least its content events.
        let mut a = client.send(&chat_body(PROMPT, 24, true)).await.unwrap();
        while a.next_chunk().await.unwrap().is_some() {}
        assert!(a.receipt().is_some());
    }
    // Greedy answers are the same whichever worker gave them.
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    let secrets = common::secrets(PROMPT, "Marisol-Quenby-2291", &answers[0]);
    // Routers, workers and clients log (at every level, in this process) no content either.
    common::assert_no_leak(&logs.0.lock().unwrap(), &secrets, "logs");
    let links: Vec<_> = up_links.iter().chain(&net.worker_links).collect();
    assert_eq!(links.len(), 5);
    for link in links {
        let rec = link.lock().unwrap();
        common::assert_no_leak(&rec.up, &secrets, "bytes towards a worker");
        common::assert_no_leak(&rec.down, &secrets, "bytes from a worker");
    }
    // The routers saw the receipts in clear, verified and counted them.
    let mut counted = 0.0;
    for r in &net.routers {
        counted += common::metric(r.addr, "silk_router_receipts_seen").await;
    }
    assert_eq!(counted, 6.0, "routers counted {counted} receipts");
}

fn check_of(e: &ClientError) -> String {
    match e {
        ClientError::Integrity { check, .. } => check.to_string(),
        other => other.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_malicious_router_is_caught_by_named_checks() {
    let net = network(2, 1, false).await;
    let list = listed(net.routers[0].addr).await;
    let (a, b) = (list.workers[0].clone(), list.workers[1].clone());
    let upstream = net.routers[0].addr;
    let client_of = |addr: SocketAddr| net.client(vec![format!("http://{addr}")]);

    // The control: an honest double passes answers through.
    let (honest, _) = evil_router(upstream, Evil::Honest).await;
    ask(&client_of(honest), PROMPT, 8)
        .await
        .expect("honest router");

    // Another worker's evidence under a worker's id: refused as `worker.id`.
    let (addr, _) = evil_router(
        upstream,
        Evil::ForeignBundle {
            victim: a.id.clone(),
            bundle: Box::new(b.bundle.clone()),
        },
    )
    .await;
    let client = client_of(addr);
    let err = ask(&client, PROMPT, 8).await.unwrap_err();
    assert!(err.to_string().contains("worker.id"), "{err}");
    assert_eq!(client.dropped()[0].check, "worker.id");

    // Everything it does to the answer is caught, and named.
    let cases = [
        (Evil::AlterClearReceipt, receipt::CLEAR_COPY.name),
        (Evil::InflateClearReceipt, receipt::CLEAR_COPY.name),
        (Evil::DropReceipt, "seal.stream_complete"),
        (Evil::DuplicateReceipt, "seal.nothing_after_last"),
        (Evil::Reorder, "seal.chunk_authentic"),
        (Evil::Truncate, "seal.stream_complete"),
    ];
    for (evil, check) in cases {
        let (addr, _) = evil_router(upstream, evil.clone()).await;
        let err = ask(&client_of(addr), PROMPT, 8)
            .await
            .expect_err(&format!("{evil:?} must not pass"));
        assert_eq!(check_of(&err), check, "{evil:?}: {err}");
    }
    // A receipt from an earlier answer spliced into a later one.
    let (addr, _) = evil_router(upstream, Evil::SwapReceipt).await;
    let client = client_of(addr);
    ask(&client, PROMPT, 4).await.expect("first answer passes");
    let err = ask(&client, PROMPT, 4).await.unwrap_err();
    assert_eq!(check_of(&err), "seal.chunk_authentic", "{err}");

    // Sent to another worker than the one sealed to: that worker cannot open it, and the
    // client fails over; nothing wrong is shown as genuine.
    let (addr, _) = evil_router(upstream, Evil::Redirect(b.id.clone())).await;
    let (only_a, _) = evil_router(addr, Evil::Only(a.id.clone())).await;
    let bad_seals = bad_seals(&net).await;
    let err = ask(&client_of(only_a), PROMPT, 8).await.unwrap_err();
    assert!(err.to_string().contains("bad_seal"), "{err}");
    let after = self::bad_seals(&net).await;
    assert_eq!(after - bad_seals, 1.0, "the other worker could not open it");
    // With both listed, the client fails over until a worker can open what it gets.
    ask(&client_of(addr), PROMPT, 8)
        .await
        .expect("fails over to the worker it reached");

    // Replayed to the same worker and to another: both copies refused, one receipt.
    for to in [a.id.clone(), b.id.clone()] {
        let (addr, replays) = evil_router(upstream, Evil::Replay(to)).await;
        let before = receipts_signed(&net).await;
        let (addr_only, _) = evil_router(addr, Evil::Only(a.id.clone())).await;
        ask(&client_of(addr_only), PROMPT, 4)
            .await
            .expect("genuine answer");
        let statuses = replays.lock().unwrap().clone();
        assert_eq!(statuses.len(), 1);
        assert!(
            matches!(statuses[0], 400 | 409),
            "replay answered {statuses:?}"
        );
        assert_eq!(
            receipts_signed(&net).await - before,
            1.0,
            "one receipt per request"
        );
    }

    // A stopped worker listed first, with evidence recorded before it stopped: the
    // client's own nonce exposes it, and the request goes to a live worker.
    let stale_entry = a.clone();
    let (_, recorded) = http_get(
        net.workers[1].plain(),
        "/v1/attestation?nonce=00112233445566778899aabbccddeeff",
    )
    .await;
    let (addr, _) = evil_router(
        upstream,
        Evil::Stale {
            entry: Box::new(stale_entry),
            recorded,
        },
    )
    .await;
    let client = client_of(addr);
    ask(&client, PROMPT, 4)
        .await
        .expect("a live worker answers");
}

async fn bad_seals(net: &Net) -> f64 {
    let mut n = 0.0;
    for w in &net.workers {
        n += common::metric(
            w.plain(),
            "silk_enclave_sealed_requests_total{outcome=\"BadSeal\"}",
        )
        .await;
    }
    n
}

async fn receipts_signed(net: &Net) -> f64 {
    let mut n = 0.0;
    for w in &net.workers {
        n += common::metric(w.plain(), "silk_enclave_receipts").await;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_requests_through_two_routers_lose_nothing_and_mix_nothing() {
    // Longer heartbeats: 200 requests saturate this machine's cores, and re-registration
    // shares them.
    let net = Arc::new(network_with(3, 2, false, Duration::from_secs(10)).await);
    // Two client processes' worth of state (one per router), each verifying every worker
    // once, as `silk proxy` does for all its callers; 200 requests at once.
    let clients: Vec<Arc<Network>> = (0..2)
        .map(|i| Arc::new(net.client(vec![net.router_url(i)])))
        .collect();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let client = clients[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            ask(&client, "Name a colour.", 4).await
        }));
    }
    let mut texts = Vec::new();
    let mut tokens = 0u64;
    for t in tasks {
        let (text, n) = t.await.unwrap().expect("no request lost");
        texts.push(text);
        tokens += u64::from(n);
    }
    println!(
        "200 concurrent requests, 2 routers, 3 workers: {:.1} s, {tokens} completion tokens",
        start.elapsed().as_secs_f64()
    );
    assert!(
        texts.windows(2).all(|w| w[0] == w[1]),
        "answers mixed: {texts:?}"
    );
    // The receipts the routers saw add up to what the clients got, one per request (their
    // log is written by a task of its own: read it until it has them all, or 10 s pass).
    let waited = Instant::now();
    let mut got = router_receipts(&net);
    while got.0 < 200 && waited.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        got = router_receipts(&net);
    }
    assert_eq!(got, (200, tokens));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_spread_request_goes_to_the_worker_the_router_picks_and_counts_once() {
    let net = network(3, 1, false).await;
    let client = net.client_spread(vec![net.router_url(0)], 3);
    let mut tasks = Vec::new();
    let client = Arc::new(client);
    for _ in 0..6 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let answer = client.send(&chat_body(PROMPT, 8, false)).await?;
            let (_, receipt) = answer.collect_with_receipt().await?;
            Ok::<_, ClientError>(receipt.receipt.worker_id)
        }));
    }
    let mut served = std::collections::HashSet::new();
    for t in tasks {
        served.insert(t.await.unwrap().expect("spread answer with its receipt"));
    }
    println!(
        "6 concurrent spread requests (K = 3) were served by {} workers",
        served.len()
    );
    assert!(served.len() >= 2, "the router balanced the load");

    // A router that sends the same spread request to a second worker of its set: that one
    // can open it and does the work, but the client takes one answer and one receipt.
    let list = listed(net.routers[0].addr).await;
    let (a, b) = (list.workers[0].id.clone(), list.workers[1].id.clone());
    let (replaying, replays) = evil_router(net.routers[0].addr, Evil::Replay(b.clone())).await;
    let (only, _) = evil_router(replaying, Evil::OnlyThese(vec![a, b])).await;
    let client = net.client_spread(vec![format!("http://{only}")], 2);
    let before = receipts_signed(&net).await;
    let answer = client.send(&chat_body(PROMPT, 4, false)).await.unwrap();
    let (_, receipt) = answer.collect_with_receipt().await.unwrap();
    let statuses = replays.lock().unwrap().clone();
    let signed = receipts_signed(&net).await - before;
    println!("spread request replayed to the other worker: {statuses:?}, {signed} receipts signed");
    // One receipt reached the client; a second, if the router made the other worker work,
    // names the same request and cannot be acknowledged twice.
    assert_eq!(statuses.len(), 1);
    let expected = if statuses[0] == 200 { 2.0 } else { 1.0 };
    assert_eq!(signed, expected, "replay answered {statuses:?}");
    assert!(client.dropped().is_empty());
    let _ = receipt;
}
