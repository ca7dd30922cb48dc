//! An enclave configured with a GPU whose evidence cannot be collected or does not verify
//! serves its evidence but refuses every sealed request, and says why on `/healthz`.
//! (This machine has no NVIDIA driver, so collection fails the way it does on a host that
//! passed no GPU through.)

mod common;

use common::relay;
use silk_enclave::evidence::ProviderKind;
use silk_enclave::start::{self, Config, EvidenceChoice, GpuCheck};
use silk_protocol::attestation::Policy;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_gpu_without_valid_evidence_stops_sealed_serving() {
    let (pem, _) = common::dev_chain();
    let policy = Policy::from_toml(
        "[gpu]\nrequired = true\narchitectures = [\"hopper\"]\nmin_driver_version = \"550\"\nmin_vbios_version = \"0\"\n",
    )
    .unwrap();
    let running = start::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        plain_listen: Some("127.0.0.1:0".parse().unwrap()),
        model: common::default_model(),
        model_name: None,
        model_id: None,
        device: Default::default(),
        evidence: EvidenceChoice::Kind(ProviderKind::Simulated),
        sim_chain_pem: Some(pem),
        collateral: None,
        image_digest: None,
        engine: Default::default(),
        gpu: Some(GpuCheck {
            policy,
            inputs: Default::default(),
            policy_sha256: [9; 32],
        }),
        limits: Default::default(),
        worker: Default::default(),
    })
    .await
    .expect("the enclave starts and reports why it will not serve");
    let plain = running.plain_addr.unwrap();
    let (status, body) = relay::http_get(plain, "/healthz").await;
    assert_eq!(status, 503);
    let health: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(health["status"], "refusing");
    assert!(
        health["reason"]
            .as_str()
            .unwrap()
            .contains("GPU evidence could not be collected"),
        "{health}"
    );
    let (status, _, body) = relay::http_post(plain, "/v1/sealed", vec![1; 200]).await;
    assert_eq!(status, 503);
    assert!(String::from_utf8_lossy(&body).contains("not_serving"));
    // The evidence is still served, with the boot's GPU nonce in the claims.
    let (status, bundle) = relay::http_get(plain, "/v1/attestation").await;
    assert_eq!(status, 200);
    let bundle = silk_protocol::EvidenceBundle::from_json(&bundle).unwrap();
    let claims = silk_protocol::Claims::decode(&bundle.claims.0).unwrap();
    assert_eq!(
        claims.gpu_nonce,
        silk_protocol::gpu::gpu_nonce(&claims.hpke_public_key, &claims.tls_spki_sha256)
    );
}
