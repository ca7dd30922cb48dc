//! The answer shapes: OpenAI's, exactly, so SDKs parse them unchanged.

use serde_json::{json, Map, Value};
use silk_engine::sampler::logprobs::{Scored, TokenLogprob};
use silk_engine::{FinishReason, Usage};
use silk_protocol::wire::Api;

/// The fixed parts of every answer to one request.
#[derive(Clone, Debug)]
pub struct AnswerHead {
    /// Which API.
    pub api: Api,
    /// `chatcmpl-…` or `cmpl-…`.
    pub id: String,
    /// Seconds since the epoch.
    pub created: u64,
    /// The served model's name.
    pub model: String,
    /// Whether the request asked for logprobs (then every choice carries a `logprobs`
    /// object, else `null`).
    pub logprobs: bool,
}

fn usage_json(u: Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
    })
}

/// What OpenAI writes for a logprob too small for a float: `-9999.0` (JSON has no
/// infinity).
const FLOOR: f32 = -9999.0;

fn logprob(lp: f32) -> f32 {
    if lp.is_finite() {
        lp.max(FLOOR)
    } else {
        FLOOR
    }
}

/// A token's text as OpenAI writes it: the string when its bytes are whole UTF-8, else
/// `bytes:` and the bytes as `\xNN` (a token may hold part of a character; its `bytes`
/// field has them exactly).
pub fn token_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => {
            let mut out = String::from("bytes:");
            for b in bytes {
                out.push_str(&format!("\\x{b:02x}"));
            }
            out
        }
    }
}

fn scored_json(s: &Scored) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("token".into(), json!(token_text(&s.bytes)));
    m.insert("logprob".into(), json!(logprob(s.logprob)));
    m.insert("bytes".into(), json!(s.bytes));
    m
}

/// Chat's `logprobs`: `{"content": [{token, logprob, bytes, top_logprobs}], "refusal": null}`.
fn chat_logprobs(entries: &[TokenLogprob]) -> Value {
    let content: Vec<Value> = entries
        .iter()
        .map(|e| {
            let mut m = scored_json(&e.token);
            let top: Vec<Value> = e
                .top
                .iter()
                .map(|t| Value::Object(scored_json(t)))
                .collect();
            m.insert("top_logprobs".into(), Value::Array(top));
            Value::Object(m)
        })
        .collect();
    json!({"content": content, "refusal": null})
}

/// The legacy completions `logprobs`: parallel lists of tokens, their logprobs, the most
/// likely alternatives (with the chosen token, as OpenAI documents: up to `logprobs + 1`
/// entries) and each token's character offset in the answer text.
fn completion_logprobs(entries: &[TokenLogprob]) -> Value {
    let tokens: Vec<String> = entries.iter().map(|e| token_text(&e.token.bytes)).collect();
    let lps: Vec<f32> = entries.iter().map(|e| logprob(e.token.logprob)).collect();
    let top: Vec<Value> = entries
        .iter()
        .map(|e| {
            let mut m = Map::new();
            for s in e.top.iter().chain([&e.token]) {
                m.insert(token_text(&s.bytes), json!(logprob(s.logprob)));
            }
            Value::Object(m)
        })
        .collect();
    let offsets: Vec<usize> = entries.iter().map(|e| e.text_offset).collect();
    json!({"tokens": tokens, "token_logprobs": lps, "top_logprobs": top, "text_offset": offsets})
}

