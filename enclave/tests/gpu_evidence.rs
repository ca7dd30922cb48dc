//! The GPU's confidential-computing evidence collected through NVML over a fresh nonce,
//! as the enclave collects it at start.
//!
//! Where NVML does not load (no NVIDIA driver) the test prints `skipped …` and passes,
//! unless `SILK_REQUIRE_GPU=1` (scripts/gpu-check.sh). A GPU whose confidential computing
//! is off (or in devtools mode) is reported, not failed: the machine decides that, not
//! silk. With `SILK_GPU_EVIDENCE_DIR` set, the evidence is written there as NRAS-style
//! JSON (`evidence.json`: `[{arch, evidence, certificate}]`, the report in hex, the chain
//! in PEM) with the nonce (`nonce.hex`) and the CC state (`cc-state.txt`), for
//! `silk verify gpu evidence.json --nonce $(cat nonce.hex) --policy …` to check.

use std::path::PathBuf;

use rand::RngCore;
use silk_enclave::evidence::gpu::{GpuError, Nvml};

fn out_dir() -> Option<PathBuf> {
    std::env::var_os("SILK_GPU_EVIDENCE_DIR").map(PathBuf::from)
}

fn write(name: &str, text: &str) {
    if let Some(dir) = out_dir() {
        std::fs::create_dir_all(&dir).expect("evidence dir");
        std::fs::write(dir.join(name), text).expect("write evidence");
    }
}

#[test]
fn gpu_evidence_over_a_fresh_nonce() {
    let nvml = match Nvml::load() {
        Ok(n) => n,
        Err(e) if std::env::var("SILK_REQUIRE_GPU").as_deref() == Ok("1") => {
            panic!("SILK_REQUIRE_GPU=1 but NVML did not load: {e}")
        }
        Err(e) => {
            eprintln!("skipped gpu_evidence_over_a_fresh_nonce: {e}");
            return;
        }
    };
    let state = nvml.cc_state();
    let state_line = match &state {
        Ok(s) => format!(
            "environment={} cc_feature={} dev_tools_mode={} production={}",
            s.environment,
            s.cc_feature,
            s.dev_tools_mode,
            s.is_production()
        ),
        Err(e) => format!("unknown: {e}"),
    };
    eprintln!("confidential computing: {state_line}");
    write("cc-state.txt", &format!("{state_line}\n"));
    let mut nonce = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut nonce);
    write("nonce.hex", &hex::encode(nonce));
    let evidence = match nvml.collect(&nonce) {
        Ok(list) => list,
        Err(GpuError::NotConfidential(s)) => {
            // Not confidential: NVML may still sign a report (devtools), or refuse.
            match nvml.evidence(0, &nonce) {
                Ok(e) => vec![e],
                Err(e) => {
                    eprintln!("no GPU evidence: confidential computing is not on ({s:?}): {e}");
                    write("error.txt", &format!("not confidential ({s:?}): {e}\n"));
                    return;
                }
            }
        }
        Err(e) => panic!("NVML loaded but collecting evidence failed: {e}"),
    };
    assert!(!evidence.is_empty(), "NVML sees no GPU");
    let list: Vec<serde_json::Value> = evidence
        .iter()
        .map(|e| {
            assert!(
                e.report.len() > 37,
                "report too short: {} bytes",
                e.report.len()
            );
            // The SPDM request inside the report carries the nonce it was asked over.
            assert_eq!(&e.report[4..36], &nonce, "the report answers another nonce");
            serde_json::json!({
                "arch": e.arch.nvidia_name(),
                "evidence": hex::encode(&e.report),
                "certificate": String::from_utf8_lossy(&e.cert_chain_pem),
            })
        })
        .collect();
    eprintln!(
        "collected evidence from {} GPU(s) over a fresh nonce",
        list.len()
    );
    write(
        "evidence.json",
        &serde_json::to_string_pretty(&list).expect("json"),
    );
}
