//! The payment channel's contract as the Rust side sees it: its initial data (and so its
//! address), and the body of every message it accepts.
//!
//! Layouts are those of `ledger/ton/contracts/channel.tolk` (byte for byte in
//! `ledger/ton/README.md`); the sandbox tests execute what this module builds
//! (`ledger/ton/fixtures/channel-flow-rust/`). Cells come from `tonlib-core`.

use std::sync::Arc;

use num_bigint::BigUint;
use sha2::{Digest, Sha256};
use tonlib_core::cell::{BagOfCells, Cell, CellBuilder};
use tonlib_core::tlb_types::block::state_init::StateInit;
use tonlib_core::tlb_types::tlb::TLB;
use tonlib_core::TonAddress;

use crate::promise::{PromiseError, SignedPromise, MAX_COINS};

/// The channel contract's compiled code, kept fresh by `ledger/ton/tests/code.spec.ts`
/// (which compiles `channel.tolk` and compares hashes): the address a deploy goes to is
/// derived from it.
pub const CHANNEL_CODE_BOC: &[u8] = include_bytes!("../ton/build/channel.code.boc");

/// Op codes (32 bits, "sil" + a number).
pub mod op {
    /// Deposit (payer).
    pub const DEPOSIT: u32 = 0x7369_6c01;
    /// Close with a promise (payee).
    pub const PAYEE_CLOSE: u32 = 0x7369_6c02;
    /// Start a close after the expiry (payer).
    pub const PAYER_START_CLOSE: u32 = 0x7369_6c03;
    /// Show a newer promise during the dispute window (payee).
    pub const DISPUTE: u32 = 0x7369_6c04;
    /// Settle after the dispute window (anyone).
    pub const FINISH: u32 = 0x7369_6c05;
}

/// Nanotons a deposit must carry on top of its amount: the contract's own gas and storage
/// (returned to the payer at the end).
pub const DEPOSIT_GAS: u128 = 10_000_000;

/// Everything that fixes a channel: its initial data, hence its address.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChannelParams {
    /// The id every promise names (unique per payer key).
    #[serde(with = "crate::hex_array")]
    pub channel_id: [u8; 32],
    /// Who deposits and receives the remainder.
    #[serde(with = "address")]
    pub payer: TonAddress,
    /// The payer's Ed25519 public key: promises are signed with it.
    #[serde(with = "crate::hex_array")]
    pub payer_key: [u8; 32],
    /// Who is paid (the worker owner's payout address).
    #[serde(with = "address")]
    pub payee: TonAddress,
    /// Seconds the payee has to answer a payer's close with a newer promise.
    pub dispute_window: u32,
    /// Unix time before which the payer cannot start a close.
    pub expiry: u32,
}

/// Why a channel message could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChannelError {
    /// A cell could not be built or the code could not be read.
    #[error("channel.format: {0}")]
    Format(String),
    /// An amount does not fit a `Coins` field.
    #[error("channel.amount: {0} nanotons do not fit a Coins field")]
    Amount(u128),
    /// A promise could not be encoded.
    #[error(transparent)]
    Promise(#[from] PromiseError),
}

fn fmt(e: impl std::fmt::Display) -> ChannelError {
    ChannelError::Format(e.to_string())
}

fn coins(v: u128) -> Result<BigUint, ChannelError> {
    if v > MAX_COINS {
        return Err(ChannelError::Amount(v));
    }
    Ok(BigUint::from(v))
}

/// The channel contract's code cell.
pub fn code() -> Result<Cell, ChannelError> {
    BagOfCells::parse(CHANNEL_CODE_BOC)
        .and_then(|b| b.single_root())
        .map(|c| (*c).clone())
        .map_err(fmt)
}

impl ChannelParams {
    /// A channel id written as 64 hex digits.
    pub fn parse_id(text: &str) -> Option<[u8; 32]> {
        hex::decode(text).ok()?.try_into().ok()
    }

    /// A channel id for a payer key, a payee and a nonce the payer picks: SHA-256 of the
    /// key, the payee's account hash and the nonce, so two channels of one payer never
    /// share an id (a promise names its channel only by this id).
    pub fn derive_id(payer_key: &[u8; 32], payee: &TonAddress, nonce: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(payer_key);
        h.update(payee.hash_part.as_slice());
        h.update(nonce);
        h.finalize().into()
    }

    /// The contract's initial data: the parties, nothing deposited, open, no promise shown.
    pub fn data_cell(&self) -> Result<Cell, ChannelError> {
        let parties = CellBuilder::new()
            .store_address(&self.payer)
            .and_then(|b| b.store_slice(&self.payer_key))
            .and_then(|b| b.store_address(&self.payee))
            .and_then(|b| b.build())
            .map_err(fmt)?;
        CellBuilder::new()
            .store_uint(256, &BigUint::from_bytes_be(&self.channel_id))
            .and_then(|b| b.store_coins(&BigUint::from(0u8)))
            .and_then(|b| b.store_u32(32, self.dispute_window))
            .and_then(|b| b.store_u32(32, self.expiry))
            .and_then(|b| b.store_u8(8, 0))
            .and_then(|b| b.store_u64(64, 0))
            .and_then(|b| b.store_coins(&BigUint::from(0u8)))
            .and_then(|b| b.store_u32(32, 0))
            .and_then(|b| b.store_child(parties))
            .and_then(|b| b.build())
            .map_err(fmt)
    }

    /// The deploy's state init (code and initial data).
    pub fn state_init(&self) -> Result<Cell, ChannelError> {
        StateInit::new(Arc::new(code()?), Arc::new(self.data_cell()?))
            .to_cell()
            .map_err(fmt)
    }

