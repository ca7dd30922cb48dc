//! Times the native verifier on the cases `verifier/wasm/test/bench.mjs` writes, through
//! the same function the WebAssembly build runs ([`Request::verdict_json`]), so that the
//! two are compared without a process start in the native number.
//!
//! `cargo run --release -p silk-verifier-wasm --example native_timing -- CASES.json`
//! prints one line per case: `name<TAB>median milliseconds<TAB>runs`.

use std::time::Instant;

use serde_json::Value;
use silk_verifier_wasm::{Collateral, Request, Rim};
use time::OffsetDateTime;

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn bytes(v: &Value, key: &str) -> Result<Option<Vec<u8>>, String> {
    match v.get(key).and_then(Value::as_str) {
        None => Ok(None),
        Some(h) => hex::decode(h).map(Some).map_err(|e| format!("{key}: {e}")),
    }
}

fn case(v: &Value) -> Result<(String, Vec<u8>, Request, u32), String> {
    let c = v.get("collateral").cloned().unwrap_or(Value::Null);
    let mut gpu_rims = Vec::new();
    for rim in c
        .get("gpuRims")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        gpu_rims.push(Rim {
            name: text(rim, "name").unwrap_or_default(),
            xml: bytes(rim, "xml")?.unwrap_or_default(),
        });
    }
    let request = Request {
        policy: text(v, "policy").unwrap_or_default(),
        now: text(v, "now"),
        format: text(v, "format"),
        source: text(v, "source"),
        collateral: Collateral {
            vcek: bytes(&c, "vcek")?,
            ask: bytes(&c, "ask")?,
            ark: bytes(&c, "ark")?,
            cert_chain: bytes(&c, "certChain")?,
            tdx: bytes(&c, "tdx")?,
            gpu_chain: bytes(&c, "gpuChain")?,
            gpu_rims,
            ocsp: Vec::new(),
            gpu_nonce: text(&c, "gpuNonce"),
            no_nonce: c.get("noNonce").and_then(Value::as_bool).unwrap_or(false),
        },
        challenge: None,
        max_age_secs: None,
    };
    let runs = v.get("runs").and_then(Value::as_u64).unwrap_or(20) as u32;
    Ok((
        text(v, "name").unwrap_or_default(),
        bytes(v, "evidence")?.unwrap_or_default(),
        request,
        runs.max(1),
    ))
}

fn main() -> Result<(), String> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: native_timing CASES.json")?;
    let json = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
    let cases: Vec<Value> = serde_json::from_slice(&json).map_err(|e| e.to_string())?;
    for v in &cases {
        let (name, evidence, request, runs) = case(v)?;
        // One run first, as the wasm side warms up too.
        request.verdict_json(&evidence, OffsetDateTime::now_utc)?;
        let mut times = Vec::with_capacity(runs as usize);
        for _ in 0..runs {
            let start = Instant::now();
            request.verdict_json(&evidence, OffsetDateTime::now_utc)?;
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        println!("{name}\t{:.3}\t{runs}", times[times.len() / 2]);
    }
    Ok(())
}
