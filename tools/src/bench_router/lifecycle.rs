//! A worker's life as the router sees it: from starting a `silk-enclave --register` child
//! to its id listed and a sealed answer through the router, and from SIGKILL to its id gone
//! from the list.
//!
//! Enclaves register through a relay in this process that passes bytes to the router
//! unchanged and notes when each call's first byte arrived and when the router's answer
//! began: the first call is the first registration attempt (`GET /v1/workers/challenge`),
//! and the `POST /v1/workers` answered 200 gives the router's own share (reading and
//! checking the registration, its RA-TLS health probe of the worker, listing it).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::setup::{listed_ids, log_tail, EnclaveChild, RouterChild, Setup};
use super::RouterBenchError;
use crate::bench_sealed::{chat_body, PROMPTS};

/// How often the list is polled.
pub const POLL: Duration = Duration::from_millis(10);
/// Longest wait from `listening` to listed.
const LIST_TIMEOUT: Duration = Duration::from_secs(30);
/// Calls the relay remembers (workers re-register every half heartbeat).
const MAX_CALLS: usize = 100_000;

/// One call an enclave made to the router through the relay.
#[derive(Clone, Debug)]
pub struct Call {
    /// When its first byte arrived.
    pub at: Instant,
    /// Its request line.
    pub line: String,
    /// When the router's answer began.
    pub answered: Option<Instant>,
    /// The start of the router's answer (status line, headers, body).
    pub answer: String,
}

/// The relay between enclaves and the router.
pub struct Relay {
    /// `http://ADDR` for `--register`.
    pub url: String,
    calls: Arc<Mutex<Vec<Call>>>,
    task: JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Relay {
    /// Listens on 127.0.0.1 and relays every connection to `router`.
    pub async fn start(router: SocketAddr) -> Result<Self, RouterBenchError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| RouterBenchError::Setup(format!("relay: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| RouterBenchError::Setup(format!("relay: {e}")))?;
        let calls = Arc::new(Mutex::new(Vec::new()));
        let log = calls.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    tokio::time::sleep(POLL).await;
                    continue;
                };
                tokio::spawn(relay_one(tcp, router, log.clone()));
            }
        });
        Ok(Self {
            url: format!("http://{addr}"),
            calls,
            task,
        })
    }

    /// Calls whose first byte came at or after `since`.
    pub fn calls_since(&self, since: Instant) -> Vec<Call> {
        self.calls
            .lock()
            .map(|c| c.iter().filter(|c| c.at >= since).cloned().collect())
            .unwrap_or_default()
    }
}

async fn relay_one(mut inbound: TcpStream, router: SocketAddr, log: Arc<Mutex<Vec<Call>>>) {
    let _ = inbound.set_nodelay(true);
    let mut buf = vec![0u8; 64 << 10];
    let n = match inbound.read(&mut buf).await {
        Ok(n) if n > 0 => n,
        _ => return,
    };
    let at = Instant::now();
    let line = String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    let index = {
        let Ok(mut calls) = log.lock() else { return };
        if calls.len() >= MAX_CALLS {
            None
        } else {
            calls.push(Call {
                at,
                line,
                answered: None,
                answer: String::new(),
            });
            Some(calls.len() - 1)
        }
    };
    let Ok(mut out) = TcpStream::connect(router).await else {
        return;
    };
    let _ = out.set_nodelay(true);
    if out.write_all(&buf[..n]).await.is_err() {
        return;
    }
    let (mut ri, mut wi) = inbound.into_split();
    let (mut ro, mut wo) = out.into_split();
    let up = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut ri, &mut wo).await;
        let _ = wo.shutdown().await;
    });
    let mut first = true;
    while let Ok(n) = ro.read(&mut buf).await {
        if n == 0 {
            break;
        }
        if first {
            first = false;
            if let (Some(i), Ok(mut calls)) = (index, log.lock()) {
                calls[i].answered = Some(Instant::now());
                calls[i].answer = String::from_utf8_lossy(&buf[..n.min(1024)]).into_owned();
            }
        }
        if wi.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = wi.shutdown().await;
    up.abort();
}

