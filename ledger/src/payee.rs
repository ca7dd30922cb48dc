//! The owner's (payee's) side of settlement: the channels it serves, the highest promise
//! per channel, and the messages that turn them into Toncoin.
//!
//! Layout of a settlement directory:
//! - `channels/<id>.json`: the channel's [`ChannelParams`], as the payer published them
//!   (`silk pay open --channel-out`); added once, checked against the payout address.
//! - `promises/<id>.json`: the highest promise shown for it ([`PromiseStore`]).
//!
//! Both are written durably (temporary file, sync, rename, directory sync), so a crash
//! loses nothing that was acknowledged.

use std::path::{Path, PathBuf};

use tonlib_core::TonAddress;

use crate::channel::{self, ChannelError, ChannelParams};
use crate::promise::SignedPromise;
use crate::request::Message;
use crate::store::{clear_torn, write_durably, Kept, PromiseStore, StoreError};

/// Why the payee's side refused.
#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    /// Reading or writing the settlement directory failed, or a promise did not verify.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A message could not be built.
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// The promise names a channel that was never added.
    #[error("settle.channel: channel {0} is not known here (add it first)")]
    UnknownChannel(String),
    /// No promise is kept for the channel, so there is nothing to close with.
    #[error("settle.promise: no promise is kept for channel {0}")]
    NoPromise(String),
    /// The channel pays someone else.
    #[error("settle.payee: the channel pays {found}, not this owner's {expected}")]
    WrongPayee {
        /// This owner's payout address.
        expected: String,
        /// The channel's payee.
        found: String,
    },
    /// A channel file is not readable.
    #[error("settle.params: {path}: {detail}")]
    Params {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

/// One channel as the payee sees it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChannelStatus {
    /// The channel.
    pub params: ChannelParams,
    /// Its contract's address (raw form).
    pub address: String,
    /// The highest promise kept: sequence number and nanotons.
    pub latest: Option<(u64, String)>,
}

/// A settlement directory.
pub struct Payee {
    promises: PromiseStore,
    channels: PathBuf,
}

impl Payee {
    /// Opens (creating) the settlement directory `dir`.
    pub fn open(dir: &Path) -> Result<Self, SettleError> {
        let channels = dir.join("channels");
        std::fs::create_dir_all(&channels).map_err(|source| StoreError::Io {
            path: channels.clone(),
            source,
        })?;
        clear_torn(&channels)?;
        Ok(Self {
            promises: PromiseStore::open(&dir.join("promises"))?,
            channels,
        })
    }

    /// Adds a channel, checking it pays `payout` when given; returns its address.
    pub fn add_channel(
        &self,
        params: &ChannelParams,
        payout: Option<&TonAddress>,
    ) -> Result<TonAddress, SettleError> {
        if let Some(p) = payout.filter(|p| **p != params.payee) {
            return Err(SettleError::WrongPayee {
                expected: p.to_hex(),
                found: params.payee.to_hex(),
            });
        }
        let address = params.address()?;
        let text = serde_json::to_vec_pretty(params).map_err(|e| SettleError::Params {
            path: self.channels.clone(),
            detail: e.to_string(),
        })?;
        write_durably(
            &self.channels,
            &format!("{}.json", hex::encode(params.channel_id)),
            &text,
        )?;
        Ok(address)
    }

