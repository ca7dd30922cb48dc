//! What the CLI tests share: running the built `silk`, the vendor vectors, scratch folders.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// The real vendor evidence beside the repository.
pub fn vectors() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../vectors"))
}

/// Runs the built `silk` with `args`.
pub fn silk(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_silk"))
        .args(args)
        .output()
        .expect("run silk")
}

/// stdout then stderr, as a user reads them.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A path as an argument.
pub fn p(path: PathBuf) -> String {
    path.display().to_string()
}

/// A fresh directory under the system's temporary folder.
pub fn tempdir() -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "silk-cli-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

/// The check named `name` in a `--json` verdict.
pub fn json_check<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no check {name} in {v:#}"))
}

/// Whether the check named `name` passed.
pub fn json_passed(v: &serde_json::Value, name: &str) -> bool {
    json_check(v, name)["outcome"]["status"] == "pass"
}
