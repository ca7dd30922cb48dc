//! `silk bench router --json`: the table's figures as one JSON document.
//!
//! Keys (stable; new keys may be added; times in milliseconds):
//!
//! ```text
//! bench            "router"
//! settings         {"model", "max_tokens", "concurrency", "reps", "heartbeat_ms",
//!                   "machine", "build"}
//! answers          [{"path": direct|routed, "sessions", "streams", "ttft_p50_ms",
//!                    "ttft_p99_ms", "decode_tok_s", "tokens_min", "tokens_max"}]
//! stub             {"request_bytes", "chunks", "chunk_bytes", "answer_bytes",
//!                   "rows": [{"path": direct|routed, "clients", "requests", "req_s",
//!                             "mb_s", "p50_ms", "p99_ms"}],
//!                   "receipts_counted", "routed_answers", "router_connections"}
//! registrations    [{"start_to_listening_ms", "start_to_attempt_ms",
//!                    "attempt_to_listed_ms", "attempt_to_answer_ms",
//!                    "start_to_answer_ms", "router_share_ms"}], one per enclave started
//! deaths_ms        [SIGKILL to unlisted], one per enclave killed
//! ```

use std::time::Duration;

use serde_json::{json, Value};

use super::table::{AnswerFigures, LoadFigures, Table};
use super::{machine, profile, RouterBenchArgs};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn answer(path: &str, sessions: usize, f: &AnswerFigures) -> Value {
    json!({
        "path": path,
        "sessions": sessions,
        "streams": f.streams,
        "ttft_p50_ms": f.ttft_p50_ms,
        "ttft_p99_ms": f.ttft_p99_ms,
        "decode_tok_s": f.decode_tok_s,
        "tokens_min": f.tokens.0,
        "tokens_max": f.tokens.1,
    })
}

fn load(path: &str, clients: usize, f: &LoadFigures) -> Value {
    json!({
        "path": path,
        "clients": clients,
        "requests": f.requests,
        "req_s": f.req_s,
        "mb_s": f.mb_s,
        "p50_ms": f.p50_ms,
        "p99_ms": f.p99_ms,
    })
}

/// The document (keys in the module docs).
pub fn document(args: &RouterBenchArgs, t: &Table) -> Value {
    let answers: Vec<Value> = t
        .answers
        .iter()
        .flat_map(|r| {
            [
                answer("direct", r.sessions, &r.direct),
                answer("routed", r.sessions, &r.routed),
            ]
        })
        .collect();
    let s = &t.stub;
    let rows: Vec<Value> = s
        .rows
        .iter()
        .flat_map(|r| {
            [
                load("direct", r.clients, &r.direct),
                load("routed", r.clients, &r.routed),
            ]
        })
        .collect();
    let registrations: Vec<Value> = t
        .registrations
        .iter()
        .map(|r| {
            json!({
                "start_to_listening_ms": ms(r.start_to_listening),
                "start_to_attempt_ms": ms(r.start_to_attempt),
                "attempt_to_listed_ms": ms(r.attempt_to_listed),
                "attempt_to_answer_ms": ms(r.attempt_to_answer),
                "start_to_answer_ms": ms(r.start_to_answer),
                "router_share_ms": ms(r.router_share),
            })
        })
        .collect();
    json!({
        "bench": "router",
        "settings": {
            "model": args.model,
            "max_tokens": args.max_tokens,
            "concurrency": args.concurrency,
            "reps": args.reps,
            "heartbeat_ms": ms(t.heartbeat),
            "machine": machine(),
            "build": profile(),
        },
        "answers": answers,
        "stub": {
            "request_bytes": s.request_bytes,
            "chunks": s.chunks,
            "chunk_bytes": s.chunk_bytes,
            "answer_bytes": s.answer_bytes,
            "rows": rows,
            "receipts_counted": s.receipts_counted.map(|(c, _)| c),
            "routed_answers": s.receipts_counted.map(|(_, r)| r),
            "router_connections": s.router_connections,
        },
        "registrations": registrations,
        "deaths_ms": t.deaths.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
    })
}
