//! `silk verify` as a user runs it: real vendor evidence, exit codes, table and JSON.

mod common;

use std::path::PathBuf;

use common::{p, silk, tempdir, text, vectors};
use silk_attestation::checks::{policy, snp};

fn example(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/examples")).join(name)
}

const SNP_POLICY: &str = "snp-milan-sample.toml";
const TDX_POLICY: &str = "tdx-sample.toml";
const IN_WINDOW: &str = "2025-06-20T00:00:00Z";
const AFTER_WINDOW: &str = "2025-08-01T00:00:00Z";

#[test]
fn milan_report_verifies_with_certs_dir() {
    let out = silk(&[
        "verify",
        &p(vectors().join("snp/milan/report_milan.hex")),
        "--certs",
        &p(vectors().join("snp/milan")),
        "--policy",
        &p(example(SNP_POLICY)),
        "--now",
        "2025-01-01T00:00:00Z",
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("VERDICT: ACCEPTED"), "{t}");
    assert!(t.contains("PASS  snp.report_signature"), "{t}");
}

#[test]
fn milan_report_verifies_with_vcek_and_pinned_chain() {
    let out = silk(&[
        "verify",
        &p(vectors().join("snp/milan/report_milan.hex")),
        "--vcek",
        &p(vectors().join("snp/milan/vcek_milan.der")),
        "--policy",
        &p(example(SNP_POLICY)),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn milan_report_with_turin_vcek_is_rejected_at_the_signature() {
    let out = silk(&[
        "verify",
        &p(vectors().join("snp/milan/report_milan.hex")),
        "--vcek",
        &p(vectors().join("snp/turin/vcek_turin.der")),
        "--policy",
        &p(example(SNP_POLICY)),
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("FAIL snp.report_signature"), "{t}");
}

#[test]
fn without_policy_everything_is_rejected() {
    let out = silk(&[
        "verify",
        &p(vectors().join("snp/milan/report_milan.hex")),
        "--certs",
        &p(vectors().join("snp/milan")),
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains(policy::SNP.name) && t.contains("no --policy"),
        "{t}"
    );
}

#[test]
fn json_output_is_machine_readable() {
    let out = silk(&[
        "verify",
        &p(vectors().join("snp/milan/report_milan.hex")),
        "--certs",
        &p(vectors().join("snp/milan")),
        "--policy",
        &p(example(SNP_POLICY)),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["accepted"], true);
    assert_eq!(v["platform"], "sev_snp");
    let checks = v["checks"].as_array().expect("checks");
    assert!(checks.iter().all(|c| c["outcome"]["status"] == "pass"));
    assert!(checks.iter().any(|c| c["name"] == snp::MEASUREMENT.name));
}

#[test]
fn tdx_quote_verifies_inside_its_collateral_window_only() {
    let quote = p(vectors().join("tdx/tdx_quote"));
    let policy = p(example(TDX_POLICY));
    let out = silk(&["verify", &quote, "--policy", &policy, "--now", IN_WINDOW]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("found beside the quote"), "{t}");

    let out = silk(&["verify", &quote, "--policy", &policy, "--now", AFTER_WINDOW]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("FAIL tdx.collateral_window"), "{t}");
}

/// The "outdated" sample's platform TCB is below every level of its TCB info: the
/// signatures verify, and the TCB appraisal names the failure (Intel: TCB not supported).
#[test]
fn outdated_tdx_quote_is_rejected_at_the_tcb_level() {
    let dir = tempdir();
    let policy = dir.join("p.toml");
    std::fs::write(&policy, "[tdx]\nallow_any_measurement = true\n").expect("write");
    let quote = p(vectors().join("tdx/tdx_quote_outdated"));
    let out = silk(&[
        "verify",
        &quote,
        "--policy",
        &p(policy.clone()),
        "--now",
        "2026-02-19T00:00:00Z",
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("PASS  tdx.quote_signature"), "{t}");
    assert!(
        t.contains("FAIL tdx.tcb_level") && t.contains("No matching TCB level"),
        "{t}"
    );
    assert!(t.contains("FAIL tdx.tcb_status"), "{t}");
}

/// The SGX sample's TCB status is ConfigurationAndSWHardeningNeeded: rejected by the
/// default statuses, accepted by a policy that lists that status.
#[test]
fn tcb_status_rule_decides_the_sgx_sample() {
    let dir = tempdir();
    let quote = p(vectors().join("sgx/sgx_quote"));
    let strict = dir.join("strict.toml");
    std::fs::write(&strict, "[sgx]\nallow_any_measurement = true\n").expect("write");
    let out = silk(&[
        "verify",
        &quote,
        "--policy",
        &p(strict),
        "--now",
        "2025-06-20T00:00:00Z",
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("FAIL sgx.tcb_status"), "{t}");

    let lenient = dir.join("lenient.toml");
    std::fs::write(
        &lenient,
        "[sgx]\nallow_any_measurement = true\n\
         allowed_tcb_statuses = [\"UpToDate\", \"ConfigurationAndSWHardeningNeeded\"]\n",
    )
    .expect("write");
    let out = silk(&[
        "verify",
        &quote,
        "--policy",
        &p(lenient),
        "--now",
        "2025-06-20T00:00:00Z",
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("warning: policy accepts ANY MRENCLAVE"), "{t}");
}

#[test]
fn unusable_inputs_exit_2_with_a_reason() {
    let dir = tempdir();
    let junk = dir.join("junk.bin");
    std::fs::write(&junk, b"definitely not evidence").expect("write");
    let out = silk(&["verify", &p(junk)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("unrecognised evidence"),
        "{}",
        text(&out)
    );

    let bad_policy = dir.join("bad.toml");
    std::fs::write(&bad_policy, "[snp]\nmeasurments = []\n").expect("write");
    let out = silk(&[
        "verify",
        &p(vectors().join("snp/milan/report_milan.hex")),
        "--certs",
        &p(vectors().join("snp/milan")),
        "--policy",
        &p(bad_policy),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("measurments"), "{}", text(&out));

    let out = silk(&["verify", &p(vectors().join("snp/milan/report_milan.hex"))]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("--vcek"), "{}", text(&out));

    let out = silk(&["verify", &p(vectors().join("tdx/tdx-quote.hex"))]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("--collateral"), "{}", text(&out));

    let out = silk(&[
        "verify",
        &p(vectors().join("tdx/tdx_quote")),
        "--now",
        "yesterday",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("RFC 3339"), "{}", text(&out));
}
