//! The client library's layer: among silk's crates it depends on silk-protocol and
//! silk-attestation (and silk-cli's base, a few output conventions over serde), so an app
//! that wants `Session` compiles neither the engine (candle, tokenizers, gemm) nor the
//! ledger (tonlib) nor the servers' connection layer. What needs them belongs to
//! silk-tools. Asked of cargo's resolver (`cargo tree`, no compiling).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Every package silk-client needs to build (normal dependencies, and the build
/// dependencies and proc-macros those need), by name, with the features it is built with.
fn dependencies() -> BTreeMap<String, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(env!("CARGO"))
        .current_dir(&root)
        .args(["tree", "--offline", "-p", "silk-client"])
        .args([
            "--edges",
            "normal,build",
            "--prefix",
            "none",
            "--format",
            "{p}|{f}",
        ])
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            // `name v1.2.3 (path)|feature,feature (*)`; `(*)`: listed before.
            let (package, features) = line.trim_end_matches(" (*)").split_once('|')?;
            let name = package.split_whitespace().next()?;
            Some((name.to_string(), features.to_string()))
        })
        .collect()
}

#[test]
fn the_client_library_needs_only_protocol_and_attestation() {
    let deps = dependencies();
    assert!(
        deps.contains_key("silk-protocol"),
        "cargo tree listed: {deps:?}"
    );
    let allowed = [
        "silk-client",
        "silk-protocol",
        "silk-attestation",
        "silk-cli",
    ];
    let silk: Vec<&String> = deps
        .keys()
        .filter(|d| d.starts_with("silk-") && !allowed.contains(&d.as_str()))
        .collect();
    assert!(
        silk.is_empty(),
        "silk-client depends on {silk:?}; what needs them belongs in silk-tools (tools/)"
    );
    let heavy = [
        "candle-core",
        "candle-nn",
        "gemm",
        "tokenizers",
        "minijinja",
        "tonlib-core",
        "prometheus-client",
    ];
    let found: Vec<&str> = heavy
        .into_iter()
        .filter(|h| deps.contains_key(*h))
        .collect();
    assert!(found.is_empty(), "silk-client pulls in {found:?}");
    // silk-cli's features bring clap_complete, indicatif and the log set-up: the tools'.
    if let Some(features) = deps.get("silk-cli") {
        assert!(
            features.is_empty(),
            "silk-client builds silk-cli with features {features}; only its base belongs here"
        );
    }
}
