//! The enclave's side of collateral, with recorded evidence standing in for the hardware
//! and a local server replaying KDS and PCS: what it fetches at start ends up in every
//! bundle it serves, and verifies the real vendor evidence.

mod common;

const MILAN: silk_attestation::snp::ProductLine = silk_attestation::snp::ProductLine::Milan;

use std::sync::Arc;
use std::time::Duration;

use common::replay::{Replay, Reply};
use common::vectors;
use silk_enclave::collateral::{self, CollateralConfig, Served};
use silk_enclave::evidence::{EvidenceError, EvidenceProvider, Platform, RawEvidence};
use silk_enclave::identity::{Identity, Statement};
use silk_protocol::PlatformEvidence;

/// Returns the same recorded report or quote whatever it is asked.
struct Recorded {
    platform: Platform,
    evidence: Vec<u8>,
}

impl EvidenceProvider for Recorded {
    fn name(&self) -> &'static str {
        "recorded"
    }
    fn report(&self, _: &[u8; 64]) -> Result<RawEvidence, EvidenceError> {
        Ok(RawEvidence {
            platform: self.platform,
            evidence: self.evidence.clone(),
            certificates: None,
        })
    }
}

fn statement(served: Arc<Served>) -> Statement {
    Statement {
        image_digest: [1; 32],
        model: "sha256:00".into(),
        gpu_nonce: Vec::new(),
        software_version: "test".into(),
        payout_address: String::new(),
        evidence_provider: "simulated".into(),
        gpu_policy_sha256: Vec::new(),
        tdx_event_log: None,
        collateral: served,
    }
}

fn config(server: &Replay) -> CollateralConfig {
    let mut c = CollateralConfig {
        kds: server.url(),
        pcs: server.url(),
        // The recorded report is version 2, which does not name its CPU.
        snp_product: Some(MILAN),
        ..CollateralConfig::default()
    };
    c.policy.backoff = Duration::from_millis(50);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tdx_bundles_carry_the_collateral_fetched_before_serving() {
    let server = Replay::start().await;
    server.serve_pcs();
    let quote = std::fs::read(vectors().join("tdx/tdx_quote")).expect("quote");
    let provider = Arc::new(Recorded {
        platform: Platform::Tdx,
        evidence: quote,
    });
    let served = Arc::new(Served::default());
    let task = collateral::prepare(provider.as_ref(), &config(&server), &served)
        .await
        .expect("a refresh task for TDX");
    let identity =
        Identity::create(provider.clone(), statement(served.clone()), None).expect("identity");
    // The first fetch runs in the background; the bundle served picks it up.
    let mut waited = 0;
    while served.tdx_collateral().is_none() {
        assert!(
            waited < 200,
            "no collateral after 10 s: {:?}",
            server.hits()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    task.abort();
    let bundle = identity.bundle();
    let PlatformEvidence::Tdx {
        collateral: Some(json),
        ..
    } = &bundle.platform
    else {
        panic!("no collateral in {:?}", bundle.platform);
    };
    let c = silk_attestation::tdx::TdxCollateral::from_json(&json.0).expect("collateral");
    let mut v = silk_attestation::Verdict::new(silk_attestation::Platform::Tdx);
    let quote = std::fs::read(vectors().join("tdx/tdx_quote")).expect("quote");
    silk_attestation::tdx::verify(&quote, &c, c.latest_issue_date(), &mut v).expect("parses");
    assert!(v.accepted(), "{v:#?}");
    // Fresh bundles (over a client's nonce) carry it too.
    let fresh = identity.fresh_bundle(&[9; 32]).expect("fresh");
    assert!(matches!(
        fresh.platform,
        PlatformEvidence::Tdx {
            collateral: Some(_),
            ..
        }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_snp_report_without_a_certificate_table_gets_its_vcek_from_kds() {
    let text =
        std::fs::read_to_string(vectors().join("snp/milan/report_milan.hex")).expect("report");
    let report = hex::decode(text.trim()).expect("hex");
    let parsed = silk_attestation::snp::AttestationReport::from_bytes(&report).expect("parses");
    let provider = Arc::new(Recorded {
        platform: Platform::SevSnp,
        evidence: report,
    });

    // Without KDS: no bundle, and the error says where the VEK should have come from.
    let served = Arc::new(Served::default());
    let err = Identity::create(provider.clone(), statement(served), None)
        .err()
        .expect("no VEK, no identity");
    assert!(err.to_string().contains("fetched from KDS"), "{err}");

    let server = Replay::start().await;
    let url =
        silk_attestation::snp::kds::vcek_url(&server.url(), &parsed, Some(MILAN)).expect("url");
    let vcek = std::fs::read(vectors().join("snp/milan/vcek_milan.der")).expect("vcek");
    server.route(
        url.trim_start_matches(&server.url()),
        vec![Reply::ok(vcek.clone())],
    );
    let served = Arc::new(Served::default());
    assert!(
        collateral::prepare(provider.as_ref(), &config(&server), &served)
            .await
            .is_none()
    );
    assert_eq!(served.vcek(), Some(&vcek[..]));
    let identity = Identity::create(provider, statement(served), None).expect("identity");
    let PlatformEvidence::SevSnp { vek, .. } = &identity.bundle().platform else {
        panic!("not SNP");
    };
    assert_eq!(vek.0, vcek);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kds_answer_that_is_not_a_certificate_is_refused() {
    let text =
        std::fs::read_to_string(vectors().join("snp/milan/report_milan.hex")).expect("report");
    let report = hex::decode(text.trim()).expect("hex");
    let parsed = silk_attestation::snp::AttestationReport::from_bytes(&report).expect("parses");
    let server = Replay::start().await;
    let url =
        silk_attestation::snp::kds::vcek_url(&server.url(), &parsed, Some(MILAN)).expect("url");
    server.route(
        url.trim_start_matches(&server.url()),
        vec![Reply::ok(b"<html>".to_vec())],
    );
    let err = collateral::vcek(&config(&server), &report)
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("not a DER certificate"), "{err}");
}
