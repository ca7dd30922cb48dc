//! The engine's worker thread: admission, one batched forward per step, and each
//! sequence's next token.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;

use super::{Event, FinishReason, Job, Shared, Usage};
use crate::model::{KvCache, Model, SeqStep};

pub(super) struct Running {
    job: Job,
    cache: KvCache,
    /// Tokens still to feed the model: the prompt at first, then the last sample.
    pending: Vec<u32>,
    generated: usize,
}

pub(super) struct Worker {
    model: Model,
    shared: Arc<Shared>,
    waiting_count: Arc<AtomicUsize>,
    waiting: VecDeque<Job>,
    running: Vec<Running>,
    reserved: usize,
}

impl Worker {
    pub(super) fn new(model: Model, shared: Arc<Shared>, waiting_count: Arc<AtomicUsize>) -> Self {
        Self {
            model,
            shared,
            waiting_count,
            waiting: VecDeque::new(),
            running: Vec::new(),
            reserved: 0,
        }
    }

    pub(super) fn run(mut self, rx: Receiver<Job>) {
        let mut open = true;
        loop {
            if self.running.is_empty() && self.waiting.is_empty() {
                if !open {
                    return;
                }
                match rx.recv() {
                    Ok(job) => self.waiting.push_back(job),
                    Err(_) => return,
                }
            }
            while open {
                match rx.try_recv() {
                    Ok(job) => self.waiting.push_back(job),
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => open = false,
                }
            }
            self.drop_cancelled();
            self.admit();
            if !self.running.is_empty() {
                self.step();
            }
            self.publish();
        }
    }

    fn publish(&self) {
        let c = &self.shared.stats;
        c.running.store(self.running.len(), Ordering::SeqCst);
        c.reserved.store(self.reserved, Ordering::SeqCst);
    }

    fn drop_cancelled(&mut self) {
        let mut i = 0;
        while i < self.running.len() {
            if self.running[i].job.cancel.load(Ordering::Relaxed) {
                let r = self.running.swap_remove(i);
                self.finish(r, FinishReason::Cancelled);
            } else {
                i += 1;
            }
        }
        self.waiting.retain(|j| {
            let keep = !j.cancel.load(Ordering::Relaxed);
            if !keep {
                self.waiting_count.fetch_sub(1, Ordering::SeqCst);
            }
            keep
        });
    }

    /// Admits waiting jobs in arrival order while the batch and the budget allow.
    fn admit(&mut self) {
        let cfg = &self.shared.config;
        while let Some(job) = self.waiting.front() {
            if self.running.len() >= cfg.max_batch
                || self.reserved + job.reserve_bytes > cfg.kv_budget_bytes
            {
                return;
            }
            let Some(job) = self.waiting.pop_front() else {
                return;
            };
            self.waiting_count.fetch_sub(1, Ordering::SeqCst);
            self.reserved += job.reserve_bytes;
            let reserve_tokens = job.prompt_len + job.max_tokens;
            self.running.push(Running {
                cache: self.model.new_cache_with_capacity(reserve_tokens),
                pending: job.tokens.clone(),
                generated: 0,
                job,
            });
        }
    }

    fn step(&mut self) {
        self.shared.stats.steps.fetch_add(1, Ordering::SeqCst);
        let logits = {
            let mut steps: Vec<SeqStep<'_>> = self
                .running
                .iter_mut()
                .map(|r| SeqStep {
                    tokens: &r.pending,
                    cache: &mut r.cache,
                })
                .collect();
            self.model
                .forward(&mut steps)
                .and_then(|l| Ok(l.to_vec2::<f32>()?))
        };
        let logits = match logits {
            Ok(l) => l,
            Err(e) => {
                for r in std::mem::take(&mut self.running) {
                    let _ = r.job.tx.send(Event::Failed(e.to_string()));
                    self.reserved -= r.job.reserve_bytes;
                }
                return;
            }
        };
        let mut done = Vec::new();
        let tok = &self.shared.tokenizer;
        for (i, (r, row)) in self.running.iter_mut().zip(logits).enumerate() {
            // Tokens that may still come, this one included: the request's own limit, or
            // the context's (submit made the first never exceed the second).
            let left = (r.job.max_tokens - r.generated)
                .min(self.shared.context_length.saturating_sub(r.cache.len()))
                .max(1);
            let step = match r.job.decoder.step(row, &r.job.tokens, tok, left) {
                Ok(step) => step,
                Err(why) => {
                    done.push((i, Err(why)));
                    continue;
                }
            };
            r.job.tokens.push(step.token);
            r.generated += 1;
            r.pending.clear();
            r.pending.push(step.token);
            let mut finish = step.finish;
            if !step.text.is_empty() || !step.logprobs.is_empty() {
                let delta = Event::Delta {
                    text: step.text,
                    logprobs: step.logprobs,
                };
                if r.job.tx.send(delta).is_err() {
                    finish = Some(FinishReason::Cancelled);
                }
            }
            if let Some(f) = finish {
                done.push((i, Ok(f)));
            }
        }
        for (i, end) in done.into_iter().rev() {
            let r = self.running.swap_remove(i);
            match end {
                Ok(reason) => self.finish(r, reason),
                Err(why) => {
                    self.reserved -= r.job.reserve_bytes;
                    let _ = r.job.tx.send(Event::Failed(why));
                }
            }
        }
    }

    fn finish(&mut self, r: Running, reason: FinishReason) {
        self.reserved -= r.job.reserve_bytes;
        let _ = r.job.tx.send(Event::Done {
            reason,
            usage: Usage {
                prompt_tokens: r.job.prompt_len,
                completion_tokens: r.generated,
            },
        });
    }
}
