//! Sealed forwarding: `POST /v1/sealed` with `silk-worker: <id>` goes to that worker over
//! a pooled RA-TLS connection, and its answer streams back chunk by chunk.
//!
//! The router cannot open either direction. It reads the request within the enclave's
//! bounds, then holds one of the worker's request slots for the rest of the exchange
//! (never while a client uploads, so slow uploads cannot fill a worker), and relays the
//! answer as it arrives, passing on together the frames already there (at most 64 KiB,
//! never the answer whole; see `Relay::poll_frame`), under two deadlines: the
//! first byte (to the response head and on to the first body chunk) and idle between
//! chunks. When one fires the answer is cut with an error, so the client sees a truncated
//! sealed stream and fails over. On the way it reads the stream's framing with
//! [`FrameScanner`] to keep the receipt's clear copy, which it verifies and counts when the
//! stream ends.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use http_body_util::Full;
use hyper::body::{Frame, Incoming};
use silk_protocol::network::{FrameScanner, HEADER_OFFER, HEADER_WORKER};
use silk_protocol::receipt::Receipt;
use silk_protocol::wire;
use tokio::time::Sleep;

use crate::error::ApiError;
use crate::pool::{Conn, Pool, Sender};
use crate::registry::{Reason, Slot, Worker};
use crate::server::{listed, AppState};
use silk_net::body::{declared_length, drain};

/// `POST /v1/sealed`.
pub async fn sealed(State(s): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    match forward(&s, &headers, body).await {
        // The outcome of a relayed answer is counted when its stream ends.
        Ok(r) => r,
        Err(e) => {
            s.metrics.request("sealed", e.code);
            e.into_response()
        }
    }
}

/// The worker a sealed request goes to: the one it names, or — for a spread request that
/// names several (comma-separated, at most eight) — the least loaded of those that are
/// listed and not full. The router balances load; the client chose the set.
fn named_worker(s: &AppState, headers: &HeaderMap) -> Result<Arc<Worker<Pool>>, ApiError> {
    let ids: Vec<&str> = headers
        .get(HEADER_WORKER)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(',').map(str::trim).collect())
        .filter(|ids: &Vec<&str>| {
            (1..=silk_protocol::spread::MAX_RECIPIENTS).contains(&ids.len())
                && ids
                    .iter()
                    .all(|id| id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        })
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "missing_worker",
                format!(
                    "the `{HEADER_WORKER}` header must name a worker id (64 hex digits), or up \
                     to eight separated by commas"
                ),
            )
        })?;
    let now = std::time::Instant::now();
    let mut first_error = None;
    // (full, load share): those with room first, then the least loaded.
    type Rank = (bool, f64);
    let mut best: Option<(Rank, Arc<Worker<Pool>>)> = None;
    for id in &ids {
        match listed(s, id) {
            Ok(w) => {
                let load = w.load.load(now);
                let key = (
                    w.load.is_full(),
                    (load.in_flight + load.queue) as f64 / load.limit.max(1) as f64,
                );
                if best.as_ref().is_none_or(|(b, _)| key < *b) {
                    best = Some((key, w));
                }
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match (best, first_error) {
        (Some((_, w)), _) => Ok(w),
        (None, Some(e)) => Err(e),
        (None, None) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "missing_worker",
            "no worker named",
        )),
    }
}

