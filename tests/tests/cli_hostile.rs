//! The built `silk chat` and `silk proxy` on a hostile path, as a user runs them: a
//! partial answer is marked on stdout and the exit status says transport; the proxy's
//! health turns to 503 when the enclave is gone, and its errors are OpenAI JSON.

mod common;

use std::path::PathBuf;
use std::process::Stdio;

use common::hostile::{relay, Fault, Plan};
use tokio::io::{AsyncBufReadExt, BufReader};

fn silk() -> PathBuf {
    let bin = silk_tests::vm::target_dir().join("debug/silk");
    assert!(
        bin.is_file(),
        "{} is missing: cargo build --bin silk",
        bin.display()
    );
    bin
}

/// An in-process enclave and a policy file that pins it.
async fn enclave_and_policy(dir: &std::path::Path) -> (common::Local, PathBuf) {
    let (pem, root) = common::dev_chain();
    let local = common::enclave_with(pem, root, Default::default()).await;
    let measurement = silk_enclave::start::simulated_measurement().unwrap();
    let path = dir.join("policy.toml");
    std::fs::write(
        &path,
        format!(
            "allow_simulated = true\nsimulated_roots = [\"{}\"]\n[snp]\nmeasurements = [\"{}\"]\nmin_tcb = {{}}\n",
            hex::encode(root),
            hex::encode(measurement)
        ),
    )
    .unwrap();
    (local, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silk_chat_marks_an_answer_altered_mid_stream() {
    let dir = tempfile::tempdir().unwrap();
    let (local, policy) = enclave_and_policy(dir.path()).await;
    // Plain path: connections 0 and 1 attest, 2 carries the request; one byte of its
    // answer is flipped after the first chunks went through.
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
    let out = tokio::process::Command::new(silk())
        .args(["chat", "--endpoint", &format!("http://{via}"), "--policy"])
        .arg(&policy)
        .args(["--max-tokens", "48", "Count from one to twenty in words."])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stdout.contains("[answer incomplete:"), "{stdout}");
    assert!(stderr.contains("seal.chunk_authentic"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silk_proxy_tells_the_truth_about_its_enclave() {
    let dir = tempfile::tempdir().unwrap();
    let (local, policy) = enclave_and_policy(dir.path()).await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let listen = format!("127.0.0.1:{port}");
    let mut proxy = tokio::process::Command::new(silk())
        .args([
            "proxy",
            "--listen",
            &listen,
            "--endpoint",
            &local.https(),
            "--policy",
        ])
        .arg(&policy)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(proxy.stdout.take().unwrap()).lines();
    while let Some(line) = lines.next_line().await.unwrap() {
        if line.contains("OpenAI API at") {
            break;
        }
    }
    let addr: std::net::SocketAddr = listen.parse().unwrap();
    let (status, body) = common::relay::http_get(addr, "/healthz").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));

    let (status, _, body) =
        common::relay::http_post(addr, "/v1/chat/completions", vec![b'x'; 5 << 20]).await;
    let body: serde_json::Value = serde_json::from_slice(&body).expect("OpenAI error JSON");
    assert_eq!(
        (status, &body["error"]["code"]),
        (413, &"request_too_large".into())
    );

    let (status, body) = common::relay::http_get(addr, "/v2/nothing").await;
    assert_eq!(status, 404);
    let body: serde_json::Value = serde_json::from_slice(&body).expect("OpenAI error JSON");
    assert_eq!(body["error"]["code"], "unknown_url");

    drop(local);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (status, body) = common::relay::http_get(addr, "/healthz").await;
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("unreachable") && body.contains("connection refused"),
        "{body}"
    );
}
