//! RA-TLS certificates: the evidence extension round-trips, and the verifier refuses a
//! certificate without evidence, with evidence that does not verify, or whose key is not
//! the one the claims carry.

use silk_protocol::attestation::checks::claims as claim;
use silk_protocol::attestation::snp::simulated::SimulatedPlatform;
use silk_protocol::attestation::Policy;
use silk_protocol::bundle::Bytes;
use silk_protocol::ratls::{read_certificate, verify_certificate, Refusal, TlsIdentity, CMW_OID};
use silk_protocol::{Claims, EvidenceBundle, PlatformEvidence};

fn bundle(p: &SimulatedPlatform, tls: &TlsIdentity, model: &str) -> EvidenceBundle {
    let claims = Claims {
        hpke_public_key: [1; 32],
        tls_spki_sha256: tls.spki_sha256(),
        image_digest: [3; 32],
        model: model.into(),
        gpu_nonce: vec![],
        challenge: vec![],
        created_at: 1_767_225_600,
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
        gpus: vec![],
    }
}

fn policy(p: &SimulatedPlatform) -> Policy {
    Policy::from_toml(&format!(
        "allow_simulated = true\nsimulated_roots = [\"{}\"]\n[snp]\nmeasurements = [\"{}\"]\nmin_tcb = {{}}\n",
        hex::encode(p.chain().root_digest()),
        "07".repeat(48)
    ))
    .unwrap()
}

const NOW: time::OffsetDateTime = time::macros::datetime!(2026-01-01 0:01 UTC);

#[test]
fn certificate_carries_the_bundle_and_verifies_with_its_own_key() {
    let p = SimulatedPlatform::generate().unwrap();
    let tls = TlsIdentity::generate().unwrap();
    let b = bundle(&p, &tls, "sha256:00");
    let (cert, _key) = tls.certificate(&b).unwrap();
    let ev = read_certificate(cert.as_ref()).unwrap();
    assert_eq!(ev.bundle, b);
    assert_eq!(ev.spki_sha256, tls.spki_sha256());
    let accepted = verify_certificate(cert.as_ref(), &policy(&p), NOW).unwrap();
    assert!(accepted.verdict.accepted());
    assert_eq!(accepted.claims.model, "sha256:00");
    assert_eq!(CMW_OID, &[1, 3, 6, 1, 5, 5, 7, 1, 35]);
}

#[test]
fn genuine_evidence_under_another_key_is_refused() {
    let p = SimulatedPlatform::generate().unwrap();
    let enclave_tls = TlsIdentity::generate().unwrap();
    let attacker_tls = TlsIdentity::generate().unwrap();
    let (cert, _) = attacker_tls
        .certificate(&bundle(&p, &enclave_tls, "m"))
        .unwrap();
    match verify_certificate(cert.as_ref(), &policy(&p), NOW) {
        Err(Refusal::KeyMismatch { claimed, presented }) => {
            assert_eq!(claimed, enclave_tls.spki_sha256());
            assert_eq!(presented, attacker_tls.spki_sha256());
        }
        other => panic!("expected a key mismatch, got {other:?}"),
    }
}

#[test]
fn evidence_that_does_not_verify_names_the_failed_check() {
    let p = SimulatedPlatform::generate().unwrap();
    let tls = TlsIdentity::generate().unwrap();
    let mut b = bundle(&p, &tls, "m");
    // Claims swapped under the same report.
    let mut claims = Claims::decode(&b.claims.0).unwrap();
    claims.model = "another model".into();
    b.claims = Bytes(claims.encode().unwrap());
    let (cert, _) = tls.certificate(&b).unwrap();
    match verify_certificate(cert.as_ref(), &policy(&p), NOW) {
        Err(Refusal::Evidence(v)) => {
            assert!(!v.check(&claim::REPORT_DATA).unwrap().passed());
            let text = Refusal::Evidence(v).to_string();
            assert!(text.contains(claim::REPORT_DATA.name), "{text}");
        }
        other => panic!("expected an evidence refusal, got {other:?}"),
    }
    // Another platform's root is not pinned.
    let q = SimulatedPlatform::generate().unwrap();
    let (cert, _) = tls.certificate(&bundle(&q, &tls, "m")).unwrap();
    assert!(matches!(
        verify_certificate(cert.as_ref(), &policy(&p), NOW),
        Err(Refusal::Evidence(_))
    ));
}

#[test]
fn a_certificate_without_evidence_is_refused() {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["x".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let p = SimulatedPlatform::generate().unwrap();
    let e = verify_certificate(cert.der(), &policy(&p), NOW).unwrap_err();
    assert!(e.to_string().contains("0 evidence extensions"), "{e}");
    assert!(read_certificate(b"not a certificate").is_err());
}
