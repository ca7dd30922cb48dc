//! The OpenAI request and response shapes the enclave speaks inside the seal.
//!
//! Requests are parsed leniently where OpenAI's clients send fields silk ignores (`user`,
//! `logit_bias` absent, ...) and strictly where a value would change the answer: an
//! unsupported `n`, a wrong type or an out-of-range parameter is an error naming the
//! field. Responses follow OpenAI's shapes exactly, so SDKs parse them unchanged.

use serde::Deserialize;
use serde_json::{json, Value};
use silk_engine::{ChatMessage, FinishReason, GenerateRequest, Prompt, SamplingParams, Usage};
use silk_protocol::wire::Api;

/// A request the enclave will not run, with the field at fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{message}")]
pub struct RequestError {
    /// What is wrong (never echoing prompt content).
    pub message: String,
    /// The offending field, when there is one.
    pub param: Option<String>,
}

fn err(param: &str, message: impl Into<String>) -> RequestError {
    RequestError {
        message: message.into(),
        param: Some(param.into()),
    }
}

#[derive(Deserialize)]
struct Common {
    model: Option<String>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    top_k: Option<i64>,
    min_p: Option<f32>,
    repetition_penalty: Option<f32>,
    frequency_penalty: Option<f32>,
    presence_penalty: Option<f32>,
    seed: Option<i64>,
    max_tokens: Option<i64>,
    max_completion_tokens: Option<i64>,
    stop: Option<Value>,
    n: Option<i64>,
    #[serde(default)]
    stream: bool,
    stream_options: Option<StreamOptions>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// A parsed request: what to generate and how to answer.
#[derive(Debug)]
pub struct ParsedRequest {
    /// Which API the body was for.
    pub api: Api,
    /// The model the client named (answers echo it, or the served model's name).
    pub model: Option<String>,
    /// Stream the answer as SSE.
    pub stream: bool,
    /// Send a final usage chunk when streaming.
    pub include_usage: bool,
    /// The engine request.
    pub generate: GenerateRequest,
}

/// Which API a body is for: chat bodies have `messages`, completion bodies `prompt`.
pub fn detect_api(body: &Value) -> Result<Api, RequestError> {
    let obj = body.as_object().ok_or_else(|| RequestError {
        message: "the request body is not a JSON object".into(),
        param: None,
    })?;
    match (obj.contains_key("messages"), obj.contains_key("prompt")) {
        (true, false) => Ok(Api::ChatCompletions),
        (false, true) => Ok(Api::Completions),
        (true, true) => Err(err(
            "messages",
            "a body has `messages` or `prompt`, not both",
        )),
        (false, false) => Err(err(
            "messages",
            "missing `messages` (chat/completions) or `prompt` (completions)",
        )),
    }
}

/// Parses an OpenAI `chat/completions` or `completions` body.
pub fn parse(body: &[u8]) -> Result<ParsedRequest, RequestError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| RequestError {
        // serde_json's message names a line and column, never the content.
        message: format!("the request body is not valid JSON: {e}"),
        param: None,
    })?;
    let api = detect_api(&value)?;
    let common: Common = serde_json::from_value(value.clone()).map_err(|e| RequestError {
        message: format!("invalid request: {e}"),
        param: None,
    })?;
    let prompt = match api {
        Api::ChatCompletions => Prompt::Chat(messages(&value["messages"])?),
        Api::Completions => Prompt::Text(prompt_text(&value["prompt"])?),
    };
    if let Some(n) = common.n {
        if n != 1 {
            return Err(err("n", format!("n = {n} is not supported; only 1")));
        }
    }
    let params = sampling(&common)?;
    let max_tokens = match common.max_completion_tokens.or(common.max_tokens) {
        None => None,
        Some(m) if m >= 1 => Some(m as usize),
        Some(m) => {
            return Err(err(
                "max_tokens",
                format!("max_tokens = {m} must be at least 1"),
            ))
        }
    };
    Ok(ParsedRequest {
        api,
        model: common.model.clone(),
        stream: common.stream,
        include_usage: common.stream_options.is_some_and(|o| o.include_usage),
        generate: GenerateRequest {
            prompt,
            params,
            max_tokens,
            stop: stops(common.stop.as_ref())?,
            logprobs: None,
            format: Default::default(),
        },
    })
}

