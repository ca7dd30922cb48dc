//! The verification core runs in a browser (WASM) and in Python: among its dependencies
//! there may be nothing that needs threads of its own, sockets, files of the machine or
//! an async runtime. Asked of cargo's resolver (`cargo tree`, no compiling).

use std::path::Path;
use std::process::Command;

fn packages(target: &str) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(env!("CARGO"))
        .current_dir(&root)
        .args(["tree", "-p", "silk-verifier", "--edges", "normal"])
        .args(["--prefix", "none", "--format", "{p}", "--target", target])
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[test]
fn the_core_needs_no_runtime_sockets_or_threads() {
    for target in ["x86_64-unknown-linux-gnu", "wasm32-unknown-unknown"] {
        let deps = packages(target);
        assert!(deps.iter().any(|d| d == "silk-attestation"), "{deps:?}");
        for banned in [
            "tokio",
            "hyper",
            "mio",
            "socket2",
            "rayon",
            "axum",
            "silk-client",
            "silk-engine",
            "silk-net",
            "silk-ledger",
        ] {
            assert!(
                !deps.iter().any(|d| d == banned),
                "silk-verifier must not need {banned} (for {target}): it runs in a browser"
            );
        }
    }
}