async fn forward(
    s: &Arc<AppState>,
    headers: &HeaderMap,
    mut body: Body,
) -> Result<Response, ApiError> {
    let start = tokio::time::Instant::now();
    let declared = declared_length(headers);
    // Refusals before the body is read drain it, so that a client still writing reads
    // the refusal rather than a reset.
    let worker = match named_worker(s, headers) {
        Ok(w) => w,
        Err(e) => {
            drain(&mut body, declared, wire::MAX_SEALED_BODY, &s.limits, start).await;
            return Err(e);
        }
    };
    let busy = |s: &AppState| {
        s.metrics.error("worker_busy");
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "worker_busy",
            format!(
                "the worker has {} requests in flight through this router, its limit",
                worker.load.in_flight()
            ),
        )
        .retry_after(1)
    };
    // A full worker is refused before its body is read; the slot itself is taken only
    // once the body is in, so that slow uploads cannot hold a worker's slots.
    if worker.load.is_full() {
        drain(&mut body, declared, wire::MAX_SEALED_BODY, &s.limits, start).await;
        return Err(busy(s));
    }
    let (sealed, _budget) = s.read_body(wire::MAX_SEALED_BODY, declared, body).await?;
    let slot = worker.load.try_begin().ok_or_else(|| busy(s))?;
    let sealed = Bytes::from(sealed);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or(HeaderValue::from_static(wire::SEALED_REQUEST_TYPE));
    let offer = headers.get(HEADER_OFFER).cloned();
    let request = |sealed: Bytes| {
        let mut b = hyper::Request::post(wire::PATH_SEALED)
            .header(header::HOST, worker.conn.address())
            .header(header::CONTENT_TYPE, content_type.clone());
        if let Some(o) = &offer {
            b = b.header(HEADER_OFFER, o.clone());
        }
        b.body(Full::new(sealed))
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_header", e.to_string()))
    };
    let mut conn = connect(s, &worker, false).await?;
    let sent = tokio::time::Instant::now();
    let first_byte = s.timeouts.first_byte;
    let response = loop {
        let call = conn.sender.send_request(request(sealed.clone())?);
        match tokio::time::timeout_at(sent + first_byte, call).await {
            Err(_) => {
                s.metrics.error("first_byte_timeout");
                return Err(ApiError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "first_byte_timeout",
                    format!("the worker did not answer within {first_byte:?}"),
                ));
            }
            Ok(Ok(r)) => break r,
            // A pooled connection the worker closed just now: once more on a new one. A
            // request that did arrive is refused by the enclave as a replay.
            Ok(Err(_)) if conn.reused => conn = connect(s, &worker, true).await?,
            Ok(Err(e)) => {
                s.metrics.error("worker_reset");
                return Err(ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "worker_failed",
                    format!("the exchange with the worker failed: {e}"),
                ));
            }
        }
    };
    s.metrics.bytes_up.inc_by(sealed.len() as u64);
    s.metrics
        .first_byte(worker.listing.short_id(), sent.elapsed().as_secs_f64());
    let status = response.status();
    let mut out = Response::builder().status(status);
    for name in [header::CONTENT_TYPE, header::RETRY_AFTER] {
        if let Some(v) = response.headers().get(&name) {
            out = out.header(name, v.clone());
        }
    }
    let is_stream = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v == wire::SEALED_STREAM_TYPE);
    let relay = Relay {
        inner: response.into_body(),
        timer: Box::pin(tokio::time::sleep_until(sent + first_byte)),
        idle: s.timeouts.idle,
        first_byte,
        seen_data: false,
        scanner: is_stream.then(FrameScanner::default),
        pending: BytesMut::new(),
        waits: 0,
        next: None,
        end: Some(End {
            state: s.clone(),
            worker: worker.clone(),
            sender: Some(conn.sender),
            status,
            _slot: slot,
        }),
    };
    out.body(Body::new(relay))
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "worker_failed", e.to_string()))
}

/// A connection to the worker; when none can be opened the worker is unlisted (clients
/// fail over to another) and the client hears 502 `worker_unreachable`.
async fn connect(s: &AppState, worker: &Arc<Worker<Pool>>, fresh: bool) -> Result<Conn, ApiError> {
    let got = if fresh {
        worker.conn.open(&s.connector).await
    } else {
        worker.conn.get(&s.connector).await
    };
    got.map_err(|e| {
        s.metrics.error(e.class());
        s.unlist(worker, Reason::ForwardFailed, &e.to_string());
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "worker_unreachable",
            format!("the router could not reach the worker: {e}"),
        )
    })
}

