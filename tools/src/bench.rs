//! `silk bench engine`: the engine's speed beside llama.cpp's on the same GGUF files.
//!
//! silk's numbers come from the decoder directly (`Model::forward`, as the scheduler calls
//! it): one prompt prefilled per sequence, then single-token decode steps for 1, 8 and 32
//! sequences at once, and one sequence's decode from an empty cache. llama.cpp's come from
//! its own tools with its defaults (f16 KV cache, flash attention auto): `llama-bench` for
//! prefill and decode (from an empty cache and at the prompt's depth) and
//! `llama-batched-bench` for the aggregate rate ([`crate::bench_llama`]), with the same
//! thread count, prompt and step counts. Each figure is the best of a few repetitions.
//! Peak resident memory is given for one sequence and for the largest batch.
//!
//! With `--device cuda` the model runs on the GPU (a build with the `cuda` feature); each
//! timing waits for the GPU to finish, llama.cpp (measured on the CPU) is left out, and
//! the table adds the fraction of the card's memory-bandwidth roofline that
//! one-sequence decode reaches ([`crate::bench_gpu`]).

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;
use silk_cli::progress::ProgressBar;
use silk_engine::{load, DeviceSpec, Model, SeqStep};

use crate::bench_gpu::{weight_bytes_per_token, GpuInfo, Roofline};
use crate::bench_llama::{
    find_tool, measure_llama, peak_rss_of, reset_own_peak_rss, LlamaFigures, LlamaRun,
};

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
    /// Whether to measure llama.cpp at all (on the CPU).
    pub llama_cpp: bool,
    /// `llama-bench` (default: on PATH, else the tools cache).
    pub llama_bench: Option<PathBuf>,
    /// `llama-batched-bench` (default: on PATH, else the tools cache).
    pub llama_batched_bench: Option<PathBuf>,
    /// Print one JSON document instead of the table.
    pub json: bool,
}

/// One engine's figures on one model.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Figures {
    /// Prompt tokens per second, one sequence.
    #[serde(rename = "prefill_tok_s")]
    pub prefill: f64,
    /// Decode tokens per second, one sequence, after the prompt (at its depth).
    #[serde(rename = "decode_tok_s")]
    pub decode: f64,
    /// Decode tokens per second, one sequence, from an empty cache.
    #[serde(rename = "decode_empty_tok_s")]
    pub decode_empty: f64,
    /// Aggregate decode tokens per second at each concurrency.
    #[serde(serialize_with = "aggregate_json")]
    pub aggregate: Vec<(usize, f64)>,
    /// Peak resident memory with one sequence (model loaded), bytes.
    #[serde(rename = "peak_rss_bytes")]
    pub peak_rss: Option<u64>,
    /// Peak resident memory with the largest batch of sequences, bytes.
    #[serde(rename = "peak_rss_batched_bytes")]
    pub peak_rss_batched: Option<u64>,
}

/// `[{"sequences": n, "decode_tok_s": rate}]`: named keys rather than pairs.
pub(crate) fn aggregate_json<S: serde::Serializer>(
    a: &[(usize, f64)],
    s: S,
) -> Result<S::Ok, S::Error> {
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
    (args.reps.max(1) * (2 + counts)) as u64
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
    let next = [42u32];
    for _ in 0..args.reps.max(1) {
        let mut cache = model.new_cache();
        let t0 = Instant::now();
        for _ in 0..args.decode {
            model.forward(&mut [SeqStep {
                tokens: &next,
                cache: &mut cache,
            }])?;
        }
        sync()?;
        figures.decode_empty = figures
            .decode_empty
            .max(args.decode as f64 / t0.elapsed().as_secs_f64());
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
            figures.peak_rss = peak_rss_of("self");
        } else {
            figures.aggregate.push((n, best));
            figures.peak_rss_batched = peak_rss_of("self");
        }
    }
    Ok(figures)
}

