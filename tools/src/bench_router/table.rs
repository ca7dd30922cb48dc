//! What `silk bench router` prints: figures made from the run's samples, and the table.

use std::io::Write;
use std::time::Duration;

use super::lifecycle::Registration;
use super::load::Round;
use crate::bench_sealed::{figures, quantile, Sample};

/// One path's real answers at one concurrency.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AnswerFigures {
    /// Streams measured (every round's).
    pub streams: usize,
    /// Time to first token, ms, median over every stream.
    pub ttft_p50_ms: f64,
    /// The same, 99th percentile (nearest rank: with under 100 streams, the slowest).
    pub ttft_p99_ms: f64,
    /// Median over rounds of the steady aggregate decode rate.
    pub decode_tok_s: f64,
    /// Fewest and most tokens in one answer.
    pub tokens: (usize, usize),
}

impl AnswerFigures {
    /// Summarises rounds of streams.
    pub fn from_rounds(rounds: &[Vec<Sample>]) -> Self {
        let f = figures(rounds);
        let ttft: Vec<f64> = rounds
            .iter()
            .flatten()
            .map(|s| (s.first - s.start).as_secs_f64() * 1e3)
            .collect();
        Self {
            streams: ttft.len(),
            ttft_p50_ms: f.ttft_p50_ms,
            ttft_p99_ms: quantile(&ttft, 0.99),
            decode_tok_s: f.decode_tok_s,
            tokens: f.tokens,
        }
    }
}

/// Both paths at one concurrency.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AnswerRow {
    /// Concurrent sessions.
    pub sessions: usize,
    /// Session straight to the worker.
    pub direct: AnswerFigures,
    /// Network through the router.
    pub routed: AnswerFigures,
}

/// One path's stub load, over all its rounds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadFigures {
    /// Requests answered.
    pub requests: usize,
    /// Requests over the rounds' summed wall time.
    pub req_s: f64,
    /// Answer megabytes (10^6 bytes) per second, likewise.
    pub mb_s: f64,
    /// Request latency (send to the answer's end), ms.
    pub p50_ms: f64,
    /// The same, 99th percentile.
    pub p99_ms: f64,
}

impl LoadFigures {
    /// Summarises rounds.
    pub fn from_rounds(rounds: &[Round]) -> Self {
        let lat: Vec<f64> = rounds
            .iter()
            .flat_map(|r| r.latencies_ms.iter().copied())
            .collect();
        let wall: f64 = rounds.iter().map(|r| r.wall.as_secs_f64()).sum();
        let bytes: u64 = rounds.iter().map(|r| r.bytes).sum();
        Self {
            requests: lat.len(),
            req_s: lat.len() as f64 / wall.max(1e-9),
            mb_s: bytes as f64 / 1e6 / wall.max(1e-9),
            p50_ms: quantile(&lat, 0.5),
            p99_ms: quantile(&lat, 0.99),
        }
    }
}

/// Both paths of the stub load at one number of clients.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadRow {
    /// Concurrent clients.
    pub clients: usize,
    /// Straight to the stub over RA-TLS.
    pub direct: LoadFigures,
    /// Through the router.
    pub routed: LoadFigures,
}

/// The stub section's settings and figures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StubFigures {
    /// Request body bytes.
    pub request_bytes: usize,
    /// Frames per answer and bytes per frame.
    pub chunks: usize,
    /// Bytes per frame after its header.
    pub chunk_bytes: usize,
    /// Bytes of one whole answer.
    pub answer_bytes: usize,
    /// One client (the latency the router adds to a request alone), then many.
    pub rows: Vec<LoadRow>,
    /// Receipts the router verified and counted (from its metrics) over requests routed.
    pub receipts_counted: Option<(u64, usize)>,
    /// RA-TLS connections the stub accepted during the routed rounds (the router's).
    pub router_connections: u64,
}

