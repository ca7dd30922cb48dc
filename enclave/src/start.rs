//! Starting an enclave: load the model, make the identity, bind the listeners.
//!
//! Used by the `silk-enclave` binary and by tests that run an enclave in-process.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256, Sha384};
use silk_engine::{Engine, EngineConfig};
use silk_protocol::attestation::snp::simulated::SimulatedPlatform;
use silk_protocol::Claims;
use tokio::net::TcpListener;
use zeroize::Zeroizing;

use crate::evidence::{
    self, ConfigFsProvider, EvidenceProvider, ProviderKind, SevGuestProvider, SimulatedProvider,
    TdxGuestProvider,
};
use crate::identity::{Identity, Statement};
use crate::metrics::Metrics;
use crate::server::{self, AppState};

/// Which evidence provider to use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EvidenceChoice {
    /// What the machine offers ([`evidence::detect`]); never the simulator.
    Detect,
    /// This one.
    Kind(ProviderKind),
}

/// How to start.
pub struct Config {
    /// The RA-TLS listener.
    pub listen: SocketAddr,
    /// An optional plain-HTTP listener, for a router that terminates its own TLS.
    pub plain_listen: Option<SocketAddr>,
    /// A GGUF file or a safetensors model directory.
    pub model: PathBuf,
    /// The served name (default: the file or directory name without extension).
    pub model_name: Option<String>,
    /// The model identity for the claims (default: `sha256:` of its files).
    pub model_id: Option<String>,
    /// Where the model runs.
    pub device: silk_engine::DeviceSpec,
    /// The evidence provider.
    pub evidence: EvidenceChoice,
    /// The development chain for the simulator (PEM, as `SimulatedPlatform::to_pem`
    /// writes it); a fresh one is generated when absent.
    pub sim_chain_pem: Option<Zeroizing<String>>,
    /// The image manifest digest (default: SHA-256 of this executable).
    pub image_digest: Option<[u8; 32]>,
    /// Engine limits.
    pub engine: EngineConfig,
    /// Attest the NVIDIA GPUs (NVML) and check them under this policy before serving.
    pub gpu: Option<GpuCheck>,
    /// Deadlines and bounds of the listeners.
    pub limits: crate::conn::Limits,
    /// Offer, payout address and routers to register with.
    pub worker: crate::worker::WorkerConfig,
    /// Where to fetch what verifiers need beside the report (VCEK, TDX collateral) and
    /// where to keep it; `None`: fetch nothing (bundles then carry only what the host
    /// gave, and clients must find the rest).
    pub collateral: Option<crate::collateral::CollateralConfig>,
}

/// The enclave's own GPU requirement: without evidence that verifies under it, the
/// enclave serves evidence (so clients see why) but no sealed request.
#[derive(Clone, Debug)]
pub struct GpuCheck {
    /// A policy with a `[gpu]` section.
    pub policy: silk_protocol::attestation::Policy,
    /// RIMs and revocation data the check uses.
    pub inputs: silk_protocol::gpu::GpuInputs,
    /// SHA-256 of the policy file's bytes, stated in the claims (`gpu_policy_sha256`).
    pub policy_sha256: [u8; 32],
}

