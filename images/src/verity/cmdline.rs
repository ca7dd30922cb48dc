//! A model disk's dm-verity identity as the kernel command line carries it.
//!
//! The guest's init opens the model only through dm-verity, with the parameters it reads
//! from `/proc/cmdline`. The command line is part of the launch measurement (SNP
//! `kernel-hashes=on`, TDX RTMR2), so a verifier that checks the measurement also checks
//! which model the guest will accept. The keys are:
//!
//! ```text
//! silk.verity=ROOT_HEX  silk.verity_salt=HEX|-  silk.verity_blocks=N
//! silk.verity_hash_offset=BYTES  silk.model_size=BYTES  [silk.model_name=NAME]
//! ```
//!
//! Separate keys rather than one `dm-mod.create=` table: Debian builds dm-verity as a
//! module, so the kernel's early `dm-mod.create=` cannot set it up, and the table has
//! spaces, which the init's word splitting of `/proc/cmdline` would break.

use super::{ModelDisk, VerityInfo, BLOCK_SIZE, MAX_SALT};
use crate::manifest::cmdline_value;

/// The root hash key (its presence is what makes an image verity-bound).
pub const KEY_ROOT: &str = "silk.verity";
/// The salt key (`-` for an empty salt, as in a dm table).
pub const KEY_SALT: &str = "silk.verity_salt";
/// The number of 4096-byte data blocks.
pub const KEY_BLOCKS: &str = "silk.verity_blocks";
/// The byte offset of the verity superblock on the disk.
pub const KEY_HASH_OFFSET: &str = "silk.verity_hash_offset";
/// The model's length in bytes (the device is a whole number of blocks).
pub const KEY_MODEL_SIZE: &str = "silk.model_size";
/// The name the enclave serves the model under (optional).
pub const KEY_MODEL_NAME: &str = "silk.model_name";

/// What the command line says about the model disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelVerity {
    /// The dm-verity root hash.
    pub root_hash: [u8; 32],
    /// The salt.
    pub salt: Vec<u8>,
    /// Data blocks (4096 bytes each) covered by the tree.
    pub data_blocks: u64,
    /// Where the superblock sits on the disk, in bytes.
    pub hash_offset: u64,
    /// The model's length in bytes.
    pub model_size: u64,
    /// The served model name, when one is set.
    pub model_name: Option<String>,
}

/// Why a command line's verity keys are unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmdlineError {
    /// A key the others need is absent.
    #[error("kernel command line has {KEY_ROOT}= but no {0}=")]
    Missing(&'static str),
    /// A value does not parse or is out of range.
    #[error("kernel command line {key}={value:?}: {reason}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// Its value.
        value: String,
        /// What is wrong.
        reason: &'static str,
    },
}

/// A served model name from a file name: its stem, when it is a plain token that can sit
/// on a kernel command line and in an OpenAI `model` field unchanged.
pub fn served_name(file_name: &str) -> Option<String> {
    let stem = std::path::Path::new(file_name).file_stem()?.to_str()?;
    let ok = !stem.is_empty()
        && stem.len() <= 128
        && stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    ok.then(|| stem.to_string())
}

impl ModelVerity {
    /// The identity of a model disk just built, served as `model_name`.
    pub fn from_disk(disk: &ModelDisk, model_name: Option<String>) -> Self {
        ModelVerity {
            root_hash: disk.verity.root_hash,
            salt: disk.verity.salt.clone(),
            data_blocks: disk.verity.data_blocks,
            hash_offset: disk.verity.hash_offset,
            model_size: disk.model_size,
            model_name,
        }
    }

    /// The model identity the enclave's claims carry: `verity:<root hex>`.
    pub fn model_id(&self) -> String {
        format!("verity:{}", hex::encode(self.root_hash))
    }

    /// The command line fragment (keys in a fixed order, space-separated).
    pub fn cmdline(&self) -> String {
        let salt = if self.salt.is_empty() {
            "-".to_string()
        } else {
            hex::encode(&self.salt)
        };
        let mut s = format!(
            "{KEY_ROOT}={} {KEY_SALT}={salt} {KEY_BLOCKS}={} {KEY_HASH_OFFSET}={} {KEY_MODEL_SIZE}={}",
            hex::encode(self.root_hash),
            self.data_blocks,
            self.hash_offset,
            self.model_size,
        );
        if let Some(name) = &self.model_name {
            s.push_str(&format!(" {KEY_MODEL_NAME}={name}"));
        }
        s
    }

    /// The device-mapper table the guest loads, with the model disk as both the data and
    /// the hash device.
    pub fn dm_table(&self, device: &str) -> String {
        self.info().dm_table(device, device)
    }

    fn info(&self) -> VerityInfo {
        VerityInfo {
            root_hash: self.root_hash,
            salt: self.salt.clone(),
            uuid: [0; 16],
            data_blocks: self.data_blocks,
            data_size: self.model_size,
            hash_offset: self.hash_offset,
            hash_size: 0,
        }
    }

