//! `silk bench sealed`: what the sealed path costs next to the engine called directly.
//!
//! One run, one model, the same prompts, greedy decoding and the same `max_tokens` on
//! every path:
//!
//! - **sealed**: an HTTP client streams `/v1/chat/completions` from an in-process
//!   `silk proxy` on 127.0.0.1, which seals each request to a local `silk-enclave` child
//!   process (SIMULATED TEE, RA-TLS) and opens its sealed stream;
//! - **session**: the same requests through [`Session::send`] without the proxy (to tell
//!   the proxy's share from the seal's and the TLS connection's);
//! - **direct**: [`Engine::submit`] on the same model loaded in this process.
//!
//! The enclave child and the in-process engine never run at the same time, and both use the
//! same number of kernel threads (`SILK_THREADS`, which the child inherits). The two sides
//! alternate: each repetition starts an enclave, runs one round of every path and
//! concurrency, stops it, then loads the model here and runs the direct rounds — so that
//! load from elsewhere on the machine falls on both sides alike. Attestation is measured
//! on its own: [`Session::connect`] (nonce challenge, RA-TLS handshake, fresh evidence,
//! verification) and [`EvidenceBundle::verify`] of a fetched fresh bundle, each a median.
//!
//! For each concurrency every stream of a round starts at once. A stream's time to first
//! token (TTFT) runs from just before its request is sent (or submitted) to the first
//! non-empty text. A round's decode rate counts the text events that arrive while every
//! stream of the round is past its first token and none has finished, over that window
//! (steady-state batch decoding); the end-to-end rate is all tokens over the round's wall
//! time, prefill and queueing included. There is no `ignore_eos`: the prompts ask for long
//! answers and the table shows the tokens actually generated.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use silk_engine::{ChatMessage, Engine, EngineConfig, Event, GenerateRequest, Prompt};

use crate::demo::{DemoError, LocalEnclave};
use silk_client::session::{ClientError, Session};
use silk_client::sse::{SseEvent, SseParser};

mod costs;
mod first;
mod stats;
mod table;
pub use costs::{AttestFigures, PathFigures};
pub use first::{FirstAnswerFigures, RecordedFigures};
pub use stats::{figures, quantile, steady_decode_rate, Figures, Sample};
use table::Table;

/// Prompts that make the default model write until `max_tokens`; stream `i` of a round
/// uses prompt `i % len`, on every path.
pub const PROMPTS: &[&str] = &[
    "Write a long, detailed story about a lighthouse keeper who finds an old map. Describe every scene.",
    "Explain in great detail how bread is made, step by step, from growing wheat to baking.",
    "Write a long essay about the history of the Roman Empire, covering many emperors.",
    "Describe a walk through a busy city market in as much detail as you can.",
];

