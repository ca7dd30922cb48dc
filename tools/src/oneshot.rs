//! One bounded HTTP/1.1 exchange with an ordinary web server: the owner's settlement
//! endpoint (`silk pay promise --send`) or a TON HTTP API (`silk policy from-ton`).
//! Not for enclaves, whose connections are RA-TLS (`session`, `network`).
//!
//! A blocking call of [`silk_net::fetch::request`]: connecting has its own deadline, the
//! whole exchange after it another, at most `max_answer` bytes of the answer are read, and
//! HTTPS verifies the server against the web PKI roots.

use std::time::Duration;

use bytes::Bytes;
use hyper::{Method, StatusCode, Uri};
use silk_net::fetch::{self, FetchLimits};

/// Connecting (TCP).
const CONNECT: Duration = Duration::from_secs(10);
/// Everything after connecting: TLS, the request, the whole answer.
const EXCHANGE: Duration = Duration::from_secs(30);

/// Sends `method uri` with `body` (and its content type) and reads the answer. Errors say
/// which step or bound failed, for the caller to prefix with what it was doing.
pub(crate) fn exchange(
    method: Method,
    uri: &Uri,
    body: Option<(&'static str, Bytes)>,
    max_answer: usize,
) -> Result<(StatusCode, Bytes), String> {
    let limits = FetchLimits {
        connect: CONNECT,
        exchange: EXCHANGE,
        max_body: max_answer,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let got = rt
        .block_on(fetch::request(method, &uri.to_string(), body, &limits))
        .map_err(|e| e.to_string())?;
    let status = StatusCode::from_u16(got.status).map_err(|e| e.to_string())?;
    Ok((status, Bytes::from(got.body)))
}
