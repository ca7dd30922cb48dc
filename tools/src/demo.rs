//! `silk demo`: the whole sealed path on one machine. It starts a local `silk-enclave` in
//! simulated mode with the default model, pins the development root and the enclave
//! binary's measurement in a policy, verifies the enclave, asks it a prompt through the
//! sealed path and streams the answer.
//!
//! The development chain is made here, not in the enclave, so that the verifier pins a
//! root it chose — as `silk-host` does for a simulated VM.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;
use sha2::{Digest, Sha384};
use silk_protocol::attestation::snp::simulated::SimulatedPlatform;
use silk_protocol::attestation::Policy;
use tokio::io::{AsyncBufReadExt, BufReader};

use silk_client::chat::{ask, print_verification, ChatSettings};
use silk_client::session::{ClientError, Session};

/// What the demo runs.
#[derive(Clone, Debug)]
pub struct DemoArgs {
    /// The model file.
    pub model: PathBuf,
    /// The `silk-enclave` binary (default: beside this executable).
    pub enclave: Option<PathBuf>,
    /// Where the enclave runs the model.
    pub device: silk_engine::DeviceSpec,
    /// The question.
    pub prompt: String,
    /// Most tokens in the answer.
    pub max_tokens: usize,
    /// How the verification table marks checks (the style of the stream written to).
    pub style: silk_client::render::Style,
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Setting up failed.
    #[error("{0}")]
    Setup(String),
    /// The sealed session failed.
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// The policy the demo verifies under: simulated evidence from exactly this development
/// root, with exactly this enclave binary's measurement.
pub fn demo_policy(root: &[u8; 32], measurement: &[u8; 48]) -> Result<Policy, DemoError> {
    Policy::from_toml(&format!(
        "# silk demo: SIMULATED evidence only\nallow_simulated = true\nsimulated_roots = [\"{}\"]\n\n[snp]\nmeasurements = [\"{}\"]\nmin_tcb = {{}}\n",
        hex::encode(root),
        hex::encode(measurement)
    ))
    .map_err(|e| DemoError::Setup(format!("demo policy: {e}")))
}

/// SHA-384 of a file: the simulated launch measurement of an enclave binary.
pub fn file_sha384(path: &Path) -> Result<[u8; 48], DemoError> {
    let bytes = std::fs::read(path)
        .map_err(|e| DemoError::Setup(format!("reading {}: {e}", path.display())))?;
    Ok(Sha384::digest(bytes).into())
}

fn enclave_binary(explicit: Option<&Path>) -> Result<PathBuf, DemoError> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let exe = std::env::current_exe()
        .map_err(|e| DemoError::Setup(format!("locating this executable: {e}")))?;
    let beside = exe.with_file_name("silk-enclave");
    if beside.is_file() {
        Ok(beside)
    } else {
        Err(DemoError::Setup(format!(
            "silk-enclave not found beside {} (build it: cargo build --bin silk-enclave, or pass --enclave)",
            exe.display()
        )))
    }
}

/// A private scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A local `silk-enclave` child process in simulated mode, with the policy that accepts
/// exactly it. The process is killed when this is dropped.
pub struct LocalEnclave {
    /// `https://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The policy pinning its development root and binary measurement.
    pub policy: Policy,
    /// Its log file (stderr).
    pub log_path: PathBuf,
    child: tokio::process::Child,
    _scratch: Scratch,
}

