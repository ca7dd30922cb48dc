//! The built binaries as child processes: where they are, starting one and waiting for
//! the address it announces, running `silk` with its own configuration directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A binary of this workspace's debug build.
pub fn bin(name: &str) -> PathBuf {
    let p = silk_tests::vm::target_dir().join("debug").join(name);
    assert!(
        p.is_file(),
        "{} is missing: cargo build --bins",
        p.display()
    );
    p
}

/// Starts a process and waits for its `listening http(s)://ADDR` line on stdout.
pub async fn spawn(mut cmd: Command, scheme: &str) -> (Child, SocketAddr) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let prefix = format!("listening {scheme}://");
    let addr = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(a) = line.strip_prefix(&prefix) {
                return a.parse::<SocketAddr>().unwrap();
            }
        }
        panic!("the process ended before listening");
    })
    .await
    .expect("listening within 120 s");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

/// Runs the built `silk` with `home` as its configuration directory.
pub async fn silk(args: &[&str], home: &Path) -> std::process::Output {
    Command::new(bin("silk"))
        .args(args)
        .env("XDG_CONFIG_HOME", home)
        .output()
        .await
        .unwrap()
}

/// `silk chat --router URL --model smollm2` under `policy`, keeping its receipts in
/// `receipts` and answering in at most `max_tokens` tokens.
pub async fn router_chat(
    url: &str,
    policy: &Path,
    receipts: &Path,
    max_tokens: u32,
    prompt: &str,
    home: &Path,
) -> std::process::Output {
    silk(
        &[
            "chat",
            "--router",
            url,
            "--model",
            "smollm2",
            "--policy",
            policy.to_str().unwrap(),
            "--receipts",
            receipts.to_str().unwrap(),
            "--max-tokens",
            &max_tokens.to_string(),
            prompt,
        ],
        home,
    )
    .await
}

/// Writes the simulated TEE's development chain (`chain.pem`) and a policy pinning the
/// built `silk-enclave` (`policy.toml`) into `d`; returns the policy file, the chain's root
/// digest and the enclave's measurement.
pub fn sim_policy(d: &Path) -> (PathBuf, [u8; 32], [u8; 48]) {
    let (pem, root) = super::dev_chain();
    std::fs::write(d.join("chain.pem"), pem.as_bytes()).unwrap();
    let measurement = silk_tools::demo::file_sha384(&bin("silk-enclave")).unwrap();
    let file = d.join("policy.toml");
    std::fs::write(
        &file,
        format!(
            "allow_simulated = true\nsimulated_roots = [\"{}\"]\n[snp]\nmeasurements = [\"{}\"]\nmin_tcb = {{}}\n",
            hex::encode(root),
            hex::encode(measurement)
        ),
    )
    .unwrap();
    (file, root, measurement)
}

/// The built `silk-enclave` on the default model with simulated evidence (the chain
/// [`sim_policy`] wrote into `d`), listening on a free loopback port.
pub fn sim_enclave(d: &Path) -> Command {
    let mut c = Command::new(bin("silk-enclave"));
    c.arg("--model")
        .arg(super::default_model())
        .args(["--model-name", "smollm2", "--evidence", "simulated"])
        .arg("--sim-chain")
        .arg(d.join("chain.pem"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--image-digest",
            &"07".repeat(32),
        ]);
    c
}

/// [`sim_enclave`] registering with `router` and paid at `payout` at these prices
/// (nanotons per million prompt and completion tokens).
pub fn worker(d: &Path, router: SocketAddr, payout: &str, prices: (u64, u64)) -> Command {
    let mut c = sim_enclave(d);
    c.args(["--register", &format!("http://{router}")])
        .args(["--payout-address", payout])
        .args(["--price-prompt", &prices.0.to_string()])
        .args(["--price-completion", &prices.1.to_string()]);
    c
}

/// Starts `silk proxy` and waits for the OpenAI address it announces; its later output is
/// drained so that it never blocks on a full pipe.
pub async fn spawn_proxy(mut cmd: Command) -> (Child, SocketAddr) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.split("OpenAI API at http://").nth(1) {
                return rest
                    .split('/')
                    .next()
                    .unwrap()
                    .parse::<SocketAddr>()
                    .unwrap();
            }
        }
        panic!("silk proxy ended before listening");
    })
    .await
    .expect("silk proxy listens");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}