/// How a relayed answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// The worker's body ended.
    Complete,
    /// No first byte in time.
    FirstByteTimeout,
    /// Too long between chunks.
    IdleTimeout,
    /// The worker's connection failed mid-answer.
    WorkerReset,
    /// The client went away (the body was dropped before its end).
    ClientGone,
}

impl Ended {
    fn as_str(self) -> &'static str {
        match self {
            Ended::Complete => "ok",
            Ended::FirstByteTimeout => "first_byte_timeout",
            Ended::IdleTimeout => "idle_timeout",
            Ended::WorkerReset => "worker_reset",
            Ended::ClientGone => "client_gone",
        }
    }
}

/// Why a relayed answer was cut.
#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("{which} timeout after {after:?}: the answer was cut")]
    Deadline {
        which: &'static str,
        after: Duration,
    },
    #[error("the worker's answer failed: {0}")]
    Worker(String),
}

/// What is done once, when a relayed answer ends however it ends.
struct End {
    state: Arc<AppState>,
    worker: Arc<Worker<Pool>>,
    /// Given back to the pool only after a complete answer.
    sender: Option<Sender>,
    status: StatusCode,
    /// The worker's request slot, held until the answer ends or is dropped.
    _slot: Slot,
}

/// The worker's answer on its way to the client: frames pass through as they arrive.
struct Relay {
    inner: Incoming,
    timer: Pin<Box<Sleep>>,
    idle: Duration,
    first_byte: Duration,
    seen_data: bool,
    scanner: Option<FrameScanner>,
    /// Answer bytes received and not yet passed on (see [`Relay::poll_frame`]).
    pending: BytesMut,
    /// Polls in a row that found nothing new while `pending` was held.
    waits: u8,
    /// What to pass on after `pending`: trailers, or the error that cut the answer.
    next: Option<Result<Frame<Bytes>, BoxError>>,
    end: Option<End>,
}

type BoxError = Box<dyn StdError + Send + Sync>;

/// Most answer bytes coalesced into one write towards the client.
const COALESCE: usize = 64 << 10;
/// Polls without news the relay waits through before passing on what it holds. hyper polls
/// a response body twice in a row before its connection task yields, so two are one turn
/// of the scheduler.
const WAITS: u8 = 2;

impl Relay {
    /// The bytes held, as one frame.
    fn take_pending(&mut self) -> Option<Frame<Bytes>> {
        (!self.pending.is_empty()).then(|| Frame::data(self.pending.split().freeze()))
    }

    fn finish(&mut self, ended: Ended) {
        let Some(mut end) = self.end.take() else {
            return;
        };
        let s = &end.state;
        let outcome = match ended {
            Ended::Complete if !end.status.is_success() => "worker_error",
            other => other.as_str(),
        };
        s.metrics.request("sealed", outcome);
        if ended != Ended::Complete {
            s.metrics.error(ended.as_str());
            let worker = end.worker.listing.short_id();
            // Clients leave all the time; the worker failing is worth an operator's eye.
            if ended == Ended::ClientGone {
                tracing::debug!(worker, outcome, "sealed answer ended early");
            } else {
                tracing::info!(worker, outcome, "sealed answer ended early");
            }
            return;
        }
        if let Some(sender) = end.sender.take() {
            end.worker.conn.release(sender);
        }
        if let Some(receipt) = self.scanner.as_ref().and_then(|sc| sc.clear_receipt()) {
            record_receipt(s, &end.worker, receipt);
        }
    }
}

