//! Runs QEMU as a child, logs the guest console, restarts it with backoff when it dies,
//! and stops it cleanly on shutdown.
//!
//! A restart is a fresh launch: the guest measures the same, but generates new keys and new
//! evidence, which clients must verify again. The supervisor never tries to keep a VM's
//! state across a crash.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::metrics::Metrics;

/// The console line prefix the guest's init uses to report health.
pub const HEALTH_PREFIX: &str = "silk-health:";

/// Exponential backoff between restarts, reset once a run lasted long enough.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
    /// A run at least this long counts as healthy and resets the delay.
    pub stable_after: Duration,
    next: Duration,
}

impl Backoff {
    /// A backoff from `initial` doubling up to `max`.
    pub fn new(initial: Duration, max: Duration, stable_after: Duration) -> Self {
        Self {
            initial,
            max,
            stable_after,
            next: initial,
        }
    }

    /// The delay before the next launch, given how long the last run lasted.
    pub fn next_delay(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= self.stable_after {
            self.next = self.initial;
        }
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }
}

impl Default for Backoff {
    /// 1 s doubling to 60 s; a run of 2 minutes resets it.
    fn default() -> Self {
        Self::new(
            Duration::from_secs(1),
            Duration::from_secs(60),
            Duration::from_secs(120),
        )
    }
}

/// Why supervision stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// QEMU could not be started at all (not found, not executable): retrying won't help.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// A supervised QEMU.
#[derive(Debug, Clone)]
pub struct Supervisor {
    /// The program (normally `qemu-system-x86_64`).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Delays between restarts.
    pub backoff: Backoff,
    /// How long QEMU may take to exit after SIGTERM before it is killed.
    pub stop_grace: Duration,
    /// Where the counters go.
    pub metrics: Arc<Metrics>,
}

impl Supervisor {
    /// Runs QEMU until `shutdown` turns true, restarting it whenever it exits.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), SupervisorError> {
        let m = self.metrics.clone();
        let mut first = true;
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            let mut child = Command::new(&self.program)
                .args(&self.args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(|source| SupervisorError::Spawn {
                    program: self.program.clone(),
                    source,
                })?;
            let started = Instant::now();
            m.vm_starts.inc();
            if !first {
                m.vm_restarts.inc();
            }
            first = false;
            m.vm_pid.set(i64::from(child.id().unwrap_or(0)));
            m.vm_up.set(1);
            tracing::info!(pid = child.id(), "VM started");
            let consoles = [
                child
                    .stdout
                    .take()
                    .map(|o| spawn_console(o, m.clone(), "console")),
                child
                    .stderr
                    .take()
                    .map(|e| spawn_console(e, m.clone(), "qemu")),
            ];

            let status = tokio::select! {
                s = child.wait() => Some(s),
                _ = shutdown.wait_for(|s| *s) => None,
            };
            let status = match status {
                Some(s) => s,
                None => {
                    let s = stop(&mut child, self.stop_grace).await;
                    mark_down(&m);
                    tracing::info!("VM stopped: {}", describe(s.as_ref().ok()));
                    return Ok(());
                }
            };
            // Let the console readers drain QEMU's last words before logging the exit.
            for c in consoles.into_iter().flatten() {
                let _ = tokio::time::timeout(Duration::from_secs(1), c).await;
            }
            mark_down(&m);
            let ran = started.elapsed();
            let delay = self.backoff.next_delay(ran);
            tracing::warn!(
                "VM exited ({}) after {:.1}s; restarting in {:.1}s",
                describe(status.as_ref().ok()),
                ran.as_secs_f64(),
                delay.as_secs_f64()
            );
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.wait_for(|s| *s) => return Ok(()),
            }
        }
    }
}

fn mark_down(m: &Metrics) {
    m.vm_up.set(0);
    m.guest_ready.set(0);
    m.vm_pid.set(0);
}

fn describe(s: Option<&ExitStatus>) -> String {
    match s {
        Some(s) => s.to_string(),
        None => "status unknown".into(),
    }
}

/// SIGTERM (QEMU then exits cleanly), and SIGKILL after `grace`.
async fn stop(child: &mut Child, grace: Duration) -> std::io::Result<ExitStatus> {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        let pid = nix::unistd::Pid::from_raw(pid);
        if let Err(e) = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM) {
            tracing::warn!("SIGTERM to QEMU failed: {e}");
        }
    }
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(s) => s,
        Err(_) => {
            tracing::warn!("QEMU ignored SIGTERM for {grace:?}; killing it");
            child.kill().await?;
            child.wait().await
        }
    }
}

fn spawn_console<R>(r: R, m: Arc<Metrics>, source: &'static str) -> tokio::task::JoinHandle<()>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut lines = BufReader::new(r).split(b'\n');
        while let Ok(Some(raw)) = lines.next_segment().await {
            let line = clean(&raw);
            if line.is_empty() {
                continue;
            }
            m.console_lines.inc();
            if let Some(h) = health(&line) {
                m.guest_ready.set(i64::from(h));
            }
            tracing::info!(target: "silk_host::guest", source, "{line}");
        }
    })
}

/// The guest's health report on a console line: `Some(true)` for `silk-health: ready`,
/// `Some(false)` for any other `silk-health:` state.
pub fn health(line: &str) -> Option<bool> {
    let rest = line.trim().strip_prefix(HEALTH_PREFIX)?;
    Some(rest.split_whitespace().next() == Some("ready"))
}

/// Console text made safe for a log line: the guest (and OVMF) write terminal escapes
/// and carriage returns; logs get printable text only.
pub fn clean(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ params final-byte.
            if chars.peek() == Some(&'[') {
                chars.next();
                for n in chars.by_ref() {
                    if ('@'..='~').contains(&n) {
                        break;
                    }
                }
            }
            continue;
        }
        if !c.is_control() || c == '\t' {
            out.push(c);
        }
    }
    out.trim_end().to_string()
}

#[cfg(test)]
#[path = "supervisor_tests.rs"]
mod tests;
