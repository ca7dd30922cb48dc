//! Prometheus metrics of the router: counts, bytes and latencies, never content. Labels
//! are fixed names chosen by the router (endpoints, error codes, reasons) or the first 16
//! hex digits of a listed worker's id — bounded because listed workers are, and removed
//! when a worker is unlisted.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
pub use silk_net::metrics::{ConnMetrics, Deadline};

/// Labels of the request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The endpoint: `challenge`, `register`, `list`, `attestation`, `sealed`, `health`,
    /// `metrics`, `other`.
    pub endpoint: &'static str,
    /// `ok` or the error code answered.
    pub outcome: &'static str,
}

/// A label naming one thing: an error class, an outcome or a reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NameLabel {
    /// The name.
    pub name: &'static str,
}

/// The per-worker label: the first 16 hex digits of its id.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkerLabel {
    /// The id prefix.
    pub worker: String,
}

type HistogramFamily = Family<WorkerLabel, Histogram, fn() -> Histogram>;

fn first_byte_histogram() -> Histogram {
    // 1 ms to ~9 min: a prefill under a full queue can take minutes.
    Histogram::new(exponential_buckets(0.001, 2.0, 20))
}

/// All metrics of one router.
pub struct Metrics {
    registry: Registry,
    /// Requests by endpoint and outcome.
    pub requests: Family<RequestLabels, Counter>,
    /// Sealed request bytes forwarded to workers.
    pub bytes_up: Counter,
    /// Sealed answer bytes forwarded to clients.
    pub bytes_down: Counter,
    /// Seconds from forwarding a sealed request to the worker's response head, by worker.
    pub first_byte: HistogramFamily,
    /// Failures by class (`connect_timeout`, `tls_failed`, `idle_timeout`, ...).
    pub errors: Family<NameLabel, Counter>,
    /// Registrations by outcome (`ok` or the refusal's code).
    pub registrations: Family<NameLabel, Counter>,
    /// Workers taken off the list, by reason.
    pub unlisted: Family<NameLabel, Counter>,
    /// Workers listed now.
    pub workers_listed: Gauge,
    /// Clear receipts seen at the end of answers that verified under the worker's key.
    pub receipts_seen: Counter,
    /// Clear receipts that did not verify, or named another worker.
    pub receipts_invalid: Counter,
    /// Receipt lines not written because the writer fell behind.
    pub receipts_dropped: Counter,
    /// Connections, deadlines and bounds of the listener.
    pub conn: ConnMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("silk_router");
        let m = Self {
            requests: Family::default(),
            bytes_up: Counter::default(),
            bytes_down: Counter::default(),
            first_byte: Family::new_with_constructor(first_byte_histogram),
            errors: Family::default(),
            registrations: Family::default(),
            unlisted: Family::default(),
            workers_listed: Gauge::default(),
            receipts_seen: Counter::default(),
            receipts_invalid: Counter::default(),
            receipts_dropped: Counter::default(),
            conn: ConnMetrics::default(),
            registry: Registry::default(),
        };
        registry.register(
            "requests",
            "Requests by endpoint and outcome",
            m.requests.clone(),
        );
        registry.register(
            "bytes_up",
            "Sealed request bytes forwarded to workers",
            m.bytes_up.clone(),
        );
        registry.register(
            "bytes_down",
            "Sealed answer bytes forwarded to clients",
            m.bytes_down.clone(),
        );
        registry.register(
            "first_byte_seconds",
            "Forwarding a sealed request to the worker's response head, by worker id prefix",
            m.first_byte.clone(),
        );
        registry.register("errors", "Failures by class", m.errors.clone());
        registry.register(
            "registrations",
            "Worker registrations by outcome",
            m.registrations.clone(),
        );
        registry.register(
            "unlisted",
            "Workers taken off the list, by reason",
            m.unlisted.clone(),
        );
        registry.register(
            "workers_listed",
            "Workers listed now",
            m.workers_listed.clone(),
        );
        registry.register(
            "receipts_seen",
            "Clear usage receipts that verified under the worker's receipt key",
            m.receipts_seen.clone(),
        );
        registry.register(
            "receipts_invalid",
            "Clear usage receipts that did not verify",
            m.receipts_invalid.clone(),
        );
        registry.register(
            "receipts_dropped",
            "Receipt log lines dropped because the writer fell behind",
            m.receipts_dropped.clone(),
        );
        m.conn.register(&mut registry);
        Self { registry, ..m }
    }
}

impl Metrics {
    /// Counts one request's outcome.
    pub fn request(&self, endpoint: &'static str, outcome: &'static str) {
        self.requests
            .get_or_create(&RequestLabels { endpoint, outcome })
            .inc();
    }

    /// Counts one failure of `class`.
    pub fn error(&self, class: &'static str) {
        self.errors.get_or_create(&NameLabel { name: class }).inc();
    }

    /// Counts one registration's outcome.
    pub fn registration(&self, outcome: &'static str) {
        self.registrations
            .get_or_create(&NameLabel { name: outcome })
            .inc();
    }

    /// Counts one unlisting and forgets the worker's latency series.
    pub fn unlisting(&self, reason: &'static str, short_id: &str) {
        self.unlisted
            .get_or_create(&NameLabel { name: reason })
            .inc();
        self.first_byte.remove(&WorkerLabel {
            worker: short_id.to_owned(),
        });
    }

    /// Records a worker's time to the response head.
    pub fn first_byte(&self, short_id: &str, secs: f64) {
        self.first_byte
            .get_or_create(&WorkerLabel {
                worker: short_id.to_owned(),
            })
            .observe(secs);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
