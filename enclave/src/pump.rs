//! One generation's events into sealed chunks, ending with the usage receipt.
//!
//! Runs on a blocking thread per request. The receipt is signed here, inside the enclave,
//! from the engine's own counts, so nobody on the path can make one up or inflate it.

use std::sync::Arc;
use std::time::Instant;

use silk_engine::sampler::logprobs::TokenLogprob;
use silk_engine::Event;
use silk_protocol::receipt::Receipt;
use silk_protocol::wire::ErrorBody;
use silk_protocol::StreamSealer;
use tokio::sync::mpsc;
use zeroize::{Zeroize, Zeroizing};

use crate::metrics::Outcome;
use crate::openai::{self, AnswerHead};
use crate::server::AppState;

/// What a receipt says about its request, fixed when the request is opened.
pub(crate) struct Ticket {
    /// SHA-256 of the sealed request bytes.
    pub request_digest: [u8; 32],
    /// The offer served under.
    pub offer_digest: [u8; 32],
    /// The served model's name.
    pub model: String,
    /// When the request was read, Unix milliseconds.
    pub started_at_ms: u64,
}

impl Ticket {
    /// The signed receipt for these counts, numbered now. Signing cannot fail for fields
    /// this enclave made (the model name is bounded by the claims' own limit); an empty
    /// receipt would be refused by the client as `receipt.format`, never accepted.
    pub(crate) fn receipt(&self, s: &AppState, prompt: usize, completion: usize) -> Vec<u8> {
        let receipt = Receipt {
            worker_id: s.identity.worker_id(),
            request_digest: self.request_digest,
            model: self.model.clone(),
            prompt_tokens: u32::try_from(prompt).unwrap_or(u32::MAX),
            completion_tokens: u32::try_from(completion).unwrap_or(u32::MAX),
            offer_digest: self.offer_digest,
            started_at_ms: self.started_at_ms,
            ended_at_ms: crate::worker::unix_millis().max(self.started_at_ms),
            counter: s.receipts.next(),
        };
        match s.identity.sign_receipt(&receipt) {
            Ok(signed) => {
                s.metrics.receipts.inc();
                signed
            }
            Err(e) => {
                tracing::error!("receipt not signed: {e}");
                Vec::new()
            }
        }
    }
}

/// Token logprobs, their bytes wiped when dropped.
#[derive(Default)]
struct WipedLogprobs(Vec<TokenLogprob>);

impl WipedLogprobs {
    fn take(mut self) -> Vec<TokenLogprob> {
        std::mem::take(&mut self.0)
    }
}

impl Drop for WipedLogprobs {
    fn drop(&mut self) {
        for e in &mut self.0 {
            e.token.bytes.zeroize();
            for t in &mut e.top {
                t.bytes.zeroize();
            }
        }
    }
}

/// Moves one generation's events into sealed chunks, on a blocking thread.
pub(crate) struct Pump {
    pub state: Arc<AppState>,
    pub head: AnswerHead,
    pub stream: bool,
    pub include_usage: bool,
    pub sealer: StreamSealer,
    pub tx: mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
    pub start: Instant,
    /// The final chunk was sealed.
    pub done: bool,
    /// What the receipt names.
    pub ticket: Ticket,
    /// Prompt tokens (counted at admission).
    pub prompt_tokens: usize,
    /// Non-empty deltas sent or gathered: the completion count when the engine fails
    /// before its own count.
    pub deltas: usize,
}

impl Pump {
    fn send(&mut self, plain: &[u8]) -> bool {
        match self.sealer.seal(plain, false) {
            Ok(frame) => self.tx.blocking_send(Ok(frame)).is_ok(),
            Err(_) => false,
        }
    }

    /// Sends the answer's last content chunk and then the receipt, which ends the stream.
    fn finish(&mut self, plain: &[u8], completion: usize) -> bool {
        self.done = true;
        let receipt = self
            .ticket
            .receipt(&self.state, self.prompt_tokens, completion);
        let frames = self.sealer.seal(plain, false).and_then(|mut f| {
            f.extend(self.sealer.seal_receipt(&receipt)?);
            Ok(f)
        });
        match frames {
            Ok(frames) => self.tx.blocking_send(Ok(frames)).is_ok(),
            Err(_) => false,
        }
    }

    pub(crate) fn run(mut self, generation: silk_engine::Generation) -> Outcome {
        let m = &self.state.clone().metrics;
        m.open_streams.inc();
        let mut first = true;
        let mut text = Zeroizing::new(String::new());
        // Logprobs name the answer's tokens and their likely alternatives: as secret as
        // the text, so wiped like it.
        let mut scored = WipedLogprobs::default();
        let mut outcome = Outcome::Failed;
        for event in generation {
            match event {
                Event::Delta {
                    text: delta,
                    logprobs,
                } => {
                    let delta = Zeroizing::new(delta);
                    let logprobs = WipedLogprobs(logprobs);
                    if !delta.is_empty() {
                        self.deltas += 1;
                    }
                    if !self.stream {
                        text.push_str(&delta);
                        scored.0.extend(logprobs.take());
                        continue;
                    }
                    let content = (!delta.is_empty()).then_some(delta.as_str());
                    let event = Zeroizing::new(openai::sse(&self.head.chunk(
                        content,
                        &logprobs.0,
                        first,
                        None,
                    )));
                    if first {
                        m.time_to_first_chunk
                            .observe(self.start.elapsed().as_secs_f64());
                    }
                    first = false;
                    if !self.send(&event) {
                        outcome = Outcome::Cancelled;
                        break;
                    }
                }
                Event::Done { reason, usage } => {
                    m.completion_tokens.inc_by(usage.completion_tokens as u64);
                    let mut tail = Zeroizing::new(Vec::new());
                    if self.stream {
                        tail.extend(openai::sse(&self.head.chunk(
                            None,
                            &[],
                            first,
                            Some(reason),
                        )));
                        if self.include_usage {
                            tail.extend(openai::sse(&self.head.usage_chunk(usage)));
                        }
                        tail.extend_from_slice(openai::SSE_DONE);
                    } else {
                        tail.extend(
                            self.head
                                .complete(&text, &scored.0, reason, usage)
                                .to_string()
                                .into_bytes(),
                        );
                    }
                    outcome = if self.finish(&tail, usage.completion_tokens) {
                        Outcome::Ok
                    } else {
                        Outcome::Cancelled
                    };
                    break;
                }
                Event::Failed(reason) => {
                    tracing::error!("generation failed: {reason}");
                    let err = ErrorBody::new("server_error", "engine_failed", reason).to_json();
                    let mut tail = Vec::new();
                    if self.stream {
                        tail.extend_from_slice(b"data: ");
                        tail.extend_from_slice(&err);
                        tail.extend_from_slice(b"\n\n");
                        tail.extend_from_slice(openai::SSE_DONE);
                    } else {
                        tail = err;
                    }
                    let deltas = self.deltas;
                    self.finish(&tail, deltas);
                    break;
                }
            }
        }
        if !self.done {
            // The engine stopped without a final event: end the stream explicitly.
            let err = ErrorBody::new("server_error", "engine_stopped", "the engine stopped");
            let deltas = self.deltas;
            self.finish(&err.to_json(), deltas);
        }
        m.open_streams.dec();
        m.request_seconds
            .observe(self.start.elapsed().as_secs_f64());
        m.outcome(outcome.clone());
        tracing::info!(outcome = ?outcome, ms = self.start.elapsed().as_millis() as u64, "sealed request");
        outcome
    }
}
