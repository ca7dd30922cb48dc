//! Hands a signed promise to the payee's settlement endpoint (`silk-host settle serve`).
//!
//! The payee answers 200 only once the promise is on its disk, so a 200 means the promise
//! is acknowledged; anything else (refusal, timeout, a cut connection) means it is not,
//! and sending it again is safe (an equal promise is simply "older" the second time).

use bytes::Bytes;
use hyper::{Method, Uri};

use crate::oneshot::exchange;
use crate::pay::PayError;

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
    let body = Some(("application/octet-stream", Bytes::copy_from_slice(boc)));
    let (status, bytes) = exchange(Method::POST, &uri, body, MAX_ANSWER)
        .map_err(|e| PayError::new(format!("--send {base}: {e}: not acknowledged")))?;
    if !status.is_success() {
        return Err(PayError::new(format!(
            "--send {base}: the payee refused the promise ({status}): {}",
            String::from_utf8_lossy(&bytes)
        )));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| PayError::new(format!("--send {base}: answer is not JSON: {e}")))
}
