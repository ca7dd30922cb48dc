//! The client-facing TCP relay: opaque bytes to and from the enclave.
//!
//! The host is the adversary the protocol is designed against, so the relay deliberately
//! knows nothing of what it carries: no TLS termination, no HTTP parsing, no buffering
//! beyond the copy loop. It counts bytes as they pass (live, so long token streams show up
//! in `/metrics` while they run) and nothing else.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::metrics::Metrics;

/// How long to wait for the guest to accept a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A relayed connection with no byte either way for this long is closed. The enclave's
/// own deadlines (head, body, keep-alive) are far shorter; this one guards the host
/// against a guest that stopped answering without closing.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Most connections relayed at once (two descriptors each); beyond it new clients are
/// closed at once and counted, so the host keeps descriptors for its own work.
pub const MAX_CONNECTIONS: usize = 4096;

/// Accepts clients on `listener` and relays each to `target` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    target: SocketAddr,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        match accepted {
            Ok((client, peer)) => {
                backoff = Duration::from_millis(5);
                metrics.relay_connections.inc();
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    metrics.relay_refused.inc();
                    tracing::warn!(%peer, "relay at its cap of {MAX_CONNECTIONS} connections: refused");
                    drop(client);
                    continue;
                };
                let metrics = metrics.clone();
                tokio::spawn(async move {
                    let _slot = slot;
                    metrics.relay_active.inc();
                    if let Err(e) = relay_one(client, target, &metrics).await {
                        tracing::debug!(%peer, "relay connection ended: {e}");
                    }
                    metrics.relay_active.dec();
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!("relay accept failed: {e}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

async fn relay_one(client: TcpStream, target: SocketAddr, metrics: &Metrics) -> io::Result<()> {
    let guest = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            metrics.relay_connect_errors.inc();
            return Err(e);
        }
        Err(_) => {
            metrics.relay_connect_errors.inc();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the guest did not accept in time",
            ));
        }
    };
    // Tokens stream in small writes; Nagle would hold them back.
    client.set_nodelay(true)?;
    guest.set_nodelay(true)?;
    let activity = AtomicU64::new(0);
    let started = tokio::time::Instant::now();
    let mut client = Counted {
        inner: client,
        count: &metrics.bytes_to_guest,
        activity: &activity,
        started,
    };
    let mut guest = Counted {
        inner: guest,
        count: &metrics.bytes_to_client,
        activity: &activity,
        started,
    };
    let idle = async {
        loop {
            let last = started + Duration::from_millis(activity.load(Ordering::Relaxed));
            if last.elapsed() >= IDLE_TIMEOUT {
                return;
            }
            tokio::time::sleep_until(last + IDLE_TIMEOUT).await;
        }
    };
    tokio::select! {
        r = tokio::io::copy_bidirectional(&mut client, &mut guest) => { r?; }
        () = idle => {
            metrics.relay_idle_closed.inc();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("idle timeout after {IDLE_TIMEOUT:?} (no byte either way)"),
            ));
        }
    }
    Ok(())
}

/// A stream that adds every byte read from it to a counter.
struct Counted<'a, S> {
    inner: S,
    count: &'a Counter,
    /// Milliseconds after `started` of the last byte either way.
    activity: &'a AtomicU64,
    started: tokio::time::Instant,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.count.inc_by(n as u64);
            let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.activity.store(ms, Ordering::Relaxed);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<'_, S> {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn start(target: SocketAddr) -> (SocketAddr, Arc<Metrics>, watch::Sender<bool>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Arc::new(Metrics::default());
        let (tx, rx) = watch::channel(false);
        tokio::spawn(serve(listener, target, metrics.clone(), rx));
        (addr, metrics, tx)
    }

    #[tokio::test]
    async fn relays_bytes_both_ways_unchanged_and_counts_them() {
        // An "enclave" that answers each chunk with its reverse, binary-safe.
        let guest = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let guest_addr = guest.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = guest.accept().await.unwrap();
            let mut buf = vec![0u8; 300];
            s.read_exact(&mut buf).await.unwrap();
            buf.reverse();
            s.write_all(&buf).await.unwrap();
            s.write_all(b"!!").await.unwrap();
        });
        let (addr, metrics, _tx) = start(guest_addr).await;
        let mut c = TcpStream::connect(addr).await.unwrap();
        let payload: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
        c.write_all(&payload).await.unwrap();
        let mut back = Vec::new();
        c.read_to_end(&mut back).await.unwrap();
        let mut want = payload.clone();
        want.reverse();
        want.extend_from_slice(b"!!");
        assert_eq!(back, want);
        drop(c);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(metrics.bytes_to_guest.get(), 300);
        assert_eq!(metrics.bytes_to_client.get(), 302);
        assert_eq!(metrics.relay_connections.get(), 1);
        assert_eq!(metrics.relay_active.get(), 0);
    }

    #[tokio::test]
    async fn unreachable_guest_closes_the_client_and_counts_it() {
        // Bind then drop: nothing listens there now.
        let dead = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let (addr, metrics, _tx) = start(dead).await;
        let mut c = TcpStream::connect(addr).await.unwrap();
        let mut buf = Vec::new();
        let n = c.read_to_end(&mut buf).await.unwrap_or(0);
        assert_eq!(n, 0);
        assert_eq!(metrics.relay_connect_errors.get(), 1);
    }

    #[tokio::test]
    async fn stops_accepting_on_shutdown() {
        let (addr, _m, tx) = start("127.0.0.1:9".parse().unwrap()).await;
        tx.send(true).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(TcpStream::connect(addr).await.is_err());
    }
}
