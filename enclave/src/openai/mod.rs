//! The OpenAI request and response shapes the enclave speaks inside the seal.
//!
//! Requests are parsed strictly: every parameter of OpenAI's `chat/completions` and
//! `completions` is implemented or refused with an error naming it ([`params`] lists
//! them all and what is done with each), and a name OpenAI does not define is refused as
//! well, so that nothing a client sends is silently dropped. `null` is the same as
//! leaving a parameter out. Responses follow OpenAI's shapes exactly ([`answer`]).

pub mod answer;
mod messages;
pub mod params;
mod request;

pub use answer::AnswerHead;

use serde_json::{Map, Value};
use silk_engine::{GenerateRequest, Prompt};
use silk_protocol::wire::{Api, ErrorBody};

use params::Support;
use request::Fields;

/// How a request is wrong, as OpenAI's error `code` says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// The body is not a JSON object.
    BadBody,
    /// A parameter OpenAI does not define (or not for this endpoint).
    UnknownParameter,
    /// A parameter, or a value of it, that silk does not implement.
    UnsupportedParameter,
    /// A value of the wrong type or out of range.
    InvalidValue,
}

impl ErrorCode {
    /// The `code` written in the error body.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadBody => "bad_request",
            ErrorCode::UnknownParameter => "unknown_parameter",
            ErrorCode::UnsupportedParameter => "unsupported_parameter",
            ErrorCode::InvalidValue => "invalid_value",
        }
    }
}

/// A request the enclave will not run, with the parameter at fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{message}")]
pub struct RequestError {
    /// What is wrong (never echoing prompt content).
    pub message: String,
    /// The offending parameter (e.g. `tools`, `messages[0].content[1]`), when there is one.
    pub param: Option<String>,
    /// What kind of wrong.
    pub code: ErrorCode,
}

impl RequestError {
    /// The OpenAI error body (`invalid_request_error`) for this error.
    pub fn to_body(&self) -> ErrorBody {
        let body = ErrorBody::new("invalid_request_error", self.code.as_str(), &self.message);
        match &self.param {
            Some(p) => body.with_param(p),
            None => body,
        }
    }
}

fn error(code: ErrorCode, param: &str, message: impl Into<String>) -> RequestError {
    RequestError {
        message: message.into(),
        param: Some(param.into()),
        code,
    }
}

/// A value of `param` of the wrong type or out of range.
fn invalid(param: &str, message: impl Into<String>) -> RequestError {
    error(ErrorCode::InvalidValue, param, message)
}

/// A parameter or value silk does not implement.
fn refused(param: &str, message: impl Into<String>) -> RequestError {
    error(ErrorCode::UnsupportedParameter, param, message)
}

fn bad_body(message: impl Into<String>) -> RequestError {
    RequestError {
        message: message.into(),
        param: None,
        code: ErrorCode::BadBody,
    }
}

/// A parsed request: what to generate and how to answer.
#[derive(Debug)]
pub struct ParsedRequest {
    /// Which API the body was for.
    pub api: Api,
    /// The model the client named.
    pub model: Option<String>,
    /// Stream the answer as SSE.
    pub stream: bool,
    /// Send a final usage chunk when streaming.
    pub include_usage: bool,
    /// The engine request (its `logprobs` set when the answer reports them).
    pub generate: GenerateRequest,
}

/// Which API a body is for: chat bodies have `messages`, completion bodies `prompt`
/// (`null` counts as absent).
pub fn detect_api(body: &Map<String, Value>) -> Result<Api, RequestError> {
    let has = |k: &str| body.get(k).is_some_and(|v| !v.is_null());
    match (has("messages"), has("prompt")) {
        (true, false) => Ok(Api::ChatCompletions),
        (false, true) => Ok(Api::Completions),
        (true, true) => Err(invalid(
            "messages",
            "a body has `messages` or `prompt`, not both",
        )),
        (false, false) => Err(error(
            ErrorCode::InvalidValue,
            "messages",
            "missing `messages` (chat/completions) or `prompt` (completions)",
        )),
    }
}

