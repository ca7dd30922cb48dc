//! `silk`: the client command line.
//!
//! `silk verify` exits 0 when the evidence verified under the policy, 1 when it was
//! rejected, 2 when the inputs could not be used. `silk measure` and `silk image` exit 0
//! on success and 2 when an input is missing or invalid. `silk chat`, `silk proxy` and
//! `silk demo` exit 0 on success, 1 when attestation was refused, 2 on configuration
//! errors and 3 on transport or API errors.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use silk_cli::Style;
use silk_client::chat::{print_verification, run_chat, ChatSettings};
use silk_client::session::Options;
use silk_client::{ClientError, ErrorKind};
use silk_tools::bench::{run_engine_bench, EngineBenchArgs};
use silk_tools::bench_sealed::{run_sealed_bench, SealedBenchArgs, SealedBenchError};
use silk_tools::demo::{run_demo, DemoArgs, DemoError};
use silk_tools::measure::{LaunchOptions, Tee};
use silk_tools::verify::{run_verify, Format, VerifyArgs};

mod args;

use args::{BenchWhat, Cli, CollateralWhat, Command, ImageWhat, ReceiptsWhat};

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
            device,
            max_tokens,
            prompt,
        } => {
            let args = DemoArgs {
                model,
                enclave,
                device,
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
        Command::Proxy {
            listen,
            target,
            serve_on_refusal,
        } => {
            let result = runtime().block_on(async {
                let options = session_options(target.gpu_rims.as_deref())?;
                silk_client::proxy_start::run(listen, &target, options, serve_on_refusal).await
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
                    device,
                    prompt,
                    decode,
                    concurrency,
                    reps,
                    llama_bench,
                    llama_batched_bench,
                    no_llama_cpp,
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
                device,
                prompt,
                decode,
                concurrency,
                reps,
                llama_cpp: !no_llama_cpp,
                llama_bench,
                llama_batched_bench,
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
        Command::Collateral {
            what:
                CollateralWhat::Fetch {
                    evidence,
                    out,
                    kds_url,
                    pcs_url,
                    cache,
                    connect_timeout,
                    timeout,
                    max_retry_wait,
                    attempts,
                    snp_product,
                },
        } => {
            let snp_product = match snp_product
                .as_deref()
                .map(|n| silk_attestation::snp::ProductLine::from_name(n).ok_or(n))
            {
                None => None,
                Some(Ok(line)) => Some(line),
                Some(Err(n)) => {
                    eprintln!("silk collateral fetch: --snp-product {n:?}: expected Milan, Genoa or Turin");
                    return ExitCode::from(2);
                }
            };
            let mut config = silk_enclave::collateral::CollateralConfig {
                kds: kds_url,
                pcs: pcs_url,
                cache,
                snp_product,
                ..Default::default()
            };
            config.policy.limits.connect = Duration::from_secs(connect_timeout);
            config.policy.limits.exchange = Duration::from_secs(timeout);
            config.policy.max_retry_wait = Duration::from_secs(max_retry_wait);
            config.policy.attempts = attempts;
            let args = silk_tools::collateral::FetchArgs {
                evidence,
                out,
                config,
            };
            match silk_tools::collateral::run(&args) {
                Ok(done) => {
                    println!("{done}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("silk collateral fetch: {e}");
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
            max_age,
            ocsp,
            image,
            tee,
            launch,
            event_log,
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
                max_age,
                ocsp,
                event_log,
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
