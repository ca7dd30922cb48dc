//! `silk bench engine`: the engine's speed beside llama.cpp's on the same GGUF files.
//!
//! silk's numbers come from the decoder directly (`Model::forward`, as the scheduler calls
//! it): one prompt prefilled per sequence, then single-token decode steps for 1, 8 and 32
//! sequences at once. llama.cpp's come from `scripts/reference/llama_cpp_bench.py`
//! (llama-cpp-python) with the same thread count, prompt and step counts and an f32 KV
//! cache. Each figure is the best of a few repetitions.
//!
//! With `--device cuda` the model runs on the GPU (a build with the `cuda` feature); each
//! timing waits for the GPU to finish, llama.cpp (measured on the CPU) is left out, and
//! the table adds the fraction of the card's memory-bandwidth roofline that
//! one-sequence decode reaches ([`crate::bench_gpu`]).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde::Serialize;
use silk_cli::progress::ProgressBar;
use silk_engine::{load, DeviceSpec, Model, SeqStep};

use crate::bench_gpu::{weight_bytes_per_token, GpuInfo, Roofline};

/// What to measure.
#[derive(Clone, Debug)]
pub struct EngineBenchArgs {
    /// GGUF files (or model directories) to measure.
    pub models: Vec<PathBuf>,
    /// Compute threads for both engines.
    pub threads: usize,
    /// Where silk runs the model.
    pub device: DeviceSpec,
    /// Prompt length in tokens.
    pub prompt: usize,
    /// Decode steps measured.
    pub decode: usize,
    /// Concurrent sequence counts for the aggregate decode rate.
    pub concurrency: Vec<usize>,
    /// Repetitions (the best is reported).
    pub reps: usize,
    /// llama.cpp's side; skipped when `None` or when it cannot run.
    pub llama_cpp_script: Option<PathBuf>,
    /// Print one JSON document instead of the table.
    pub json: bool,
}

/// One engine's figures on one model.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Figures {
    /// Prompt tokens per second, one sequence.
    #[serde(rename = "prefill_tok_s")]
    pub prefill: f64,
    /// Decode tokens per second, one sequence.
    #[serde(rename = "decode_tok_s")]
    pub decode: f64,
    /// Aggregate decode tokens per second at each concurrency.
    #[serde(serialize_with = "aggregate_json")]
    pub aggregate: Vec<(usize, f64)>,
}

