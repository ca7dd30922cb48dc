//! Messages for a wallet to send, written offline.
//!
//! silk never holds a wallet's key: the channel's messages must come from the payer's or
//! payee's own wallet. So each one is written as a TON Connect `sendTransaction` request
//! (`validUntil`, `messages[{address, amount, payload, stateInit}]`, BoCs in base64), the
//! shape every TON wallet and SDK takes, and the body alone as a `.boc` file for tools
//! that want bytes.

use base64::Engine;
use tonlib_core::cell::Cell;
use tonlib_core::TonAddress;

use crate::channel::{boc, ChannelError};

/// How long a written request stays valid for a wallet, in seconds.
pub const VALIDITY: u64 = 3600;

/// The clock, in Unix seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Nanotons in one Toncoin.
pub const NANOTONS_PER_TON: u128 = 1_000_000_000;

/// A TON Connect `sendTransaction` request.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Request {
    /// Unix time after which a wallet must not send it.
    #[serde(rename = "validUntil")]
    pub valid_until: u64,
    /// The messages, in order.
    pub messages: Vec<Message>,
}

impl Request {
    /// A request of one message, valid for [`VALIDITY`] from `now`.
    pub fn one(message: Message, now: u64) -> Self {
        Self {
            valid_until: now + VALIDITY,
            messages: vec![message],
        }
    }

    /// Writes it as JSON, whole ([`crate::store::write_file`]).
    pub fn write(&self, path: &std::path::Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)? + "\n";
        crate::store::write_file(path, text.as_bytes())
    }
}

/// One message of a [`Request`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Message {
    /// The destination, user-friendly (its bounceable flag is the message's bounce flag).
    pub address: String,
    /// Nanotons attached, as a decimal string.
    pub amount: String,
    /// The body, a base64 bag of cells.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub payload: Option<String>,
    /// The state init for a deploy, a base64 bag of cells.
    #[serde(rename = "stateInit", skip_serializing_if = "Option::is_none", default)]
    pub state_init: Option<String>,
}

impl Message {
    /// A message to `dest` carrying `amount` nanotons and `body`; with `state_init` it
    /// deploys the contract and is non-bounceable (an undeployed account cannot bounce
    /// usefully), otherwise bounceable so a refusal returns the value.
    pub fn new(
        dest: &TonAddress,
        amount: u128,
        body: Cell,
        state_init: Option<Cell>,
    ) -> Result<Self, ChannelError> {
        let b64 = |c: Cell| boc(c).map(|b| base64::engine::general_purpose::STANDARD.encode(b));
        Ok(Self {
            address: dest.to_base64_url_flags(state_init.is_some(), false),
            amount: amount.to_string(),
            payload: Some(b64(body)?),
            state_init: state_init.map(b64).transpose()?,
        })
    }
}

/// Why an amount of Toncoin could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("amount {text:?}: {why} (write Toncoin as e.g. 10, 0.5 or 0.000000001)")]
pub struct AmountError {
    text: String,
    why: &'static str,
}

/// Reads Toncoin written in decimal (`10`, `0.25`, up to 9 decimals) as exact nanotons.
pub fn parse_ton(text: &str) -> Result<u128, AmountError> {
    let e = |why| AmountError {
        text: text.to_string(),
        why,
    };
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() && frac.is_empty() {
        return Err(e("empty"));
    }
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !digits(frac) {
        return Err(e("not a decimal number"));
    }
    if frac.len() > 9 {
        return Err(e("more than 9 decimals (1 nanoton is 0.000000001)"));
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| e("too large"))?
    };
    let frac: u128 = format!("{frac:0<9}").parse().map_err(|_| e("fraction"))?;
    whole
        .checked_mul(NANOTONS_PER_TON)
        .and_then(|w| w.checked_add(frac))
        .ok_or(e("too large"))
}

/// Nanotons as Toncoin in decimal, exactly (trailing zeros dropped).
pub fn format_ton(nanotons: u128) -> String {
    let whole = nanotons / NANOTONS_PER_TON;
    let frac = nanotons % NANOTONS_PER_TON;
    if frac == 0 {
        return whole.to_string();
    }
    let f = format!("{frac:09}");
    format!("{whole}.{}", f.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toncoin_amounts_are_exact() {
        assert_eq!(parse_ton("10"), Ok(10 * NANOTONS_PER_TON));
        assert_eq!(parse_ton("0.000000001"), Ok(1));
        assert_eq!(parse_ton(".5"), Ok(500_000_000));
        assert_eq!(parse_ton("3.25"), Ok(3_250_000_000));
        for bad in ["", ".", "1.0000000001", "-1", "1e9", "1,5", "one"] {
            assert!(parse_ton(bad).is_err(), "{bad}");
        }
        assert_eq!(format_ton(3_250_000_000), "3.25");
        assert_eq!(format_ton(1), "0.000000001");
        assert_eq!(format_ton(7 * NANOTONS_PER_TON), "7");
        for n in [0, 1, 999_999_999, 1_000_000_001, u64::MAX as u128] {
            assert_eq!(parse_ton(&format_ton(n)), Ok(n));
        }
    }

    #[test]
    fn deploys_are_non_bounceable_and_carry_the_state_init() {
        let dest = TonAddress::new(0, [3; 32].into());
        let body = crate::channel::finish_body().unwrap();
        let m = Message::new(&dest, 5, body.clone(), None).unwrap();
        assert!(m.address.starts_with("EQ"), "{}", m.address);
        assert!(m.state_init.is_none());
        let d = Message::new(&dest, 5, body.clone(), Some(body)).unwrap();
        assert!(d.address.starts_with("UQ"), "{}", d.address);
        let json = serde_json::to_value(&d).unwrap();
        assert!(json.get("stateInit").is_some());
    }
}
