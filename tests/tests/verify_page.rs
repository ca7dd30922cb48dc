//! `silk proxy`'s `/verify` page in a real browser: Debian's headless chromium, driven by
//! `tests/browser/verify_page.mjs` (npm `playwright-core`), against the built
//! `silk-enclave` with simulated evidence and the built `silk proxy`.
//!
//! - Under a policy that accepts the enclave, the page verifies it in the browser (WASM),
//!   shows SIMULATED, and every check row passes; a prompt sealed in the page streams an
//!   answer, and a recording relay between the browser and the proxy shows that neither
//!   the prompt nor the answer crossed it in the clear.
//! - Under a policy that refuses it (a wrong measurement) with `--serve-on-refusal`, the
//!   page names the failed check in a red row, and the proxy's OpenAI routes answer 502
//!   naming it; without the option the proxy exits 1, as before.
//!
//! Skipped, with the reason printed, only when chromium or the npm packages are missing
//! outside CI; with `CI=true` they must be there.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::procs::{bin, sim_enclave, sim_policy, spawn, spawn_proxy};
use common::relay::recording_relay;
use serde_json::Value;
use tokio::process::Command;

/// The browser and the page driver, or why the test cannot run here.
fn browser() -> Option<(PathBuf, PathBuf)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let chromium = std::env::var_os("SILK_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    let driver = root.join("browser");
    let missing = if !chromium.is_file() {
        Some(format!(
            "{} is missing (apt-get install chromium; scripts/setup.sh does)",
            chromium.display()
        ))
    } else if !driver.join("node_modules/playwright-core").is_dir() {
        Some(format!(
            "{}/node_modules is missing (npm ci there; scripts/test.sh does)",
            driver.display()
        ))
    } else {
        None
    };
    match missing {
        None => Some((chromium, driver)),
        Some(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("the browser test must run in CI: {why}")
        }
        Some(why) => {
            println!("SKIPPED: the /verify browser test needs {why}");
            None
        }
    }
}

