//! The first run compiles once. `scripts/demo.sh` builds `silk` and `silk-enclave` alone;
//! `scripts/test.sh` then builds the whole workspace. Cargo compiles a crate again for
//! every feature set a build asks of it, and every crate above it with it, so a feature
//! that only some other member turns on makes the tests compile part of the demo's build a
//! second time (libc's `extra_traits`, from nix in silk-host, did: 101 of 440, candle and
//! ring among them). The root Cargo.toml turns such features on for everyone; this test
//! asks cargo's resolver (`cargo tree`, no compiling) whether it still holds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

/// Every package a build of `selection` compiles, with the feature sets it is compiled
/// with (a package can be compiled twice: as a build dependency and as a normal one).
fn resolved(selection: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(env!("CARGO"))
        .current_dir(&root)
        .args([
            "tree",
            "--offline",
            "--edges",
            "normal,build",
            "--prefix",
            "none",
        ])
        .args(["--format", "{p}|{f}"])
        .args(selection)
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree {selection:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut packages: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // `name v1.2.3 (path) (proc-macro)|feature,feature (*)`: the package, then its
        // features; `(*)` marks a package listed before.
        let Some((package, features)) = line.trim_end_matches(" (*)").split_once('|') else {
            continue;
        };
        let package = package.trim_end_matches(" (proc-macro)");
        packages
            .entry(package.to_string())
            .or_default()
            .insert(features.to_string());
    }
    packages
}

#[test]
fn the_demos_build_is_part_of_the_tests_build() {
    // What scripts/demo.sh builds, and what scripts/test.sh builds before its tests.
    let demo = resolved(&["-p", "silk-tools", "-p", "silk-enclave"]);
    let workspace = resolved(&["--workspace"]);
    assert!(demo.len() > 100, "cargo tree listed too little: {demo:?}");
    let mut again = Vec::new();
    for (package, sets) in &demo {
        let theirs = workspace.get(package);
        for features in sets {
            if !theirs.is_some_and(|t| t.contains(features)) {
                let workspace_has = theirs.map_or("nothing".to_string(), |t| {
                    let sets: Vec<String> = t.iter().map(|f| format!("[{f}]")).collect();
                    sets.join(" or ")
                });
                again.push(format!(
                    "{package}: the demo builds it with [{features}], the workspace with \
                     {workspace_has}"
                ));
            }
        }
    }
    assert!(
        again.is_empty(),
        "these would be compiled twice on a first run (demo, then tests); turn the features \
         on in the root Cargo.toml's [workspace.dependencies]:\n{}",
        again.join("\n")
    );
}
