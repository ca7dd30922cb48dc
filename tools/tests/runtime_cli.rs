//! `[runtime]` pins through the built `silk verify`: what the enclave was started with
//! (model, evidence provider, GPU policy, payout address), as its claims state it, is
//! checked against the policy, and a failure names the value.

mod common;

use common::{json_check, json_passed, p, real_tdx_bundle, silk, tempdir, test_claims, text};
use silk_attestation::checks::runtime as check;

const IN_WINDOW: &str = "2025-06-20T00:00:00Z";

/// A bundle of the real TDX quote (collateral inside) over claims of these start options.
/// Its report is not over these claims, so only `claims.report_data` is expected to fail
/// besides the pins.
fn bundle(dir: &std::path::Path) -> String {
    let claims = silk_protocol::Claims {
        model: "verity:ab12".into(),
        payout_address: "EQowner".into(),
        evidence_provider: "configfs-tsm".into(),
        gpu_policy_sha256: vec![0xab; 32],
        ..test_claims()
    };
    real_tdx_bundle(dir, &claims, None)
}

fn verify(runtime: &str) -> (Option<i32>, serde_json::Value, String) {
    let dir = tempdir();
    let policy = dir.join("p.toml");
    std::fs::write(
        &policy,
        format!("[tdx]\nallow_any_measurement = true\n\n[runtime]\n{runtime}"),
    )
    .unwrap();
    let out = silk(&[
        "verify",
        &bundle(&dir),
        "--policy",
        &p(policy),
        "--now",
        IN_WINDOW,
        "--json",
    ]);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_default();
    (out.status.code(), v, text(&out))
}

#[test]
fn pins_that_match_pass_and_each_that_differs_is_named() {
    let gpu = "ab".repeat(32);
    let (code, v, t) = verify(&format!(
        "models = [\"verity:ab12\"]\nevidence_providers = [\"configfs-tsm\", \"tdx-guest\"]\n\
         gpu_policies = [\"{gpu}\"]\npayout_addresses = [\"EQowner\"]\n"
    ));
    assert_eq!(code, Some(1), "the claims are not the quote's: {t}");
    for c in [
        check::MODEL,
        check::EVIDENCE_PROVIDER,
        check::GPU_POLICY,
        check::PAYOUT_ADDRESS,
    ] {
        assert!(json_passed(&v, c.name), "{}: {t}", c.name);
    }
    let (_, v, t) = verify(
        "models = [\"verity:ffff\"]\npayout_addresses = [\"EQthief\"]\ngpu_policies = [\"none\"]\n",
    );
    for c in [check::MODEL, check::PAYOUT_ADDRESS, check::GPU_POLICY] {
        assert!(!json_passed(&v, c.name), "{}: {t}", c.name);
    }
    let model = json_check(&v, check::MODEL.name);
    assert!(model["found"] == "verity:ab12", "{model:#}");
    let gpu_check = json_check(&v, check::GPU_POLICY.name);
    assert_eq!(gpu_check["found"], gpu, "{gpu_check:#}");
    // Unpinned items are not checked.
    assert!(v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["name"] != check::EVIDENCE_PROVIDER.name));
}

#[test]
fn a_bad_pin_is_refused_before_anything_is_verified() {
    let (code, _, t) = verify("gpu_policies = [\"sha256:abc\"]\n");
    assert_eq!(code, Some(2), "{t}");
    assert!(
        t.contains("runtime.gpu_policies") && t.contains("sha256:abc"),
        "{t}"
    );
    let (code, _, t) = verify("evidence_providers = [\"tpm\"]\n");
    assert_eq!(code, Some(2), "{t}");
    assert!(t.contains("unknown evidence provider `tpm`"), "{t}");
}
