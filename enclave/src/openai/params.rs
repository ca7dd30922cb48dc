//! Every request parameter of OpenAI's `chat/completions` and `completions`, and what
//! silk does with it.
//!
//! The list is OpenAI's (the official Python SDK's `completion_create_params`, v2.8), plus
//! silk's three sampling extensions. A parameter is implemented, implemented for some
//! values with the others refused, accepted and ignored (only where OpenAI's own definition
//! says it never changes the answer), or refused. A refusal is HTTP 400 naming the
//! parameter; so is any name not in this list. `null` is the same as leaving a parameter
//! out. `docs/openai.md` carries the same table; a test keeps the two equal.

use silk_protocol::wire::Api;

/// What silk does with a parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// Every valid value is honoured.
    Implemented,
    /// Some values are honoured; the others are refused with 400 naming the parameter.
    Partial,
    /// Accepted and without effect: by OpenAI's definition it does not change the answer.
    Ignored,
    /// Any value other than `null` is refused with 400 naming the parameter.
    Refused,
}

impl Support {
    /// The word the documentation's table uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Support::Implemented => "implemented",
            Support::Partial => "partial",
            Support::Ignored => "ignored",
            Support::Refused => "refused",
        }
    }
}

/// Which endpoints take a parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoints {
    /// `chat/completions` only.
    Chat,
    /// `completions` only.
    Completions,
    /// Both.
    Both,
}

impl Endpoints {
    /// Whether `api` takes the parameter.
    pub fn includes(self, api: Api) -> bool {
        matches!(
            (self, api),
            (Endpoints::Both, _)
                | (Endpoints::Chat, Api::ChatCompletions)
                | (Endpoints::Completions, Api::Completions)
        )
    }

    /// The words the documentation's table uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoints::Chat => "chat",
            Endpoints::Completions => "completions",
            Endpoints::Both => "both",
        }
    }
}

/// One parameter.
#[derive(Clone, Copy, Debug)]
pub struct Param {
    /// Its name in the request body.
    pub name: &'static str,
    /// Where it applies.
    pub endpoints: Endpoints,
    /// What silk does with it.
    pub support: Support,
    /// What is honoured and what is refused, for the documentation.
    pub note: &'static str,
    /// Body fields (a JSON object) that are accepted, for the tests; `None` if none are.
    pub accepted: Option<&'static str>,
    /// Body fields that are refused naming this parameter, for the tests.
    pub refused: Option<&'static str>,
}

const fn param(
    name: &'static str,
    endpoints: Endpoints,
    support: Support,
    note: &'static str,
    accepted: Option<&'static str>,
    refused: Option<&'static str>,
) -> Param {
    Param {
        name,
        endpoints,
        support,
        note,
        accepted,
        refused,
    }
}

use Endpoints::{Both, Chat, Completions};
use Support::{Ignored, Implemented, Partial, Refused};

