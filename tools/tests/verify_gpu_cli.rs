//! `silk verify` on NVIDIA GPU evidence held on its own, as NVIDIA's users hold it, with
//! the real reports, chains and RIMs of `vectors/gpu`.

mod common;

use std::path::PathBuf;

use common::{json_check, json_passed, p, silk, tempdir, text, vectors};
use silk_attestation::checks::gpu;

const NOW: &str = "2025-06-01T00:00:00Z";
const NONCE_535: &str = "27a328247bf7935c993341cf587be6f05986ccce4fe7ba2c54100bd616a58f66";
const NONCE_590: &str = "e97b23a1718095a0e9e35edca810768c70a6a5a389b705e753b197912bc11576";

fn gpu(rel: &str) -> PathBuf {
    vectors().join("gpu").join(rel)
}

fn sample(name: &str) -> String {
    p(gpu("nvidia-attestation-sdk/testdata/sample_attestation_data/gpu").join(name))
}

fn policy(dir: &std::path::Path, extra: &str) -> String {
    let path = dir.join("gpu.toml");
    std::fs::write(
        &path,
        format!(
            "[gpu]\narchitectures = [\"hopper\", \"blackwell\"]\nmin_driver_version = \"535\"\n\
             min_vbios_version = \"96.00.00.00.00\"\nallow_missing_revocation = true\n{extra}"
        ),
    )
    .expect("write policy");
    p(path)
}

/// A RIM folder holding the given files under their own names.
fn rim_dir(files: &[PathBuf]) -> PathBuf {
    let dir = tempdir().join("rims");
    std::fs::create_dir_all(&dir).expect("mkdir");
    for f in files {
        std::fs::copy(f, dir.join(f.file_name().expect("name"))).expect("copy RIM");
    }
    dir
}

/// Every real RIM of the vectors: NVIDIA's sample driver and VBIOS RIMs, whose file names
/// say nothing NVIDIA's RIM ids say and whose tagIds are opaque hashes.
fn all_real_rims() -> Vec<PathBuf> {
    let samples = gpu("nv-local-gpu-verifier-2.7.3/samples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&samples)
        .expect("samples")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "swidtag"))
        .collect();
    files.push(gpu(
        "nvidia-attestation-sdk/testdata/NV_GPU_DRIVER_GH100_550.144.03.xml",
    ));
    files.sort();
    files
}

fn verify_535(rims: &std::path::Path, policy: &str) -> (Option<i32>, serde_json::Value, String) {
    let out = silk(&[
        "verify",
        "gpu",
        &sample("hopperAttestationReport.txt"),
        "--certs",
        &sample("hopperCertChain.txt"),
        "--nonce",
        NONCE_535,
        "--gpu-rims",
        &p(rims.to_path_buf()),
        "--policy",
        policy,
        "--now",
        NOW,
        "--json",
    ]);
    let v =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("json: {e}\n{}", text(&out)));
    (out.status.code(), v, text(&out))
}

#[test]
fn real_vbios_rims_are_found_by_what_they_describe() {
    let dir = tempdir();
    // The 535.86.09 driver RIM only exists as a tampered copy, so the driver's measurements
    // may go unchecked here; the VBIOS's must be compared with NVIDIA's RIM.
    let pol = policy(&dir, "allow_missing_rims = true\n");
    let rims = rim_dir(&all_real_rims());
    let (code, v, t) = verify_535(&rims, &pol);
    assert!(json_passed(&v, gpu::VBIOS_RIM.name), "{t}");
    let found = json_check(&v, gpu::VBIOS_RIM.name)["found"]
        .as_str()
        .unwrap();
    // The production RIM and NVIDIA's test RIM share the tagId and the version: both are
    // candidates, and the verdict names the one that was used.
    assert!(
        found.contains("96.00.5E.00.01") && found.contains(".swidtag"),
        "{found}"
    );
    assert!(json_passed(&v, gpu::MEASUREMENTS.name), "{t}");
    let m = json_check(&v, gpu::MEASUREMENTS.name)["found"]
        .as_str()
        .unwrap();
    assert!(m.contains("VBIOS 1010_0200_882_96005E0001"), "{m}");
    assert_eq!(code, Some(0), "{t}");
}

