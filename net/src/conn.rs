//! The enclave's connections: bounded in number, timed at every stage, and evictable.
//!
//! A hostile peer may connect and say nothing, stop after the TLS handshake, send a
//! request head one byte at a time, sit idle on keep-alive, or open more connections
//! than the process has file descriptors. Each stage has its own deadline, named when it
//! fires (TLS handshake, request head, keep-alive idle; the request body's minimum rate
//! is the handler's: [`Limits::body_deadline`]). Connections are capped below the open-files
//! limit; at the cap a new connection evicts the oldest one that has no request in
//! flight, so health checks and real clients get in while idle attackers are let go.
//! Accept errors back off (never a busy loop) and also evict.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

use crate::metrics::{ConnMetrics, Deadline};

/// Deadlines and bounds of a listener.
#[derive(Clone, Debug)]
pub struct Limits {
    /// From accept to a finished TLS handshake.
    pub tls_handshake: Duration,
    /// From the connection's start (or a request's first byte) to its complete head.
    pub request_head: Duration,
    /// How long a connection may sit between requests.
    pub keep_alive: Duration,
    /// A request body may take this long before the minimum rate applies.
    pub body_grace: Duration,
    /// The slowest accepted request body, in bytes per second, after the grace period.
    pub body_min_rate: u64,
    /// Most open connections per listener; `None`: derived from the open-files limit.
    pub max_connections: Option<usize>,
    /// Most bytes of request bodies held at once, over all connections.
    pub body_budget: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            tls_handshake: Duration::from_secs(10),
            request_head: Duration::from_secs(10),
            keep_alive: Duration::from_secs(30),
            body_grace: Duration::from_secs(10),
            body_min_rate: 64 * 1024,
            max_connections: None,
            body_budget: 64 << 20,
        }
    }
}

/// The most hyper buffers of one connection's input.
const READ_BUFFER: usize = 64 * 1024;

/// File descriptors kept free of client connections: the model, the listeners, evidence
/// devices, logs, health checks in the middle of an eviction.
const FD_RESERVE: u64 = 128;

impl Limits {
    /// When a request body that started arriving at `start` must have more than
    /// `received` bytes: the grace period, then the minimum rate.
    pub fn body_deadline(&self, start: Instant, received: usize) -> Instant {
        start
            + self.body_grace
            + Duration::from_secs_f64(received as f64 / self.body_min_rate.max(1) as f64)
    }

    /// The connection cap for a process whose soft open-files limit is `nofile`.
    pub fn connection_cap(&self, nofile: u64) -> usize {
        let by_fds = usize::try_from(nofile.saturating_sub(FD_RESERVE).max(16)).unwrap_or(16);
        self.max_connections.map_or(by_fds, |m| m.min(by_fds))
    }
}

/// One connection's state, shared by its IO wrapper, its requests and the table.
pub struct ConnState {
    /// Requests whose response has not finished.
    inflight: AtomicUsize,
    /// When the connection went idle (opened, or its last response finished).
    idle_since: Mutex<Instant>,
    /// When the current request's first byte arrived, while its head is incomplete.
    head_started: Mutex<Option<Instant>>,
    /// Whether a request has been served (the first waits on `request_head`).
    served: std::sync::atomic::AtomicBool,
    /// Told to close (evicted at the cap).
    evict: Notify,
    /// The deadline that closed the connection, if one did. Recorded where it fires:
    /// hyper reports a read error on a connection with no request under way as a plain
    /// close, so the error alone would not say.
    fired: std::sync::OnceLock<Deadline>,
    /// The read waiting while a request was in flight; woken when the last one ends.
    reader: Mutex<Option<std::task::Waker>>,
}

impl ConnState {
    fn new() -> Self {
        Self {
            inflight: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
            head_started: Mutex::new(None),
            served: std::sync::atomic::AtomicBool::new(false),
            evict: Notify::new(),
            fired: std::sync::OnceLock::new(),
            reader: Mutex::new(None),
        }
    }

    /// A request's head is complete and it is being handled; returns the guard that ends
    /// it when its response is finished (or dropped).
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.inflight.fetch_add(1, Ordering::AcqRel);
        self.served.store(true, Ordering::Release);
        if let Ok(mut h) = self.head_started.lock() {
            *h = None;
        }
        InFlight(self.clone())
    }

    fn busy(&self) -> bool {
        self.inflight.load(Ordering::Acquire) > 0
    }
}

