//! What a payer owes a payee: the receipts it verified, priced by the offers they name.
//!
//! Exact integer arithmetic: every receipt adds `prompt × price_prompt + completion ×
//! price_completion` (nanotons per million tokens, in u128, which cannot overflow for u32
//! counts and u64 prices summed over far more receipts than exist); the total is divided by
//! 10^6 once, **rounded up**, so a payee is never short-changed by rounding and a payer
//! overpays by less than one nanoton per channel.

use std::collections::HashSet;

use silk_protocol::receipt::{Offer, Receipt, SignedOffer, SIGNATURE};

/// Why receipts could not be priced.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TallyError {
    /// A receipt or offer is not readable.
    #[error("tally.format: item {index}: {detail}")]
    Format {
        /// Its position.
        index: usize,
        /// What is wrong.
        detail: String,
    },
    /// The receipt names another offer than the one it is kept with.
    #[error("tally.offer: item {index}: the receipt names offer {named}, it is kept with {kept}")]
    Offer {
        /// Its position.
        index: usize,
        /// The digest the receipt names.
        named: String,
        /// The digest of the offer beside it.
        kept: String,
    },
    /// Two receipts for the same request.
    #[error("tally.duplicate: item {index}: a second receipt for request {request}")]
    Duplicate {
        /// Its position.
        index: usize,
        /// The request digest (hex prefix).
        request: String,
    },
}

/// The sum for one payee.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Owed {
    /// Receipts counted.
    pub receipts: u64,
    /// Their prompt tokens.
    pub prompt_tokens: u64,
    /// Their completion tokens.
    pub completion_tokens: u64,
    /// Nanotons owed (rounded up once, over the total).
    pub amount: u128,
}

/// Prices the receipts served under offers paying `payout`; others are skipped. Each item
/// is signed receipt bytes and the signed offer kept with it.
pub fn owed<'a>(
    items: impl IntoIterator<Item = (&'a [u8], &'a SignedOffer)>,
    payout: &str,
) -> Result<Owed, TallyError> {
    let mut seen = HashSet::new();
    let mut total: u128 = 0;
    let mut out = Owed::default();
    for (index, (signed, offer)) in items.into_iter().enumerate() {
        let format = |detail: String| TallyError::Format { index, detail };
        let body = signed
            .len()
            .checked_sub(SIGNATURE)
            .map(|n| &signed[..n])
            .ok_or_else(|| format("receipt shorter than a signature".into()))?;
        let r = Receipt::decode(body).map_err(|e| format(e.to_string()))?;
        let o = Offer::decode(&offer.body.0).map_err(|e| format(e.to_string()))?;
        if o.payout_address != payout {
            continue;
        }
        if r.offer_digest != offer.digest() {
            return Err(TallyError::Offer {
                index,
                named: hex::encode(r.offer_digest),
                kept: hex::encode(offer.digest()),
            });
        }
        if !seen.insert(r.request_digest) {
            return Err(TallyError::Duplicate {
                index,
                request: hex::encode(&r.request_digest[..8]),
            });
        }
        total += u128::from(r.prompt_tokens) * u128::from(o.price_prompt)
            + u128::from(r.completion_tokens) * u128::from(o.price_completion);
        out.receipts += 1;
        out.prompt_tokens += u64::from(r.prompt_tokens);
        out.completion_tokens += u64::from(r.completion_tokens);
    }
    out.amount = total.div_ceil(1_000_000);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use silk_protocol::receipt::SigningKeyPair;

    fn offer(payout: &str, prompt: u64, completion: u64) -> SignedOffer {
        Offer {
            worker_id: [1; 32],
            model: "m".into(),
            price_prompt: prompt,
            price_completion: completion,
            payout_address: payout.into(),
            expires_at: u64::MAX,
        }
        .sign(&SigningKeyPair::from_seed(&[2; 32]))
        .unwrap()
    }

    fn receipt(offer: &SignedOffer, request: u8, prompt: u32, completion: u32) -> Vec<u8> {
        Receipt {
            worker_id: [1; 32],
            request_digest: [request; 32],
            model: "m".into(),
            prompt_tokens: prompt,
            completion_tokens: completion,
            offer_digest: offer.digest(),
            started_at_ms: 0,
            ended_at_ms: 0,
            counter: u64::from(request),
        }
        .sign(&SigningKeyPair::from_seed(&[2; 32]))
        .unwrap()
    }

    #[test]
    fn sums_exactly_and_rounds_up_once() {
        let a = offer("EQa", 333, 1_000_001);
        let b = offer("EQb", 5, 5);
        let items = [
            (receipt(&a, 1, 3, 7), &a),
            (receipt(&a, 2, 1, 1), &a),
            (receipt(&b, 3, 100, 100), &b),
        ];
        let got = owed(items.iter().map(|(r, o)| (r.as_slice(), *o)), "EQa").unwrap();
        // (3×333 + 7×1,000,001 + 1×333 + 1×1,000,001) / 10^6 = 8,001,340 / 10^6 → 9
        assert_eq!(
            got,
            Owed {
                receipts: 2,
                prompt_tokens: 4,
                completion_tokens: 8,
                amount: 9
            }
        );
    }

    #[test]
    fn refuses_duplicates_and_foreign_offers() {
        let a = offer("EQa", 1, 1);
        let other = offer("EQa", 2, 2);
        let r = receipt(&a, 1, 1, 1);
        let dup = [(r.clone(), &a), (r.clone(), &a)];
        assert!(matches!(
            owed(dup.iter().map(|(r, o)| (r.as_slice(), *o)), "EQa"),
            Err(TallyError::Duplicate { index: 1, .. })
        ));
        let swapped = [(r, &other)];
        assert!(matches!(
            owed(swapped.iter().map(|(r, o)| (r.as_slice(), *o)), "EQa"),
            Err(TallyError::Offer { index: 0, .. })
        ));
    }
}