/// Runs the page driver against `url`; what the page showed.
async fn drive(
    (chromium, driver): &(PathBuf, PathBuf),
    url: &str,
    shot: &str,
    prompt: Option<&str>,
    profile: &Path,
) -> Value {
    let shot = silk_tests::vm::target_dir().join(shot);
    let mut cmd = Command::new("node");
    cmd.arg(driver.join("verify_page.mjs"))
        .args(["--url", url])
        .arg("--user-data-dir")
        .arg(profile)
        .arg("--chromium")
        .arg(chromium)
        .arg("--screenshot")
        .arg(&shot);
    if let Some(p) = prompt {
        cmd.args(["--prompt", p, "--max-tokens", "40"]);
    }
    let out = tokio::time::timeout(Duration::from_secs(300), cmd.output())
        .await
        .expect("the page driver finished within 300 s")
        .unwrap();
    assert!(
        out.status.success(),
        "verify_page.mjs failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    println!("screenshot: {}", shot.display());
    println!("{v:#}");
    assert!(v["pageErrors"].as_array().unwrap().is_empty(), "{v:#}");
    assert!(v["cspViolations"].as_array().unwrap().is_empty(), "{v:#}");
    v
}

/// A `silk proxy` on the built binary.
fn proxy(endpoint: SocketAddr, policy: &Path, home: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(bin("silk"));
    c.args(["proxy", "--listen", "127.0.0.1:0", "--endpoint"])
        .arg(format!("https://{endpoint}"))
        .arg("--policy")
        .arg(policy)
        .args(extra)
        .env("XDG_CONFIG_HOME", home);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_verify_page_verifies_in_chromium_shows_refusals_in_red_and_seals_prompts() {
    let Some(browser) = browser() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (policy, _, _) = sim_policy(d);
    let (_enclave, enclave) = spawn(sim_enclave(d), "https").await;

    // (a) + (c): the accepting policy; the browser reaches the proxy through a relay
    // that records every byte.
    let (_proxy, proxy_addr) = spawn_proxy(proxy(enclave, &policy, d, &[])).await;
    let (via, recording) = recording_relay(proxy_addr).await;
    let marker = "violet-anemone-4417";
    let prompt = format!("The code word is {marker}. What is the capital of France?");
    let v = drive(
        &browser,
        &format!("http://{via}/verify"),
        "verify-page-accepted.png",
        Some(&prompt),
        &d.join("profile-a"),
    )
    .await;
    assert_eq!(v["status"], 200, "{v:#}");
    let csp = v["csp"].as_str().unwrap();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("'wasm-unsafe-eval'"),
        "{csp}"
    );
    assert_eq!(v["state"], "accepted", "{v:#}");
    assert_eq!(v["simulated"], true, "{v:#}");
    assert_eq!(v["simulatedBannerVisible"], true, "{v:#}");
    assert!(v["simulatedBannerText"]
        .as_str()
        .unwrap()
        .contains("SIMULATED"));
    assert!(
        v["summaryTitle"].as_str().unwrap().contains("SIMULATED"),
        "{v:#}"
    );
    let rows = v["rows"].as_array().unwrap();
    assert!(rows.len() >= 5, "{v:#}");
    for r in rows {
        assert!(r["class"].as_str().unwrap().contains("pass"), "{r}");
    }
    assert!(v["policy"]
        .as_str()
        .unwrap()
        .contains("allow_simulated = true"));
    let digest = v["wasmSha256"].as_str().unwrap();
    assert_eq!(digest, silk_client::verify_page::wasm_sha256(), "{v:#}");
    assert!(v["wasmSha256Proxy"].as_str().unwrap().contains("(same)"));

    // The answer streamed into the page, piece by piece.
    assert_eq!(v["answerState"], "done", "{v:#}");
    let answer = v["answer"].as_str().unwrap().to_owned();
    assert!(
        answer.contains("Paris"),
        "greedy (the page's default): {v:#}"
    );
    let mut lengths: Vec<u64> = v["answerLengths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    lengths.dedup();
    assert!(
        lengths.len() > 2,
        "the answer grew as it streamed: {lengths:?}"
    );

    // Nothing the page sent carried the prompt, and nothing it received carried the
    // answer, in any encoding: both crossed the relay sealed only.
    {
        let rec = recording.lock().unwrap();
        let up = String::from_utf8_lossy(&rec.up);
        assert!(
            up.contains("POST /verify/api/sealed"),
            "the prompt went through the relay"
        );
        assert!(up.contains("GET /verify/api/attestation?nonce="));
        common::assert_no_leak(
            &rec.up,
            &[prompt.clone(), marker.to_owned()],
            "browser to proxy",
        );
        if answer.chars().count() >= 24 {
            common::assert_no_leak(
                &rec.down,
                &common::secrets(&prompt, marker, &answer),
                "proxy to browser",
            );
        } else {
            common::assert_no_leak(
                &rec.down,
                &[prompt.clone(), answer.clone()],
                "proxy to browser",
            );
        }
    }

    // (b): a policy that refuses this enclave (another measurement). By default the proxy
    // still exits 1 ...
    let refusing = d.join("refusing.toml");
    let text = std::fs::read_to_string(&policy).unwrap();
    let start = text.find("measurements = [\"").unwrap() + "measurements = [\"".len();
    let wrong = format!(
        "{}{}{}",
        &text[..start],
        "ab".repeat(48),
        &text[start + 96..]
    );
    std::fs::write(&refusing, wrong).unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        proxy(enclave, &refusing, d, &[]).output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("measurement"), "{err}");

    // ... and with --serve-on-refusal it stays up: /v1 answers 502 naming the check, and
    // the page shows the browser's own refusal, the failed row in red.
    let (_refused, refused_addr) =
        spawn_proxy(proxy(enclave, &refusing, d, &["--serve-on-refusal"])).await;
    let (status, body) = common::relay::http_get(refused_addr, "/v1/models").await;
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 502, "{body}");
    assert!(
        body.contains("measurement") && body.contains("attestation"),
        "{body}"
    );
    let v = drive(
        &browser,
        &format!("http://{refused_addr}/verify"),
        "verify-page-refused.png",
        None,
        &d.join("profile-b"),
    )
    .await;
    assert_eq!(v["state"], "refused", "{v:#}");
    let failed: Vec<&Value> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["class"].as_str().unwrap().contains("fail"))
        .collect();
    assert!(!failed.is_empty(), "{v:#}");
    for r in &failed {
        assert_eq!(r["color"], "rgb(176, 0, 32)", "a failed row is red: {r}");
        let name = r["name"].as_str().unwrap();
        assert!(v["summaryText"].as_str().unwrap().contains(name), "{v:#}");
    }
    assert!(
        failed
            .iter()
            .any(|r| r["name"].as_str().unwrap().contains("measurement")),
        "{v:#}"
    );
    assert_eq!(v["sendEnabled"], false, "no prompt for a refused enclave");
    assert_eq!(v["simulated"], true, "{v:#}");
}

