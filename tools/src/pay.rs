//! `silk pay`: the payer's side of settlement, offline. Receipts the client verified and
//! acknowledged (with the offers they were served under) are priced exactly
//! ([`silk_ledger::tally`]) and turned into a payment-channel promise signed with the
//! client key — the same key that acknowledged them — written as a bag of cells for
//! whatever sends it to the payee.

use std::io::Write;
use std::path::{Path, PathBuf};

use silk_ledger::{owed, Promise};
use silk_protocol::receipt::{Ack, SignedOffer};

use crate::pay_channel::{channel_id, ChannelRecord, OpenArgs, Shown};
use silk_client::receipts::ReceiptLine;
use silk_protocol::attestation::checks::ack;

/// `silk pay` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum PayCommand {
    /// Open a channel to a payee: writes the deploy-and-deposit request for the payer's
    /// wallet, and the channel's parameters for the payee.
    Open {
        /// The payer's wallet address (it deposits, and gets the remainder at the end).
        #[arg(long)]
        payer: String,
        /// The payee's payout address (the worker offers' payout address).
        #[arg(long)]
        payee: String,
        /// Toncoin to deposit (e.g. 10 or 2.5); the message carries 0.01 TON more for
        /// the contract's gas, returned at the end.
        #[arg(long)]
        deposit: String,
        /// Until when only the payee may close (`30d`, `12h`, …).
        #[arg(long, default_value = "30d")]
        expires_in: String,
        /// How long the payee has to answer a payer's close with a newer promise.
        #[arg(long, default_value = "1d")]
        dispute_window: String,
        /// Hex bytes making the channel id unique (random when absent).
        #[arg(long)]
        nonce: Option<String>,
        /// Count from this unix time instead of the clock (for a sandbox or a test chain).
        #[arg(long)]
        now: Option<u64>,
        /// Where to write the request for the payer's wallet (TON Connect JSON).
        #[arg(long, short)]
        out: PathBuf,
        /// Where to write the channel's parameters for the payee (`silk-host settle add`).
        #[arg(long)]
        channel_out: Option<PathBuf>,
    },
    /// Deposit more into an open channel.
    Deposit {
        /// The channel id (64 hex digits).
        #[arg(long)]
        channel: String,
        /// Toncoin to add.
        #[arg(long)]
        amount: String,
        /// Count from this unix time instead of the clock.
        #[arg(long)]
        now: Option<u64>,
        /// Where to write the request (TON Connect JSON).
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Start closing a channel after its expiry, with the latest promise signed here; the
    /// payee then has the dispute window to show a newer one.
    Close {
        /// The channel id (64 hex digits).
        #[arg(long)]
        channel: String,
        /// Close without showing any promise (nothing was promised yet).
        #[arg(long, conflicts_with = "promise")]
        without_promise: bool,
        /// Show this promise (a bag of cells) instead of the latest signed here.
        #[arg(long)]
        promise: Option<PathBuf>,
        /// Toncoin attached for the contract's gas (what is left returns to the payer).
        #[arg(long, default_value = "0.02")]
        attach: String,
        /// Count from this unix time instead of the clock.
        #[arg(long)]
        now: Option<u64>,
        /// Where to write the request (TON Connect JSON).
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Settle a closing channel once its dispute window is over (anyone may send it).
    Finish {
        /// The channel id (64 hex digits).
        #[arg(long)]
        channel: String,
        /// Toncoin attached for the contract's gas (what is left returns to the payer).
        #[arg(long, default_value = "0.02")]
        attach: String,
        /// Count from this unix time instead of the clock.
        #[arg(long)]
        now: Option<u64>,
        /// Where to write the request (TON Connect JSON).
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Sign a promise for everything owed to one payee: Σ over its receipts of tokens ×
    /// the offer's price, in nanotons, rounded up once over the total.
    Promise {
        /// The channel id (64 hex digits, as the channel contract stores it).
        #[arg(long)]
        channel: String,
        /// The payee's payout address (receipts served under offers paying it count).
        #[arg(long)]
        payee: String,
        /// The receipts file (default: receipts.jsonl beside the client key).
        #[arg(long)]
        receipts: Option<PathBuf>,
        /// The promise's sequence number (default: one more than the last one signed for
        /// this channel here).
        #[arg(long)]
        seqno: Option<u64>,
        /// Where to write the signed promise (bag of cells).
        #[arg(long, short)]
        out: PathBuf,
        /// Also hand it to the payee's settlement endpoint (`silk-host settle serve`,
        /// `http://host:port`); succeeds only once the payee has it on disk.
        #[arg(long)]
        send: Option<String>,
    },
    /// What is owed per payee, from the receipts file.
    Status {
        /// The receipts file (default: receipts.jsonl beside the client key).
        #[arg(long)]
        receipts: Option<PathBuf>,
    },
}

/// Why `silk pay` failed (exit 2: the inputs could not be used).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PayError(String);

impl PayError {
    pub(crate) fn new(e: impl std::fmt::Display) -> Self {
        PayError(e.to_string())
    }
}

/// Receipts kept with an offer (those without one, from a direct session, are not priced),
/// each acknowledged by `client_key`: the acknowledgement is made only after the receipt
/// verified against the attested worker, and covers the receipt's exact bytes, so a line
/// altered or added by anyone else (an inflated token count, say) is refused by name
/// rather than paid for.
fn priced_lines(
    path: &Path,
    client_key: &[u8; 32],
) -> Result<Vec<(Vec<u8>, SignedOffer)>, PayError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| PayError(format!("receipts {}: {e}", path.display())))?;
    let mut out = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let at = |e: &dyn std::fmt::Display| {
            PayError(format!("receipts {} line {}: {e}", path.display(), i + 1))
        };
        let l: ReceiptLine = serde_json::from_str(line).map_err(|e| at(&e))?;
        let Some(offer) = l.offer else { continue };
        let signed = hex::decode(&l.receipt).map_err(|e| at(&e))?;
        let ack = l
            .ack
            .as_deref()
            .ok_or_else(|| {
                at(&format!(
                    "{}: the receipt was never acknowledged by this client",
                    ack::MISSING
                ))
            })
            .and_then(|a| hex::decode(a).map_err(|e| at(&e)))?;
        let ack = Ack::verify(&ack, &signed).map_err(|e| at(&e))?;
        if &ack.client_key != client_key {
            return Err(at(&format!(
                "{}: acknowledged by {}, not this client's key {}",
                ack::CLIENT,
                hex::encode(ack.client_key),
                hex::encode(client_key)
            )));
        }
        out.push((signed, offer));
    }
    Ok(out)
}

