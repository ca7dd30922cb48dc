//! The payer's channel: opening it, topping it up, closing it, and what is remembered of
//! it between runs (`$XDG_CONFIG_HOME/silk/channels/<id>.json`).
//!
//! Every message is written as a TON Connect request for the payer's own wallet to send
//! (silk never holds a wallet key); the channel's parameters are written for the payee
//! (`--channel-out`), who adds them to its settlement directory.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use silk_attestation::policy::Age;
use silk_ledger::channel::{self, ChannelParams, DEPOSIT_GAS};
use silk_ledger::request::{format_ton, parse_ton, unix_now, Message, Request};
use silk_ledger::SignedPromise;
use silk_ledger::TonAddress;

use crate::pay::{write_whole, PayError};

/// What is kept of a channel between runs.
#[derive(serde::Serialize, serde::Deserialize, Default)]
pub(crate) struct ChannelRecord {
    /// The channel (absent for one only ever promised on, opened elsewhere).
    #[serde(default)]
    pub params: Option<ChannelParams>,
    /// Nanotons deposited through this client.
    #[serde(default)]
    pub deposit: String,
    /// The last promise's sequence number (kept apart from `latest`: records written
    /// before promises were kept whole hold only this).
    pub seqno: u64,
    /// The last promise signed.
    #[serde(default)]
    pub latest: Option<SignedPromise>,
}

impl ChannelRecord {
    pub(crate) fn path(dir: &Path, channel: &str) -> PathBuf {
        dir.join("channels").join(format!("{channel}.json"))
    }

