//! What the router benchmark runs against: one development chain and the policies that pin
//! it, the `silk-router` child, `silk-enclave` children, and plain HTTP/1 calls to the
//! router.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::{Request, StatusCode};
use silk_protocol::attestation::snp::simulated::SimulatedPlatform;
use silk_protocol::attestation::Policy;
use silk_protocol::network::{self, WorkerList};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::{stub, RouterBenchArgs, RouterBenchError};
use crate::demo::{demo_policy, file_sha384};
use silk_client::network::{Network, NetworkOptions};
use silk_client::session::ClientError;

/// The model name enclave children serve under (clients ask the router for it).
pub const ENCLAVE_MODEL: &str = "bench";
/// Longest wait for a child's `listening` line (a debug enclave loads its model slowly).
const START_TIMEOUT: Duration = Duration::from_secs(300);
/// Largest router answer read.
const MAX_ANSWER: usize = 16 << 20;

fn setup_err(what: impl std::fmt::Display) -> RouterBenchError {
    RouterBenchError::Setup(what.to_string())
}

/// A private scratch directory (chain, policy, logs), removed on drop.
pub struct Scratch(pub PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Binaries, the development chain every child and the stub attest with, and the policies.
pub struct Setup {
    /// The `silk-router` binary.
    pub router_bin: PathBuf,
    /// The `silk-enclave` binary.
    pub enclave_bin: PathBuf,
    /// The model enclave children serve.
    pub model: PathBuf,
    /// The development platform (the stub signs its reports with it in-process).
    pub platform: Arc<SimulatedPlatform>,
    /// The chain as PEM, for `silk-enclave --sim-chain`.
    pub chain_path: PathBuf,
    /// The router's admission policy file: the root, the enclave's and the stub's
    /// measurements.
    pub admission_path: PathBuf,
    /// What clients of the enclave verify under: the root and the enclave's measurement.
    pub enclave_policy: Policy,
    /// What direct clients of the stub verify under: the root and the stub's measurement.
    pub stub_policy: Policy,
    /// Scratch files (removed last).
    pub scratch: Scratch,
}

/// `name` beside this executable, unless given.
fn binary(explicit: Option<&Path>, name: &str, flag: &str) -> Result<PathBuf, RouterBenchError> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(setup_err(format!("{flag} {}: no such file", p.display())))
        };
    }
    let exe = std::env::current_exe().map_err(|e| setup_err(format!("this executable: {e}")))?;
    let beside = exe.with_file_name(name);
    if beside.is_file() {
        Ok(beside)
    } else {
        Err(setup_err(format!(
            "{name} not found beside {} (build it: cargo build --bin {name}, or pass {flag})",
            exe.display()
        )))
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), RouterBenchError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| setup_err(format!("writing {}: {e}", path.display())))
}

impl Setup {
    /// A client of the network through `router`, verifying under the enclave's policy.
    pub fn network(&self, router: &RouterChild) -> Result<Network, ClientError> {
        Network::new(
            self.enclave_policy.clone(),
            NetworkOptions {
                routers: vec![router.url()],
                model: Some(ENCLAVE_MODEL.into()),
                max_price: None,
                spread: 1,
                session: Default::default(),
            },
        )
    }

