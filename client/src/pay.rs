//! `silk pay`: the payer's side of settlement, offline. Receipts the client verified and
//! acknowledged (with the offers they were served under) are priced exactly
//! ([`silk_ledger::tally`]) and turned into a payment-channel promise signed with the
//! client key — the same key that acknowledged them — written as a bag of cells for
//! whatever sends it to the payee.

use std::io::Write;
use std::path::{Path, PathBuf};

use silk_ledger::{owed, Promise};
use silk_protocol::receipt::SignedOffer;

use crate::receipts::ReceiptLine;

/// `silk pay` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum PayCommand {
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

fn err(e: impl std::fmt::Display) -> PayError {
    PayError(e.to_string())
}

/// Receipts kept with an offer (those without one, from a direct session, are not priced).
fn priced_lines(path: &Path) -> Result<Vec<(Vec<u8>, SignedOffer)>, PayError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| PayError(format!("receipts {}: {e}", path.display())))?;
    let mut out = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let l: ReceiptLine = serde_json::from_str(line)
            .map_err(|e| PayError(format!("receipts {} line {}: {e}", path.display(), i + 1)))?;
        let Some(offer) = l.offer else { continue };
        let signed = hex::decode(&l.receipt)
            .map_err(|e| PayError(format!("receipts line {}: {e}", i + 1)))?;
        out.push((signed, offer));
    }
    Ok(out)
}

/// The last promise signed here for a channel.
#[derive(serde::Serialize, serde::Deserialize)]
struct ChannelState {
    seqno: u64,
    amount: String,
}

/// Runs `silk pay`.
pub fn run(cmd: PayCommand, out: &mut dyn Write) -> Result<(), PayError> {
    let dir = crate::receipts::config_dir().map_err(err)?;
    let receipts_of = |r: Option<PathBuf>| r.unwrap_or_else(|| dir.join("receipts.jsonl"));
    match cmd {
        PayCommand::Status { receipts } => {
            let lines = priced_lines(&receipts_of(receipts))?;
            let mut payees: Vec<String> = lines
                .iter()
                .filter_map(|(_, o)| silk_protocol::receipt::Offer::decode(&o.body.0).ok())
                .map(|o| o.payout_address)
                .collect();
            payees.sort();
            payees.dedup();
            for payee in payees {
                let o = owed(lines.iter().map(|(r, o)| (r.as_slice(), o)), &payee).map_err(err)?;
                let _ = writeln!(
                    out,
                    "{payee}: {} receipts, {} prompt + {} completion tokens, {} nanotons",
                    o.receipts, o.prompt_tokens, o.completion_tokens, o.amount
                );
            }
            Ok(())
        }
        PayCommand::Promise {
            channel,
            payee,
            receipts,
            seqno,
            out: path,
        } => {
            let channel_id: [u8; 32] =
                hex::decode(&channel)
                    .ok()
                    .and_then(|v| v.try_into().ok())
                    .ok_or_else(|| PayError("--channel must be 64 hex digits".into()))?;
            let lines = priced_lines(&receipts_of(receipts))?;
            let o = owed(lines.iter().map(|(r, o)| (r.as_slice(), o)), &payee).map_err(err)?;
            let state_path = dir.join("channels").join(format!("{channel}.json"));
            let last: Option<ChannelState> = std::fs::read_to_string(&state_path)
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok());
            let seqno = seqno.unwrap_or_else(|| last.as_ref().map_or(1, |l| l.seqno + 1));
            if let Some(l) = &last {
                if seqno <= l.seqno {
                    return Err(PayError(format!(
                        "seqno {seqno} is not above the last one signed for this channel ({})",
                        l.seqno
                    )));
                }
            }
            let key = crate::receipts::client_key(&dir).map_err(err)?;
            let signing = ed25519_dalek::SigningKey::from_bytes(&key.seed());
            let signed = Promise {
                channel_id,
                seqno,
                amount: o.amount,
            }
            .sign(&signing)
            .map_err(err)?;
            let boc = signed.to_boc().map_err(err)?;
            write_whole(&path, &boc)?;
            let state = ChannelState {
                seqno,
                amount: o.amount.to_string(),
            };
            write_whole(
                &state_path,
                serde_json::to_string(&state).map_err(err)?.as_bytes(),
            )?;
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
            });
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&summary).map_err(err)?
            );
            Ok(())
        }
    }
}

/// Writes a file whole (temporary file, sync, rename), so a crash leaves the old one.
fn write_whole(path: &Path, bytes: &[u8]) -> Result<(), PayError> {
    let e = |x: std::io::Error| PayError(format!("{}: {x}", path.display()));
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d).map_err(e)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(e)?;
    f.write_all(bytes).map_err(e)?;
    f.sync_all().map_err(e)?;
    std::fs::rename(&tmp, path).map_err(e)
}
