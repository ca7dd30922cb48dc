//! The official `openai` Python SDK, pointed at `silk proxy`, gets a completion and a
//! streamed completion from the default model through the sealed path; and, through the
//! built `silk-enclave` and `silk proxy`, logprobs, JSON-object answers, logit_bias and a
//! named 400 for every parameter silk refuses.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use common::enclave;
use common::hostile::{relay, Fault, Plan};
use common::procs::{bin, sim_enclave, sim_policy, spawn, spawn_proxy};
use serde_json::{json, Value};
use silk_client::session::Session;
use tokio::process::{Child, Command};

/// Runs `tests/python/SCRIPT BASE_URL smollm2` with the project's venv (the official
/// OpenAI SDK) against the proxy at `addr`; the JSON it prints.
async fn sdk_script(script: &str, addr: std::net::SocketAddr) -> serde_json::Value {
    sdk_script_with(script, addr, &[]).await
}

/// As [`sdk_script`], with more arguments after the model's name.
async fn sdk_script_with(script: &str, addr: SocketAddr, extra: &[&str]) -> Value {
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
        .args(extra)
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

/// The built `silk-enclave` on the default model with simulated evidence, and the built
/// `silk proxy` verifying it against a policy pinning that binary; the proxy's address.
async fn built_enclave_and_proxy(d: &Path) -> (Child, Child, SocketAddr) {
    let (policy, _, _) = sim_policy(d);
    let (enclave, enclave_addr) = spawn(sim_enclave(d), "https").await;
    let mut proxy = Command::new(bin("silk"));
    proxy
        .args(["proxy", "--listen", "127.0.0.1:0", "--endpoint"])
        .arg(format!("https://{enclave_addr}"))
        .arg("--policy")
        .arg(&policy)
        .env("XDG_CONFIG_HOME", d);
    let (proxy, addr) = spawn_proxy(proxy).await;
    (enclave, proxy, addr)
}

/// The first token of each way the answer could begin "Paris", in the default model's
/// vocabulary (what `logit_bias` bans).
fn paris_tokens() -> Vec<u32> {
    let device = silk_engine::DeviceSpec::Cpu.open().unwrap();
    let tok = silk_engine::open(&common::default_model(), &device)
        .unwrap()
        .tokenizer;
    let mut ids: Vec<u32> = ["Paris", " Paris", "paris", " paris", " PARIS"]
        .iter()
        .map(|w| tok.encode(w, false, false).unwrap()[0])
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openai_python_sdk_gets_logprobs_json_objects_and_named_refusals_from_the_binaries() {
    let dir = tempfile::tempdir().unwrap();
    let (_enclave, _proxy, addr) = built_enclave_and_proxy(dir.path()).await;
    let banned = serde_json::to_string(&paris_tokens()).unwrap();
    let v = sdk_script_with("openai_strict.py", addr, &[&banned]).await;
    println!("{v:#}");

    // Chat logprobs: one entry per token of the answer, the model's most likely token first
    // (greedy takes it), and the streamed answer reports exactly the same.
    let text = v["chat_text"].as_str().unwrap();
    assert!(text.contains("Paris"), "{v}");
    let entries = v["chat_logprobs"].as_array().unwrap();
    assert!(!entries.is_empty(), "{v}");
    let mut bytes = Vec::new();
    for e in entries {
        let lp = e["logprob"].as_f64().unwrap();
        assert!(lp <= 0.0, "{e}");
        assert_eq!(e["top"].as_array().unwrap().len(), 3, "{e}");
        assert_eq!(
            e["top"][0]["token"], e["token"],
            "greedy takes the most likely: {e}"
        );
        assert_eq!(e["top"][0]["logprob"], e["logprob"], "{e}");
        bytes.extend(
            e["bytes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b.as_u64().unwrap() as u8),
        );
    }
    assert_eq!(
        String::from_utf8(bytes).unwrap(),
        text,
        "the tokens spell the answer"
    );
    assert_eq!(v["chat_stream_text"], v["chat_text"]);
    assert_eq!(
        v["chat_stream_logprobs"], v["chat_logprobs"],
        "streamed = whole"
    );

    // Completions logprobs: parallel lists, up to logprobs + 1 alternatives, offsets into
    // the text; streamed = whole.
    let c = &v["completion"];
    let tokens = c["tokens"].as_array().unwrap();
    assert!(!tokens.is_empty(), "{c}");
    for key in ["token_logprobs", "top_logprobs", "text_offset"] {
        assert_eq!(c[key].as_array().unwrap().len(), tokens.len(), "{key}: {c}");
    }
    let mut offset = 0;
    for (i, t) in tokens.iter().enumerate() {
        assert_eq!(c["text_offset"][i], offset, "{c}");
        offset += t.as_str().unwrap().chars().count();
        let top = c["top_logprobs"][i].as_object().unwrap();
        assert!((1..=3).contains(&top.len()), "{c}");
        assert_eq!(top[t.as_str().unwrap()], c["token_logprobs"][i], "{c}");
    }
    let joined: String = tokens.iter().map(|t| t.as_str().unwrap()).collect();
    assert_eq!(joined, c["text"].as_str().unwrap());
    assert_eq!(v["completion_stream"], *c, "streamed = whole");

    // JSON-object answers all parse as objects, streamed or not.
    let objects = v["json"].as_array().unwrap();
    assert_eq!(objects.len(), 6);
    for o in objects {
        assert_eq!(o["object"], true, "{o}");
        assert!(
            matches!(o["finish"].as_str(), Some("stop" | "length")),
            "{o}"
        );
    }
    assert!(
        objects
            .iter()
            .any(|o| o["finish"] == "stop" && o["text"].as_str().unwrap().len() > 10),
        "the model closes some object by itself: {objects:?}"
    );
    assert_eq!(v["json_stream_equals_whole"], true, "{v}");

    // logit_bias -100 bans: the greedy answer no longer says Paris.
    assert!(!v["banned_text"].as_str().unwrap().contains("Paris"), "{v}");

    // Every refusal is a BadRequestError naming the parameter.
    let refused = v["refused"].as_object().unwrap();
    assert_eq!(refused.len(), 22);
    for (name, r) in refused {
        let param = name.strip_prefix("completions.").unwrap_or(name);
        assert_eq!(r["raised"], "BadRequestError", "{name}: {r}");
        assert_eq!(r["param"], json!(param), "{name}: {r}");
    }
    assert_eq!(refused["tools"]["code"], "unsupported_parameter");
    assert_eq!(refused["temprature"]["code"], "unknown_parameter");
    assert_eq!(v["ignored_accepted"], true);
}