    /// Finds the binaries, makes the chain and writes the files children read.
    pub fn new(args: &RouterBenchArgs) -> Result<Self, RouterBenchError> {
        if !args.model.is_file() && !args.model.is_dir() {
            return Err(setup_err(format!(
                "model {} not found (scripts/fetch-model.sh fetches the default one)",
                args.model.display()
            )));
        }
        let router_bin = binary(args.router.as_deref(), "silk-router", "--router")?;
        let enclave_bin = binary(args.enclave.as_deref(), "silk-enclave", "--enclave")?;
        let platform = SimulatedPlatform::generate().map_err(setup_err)?;
        let root = platform.chain().root_digest();
        let scratch = Scratch(std::env::temp_dir().join(format!(
            "silk-bench-router-{}-{}",
            std::process::id(),
            hex::encode(&root[..4])
        )));
        std::fs::create_dir_all(&scratch.0)
            .map_err(|e| setup_err(format!("scratch directory: {e}")))?;
        let chain_path = scratch.0.join("dev-chain.pem");
        let pem = platform.to_pem().map_err(setup_err)?;
        write_private(&chain_path, pem.as_bytes())?;
        let enclave_measurement = file_sha384(&enclave_bin).map_err(setup_err)?;
        let stub_measurement = stub::measurement();
        let admission_path = scratch.0.join("admission.toml");
        let admission = format!(
            "# silk bench router: SIMULATED evidence from this run's development root only\n\
             allow_simulated = true\nsimulated_roots = [\"{}\"]\n\n[snp]\n\
             measurements = [\"{}\", \"{}\"]\nmin_tcb = {{}}\n",
            hex::encode(root),
            hex::encode(enclave_measurement),
            hex::encode(stub_measurement)
        );
        Policy::from_toml(&admission).map_err(|e| setup_err(format!("admission policy: {e}")))?;
        write_private(&admission_path, admission.as_bytes())?;
        Ok(Self {
            router_bin,
            enclave_bin,
            model: args.model.clone(),
            platform: Arc::new(platform),
            chain_path,
            admission_path,
            enclave_policy: demo_policy(&root, &enclave_measurement).map_err(setup_err)?,
            stub_policy: demo_policy(&root, &stub_measurement).map_err(setup_err)?,
            scratch,
        })
    }

    fn log(&self, name: &str) -> Result<(PathBuf, std::fs::File), RouterBenchError> {
        let path = self.scratch.0.join(name);
        let file = std::fs::File::create(&path)
            .map_err(|e| setup_err(format!("{}: {e}", path.display())))?;
        Ok((path, file))
    }

    /// Starts the router child on a free local port.
    pub async fn spawn_router(&self, heartbeat: f64) -> Result<RouterChild, RouterBenchError> {
        let (log, file) = self.log("router.log")?;
        let mut cmd = Command::new(&self.router_bin);
        cmd.args([
            "--listen",
            "127.0.0.1:0",
            "--heartbeat",
            &heartbeat.to_string(),
        ])
        .arg("--admission")
        .arg(&self.admission_path);
        let (child, addr, _) = spawn_listening(cmd, file, &log, "silk-router", "http").await?;
        Ok(RouterChild { addr, child, log })
    }

    /// Starts an enclave child (SIMULATED TEE) that registers with `register`.
    pub async fn spawn_enclave(
        &self,
        register: &str,
        n: usize,
    ) -> Result<EnclaveChild, RouterBenchError> {
        let (log, file) = self.log(&format!("enclave-{n}.log"))?;
        let mut cmd = Command::new(&self.enclave_bin);
        cmd.args(["--listen", "127.0.0.1:0", "--evidence", "simulated"])
            .arg("--sim-chain")
            .arg(&self.chain_path)
            .arg("--model")
            .arg(&self.model)
            .args(["--model-name", ENCLAVE_MODEL, "--register", register]);
        let started = Instant::now();
        let (child, addr, listening) =
            spawn_listening(cmd, file, &log, "silk-enclave", "https").await?;
        Ok(EnclaveChild {
            addr,
            started,
            listening,
            child,
            log,
        })
    }
}

/// The last lines of a child's log, for an error message.
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(12)..].join("\n  ");
    if tail.is_empty() {
        format!("(its log {} is empty)", path.display())
    } else {
        format!("its log {} ends:\n  {tail}", path.display())
    }
}