/// Verifies a clear receipt under the worker's receipt key; counts its tokens and logs it.
fn record_receipt(s: &AppState, worker: &Worker<Pool>, signed: &[u8]) {
    let listing = &worker.listing;
    let receipt = match Receipt::verify(signed, &listing.claims.receipt_public_key) {
        Ok(r) if r.worker_id == listing.id_bytes => r,
        Ok(_) => {
            s.metrics.receipts_invalid.inc();
            tracing::info!(worker = listing.short_id(), "receipt names another worker");
            return;
        }
        Err(e) => {
            s.metrics.receipts_invalid.inc();
            tracing::info!(
                worker = listing.short_id(),
                check = e.check(),
                "receipt refused"
            );
            return;
        }
    };
    worker
        .load
        .record_tokens(Instant::now(), u64::from(receipt.completion_tokens));
    s.metrics.receipts_seen.inc();
    if let Some(tx) = &s.receipts {
        let line = serde_json::json!({"worker": listing.id, "receipt": hex::encode(signed)});
        // Never wait on the file: a line that does not fit is counted, not queued.
        if tx.try_send(line.to_string()).is_err() {
            s.metrics.receipts_dropped.inc();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.finish(Ended::ClientGone);
    }
}

impl hyper::body::Body for Relay {
    type Data = Bytes;
    type Error = BoxError;

    /// Passes the worker's answer on, coalescing what is ready. hyper hands over the
    /// worker's HTTP chunks one at a time (its connection task decodes the next only after
    /// this one is taken), and the client side writes whatever it got before waiting: one
    /// write and one TCP segment per sealed frame, even when a whole answer has arrived.
    /// So after a chunk the relay takes what else is ready, and when nothing is, yields for
    /// one turn of the scheduler (letting the connection task decode the next chunk)
    /// before passing on what it holds. A lone chunk (a token) is delayed by that turn,
    /// not by a timer.
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        loop {
            if this.next.is_some() || this.end.is_none() || this.pending.len() >= COALESCE {
                if let Some(held) = this.take_pending() {
                    return Poll::Ready(Some(Ok(held)));
                }
                if let Some(next) = this.next.take() {
                    return Poll::Ready(Some(next));
                }
                if this.end.is_none() {
                    return Poll::Ready(None);
                }
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let data = match frame.into_data() {
                        Ok(d) if d.is_empty() => continue,
                        Ok(d) => d,
                        // Trailers (workers send none), after what is held.
                        Err(other) => {
                            this.next = Some(Ok(other));
                            continue;
                        }
                    };
                    if let Some(sc) = this.scanner.as_mut() {
                        sc.push(&data);
                    }
                    if let Some(end) = &this.end {
                        end.state.metrics.bytes_down.inc_by(data.len() as u64);
                    }
                    this.seen_data = true;
                    let next = tokio::time::Instant::now() + this.idle;
                    this.timer.as_mut().reset(next);
                    this.waits = 0;
                    this.pending.extend_from_slice(&data);
                }
                Poll::Ready(Some(Err(e))) => {
                    // What came before the failure first, then the error that cuts it.
                    this.finish(Ended::WorkerReset);
                    this.next = Some(Err(Box::new(RelayError::Worker(e.to_string()))));
                }
                Poll::Ready(None) => this.finish(Ended::Complete),
                Poll::Pending if !this.pending.is_empty() => {
                    if this.waits >= WAITS {
                        this.waits = 0;
                        return Poll::Ready(this.take_pending().map(Ok));
                    }
                    this.waits += 1;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Poll::Pending => {
                    return match this.timer.as_mut().poll(cx) {
                        Poll::Ready(()) => {
                            let (ended, which, after) = if this.seen_data {
                                (Ended::IdleTimeout, "idle between answer chunks", this.idle)
                            } else {
                                (
                                    Ended::FirstByteTimeout,
                                    "first answer byte",
                                    this.first_byte,
                                )
                            };
                            this.finish(ended);
                            Poll::Ready(Some(Err(Box::new(RelayError::Deadline { which, after }))))
                        }
                        Poll::Pending => Poll::Pending,
                    };
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.end.is_none() && self.pending.is_empty() && self.next.is_none()
    }
}
