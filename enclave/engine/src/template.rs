//! Chat templates (Jinja, rendered with minijinja).
//!
//! Hugging Face renders `chat_template` with Jinja2 in a sandbox configured with
//! `trim_blocks=True, lstrip_blocks=True` and the `loopcontrols` extension, passing
//! `messages`, `add_generation_prompt`, `bos_token` and `eos_token`, plus `raise_exception`
//! and `strftime_now`. The environment here is set up the same way, with minijinja-contrib's
//! Python string and dict methods (`.strip()`, `.startswith()`, `.items()`, ...), so that
//! templates written for `transformers` render the same text.

use std::collections::HashMap;

use candle_core::quantized::gguf_file;
use minijinja::value::Value;
use minijinja::{Environment, ErrorKind};

/// One message of a conversation.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`, or whatever else the template knows.
    pub role: String,
    /// The message text.
    pub content: String,
}

impl ChatMessage {
    /// A message with `role` and `content`.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// What went wrong compiling or rendering a chat template, or finding one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// The template source is not valid Jinja.
    #[error("chat template syntax error{}: {detail}", line_suffix(*line))]
    Syntax {
        /// The parser's description.
        detail: String,
        /// 1-based line in the template, where known.
        line: Option<usize>,
    },
    /// The template called `raise_exception(message)`: typically a conversation shape it
    /// does not support (e.g. roles not alternating).
    #[error("chat template rejected the conversation: {0}")]
    Raised(String),
    /// Rendering failed for another reason (bad filter arguments, undefined calls, ...).
    #[error("chat template failed to render{}: {detail}", line_suffix(*line))]
    Render {
        /// The engine's description.
        detail: String,
        /// 1-based line in the template, where known.
        line: Option<usize>,
    },
    /// A metadata key or config field holds the wrong kind of value.
    #[error("`{key}` has the wrong type: expected {expected}")]
    WrongType {
        /// The key or field.
        key: &'static str,
        /// What was expected.
        expected: &'static str,
    },
    /// `tokenizer_config.json` is not valid JSON.
    #[error("tokenizer_config.json is not valid JSON: {0}")]
    Json(String),
    /// `chat_template` is a list of named templates and none is called `default`.
    #[error("tokenizer_config.json has named chat templates ({0}) but none called \"default\"")]
    NoDefaultTemplate(String),
}

fn line_suffix(line: Option<usize>) -> String {
    line.map(|l| format!(" at line {l}")).unwrap_or_default()
}

/// Prefix that marks errors raised by the template itself through `raise_exception`.
const RAISED: &str = "raise_exception: ";
const NAME: &str = "chat_template";

/// A compiled chat template with the BOS and EOS texts it may refer to.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    /// Compiles `source` (a Hugging Face style Jinja chat template). `bos_token` and
    /// `eos_token` are the texts the template sees as `bos_token` / `eos_token`.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| render_error(&e))?;
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |message: String| -> Result<Value, minijinja::Error> {
                Err(minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    format!("{RAISED}{message}"),
                ))
            },
        );
        env.add_function("strftime_now", strftime_now);
        // Python's json.dumps layout (", " and ": "), which HF's `tojson` produces and
        // minijinja's own (HTML-escaping, compact) `tojson` does not.
        env.add_filter("tojson", tojson);
        env.add_template_owned(NAME, source.to_owned())
            .map_err(|e| TemplateError::Syntax {
                detail: e.detail().unwrap_or("invalid template").to_owned(),
                line: e.line(),
            })?;
        Ok(Self {
            env,
            bos_token: bos_token.to_owned(),
            eos_token: eos_token.to_owned(),
        })
    }

    /// ChatML, for models that ship no template:
    ///
    /// ```text
    /// <|im_start|>{role}\n{content}<|im_end|>\n   (per message)
    /// <|im_start|>assistant\n                   (with add_generation_prompt)
    /// ```
    ///
    /// No system prompt is added. A model whose vocabulary lacks `<|im_start|>` and
    /// `<|im_end|>` will see these markers as plain text.
    pub fn fallback() -> Self {
        const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
        match Self::new(CHATML, "", "<|im_end|>") {
            Ok(template) => template,
            // The source is a constant checked by the tests; an error is a bug here.
            Err(e) => unreachable!("built-in ChatML template does not compile: {e}"),
        }
    }

    /// Renders the conversation; with `add_generation_prompt` the text ends where the
    /// assistant's reply starts.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, TemplateError> {
        let template = self.env.get_template(NAME).map_err(|e| render_error(&e))?;
        let ctx = minijinja::context! {
            messages => messages_value(messages),
            add_generation_prompt => add_generation_prompt,
            bos_token => &self.bos_token,
            eos_token => &self.eos_token,
        };
        template.render(ctx).map_err(|e| render_error(&e))
    }
}

