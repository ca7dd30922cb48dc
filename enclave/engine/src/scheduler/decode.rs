//! One sequence's next token from its logits, and what that token adds to the answer:
//! text, log-probabilities, and whether the answer ends.
//!
//! The order at each step: the model's log-softmax is taken from the raw logits (what
//! `logprobs` report), the JSON mask (when the answer must be an object) sets every token
//! that cannot continue it to minus infinity, and the sampler applies `logit_bias`,
//! penalties and its chain to what is left.
//!
//! A token's logprob travels with the text it completes: text held back (a possible stop
//! string, half a character) holds back its tokens' logprobs too, so a streamed chunk's
//! logprobs cover its text. Tokens cut off with a stop string are not reported; an
//! end-of-sequence token is not either (it prints nothing and ends the answer).

use std::collections::VecDeque;
use std::sync::Arc;

use super::FinishReason;
use crate::sampler::json::{JsonConstraint, JsonVocab};
use crate::sampler::logprobs::{Distribution, Scored, TokenLogprob};
use crate::sampler::{Sampler, SamplingParams};
use crate::text::{StreamStep, TextStream};
use crate::tokenizer::Tokenizer;

/// What one step produced.
#[derive(Debug)]
pub(super) struct Step {
    /// The token chosen.
    pub token: u32,
    /// Answer text that is now final (may be empty).
    pub text: String,
    /// Logprobs of the tokens whose text is now final (empty unless asked for).
    pub logprobs: Vec<TokenLogprob>,
    /// Set when the answer ends with this token.
    pub finish: Option<FinishReason>,
}

/// A token's logprob waiting for its text to be emitted.
#[derive(Debug)]
struct Held {
    entry: TokenLogprob,
    /// Characters of text decoded once this token's bytes were read.
    end: usize,
}

/// The per-sequence state of decoding.
pub(super) struct Decoder {
    sampler: Sampler,
    text: TextStream,
    /// Alternatives to report per token, when logprobs were asked for.
    logprobs: Option<usize>,
    held: VecDeque<Held>,
    json: Option<(JsonConstraint, Arc<JsonVocab>)>,
    /// Scratch for the tokens the JSON mask allows.
    allowed: Vec<u32>,
}

impl Decoder {
    /// A decoder drawing with `params`, stopping at `stop`, reporting `logprobs`
    /// alternatives per token when set, and keeping to a JSON object with `json`.
    pub(super) fn new(
        params: SamplingParams,
        stop: Vec<String>,
        logprobs: Option<usize>,
        json: Option<Arc<JsonVocab>>,
    ) -> Self {
        Self {
            sampler: Sampler::new(params),
            text: TextStream::new(stop),
            logprobs,
            held: VecDeque::new(),
            json: json.map(|v| (JsonConstraint::new(), v)),
            allowed: Vec::new(),
        }
    }

    /// Chooses the next token from `logits` (one row, raw from the model). `history` is
    /// every token so far; `left` is how many tokens may still be generated, this one
    /// included (at least 1). Fails only when the JSON mask leaves nothing to choose.
    pub(super) fn step(
        &mut self,
        mut logits: Vec<f32>,
        history: &[u32],
        tok: &Tokenizer,
        left: usize,
    ) -> Result<Step, String> {
        let dist = self.logprobs.map(|n| Distribution::new(&logits, n));
        let mut work = match &self.json {
            Some((json, vocab)) => {
                json.allowed(vocab, left, &mut self.allowed);
                let mut masked = vec![f32::NEG_INFINITY; logits.len()];
                for &id in &self.allowed {
                    if let Some(m) = masked.get_mut(id as usize) {
                        *m = logits[id as usize];
                    }
                }
                if masked.iter().all(|&l| l == f32::NEG_INFINITY) {
                    return Err("no token of the vocabulary can continue the JSON object".into());
                }
                masked
            }
            // The raw row must outlive the draw, which rewrites its input.
            None if dist.is_some() => logits.clone(),
            None => std::mem::take(&mut logits),
        };
        let token = self.sampler.sample(&mut work, history);
        let bytes = tok.token_bytes(token).unwrap_or_default();
        let start = self.text.decoded_chars();
        let eos = tok.eos_ids().contains(&token);
        if let Some((json, _)) = &mut self.json {
            // Only `logit_bias` banning every allowed token leads the draw off the mask.
            json.advance(&bytes)
                .map_err(|_| "logit_bias bans every token that continues the JSON object")?;
        }
        let mut finish = None;
        let mut cut = false;
        let mut text = String::new();
        if eos {
            finish = Some(FinishReason::Stop);
        } else {
            match self.text.push(tok, token) {
                StreamStep::Text(t) => text = t,
                StreamStep::Stop { text: t } => {
                    text = t;
                    cut = true;
                    finish = Some(FinishReason::Stop);
                }
            }
            // An object that closes on the last token the budget allowed may have been
            // closed by the budget, not by the model: `length`, as for any answer that
            // reaches its limit.
            if finish.is_none() && left <= 1 {
                finish = Some(FinishReason::Length);
            }
            if finish.is_none() && self.json.as_ref().is_some_and(|(j, _)| j.is_done()) {
                finish = Some(FinishReason::Stop);
            }
        }
        // A stop string already cut the text; any other end flushes what was held back in
        // case it began a stop string or a multi-byte character.
        if finish.is_some() && !cut {
            text.push_str(&self.text.finish());
        }
        if let Some(dist) = dist.filter(|_| !eos) {
            let scored = |id: u32, logprob| Scored {
                id,
                bytes: tok.token_bytes(id).unwrap_or_default(),
                logprob,
            };
            let entry = TokenLogprob {
                token: scored(token, dist.logprob(logits[token as usize])),
                top: dist.top().iter().map(|&(id, lp)| scored(id, lp)).collect(),
                text_offset: start,
            };
            self.held.push_back(Held {
                entry,
                end: self.text.decoded_chars(),
            });
        }
        let logprobs = self.release(finish.is_some(), cut);
        Ok(Step {
            token,
            text,
            logprobs,
            finish,
        })
    }

    /// The held logprobs whose text is now emitted: while running, those wholly emitted;
    /// at a stop string, those that began before the cut; at any other end, all.
    fn release(&mut self, finished: bool, cut: bool) -> Vec<TokenLogprob> {
        let emitted = self.text.emitted_chars();
        if finished && !cut {
            return self.held.drain(..).map(|h| h.entry).collect();
        }
        let mut out = Vec::new();
        while let Some(h) = self.held.front() {
            let shown = h.end <= emitted || (cut && h.entry.text_offset < emitted);
            if !shown {
                break;
            }
            out.extend(self.held.pop_front().map(|h| h.entry));
        }
        if cut {
            self.held.clear();
        }
        out
    }
}
