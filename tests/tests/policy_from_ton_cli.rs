//! `silk policy from-ton` through the built binary: the registry state the TVM sandbox
//! wrote (`ledger/ton/fixtures/registry-state.json`), read from a file and from a local
//! stand-in for a TON HTTP API, becomes a policy allowing exactly the registry's images.

mod common;

use std::net::SocketAddr;
use std::path::Path;

use common::procs::silk;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../ledger/ton/fixtures")
        .join(name)
}

/// Answers every request with `status` and `body`, recording the request lines.
async fn api(
    status: &'static str,
    body: Vec<u8>,
) -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).await.unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]);
            let _ = tx.send(head.lines().next().unwrap_or("").to_owned());
            let resp = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes()).await;
            let _ = s.write_all(&body).await;
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn policies_from_the_ton_registry() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("registry-entries.json")).unwrap())
            .unwrap();
    let entries = truth["entries"].as_array().unwrap();
    let state = fixture("registry-state.json");
    let out_file = d.join("policy.toml");
    let out = silk(
        &[
            "policy",
            "from-ton",
            "--state",
            state.to_str().unwrap(),
            "-o",
            out_file.to_str().unwrap(),
        ],
        d,
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let policy = std::fs::read_to_string(&out_file).unwrap();
    silk_protocol::attestation::Policy::from_toml(&policy).unwrap();
    for e in entries {
        for k in ["snp_launch_digest", "tdx_mrtd", "tdx_rtmr1", "tdx_rtmr2"] {
            if let Some(v) = e[k].as_str() {
                assert!(policy.contains(v), "{k} {v} missing:\n{policy}");
            }
        }
    }
    // Only one model's images.
    let model = entries[0]["model_id"].as_str().unwrap();
    let out = silk(
        &[
            "policy",
            "from-ton",
            "--state",
            state.to_str().unwrap(),
            "--model",
            model,
        ],
        d,
    )
    .await;
    let only = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for e in entries {
        let shown = only.contains(e["digest"].as_str().unwrap());
        assert_eq!(shown, e["model_id"] == model, "{only}");
    }
    let out = silk(
        &[
            "policy",
            "from-ton",
            "--state",
            state.to_str().unwrap(),
            "--model",
            "sha256:00",
        ],
        d,
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("allows no image serving sha256:00"));
    // Not a registry state.
    let junk = d.join("junk.json");
    std::fs::write(
        &junk,
        r#"{"ok": true, "result": {"state": "active", "data": "te6cckEBAQEAAgAAAEysuc0="}}"#,
    )
    .unwrap();
    let out = silk(
        &["policy", "from-ton", "--state", junk.to_str().unwrap()],
        d,
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("registry."),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The same through a TON HTTP API (a local stand-in answering toncenter's shape).
    let (addr, mut seen) = api("200 OK", std::fs::read(&state).unwrap()).await;
    let raw = truth["address"].as_str().unwrap();
    let out = silk(
        &[
            "policy",
            "from-ton",
            "--ton-api",
            &format!("http://{addr}/api/v2"),
            "--address",
            raw,
        ],
        d,
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let via_api = String::from_utf8_lossy(&out.stdout).into_owned();
    let strip = |t: &str| {
        t.lines()
            .filter(|l| !l.starts_with("# Written"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&via_api), strip(&policy));
    let line = seen.recv().await.unwrap();
    assert!(
        line.starts_with("GET /api/v2/getAddressInformation?address=0%3A"),
        "{line}"
    );
    // An API refusing (rate limit) is named, and nothing is written.
    let (addr, _) = api(
        "429 Too Many Requests",
        br#"{"ok":false,"error":"Ratelimit exceed","code":429}"#.to_vec(),
    )
    .await;
    let never = d.join("never.toml");
    let out = silk(
        &[
            "policy",
            "from-ton",
            "--ton-api",
            &format!("http://{addr}"),
            "--address",
            raw,
            "-o",
            never.to_str().unwrap(),
        ],
        d,
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("429"));
    assert!(!never.exists());
}
