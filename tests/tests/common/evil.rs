//! A malicious router: a test double in front of a real `silk-router` that lies in its
//! listings, sends sealed requests where it likes, replays them, and rewrites the sealed
//! answers it carries — everything a router on the path could do.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use silk_protocol::network::{WorkerEntry, WorkerList, HEADER_WORKER};
use silk_protocol::seal::FLAG_CLEAR_RECEIPT;
use silk_protocol::EvidenceBundle;
use tokio::net::TcpListener;

use super::relay::{frames, http};

/// What the router does wrong.
#[derive(Clone, Debug)]
pub enum Evil {
    /// Nothing (a control).
    Honest,
    /// Lists only this worker id.
    Only(String),
    /// Lists only these worker ids.
    OnlyThese(Vec<String>),
    /// Lists worker `victim` with another worker's evidence.
    ForeignBundle {
        /// The id it lies about.
        victim: String,
        /// The other worker's base bundle.
        bundle: Box<EvidenceBundle>,
    },
    /// Lists a stopped worker first, idle, and answers challenges for it with evidence
    /// recorded before it stopped.
    Stale {
        /// Its last listing.
        entry: Box<WorkerEntry>,
        /// A fresh bundle it gave for another nonce.
        recorded: Vec<u8>,
    },
    /// Sends every sealed request to this worker instead.
    Redirect(String),
    /// Forwards each sealed request, then sends the same bytes again to this worker (the
    /// same or another) and drops that answer.
    Replay(String),
    /// Flips a byte of the receipt's clear copy.
    AlterClearReceipt,
    /// Replaces the clear copy with a copy claiming more tokens (re-encoded, unsigned).
    InflateClearReceipt,
    /// Removes the sealed receipt chunk and its clear copy.
    DropReceipt,
    /// Appends the clear copy a second time.
    DuplicateReceipt,
    /// Replaces the sealed receipt chunk with the one of the previous answer.
    SwapReceipt,
    /// Swaps the first two sealed chunks.
    Reorder,
    /// Drops the sealed chunks after the first.
    Truncate,
}

struct State {
    upstream: SocketAddr,
    evil: Evil,
    last_receipt_chunk: Mutex<Option<Vec<u8>>>,
    replays: Mutex<Vec<u16>>,
}

/// A malicious router in front of the real router at `upstream`. Returns its address and
/// the statuses the replayed copies got.
pub async fn evil_router(upstream: SocketAddr, evil: Evil) -> (SocketAddr, Arc<Mutex<Vec<u16>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = Arc::new(State {
        upstream,
        evil,
        last_receipt_chunk: Mutex::new(None),
        replays: Mutex::new(Vec::new()),
    });
    let replays = Arc::new(Mutex::new(Vec::new()));
    let seen = replays.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let state = state.clone();
            let seen = seen.clone();
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let state = state.clone();
                let seen = seen.clone();
                async move {
                    let r = handle(&state, req).await;
                    let mut s = seen.lock().unwrap();
                    *s = state.replays.lock().unwrap().clone();
                    Ok::<_, std::convert::Infallible>(r)
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service),
            );
        }
    });
    (addr, replays)
}

type Body = http_body_util::combinators::BoxBody<Bytes, hyper::Error>;

fn reply_with(status: u16, headers: &hyper::HeaderMap, body: Body) -> Response<Body> {
    let mut r = Response::builder().status(status);
    for name in [hyper::header::CONTENT_TYPE, hyper::header::RETRY_AFTER] {
        if let Some(v) = headers.get(&name) {
            r = r.header(name, v);
        }
    }
    r.body(body).unwrap()
}

fn reply(status: u16, headers: &hyper::HeaderMap, body: Vec<u8>) -> Response<Body> {
    let full = Full::new(Bytes::from(body)).map_err(|never| match never {});
    reply_with(status, headers, full.boxed())
}

fn request(
    upstream: SocketAddr,
    parts: &hyper::http::request::Parts,
    body: Bytes,
) -> Request<Full<Bytes>> {
    let mut req = Request::builder()
        .method(parts.method.clone())
        .uri(parts.uri.clone())
        .header("host", upstream.to_string());
    for (k, v) in &parts.headers {
        if k != hyper::header::HOST {
            req = req.header(k, v);
        }
    }
    req.body(Full::new(body)).unwrap()
}

