//! Simulated evidence end to end through `verify_snp`: accepted only when the policy both
//! allows simulation and pins the development root, and always marked SIMULATED.

use silk_attestation::checks::sim;
use silk_attestation::snp::certs::SnpCertificates;
use silk_attestation::snp::simulated::SimulatedPlatform;
use silk_attestation::{verify_snp, Policy};
use time::macros::datetime;

fn policy(platform: &SimulatedPlatform, allow: bool, pin: bool) -> Policy {
    let root = if pin {
        format!(
            "simulated_roots = [\"{}\"]\n",
            hex::encode(platform.chain().root_digest())
        )
    } else {
        String::new()
    };
    Policy::from_toml(&format!(
        "allow_simulated = {allow}\n{root}[snp]\nmeasurements = [\"{}\"]\nmin_tcb = {{}}\n",
        "07".repeat(48)
    ))
    .unwrap()
}

#[test]
fn simulated_evidence_needs_allow_and_pin() {
    let p = SimulatedPlatform::generate().unwrap();
    let raw = p.report(&[7; 48], &[9; 64]);
    let certs = SnpCertificates {
        vek: p.chain().vcek.clone(),
        ask: Some(p.chain().ask.clone()),
        ark: Some(p.chain().ark.clone()),
    };
    let now = datetime!(2026-01-01 0:00 UTC);
    let (_, v) = verify_snp(&raw, &certs, &policy(&p, true, true), now).unwrap();
    assert!(v.accepted(), "{:?}", v.failures().collect::<Vec<_>>());
    assert!(v.simulated);
    assert!(v.warnings.iter().any(|w| w.contains("SIMULATED")));

    let (_, v) = verify_snp(&raw, &certs, &policy(&p, false, true), now).unwrap();
    assert!(!v.accepted());
    assert!(!v.check(&sim::ALLOWED).unwrap().passed());

    let (_, v) = verify_snp(&raw, &certs, &policy(&p, true, false), now).unwrap();
    assert!(!v.check(&sim::ROOT_PINNED).unwrap().passed());

    // A default (AMD-only) policy never accepts it either.
    let (_, v) = verify_snp(&raw, &certs, &Policy::default(), now).unwrap();
    assert!(!v.accepted());
}