/// Starts `cmd` (stderr to `log_file`) and waits for `listening SCHEME://ADDR` on its
/// stdout; the rest of its stdout is drained.
async fn spawn_listening(
    mut cmd: Command,
    log_file: std::fs::File,
    log: &Path,
    what: &str,
    scheme: &str,
) -> Result<(Child, SocketAddr, Instant), RouterBenchError> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file))
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| setup_err(format!("starting {what}: {e}")))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| setup_err(format!("{what}: no stdout")))?;
    let mut lines = BufReader::new(stdout).lines();
    let prefix = format!("listening {scheme}://");
    let found = tokio::time::timeout(START_TIMEOUT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(a) = line.strip_prefix(&prefix) {
                return a.parse::<SocketAddr>().ok();
            }
        }
        None
    })
    .await;
    let at = Instant::now();
    let addr = match found {
        Ok(Some(addr)) => addr,
        Ok(None) => {
            let status = child
                .wait()
                .await
                .map(|s| s.to_string())
                .unwrap_or_default();
            return Err(setup_err(format!(
                "{what} did not start ({status}); {}",
                log_tail(log)
            )));
        }
        Err(_) => {
            return Err(setup_err(format!(
                "{what} printed no `{prefix}` line within {START_TIMEOUT:?}; {}",
                log_tail(log)
            )))
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, addr, at))
}

/// The `silk-router` child; killed when dropped.
pub struct RouterChild {
    /// Its plain-HTTP listener.
    pub addr: SocketAddr,
    /// Its log (stderr).
    pub log: PathBuf,
    child: Child,
}

impl RouterChild {
    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// An error that the router's own log may explain, when it has exited.
    pub fn check_alive(&mut self) -> Result<(), RouterBenchError> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(setup_err(format!(
                "silk-router exited ({status}); {}",
                log_tail(&self.log)
            ))),
            _ => Ok(()),
        }
    }
}

/// An enclave child; killed (SIGKILL) when dropped.
pub struct EnclaveChild {
    /// Its RA-TLS listener.
    pub addr: SocketAddr,
    /// When it was spawned.
    pub started: Instant,
    /// When it printed its `listening` line (model loaded, keys and evidence made).
    pub listening: Instant,
    /// Its log (stderr).
    pub log: PathBuf,
    child: Child,
}

impl EnclaveChild {
    /// Sends SIGKILL and returns the moment just before it was sent.
    pub fn kill(&mut self) -> Result<Instant, RouterBenchError> {
        let at = Instant::now();
        self.child
            .start_kill()
            .map_err(|e| setup_err(format!("SIGKILL to the enclave: {e}")))?;
        Ok(at)
    }

    /// Reaps the killed child.
    pub async fn reap(mut self) {
        let _ = self.child.wait().await;
    }
}

/// One HTTP/1.1 exchange over a fresh connection.
pub async fn http(
    addr: SocketAddr,
    req: hyper::http::request::Builder,
    body: Bytes,
) -> Result<(StatusCode, Bytes), String> {
    let response = tokio::time::timeout(
        Duration::from_secs(30),
        crate::bench_sealed::proxy_request(addr, req, body),
    )
    .await
    .map_err(|_| format!("{addr}: no answer within 30 s"))?
    .map_err(|e| format!("{addr}: {e}"))?;
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| format!("{addr}: reading the answer: {e}"))?
        .to_bytes();
    Ok((status, body))
}

/// The ids the router lists now (any model).
pub async fn listed_ids(router: SocketAddr) -> Result<HashSet<String>, RouterBenchError> {
    let (status, body) = http(router, Request::get(network::PATH_WORKERS), Bytes::new())
        .await
        .map_err(|e| setup_err(format!("GET /v1/workers: {e}")))?;
    if status != StatusCode::OK {
        return Err(setup_err(format!(
            "GET /v1/workers: HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        )));
    }
    let list: WorkerList =
        serde_json::from_slice(&body).map_err(|e| setup_err(format!("GET /v1/workers: {e}")))?;
    Ok(list.workers.into_iter().map(|w| w.id).collect())
}
