//! `silk-router`: an untrusted router that lists attested workers and forwards sealed
//! bytes it cannot open.
//!
//! It holds no key that opens anything, and clients never rely on its checks: they
//! verify every listed worker themselves and seal to the one they choose. Its admission
//! check only keeps junk off the list. Every network-facing part is bounded and timed,
//! and says which bound fired (error codes, metrics):
//!
//! - [`registry`]: challenges, listed workers, load, expiry, least-loaded order (pure);
//! - [`admission`]: the checks of a registration that need only its bytes;
//! - [`pool`]: RA-TLS connections to workers, pooled per worker;
//! - [`forward`]: sealed forwarding, streamed chunk by chunk;
//! - [`server`]: the other endpoints; [`liveness`]: expiry and health checks;
//! - [`metrics`], [`receipts`]: what it counts and the receipt log.
//!
//! [`start`] runs it in-process (the binary and the tests both use it).

pub mod admission;
pub mod error;
pub mod forward;
pub mod liveness;
pub mod metrics;
pub mod pool;
pub mod receipts;
pub mod registry;
pub mod server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use silk_protocol::attestation::Policy;
use silk_protocol::gpu::GpuInputs;
use silk_protocol::ratls::RaTlsVerifier;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::server::{AppState, Timeouts};

/// How to start a router.
#[derive(Clone, Debug)]
pub struct Config {
    /// The plain-HTTP listener (content is sealed end to end).
    pub listen: SocketAddr,
    /// The admission policy registrations' evidence must satisfy.
    pub admission: Policy,
    /// NVIDIA RIMs and revocation data for workers' GPU evidence.
    pub gpu: GpuInputs,
    /// How often workers re-register; two missed heartbeats unlist a worker. At least
    /// one second (workers are told whole seconds, rounded down).
    pub heartbeat: Duration,
    /// Requests in flight to one worker through this router.
    pub worker_concurrency: u64,
    /// Most workers listed.
    pub max_workers: usize,
    /// Most registration challenges outstanding.
    pub max_challenges: usize,
    /// TCP connect to a worker.
    pub worker_connect_timeout: Duration,
    /// TLS handshake with a worker (its evidence checked).
    pub worker_tls_timeout: Duration,
    /// From forwarding a sealed request to the answer's first byte.
    pub first_byte_timeout: Duration,
    /// Between two chunks of an answer.
    pub idle_timeout: Duration,
    /// The listener's deadlines and bounds, and the budget of request bodies.
    pub limits: silk_net::Limits,
    /// Append one JSON line per verified clear receipt here.
    pub receipts: Option<PathBuf>,
}

impl Config {
    /// The defaults of the `silk-router` binary, with this admission policy.
    pub fn new(admission: Policy) -> Self {
        let secs = Duration::from_secs;
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            admission,
            gpu: GpuInputs::default(),
            heartbeat: secs(30),
            worker_concurrency: 64,
            max_workers: 1024,
            max_challenges: 4096,
            worker_connect_timeout: secs(5),
            worker_tls_timeout: secs(10),
            first_byte_timeout: secs(300),
            idle_timeout: secs(60),
            limits: silk_net::Limits::default(),
            receipts: None,
        }
    }
}

/// Why the router did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting is out of range.
    #[error("{0}")]
    Config(String),
    /// The RA-TLS client could not be built.
    #[error("RA-TLS client: {0}")]
    Tls(#[from] silk_protocol::ratls::RaTlsError),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The receipt log could not be opened.
    #[error("receipt log {}: {source}", path.display())]
    Receipts {
        /// Its path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// A started router; dropping it stops its tasks.
pub struct Running {
    /// The address actually bound.
    pub addr: SocketAddr,
    /// The connection cap in force.
    pub cap: usize,
    /// The shared state (registry, metrics), for tests and embedding.
    pub state: Arc<AppState>,
    tasks: silk_net::tasks::Tasks,
}

impl Running {
    /// Waits until the server stops (it only stops on abort).
    pub async fn wait(self) {
        self.tasks.wait().await
    }
}

/// Raises the open-files limit as far as allowed and derives the connection cap from it.
fn connection_cap(limits: &silk_net::Limits) -> usize {
    let nofile = silk_net::conn::usable_open_files();
    // Worker connections need descriptors too: pooled, in flight and health checks.
    limits.connection_cap(nofile).max(8)
}

/// Binds the listener and starts serving, checking liveness in the background.
pub async fn start(config: Config) -> Result<Running, StartError> {
    if config.heartbeat < Duration::from_secs(1) {
        return Err(StartError::Config(format!(
            "the heartbeat must be at least 1 s, not {:?}",
            config.heartbeat
        )));
    }
    if config.worker_concurrency == 0 || config.max_workers == 0 || config.max_challenges == 0 {
        return Err(StartError::Config(
            "worker concurrency, max workers and max challenges must be at least 1".into(),
        ));
    }
    let policy = Arc::new(config.admission.clone());
    let verifier = Arc::new(RaTlsVerifier::new(policy.clone()));
    let connector = pool::Connector::new(
        verifier,
        config.worker_connect_timeout,
        config.worker_tls_timeout,
    )?;
    let mut tasks = silk_net::tasks::Tasks::default();
    let receipts = match &config.receipts {
        Some(path) => {
            let (tx, task) =
                receipts::start(path)
                    .await
                    .map_err(|source| StartError::Receipts {
                        path: path.clone(),
                        source,
                    })?;
            tasks.push(task);
            Some(tx)
        }
        None => None,
    };
    let heartbeat_secs = config.heartbeat.as_secs().max(1);
    let state = Arc::new(AppState {
        registry: registry::Registry::new(registry::Limits {
            max_workers: config.max_workers,
            max_challenges: config.max_challenges,
            worker_concurrency: config.worker_concurrency,
            heartbeat: config.heartbeat,
        }),
        connector,
        policy,
        gpu: Arc::new(config.gpu.clone()),
        metrics: metrics::Metrics::default(),
        limits: Arc::new(config.limits.clone()),
        body_budget: Semaphore::new(config.limits.body_budget.min(Semaphore::MAX_PERMITS)),
        admissions: Semaphore::new(server::ADMISSIONS_AT_ONCE),
        attestations: Semaphore::new(server::ATTESTATIONS_AT_ONCE),
        timeouts: Timeouts {
            first_byte: config.first_byte_timeout,
            idle: config.idle_timeout,
            health: (config.heartbeat / 2).clamp(Duration::from_secs(1), Duration::from_secs(10)),
        },
        heartbeat_secs,
        receipts,
    });
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    silk_net::conn::return_large_buffers();
    let cap = connection_cap(&config.limits);
    tasks.push(tokio::spawn(silk_net::conn::serve(
        listener,
        None,
        server::router(state.clone()),
        state.limits.clone(),
        cap,
        state.metrics.conn.clone(),
    )));
    tasks.push(tokio::spawn(liveness::run(state.clone(), config.heartbeat)));
    tracing::info!(
        %addr,
        cap,
        heartbeat_secs,
        "router serving; at most {cap} connections (idle ones are evicted at the cap)"
    );
    Ok(Running {
        addr,
        cap,
        state,
        tasks,
    })
}
