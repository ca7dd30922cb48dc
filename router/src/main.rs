//! `silk-router`: list attested workers and forward sealed bytes it cannot open.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use silk_cli::docs::DocsCommand;
use silk_cli::log::LogArgs;
use silk_protocol::attestation::Policy;
use silk_router::Config;

/// List attested workers and forward sealed requests to them. The router holds no key
/// that opens anything; clients verify every worker themselves.
#[derive(Parser)]
#[command(name = "silk-router", version, subcommand_negates_reqs = true)]
struct Args {
    /// Shell completions or the manual page instead of serving.
    #[command(subcommand)]
    docs: Option<DocsCommand>,
    #[command(flatten)]
    log: LogArgs,
    /// Address of the plain-HTTP listener (requests and answers are sealed end to end).
    #[arg(long, default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Admission policy (TOML, as `silk verify` takes): registrations whose evidence does
    /// not verify under it are refused. A spam filter only: clients check for themselves.
    #[arg(long, value_name = "FILE", required = true)]
    admission: Option<PathBuf>,
    /// Directory of NVIDIA RIMs (driver and VBIOS, *.xml / *.swidtag) for workers' GPU
    /// evidence.
    #[arg(long, value_name = "DIR")]
    gpu_rims: Option<PathBuf>,
    /// Seconds between a worker's registrations (fractions allowed, at least 1); a worker
    /// that misses two is unlisted, and every half heartbeat listed workers are
    /// health-checked.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    heartbeat: f64,
    /// Requests in flight to one worker through this router; beyond it 429 worker_busy.
    #[arg(long, value_name = "N", default_value_t = 64)]
    worker_concurrency: u64,
    /// Most workers listed; new ones beyond it get 503 registry_full.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    max_workers: usize,
    /// Most registration challenges outstanding; beyond it 503 challenges_full.
    #[arg(long, value_name = "N", default_value_t = 4096)]
    max_challenges: usize,
    /// Seconds to connect to a worker.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    worker_connect_timeout: f64,
    /// Seconds for the RA-TLS handshake with a worker (its evidence checked).
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    worker_tls_timeout: f64,
    /// Seconds from forwarding a sealed request to the answer's first byte (its head and
    /// first chunk: the worker's queue and the prompt's prefill).
    #[arg(long, value_name = "SECS", default_value_t = 300.0)]
    first_byte_timeout: f64,
    /// Seconds between two chunks of an answer; past it the answer is cut.
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    idle_timeout: f64,
    /// Seconds from a connection's start (or a request's first byte) to its full head.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    request_head_timeout: u64,
    /// Seconds a connection may sit idle between requests.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    keep_alive_timeout: u64,
    /// Seconds a request body may take before --body-min-rate applies.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    body_grace: u64,
    /// Slowest accepted request body after the grace period, bytes per second.
    #[arg(long, value_name = "BYTES", default_value_t = 65536)]
    body_min_rate: u64,
    /// Most client connections (default: from the open-files limit, less a reserve); at
    /// the cap a new connection evicts the oldest idle one.
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Most MiB of request bodies held at once; beyond it requests get 503 busy_bodies.
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    body_budget_mib: usize,
    /// Append one JSON line per verified clear receipt ({"worker": id, "receipt": hex})
    /// to this file, flushed per line.
    #[arg(long, value_name = "FILE")]
    receipts: Option<PathBuf>,
    /// Show client addresses in logs (hidden by default; logs never carry content).
    #[arg(long)]
    log_client_addresses: bool,
}

fn seconds(name: &str, v: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(v)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("--{name} must be a positive number of seconds, not {v}"))
}

fn config(args: &Args) -> Result<Config, String> {
    let admission = args.admission.as_deref().ok_or("--admission is required")?;
    let text = std::fs::read_to_string(admission)
        .map_err(|e| format!("--admission {}: {e}", admission.display()))?;
    let policy = Policy::from_toml(&text)
        .map_err(|e| format!("--admission {}: {e}", admission.display()))?;
    let mut c = Config::new(policy);
    if let Some(dir) = &args.gpu_rims {
        c.gpu.rims =
            silk_protocol::gpu::rims_from_dir(dir).map_err(|e| format!("--gpu-rims: {e}"))?;
    }
    let secs = Duration::from_secs;
    c.listen = args.listen;
    c.heartbeat = seconds("heartbeat", args.heartbeat)?;
    if c.heartbeat < Duration::from_secs(1) {
        return Err(format!(
            "--heartbeat must be at least 1 second, not {}",
            args.heartbeat
        ));
    }
    c.worker_concurrency = args.worker_concurrency;
    c.max_workers = args.max_workers;
    c.max_challenges = args.max_challenges;
    c.worker_connect_timeout = seconds("worker-connect-timeout", args.worker_connect_timeout)?;
    c.worker_tls_timeout = seconds("worker-tls-timeout", args.worker_tls_timeout)?;
    c.first_byte_timeout = seconds("first-byte-timeout", args.first_byte_timeout)?;
    c.idle_timeout = seconds("idle-timeout", args.idle_timeout)?;
    c.limits = silk_net::Limits {
        tls_handshake: secs(10),
        request_head: secs(args.request_head_timeout.max(1)),
        keep_alive: secs(args.keep_alive_timeout.max(1)),
        body_grace: secs(args.body_grace),
        body_min_rate: args.body_min_rate.max(1),
        max_connections: args.max_connections,
        body_budget: args.body_budget_mib.max(4) << 20,
    };
    c.receipts = args.receipts.clone();
    Ok(c)
}

/// Fields left out of log lines unless client addresses may be logged: `peer`, a client's
/// address, which the connection layer records.
const CLIENT_ADDRESS_FIELDS: &[&str] = &["peer"];

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(d) = &args.docs {
        return match d.run(Args::command(), &mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("silk-router: {e}");
                ExitCode::from(2)
            }
        };
    }
    let hidden = if args.log_client_addresses {
        &[][..]
    } else {
        CLIENT_ADDRESS_FIELDS
    };
    silk_cli::log::init(args.log.log_format, "info", hidden);
    let config = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("silk-router: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("silk-router: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let running = match silk_router::start(config).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("silk-router: {e}");
                return ExitCode::FAILURE;
            }
        };
        // A machine-readable line on stdout, for whoever started us.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening http://{}", running.addr);
        let _ = out.flush();
        drop(out);
        tokio::select! {
            why = silk_net::tasks::stop_signal() => tracing::info!("{why}; stopping"),
            _ = running.wait() => {}
        }
        ExitCode::SUCCESS
    })
}
