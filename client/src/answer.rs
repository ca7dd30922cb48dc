//! A sealed answer as it arrives: plaintext chunks in order, each authenticated, and the
//! integrity failures named by the check that caught them.

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::StatusCode;
use silk_protocol::StreamOpener;
use zeroize::Zeroizing;

use crate::receipts::{ReceiptExpect, UsageTally, VerifiedReceipt};
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
    /// What the receipt must say (every sealed answer ends with one).
    pub(crate) expect: ReceiptExpect,
    /// Token counts seen in the plaintext.
    pub(crate) tally: UsageTally,
    /// The receipt, once verified.
    pub(crate) receipt: Option<VerifiedReceipt>,
    /// The worker, named in errors (set when the answer came through a router).
    pub(crate) worker: Option<String>,
}

impl SealedAnswer {
    /// The HTTP status (the plaintext is an OpenAI error object when it is not 200).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The usage receipt that ended the answer, once the answer has been read to its end
    /// and the receipt verified.
    pub fn receipt(&self) -> Option<&VerifiedReceipt> {
        self.receipt.as_ref()
    }

    /// The next plaintext chunk; `None` after the authenticated final chunk and a receipt
    /// that verifies. Failures after the first chunk name the worker when there is one.
    pub async fn next_chunk(&mut self) -> Result<Option<Zeroizing<Vec<u8>>>, ClientError> {
        let got = self.next_inner().await;
        match (got, &self.worker) {
            (Err(ClientError::Transport(m)), Some(w)) => {
                Err(ClientError::Transport(format!("worker {w}: {m}")))
            }
            (Err(ClientError::Integrity { check, detail }), Some(w)) => {
                Err(ClientError::Integrity {
                    check,
                    detail: format!("worker {w}: {detail}"),
                })
            }
            (got, _) => got,
        }
    }

    async fn next_inner(&mut self) -> Result<Option<Zeroizing<Vec<u8>>>, ClientError> {
        loop {
            if !self.pending.is_empty() {
                return Ok(Some(self.pending.remove(0)));
            }
            if self.ended {
                if self.receipt.is_none() {
                    let r = self.tally.verify(
                        &self.expect,
                        self.opener.receipt(),
                        self.opener.clear_receipt(),
                    )?;
                    self.receipt = Some(r);
                }
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
                        for chunk in &self.pending {
                            self.tally.observe(chunk);
                        }
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

    /// Waits for the first plaintext chunk (or the end) without consuming it: until it
    /// comes, nothing of the answer has been shown, so a failure may still be retried
    /// elsewhere.
    pub(crate) async fn prefetch(&mut self) -> Result<(), ClientError> {
        if let Some(chunk) = self.next_inner().await? {
            self.pending.insert(0, chunk);
        }
        Ok(())
    }

    /// The plaintext of a sealed error answer (its receipt still checked).
    pub(crate) async fn collect_error(mut self) -> Result<Zeroizing<Vec<u8>>, ClientError> {
        let mut out = Zeroizing::new(Vec::new());
        while let Some(chunk) = self.next_chunk().await? {
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// The whole plaintext; an API error when the status is not 200.
    pub async fn collect(self) -> Result<Zeroizing<Vec<u8>>, ClientError> {
        Ok(self.collect_with_receipt().await?.0)
    }

    /// The whole plaintext and the verified receipt; an API error when the status is not
    /// 200.
    pub async fn collect_with_receipt(
        mut self,
    ) -> Result<(Zeroizing<Vec<u8>>, VerifiedReceipt), ClientError> {
        let mut out = Zeroizing::new(Vec::new());
        while let Some(chunk) = self.next_chunk().await? {
            out.extend_from_slice(&chunk);
        }
        if self.status != StatusCode::OK {
            return Err(api_error(self.status, &out));
        }
        let receipt = self.receipt.take().ok_or_else(|| {
            crate::receipts::receipt_error(silk_protocol::receipt::ReceiptError::Missing)
        })?;
        Ok((out, receipt))
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