/// Parses an OpenAI `chat/completions` or `completions` body.
pub fn parse(body: &[u8]) -> Result<ParsedRequest, RequestError> {
    let value: Value = serde_json::from_slice(body)
        // serde_json's message names a line and column, never the content.
        .map_err(|e| bad_body(format!("the request body is not valid JSON: {e}")))?;
    let Value::Object(mut obj) = value else {
        return Err(bad_body("the request body is not a JSON object"));
    };
    obj.retain(|_, v| !v.is_null());
    let api = detect_api(&obj)?;
    // Names first, so that a body is refused for what it asks before how it asks it.
    for name in obj.keys() {
        let endpoint = match api {
            Api::ChatCompletions => "chat/completions",
            Api::Completions => "completions",
        };
        let param = params::lookup(api, name).ok_or_else(|| {
            error(
                ErrorCode::UnknownParameter,
                name,
                format!("unrecognized request argument `{name}` for {endpoint}"),
            )
        })?;
        if param.support == Support::Refused {
            return Err(refused(
                name,
                format!("`{name}` is not supported: {}", param.note),
            ));
        }
    }
    let mut fields = Fields::default();
    for (name, v) in &obj {
        fields.set(api, name, v)?;
    }
    let (max_tokens, logprobs) = fields.finish(api)?;
    // detect_api saw the field; a missing one would read as null and be refused.
    let field = |k: &str| obj.get(k).unwrap_or(&Value::Null);
    let prompt = match api {
        Api::ChatCompletions => Prompt::Chat(messages::messages(field("messages"))?),
        Api::Completions => Prompt::Text(messages::prompt_text(field("prompt"))?),
    };
    Ok(ParsedRequest {
        api,
        model: fields.model,
        stream: fields.stream,
        include_usage: fields.include_usage,
        generate: GenerateRequest {
            prompt,
            params: fields.params,
            max_tokens,
            stop: fields.stop,
            logprobs,
            format: fields.format,
        },
    })
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
    use silk_engine::scheduler::ResponseFormat;

    #[test]
    fn chat_and_completion_bodies_parse_with_their_parameters() {
        let r = parse(br#"{"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"text","text":"hi"}]}],"temperature":0,"max_tokens":5,"stop":"x","seed":-1,"stream":true,"stream_options":{"include_usage":true},"user":"ignored","logprobs":true,"top_logprobs":4,"logit_bias":{"12":-100},"response_format":{"type":"json_object"},"tools":null}"#).unwrap();
        assert_eq!(r.api, Api::ChatCompletions);
        assert!(r.stream && r.include_usage);
        let g = &r.generate;
        assert_eq!(g.max_tokens, Some(5));
        assert_eq!(g.stop, vec!["x"]);
        assert_eq!(g.params.seed, Some(u64::MAX));
        assert_eq!(g.logprobs, Some(4));
        assert_eq!(g.params.logit_bias.get(&12), Some(&-100.0));
        assert_eq!(g.format, ResponseFormat::JsonObject);
        match &g.prompt {
            Prompt::Chat(m) => assert_eq!(m[1].content, "hi"),
            Prompt::Text(_) => panic!("chat expected"),
        }
        let r = parse(br#"{"model":"m","prompt":["once"],"max_tokens":3,"logprobs":0}"#).unwrap();
        assert_eq!(r.api, Api::Completions);
        assert_eq!(r.generate.max_tokens, Some(3));
        assert_eq!(r.generate.logprobs, Some(0));
        // Chat logprobs without alternatives; none at all unless asked.
        let r = parse(br#"{"messages":[{"role":"user","content":"x"}],"logprobs":true}"#);
        assert_eq!(r.unwrap().generate.logprobs, Some(0));
        let r = parse(br#"{"messages":[{"role":"user","content":"x"}],"logprobs":false}"#);
        assert_eq!(r.unwrap().generate.logprobs, None);
    }

    #[test]
    fn bad_bodies_name_the_field() {
        let cases: &[(&[u8], &str, ErrorCode)] = &[
            (br#"{"messages":[]}"#, "messages", ErrorCode::InvalidValue),
            (
                br#"{"messages":[{"role":"wizard","content":"x"}]}"#,
                "messages[0].role",
                ErrorCode::InvalidValue,
            ),
            (
                br#"{"messages":[{"role":"tool","content":"x","tool_call_id":"1"}]}"#,
                "messages[0].tool_call_id",
                ErrorCode::UnsupportedParameter,
            ),
            (
                br#"{"messages":[{"role":"tool","content":"x"}]}"#,
                "messages[0].role",
                ErrorCode::UnsupportedParameter,
            ),
            (
                br#"{"prompt":"x","n":2}"#,
                "n",
                ErrorCode::UnsupportedParameter,
            ),
            (
                br#"{"prompt":"x","temperature":-1}"#,
                "temperature",
                ErrorCode::InvalidValue,
            ),
            (
                br#"{"prompt":"x","max_tokens":0}"#,
                "max_tokens",
                ErrorCode::InvalidValue,
            ),
            (
                br#"{"prompt":"x","stop":[1]}"#,
                "stop",
                ErrorCode::InvalidValue,
            ),
            (
                br#"{"prompt":[1,2]}"#,
                "prompt",
                ErrorCode::UnsupportedParameter,
            ),
            (
                br#"{"messages":[{"role":"user","content":[{"type":"image_url"}]}]}"#,
                "messages[0].content[0]",
                ErrorCode::UnsupportedParameter,
            ),
            (br#"{"nothing":1}"#, "messages", ErrorCode::InvalidValue),
            (
                br#"{"prompt":"x","tools":[]}"#,
                "tools",
                ErrorCode::UnknownParameter,
            ),
            (
                br#"{"messages":[{"role":"user","content":"x"}],"tools":[],"temperature":"hot"}"#,
                "tools",
                ErrorCode::UnsupportedParameter,
            ),
            (
                br#"{"prompt":"x","logit_bias":{"-1":5}}"#,
                "logit_bias",
                ErrorCode::InvalidValue,
            ),
            (
                br#"{"prompt":"x","logprobs":true}"#,
                "logprobs",
                ErrorCode::InvalidValue,
            ),
        ];
        for (body, param, code) in cases {
            let e = parse(body).unwrap_err();
            let shown = String::from_utf8_lossy(body);
            assert_eq!(e.param.as_deref(), Some(*param), "{shown}");
            assert_eq!(e.code, *code, "{shown}");
            let b = e.to_body();
            assert_eq!(b.error.param.as_deref(), Some(*param));
            assert_eq!(b.error.kind, "invalid_request_error");
        }
        let e = parse(b"{not json").unwrap_err();
        assert!(e.param.is_none());
        assert_eq!(e.to_body().error.code, "bad_request");
        assert_eq!(parse(b"[1]").unwrap_err().code, ErrorCode::BadBody);
    }

    #[test]
    fn sse_events_are_framed() {
        assert_eq!(sse(&serde_json::json!({"a":1})), b"data: {\"a\":1}\n\n");
    }
}
