//! One engine per model, serving every request through continuous batching.
//!
//! A worker thread owns the model. Between decode steps it admits waiting requests (in
//! arrival order, so none starves) while their KV cache fits the memory budget, then runs
//! one [`Model::forward`] that prefills the newcomers' prompts and decodes one token for
//! every running sequence. Finished and cancelled sequences leave at once and free their
//! cache. Beyond the waiting room's capacity, [`Engine::submit`] answers
//! [`SubmitError::Busy`]: nothing is dropped silently.

mod decode;
mod worker;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

use crate::model::Model;
use crate::sampler::json::{JsonState, JsonVocab, JsonVocabError};
use crate::sampler::logprobs::{TokenLogprob, MAX_TOP_LOGPROBS};
use crate::sampler::{ParamError, SamplingParams};
use crate::template::{ChatMessage, ChatTemplate};
use crate::tokenizer::Tokenizer;
use decode::Decoder;
use worker::Worker;

/// Limits of one engine.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Most sequences decoded together in one step.
    pub max_batch: usize,
    /// Bytes of KV cache all running sequences may reserve together.
    pub kv_budget_bytes: usize,
    /// Requests that may wait for admission; beyond that, submit answers Busy.
    pub queue_capacity: usize,
    /// Completion length when a request names none.
    pub default_max_tokens: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_batch: 32,
            kv_budget_bytes: 1 << 30,
            queue_capacity: 256,
            default_max_tokens: 512,
        }
    }
}

/// What to complete.
#[derive(Clone, Debug)]
pub enum Prompt {
    /// Chat turns, rendered with the model's chat template (generation prompt added).
    Chat(Vec<ChatMessage>),
    /// Raw text, tokenised as is (special tokens in it are recognised).
    Text(String),
}

/// One generation request.
#[derive(Clone, Debug)]
pub struct GenerateRequest {
    /// The prompt.
    pub prompt: Prompt,
    /// Sampling controls.
    pub params: SamplingParams,
    /// Most tokens to generate (the engine's default when `None`).
    pub max_tokens: Option<usize>,
    /// Strings that end the answer; they are never emitted.
    pub stop: Vec<String>,
    /// Report each token's logprob and this many most likely alternatives (at most
    /// [`MAX_TOP_LOGPROBS`]) with the text; `None` reports none.
    pub logprobs: Option<usize>,
    /// What shape the answer must have.
    pub format: ResponseFormat,
}

/// The shape an answer must have.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ResponseFormat {
    /// Any text.
    #[default]
    Text,
    /// One JSON object: tokens that cannot continue one are masked at every step, and the
    /// answer ends when it closes (see [`crate::sampler::json`]).
    JsonObject,
}

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-sequence token or a stop string.
    Stop,
    /// `max_tokens` or the context length was reached.
    Length,
    /// The consumer went away.
    Cancelled,
}

impl FinishReason {
    /// OpenAI's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => "cancelled",
        }
    }
}

/// Token counts of a finished request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
}

/// What a [`Generation`] yields.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// More of the answer.
    Delta {
        /// Text: always whole UTF-8 characters, never part of a stop string (may be empty
        /// when only logprobs come).
        text: String,
        /// The logprobs of the tokens whose text this delta completes, in order (empty
        /// unless the request asked for logprobs).
        logprobs: Vec<TokenLogprob>,
    },
    /// The end, with the reason and the counts.
    Done {
        /// Why it ended.
        reason: FinishReason,
        /// Token counts.
        usage: Usage,
    },
    /// The engine failed while running this request.
    Failed(String),
}

/// A snapshot of the engine's load, for health and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Sequences in the running batch.
    pub running: usize,
    /// Requests waiting for admission.
    pub waiting: usize,
    /// KV-cache bytes reserved by running sequences.
    pub reserved_kv_bytes: usize,
    /// Decode steps run since start.
    pub steps: u64,
}

#[derive(Default)]
struct StatsCells {
    running: AtomicUsize,
    reserved: AtomicUsize,
    steps: std::sync::atomic::AtomicU64,
}