    /// The record, or `None` when this client never touched the channel.
    pub(crate) fn load(dir: &Path, channel: &str) -> Result<Option<Self>, PayError> {
        let path = Self::path(dir, channel);
        match std::fs::read_to_string(&path) {
            Ok(t) => serde_json::from_str(&t)
                .map(Some)
                .map_err(|e| PayError::new(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(PayError::new(format!("{}: {e}", path.display()))),
        }
    }

    pub(crate) fn save(&self, dir: &Path, channel: &str) -> Result<(), PayError> {
        let text = serde_json::to_vec_pretty(self).map_err(PayError::new)?;
        write_whole(&Self::path(dir, channel), &text)
    }

    pub(crate) fn deposited(&self) -> u128 {
        self.deposit.parse().unwrap_or(0)
    }

    fn params(&self, channel: &str) -> Result<&ChannelParams, PayError> {
        self.params.as_ref().ok_or_else(|| {
            PayError::new(format!(
                "channel {channel} was not opened with this client (no parameters kept)"
            ))
        })
    }
}

/// Parses a channel id given on the command line.
pub(crate) fn channel_id(text: &str) -> Result<[u8; 32], PayError> {
    ChannelParams::parse_id(text).ok_or_else(|| PayError::new("--channel must be 64 hex digits"))
}

fn address(flag: &str, text: &str) -> Result<TonAddress, PayError> {
    TonAddress::from_str(text).map_err(|e| PayError::new(format!("{flag} {text:?}: {e}")))
}

fn ton(flag: &str, text: &str) -> Result<u128, PayError> {
    parse_ton(text).map_err(|e| PayError::new(format!("{flag}: {e}")))
}

fn span(flag: &str, text: &str) -> Result<u64, PayError> {
    Age::parse(text)
        .map(|a| a.0.as_secs())
        .map_err(|e| PayError::new(format!("{flag}: {e}")))
}

fn now_or(now: Option<u64>) -> u64 {
    now.unwrap_or_else(unix_now)
}

fn write_request(path: &Path, now: u64, message: Message) -> Result<(), PayError> {
    Request::one(message, now)
        .write(path)
        .map_err(|e| PayError::new(format!("{}: {e}", path.display())))
}

fn message(m: Result<Message, channel::ChannelError>) -> Result<Message, PayError> {
    m.map_err(PayError::new)
}

/// What `silk pay open` needs.
pub struct OpenArgs<'a> {
    /// The payer's wallet address (it deposits and gets the remainder).
    pub payer: &'a str,
    /// The payee's payout address.
    pub payee: &'a str,
    /// Toncoin to deposit.
    pub deposit: &'a str,
    /// From now until the payer may start a close.
    pub expires_in: &'a str,
    /// How long the payee has to answer a payer's close.
    pub dispute_window: &'a str,
    /// Hex nonce making the channel id unique (random when absent).
    pub nonce: Option<&'a str>,
    /// Unix time to count from (default: the clock).
    pub now: Option<u64>,
}

/// `silk pay open`: the channel's parameters and the deploy-and-deposit request.
pub(crate) fn open(
    dir: &Path,
    payer_key: [u8; 32],
    a: &OpenArgs<'_>,
    out: &Path,
    channel_out: Option<&Path>,
) -> Result<serde_json::Value, PayError> {
    let payer = address("--payer", a.payer)?;
    let payee = address("--payee", a.payee)?;
    let deposit = ton("--deposit", a.deposit)?;
    if deposit == 0 {
        return Err(PayError::new("--deposit must be more than 0"));
    }
    let now = now_or(a.now);
    let expiry = u32::try_from(now + span("--expires-in", a.expires_in)?)
        .map_err(|_| PayError::new("--expires-in: the expiry is past 2106"))?;
    let dispute_window = u32::try_from(span("--dispute-window", a.dispute_window)?)
        .map_err(|_| PayError::new("--dispute-window: too long"))?;
    if dispute_window < 60 {
        return Err(PayError::new(
            "--dispute-window: under a minute gives the payee no real chance to answer",
        ));
    }
    let nonce = match a.nonce {
        Some(n) => hex::decode(n).map_err(|e| PayError::new(format!("--nonce: {e}")))?,
        None => rand::random::<[u8; 16]>().to_vec(),
    };
    let params = ChannelParams {
        channel_id: ChannelParams::derive_id(&payer_key, &payee, &nonce),
        payer,
        payer_key,
        payee,
        dispute_window,
        expiry,
    };
    let id = hex::encode(params.channel_id);
    if ChannelRecord::load(dir, &id)?.is_some() {
        return Err(PayError::new(format!(
            "channel {id} is already open here (pick another --nonce)"
        )));
    }
    let address = params.address().map_err(PayError::new)?;
    let m = message(Message::new(
        &address,
        deposit + DEPOSIT_GAS,
        channel::deposit_body(deposit).map_err(PayError::new)?,
        Some(params.state_init().map_err(PayError::new)?),
    ))?;
    write_request(out, now, m)?;
    if let Some(path) = channel_out {
        let text = serde_json::to_string_pretty(&params).map_err(PayError::new)? + "\n";
        write_whole(path, text.as_bytes())?;
    }
    ChannelRecord {
        params: Some(params.clone()),
        deposit: deposit.to_string(),
        ..Default::default()
    }
    .save(dir, &id)?;
    Ok(serde_json::json!({
        "channel": id,
        "address": address.to_base64_url(),
        "address_raw": address.to_hex(),
        "deposit_ton": format_ton(deposit),
        "attached_nanotons": (deposit + DEPOSIT_GAS).to_string(),
        "expiry": expiry,
        "dispute_window": dispute_window,
        "request": out.display().to_string(),
    }))
}

/// `silk pay deposit`: a top-up of an open channel.
pub(crate) fn deposit(
    dir: &Path,
    channel: &str,
    amount: &str,
    now: Option<u64>,
    out: &Path,
) -> Result<serde_json::Value, PayError> {
    channel_id(channel)?;
    let mut record = ChannelRecord::load(dir, channel)?.unwrap_or_default();
    let params = record.params(channel)?.clone();
    let amount = ton("--amount", amount)?;
    let m = message(Message::new(
        &params.address().map_err(PayError::new)?,
        amount + DEPOSIT_GAS,
        channel::deposit_body(amount).map_err(PayError::new)?,
        None,
    ))?;
    write_request(out, now_or(now), m)?;
    record.deposit = (record.deposited() + amount).to_string();
    record.save(dir, channel)?;
    Ok(serde_json::json!({ "channel": channel, "deposit_ton": format_ton(record.deposited()) }))
}

/// Which promise a payer's close shows.
pub(crate) enum Shown {
    /// None at all.
    None,
    /// The latest signed here.
    Latest,
    /// One read from a file (a bag of cells).
    File(PathBuf),
}

/// `silk pay close` (start a close showing `shown`) and, with `shown` absent,
/// `silk pay finish` (settle after the dispute window).
pub(crate) fn close(
    dir: &Path,
    channel: &str,
    shown: Option<Shown>,
    attach: &str,
    now: Option<u64>,
    out: &Path,
) -> Result<serde_json::Value, PayError> {
    let id = channel_id(channel)?;
    let record = ChannelRecord::load(dir, channel)?.unwrap_or_default();
    let params = record.params(channel)?;
    let attach = ton("--attach", attach)?;
    let now = now_or(now);
    let finish = shown.is_none();
    let mut seqno = None;
    let body = match shown {
        None => channel::finish_body(),
        Some(shown) => {
            if now < u64::from(params.expiry) {
                return Err(PayError::new(format!(
                    "the channel expires at {} ({}s from now): before that only the payee can close",
                    params.expiry,
                    u64::from(params.expiry) - now
                )));
            }
            let promise = match shown {
                Shown::None => None,
                Shown::Latest => record.latest,
                Shown::File(f) => {
                    let bytes = std::fs::read(&f)
                        .map_err(|e| PayError::new(format!("--promise {}: {e}", f.display())))?;
                    let p = SignedPromise::from_boc(&bytes)
                        .map_err(|e| PayError::new(format!("--promise {}: {e}", f.display())))?;
                    if p.promise.channel_id != id {
                        return Err(PayError::new(format!(
                            "--promise {}: it is for channel {}",
                            f.display(),
                            hex::encode(p.promise.channel_id)
                        )));
                    }
                    Some(p)
                }
            };
            seqno = promise.map(|p| p.promise.seqno);
            channel::payer_start_close_body(promise.as_ref())
        }
    }
    .map_err(PayError::new)?;
    let address = params.address().map_err(PayError::new)?;
    write_request(
        out,
        now,
        message(Message::new(&address, attach, body, None))?,
    )?;
    Ok(serde_json::json!({
        "channel": channel,
        "op": if finish { "finish" } else { "payer start close" },
        "with_promise_seqno": seqno,
        "dispute_window_ends_at": (!finish).then(|| now + u64::from(params.dispute_window)),
        "request": out.display().to_string(),
    }))
}
