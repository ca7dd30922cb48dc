//! Payment-channel promises: what a payer signs off-chain and a payee presents on chain.
//!
//! A promise is the TON cell `channel_id:uint256 seqno:uint64 amount:Coins` (the
//! cumulative amount owed, in nanotons; `Coins` is TL-B's `VarUInteger 16`). The payer signs
//! the cell's representation hash with Ed25519 (RFC 8032), as the channel contract checks
//! with `check_signature(cell_hash, signature, payer_key)`. Cells, their hashes and bags of
//! cells come from `tonlib-core`; nothing here serialises TON data by hand.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use num_bigint::BigUint;
use tonlib_core::cell::{BagOfCells, Cell, CellBuilder};

/// The most nanotons a `Coins` field holds (15 bytes of value).
pub const MAX_COINS: u128 = (1u128 << 120) - 1;

/// Why a promise could not be built, read or accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PromiseError {
    /// The amount does not fit a `Coins` field.
    #[error("promise.amount: {0} nanotons do not fit a Coins field")]
    Amount(u128),
    /// The cell could not be built or parsed.
    #[error("promise.format: {0}")]
    Format(String),
    /// The signature does not verify under the payer's key.
    #[error("promise.signature: the signature does not verify under the payer's key")]
    Signature,
}

/// A promise: the payer owes `amount` nanotons in total on `channel_id`, as of `seqno`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Promise {
    /// The channel (as its contract stores it).
    #[serde(with = "crate::hex_array")]
    pub channel_id: [u8; 32],
    /// Rises with every promise; the contract keeps the highest shown.
    pub seqno: u64,
    /// Cumulative nanotons owed.
    pub amount: u128,
}

fn fmt(e: impl std::fmt::Display) -> PromiseError {
    PromiseError::Format(e.to_string())
}

impl Promise {
    /// The promise as a TON cell.
    pub fn to_cell(&self) -> Result<Cell, PromiseError> {
        if self.amount > MAX_COINS {
            return Err(PromiseError::Amount(self.amount));
        }
        CellBuilder::new()
            .store_uint(256, &BigUint::from_bytes_be(&self.channel_id))
            .and_then(|b| b.store_u64(64, self.seqno))
            .and_then(|b| b.store_coins(&BigUint::from(self.amount)))
            .and_then(|b| b.build())
            .map_err(fmt)
    }

    /// The cell's representation hash: what the payer signs.
    pub fn hash(&self) -> Result<[u8; 32], PromiseError> {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.to_cell()?.cell_hash().as_slice());
        Ok(out)
    }

    /// Reads a promise cell back (strictly: nothing may follow the amount).
    pub fn from_cell(cell: &Cell) -> Result<Self, PromiseError> {
        let mut p = cell.parser();
        let channel = p.load_uint(256).map_err(fmt)?;
        let seqno = p.load_u64(64).map_err(fmt)?;
        let amount = p.load_coins().map_err(fmt)?;
        if p.remaining_bits() != 0 || !cell.references().is_empty() {
            return Err(PromiseError::Format("data after the amount".into()));
        }
        let mut channel_id = [0u8; 32];
        let bytes = channel.to_bytes_be();
        if bytes.len() > 32 {
            return Err(PromiseError::Format("channel id over 256 bits".into()));
        }
        channel_id[32 - bytes.len()..].copy_from_slice(&bytes);
        let amount = u128::try_from(amount).map_err(|_| PromiseError::Format("amount".into()))?;
        Ok(Self {
            channel_id,
            seqno,
            amount,
        })
    }

    /// Signs the promise with the payer's key.
    pub fn sign(&self, payer: &SigningKey) -> Result<SignedPromise, PromiseError> {
        let sig = payer.sign(&self.hash()?);
        Ok(SignedPromise {
            promise: *self,
            signature: sig.to_bytes(),
        })
    }
}

/// A promise and the payer's signature over its cell hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SignedPromise {
    /// The promise.
    pub promise: Promise,
    /// Ed25519 over [`Promise::hash`].
    #[serde(with = "crate::hex_array")]
    pub signature: [u8; 64],
}

impl SignedPromise {
    /// Checks the signature under the payer's public key.
    pub fn verify(&self, payer_key: &[u8; 32]) -> Result<(), PromiseError> {
        let key = VerifyingKey::from_bytes(payer_key).map_err(|_| PromiseError::Signature)?;
        key.verify_strict(
            &self.promise.hash()?,
            &Signature::from_bytes(&self.signature),
        )
        .map_err(|_| PromiseError::Signature)
    }

    /// The bag of cells a payee sends: a cell holding the 512-bit signature with the
    /// promise cell as its reference.
    pub fn to_boc(&self) -> Result<Vec<u8>, PromiseError> {
        let promise = self.promise.to_cell()?;
        let cell = CellBuilder::new()
            .store_slice(&self.signature)
            .and_then(|b| b.store_child(promise))
            .and_then(|b| b.build())
            .map_err(fmt)?;
        BagOfCells::from_root(cell).serialize(true).map_err(fmt)
    }

    /// Reads [`SignedPromise::to_boc`]'s bytes.
    pub fn from_boc(bytes: &[u8]) -> Result<Self, PromiseError> {
        let root = BagOfCells::parse(bytes)
            .and_then(|b| b.single_root())
            .map_err(fmt)?;
        let mut p = root.parser();
        let mut signature = [0u8; 64];
        p.load_slice(&mut signature).map_err(fmt)?;
        if p.remaining_bits() != 0 || root.references().len() != 1 {
            return Err(PromiseError::Format(
                "a signed promise is 512 bits and one reference".into(),
            ));
        }
        Ok(Self {
            promise: Promise::from_cell(&root.references()[0])?,
            signature,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    fn promise() -> Promise {
        Promise {
            channel_id: [0xab; 32],
            seqno: 3,
            amount: 1_234_567_890,
        }
    }

    #[test]
    fn cell_layout_is_the_contracts() {
        let cell = promise().to_cell().unwrap();
        // 256 + 64 bits, then Coins: a 4-bit byte length (4: 1_234_567_890 < 2^32) and
        // the value in that many bytes.
        assert_eq!(cell.bit_len(), 256 + 64 + 4 + 32);
        assert_eq!(Promise::from_cell(&cell).unwrap(), promise());
    }

    #[test]
    fn signed_promises_verify_round_trip_and_every_bit_matters() {
        let signed = promise().sign(&key()).unwrap();
        let pk = key().verifying_key().to_bytes();
        signed.verify(&pk).unwrap();
        let boc = signed.to_boc().unwrap();
        assert_eq!(SignedPromise::from_boc(&boc).unwrap(), signed);
        for bit in 0..(256 + 64 + 128) {
            let mut p = signed;
            match bit {
                0..=255 => p.promise.channel_id[bit / 8] ^= 0x80 >> (bit % 8),
                256..=319 => p.promise.seqno ^= 1 << (bit - 256),
                _ => p.promise.amount ^= 1 << (bit - 320),
            }
            assert!(
                p.promise.amount > MAX_COINS || p.verify(&pk).is_err(),
                "bit {bit}"
            );
        }
        for bit in 0..512 {
            let mut p = signed;
            p.signature[bit / 8] ^= 0x80 >> (bit % 8);
            assert_eq!(p.verify(&pk), Err(PromiseError::Signature), "bit {bit}");
        }
    }

    #[test]
    fn amounts_over_coins_are_refused() {
        let mut p = promise();
        p.amount = MAX_COINS + 1;
        assert_eq!(
            p.to_cell().unwrap_err(),
            PromiseError::Amount(MAX_COINS + 1)
        );
    }
}