    /// The contract's address on the basechain (workchain 0): the state init's hash.
    pub fn address(&self) -> Result<TonAddress, ChannelError> {
        let hash = StateInit::new(Arc::new(code()?), Arc::new(self.data_cell()?))
            .cell_hash()
            .map_err(fmt)?;
        Ok(TonAddress::new(0, hash))
    }
}

fn with_op(op: u32) -> CellBuilder {
    let mut b = CellBuilder::new();
    // A fresh builder always has room for 32 bits.
    let _ = b.store_u32(32, op);
    b
}

fn promise_body(op: u32, p: &SignedPromise) -> Result<Cell, ChannelError> {
    with_op(op)
        .store_child(p.promise.to_cell()?)
        .and_then(|b| b.store_slice(&p.signature))
        .and_then(|b| b.build())
        .map_err(fmt)
}

/// The payer's deposit of `amount` nanotons (the message must carry `amount + DEPOSIT_GAS`).
pub fn deposit_body(amount: u128) -> Result<Cell, ChannelError> {
    with_op(op::DEPOSIT)
        .store_coins(&coins(amount)?)
        .and_then(|b| b.build())
        .map_err(fmt)
}

/// The payee's close with its latest promise.
pub fn payee_close_body(p: &SignedPromise) -> Result<Cell, ChannelError> {
    promise_body(op::PAYEE_CLOSE, p)
}

/// The payee's answer to a payer's close: a newer promise.
pub fn dispute_body(p: &SignedPromise) -> Result<Cell, ChannelError> {
    promise_body(op::DISPUTE, p)
}

/// The payer's start of a close, with the promise it says is the latest (or none).
pub fn payer_start_close_body(p: Option<&SignedPromise>) -> Result<Cell, ChannelError> {
    let mut b = with_op(op::PAYER_START_CLOSE);
    match p {
        None => b.store_bit(false).and_then(|b| b.build()),
        Some(p) => {
            let promise = p.promise.to_cell()?;
            b.store_bit(true)
                .and_then(|b| b.store_child(promise))
                .and_then(|b| b.store_slice(&p.signature))
                .and_then(|b| b.build())
        }
    }
    .map_err(fmt)
}

/// Settles a closing channel once its dispute window is over (anyone may send it).
pub fn finish_body() -> Result<Cell, ChannelError> {
    with_op(op::FINISH).build().map_err(fmt)
}

/// Bag-of-cells bytes of a cell (with CRC32C, as wallets and TON HTTP APIs take them).
pub fn boc(cell: Cell) -> Result<Vec<u8>, ChannelError> {
    BagOfCells::from_root(cell).serialize(true).map_err(fmt)
}

/// `TonAddress` as text: raw `workchain:hex` when written, any form when read.
mod address {
    use std::str::FromStr;
    use tonlib_core::TonAddress;

    pub fn serialize<S: serde::Serializer>(a: &TonAddress, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&a.to_hex())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<TonAddress, D::Error> {
        let t: String = serde::Deserialize::deserialize(d)?;
        TonAddress::from_str(&t).map_err(|e| serde::de::Error::custom(format!("address: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promise::Promise;
    use ed25519_dalek::SigningKey;

    fn params() -> ChannelParams {
        let payer_key = SigningKey::from_bytes(&[1; 32]).verifying_key().to_bytes();
        let payee = TonAddress::new(0, [0x22; 32].into());
        ChannelParams {
            channel_id: ChannelParams::derive_id(&payer_key, &payee, b"n"),
            payer: TonAddress::new(0, [0x11; 32].into()),
            payer_key,
            payee,
            dispute_window: 3600,
            expiry: 1_800_000_000,
        }
    }

    #[test]
    fn data_cell_has_the_contracts_layout() {
        let c = params().data_cell().unwrap();
        // id 256, deposit Coins(0) 4, window 32, expiry 32, state 8, seqno 64, amount 4, started 32
        assert_eq!(c.bit_len(), 256 + 4 + 32 + 32 + 8 + 64 + 4 + 32);
        let parties = &c.references()[0];
        assert_eq!(parties.bit_len(), 267 + 256 + 267);
        let mut p = c.parser();
        assert_eq!(
            p.load_uint(256).unwrap(),
            BigUint::from_bytes_be(&params().channel_id)
        );
    }

    #[test]
    fn address_is_the_state_inits_hash_and_depends_on_every_field() {
        let a = params().address().unwrap();
        assert_eq!(a.workchain, 0);
        let mut other = params();
        other.expiry += 1;
        assert_ne!(other.address().unwrap(), a);
        let json = serde_json::to_string(&params()).unwrap();
        let back: ChannelParams = serde_json::from_str(&json).unwrap();
        assert_eq!(back, params());
    }

    #[test]
    fn bodies_start_with_their_op_and_carry_the_promise() {
        let signed = Promise {
            channel_id: params().channel_id,
            seqno: 2,
            amount: 5,
        }
        .sign(&SigningKey::from_bytes(&[1; 32]))
        .unwrap();
        let body = payee_close_body(&signed).unwrap();
        let mut p = body.parser();
        assert_eq!(p.load_u32(32).unwrap(), op::PAYEE_CLOSE);
        assert_eq!(body.bit_len(), 32 + 512);
        assert_eq!(
            Promise::from_cell(&body.references()[0]).unwrap(),
            signed.promise
        );
        let start = payer_start_close_body(None).unwrap();
        assert_eq!(start.bit_len(), 33);
        assert_eq!(
            payer_start_close_body(Some(&signed)).unwrap().bit_len(),
            33 + 512
        );
        assert_eq!(finish_body().unwrap().bit_len(), 32);
        assert_eq!(
            deposit_body(MAX_COINS + 1).unwrap_err(),
            ChannelError::Amount(MAX_COINS + 1)
        );
    }
}
