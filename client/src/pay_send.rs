//! Hands a signed promise to the payee's settlement endpoint (`silk-host settle serve`).
//!
//! The payee answers 200 only once the promise is on its disk, so a 200 means the promise
//! is acknowledged; anything else (refusal, timeout, a cut connection) means it is not,
//! and sending it again is safe (an equal promise is simply "older" the second time).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Uri;
use hyper_util::rt::TokioIo;

use crate::pay::PayError;

/// Connecting, and the whole exchange after it.
const CONNECT: Duration = Duration::from_secs(10);
const EXCHANGE: Duration = Duration::from_secs(30);
/// The most bytes of an answer read.
const MAX_ANSWER: usize = 64 * 1024;

/// POSTs `boc` to `base/v1/promises`; returns the payee's JSON answer.
pub(crate) fn send(base: &str, boc: &[u8]) -> Result<serde_json::Value, PayError> {
    let uri: Uri = format!("{}/v1/promises", base.trim_end_matches('/'))
        .parse()
        .map_err(|e| PayError::new(format!("--send {base:?}: {e}")))?;
    if uri.scheme_str() != Some("http") {
        return Err(PayError::new(format!(
            "--send {base:?}: must be http://host:port (a promise is public once shown on chain; \
             run the endpoint behind TLS termination if the path is untrusted)"
        )));
    }
    let host = uri
        .host()
        .ok_or_else(|| PayError::new(format!("--send {base:?}: no host")))?
        .trim_matches(['[', ']'])
        .to_owned();
    let port = uri.port_u16().unwrap_or(80);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(PayError::new)?;
    let body = Bytes::copy_from_slice(boc);
    rt.block_on(async move {
        let tcp = tokio::time::timeout(
            CONNECT,
            tokio::net::TcpStream::connect((host.as_str(), port)),
        )
        .await
        .map_err(|_| {
            PayError::new(format!(
                "--send {base}: connect timed out after {CONNECT:?}"
            ))
        })?
        .map_err(|e| PayError::new(format!("--send {base}: connect: {e}")))?;
        let exchange = async {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .map_err(|e| PayError::new(format!("--send {base}: {e}")))?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            let req = hyper::Request::post(uri.path())
                .header(hyper::header::HOST, format!("{host}:{port}"))
                .header(hyper::header::CONTENT_TYPE, "application/octet-stream")
                .body(Full::new(body))
                .map_err(PayError::new)?;
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| PayError::new(format!("--send {base}: not acknowledged: {e}")))?;
            let status = resp.status();
            let bytes = Limited::new(resp.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| PayError::new(format!("--send {base}: not acknowledged: {e}")))?
                .to_bytes();
            let text = String::from_utf8_lossy(&bytes);
            if !status.is_success() {
                return Err(PayError::new(format!(
                    "--send {base}: the payee refused the promise ({status}): {text}"
                )));
            }
            serde_json::from_slice(&bytes)
                .map_err(|e| PayError::new(format!("--send {base}: answer is not JSON: {e}")))
        };
        tokio::time::timeout(EXCHANGE, exchange)
            .await
            .map_err(|_| {
                PayError::new(format!(
                    "--send {base}: no answer within {EXCHANGE:?}: not acknowledged"
                ))
            })?
    })
}
