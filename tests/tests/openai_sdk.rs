//! The official `openai` Python SDK, pointed at `silk proxy`, gets a completion and a
//! streamed completion from the default model through the sealed path.

mod common;

use std::sync::Arc;

use common::enclave;
use silk_client::session::Session;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openai_python_sdk_through_silk_proxy() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run scripts/setup-python.sh",
        python.display()
    );
    let local = enclave().await;
    let session = Arc::new(
        Session::connect(&local.https(), local.policy.clone())
            .await
            .unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, silk_client::proxy::router(session))
            .await
            .unwrap()
    });
    let out = tokio::process::Command::new(&python)
        .arg(root.join("tests/python/openai_smoke.py"))
        .arg(format!("http://{addr}/v1"))
        .arg("smollm2")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "openai SDK failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
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
