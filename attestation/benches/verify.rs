//! Full verification of the real SNP and TDX vectors by silk, beside the same work done
//! directly with the `sev` crate and with `dcap-qvl` (both sides start from the same DER
//! and JSON bytes and parse them in every iteration), so the overhead ratio can be read off
//! one run. silk's numbers include everything it checks beyond the direct calls (ARK
//! pinning, certificate validity, VCEK TCB and chip-id extensions, the policy).
//!
//! Run with `cargo bench -p silk-attestation --bench verify`.
// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use silk_attestation::snp::certs::{pem_bundle, SnpCertificates};
use silk_attestation::tdx::TdxCollateral;
use silk_attestation::{verify_quote, verify_snp, Policy};
use time::macros::datetime;

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../vectors");

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(format!("{VECTORS}/{rel}")).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn snp(c: &mut Criterion) {
    let hex_text = String::from_utf8(read("snp/milan/report_milan.hex")).expect("utf8");
    let raw = hex::decode(hex_text.trim()).expect("hex");
    let vcek = read("snp/milan/vcek_milan.der");
    let chain = pem_bundle(&read("snp/milan/cert_chain.pem"), "chain").expect("chain");
    let certs = SnpCertificates {
        vek: vcek.clone(),
        ask: Some(chain[0].clone()),
        ark: Some(chain[1].clone()),
    };
    let policy = Policy::from_toml(include_str!("../../docs/examples/snp-milan-sample.toml"))
        .expect("policy");
    let now = datetime!(2025-01-01 0:00 UTC);
    assert!(verify_snp(&raw, &certs, &policy, now)
        .expect("verifies")
        .1
        .accepted());

    let mut group = c.benchmark_group("snp_milan");
    group.bench_function("silk_verify_snp", |b| {
        b.iter(|| verify_snp(black_box(&raw), &certs, &policy, now).map(|(_, v)| v.accepted()))
    });
    group.bench_function("sev_crate_direct", |b| {
        use sev::certs::snp::{ca, Certificate, Chain, Verifiable};
        use sev::firmware::guest::AttestationReport;
        use sev::parser::ByteParser;
        b.iter(|| {
            let report = AttestationReport::from_bytes(black_box(&raw)).expect("parse");
            let chain = Chain {
                ca: ca::Chain {
                    ark: Certificate::from_der(&chain[1]).expect("ark"),
                    ask: Certificate::from_der(&chain[0]).expect("ask"),
                },
                vek: Certificate::from_der(&vcek).expect("vcek"),
            };
            (&chain, &report).verify().is_ok()
        })
    });
    group.finish();
}

fn tdx(c: &mut Criterion) {
    let raw = read("tdx/tdx_quote");
    let json = read("tdx/tdx_quote_collateral.json");
    let collateral = TdxCollateral::from_json(&json).expect("collateral");
    let qvl_collateral: dcap_qvl::QuoteCollateralV3 =
        serde_json::from_slice(&json).expect("collateral");
    let policy =
        Policy::from_toml(include_str!("../../docs/examples/tdx-sample.toml")).expect("policy");
    let now = datetime!(2025-06-20 0:00 UTC);
    let now_secs = now.unix_timestamp() as u64;
    assert!(verify_quote(&raw, &collateral, &policy, now)
        .expect("verifies")
        .1
        .accepted());

    let mut group = c.benchmark_group("tdx_quote");
    group.bench_function("silk_verify_quote", |b| {
        b.iter(|| {
            verify_quote(black_box(&raw), &collateral, &policy, now).map(|(_, v)| v.accepted())
        })
    });
    group.bench_function("dcap_qvl_direct", |b| {
        b.iter(|| dcap_qvl::verify::verify(black_box(&raw), &qvl_collateral, now_secs).is_ok())
    });
    group.finish();
}

criterion_group!(benches, snp, tdx);
criterion_main!(benches);
