//! Choosing the next token from logits, with the controls OpenAI clients send.
//!
//! The order of the steps is llama.cpp's default chain — penalties, top-k, top-p, min-p,
//! temperature, then a draw — so that the same settings behave the same in both. A
//! temperature of zero is greedy decoding. With a seed, the same prompt and settings give
//! the same tokens. `logit_bias` is added to the logits before all of it.
//!
//! Beside the sampler: [`logprobs`] (what OpenAI's `logprobs` report) and [`json`] (the
//! mask that keeps an answer a JSON object).

pub mod json;
pub mod logprobs;

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};

/// Sampling controls of one request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SamplingParams {
    /// Softmax temperature; 0 picks the most likely token.
    pub temperature: f32,
    /// Keep the smallest set of tokens whose probability adds up to this (1 = off).
    pub top_p: f32,
    /// Keep this many most likely tokens (0 = off).
    pub top_k: usize,
    /// Drop tokens less likely than this fraction of the most likely one (0 = off).
    pub min_p: f32,
    /// Divide positive (multiply negative) logits of recent tokens by this (1 = off).
    pub repetition_penalty: f32,
    /// Subtract this times a recent token's count from its logit (OpenAI semantics).
    pub frequency_penalty: f32,
    /// Subtract this from the logit of any recent token (OpenAI semantics).
    pub presence_penalty: f32,
    /// How many recent tokens (prompt and answer) the penalties look at.
    pub penalty_last_n: usize,
    /// Seed for the draw; without one the engine picks a random seed.
    pub seed: Option<u64>,
    /// Added to the logit of each token id before anything else (OpenAI's `logit_bias`);
    /// -100 or less bans the token.
    pub logit_bias: BTreeMap<u32, f32>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            penalty_last_n: 64,
            seed: None,
            logit_bias: BTreeMap::new(),
        }
    }
}

/// A generation control out of range.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("parameter `{name}` {problem}")]
pub struct ParamError {
    /// The parameter (OpenAI's name for it).
    pub name: &'static str,
    /// What is wrong with its value.
    pub problem: String,
}

/// Bias at or below which `logit_bias` bans a token (OpenAI: "-100 should result in a ban").
pub const BAN_BIAS: f32 = -100.0;

impl SamplingParams {
    /// Greedy decoding.
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            ..Self::default()
        }
    }

    /// Checks every control is finite and in range.
    pub fn validate(&self) -> Result<(), ParamError> {
        let check = |name, value: f32, ok: bool, range: &str| {
            if value.is_finite() && ok {
                Ok(())
            } else {
                Err(ParamError {
                    name,
                    problem: format!("= {value} is out of range ({range})"),
                })
            }
        };
        check(
            "temperature",
            self.temperature,
            self.temperature >= 0.0,
            ">= 0",
        )?;
        check(
            "top_p",
            self.top_p,
            self.top_p > 0.0 && self.top_p <= 1.0,
            "(0, 1]",
        )?;
        check(
            "min_p",
            self.min_p,
            (0.0..=1.0).contains(&self.min_p),
            "[0, 1]",
        )?;
        check(
            "repetition_penalty",
            self.repetition_penalty,
            self.repetition_penalty > 0.0,
            "> 0",
        )?;
        check(
            "frequency_penalty",
            self.frequency_penalty,
            (-2.0..=2.0).contains(&self.frequency_penalty),
            "[-2, 2]",
        )?;
        check(
            "presence_penalty",
            self.presence_penalty,
            (-2.0..=2.0).contains(&self.presence_penalty),
            "[-2, 2]",
        )?;
        for &bias in self.logit_bias.values() {
            check(
                "logit_bias",
                bias,
                (-100.0..=100.0).contains(&bias),
                "[-100, 100]",
            )?;
        }
        Ok(())
    }
}

/// Draws tokens for one sequence.
pub struct Sampler {
    params: SamplingParams,
    rng: ChaCha20Rng,
}