/// What to measure.
#[derive(Clone, Debug)]
pub struct SealedBenchArgs {
    /// The model (GGUF file or safetensors directory).
    pub model: PathBuf,
    /// The `silk-enclave` binary (default: beside this executable).
    pub enclave: Option<PathBuf>,
    /// Concurrent streams per round.
    pub concurrency: Vec<usize>,
    /// Tokens per answer.
    pub max_tokens: usize,
    /// Rounds per concurrency (rates: median; TTFT: over every stream of every round).
    pub reps: usize,
    /// Attestations measured (median).
    pub attest_reps: usize,
    /// Kernel threads, for the enclave and the direct engine alike.
    pub threads: usize,
    /// Print one JSON document instead of the table.
    pub json: bool,
}

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum SealedBenchError {
    /// The enclave or the model could not be set up.
    #[error("{0}")]
    Setup(String),
    /// The sealed session failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A stream failed or answered something unexpected.
    #[error("{path} stream: {detail}")]
    Stream {
        /// Which path.
        path: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// Writing the table failed.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

impl From<DemoError> for SealedBenchError {
    fn from(e: DemoError) -> Self {
        match e {
            DemoError::Client(c) => Self::Client(c),
            DemoError::Setup(s) => Self::Setup(s),
        }
    }
}

fn stream_err(path: &'static str) -> impl Fn(String) -> SealedBenchError {
    move |detail| SealedBenchError::Stream { path, detail }
}

/// The OpenAI body every sealed stream sends.
pub fn chat_body(prompt: &str, max_tokens: usize) -> Bytes {
    Bytes::from(
        json!({
            "model": "bench",
            "messages": [{"role": "user", "content": prompt}],
            "temperature": 0,
            "max_tokens": max_tokens,
            "stream": true,
            "stream_options": {"include_usage": true},
        })
        .to_string(),
    )
}

/// Follows an OpenAI SSE stream: first non-empty content, usage, `[DONE]` (shared with
/// `silk bench router`, which times its streams the same way).
#[derive(Default)]
pub(crate) struct SseTimer {
    parser: SseParser,
    first: Option<Instant>,
    arrivals: Vec<Instant>,
    tokens: Option<usize>,
    done: bool,
}

impl SseTimer {
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Result<(), String> {
        for event in self.parser.push(bytes) {
            let data = match event {
                SseEvent::Done => {
                    self.done = true;
                    continue;
                }
                SseEvent::Data(d) => d,
            };
            let v: Value = serde_json::from_str(&data).map_err(|e| format!("bad SSE JSON: {e}"))?;
            if let Some(err) = v.get("error") {
                return Err(format!("error event: {err}"));
            }
            let text = &v["choices"][0]["delta"]["content"];
            if text.as_str().is_some_and(|t| !t.is_empty()) {
                let now = Instant::now();
                self.first.get_or_insert(now);
                self.arrivals.push(now);
            }
            if let Some(n) = v["usage"]["completion_tokens"].as_u64() {
                self.tokens = Some(n as usize);
            }
        }
        Ok(())
    }

    pub(crate) fn finish(self, start: Instant) -> Result<Sample, String> {
        let end = Instant::now();
        if !self.done {
            return Err("the stream ended without [DONE]".into());
        }
        Ok(Sample {
            start,
            first: self.first.ok_or("no text in the answer")?,
            end,
            tokens: self.tokens.ok_or("no usage in the answer")?,
            arrivals: self.arrivals,
        })
    }
}

/// One request to the HTTP server at `addr` (the proxy here; the router in `silk bench
/// router`), over a fresh connection (as an OpenAI client without keep-alive would make it).
pub(crate) async fn proxy_request(
    addr: SocketAddr,
    req: hyper::http::request::Builder,
    body: Bytes,
) -> Result<hyper::Response<hyper::body::Incoming>, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = req
        .header(hyper::header::HOST, addr.to_string())
        .body(Full::new(body))
        .map_err(|e| e.to_string())?;
    sender
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"))
}

/// One streamed chat completion from the proxy at `addr`.
async fn proxy_stream(addr: SocketAddr, body: Bytes) -> Result<Sample, SealedBenchError> {
    let fail = stream_err("sealed");
    let start = Instant::now();
    let req = Request::post("/v1/chat/completions")
        .header(hyper::header::CONTENT_TYPE, "application/json");
    let response = proxy_request(addr, req, body).await.map_err(&fail)?;
    let status = response.status();
    let mut body = response.into_body();
    if status != StatusCode::OK {
        let text = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Err(fail(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&text)
        )));
    }
    let mut timer = SseTimer::default();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| fail(format!("reading: {e}")))?;
        if let Ok(data) = frame.into_data() {
            timer.push(&data).map_err(&fail)?;
        }
    }
    timer.finish(start).map_err(fail)
}

/// The same request through [`Session::send`], without the proxy.
async fn session_stream(session: &Session, body: Bytes) -> Result<Sample, SealedBenchError> {
    let fail = stream_err("session");
    let start = Instant::now();
    let mut answer = session.send(&body).await?;
    if answer.status() != StatusCode::OK {
        return Err(fail(format!("HTTP {}", answer.status())));
    }
    let mut timer = SseTimer::default();
    while let Some(chunk) = answer.next_chunk().await? {
        timer.push(&chunk).map_err(&fail)?;
    }
    timer.finish(start).map_err(fail)
}

/// One round: `n` concurrent streams made by `one(i)`, all started at once.
async fn round<F, Fut>(n: usize, one: F) -> Result<Vec<Sample>, SealedBenchError>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<Sample, SealedBenchError>> + Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        set.spawn(one(i));
    }
    let mut samples = Vec::with_capacity(n);
    while let Some(r) = set.join_next().await {
        samples.push(r.map_err(|e| SealedBenchError::Setup(format!("stream task: {e}")))??);
    }
    Ok(samples)
}

/// Rounds collected so far: for each path, per concurrency (indexed as
/// [`SealedBenchArgs::concurrency`]), every round.
struct Collected {
    proxy: Vec<Vec<Vec<Sample>>>,
    session: Vec<Vec<Vec<Sample>>>,
    direct: Vec<Vec<Vec<Sample>>>,
}

