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
    let proxy = common::proxy(session).await;

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
    let secrets = common::secrets(prompt, "Quillfeather-4417", &answer);
    let rec = recording.lock().unwrap();
    common::assert_no_leak(&rec.up, &secrets, "client→enclave bytes");
    common::assert_no_leak(&rec.down, &secrets, "enclave→client bytes");
    common::assert_no_leak(&logs.0.lock().unwrap(), &secrets, "logs");
    // The check itself can fail: the proxy's own answer does carry the text.
    assert!(contains(&answers[0], answer.as_bytes()));
}