/// Everything the table shows.
#[derive(Clone, Debug, Default)]
pub struct Table {
    /// Section 1, per concurrency.
    pub answers: Vec<AnswerRow>,
    /// Section 2.
    pub stub: StubFigures,
    /// Section 3, one per enclave started.
    pub registrations: Vec<Registration>,
    /// Section 4, one per enclave killed.
    pub deaths: Vec<Duration>,
    /// The router's heartbeat.
    pub heartbeat: Duration,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Median and largest, ms.
fn median_max(v: &[Duration]) -> (f64, f64) {
    let ms: Vec<f64> = v.iter().map(|d| ms(*d)).collect();
    (quantile(&ms, 0.5), quantile(&ms, 1.0))
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

fn tokens(t: (usize, usize)) -> String {
    if t.0 == t.1 {
        t.0.to_string()
    } else {
        format!("{}-{}", t.0, t.1)
    }
}

/// Prints the table.
pub fn print(t: &Table, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "\n1. router overhead on real answers: routed = Network -> silk-router -> pooled RA-TLS \
         -> enclave; direct = Session -> new RA-TLS connection -> the same enclave"
    )?;
    writeln!(
        out,
        "{:<34} {:>8} {:>7} {:>12} {:>12} {:>13} {:>7}",
        "path", "sessions", "streams", "TTFT p50 ms", "TTFT p99 ms", "decode tok/s", "tokens"
    )?;
    let mut worst_added = f64::MIN;
    let mut worst_ratio = f64::MAX;
    for r in &t.answers {
        for (name, f) in [
            ("direct (Session -> enclave)", &r.direct),
            ("routed (Network -> router)", &r.routed),
        ] {
            writeln!(
                out,
                "{:<34} {:>8} {:>7} {:>12.2} {:>12.2} {:>13.1} {:>7}",
                name,
                r.sessions,
                f.streams,
                f.ttft_p50_ms,
                f.ttft_p99_ms,
                f.decode_tok_s,
                tokens(f.tokens)
            )?;
        }
        let added = r.routed.ttft_p50_ms - r.direct.ttft_p50_ms;
        let ratio = r.routed.decode_tok_s / r.direct.decode_tok_s.max(1e-9);
        worst_added = worst_added.max(added);
        worst_ratio = worst_ratio.min(ratio);
        writeln!(
            out,
            "{:<34} {:>8} {:>7} {:>+12.2} {:>+12.2} {:>12.3}x",
            "routed - direct, routed / direct",
            r.sessions,
            "",
            added,
            r.routed.ttft_p99_ms - r.direct.ttft_p99_ms,
            ratio
        )?;
    }
    if !t.answers.is_empty() {
        // End to end the prefill's noise (several ms at 1 session, tens at 8) hides a
        // sub-millisecond cost; the stub with one client measures the router alone.
        let alone = t
            .stub
            .rows
            .iter()
            .find(|r| r.clients == 1)
            .map(|r| r.routed.p50_ms - r.direct.p50_ms);
        write!(
            out,
            "goal: TTFT p50 added <= 1 ms: end to end {} (at most {:+.2} ms, prefill noise \
             included)",
            verdict(worst_added <= 1.0),
            worst_added
        )?;
        match alone {
            Some(a) => writeln!(
                out,
                "; the router alone (section 2, one client) {} ({a:+.3} ms)",
                verdict(a <= 1.0)
            )?,
            None => writeln!(out)?,
        }
        writeln!(
            out,
            "goal: routed decode >= 0.97x direct: {} (at least {:.3}x)",
            verdict(worst_ratio >= 0.97),
            worst_ratio
        )?;
    }

    let s = &t.stub;
    writeln!(
        out,
        "\n2. router forwarding with a stub worker in this process: clients on keep-alive \
         connections, {} B requests, answers of {} frames x {} B + receipt = {} B",
        s.request_bytes, s.chunks, s.chunk_bytes, s.answer_bytes
    )?;
    writeln!(
        out,
        "{:<44} {:>7} {:>8} {:>9} {:>8} {:>9} {:>9}",
        "path", "clients", "requests", "req/s", "MB/s", "p50 ms", "p99 ms"
    )?;
    for r in &s.rows {
        for (name, f) in [
            ("direct (RA-TLS straight to the stub)", &r.direct),
            ("routed (HTTP -> router -> RA-TLS -> stub)", &r.routed),
        ] {
            writeln!(
                out,
                "{:<44} {:>7} {:>8} {:>9.0} {:>8.1} {:>9.3} {:>9.3}",
                name, r.clients, f.requests, f.req_s, f.mb_s, f.p50_ms, f.p99_ms
            )?;
        }
        writeln!(
            out,
            "{:<44} {:>7} {:>8} {:>8.3}x {:>7.3}x {:>+9.3} {:>+9.3}",
            "routed / direct, latency added by the router",
            r.clients,
            "",
            r.routed.req_s / r.direct.req_s.max(1e-9),
            r.routed.mb_s / r.direct.mb_s.max(1e-9),
            r.routed.p50_ms - r.direct.p50_ms,
            r.routed.p99_ms - r.direct.p99_ms
        )?;
    }
    if let Some((counted, routed)) = s.receipts_counted {
        writeln!(
            out,
            "receipts the router verified and counted: {counted} of {routed} routed answers; \
             RA-TLS connections it opened to the stub meanwhile: {}",
            s.router_connections
        )?;
    }

    let regs = &t.registrations;
    writeln!(
        out,
        "\n3. registration to routable: {} enclave start(s), median / max ms",
        regs.len()
    )?;
    type Pick = fn(&Registration) -> Duration;
    let rows: [(&str, Pick); 6] = [
        ("spawn -> listening (model, keys, evidence)", |r| {
            r.start_to_listening
        }),
        ("spawn -> first registration attempt", |r| {
            r.start_to_attempt
        }),
        ("first attempt -> listed (GET /v1/workers)", |r| {
            r.attempt_to_listed
        }),
        ("first attempt -> sealed answer via router", |r| {
            r.attempt_to_answer
        }),
        ("spawn -> sealed answer via router", |r| r.start_to_answer),
        ("router's share: POST /v1/workers -> 200", |r| {
            r.router_share
        }),
    ];
    for (name, f) in rows {
        let (med, max) = median_max(&regs.iter().map(f).collect::<Vec<_>>());
        writeln!(out, "{name:<44} {med:>9.1} / {max:>9.1}")?;
    }
    let (_, routable) = median_max(&regs.iter().map(|r| r.attempt_to_answer).collect::<Vec<_>>());
    if !regs.is_empty() {
        writeln!(
            out,
            "goal: first attempt -> sealed answer < 2000 ms ({}: at most {routable:.1} ms)",
            verdict(routable < 2000.0)
        )?;
    }

    let hb = ms(t.heartbeat);
    let (med, max) = median_max(&t.deaths);
    writeln!(
        out,
        "\n4. worker death: SIGKILL -> gone from GET /v1/workers (polled every 10 ms), {} kill(s), \
         heartbeat {:.0} ms",
        t.deaths.len(),
        hb
    )?;
    writeln!(
        out,
        "{:<44} {med:>9.1} / {max:>9.1}  = {:.2} / {:.2} heartbeats",
        "SIGKILL -> unlisted, median / max ms",
        med / hb.max(1e-9),
        max / hb.max(1e-9)
    )?;
    if !t.deaths.is_empty() {
        writeln!(
            out,
            "goal: < 2 heartbeats ({}: at most {:.2})",
            verdict(max < 2.0 * hb),
            max / hb.max(1e-9)
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn sample(t: Instant, first_ms: u64, tokens: usize) -> Sample {
        let at = |ms: u64| t + Duration::from_millis(ms);
        Sample {
            start: t,
            first: at(first_ms),
            end: at(first_ms + 10 * tokens as u64),
            tokens,
            arrivals: (0..tokens as u64).map(|k| at(first_ms + 10 * k)).collect(),
        }
    }

    #[test]
    fn figures_come_from_the_samples() {
        let t = Instant::now();
        let rounds = vec![vec![sample(t, 100, 11)], vec![sample(t, 300, 11)]];
        let f = AnswerFigures::from_rounds(&rounds);
        assert_eq!(f.streams, 2);
        assert!((f.ttft_p50_ms - 100.0).abs() < 1e-6);
        assert!((f.ttft_p99_ms - 300.0).abs() < 1e-6);
        assert_eq!(f.tokens, (11, 11));
        let rounds = [
            Round {
                latencies_ms: vec![1.0, 2.0, 3.0],
                bytes: 3_000_000,
                wall: Duration::from_secs(1),
            },
            Round {
                latencies_ms: vec![4.0],
                bytes: 1_000_000,
                wall: Duration::from_secs(1),
            },
        ];
        let l = LoadFigures::from_rounds(&rounds);
        assert_eq!(l.requests, 4);
        assert!((l.req_s - 2.0).abs() < 1e-9);
        assert!((l.mb_s - 2.0).abs() < 1e-9);
        assert_eq!((l.p50_ms, l.p99_ms), (2.0, 4.0));
    }

    fn registration(ms: u64) -> Registration {
        let d = Duration::from_millis(ms);
        Registration {
            start_to_listening: d,
            start_to_attempt: d,
            attempt_to_listed: d,
            attempt_to_answer: d,
            start_to_answer: d,
            router_share: d,
        }
    }

    #[test]
    fn the_table_shows_every_section_with_its_goals() {
        let f = |ttft: f64, rate: f64| AnswerFigures {
            streams: 3,
            ttft_p50_ms: ttft,
            ttft_p99_ms: ttft + 10.0,
            decode_tok_s: rate,
            tokens: (64, 64),
        };
        let l = |req_s: f64, p50: f64| LoadFigures {
            requests: 100,
            req_s,
            mb_s: req_s / 100.0,
            p50_ms: p50,
            p99_ms: p50 * 2.0,
        };
        let t = Table {
            answers: vec![AnswerRow {
                sessions: 8,
                direct: f(100.0, 200.0),
                routed: f(100.5, 190.0),
            }],
            stub: StubFigures {
                request_bytes: 4096,
                chunks: 64,
                chunk_bytes: 256,
                answer_bytes: 17154,
                rows: vec![
                    LoadRow {
                        clients: 1,
                        direct: l(4000.0, 0.25),
                        routed: l(2000.0, 1.5),
                    },
                    LoadRow {
                        clients: 32,
                        direct: l(4000.0, 1.0),
                        routed: l(2000.0, 1.5),
                    },
                ],
                receipts_counted: Some((100, 100)),
                router_connections: 2,
            },
            registrations: vec![registration(100), registration(300)],
            deaths: vec![Duration::from_millis(400), Duration::from_millis(2500)],
            heartbeat: Duration::from_secs(1),
        };
        let mut out = Vec::new();
        print(&t, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let line = |start: &str| {
            text.lines()
                .find(|l| l.starts_with(start))
                .unwrap_or_else(|| panic!("no line `{start}` in\n{text}"))
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            line("routed (Network"),
            "routed (Network -> router) 8 3 100.50 110.50 190.0 64"
        );
        assert_eq!(
            line("routed - direct"),
            "routed - direct, routed / direct 8 +0.50 +0.50 0.950x"
        );
        assert!(line("goal: TTFT").contains("end to end met (at most +0.50 ms"));
        assert!(line("goal: routed decode").ends_with("MISSED (at least 0.950x)"));
        assert!(line("goal: TTFT").ends_with("one client) MISSED (+1.250 ms)"));
        let added: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("routed / direct,"))
            .collect();
        assert_eq!(added.len(), 2, "{text}");
        assert_eq!(
            added[1].split_whitespace().collect::<Vec<_>>().join(" "),
            "routed / direct, latency added by the router 32 0.500x 0.500x +0.500 +1.000"
        );
        assert_eq!(
            line("routed (HTTP"),
            "routed (HTTP -> router -> RA-TLS -> stub) 1 100 2000 20.0 1.500 3.000"
        );
        assert!(line("receipts").contains("100 of 100"));
        assert_eq!(
            line("router's share"),
            "router's share: POST /v1/workers -> 200 100.0 / 300.0"
        );
        assert_eq!(
            line("SIGKILL -> unlisted"),
            "SIGKILL -> unlisted, median / max ms 400.0 / 2500.0 = 0.40 / 2.50 heartbeats"
        );
        assert!(line("goal: < 2 heartbeats").contains("MISSED"));
    }
}
