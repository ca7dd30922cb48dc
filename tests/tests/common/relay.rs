//! Relays that sit where a host or a router sits: a TCP relay that records every byte,
//! and an HTTP router that can alter, drop, reorder, replay or cut what it forwards.

use silk_protocol::seal::FLAG_CLEAR_RECEIPT;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Everything a TCP relay saw, per direction.
#[derive(Default)]
pub struct Recording {
    /// Client to enclave.
    pub up: Vec<u8>,
    /// Enclave to client.
    pub down: Vec<u8>,
}

/// Starts a TCP relay to `target` that records both directions.
pub async fn recording_relay(target: SocketAddr) -> (SocketAddr, Arc<Mutex<Recording>>) {
    let (addr, rec, _) = switchable_relay(target).await;
    (addr, rec)
}

/// A recording TCP relay whose target can be changed (as a host does when it restarts
/// the VM behind the same address).
pub async fn switchable_relay(
    target: SocketAddr,
) -> (SocketAddr, Arc<Mutex<Recording>>, Arc<Mutex<SocketAddr>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let rec = Arc::new(Mutex::new(Recording::default()));
    let r = rec.clone();
    let target = Arc::new(Mutex::new(target));
    let t = target.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let to = *t.lock().unwrap();
            let Ok(server) = TcpStream::connect(to).await else {
                continue;
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(pipe(cr, sw, r.clone(), true));
            tokio::spawn(pipe(sr, cw, r.clone(), false));
        }
    });
    (addr, rec, target)
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    rec: Arc<Mutex<Recording>>,
    up: bool,
) {
    let mut buf = vec![0u8; 16384];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        {
            let mut r = rec.lock().unwrap();
            if up {
                r.up.extend_from_slice(&buf[..n]);
            } else {
                r.down.extend_from_slice(&buf[..n]);
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// One plain HTTP/1.1 exchange.
pub async fn http(target: SocketAddr, req: Request<Full<Bytes>>) -> Response<Incoming> {
    let tcp = TcpStream::connect(target).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    send.send_request(req).await.unwrap()
}

/// GET `path` over plain HTTP: status and body.
pub async fn http_get(target: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    let req = Request::get(path)
        .header("host", target.to_string())
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = http(target, req).await;
    let status = resp.status().as_u16();
    (
        status,
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
}

/// POST raw bytes over plain HTTP: status, content type and body.
pub async fn http_post(target: SocketAddr, path: &str, body: Vec<u8>) -> (u16, String, Vec<u8>) {
    let req = Request::post(path)
        .header("host", target.to_string())
        .header("content-type", "application/vnd.silk.sealed-request")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let resp = http(target, req).await;
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or("").to_owned())
        .unwrap_or_default();
    (
        status,
        ct,
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
}

/// What the router does to the traffic it forwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tamper {
    /// Nothing.
    None,
    /// Flip one bit of the sealed request's ciphertext.
    FlipRequest,
    /// Flip one bit inside the second sealed response chunk.
    FlipResponse,
    /// Leave out the second response chunk.
    DropChunk,
    /// Swap the second and third response chunks.
    ReorderChunks,
    /// Send the second response chunk twice.
    ReplayChunk,
    /// Cut the final response chunk off.
    Truncate,
    /// Forward the sealed request twice; return the second answer.
    ReplayRequest,
    /// Serve the first fresh attestation answer again for every later challenge.
    StaleAttestation,
    /// Send challenged attestation requests to another enclave.
    OtherEnclave(SocketAddr),
}

/// Splits a sealed stream into its frames (flags, u32 length, ciphertext).
pub fn frames(body: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 5 <= body.len() {
        let len = u32::from_be_bytes(body[at + 1..at + 5].try_into().unwrap()) as usize;
        let end = (at + 5 + len).min(body.len());
        out.push(body[at..end].to_vec());
        at = end;
    }
    out
}

/// An HTTP router in front of `target` (the enclave's plain listener) that applies
/// `tamper`. Returns its address and a counter of sealed requests it forwarded.
pub async fn router(target: SocketAddr, tamper: Tamper) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stale: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let stale = stale.clone();
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let stale = stale.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(forward(target, tamper, stale, req).await)
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service),
            );
        }
    });
    addr
}

async fn forward(
    target: SocketAddr,
    tamper: Tamper,
    stale: Arc<Mutex<Option<Vec<u8>>>>,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let path = req.uri().to_string();
    let is_sealed = path.starts_with("/v1/sealed");
    let challenged = path.starts_with("/v1/attestation?");
    let mut body = req.into_body().collect().await.unwrap().to_bytes().to_vec();
    if challenged {
        if let Tamper::OtherEnclave(other) = tamper {
            let (status, body) = http_get(other, &path).await;
            return reply(status, "application/json", body);
        }
        if tamper == Tamper::StaleAttestation {
            if let Some(old) = stale.lock().unwrap().clone() {
                return reply(200, "application/json", old);
            }
            let (status, body) = http_get(target, &path).await;
            *stale.lock().unwrap() = Some(body.clone());
            return reply(status, "application/json", body);
        }
    }
    if !is_sealed {
        let (status, body) = http_get(target, &path).await;
        return reply(status, "application/json", body);
    }
    if tamper == Tamper::FlipRequest {
        let last = body.len() - 20;
        body[last] ^= 0x01;
    }
    let (mut status, mut ct, mut answer) = http_post(target, &path, body.clone()).await;
    if tamper == Tamper::ReplayRequest {
        (status, ct, answer) = http_post(target, &path, body).await;
    }
    let mut f = frames(&answer);
    match tamper {
        Tamper::FlipResponse if f.len() > 1 => f[1][7] ^= 0x01,
        Tamper::DropChunk if f.len() > 2 => {
            f.remove(1);
        }
        Tamper::ReorderChunks if f.len() > 3 => f.swap(1, 2),
        Tamper::ReplayChunk if f.len() > 2 => {
            let dup = f[1].clone();
            f.insert(2, dup);
        }
        Tamper::Truncate => {
            // The receipt's clear copy may be stripped by anyone; the sealed last chunk
            // before it is what a truncation removes.
            if f.last()
                .is_some_and(|l| l.first() == Some(&FLAG_CLEAR_RECEIPT))
            {
                f.pop();
            }
            f.pop();
        }
        _ => {}
    }
    reply(status, &ct, f.concat())
}

fn reply(status: u16, ct: &str, body: Vec<u8>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", ct)
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}