#[test]
fn the_measurement_mismatch_rim_fails_naming_the_index() {
    let dir = tempdir();
    let pol = policy(&dir, "allow_missing_rims = true\n");
    let rims = rim_dir(&[gpu(
        "nvidia-attestation-sdk/testdata/sample_rims/NV_GPU_VBIOS_1010_0200_882_96005E0001_measurement_mismatch.xml",
    )]);
    let (code, v, t) = verify_535(&rims, &pol);
    assert_eq!(code, Some(1), "{t}");
    assert!(json_passed(&v, gpu::VBIOS_RIM.name), "{t}");
    let reason = json_check(&v, gpu::MEASUREMENTS.name)["outcome"]["reason"]
        .as_str()
        .unwrap();
    assert!(reason.contains("VBIOS index 9:"), "{reason}");

    // Beside the genuine RIM, the one the report matches is used, and the other named.
    let rims = rim_dir(&[
        gpu("nvidia-attestation-sdk/testdata/sample_rims/NV_GPU_VBIOS_1010_0200_882_96005E0001_measurement_mismatch.xml"),
        gpu("nv-local-gpu-verifier-2.7.3/samples/1010_0200_882_96005E0001_PROD.swidtag"),
    ]);
    let (code, v, t) = verify_535(&rims, &pol);
    assert_eq!(code, Some(0), "{t}");
    let found = json_check(&v, gpu::VBIOS_RIM.name)["found"]
        .as_str()
        .unwrap();
    assert!(
        found.starts_with("1010_0200_882_96005E0001_PROD.swidtag")
            && found.contains("measurement_mismatch.xml: measurements differ"),
        "{found}"
    );
}

#[test]
fn the_tampered_driver_rim_is_refused_and_the_table_says_why() {
    let dir = tempdir();
    let pol = policy(&dir, "");
    let rims = rim_dir(&[
        gpu("nvidia-attestation-sdk/testdata/sample_rims/NV_GPU_DRIVER_GH100_535.86.09_measurement_mismatch.xml"),
        gpu("nv-local-gpu-verifier-2.7.3/samples/1010_0200_882_96005E0001_PROD.swidtag"),
    ]);
    let out = silk(&[
        "verify",
        &sample("hopperAttestationReport.txt"),
        "--certs",
        &sample("hopperCertChain.txt"),
        "--nonce",
        NONCE_535,
        "--gpu-rims",
        &p(rims),
        "--policy",
        &pol,
        "--now",
        NOW,
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("NVIDIA GPU attestation report"), "{t}");
    assert!(
        t.contains("FAIL gpu.driver_rim") && t.contains("altered"),
        "{t}"
    );
    assert!(t.contains("PASS  gpu.vbios_rim"), "{t}");
}

#[test]
fn nras_json_is_verified_with_the_nonce_the_user_chose() {
    let dir = tempdir();
    // NVIDIA's 590.12 sample is from a GPU in protected-PCIe mode.
    let pol = policy(
        &dir,
        "allow_missing_rims = true\nallow_protected_pcie = true\n",
    );
    let json = p(gpu(
        "nvidia-attestation-sdk/testdata/evidence_hopper_590_12.json",
    ));
    let run = |extra: &[&str]| {
        let mut args = vec!["verify", &json, "--policy", &pol, "--now", NOW];
        args.extend_from_slice(extra);
        silk(&args)
    };
    let out = run(&["--nonce", NONCE_590]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains("PASS  gpu.report_signature") && t.contains("PASS  gpu.nonce"),
        "{t}"
    );

    let other = "00".repeat(32);
    let out = run(&["--nonce", &other]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("FAIL gpu.nonce"), "{t}");

    let out = run(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--no-nonce"), "{}", text(&out));

    let out = run(&["--no-nonce"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("warning:") && t.contains("replay"), "{t}");
}

#[test]
fn standalone_report_errors_and_rejections() {
    let dir = tempdir();
    let pol = policy(&dir, "allow_missing_rims = true\n");
    // No chain: the user's to fix.
    let out = silk(&[
        "verify",
        "gpu",
        &sample("hopperAttestationReport.txt"),
        "--nonce",
        NONCE_535,
        "--policy",
        &pol,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--certs FILE"), "{}", text(&out));

    // NVIDIA's negative sample: the signature does not verify.
    let out = silk(&[
        "verify",
        &sample("hopperAttestationReportInvalidSignature.txt"),
        "--certs",
        &sample("hopperCertChain.txt"),
        "--no-nonce",
        "--policy",
        &pol,
        "--now",
        NOW,
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("FAIL gpu.report_signature"), "{t}");

    // A damaged report is rejected evidence, not an unusable input.
    let hex = std::fs::read_to_string(sample("hopperAttestationReport.txt")).expect("read");
    for (i, what) in [(0, "request code"), (3000, "middle")] {
        let mut bytes = hex::decode(hex.trim()).expect("hex");
        bytes[i] ^= 0xff;
        let path = dir.join(format!("damaged-{i}.bin"));
        std::fs::write(&path, &bytes).expect("write");
        let out = silk(&[
            "verify",
            &p(path),
            "--certs",
            &sample("hopperCertChain.txt"),
            "--nonce",
            NONCE_535,
            "--policy",
            &pol,
            "--now",
            NOW,
        ]);
        assert_eq!(out.status.code(), Some(1), "{what}: {}", text(&out));
    }
}
