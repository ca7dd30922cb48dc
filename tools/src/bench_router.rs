//! `silk bench router`: what `silk-router` costs on the path, and how fast it lists and
//! unlists workers.
//!
//! One run starts one `silk-router` child (binary beside `silk`, or `--router`) with an
//! admission policy pinning this run's development root, and measures:
//!
//! 1. **Real answers** from one `silk-enclave` child (SIMULATED TEE, registered with the
//!    router), two ways: [`Network::send`](silk_client::network::Network::send) through the
//!    router and [`Session::send`](silk_client::session::Session::send) straight to the worker,
//!    with `silk bench sealed`'s prompts, greedy, streamed, at each concurrency. The paths
//!    alternate within every repetition (routed first in even ones), so machine noise falls
//!    on both.
//! 2. **Forwarding** with a stub worker in this process ([`stub`]) that registers like an
//!    enclave and answers at once with `K` frames of `B` bytes and a signed receipt: many
//!    keep-alive HTTP clients through the router, against the same load straight to the
//!    stub over RA-TLS; requests/s, answer MB/s and latency.
//! 3. **Registration to routable** ([`lifecycle`]): enclave children register through a
//!    timestamping relay; from spawn and from the first registration call to listed and
//!    to a sealed answer through the router, and the router's own share.
//! 4. **Worker death to unlisted**: SIGKILL, then the list polled every 10 ms.
//!
//! The enclave of section 1 is the first of section 3 and 4's; `--reps` enclaves are
//! started and killed in all. `docs/bench.md` says what each row means.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::Request;

use silk_client::session::{ClientError, Session};

mod answers;
mod json;
pub mod lifecycle;
pub mod load;
pub mod setup;
pub mod stub;
pub mod table;

use answers::{Clients, Path};
use setup::{http, RouterChild, Setup};
use table::{AnswerFigures, AnswerRow, LoadFigures, LoadRow, StubFigures, Table};

/// Bytes of each stub request body (about a sealed chat request's size).
pub const STUB_REQUEST_BYTES: usize = 4096;

