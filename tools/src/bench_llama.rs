//! llama.cpp's side of `silk bench engine`: its own `llama-bench` and
//! `llama-batched-bench`, run with llama.cpp's defaults (f16 KV cache, flash attention
//! auto), and their output parsed.
//!
//! The tools are found by option, then on `PATH`, then in the cache
//! `scripts/llama-tools.sh` builds them into (`~/.cache/silk/llama-VERSION/bin`, VERSION
//! being the llama-cpp-python that `scripts/reference/requirements.txt` pins). Each run's
//! peak resident memory is read from `/proc/PID/status` (`VmHWM`) while it runs.
//!
//! The parsers ([`parse_llama_bench`], [`parse_batched_bench`]) are pure functions over
//! the tools' printed output, tested on outputs recorded from the built tools.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::Serialize;

/// The llama-cpp-python release the reference scripts pin, whose bundled llama.cpp
/// `scripts/llama-tools.sh` builds.
fn pinned_version() -> Option<&'static str> {
    include_str!("../../scripts/reference/requirements.txt")
        .lines()
        .find_map(|l| l.trim().strip_prefix("llama-cpp-python=="))
}

/// Where `scripts/llama-tools.sh` puts its binaries.
pub fn tools_cache() -> Option<PathBuf> {
    let base = std::env::var_os("SILK_LLAMA_CACHE")
        .map(PathBuf::from)
        .or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
            Some(
                cache
                    .join("silk")
                    .join(format!("llama-{}", pinned_version()?)),
            )
        })?;
    Some(base.join("bin"))
}

/// Finds one of llama.cpp's tools: `given` (which must exist), else `name` on `PATH`,
/// else in [`tools_cache`]. The error says where it looked.
pub fn find_tool(name: &str, given: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = given {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(format!("{name}: {} does not exist", p.display()))
        };
    }
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    let cache = tools_cache();
    on_path
        .iter()
        .chain(cache.iter())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!(
                "{name} not found on PATH nor in {} (build it with scripts/llama-tools.sh, \
                 or give --{name} PATH)",
                cache.map_or("the tools cache".to_owned(), |c| c.display().to_string())
            )
        })
}

/// llama-bench's figures on one model, tok/s: the best of its repetitions.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LlamaBench {
    /// Prompt processing from an empty cache (`pp`).
    pub prefill: f64,
    /// Generation from an empty cache (`tg` at depth 0).
    pub decode_empty: f64,
    /// Generation after `depth` tokens already in the cache, if measured.
    pub decode_at_depth: Option<f64>,
    /// llama.cpp's build (commit), as llama-bench reports it.
    pub build: String,
}

/// One llama-bench result: a JSON object of its `-o json` array.
fn best_rate(test: &serde_json::Value) -> Option<f64> {
    // The best sample, as silk reports its best repetition; the mean if no samples.
    let samples = test["samples_ts"].as_array().map(|s| {
        s.iter()
            .filter_map(serde_json::Value::as_f64)
            .fold(f64::NAN, f64::max)
    });
    samples
        .filter(|v| v.is_finite())
        .or_else(|| test["avg_ts"].as_f64())
}

/// Parses `llama-bench -o json` output: prefill (`n_prompt` = `prompt`, `n_gen` 0, depth 0),
/// decode (`n_gen` = `decode`, `n_prompt` 0) at depth 0 and at `depth`.
pub fn parse_llama_bench(
    json: &str,
    prompt: usize,
    decode: usize,
    depth: usize,
) -> Result<LlamaBench, String> {
    // llama-bench may print log lines before the array: start at the first '['.
    let start = json
        .find('[')
        .ok_or("no JSON array in llama-bench's output")?;
    let tests: Vec<serde_json::Value> = serde_json::from_str(&json[start..])
        .map_err(|e| format!("llama-bench's JSON does not parse: {e}"))?;
    let field = |t: &serde_json::Value, k: &str| t[k].as_u64().map(|v| v as usize);
    let find = |p: usize, g: usize, d: usize| {
        tests
            .iter()
            .find(|t| {
                field(t, "n_prompt") == Some(p)
                    && field(t, "n_gen") == Some(g)
                    && field(t, "n_depth").unwrap_or(0) == d
            })
            .and_then(best_rate)
    };
    let prefill = find(prompt, 0, 0).ok_or(format!("llama-bench printed no pp{prompt} result"))?;
    let decode_empty =
        find(0, decode, 0).ok_or(format!("llama-bench printed no tg{decode} result"))?;
    let decode_at_depth = (depth > 0).then(|| find(0, decode, depth)).flatten();
    let build = tests
        .first()
        .and_then(|t| t["build_commit"].as_str())
        .unwrap_or("unknown")
        .to_owned();
    Ok(LlamaBench {
        prefill,
        decode_empty,
        decode_at_depth,
        build,
    })
}