impl Sampler {
    /// A sampler for validated `params`.
    pub fn new(params: SamplingParams) -> Self {
        let seed = params.seed.unwrap_or_else(|| rand::thread_rng().gen());
        Self {
            rng: ChaCha20Rng::seed_from_u64(seed),
            params,
        }
    }

    /// The controls in use.
    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// Picks the next token. `logits` is modified; `history` is every token so far
    /// (prompt and answer), of which the last `penalty_last_n` are penalised. A logit of
    /// minus infinity (a banned or masked token) is never picked while any other is finite.
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> u32 {
        let p = &self.params;
        for (&id, &bias) in &p.logit_bias {
            if let Some(l) = logits.get_mut(id as usize) {
                *l = if bias <= BAN_BIAS {
                    f32::NEG_INFINITY
                } else {
                    *l + bias
                };
            }
        }
        self.penalise(logits, history);
        if p.temperature == 0.0 {
            return argmax(logits);
        }
        // Impossible tokens leave now: a rounding remainder of the draw below falls to
        // the last candidate, which must not be one of them.
        let mut cand: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .filter(|(_, &l)| l > f32::NEG_INFINITY)
            .map(|(i, &l)| (i as u32, l))
            .collect();
        cand.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
        if p.top_k > 0 && p.top_k < cand.len() {
            cand.truncate(p.top_k);
        }
        if p.top_p < 1.0 {
            let probs = softmax(&cand, 1.0);
            let mut sum = 0.0;
            let keep = probs
                .iter()
                .position(|&pr| {
                    sum += pr;
                    sum >= p.top_p
                })
                .map_or(cand.len(), |i| i + 1);
            cand.truncate(keep.max(1));
        }
        if p.min_p > 0.0 && !cand.is_empty() {
            // On logits: p_i >= min_p * p_max  <=>  l_i >= l_max + ln(min_p).
            let floor = cand[0].1 + p.min_p.ln();
            let keep = cand.iter().take_while(|c| c.1 >= floor).count();
            cand.truncate(keep.max(1));
        }
        let probs = softmax(&cand, p.temperature);
        let mut r: f32 = self.rng.gen();
        for (c, pr) in cand.iter().zip(&probs) {
            if r < *pr {
                return c.0;
            }
            r -= pr;
        }
        cand.last().map_or_else(|| argmax(logits), |c| c.0)
    }

    fn penalise(&self, logits: &mut [f32], history: &[u32]) {
        let p = &self.params;
        if p.repetition_penalty == 1.0 && p.frequency_penalty == 0.0 && p.presence_penalty == 0.0 {
            return;
        }
        let window = &history[history.len().saturating_sub(p.penalty_last_n)..];
        let mut counts: std::collections::HashMap<u32, u32> = std::collections::HashMap::new();
        for &t in window {
            *counts.entry(t).or_default() += 1;
        }
        for (&t, &c) in &counts {
            let Some(l) = logits.get_mut(t as usize) else {
                continue;
            };
            if *l <= 0.0 {
                *l *= p.repetition_penalty;
            } else {
                *l /= p.repetition_penalty;
            }
            *l -= c as f32 * p.frequency_penalty + p.presence_penalty;
        }
    }
}

/// Index of the largest value (the first one on ties); NaNs never win.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &v) in logits.iter().enumerate() {
        if v > best_v {
            best = i;
            best_v = v;
        }
    }
    best as u32
}

