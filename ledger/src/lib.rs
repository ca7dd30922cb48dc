//! Settlement of silk's usage receipts on TON.
//!
//! - [`promise`]: payment-channel promises (a TON cell signed by the payer) and the bag of
//!   cells a payee presents on chain.
//! - [`tally`]: what a payer owes a payee, from verified receipts and their offers.
//! - [`store`]: the payee's highest promise per channel, kept crash-safely on disk.
//! - [`channel`]: the channel contract's address and the bodies of its messages.
//! - [`request`]: messages written offline for a wallet to send (TON Connect requests).
//! - [`payee`]: the owner's settlement directory: channels, promises, close messages.
//!
//! The contracts and their sandbox tests are in `ledger/ton/`; `docs/payments.md`
//! describes the flows.

pub mod channel;
pub mod payee;
pub mod promise;
pub mod registry;
pub mod request;
pub mod store;
pub mod tally;

pub use channel::{ChannelError, ChannelParams};
pub use payee::{Payee, SettleError};
pub use promise::{Promise, PromiseError, SignedPromise};
pub use store::{Kept, PromiseStore, StoreError};
pub use tally::{owed, Owed, TallyError};
/// TON addresses, as the channel and the requests use them.
pub use tonlib_core::TonAddress;

/// Fixed-size byte arrays as hex text in JSON.
pub(crate) mod hex_array {
    pub fn serialize<S: serde::Serializer, const N: usize>(
        v: &[u8; N],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        let t: String = serde::Deserialize::deserialize(d)?;
        hex::decode(t)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| serde::de::Error::custom(format!("expected {} hex digits", 2 * N)))
    }
}