/// Runs `silk pay`.
pub fn run(cmd: PayCommand, out: &mut dyn Write) -> Result<(), PayError> {
    let dir = silk_client::receipts::config_dir().map_err(PayError::new)?;
    let receipts_of = |r: Option<PathBuf>| r.unwrap_or_else(|| dir.join("receipts.jsonl"));
    match cmd {
        PayCommand::Status { receipts } => {
            let key = silk_client::receipts::client_key(&dir).map_err(PayError::new)?;
            let lines = priced_lines(&receipts_of(receipts), &key.public_key())?;
            let mut payees: Vec<String> = lines
                .iter()
                .filter_map(|(_, o)| silk_protocol::receipt::Offer::decode(&o.body.0).ok())
                .map(|o| o.payout_address)
                .collect();
            payees.sort();
            payees.dedup();
            for payee in payees {
                let o = owed(lines.iter().map(|(r, o)| (r.as_slice(), o)), &payee)
                    .map_err(PayError::new)?;
                let _ = writeln!(
                    out,
                    "{payee}: {} receipts, {} prompt + {} completion tokens, {} nanotons",
                    o.receipts, o.prompt_tokens, o.completion_tokens, o.amount
                );
            }
            Ok(())
        }
        PayCommand::Open {
            payer,
            payee,
            deposit,
            expires_in,
            dispute_window,
            nonce,
            now,
            out: path,
            channel_out,
        } => {
            let key = silk_client::receipts::client_key(&dir).map_err(PayError::new)?;
            let args = OpenArgs {
                payer: &payer,
                payee: &payee,
                deposit: &deposit,
                expires_in: &expires_in,
                dispute_window: &dispute_window,
                nonce: nonce.as_deref(),
                now,
            };
            let v = crate::pay_channel::open(
                &dir,
                key.public_key(),
                &args,
                &path,
                channel_out.as_deref(),
            )?;
            print_json(out, &v)
        }
        PayCommand::Deposit {
            channel,
            amount,
            now,
            out: path,
        } => print_json(
            out,
            &crate::pay_channel::deposit(&dir, &channel, &amount, now, &path)?,
        ),
        PayCommand::Close {
            channel,
            without_promise,
            promise,
            attach,
            now,
            out: path,
        } => {
            let shown = match (without_promise, promise) {
                (true, _) => Shown::None,
                (false, Some(file)) => Shown::File(file),
                (false, None) => Shown::Latest,
            };
            print_json(
                out,
                &crate::pay_channel::close(&dir, &channel, Some(shown), &attach, now, &path)?,
            )
        }
        PayCommand::Finish {
            channel,
            attach,
            now,
            out: path,
        } => print_json(
            out,
            &crate::pay_channel::close(&dir, &channel, None, &attach, now, &path)?,
        ),
        PayCommand::Promise {
            channel,
            payee,
            receipts,
            seqno,
            out: path,
            send,
        } => {
            let channel_id = channel_id(&channel)?;
            let key = silk_client::receipts::client_key(&dir).map_err(PayError::new)?;
            let lines = priced_lines(&receipts_of(receipts), &key.public_key())?;
            let o = owed(lines.iter().map(|(r, o)| (r.as_slice(), o)), &payee)
                .map_err(PayError::new)?;
            let mut record = ChannelRecord::load(&dir, &channel)?.unwrap_or_default();
            let last = record.seqno;
            let seqno = seqno.unwrap_or(last + 1);
            if seqno <= last {
                return Err(PayError(format!(
                    "seqno {seqno} is not above the last one signed for this channel ({last})"
                )));
            }
            if let Some(params) = &record.params {
                if params.payee.to_hex() != payee_raw(&payee)? {
                    return Err(PayError(format!(
                        "channel {channel} pays {}, not --payee {payee}",
                        params.payee.to_hex()
                    )));
                }
                if o.amount > record.deposited() {
                    return Err(PayError(format!(
                        "{} nanotons are owed but only {} were deposited in channel {channel}: \
                         deposit more (silk pay deposit) before promising it",
                        o.amount,
                        record.deposited()
                    )));
                }
                if params.payer_key != key.public_key() {
                    return Err(PayError(format!(
                        "channel {channel} was opened with another client key"
                    )));
                }
            }
            let signing = ed25519_dalek::SigningKey::from_bytes(&key.seed());
            let signed = Promise {
                channel_id,
                seqno,
                amount: o.amount,
            }
            .sign(&signing)
            .map_err(PayError::new)?;
            let boc = signed.to_boc().map_err(PayError::new)?;
            write_whole(&path, &boc)?;
            // Remembered before it is sent: a promise given away must never be signed again
            // with the same seqno for another amount.
            record.seqno = seqno;
            record.latest = Some(signed);
            record.save(&dir, &channel)?;
            let kept = match send {
                Some(url) => Some(crate::pay_send::send(&url, &boc)?),
                None => None,
            };
            let summary = serde_json::json!({
                "channel": channel,
                "payee": payee,
                "seqno": seqno,
                "amount": o.amount.to_string(),
                "receipts": o.receipts,
                "prompt_tokens": o.prompt_tokens,
                "completion_tokens": o.completion_tokens,
                "payer_pubkey": hex::encode(key.public_key()),
                "signature": hex::encode(signed.signature),
                "boc": path.display().to_string(),
                "payee_kept": kept,
            });
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&summary).map_err(PayError::new)?
            );
            Ok(())
        }
    }
}

fn print_json(out: &mut dyn Write, v: &serde_json::Value) -> Result<(), PayError> {
    let _ = writeln!(
        out,
        "{}",
        serde_json::to_string_pretty(v).map_err(PayError::new)?
    );
    Ok(())
}

/// A payout address in raw form, for comparing addresses written either way.
fn payee_raw(text: &str) -> Result<String, PayError> {
    use std::str::FromStr;
    silk_ledger::TonAddress::from_str(text)
        .map(|a| a.to_hex())
        .map_err(|e| PayError(format!("--payee {text:?}: {e}")))
}

/// Writes a file whole ([`silk_ledger::store::write_file`]), so a crash leaves the old one.
pub(crate) fn write_whole(path: &Path, bytes: &[u8]) -> Result<(), PayError> {
    silk_ledger::store::write_file(path, bytes)
        .map_err(|e| PayError(format!("{}: {e}", path.display())))
}