fn softmax(cand: &[(u32, f32)], temperature: f32) -> Vec<f32> {
    let max = cand.iter().map(|c| c.1).fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = cand
        .iter()
        .map(|c| ((c.1 - max) / temperature).exp())
        .collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits() -> Vec<f32> {
        vec![1.0, 3.0, 2.0, -1.0, 2.5]
    }

    #[test]
    fn zero_temperature_is_greedy() {
        let mut s = Sampler::new(SamplingParams::greedy());
        assert_eq!(s.sample(&mut logits(), &[]), 1);
    }

    #[test]
    fn same_seed_same_tokens() {
        let params = SamplingParams {
            seed: Some(42),
            ..SamplingParams::default()
        };
        let draw = |params: &SamplingParams| {
            let mut s = Sampler::new(params.clone());
            (0..50)
                .map(|_| s.sample(&mut logits(), &[]))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(&params), draw(&params));
        let other = SamplingParams {
            seed: Some(43),
            ..params.clone()
        };
        assert_ne!(draw(&params), draw(&other));
    }

    #[test]
    fn top_k_one_is_greedy() {
        let mut s = Sampler::new(SamplingParams {
            top_k: 1,
            seed: Some(1),
            ..SamplingParams::default()
        });
        for _ in 0..20 {
            assert_eq!(s.sample(&mut logits(), &[]), 1);
        }
    }

    #[test]
    fn top_p_and_min_p_cut_the_tail() {
        let mut s = Sampler::new(SamplingParams {
            top_p: 0.5,
            seed: Some(3),
            ..SamplingParams::default()
        });
        for _ in 0..50 {
            assert!([1, 4].contains(&s.sample(&mut logits(), &[])));
        }
        let mut s = Sampler::new(SamplingParams {
            min_p: 0.5,
            seed: Some(3),
            ..SamplingParams::default()
        });
        // p(4)/p(1) = e^-0.5 ≈ 0.61 stays; p(2)/p(1) = e^-1 ≈ 0.37 goes.
        for _ in 0..50 {
            assert!([1, 4].contains(&s.sample(&mut logits(), &[])));
        }
    }

    #[test]
    fn penalties_follow_llama_cpp() {
        let s = Sampler::new(SamplingParams {
            repetition_penalty: 2.0,
            frequency_penalty: 0.5,
            presence_penalty: 0.25,
            ..SamplingParams::greedy()
        });
        let mut l = logits();
        s.penalise(&mut l, &[1, 1, 3]);
        assert_eq!(l[1], 3.0 / 2.0 - 2.0 * 0.5 - 0.25);
        assert_eq!(l[3], -2.0 - 0.5 - 0.25); // -1 * 2: negative logits are multiplied
        assert_eq!(l[0], 1.0);
    }

    #[test]
    fn logit_bias_steers_and_bans() {
        let bias = |pairs: &[(u32, f32)], temperature| SamplingParams {
            logit_bias: pairs.iter().copied().collect(),
            temperature,
            seed: Some(5),
            ..SamplingParams::default()
        };
        let mut s = Sampler::new(bias(&[(0, 5.0)], 0.0));
        assert_eq!(s.sample(&mut logits(), &[]), 0, "1 + 5 beats 3");
        // Banning the best leaves the next; banning all but one leaves only it, greedy or not.
        let mut s = Sampler::new(bias(&[(1, -100.0)], 0.0));
        assert_eq!(s.sample(&mut logits(), &[]), 4);
        let all_but_3 = [(0, -100.0), (1, -100.0), (2, -100.0), (4, -100.0)];
        let mut s = Sampler::new(bias(&all_but_3, 1.0));
        for _ in 0..50 {
            assert_eq!(s.sample(&mut logits(), &[]), 3);
        }
        let bad = bias(&[(0, 101.0)], 1.0);
        assert_eq!(bad.validate().unwrap_err().name, "logit_bias");
        // Ids beyond the logits are ignored here (the engine refuses them at submit).
        let mut s = Sampler::new(bias(&[(99, 100.0)], 0.0));
        assert_eq!(s.sample(&mut logits(), &[]), 1);
    }

    #[test]
    fn out_of_range_params_are_named() {
        let bad = SamplingParams {
            top_p: 0.0,
            ..SamplingParams::default()
        };
        assert_eq!(bad.validate().unwrap_err().name, "top_p");
        let bad = SamplingParams {
            temperature: f32::NAN,
            ..SamplingParams::default()
        };
        assert_eq!(bad.validate().unwrap_err().name, "temperature");
        assert!(SamplingParams::default().validate().is_ok());
    }
}
