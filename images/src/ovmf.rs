//! The GUIDed table at the end of an OVMF firmware volume.
//!
//! OVMF's reset vector (edk2 `OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.asm`) ends with a
//! table that the VMM and the measurement code read without running the firmware: where
//! the SEV-ES AP reset vector is, where the SEV metadata (the pages launched before the
//! guest runs) and the TDX metadata (TDVF sections) live, where QEMU puts the SEV hashes
//! table. The table sits just before the last 32 bytes of the image and grows backwards:
//! each entry is `data || u16 size || GUID`, `size` counting the 18-byte trailer too, and
//! the last entry (nearest the end) is a footer whose size covers the whole table.

use std::fmt;

/// Bytes after the table: the reset vector jump and padding, fixed by edk2.
const TAIL: usize = 32;
/// An entry's trailer: u16 size then a 16-byte GUID.
const ENTRY_TRAILER: usize = 18;

/// A GUID as edk2 stores it: the first three fields little-endian (`bytes_le`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// Builds a GUID from its canonical text fields, stored in edk2's byte order.
    pub const fn new(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> Self {
        let a = d1.to_le_bytes();
        let b = d2.to_le_bytes();
        let c = d3.to_le_bytes();
        Guid([
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4],
            d4[5], d4[6], d4[7],
        ])
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = &self.0;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{}-{}",
            u32::from_le_bytes([g[0], g[1], g[2], g[3]]),
            u16::from_le_bytes([g[4], g[5]]),
            u16::from_le_bytes([g[6], g[7]]),
            hex::encode(&g[8..10]),
            hex::encode(&g[10..16]),
        )
    }
}

/// The footer entry that frames the table.
pub const TABLE_FOOTER_GUID: Guid = Guid::new(
    0x96b582de,
    0x1fb2,
    0x45f7,
    [0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d],
);
/// SEV-ES reset block: u32 AP reset EIP.
pub const SEV_ES_RESET_BLOCK_GUID: Guid = Guid::new(
    0x00f771de,
    0x1a7e,
    0x4fcb,
    [0x89, 0x0e, 0x68, 0xc7, 0x7e, 0x2f, 0xb4, 0x4e],
);
/// Where QEMU writes the SEV hashes table: u32 GPA, u32 size.
pub const SEV_HASH_TABLE_RV_GUID: Guid = Guid::new(
    0x7255371f,
    0x3a3b,
    0x4b04,
    [0x92, 0x7b, 0x1d, 0xa6, 0xef, 0xa8, 0xd4, 0x54],
);
/// SEV metadata: u32 offset of its header from the end of the image.
pub const SEV_METADATA_GUID: Guid = Guid::new(
    0xdc886566,
    0x984a,
    0x4798,
    [0xa7, 0x5e, 0x55, 0x85, 0xa7, 0xbf, 0x67, 0xcc],
);
/// TDX metadata (TDVF descriptor): u32 offset of the descriptor from the end of the image.
pub const TDX_METADATA_GUID: Guid = Guid::new(
    0xe47a6535,
    0x984a,
    0x4798,
    [0x86, 0x5e, 0x46, 0x85, 0xa7, 0xbf, 0x8e, 0xc2],
);

/// What is wrong with a firmware image's GUIDed table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OvmfError {
    /// The image cannot hold the table's tail at all.
    #[error("firmware image is {0} bytes, too small to hold an OVMF GUIDed table")]
    TooSmall(usize),
    /// The footer GUID is not where edk2 puts it: not an OVMF image, or a truncated one.
    #[error("no OVMF table footer GUID at 50 bytes before the end (found {0})")]
    NoFooter(Guid),
    /// A size field points outside the image or below the entry trailer size.
    #[error("OVMF table entry {guid} has a bad size {size}")]
    BadEntrySize {
        /// The entry whose size is wrong.
        guid: Guid,
        /// The size it claims.
        size: usize,
    },
    /// An entry the caller needs is absent.
    #[error("OVMF table has no {name} entry ({guid}); is this the right firmware build?")]
    MissingEntry {
        /// Human name of the entry.
        name: &'static str,
        /// Its GUID.
        guid: Guid,
    },
    /// An entry is shorter than its fixed layout.
    #[error("OVMF table entry {name} is {len} bytes, expected at least {need}")]
    ShortEntry {
        /// Human name of the entry.
        name: &'static str,
        /// Its length.
        len: usize,
        /// The length its layout needs.
        need: usize,
    },
}

/// The entries of an OVMF GUIDed table, in the order they appear walking backwards.
#[derive(Debug, Clone)]
pub struct OvmfTable<'a> {
    entries: Vec<(Guid, &'a [u8])>,
}

impl<'a> OvmfTable<'a> {
    /// Parses the table at the end of `image`.
    pub fn parse(image: &'a [u8]) -> Result<Self, OvmfError> {
        let footer_end = image
            .len()
            .checked_sub(TAIL)
            .filter(|&e| e >= ENTRY_TRAILER)
            .ok_or(OvmfError::TooSmall(image.len()))?;
        let (size, guid) = trailer(image, footer_end);
        if guid != TABLE_FOOTER_GUID {
            return Err(OvmfError::NoFooter(guid));
        }
        let table_start = footer_end
            .checked_sub(size)
            .filter(|_| size >= ENTRY_TRAILER)
            .ok_or(OvmfError::BadEntrySize { guid, size })?;
        let table = &image[table_start..footer_end - ENTRY_TRAILER];

        let mut entries = Vec::new();
        let mut end = table.len();
        while end >= ENTRY_TRAILER {
            let (size, guid) = trailer(table, end);
            let start = end
                .checked_sub(size)
                .filter(|_| size >= ENTRY_TRAILER)
                .ok_or(OvmfError::BadEntrySize { guid, size })?;
            entries.push((guid, &table[start..end - ENTRY_TRAILER]));
            end = start;
        }
        Ok(OvmfTable { entries })
    }