fn sampling(c: &Common) -> Result<SamplingParams, RequestError> {
    let mut p = SamplingParams::default();
    if let Some(t) = c.temperature {
        p.temperature = t;
    }
    if let Some(v) = c.top_p {
        p.top_p = v;
    }
    if let Some(k) = c.top_k {
        p.top_k = usize::try_from(k).map_err(|_| err("top_k", "top_k must not be negative"))?;
    }
    if let Some(v) = c.min_p {
        p.min_p = v;
    }
    if let Some(v) = c.repetition_penalty {
        p.repetition_penalty = v;
    }
    if let Some(v) = c.frequency_penalty {
        p.frequency_penalty = v;
    }
    if let Some(v) = c.presence_penalty {
        p.presence_penalty = v;
    }
    // OpenAI seeds are signed 64-bit; the bits are what matters.
    p.seed = c.seed.map(|s| s as u64);
    p.validate().map_err(|e| err(e.name, e.to_string()))?;
    Ok(p)
}

fn messages(v: &Value) -> Result<Vec<ChatMessage>, RequestError> {
    let list = v
        .as_array()
        .ok_or_else(|| err("messages", "`messages` must be an array"))?;
    if list.is_empty() {
        return Err(err("messages", "`messages` must not be empty"));
    }
    list.iter()
        .enumerate()
        .map(|(i, m)| {
            let role = m["role"]
                .as_str()
                .ok_or_else(|| err(&format!("messages[{i}].role"), "missing role"))?;
            if !matches!(role, "system" | "developer" | "user" | "assistant" | "tool") {
                return Err(err(
                    &format!("messages[{i}].role"),
                    format!("unknown role `{role}`"),
                ));
            }
            // `developer` is OpenAI's newer name for the system turn.
            let role = if role == "developer" { "system" } else { role };
            Ok(ChatMessage::new(role, content(&m["content"], i)?))
        })
        .collect()
}

fn content(v: &Value, i: usize) -> Result<String, RequestError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        Value::Array(parts) => {
            let mut text = String::new();
            for (j, part) in parts.iter().enumerate() {
                match (part["type"].as_str(), part["text"].as_str()) {
                    (Some("text"), Some(t)) => text.push_str(t),
                    (kind, _) => {
                        return Err(err(
                            &format!("messages[{i}].content[{j}]"),
                            format!(
                                "content part type {} is not supported (text only)",
                                kind.unwrap_or("(none)")
                            ),
                        ))
                    }
                }
            }
            Ok(text)
        }
        _ => Err(err(
            &format!("messages[{i}].content"),
            "content must be a string or an array of text parts",
        )),
    }
}

fn prompt_text(v: &Value) -> Result<String, RequestError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Array(a) if a.len() == 1 && a[0].is_string() => {
            Ok(a[0].as_str().unwrap_or_default().to_owned())
        }
        Value::Array(_) => Err(err(
            "prompt",
            "only a single prompt string is supported (no batches or token arrays)",
        )),
        _ => Err(err("prompt", "`prompt` must be a string")),
    }
}

fn stops(v: Option<&Value>) -> Result<Vec<String>, RequestError> {
    let list = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| err("stop", "stop sequences must be strings"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(err(
                "stop",
                "`stop` must be a string or an array of strings",
            ))
        }
    };
    if list.len() > 4 || list.iter().any(String::is_empty) {
        return Err(err("stop", "at most 4 non-empty stop sequences"));
    }
    Ok(list)
}

/// The fixed parts of every answer to one request.
#[derive(Clone, Debug)]
pub struct AnswerHead {
    /// Which API.
    pub api: Api,
    /// `chatcmpl-…` or `cmpl-…`.
    pub id: String,
    /// Seconds since the epoch.
    pub created: u64,
    /// Model name echoed back.
    pub model: String,
}

fn usage_json(u: Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
    })
}

