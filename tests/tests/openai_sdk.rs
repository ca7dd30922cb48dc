//! The official `openai` Python SDK, pointed at `silk proxy`, gets a completion and a
//! streamed completion from the default model through the sealed path.

mod common;

use std::sync::Arc;

use common::enclave;
use common::hostile::{relay, Fault, Plan};
use silk_client::session::Session;

/// Runs `tests/python/SCRIPT BASE_URL smollm2` with the project's venv (the official
/// OpenAI SDK) against the proxy at `addr`; the JSON it prints.
async fn sdk_script(script: &str, addr: std::net::SocketAddr) -> serde_json::Value {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run scripts/setup-python.sh",
        python.display()
    );
    let out = tokio::process::Command::new(&python)
        .arg(root.join("tests/python").join(script))
        .arg(format!("http://{addr}/v1"))
        .arg("smollm2")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openai_python_sdk_through_silk_proxy() {
    let local = enclave().await;
    let session = Arc::new(
        Session::connect(&local.https(), local.policy.clone())
            .await
            .unwrap(),
    );
    let addr = common::proxy(session).await;
    let v = sdk_script("openai_smoke.py", addr).await;
    assert!(v["chat"].as_str().unwrap().contains("Paris"), "{v}");
    assert_eq!(
        v["stream"], v["chat"],
        "streamed and whole greedy answers agree"
    );
    assert_eq!(v["chat_finish"], "stop");
    assert!(v["stream_finish"].is_string());
    assert!(v["usage"].as_u64().unwrap() > 0);
    assert!(!v["completion"].as_str().unwrap().is_empty());
    assert_eq!(v["models"], serde_json::json!(["smollm2"]));
}

/// Through a hostile path: the answer altered mid-stream reaches the SDK as an APIError
/// naming the integrity check (not a bare connection error), a body too large is an
/// OpenAI-shaped 413, and `/healthz` says when the enclave is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openai_python_sdk_sees_named_errors_on_a_hostile_path() {
    let local = enclave().await;
    // Plain path (as behind a router): connections 0 and 1 attest, 2 carries the first
    // sealed request, whose answer gets one byte flipped well into the stream.
    let via = relay(
        local.plain(),
        Plan {
            connection: 2,
            up: Fault::Pass,
            down: Fault::Flip(900),
            tls: false,
        },
    )
    .await;
    let session = Arc::new(
        Session::connect(&format!("http://{via}"), local.policy.clone())
            .await
            .unwrap(),
    );
    let addr = common::proxy(session).await;
    let v = sdk_script("openai_hostile.py", addr).await;
    println!("{v:#}");
    let e = &v["stream_error"];
    assert_eq!(e["type"], "APIError", "{v}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("seal.chunk_authentic"),
        "{v}"
    );
    assert_eq!(e["body"]["code"], "integrity", "{v}");
    let large = &v["large_error"];
    assert_eq!(large["status"], 413, "{v}");
    assert_eq!(large["body"]["code"], "request_too_large", "{v}");

    let (status, body) = common::relay::http_get(addr, "/healthz").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    drop(local);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (status, body) = common::relay::http_get(addr, "/healthz").await;
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("unreachable"), "{body}");
    let (status, body) = common::relay::http_get(addr, "/v1/nothing").await;
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("unknown_url"));
}