/// The messages as Jinja sees them: a list of `{role, content}` maps.
fn messages_value(messages: &[ChatMessage]) -> Value {
    messages
        .iter()
        .map(|m| Value::from_pairs([("role", m.role.as_str()), ("content", m.content.as_str())]))
        .collect::<Vec<_>>()
        .into()
}

fn render_error(e: &minijinja::Error) -> TemplateError {
    let detail = e.detail().unwrap_or_default();
    if let Some(message) = detail.strip_prefix(RAISED) {
        return TemplateError::Raised(message.to_owned());
    }
    let mut detail = if detail.is_empty() {
        e.kind().to_string()
    } else {
        format!("{}: {detail}", e.kind())
    };
    // Errors raised inside a function call carry the interesting part in their source.
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        if let Some(inner) = inner.downcast_ref::<minijinja::Error>() {
            if let Some(message) = inner.detail().and_then(|d| d.strip_prefix(RAISED)) {
                return TemplateError::Raised(message.to_owned());
            }
        }
        detail.push_str(&format!(" ({inner})"));
        source = inner.source();
    }
    TemplateError::Render {
        detail,
        line: e.line(),
    }
}

/// The chat template in GGUF metadata (`tokenizer.chat_template`), with BOS/EOS texts looked
/// up from `tokenizer.ggml.bos_token_id` / `eos_token_id` in `tokenizer.ggml.tokens`.
/// `None` when the model has no template.
pub fn template_from_gguf(
    metadata: &HashMap<String, gguf_file::Value>,
) -> Option<Result<ChatTemplate, TemplateError>> {
    let source = match metadata.get("tokenizer.chat_template")? {
        gguf_file::Value::String(s) => s,
        _ => {
            return Some(Err(TemplateError::WrongType {
                key: "tokenizer.chat_template",
                expected: "string",
            }))
        }
    };
    let token_text = |key: &str| -> String {
        let id = match metadata.get(key) {
            Some(gguf_file::Value::U32(id)) => *id as usize,
            Some(gguf_file::Value::I32(id)) => usize::try_from(*id).unwrap_or(usize::MAX),
            Some(gguf_file::Value::U64(id)) => usize::try_from(*id).unwrap_or(usize::MAX),
            _ => return String::new(),
        };
        match metadata.get("tokenizer.ggml.tokens") {
            Some(gguf_file::Value::Array(tokens)) => match tokens.get(id) {
                Some(gguf_file::Value::String(t)) => t.clone(),
                _ => String::new(),
            },
            _ => String::new(),
        }
    };
    let bos = token_text("tokenizer.ggml.bos_token_id");
    let eos = token_text("tokenizer.ggml.eos_token_id");
    Some(ChatTemplate::new(source, &bos, &eos))
}

/// The chat template in a Hugging Face `tokenizer_config.json`: `chat_template` as a string,
/// or as a list of `{name, template}` (the one named `default` is used). `bos_token` /
/// `eos_token` may be strings or `{"content": ...}` objects. `None` when there is no
/// `chat_template`.
pub fn template_from_tokenizer_config(json: &str) -> Option<Result<ChatTemplate, TemplateError>> {
    let config: serde_json::Value = match serde_json::from_str(json) {
        Ok(v) => v,
        Err(e) => return Some(Err(TemplateError::Json(e.to_string()))),
    };
    let source = match config.get("chat_template")? {
        serde_json::Value::String(s) => s.as_str(),
        serde_json::Value::Array(named) => {
            let mut names = Vec::new();
            let mut found = None;
            for entry in named {
                let name = entry
                    .get("name")
                    .and_then(|n| n.as_str())
                    .unwrap_or_default();
                names.push(name.to_owned());
                if name == "default" {
                    found = entry.get("template").and_then(|t| t.as_str());
                }
            }
            match found {
                Some(source) => source,
                None => return Some(Err(TemplateError::NoDefaultTemplate(names.join(", ")))),
            }
        }
        serde_json::Value::Null => return None,
        _ => {
            return Some(Err(TemplateError::WrongType {
                key: "chat_template",
                expected: "string or list of named templates",
            }))
        }
    };
    let special = |key: &str| -> String {
        match config.get(key) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(obj @ serde_json::Value::Object(_)) => obj
                .get("content")
                .and_then(|c| c.as_str())
                .unwrap_or_default()
                .to_owned(),
            _ => String::new(),
        }
    };
    Some(ChatTemplate::new(
        source,
        &special("bos_token"),
        &special("eos_token"),
    ))
}

