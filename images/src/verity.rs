//! dm-verity hash trees, byte for byte as `veritysetup format` writes them.
//!
//! Parameters are fixed to what silk uses: format (hash type) 1, SHA-256, 4096-byte data
//! and hash blocks, a salt of at most 256 bytes, and a superblock. A block's digest is
//! SHA-256(salt || block). Level 0 holds the digests of the data blocks, 128 to a hash
//! block, zero-padded; each higher level holds the digests of the level below, until one
//! block remains; the root hash is the digest of that top block (of the only data block
//! when there is one). On the hash device the 512-byte superblock comes first, padded to a
//! hash block, then the levels from the top down (cryptsetup `lib/verity/verity_hash.c`).
//!
//! The whole tree is kept in memory while it is built: 1/128 of the data (80 MB for a
//! 10 GB model).

use sha2::{Digest, Sha256};
use std::io::{self, Read, Write};

pub mod cmdline;
mod disk;
mod served;
pub use cmdline::ModelVerity;
pub use disk::{
    build_model_disk, build_model_disk_with_progress, derived_params, ModelDisk, ModelDiskOptions,
};
pub use served::{build_served_disk, served_model_name, ServedDiskError};

/// Data and hash block size.
pub const BLOCK_SIZE: usize = 4096;
/// Digests per hash block (SHA-256: 32 bytes each).
const PER_BLOCK: usize = BLOCK_SIZE / 32;
/// The on-disk superblock is 512 bytes (`struct verity_sb`).
pub const SUPERBLOCK_SIZE: usize = 512;
/// Longest salt the superblock holds.
pub const MAX_SALT: usize = 256;

/// What went wrong building a hash tree.
#[derive(Debug, thiserror::Error)]
pub enum VerityError {
    /// Reading the data or writing the tree failed.
    #[error("dm-verity I/O: {0}")]
    Io(#[from] io::Error),
    /// A file operation failed.
    #[error("{op} {}: {source}", path.display())]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// What was being done to it.
        op: &'static str,
        /// The underlying error.
        source: io::Error,
    },
    /// The model file changed while the disk was being built from it.
    #[error("{} changed while the model disk was being built; nothing was written", .0.display())]
    ModelChanged(std::path::PathBuf),
    /// No data at all: dm-verity needs at least one block.
    #[error("dm-verity needs at least one data block; the input is empty")]
    Empty,
    /// The salt does not fit the superblock.
    #[error("dm-verity salt is {0} bytes; the superblock holds at most 256")]
    SaltTooLong(usize),
}

/// Salt and UUID of a hash device; everything else is fixed (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerityParams {
    /// Salt prepended to every block before hashing (`--salt`); may be empty.
    pub salt: Vec<u8>,
    /// UUID written in the superblock (`--uuid`); it does not affect the root hash.
    pub uuid: [u8; 16],
}

/// The result of formatting: what `veritysetup format` prints, and where things are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerityInfo {
    /// The root hash that the kernel command line (or the claims) must carry.
    pub root_hash: [u8; 32],
    /// The salt.
    pub salt: Vec<u8>,
    /// The superblock UUID.
    pub uuid: [u8; 16],
    /// Number of 4096-byte data blocks (the last one zero-padded).
    pub data_blocks: u64,
    /// Bytes of data actually read (before padding).
    pub data_size: u64,
    /// Byte offset of the superblock on the hash device (0 for a separate device).
    pub hash_offset: u64,
    /// Bytes of the hash area: superblock block plus all tree blocks.
    pub hash_size: u64,
}

impl VerityInfo {
    /// The root hash as lowercase hex, as `veritysetup` prints it.
    pub fn root_hex(&self) -> String {
        hex::encode(self.root_hash)
    }

    /// The hash block where the tree starts (right after the superblock's block).
    pub fn hash_start_block(&self) -> u64 {
        self.hash_offset / BLOCK_SIZE as u64 + 1
    }

    /// The device-mapper table line for this tree (`dmsetup create`, or the kernel's
    /// `dm-mod.create=`): the data device is exposed read-only, `data_blocks * 8` sectors.
    pub fn dm_table(&self, data_dev: &str, hash_dev: &str) -> String {
        let salt = if self.salt.is_empty() {
            "-".to_string()
        } else {
            hex::encode(&self.salt)
        };
        format!(
            "0 {} verity 1 {data_dev} {hash_dev} {BLOCK_SIZE} {BLOCK_SIZE} {} {} sha256 {} {salt}",
            self.data_blocks * (BLOCK_SIZE as u64 / 512),
            self.data_blocks,
            self.hash_start_block(),
            self.root_hex(),
        )
    }

    /// The UUID in its canonical text form, as `veritysetup --uuid` takes it.
    pub fn uuid_text(&self) -> String {
        uuid_text(&self.uuid)
    }
}