async fn pass(
    upstream: SocketAddr,
    parts: &hyper::http::request::Parts,
    body: Bytes,
) -> (u16, hyper::HeaderMap, Vec<u8>) {
    let resp = http(upstream, request(upstream, parts, body)).await;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

async fn handle(s: &State, req: Request<Incoming>) -> Response<Body> {
    let (mut parts, body) = req.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let path = parts.uri.path().to_owned();
    if path == silk_protocol::network::PATH_WORKERS && parts.method == hyper::Method::GET {
        let (status, headers, raw) = pass(s.upstream, &parts, body).await;
        let Ok(mut list) = serde_json::from_slice::<WorkerList>(&raw) else {
            return reply(status, &headers, raw);
        };
        match &s.evil {
            Evil::Only(id) => list.workers.retain(|w| &w.id == id),
            Evil::OnlyThese(ids) => list.workers.retain(|w| ids.contains(&w.id)),
            Evil::ForeignBundle { victim, bundle } => {
                for w in &mut list.workers {
                    if &w.id == victim {
                        w.bundle = (**bundle).clone();
                    }
                }
                list.workers.retain(|w| &w.id == victim);
            }
            Evil::Stale { entry, .. } => {
                let mut e = (**entry).clone();
                e.load = Default::default();
                list.workers.insert(0, e);
            }
            _ => {}
        }
        return reply(status, &headers, serde_json::to_vec(&list).unwrap());
    }
    if let Evil::Stale { entry, recorded } = &s.evil {
        if path.contains(&entry.id) {
            let h = hyper::HeaderMap::new();
            return reply(200, &h, recorded.clone());
        }
    }
    if path != silk_protocol::wire::PATH_SEALED {
        let (status, headers, raw) = pass(s.upstream, &parts, body).await;
        return reply(status, &headers, raw);
    }
    if let Evil::Redirect(to) = &s.evil {
        parts.headers.insert(HEADER_WORKER, to.parse().unwrap());
    }
    if matches!(
        s.evil,
        Evil::Honest | Evil::Only(_) | Evil::OnlyThese(_) | Evil::Redirect(_)
    ) {
        // Nothing to rewrite in the answer: stream it through as it comes.
        let resp = http(s.upstream, request(s.upstream, &parts, body)).await;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        return reply_with(status, &headers, resp.into_body().boxed());
    }
    let (status, headers, raw) = pass(s.upstream, &parts, body.clone()).await;
    if let Evil::Replay(to) = &s.evil {
        let mut again = parts.clone();
        again.headers.insert(HEADER_WORKER, to.parse().unwrap());
        let (st, _, _) = pass(s.upstream, &again, body).await;
        s.replays.lock().unwrap().push(st);
    }
    let mut f = frames(&raw);
    let clear_at = f
        .iter()
        .position(|x| x.first() == Some(&FLAG_CLEAR_RECEIPT));
    match (&s.evil, clear_at) {
        (Evil::AlterClearReceipt, Some(i)) => {
            let last = f[i].len() - 1;
            f[i][last] ^= 1;
        }
        (Evil::InflateClearReceipt, Some(i)) => {
            let signed = &f[i][5..];
            let body = &signed[..signed.len() - 64];
            if let Ok(mut r) = silk_protocol::receipt::Receipt::decode(body) {
                r.completion_tokens += 100;
                let mut forged = r.encode().unwrap();
                forged.extend_from_slice(&signed[signed.len() - 64..]);
                let mut frame = vec![FLAG_CLEAR_RECEIPT];
                frame.extend_from_slice(&(forged.len() as u32).to_be_bytes());
                frame.extend_from_slice(&forged);
                f[i] = frame;
            }
        }
        (Evil::DropReceipt, Some(i)) => {
            f.truncate(i - 1);
        }
        (Evil::DuplicateReceipt, Some(i)) => {
            let copy = f[i].clone();
            f.push(copy);
        }
        (Evil::SwapReceipt, Some(i)) => {
            let mine = f[i - 1].clone();
            let mut last = s.last_receipt_chunk.lock().unwrap();
            if let Some(prev) = last.take() {
                f[i - 1] = prev;
            }
            *last = Some(mine);
        }
        (Evil::Reorder, _) if f.len() > 2 => f.swap(0, 1),
        (Evil::Truncate, _) if f.len() > 1 => f.truncate(1),
        _ => {}
    }
    reply(status, &headers, f.concat())
}