    /// Reads the keys from a command line: `Ok(None)` when it has no `silk.verity=`.
    pub fn from_cmdline(cmdline: &str) -> Result<Option<Self>, CmdlineError> {
        let Some(root) = cmdline_value(cmdline, KEY_ROOT) else {
            return Ok(None);
        };
        let get = |key| cmdline_value(cmdline, key).ok_or(CmdlineError::Missing(key));
        let invalid = |key, value: &str, reason| CmdlineError::Invalid {
            key,
            value: value.to_string(),
            reason,
        };
        let root_hash = hex::decode(root)
            .ok()
            .and_then(|v| <[u8; 32]>::try_from(v).ok())
            .ok_or_else(|| invalid(KEY_ROOT, root, "expected 64 hex digits"))?;
        let salt_text = get(KEY_SALT)?;
        let salt = if salt_text == "-" {
            Vec::new()
        } else {
            hex::decode(salt_text)
                .ok()
                .filter(|s| s.len() <= MAX_SALT)
                .ok_or_else(|| {
                    invalid(KEY_SALT, salt_text, "expected `-` or up to 256 hex bytes")
                })?
        };
        let number = |key| -> Result<u64, CmdlineError> {
            let v = get(key)?;
            v.parse()
                .map_err(|_| invalid(key, v, "expected a decimal number"))
        };
        let data_blocks = number(KEY_BLOCKS)?;
        let hash_offset = number(KEY_HASH_OFFSET)?;
        let model_size = number(KEY_MODEL_SIZE)?;
        let block = BLOCK_SIZE as u64;
        let data_bytes = data_blocks
            .checked_mul(block)
            .filter(|_| data_blocks > 0)
            .ok_or_else(|| invalid(KEY_BLOCKS, &data_blocks.to_string(), "out of range"))?;
        if hash_offset % block != 0 || hash_offset < data_bytes {
            return Err(invalid(
                KEY_HASH_OFFSET,
                &hash_offset.to_string(),
                "must be a multiple of 4096 at or after the data blocks",
            ));
        }
        if model_size > data_bytes || model_size + block <= data_bytes {
            return Err(invalid(
                KEY_MODEL_SIZE,
                &model_size.to_string(),
                "must end inside the last data block",
            ));
        }
        let model_name = match cmdline_value(cmdline, KEY_MODEL_NAME) {
            None => None,
            Some(n) if served_name(&format!("{n}.x")).as_deref() == Some(n) => Some(n.to_string()),
            Some(n) => return Err(invalid(KEY_MODEL_NAME, n, "expected [A-Za-z0-9._-]+")),
        };
        Ok(Some(ModelVerity {
            root_hash,
            salt,
            data_blocks,
            hash_offset,
            model_size,
            model_name,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ModelVerity {
        ModelVerity {
            root_hash: [0xab; 32],
            salt: vec![1, 2, 3],
            data_blocks: 3,
            hash_offset: 3 * 4096,
            model_size: 2 * 4096 + 5,
            model_name: Some("SmolLM2-135M-Instruct.Q4_1".into()),
        }
    }

    #[test]
    fn round_trips_through_a_command_line() {
        let v = sample();
        let line = format!("console=ttyS0 {} quiet", v.cmdline());
        assert_eq!(ModelVerity::from_cmdline(&line).unwrap(), Some(v.clone()));
        let mut empty = v.clone();
        empty.salt.clear();
        empty.model_name = None;
        assert!(empty.cmdline().contains("silk.verity_salt=-"));
        assert_eq!(
            ModelVerity::from_cmdline(&empty.cmdline()).unwrap(),
            Some(empty)
        );
        assert_eq!(ModelVerity::from_cmdline("console=ttyS0").unwrap(), None);
        assert_eq!(v.model_id(), format!("verity:{}", "ab".repeat(32)));
        assert_eq!(
            v.dm_table("/dev/vda"),
            format!(
                "0 24 verity 1 /dev/vda /dev/vda 4096 4096 3 4 sha256 {} 010203",
                "ab".repeat(32)
            )
        );
    }

    #[test]
    fn rejects_inconsistent_values() {
        let line = sample().cmdline();
        let bad =
            |from: &str, to: &str| ModelVerity::from_cmdline(&line.replace(from, to)).unwrap_err();
        assert!(matches!(
            bad("silk.verity_blocks=3", ""),
            CmdlineError::Missing(KEY_BLOCKS)
        ));
        assert!(bad("silk.verity=abab", "silk.verity=zz")
            .to_string()
            .contains("64 hex"));
        assert!(bad("hash_offset=12288", "hash_offset=100")
            .to_string()
            .contains("4096"));
        assert!(bad("model_size=8197", "model_size=99999")
            .to_string()
            .contains("last data block"));
        assert!(bad("model_size=8197", "model_size=4096")
            .to_string()
            .contains("last data block"));
        assert!(bad("Q4_1", "Q4/1").to_string().contains("model_name"));
    }

    #[test]
    fn served_names_are_plain_tokens() {
        assert_eq!(served_name("a/b.gguf").as_deref(), Some("b"));
        assert_eq!(
            served_name("SmolLM2.Q4_1.gguf").as_deref(),
            Some("SmolLM2.Q4_1")
        );
        assert_eq!(served_name("my model.gguf"), None);
        assert_eq!(served_name(".gguf").as_deref(), Some(".gguf"));
    }
}
