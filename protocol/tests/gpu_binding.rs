//! GPU evidence checked together with the CVM's: a real NVIDIA H100 report is accepted
//! only when its nonce is the claims' GPU nonce *and* that nonce is derived from the
//! claimed keys, so a report from another machine or an earlier boot is refused.

use silk_protocol::attestation::checks::{claims as claim, gpu, policy as section};
use silk_protocol::attestation::gpu::GpuArch;
use silk_protocol::attestation::snp::simulated::SimulatedPlatform;
use silk_protocol::attestation::Policy;
use silk_protocol::bundle::Bytes;
use silk_protocol::gpu::{gpu_nonce, GpuItem};
use silk_protocol::{Claims, EvidenceBundle, Expectations, PlatformEvidence};
use time::macros::datetime;

const V: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../vectors/gpu");
// The nv-local-gpu-verifier H100 sample and the nonce it was made over.
const NONCE: &str = "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb";
const NOW: time::OffsetDateTime = datetime!(2025-03-01 0:00 UTC);

fn h100() -> GpuItem {
    let dir = format!("{V}/nv-local-gpu-verifier-2.7.3/samples");
    let hex_report = std::fs::read_to_string(format!("{dir}/hopperAttestationReport.txt")).unwrap();
    GpuItem {
        arch: GpuArch::Hopper,
        report: Bytes(hex::decode(hex_report.trim()).unwrap()),
        cert_chain: Bytes(std::fs::read(format!("{dir}/hopperCertChain.txt")).unwrap()),
    }
}

fn bundle(p: &SimulatedPlatform, gpu_nonce: Vec<u8>, gpus: Vec<GpuItem>) -> EvidenceBundle {
    let claims = Claims {
        hpke_public_key: [1; 32],
        tls_spki_sha256: [2; 32],
        image_digest: [3; 32],
        model: "m".into(),
        gpu_nonce,
        challenge: vec![],
        created_at: 1_740_787_200,
        software_version: "test".into(),
        receipt_public_key: [9; 32],
        payout_address: String::new(),
        evidence_provider: "simulated".into(),
        gpu_policy_sha256: Vec::new(),
    };
    EvidenceBundle {
        version: 1,
        platform: PlatformEvidence::SevSnp {
            report: Bytes(p.report(&[7; 48], &claims.report_data().unwrap())),
            vek: Bytes(p.chain().vcek.clone()),
            ask: Some(Bytes(p.chain().ask.clone())),
            ark: Some(Bytes(p.chain().ark.clone())),
        },
        claims: Bytes(claims.encode().unwrap()),
        gpus,
    }
}

fn policy(p: &SimulatedPlatform, gpu: &str) -> Policy {
    Policy::from_toml(&format!(
        "allow_simulated = true\nsimulated_roots = [\"{}\"]\n[snp]\nmeasurements = [\"{}\"]\nmin_tcb = {{}}\n\
         [gpu]\narchitectures = [\"hopper\"]\nmin_driver_version = \"535\"\nmin_vbios_version = \"0\"\n\
         allow_missing_revocation = true\nallow_missing_rims = true\n{gpu}",
        hex::encode(p.chain().root_digest()),
        "07".repeat(48)
    ))
    .unwrap()
}

fn verdict(b: &EvidenceBundle, pol: &Policy) -> silk_protocol::attestation::Verdict {
    b.verify(pol, &Expectations::default(), NOW).unwrap().1
}

#[test]
fn a_real_report_over_a_nonce_not_derived_from_the_keys_is_refused() {
    let p = SimulatedPlatform::generate().unwrap();
    let b = bundle(&p, hex::decode(NONCE).unwrap(), vec![h100()]);
    let v = verdict(&b, &policy(&p, ""));
    // The H100's own checks pass: chain, signature, FWID, and its nonce is the claims'.
    for id in [
        &gpu::CERT_CHAIN,
        &gpu::REPORT_SIGNATURE,
        &gpu::FWID,
        &gpu::NONCE,
    ] {
        assert!(v.check(id).unwrap().passed(), "{}", id.name);
    }
    // But that nonce is not this boot's: the claimed keys derive another one.
    assert!(!v.check(&claim::GPU_NONCE).unwrap().passed());
    assert!(!v.accepted());
}

#[test]
fn claims_bound_to_the_keys_refuse_a_report_from_elsewhere() {
    let p = SimulatedPlatform::generate().unwrap();
    let b = bundle(&p, gpu_nonce(&[1; 32], &[2; 32]).to_vec(), vec![h100()]);
    let v = verdict(&b, &policy(&p, ""));
    assert!(v.check(&claim::GPU_NONCE).unwrap().passed());
    assert!(
        !v.check(&gpu::NONCE).unwrap().passed(),
        "the H100 report is not over this nonce"
    );
    assert!(!v.accepted());
}

#[test]
fn required_and_count_are_enforced() {
    let p = SimulatedPlatform::generate().unwrap();
    let none = bundle(&p, vec![], vec![]);
    let v = verdict(&none, &policy(&p, "required = true\n"));
    assert!(!v.check(&gpu::REQUIRED).unwrap().passed());
    // Without a GPU requirement a CPU-only enclave verifies as before.
    assert!(verdict(&none, &policy(&p, "")).accepted());

    let one = bundle(&p, gpu_nonce(&[1; 32], &[2; 32]).to_vec(), vec![h100()]);
    let v = verdict(&one, &policy(&p, "count = 2\n"));
    assert!(!v.check(&gpu::COUNT).unwrap().passed());

    // GPU evidence under a policy without a [gpu] section is not accepted by default.
    let cpu_only = Policy::from_toml(&format!(
        "allow_simulated = true\nsimulated_roots = [\"{}\"]\n[snp]\nmeasurements = [\"{}\"]\nmin_tcb = {{}}\n",
        hex::encode(p.chain().root_digest()),
        "07".repeat(48)
    ))
    .unwrap();
    let v = verdict(&one, &cpu_only);
    assert!(!v.check(&section::GPU).unwrap().passed());
    // And the bundle with its GPU survives JSON.
    assert_eq!(EvidenceBundle::from_json(&one.to_json()).unwrap(), one);
}
