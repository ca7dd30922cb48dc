//! Payment end to end, through the built binaries, settled on the TVM sandbox.
//!
//! A payer opens two channels of 10 TON (`silk pay open`), sends 50 requests through a
//! router to two workers with different payout addresses (`silk chat --router`), turns
//! the receipts it verified and acknowledged into promises (`silk pay promise --send`)
//! that the owners' settlement endpoints keep (`silk-host settle serve`). Owner A closes
//! (`silk-host settle close`); on channel B the payer closes with an old promise after
//! the expiry (`silk pay close --promise`), owner B disputes with the newer one
//! (`silk-host settle dispute`) and a third party finishes. The messages these commands
//! wrote are then executed by `ledger/ton/tests/flow.spec.ts` on `@ton/sandbox`, which
//! checks every exit code and that each owner got exactly Σ(tokens × price) as worked out
//! here from the receipts, to the nanoton, and the payer the rest.
//!
//! Also: an inflated receipt or an unacknowledged one is refused by `silk pay`; a forged
//! promise by the owner's endpoint and, on chain, by the contract; and the settlement
//! endpoint killed with SIGKILL over and over loses no promise it acknowledged.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::procs::{bin, router_chat, silk, sim_policy, spawn, worker};
use silk_protocol::attestation::checks::ack;
use silk_protocol::receipt::{Offer, Receipt};
use tokio::process::{Child, Command};

const PAYER: &str = "0:1111111111111111111111111111111111111111111111111111111111111111";
const OWNER_A: &str = "0:2222222222222222222222222222222222222222222222222222222222222222";
const OWNER_B: &str = "0:3333333333333333333333333333333333333333333333333333333333333333";
const ANYONE: &str = "0:4444444444444444444444444444444444444444444444444444444444444444";
/// Nanotons per million tokens: 5 TON prompt, 20 TON completion.
const PRICES: (u64, u64) = (5_000_000_000, 20_000_000_000);
const OPEN_AT: u64 = 1_790_000_000;
const EXPIRES_IN: u64 = 86_400;
const WINDOW: u64 = 3600;

async fn settle(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(bin("silk-host"))
        .arg("settle")
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .await
        .unwrap()
}

async fn serve(dir: &Path) -> (Child, SocketAddr) {
    let mut c = Command::new(bin("silk-host"));
    c.arg("settle")
        .arg("--dir")
        .arg(dir)
        .args(["serve", "--listen", "127.0.0.1:0"]);
    spawn(c, "http").await
}

fn ok(out: &std::process::Output, what: &str) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

fn refused(out: &std::process::Output, check: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(check), "expected {check}: {err}");
}

