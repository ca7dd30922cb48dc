//! `silk collateral fetch` through the built binary, against a local server replaying
//! recorded KDS and PCS answers: the fetched VCEK and collateral verify the real vendor
//! evidence; 404, 429 with Retry-After, slow and cut-short answers each end with a message
//! naming the item, the URL and the rule; the cache serves what it holds.

mod common;

const MILAN: silk_attestation::snp::ProductLine = silk_attestation::snp::ProductLine::Milan;

use std::time::Duration;

use common::replay::{Replay, Reply, Send};
use common::{p, silk, tempdir, text, vectors};

const TDX_POLICY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../docs/examples/tdx-sample.toml"
);
const TCB_PATH: &str = "/tdx/certification/v4/tcb?fmspc=B0C06F000000";

/// Runs `silk` off the runtime's threads, so the replay server keeps answering.
async fn run(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        silk(&refs)
    })
    .await
    .expect("silk ran")
}

fn fetch_args(evidence: &str, out: &str, server: &Replay, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = ["collateral", "fetch", evidence, "--out", out]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    for flag in ["--pcs-url", "--kds-url"] {
        a.push(flag.into());
        a.push(server.url());
    }
    a.extend(extra.iter().map(|s| (*s).to_owned()));
    a
}

/// The quote alone in a folder, so that `silk verify` finds no collateral beside it.
fn lone_quote() -> String {
    let dir = tempdir();
    let path = dir.join("quote.bin");
    std::fs::copy(vectors().join("tdx/tdx_quote"), &path).expect("copy");
    p(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetched_tdx_collateral_verifies_the_quote_in_its_window_and_not_after() {
    let server = Replay::start().await;
    server.serve_pcs();
    let quote = lone_quote();
    let out = p(tempdir().join("collateral.json"));
    let o = run(fetch_args(&quote, &out, &server, &[])).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("wrote the DCAP collateral"),
        "{}",
        text(&o)
    );
    assert_eq!(server.hits().len(), 4, "{:?}", server.hits());

    let verify = |now: Option<&str>| {
        let mut a = vec![
            "verify".to_owned(),
            quote.clone(),
            "--collateral".into(),
            out.clone(),
        ];
        a.extend(["--policy".into(), TDX_POLICY.into()]);
        if let Some(now) = now {
            a.extend(["--now".into(), now.into()]);
        }
        run(a)
    };
    let inside = verify(Some("2025-06-20T00:00:00Z")).await;
    assert_eq!(inside.status.code(), Some(0), "{}", text(&inside));
    // Today the recorded collateral is long expired: refused by name, never refreshed.
    let today = verify(None).await;
    assert_eq!(today.status.code(), Some(1), "{}", text(&today));
    let window = format!(
        "FAIL {}",
        silk_attestation::checks::tdx::COLLATERAL_WINDOW.name
    );
    assert!(text(&today).contains(&window), "{}", text(&today));
    assert_eq!(
        server.hits().len(),
        4,
        "verify fetched something: {:?}",
        server.hits()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vcek_is_fetched_by_chip_and_tcb_and_then_served_from_the_cache() {
    let report = p(vectors().join("snp/milan/report_milan.hex"));
    let raw = hex::decode(std::fs::read_to_string(&report).expect("report").trim()).expect("hex");
    let parsed = silk_attestation::snp::AttestationReport::from_bytes(&raw).expect("report");
    let server = Replay::start().await;
    let url =
        silk_attestation::snp::kds::vcek_url(&server.url(), &parsed, Some(MILAN)).expect("url");
    let path = url.trim_start_matches(&server.url()).to_owned();
    let vcek = std::fs::read(vectors().join("snp/milan/vcek_milan.der")).expect("vcek");
    server.route(&path, vec![Reply::ok(vcek.clone())]);
    let cache = p(tempdir());
    let out = p(tempdir().join("vcek.der"));
    // A version 2 report does not name its product line: asked for, not guessed.
    let o = run(fetch_args(&report, &out, &server, &[])).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("does not name its product line"),
        "{}",
        text(&o)
    );
    assert!(server.hits().is_empty());
    let milan = ["--cache", &cache, "--snp-product", "milan"];
    let o = run(fetch_args(&report, &out, &server, &milan)).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(std::fs::read(&out).expect("out"), vcek);
    assert_eq!(server.hits(), vec![path.clone()]);

    // Served from the cache: a server that has nothing is not asked.
    let empty = Replay::start().await;
    let again = p(tempdir().join("vcek.der"));
    let o = run(fetch_args(&report, &again, &empty, &milan)).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(std::fs::read(&again).expect("out"), vcek);
    assert!(empty.hits().is_empty(), "{:?}", empty.hits());

    // The fetched VCEK verifies the report.
    let v = run(vec![
        "verify".into(),
        report.clone(),
        "--vcek".into(),
        out.clone(),
        "--policy".into(),
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/examples/snp-milan-sample.toml"
        )
        .into(),
        "--json".into(),
    ])
    .await;
    let verdict: serde_json::Value = serde_json::from_slice(&v.stdout).expect("json verdict");
    use silk_attestation::checks::snp;
    for check in [
        snp::VEK_SIGNED_BY_ASK,
        snp::REPORT_SIGNATURE,
        snp::VEK_CHIP_ID,
        snp::VEK_TCB,
    ] {
        assert!(
            common::json_passed(&verdict, check.name),
            "{}: {}",
            check.name,
            text(&v)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_404_is_final_and_named() {
    let server = Replay::start().await;
    server.serve_pcs();
    server.route(TCB_PATH, vec![Reply::status(404, &[])]);
    let out = tempdir().join("c.json");
    let o = run(fetch_args(&lone_quote(), &p(out.clone()), &server, &[])).await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(
        t.contains("TCB info") && t.contains("404 Not Found") && t.contains(TCB_PATH),
        "{t}"
    );
    assert_eq!(server.hits().iter().filter(|h| *h == TCB_PATH).count(), 1);
    assert!(!out.exists(), "nothing is written on failure");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_retried_after_its_retry_after_and_a_long_one_refused() {
    let server = Replay::start().await;
    server.serve_pcs();
    server.route(
        TCB_PATH,
        vec![
            Reply::status(429, &[("Retry-After", "1")]),
            Reply::recorded("pcs/tcb.json"),
        ],
    );
    let out = p(tempdir().join("c.json"));
    let o = run(fetch_args(&lone_quote(), &out, &server, &[])).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(server.hits().iter().filter(|h| *h == TCB_PATH).count(), 2);

    let server = Replay::start().await;
    server.serve_pcs();
    server.route(
        TCB_PATH,
        vec![Reply::status(429, &[("Retry-After", "3600")])],
    );
    let o = run(fetch_args(
        &lone_quote(),
        &out,
        &server,
        &["--max-retry-wait", "5"],
    ))
    .await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(
        t.contains("429 with Retry-After 3600s") && t.contains("longer than the 5s"),
        "{t}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_cut_short_answers_name_the_bound() {
    let server = Replay::start().await;
    server.serve_pcs();
    server.route(
        TCB_PATH,
        vec![Reply::recorded("pcs/tcb.json").sent(Send::After(Duration::from_secs(5)))],
    );
    let out = p(tempdir().join("c.json"));
    let slow = ["--timeout", "1", "--attempts", "1"];
    let o = run(fetch_args(&lone_quote(), &out, &server, &slow)).await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(
        t.contains("within 1s (the exchange limit)") && t.contains("TCB info"),
        "{t}"
    );

    server.route(
        TCB_PATH,
        vec![Reply::recorded("pcs/tcb.json").sent(Send::CutShort)],
    );
    let o = run(fetch_args(
        &lone_quote(),
        &out,
        &server,
        &["--attempts", "2"],
    ))
    .await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(
        t.contains("gave up after 2 attempts") && t.contains("cut short"),
        "{t}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_not_evidence_is_refused() {
    let server = Replay::start().await;
    let junk = tempdir().join("junk.bin");
    std::fs::write(&junk, b"hello").expect("write");
    let o = run(fetch_args(&p(junk), &p(tempdir().join("o")), &server, &[])).await;
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(
        t.contains("neither an SEV-SNP report nor a DCAP quote"),
        "{t}"
    );
    let args = [
        "collateral",
        "fetch",
        &lone_quote(),
        "--out",
        "o",
        "--pcs-url",
        "ftp://x",
    ];
    let o = run(args.iter().map(|s| (*s).to_owned()).collect()).await;
    assert!(
        text(&o).contains("is not an http:// or https:// URL"),
        "{}",
        text(&o)
    );
}
