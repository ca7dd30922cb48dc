//! `silk`: the client command line.
//!
//! `silk verify` exits 0 when the evidence verified under the policy, 1 when it was
//! rejected, 2 when the inputs could not be used. `silk measure` and `silk image` exit 0
//! on success and 2 when an input is missing or invalid. `silk chat`, `silk proxy` and
//! `silk demo` exit 0 on success, 1 when attestation was refused, 2 on configuration
//! errors and 3 on transport or API errors.

use std::path::PathBuf;
use std::process::ExitCode;

use std::sync::Arc;

use clap::{CommandFactory, Parser, Subcommand};
use silk_cli::docs::DocsCommand;
use silk_cli::log::LogArgs;
use silk_cli::Style;
use silk_client::chat::{print_verification, run_chat, ChatSettings};
use silk_client::session::Options;
use silk_client::upstream::TargetArgs;
use silk_client::{ClientError, ErrorKind};
use silk_tools::bench::{run_engine_bench, EngineBenchArgs};
use silk_tools::bench_sealed::{run_sealed_bench, SealedBenchArgs, SealedBenchError};
use silk_tools::demo::{run_demo, DemoArgs, DemoError};
use silk_tools::measure::{LaunchOptions, Tee};
use silk_tools::verify::{run_verify, Format, VerifyArgs};

#[derive(Parser)]
#[command(name = "silk", version, about = "Private inference you can verify", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    log: LogArgs,
}

