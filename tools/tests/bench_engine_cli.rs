//! `silk bench engine` against llama.cpp's tools, with stand-in scripts that print the
//! output recorded from the real `llama-bench` and `llama-batched-bench`
//! (tests/data/), or fail: the table shows the parsed numbers, and a failure is named.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{p, silk, tempdir, text};

/// The engine's tiny test model: the benchmark's own run takes well under a second.
fn tiny_model() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../enclave/engine/tests/fixtures/tiny_llama_q4_1.gguf"
    ))
}

fn data(name: &str) -> String {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data")).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// An executable shell script at `dir/name` that records its arguments in `name.args`.
fn fake_tool(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    let script = format!(
        "#!/bin/sh\necho \"$@\" > '{}.args'\n{body}\n",
        path.display()
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// The recorded llama-bench JSON with its sizes moved to the test's (prompt 4, 2 steps).
fn llama_bench_json() -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(&data("llama-bench.json")).unwrap();
    for t in v.as_array_mut().unwrap() {
        for (k, to) in [("n_prompt", 4), ("n_gen", 2), ("n_depth", 4)] {
            if t[k].as_u64().unwrap_or(0) > 0 {
                t[k] = to.into();
            }
        }
    }
    v
}

fn best(t: &serde_json::Value) -> f64 {
    t["samples_ts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_f64().unwrap())
        .fold(0.0, f64::max)
}

fn bench(bench_tool: &Path, batched_tool: &Path) -> std::process::Output {
    silk(&[
        "bench",
        "engine",
        "--model",
        &p(tiny_model()),
        "--threads",
        "1",
        "--prompt",
        "4",
        "--decode",
        "2",
        "--concurrency",
        "8,32",
        "--reps",
        "1",
        "--llama-bench",
        &p(bench_tool.to_path_buf()),
        "--llama-batched-bench",
        &p(batched_tool.to_path_buf()),
    ])
}

#[test]
fn table_shows_llama_cpp_tools_numbers() {
    let dir = tempdir();
    let json = llama_bench_json();
    std::fs::write(dir.join("bench.json"), json.to_string()).unwrap();
    std::fs::write(dir.join("batched.txt"), data("llama-batched-bench.txt")).unwrap();
    let b = fake_tool(
        &dir,
        "llama-bench",
        &format!("cat '{}'", dir.join("bench.json").display()),
    );
    let bb = fake_tool(
        &dir,
        "llama-batched-bench",
        &format!("cat '{}'", dir.join("batched.txt").display()),
    );
    let out = bench(&b, &bb);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");

    // llama.cpp's defaults: no KV-cache type or flash-attention flag is passed.
    let args = std::fs::read_to_string(dir.join("llama-bench.args")).unwrap();
    assert!(args.contains("-t 1 -p 4 -n 2 -d 0,4"), "{args}");
    assert!(args.ends_with("-o json\n"), "{args}");
    assert!(!args.contains("-ctk") && !args.contains("-fa"), "{args}");
    let args = std::fs::read_to_string(dir.join("llama-batched-bench.args")).unwrap();
    assert!(args.contains("-npp 4 -ntg 2 -npl 8,32"), "{args}");

    let line = t
        .lines()
        .find(|l| l.split_whitespace().next() == Some("llama.cpp"))
        .unwrap_or_else(|| panic!("no llama.cpp line in\n{t}"));
    let tests = json.as_array().unwrap();
    let find = |p: u64, g: u64, d: u64| {
        tests
            .iter()
            .find(|x| x["n_prompt"] == p && x["n_gen"] == g && x["n_depth"] == d)
            .map(best)
            .unwrap()
    };
    for v in [find(4, 0, 0), find(0, 2, 0), find(0, 2, 4)] {
        assert!(line.contains(&format!("{v:.1}")), "{v:.1} not in {line}");
    }
    // The aggregate rates: the recorded table's S_TG t/s at 8 and 32 sequences.
    let rows =
        silk_tools::bench_llama::parse_batched_bench(&data("llama-batched-bench.txt")).unwrap();
    for (_, v) in rows {
        assert!(line.contains(&format!("{v:.1}")), "{v:.1} not in {line}");
    }
    assert!(t.contains("silk/llama"), "{t}");
    assert!(!t.contains("not measured"), "{t}");
}

#[test]
fn a_failing_tool_is_named() {
    let dir = tempdir();
    let b = fake_tool(
        &dir,
        "llama-bench",
        "echo 'error: failed to load model' >&2; exit 3",
    );
    let bb = fake_tool(&dir, "llama-batched-bench", "echo 'nothing useful'");
    let out = bench(&b, &bb);
    let t = text(&out);
    // silk's own figures still come out; llama.cpp's failures are said, not hidden.
    assert_eq!(out.status.code(), Some(0), "{t}");
    let lines: Vec<&str> = t.lines().filter(|l| l.contains("not measured")).collect();
    assert_eq!(lines.len(), 2, "{t}");
    assert!(
        lines[0].contains(&p(b.clone())) && lines[0].contains("failed to load model"),
        "{t}"
    );
    assert!(lines[1].contains("llama-batched-bench"), "{t}");

    let out = bench(&dir.join("missing-llama-bench"), &bb);
    let t = text(&out);
    assert!(t.contains("missing-llama-bench does not exist"), "{t}");
}

/// A build without the `cuda` feature asked for `--device cuda` says so and exits 2, before
/// measuring anything (CI's CUDA build runs the GPU benchmark only where a GPU is).
#[test]
fn device_cuda_without_the_cuda_feature_is_refused() {
    if cfg!(feature = "cuda") {
        eprintln!("skipped: this build has the cuda feature");
        return;
    }
    let out = silk(&[
        "bench",
        "engine",
        "--device",
        "cuda",
        "--model",
        &p(tiny_model()),
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains("cuda:0: this build has no CUDA support"), "{t}");
    assert!(!t.contains("tok/s"), "{t}");
}
