//! `silk verify` on silk's simulated evidence: accepted only with `allow_simulated` and the
//! development root pinned, and always shown as SIMULATED.

use std::path::PathBuf;
use std::process::Command;

use silk_attestation::snp::simulated::SimulatedPlatform;

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("silk-sim-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("mkdir");
    d
}

fn silk(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_silk"))
        .args(args)
        .output()
        .expect("run silk");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn simulated_report_through_the_cli() {
    let p = SimulatedPlatform::generate().expect("dev chain");
    let d = dir();
    let certs = d.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::write(certs.join("vcek.der"), &p.chain().vcek).unwrap();
    std::fs::write(certs.join("ask.der"), &p.chain().ask).unwrap();
    std::fs::write(certs.join("ark.der"), &p.chain().ark).unwrap();
    let report = d.join("report.bin");
    std::fs::write(&report, p.report(&[7; 48], &[9; 64])).unwrap();
    let rules = format!(
        "[snp]\nmeasurements = [\"{}\"]\nmin_tcb = {{}}\n",
        "07".repeat(48)
    );
    let pin = hex::encode(p.chain().root_digest());
    let allowed = d.join("allowed.toml");
    std::fs::write(
        &allowed,
        format!("allow_simulated = true\nsimulated_roots = [\"{pin}\"]\n{rules}"),
    )
    .unwrap();
    let strict = d.join("strict.toml");
    std::fs::write(&strict, &rules).unwrap();

    let base = [
        "verify",
        report.to_str().unwrap(),
        "--certs",
        certs.to_str().unwrap(),
        "--policy",
    ];
    let (code, text) = silk(&[&base[..], &[allowed.to_str().unwrap()]].concat());
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("*** SIMULATED"), "{text}");
    assert!(text.contains("VERDICT: ACCEPTED (SIMULATED)"), "{text}");

    let (code, text) = silk(&[&base[..], &[strict.to_str().unwrap()]].concat());
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("FAIL sim.allowed") && text.contains("FAIL sim.root_pinned"),
        "{text}"
    );
}
