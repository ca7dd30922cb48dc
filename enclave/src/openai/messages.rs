//! What to complete: chat messages, a completion prompt, and stop strings.

use serde_json::Value;
use silk_engine::ChatMessage;

use super::{invalid, refused, RequestError};

/// Chat turns. Roles `tool` and `function`, and message fields beyond `role` and
/// `content`, belong to tool calling or to features silk does not implement: refused,
/// naming the field, rather than dropped.
pub(super) fn messages(v: &Value) -> Result<Vec<ChatMessage>, RequestError> {
    let list = v
        .as_array()
        .ok_or_else(|| invalid("messages", "`messages` must be an array"))?;
    if list.is_empty() {
        return Err(invalid("messages", "`messages` must not be empty"));
    }
    list.iter()
        .enumerate()
        .map(|(i, m)| {
            let fields = m
                .as_object()
                .ok_or_else(|| invalid(&format!("messages[{i}]"), "a message is an object"))?;
            for (key, value) in fields {
                if !matches!(key.as_str(), "role" | "content") && !value.is_null() {
                    return Err(refused(
                        &format!("messages[{i}].{key}"),
                        format!("message field `{key}` is not supported (only role and content)"),
                    ));
                }
            }
            let at = format!("messages[{i}].role");
            let role = m["role"]
                .as_str()
                .ok_or_else(|| invalid(&at, "missing role"))?;
            let role = match role {
                "system" | "user" | "assistant" => role,
                // `developer` is OpenAI's newer name for the system turn.
                "developer" => "system",
                "tool" | "function" => {
                    return Err(refused(
                        &at,
                        format!("role `{role}` is not supported: tool calling is not implemented"),
                    ))
                }
                _ => return Err(invalid(&at, format!("unknown role `{role}`"))),
            };
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
                        return Err(refused(
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
        _ => Err(invalid(
            &format!("messages[{i}].content"),
            "content must be a string or an array of text parts",
        )),
    }
}

/// A completion prompt: one string, or a list of exactly one.
pub(super) fn prompt_text(v: &Value) -> Result<String, RequestError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Array(a) => match a.as_slice() {
            [Value::String(s)] => Ok(s.clone()),
            _ => Err(refused(
                "prompt",
                "only a single prompt string is supported (no batches or token arrays)",
            )),
        },
        _ => Err(invalid("prompt", "`prompt` must be a string")),
    }
}

/// Stop strings: one, or up to four, none empty.
pub(super) fn stops(v: &Value) -> Result<Vec<String>, RequestError> {
    let list: Vec<String> = match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| invalid("stop", "stop sequences must be strings"))
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(invalid(
                "stop",
                "`stop` must be a string or an array of strings",
            ))
        }
    };
    if list.len() > 4 || list.iter().any(String::is_empty) {
        return Err(invalid("stop", "at most 4 non-empty stop sequences"));
    }
    Ok(list)
}
