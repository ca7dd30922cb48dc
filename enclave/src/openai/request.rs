//! Reading each parameter's value: types, ranges and the values only partly supported.

use serde_json::{Map, Value};
use silk_engine::scheduler::ResponseFormat;
use silk_engine::SamplingParams;
use silk_protocol::wire::Api;

use super::{invalid, refused, RequestError};

/// Most `logit_bias` entries.
pub const MAX_LOGIT_BIAS: usize = 1024;
/// Most alternatives per token: chat's `top_logprobs`.
pub const MAX_TOP_LOGPROBS: i64 = 20;
/// Most alternatives per token: completions' `logprobs`.
pub const MAX_COMPLETION_LOGPROBS: i64 = 5;

/// The values read so far.
#[derive(Default)]
pub(super) struct Fields {
    pub model: Option<String>,
    pub params: SamplingParams,
    pub max_tokens: Option<i64>,
    pub max_completion_tokens: Option<i64>,
    pub stop: Vec<String>,
    pub stream: bool,
    pub stream_options: bool,
    pub include_usage: bool,
    /// Chat's `logprobs: true`.
    pub logprobs_on: bool,
    /// Completions' `logprobs: k`, or chat's `top_logprobs`.
    pub alternatives: Option<i64>,
    pub format: ResponseFormat,
}

fn number(name: &str, v: &Value) -> Result<f32, RequestError> {
    v.as_f64()
        .map(|x| x as f32)
        .ok_or_else(|| invalid(name, format!("`{name}` must be a number")))
}

fn integer(name: &str, v: &Value) -> Result<i64, RequestError> {
    v.as_i64()
        .ok_or_else(|| invalid(name, format!("`{name}` must be an integer")))
}

fn boolean(name: &str, v: &Value) -> Result<bool, RequestError> {
    v.as_bool()
        .ok_or_else(|| invalid(name, format!("`{name}` must be true or false")))
}

fn string<'a>(name: &str, v: &'a Value) -> Result<&'a str, RequestError> {
    v.as_str()
        .ok_or_else(|| invalid(name, format!("`{name}` must be a string")))
}

fn object<'a>(name: &str, v: &'a Value) -> Result<&'a Map<String, Value>, RequestError> {
    v.as_object()
        .ok_or_else(|| invalid(name, format!("`{name}` must be an object")))
}

fn one_of(name: &str, v: &Value, allowed: &[&str]) -> Result<(), RequestError> {
    let s = string(name, v)?;
    if allowed.contains(&s) {
        Ok(())
    } else {
        Err(invalid(
            name,
            format!("`{name}` must be one of {}", allowed.join(", ")),
        ))
    }
}

impl Fields {
    /// Reads parameter `name` (known to the table, not refused outright, not null).
    pub(super) fn set(&mut self, api: Api, name: &str, v: &Value) -> Result<(), RequestError> {
        let p = &mut self.params;
        match name {
            // Read by the caller (they decide the API).
            "messages" | "prompt" => {}
            "model" => self.model = Some(string(name, v)?.to_owned()),
            "max_tokens" => self.max_tokens = Some(integer(name, v)?),
            "max_completion_tokens" => self.max_completion_tokens = Some(integer(name, v)?),
            "temperature" => {
                p.temperature = number(name, v)?;
                // OpenAI's range; the engine itself takes any non-negative value.
                if p.temperature > 2.0 {
                    return Err(invalid(name, "`temperature` must be from 0 to 2"));
                }
            }
            "top_p" => p.top_p = number(name, v)?,
            "frequency_penalty" => p.frequency_penalty = number(name, v)?,
            "presence_penalty" => p.presence_penalty = number(name, v)?,
            "top_k" => {
                p.top_k = usize::try_from(integer(name, v)?)
                    .map_err(|_| invalid(name, "`top_k` must not be negative"))?
            }
            "min_p" => p.min_p = number(name, v)?,
            "repetition_penalty" => p.repetition_penalty = number(name, v)?,
            // OpenAI seeds are signed 64-bit; the bits are what matters.
            "seed" => p.seed = Some(integer(name, v)? as u64),
            "stop" => self.stop = super::messages::stops(v)?,
            "stream" => self.stream = boolean(name, v)?,
            "stream_options" => {
                self.stream_options = true;
                for (key, value) in object(name, v)? {
                    match key.as_str() {
                        "include_usage" => self.include_usage = boolean(name, value)?,
                        // OpenAI pads events against length side channels; silk does not
                        // (see docs/openai.md), and the answer is the same either way.
                        "include_obfuscation" => {
                            boolean(name, value)?;
                        }
                        other => {
                            return Err(invalid(name, format!("unknown stream option `{other}`")))
                        }
                    }
                }
            }
            "n" | "best_of" => {
                if integer(name, v)? != 1 {
                    return Err(refused(
                        name,
                        format!("`{name}` must be 1: one answer per request"),
                    ));
                }
            }
            "echo" => {
                if boolean(name, v)? {
                    return Err(refused(name, "`echo: true` is not supported"));
                }
            }
            "logprobs" => match api {
                Api::ChatCompletions => self.logprobs_on = boolean(name, v)?,
                Api::Completions => {
                    let k = integer(name, v)?;
                    if !(0..=MAX_COMPLETION_LOGPROBS).contains(&k) {
                        return Err(invalid(
                            name,
                            format!("`logprobs` must be from 0 to {MAX_COMPLETION_LOGPROBS}"),
                        ));
                    }
                    self.alternatives = Some(k);
                }
            },
            "top_logprobs" => {
                let k = integer(name, v)?;
                if !(0..=MAX_TOP_LOGPROBS).contains(&k) {
                    return Err(invalid(
                        name,
                        format!("`top_logprobs` must be from 0 to {MAX_TOP_LOGPROBS}"),
                    ));
                }
                self.alternatives = Some(k);
            }
            "logit_bias" => p.logit_bias = logit_bias(v)?,
            "response_format" => self.format = response_format(v)?,
            "tool_choice" | "function_call" => {
                if v.as_str() != Some("none") {
                    return Err(refused(
                        name,
                        format!("`{name}` may only be \"none\": tool and function calling are not implemented"),
                    ));
                }
            }
            "modalities" => {
                let text_only = v
                    .as_array()
                    .is_some_and(|m| m.iter().all(|x| x.as_str() == Some("text")));
                if !text_only {
                    return Err(refused(name, "only the `text` modality is supported"));
                }
            }
            "store" => {
                if boolean(name, v)? {
                    return Err(refused(
                        name,
                        "`store: true` is refused: an enclave stores no request or answer",
                    ));
                }
            }
            "metadata" => {
                object(name, v)?;
            }
            "user" | "safety_identifier" | "prompt_cache_key" => {
                string(name, v)?;
            }
            "prompt_cache_retention" => one_of(name, v, &["in-memory", "24h"])?,
            "service_tier" => one_of(name, v, &["auto", "default", "flex", "scale", "priority"])?,
            // Only the table's names reach here, and refused ones were answered before.
            other => return Err(refused(other, format!("`{other}` is not supported"))),
        }
        Ok(())
    }