/// Σ over the receipts served under offers paying `payout` of tokens × prices, rounded
/// up once: worked out here from the receipts themselves, not by the code under test.
fn owed(receipts: &str, payout: &str) -> (u128, usize) {
    let (mut total, mut n) = (0u128, 0);
    for line in receipts.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let signed = hex::decode(v["receipt"].as_str().unwrap()).unwrap();
        let r = Receipt::decode(&signed[..signed.len() - 64]).unwrap();
        let offer: silk_protocol::receipt::SignedOffer =
            serde_json::from_value(v["offer"].clone()).unwrap();
        let o = Offer::decode(&offer.body.0).unwrap();
        if o.payout_address == payout {
            total += u128::from(r.prompt_tokens) * u128::from(o.price_prompt)
                + u128::from(r.completion_tokens) * u128::from(o.price_completion);
            n += 1;
        }
    }
    (total.div_ceil(1_000_000), n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_requests_paid_through_channels_settled_on_the_sandbox() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let flow = d.join("flow");
    std::fs::create_dir_all(&flow).unwrap();
    let (policy, _, _) = sim_policy(d);
    let mut r = Command::new(bin("silk-router"));
    r.args(["--listen", "127.0.0.1:0"])
        .arg("--admission")
        .arg(&policy);
    let (_router, router) = spawn(r, "http").await;
    let (_wa, _) = spawn(worker(d, router, OWNER_A, PRICES), "https").await;
    let (_wb, _) = spawn(worker(d, router, OWNER_B, PRICES), "https").await;
    let (settle_a, settle_b) = (d.join("settle-a"), d.join("settle-b"));
    let (_sa, sa) = serve(&settle_a).await;
    let (_sb, sb) = serve(&settle_b).await;

    // The payer opens a channel to each owner; the owners add them.
    let mut channels = BTreeMap::new();
    for (name, owner, dir) in [("a", OWNER_A, &settle_a), ("b", OWNER_B, &settle_b)] {
        let req = flow.join(format!("open-{name}.json"));
        let params = d.join(format!("channel-{name}.json"));
        let out = silk(
            &[
                "pay",
                "open",
                "--payer",
                PAYER,
                "--payee",
                owner,
                "--deposit",
                "10",
                "--expires-in",
                &format!("{EXPIRES_IN}s"),
                "--dispute-window",
                &format!("{WINDOW}s"),
                "--nonce",
                &hex::encode(name),
                "--now",
                &OPEN_AT.to_string(),
                "-o",
                req.to_str().unwrap(),
                "--channel-out",
                params.to_str().unwrap(),
            ],
            d,
        )
        .await;
        let v = ok(&out, "silk pay open");
        let added = ok(
            &settle(
                dir,
                &["add", params.to_str().unwrap(), "--payout-address", owner],
            )
            .await,
            "settle add",
        );
        assert_eq!(
            added["address_raw"], v["address_raw"],
            "both sides derive one address"
        );
        let wrong = settle(
            dir,
            &["add", params.to_str().unwrap(), "--payout-address", ANYONE],
        )
        .await;
        refused(&wrong, "settle.payee");
        channels.insert(
            name,
            (
                v["channel"].as_str().unwrap().to_owned(),
                v["address_raw"].as_str().unwrap().to_owned(),
            ),
        );
    }

    // The payer tops channel A up by 1 TON.
    let top_up = ok(
        &silk(
            &[
                "pay",
                "deposit",
                "--channel",
                &channels["a"].0,
                "--amount",
                "1",
                "--now",
                &(OPEN_AT + 1).to_string(),
                "-o",
                flow.join("deposit-a.json").to_str().unwrap(),
            ],
            d,
        )
        .await,
        "silk pay deposit",
    );
    assert_eq!(top_up["deposit_ton"], "11");

    // 50 requests through the router, 5 at a time; promises after 25 and after 50.
    let receipts = d.join("receipts.jsonl");
    let url = format!("http://{router}");
    let mut promised = BTreeMap::new();
    for round in 0..10 {
        let mut chats = tokio::task::JoinSet::new();
        for k in 0..5 {
            let n = round * 5 + k;
            let (url, policy, receipts, d) =
                (url.clone(), policy.clone(), receipts.clone(), d.to_owned());
            chats.spawn(async move {
                let prompt = format!("Count from {n} to {}.", n + 3);
                let out = router_chat(&url, &policy, &receipts, 4, &prompt, &d).await;
                ok(&out, "silk chat");
            });
        }
        while let Some(r) = chats.join_next().await {
            r.unwrap();
        }
        if round == 4 || round == 9 {
            for (name, owner, addr) in [("a", OWNER_A, sa), ("b", OWNER_B, sb)] {
                let (id, _) = &channels[name];
                let boc = flow.join(format!("promise-{name}-{round}.boc"));
                let out = silk(
                    &[
                        "pay",
                        "promise",
                        "--channel",
                        id,
                        "--payee",
                        owner,
                        "--receipts",
                        receipts.to_str().unwrap(),
                        "-o",
                        boc.to_str().unwrap(),
                        "--send",
                        &format!("http://{addr}"),
                    ],
                    d,
                )
                .await;
                let v = ok(&out, "silk pay promise --send");
                assert_eq!(v["payee_kept"]["kept"], "stored", "{v}");
                promised.insert(
                    (name, round),
                    (
                        v["seqno"].as_u64().unwrap(),
                        v["amount"].as_str().unwrap().to_owned(),
                        boc,
                    ),
                );
            }
        }
    }
    let text = std::fs::read_to_string(&receipts).unwrap();
    assert_eq!(
        text.lines().count(),
        50,
        "one acknowledged receipt per answer"
    );
    let (owed_a, n_a) = owed(&text, OWNER_A);
    let (owed_b, n_b) = owed(&text, OWNER_B);
    assert_eq!(n_a + n_b, 50);
    assert!(n_a > 0 && n_b > 0, "both workers served ({n_a}, {n_b})");
    assert_eq!(promised[&("a", 9)].1, owed_a.to_string());
    assert_eq!(promised[&("b", 9)].1, owed_b.to_string());
    println!("owed: A {owed_a} nanotons for {n_a} answers, B {owed_b} for {n_b}");

    // Never more than was deposited: a channel of 1 nanoton cannot carry what A is owed.
    let tiny = d.join("open-tiny.json");
    let v = ok(
        &silk(
            &[
                "pay",
                "open",
                "--payer",
                PAYER,
                "--payee",
                OWNER_A,
                "--deposit",
                "0.000000001",
                "--nonce",
                "77",
                "-o",
                tiny.to_str().unwrap(),
            ],
            d,
        )
        .await,
        "silk pay open (tiny)",
    );
    let over = silk(
        &[
            "pay",
            "promise",
            "--channel",
            v["channel"].as_str().unwrap(),
            "--payee",
            OWNER_A,
            "--receipts",
            receipts.to_str().unwrap(),
            "-o",
            d.join("over.boc").to_str().unwrap(),
        ],
        d,
    )
    .await;
    refused(&over, "only 1 were deposited");

    // An inflated receipt (a changed byte) or one never acknowledged gets nothing more.
    let mut lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut inflated = lines[0].clone();
    let mut bytes = hex::decode(inflated["receipt"].as_str().unwrap()).unwrap();
    let at = bytes.len() - 64 - 20;
    bytes[at] ^= 0x40;
    inflated["receipt"] = hex::encode(&bytes).into();
    lines[0] = inflated;
    let tampered = d.join("tampered.jsonl");
    let join =
        |ls: &[serde_json::Value]| ls.iter().map(|l| l.to_string() + "\n").collect::<String>();
    std::fs::write(&tampered, join(&lines)).unwrap();
    let (id_a, addr_a) = channels["a"].clone();
    let (id_b, addr_b) = channels["b"].clone();
    let try_pay = |file: &Path| {
        let (file, out) = (file.to_owned(), d.join("never.boc"));
        let id = id_a.clone();
        async move {
            silk(
                &[
                    "pay",
                    "promise",
                    "--channel",
                    &id,
                    "--payee",
                    OWNER_A,
                    "--receipts",
                    file.to_str().unwrap(),
                    "-o",
                    out.to_str().unwrap(),
                ],
                d,
            )
            .await
        }
    };
    refused(&try_pay(&tampered).await, ack::RECEIPT.name);
    lines[0]["ack"] = serde_json::Value::Null;
    std::fs::write(&tampered, join(&lines)).unwrap();
    refused(&try_pay(&tampered).await, ack::MISSING.name);
    assert!(!d.join("never.boc").exists(), "no promise written");

    // A forged promise (amount raised) is refused by the owner's endpoint and by the CLI.
    let latest_a = &promised[&("a", 9)].2;
    let mut forged =
        silk_ledger::SignedPromise::from_boc(&std::fs::read(latest_a).unwrap()).unwrap();
    forged.promise.amount += 1_000_000_000;
    forged.promise.seqno += 1;
    let forged_boc = d.join("forged.boc");
    std::fs::write(&forged_boc, forged.to_boc().unwrap()).unwrap();
    let (status, _, body) =
        common::relay::http_post(sa, "/v1/promises", forged.to_boc().unwrap()).await;
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("promise.signature"));
    refused(
        &settle(&settle_a, &["accept", forged_boc.to_str().unwrap()]).await,
        "promise.signature",
    );
    let status = ok(&settle(&settle_a, &["status"]).await, "settle status");
    assert_eq!(
        status[0]["latest"],
        serde_json::json!([2, owed_a.to_string()])
    );

    // Closing. A: the owner closes with what it kept (after one forged try on chain).
    let forged_close = silk_ledger::request::Request {
        valid_until: OPEN_AT + 600,
        messages: vec![silk_ledger::request::Message::new(
            &addr_a.parse().unwrap(),
            20_000_000,
            silk_ledger::channel::payee_close_body(&forged).unwrap(),
            None,
        )
        .unwrap()],
    };
    std::fs::write(
        flow.join("forged-close-a.json"),
        serde_json::to_string(&forged_close).unwrap(),
    )
    .unwrap();
    let close_a = flow.join("close-a.json");
    ok(
        &settle(
            &settle_a,
            &["close", "--channel", &id_a, "-o", close_a.to_str().unwrap()],
        )
        .await,
        "settle close",
    );
    // B: the payer closes after the expiry with its first promise; the owner disputes.
    let expiry = OPEN_AT + EXPIRES_IN;
    let early = silk(
        &[
            "pay",
            "close",
            "--channel",
            &id_b,
            "--now",
            &(expiry - 1).to_string(),
            "-o",
            flow.join("never.json").to_str().unwrap(),
        ],
        d,
    )
    .await;
    refused(&early, "only the payee can close");
    let old = &promised[&("b", 4)].2;
    let close_b = flow.join("payer-close-b.json");
    ok(
        &silk(
            &[
                "pay",
                "close",
                "--channel",
                &id_b,
                "--promise",
                old.to_str().unwrap(),
                "--now",
                &(expiry + 10).to_string(),
                "-o",
                close_b.to_str().unwrap(),
            ],
            d,
        )
        .await,
        "silk pay close",
    );
    let dispute_b = flow.join("dispute-b.json");
    ok(
        &settle(
            &settle_b,
            &[
                "dispute",
                "--channel",
                &id_b,
                "-o",
                dispute_b.to_str().unwrap(),
            ],
        )
        .await,
        "settle dispute",
    );
    let finish_b = flow.join("finish-b.json");
    ok(
        &silk(
            &[
                "pay",
                "finish",
                "--channel",
                &id_b,
                "--now",
                &(expiry + 20).to_string(),
                "-o",
                finish_b.to_str().unwrap(),
            ],
            d,
        )
        .await,
        "silk pay finish",
    );

    let step = |name: &str, from: &str, file: &str, now: u64, exit: u32| serde_json::json!({ "name": name, "from": from, "request": file, "now": now, "exit": exit });
    let expect = |addr: &str, payee: &str, deposit: &str, paid: u128| {
        serde_json::json!({ "address": addr, "payer": PAYER, "payee": payee,
                            "deposit": deposit, "paid": paid.to_string() })
    };
    let steps = serde_json::json!({
        "steps": [
            step("open a", PAYER, "open-a.json", OPEN_AT, 0),
            step("open b", PAYER, "open-b.json", OPEN_AT, 0),
            step("payer tops a up", PAYER, "deposit-a.json", OPEN_AT + 1, 0),
            step("owner a shows a forged promise", OWNER_A, "forged-close-a.json", OPEN_AT + 100, 101),
            step("owner a closes", OWNER_A, "close-a.json", OPEN_AT + 101, 0),
            step("payer closes b with an old promise", PAYER, "payer-close-b.json", expiry + 10, 0),
            step("owner b disputes", OWNER_B, "dispute-b.json", expiry + 20, 0),
            step("finish b inside the window", ANYONE, "finish-b.json", expiry + 30, 110),
            step("finish b", ANYONE, "finish-b.json", expiry + 10 + WINDOW, 0),
        ],
        "expect": { "channels": [expect(&addr_a, OWNER_A, "11000000000", owed_a), expect(&addr_b, OWNER_B, "10000000000", owed_b)] },
    });
    std::fs::write(
        flow.join("steps.json"),
        serde_json::to_string_pretty(&steps).unwrap(),
    )
    .unwrap();
    run_sandbox_flow(&flow);
}

