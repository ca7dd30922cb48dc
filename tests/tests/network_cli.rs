//! The network through the built binaries, as an operator and a user run them:
//! `silk-router`, `silk-enclave --register`, `silk chat --router` and `silk receipts
//! verify`; then a worker killed with SIGKILL is unlisted within two heartbeats, its
//! in-flight answer fails naming it, and new requests go to the other worker.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::evil::{evil_router, Evil};
use common::procs::{bin, router_chat, silk, sim_policy, spawn, spawn_proxy, worker};
use common::relay::http_get;
use silk_client::network::{Network, NetworkOptions};
use silk_protocol::attestation::checks::receipt;
use silk_protocol::network::WorkerList;
use tokio::process::Command;

const HEARTBEAT: u64 = 1;

async fn workers(router: SocketAddr) -> WorkerList {
    let (status, body) = http_get(router, "/v1/workers").await;
    assert_eq!(status, 200);
    serde_json::from_slice(&body).unwrap()
}

async fn wait_for(router: SocketAddr, n: usize, within: Duration) -> Duration {
    let start = Instant::now();
    while workers(router).await.workers.len() != n {
        assert!(
            start.elapsed() < within,
            "not {n} workers within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

fn enclave(dir: &Path, router: SocketAddr) -> Command {
    worker(dir, router, "EQ-owner", (1000, 0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn routers_and_workers_as_processes_and_a_worker_killed_mid_answer() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (policy_file, root, measurement) = sim_policy(d);
    let policy = silk_tools::demo::demo_policy(&root, &measurement).unwrap();
    let mut r = Command::new(bin("silk-router"));
    r.args([
        "--listen",
        "127.0.0.1:0",
        "--heartbeat",
        &HEARTBEAT.to_string(),
    ])
    .arg("--admission")
    .arg(&policy_file)
    .arg("--receipts")
    .arg(d.join("router-receipts.jsonl"));
    let (_router, router) = spawn(r, "http").await;
    let (mut w1, w1_addr) = spawn(enclave(d, router), "https").await;
    let (_w2, _) = spawn(enclave(d, router), "https").await;
    let took = wait_for(router, 2, Duration::from_secs(30)).await;
    println!("registration to listed (both workers): {took:?}");

    // A user through the router, with the built client.
    let url = format!("http://{router}");
    let receipts = d.join("receipts.jsonl");
    let out = router_chat(
        &url,
        &policy_file,
        &receipts,
        12,
        "What is the capital of France? Answer in one sentence.",
        d,
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Paris"), "{stdout}");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(d.join("silk/client.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the client key is private");

    // Its receipt verifies offline against the worker that served it.
    let line: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&receipts).unwrap().trim()).unwrap();
    let worker_id = line["worker"].as_str().unwrap().to_owned();
    let listed = workers(router).await;
    let entry = listed.workers.iter().find(|w| w.id == worker_id).unwrap();
    let bundle = d.join("bundle.json");
    std::fs::write(&bundle, entry.bundle.to_json()).unwrap();
    let verify = |file: PathBuf| {
        let (bundle, policy) = (bundle.clone(), policy_file.clone());
        async move {
            silk(
                &[
                    "receipts",
                    "verify",
                    file.to_str().unwrap(),
                    "--bundle",
                    bundle.to_str().unwrap(),
                    "--policy",
                    policy.to_str().unwrap(),
                ],
                Path::new("/nonexistent"),
            )
            .await
        }
    };
    let ok = verify(receipts.clone()).await;
    let text = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(ok.status.code(), Some(0), "{text}");
    assert!(
        text.contains("VERIFIED: 1 of 1") && text.contains("acknowledged by"),
        "{text}"
    );
    // A receipt counted twice is refused by name.
    let doubled = d.join("doubled.jsonl");
    let one = std::fs::read_to_string(&receipts).unwrap();
    std::fs::write(&doubled, format!("{one}{one}")).unwrap();
    let bad = verify(doubled).await;
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stdout).contains(receipt::DUPLICATE.name));
    // The router logged the same receipt in clear, and it verifies too.
    let router_log = std::fs::read_to_string(d.join("router-receipts.jsonl")).unwrap();
    assert!(router_log.contains(line["receipt"].as_str().unwrap()));

    // The payer's side: what it owes the owner, and a promise for it (offline, a BoC).
    let status = silk(
        &["pay", "status", "--receipts", receipts.to_str().unwrap()],
        d,
    )
    .await;
    let text = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(text.contains("EQ-owner: 1 receipts"), "{text}");
    let boc = d.join("promise.boc");
    let channel = "2a".repeat(32);
    let out = silk(
        &[
            "pay",
            "promise",
            "--channel",
            &channel,
            "--payee",
            "EQ-owner",
            "--receipts",
            receipts.to_str().unwrap(),
            "-o",
            boc.to_str().unwrap(),
        ],
        d,
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let signed = silk_ledger::SignedPromise::from_boc(&std::fs::read(&boc).unwrap()).unwrap();
    let payer: [u8; 32] = hex::decode(summary["payer_pubkey"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    signed.verify(&payer).expect("signed by the client key");
    // The amount, worked out here from the receipt itself: tokens × the offer's prices
    // (1000 and 0 nanotons per million), rounded up.
    let signed_receipt = hex::decode(line["receipt"].as_str().unwrap()).unwrap();
    let r = silk_protocol::receipt::Receipt::decode(&signed_receipt[..signed_receipt.len() - 64])
        .unwrap();
    let expect = (u128::from(r.prompt_tokens) * 1000).div_ceil(1_000_000);
    assert_eq!(signed.promise.amount, expect);
    assert_eq!(
        (signed.promise.seqno, summary["amount"].as_str().unwrap()),
        (1, expect.to_string().as_str())
    );

    // Spread over both workers: the router picks one, the receipt says which.
    let spread_receipts = d.join("spread.jsonl");
    let out = silk(
        &[
            "chat",
            "--router",
            &url,
            "--spread",
            "2",
            "--policy",
            policy_file.to_str().unwrap(),
            "--receipts",
            spread_receipts.to_str().unwrap(),
            "--max-tokens",
            "8",
            "Name a colour.",
        ],
        d,
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&spread_receipts)
            .unwrap()
            .lines()
            .count(),
        1
    );
    let bad = silk(
        &[
            "chat",
            "--router",
            &url,
            "--spread",
            "9",
            "--policy",
            policy_file.to_str().unwrap(),
            "x",
        ],
        d,
    )
    .await;
    assert_eq!(bad.status.code(), Some(2), "--spread 9 is refused");

    // The OpenAI surface through the network: `silk proxy --router`.
    let mut proxy = Command::new(bin("silk"));
    proxy
        .args([
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--router",
            &url,
            "--no-receipts",
        ])
        .arg("--policy")
        .arg(&policy_file)
        .env("XDG_CONFIG_HOME", d);
    let (_proxy, proxy_addr) = spawn_proxy(proxy).await;
    let (status, body) = http_get(proxy_addr, "/healthz").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (status, body) = http_get(proxy_addr, "/v1/models").await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("smollm2"));
    let (status, _, body) = common::relay::http_post(
        proxy_addr,
        "/v1/chat/completions",
        common::chat_body(
            "What is the capital of France? Answer in one sentence.",
            12,
            false,
        ),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(common::answer_text(&body).contains("Paris"));

    // A long answer from worker 1; kill it after the first chunk.
    let direct = silk_client::Session::connect(&format!("https://{w1_addr}"), policy.clone())
        .await
        .unwrap();
    let victim = hex::encode(direct.verified().unwrap().claims_digest);
    assert!(listed.workers.iter().any(|w| w.id == victim));
    let (only, _) = evil_router(router, Evil::Only(victim.clone())).await;
    let net = Network::new(
        policy.clone(),
        NetworkOptions {
            routers: vec![format!("http://{only}")],
            model: None,
            max_price: None,
            spread: 1,
            session: Default::default(),
        },
    )
    .unwrap();
    let mut answer = net
        .send(&common::chat_body(
            "Write a long story about a dragon who learns to bake bread.",
            400,
            true,
        ))
        .await
        .unwrap();
    // The answer has begun (its first chunk is in): kill the worker now.
    w1.start_kill().unwrap();
    let killed = Instant::now();
    let err = loop {
        match answer.next_chunk().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!(
                "an answer cut by SIGKILL must not end as complete ({:?} after the kill)",
                killed.elapsed()
            ),
            Err(e) => break e,
        }
    };
    assert!(
        err.to_string().contains(&victim[..16]),
        "names the worker: {err}"
    );
    let unlisted = {
        while workers(router).await.workers.len() != 1 {
            assert!(killed.elapsed() < Duration::from_secs(2 * HEARTBEAT + 2));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        killed.elapsed()
    };
    println!("worker death to unlisted: {unlisted:?} (heartbeat {HEARTBEAT} s)");
    assert!(
        unlisted <= Duration::from_secs(2 * HEARTBEAT),
        "{unlisted:?}"
    );

    // New requests go to the survivor.
    let out = silk(
        &[
            "chat",
            "--router",
            &url,
            "--policy",
            policy_file.to_str().unwrap(),
            "--no-receipts",
            "--max-tokens",
            "8",
            "Name a colour.",
        ],
        d,
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