    /// The checks between parameters, once all are read: the completion limit, the
    /// logprobs to report (`None`: none), and the sampling controls' ranges.
    pub(super) fn finish(&self, api: Api) -> Result<(Option<usize>, Option<usize>), RequestError> {
        if self.stream_options && !self.stream {
            return Err(invalid(
                "stream_options",
                "`stream_options` is only allowed with `stream: true`",
            ));
        }
        let max = match (self.max_completion_tokens, self.max_tokens) {
            (Some(a), Some(b)) if a != b => {
                return Err(invalid(
                    "max_completion_tokens",
                    "`max_completion_tokens` and `max_tokens` disagree; give one",
                ))
            }
            (Some(m), _) => Some(("max_completion_tokens", m)),
            (None, m) => m.map(|m| ("max_tokens", m)),
        };
        let max_tokens = match max {
            None => None,
            Some((_, m)) if m >= 1 => Some(m as usize),
            Some((name, m)) => {
                return Err(invalid(name, format!("`{name}` = {m} must be at least 1")))
            }
        };
        let logprobs = match api {
            Api::ChatCompletions if self.alternatives.is_some() && !self.logprobs_on => {
                return Err(invalid(
                    "top_logprobs",
                    "`top_logprobs` needs `logprobs: true`",
                ))
            }
            Api::ChatCompletions if self.logprobs_on => Some(self.alternatives.unwrap_or(0)),
            _ => self.alternatives,
        };
        self.params
            .validate()
            .map_err(|e| invalid(e.name, e.to_string()))?;
        Ok((max_tokens, logprobs.map(|k| k as usize)))
    }
}

fn logit_bias(v: &Value) -> Result<std::collections::BTreeMap<u32, f32>, RequestError> {
    let name = "logit_bias";
    let map = object(name, v)?;
    if map.len() > MAX_LOGIT_BIAS {
        return Err(invalid(
            name,
            format!(
                "`logit_bias` has {} entries; at most {MAX_LOGIT_BIAS}",
                map.len()
            ),
        ));
    }
    map.iter()
        .map(|(id, bias)| {
            let id = id
                .parse::<u32>()
                .ok()
                .filter(|_| id.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| {
                    invalid(
                        name,
                        "`logit_bias` keys must be token ids (decimal strings)",
                    )
                })?;
            let bias = number(name, bias)?;
            if !(-100.0..=100.0).contains(&bias) {
                return Err(invalid(
                    name,
                    "`logit_bias` values must be from -100 to 100",
                ));
            }
            Ok((id, bias))
        })
        .collect()
}

fn response_format(v: &Value) -> Result<ResponseFormat, RequestError> {
    let name = "response_format";
    match object(name, v)?.get("type").and_then(Value::as_str) {
        Some("text") => Ok(ResponseFormat::Text),
        Some("json_object") => Ok(ResponseFormat::JsonObject),
        Some("json_schema") => Err(refused(
            name,
            "`response_format` type `json_schema` is not supported; `json_object` is",
        )),
        _ => Err(invalid(
            name,
            "`response_format` must have `type` `text` or `json_object`",
        )),
    }
}
