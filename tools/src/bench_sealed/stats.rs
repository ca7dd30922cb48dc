//! Timings of the sealed benchmark's streams and what they add up to.

use std::time::Instant;

/// One stream's timings.
#[derive(Clone, Debug)]
pub struct Sample {
    /// When its request was sent.
    pub start: Instant,
    /// When its first non-empty text arrived.
    pub first: Instant,
    /// When it ended.
    pub end: Instant,
    /// Completion tokens, from the answer's usage.
    pub tokens: usize,
    /// When each non-empty text event arrived (about one per token).
    pub arrivals: Vec<Instant>,
}

/// One path's figures at one concurrency.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    /// Median over rounds of the aggregate decode rate (tokens/s after first tokens).
    pub decode_tok_s: f64,
    /// Median over rounds of all tokens over the round's wall time (prefill included).
    pub e2e_tok_s: f64,
    /// Time to first token, milliseconds: median over every stream of every round.
    pub ttft_p50_ms: f64,
    /// The same, 90th percentile.
    pub ttft_p90_ms: f64,
    /// Fewest and most tokens one answer had.
    pub tokens: (usize, usize),
}

/// The `p` quantile (0..=1) of `v` by nearest rank; 0 when empty.
pub fn quantile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = (p * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

/// Text events per second while every stream of `round` was decoding: after the latest
/// first token, up to the earliest last event. `None` when that window is empty.
pub fn steady_decode_rate(round: &[Sample]) -> Option<f64> {
    let from = round.iter().map(|s| s.first).max()?;
    let to = round
        .iter()
        .map(|s| s.arrivals.last().copied().unwrap_or(s.first))
        .min()?;
    if to <= from {
        return None;
    }
    let events: usize = round
        .iter()
        .map(|s| s.arrivals.iter().filter(|&&t| t > from && t <= to).count())
        .sum();
    Some(events as f64 / (to - from).as_secs_f64())
}

/// Summarises rounds of samples.
pub fn figures(rounds: &[Vec<Sample>]) -> Figures {
    let mut decode = Vec::new();
    let mut e2e = Vec::new();
    let mut ttft = Vec::new();
    let mut tokens = (usize::MAX, 0);
    for round in rounds {
        let (Some(start), Some(first), Some(end)) = (
            round.iter().map(|s| s.start).min(),
            round.iter().map(|s| s.first).min(),
            round.iter().map(|s| s.end).max(),
        ) else {
            continue;
        };
        let total: usize = round.iter().map(|s| s.tokens).sum();
        decode.push(steady_decode_rate(round).unwrap_or_else(|| {
            // The streams never all decoded together: tokens after the first over the span.
            let after_first: usize = round.iter().map(|s| s.tokens.saturating_sub(1)).sum();
            after_first as f64 / (end - first).as_secs_f64().max(1e-9)
        }));
        e2e.push(total as f64 / (end - start).as_secs_f64().max(1e-9));
        for s in round {
            ttft.push((s.first - s.start).as_secs_f64() * 1e3);
            tokens = (tokens.0.min(s.tokens), tokens.1.max(s.tokens));
        }
    }
    Figures {
        decode_tok_s: quantile(&decode, 0.5),
        e2e_tok_s: quantile(&e2e, 0.5),
        ttft_p50_ms: quantile(&ttft, 0.5),
        ttft_p90_ms: quantile(&ttft, 0.9),
        tokens: if tokens.0 == usize::MAX {
            (0, 0)
        } else {
            tokens
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn later(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let v = [5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(quantile(&v, 0.5), 3.0);
        assert_eq!(quantile(&v, 0.9), 5.0);
        assert_eq!(quantile(&v, 0.0), 1.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }

    #[test]
    fn round_rates_count_steady_decoding_and_wall_time() {
        let t = Instant::now();
        let s = |first, end, tokens| Sample {
            start: t,
            first: later(t, first),
            end: later(t, end),
            tokens,
            arrivals: (0..tokens as u64)
                .map(|k| later(t, first + k * (end - first) / (tokens as u64 - 1)))
                .collect(),
        };
        // Two streams: first tokens at 100 and 200 ms, ends at 1100 ms, 11 tokens each.
        // Both decode from 200 to 1100 ms: 9 + 10 events in 0.9 s.
        let f = figures(&[vec![s(100, 1100, 11), s(200, 1100, 11)]]);
        assert!(
            (f.decode_tok_s - 19.0 / 0.9).abs() < 1e-6,
            "{}",
            f.decode_tok_s
        );
        assert!((f.e2e_tok_s - 20.0).abs() < 1e-6, "{}", f.e2e_tok_s);
        assert!((f.ttft_p50_ms - 100.0).abs() < 1e-6);
        assert!((f.ttft_p90_ms - 200.0).abs() < 1e-6);
        assert_eq!(f.tokens, (11, 11));
    }

    #[test]
    fn streams_that_never_overlap_fall_back_to_the_whole_span() {
        let t = Instant::now();
        let one = |first: u64, end: u64| Sample {
            start: t,
            first: later(t, first),
            end: later(t, end),
            tokens: 2,
            arrivals: vec![later(t, first), later(t, end)],
        };
        let round = [one(0, 100), one(200, 300)];
        assert!(steady_decode_rate(&round).is_none());
        // Two tokens after the first ones, between 0 and 300 ms.
        let f = figures(&[round.to_vec()]);
        assert!(
            (f.decode_tok_s - 2.0 / 0.3).abs() < 1e-6,
            "{}",
            f.decode_tok_s
        );
    }
}