/// Formats a UUID's 16 bytes as `8-4-4-4-12` hex (big-endian, as libuuid does).
pub fn uuid_text(u: &[u8; 16]) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        hex::encode(&u[..4]),
        hex::encode(&u[4..6]),
        hex::encode(&u[6..8]),
        hex::encode(&u[8..10]),
        hex::encode(&u[10..])
    )
}

/// Builds a hash tree from data blocks fed in order.
#[derive(Debug)]
pub(crate) struct TreeBuilder {
    salt: Vec<u8>,
    level0: Vec<[u8; 32]>,
}

impl TreeBuilder {
    pub(crate) fn new(salt: &[u8]) -> Result<Self, VerityError> {
        if salt.len() > MAX_SALT {
            return Err(VerityError::SaltTooLong(salt.len()));
        }
        Ok(TreeBuilder {
            salt: salt.to_vec(),
            level0: Vec::new(),
        })
    }

    /// Adds one full data block.
    pub(crate) fn push(&mut self, block: &[u8; BLOCK_SIZE]) {
        let d = digest(&self.salt, block);
        self.level0.push(d);
    }

    /// Computes the upper levels and the root.
    pub(crate) fn finish(self) -> Result<Tree, VerityError> {
        let TreeBuilder { salt, level0 } = self;
        let data_blocks = level0.len() as u64;
        match level0.len() {
            0 => return Err(VerityError::Empty),
            // One data block: no hash levels, the root is that block's digest.
            1 => {
                return Ok(Tree {
                    root: level0[0],
                    levels: Vec::new(),
                    data_blocks,
                })
            }
            _ => {}
        }
        let mut levels: Vec<Vec<u8>> = Vec::new();
        let mut digests = level0;
        loop {
            let blocks = pack(&digests);
            digests = blocks
                .chunks_exact(BLOCK_SIZE)
                .map(|b| digest(&salt, b))
                .collect();
            levels.push(blocks);
            if let [root] = digests[..] {
                return Ok(Tree {
                    root,
                    levels,
                    data_blocks,
                });
            }
        }
    }
}

/// SHA-256(salt || block): format 1 puts the salt first (format 0, Chrome OS, after).
fn digest(salt: &[u8], block: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(block);
    h.finalize().into()
}

/// Packs digests into zero-padded hash blocks.
fn pack(digests: &[[u8; 32]]) -> Vec<u8> {
    let blocks = digests.len().div_ceil(PER_BLOCK);
    let mut out = vec![0u8; blocks * BLOCK_SIZE];
    for (i, d) in digests.iter().enumerate() {
        out[i * 32..i * 32 + 32].copy_from_slice(d);
    }
    out
}

/// A finished hash tree: levels bottom (0) up, each a whole number of hash blocks.
#[derive(Debug)]
pub(crate) struct Tree {
    pub(crate) root: [u8; 32],
    levels: Vec<Vec<u8>>,
    pub(crate) data_blocks: u64,
}

impl Tree {
    /// Bytes of the hash area: superblock block plus the levels.
    pub(crate) fn hash_size(&self) -> u64 {
        (BLOCK_SIZE + self.levels.iter().map(Vec::len).sum::<usize>()) as u64
    }

    /// Writes the superblock (padded to a hash block) then the levels, top first.
    pub(crate) fn write_hash_area(
        &self,
        out: &mut impl Write,
        params: &VerityParams,
    ) -> io::Result<()> {
        let mut first = [0u8; BLOCK_SIZE];
        first[..SUPERBLOCK_SIZE].copy_from_slice(&superblock(params, self.data_blocks));
        out.write_all(&first)?;
        for level in self.levels.iter().rev() {
            out.write_all(level)?;
        }
        Ok(())
    }
}

/// `struct verity_sb` (cryptsetup `lib/verity/verity.c`), little-endian, 512 bytes.
pub fn superblock(params: &VerityParams, data_blocks: u64) -> [u8; SUPERBLOCK_SIZE] {
    let mut sb = [0u8; SUPERBLOCK_SIZE];
    sb[0..8].copy_from_slice(b"verity\0\0"); // signature
    sb[8..12].copy_from_slice(&1u32.to_le_bytes()); // superblock version
    sb[12..16].copy_from_slice(&1u32.to_le_bytes()); // hash_type: 1 = normal
    sb[16..32].copy_from_slice(&params.uuid);
    sb[32..38].copy_from_slice(b"sha256"); // algorithm[32], NUL-padded
    sb[64..68].copy_from_slice(&(BLOCK_SIZE as u32).to_le_bytes()); // data_block_size
    sb[68..72].copy_from_slice(&(BLOCK_SIZE as u32).to_le_bytes()); // hash_block_size
    sb[72..80].copy_from_slice(&data_blocks.to_le_bytes());
    let n = params.salt.len().min(MAX_SALT);
    sb[80..82].copy_from_slice(&(n as u16).to_le_bytes()); // salt_size, then _pad1[6]
    sb[88..88 + n].copy_from_slice(&params.salt[..n]); // salt[256], then _pad2[168]
    sb
}

