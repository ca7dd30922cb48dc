//! Log-probabilities of tokens, as OpenAI's `logprobs` report them.
//!
//! They are the model's own distribution: the log-softmax of the raw logits, before
//! penalties, `logit_bias`, a JSON mask, top-k/top-p/min-p and temperature. That is what
//! OpenAI reports (its logprobs do not change with temperature), and it makes a logprob a
//! property of the model and the text, not of the sampling settings. A token the sampler
//! was steered to can therefore show a low logprob.

/// Most alternatives a request may ask for (OpenAI's `top_logprobs` limit).
pub const MAX_TOP_LOGPROBS: usize = 20;

/// One token with its log-probability.
#[derive(Clone, Debug, PartialEq)]
pub struct Scored {
    /// The token id.
    pub id: u32,
    /// The bytes it prints (see [`crate::tokenizer::Tokenizer::token_bytes`]); may be part
    /// of a UTF-8 character.
    pub bytes: Vec<u8>,
    /// Natural log of its probability under the model.
    pub logprob: f32,
}

/// A generated token's log-probability and the most likely tokens at its position.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenLogprob {
    /// The token generated.
    pub token: Scored,
    /// The most likely tokens at this position, most likely first (as many as asked).
    pub top: Vec<Scored>,
    /// Characters of answer text before this token's text.
    pub text_offset: usize,
}

/// The log-softmax of one row of logits, kept as its normaliser and its best entries.
#[derive(Clone, Debug, PartialEq)]
pub struct Distribution {
    /// `ln Σ exp(logit)`, over the finite logits.
    log_norm: f64,
    /// The `n` most likely ids with their logprobs, most likely first (ties: lower id).
    top: Vec<(u32, f32)>,
}

impl Distribution {
    /// The distribution of `logits` with its `n` most likely tokens. NaN logits count as
    /// impossible.
    pub fn new(logits: &[f32], n: usize) -> Self {
        let max = logits
            .iter()
            .copied()
            .filter(|l| !l.is_nan())
            .fold(f32::NEG_INFINITY, f32::max);
        // Each term in f32 (its own rounding is far below what a logprob shows), the sum in
        // f64: a 50 000-term sum in f32 loses the small terms' digits.
        let sum: f64 = if max == f32::NEG_INFINITY {
            0.0
        } else {
            logits
                .iter()
                .filter(|l| !l.is_nan())
                .map(|&l| f64::from((l - max).exp()))
                .sum()
        };
        let log_norm = f64::from(max) + sum.ln();
        // The n best by one pass with a small sorted buffer: O(vocab * n), n <= 20.
        let mut best: Vec<(u32, f32)> = Vec::with_capacity(n + 1);
        if n > 0 {
            for (i, &l) in logits.iter().enumerate() {
                if l.is_nan() || (best.len() == n && l <= best[n - 1].1) {
                    continue;
                }
                let at = best.partition_point(|b| b.1 >= l);
                best.insert(at, (i as u32, l));
                best.truncate(n);
            }
        }
        let top = best
            .into_iter()
            .map(|(i, l)| (i, (f64::from(l) - log_norm) as f32))
            .collect();
        Self { log_norm, top }
    }

    /// The logprob of a token whose raw logit is `logit`.
    pub fn logprob(&self, logit: f32) -> f32 {
        if logit.is_nan() {
            return f32::NEG_INFINITY;
        }
        (f64::from(logit) - self.log_norm) as f32
    }

    /// The most likely tokens with their logprobs, most likely first.
    pub fn top(&self) -> &[(u32, f32)] {
        &self.top
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logprobs_are_the_log_softmax() {
        let logits = [1.0f32, 3.0, 2.0, -1.0, 2.5, f32::NEG_INFINITY, f32::NAN];
        let d = Distribution::new(&logits, 3);
        let total: f64 = logits.iter().map(|&l| f64::from(d.logprob(l)).exp()).sum();
        assert!((total - 1.0).abs() < 1e-6, "{total}");
        let naive = |l: f32| {
            let z: f32 = [1.0f32, 3.0, 2.0, -1.0, 2.5].iter().map(|x| x.exp()).sum();
            (l.exp() / z).ln()
        };
        assert!((d.logprob(3.0) - naive(3.0)).abs() < 1e-6);
        let ids: Vec<u32> = d.top().iter().map(|t| t.0).collect();
        assert_eq!(ids, vec![1, 4, 2]);
        assert!((d.top()[1].1 - naive(2.5)).abs() < 1e-6);
        assert_eq!(d.logprob(f32::NEG_INFINITY), f32::NEG_INFINITY);
    }

    #[test]
    fn large_logits_and_ties_are_handled() {
        // exp(1000) overflows f32 and f64: the maximum is subtracted first.
        let d = Distribution::new(&[1000.0, 1000.0, 0.0], 2);
        assert!((d.logprob(1000.0) - 0.5f32.ln()).abs() < 1e-6);
        assert_eq!(d.top().iter().map(|t| t.0).collect::<Vec<_>>(), vec![0, 1]);
        assert!(Distribution::new(&[1.0, 2.0], 0).top().is_empty());
        assert_eq!(Distribution::new(&[1.0, 2.0], 5).top().len(), 2);
    }
}