/// What to measure (`silk bench router`'s arguments).
#[derive(Clone, Debug, clap::Args)]
pub struct RouterBenchArgs {
    /// The model the enclave children serve (GGUF file or safetensors directory).
    #[arg(long, default_value = "models/SmolLM2-135M-Instruct.Q4_1.gguf")]
    pub model: PathBuf,
    /// Concurrent sessions per round of real answers.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    pub concurrency: Vec<usize>,
    /// Tokens per real answer.
    #[arg(long, default_value_t = 64)]
    pub max_tokens: usize,
    /// Repetitions: rounds of real answers per path and concurrency, rounds of stub load
    /// per path, and enclaves started and killed.
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// The router's heartbeat in seconds (at least 1).
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    pub heartbeat: f64,
    /// Stub requests per path with --stub-clients clients (split over the repetitions);
    /// a tenth of it with one client.
    #[arg(long, value_name = "N", default_value_t = 20000)]
    pub stub_requests: usize,
    /// Bytes of each stub answer frame (after its 5-byte header).
    #[arg(long, value_name = "B", default_value_t = 256)]
    pub stub_chunk_bytes: usize,
    /// Frames in each stub answer, before its receipt.
    #[arg(long, value_name = "K", default_value_t = 64)]
    pub stub_chunks: usize,
    /// Concurrent stub clients, each on one keep-alive connection (the router's default
    /// limit per worker is 64 requests in flight).
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub stub_clients: usize,
    /// The silk-router binary (default: beside this one).
    #[arg(long, value_name = "PATH")]
    pub router: Option<PathBuf>,
    /// The silk-enclave binary (default: beside this one).
    #[arg(long, value_name = "PATH")]
    pub enclave: Option<PathBuf>,
    /// Print one JSON document (keys in docs/cli.md) instead of the settings and table.
    #[arg(long)]
    pub json: bool,
}

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum RouterBenchError {
    /// An argument is out of range.
    #[error("{0}")]
    Usage(String),
    /// A child, the stub or the router failed.
    #[error("{0}")]
    Setup(String),
    /// A client of the network or of the worker failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A real answer failed or was not what was asked for.
    #[error("{path} stream: {detail}")]
    Stream {
        /// `routed` or `direct`.
        path: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// Writing the table failed.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

impl RouterBenchArgs {
    fn check(&self) -> Result<(), RouterBenchError> {
        let usage = |m: &str| Err(RouterBenchError::Usage(m.into()));
        if self.concurrency.is_empty() || self.concurrency.contains(&0) {
            return usage("--concurrency must be positive numbers");
        }
        if self.reps == 0 || self.max_tokens == 0 {
            return usage("--reps and --max-tokens must be positive");
        }
        if !(self.heartbeat.is_finite() && self.heartbeat >= 1.0) {
            return usage("--heartbeat must be at least 1 second");
        }
        if self.stub_requests < self.reps || self.stub_clients == 0 || self.stub_chunks == 0 {
            return usage(
                "--stub-requests must be at least --reps, --stub-clients and --stub-chunks positive",
            );
        }
        if !(16..=silk_protocol::seal::MAX_CHUNK + 16).contains(&self.stub_chunk_bytes) {
            return usage("--stub-chunk-bytes must be between 16 (an AES-GCM tag) and 1 MiB + 16");
        }
        Ok(())
    }
}

/// The CPU model and whether it has AVX-512F and AVX2, from /proc/cpuinfo.
pub fn machine() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
    };
    let model = field("model name").unwrap_or_else(|| "unknown CPU".into());
    let flags = field("flags").unwrap_or_default();
    let has = |f: &str| {
        if flags.split_whitespace().any(|x| x == f) {
            "yes"
        } else {
            "no"
        }
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!(
        "{model}, {cores} cores available, avx512f {}, avx2 {}",
        has("avx512f"),
        has("avx2")
    )
}

/// `release` or `debug`: how this executable was built.
pub fn profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

/// Runs the benchmark and prints its settings and table to `out` (progress to stderr).
pub fn run_router_bench(
    args: &RouterBenchArgs,
    out: &mut dyn Write,
) -> Result<(), RouterBenchError> {
    args.check()?;
    let setup = Setup::new(args)?;
    if !args.json {
        settings(args, &setup, out)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| RouterBenchError::Setup(format!("async runtime: {e}")))?;
    let table = runtime.block_on(run(args, &setup))?;
    if args.json {
        silk_cli::json(out, &json::document(args, &table))?;
    } else {
        table::print(&table, out)?;
    }
    Ok(())
}

/// The lines before the table: what runs, where, and how much.
fn settings(args: &RouterBenchArgs, setup: &Setup, out: &mut dyn Write) -> std::io::Result<()> {
    let concurrency: Vec<String> = args.concurrency.iter().map(|c| c.to_string()).collect();
    writeln!(
        out,
        "silk bench router: {}, {} tokens per answer, greedy, concurrency {}, {} repetitions, \
         heartbeat {} s",
        args.model.display(),
        args.max_tokens,
        concurrency.join(","),
        args.reps,
        args.heartbeat
    )?;
    writeln!(out, "machine: {}; build: {}", machine(), profile())?;
    writeln!(
        out,
        "router: {} (child, plain HTTP on 127.0.0.1); enclave: {} (child, SIMULATED TEE, \
         RA-TLS, registered with --register)",
        setup.router_bin.display(),
        setup.enclave_bin.display()
    )?;
    writeln!(
        out,
        "stub: {} requests per path with {} clients and {} with one, each in {} alternating \
         rounds, {} B requests, {} frames x {} B per answer",
        args.stub_requests,
        args.stub_clients,
        (args.stub_requests / 10).max(args.reps),
        args.reps,
        STUB_REQUEST_BYTES,
        args.stub_chunks,
        args.stub_chunk_bytes
    )?;
    out.flush()
}

async fn run(args: &RouterBenchArgs, setup: &Setup) -> Result<Table, RouterBenchError> {
    let mut router = setup.spawn_router(args.heartbeat).await?;
    let heartbeat = Duration::from_secs_f64(args.heartbeat);
    let relay = lifecycle::Relay::start(router.addr).await?;
    let mut table = Table {
        heartbeat,
        ..Table::default()
    };

    let progress = silk_cli::progress::steps(args.reps as u64 + 1, "silk bench router");
    silk_cli::progress::say(
        &progress,
        format!("enclave 1/{}: starting and registering", args.reps),
    );
    let (enclave, id, reg) = lifecycle::start_registered(setup, &mut router, &relay, 1).await?;
    table.registrations.push(reg);
    table.answers = real_answers(args, setup, &router, enclave.addr, &progress).await?;
    silk_cli::progress::say(&progress, format!("enclave 1/{}: SIGKILL", args.reps));
    let died = lifecycle::kill_and_unlist(router.addr, enclave, &id, heartbeat).await?;
    table.deaths.push(died);
    progress.inc(1);

    silk_cli::progress::say(&progress, "stub worker: forwarding load");
    table.stub = stub_load(args, setup, &mut router, &progress).await?;
    progress.inc(1);

    for n in 2..=args.reps {
        silk_cli::progress::say(
            &progress,
            format!(
                "enclave {n}/{}: start, register, answer, SIGKILL",
                args.reps
            ),
        );
        let (enclave, id, reg) = lifecycle::start_registered(setup, &mut router, &relay, n).await?;
        table.registrations.push(reg);
        let died = lifecycle::kill_and_unlist(router.addr, enclave, &id, heartbeat).await?;
        table.deaths.push(died);
        progress.inc(1);
    }
    progress.finish_and_clear();
    router.check_alive()?;
    Ok(table)
}

/// Section 1: real answers through the router and straight to the worker.
async fn real_answers(
    args: &RouterBenchArgs,
    setup: &Setup,
    router: &RouterChild,
    worker: std::net::SocketAddr,
    progress: &silk_cli::progress::ProgressBar,
) -> Result<Vec<AnswerRow>, RouterBenchError> {
    let network = setup.network(router)?;
    let session =
        Session::connect(&format!("https://{worker}"), setup.enclave_policy.clone()).await?;
    let clients = Arc::new(Clients {
        network: Arc::new(network),
        session: Arc::new(session),
        bodies: Clients::bodies(args.max_tokens),
    });
    // Warm both paths at the highest concurrency: the router's pool, the client's listing
    // and fresh-evidence caches, the enclave's allocator.
    let most = args.concurrency.iter().copied().max().unwrap_or(1);
    silk_cli::progress::say(
        progress,
        format!("real answers: warming up both paths at {most} sessions"),
    );
    clients.round(Path::Routed, most).await?;
    clients.round(Path::Direct, most).await?;
    let mut rounds = vec![(Vec::new(), Vec::new()); args.concurrency.len()];
    for rep in 0..args.reps {
        silk_cli::progress::say(
            progress,
            format!("real answers: repetition {}/{}", rep + 1, args.reps),
        );
        for (k, &n) in args.concurrency.iter().enumerate() {
            let order = if rep % 2 == 0 {
                [Path::Routed, Path::Direct]
            } else {
                [Path::Direct, Path::Routed]
            };
            for path in order {
                let samples = clients.round(path, n).await?;
                match path {
                    Path::Routed => rounds[k].0.push(samples),
                    Path::Direct => rounds[k].1.push(samples),
                }
            }
        }
    }
    Ok(args
        .concurrency
        .iter()
        .zip(&rounds)
        .map(|(&sessions, (routed, direct))| AnswerRow {
            sessions,
            direct: AnswerFigures::from_rounds(direct),
            routed: AnswerFigures::from_rounds(routed),
        })
        .collect())
}

/// The router's count of clear receipts it verified, from its metrics.
async fn receipts_seen(router: std::net::SocketAddr) -> Option<u64> {
    let (_, body) = http(router, Request::get("/metrics"), Bytes::new())
        .await
        .ok()?;
    String::from_utf8_lossy(&body).lines().find_map(|l| {
        l.strip_prefix("silk_router_receipts_seen_total ")
            .and_then(|v| v.trim().parse().ok())
    })
}

/// Section 2: the stub worker, through the router and straight.
async fn stub_load(
    args: &RouterBenchArgs,
    setup: &Setup,
    router: &mut RouterChild,
    progress: &silk_cli::progress::ProgressBar,
) -> Result<StubFigures, RouterBenchError> {
    let fail = |what: &str| {
        let what = what.to_owned();
        move |e: String| RouterBenchError::Setup(format!("{what}: {e}"))
    };
    let identity = stub::Identity::new(setup.platform.clone()).map_err(fail("stub worker"))?;
    let shape = stub::Shape {
        chunks: args.stub_chunks,
        chunk_bytes: args.stub_chunk_bytes,
    };
    let receipt_len = identity.receipt(b"", 0, 0).len();
    let answer_bytes = shape.answer_len(receipt_len);
    let mut worker = stub::StubWorker::start(identity, shape)
        .await
        .map_err(fail("stub worker"))?;
    if let Err(e) = worker.register(router.addr).await {
        router.check_alive()?;
        return Err(RouterBenchError::Setup(format!("stub worker: {e}")));
    }
    let routed = load::Target::Routed {
        router: router.addr,
        worker: worker.id.clone(),
    };
    let direct =
        load::Target::direct(worker.addr, setup.stub_policy.clone()).map_err(fail("stub"))?;
    let body = Bytes::from(vec![0x33u8; STUB_REQUEST_BYTES]);
    let run = |target: load::Target, clients: usize, requests: usize| {
        let body = body.clone();
        async move { load::round(&target, clients, requests, body, answer_bytes).await }
    };
    silk_cli::progress::say(progress, "stub worker: warming up both paths");
    let warm = (args.stub_clients * 4).min(args.stub_requests);
    run(routed.clone(), args.stub_clients, warm)
        .await
        .map_err(fail("routed"))?;
    run(direct.clone(), args.stub_clients, warm)
        .await
        .map_err(fail("direct"))?;
    let before = receipts_seen(router.addr).await;
    // One client alone (what the router adds to a request), then the load.
    let mut levels = vec![(1, (args.stub_requests / 10).max(args.reps))];
    if args.stub_clients > 1 {
        levels.push((args.stub_clients, args.stub_requests));
    }
    let mut rows = Vec::new();
    // Connections the stub accepted during routed rounds: the router's (new RA-TLS
    // connections to the worker, health checks included).
    let mut router_connections = 0;
    let mut routed_requests = 0;
    for (clients, requests) in levels {
        let per_round = requests / args.reps;
        let (mut r, mut d) = (Vec::new(), Vec::new());
        for rep in 0..args.reps {
            silk_cli::progress::say(
                progress,
                format!(
                    "stub worker: {clients} client(s), round {}/{}",
                    rep + 1,
                    args.reps
                ),
            );
            for routed_now in [rep % 2 == 0, rep % 2 != 0] {
                if routed_now {
                    let c = worker.connections();
                    let round = run(routed.clone(), clients, per_round).await;
                    r.push(round.map_err(fail("routed"))?);
                    router_connections += worker.connections() - c;
                } else {
                    let round = run(direct.clone(), clients, per_round).await;
                    d.push(round.map_err(fail("direct"))?);
                }
            }
        }
        let row = LoadRow {
            clients,
            direct: LoadFigures::from_rounds(&d),
            routed: LoadFigures::from_rounds(&r),
        };
        routed_requests += row.routed.requests;
        rows.push(row);
    }
    let after = receipts_seen(router.addr).await;
    tracing::debug!(served = worker.served(), "stub worker done");
    Ok(StubFigures {
        request_bytes: STUB_REQUEST_BYTES,
        chunks: args.stub_chunks,
        chunk_bytes: args.stub_chunk_bytes,
        answer_bytes,
        rows,
        receipts_counted: before
            .zip(after)
            .map(|(b, a)| (a.saturating_sub(b), routed_requests)),
        router_connections,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: RouterBenchArgs,
    }

    fn parse(extra: &[&str]) -> RouterBenchArgs {
        let argv = std::iter::once("bench").chain(extra.iter().copied());
        Cli::try_parse_from(argv).unwrap().args
    }

    #[test]
    fn defaults_are_the_documented_ones_and_bad_values_are_refused() {
        let a = parse(&[]);
        assert_eq!(a.concurrency, [1, 8]);
        assert_eq!((a.max_tokens, a.reps, a.heartbeat), (64, 3, 1.0));
        assert_eq!((a.stub_chunks, a.stub_chunk_bytes), (64, 256));
        assert!(a.check().is_ok());
        for bad in [
            ["--reps", "0"],
            ["--heartbeat", "0.5"],
            ["--concurrency", "1,0"],
            ["--stub-chunk-bytes", "8"],
            ["--stub-clients", "0"],
        ] {
            let e = parse(&bad).check();
            assert!(matches!(e, Err(RouterBenchError::Usage(_))), "{bad:?}");
        }
    }

    #[test]
    fn the_machine_line_names_the_vector_extensions() {
        let m = machine();
        assert!(m.contains("avx512f ") && m.contains("avx2 "), "{m}");
    }
}