/// A request in flight; dropping it (with the response body) ends it.
pub struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.inflight.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Ok(mut t) = self.0.idle_since.lock() {
                *t = Instant::now();
            }
            // A read that went pending while the request was in flight armed no
            // deadline: wake it so that the keep-alive deadline starts now.
            if let Some(w) = self.0.reader.lock().ok().and_then(|mut w| w.take()) {
                w.wake();
            }
        }
    }
}

/// A connection deadline that passed: the error its reads fail with, so that the
/// listener can count it by name.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("{} timeout after {after:?}", match deadline {
    Deadline::RequestHead => "request head",
    Deadline::KeepAliveIdle => "keep-alive idle",
    Deadline::TlsHandshake => "TLS handshake",
    Deadline::RequestBody => "request body",
})]
struct DeadlinePassed {
    deadline: Deadline,
    after: Duration,
}

/// The IO of one connection, with the head and keep-alive deadlines: a read that waits
/// past them while no request is in flight fails with `TimedOut`, naming the deadline.
struct Guarded<S> {
    inner: S,
    state: Arc<ConnState>,
    limits: Arc<Limits>,
    timer: Pin<Box<Sleep>>,
}

impl<S> Guarded<S> {
    /// The deadline the next read waits under, and when it passes.
    fn deadline(&self) -> (Instant, DeadlinePassed) {
        let head = self.state.head_started.lock().ok().and_then(|h| *h);
        let since = self
            .state
            .idle_since
            .lock()
            .map_or_else(|_| Instant::now(), |t| *t);
        // A request's head counts from its first byte; the first request's also from the
        // connection's start; later waits are keep-alive.
        let (from, deadline, after) = match head {
            Some(start) => (start, Deadline::RequestHead, self.limits.request_head),
            None if self.state.served.load(Ordering::Acquire) => {
                (since, Deadline::KeepAliveIdle, self.limits.keep_alive)
            }
            None => (since, Deadline::RequestHead, self.limits.request_head),
        };
        (from + after, DeadlinePassed { deadline, after })
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before && !self.state.busy() {
                    if let Ok(mut h) = self.state.head_started.lock() {
                        h.get_or_insert_with(Instant::now);
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if self.state.busy() {
                    // The handlers time bodies themselves; answers may take minutes. The
                    // read is woken when the last request ends, to arm its deadline then.
                    if let Ok(mut w) = self.state.reader.lock() {
                        *w = Some(cx.waker().clone());
                    }
                    if self.state.busy() {
                        return Poll::Pending;
                    }
                }
                let (at, passed) = self.deadline();
                if self.timer.deadline() != at {
                    self.timer.as_mut().reset(at);
                }
                match self.timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        let _ = self.state.fired.set(passed.deadline);
                        Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, passed)))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The open connections of one listener, oldest first.
#[derive(Default)]
struct Table {
    next: AtomicU64,
    open: Mutex<BTreeMap<u64, Arc<ConnState>>>,
}

impl Table {
    fn len(&self) -> usize {
        self.open.lock().map_or(0, |o| o.len())
    }

    fn add(self: &Arc<Self>, state: Arc<ConnState>) -> Registration {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut o) = self.open.lock() {
            o.insert(id, state);
        }
        Registration {
            table: self.clone(),
            id,
        }
    }