/// Why the enclave did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The compute device could not be opened.
    #[error("device {0}")]
    Device(#[from] silk_engine::DeviceError),
    /// The model could not be loaded.
    #[error("model {}: {source}", path.display())]
    Model {
        /// Its path.
        path: PathBuf,
        /// The error.
        source: silk_engine::LoadError,
    },
    /// A file could not be read.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was read.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// No TEE and no explicit provider.
    #[error("no TEE interface found (configfs-tsm, /dev/sev-guest, /dev/tdx_guest); pass --evidence simulated for development")]
    NoTee,
    /// The simulator's chain is unusable.
    #[error("simulated platform: {0}")]
    Simulated(String),
    /// Identity creation failed.
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

/// A started enclave; dropping it stops the listeners.
pub struct Running {
    /// The RA-TLS address actually bound.
    pub addr: SocketAddr,
    /// The plain-HTTP address, when one was asked for.
    pub plain_addr: Option<SocketAddr>,
    /// The base claims.
    pub claims: Claims,
    /// SHA-256 of the simulated root, when simulating.
    pub simulated_root: Option<[u8; 32]>,
    /// The provider in use.
    pub provider: &'static str,
    tasks: silk_net::tasks::Tasks,
}

impl Running {
    /// Waits until the servers stop (they only stop on error or abort).
    pub async fn wait(self) {
        self.tasks.wait().await
    }
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StartError + 'a {
    move |source| StartError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// SHA-384 of this executable: what the simulator reports as the launch measurement, so
/// that a policy can allowlist exactly the enclave build it expects.
pub fn simulated_measurement() -> Result<[u8; 48], StartError> {
    Ok(exe_digests()?.1)
}

/// SHA-256 (the default image digest) and SHA-384 (the simulated measurement) of this
/// executable, from one read of it.
fn exe_digests() -> Result<([u8; 32], [u8; 48]), StartError> {
    let exe = std::env::current_exe().map_err(io("executable", Path::new("/proc/self/exe")))?;
    let (mut h256, mut h384) = (Sha256::new(), Sha384::new());
    read_chunks(&exe, |chunk| {
        h256.update(chunk);
        h384.update(chunk);
    })?;
    Ok((h256.finalize().into(), h384.finalize().into()))
}

fn hash_file(path: &Path, h: &mut impl Digest) -> Result<(), StartError> {
    read_chunks(path, |chunk| h.update(chunk))
}

fn read_chunks(path: &Path, mut each: impl FnMut(&[u8])) -> Result<(), StartError> {
    let mut f = std::fs::File::open(path).map_err(io("open", path))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io("read", path))?;
        if n == 0 {
            return Ok(());
        }
        each(&buf[..n]);
    }
}

/// `sha256:<hex>` of a model file, or of a directory's files (sorted by name, each as
/// name, NUL, its SHA-256), so that any changed byte changes the identity.
pub fn model_identity(path: &Path) -> Result<String, StartError> {
    let mut outer = Sha256::new();
    if path.is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(path)
            .map_err(io("list", path))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_file())
            .map(|e| e.file_name())
            .collect();
        names.sort();
        for name in names {
            let mut inner = Sha256::new();
            hash_file(&path.join(&name), &mut inner)?;
            outer.update(name.to_string_lossy().as_bytes());
            outer.update([0]);
            outer.update(inner.finalize());
        }
    } else {
        hash_file(path, &mut outer)?;
    }
    Ok(format!("sha256:{}", hex::encode(outer.finalize())))
}

fn provider(
    config: &Config,
    exe: &mut Option<([u8; 32], [u8; 48])>,
) -> Result<Arc<dyn EvidenceProvider>, StartError> {
    let kind = match &config.evidence {
        EvidenceChoice::Kind(k) => *k,
        EvidenceChoice::Detect => evidence::detect(Path::new("/")).ok_or(StartError::NoTee)?,
    };
    Ok(match kind {
        ProviderKind::ConfigFs => Arc::new(ConfigFsProvider {
            root: PathBuf::from(evidence::configfs::DEFAULT_ROOT),
            vmpl: None,
        }),
        ProviderKind::SevGuest => Arc::new(SevGuestProvider {
            device: PathBuf::from(evidence::sev_guest::DEVICE),
            vmpl: 0,
            // The extended report brings the VCEK chain the bundle needs.
            extended: true,
        }),
        ProviderKind::TdxGuest => Arc::new(TdxGuestProvider {
            device: PathBuf::from(evidence::tdx_guest::DEVICE),
        }),
        ProviderKind::Simulated => {
            let platform = match &config.sim_chain_pem {
                Some(pem) => SimulatedPlatform::from_pem(pem),
                None => SimulatedPlatform::generate(),
            }
            .map_err(|e| StartError::Simulated(e.to_string()))?;
            let measurement = match exe {
                Some((_, m)) => *m,
                None => exe.insert(exe_digests()?).1,
            };
            Arc::new(SimulatedProvider::new(platform, measurement))
        }
    })
}

