//! What the connection layer counts: handles that a process registers in its own
//! Prometheus registry. Labels are fixed names, never peer input.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The deadline a connection or request was closed at.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum Deadline {
    /// Accept to finished TLS handshake.
    TlsHandshake,
    /// Connection start (or a request's first byte) to its complete head.
    RequestHead,
    /// Idle between requests on keep-alive.
    KeepAliveIdle,
    /// The request body's total time or minimum rate.
    RequestBody,
}

/// Labels of the deadline counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeadlineLabel {
    /// The deadline.
    pub deadline: Deadline,
}

/// What the listeners count: handles into [`Metrics`]'s registry.
#[derive(Clone, Debug, Default)]
pub struct ConnMetrics {
    /// Connections and requests closed at a deadline.
    pub timeouts: Family<DeadlineLabel, Counter>,
    /// Idle connections closed to make room at the connection cap.
    pub evicted: Counter,
    /// New connections refused at the cap (every open one had a request in flight).
    pub refused: Counter,
    /// Failed accepts (e.g. out of file descriptors).
    pub accept_errors: Counter,
    /// Connections open now, over all listeners.
    pub open: Gauge,
    /// Requests refused because request bodies in flight filled the budget.
    pub body_budget_refusals: Counter,
}

impl ConnMetrics {
    /// Counts one deadline firing.
    pub fn timed_out(&self, deadline: Deadline) {
        self.timeouts
            .get_or_create(&DeadlineLabel { deadline })
            .inc();
    }
}

impl ConnMetrics {
    /// Registers every handle in `registry` under the names both silk servers use.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "deadline_closures",
            "Connections and requests closed at a deadline, by deadline",
            self.timeouts.clone(),
        );
        registry.register(
            "connections_evicted",
            "Idle connections closed to make room at the connection cap",
            self.evicted.clone(),
        );
        registry.register(
            "connections_refused",
            "New connections refused at the cap with every connection busy",
            self.refused.clone(),
        );
        registry.register(
            "accept_errors",
            "Failed accepts (out of file descriptors and the like)",
            self.accept_errors.clone(),
        );
        registry.register(
            "open_connections",
            "Connections open now",
            self.open.clone(),
        );
        registry.register(
            "body_budget_refusals",
            "Requests refused because request bodies in flight filled the budget",
            self.body_budget_refusals.clone(),
        );
    }
}
