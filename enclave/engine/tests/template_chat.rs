//! Chat templates render as Hugging Face's Jinja2 setup does. Expected strings are written
//! by hand from each template's semantics.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{Content, Value as GgufValue};
use silk_engine::template::{
    template_from_gguf, template_from_tokenizer_config, ChatMessage, ChatTemplate, TemplateError,
};

/// SmolLM2-135M-Instruct's `tokenizer.chat_template`, as stored in its GGUF.
const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// Meta-Llama-3-8B-Instruct's template.
const LLAMA3: &str = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

/// Qwen2.5-Instruct's template without the tool-calling branches: multi-line, relying on
/// `{%-` and on trim_blocks/lstrip_blocks.
const QWEN25: &str = r#"{%- if messages[0]['role'] == 'system' %}
    {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
{%- else %}
    {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant") %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"#;

fn msg(role: &str, content: &str) -> ChatMessage {
    ChatMessage::new(role, content)
}

#[test]
fn smollm2_adds_default_system_prompt() {
    let t = ChatTemplate::new(SMOLLM2, "<|im_start|>", "<|im_end|>").unwrap();
    assert_eq!(
        t.render(&[msg("user", "Hi")], true).unwrap(),
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn smollm2_multi_turn_with_system() {
    let t = ChatTemplate::new(SMOLLM2, "<|im_start|>", "<|im_end|>").unwrap();
    let messages = [
        msg("system", "Be terse."),
        msg("user", "2+2?"),
        msg("assistant", "4"),
        msg("user", "And 3+3?"),
    ];
    assert_eq!(
        t.render(&messages, false).unwrap(),
        "<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n\
         <|im_start|>assistant\n4<|im_end|>\n<|im_start|>user\nAnd 3+3?<|im_end|>\n"
    );
}

#[test]
fn llama3_uses_bos_and_trims() {
    let t = ChatTemplate::new(LLAMA3, "<|begin_of_text|>", "<|eot_id|>").unwrap();
    assert_eq!(
        t.render(&[msg("system", "Be brief."), msg("user", "  Hi \n")], true)
            .unwrap(),
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>\
         <|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>\
         <|start_header_id|>assistant<|end_header_id|>\n\n"
    );
}

#[test]
fn qwen25_multiline_template() {
    let t = ChatTemplate::new(QWEN25, "", "<|im_end|>").unwrap();
    assert_eq!(
        t.render(&[msg("user", "Hello")], true).unwrap(),
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n\
         <|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(
        t.render(&[msg("system", "S"), msg("user", "U"), msg("assistant", "A")], false).unwrap(),
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n"
    );
}

#[test]
fn trim_and_lstrip_blocks_like_hf() {
    let t = ChatTemplate::new(
        "{% if true %}\nA\n{% endif %}\n  {% if true %}B{% endif %}\n",
        "",
        "",
    )
    .unwrap();
    assert_eq!(t.render(&[], false).unwrap(), "A\nB");
}

#[test]
fn python_string_methods_work() {
    let source = "{% for m in messages %}{% if m.content.startswith('/') %}[cmd]{% endif %}{{ m.content.strip().upper() }}|{% endfor %}";
    let t = ChatTemplate::new(source, "", "").unwrap();
    assert_eq!(
        t.render(&[msg("user", "/go "), msg("user", " x")], false)
            .unwrap(),
        "[cmd]/GO|X|"
    );
    let t = ChatTemplate::new("{{ messages[0].content.startswith('/') }}", "", "").unwrap();
    // Printed the Python way, as Jinja2 does.
    assert_eq!(t.render(&[msg("user", "/go")], false).unwrap(), "True");
}

#[test]
fn raise_exception_is_reported() {
    let source = "{% if messages[0]['role'] != 'user' %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}ok";
    let t = ChatTemplate::new(source, "", "").unwrap();
    assert_eq!(t.render(&[msg("user", "x")], false).unwrap(), "ok");
    match t.render(&[msg("assistant", "x")], false) {
        Err(TemplateError::Raised(m)) => assert_eq!(
            m,
            "Conversation roles must alternate user/assistant/user/assistant/..."
        ),
        other => panic!("expected Raised, got {other:?}"),
    }
}

#[test]
fn broken_templates_name_the_problem() {
    let err = ChatTemplate::new("{% for m in messages %}{{ m.content }}", "", "").unwrap_err();
    assert!(matches!(err, TemplateError::Syntax { .. }), "{err:?}");
    assert!(err.to_string().contains("syntax error"), "{err}");

    let err = ChatTemplate::new("line one\n{{ 1 + }}", "", "").unwrap_err();
    assert!(
        matches!(err, TemplateError::Syntax { line: Some(2), .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("line 2"), "{err}");

    let t = ChatTemplate::new("{{ messages | no_such_filter }}", "", "");
    let err = t.and_then(|t| t.render(&[], false)).unwrap_err();
    assert!(
        err.to_string().contains("no_such_filter") || err.to_string().contains("unknown filter"),
        "{err}"
    );
}

#[test]
fn tojson_matches_python_layout() {
    let t =
        ChatTemplate::new("{{ ['a\"', 1, true, none, 1.5, [], {}] | tojson }}", "", "").unwrap();
    assert_eq!(
        t.render(&[], false).unwrap(),
        r#"["a\"", 1, true, null, 1.5, [], {}]"#
    );
    let t = ChatTemplate::new("{{ [1, ['é<'], {'k': 2}] | tojson(indent=2) }}", "", "").unwrap();
    assert_eq!(
        t.render(&[], false).unwrap(),
        "[\n  1,\n  [\n    \"é<\"\n  ],\n  {\n    \"k\": 2\n  }\n]"
    );
}

#[test]
fn strftime_now_is_available() {
    let t = ChatTemplate::new("{{ strftime_now('%Y') }}", "", "").unwrap();
    let year: i32 = t.render(&[], false).unwrap().parse().unwrap();
    assert!(year >= 2024);
}

#[test]
fn fallback_is_chatml() {
    let t = ChatTemplate::fallback();
    assert_eq!(
        t.render(&[msg("system", "S"), msg("user", "U")], true)
            .unwrap(),
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn chat_message_serde() {
    let m: ChatMessage = serde_json::from_str(r#"{"role":"user","content":"hi"}"#).unwrap();
    assert_eq!(m, msg("user", "hi"));
    assert_eq!(
        serde_json::to_string(&m).unwrap(),
        r#"{"role":"user","content":"hi"}"#
    );
}

#[test]
fn tokenizer_config_string_and_named_forms() {
    let config = r#"{"chat_template": "{{ bos_token }}{{ messages[0].content }}{{ eos_token }}",
                     "bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>"}"#;
    let t = template_from_tokenizer_config(config).unwrap().unwrap();
    assert_eq!(t.render(&[msg("user", "x")], false).unwrap(), "<s>x</s>");

    let config = r#"{"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D{{ eos_token }}"}],
                     "eos_token": "<|e|>"}"#;
    let t = template_from_tokenizer_config(config).unwrap().unwrap();
    assert_eq!(t.render(&[], false).unwrap(), "D<|e|>");

    let config = r#"{"chat_template": [{"name": "tool_use", "template": "T"}]}"#;
    let err = template_from_tokenizer_config(config).unwrap().unwrap_err();
    assert!(
        matches!(&err, TemplateError::NoDefaultTemplate(names) if names == "tool_use"),
        "{err:?}"
    );

    assert!(template_from_tokenizer_config(r#"{"eos_token": "</s>"}"#).is_none());
    assert!(matches!(
        template_from_tokenizer_config("{not json"),
        Some(Err(TemplateError::Json(_)))
    ));
    assert!(matches!(
        template_from_tokenizer_config(r#"{"chat_template": 3}"#),
        Some(Err(TemplateError::WrongType {
            key: "chat_template",
            ..
        }))
    ));
}

#[test]
fn gguf_metadata_template() {
    let mut meta = HashMap::new();
    assert!(template_from_gguf(&meta).is_none());
    meta.insert(
        "tokenizer.chat_template".to_owned(),
        GgufValue::String("{{ bos_token }}|{{ eos_token }}".into()),
    );
    meta.insert(
        "tokenizer.ggml.tokens".to_owned(),
        GgufValue::Array(
            ["<unk>", "<s>", "</s>"]
                .iter()
                .map(|t| GgufValue::String((*t).into()))
                .collect(),
        ),
    );
    meta.insert("tokenizer.ggml.bos_token_id".to_owned(), GgufValue::U32(1));
    meta.insert("tokenizer.ggml.eos_token_id".to_owned(), GgufValue::U32(2));
    let t = template_from_gguf(&meta).unwrap().unwrap();
    assert_eq!(t.render(&[], false).unwrap(), "<s>|</s>");
    meta.insert("tokenizer.chat_template".to_owned(), GgufValue::U32(7));
    assert!(matches!(
        template_from_gguf(&meta),
        Some(Err(TemplateError::WrongType { .. }))
    ));
}

fn model_path() -> Option<PathBuf> {
    let bundled = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../models/SmolLM2-135M-Instruct.Q4_1.gguf"
    ));
    if bundled.exists() {
        return Some(bundled.to_owned());
    }
    std::env::var_os("SILK_DEFAULT_MODEL")
        .map(PathBuf::from)
        .filter(|p| p.exists())
}

#[test]
fn smollm2_gguf_template_renders() {
    let Some(path) = model_path() else {
        eprintln!("note: SmolLM2 GGUF not found (models/ or $SILK_DEFAULT_MODEL); skipping");
        return;
    };
    let content = Content::read(&mut std::fs::File::open(path).unwrap()).unwrap();
    let t = template_from_gguf(&content.metadata).unwrap().unwrap();
    let expected = ChatTemplate::new(SMOLLM2, "<|im_start|>", "<|im_end|>").unwrap();
    let messages = [msg("user", "Hi")];
    assert_eq!(
        t.render(&messages, true).unwrap(),
        expected.render(&messages, true).unwrap()
    );
}
