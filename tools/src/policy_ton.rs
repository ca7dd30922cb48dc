//! `silk policy from-ton`: a client policy allowing exactly the images the TON image
//! registry lists, read from its state (a dump offline, or a TON HTTP API).
//!
//! The registry's owner governs the list on chain; this turns it into the `[snp]`
//! measurements and `[[tdx.measurements]]` the verifier checks. Each entry's model is
//! bound by its measurement (the model's dm-verity root is on the measured command line),
//! so `--model` keeps only the images serving that model.

use std::io::Write;
use std::path::PathBuf;

use base64::Engine;
use hyper::Uri;
use silk_attestation::Policy;
use silk_ledger::registry::{ImageEntry, RegistryState};

/// `silk policy` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum PolicyCommand {
    /// Build a policy from the TON image registry's state.
    FromTon {
        /// The registry's state: a TON HTTP API `getAddressInformation` answer (JSON), or
        /// the contract's data cell as a bag of cells (binary or base64).
        #[arg(long, conflicts_with = "ton_api", required_unless_present = "ton_api")]
        state: Option<PathBuf>,
        /// A TON HTTP API (toncenter v2 style, e.g. https://toncenter.com/api/v2) to read
        /// the state from, with `--address`.
        #[arg(long, requires = "address")]
        ton_api: Option<String>,
        /// The registry contract's address (with `--ton-api`).
        #[arg(long)]
        address: Option<String>,
        /// Keep only the images serving this model id (`sha256:<hex>`).
        #[arg(long)]
        model: Option<String>,
        /// Where to write the policy (TOML); stdout when absent.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
}

/// Why `silk policy` failed (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PolicyCmdError(String);

fn err(e: impl std::fmt::Display) -> PolicyCmdError {
    PolicyCmdError(e.to_string())
}

/// Runs `silk policy`.
pub fn run(cmd: PolicyCommand, stdout: &mut dyn Write) -> Result<(), PolicyCmdError> {
    let PolicyCommand::FromTon {
        state,
        ton_api,
        address,
        model,
        out,
    } = cmd;
    let (bytes, source) = match (state, ton_api, address) {
        (Some(path), _, _) => (
            std::fs::read(&path).map_err(|e| err(format!("--state {}: {e}", path.display())))?,
            format!("the state file {}", path.display()),
        ),
        (None, Some(api), Some(addr)) => (fetch(&api, &addr)?, format!("{addr} via {api}")),
        _ => return Err(err("give --state FILE, or --ton-api URL with --address")),
    };
    let state = RegistryState::from_data_boc(&data_cell(&bytes)?).map_err(err)?;
    let text = policy_toml(&state, model.as_deref(), &source)?;
    match out {
        Some(path) => {
            crate::pay::write_whole(&path, text.as_bytes()).map_err(err)?;
            let _ = writeln!(stdout, "policy written to {}", path.display());
        }
        None => {
            let _ = write!(stdout, "{text}");
        }
    }
    Ok(())
}

/// The data cell's bag of cells, from whichever form the state came in.
fn data_cell(bytes: &[u8]) -> Result<Vec<u8>, PolicyCmdError> {
    let b64 = |s: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .map_err(|e| err(format!("registry state: base64: {e}")))
    };
    // A bag of cells starts with its magic b5ee9c72.
    if bytes.starts_with(&[0xb5, 0xee, 0x9c, 0x72]) {
        return Ok(bytes.to_vec());
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| err("registry state: neither a bag of cells nor text"))?;
    if !text.trim_start().starts_with('{') {
        return b64(text);
    }
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| err(format!("registry state: {e}")))?;
    if v.get("ok") == Some(&serde_json::Value::Bool(false)) {
        return Err(err(format!(
            "registry state: the TON API answered an error: {}",
            v.get("error").unwrap_or(&v)
        )));
    }
    let result = v.get("result").unwrap_or(&v);
    if let Some(state) = result.get("state").and_then(|s| s.as_str()) {
        if state != "active" {
            return Err(err(format!(
                "registry state: the account is {state}, not an active contract"
            )));
        }
    }
    let data = result
        .get("data")
        .and_then(|d| d.as_str())
        .ok_or_else(|| err("registry state: no `data` (the contract's data cell) in the JSON"))?;
    b64(data)
}

