//! What a relay between client and enclave sees: every byte in both directions is
//! recorded, and neither the prompt nor the answer (nor their UTF-16 or base64 forms)
//! occurs in the recording, or in the enclave's and the proxy's logs (captured at the
//! most verbose level).

mod common;

use std::sync::Arc;

use common::relay::{self, recording_relay};
use common::{answer_text, contains, enclave};
use http_body_util::{BodyExt, Full};
use silk_client::session::Session;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_and_the_logs_see_no_prompt_and_no_answer() {
    let logs = common::capture_logs();

    let local = enclave().await;
    let (relay_addr, recording) = recording_relay(local.running.addr).await;
    let session = Arc::new(
        Session::connect(&format!("https://{relay_addr}"), local.policy.clone())
            .await
            .unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            silk_client::proxy::router(Arc::new(silk_client::upstream::Upstream::new(
                silk_client::upstream::Target::Direct(session),
            ))),
        )
        .await
        .unwrap()
    });

    let prompt = "Tell me about the zebra called Quillfeather-4417 from Oslo.";
    let mut answers = Vec::new();
    for stream in [false, true] {
        let body = common::chat_body(prompt, 32, stream);
        let req = hyper::Request::post("/v1/chat/completions")
            .header("host", proxy.to_string())
            .header("content-type", "application/json")
            .body(Full::new(bytes::Bytes::from(body)))
            .unwrap();
        let resp = relay::http(proxy, req).await;
        assert_eq!(resp.status(), 200);
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        answers.push(bytes.to_vec());
    }
    let answer = answer_text(&answers[0]);
    assert!(
        answer.chars().count() >= 24,
        "answer long enough to test: {answer}"
    );

    let mut secrets = vec![prompt.to_owned(), "Quillfeather-4417".to_owned()];
    secrets.push(answer.clone());
    // A stretch from the middle of the answer, in case only part of it leaked.
    let chars: Vec<char> = answer.chars().collect();
    secrets.push(
        chars[chars.len() / 2 - 8..chars.len() / 2 + 8]
            .iter()
            .collect(),
    );

    let rec = recording.lock().unwrap();
    assert!(
        !rec.up.is_empty() && !rec.down.is_empty(),
        "the relay carried the traffic"
    );
    let logs = logs.0.lock().unwrap().clone();
    assert!(!logs.is_empty(), "logs were captured");
    for secret in &secrets {
        for form in common::leak_forms(secret) {
            assert!(
                !contains(&rec.up, &form),
                "client→enclave bytes leak {secret:?}"
            );
            assert!(
                !contains(&rec.down, &form),
                "enclave→client bytes leak {secret:?}"
            );
            assert!(!contains(&logs, &form), "logs leak {secret:?}");
        }
    }
    // The check itself can fail: the proxy's own answer does carry the text.
    assert!(contains(&answers[0], answer.as_bytes()));
}