/// Executes `dir` with `ledger/ton/tests/flow.spec.ts` (Node and `npm ci` in ledger/ton:
/// scripts/test.sh does both).
fn run_sandbox_flow(dir: &Path) {
    let ton = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ledger/ton");
    assert!(
        ton.join("node_modules/.bin/jest").is_file(),
        "ledger/ton/node_modules is missing: run `(cd ledger/ton && npm ci)` (scripts/test.sh does)"
    );
    let out = std::process::Command::new(ton.join("node_modules/.bin/jest"))
        .args([
            "--runInBand",
            "tests/flow.spec.ts",
            "-t",
            "message flow e2e",
        ])
        .current_dir(&ton)
        .env("SILK_E2E_DIR", dir)
        .output()
        .expect("runs jest (node must be installed: scripts/setup.sh)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(
        out.status.success(),
        "the sandbox refused the flow:\n{text}"
    );
    assert!(
        !text.contains("skipped") || text.contains("passed"),
        "{text}"
    );
}

/// The owner's settlement endpoint SIGKILLed again and again while a payer hands it
/// promises with the built `silk pay promise --send`: after every crash, the promise on
/// disk is at least as new as every promise the endpoint acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn settlement_killed_mid_stream_loses_no_acknowledged_promise() {
    use std::sync::{Arc, Mutex};
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_owned();
    let dir = d.join("settle");
    let params = d.join("channel.json");
    let out = silk(
        &[
            "pay",
            "open",
            "--payer",
            PAYER,
            "--payee",
            OWNER_A,
            "--deposit",
            "1",
            "--nonce",
            "cc",
            "-o",
            d.join("open.json").to_str().unwrap(),
            "--channel-out",
            params.to_str().unwrap(),
        ],
        &d,
    )
    .await;
    let id = ok(&out, "silk pay open")["channel"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(
        &settle(
            &dir,
            &["add", params.to_str().unwrap(), "--payout-address", OWNER_A],
        )
        .await,
        "settle add",
    );
    // No receipts yet: each promise owes 0 nanotons, only its sequence number rises.
    let receipts = d.join("none.jsonl");
    std::fs::write(&receipts, "").unwrap();
    let (mut acked_total, mut refused_total) = (0, 0);
    for round in 0u64..6 {
        let (mut server, addr) = serve(&dir).await;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::<u64>::new()));
        let sender = {
            let (stop, acked, d, id, receipts) = (
                stop.clone(),
                acked.clone(),
                d.clone(),
                id.clone(),
                receipts.clone(),
            );
            tokio::spawn(async move {
                let mut failed = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let out = silk(
                        &[
                            "pay",
                            "promise",
                            "--channel",
                            &id,
                            "--payee",
                            OWNER_A,
                            "--receipts",
                            receipts.to_str().unwrap(),
                            "-o",
                            d.join("p.boc").to_str().unwrap(),
                            "--send",
                            &format!("http://{addr}"),
                        ],
                        &d,
                    )
                    .await;
                    if out.status.success() {
                        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                        acked.lock().unwrap().push(v["seqno"].as_u64().unwrap());
                    } else {
                        let err = String::from_utf8_lossy(&out.stderr);
                        assert!(err.contains("--send"), "{err}");
                        failed += 1;
                    }
                }
                failed
            })
        };
        // Kill at a different moment each round.
        let wait = 150 + (round * 97 + u64::from(std::process::id())) % 400;
        tokio::time::sleep(Duration::from_millis(wait)).await;
        server.start_kill().unwrap();
        server.wait().await.unwrap();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        refused_total += sender.await.unwrap();
        let acked = acked.lock().unwrap().clone();
        acked_total += acked.len();
        let status = ok(&settle(&dir, &["status"]).await, "settle status");
        let kept = status[0]["latest"][0].as_u64().unwrap_or(0);
        if let Some(max) = acked.iter().max() {
            assert!(
                kept >= *max,
                "round {round}: acknowledged {max}, kept only {kept}"
            );
        }
    }
    println!(
        "{acked_total} promises acknowledged, {refused_total} not (cut by a kill) over 6 crashes"
    );
    // The last promise signed, handed over as a file instead: kept if the kill cut its
    // sending short, else already there.
    let last = d.join("p.boc");
    let v = ok(
        &settle(&dir, &["accept", last.to_str().unwrap()]).await,
        "settle accept",
    );
    assert!(v["kept"] == "stored" || v["kept"] == "older", "{v}");
    let seqno = v["seqno"].as_u64().unwrap();
    let status = ok(&settle(&dir, &["status"]).await, "settle status");
    assert_eq!(
        status[0]["latest"][0].as_u64(),
        Some(seqno),
        "the newest signed is kept"
    );
    assert!(acked_total > 0, "some promises were acknowledged");
}
