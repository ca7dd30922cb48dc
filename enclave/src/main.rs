//! `silk-enclave`: serve sealed inference from inside a confidential VM.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sha2::Digest as _;
use silk_enclave::collateral::CollateralConfig;
use silk_enclave::evidence::ProviderKind;
use silk_enclave::start::{self, Config, EvidenceChoice};
use silk_engine::EngineConfig;
use zeroize::Zeroizing;

/// Serve sealed, attested inference.
#[derive(Parser)]
#[command(name = "silk-enclave", version)]
struct Args {
    #[command(flatten)]
    log: silk_cli::log::LogArgs,
    /// Address of the RA-TLS (HTTPS) listener; port 0 picks a free port.
    #[arg(long, default_value = "0.0.0.0:8443")]
    listen: SocketAddr,
    /// Also serve plain HTTP here, for a router that terminates its own TLS. Requests stay
    /// sealed end to end; only the RA-TLS binding is lost on this path.
    #[arg(long)]
    plain_listen: Option<SocketAddr>,
    /// The model: a GGUF file or a safetensors model directory.
    #[arg(long)]
    model: PathBuf,
    /// The served model name (default: the file name without extension).
    #[arg(long)]
    model_name: Option<String>,
    /// The model identity carried in the claims, e.g. `verity:<root hash>` when the model
    /// disk is opened through dm-verity (default: `sha256:` of the model files).
    #[arg(long)]
    model_id: Option<String>,
    /// Where the model runs: cpu, cuda or cuda:N (CUDA needs a build with the `cuda`
    /// feature).
    #[arg(long, default_value = "cpu")]
    device: silk_engine::DeviceSpec,
    /// Evidence provider: auto, configfs-tsm, sev-guest, tdx-guest or simulated.
    #[arg(long, default_value = "auto")]
    evidence: String,
    /// Development chain for `--evidence simulated` (PEM from `silk demo` or `silk-host`);
    /// without it a fresh chain is made and its root digest printed.
    #[arg(long)]
    sim_chain: Option<PathBuf>,
    /// The image manifest digest (hex SHA-256) for the claims (default: SHA-256 of this
    /// executable).
    #[arg(long)]
    image_digest: Option<String>,
    /// Most sequences decoded together.
    #[arg(long, default_value_t = 32)]
    max_batch: usize,
    /// KV-cache budget in MiB.
    #[arg(long, default_value_t = 1024)]
    kv_budget_mib: usize,
    /// Default completion length.
    #[arg(long, default_value_t = 512)]
    default_max_tokens: usize,
    /// Attest the NVIDIA GPUs through NVML (report over a nonce derived from this boot's
    /// keys) and refuse sealed requests unless they verify under --gpu-policy.
    #[arg(long, requires = "gpu_policy")]
    gpu: bool,
    /// Policy (TOML with a [gpu] section) the enclave checks its own GPUs against.
    #[arg(long, value_name = "FILE")]
    gpu_policy: Option<PathBuf>,
    /// Directory of NVIDIA RIMs (driver and VBIOS, *.xml / *.swidtag) for that check.
    #[arg(long, value_name = "DIR")]
    gpu_rims: Option<PathBuf>,
    /// Seconds from accept to a finished TLS handshake.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    tls_handshake_timeout: u64,
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
    /// Most connections per listener (default: from the open-files limit, less a reserve);
    /// at the cap a new connection evicts the oldest idle one.
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Most MiB of request bodies held at once; beyond it sealed requests get 503.
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    body_budget_mib: usize,
    /// Register with this router (`http://host:port`) and keep re-registering with fresh
    /// evidence every heartbeat it asks for; repeat for several routers.
    #[arg(long, value_name = "URL")]
    register: Vec<String>,
    /// `host:port` at which routers reach this worker's RA-TLS listener (default: the
    /// listener's address; behind silk-host, the host's relay address).
    #[arg(long, value_name = "HOST:PORT")]
    advertise: Option<String>,
    /// Where the owner is paid (a TON address); bound in the claims, so every receipt
    /// says whom to pay.
    #[arg(long, value_name = "ADDRESS", default_value = "")]
    payout_address: String,
    /// Price of a million prompt tokens, in nanotons.
    #[arg(long, value_name = "NANOTON", default_value_t = 0)]
    price_prompt: u64,
    /// Price of a million completion tokens, in nanotons.
    #[arg(long, value_name = "NANOTON", default_value_t = 0)]
    price_completion: u64,
    /// How long a signed offer holds, in seconds (it is re-signed at half its life).
    #[arg(long, value_name = "SECS", default_value_t = 86400)]
    offer_ttl: u64,
    /// AMD's KDS (or a cache of it): the VCEK is fetched from here when the host's
    /// certificate table has no VEK, and served in every bundle.
    #[arg(long, value_name = "URL", default_value = silk_protocol::attestation::snp::kds::AMD_KDS)]
    kds_url: String,
    /// Intel's PCS or a PCCS: the quote's DCAP collateral is fetched from here, served
    /// in every bundle and fetched again before its nextUpdate.
    #[arg(long, value_name = "URL", default_value = silk_protocol::attestation::tdx::pcs::INTEL_PCS)]
    pcs_url: String,
    /// Keep fetched collateral in this directory across restarts (it is verified by
    /// clients, so it need not be trusted).
    #[arg(long, value_name = "DIR")]
    collateral_cache: Option<PathBuf>,
    /// Fetch no collateral: bundles carry only what the host gave.
    #[arg(long, conflicts_with = "collateral_cache")]
    no_collateral_fetch: bool,
}

