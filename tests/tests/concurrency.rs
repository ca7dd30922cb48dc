//! 64 sealed streams at once through one session: every client gets its own complete
//! answer, none is lost or mixed with another.

mod common;

use std::sync::Arc;

use common::{enclave, metric};
use silk_client::session::Session;
use silk_client::sse::{SseEvent, SseParser};

async fn completion(session: &Session, prompt: &str) -> (String, String) {
    let body = serde_json::json!({
        "prompt": prompt, "max_tokens": 6, "temperature": 0, "stream": true,
    })
    .to_string();
    let mut answer = session.send(body.as_bytes()).await.expect("sent");
    let mut parser = SseParser::default();
    let (mut text, mut reason, mut done) = (String::new(), String::new(), false);
    while let Some(chunk) = answer.next_chunk().await.expect("authentic stream") {
        for ev in parser.push(&chunk) {
            match ev {
                SseEvent::Done => done = true,
                SseEvent::Data(d) => {
                    let v: serde_json::Value = serde_json::from_str(&d).unwrap();
                    text.push_str(v["choices"][0]["text"].as_str().unwrap_or(""));
                    if let Some(r) = v["choices"][0]["finish_reason"].as_str() {
                        reason = r.to_owned();
                    }
                }
            }
        }
    }
    assert!(done, "complete stream for {prompt:?}");
    (text, reason)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_sealed_streams_each_get_their_own_answer() {
    let local = enclave().await;
    let session = Arc::new(
        Session::connect(&local.https(), local.policy.clone())
            .await
            .unwrap(),
    );
    let prompts: Vec<String> = (0..64)
        .map(|i| format!("List item {i}: the number {} is", i * 37 + 11))
        .collect();
    let tasks: Vec<_> = prompts
        .iter()
        .cloned()
        .map(|p| {
            let s = session.clone();
            tokio::spawn(async move { completion(&s, &p).await })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.expect("task"));
    }
    for (i, (text, reason)) in answers.iter().enumerate() {
        assert!(
            reason == "length" || reason == "stop",
            "stream {i} ended with {reason:?}"
        );
        assert!(!text.is_empty() || reason == "stop", "stream {i} is empty");
    }
    // No mixing: the same prompts asked one at a time give the same (greedy) answers.
    for i in [0usize, 21, 42, 63] {
        let alone = completion(&session, &prompts[i]).await;
        assert_eq!(
            alone, answers[i],
            "answer {i} under load differs from alone"
        );
    }
    assert_eq!(
        metric(local.plain(), "silk_enclave_sealed_requests_total").await,
        68.0
    );
}