#[derive(Subcommand)]
enum ReceiptsWhat {
    /// Verify receipts (JSON lines as `silk chat` and `silk-router --receipts` write them)
    /// against the worker's evidence bundle. Exit 0: all verified; 1: a check failed; 2:
    /// the inputs could not be used.
    Verify {
        /// The receipts file.
        file: PathBuf,
        /// The worker's evidence bundle (JSON, as its /v1/attestation serves it).
        #[arg(long)]
        bundle: PathBuf,
        /// Policy the bundle must verify under (TOML): the receipts are only as good as
        /// the attestation of the key that signed them.
        #[arg(long)]
        policy: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Verify attestation evidence (SEV-SNP report, TDX or SGX quote, NVIDIA GPU report,
    /// silk evidence bundle) against a policy. Exit 0: accepted; 1: rejected (evidence
    /// that does not parse included); 2: the inputs could not be used.
    #[command(override_usage = "silk verify [snp|tdx|gpu|bundle] <EVIDENCE> [OPTIONS]")]
    Verify {
        /// Evidence file: an SNP report or a DCAP quote (binary or hex text), an NVIDIA GPU
        /// report (hex, with --certs CHAIN), NRAS-style GPU JSON, or a silk bundle (JSON).
        /// May follow the format's name (`silk verify gpu REPORT`); detected otherwise.
        #[arg(value_name = "[FORMAT] EVIDENCE", num_args = 1..=2, required = true)]
        evidence: Vec<PathBuf>,
        /// SNP: the folder with the AMD certificates: vcek*/vlek* (DER or PEM), and
        /// ask*/asvk*, ark* or cert_chain* (PEM); missing ASK/ARK are taken from the pinned
        /// AMD roots. GPU: the device certificate chain file (PEM, leaf first).
        #[arg(long, value_name = "DIR|FILE")]
        certs: Option<PathBuf>,
        /// The VCEK or VLEK that signed an SNP report (DER or PEM; from a PEM holding
        /// several certificates, the one whose CN is SEV-VCEK/SEV-VLEK). With --certs, the
        /// ASK and ARK come from that folder.
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
        /// NVIDIA RIMs (driver and VBIOS, *.xml / *.swidtag) for GPU evidence; each report
        /// is matched with the RIMs that describe its driver and VBIOS versions.
        #[arg(long, value_name = "DIR")]
        gpu_rims: Option<PathBuf>,
        /// GPU: the nonce (64 hex digits) the report was requested with.
        #[arg(long, value_name = "HEX", conflicts_with = "no_nonce")]
        nonce: Option<String>,
        /// GPU: accept the report whatever its nonce (it may be a replay; warned).
        #[arg(long)]
        no_nonce: bool,
        /// GPU: a saved DER OCSP response for the device chain (repeat for several).
        #[arg(long, value_name = "FILE")]
        ocsp: Vec<PathBuf>,
        /// A guest image directory (manifest.json, OVMF.fd, vmlinuz, initrd.cpio): the
        /// measurement must equal the one computed from it (the policy's allowlist for the
        /// platform is replaced; its other rules apply).
        #[arg(long, value_name = "DIR")]
        image: Option<PathBuf>,
        /// The platform for --image (default: the evidence's).
        #[arg(long, value_enum, requires = "image")]
        tee: Option<Tee>,
        #[command(flatten)]
        launch: LaunchOptions,
    },
    /// Compute the measurement a guest image will have (SEV-SNP launch digest, or TDX MRTD
    /// and RTMR1/RTMR2) from its files, and optionally write a policy allowing exactly it.
    Measure {
        /// The image directory (manifest.json and the files it lists).
        #[arg(long, value_name = "DIR")]
        image: PathBuf,
        /// The platform.
        #[arg(long, value_enum)]
        tee: Tee,
        #[command(flatten)]
        launch: LaunchOptions,
        /// Write a policy (TOML) that allows exactly this measurement.
        #[arg(long, value_name = "FILE")]
        policy_out: Option<PathBuf>,
        /// Print the prediction as one JSON document (keys in docs/cli.md).
        #[arg(long)]
        json: bool,
    },
    /// Build guest image parts.
    Image {
        #[command(subcommand)]
        what: ImageWhat,
    },
    /// Start a local enclave (SIMULATED TEE) with the default model, verify it, and ask it
    /// a question through the sealed path.
    Demo {
        /// The model (GGUF file or safetensors directory).
        #[arg(long, default_value = "models/SmolLM2-135M-Instruct.Q4_1.gguf")]
        model: PathBuf,
        /// The silk-enclave binary (default: beside this one).
        #[arg(long)]
        enclave: Option<PathBuf>,
        /// Most tokens in the answer.
        #[arg(long, default_value_t = 96)]
        max_tokens: usize,
        /// The question.
        #[arg(default_value = "What is the capital of France? Answer in one sentence.")]
        prompt: String,
    },
    /// Verify an enclave, then chat with it through the sealed path (interactive without
    /// a prompt).
    Chat {
        #[command(flatten)]
        target: TargetArgs,
        /// Most tokens per answer.
        #[arg(long, default_value_t = 256)]
        max_tokens: usize,
        /// Sampling temperature.
        #[arg(long, default_value_t = 0.0)]
        temperature: f32,
        /// Seed for repeatable sampling.
        #[arg(long)]
        seed: Option<u64>,
        /// A system message.
        #[arg(long)]
        system: Option<String>,
        /// The prompt; without one, read prompts from stdin.
        prompt: Option<String>,
    },
    /// Serve the OpenAI API on localhost, sealing every request to the verified enclave.
    Proxy {
        /// Where to listen (keep it on loopback: requests arrive here in the clear).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Pay for acknowledged receipts through a TON payment channel (offline: writes the
    /// signed promise as a bag of cells). Exit 2 when the inputs cannot be used.
    Pay {
        #[command(subcommand)]
        what: silk_tools::pay::PayCommand,
    },
    /// Build client policies from elsewhere (the TON image registry). Exit 2 on bad input.
    Policy {
        #[command(subcommand)]
        what: silk_tools::policy_ton::PolicyCommand,
    },
    /// Usage receipts: check them offline against the worker's evidence.
    Receipts {
        #[command(subcommand)]
        what: ReceiptsWhat,
    },
    /// Measure speed and print a table (or JSON with --json); progress on stderr.
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
    #[command(flatten)]
    Docs(DocsCommand),
}

#[derive(Subcommand)]
enum ImageWhat {
    /// Make a model file into a dm-verity disk and print its root hash, geometry and the
    /// kernel command line that binds an image to it.
    ModelDisk {
        /// The model file (GGUF).
        model: PathBuf,
        /// The disk to write.
        #[arg(short, long, value_name = "DISK")]
        out: PathBuf,
        /// The name the enclave serves the model under (default: the file name's stem).
        #[arg(long)]
        name: Option<String>,
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
        /// Print one JSON document (keys in docs/cli.md) instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// The sealed path (client -> silk proxy -> local SIMULATED enclave) beside the engine
    /// called in-process: decode tok/s and time to first token at each concurrency, and
    /// the cost of one attestation.
    Sealed {
        /// The model (GGUF file or safetensors directory).
        #[arg(long, default_value = "models/SmolLM2-135M-Instruct.Q4_1.gguf")]
        model: PathBuf,
        /// Concurrent streams per round.
        #[arg(long, value_delimiter = ',', default_value = "1,8")]
        concurrency: Vec<usize>,
        /// Tokens per answer.
        #[arg(long, default_value_t = 64)]
        max_tokens: usize,
        /// Rounds per concurrency.
        #[arg(long, default_value_t = 5)]
        reps: usize,
        /// Attestations measured.
        #[arg(long, default_value_t = 20)]
        attest_reps: usize,
        /// Kernel threads for the enclave and the direct engine alike (default:
        /// SILK_THREADS, else all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// The silk-enclave binary (default: beside this one).
        #[arg(long)]
        enclave: Option<PathBuf>,
        /// Print one JSON document (keys in docs/cli.md) instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// silk-router on the path: real answers routed beside direct, forwarding with a stub
    /// worker, registration to routable and worker death to unlisted.
    Router(silk_tools::bench_router::RouterBenchArgs),
}

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("silk: cannot start the async runtime: {e}");
            std::process::exit(2);
        }
    }
}

fn session_options(gpu_rims: Option<&std::path::Path>) -> Result<Options, ClientError> {
    let mut options = Options::default();
    if let Some(dir) = gpu_rims {
        options.gpu.rims = silk_protocol::gpu::rims_from_dir(dir)
            .map_err(|e| ClientError::Config(format!("--gpu-rims: {e}")))?;
    }
    Ok(options)
}

fn client_exit(what: &str, e: &ClientError) -> ExitCode {
    eprintln!("silk {what}: {e}");
    if let ClientError::Attestation {
        verdict: Some(v), ..
    } = e
    {
        for c in v.failures() {
            if let silk_protocol::attestation::Outcome::Fail { reason } = &c.outcome {
                eprintln!("  {} {}: {reason}", Style::stderr().mark(false), c.name);
            }
        }
    }
    ExitCode::from(match e.kind() {
        ErrorKind::Attestation => 1,
        ErrorKind::Configuration => 2,
        ErrorKind::Transport | ErrorKind::Api => 3,
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli.log.init("warn");
    match cli.command {
        Command::Docs(d) => match d.run(Cli::command(), &mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("silk: {e}");
                ExitCode::from(2)
            }
        },
        Command::Demo {
            model,
            enclave,
            max_tokens,
            prompt,
        } => {
            let args = DemoArgs {
                model,
                enclave,
                prompt,
                max_tokens,
                style: Style::stdout(),
            };
            match runtime().block_on(run_demo(&args, &mut std::io::stdout())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(DemoError::Client(e)) => client_exit("demo", &e),
                Err(e) => {
                    eprintln!("silk demo: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Chat {
            target,
            max_tokens,
            temperature,
            seed,
            system,
            prompt,
        } => {
            let settings = ChatSettings {
                max_tokens,
                temperature,
                seed,
                system,
            };
            let result = runtime().block_on(async {
                let options = session_options(target.gpu_rims.as_deref())?;
                let (upstream, name) = target.connect(options).await?;
                let mut out = std::io::stdout();
                if let Some(session) = upstream.session() {
                    let _ = print_verification(session, &name, Style::stdout(), &mut out);
                }
                run_chat(&upstream, prompt.as_deref(), &settings, &mut out).await
            });
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => client_exit("chat", &e),
            }
        }
        Command::Proxy { listen, target } => {
            let result = runtime().block_on(async {
                let options = session_options(target.gpu_rims.as_deref())?;
                let (upstream, name) = target.connect(options).await?;
                let mut out = std::io::stdout();
                if let Some(session) = upstream.session() {
                    let _ = print_verification(session, &name, Style::stdout(), &mut out);
                }
                // Bound before it is announced, so that whoever reads the line can connect.
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .map_err(|e| ClientError::Config(format!("listening on {listen}: {e}")))?;
                let bound = listener.local_addr().unwrap_or(listen);
                println!("silk proxy: OpenAI API at http://{bound}/v1 (sealed to {name})");
                silk_client::proxy::serve(listener, Arc::new(upstream)).await;
                Ok(())
            });
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => client_exit("proxy", &e),
            }
        }
        Command::Policy { what } => {
            match silk_tools::policy_ton::run(what, &mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("silk policy: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Pay { what } => match silk_tools::pay::run(what, &mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("silk pay: {e}");
                ExitCode::from(2)
            }
        },
        Command::Receipts {
            what:
                ReceiptsWhat::Verify {
                    file,
                    bundle,
                    policy,
                    json,
                },
        } => {
            let mut out = std::io::stdout();
            match silk_client::receipts_cli::run(&file, &bundle, &policy, json, &mut out) {
                Ok(code) => ExitCode::from(code),
                Err(e) => {
                    eprintln!("silk receipts verify: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Bench {
            what:
                BenchWhat::Sealed {
                    model,
                    concurrency,
                    max_tokens,
                    reps,
                    attest_reps,
                    threads,
                    enclave,
                    json,
                },
        } => {
            if concurrency.is_empty() || concurrency.contains(&0) || reps == 0 || max_tokens == 0 {
                eprintln!(
                    "silk bench sealed: --concurrency, --reps and --max-tokens must be positive"
                );
                return ExitCode::from(2);
            }
            let threads = threads
                .or_else(|| {
                    std::env::var(silk_engine::kernels::THREADS_ENV)
                        .ok()
                        .and_then(|v| v.trim().parse().ok())
                        .filter(|&n: &usize| n > 0)
                })
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let args = SealedBenchArgs {
                model,
                enclave,
                concurrency,
                max_tokens,
                reps,
                attest_reps,
                threads,
                json,
            };
            match run_sealed_bench(&args, &mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(SealedBenchError::Client(e)) => client_exit("bench sealed", &e),
                Err(e) => {
                    eprintln!("silk bench sealed: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Bench {
            what: BenchWhat::Router(args),
        } => match silk_tools::bench_router::run_router_bench(&args, &mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(silk_tools::bench_router::RouterBenchError::Client(e)) => {
                client_exit("bench router", &e)
            }
            Err(e) => {
                eprintln!("silk bench router: {e}");
                ExitCode::from(2)
            }
        },
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
                    json,
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
                json,
            };
            match run_engine_bench(&args, &mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("silk bench engine: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Measure {
            image,
            tee,
            launch,
            policy_out,
            json,
        } => run_measure(&image, tee, &launch, policy_out.as_deref(), json),
        Command::Image {
            what: ImageWhat::ModelDisk { model, out, name },
        } => {
            let mut stdout = std::io::stdout();
            match silk_tools::model_disk::run_model_disk(&model, &out, name.as_deref(), &mut stdout)
            {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("silk image model-disk: {e}");
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
            gpu_rims,
            nonce,
            no_nonce,
            ocsp,
            image,
            tee,
            launch,
        } => {
            let (format, evidence) = match <[PathBuf; 2]>::try_from(evidence) {
                Ok([name, file]) => {
                    let text = name.to_string_lossy();
                    match Format::from_name(&text) {
                        Some(f) => (Some(f), file),
                        None => {
                            eprintln!(
                                "silk verify: {text:?} is not a format (snp, tdx, gpu, bundle); \
                                 give one evidence file, or a format and then the file"
                            );
                            return ExitCode::from(2);
                        }
                    }
                }
                Err(mut one) => (None, one.pop().unwrap_or_default()),
            };
            let args = VerifyArgs {
                gpu_rims,
                evidence,
                format,
                certs,
                vcek,
                collateral,
                policy,
                now,
                json,
                image,
                tee,
                launch,
                nonce,
                no_nonce,
                ocsp,
                style: Style::stdout(),
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

/// `silk measure`: 0 when computed (and the policy written), 2 otherwise.
fn run_measure(
    image: &std::path::Path,
    tee: Tee,
    launch: &LaunchOptions,
    policy_out: Option<&std::path::Path>,
    json: bool,
) -> ExitCode {
    use silk_tools::measure;
    let result = measure::measure(image, tee, launch).and_then(|m| {
        if let Some(path) = policy_out {
            measure::write_policy(&m, path)?;
        }
        let mut out = std::io::stdout();
        if json {
            let _ = measure::json(&m, policy_out, &mut out);
        } else {
            let _ = measure::print(&m, &mut out);
            if let Some(path) = policy_out {
                println!("policy written to {}", path.display());
            }
        }
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("silk measure: {e}");
            ExitCode::from(2)
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