/// Parses `llama-batched-bench`'s table: the best generation rate (`S_TG t/s`) at each
/// parallel sequence count (`B`), in the order first seen. Columns are found by their
/// header, so added columns do not move them; `--output-format jsonl` lines are read too.
pub fn parse_batched_bench(text: &str) -> Result<Vec<(usize, f64)>, String> {
    let mut best: Vec<(usize, f64)> = Vec::new();
    let mut record = |pl: usize, rate: f64| match best.iter_mut().find(|(n, _)| *n == pl) {
        Some((_, r)) => *r = r.max(rate),
        None => best.push((pl, rate)),
    };
    let mut columns: Option<(usize, usize)> = None;
    for line in text.lines().map(str::trim) {
        if line.starts_with('{') {
            let v: serde_json::Value = match serde_json::from_str(line) {
                Ok(v) => v,
                Err(_) => continue,
            };
            if let (Some(pl), Some(rate)) = (v["pl"].as_u64(), v["speed_tg"].as_f64()) {
                record(pl as usize, rate);
            }
            continue;
        }
        if !line.starts_with('|') {
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if let (Some(b), Some(s)) = (
            cells.iter().position(|c| *c == "B"),
            cells.iter().position(|c| *c == "S_TG t/s"),
        ) {
            columns = Some((b, s));
            continue;
        }
        let Some((b, s)) = columns else { continue };
        let (Some(pl), Some(rate)) = (
            cells.get(b).and_then(|c| c.parse::<usize>().ok()),
            cells.get(s).and_then(|c| c.parse::<f64>().ok()),
        ) else {
            continue; // the |---|---| rule under the header
        };
        record(pl, rate);
    }
    if best.is_empty() {
        return Err("llama-batched-bench printed no result rows (| PP | TG | B | … |)".into());
    }
    Ok(best)
}

/// What one run of a tool printed, and its peak resident memory.
pub struct ToolRun {
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
    /// Peak resident set in bytes (`VmHWM`, last read before it exited), if readable.
    pub peak_rss: Option<u64>,
}

/// `VmHWM` of a process, in bytes (`/proc/PID/status`; `self` for this one).
pub fn peak_rss_of(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kb * 1024)
}

/// Resets this process's peak resident set to its current size (Linux `clear_refs` 5), so
/// that each model's peak is its own. Fails quietly where that is not possible.
pub fn reset_own_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Runs `tool` with `args`, reading its peak memory while it runs. A failure names the
/// tool and says why (its exit status and last line of stderr).
pub fn run_tool(tool: &Path, args: &[&str]) -> Result<ToolRun, String> {
    let name = tool.display();
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {name}: {e}"))?;
    // Drain both pipes on threads, so that a chatty tool never blocks on a full pipe.
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = child.stdout.take().map(|s| drain(Box::new(s)));
    let err = child.stderr.take().map(|s| drain(Box::new(s)));
    let pid = child.id().to_string();
    let mut peak = None;
    let status = loop {
        // VmHWM only grows: the last reading before exit is the peak, but for the teardown.
        if let Some(p) = peak_rss_of(&pid) {
            peak = Some(p);
        }
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("waiting for {name}: {e}")),
        }
    };
    let join = |h: Option<std::thread::JoinHandle<String>>| {
        h.and_then(|h| h.join().ok()).unwrap_or_default()
    };
    let (stdout, stderr) = (join(out), join(err));
    if !status.success() {
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no message");
        return Err(format!("{name} failed ({status}): {last}"));
    }
    Ok(ToolRun {
        stdout,
        stderr,
        peak_rss: peak,
    })
}