impl LocalEnclave {
    /// Starts `enclave` (default: beside this executable) serving `model`; `extra` args are
    /// passed through (e.g. `--max-batch`).
    pub async fn spawn(
        model: &Path,
        enclave: Option<&Path>,
        extra: &[&str],
    ) -> Result<Self, DemoError> {
        let setup = |what: &str| {
            let what = what.to_owned();
            move |e: std::io::Error| DemoError::Setup(format!("{what}: {e}"))
        };
        if !model.exists() {
            return Err(DemoError::Setup(format!(
                "model {} not found (scripts/fetch-model.sh fetches the default one)",
                model.display()
            )));
        }
        let enclave = enclave_binary(enclave)?;
        let measurement = file_sha384(&enclave)?;
        let platform =
            SimulatedPlatform::generate().map_err(|e| DemoError::Setup(e.to_string()))?;
        let root = platform.chain().root_digest();
        let scratch = Scratch(std::env::temp_dir().join(format!(
            "silk-local-{}-{}",
            std::process::id(),
            hex::encode(&root[..4])
        )));
        std::fs::create_dir_all(&scratch.0).map_err(setup("scratch directory"))?;
        let chain_path = scratch.0.join("dev-chain.pem");
        let pem = platform
            .to_pem()
            .map_err(|e| DemoError::Setup(e.to_string()))?;
        write_private(&chain_path, pem.as_bytes())
            .map_err(setup("writing the development chain"))?;
        let log_path = std::env::temp_dir().join(format!(
            "silk-enclave-{}-{}.log",
            std::process::id(),
            hex::encode(&root[..4])
        ));
        let log = std::fs::File::create(&log_path).map_err(setup("enclave log"))?;
        let mut child = tokio::process::Command::new(&enclave)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--evidence",
                "simulated",
                "--sim-chain",
            ])
            .arg(&chain_path)
            .arg("--model")
            .arg(model)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .map_err(setup(&format!("starting {}", enclave.display())))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| DemoError::Setup("no enclave stdout".into()))?;
        let mut lines = BufReader::new(stdout).lines();
        let endpoint = tokio::time::timeout(Duration::from_secs(300), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.strip_prefix("listening https://") {
                    return Some(format!("https://{url}"));
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .ok_or_else(|| {
            DemoError::Setup(format!(
                "the enclave did not start; its log is {}",
                log_path.display()
            ))
        })?;
        Ok(Self {
            endpoint,
            policy: demo_policy(&root, &measurement)?,
            log_path,
            child,
            _scratch: scratch,
        })
    }

    /// Stops the enclave.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// Runs the demo, writing everything a user should see to `out`.
pub async fn run_demo(args: &DemoArgs, out: &mut dyn Write) -> Result<(), DemoError> {
    let _ = writeln!(
        out,
        "Starting a local silk-enclave (SIMULATED TEE) with {}",
        args.model.display()
    );
    let started = Instant::now();
    let device = args.device.to_string();
    let local =
        LocalEnclave::spawn(&args.model, args.enclave.as_deref(), &["--device", &device]).await?;
    let endpoint = local.endpoint.clone();
    let _ = writeln!(
        out,
        "Enclave up at {endpoint} after {:.1} s (log: {})\n",
        started.elapsed().as_secs_f64(),
        local.log_path.display()
    );
    let t = Instant::now();
    let session = Session::connect(&endpoint, local.policy.clone()).await?;
    let verify_ms = t.elapsed().as_secs_f64() * 1e3;
    let _ = print_verification(&session, &endpoint, args.style, out);
    let _ = writeln!(
        out,
        "Attested over RA-TLS with a fresh nonce in {verify_ms:.1} ms."
    );
    let _ = writeln!(out, "\n> {}\n", args.prompt);
    let settings = ChatSettings {
        max_tokens: args.max_tokens,
        ..ChatSettings::default()
    };
    let t = Instant::now();
    let upstream = silk_client::upstream::Upstream::new(silk_client::upstream::Target::Direct(
        std::sync::Arc::new(session),
    ));
    let answer = ask(
        &upstream,
        &[json!({"role": "user", "content": args.prompt})],
        &settings,
        out,
    )
    .await?;
    let secs = t.elapsed().as_secs_f64();
    let _ = writeln!(
        out,
        "\n\n[sealed answer: {} tokens in {secs:.2} s, finish reason {}]",
        answer.completion_tokens.unwrap_or(0),
        answer.finish_reason.as_deref().unwrap_or("?")
    );
    if let Some(r) = &answer.receipt {
        let _ = writeln!(
            out,
            "[usage receipt #{} signed inside the enclave and verified: {} prompt + {} completion tokens]",
            r.counter, r.prompt_tokens, r.completion_tokens
        );
    }
    local.stop().await;
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}