fn policy_toml(
    state: &RegistryState,
    model: Option<&str>,
    source: &str,
) -> Result<String, PolicyCmdError> {
    use std::fmt::Write as _;
    let chosen: Vec<(&String, &ImageEntry)> = state
        .images
        .iter()
        .filter(|(_, e)| model.is_none_or(|m| e.model_id == m))
        .collect();
    if chosen.is_empty() {
        return Err(err(match model {
            Some(m) => format!("the registry allows no image serving {m}"),
            None => "the registry allows no image".into(),
        }));
    }
    let mut s = String::new();
    let _ = writeln!(s, "# Written by `silk policy from-ton` from {source}");
    let _ = writeln!(
        s,
        "# (registry id {}, seqno {}, owner key {}).",
        state.registry_id,
        state.seqno,
        hex::encode(state.owner_key)
    );
    if let Some(m) = model {
        let _ = writeln!(s, "# Only images serving {m}.");
    }
    s.push_str("# Allowed images:\n");
    for (digest, e) in &chosen {
        let label: String = e.label.chars().filter(|c| !c.is_control()).collect();
        let _ = writeln!(s, "#   {digest}: {label} (model {})", e.model_id);
    }
    let snp: Vec<_> = chosen
        .iter()
        .filter_map(|(_, e)| e.snp_launch_digest)
        .collect();
    if !snp.is_empty() {
        s.push_str("# min_tcb below accepts any TCB: raise it to the firmware versions you require.\n\n[snp]\n");
        let list: Vec<String> = snp
            .iter()
            .map(|d| format!("\"{}\"", hex::encode(d)))
            .collect();
        let _ = writeln!(s, "measurements = [{}]", list.join(", "));
        s.push_str("min_tcb = { bootloader = 0, tee = 0, snp = 0, microcode = 0 }\n");
    }
    let tdx: Vec<_> = chosen
        .iter()
        .filter(|(_, e)| e.tdx_mrtd.is_some())
        .collect();
    if !tdx.is_empty() {
        s.push_str("\n[tdx]\n");
        for (_, e) in tdx {
            s.push_str("\n[[tdx.measurements]]\n");
            let hex_row = |s: &mut String, k: &str, v: &Option<[u8; 48]>| {
                if let Some(v) = v {
                    let _ = writeln!(s, "{k} = \"{}\"", hex::encode(v));
                }
            };
            hex_row(&mut s, "mrtd", &e.tdx_mrtd);
            hex_row(&mut s, "rtmr1", &e.tdx_rtmr1);
            hex_row(&mut s, "rtmr2", &e.tdx_rtmr2);
        }
    }
    Policy::from_toml(&s).map_err(|e| err(format!("the policy built does not load: {e}")))?;
    Ok(s)
}

/// A registry of a few hundred images is well under this.
const MAX_ANSWER: usize = 4 << 20;

/// GETs `api/getAddressInformation?address=…` ([`crate::oneshot`]).
fn fetch(api: &str, address: &str) -> Result<Vec<u8>, PolicyCmdError> {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("address", address)
        .finish();
    let url = format!(
        "{}/getAddressInformation?{query}",
        api.trim_end_matches('/')
    );
    let uri: Uri = url
        .parse()
        .map_err(|e| err(format!("--ton-api {api:?}: {e}")))?;
    let (status, body) = crate::oneshot::exchange(hyper::Method::GET, &uri, None, MAX_ANSWER)
        .map_err(|e| err(format!("--ton-api {api}: {e}")))?;
    if !status.is_success() {
        return Err(err(format!(
            "--ton-api: {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        )));
    }
    Ok(body.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dump() -> Vec<u8> {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../ledger/ton/fixtures/registry-state.json"),
        )
        .unwrap()
    }

    #[test]
    fn every_state_form_gives_the_same_policy() {
        let boc = data_cell(&dump()).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&boc);
        assert_eq!(data_cell(&boc).unwrap(), boc);
        assert_eq!(data_cell(b64.as_bytes()).unwrap(), boc);
        let bare = format!("{{\"data\": \"{b64}\"}}");
        assert_eq!(data_cell(bare.as_bytes()).unwrap(), boc);
        let frozen =
            format!("{{\"ok\": true, \"result\": {{\"state\": \"frozen\", \"data\": \"{b64}\"}}}}");
        assert!(data_cell(frozen.as_bytes())
            .unwrap_err()
            .0
            .contains("frozen"));
        let failed = br#"{"ok": false, "error": "rate limited", "code": 429}"#;
        assert!(data_cell(failed).unwrap_err().0.contains("rate limited"));
    }
}