/// llama.cpp's figures on one model, or why some are missing.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LlamaFigures {
    /// Prompt tokens per second from an empty cache (llama-bench `pp`).
    #[serde(rename = "prefill_tok_s")]
    pub prefill: Option<f64>,
    /// Decode tokens per second from an empty cache (llama-bench `tg`).
    #[serde(rename = "decode_empty_tok_s")]
    pub decode_empty: Option<f64>,
    /// Decode tokens per second after the prompt's length in the cache (`tg @ d`).
    #[serde(rename = "decode_tok_s")]
    pub decode: Option<f64>,
    /// Aggregate decode tokens per second at each sequence count (llama-batched-bench).
    #[serde(serialize_with = "crate::bench::aggregate_json")]
    pub aggregate: Vec<(usize, f64)>,
    /// llama-bench's peak resident memory, bytes.
    #[serde(rename = "peak_rss_bytes")]
    pub peak_rss: Option<u64>,
    /// llama-batched-bench's peak resident memory, bytes.
    #[serde(rename = "peak_rss_batched_bytes")]
    pub peak_rss_batched: Option<u64>,
    /// The llama.cpp build (commit) llama-bench reports.
    pub build: Option<String>,
    /// The llama-bench that was run.
    pub tool: Option<PathBuf>,
    /// What could not be measured, and why (each names the tool).
    pub errors: Vec<String>,
}

/// Where the tools are and what to run them on.
pub struct LlamaRun<'a> {
    /// `llama-bench`, or why it was not found.
    pub bench: &'a Result<PathBuf, String>,
    /// `llama-batched-bench`, or why it was not found.
    pub batched: &'a Result<PathBuf, String>,
    /// Threads.
    pub threads: usize,
    /// Prompt tokens (and the depth decode is measured at).
    pub prompt: usize,
    /// Decode steps.
    pub decode: usize,
    /// Sequence counts for the aggregate rate.
    pub sequences: &'a [usize],
    /// Repetitions.
    pub reps: usize,
}