/// What a sealed phase measures besides the streams.
type Costs = (AttestFigures, PathFigures, FirstAnswerFigures);

/// One sealed phase: start an enclave, run one round of each path at each concurrency,
/// measure attestation when `attest_reps` is given, and stop the enclave.
async fn sealed_phase(
    args: &SealedBenchArgs,
    collected: &mut Collected,
    attest_reps: Option<usize>,
) -> Result<Option<Costs>, SealedBenchError> {
    let local = LocalEnclave::spawn(&args.model, args.enclave.as_deref(), &[]).await?;
    let result = sealed_phase_on(&local, args, collected, attest_reps).await;
    local.stop().await;
    result
}

async fn sealed_phase_on(
    local: &LocalEnclave,
    args: &SealedBenchArgs,
    collected: &mut Collected,
    attest_reps: Option<usize>,
) -> Result<Option<Costs>, SealedBenchError> {
    let session = Arc::new(Session::connect(&local.endpoint, local.policy.clone()).await?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    // The proxy's router as `silk proxy` serves it, on a listener without Nagle delays (as
    // the enclave's): see docs/bench.md.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let app = silk_client::proxy::router(Arc::new(silk_client::upstream::Upstream::new(
        silk_client::upstream::Target::Direct(session.clone()),
    )));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let bodies: Vec<Bytes> = PROMPTS
        .iter()
        .map(|p| chat_body(p, args.max_tokens))
        .collect();
    let body = |i: usize| bodies[i % bodies.len()].clone();
    // Warm up both ways once (first connections, allocator, caches).
    let warm = async {
        proxy_stream(addr, body(0)).await?;
        session_stream(&session, body(0)).await
    };
    let measured = async {
        // Proxy and Session rounds alternate too.
        warm.await?;
        for (k, &n) in args.concurrency.iter().enumerate() {
            collected.proxy[k].push(round(n, |i| proxy_stream(addr, body(i))).await?);
            let r = round(n, |i| {
                let (s, b) = (session.clone(), body(i));
                async move { session_stream(&s, b).await }
            })
            .await?;
            collected.session[k].push(r);
        }
        Ok::<_, SealedBenchError>(())
    }
    .await;
    let costs = match (measured, attest_reps) {
        (Ok(()), Some(reps)) => match costs::measure(local, &session, addr, reps).await {
            Ok((a, p)) => first::first_answers(local, reps)
                .await
                .map(|f| Some((a, p, f))),
            Err(e) => Err(e),
        },
        (Ok(()), None) => Ok(None),
        (Err(e), _) => Err(e),
    };
    server.abort();
    costs
}

/// One direct stream: submit, then follow the events on this thread.
fn direct_stream(
    engine: &Engine,
    prompt: &str,
    max_tokens: usize,
) -> Result<Sample, SealedBenchError> {
    let fail = stream_err("direct");
    let start = Instant::now();
    let generation = engine
        .submit(GenerateRequest {
            prompt: Prompt::Chat(vec![ChatMessage::new("user", prompt)]),
            params: silk_engine::SamplingParams::greedy(),
            max_tokens: Some(max_tokens),
            stop: Vec::new(),
            logprobs: None,
            format: Default::default(),
        })
        .map_err(|e| fail(e.to_string()))?;
    let mut first = None;
    let mut arrivals = Vec::with_capacity(max_tokens);
    for event in generation {
        match event {
            Event::Delta { text: t, .. } => {
                if !t.is_empty() {
                    let now = Instant::now();
                    first.get_or_insert(now);
                    arrivals.push(now);
                }
            }
            Event::Done { usage, .. } => {
                return Ok(Sample {
                    start,
                    first: first.ok_or_else(|| fail("no text in the answer".into()))?,
                    end: Instant::now(),
                    tokens: usage.completion_tokens,
                    arrivals,
                })
            }
            Event::Failed(e) => return Err(fail(e)),
        }
    }
    Err(fail("the generation ended without Done".into()))
}