/// One model's results: silk's figures, and llama.cpp's or why they are missing.
#[derive(Debug, Serialize)]
pub struct ModelRow {
    /// The model's file name.
    pub model: String,
    /// silk's figures.
    pub silk: Figures,
    /// llama.cpp's figures (with what of them failed, and why).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llama_cpp: Option<LlamaFigures>,
    /// Why llama.cpp was not measured at all.
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
    let bench = find_tool("llama-bench", args.llama_bench.as_deref());
    let batched = find_tool("llama-batched-bench", args.llama_batched_bench.as_deref());
    let llama_run = LlamaRun {
        bench: &bench,
        batched: &batched,
        threads: args.threads,
        prompt: args.prompt,
        decode: args.decode,
        sequences: &args.concurrency,
        reps: args.reps,
    };
    let mut rows = Vec::new();
    for path in &args.models {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        progress.set_message(format!("silk bench engine: {name}"));
        // Each model's peak is its own, not the largest so far.
        reset_own_peak_rss();
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
            DeviceSpec::Cpu if !args.llama_cpp => (None, Some("--no-llama-cpp".to_owned())),
            DeviceSpec::Cpu => (Some(measure_llama(path, &llama_run)), None),
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

/// A rate for the table, or `-` where there is none.
fn cell(v: Option<f64>, decimals: usize) -> String {
    v.filter(|v| v.is_finite())
        .map_or("-".to_owned(), |v| format!("{v:.decimals$}"))
}

/// A memory size in MiB, or `-`.
fn mib(v: Option<u64>) -> String {
    v.map_or("-".to_owned(), |b| {
        format!("{:.0} MiB", b as f64 / 1048576.0)
    })
}

/// One line of the table: the model (or blank), the engine, then the columns.
fn line(out: &mut dyn Write, model: &str, engine: &str, cells: &[String]) -> std::io::Result<()> {
    let cells: String = cells.iter().map(|c| format!(" {c:>12}")).collect();
    writeln!(out, "{model:<34} {engine:<10}{cells}")
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
    let llama = rows.iter().find_map(|r| {
        let l = r.llama_cpp.as_ref()?;
        Some((l.build.clone()?, l.tool.clone()?))
    });
    if let Some((build, tool)) = llama {
        writeln!(
            out,
            "llama.cpp: {} and llama-batched-bench (build {build}), its defaults \
             (f16 KV cache, flash attention auto)",
            tool.display()
        )?;
    }
    writeln!(
        out,
        "tok/s; decode d0 from an empty cache, d{} after the prompt; RSS: peak resident \
         memory with one sequence, and with the largest batch",
        args.prompt
    )?;
    let seqs: Vec<usize> = args
        .concurrency
        .iter()
        .copied()
        .filter(|&c| c > 1)
        .collect();
    let mut head = vec![
        "prefill".to_owned(),
        "decode d0".to_owned(),
        format!("decode d{}", args.prompt),
    ];
    head.extend(seqs.iter().map(|c| format!("x{c} seqs")));
    head.extend(["RSS 1 seq".to_owned(), "RSS batch".to_owned()]);
    writeln!(out)?;
    line(out, "model", "engine", &head)?;
    for row in rows {
        let silk = &row.silk;
        let agg = |a: &[(usize, f64)], n: usize| a.iter().find(|p| p.0 == n).map(|p| p.1);
        // One engine's row: rates, aggregate rates per sequence count, peak memory.
        let figures =
            |rates: [Option<f64>; 3], aggregate: &[(usize, f64)], rss: [Option<u64>; 2]| {
                let mut cells: Vec<String> = rates.iter().map(|&r| cell(r, 1)).collect();
                cells.extend(seqs.iter().map(|&n| cell(agg(aggregate, n), 1)));
                cells.extend(rss.map(mib));
                cells
            };
        let cells = figures(
            [
                Some(silk.prefill),
                Some(silk.decode_empty),
                Some(silk.decode),
            ],
            &silk.aggregate,
            [silk.peak_rss, silk.peak_rss_batched],
        );
        line(out, &row.model, "silk", &cells)?;
        if let Some(l) = &row.llama_cpp {
            let cells = figures(
                [l.prefill, l.decode_empty, l.decode],
                &l.aggregate,
                [l.peak_rss, l.peak_rss_batched],
            );
            line(out, "", "llama.cpp", &cells)?;
            let ratio = |s: f64, l: Option<f64>| cell(l.map(|l| s / l), 2);
            let mut cells = vec![
                ratio(silk.prefill, l.prefill),
                ratio(silk.decode_empty, l.decode_empty),
                ratio(silk.decode, l.decode),
            ];
            cells.extend(seqs.iter().map(|&n| {
                agg(&silk.aggregate, n).map_or("-".to_owned(), |s| ratio(s, agg(&l.aggregate, n)))
            }));
            let rss = |s: Option<u64>, l: Option<u64>| match (s, l) {
                (Some(s), Some(l)) if l > 0 => format!("{:.2}", s as f64 / l as f64),
                _ => "-".to_owned(),
            };
            cells.extend([
                rss(silk.peak_rss, l.peak_rss),
                rss(silk.peak_rss_batched, l.peak_rss_batched),
            ]);
            line(out, "", "silk/llama", &cells)?;
            for why in &l.errors {
                writeln!(out, "{:<34} {:<10} not measured: {why}", "", "llama.cpp")?;
            }
        } else {
            writeln!(
                out,
                "{:<34} {:<10} not measured: {}",
                "",
                "llama.cpp",
                row.llama_cpp_error.as_deref().unwrap_or("no result")
            )?;
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
