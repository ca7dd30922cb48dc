//! The TDX event log, as the guest kernel exports it from the ACPI CCEL table.
//!
//! TDVF describes its event log in the CCEL table (ACPI 6.5, §5.2.34 "Confidential
//! Computing Event Log Table": after the 36-byte header, CC type, subtype, two reserved
//! bytes, the log area's minimum length LAML and start address LASA). Linux exports the
//! table at `/sys/firmware/acpi/tables/CCEL` and the log area itself at
//! `/sys/firmware/acpi/tables/data/CCEL`, so the log is read as a file, never through
//! `/dev/mem`. The area is LAML bytes, mostly 0xFF padding; what is served is the events
//! only, checked to parse with the verifier's own parser.

use std::io::Read;
use std::path::Path;

use silk_protocol::attestation::tdx::event_log::{EventLog, MAX_LOG_BYTES};

use super::configfs::io_err;
use super::EvidenceError;

/// The CCEL table, below the filesystem root.
pub const TABLE: &str = "sys/firmware/acpi/tables/CCEL";
/// The log area the kernel exports, below the filesystem root.
pub const DATA: &str = "sys/firmware/acpi/tables/data/CCEL";
/// CCEL's CC type for Intel TDX (ACPI 6.5, table 5.180).
pub const CC_TYPE_TDX: u8 = 2;

/// The fields of the CCEL table that locate the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CcelTable {
    /// The confidential-computing type (2 for TDX).
    pub cc_type: u8,
    /// Its subtype.
    pub cc_subtype: u8,
    /// Log area minimum length.
    pub laml: u64,
    /// Log area start address (guest physical).
    pub lasa: u64,
}

/// Parses the CCEL table (its 56 bytes; the header's length must cover them).
pub fn parse_table(bytes: &[u8]) -> Result<CcelTable, EvidenceError> {
    let bad = |why: &str| EvidenceError::Malformed(format!("ACPI CCEL table: {why}"));
    if bytes.get(..4) != Some(b"CCEL") {
        return Err(bad("its signature is not CCEL"));
    }
    if bytes.len() < 56 {
        return Err(bad("shorter than 56 bytes"));
    }
    let len = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
    if len < 56 || len > bytes.len() {
        return Err(bad("its length field does not cover the log's address"));
    }
    let u64_at = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(b)
    };
    Ok(CcelTable {
        cc_type: bytes[36],
        cc_subtype: bytes[37],
        laml: u64_at(40),
        lasa: u64_at(48),
    })
}

/// Reads the event log below `root` (`/` in a guest): `Ok(None)` where the kernel exports
/// none (not a TDX guest, or a kernel without the CCEL data file); the events without the
/// padding otherwise. A log that does not parse is an error, naming why.
pub fn read(root: &Path) -> Result<Option<Vec<u8>>, EvidenceError> {
    let data = root.join(DATA);
    if !data.exists() {
        return Ok(None);
    }
    let table_path = root.join(TABLE);
    let limit = match std::fs::read(&table_path) {
        Ok(bytes) => {
            let table = parse_table(&bytes)?;
            if table.cc_type != CC_TYPE_TDX {
                return Ok(None);
            }
            usize::try_from(table.laml).map_or(MAX_LOG_BYTES, |l| l.min(MAX_LOG_BYTES))
        }
        // The data file alone is enough; the table only bounds it.
        Err(_) => MAX_LOG_BYTES,
    };
    let file = std::fs::File::open(&data).map_err(io_err("open", &data))?;
    let mut raw = Vec::new();
    file.take(limit as u64)
        .read_to_end(&mut raw)
        .map_err(io_err("read", &data))?;
    let log = EventLog::parse(&raw)
        .map_err(|e| EvidenceError::Malformed(format!("{}: {e}", data.display())))?;
    raw.truncate(log.length);
    Ok(Some(raw))
}

#[cfg(test)]
mod tests {
    use super::*;
    use silk_protocol::attestation::tdx::event_log::LogWriter;
    use std::path::PathBuf;

    fn table(cc_type: u8, laml: u64) -> Vec<u8> {
        let mut t = vec![0u8; 56];
        t[..4].copy_from_slice(b"CCEL");
        t[4..8].copy_from_slice(&56u32.to_le_bytes());
        t[36] = cc_type;
        t[40..48].copy_from_slice(&laml.to_le_bytes());
        t[48..56].copy_from_slice(&0x7fbf_0000u64.to_le_bytes());
        t
    }

    fn guest(name: &str, table_bytes: Option<Vec<u8>>, data: Option<Vec<u8>>) -> PathBuf {
        let root = std::env::temp_dir().join(format!("silk-ccel-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join(DATA).parent().unwrap()).unwrap();
        if let Some(t) = table_bytes {
            std::fs::write(root.join(TABLE), t).unwrap();
        }
        if let Some(d) = data {
            std::fs::write(root.join(DATA), d).unwrap();
        }
        root
    }

    #[test]
    fn reads_the_log_without_its_padding() {
        let mut w = LogWriter::new();
        w.event(2, 4, &[7; 48], &[0; 4]);
        let log = w.finish();
        let mut area = log.clone();
        area.resize(0x10000, 0xff);
        let root = guest("ok", Some(table(CC_TYPE_TDX, 0x10000)), Some(area));
        assert_eq!(read(&root).unwrap(), Some(log));
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn no_log_other_platforms_and_bad_logs() {
        let root = guest("none", None, None);
        assert_eq!(read(&root).unwrap(), None);
        let root2 = guest("sev", Some(table(1, 0x1000)), Some(vec![0xff; 16]));
        assert_eq!(read(&root2).unwrap(), None);
        let root3 = guest("bad", Some(table(CC_TYPE_TDX, 0x1000)), Some(vec![1; 64]));
        let e = read(&root3).unwrap_err().to_string();
        assert!(e.contains("data/CCEL"), "{e}");
        assert!(parse_table(b"XXXX").is_err());
        let mut short = table(2, 1);
        short[4..8].copy_from_slice(&40u32.to_le_bytes());
        assert!(parse_table(&short).is_err());
        for r in [root, root2, root3] {
            let _ = std::fs::remove_dir_all(r);
        }
    }
}
