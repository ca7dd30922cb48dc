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
