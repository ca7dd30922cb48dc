//! `silk bench sealed`'s results: the table, or one JSON document.
//!
//! JSON keys (stable; new keys may be added):
//!
//! ```text
//! bench          "sealed"
//! model, threads, max_tokens, reps      the settings
//! rows           [{"path": direct|proxy|session, "sessions", "decode_tok_s", "e2e_tok_s",
//!                  "ttft_p50_ms", "ttft_p90_ms", "tokens_min", "tokens_max"}]
//! attestation    {"connect_ms", "verify_ms", "reps"}
//! per_request    {"via_proxy_ms", "session_ms", "proxy_hop_ms", "seal_open_ms"}
//! first_answer   {"total_ms", "connect_ms", "verification_ms", "handshake_ms",
//!                 "first_token_ms", "engine_ttft_ms", "added_ms", "reps"}
//! recorded       {"snp_ms", "tdx_ms", "tdx_cached_ms", "reps"}
//! ```

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use super::{
    AttestFigures, Figures, FirstAnswerFigures, PathFigures, RecordedFigures, SealedBenchArgs,
    SealedBenchError,
};

/// Everything the table shows.
pub(super) struct Table {
    pub(super) proxy: Vec<Figures>,
    pub(super) session: Vec<Figures>,
    pub(super) direct: Vec<Figures>,
    pub(super) attest: AttestFigures,
    pub(super) path: PathFigures,
    pub(super) first_answer: FirstAnswerFigures,
    pub(super) recorded: RecordedFigures,
}

/// The line before the table: what was measured, and how.
pub(super) fn heading(args: &SealedBenchArgs) -> String {
    format!(
        "silk bench sealed: {}, {} kernel threads, {} tokens per answer, greedy, {} repetitions \
         (rates: median round; TTFT: all streams)",
        args.model.display(),
        args.threads,
        args.max_tokens,
        args.reps
    )
}

/// The table.
pub(super) fn print(
    args: &SealedBenchArgs,
    t: &Table,
    out: &mut dyn Write,
) -> Result<(), SealedBenchError> {
    writeln!(
        out,
        "\n{:<30} {:>8} {:>13} {:>11} {:>12} {:>12} {:>8}",
        "path", "sessions", "decode tok/s", "e2e tok/s", "TTFT p50 ms", "TTFT p90 ms", "tokens"
    )?;
    let row = |out: &mut dyn Write, name: &str, n: usize, f: &Figures| {
        let tokens = if f.tokens.0 == f.tokens.1 {
            f.tokens.0.to_string()
        } else {
            format!("{}-{}", f.tokens.0, f.tokens.1)
        };
        writeln!(
            out,
            "{:<30} {:>8} {:>13.1} {:>11.1} {:>12.2} {:>12.2} {:>8}",
            name, n, f.decode_tok_s, f.e2e_tok_s, f.ttft_p50_ms, f.ttft_p90_ms, tokens
        )
    };
    for (k, &n) in args.concurrency.iter().enumerate() {
        let (d, p, s) = (&t.direct[k], &t.proxy[k], &t.session[k]);
        row(out, "direct (engine in-process)", n, d)?;
        row(out, "sealed (proxy -> enclave)", n, p)?;
        row(out, "sealed (Session, no proxy)", n, s)?;
        writeln!(
            out,
            "{:<30} {:>8} {:>12.3}x {:>10.3}x {:>+12.2} {:>+12.2}",
            "sealed/direct, added TTFT",
            n,
            p.decode_tok_s / d.decode_tok_s.max(1e-9),
            p.e2e_tok_s / d.e2e_tok_s.max(1e-9),
            p.ttft_p50_ms - d.ttft_p50_ms,
            p.ttft_p90_ms - d.ttft_p90_ms
        )?;
    }
    let a = &t.attest;
    writeln!(
        out,
        "\nattestation (SIMULATED evidence, median of {}): Session::connect {:.2} ms \
         (nonce, RA-TLS handshake, fresh evidence, verify); EvidenceBundle::verify {:.2} ms",
        a.reps, a.connect_ms, a.verify_ms
    )?;
    let p = &t.path;
    writeln!(
        out,
        "per request without the engine (median of {}): GET /v1/models via proxy {:.2} ms \
         = proxy hop {:.2} ms + RA-TLS connection and request {:.2} ms; seal + open {:.2} ms",
        a.reps, p.via_proxy_ms, p.proxy_hop_ms, p.session_ms, p.seal_open_ms
    )?;
    let f = &t.first_answer;
    writeln!(
        out,
        "first verified answer (SIMULATED evidence, median of {} fresh sessions): {:.2} ms = \
         Session::connect {:.2} ms (verification {:.2} ms; connection, RA-TLS handshake and \
         fresh evidence {:.2} ms) + first token of the first answer {:.2} ms; engine TTFT \
         alone {:.2} ms, so attestation and the sealed path add {:.2} ms",
        f.reps,
        f.total_ms,
        f.connect_ms,
        f.verification_ms,
        f.handshake_ms,
        f.first_token_ms,
        f.engine_ttft_ms,
        f.added_ms
    )?;
    let r = &t.recorded;
    writeln!(
        out,
        "verification of recorded real evidence (parse + verify, median of {}): SNP (Milan \
         report, VCEK, AMD chain) {:.2} ms; TDX (quote, collateral inside) {:.2} ms, already \
         parsed (a cached bundle) {:.2} ms",
        r.reps, r.snp_ms, r.tdx_ms, r.tdx_cached_ms
    )?;
    writeln!(
        out,
        "goals: sealed >= 0.97x direct throughput, added TTFT < 5 ms (loopback, attestation \
         excluded); first verified answer < 100 ms + engine TTFT; cached bundle re-verified \
         <= 2 ms"
    )?;
    Ok(())
}

#[derive(Serialize)]
struct Row {
    path: &'static str,
    sessions: usize,
    decode_tok_s: f64,
    e2e_tok_s: f64,
    ttft_p50_ms: f64,
    ttft_p90_ms: f64,
    tokens_min: usize,
    tokens_max: usize,
}

/// `--json`'s document (keys in the module docs).
#[derive(Serialize)]
pub(super) struct Report<'a> {
    bench: &'static str,
    model: &'a Path,
    threads: usize,
    max_tokens: usize,
    reps: usize,
    rows: Vec<Row>,
    attestation: &'a AttestFigures,
    per_request: &'a PathFigures,
    first_answer: &'a FirstAnswerFigures,
    recorded: &'a RecordedFigures,
}

/// The results as one document.
pub(super) fn json<'a>(args: &'a SealedBenchArgs, t: &'a Table) -> Report<'a> {
    let row = |path, sessions, f: &Figures| Row {
        path,
        sessions,
        decode_tok_s: f.decode_tok_s,
        e2e_tok_s: f.e2e_tok_s,
        ttft_p50_ms: f.ttft_p50_ms,
        ttft_p90_ms: f.ttft_p90_ms,
        tokens_min: f.tokens.0,
        tokens_max: f.tokens.1,
    };
    let mut rows = Vec::new();
    for (k, &n) in args.concurrency.iter().enumerate() {
        rows.push(row("direct", n, &t.direct[k]));
        rows.push(row("proxy", n, &t.proxy[k]));
        rows.push(row("session", n, &t.session[k]));
    }
    Report {
        bench: "sealed",
        model: &args.model,
        threads: args.threads,
        max_tokens: args.max_tokens,
        reps: args.reps,
        rows,
        attestation: &t.attest,
        per_request: &t.path,
        first_answer: &t.first_answer,
        recorded: &t.recorded,
    }
}
