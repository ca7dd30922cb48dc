//! The `silk-enclave` command line refuses bad input with a clear message (and building
//! this test builds the binary, which the whole-VM tests put in the guest image).

use std::process::Command;

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_silk-enclave"))
        .args(args)
        .output()
        .expect("run silk-enclave");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_arguments_are_named() {
    let (code, err) = run(&["--model", "/nonexistent.gguf", "--evidence", "quantum"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown evidence provider `quantum`"), "{err}");
    let (code, err) = run(&[
        "--model",
        "/nonexistent.gguf",
        "--evidence",
        "simulated",
        "--image-digest",
        "abc",
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--image-digest must be 64 hex digits"),
        "{err}"
    );
}

/// A start that gets as far as opening the model, which does not exist.
const MISSING_MODEL_START: &[&str] = &[
    "--model",
    "/nonexistent/model.gguf",
    "--evidence",
    "simulated",
    "--listen",
    "127.0.0.1:0",
];

#[test]
fn a_missing_model_stops_the_start_with_its_path() {
    let (code, err) = run(MISSING_MODEL_START);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/model.gguf"), "{err}");
}

#[test]
fn devices_are_checked_before_the_model_is_read() {
    let (code, err) = run(&["--model", "/nonexistent.gguf", "--device", "tpu"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown device `tpu`"), "{err}");
    if cfg!(feature = "cuda") {
        return;
    }
    // A CPU build says what to rebuild with, not that the model is missing.
    let (code, err) = run(&[MISSING_MODEL_START, &["--device", "cuda:1"]].concat());
    assert_eq!(code, 1);
    assert!(
        err.contains("device cuda:1: this build has no CUDA support"),
        "{err}"
    );
}

#[test]
fn collateral_options_are_checked() {
    let (code, err) = run(&[
        "--model",
        "/nonexistent.gguf",
        "--collateral-cache",
        "/tmp/c",
        "--no-collateral-fetch",
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--no-collateral-fetch") && err.contains("--collateral-cache"),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_silk-enclave"))
        .arg("--help")
        .output()
        .expect("run silk-enclave");
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--kds-url",
        "--pcs-url",
        "--collateral-cache",
        "--no-collateral-fetch",
    ] {
        assert!(help.contains(flag), "{flag} not in --help");
    }
    assert!(help.contains("https://kdsintf.amd.com"), "{help}");
    assert!(
        help.contains("https://api.trustedservices.intel.com"),
        "{help}"
    );
}
