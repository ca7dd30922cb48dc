//! `silk verify` on an evidence bundle saved from `GET /v1/attestation`: offline
//! verification of what an enclave served, claims binding included.

mod common;

use common::relay;
use silk_tools::verify::{run_verify, VerifyArgs};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_bundle_verifies_offline_and_a_swapped_claim_does_not() {
    let (pem, root) = common::dev_chain();
    let local = common::enclave_with(pem, root, Default::default()).await;
    let (status, bundle) = relay::http_get(local.plain(), "/v1/attestation").await;
    assert_eq!(status, 200);
    let dir = std::env::temp_dir().join(format!("silk-verify-bundle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let measurement = silk_enclave::start::simulated_measurement().unwrap();
    let policy = dir.join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "allow_simulated = true\nsimulated_roots = [\"{}\"]\n[snp]\nmeasurements = [\"{}\"]\nmin_tcb = {{}}\n",
            hex::encode(root),
            hex::encode(measurement)
        ),
    )
    .unwrap();
    let evidence = dir.join("bundle.json");
    std::fs::write(&evidence, &bundle).unwrap();
    let args = VerifyArgs {
        evidence: evidence.clone(),
        policy: Some(policy),
        ..VerifyArgs::default()
    };
    let mut out = Vec::new();
    assert!(run_verify(&args, &mut out).unwrap());
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains(silk_protocol::attestation::checks::claims::REPORT_DATA.name)
            && text.contains("SIMULATED"),
        "{text}"
    );

    // The same report under other claims.
    let mut b = silk_protocol::EvidenceBundle::from_json(&bundle).unwrap();
    let mut claims = silk_protocol::Claims::decode(&b.claims.0).unwrap();
    claims.model = "sha256:another".into();
    b.claims = silk_protocol::bundle::Bytes(claims.encode().unwrap());
    std::fs::write(&evidence, b.to_json()).unwrap();
    let mut out = Vec::new();
    assert!(!run_verify(&args, &mut out).unwrap());
    assert!(String::from_utf8(out)
        .unwrap()
        .contains("FAIL  claims.report_data"));
    let _ = std::fs::remove_dir_all(&dir);
}