/// A plain HTTP exchange with the proxy: status, headers and body.
async fn exchange(
    addr: SocketAddr,
    req: hyper::http::request::Builder,
    body: Vec<u8>,
) -> (u16, hyper::HeaderMap, Vec<u8>) {
    use http_body_util::BodyExt;
    let req = req
        .header("host", addr.to_string())
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let r = common::relay::http(addr, req).await;
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    let body = r.into_body().collect().await.unwrap().to_bytes().to_vec();
    (status, headers, body)
}

/// Serves `app` on a free loopback port.
async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(silk_client::proxy::serve_router(listener, app));
    addr
}

/// Without a browser: the page's files carry the CSP and their types; the relay gives the
/// enclave's evidence to the caller's nonce unchanged (it verifies, fresh), carries a
/// request sealed by the caller and streams the sealed answer back (opened by the caller
/// only); a refused proxy answers 502 on /v1 while /verify still relays; each refusal of
/// the relay names its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_verify_routes_relay_evidence_and_sealed_answers_unchanged() {
    use silk_client::verify_page::{Page, ProxyCheck};
    use silk_client::verify_relay::{Relay, RelayLimits};
    use silk_protocol::EvidenceBundle;
    use std::sync::Arc;

    let local = common::enclave().await;
    let relay = Relay::new(&local.https(), RelayLimits::default()).unwrap();
    let page = Page::new(
        "allow_simulated = true\n".into(),
        local.https(),
        Ok(relay),
        ProxyCheck::Accepted,
    );
    let upstream =
        silk_client::upstream::Upstream::new(silk_client::upstream::Target::Direct(Arc::new(
            silk_client::Session::connect(&local.https(), local.policy.clone())
                .await
                .unwrap(),
        )));
    let addr = serve(silk_client::proxy::router_with_page(
        Arc::new(upstream),
        Arc::new(page),
    ))
    .await;

    // The files.
    let (status, h, _) = exchange(addr, hyper::Request::get("/verify"), vec![]).await;
    assert_eq!(status, 200);
    assert_eq!(h["content-security-policy"], silk_client::verify_page::CSP);
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    let wasm_path = "/verify/pkg/silk_verifier_wasm_bg.wasm";
    let (status, h, wasm) = exchange(addr, hyper::Request::get(wasm_path), vec![]).await;
    assert_eq!(status, 200);
    assert_eq!(h["content-type"], "application/wasm");
    assert!(wasm.starts_with(b"\0asm"), "a WebAssembly module");
    let (_, _, info) = exchange(addr, hyper::Request::get("/verify/api/info"), vec![]).await;
    let info: Value = serde_json::from_slice(&info).unwrap();
    assert_eq!(info["policy"], "allow_simulated = true\n");
    assert_eq!(info["proxy_check"]["accepted"], true);
    assert_eq!(info["wasm_sha256"], silk_client::verify_page::wasm_sha256());

    // Evidence to the caller's nonce, relayed as the enclave made it: its claims carry
    // the nonce (the browser test verifies such evidence; here the sealed exchange below
    // shows that the base evidence carried the enclave's real key).
    let claims_of = |bundle: &[u8]| {
        let b = EvidenceBundle::from_json(bundle).unwrap();
        silk_protocol::Claims::decode(&b.claims.0).unwrap()
    };
    let nonce = [0x5a_u8; 32];
    let path = format!("/verify/api/attestation?nonce={}", hex::encode(nonce));
    let (status, _, fresh) = exchange(addr, hyper::Request::get(path), vec![]).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&fresh));
    let claims = claims_of(&fresh);
    assert_eq!(claims.challenge, nonce);
    let (status, _, base) =
        exchange(addr, hyper::Request::get("/verify/api/attestation"), vec![]).await;
    assert_eq!(status, 200);
    let base = claims_of(&base);
    assert!(base.challenge.is_empty());
    assert_eq!(base.hpke_public_key, claims.hpke_public_key);

    // A request sealed here, relayed; the sealed answer streams back and opens here.
    let body = common::chat_body("What is the capital of France?", 24, true);
    let (wire, mut opener) = silk_protocol::seal_request(
        &base.hpke_public_key,
        &base.digest().unwrap(),
        &body,
        &mut silk_protocol::seal::os_rng(),
    )
    .unwrap();
    let req = hyper::Request::post("/verify/api/sealed")
        .header("content-type", silk_protocol::wire::SEALED_REQUEST_TYPE);
    let (status, h, sealed) = exchange(addr, req, wire).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&sealed));
    assert_eq!(h["content-type"], silk_protocol::wire::SEALED_STREAM_TYPE);
    let plain: Vec<u8> = opener
        .push(&sealed)
        .unwrap()
        .iter()
        .flat_map(|p| p.to_vec())
        .collect();
    opener.finish().unwrap();
    let text = String::from_utf8_lossy(&plain);
    assert!(
        text.contains("\"role\":\"assistant\"") && text.contains("data: [DONE]"),
        "{text}"
    );
    assert!(!common::contains(&sealed, b"chat.completion.chunk"));

    // Refusals, each naming its reason.
    let bad = "/verify/api/attestation?nonce=zz";
    let (status, _, body) = exchange(addr, hyper::Request::get(bad), vec![]).await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("bad_nonce"));
    let req = hyper::Request::post("/verify/api/sealed").header("content-type", "text/plain");
    let (status, _, _) = exchange(addr, req, b"hello".to_vec()).await;
    assert_eq!(
        status, 415,
        "only the page's own fetch sends a sealed request"
    );
    let req = hyper::Request::post("/verify/api/sealed")
        .header("content-type", silk_protocol::wire::SEALED_REQUEST_TYPE);
    let (status, _, body) =
        exchange(addr, req, vec![0; silk_protocol::wire::MAX_SEALED_BODY + 1]).await;
    assert_eq!(status, 413);
    assert!(String::from_utf8_lossy(&body).contains("MAX_SEALED_BODY"));

    // A refused proxy: /v1 502 naming the checks; /verify relays still, sealed requests not.
    let dead = Relay::new("http://127.0.0.1:1", RelayLimits::default()).unwrap();
    let measurement = silk_protocol::attestation::checks::snp::MEASUREMENT.name;
    let check = ProxyCheck::Refused {
        summary: format!("failed checks: {measurement}"),
        failed: vec![measurement.into()],
    };
    let page = Arc::new(Page::new(String::new(), "x".into(), Ok(dead), check));
    let refused = serve(silk_client::proxy::refused_router(
        format!("failed checks: {measurement}"),
        page,
    ))
    .await;
    for path in ["/v1/models", "/healthz"] {
        let (status, _, body) = exchange(refused, hyper::Request::get(path), vec![]).await;
        assert_eq!(status, 502, "{path}");
        assert!(
            String::from_utf8_lossy(&body).contains(measurement),
            "{path}"
        );
    }
    let req = hyper::Request::post("/v1/chat/completions");
    let (status, _, _) = exchange(refused, req, b"{}".to_vec()).await;
    assert_eq!(status, 502);
    let (status, _, body) = exchange(
        refused,
        hyper::Request::get("/verify/api/attestation"),
        vec![],
    )
    .await;
    assert_eq!(
        status,
        502,
        "a dead enclave: {}",
        String::from_utf8_lossy(&body)
    );
    assert!(String::from_utf8_lossy(&body).contains("connection refused"));
    let req = hyper::Request::post("/verify/api/sealed")
        .header("content-type", silk_protocol::wire::SEALED_REQUEST_TYPE);
    let (status, _, _) = exchange(refused, req, vec![1]).await;
    assert_eq!(status, 502, "no sealed request to a refused enclave");

    // --router: nothing to relay, said so.
    let page = Page::new(
        String::new(),
        "r".into(),
        Err("with --router".into()),
        ProxyCheck::Accepted,
    );
    let routed = serve(silk_client::verify_page::routes(Arc::new(page))).await;
    let (status, _, body) = exchange(
        routed,
        hyper::Request::get("/verify/api/attestation"),
        vec![],
    )
    .await;
    assert_eq!(status, 501);
    assert!(String::from_utf8_lossy(&body).contains("--router"));
}
