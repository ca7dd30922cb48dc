//! The host's counters and their Prometheus text rendering.
//!
//! Plain atomics: every writer (supervisor, relay) bumps them without locks, and
//! `/metrics` renders a snapshot.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters and gauges shared by the supervisor, the relay and the admin server.
#[derive(Debug, Default)]
pub struct Metrics {
    /// 1 while QEMU runs.
    pub vm_up: AtomicU64,
    /// 1 after the guest printed `silk-health: ready` on its console, until it stops.
    pub guest_ready: AtomicU64,
    /// QEMU's process id while it runs (0 otherwise), so operators and tests can find it.
    pub vm_pid: AtomicU64,
    /// QEMU launches, the first included.
    pub vm_starts: AtomicU64,
    /// Launches after the first (the VM died or exited and was started again).
    pub vm_restarts: AtomicU64,
    /// Console lines read from the guest.
    pub console_lines: AtomicU64,
    /// Client connections accepted by the relay.
    pub relay_connections: AtomicU64,
    /// Client connections open now.
    pub relay_active: AtomicU64,
    /// Client connections dropped because the guest could not be reached.
    pub relay_connect_errors: AtomicU64,
    /// Client connections refused at the relay's connection cap.
    pub relay_refused: AtomicU64,
    /// Relayed connections closed after the idle timeout (no byte either way).
    pub relay_idle_closed: AtomicU64,
    /// Bytes relayed from clients to the guest.
    pub bytes_to_guest: AtomicU64,
    /// Bytes relayed from the guest to clients.
    pub bytes_to_client: AtomicU64,
}

impl Metrics {
    /// Reads one value.
    pub fn get(v: &AtomicU64) -> u64 {
        v.load(Ordering::Relaxed)
    }

    /// Adds to a counter.
    pub fn add(v: &AtomicU64, n: u64) {
        v.fetch_add(n, Ordering::Relaxed);
    }

    /// Sets a gauge.
    pub fn set(v: &AtomicU64, n: u64) {
        v.store(n, Ordering::Relaxed);
    }

    /// Whether the VM runs and the guest said it is ready.
    pub fn healthy(&self) -> bool {
        Self::get(&self.vm_up) == 1 && Self::get(&self.guest_ready) == 1
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut s = String::new();
        let g = Self::get;
        let mut one = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(
                s,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        one(
            "silk_host_vm_up",
            "gauge",
            "1 while the QEMU process runs.",
            g(&self.vm_up),
        );
        one(
            "silk_host_guest_ready",
            "gauge",
            "1 once the guest reported ready on its console.",
            g(&self.guest_ready),
        );
        one(
            "silk_host_vm_pid",
            "gauge",
            "Process id of the running QEMU (0 when none).",
            g(&self.vm_pid),
        );
        one(
            "silk_host_vm_starts_total",
            "counter",
            "QEMU launches.",
            g(&self.vm_starts),
        );
        one(
            "silk_host_vm_restarts_total",
            "counter",
            "QEMU launches after the first.",
            g(&self.vm_restarts),
        );
        one(
            "silk_host_console_lines_total",
            "counter",
            "Guest console lines logged.",
            g(&self.console_lines),
        );
        one(
            "silk_host_relay_connections_total",
            "counter",
            "Client connections accepted.",
            g(&self.relay_connections),
        );
        one(
            "silk_host_relay_connections_active",
            "gauge",
            "Client connections open.",
            g(&self.relay_active),
        );
        one(
            "silk_host_relay_connect_errors_total",
            "counter",
            "Client connections dropped because the guest was unreachable.",
            g(&self.relay_connect_errors),
        );
        one(
            "silk_host_relay_refused_total",
            "counter",
            "Client connections refused at the relay's connection cap.",
            g(&self.relay_refused),
        );
        one(
            "silk_host_relay_idle_closed_total",
            "counter",
            "Relayed connections closed after the idle timeout.",
            g(&self.relay_idle_closed),
        );
        let _ = writeln!(
            s,
            "# HELP silk_host_relay_bytes_total Opaque bytes relayed.\n# TYPE silk_host_relay_bytes_total counter\n\
             silk_host_relay_bytes_total{{direction=\"to_guest\"}} {}\n\
             silk_host_relay_bytes_total{{direction=\"to_client\"}} {}",
            g(&self.bytes_to_guest),
            g(&self.bytes_to_client)
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        Metrics::set(&m.vm_up, 1);
        Metrics::add(&m.vm_restarts, 2);
        Metrics::add(&m.bytes_to_guest, 10);
        let s = m.render();
        assert!(
            s.contains("# TYPE silk_host_vm_up gauge\nsilk_host_vm_up 1\n"),
            "{s}"
        );
        assert!(s.contains("silk_host_vm_restarts_total 2\n"));
        assert!(s.contains("silk_host_relay_bytes_total{direction=\"to_guest\"} 10\n"));
        assert!(s.contains("silk_host_relay_bytes_total{direction=\"to_client\"} 0\n"));
        // Every sample line is `name[{labels}] value`.
        for line in s.lines().filter(|l| !l.starts_with('#')) {
            let (_, v) = line.rsplit_once(' ').unwrap();
            v.parse::<u64>().unwrap();
        }
        assert!(!m.healthy());
        Metrics::set(&m.guest_ready, 1);
        assert!(m.healthy());
    }
}