    /// The data of the entry with this GUID, if present.
    pub fn get(&self, guid: &Guid) -> Option<&'a [u8]> {
        self.entries
            .iter()
            .find(|(g, _)| g == guid)
            .map(|(_, data)| *data)
    }

    /// All entries, nearest the end of the image first.
    pub fn entries(&self) -> &[(Guid, &'a [u8])] {
        &self.entries
    }

    /// The little-endian u32 at the start of a required entry.
    pub fn u32_at(&self, guid: &Guid, name: &'static str, index: usize) -> Result<u32, OvmfError> {
        let data = self
            .get(guid)
            .ok_or(OvmfError::MissingEntry { name, guid: *guid })?;
        let need = 4 * (index + 1);
        data.get(4 * index..need)
            .map(le_u32)
            .ok_or(OvmfError::ShortEntry {
                name,
                len: data.len(),
                need,
            })
    }
}

/// Reads the `u16 size || GUID` trailer that ends at `end` (caller checked `end >= 18`).
fn trailer(bytes: &[u8], end: usize) -> (usize, Guid) {
    let t = &bytes[end - ENTRY_TRAILER..end];
    let size = usize::from(u16::from_le_bytes([t[0], t[1]]));
    let mut guid = [0u8; 16];
    guid.copy_from_slice(&t[2..18]);
    (size, Guid(guid))
}

/// Little-endian u32 of a 4-byte slice (callers slice exactly 4 bytes).
pub(crate) fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

/// Little-endian u64 of an 8-byte slice (callers slice exactly 8 bytes).
pub(crate) fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds an image whose table holds `entries` (first = nearest the footer).
    pub(crate) fn image_with(entries: &[(Guid, Vec<u8>)], len: usize) -> Vec<u8> {
        let mut table = Vec::new();
        for (guid, data) in entries.iter().rev() {
            table.extend_from_slice(data);
            table.extend_from_slice(&((data.len() + 18) as u16).to_le_bytes());
            table.extend_from_slice(&guid.0);
        }
        table.extend_from_slice(&((table.len() + 18) as u16).to_le_bytes());
        table.extend_from_slice(&TABLE_FOOTER_GUID.0);
        let mut image = vec![0u8; len - TAIL - table.len()];
        image.extend_from_slice(&table);
        image.extend_from_slice(&[0u8; TAIL]);
        image
    }

    #[test]
    fn guid_text_round_trip() {
        assert_eq!(
            TABLE_FOOTER_GUID.to_string(),
            "96b582de-1fb2-45f7-baea-a366c55a082d"
        );
        // edk2 byte order: first field little-endian.
        assert_eq!(&TABLE_FOOTER_GUID.0[..4], &[0xde, 0x82, 0xb5, 0x96]);
    }

    #[test]
    fn parses_entries_backwards() {
        let image = image_with(
            &[
                (
                    SEV_ES_RESET_BLOCK_GUID,
                    0x0080_b004u32.to_le_bytes().to_vec(),
                ),
                (SEV_METADATA_GUID, 0x52cu32.to_le_bytes().to_vec()),
            ],
            4096,
        );
        let t = OvmfTable::parse(&image).unwrap();
        assert_eq!(t.entries().len(), 2);
        assert_eq!(t.entries()[0].0, SEV_ES_RESET_BLOCK_GUID);
        assert_eq!(
            t.u32_at(&SEV_ES_RESET_BLOCK_GUID, "reset", 0).unwrap(),
            0x0080_b004
        );
        assert_eq!(t.u32_at(&SEV_METADATA_GUID, "meta", 0).unwrap(), 0x52c);
        assert!(matches!(
            t.u32_at(&SEV_METADATA_GUID, "meta", 1),
            Err(OvmfError::ShortEntry { need: 8, .. })
        ));
        assert!(matches!(
            t.u32_at(&TDX_METADATA_GUID, "tdx", 0),
            Err(OvmfError::MissingEntry { .. })
        ));
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        assert_eq!(
            OvmfTable::parse(&[0u8; 10]).unwrap_err(),
            OvmfError::TooSmall(10)
        );
        assert!(matches!(
            OvmfTable::parse(&[0u8; 4096]),
            Err(OvmfError::NoFooter(_))
        ));
        // Footer claims a table larger than the image.
        let mut image = image_with(&[], 64);
        let at = image.len() - TAIL - ENTRY_TRAILER;
        image[at..at + 2].copy_from_slice(&0xffffu16.to_le_bytes());
        assert!(matches!(
            OvmfTable::parse(&image),
            Err(OvmfError::BadEntrySize { size: 0xffff, .. })
        ));
        // An entry whose size is below its own trailer.
        let mut image = image_with(&[(SEV_METADATA_GUID, vec![1, 2, 3, 4])], 128);
        let at = image.len() - TAIL - 2 * ENTRY_TRAILER;
        image[at..at + 2].copy_from_slice(&3u16.to_le_bytes());
        assert!(matches!(
            OvmfTable::parse(&image),
            Err(OvmfError::BadEntrySize { size: 3, .. })
        ));
    }
}
