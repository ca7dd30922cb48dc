//! The command-line conventions every silk binary keeps, through the built binaries:
//! plain output (no escape byte, no ✔/✗) off a terminal and under `NO_COLOR`, symbols on a
//! terminal, `--json` documents that parse, shell completions and man pages, and JSON log
//! lines on request.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::procs::bin;
use serde_json::Value;
use silk_images::manifest::{Component, Manifest, SCHEMA};

const ESC: u8 = 0x1b;

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("silk-cliconv-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(bin(name));
    c.args(args).stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn both(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// No escape byte and no check symbols anywhere in what a program would read.
fn assert_plain(out: &Output) {
    let t = both(out);
    assert!(
        !out.stdout.contains(&ESC) && !out.stderr.contains(&ESC),
        "escape byte in {t:?}"
    );
    assert!(!t.contains('✔') && !t.contains('✗'), "symbols in {t}");
}

fn json_doc(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", both(out)))
}

/// `silk verify` on a Milan report under a sample policy, and the same with a Turin VCEK
/// (rejected at the signature): passes and failures both.
fn verify_args(vcek: &str) -> Vec<String> {
    let v = repo().join("vectors/snp");
    vec![
        "verify".into(),
        v.join("milan/report_milan.hex").display().to_string(),
        "--vcek".into(),
        v.join(vcek).display().to_string(),
        "--policy".into(),
        repo()
            .join("docs/examples/snp-milan-sample.toml")
            .display()
            .to_string(),
        "--now".into(),
        "2025-01-01T00:00:00Z".into(),
    ]
}

fn silk_verify(vcek: &str, env: &[(&str, &str)]) -> Output {
    let args = verify_args(vcek);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run("silk", &args, env)
}

#[test]
fn verify_off_a_terminal_says_pass_and_fail_in_words() {
    let ok = silk_verify("milan/vcek_milan.der", &[]);
    assert_eq!(ok.status.code(), Some(0), "{}", both(&ok));
    assert_plain(&ok);
    assert!(
        both(&ok).contains("PASS  snp.report_signature"),
        "{}",
        both(&ok)
    );

    let bad = silk_verify("turin/vcek_turin.der", &[]);
    assert_eq!(bad.status.code(), Some(1), "{}", both(&bad));
    assert_plain(&bad);
    let t = both(&bad);
    assert!(t.contains("FAIL  snp.report_signature"), "{t}");
    assert!(t.contains("  FAIL snp.report_signature: "), "{t}");
}

/// Runs `command` under a pseudo-terminal (util-linux `script`), so stdout and stderr are
/// terminals; `None` when `script` is not installed.
fn on_a_terminal(command: &str, no_color: Option<&str>) -> Option<String> {
    let mut c = Command::new("script");
    c.args(["-q", "-e", "-c", command, "/dev/null"])
        .stdin(Stdio::null())
        .env_remove("NO_COLOR");
    if let Some(v) = no_color {
        c.env("NO_COLOR", v);
    }
    let out = c.output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn shell_quote(args: &[String]) -> String {
    args.iter()
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn verify_on_a_terminal_marks_with_symbols_unless_no_color() {
    let cmd = format!(
        "{} {}",
        bin("silk").display(),
        shell_quote(&verify_args("turin/vcek_turin.der"))
    );
    let Some(tty) = on_a_terminal(&cmd, None) else {
        eprintln!("script(1) is not installed: the terminal case is not checked here");
        return;
    };
    assert!(tty.contains("✗ snp.report_signature"), "{tty}");
    // NO_COLOR set and not empty: words again, even on a terminal.
    let plain = on_a_terminal(&cmd, Some("1")).unwrap();
    assert!(plain.contains("FAIL snp.report_signature"), "{plain}");
    assert!(!plain.contains('✗') && !plain.contains('✔'), "{plain}");
    assert!(!plain.as_bytes().contains(&ESC), "{plain:?}");
    // NO_COLOR empty counts as unset (no-color.org).
    let empty = on_a_terminal(&cmd, Some("")).unwrap();
    assert!(empty.contains("✗ snp.report_signature"), "{empty}");
}

#[test]
fn verify_json_is_one_document() {
    let out = run(
        "silk",
        &verify_args("turin/vcek_turin.der")
            .iter()
            .map(String::as_str)
            .chain(["--json"])
            .collect::<Vec<_>>(),
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let v = json_doc(&out);
    assert_eq!(v["accepted"], false);
    assert!(v["checks"].as_array().is_some_and(|c| !c.is_empty()));
}

/// A synthetic SNP image (the firmware fixture of images/tests/data) with its manifest.
fn image(dir: &Path) -> PathBuf {
    let img = dir.join("image");
    std::fs::create_dir_all(&img).unwrap();
    let fw = repo().join("images/tests/data/snp/synthetic-amdsev.fd");
    std::fs::copy(fw, img.join("OVMF.fd")).unwrap();
    std::fs::write(img.join("vmlinuz"), b"not a real kernel").unwrap();
    std::fs::write(img.join("initrd.cpio"), b"070701 a small initrd").unwrap();
    let components = vec![
        Component::from_file(&img, "firmware", "OVMF.fd").unwrap(),
        Component::from_file(&img, "initrd", "initrd.cpio").unwrap(),
        Component::from_file(&img, "kernel", "vmlinuz").unwrap(),
    ];
    let kernel_cmdline = format!(
        "console=ttyS0 silk.components={}",
        Manifest::components_digest(&components)
    );
    let m = Manifest {
        components,
        inputs: vec![],
        kernel_cmdline,
        schema: SCHEMA.into(),
        source_date_epoch: 1_700_000_000,
    };
    std::fs::write(img.join("manifest.json"), m.to_pretty()).unwrap();
    img
}

#[test]
fn measure_json_parses_and_names_the_policy_it_wrote() {
    let d = scratch("measure");
    let img = image(&d);
    let policy = d.join("policy.toml");
    let out = run(
        "silk",
        &[
            "measure",
            "--image",
            img.to_str().unwrap(),
            "--tee",
            "snp",
            "--policy-out",
            policy.to_str().unwrap(),
            "--json",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert_plain(&out);
    let v = json_doc(&out);
    assert_eq!(v["tee"], "snp");
    assert_eq!(v["measurement"].as_str().map(str::len), Some(96), "{v}");
    assert_eq!(v["components"].as_array().map(Vec::len), Some(3));
    assert_eq!(v["policy_written"], policy.to_str().unwrap());
    assert!(policy.is_file());
    // The table says the same digest.
    let table = run(
        "silk",
        &["measure", "--image", img.to_str().unwrap(), "--tee", "snp"],
        &[],
    );
    assert!(
        both(&table).contains(v["measurement"].as_str().unwrap()),
        "{}",
        both(&table)
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// A host root where KVM is usable and nothing else is there.
fn fake_host(dir: &Path) -> PathBuf {
    let root = dir.join("host");
    std::fs::create_dir_all(root.join("dev")).unwrap();
    std::fs::create_dir_all(root.join("proc")).unwrap();
    std::fs::write(root.join("dev/kvm"), "").unwrap();
    std::fs::write(root.join("proc/cpuinfo"), "flags : fpu svm\n").unwrap();
    root
}

#[test]
fn host_doctor_reports_as_text_or_json_with_its_exit_code() {
    let d = scratch("doctor");
    let root = fake_host(&d);
    let root = root.to_str().unwrap();
    // SEV-SNP on a host without /dev/sev: not ready, exit 1, the missing checks named.
    let args = [
        "doctor",
        "--tee",
        "snp",
        "--qemu",
        "/nonexistent/qemu",
        "--host-root",
        root,
    ];
    let text = run("silk-host", &args, &[]);
    assert_eq!(text.status.code(), Some(1), "{}", both(&text));
    assert_plain(&text);
    let t = both(&text);
    assert!(t.contains("MISSING sev") && t.contains("NOT READY"), "{t}");

    let json = run("silk-host", &[&args[..], &["--json"]].concat(), &[]);
    assert_eq!(json.status.code(), Some(1));
    let v = json_doc(&json);
    assert_eq!(
        (v["tee"].as_str(), v["ready"].as_bool()),
        (Some("snp"), Some(false))
    );
    let status = |name: &str| {
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| c["status"].as_str().unwrap().to_owned())
    };
    assert_eq!(status("kvm").as_deref(), Some("ok"));
    assert_eq!(status("sev").as_deref(), Some("missing"));
    // No --image: the ovmf check looks for the system's OVMF (absent in the fake root).
    assert_eq!(status("ovmf").as_deref(), Some("warn"));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn host_dry_run_json_carries_the_plan_and_command_line() {
    let d = scratch("dryrun");
    let img = image(&d);
    let disk = d.join("model.disk");
    std::fs::write(&disk, b"disk").unwrap();
    let root = fake_host(&d);
    let out = run(
        "silk-host",
        &[
            "run",
            "--dry-run",
            "--json",
            "--image",
            img.to_str().unwrap(),
            "--tee",
            "none",
            "--model",
            disk.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--qemu",
            "/nonexistent/qemu",
            "--forward-port",
            "40123",
            "--host-root",
            root.to_str().unwrap(),
        ],
        &[],
    );
    // No QEMU at that path: the host is not ready (exit 1), and the plan still comes out.
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert_plain(&out);
    let v = json_doc(&out);
    assert_eq!(v["preflight"]["ready"], false);
    assert_eq!(v["plan"]["tee"], "none");
    assert_eq!(v["relay"]["forward"], "127.0.0.1:40123");
    assert_eq!(v["qemu"]["program"], "/nonexistent/qemu");
    let args: Vec<&str> = v["qemu"]["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(args.contains(&"-kernel"), "{args:?}");
    assert!(v["command_line"]
        .as_str()
        .unwrap()
        .starts_with("/nonexistent/qemu "));
    assert!(v["preflight"]["checks"].is_array());
    assert_eq!(
        v["notes"].as_array().map(Vec::len),
        Some(1),
        "QEMU version assumed"
    );
    // --json means nothing without --dry-run.
    let refused = run(
        "silk-host",
        &[
            "run",
            "--json",
            "--image",
            "i",
            "--tee",
            "none",
            "--model",
            "m",
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    assert_eq!(refused.status.code(), Some(2), "{}", both(&refused));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn completions_name_each_binarys_subcommands() {
    for (name, words) in [
        (
            "silk",
            &["verify", "measure", "bench", "completions", "man"][..],
        ),
        ("silk-host", &["run", "doctor", "settle", "--dry-run"][..]),
        (
            "silk-router",
            &["--admission", "--log-format", "completions"][..],
        ),
    ] {
        let out = run(name, &["completions", "bash"], &[]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", both(&out));
        let script = String::from_utf8(out.stdout).unwrap();
        for w in words {
            assert!(script.contains(w), "{name}'s bash completions lack {w}");
        }
        for shell in ["zsh", "fish", "elvish", "powershell"] {
            let out = run(name, &["completions", shell], &[]);
            assert_eq!(out.status.code(), Some(0), "{name} {shell}");
            assert!(!out.stdout.is_empty(), "{name} {shell}");
        }
    }
    let out = run("silk", &["completions", "tcsh"], &[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

/// `silk completions bash | head -1`: the reader goes before the script is written, and the
/// binary ends quietly (no panic, exit 0) as other Unix tools do.
#[test]
fn completions_into_a_closed_pipe_end_quietly() {
    for name in ["silk", "silk-host", "silk-router"] {
        let mut child = Command::new(bin(name))
            .args(["completions", "bash"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{name}: {err}");
        assert_eq!(out.status.code(), Some(0), "{name}: {err}");
    }
}

#[test]
fn man_pages_are_roff_and_render() {
    let man_available = Command::new("man")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    for name in ["silk", "silk-host", "silk-router"] {
        let out = run(name, &["man"], &[]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", both(&out));
        let page = String::from_utf8(out.stdout).unwrap();
        assert!(page.contains(&format!(".TH {name} 1")), "{name}: {page}");
        if man_available {
            let d = scratch(&format!("man-{name}"));
            let file = d.join(format!("{name}.1"));
            std::fs::write(&file, &page).unwrap();
            let shown = Command::new("man")
                .args(["-l", file.to_str().unwrap()])
                .env("MANPAGER", "cat")
                .env("MANWIDTH", "80")
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&shown.stdout);
            assert!(shown.status.success(), "man -l {name}: {}", both(&shown));
            assert!(text.contains("NAME") && text.contains(name), "{text}");
            let _ = std::fs::remove_dir_all(&d);
        }
    }
    // One page per subcommand with --out.
    let d = scratch("man-out");
    let out = run("silk", &["man", "--out", d.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    for page in ["silk.1", "silk-verify.1", "silk-bench-sealed.1"] {
        assert!(d.join(page).is_file(), "{page} missing: {}", both(&out));
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// Starts `silk-router` with `args` and returns its first stderr lines (its logs) once it
/// is listening, and then stops it.
fn router_log_lines(args: &[&str], env: &[(&str, &str)]) -> Vec<String> {
    use std::io::{BufRead, BufReader};
    let policy = repo().join("docs/examples/snp-milan-sample.toml");
    let mut c = Command::new(bin("silk-router"));
    c.args([
        "--listen",
        "127.0.0.1:0",
        "--admission",
        policy.to_str().unwrap(),
    ])
    .args(args)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let listening = stdout
        .lines()
        .map_while(Result::ok)
        .any(|l| l.starts_with("listening http://"));
    // Give the logs a moment to land, then stop it (SIGKILL: the lines are already out).
    std::thread::sleep(Duration::from_millis(200));
    let _ = child.kill();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let lines: Vec<String> = stderr.lines().map_while(Result::ok).collect();
    let _ = child.wait();
    assert!(listening, "the router did not start: {lines:?}");
    lines
}

#[test]
fn logs_are_json_lines_on_request_and_plain_text_otherwise() {
    for (args, env) in [
        (&["--log-format", "json"][..], &[("RUST_LOG", "info")][..]),
        (
            &[][..],
            &[("RUST_LOG", "info"), ("SILK_LOG_FORMAT", "json")][..],
        ),
    ] {
        let lines = router_log_lines(args, env);
        assert!(!lines.is_empty(), "no log lines");
        for l in &lines {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            assert!(v["level"].is_string() && v["fields"].is_object(), "{l}");
        }
    }
    let text = router_log_lines(&[], &[("RUST_LOG", "info")]);
    assert!(!text.is_empty());
    for l in &text {
        assert!(!l.as_bytes().contains(&ESC), "{l:?}");
        assert!(serde_json::from_str::<Value>(l).is_err(), "{l}");
    }
    // RUST_LOG filters: nothing at error level on a clean start.
    assert!(router_log_lines(&[], &[("RUST_LOG", "error")]).is_empty());
}

#[test]
fn bench_engine_json_has_one_row_per_model() {
    let model = common::default_model();
    let out = run(
        "silk",
        &[
            "bench",
            "engine",
            "--model",
            model.to_str().unwrap(),
            "--threads",
            "1",
            "--prompt",
            "4",
            "--decode",
            "2",
            "--concurrency",
            "2",
            "--reps",
            "1",
            "--no-llama-cpp",
            "--json",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", both(&out));
    assert_plain(&out);
    let v = json_doc(&out);
    assert_eq!(v["bench"], "engine");
    let rows = v["models"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    let silk = &rows[0]["silk"];
    assert!(silk["prefill_tok_s"].as_f64().unwrap() > 0.0, "{v}");
    assert!(silk["decode_tok_s"].as_f64().unwrap() > 0.0, "{v}");
    assert_eq!(silk["aggregate"][0]["sequences"], 2, "{v}");
    assert!(rows[0]["llama_cpp_error"].is_string(), "{v}");
}

#[test]
fn log_colour_follows_the_terminal_and_no_color() {
    let cmd = format!(
        "RUST_LOG=info timeout -s INT 2 {} --listen 127.0.0.1:0 --admission {}",
        bin("silk-router").display(),
        repo().join("docs/examples/snp-milan-sample.toml").display()
    );
    let Some(tty) = on_a_terminal(&cmd, None) else {
        eprintln!("script(1) is not installed: the terminal case is not checked here");
        return;
    };
    assert!(tty.contains("router serving"), "{tty}");
    assert!(
        tty.as_bytes().contains(&ESC),
        "no colour on a terminal: {tty:?}"
    );
    let plain = on_a_terminal(&cmd, Some("1")).unwrap();
    assert!(plain.contains("router serving"), "{plain}");
    assert!(!plain.as_bytes().contains(&ESC), "{plain:?}");
}
