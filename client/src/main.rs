//! `silk`: the client command line.
//!
//! Exit status: 0 when the evidence verified under the policy, 1 when it was rejected,
//! 2 when the inputs could not be used (missing files, bad policy, unrecognised evidence).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use silk_client::bench::{run_engine_bench, EngineBenchArgs};
use silk_client::verify::{run_verify, VerifyArgs};

#[derive(Parser)]
#[command(name = "silk", version, about = "Private inference you can verify", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Verify attestation evidence (SEV-SNP report, TDX or SGX quote) against a policy.
    Verify {
        /// Evidence file: an SNP report or a DCAP quote, binary or hex text.
        evidence: PathBuf,
        /// Directory with the AMD certificates: vcek*/vlek* (DER or PEM), and ask*/asvk*,
        /// ark* or cert_chain* (PEM). Missing ASK/ARK are taken from the pinned AMD roots.
        #[arg(long, value_name = "DIR", conflicts_with = "vcek")]
        certs: Option<PathBuf>,
        /// The VCEK or VLEK that signed an SNP report (DER or PEM).
        #[arg(long, value_name = "FILE")]
        vcek: Option<PathBuf>,
        /// Intel PCS collateral (JSON) for a quote. Defaults to EVIDENCE_collateral.json
        /// beside the evidence when that exists.
        #[arg(long, value_name = "FILE")]
        collateral: Option<PathBuf>,
        /// Policy (TOML, see docs/policy.md). Without one, everything is rejected.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// Verify as of this time (RFC 3339) instead of now.
        #[arg(long, value_name = "RFC3339")]
        now: Option<String>,
        /// Print the verdict as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Measure speed and print a table.
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
}

#[derive(Subcommand)]
enum BenchWhat {
    /// The inference engine beside llama.cpp: prefill and decode tok/s for one sequence,
    /// and silk's aggregate decode tok/s for several sequences at once.
    Engine {
        /// GGUF files to measure (default: the default model and the variants
        /// scripts/reference/requant.py makes, where present).
        #[arg(long = "model", value_name = "GGUF")]
        models: Vec<PathBuf>,
        /// Compute threads for both engines (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Prompt tokens.
        #[arg(long, default_value_t = 64)]
        prompt: usize,
        /// Decode steps.
        #[arg(long, default_value_t = 32)]
        decode: usize,
        /// Concurrent sequences for the aggregate rate.
        #[arg(long, value_delimiter = ',', default_value = "8,32")]
        concurrency: Vec<usize>,
        /// Repetitions; the best is reported.
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// llama.cpp's side (llama-cpp-python); `none` skips it.
        #[arg(long, default_value = "scripts/reference/llama_cpp_bench.py")]
        llama_cpp: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Bench {
            what:
                BenchWhat::Engine {
                    models,
                    threads,
                    prompt,
                    decode,
                    concurrency,
                    reps,
                    llama_cpp,
                },
        } => {
            let args = EngineBenchArgs {
                models: if models.is_empty() {
                    default_bench_models()
                } else {
                    models
                },
                threads: threads
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
                prompt,
                decode,
                concurrency,
                reps,
                llama_cpp_script: (llama_cpp != "none").then(|| PathBuf::from(llama_cpp)),
            };
            match run_engine_bench(&args, &mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("silk bench engine: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Verify {
            evidence,
            certs,
            vcek,
            collateral,
            policy,
            now,
            json,
        } => {
            let args = VerifyArgs {
                evidence,
                certs,
                vcek,
                collateral,
                policy,
                now,
                json,
            };
            match run_verify(&args, &mut std::io::stdout()) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("silk verify: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// The default model, then any requantised variants `scripts/reference/requant.py` made.
fn default_bench_models() -> Vec<PathBuf> {
    ["Q4_1", "Q8_0", "Q4_0", "Q4_K_M"]
        .iter()
        .map(|q| PathBuf::from(format!("models/SmolLM2-135M-Instruct.{q}.gguf")))
        .enumerate()
        .filter(|(i, p)| *i == 0 || p.is_file())
        .map(|(_, p)| p)
        .collect()
}
