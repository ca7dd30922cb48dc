//! Settlement of silk's usage receipts on TON.
//!
//! - [`promise`]: payment-channel promises (a TON cell signed by the payer) and the bag of
//!   cells a payee presents on chain.
//! - [`tally`]: what a payer owes a payee, from verified receipts and their offers.
//! - [`store`]: the payee's highest promise per channel, kept crash-safely on disk.
//!
//! The contracts and their sandbox tests are in `ledger/ton/`; `docs/payments.md` (to come)
//! describes the flows.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod promise;
pub mod store;
pub mod tally;

pub use promise::{Promise, PromiseError, SignedPromise};
pub use store::{Kept, PromiseStore, StoreError};
pub use tally::{owed, Owed, TallyError};