    /// The channel `id`.
    pub fn channel(&self, id: &[u8; 32]) -> Result<ChannelParams, SettleError> {
        let path = self.channels.join(format!("{}.json", hex::encode(id)));
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(SettleError::UnknownChannel(hex::encode(id)))
            }
            Err(source) => return Err(StoreError::Io { path, source }.into()),
        };
        let params: ChannelParams =
            serde_json::from_slice(&text).map_err(|e| SettleError::Params {
                path: path.clone(),
                detail: e.to_string(),
            })?;
        if &params.channel_id != id {
            return Err(SettleError::Params {
                path,
                detail: "the file holds another channel".into(),
            });
        }
        Ok(params)
    }

    /// Every channel added, with its latest promise.
    pub fn status(&self) -> Result<Vec<ChannelStatus>, SettleError> {
        let mut out = Vec::new();
        let dir = &self.channels;
        let io = |source| StoreError::Io {
            path: dir.clone(),
            source,
        };
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names {
            let Some(id) = name
                .strip_suffix(".json")
                .and_then(|h| hex::decode(h).ok())
                .and_then(|v| <[u8; 32]>::try_from(v).ok())
            else {
                continue;
            };
            let params = self.channel(&id)?;
            out.push(ChannelStatus {
                address: params.address()?.to_hex(),
                latest: self
                    .promises
                    .latest(&id)?
                    .map(|p| (p.promise.seqno, p.promise.amount.to_string())),
                params,
            });
        }
        Ok(out)
    }

    /// Keeps a promise shown by the payer if it is for a known channel, verifies under its
    /// payer key and is newer than the kept one. Returns once it is on disk: only then may
    /// it be acknowledged.
    pub fn accept(&mut self, promise: &SignedPromise) -> Result<Kept, SettleError> {
        let params = self.channel(&promise.promise.channel_id)?;
        Ok(self.promises.keep(promise, &params.payer_key)?)
    }

    /// A message to the channel `id` carrying its highest promise kept in the body `op`
    /// builds, and `attach` nanotons for the contract's gas (what is left goes to the payer).
    fn with_latest(
        &self,
        id: &[u8; 32],
        attach: u128,
        op: fn(&SignedPromise) -> Result<tonlib_core::cell::Cell, ChannelError>,
    ) -> Result<Message, SettleError> {
        let params = self.channel(id)?;
        let p = self
            .promises
            .latest(id)?
            .ok_or_else(|| SettleError::NoPromise(hex::encode(id)))?;
        Ok(Message::new(&params.address()?, attach, op(&p)?, None)?)
    }

    /// The payee's close with the highest promise kept.
    pub fn close_message(&self, id: &[u8; 32], attach: u128) -> Result<Message, SettleError> {
        self.with_latest(id, attach, channel::payee_close_body)
    }

    /// The payee's answer to a payer's close: the highest promise kept.
    pub fn dispute_message(&self, id: &[u8; 32], attach: u128) -> Result<Message, SettleError> {
        self.with_latest(id, attach, channel::dispute_body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promise::Promise;
    use ed25519_dalek::SigningKey;

    fn params(payee: u8) -> ChannelParams {
        let payer_key = SigningKey::from_bytes(&[9; 32]).verifying_key().to_bytes();
        let payee = TonAddress::new(0, [payee; 32].into());
        ChannelParams {
            channel_id: ChannelParams::derive_id(&payer_key, &payee, b"x"),
            payer: TonAddress::new(0, [1; 32].into()),
            payer_key,
            payee,
            dispute_window: 60,
            expiry: 100,
        }
    }

    fn promise(p: &ChannelParams, seqno: u64, amount: u128) -> SignedPromise {
        Promise {
            channel_id: p.channel_id,
            seqno,
            amount,
        }
        .sign(&SigningKey::from_bytes(&[9; 32]))
        .unwrap()
    }

    #[test]
    fn accepts_only_known_channels_and_closes_with_the_highest() {
        let dir = tempfile::tempdir().unwrap();
        let mut payee = Payee::open(dir.path()).unwrap();
        let p = params(2);
        assert!(matches!(
            payee.accept(&promise(&p, 1, 5)),
            Err(SettleError::UnknownChannel(_))
        ));
        assert!(matches!(
            payee.add_channel(&p, Some(&TonAddress::new(0, [3; 32].into()))),
            Err(SettleError::WrongPayee { .. })
        ));
        assert!(matches!(
            payee.close_message(&p.channel_id, 1),
            Err(SettleError::UnknownChannel(_))
        ));
        let address = payee.add_channel(&p, Some(&p.payee)).unwrap();
        assert!(matches!(
            payee.close_message(&p.channel_id, 1),
            Err(SettleError::NoPromise(_))
        ));
        assert_eq!(payee.accept(&promise(&p, 2, 50)).unwrap(), Kept::Stored);
        assert_eq!(
            payee.accept(&promise(&p, 1, 90)).unwrap(),
            Kept::Older { kept_seqno: 2 }
        );
        let again = Payee::open(dir.path()).unwrap();
        let status = again.status().unwrap();
        assert_eq!(status.len(), 1);
        assert_eq!(status[0].address, address.to_hex());
        assert_eq!(status[0].latest, Some((2, "50".into())));
        let m = again.close_message(&p.channel_id, 7).unwrap();
        assert_eq!(m.amount, "7");
        assert_eq!(m.address, address.to_base64_url_flags(false, false));
    }
}