fn config(args: Args) -> Result<Config, String> {
    let evidence = match args.evidence.as_str() {
        "auto" => EvidenceChoice::Detect,
        other => EvidenceChoice::Kind(other.parse::<ProviderKind>()?),
    };
    let sim_chain_pem = match &args.sim_chain {
        Some(p) => Some(Zeroizing::new(
            std::fs::read_to_string(p).map_err(|e| format!("--sim-chain {}: {e}", p.display()))?,
        )),
        None => None,
    };
    let image_digest = match &args.image_digest {
        Some(h) => Some(
            hex::decode(h)
                .ok()
                .and_then(|v| <[u8; 32]>::try_from(v).ok())
                .ok_or("--image-digest must be 64 hex digits")?,
        ),
        None => None,
    };
    let gpu = match (&args.gpu, &args.gpu_policy) {
        (true, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--gpu-policy {}: {e}", path.display()))?;
            let policy = silk_protocol::attestation::Policy::from_toml(&text)
                .map_err(|e| format!("--gpu-policy {}: {e}", path.display()))?;
            let rims = match &args.gpu_rims {
                Some(dir) => silk_protocol::gpu::rims_from_dir(dir)
                    .map_err(|e| format!("--gpu-rims: {e}"))?,
                None => Default::default(),
            };
            Some(start::GpuCheck {
                policy_sha256: sha2::Sha256::digest(text.as_bytes()).into(),
                policy,
                inputs: silk_protocol::gpu::GpuInputs {
                    rims,
                    revocation: Default::default(),
                },
            })
        }
        _ => None,
    };
    let secs = std::time::Duration::from_secs;
    let limits = silk_enclave::conn::Limits {
        tls_handshake: secs(args.tls_handshake_timeout.max(1)),
        request_head: secs(args.request_head_timeout.max(1)),
        keep_alive: secs(args.keep_alive_timeout.max(1)),
        body_grace: secs(args.body_grace),
        body_min_rate: args.body_min_rate.max(1),
        max_connections: args.max_connections,
        body_budget: (args.body_budget_mib.max(4)) << 20,
    };
    for r in &args.register {
        if !r.starts_with("http://") {
            return Err(format!(
                "--register {r}: a router URL starts with http:// (requests stay sealed end to end)"
            ));
        }
    }
    if args.payout_address.len() > silk_protocol::claims::MAX_FIELD {
        return Err("--payout-address is longer than 1024 bytes".into());
    }
    let worker = silk_enclave::worker::WorkerConfig {
        payout_address: args.payout_address,
        price_prompt: args.price_prompt,
        price_completion: args.price_completion,
        offer_ttl: Some(secs(args.offer_ttl)),
        register: args.register,
        advertise: args.advertise,
    };
    let collateral = (!args.no_collateral_fetch).then(|| CollateralConfig {
        kds: args.kds_url,
        pcs: args.pcs_url,
        cache: args.collateral_cache,
        ..CollateralConfig::default()
    });
    Ok(Config {
        collateral,
        worker,
        limits,
        gpu,
        listen: args.listen,
        plain_listen: args.plain_listen,
        model: args.model,
        model_name: args.model_name,
        model_id: args.model_id,
        device: args.device,
        evidence,
        sim_chain_pem,
        image_digest,
        engine: EngineConfig {
            max_batch: args.max_batch,
            kv_budget_bytes: args.kv_budget_mib << 20,
            default_max_tokens: args.default_max_tokens,
            ..EngineConfig::default()
        },
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    args.log.init("info");
    let config = match config(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("silk-enclave: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("silk-enclave: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let running = match start::start(config).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("silk-enclave: {e}");
                return ExitCode::FAILURE;
            }
        };
        // Machine-readable lines on stdout, for whoever started us (silk demo, silk-host).
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "evidence {}", running.provider);
        if let Some(root) = running.simulated_root {
            let _ = writeln!(out, "simulated-root {}", hex::encode(root));
        }
        if let Some(plain) = running.plain_addr {
            let _ = writeln!(out, "listening http://{plain}");
        }
        let _ = writeln!(out, "listening https://{}", running.addr);
        let _ = out.flush();
        drop(out);
        tracing::info!(addr = %running.addr, evidence = running.provider, "serving");
        tokio::select! {
            why = silk_net::tasks::stop_signal() => tracing::info!("{why}; stopping"),
            _ = running.wait() => {}
        }
        ExitCode::SUCCESS
    })
}
