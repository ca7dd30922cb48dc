//! `silk proxy` from start to serving: verify the target, print the verification, bind,
//! announce, serve the OpenAI API and the verification page.
//!
//! With `serve_on_refusal`, an enclave the policy refuses does not end the process: the
//! OpenAI routes answer 502 naming the failed checks (never falling back to anything) and
//! `/verify` lets a browser see for itself which check failed.

use std::net::SocketAddr;
use std::sync::Arc;

use silk_cli::Style;

use crate::session::{ClientError, ErrorKind, Options};
use crate::upstream::TargetArgs;
use crate::verify_page::{Page, ProxyCheck};
use crate::verify_relay::{Relay, RelayLimits};

/// Runs `silk proxy` on `listen` until the process ends. Returns only on an error.
pub async fn run(
    listen: SocketAddr,
    target: &TargetArgs,
    options: Options,
    serve_on_refusal: bool,
) -> Result<(), ClientError> {
    // The page shows the policy's own text; `connect` reads and parses the same file.
    let policy_toml = std::fs::read_to_string(&target.policy)
        .map_err(|e| ClientError::Config(format!("policy {}: {e}", target.policy.display())))?;
    let relay = page_relay(target);
    let (app, name, refused) = match target.connect(options).await {
        Ok((upstream, name)) => {
            let mut out = std::io::stdout();
            if let Some(session) = upstream.session() {
                let _ = crate::chat::print_verification(session, &name, Style::stdout(), &mut out);
            }
            let page = Page::new(policy_toml, name.clone(), relay, ProxyCheck::Accepted);
            (
                crate::proxy::router_with_page(Arc::new(upstream), Arc::new(page)),
                name,
                false,
            )
        }
        Err(e) if serve_on_refusal && e.kind() == ErrorKind::Attestation => {
            let failed = failed_checks(&e);
            eprintln!("silk proxy: {e}");
            for (name, reason) in &failed {
                eprintln!("  {} {name}: {reason}", Style::stderr().mark(false));
            }
            eprintln!("silk proxy: --serve-on-refusal: /v1 answers 502; /verify shows the refusal");
            let name = target_name(target);
            let check = ProxyCheck::Refused {
                summary: e.to_string(),
                failed: failed.into_iter().map(|(n, _)| n).collect(),
            };
            let page = Arc::new(Page::new(policy_toml, name.clone(), relay, check));
            (
                crate::proxy::refused_router(e.to_string(), page),
                name,
                true,
            )
        }
        Err(e) => return Err(e),
    };
    // Bound before it is announced, so that whoever reads the line can connect.
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| ClientError::Config(format!("listening on {listen}: {e}")))?;
    let bound = listener.local_addr().unwrap_or(listen);
    if refused {
        println!(
            "silk proxy: OpenAI API at http://{bound}/v1 answers 502: the policy refused {name}"
        );
    } else {
        println!("silk proxy: OpenAI API at http://{bound}/v1 (sealed to {name})");
    }
    println!("silk proxy: verification page at http://{bound}/verify");
    crate::proxy::serve_router(listener, app).await;
    Ok(())
}

/// The page's relay to the target, or why there is none (answered as 501).
fn page_relay(target: &TargetArgs) -> Result<Relay, String> {
    match &target.endpoint {
        Some(endpoint) => Relay::new(endpoint, RelayLimits::default()).map_err(|e| e.to_string()),
        None => Err(
            "the verification page relays one enclave's evidence: with --router the proxy \
             verifies a worker per request, so there is no one enclave to show; start a \
             proxy with --endpoint for the enclave to verify"
                .into(),
        ),
    }
}

fn target_name(target: &TargetArgs) -> String {
    target
        .endpoint
        .clone()
        .unwrap_or_else(|| target.router.join(", "))
}

/// The failed checks of a refusal, with their reasons.
fn failed_checks(e: &ClientError) -> Vec<(String, String)> {
    let ClientError::Attestation {
        verdict: Some(v), ..
    } = e
    else {
        return Vec::new();
    };
    v.failures()
        .map(|c| {
            let reason = match &c.outcome {
                silk_protocol::attestation::Outcome::Fail { reason } => reason.clone(),
                _ => String::new(),
            };
            (c.name.to_string(), reason)
        })
        .collect()
}
