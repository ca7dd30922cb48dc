//! A hostile network between client and enclave, on the RA-TLS path and on the plain-HTTP
//! path a router uses: a relay flips, drops, cuts, delays and holds back bytes in either
//! direction. Every case must end within its timeout with a named error (or, where the
//! fault spares the answer, with the genuine answer), never show altered text as genuine,
//! and leave the enclave answering the next request.

mod common;

use std::time::{Duration, Instant};

use common::hostile::{relay, Fault, Plan};
use common::{enclave_limited, Local};
use silk_client::chat::{ask, ChatSettings};
use silk_client::session::{ClientError, Options, Session};
use silk_client::upstream::Upstream;
use silk_enclave::conn::Limits;

/// The client's deadlines in these tests; the enclave's are shorter for bodies.
fn options() -> Options {
    Options {
        connect_timeout: Duration::from_secs(3),
        tls_handshake_timeout: Duration::from_secs(3),
        first_byte_timeout: Duration::from_secs(3),
        idle_timeout: Duration::from_secs(3),
        ..Options::default()
    }
}

/// The longest any case may take: a deadline plus the time to notice it.
const BOUND: Duration = Duration::from_secs(9);

const PROMPT: &str = "Name three colours.";

fn settings() -> ChatSettings {
    ChatSettings {
        max_tokens: 12,
        temperature: 0.0,
        ..ChatSettings::default()
    }
}

fn messages() -> Vec<serde_json::Value> {
    vec![serde_json::json!({"role": "user", "content": PROMPT})]
}

/// The genuine answer, asked directly.
async fn reference(endpoint: &str, local: &Local) -> String {
    let s = Session::connect_with(endpoint, local.policy.clone(), options())
        .await
        .expect("direct session");
    let mut out = Vec::new();
    let a = ask(&Upstream::direct(s), &messages(), &settings(), &mut out)
        .await
        .expect("direct answer");
    a.text.to_string()
}

/// Runs one case through a relay with `plan`; checks the outcome and that the enclave
/// still answers afterwards.
async fn case(local: &Local, endpoint: &str, genuine: &str, name: &str, plan: Plan) {
    let target = if plan.tls {
        local.running.addr
    } else {
        local.plain()
    };
    let via = relay(target, plan).await;
    let scheme = if plan.tls { "https" } else { "http" };
    let start = Instant::now();
    let outcome = tokio::time::timeout(BOUND + Duration::from_secs(5), async {
        let s = Session::connect_with(
            &format!("{scheme}://{via}"),
            local.policy.clone(),
            options(),
        )
        .await?;
        let mut out = Vec::new();
        let answer = ask(&Upstream::direct(s), &messages(), &settings(), &mut out).await;
        let printed = String::from_utf8_lossy(&out).into_owned();
        match answer {
            Ok(a) => Ok((a.text.to_string(), printed)),
            Err(e) => Err(tag(e, &printed)),
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{name}: the client hung past {BOUND:?}"));
    let took = start.elapsed();
    println!("{name}: {took:.1?}: {outcome:?}");
    assert!(took < BOUND, "{name}: took {took:?}");
    match outcome {
        Ok((text, _)) => assert_eq!(
            text, genuine,
            "{name}: an answer other than the genuine one"
        ),
        Err(e) => assert_named(name, &e),
    }
    // The enclave answers the next request.
    assert_eq!(
        reference(endpoint, local).await,
        genuine,
        "{name}: next request"
    );
}

/// A failure after part of the answer was printed must be marked on the output.
fn tag(e: ClientError, printed: &str) -> ClientError {
    if !printed.is_empty() && !printed.contains("[answer incomplete:") {
        panic!("partial answer printed without the incomplete marker: {printed:?}");
    }
    e
}

/// The error names what happened: a deadline, a check, or a transport cause in words.
fn assert_named(name: &str, e: &ClientError) {
    let text = e.to_string();
    let named = match e {
        ClientError::Timeout { which, .. } => !which.is_empty(),
        ClientError::Integrity { check, .. } => !check.is_empty(),
        ClientError::Api { body, .. } => !body.error.code.is_empty(),
        ClientError::Transport(t) => [
            "TLS record authentication failed",
            "HTTP framing is corrupt",
            "cut short",
            "closed before",
            "reset",
            "refused",
            "TLS handshake",
        ]
        .iter()
        .any(|w| t.contains(w)),
        _ => false,
    };
    assert!(
        named,
        "{name}: the error does not say what happened: {text}"
    );
    assert!(
        !text.contains("operation was canceled") && !text.contains(": connection error"),
        "{name}: vague words: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tls_path_survives_a_hostile_relay() {
    let local = enclave_limited(Limits {
        body_grace: Duration::from_secs(2),
        request_head: Duration::from_secs(2),
        ..Limits::default()
    })
    .await;
    let direct = local.https();
    let genuine = reference(&direct, &local).await;
    // Connection 0 attests; connection 1 carries the sealed request.
    let on = |up, down| Plan {
        connection: 1,
        up,
        down,
        tls: true,
    };
    for (name, plan) in [
        (
            "tls: 10 request bytes dropped",
            on(Fault::Drop { from: 5, len: 10 }, Fault::Pass),
        ),
        ("tls: request held back", on(Fault::Hold(0), Fault::Pass)),
        (
            "tls: last answer record dropped",
            on(Fault::Pass, Fault::DropLast),
        ),
        ("tls: answer byte flipped", on(Fault::Pass, Fault::Flip(12))),
        ("tls: answer cut", on(Fault::Pass, Fault::Cut(0))),
        ("tls: answer held back", on(Fault::Pass, Fault::Hold(0))),
        (
            "tls: slow relay",
            on(Fault::DelayMs(40), Fault::DelayMs(40)),
        ),
        (
            "tls: attestation held back",
            Plan {
                connection: 0,
                up: Fault::Pass,
                down: Fault::Hold(0),
                tls: true,
            },
        ),
    ] {
        case(&local, &direct, &genuine, name, plan).await;
    }
    // The requests cut short on the way were closed by the enclave at its head deadline,
    // and counted by name.
    let closed = common::metric(
        local.plain(),
        "silk_enclave_deadline_closures_total{deadline=\"RequestHead\"}",
    )
    .await;
    assert!(closed >= 1.0, "request-head closures counted: {closed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plain_path_survives_a_hostile_relay() {
    let local = enclave_limited(Limits {
        body_grace: Duration::from_secs(2),
        request_head: Duration::from_secs(2),
        ..Limits::default()
    })
    .await;
    let direct = format!("http://{}", local.plain());
    let genuine = reference(&direct, &local).await;
    // Connections 0 and 1 attest (fresh, then base claims); 2 carries the sealed request.
    let on = |up, down| Plan {
        connection: 2,
        up,
        down,
        tls: false,
    };
    for (name, plan) in [
        (
            "plain: 10 body bytes dropped",
            on(Fault::Drop { from: 220, len: 10 }, Fault::Pass),
        ),
        (
            "plain: request held back",
            on(Fault::Hold(100), Fault::Pass),
        ),
        (
            "plain: answer end held back",
            on(Fault::Pass, Fault::DropLast),
        ),
        (
            "plain: answer byte flipped",
            on(Fault::Pass, Fault::Flip(260)),
        ),
        ("plain: answer cut", on(Fault::Pass, Fault::Cut(300))),
        ("plain: answer held back", on(Fault::Pass, Fault::Hold(300))),
        (
            "plain: slow relay",
            on(Fault::DelayMs(40), Fault::DelayMs(40)),
        ),
    ] {
        case(&local, &direct, &genuine, name, plan).await;
    }
}