    /// Tells the oldest connection with no request in flight to close. Returns whether
    /// there was one.
    fn evict_one(&self) -> bool {
        let Ok(mut open) = self.open.lock() else {
            return false;
        };
        let victim = open
            .iter()
            .find(|(_, s)| !s.busy())
            .map(|(id, s)| (*id, s.clone()));
        match victim {
            Some((id, s)) => {
                open.remove(&id);
                s.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Removes a connection from the table when its task ends.
struct Registration {
    table: Arc<Table>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut o) = self.table.open.lock() {
            o.remove(&self.id);
        }
    }
}

/// Serves `app` on `listener`, over TLS when `tls` is given, until the task is dropped.
pub async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Router,
    limits: Arc<Limits>,
    cap: usize,
    stats: ConnMetrics,
) {
    let table = Arc::new(Table::default());
    let mut backoff = Duration::from_millis(5);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => {
                backoff = Duration::from_millis(5);
                c
            }
            Err(e) => {
                stats.accept_errors.inc();
                // Out of descriptors: free one held by an idle peer, and wait a little
                // longer each time rather than spin on the same error.
                let evicted = table.evict_one();
                tracing::warn!(
                    open = table.len(),
                    evicted,
                    "accept failed: {e}; retrying in {backoff:?}"
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        if table.len() >= cap {
            if table.evict_one() {
                stats.evicted.inc();
                tracing::debug!(%peer, cap, "connection cap reached: evicted an idle connection");
            } else {
                stats.refused.inc();
                tracing::warn!(%peer, cap, "connection cap reached with every connection busy: refused");
                drop(tcp);
                continue;
            }
        }
        // Every sealed token is its own small write: without this, Nagle holds each one
        // back until the previous is acknowledged.
        let _ = tcp.set_nodelay(true);
        let state = Arc::new(ConnState::new());
        let registration = table.add(state.clone());
        let (tls, app, limits, stats) = (tls.clone(), app.clone(), limits.clone(), stats.clone());
        tokio::spawn(async move {
            let _registration = registration;
            stats.open.inc();
            let _open = OpenGuard(stats.open.clone());
            let watched = state.clone();
            let evicted = watched.evict.notified();
            tokio::pin!(evicted);
            let ended = match tls {
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(limits.tls_handshake, acceptor.accept(tcp));
                    let stream = tokio::select! {
                        r = handshake => r,
                        () = &mut evicted => return,
                    };
                    match stream {
                        Ok(Ok(s)) => {
                            tracing::debug!(%peer, "TLS handshake done");
                            connection(s, state, app, &limits, &mut evicted).await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, "TLS handshake failed: {e}");
                            return;
                        }
                        Err(_) => {
                            stats.timed_out(Deadline::TlsHandshake);
                            tracing::debug!(%peer, "TLS handshake timeout after {:?}", limits.tls_handshake);
                            return;
                        }
                    }
                }
                None => connection(tcp, state, app, &limits, &mut evicted).await,
            };
            if let Some(deadline) = watched.fired.get() {
                stats.timed_out(*deadline);
                tracing::debug!(%peer, ?deadline, "connection closed at its deadline");
            }
            match ended {
                Ended::Closed => tracing::debug!(%peer, "connection closed"),
                Ended::Evicted => tracing::debug!(%peer, "connection evicted at the cap"),
                Ended::Error(e) => tracing::debug!(%peer, "connection ended: {e}"),
            }
        });
    }
}

/// Counts a connection out of the open gauge when its task ends, however it ends.
struct OpenGuard(prometheus_client::metrics::gauge::Gauge);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

enum Ended {
    Closed,
    Evicted,
    Error(hyper::Error),
}

async fn connection<S>(
    io: S,
    state: Arc<ConnState>,
    app: Router,
    limits: &Arc<Limits>,
    evicted: &mut Pin<&mut tokio::sync::futures::Notified<'_>>,
) -> Ended
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let guarded = Guarded {
        inner: io,
        state: state.clone(),
        limits: limits.clone(),
        timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
    };
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let guard = state.begin();
        let call = tower::ServiceExt::oneshot(app.clone(), req);
        async move {
            let response = call.await?;
            // The request stays in flight until its (possibly streamed) body is done.
            Ok::<_, std::convert::Infallible>(response.map(|body| {
                axum::body::Body::new(http_body_util::BodyExt::map_frame(body, move |f| {
                    let _ = &guard;
                    f
                }))
            }))
        }
    });
    // hyper's read buffer grows to ~400 KiB while a body streams in; at the connection
    // cap that alone could be hundreds of MiB, so it is held to 64 KiB a connection.
    let conn = hyper::server::conn::http1::Builder::new()
        .max_buf_size(READ_BUFFER)
        .serve_connection(TokioIo::new(guarded), service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => match r {
            Ok(()) => Ended::Closed,
            Err(e) => Ended::Error(e),
        },
        () = evicted.as_mut() => Ended::Evicted,
    }
}

/// The open-files limit a server may plan with: raised to the hard limit first (logged when
/// it changed), or 1024 when it cannot be read (logged).
pub fn usable_open_files() -> u64 {
    match raise_nofile_limit() {
        Ok((before, after)) => {
            if after > before {
                tracing::info!("open-files limit raised from {before} to {after} (the hard limit)");
            }
            after
        }
        Err(e) => {
            tracing::warn!("cannot read or raise the open-files limit: {e}; assuming 1024");
            1024
        }
    }
}

/// Raises the soft open-files limit to the hard limit, so that the connection cap can be
/// as high as the system allows. Returns the soft limit in force afterwards.
pub fn raise_nofile_limit() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we own; no other memory is read.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let before = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: setrlimit reads the struct we own; it changes only this process's limit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok((before, lim.rlim_cur))
}

/// Makes glibc return large freed buffers to the system at once: request bodies of a few
/// MiB are otherwise kept in the heap after a burst (glibc raises its mmap threshold to
/// the largest buffer freed), so the memory of an attack would stay after it ends.
pub fn return_large_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; a fixed threshold also turns off the
    // dynamic adjustment. Called once at start, before buffers of that size exist.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}