/// Why a request was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The waiting room is full; try again later.
    #[error("engine busy: {waiting} requests are already waiting")]
    Busy {
        /// How many wait.
        waiting: usize,
    },
    /// A sampling control is out of range.
    #[error(transparent)]
    Params(#[from] ParamError),
    /// The prompt could not be rendered or tokenised.
    #[error("bad prompt: {0}")]
    Prompt(String),
    /// The request can never fit the context or the memory budget.
    #[error("request too large: {0}")]
    TooLarge(String),
    /// The engine has stopped.
    #[error("engine stopped")]
    Stopped,
}

/// A running request's output. Iterate it for [`Event`]s; drop it to cancel the request,
/// which frees its cache before the next decode step.
pub struct Generation {
    rx: Receiver<Event>,
    cancel: Arc<AtomicBool>,
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
}

impl Iterator for Generation {
    type Item = Event;
    fn next(&mut self) -> Option<Event> {
        self.rx.recv().ok()
    }
}

impl Drop for Generation {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

/// The model with its tokenizer and chat template.
pub struct ModelBundle {
    /// Weights.
    pub model: Model,
    /// Tokenizer.
    pub tokenizer: Tokenizer,
    /// Chat template.
    pub template: ChatTemplate,
}

struct Job {
    tokens: Vec<u32>,
    prompt_len: usize,
    max_tokens: usize,
    decoder: Decoder,
    tx: Sender<Event>,
    cancel: Arc<AtomicBool>,
    reserve_bytes: usize,
}

/// A model being served.
pub struct Engine {
    jobs: Option<Sender<Job>>,
    waiting: Arc<AtomicUsize>,
    shared: Arc<Shared>,
    worker: Option<JoinHandle<()>>,
}

struct Shared {
    stats: StatsCells,
    tokenizer: Tokenizer,
    template: ChatTemplate,
    context_length: usize,
    kv_bytes_per_token: usize,
    config: EngineConfig,
    /// The vocabulary prepared for JSON masking, on the first request that needs it.
    json_vocab: OnceLock<Result<Arc<JsonVocab>, JsonVocabError>>,
}

impl Engine {
    /// Starts serving `bundle` on a worker thread.
    pub fn start(bundle: ModelBundle, config: EngineConfig) -> Self {
        let ModelBundle {
            model,
            tokenizer,
            template,
        } = bundle;
        let shared = Arc::new(Shared {
            stats: StatsCells::default(),
            context_length: model.config().context_length,
            kv_bytes_per_token: model.config().kv_bytes_per_token(),
            tokenizer,
            template,
            config,
            json_vocab: OnceLock::new(),
        });
        let (tx, rx) = mpsc::channel();
        let waiting = Arc::new(AtomicUsize::new(0));
        let worker = {
            let shared = shared.clone();
            let waiting = waiting.clone();
            std::thread::Builder::new()
                .name("silk-engine".into())
                .spawn(move || Worker::new(model, shared, waiting).run(rx))
                .ok()
        };
        Self {
            jobs: worker.as_ref().map(|_| tx),
            waiting,
            shared,
            worker,
        }
    }

    /// What the engine is doing now.
    pub fn stats(&self) -> EngineStats {
        let c = &self.shared.stats;
        EngineStats {
            running: c.running.load(Ordering::SeqCst),
            waiting: self.waiting.load(Ordering::SeqCst),
            reserved_kv_bytes: c.reserved.load(Ordering::SeqCst),
            steps: c.steps.load(Ordering::SeqCst),
        }
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.shared.tokenizer
    }

    /// Renders and tokenises a prompt as [`Engine::submit`] would.
    pub fn prompt_tokens(&self, prompt: &Prompt) -> Result<Vec<u32>, SubmitError> {
        let s = &self.shared;
        let text = match prompt {
            Prompt::Chat(messages) => s
                .template
                .render(messages, true)
                .map_err(|e| SubmitError::Prompt(e.to_string()))?,
            Prompt::Text(text) => text.clone(),
        };
        // A template that writes the BOS text itself must not get a second BOS.
        let bos_in_text = s
            .tokenizer
            .bos_id()
            .and_then(|id| s.tokenizer.id_to_token(id))
            .is_some_and(|bos| !bos.is_empty() && text.starts_with(bos));
        let add_bos = s.tokenizer.add_bos_default() && !bos_in_text;
        s.tokenizer
            .encode(&text, add_bos, true)
            .map_err(|e| SubmitError::Prompt(e.to_string()))
    }

