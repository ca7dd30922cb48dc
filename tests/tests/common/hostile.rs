//! A hostile TCP relay: it flips, drops, cuts, delays and holds back bytes in either
//! direction, on one chosen connection, the way an attacker on the path would.
//!
//! In TLS mode it works on whole TLS records, so that a fault lands where the test means
//! it: in the request (the client's second application-data record; the first is its
//! handshake Finished) or in the answer (the server's application-data records after the
//! request went up). In plain mode it works on byte offsets of the connection.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// What to do to one direction of the chosen connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forward as it is.
    Pass,
    /// Flip the byte at this offset (TLS: of the targeted record).
    Flip(usize),
    /// Drop `len` bytes at `from` (TLS: of the targeted record).
    Drop {
        /// Where.
        from: usize,
        /// How many.
        len: usize,
    },
    /// Close both sides (TLS: instead of forwarding the targeted record; plain: after
    /// this many bytes).
    Cut(usize),
    /// Stop forwarding (TLS: from the targeted record; plain: after this many bytes),
    /// keeping the connection open.
    Hold(usize),
    /// Delay every piece by this many milliseconds.
    DelayMs(u64),
    /// Never send the last piece (TLS: record) before a pause of 300 ms.
    DropLast,
}

/// Which connection to attack, and how.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// The connection's index, in accept order from 0.
    pub connection: usize,
    /// Client to server.
    pub up: Fault,
    /// Server to client.
    pub down: Fault,
    /// Whether the connection is TLS (record mode).
    pub tls: bool,
}

/// Starts the relay in front of `target`; returns its address.
pub async fn relay(target: std::net::SocketAddr, plan: Plan) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut index = 0;
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(target).await else {
                continue;
            };
            let chosen = index == plan.connection;
            index += 1;
            let (up, down) = if chosen {
                (plan.up, plan.down)
            } else {
                (Fault::Pass, Fault::Pass)
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            let shared = Arc::new(Shared::default());
            tokio::spawn(pump(cr, sw, up, plan.tls, true, shared.clone()));
            tokio::spawn(pump(sr, cw, down, plan.tls, false, shared));
        }
    });
    addr
}

/// What the two directions of one connection know of each other.
#[derive(Default)]
struct Shared {
    /// Application-data records the client sent.
    up_app_records: AtomicUsize,
    /// Set when a fault closes the connection.
    cut: AtomicBool,
}

async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    fault: Fault,
    tls: bool,
    up: bool,
    shared: Arc<Shared>,
) {
    let mut pending: Vec<u8> = Vec::new();
    let mut held: Option<Vec<u8>> = None;
    let mut offset = 0usize;
    let mut holding = false;
    let mut buf = vec![0u8; 16384];
    loop {
        let read = if fault == Fault::DropLast && held.is_some() {
            match tokio::time::timeout(Duration::from_millis(300), from.read(&mut buf)).await {
                Ok(r) => r,
                Err(_) => {
                    // Quiet: the held piece was the last one; it is never sent.
                    held = None;
                    continue;
                }
            }
        } else {
            from.read(&mut buf).await
        };
        let n = match read {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if shared.cut.load(Ordering::Acquire) {
            break;
        }
        pending.extend_from_slice(&buf[..n]);
        // The pieces to consider: whole records in TLS mode, whatever arrived otherwise.
        let pieces: Vec<Vec<u8>> = if tls {
            take_records(&mut pending)
        } else {
            vec![std::mem::take(&mut pending)]
        };
        for mut piece in pieces {
            let targeted = if tls {
                let app = piece.first() == Some(&23);
                if up {
                    // The client's second application-data record carries the request.
                    let i = if app {
                        shared.up_app_records.fetch_add(1, Ordering::AcqRel)
                    } else {
                        usize::MAX
                    };
                    i == 1
                } else {
                    app && shared.up_app_records.load(Ordering::Acquire) >= 2
                }
            } else {
                true
            };
            if holding {
                continue;
            }
            let start = offset;
            offset += piece.len();
            match fault {
                Fault::Pass => {}
                Fault::Flip(at) => {
                    let at = if tls { Some(at) } else { at.checked_sub(start) };
                    if let Some(i) = at.filter(|&i| targeted && i < piece.len()) {
                        piece[i] ^= 0x01;
                    }
                }
                Fault::Drop { from, len } => {
                    let from = if tls {
                        Some(from)
                    } else {
                        from.checked_sub(start)
                    };
                    if let Some(i) = from.filter(|&i| targeted && i < piece.len()) {
                        let end = (i + len).min(piece.len());
                        piece.drain(i..end);
                    }
                }
                Fault::Cut(at) | Fault::Hold(at) => {
                    let stop = if tls {
                        targeted.then_some(0)
                    } else if offset > at {
                        Some(at.saturating_sub(start))
                    } else {
                        None
                    };
                    if let Some(keep) = stop {
                        piece.truncate(keep);
                        let _ = to.write_all(&piece).await;
                        if matches!(fault, Fault::Cut(_)) {
                            shared.cut.store(true, Ordering::Release);
                            let _ = to.shutdown().await;
                            return;
                        }
                        holding = true;
                        continue;
                    }
                }
                Fault::DelayMs(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                Fault::DropLast => {
                    if targeted || !tls {
                        if let Some(prev) = held.replace(piece) {
                            if to.write_all(&prev).await.is_err() {
                                return;
                            }
                        }
                        continue;
                    }
                }
            }
            if to.write_all(&piece).await.is_err() {
                return;
            }
        }
    }
    if let Some(last) = held.take().filter(|_| fault != Fault::DropLast) {
        let _ = to.write_all(&last).await;
    }
    let _ = to.shutdown().await;
}

/// Takes the complete TLS records off the front of `buf`.
fn take_records(buf: &mut Vec<u8>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        if buf.len() < 5 {
            return out;
        }
        let len = usize::from(u16::from_be_bytes([buf[3], buf[4]]));
        if buf.len() < 5 + len {
            return out;
        }
        out.push(buf.drain(..5 + len).collect());
    }
}
