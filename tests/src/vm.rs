//! Helpers for the whole-VM tests (`vm_*`, run one at a time in nextest's `vm` group):
//! building the guest image and a model disk with the recipe, and talking HTTP to what
//! the guest serves, with nothing but std.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use silk_host::app::{AccelChoice, RunOptions};
use silk_host::qemu::Tee;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// The cargo target directory this test was built into (so nested builds reuse it).
pub fn target_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(d);
    }
    // target/<profile>/deps/<test binary>
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(Path::to_path_buf))
        .unwrap_or_else(|| repo_root().join("target"))
}

/// Runs `images/recipe/build.sh --out OUT` with extra arguments; returns the image digest.
pub fn build_image(out: &Path, args: &[&str]) -> String {
    let output = Command::new(repo_root().join("images/recipe/build.sh"))
        .arg("--out")
        .arg(out)
        .args(args)
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .expect("run images/recipe/build.sh");
    assert!(
        output.status.success(),
        "build.sh failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Builds a dm-verity model disk from one model file with `images/recipe/model-disk.sh`,
/// and returns the kernel command line fragment that binds an image to it (pass it to
/// [`build_image`] as `--model-verity`).
pub fn model_disk(out: &Path, model: &Path) -> String {
    let output = Command::new(repo_root().join("images/recipe/model-disk.sh"))
        .arg("--out")
        .arg(out)
        .arg(model)
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .expect("run images/recipe/model-disk.sh");
    assert!(
        output.status.success(),
        "model-disk.sh failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Flips one bit of the byte at `offset` in a file, in place (what a hostile host does to
/// a disk it serves).
pub fn flip_byte(path: &Path, offset: u64) {
    use std::io::{Seek, SeekFrom};
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open the disk to change it");
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.read_exact(&mut b).unwrap();
    b[0] ^= 0x01;
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(&b).unwrap();
    f.sync_all().unwrap();
}

/// Fails with a clear message when QEMU is not installed (scripts/setup.sh installs it).
pub fn require_qemu() {
    let ok = Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "qemu-system-x86_64 is not installed: run scripts/setup.sh (apt-get install qemu-system-x86)"
    );
}

/// A plain HTTP/1.0 GET; returns the status code and body.
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: silk\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Polls `f` every 250 ms until it returns `Some`, or panics after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A free loopback address (bound then released).
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
}

/// One `name value` sample from Prometheus text.
pub fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// silk-host's options for a development VM (`--tee none`, 2 vCPUs, no GPU) serving
/// `image` with `disk` on `listen`, its admin endpoints on `admin`.
pub fn dev_run_options(
    image: PathBuf,
    disk: PathBuf,
    memory_mib: u64,
    listen: SocketAddr,
    admin: SocketAddr,
) -> RunOptions {
    RunOptions {
        image,
        tee: Tee::None,
        model: disk,
        gpus: vec![],
        vcpus: 2,
        memory_mib,
        listen,
        admin: Some(admin),
        dry_run: false,
        qemu: "qemu-system-x86_64".into(),
        accel: AccelChoice::Auto,
        forward_port: 0,
        guest_outbound: false,
        host_root: "/".into(),
        sysfs: "/sys".into(),
    }
}