    /// Queues a request. Fails at once when it is invalid or the engine is busy.
    pub fn submit(&self, req: GenerateRequest) -> Result<Generation, SubmitError> {
        req.params.validate()?;
        let s = &self.shared;
        let tokens = self.prompt_tokens(&req.prompt)?;
        if tokens.is_empty() {
            return Err(SubmitError::Prompt("the prompt has no tokens".into()));
        }
        if tokens.len() >= s.context_length {
            return Err(SubmitError::TooLarge(format!(
                "the prompt has {} tokens; the context holds {}",
                tokens.len(),
                s.context_length
            )));
        }
        let max_tokens = req
            .max_tokens
            .unwrap_or(s.config.default_max_tokens)
            .min(s.context_length - tokens.len());
        let json = self.checks(&req, max_tokens)?;
        let reserve_bytes = (tokens.len() + max_tokens) * s.kv_bytes_per_token;
        if reserve_bytes > s.config.kv_budget_bytes {
            return Err(SubmitError::TooLarge(format!(
                "{} prompt + {max_tokens} completion tokens need {reserve_bytes} bytes of KV cache; \
                 the budget is {}",
                tokens.len(),
                s.config.kv_budget_bytes
            )));
        }
        let waiting = self.waiting.fetch_add(1, Ordering::SeqCst);
        if waiting >= s.config.queue_capacity {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(SubmitError::Busy { waiting });
        }
        let (tx, rx) = mpsc::channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let prompt_len = tokens.len();
        let job = Job {
            tokens,
            prompt_len,
            max_tokens,
            decoder: Decoder::new(req.params, req.stop, req.logprobs, json),
            tx,
            cancel: cancel.clone(),
            reserve_bytes,
        };
        let sent = self.jobs.as_ref().map(|j| j.send(job).is_ok());
        if sent != Some(true) {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(SubmitError::Stopped);
        }
        Ok(Generation {
            rx,
            cancel,
            prompt_tokens: prompt_len,
        })
    }
}

impl Engine {
    /// The checks that need the vocabulary: `logit_bias` ids, `logprobs`, and for a JSON
    /// answer the prepared vocabulary (returned) and room for the smallest object.
    fn checks(
        &self,
        req: &GenerateRequest,
        max_tokens: usize,
    ) -> Result<Option<Arc<JsonVocab>>, SubmitError> {
        let s = &self.shared;
        let vocab = s.tokenizer.vocab_size();
        if let Some((&id, _)) = req.params.logit_bias.range(vocab as u32..).next() {
            return Err(ParamError {
                name: "logit_bias",
                problem: format!("names token {id}; the vocabulary has {vocab} tokens"),
            }
            .into());
        }
        if let Some(n) = req.logprobs.filter(|&n| n > MAX_TOP_LOGPROBS) {
            return Err(ParamError {
                name: "top_logprobs",
                problem: format!("= {n}: at most {MAX_TOP_LOGPROBS} alternatives"),
            }
            .into());
        }
        if req.format != ResponseFormat::JsonObject {
            return Ok(None);
        }
        let prepared = s
            .json_vocab
            .get_or_init(|| JsonVocab::new(&s.tokenizer).map(Arc::new))
            .clone()
            .map_err(|e| ParamError {
                name: "response_format",
                problem: format!("json_object cannot be served: {e}"),
            })?;
        let smallest = JsonState::new().close_cost();
        if max_tokens < smallest {
            return Err(match req.max_tokens {
                Some(m) if m < smallest => ParamError {
                    name: "max_tokens",
                    problem: format!("= {m}: a JSON object needs at least {smallest} tokens"),
                }
                .into(),
                _ => SubmitError::TooLarge(format!(
                    "the context leaves {max_tokens} tokens; a JSON object needs {smallest}"
                )),
            });
        }
        Ok(Some(prepared))
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Closing the channel lets the worker finish what runs and exit.
        self.jobs = None;
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}