/// The TDX event log the kernel exports, when it does; a log that does not parse is not
/// served (verifiers would refuse it at `tdx.event_log`), and the reason is logged.
fn tdx_event_log() -> Option<Vec<u8>> {
    match evidence::ccel::read(Path::new("/")) {
        Ok(Some(log)) => {
            tracing::info!(
                bytes = log.len(),
                "serving the TDX event log (CCEL) with the evidence"
            );
            Some(log)
        }
        Ok(None) => None,
        Err(e) => {
            tracing::error!("not serving the TDX event log: {e}");
            None
        }
    }
}

/// Raises the open-files limit as far as allowed and derives the per-listener connection
/// cap from it, so that all listeners together stay below it.
fn connection_cap(limits: &crate::conn::Limits, plain: bool) -> (usize, usize) {
    let listeners = if plain { 2 } else { 1 };
    let nofile = crate::conn::usable_open_files();
    let cap = limits.connection_cap(nofile) / listeners;
    (cap.max(8), listeners)
}

/// Why the enclave must not serve with these GPUs, if it must not: collection failed, or
/// the evidence does not verify under the enclave's own policy.
pub fn gpu_refusal(
    identity: &Identity,
    check: &GpuCheck,
    collect_error: Option<String>,
) -> Option<String> {
    if let Some(e) = collect_error {
        return Some(format!("GPU evidence could not be collected: {e}"));
    }
    let mut v =
        silk_protocol::attestation::Verdict::new(silk_protocol::attestation::Platform::NvidiaGpu);
    if identity.gpus().is_empty() {
        return Some("a GPU is configured but NVML reported none".into());
    }
    silk_protocol::gpu::check(
        identity.gpus(),
        identity.claims(),
        &check.policy,
        &check.inputs,
        time::OffsetDateTime::now_utc(),
        &mut v,
    );
    if v.accepted() {
        None
    } else {
        let failed: Vec<_> = v.failures().map(|c| c.name).collect();
        Some(format!(
            "the GPU evidence does not verify under the enclave's policy: {}",
            failed.join(", ")
        ))
    }
}