/// Reads into `buf` until it is full or the input ends; returns the bytes read.
pub(crate) fn read_block(r: &mut impl Read, buf: &mut [u8; BLOCK_SIZE]) -> io::Result<usize> {
    let mut n = 0;
    while n < BLOCK_SIZE {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf[n..].fill(0);
    Ok(n)
}

/// Hashes all of `data` (zero-padding its last block) and writes the hash device — the
/// superblock block, then the tree — to `out`, as `veritysetup format DATA HASH --salt ...
/// --uuid ...` would for a separate hash device. Returns the root hash and layout.
pub fn format(
    data: &mut impl Read,
    out: &mut impl Write,
    params: &VerityParams,
) -> Result<VerityInfo, VerityError> {
    let mut tree = TreeBuilder::new(&params.salt)?;
    let mut buf = [0u8; BLOCK_SIZE];
    let mut data_size = 0u64;
    loop {
        let n = read_block(data, &mut buf)?;
        if n == 0 {
            break;
        }
        data_size += n as u64;
        tree.push(&buf);
        if n < BLOCK_SIZE {
            break;
        }
    }
    let tree = tree.finish()?;
    tree.write_hash_area(out, params)?;
    Ok(VerityInfo {
        root_hash: tree.root,
        salt: params.salt.clone(),
        uuid: params.uuid,
        data_blocks: tree.data_blocks,
        data_size,
        hash_offset: 0,
        hash_size: tree.hash_size(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> VerityParams {
        VerityParams {
            salt: vec![0xaa; 32],
            uuid: *b"0123456789abcdef",
        }
    }

    #[test]
    fn superblock_fields() {
        let sb = superblock(&params(), 0x0102_0304_0506);
        assert_eq!(&sb[0..8], b"verity\0\0");
        assert_eq!(&sb[8..12], &[1, 0, 0, 0]);
        assert_eq!(&sb[12..16], &[1, 0, 0, 0]);
        assert_eq!(&sb[16..32], b"0123456789abcdef");
        assert_eq!(&sb[32..39], b"sha256\0");
        assert!(sb[38..64].iter().all(|&b| b == 0));
        assert_eq!(&sb[64..68], &4096u32.to_le_bytes());
        assert_eq!(&sb[68..72], &4096u32.to_le_bytes());
        assert_eq!(&sb[72..80], &0x0102_0304_0506u64.to_le_bytes());
        assert_eq!(&sb[80..82], &32u16.to_le_bytes());
        assert_eq!(&sb[82..88], &[0; 6]);
        assert_eq!(&sb[88..120], &[0xaa; 32]);
        assert!(sb[120..].iter().all(|&b| b == 0));
    }

    #[test]
    fn one_block_root_is_its_digest() {
        let mut out = Vec::new();
        let info = format(&mut &[7u8; 100][..], &mut out, &params()).unwrap();
        let mut block = vec![7u8; 100];
        block.resize(BLOCK_SIZE, 0);
        let mut h = Sha256::new();
        h.update([0xaa; 32]);
        h.update(&block);
        assert_eq!(info.root_hash, <[u8; 32]>::from(h.finalize()));
        assert_eq!(
            (info.data_blocks, info.data_size, info.hash_size),
            (1, 100, 4096)
        );
        assert_eq!(out.len(), 4096);
    }

    #[test]
    fn level_sizes() {
        // 129 blocks: level 0 is two hash blocks, level 1 one; tree after the superblock
        // is top level first.
        let data = vec![1u8; 129 * BLOCK_SIZE];
        let mut out = Vec::new();
        let info = format(&mut &data[..], &mut out, &params()).unwrap();
        assert_eq!(info.hash_size, 4 * BLOCK_SIZE as u64);
        let top = &out[BLOCK_SIZE..2 * BLOCK_SIZE];
        let mut h = Sha256::new();
        h.update([0xaa; 32]);
        h.update(top);
        assert_eq!(info.root_hash, <[u8; 32]>::from(h.finalize()));
        assert!(top[64..].iter().all(|&b| b == 0));
        assert_eq!(
            info.dm_table("/dev/vdb", "/dev/vdc"),
            format!(
                "0 1032 verity 1 /dev/vdb /dev/vdc 4096 4096 129 1 sha256 {} {}",
                info.root_hex(),
                "aa".repeat(32)
            )
        );
    }

    #[test]
    fn errors() {
        assert!(matches!(
            format(&mut &[][..], &mut Vec::new(), &params()),
            Err(VerityError::Empty)
        ));
        let long = VerityParams {
            salt: vec![0; 257],
            uuid: [0; 16],
        };
        assert!(matches!(
            format(&mut &[1u8][..], &mut Vec::new(), &long),
            Err(VerityError::SaltTooLong(257))
        ));
        assert_eq!(
            uuid_text(b"\x01\x23\x45\x67\x89\xab\xcd\xef\x01\x23\x45\x67\x89\xab\xcd\xef"),
            "01234567-89ab-cdef-0123-456789abcdef"
        );
    }
}