impl AnswerHead {
    fn object(&self, chunk: bool) -> &'static str {
        match (self.api, chunk) {
            (Api::ChatCompletions, false) => "chat.completion",
            (Api::ChatCompletions, true) => "chat.completion.chunk",
            (Api::Completions, _) => "text_completion",
        }
    }

    /// A choice's `logprobs`: `null` unless asked for; in a chunk, `null` when it
    /// carries none.
    fn logprobs_json(&self, entries: &[TokenLogprob], chunk: bool) -> Value {
        if !self.logprobs || (chunk && entries.is_empty()) {
            return Value::Null;
        }
        match self.api {
            Api::ChatCompletions => chat_logprobs(entries),
            Api::Completions => completion_logprobs(entries),
        }
    }

    /// The whole (non-streamed) answer.
    pub fn complete(
        &self,
        text: &str,
        logprobs: &[TokenLogprob],
        reason: FinishReason,
        usage: Usage,
    ) -> Value {
        let lp = self.logprobs_json(logprobs, false);
        let choice = match self.api {
            Api::ChatCompletions => json!({
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": null},
                "logprobs": lp,
                "finish_reason": reason.as_str(),
            }),
            Api::Completions => json!({
                "index": 0, "text": text, "logprobs": lp, "finish_reason": reason.as_str(),
            }),
        };
        json!({
            "id": self.id, "object": self.object(false), "created": self.created,
            "model": self.model, "choices": [choice], "usage": usage_json(usage),
        })
    }

    /// One streamed delta (`finish` set on the last), with the logprobs of its tokens.
    pub fn chunk(
        &self,
        text: Option<&str>,
        logprobs: &[TokenLogprob],
        first: bool,
        finish: Option<FinishReason>,
    ) -> Value {
        let reason = finish.map(FinishReason::as_str);
        let lp = self.logprobs_json(logprobs, true);
        let choice = match self.api {
            Api::ChatCompletions => {
                let mut delta = Map::new();
                if first {
                    delta.insert("role".into(), json!("assistant"));
                }
                if let Some(t) = text {
                    delta.insert("content".into(), json!(t));
                }
                json!({"index": 0, "delta": delta, "logprobs": lp, "finish_reason": reason})
            }
            Api::Completions => json!({
                "index": 0, "text": text.unwrap_or(""), "logprobs": lp, "finish_reason": reason,
            }),
        };
        json!({
            "id": self.id, "object": self.object(true), "created": self.created,
            "model": self.model, "choices": [choice],
        })
    }

    /// The final usage chunk of a stream (`stream_options.include_usage`).
    pub fn usage_chunk(&self, usage: Usage) -> Value {
        json!({
            "id": self.id, "object": self.object(true), "created": self.created,
            "model": self.model, "choices": [], "usage": usage_json(usage),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(api: Api, logprobs: bool) -> AnswerHead {
        AnswerHead {
            api,
            id: "chatcmpl-1".into(),
            created: 1,
            model: "m".into(),
            logprobs,
        }
    }

    fn entries() -> Vec<TokenLogprob> {
        let s = |id, bytes: &[u8], logprob| Scored {
            id,
            bytes: bytes.to_vec(),
            logprob,
        };
        vec![
            TokenLogprob {
                token: s(5, b"Hi", -0.25),
                top: vec![s(5, b"Hi", -0.25), s(6, b"Hello", -1.5)],
                text_offset: 0,
            },
            TokenLogprob {
                token: s(7, &[0xE2, 0x82], f32::NEG_INFINITY),
                top: vec![],
                text_offset: 2,
            },
        ]
    }

    #[test]
    fn answers_have_openai_shapes() {
        let u = Usage {
            prompt_tokens: 3,
            completion_tokens: 2,
        };
        let v = head(Api::ChatCompletions, false).complete("hello", &[], FinishReason::Stop, u);
        assert_eq!(v["choices"][0]["message"]["content"], "hello");
        assert!(v["choices"][0]["logprobs"].is_null());
        assert_eq!(v["usage"]["total_tokens"], 5);
        let c = head(Api::ChatCompletions, false).chunk(Some("he"), &[], true, None);
        assert_eq!(c["choices"][0]["delta"]["role"], "assistant");
        assert!(c["choices"][0]["finish_reason"].is_null());
        let end =
            head(Api::ChatCompletions, false).chunk(None, &[], false, Some(FinishReason::Length));
        assert_eq!(end["choices"][0]["finish_reason"], "length");
    }

    #[test]
    fn chat_logprobs_have_openais_shape() {
        let u = Usage::default();
        let v = head(Api::ChatCompletions, true).complete("Hi", &entries(), FinishReason::Stop, u);
        let content = &v["choices"][0]["logprobs"]["content"];
        assert_eq!(content[0]["token"], "Hi");
        assert_eq!(content[0]["logprob"], -0.25);
        assert_eq!(content[0]["bytes"], json!([72, 105]));
        assert_eq!(content[0]["top_logprobs"][1]["token"], "Hello");
        assert_eq!(content[0]["top_logprobs"][1]["logprob"], -1.5);
        // Half a character, and a logprob JSON cannot write.
        assert_eq!(content[1]["token"], "bytes:\\xe2\\x82");
        assert_eq!(content[1]["logprob"], -9999.0);
        assert_eq!(content[1]["top_logprobs"], json!([]));
        let h = head(Api::ChatCompletions, true);
        assert!(h.chunk(Some("x"), &[], false, None)["choices"][0]["logprobs"].is_null());
        let c = h.chunk(Some("Hi"), &entries()[..1], true, None);
        assert_eq!(c["choices"][0]["logprobs"]["content"][0]["token"], "Hi");
    }

    #[test]
    fn completion_logprobs_have_the_legacy_shape() {
        let v = head(Api::Completions, true).complete(
            "Hi",
            &entries(),
            FinishReason::Length,
            Usage::default(),
        );
        let lp = &v["choices"][0]["logprobs"];
        assert_eq!(lp["tokens"], json!(["Hi", "bytes:\\xe2\\x82"]));
        assert_eq!(lp["token_logprobs"], json!([-0.25, -9999.0]));
        assert_eq!(lp["top_logprobs"][0], json!({"Hi": -0.25, "Hello": -1.5}));
        assert_eq!(lp["top_logprobs"][1], json!({"bytes:\\xe2\\x82": -9999.0}));
        assert_eq!(lp["text_offset"], json!([0, 2]));
    }
}
