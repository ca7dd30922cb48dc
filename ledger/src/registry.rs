//! The image registry's state, read off chain: which images (SNP launch digests, TDX
//! registers, model ids) its owner allows.
//!
//! Storage of `ledger/ton/contracts/registry.tolk` (byte layout in `ledger/ton/README.md`):
//! `registry_id:uint32 seqno:uint32 owner_key:uint256 images:(HashmapE 256 ^ImageEntry)`,
//! read with `tonlib-core`'s cell and dictionary parsers.

use std::collections::BTreeMap;

use tonlib_core::cell::dict::predefined_readers::{key_reader_256bit, val_reader_ref_cell};
use tonlib_core::cell::{ArcCell, BagOfCells, Cell, CellParser};

/// A 48-byte measurement (SNP launch digest, TDX MRTD or RTMR).
pub type Measurement = [u8; 48];

/// Why the registry's state could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistryError {
    /// The bytes are not a bag of cells with one root.
    #[error("registry.boc: {0}")]
    Boc(String),
    /// The data cell is not the registry's storage.
    #[error("registry.storage: {0}")]
    Storage(String),
    /// An entry does not parse.
    #[error("registry.entry {digest}: {detail}")]
    Entry {
        /// The entry's key (hex).
        digest: String,
        /// What is wrong.
        detail: String,
    },
}

/// One allowed image.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ImageEntry {
    /// The SEV-SNP launch digest, when the image runs on SNP.
    #[serde(with = "opt_hex")]
    pub snp_launch_digest: Option<Measurement>,
    /// The TDX MRTD, when the image runs on TDX.
    #[serde(with = "opt_hex")]
    pub tdx_mrtd: Option<Measurement>,
    /// TDX RTMR1 (firmware-measured kernel), when pinned.
    #[serde(with = "opt_hex")]
    pub tdx_rtmr1: Option<Measurement>,
    /// TDX RTMR2 (command line, initrd), when pinned.
    #[serde(with = "opt_hex")]
    pub tdx_rtmr2: Option<Measurement>,
    /// The model the image binds (`sha256:<hex>`).
    pub model_id: String,
    /// Free text from the owner.
    pub label: String,
}

/// The registry's state.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RegistryState {
    /// Binds the owner's messages to this registry.
    pub registry_id: u32,
    /// Changes accepted so far.
    pub seqno: u32,
    /// The owner's Ed25519 key.
    #[serde(with = "crate::hex_array")]
    pub owner_key: [u8; 32],
    /// Allowed images by digest (hex keys sort like the contract's uint256 keys).
    pub images: BTreeMap<String, ImageEntry>,
}

fn storage(e: impl std::fmt::Display) -> RegistryError {
    RegistryError::Storage(e.to_string())
}

/// Texts are short: the contract refuses those over 4 cells; a little slack here.
const MAX_TEXT_CELLS: usize = 8;

impl RegistryState {
    /// Reads the registry from its data cell as a bag of cells.
    pub fn from_data_boc(bytes: &[u8]) -> Result<Self, RegistryError> {
        let root = BagOfCells::parse(bytes)
            .and_then(|b| b.single_root())
            .map_err(|e| RegistryError::Boc(e.to_string()))?;
        Self::from_data_cell(&root)
    }

    /// Reads the registry from its data cell.
    pub fn from_data_cell(cell: &Cell) -> Result<Self, RegistryError> {
        let mut p = cell.parser();
        let registry_id = p.load_u32(32).map_err(storage)?;
        let seqno = p.load_u32(32).map_err(storage)?;
        let mut owner_key = [0u8; 32];
        p.load_slice(&mut owner_key).map_err(storage)?;
        let raw = p
            .load_dict(256, key_reader_256bit, val_reader_ref_cell)
            .map_err(storage)?;
        if p.remaining_bits() != 0 {
            return Err(storage("bits left after the images dictionary"));
        }
        let mut images = BTreeMap::new();
        for (key, entry) in raw {
            let digest = hex::encode(key.as_slice());
            let e = ImageEntry::from_cell(&entry).map_err(|detail| RegistryError::Entry {
                digest: digest.clone(),
                detail,
            })?;
            images.insert(digest, e);
        }
        Ok(Self {
            registry_id,
            seqno,
            owner_key,
            images,
        })
    }
}

