//! A sealed answer as it arrives: plaintext chunks in order, each authenticated, and the
//! integrity failures named by the check that caught them.

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::StatusCode;
use silk_protocol::StreamOpener;
use zeroize::Zeroizing;

use crate::session::{altered_tls_record, api_error, describe_hyper, io_cause, ClientError};

/// How long the end of the HTTP body is awaited after the final sealed chunk.
const AFTER_LAST: std::time::Duration = std::time::Duration::from_secs(2);

/// A sealed answer being received: plaintext chunks in order, each authenticated.
pub struct SealedAnswer {
    pub(crate) status: StatusCode,
    pub(crate) body: Incoming,
    pub(crate) opener: StreamOpener,
    pub(crate) pending: Vec<Zeroizing<Vec<u8>>>,
    pub(crate) ended: bool,
    /// Longest wait for the next chunk.
    pub(crate) idle: std::time::Duration,
    /// Until the first chunk: when it must have come (the enclave sends its answer's head
    /// at once, so queueing and prefill fall between the head and the first chunk), and
    /// the deadline's length.
    pub(crate) first: Option<(tokio::time::Instant, std::time::Duration)>,
}

impl SealedAnswer {
    /// The HTTP status (the plaintext is an OpenAI error object when it is not 200).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The next plaintext chunk; `None` after the authenticated final chunk.
    pub async fn next_chunk(&mut self) -> Result<Option<Zeroizing<Vec<u8>>>, ClientError> {
        loop {
            if !self.pending.is_empty() {
                return Ok(Some(self.pending.remove(0)));
            }
            if self.ended {
                return Ok(None);
            }
            // After the authenticated final chunk the answer is whole; the HTTP body's
            // own end is awaited briefly (to catch bytes appended after the last chunk),
            // but a relay holding back only the end of the HTTP framing cannot stall it.
            let now = tokio::time::Instant::now();
            let (deadline, which, after) = match self.first {
                _ if self.opener.is_finished() => (now + self.idle.min(AFTER_LAST), "", AFTER_LAST),
                Some((at, after)) => (at, "first answer byte", after),
                None => (now + self.idle, "idle between answer chunks", self.idle),
            };
            let next = tokio::time::timeout_at(deadline, self.body.frame()).await;
            let Ok(next) = next else {
                if self.opener.is_finished() {
                    tracing::debug!("the HTTP body did not end after the final sealed chunk");
                    self.ended = true;
                    continue;
                }
                return Err(ClientError::Timeout { which, after });
            };
            match next {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.pending = self.opener.push(&data).map_err(integrity)?;
                        if !self.pending.is_empty() {
                            self.first = None;
                        }
                    }
                }
                Some(Err(e)) => {
                    // Bytes altered on the way fail TLS's own record check; a cut
                    // connection is a truncation as far as the answer goes.
                    let check = if io_cause(&e).is_some_and(altered_tls_record) {
                        "tls.record_authentic"
                    } else {
                        "seal.stream_complete"
                    };
                    return Err(ClientError::Integrity {
                        check,
                        detail: format!(
                            "the stream broke before its final chunk: {}",
                            describe_hyper(&e)
                        ),
                    });
                }
                None => {
                    self.opener.finish().map_err(integrity)?;
                    self.ended = true;
                }
            }
        }
    }

    /// The whole plaintext; an API error when the status is not 200.
    pub async fn collect(mut self) -> Result<Zeroizing<Vec<u8>>, ClientError> {
        let mut out = Zeroizing::new(Vec::new());
        while let Some(chunk) = self.next_chunk().await? {
            out.extend_from_slice(&chunk);
        }
        if self.status != StatusCode::OK {
            return Err(api_error(self.status, &out));
        }
        Ok(out)
    }
}

fn integrity(e: silk_protocol::StreamError) -> ClientError {
    use silk_protocol::StreamError as E;
    let check = match e {
        E::BadChunk { .. } => "seal.chunk_authentic",
        E::TooLarge { .. } | E::BadFlags { .. } => "seal.chunk_framing",
        E::AfterLast => "seal.nothing_after_last",
        E::Truncated { .. } => "seal.stream_complete",
        E::Finished => "seal.stream_complete",
    };
    ClientError::Integrity {
        check,
        detail: e.to_string(),
    }
}
