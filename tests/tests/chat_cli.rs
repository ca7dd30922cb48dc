//! The `silk chat` command against a running enclave: the verification table, then the
//! streamed answer; and exit status 1 naming the failed check when the policy refuses.

mod common;

use std::path::PathBuf;

fn silk() -> PathBuf {
    let bin = silk_tests::vm::target_dir().join("debug/silk");
    assert!(
        bin.is_file(),
        "{} is missing: cargo build --bin silk",
        bin.display()
    );
    bin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silk_chat_prints_the_verdict_then_the_sealed_answer() {
    let (pem, root) = common::dev_chain();
    let local = common::enclave_with(pem, root, Default::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let measurement = silk_enclave::start::simulated_measurement().unwrap();
    let policy_text = |allow: bool| {
        format!(
            "allow_simulated = {allow}\nsimulated_roots = [\"{}\"]\n[snp]\nmeasurements = [\"{}\"]\nmin_tcb = {{}}\n",
            hex::encode(root),
            hex::encode(measurement)
        )
    };
    let good = dir.path().join("good.toml");
    std::fs::write(&good, policy_text(true)).unwrap();
    let out = tokio::process::Command::new(silk())
        .args(["chat", "--endpoint", &local.https(), "--policy"])
        .arg(&good)
        .args([
            "--max-tokens",
            "16",
            "What is the capital of France? Answer in one sentence.",
        ])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("VERDICT: ACCEPTED (SIMULATED)"), "{stdout}");
    assert!(stdout.contains("Paris"), "{stdout}");

    let strict = dir.path().join("strict.toml");
    std::fs::write(&strict, policy_text(false)).unwrap();
    let out = tokio::process::Command::new(silk())
        .args(["chat", "--endpoint", &local.https(), "--policy"])
        .arg(&strict)
        .arg("never sent")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "attestation refusals exit 1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(silk_protocol::attestation::checks::sim::ALLOWED.name),
        "{stderr}"
    );
    assert_eq!(
        common::metric(local.plain(), "silk_enclave_sealed_requests_total").await,
        1.0,
        "only the accepted chat reached the enclave"
    );
}