fn maybe_measurement(p: &mut CellParser, what: &str) -> Result<Option<Measurement>, String> {
    if !p.load_bit().map_err(|e| format!("{what}: {e}"))? {
        return Ok(None);
    }
    let mut m = [0u8; 48];
    p.load_slice(&mut m).map_err(|e| format!("{what}: {e}"))?;
    Ok(Some(m))
}

/// A snake text: each cell's bytes, then its only reference's, recursively.
fn text(first: &ArcCell, what: &str) -> Result<String, String> {
    let mut bytes = Vec::new();
    let mut cell = first.clone();
    for _ in 0..MAX_TEXT_CELLS {
        if !cell.bit_len().is_multiple_of(8) {
            return Err(format!(
                "{what}: a cell of {} bits, not whole bytes",
                cell.bit_len()
            ));
        }
        bytes.extend_from_slice(&cell.data()[..cell.bit_len() / 8]);
        match cell.references() {
            [] => return String::from_utf8(bytes).map_err(|e| format!("{what}: {e}")),
            [next] => cell = next.clone(),
            _ => return Err(format!("{what}: a text cell with more than one reference")),
        }
    }
    Err(format!("{what}: longer than {MAX_TEXT_CELLS} cells"))
}

impl ImageEntry {
    fn from_cell(cell: &Cell) -> Result<Self, String> {
        let mut p = cell.parser();
        let snp_launch_digest = maybe_measurement(&mut p, "snp_launch_digest")?;
        let tdx_mrtd = maybe_measurement(&mut p, "tdx_mrtd")?;
        if p.remaining_bits() != 0 || cell.references().len() != 3 {
            return Err("not an ImageEntry (bits left over, or not three references)".into());
        }
        let refs = cell.references();
        let rtmrs = &refs[0];
        let mut r = rtmrs.parser();
        let tdx_rtmr1 = maybe_measurement(&mut r, "tdx_rtmr1")?;
        let tdx_rtmr2 = maybe_measurement(&mut r, "tdx_rtmr2")?;
        if r.remaining_bits() != 0 || !rtmrs.references().is_empty() {
            return Err("the RTMR cell has data left over".into());
        }
        Ok(Self {
            snp_launch_digest,
            tdx_mrtd,
            tdx_rtmr1,
            tdx_rtmr2,
            model_id: text(&refs[1], "model_id")?,
            label: text(&refs[2], "label")?,
        })
    }
}

mod opt_hex {
    pub fn serialize<S: serde::Serializer>(v: &Option<[u8; 48]>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_str(&hex::encode(b)),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn fixture(name: &str) -> String {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("ton/fixtures")
            .join(name);
        std::fs::read_to_string(p).unwrap()
    }

    /// The state the sandbox wrote (`ledger/ton/scripts/make-registry-dump.js`) reads back
    /// as exactly the entries the TypeScript side put in, two-cell label included.
    #[test]
    fn reads_the_sandbox_registry_dump() {
        let dump: serde_json::Value =
            serde_json::from_str(&fixture("registry-state.json")).unwrap();
        let truth: serde_json::Value =
            serde_json::from_str(&fixture("registry-entries.json")).unwrap();
        let data = base64::engine::general_purpose::STANDARD
            .decode(dump["result"]["data"].as_str().unwrap())
            .unwrap();
        let state = RegistryState::from_data_boc(&data).unwrap();
        assert_eq!(
            u64::from(state.registry_id),
            truth["registry_id"].as_u64().unwrap()
        );
        assert_eq!(u64::from(state.seqno), truth["seqno"].as_u64().unwrap());
        assert_eq!(
            hex::encode(state.owner_key),
            truth["owner_key"].as_str().unwrap()
        );
        let mut got = Vec::new();
        for (digest, e) in &state.images {
            let mut v = serde_json::to_value(e).unwrap();
            v["digest"] = digest.clone().into();
            got.push(v);
        }
        let want = truth["entries"].as_array().unwrap();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            for k in [
                "digest",
                "snp_launch_digest",
                "tdx_mrtd",
                "tdx_rtmr1",
                "tdx_rtmr2",
                "model_id",
                "label",
            ] {
                assert_eq!(g[k], w[k], "{k}");
            }
        }
        assert!(RegistryState::from_data_boc(&data[..data.len() - 3]).is_err());
    }
}
