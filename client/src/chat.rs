//! `silk chat`: verify an enclave, then talk to it through the sealed path.

use std::io::{BufRead, Write};
use std::path::Path;

use serde_json::{json, Value};
use silk_protocol::attestation::tdx::TeeType;
use silk_protocol::attestation::{EvidenceKind, Platform, Policy, Verdict};
use zeroize::Zeroizing;

use crate::render;
use crate::session::{ClientError, Session};
use crate::sse::{SseEvent, SseParser};
use crate::upstream::Upstream;

/// Generation settings of a chat.
#[derive(Clone, Debug)]
pub struct ChatSettings {
    /// Most tokens per answer.
    pub max_tokens: usize,
    /// Sampling temperature.
    pub temperature: f32,
    /// Seed, for repeatable answers.
    pub seed: Option<u64>,
    /// A system turn to start with.
    pub system: Option<String>,
}

impl Default for ChatSettings {
    fn default() -> Self {
        Self {
            max_tokens: 256,
            temperature: 0.0,
            seed: None,
            system: None,
        }
    }
}

/// Reads a policy file.
pub fn load_policy(path: &Path) -> Result<Policy, ClientError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ClientError::Config(format!("policy {}: {e}", path.display())))?;
    Policy::from_toml(&text)
        .map_err(|e| ClientError::Config(format!("policy {}: {e}", path.display())))
}

/// Prints a session's verification as the `silk verify` table, marked in `style` (the
/// style of the stream `out` writes to).
pub fn print_verification(
    session: &Session,
    endpoint: &str,
    style: render::Style,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let Some(v) = session.verified() else {
        return Ok(());
    };
    render::table(
        &v.verdict,
        evidence_kind(&v.verdict),
        endpoint,
        time::OffsetDateTime::now_utc(),
        &[],
        style,
        out,
    )?;
    writeln!(out)
}

fn evidence_kind(v: &Verdict) -> EvidenceKind {
    match v.platform {
        Platform::Tdx => EvidenceKind::DcapQuote(TeeType::Tdx),
        Platform::Sgx => EvidenceKind::DcapQuote(TeeType::Sgx),
        // A session verdict is the CVM's; GPU evidence is folded into it.
        Platform::SevSnp => EvidenceKind::SnpReport,
        Platform::NvidiaGpu => EvidenceKind::GpuReport,
    }
}

/// What one answer was.
pub struct Answer {
    /// The text.
    pub text: Zeroizing<String>,
    /// Why it ended.
    pub finish_reason: Option<String>,
    /// Completion tokens, when the enclave reported usage.
    pub completion_tokens: Option<u64>,
    /// The usage receipt that ended the answer, verified.
    pub receipt: Option<silk_protocol::receipt::Receipt>,
}

/// Sends `messages` (OpenAI chat turns) sealed, streaming the answer's text to `out`.
pub async fn ask(
    upstream: &Upstream,
    messages: &[Value],
    settings: &ChatSettings,
    out: &mut dyn Write,
) -> Result<Answer, ClientError> {
    let mut body = json!({
        "messages": messages,
        "stream": true,
        "stream_options": {"include_usage": true},
        "max_tokens": settings.max_tokens,
        "temperature": settings.temperature,
    });
    if let Some(seed) = settings.seed {
        body["seed"] = json!(seed);
    }
    let body = Zeroizing::new(body.to_string().into_bytes());
    let mut answer = upstream.send(&body).await?;
    if answer.status() != hyper::StatusCode::OK {
        answer.collect().await?;
        return Err(ClientError::Transport(
            "error status without an error body".into(),
        ));
    }
    let mut result = Answer {
        text: Zeroizing::new(String::new()),
        finish_reason: None,
        completion_tokens: None,
        receipt: None,
    };
    let streamed = stream_answer(&mut answer, &mut result, out).await;
    if let (Ok(()), Some(r)) = (&streamed, answer.receipt()) {
        upstream.acknowledge(r);
        result.receipt = Some(r.receipt.clone());
    }
    if let Err(e) = &streamed {
        if !result.text.is_empty() {
            // What was printed was authentic as far as it went, but it is not the whole
            // answer: say so where the answer went, not only on stderr.
            let _ = write!(out, "\n[answer incomplete: {e}]");
            let _ = out.flush();
        }
    }
    streamed.map(|()| result)
}

async fn stream_answer(
    answer: &mut crate::session::SealedAnswer,
    result: &mut Answer,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    let mut parser = SseParser::default();
    while let Some(chunk) = answer.next_chunk().await? {
        for event in parser.push(&chunk) {
            let SseEvent::Data(data) = event else {
                continue;
            };
            let v: Value = serde_json::from_str(&data)
                .map_err(|e| ClientError::Transport(format!("answer event is not JSON: {e}")))?;
            if let Some(err) = v.get("error") {
                return Err(ClientError::Api {
                    status: 500,
                    body: serde_json::from_value(json!({ "error": err }))
                        .map_err(|_| ClientError::Transport("malformed error event".into()))?,
                });
            }
            if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
                result.text.push_str(t);
                let _ = out.write_all(t.as_bytes());
                let _ = out.flush();
            }
            if let Some(r) = v["choices"][0]["finish_reason"].as_str() {
                result.finish_reason = Some(r.to_owned());
            }
            if let Some(n) = v["usage"]["completion_tokens"].as_u64() {
                result.completion_tokens = Some(n);
            }
        }
    }
    Ok(())
}

/// One prompt, or an interactive conversation when `prompt` is `None`.
pub async fn run_chat(
    upstream: &Upstream,
    prompt: Option<&str>,
    settings: &ChatSettings,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    let mut history: Vec<Value> = Vec::new();
    if let Some(s) = &settings.system {
        history.push(json!({"role": "system", "content": s}));
    }
    if let Some(p) = prompt {
        history.push(json!({"role": "user", "content": p}));
        ask(upstream, &history, settings, out).await?;
        let _ = writeln!(out);
        return Ok(());
    }
    let stdin = std::io::stdin();
    loop {
        let _ = write!(out, "> ");
        let _ = out.flush();
        let mut line = Zeroizing::new(String::new());
        match stdin.lock().read_line(&mut line) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(ClientError::Config(format!("reading stdin: {e}"))),
        }
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        if text == "/quit" || text == "/exit" {
            return Ok(());
        }
        history.push(json!({"role": "user", "content": text}));
        let answer = ask(upstream, &history, settings, out).await?;
        let _ = writeln!(out);
        history.push(json!({"role": "assistant", "content": answer.text.as_str()}));
    }
}