/// One enclave's way onto the list.
#[derive(Clone, Debug)]
pub struct Registration {
    /// Spawn to its `listening` line (model load, keys, evidence).
    pub start_to_listening: Duration,
    /// Spawn to its first call to the router (the challenge).
    pub start_to_attempt: Duration,
    /// First call to listed (polled every [`POLL`]).
    pub attempt_to_listed: Duration,
    /// First call to the end of a sealed answer through the router.
    pub attempt_to_answer: Duration,
    /// Spawn to the end of that answer.
    pub start_to_answer: Duration,
    /// The router's share: the registration POST's first byte to its 200 answer.
    pub router_share: Duration,
}

/// Starts an enclave child registering through `relay` and times it until a sealed answer
/// through the router has ended. Returns the child, its id and the timings.
pub async fn start_registered(
    setup: &Setup,
    router: &mut RouterChild,
    relay: &Relay,
    n: usize,
) -> Result<(EnclaveChild, String, Registration), RouterBenchError> {
    let before = listed_ids(router.addr).await?;
    let child = setup.spawn_enclave(&relay.url, n).await?;
    let start = child.started;
    let id = match wait_listed(router.addr, &before, Instant::now() + LIST_TIMEOUT).await? {
        Some(id) => id,
        None => {
            router.check_alive()?;
            return Err(RouterBenchError::Setup(format!(
                "the enclave was not listed within {LIST_TIMEOUT:?} of starting; {}{}",
                refusals(&relay.calls_since(start)),
                log_tail(&child.log)
            )));
        }
    };
    let listed = Instant::now();
    // A client new to the network: list, verify, fresh evidence through the router, seal,
    // and one token back with its receipt.
    let network = setup.network(router)?;
    network
        .send(&chat_body(PROMPTS[0], 1))
        .await?
        .collect_with_receipt()
        .await?;
    let answered = Instant::now();
    let calls = relay.calls_since(start);
    let attempt = calls.first().map(|c| c.at).ok_or_else(|| {
        RouterBenchError::Setup("the relay saw no call from the listed enclave".into())
    })?;
    let post = calls
        .iter()
        .find(|c| c.line.starts_with("POST /v1/workers ") && c.answer.starts_with("HTTP/1.1 200"))
        .ok_or_else(|| {
            RouterBenchError::Setup(format!(
                "the relay saw no accepted registration; {}",
                refusals(&calls)
            ))
        })?;
    let router_share = post
        .answered
        .map_or(Duration::ZERO, |a| a.saturating_duration_since(post.at));
    let reg = Registration {
        start_to_listening: child.listening - start,
        start_to_attempt: attempt.saturating_duration_since(start),
        attempt_to_listed: listed.saturating_duration_since(attempt),
        attempt_to_answer: answered.saturating_duration_since(attempt),
        start_to_answer: answered - start,
        router_share,
    };
    Ok((child, id, reg))
}

/// The router's answers to registrations it did not accept, for an error message.
fn refusals(calls: &[Call]) -> String {
    let refused: Vec<String> = calls
        .iter()
        .filter(|c| c.line.starts_with("POST") && !c.answer.starts_with("HTTP/1.1 200"))
        .take(3)
        .map(|c| format!("  {}", c.answer.replace("\r\n", "\n  ")))
        .collect();
    if calls.is_empty() {
        "the enclave never called the router; ".into()
    } else if refused.is_empty() {
        String::new()
    } else {
        format!(
            "the router answered its registration:\n{}\n",
            refused.join("\n")
        )
    }
}

/// Polls the list every [`POLL`] until an id not in `before` appears, or `until`.
async fn wait_listed(
    router: SocketAddr,
    before: &HashSet<String>,
    until: Instant,
) -> Result<Option<String>, RouterBenchError> {
    loop {
        if let Some(id) = listed_ids(router).await?.difference(before).next() {
            return Ok(Some(id.clone()));
        }
        if Instant::now() >= until {
            return Ok(None);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// SIGKILLs `child` and polls the list every [`POLL`] until `id` is gone; the time from
/// the kill.
pub async fn kill_and_unlist(
    router: SocketAddr,
    mut child: EnclaveChild,
    id: &str,
    heartbeat: Duration,
) -> Result<Duration, RouterBenchError> {
    let killed = child.kill()?;
    let until = killed + heartbeat * 10;
    let took = loop {
        if !listed_ids(router).await?.contains(id) {
            break killed.elapsed();
        }
        if Instant::now() >= until {
            return Err(RouterBenchError::Setup(format!(
                "the killed worker was still listed {:?} after SIGKILL",
                killed.elapsed()
            )));
        }
        tokio::time::sleep(POLL).await;
    };
    child.reap().await;
    Ok(took)
}
