//! The host's counters and gauges, rendered as Prometheus text by `prometheus-client` (as
//! the enclave and the router do).
//!
//! Every handle is an atomic that the supervisor and the relay bump without locks;
//! `/metrics` encodes a snapshot of the registry. Labels are fixed names, never peer input.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of the relayed-bytes counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabel {
    /// `to_guest` or `to_client`.
    direction: &'static str,
}

/// Counters and gauges shared by the supervisor, the relay and the admin server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// 1 while QEMU runs.
    pub vm_up: Gauge,
    /// 1 after the guest printed `silk-health: ready` on its console, until it stops.
    pub guest_ready: Gauge,
    /// QEMU's process id while it runs (0 otherwise), so operators and tests can find it.
    pub vm_pid: Gauge,
    /// QEMU launches, the first included.
    pub vm_starts: Counter,
    /// Launches after the first (the VM died or exited and was started again).
    pub vm_restarts: Counter,
    /// Console lines read from the guest.
    pub console_lines: Counter,
    /// Client connections accepted by the relay.
    pub relay_connections: Counter,
    /// Client connections open now.
    pub relay_active: Gauge,
    /// Client connections dropped because the guest could not be reached.
    pub relay_connect_errors: Counter,
    /// Client connections refused at the relay's connection cap.
    pub relay_refused: Counter,
    /// Relayed connections closed after the idle timeout (no byte either way).
    pub relay_idle_closed: Counter,
    /// Bytes relayed from clients to the guest (the `to_guest` series of the family).
    pub bytes_to_guest: Counter,
    /// Bytes relayed from the guest to clients (the `to_client` series).
    pub bytes_to_client: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("silk_host");
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            registry.register(name, help, c.clone());
            c
        };
        let vm_up = gauge(&mut registry, "vm_up", "1 while the QEMU process runs");
        let guest_ready = gauge(
            &mut registry,
            "guest_ready",
            "1 once the guest reported ready on its console",
        );
        let vm_pid = gauge(
            &mut registry,
            "vm_pid",
            "Process id of the running QEMU (0 when none)",
        );
        let vm_starts = counter(&mut registry, "vm_starts", "QEMU launches");
        let vm_restarts = counter(
            &mut registry,
            "vm_restarts",
            "QEMU launches after the first",
        );
        let console_lines = counter(&mut registry, "console_lines", "Guest console lines logged");
        let relay_connections = counter(
            &mut registry,
            "relay_connections",
            "Client connections accepted",
        );
        let relay_active = gauge(
            &mut registry,
            "relay_connections_active",
            "Client connections open",
        );
        let relay_connect_errors = counter(
            &mut registry,
            "relay_connect_errors",
            "Client connections dropped because the guest was unreachable",
        );
        let relay_refused = counter(
            &mut registry,
            "relay_refused",
            "Client connections refused at the relay's connection cap",
        );
        let relay_idle_closed = counter(
            &mut registry,
            "relay_idle_closed",
            "Relayed connections closed after the idle timeout",
        );
        let bytes = Family::<DirectionLabel, Counter>::default();
        // Both series exist from the start, so a scrape shows 0 rather than nothing.
        let series = |direction| bytes.get_or_create(&DirectionLabel { direction }).clone();
        let bytes_to_guest = series("to_guest");
        let bytes_to_client = series("to_client");
        registry.register("relay_bytes", "Opaque bytes relayed", bytes.clone());
        Self {
            registry,
            vm_up,
            guest_ready,
            vm_pid,
            vm_starts,
            vm_restarts,
            console_lines,
            relay_connections,
            relay_active,
            relay_connect_errors,
            relay_refused,
            relay_idle_closed,
            bytes_to_guest,
            bytes_to_client,
        }
    }
}

impl Metrics {
    /// Whether the VM runs and the guest said it is ready.
    pub fn healthy(&self) -> bool {
        self.vm_up.get() == 1 && self.guest_ready.get() == 1
    }

    /// The exposition in OpenMetrics text (which Prometheus scrapes as
    /// `application/openmetrics-text`).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.vm_up.set(1);
        m.vm_restarts.inc_by(2);
        m.bytes_to_guest.inc_by(10);
        let s = m.render();
        assert!(
            s.contains("# TYPE silk_host_vm_up gauge\nsilk_host_vm_up 1\n"),
            "{s}"
        );
        assert!(s.contains("# TYPE silk_host_vm_restarts counter\n"), "{s}");
        assert!(s.contains("\nsilk_host_vm_restarts_total 2\n"), "{s}");
        assert!(s.contains("silk_host_relay_bytes_total{direction=\"to_guest\"} 10\n"));
        assert!(s.contains("silk_host_relay_bytes_total{direction=\"to_client\"} 0\n"));
        // Every metric the operator guide lists is there, and every sample line is
        // `name[{labels}] value` with an integer value.
        for name in [
            "silk_host_vm_up ",
            "silk_host_guest_ready ",
            "silk_host_vm_pid ",
            "silk_host_vm_starts_total ",
            "silk_host_vm_restarts_total ",
            "silk_host_console_lines_total ",
            "silk_host_relay_connections_total ",
            "silk_host_relay_connections_active ",
            "silk_host_relay_connect_errors_total ",
            "silk_host_relay_refused_total ",
            "silk_host_relay_idle_closed_total ",
        ] {
            assert!(s.lines().any(|l| l.starts_with(name)), "{name}in\n{s}");
        }
        for line in s.lines().filter(|l| !l.starts_with('#')) {
            let (_, v) = line.rsplit_once(' ').unwrap();
            v.parse::<u64>().unwrap();
        }
        assert!(s.ends_with("# EOF\n"), "{s}");
        assert!(!m.healthy());
        m.guest_ready.set(1);
        assert!(m.healthy());
    }
}