/// `[{"sequences": n, "decode_tok_s": rate}]`: named keys rather than pairs.
fn aggregate_json<S: serde::Serializer>(a: &[(usize, f64)], s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Point {
        sequences: usize,
        decode_tok_s: f64,
    }
    s.collect_seq(a.iter().map(|&(sequences, decode_tok_s)| Point {
        sequences,
        decode_tok_s,
    }))
}

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The model did not load.
    #[error("{}: {source}", path.display())]
    Load {
        /// The model path.
        path: PathBuf,
        /// Why.
        source: silk_engine::LoadError,
    },
    /// The model failed while running.
    #[error("{0}")]
    Run(#[from] silk_engine::RunError),
    /// The device could not be opened.
    #[error("{0}")]
    Device(#[from] silk_engine::DeviceError),
    /// Writing the table failed.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

fn prompt_tokens(n: usize, vocab: usize) -> Vec<u32> {
    // Ordinary vocabulary ids, away from the special tokens at the start.
    (0..n)
        .map(|i| (100 + i * 7) as u32 % vocab as u32)
        .collect()
}

/// The repetitions [`measure_silk`] runs on one model (what its progress counts).
pub fn silk_steps(args: &EngineBenchArgs) -> u64 {
    let counts = 1 + args.concurrency.iter().filter(|&&c| c > 1).count();
    (args.reps.max(1) * (1 + counts)) as u64
}

/// Measures silk on one model, ticking `progress` once per repetition.
pub fn measure_silk(
    model: &Model,
    args: &EngineBenchArgs,
    progress: &ProgressBar,
) -> Result<Figures, BenchError> {
    let vocab = model.config().vocab_size;
    let prompt = prompt_tokens(args.prompt, vocab);
    // A GPU runs asynchronously: a timing ends when it has finished.
    let sync = || {
        model
            .device()
            .synchronize()
            .map_err(silk_engine::RunError::from)
    };
    let mut figures = Figures::default();
    for _ in 0..args.reps.max(1) {
        let mut cache = model.new_cache();
        let t0 = Instant::now();
        model.forward(&mut [SeqStep {
            tokens: &prompt,
            cache: &mut cache,
        }])?;
        sync()?;
        figures.prefill = figures
            .prefill
            .max(args.prompt as f64 / t0.elapsed().as_secs_f64());
        progress.inc(1);
    }
    let mut counts = vec![1];
    counts.extend(args.concurrency.iter().copied().filter(|&c| c > 1));
    for &n in &counts {
        let mut best: f64 = 0.0;
        for _ in 0..args.reps.max(1) {
            let mut caches: Vec<_> = (0..n).map(|_| model.new_cache()).collect();
            for c in caches.iter_mut() {
                model.forward(&mut [SeqStep {
                    tokens: &prompt,
                    cache: c,
                }])?;
            }
            sync()?;
            let next = [42u32];
            let t0 = Instant::now();
            for _ in 0..args.decode {
                let mut steps: Vec<SeqStep> = caches
                    .iter_mut()
                    .map(|c| SeqStep {
                        tokens: &next,
                        cache: c,
                    })
                    .collect();
                model.forward(&mut steps)?;
            }
            sync()?;
            best = best.max((args.decode * n) as f64 / t0.elapsed().as_secs_f64());
            progress.inc(1);
        }
        if n == 1 {
            figures.decode = best;
        } else {
            figures.aggregate.push((n, best));
        }
    }
    Ok(figures)
}

/// Runs llama.cpp's side through the reference script, or says why it could not.
pub fn measure_llama_cpp(model: &Path, args: &EngineBenchArgs) -> Result<Figures, String> {
    let script = args
        .llama_cpp_script
        .as_ref()
        .ok_or("no llama.cpp script given")?;
    let out = Command::new("python3")
        .arg(script)
        .arg(model)
        .args(["--threads", &args.threads.to_string()])
        .args(["--prompt", &args.prompt.to_string()])
        .args(["--decode", &args.decode.to_string()])
        .args(["--reps", &args.reps.to_string()])
        .output()
        .map_err(|e| format!("cannot run python3: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("failed").to_owned();
        return Err(format!("{last} (pip install llama-cpp-python to compare)"));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("bad output: {e}"))?;
    let get = |k: &str| v[k].as_f64().ok_or(format!("no {k} in output"));
    Ok(Figures {
        prefill: get("prefill_tok_s")?,
        decode: get("decode_tok_s")?,
        aggregate: Vec::new(),
    })
}

/// One model's results: silk's figures, and llama.cpp's or why they are missing.
#[derive(Debug, Serialize)]
pub struct ModelRow {
    /// The model's file name.
    pub model: String,
    /// silk's figures.
    pub silk: Figures,
    /// llama.cpp's figures (prefill and decode only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llama_cpp: Option<Figures>,
    /// Why llama.cpp was not measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llama_cpp_error: Option<String>,
    /// One-sequence decode against the GPU's memory bandwidth (GPU runs on known cards).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roofline: Option<Roofline>,
}

/// `silk bench engine --json`: the settings, then one row per model.
#[derive(Debug, Serialize)]
struct Report<'a> {
    bench: &'static str,
    threads: usize,
    device: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    gpu: Option<&'a GpuInfo>,
    prompt_tokens: usize,
    decode_steps: usize,
    reps: usize,
    models: &'a [ModelRow],
}

/// Runs the whole benchmark and prints its table (or, with `json`, one JSON document).
/// Progress goes to stderr while it runs.
pub fn run_engine_bench(args: &EngineBenchArgs, out: &mut dyn Write) -> Result<(), BenchError> {
    std::env::set_var("SILK_THREADS", args.threads.to_string());
    let progress = silk_cli::progress::steps(
        silk_steps(args) * args.models.len() as u64,
        "silk bench engine",
    );
    let device = args.device.open()?;
    let gpu = match args.device {
        DeviceSpec::Cuda(n) => GpuInfo::query(n),
        DeviceSpec::Cpu => None,
    };
    let mut rows = Vec::new();
    for path in &args.models {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        progress.set_message(format!("silk bench engine: {name}"));
        let model = load(path, &device)
            .map_err(|source| BenchError::Load {
                path: path.clone(),
                source,
            })?
            .model;
        let silk = measure_silk(&model, args, &progress)?;
        drop(model);
        progress.set_message(format!("silk bench engine: {name} (llama.cpp)"));
        let (llama_cpp, llama_cpp_error) = match args.device {
            DeviceSpec::Cuda(_) => (None, Some("compared on the CPU only".to_owned())),
            DeviceSpec::Cpu => match measure_llama_cpp(path, args) {
                Ok(l) => (Some(l), None),
                Err(why) => (None, Some(why)),
            },
        };
        let roofline = Roofline::of(weight_bytes_per_token(path), silk.decode, gpu.as_ref());
        rows.push(ModelRow {
            model: name,
            silk,
            llama_cpp,
            llama_cpp_error,
            roofline,
        });
    }
    progress.finish_and_clear();
    if args.json {
        silk_cli::json(
            out,
            &Report {
                bench: "engine",
                threads: args.threads,
                device: args.device.to_string(),
                gpu: gpu.as_ref(),
                prompt_tokens: args.prompt,
                decode_steps: args.decode,
                reps: args.reps,
                models: &rows,
            },
        )?;
        return Ok(());
    }
    table(args, gpu.as_ref(), &rows, out)?;
    Ok(())
}

/// The table: one block of lines per model.
fn table(
    args: &EngineBenchArgs,
    gpu: Option<&GpuInfo>,
    rows: &[ModelRow],
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let on = match (args.device, gpu) {
        (DeviceSpec::Cpu, _) => format!("{} threads", args.threads),
        (d, Some(g)) => format!("{d} ({})", g.name),
        (d, None) => d.to_string(),
    };
    writeln!(
        out,
        "silk bench engine: {on}, {}-token prompt, {} decode steps, best of {}",
        args.prompt, args.decode, args.reps
    )?;
    let agg_head: Vec<String> = args
        .concurrency
        .iter()
        .filter(|&&c| c > 1)
        .map(|c| format!("decode x{c} tok/s"))
        .collect();
    writeln!(
        out,
        "\n{:<34} {:<10} {:>14} {:>14} {}",
        "model",
        "engine",
        "prefill tok/s",
        "decode tok/s",
        agg_head
            .iter()
            .map(|h| format!("{h:>18}"))
            .collect::<String>()
    )?;
    for row in rows {
        let silk = &row.silk;
        let aggs: String = silk
            .aggregate
            .iter()
            .map(|(_, v)| format!("{v:>18.1}"))
            .collect();
        writeln!(
            out,
            "{:<34} {:<10} {:>14.1} {:>14.1} {aggs}",
            row.model, "silk", silk.prefill, silk.decode
        )?;
        match (&row.llama_cpp, &row.llama_cpp_error) {
            (Some(l), _) => {
                writeln!(
                    out,
                    "{:<34} {:<10} {:>14.1} {:>14.1}",
                    "", "llama.cpp", l.prefill, l.decode
                )?;
                writeln!(
                    out,
                    "{:<34} {:<10} {:>14.2} {:>14.2}",
                    "",
                    "silk/llama",
                    silk.prefill / l.prefill,
                    silk.decode / l.decode
                )?;
            }
            (None, why) => writeln!(
                out,
                "{:<34} {:<10} not measured: {}",
                "",
                "llama.cpp",
                why.as_deref().unwrap_or("no result")
            )?,
        }
        for (n, v) in &silk.aggregate {
            writeln!(
                out,
                "{:<34} {:<10} {n} sequences: {:.2}x the throughput of one",
                "",
                "scaling",
                v / silk.decode
            )?;
        }
        match (&row.roofline, args.device) {
            (Some(r), _) => writeln!(
                out,
                "{:<34} {:<10} decode x1 reads {:.1} MB/token: {:.0} of {:.0} GB/s = {:.1}%",
                "",
                "roofline",
                r.weight_bytes_per_token as f64 / 1e6,
                r.achieved_gbs,
                r.peak_gbs,
                r.fraction * 100.0
            )?,
            (None, DeviceSpec::Cuda(_)) => writeln!(
                out,
                "{:<34} {:<10} unknown: not a GGUF, or a card without a bandwidth \
                 (set SILK_GPU_BANDWIDTH_GBS)",
                "", "roofline"
            )?,
            (None, DeviceSpec::Cpu) => {}
        }
    }
    Ok(())
}