/// One direct phase: load the model here, run one round at each concurrency, unload it.
fn direct_phase(args: &SealedBenchArgs, collected: &mut Collected) -> Result<(), SealedBenchError> {
    let bundle = silk_engine::open(&args.model, &candle_core::Device::Cpu)
        .map_err(|e| SealedBenchError::Setup(format!("{}: {e}", args.model.display())))?;
    let engine = Engine::start(bundle, EngineConfig::default());
    direct_stream(&engine, PROMPTS[0], args.max_tokens)?;
    for (k, &n) in args.concurrency.iter().enumerate() {
        let samples = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..n)
                .map(|i| {
                    let engine = &engine;
                    scope.spawn(move || {
                        direct_stream(engine, PROMPTS[i % PROMPTS.len()], args.max_tokens)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(stream_err("direct")("a stream thread panicked".into()))
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })?;
        collected.direct[k].push(samples);
    }
    Ok(())
}

/// Runs the benchmark and prints its table. Sets `SILK_THREADS` for this process and the
/// enclave child, so call it before anything else starts threads.
pub fn run_sealed_bench(
    args: &SealedBenchArgs,
    out: &mut dyn Write,
) -> Result<(), SealedBenchError> {
    std::env::set_var(silk_engine::kernels::THREADS_ENV, args.threads.to_string());
    if !args.json {
        writeln!(out, "{}", table::heading(args))?;
        out.flush()?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| SealedBenchError::Setup(format!("async runtime: {e}")))?;
    let empty = || vec![Vec::new(); args.concurrency.len()];
    let mut collected = Collected {
        proxy: empty(),
        session: empty(),
        direct: empty(),
    };
    let mut costs = (
        AttestFigures::default(),
        PathFigures::default(),
        FirstAnswerFigures::default(),
    );
    let progress = silk_cli::progress::steps(2 * args.reps as u64, "silk bench sealed");
    for rep in 0..args.reps {
        silk_cli::progress::say(
            &progress,
            format!(
                "repetition {}/{}: sealed (SIMULATED TEE enclave child)",
                rep + 1,
                args.reps
            ),
        );
        let first = (rep == 0).then_some(args.attest_reps);
        if let Some(a) = runtime.block_on(sealed_phase(args, &mut collected, first))? {
            costs = a;
        }
        progress.inc(1);
        // The enclave has exited: the direct engine has the machine to itself.
        silk_cli::progress::say(
            &progress,
            format!(
                "repetition {}/{}: direct (engine in-process)",
                rep + 1,
                args.reps
            ),
        );
        direct_phase(args, &mut collected)?;
        progress.inc(1);
    }
    let recorded = first::recorded(args.attest_reps)?;
    progress.finish_and_clear();
    let summarise = |rounds: &[Vec<Vec<Sample>>]| rounds.iter().map(|r| figures(r)).collect();
    let direct: Vec<Figures> = summarise(&collected.direct);
    // The engine's own first token: the direct path with the fewest sessions.
    let mut first_answer = costs.2;
    if let Some((k, _)) = args.concurrency.iter().enumerate().min_by_key(|(_, n)| **n) {
        first_answer.engine_ttft_ms = direct[k].ttft_p50_ms;
        first_answer.added_ms = first_answer.total_ms - first_answer.engine_ttft_ms;
    }
    let table = Table {
        proxy: summarise(&collected.proxy),
        session: summarise(&collected.session),
        direct,
        attest: costs.0,
        path: costs.1,
        first_answer,
        recorded,
    };
    if args.json {
        silk_cli::json(out, &table::json(args, &table))?;
        return Ok(());
    }
    table::print(args, &table, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_real_evidence_fails_only_at_the_claims_binding() {
        // `recorded` itself refuses a verdict with any other failure.
        let r = first::recorded(2).expect("recorded bundles verify up to the binding");
        assert_eq!(r.reps, 2);
        assert!(
            r.snp_ms > 0.0 && r.tdx_ms > 0.0 && r.tdx_cached_ms > 0.0,
            "{r:?}"
        );
    }

    #[test]
    fn bodies_stream_greedily_with_usage() {
        let v: Value = serde_json::from_slice(&chat_body("hi", 7)).unwrap();
        assert_eq!(v["max_tokens"], 7);
        assert_eq!(v["temperature"], 0);
        assert_eq!(v["stream_options"]["include_usage"], true);
    }

    #[test]
    fn sse_timer_needs_text_usage_and_done() {
        let start = Instant::now();
        let mut t = SseTimer::default();
        t.push(b"data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n")
            .unwrap();
        assert!(t.first.is_none());
        t.push(b"data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n")
            .unwrap();
        t.push(b"data: {\"choices\":[],\"usage\":{\"completion_tokens\":3}}\n\ndata: [DONE]\n\n")
            .unwrap();
        let s = t.finish(start).unwrap();
        assert_eq!(s.tokens, 3);
        let mut t = SseTimer::default();
        assert!(t
            .push(b"data: {\"error\":{\"message\":\"x\"}}\n\n")
            .is_err());
    }
}
