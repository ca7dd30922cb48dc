//! Every single-byte change of a real GPU report must be rejected: the signature covers
//! every byte but itself, the parser leaves no slack, and a changed signature fails.
//! (Parsing and the signature are what `gpu::verify` runs as `gpu.report_format` and
//! `gpu.report_signature`; the full verify per mutation, chain included, took minutes.)

use silk_attestation::checks::gpu as check;
use silk_attestation::gpu::{self, certs, GpuArch, GpuEvidence, Revocation, RimStore, SpdmReport};
use silk_attestation::Policy;
use time::macros::datetime;
use x509_cert::Certificate;

const V: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../vectors/gpu");

fn read(p: &str) -> Vec<u8> {
    let path = format!("{V}/{p}");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Whether the full verifier passes the report's format and signature checks.
fn accepted(ev: &GpuEvidence, nonce: &[u8; 32], policy: &Policy, rims: &RimStore) -> bool {
    let v = gpu::verify(
        ev,
        policy,
        nonce,
        rims,
        &Revocation::Unavailable,
        datetime!(2025-03-01 0:00 UTC),
    );
    [&check::REPORT_FORMAT, &check::REPORT_SIGNATURE]
        .iter()
        .all(|c| v.check(c).is_some_and(|c| c.passed()))
}

/// The same two checks, run directly.
fn parses_and_verifies(raw: &[u8], leaf: &Certificate) -> bool {
    SpdmReport::parse(raw).is_ok_and(|r| gpu::report_signature(raw, &r, leaf).is_ok())
}

fn every_byte_rejected(arch: GpuArch, report: &str, chain: &str, nonce: &str) {
    let raw = hex::decode(String::from_utf8(read(report)).unwrap().trim()).unwrap();
    let nonce: [u8; 32] = hex::decode(nonce).unwrap().try_into().unwrap();
    let policy = Policy::from_toml("[gpu]\narchitectures = [\"hopper\", \"blackwell\"]\n").unwrap();
    let rims = RimStore::new();
    let ev = GpuEvidence {
        arch,
        report: raw.clone(),
        cert_chain_pem: read(chain),
    };
    assert!(
        accepted(&ev, &nonce, &policy, &rims),
        "the unmodified report must verify"
    );
    let leaf = certs::parse_pem_chain(&ev.cert_chain_pem)
        .unwrap()
        .remove(0);
    assert!(parses_and_verifies(&raw, &leaf));
    // Spot checks through the full verifier: the request, the record, the opaque data.
    for i in [4, 100, raw.len() - 200, raw.len() - 1] {
        let mut m = ev.clone();
        m.report[i] ^= 1;
        assert!(!accepted(&m, &nonce, &policy, &rims), "byte {i}");
    }
    let original = SpdmReport::parse(&raw).unwrap();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let positions: Vec<usize> = (0..raw.len()).collect();
    let bad: Vec<usize> = std::thread::scope(|s| {
        let workers: Vec<_> = positions
            .chunks(raw.len().div_ceil(threads))
            .map(|chunk| {
                let (raw, leaf) = (&raw, &leaf);
                s.spawn(move || {
                    let mut m = raw.clone();
                    chunk
                        .iter()
                        .copied()
                        .filter(|&i| {
                            m[i] ^= 0x01;
                            let ok = parses_and_verifies(&m, leaf);
                            m[i] ^= 0x01;
                            ok
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    assert_eq!(
        bad,
        Vec::<usize>::new(),
        "accepted mutations of {report} ({:?})",
        original.signed_len
    );
}

#[test]
fn every_single_byte_change_of_the_hopper_report_is_rejected() {
    every_byte_rejected(
        GpuArch::Hopper,
        "nv-local-gpu-verifier-2.7.3/samples/hopperAttestationReport.txt",
        "nv-local-gpu-verifier-2.7.3/samples/hopperCertChain.txt",
        "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb",
    );
}

#[test]
fn every_single_byte_change_of_the_blackwell_report_is_rejected() {
    let s = "nvidia-attestation-sdk/testdata/sample_attestation_data/gpu";
    every_byte_rejected(
        GpuArch::Blackwell,
        &format!("{s}/blackwellAttestationReport.txt"),
        &format!("{s}/blackwellCertChain.txt"),
        "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb",
    );
}
