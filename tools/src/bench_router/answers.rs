//! Real answers two ways from the same enclave child: through the router with
//! [`Network`] (client -> router -> pooled RA-TLS -> worker) and straight to the worker
//! with [`Session`] (a new RA-TLS connection per request, as `Session::send` makes it).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hyper::StatusCode;

use super::RouterBenchError;
use crate::bench_sealed::{chat_body, Sample, PROMPTS};
use silk_client::network::Network;
use silk_client::session::{SealedAnswer, Session};

/// The two paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// [`Network::send`] through the router.
    Routed,
    /// [`Session::send`] to the worker.
    Direct,
}

impl Path {
    fn name(self) -> &'static str {
        match self {
            Path::Routed => "routed",
            Path::Direct => "direct",
        }
    }
}

/// Reads a sealed answer to its end (receipt verified), timing its text.
async fn follow(
    path: Path,
    start: Instant,
    mut answer: SealedAnswer,
) -> Result<Sample, RouterBenchError> {
    let fail = |detail: String| RouterBenchError::Stream {
        path: path.name(),
        detail,
    };
    if answer.status() != StatusCode::OK {
        let status = answer.status();
        // `collect` turns a non-200 answer into the API error it carries.
        let why = match answer.collect().await {
            Err(e) => e.to_string(),
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        };
        return Err(fail(format!("HTTP {status}: {why}")));
    }
    let mut clock = crate::bench_sealed::SseTimer::default();
    while let Some(chunk) = answer.next_chunk().await? {
        clock.push(&chunk).map_err(fail)?;
    }
    if answer.receipt().is_none() {
        return Err(fail("the answer ended without a verified receipt".into()));
    }
    clock.finish(start).map_err(fail)
}

/// The clients of both paths.
pub struct Clients {
    /// Through the router.
    pub network: Arc<Network>,
    /// Straight to the worker.
    pub session: Arc<Session>,
    /// The request bodies (stream `i` sends `bodies[i % len]`).
    pub bodies: Vec<Bytes>,
}

impl Clients {
    /// Bodies of `max_tokens` for every prompt.
    pub fn bodies(max_tokens: usize) -> Vec<Bytes> {
        PROMPTS.iter().map(|p| chat_body(p, max_tokens)).collect()
    }

    async fn one(&self, path: Path, i: usize) -> Result<Sample, RouterBenchError> {
        let body = self.bodies[i % self.bodies.len()].clone();
        let start = Instant::now();
        let answer = match path {
            Path::Routed => self.network.send(&body).await?,
            Path::Direct => self.session.send(&body).await?,
        };
        follow(path, start, answer).await
    }

    /// One round: `n` streams on `path`, all started at once.
    pub async fn round(
        self: &Arc<Self>,
        path: Path,
        n: usize,
    ) -> Result<Vec<Sample>, RouterBenchError> {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..n {
            let me = self.clone();
            set.spawn(async move { me.one(path, i).await });
        }
        let mut out = Vec::with_capacity(n);
        while let Some(r) = set.join_next().await {
            out.push(r.map_err(|e| RouterBenchError::Setup(format!("stream task: {e}")))??);
        }
        Ok(out)
    }
}