/// Loads the model, creates the identity and starts serving.
pub async fn start(config: Config) -> Result<Running, StartError> {
    // First: a device that cannot open should not wait for the model to be hashed.
    let device = config.device.open()?;
    // This executable's digests, read at most once (simulated measurement, default image
    // digest).
    let mut exe = None;
    let provider = provider(&config, &mut exe)?;
    let simulated_root = provider.simulated_chain().map(|c| c.root_digest());
    let model_path = config.model.clone();
    let model_id = match &config.model_id {
        Some(id) => id.clone(),
        None => model_identity(&model_path)?,
    };
    let model_name = config.model_name.clone().unwrap_or_else(|| {
        model_path
            .file_stem()
            .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned())
    });
    let bundle = silk_engine::open(&model_path, &device).map_err(|source| StartError::Model {
        path: model_path.clone(),
        source,
    })?;
    let image_digest = match config.image_digest {
        Some(d) => d,
        None => match exe {
            Some((d, _)) => d,
            None => exe_digests()?.0,
        },
    };
    let gpu_error = std::sync::Mutex::new(None::<String>);
    let collect = |nonce: &[u8; 32]| {
        let got = crate::evidence::gpu::Nvml::load().and_then(|n| n.collect(nonce));
        Ok(got.unwrap_or_else(|e| {
            if let Ok(mut slot) = gpu_error.lock() {
                *slot = Some(e.to_string());
            }
            Vec::new()
        }))
    };
    // After the model opened, so that a bad model fails the start before any fetch waits
    // on the network (a fetch that cannot reach its service takes its bounded retries).
    let served = Arc::new(crate::collateral::Served::default());
    let refresher = match &config.collateral {
        Some(c) => crate::collateral::prepare(provider.as_ref(), c, &served).await,
        None => None,
    };
    let mut statement = Statement {
        image_digest,
        model: model_id,
        gpu_nonce: Vec::new(),
        software_version: format!("silk-enclave {}", env!("CARGO_PKG_VERSION")),
        payout_address: config.worker.payout_address.clone(),
        evidence_provider: provider.name().to_owned(),
        gpu_policy_sha256: config
            .gpu
            .as_ref()
            .map(|g| g.policy_sha256.to_vec())
            .unwrap_or_default(),
        tdx_event_log: tdx_event_log(),
        collateral: served,
    };
    // What the enclave was started with goes into RTMR3 where the kernel allows it (TDX,
    // Linux 6.16+), and into the claims always.
    match statement.measure_runtime(Path::new("/")) {
        Ok(true) => tracing::info!("extended RTMR3 with the runtime configuration"),
        Ok(false) => {}
        Err(e) => return Err(e.into()),
    }
    let identity = Identity::create(
        provider.clone(),
        statement,
        config
            .gpu
            .as_ref()
            .map(|_| &collect as crate::identity::GpuCollector<'_>),
    )?;
    let refusal = match &config.gpu {
        None => None,
        Some(check) => gpu_refusal(
            &identity,
            check,
            gpu_error.lock().ok().and_then(|e| e.clone()),
        ),
    };
    if let Some(why) = &refusal {
        tracing::error!("not serving sealed requests: {why}");
    }
    let (cert, key) = identity.certificate()?;
    let tls = Arc::new(
        silk_protocol::ratls::server_config(cert, key)
            .map_err(crate::identity::IdentityError::from)?,
    );
    let claims = identity.claims().clone();
    let state = Arc::new(AppState {
        identity,
        engine: Engine::start(bundle, config.engine.clone()),
        offers: crate::worker::Offers::new(&model_name, &config.worker),
        receipts: Default::default(),
        model_name,
        metrics: Metrics::default(),
        fresh_limit: tokio::sync::Semaphore::new(4),
        refusal,
        replay: std::sync::Mutex::new(crate::replay::ReplayGuard::new(1 << 20)),
        body_budget: tokio::sync::Semaphore::new(config.limits.body_budget),
        limits: Arc::new(config.limits.clone()),
    });
    let app = server::router(state.clone());
    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })
    };
    let listener = bind(config.listen).await?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    crate::conn::return_large_buffers();
    let (cap, listeners) = connection_cap(&config.limits, config.plain_listen.is_some());
    let serve = |l: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>| {
        tokio::spawn(crate::conn::serve(
            l,
            tls,
            app.clone(),
            state.limits.clone(),
            cap,
            state.metrics.conn.clone(),
        ))
    };
    let mut tasks = silk_net::tasks::Tasks::default();
    if let Some(task) = refresher {
        tasks.push(task);
    }
    tasks.push(serve(listener, Some(tokio_rustls::TlsAcceptor::from(tls))));
    let mut plain_addr = None;
    if let Some(plain) = config.plain_listen {
        let l = bind(plain).await?;
        plain_addr = l.local_addr().ok();
        tasks.push(serve(l, None));
    }
    let advertise = config.worker.advertise.clone().unwrap_or_else(|| {
        let ip = match addr.ip() {
            ip if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
            ip => ip,
        };
        std::net::SocketAddr::new(ip, addr.port()).to_string()
    });
    for router in &config.worker.register {
        tasks.push(tokio::spawn(crate::worker::keep_registered(
            state.clone(),
            router.clone(),
            advertise.clone(),
        )));
    }
    tracing::info!(
        cap,
        listeners,
        "at most {cap} connections per listener (idle ones are evicted at the cap)"
    );
    Ok(Running {
        addr,
        plain_addr,
        claims,
        simulated_root,
        provider: provider.name(),
        tasks,
    })
}
