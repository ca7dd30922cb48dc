//! Prometheus metrics of the enclave: counts and latencies only. No label ever carries
//! request content, a model answer or a client-chosen string — only fixed names.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
pub use silk_net::metrics::{ConnMetrics, Deadline, DeadlineLabel};

/// The outcome of one sealed request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum Outcome {
    /// Answered in full.
    Ok,
    /// The seal did not open (altered, wrong claims, unknown version).
    BadSeal,
    /// The same sealed request arrived twice.
    Replayed,
    /// The body was too large.
    TooLarge,
    /// The plaintext was not a valid request.
    BadRequest,
    /// The engine was busy.
    Busy,
    /// The engine failed.
    Failed,
    /// The client went away before the end.
    Cancelled,
}

/// Labels of the request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// The outcome.
    pub outcome: Outcome,
}

/// All metrics of one enclave.
pub struct Metrics {
    registry: Registry,
    /// Sealed requests by outcome.
    pub sealed_requests: Family<OutcomeLabel, Counter>,
    /// Attestation bundles served (fresh ones count too).
    pub attestations: Counter,
    /// Fresh (nonce) attestations that failed.
    pub attestation_failures: Counter,
    /// Tokens generated for sealed requests.
    pub completion_tokens: Counter,
    /// Prompt tokens of sealed requests.
    pub prompt_tokens: Counter,
    /// Seconds from a sealed request's arrival to its first sealed chunk.
    pub time_to_first_chunk: Histogram,
    /// Seconds from a sealed request's arrival to its last chunk.
    pub request_seconds: Histogram,
    /// Streams open now.
    pub open_streams: Gauge,
    /// Usage receipts signed.
    pub receipts: Counter,
    /// Connections, deadlines and bounds.
    pub conn: ConnMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("silk_enclave");
        let sealed_requests = Family::<OutcomeLabel, Counter>::default();
        let attestations = Counter::default();
        let attestation_failures = Counter::default();
        let completion_tokens = Counter::default();
        let prompt_tokens = Counter::default();
        let time_to_first_chunk = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let request_seconds = Histogram::new(exponential_buckets(0.01, 2.0, 16));
        let open_streams = Gauge::default();
        let receipts = Counter::default();
        registry.register(
            "receipts",
            "Usage receipts signed (one per sealed answer)",
            receipts.clone(),
        );
        registry.register(
            "sealed_requests",
            "Sealed requests by outcome",
            sealed_requests.clone(),
        );
        registry.register(
            "attestations",
            "Evidence bundles served",
            attestations.clone(),
        );
        registry.register(
            "attestation_failures",
            "Fresh evidence requests that failed",
            attestation_failures.clone(),
        );
        registry.register(
            "completion_tokens",
            "Tokens generated",
            completion_tokens.clone(),
        );
        registry.register("prompt_tokens", "Prompt tokens read", prompt_tokens.clone());
        registry.register(
            "time_to_first_chunk_seconds",
            "Arrival of a sealed request to its first sealed chunk",
            time_to_first_chunk.clone(),
        );
        registry.register(
            "request_seconds",
            "Arrival of a sealed request to its last chunk",
            request_seconds.clone(),
        );
        registry.register(
            "open_streams",
            "Sealed streams open now",
            open_streams.clone(),
        );
        let conn = ConnMetrics::default();
        conn.register(&mut registry);
        Self {
            conn,
            registry,
            sealed_requests,
            attestations,
            attestation_failures,
            completion_tokens,
            prompt_tokens,
            time_to_first_chunk,
            request_seconds,
            open_streams,
            receipts,
        }
    }
}

impl Metrics {
    /// Counts one sealed request's outcome.
    pub fn outcome(&self, outcome: Outcome) {
        self.sealed_requests
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    /// The Prometheus text exposition, with the engine's load appended.
    pub fn render(&self, engine: silk_engine::EngineStats) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &self.registry);
        for (name, help, v) in [
            (
                "running",
                "Sequences in the running batch",
                engine.running as u64,
            ),
            (
                "waiting",
                "Requests waiting for admission",
                engine.waiting as u64,
            ),
            (
                "kv_reserved_bytes",
                "KV-cache bytes reserved",
                engine.reserved_kv_bytes as u64,
            ),
            ("decode_steps", "Decode steps since start", engine.steps),
        ] {
            out.push_str(&format!(
                "# HELP silk_engine_{name} {help}.\n# TYPE silk_engine_{name} gauge\nsilk_engine_{name} {v}\n"
            ));
        }
        let _ = prometheus_client::encoding::text::encode_eof(&mut out);
        out
    }
}