/// The parameters, in the order of the documentation's table.
pub const PARAMETERS: &[Param] = &[
    param("messages", Chat, Partial,
        "roles `system`, `developer` (read as `system`), `user`, `assistant`; content a string or `text` parts. Roles `tool` and `function`, other content parts (images, audio, files) and message fields other than `role` and `content` (`name`, `tool_calls`, ...) are refused, naming e.g. `messages[0].name`",
        Some(r#"{"messages": [{"role": "developer", "content": "be brief"}, {"role": "user", "content": [{"type": "text", "text": "hi"}]}]}"#),
        Some(r#"{"messages": [{"role": "user", "content": "hi", "name": "ann"}]}"#)),
    param("prompt", Completions, Partial,
        "one string, or a list of one string; token arrays and batches are refused",
        Some(r#"{"prompt": ["once upon"]}"#),
        Some(r#"{"prompt": [[1, 2]]}"#)),
    param("model", Both, Implemented,
        "any name is accepted: an enclave serves the one model its attestation names, and the answer's `model` names that model",
        Some(r#"{"model": "gpt-4o"}"#),
        Some(r#"{"model": 4}"#)),
    param("max_tokens", Both, Implemented,
        "at least 1; the default is the engine's (512); cut to what the context leaves",
        Some(r#"{"max_tokens": 5}"#),
        Some(r#"{"max_tokens": 0}"#)),
    param("max_completion_tokens", Chat, Implemented,
        "as `max_tokens`; both may be given only with the same value",
        Some(r#"{"max_completion_tokens": 5, "max_tokens": 5}"#),
        Some(r#"{"max_completion_tokens": 5, "max_tokens": 6}"#)),
    param("temperature", Both, Implemented,
        "0 to 2; 0 is greedy",
        Some(r#"{"temperature": 0}"#),
        Some(r#"{"temperature": 2.5}"#)),
    param("top_p", Both, Implemented,
        "above 0, at most 1",
        Some(r#"{"top_p": 0.9}"#),
        Some(r#"{"top_p": 0}"#)),
    param("frequency_penalty", Both, Implemented,
        "-2 to 2, over the last 64 tokens (prompt and answer)",
        Some(r#"{"frequency_penalty": 0.5}"#),
        Some(r#"{"frequency_penalty": 3}"#)),
    param("presence_penalty", Both, Implemented,
        "-2 to 2, over the last 64 tokens (prompt and answer)",
        Some(r#"{"presence_penalty": -0.5}"#),
        Some(r#"{"presence_penalty": "high"}"#)),
    param("seed", Both, Implemented,
        "any 64-bit integer: the same seed, prompt and settings give the same answer",
        Some(r#"{"seed": -7}"#),
        Some(r#"{"seed": 1.5}"#)),
    param("stop", Both, Implemented,
        "a string or up to 4 non-empty strings; never part of the answer",
        Some(r#"{"stop": ["\n\n", "END"]}"#),
        Some(r#"{"stop": [1]}"#)),
    param("stream", Both, Implemented,
        "server-sent events, ending with `data: [DONE]`",
        Some(r#"{"stream": true}"#),
        Some(r#"{"stream": "yes"}"#)),
    param("stream_options", Both, Implemented,
        "only with `stream: true`; `include_usage` adds the usage chunk; `include_obfuscation` is accepted and ignored (silk pads nothing)",
        Some(r#"{"stream": true, "stream_options": {"include_usage": true, "include_obfuscation": false}}"#),
        Some(r#"{"stream_options": {"include_usage": true}}"#)),
    param("n", Both, Partial,
        "1 only",
        Some(r#"{"n": 1}"#),
        Some(r#"{"n": 2}"#)),
    param("logprobs", Chat, Implemented,
        "`true` reports each token's logprob (the model's log-softmax, before penalties, bias, masks and temperature), streamed or not",
        Some(r#"{"logprobs": true}"#),
        Some(r#"{"logprobs": 1}"#)),
    param("logprobs", Completions, Implemented,
        "0 to 5: each token's logprob and this many alternatives (as chat's), streamed or not",
        Some(r#"{"logprobs": 5}"#),
        Some(r#"{"logprobs": 6}"#)),
    param("top_logprobs", Chat, Implemented,
        "0 to 20, with `logprobs: true`",
        Some(r#"{"logprobs": true, "top_logprobs": 20}"#),
        Some(r#"{"top_logprobs": 2}"#)),
    param("logit_bias", Both, Implemented,
        "token id (a decimal string) to a bias from -100 to 100, added to the logit; -100 bans the token; at most 1024 entries; ids outside the vocabulary are refused",
        Some(r#"{"logit_bias": {"0": -100, "17": 2.5}}"#),
        Some(r#"{"logit_bias": {"the": 1}}"#)),
    param("response_format", Chat, Partial,
        "`text`, or `json_object`: constrained decoding, the answer is one JSON object (see below). `json_schema` is refused",
        Some(r#"{"response_format": {"type": "json_object"}}"#),
        Some(r#"{"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}}"#)),
    param("best_of", Completions, Partial,
        "1 only",
        Some(r#"{"best_of": 1}"#),
        Some(r#"{"best_of": 3}"#)),
    param("echo", Completions, Partial,
        "`false` only",
        Some(r#"{"echo": false}"#),
        Some(r#"{"echo": true}"#)),
    param("suffix", Completions, Refused,
        "insertion is not implemented",
        None,
        Some(r#"{"suffix": "end"}"#)),
    param("tools", Chat, Refused,
        "tool calling is not implemented",
        None,
        Some(r#"{"tools": [{"type": "function", "function": {"name": "f"}}]}"#)),
    param("tool_choice", Chat, Partial,
        "`none` only (no tools are called)",
        Some(r#"{"tool_choice": "none"}"#),
        Some(r#"{"tool_choice": "auto"}"#)),
    param("parallel_tool_calls", Chat, Refused,
        "tool calling is not implemented",
        None,
        Some(r#"{"parallel_tool_calls": false}"#)),
    param("functions", Chat, Refused,
        "function calling is not implemented",
        None,
        Some(r#"{"functions": [{"name": "f"}]}"#)),
    param("function_call", Chat, Partial,
        "`none` only (no functions are called)",
        Some(r#"{"function_call": "none"}"#),
        Some(r#"{"function_call": {"name": "f"}}"#)),
    param("modalities", Chat, Partial,
        "`[\"text\"]` only",
        Some(r#"{"modalities": ["text"]}"#),
        Some(r#"{"modalities": ["text", "audio"]}"#)),
    param("audio", Chat, Refused,
        "audio output is not implemented",
        None,
        Some(r#"{"audio": {"voice": "alloy", "format": "mp3"}}"#)),
    param("prediction", Chat, Refused,
        "predicted outputs are not implemented",
        None,
        Some(r#"{"prediction": {"type": "content", "content": "x"}}"#)),
    param("reasoning_effort", Chat, Refused,
        "the models served do not reason in a separate channel",
        None,
        Some(r#"{"reasoning_effort": "low"}"#)),
    param("verbosity", Chat, Refused,
        "not implemented",
        None,
        Some(r#"{"verbosity": "low"}"#)),
    param("web_search_options", Chat, Refused,
        "an enclave searches nothing",
        None,
        Some(r#"{"web_search_options": {}}"#)),
    param("store", Chat, Partial,
        "`false` only: nothing is stored, ever",
        Some(r#"{"store": false}"#),
        Some(r#"{"store": true}"#)),
    param("metadata", Chat, Ignored,
        "kept by OpenAI only with `store`, which is never done; must be an object",
        Some(r#"{"metadata": {"team": "a"}}"#),
        Some(r#"{"metadata": "team a"}"#)),
    param("user", Both, Ignored,
        "an end-user id for abuse monitoring; must be a string",
        Some(r#"{"user": "u-1"}"#),
        Some(r#"{"user": 1}"#)),
    param("safety_identifier", Chat, Ignored,
        "as `user`",
        Some(r#"{"safety_identifier": "u-1"}"#),
        Some(r#"{"safety_identifier": 1}"#)),
    param("prompt_cache_key", Chat, Ignored,
        "a caching hint (cost and latency only); must be a string",
        Some(r#"{"prompt_cache_key": "k"}"#),
        Some(r#"{"prompt_cache_key": 1}"#)),
    param("prompt_cache_retention", Chat, Ignored,
        "a caching hint (cost and latency only); `in-memory` or `24h`",
        Some(r#"{"prompt_cache_retention": "24h"}"#),
        Some(r#"{"prompt_cache_retention": "forever"}"#)),
    param("service_tier", Chat, Ignored,
        "a processing tier (latency and price only); `auto`, `default`, `flex`, `scale` or `priority`",
        Some(r#"{"service_tier": "auto"}"#),
        Some(r#"{"service_tier": "fastest"}"#)),
    param("top_k", Both, Implemented,
        "silk extension (as vLLM and llama.cpp): keep the k most likely tokens; 0 is off",
        Some(r#"{"top_k": 40}"#),
        Some(r#"{"top_k": -1}"#)),
    param("min_p", Both, Implemented,
        "silk extension: drop tokens less likely than this fraction of the most likely; 0 to 1",
        Some(r#"{"min_p": 0.05}"#),
        Some(r#"{"min_p": 2}"#)),
    param("repetition_penalty", Both, Implemented,
        "silk extension (llama.cpp's): above 0, 1 is off",
        Some(r#"{"repetition_penalty": 1.1}"#),
        Some(r#"{"repetition_penalty": 0}"#)),
];

/// The entry for `name` in a body for `api`, if `api` takes it.
pub fn lookup(api: Api, name: &str) -> Option<&'static Param> {
    PARAMETERS
        .iter()
        .find(|p| p.name == name && p.endpoints.includes(api))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::parse;
    use serde_json::{json, Value};

    fn body(api: Api, fields: &str) -> Vec<u8> {
        let mut base = match api {
            Api::ChatCompletions => json!({"messages": [{"role": "user", "content": "hi"}]}),
            Api::Completions => json!({"prompt": "hi"}),
        };
        let fields: Value = serde_json::from_str(fields).expect("example is JSON");
        for (k, v) in fields.as_object().expect("example is an object") {
            base[k] = v.clone();
        }
        base.to_string().into_bytes()
    }

    fn apis(p: &Param) -> Vec<Api> {
        [Api::ChatCompletions, Api::Completions]
            .into_iter()
            .filter(|a| p.endpoints.includes(*a))
            .collect()
    }

    /// Each entry does what the table says: its accepted example parses, its refused
    /// example is refused naming it, a refused parameter refuses any value and an
    /// ignored one changes nothing.
    #[test]
    fn every_parameter_does_what_the_table_says() {
        for p in PARAMETERS {
            assert_eq!(
                p.accepted.is_some(),
                p.support != Support::Refused,
                "{}: an example value unless refused",
                p.name
            );
            let refused = p
                .refused
                .unwrap_or_else(|| panic!("{}: a refused example", p.name));
            for api in apis(p) {
                if let Some(ok) = p.accepted {
                    let parsed = parse(&body(api, ok));
                    assert!(parsed.is_ok(), "{} {ok}: {:?}", p.name, parsed.err());
                }
                let e = parse(&body(api, refused)).expect_err(refused);
                let named = e.param.as_deref().unwrap_or_default();
                assert!(
                    named == p.name || named.starts_with(&format!("{}[", p.name)),
                    "{refused} names {named:?}"
                );
                if p.support == Support::Ignored {
                    let with = parse(&body(api, p.accepted.unwrap_or("{}"))).unwrap();
                    let without = parse(&body(api, "{}")).unwrap();
                    assert_eq!(
                        format!("{:?}", with.generate),
                        format!("{:?}", without.generate)
                    );
                }
                // null is absent, even for a refused parameter.
                let null = format!(r#"{{"{}": null}}"#, p.name);
                if !matches!(p.name, "messages" | "prompt") {
                    assert!(parse(&body(api, &null)).is_ok(), "{null}");
                }
            }
            for other in [Api::ChatCompletions, Api::Completions] {
                if lookup(other, p.name).is_none() && !matches!(p.name, "messages" | "prompt") {
                    let e = parse(&body(other, p.accepted.unwrap_or(refused))).unwrap_err();
                    assert_eq!(e.param.as_deref(), Some(p.name), "{} on {other:?}", p.name);
                }
            }
        }
    }

    #[test]
    fn names_are_unique_and_unknown_names_are_refused() {
        for (i, p) in PARAMETERS.iter().enumerate() {
            let overlap = |q: &&Param| {
                q.name == p.name
                    && [Api::ChatCompletions, Api::Completions]
                        .iter()
                        .any(|a| p.endpoints.includes(*a) && q.endpoints.includes(*a))
            };
            assert!(
                !PARAMETERS[..i].iter().any(|q| overlap(&q)),
                "{} twice",
                p.name
            );
        }
        let e = parse(&body(Api::ChatCompletions, r#"{"temprature": 0}"#)).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("temprature"));
        assert_eq!(e.code.as_str(), "unknown_parameter");
    }
}

/// The documentation's table (`docs/openai.md`), as this list makes it.
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| parameter | endpoints | support | what is honoured, what is refused |\n| --- | --- | --- | --- |\n",
    );
    for p in PARAMETERS {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            p.name,
            p.endpoints.as_str(),
            p.support.as_str(),
            p.note
        ));
    }
    out
}

#[cfg(test)]
mod doc_tests {
    /// docs/openai.md carries exactly the table the code follows.
    #[test]
    fn the_documented_table_is_the_one_in_force() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openai.md");
        let doc = std::fs::read_to_string(path).expect("docs/openai.md");
        let table = super::markdown_table();
        assert!(
            doc.contains(&table),
            "docs/openai.md's parameter table differs from enclave/src/openai/params.rs; it should read:\n{table}"
        );
    }
}