impl AnswerHead {
    fn object(&self, chunk: bool) -> &'static str {
        match (self.api, chunk) {
            (Api::ChatCompletions, false) => "chat.completion",
            (Api::ChatCompletions, true) => "chat.completion.chunk",
            (Api::Completions, _) => "text_completion",
        }
    }

    /// The whole (non-streamed) answer.
    pub fn complete(&self, text: &str, reason: FinishReason, usage: Usage) -> Value {
        let choice = match self.api {
            Api::ChatCompletions => json!({
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": null,
                "finish_reason": reason.as_str(),
            }),
            Api::Completions => json!({
                "index": 0, "text": text, "logprobs": null, "finish_reason": reason.as_str(),
            }),
        };
        json!({
            "id": self.id, "object": self.object(false), "created": self.created,
            "model": self.model, "choices": [choice], "usage": usage_json(usage),
        })
    }

    /// One streamed delta (`finish` set on the last).
    pub fn chunk(&self, text: Option<&str>, first: bool, finish: Option<FinishReason>) -> Value {
        let reason = finish.map(FinishReason::as_str);
        let choice = match self.api {
            Api::ChatCompletions => {
                let mut delta = serde_json::Map::new();
                if first {
                    delta.insert("role".into(), json!("assistant"));
                }
                if let Some(t) = text {
                    delta.insert("content".into(), json!(t));
                }
                json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": reason})
            }
            Api::Completions => json!({
                "index": 0, "text": text.unwrap_or(""), "logprobs": null, "finish_reason": reason,
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

/// One SSE event carrying `value`.
pub fn sse(value: &Value) -> Vec<u8> {
    let mut out = b"data: ".to_vec();
    out.extend_from_slice(value.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
    out
}

/// The SSE end marker OpenAI sends.
pub const SSE_DONE: &[u8] = b"data: [DONE]\n\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_and_completion_bodies_parse_with_their_parameters() {
        let r = parse(br#"{"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text","text":"hi"}]}],"temperature":0,"max_tokens":5,"stop":"x","seed":-1,"stream":true,"stream_options":{"include_usage":true},"user":"ignored"}"#).unwrap();
        assert_eq!(r.api, Api::ChatCompletions);
        assert!(r.stream && r.include_usage);
        assert_eq!(r.generate.max_tokens, Some(5));
        assert_eq!(r.generate.stop, vec!["x"]);
        assert_eq!(r.generate.params.seed, Some(u64::MAX));
        match r.generate.prompt {
            Prompt::Chat(m) => assert_eq!(m[1].content, "hi"),
            Prompt::Text(_) => panic!("chat expected"),
        }
        let r = parse(br#"{"model":"m","prompt":["once"],"max_completion_tokens":3}"#).unwrap();
        assert_eq!(r.api, Api::Completions);
        assert_eq!(r.generate.max_tokens, Some(3));
    }

    #[test]
    fn bad_bodies_name_the_field() {
        let cases: &[(&[u8], &str)] = &[
            (br#"{"messages":[]}"#, "messages"),
            (
                br#"{"messages":[{"role":"wizard","content":"x"}]}"#,
                "messages[0].role",
            ),
            (br#"{"prompt":"x","n":2}"#, "n"),
            (br#"{"prompt":"x","temperature":-1}"#, "temperature"),
            (br#"{"prompt":"x","max_tokens":0}"#, "max_tokens"),
            (br#"{"prompt":"x","stop":[1]}"#, "stop"),
            (br#"{"prompt":[1,2]}"#, "prompt"),
            (
                br#"{"messages":[{"role":"user","content":[{"type":"image_url"}]}]}"#,
                "messages[0].content[0]",
            ),
            (br#"{"nothing":1}"#, "messages"),
        ];
        for (body, param) in cases {
            let e = parse(body).unwrap_err();
            assert_eq!(
                e.param.as_deref(),
                Some(*param),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(parse(b"{not json").unwrap_err().param.is_none());
    }

    #[test]
    fn answers_have_openai_shapes() {
        let head = AnswerHead {
            api: Api::ChatCompletions,
            id: "chatcmpl-1".into(),
            created: 1,
            model: "m".into(),
        };
        let u = Usage {
            prompt_tokens: 3,
            completion_tokens: 2,
        };
        let v = head.complete("hello", FinishReason::Stop, u);
        assert_eq!(v["choices"][0]["message"]["content"], "hello");
        assert_eq!(v["usage"]["total_tokens"], 5);
        let c = head.chunk(Some("he"), true, None);
        assert_eq!(c["choices"][0]["delta"]["role"], "assistant");
        assert!(c["choices"][0]["finish_reason"].is_null());
        let end = head.chunk(None, false, Some(FinishReason::Length));
        assert_eq!(end["choices"][0]["finish_reason"], "length");
        assert_eq!(sse(&json!({"a":1})), b"data: {\"a\":1}\n\n");
    }
}