/// Runs both tools on `model` with llama.cpp's defaults; whatever fails is recorded in
/// [`LlamaFigures::errors`], never skipped silently.
pub fn measure_llama(model: &Path, run: &LlamaRun) -> LlamaFigures {
    let mut f = LlamaFigures::default();
    let m = model.display().to_string();
    let (p, n, t) = (
        run.prompt.to_string(),
        run.decode.to_string(),
        run.threads.to_string(),
    );
    match run.bench {
        Ok(tool) => {
            let args = [
                "-m",
                &m,
                "-t",
                &t,
                "-p",
                &p,
                "-n",
                &n,
                "-d",
                &format!("0,{p}"),
                "-r",
                &run.reps.max(1).to_string(),
                "-o",
                "json",
            ];
            match run_tool(tool, &args).and_then(|r| {
                let b = parse_llama_bench(&r.stdout, run.prompt, run.decode, run.prompt)
                    .map_err(|e| format!("{}: {e}", tool.display()))?;
                Ok((b, r.peak_rss))
            }) {
                Ok((b, rss)) => {
                    f.prefill = Some(b.prefill);
                    f.decode_empty = Some(b.decode_empty);
                    f.decode = b.decode_at_depth;
                    f.build = Some(b.build);
                    f.tool = Some(tool.clone());
                    f.peak_rss = rss;
                }
                Err(e) => f.errors.push(e),
            }
        }
        Err(e) => f.errors.push(e.clone()),
    }
    let seqs: Vec<usize> = run.sequences.iter().copied().filter(|&s| s > 1).collect();
    if seqs.is_empty() {
        return f;
    }
    match run.batched {
        Ok(tool) => {
            // Each count listed once per repetition: one process measures them all, and
            // the best of each is kept. The context holds every sequence's prompt and
            // steps (a row that does not fit is skipped by the tool without a word).
            let npl = vec![
                seqs.iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(",");
                run.reps.max(1)
            ]
            .join(",");
            let max = seqs.iter().max().copied().unwrap_or(1);
            let ctx = (max * (run.prompt + run.decode + 1)).to_string();
            let args = [
                "-m", &m, "-t", &t, "-c", &ctx, "-npp", &p, "-ntg", &n, "-npl", &npl,
            ];
            match run_tool(tool, &args).and_then(|r| {
                parse_batched_bench(&format!("{}\n{}", r.stdout, r.stderr))
                    .map(|rows| (rows, r.peak_rss))
                    .map_err(|e| format!("{}: {e}", tool.display()))
            }) {
                Ok((rows, rss)) => {
                    for s in &seqs {
                        match rows.iter().find(|(n, _)| n == s) {
                            Some(&row) => f.aggregate.push(row),
                            None => f
                                .errors
                                .push(format!("{}: no result for {s} sequences", tool.display())),
                        }
                    }
                    f.peak_rss_batched = rss;
                }
                Err(e) => f.errors.push(e),
            }
        }
        Err(e) => f.errors.push(e.clone()),
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    const LLAMA_BENCH_JSON: &str = include_str!("../tests/data/llama-bench.json");
    const BATCHED_BENCH_TXT: &str = include_str!("../tests/data/llama-batched-bench.txt");

    #[test]
    fn llama_bench_json_recorded() {
        let b = parse_llama_bench(LLAMA_BENCH_JSON, 64, 32, 64).unwrap();
        assert!(b.prefill > b.decode_empty, "{b:?}");
        assert!(b.decode_at_depth.is_some(), "{b:?}");
        // llama-cpp-python's sdist carries no git checkout: its llama.cpp has no commit.
        assert_eq!(b.build, "unknown");
    }

    #[test]
    fn llama_bench_takes_the_best_sample() {
        let json = r#"[
          {"build_commit": "abc1234", "n_prompt": 8, "n_gen": 0, "n_depth": 0,
           "avg_ts": 100.0, "samples_ts": [90.0, 110.0]},
          {"build_commit": "abc1234", "n_prompt": 0, "n_gen": 4, "n_depth": 0,
           "avg_ts": 50.0, "samples_ts": [50.0]},
          {"build_commit": "abc1234", "n_prompt": 0, "n_gen": 4, "n_depth": 8,
           "avg_ts": 40.0}
        ]"#;
        let b = parse_llama_bench(&format!("log line\n{json}"), 8, 4, 8).unwrap();
        assert_eq!(
            b,
            LlamaBench {
                prefill: 110.0,
                decode_empty: 50.0,
                decode_at_depth: Some(40.0),
                build: "abc1234".into()
            }
        );
    }

    #[test]
    fn llama_bench_errors_name_what_is_missing() {
        let err = parse_llama_bench("[]", 64, 32, 0).unwrap_err();
        assert!(err.contains("pp64"), "{err}");
        let err = parse_llama_bench("error: bad model", 64, 32, 0).unwrap_err();
        assert!(err.contains("no JSON"), "{err}");
        let err = parse_llama_bench("[{", 64, 32, 0).unwrap_err();
        assert!(err.contains("does not parse"), "{err}");
    }

    #[test]
    fn batched_bench_table_recorded() {
        let rows = parse_batched_bench(BATCHED_BENCH_TXT).unwrap();
        let seqs: Vec<usize> = rows.iter().map(|r| r.0).collect();
        assert_eq!(seqs, [8, 32]);
        assert!(rows.iter().all(|r| r.1 > 0.0), "{rows:?}");
    }

    #[test]
    fn batched_bench_best_of_repeats_and_jsonl() {
        let text = "\
|    PP |     TG |    B |   N_KV |   T_PP s | S_PP t/s |   T_TG s | S_TG t/s |      T s |    S t/s |
|-------|--------|------|--------|----------|----------|----------|----------|----------|----------|
|    64 |     32 |    8 |    768 |    1.000 |   512.00 |    1.000 |   256.00 |    2.000 |   384.00 |
|    64 |     32 |    8 |    768 |    1.000 |   512.00 |    0.800 |   320.00 |    1.800 |   426.67 |
{\"pp\": 64, \"tg\": 32, \"pl\": 32, \"speed_tg\": 400.5}
";
        assert_eq!(
            parse_batched_bench(text).unwrap(),
            [(8, 320.0), (32, 400.5)]
        );
        let err = parse_batched_bench("main: error: unable to load model").unwrap_err();
        assert!(err.contains("llama-batched-bench"), "{err}");
    }

    #[test]
    fn own_peak_rss_is_readable() {
        assert!(peak_rss_of("self").is_some_and(|b| b > 0));
    }
}