/// HF's `tojson`: Python's `json.dumps(value, ensure_ascii=False, indent=indent)`.
fn tojson(value: Value, kwargs: minijinja::value::Kwargs) -> Result<Value, minijinja::Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let mut out = String::new();
    write_json(&value, indent, 0, &mut out)?;
    Ok(Value::from_safe_string(out))
}

fn write_json(
    value: &Value,
    indent: Option<usize>,
    level: usize,
    out: &mut String,
) -> Result<(), minijinja::Error> {
    use minijinja::value::ValueKind;
    // Python puts items on their own lines only when indenting; otherwise ", " and ": ".
    let newline = |out: &mut String, level: usize| {
        if let Some(width) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(width * level));
        }
    };
    let item_sep = if indent.is_some() { "," } else { ", " };
    match value.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
        ValueKind::Number => out.push_str(&value.to_string()),
        ValueKind::String => {
            let s = value.as_str().unwrap_or_default();
            out.push_str(&serde_json::to_string(s).map_err(json_error)?);
        }
        ValueKind::Map => {
            let keys: Vec<Value> = value.try_iter()?.collect();
            if keys.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            out.push('{');
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, level + 1);
                let name = key
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| key.to_string());
                out.push_str(&serde_json::to_string(&name).map_err(json_error)?);
                out.push_str(": ");
                write_json(&value.get_item(key)?, indent, level + 1, out)?;
            }
            newline(out, level);
            out.push('}');
        }
        _ => {
            let items: Vec<Value> = match value.try_iter() {
                Ok(iter) => iter.collect(),
                // Anything else is written as its string form, as json.dumps would refuse.
                Err(_) => {
                    out.push_str(&serde_json::to_string(&value.to_string()).map_err(json_error)?);
                    return Ok(());
                }
            };
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, level + 1);
                write_json(item, indent, level + 1, out)?;
            }
            newline(out, level);
            out.push(']');
        }
    }
    Ok(())
}

fn json_error(e: serde_json::Error) -> minijinja::Error {
    minijinja::Error::new(ErrorKind::InvalidOperation, format!("tojson: {e}"))
}

/// HF's `strftime_now(format)`: the current UTC time formatted like Python's `strftime`
/// (`%Y %m %d %H %M %S %y %b %B %a %A %j %I %p %e %%`; other directives are kept as written).
fn strftime_now(format: String) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    strftime(&format, secs)
}

fn strftime(format: &str, unix_secs: u64) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    let days = (unix_secs / 86_400) as i64;
    let secs = unix_secs % 86_400;
    let (hour, minute, second) = (secs / 3600, secs / 60 % 60, secs % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy_mar = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy_mar + 2) / 153;
    let day = doy_mar - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let cumulative = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let yday = cumulative[(month - 1) as usize] + day + i64::from(leap && month > 2);
    let weekday = (days + 3).rem_euclid(7) as usize; // 1970-01-01 was a Thursday
    let month_name = MONTHS[(month - 1) as usize];
    let hour12 = if hour % 12 == 0 { 12 } else { hour % 12 };

    let mut out = String::with_capacity(format.len() + 16);
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&year.to_string()),
            Some('y') => out.push_str(&format!("{:02}", year.rem_euclid(100))),
            Some('m') => out.push_str(&format!("{month:02}")),
            Some('d') => out.push_str(&format!("{day:02}")),
            Some('e') => out.push_str(&format!("{day:>2}")),
            Some('H') => out.push_str(&format!("{hour:02}")),
            Some('I') => out.push_str(&format!("{hour12:02}")),
            Some('M') => out.push_str(&format!("{minute:02}")),
            Some('S') => out.push_str(&format!("{second:02}")),
            Some('p') => out.push_str(if hour < 12 { "AM" } else { "PM" }),
            Some('j') => out.push_str(&format!("{yday:03}")),
            Some('b') => out.push_str(&month_name[..3]),
            Some('B') => out.push_str(month_name),
            Some('a') => out.push_str(&DAYS[weekday][..3]),
            Some('A') => out.push_str(DAYS[weekday]),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_is_chatml() {
        let out = ChatTemplate::fallback()
            .render(&[ChatMessage::new("user", "Hi")], true)
            .unwrap();
        assert_eq!(
            out,
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn strftime_formats_utc() {
        // 2024-07-23 14:05:09 UTC, a Tuesday, day 205 of a leap year.
        let t = 1_721_743_509;
        assert_eq!(strftime("%d %b %Y", t), "23 Jul 2024");
        assert_eq!(
            strftime("%A %B %e, %y %H:%M:%S %I%p %j %% %Q", t),
            "Tuesday July 23, 24 14:05:09 02PM 205 % %Q"
        );
        assert_eq!(strftime("%Y-%m-%d %a", 0), "1970-01-01 Thu");
    }

    #[test]
    fn template_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<ChatTemplate>();
    }
}
