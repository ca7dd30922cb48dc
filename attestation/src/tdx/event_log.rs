//! The TDX event log (the ACPI CCEL table's log area), parsed without trusting it.
//!
//! The log is the TCG PC Client crypto-agile format (TCG PC Client Platform Firmware
//! Profile, "Event Logging"): a `TCG_PCR_EVENT` header in the SHA-1 layout whose data is
//! the `Spec ID Event03` structure listing every digest algorithm and its size, then
//! `TCG_PCR_EVENT2` entries — index, event type, a `TPML_DIGEST_VALUES` (count, then
//! algorithm id and digest for each), data size and data. For confidential computing the
//! index is not a TPM PCR but a CC measurement-register index (UEFI 2.10, §38.4.1
//! "EFI_CC_MEASUREMENT_PROTOCOL", and edk2's `TdxMeasurementLib.h`): for TDX, 0 is MRTD,
//! 1 is RTMR[0] (PCR 1 and 7), 2 is RTMR[1] (PCR 2–6), 3 is RTMR[2] (PCR 8–15) and 4 is
//! RTMR[3], which firmware leaves alone and the running guest may extend.
//!
//! After the last event the log area is padding (TDVF fills it with 0xFF; zeros are
//! accepted too). Every length is checked against what remains, the log and its event
//! count are capped ([`MAX_LOG_BYTES`], [`MAX_EVENTS`]), and a log cut short is an error
//! naming the event, its offset and the field that does not fit.

use super::replay::Mr;

/// The largest log accepted. TDVF reserves 64 KiB for the CCEL log area; a guest that
/// appends its own events stays far below this.
pub const MAX_LOG_BYTES: usize = 1 << 20;
/// The most events accepted (TDVF logs a few dozen).
pub const MAX_EVENTS: usize = 4096;
/// The most digest algorithms a Spec ID event may list (TCG defines fewer than 16).
const MAX_ALGORITHMS: usize = 16;
/// The largest digest size accepted (SHA-512 and SHA3-512 are 64 bytes).
const MAX_DIGEST_SIZE: usize = 64;
/// `Spec ID Event03` with its NUL, the signature of the crypto-agile header.
const SPEC_ID_SIGNATURE: &[u8; 16] = b"Spec ID Event03\0";

/// TCG algorithm id of SHA-384, the digest TDX registers extend with.
pub const TPM_ALG_SHA384: u16 = 0x000c;
/// `EV_NO_ACTION`: logged for information and never extended into a register.
pub const EV_NO_ACTION: u32 = 0x0000_0003;

/// One `TCG_PCR_EVENT2` entry (or, as number 0, the header event).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Its position in the log; the Spec ID header is 0.
    pub number: usize,
    /// Its byte offset in the log.
    pub offset: usize,
    /// The CC measurement-register index (0 MRTD, 1–4 RTMR0–3).
    pub mr_index: u32,
    /// The TCG event type (`EV_*`).
    pub event_type: u32,
    /// Its SHA-384 digest (zeros for the header, which carries a SHA-1 field only).
    pub sha384: Mr,
    /// The event data.
    pub data: Vec<u8>,
}

impl Event {
    /// The RTMR (0–3) this event extends, or `None` for `EV_NO_ACTION` events and MRTD's
    /// index (which software cannot extend).
    pub fn rtmr(&self) -> Option<usize> {
        if self.event_type == EV_NO_ACTION {
            return None;
        }
        match self.mr_index {
            1..=4 => Some(self.mr_index as usize - 1),
            _ => None,
        }
    }

    /// The event type's name in the TCG PC Client specification, or its number.
    pub fn type_name(&self) -> String {
        event_type_name(self.event_type).map_or_else(
            || format!("event type {:#x}", self.event_type),
            str::to_owned,
        )
    }
}

/// A parsed event log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventLog {
    /// Every event in log order, the header first.
    pub events: Vec<Event>,
    /// How many bytes the events take; what follows in the input is padding.
    pub length: usize,
}

/// Why bytes are not a TDX event log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventLogError {
    /// No bytes at all.
    #[error("the event log is empty")]
    Empty,
    /// More bytes than any real log holds.
    #[error("the event log is {len} bytes; at most {MAX_LOG_BYTES} are accepted")]
    TooLarge {
        /// Its length.
        len: usize,
    },
    /// More events than any real log holds.
    #[error("the event log has more than {MAX_EVENTS} events")]
    TooManyEvents,
    /// A field runs past the end of the log.
    #[error(
        "the event log is truncated: event {number} at offset {offset:#x} needs {need} bytes \
         for its {field}, {have} remain"
    )]
    Truncated {
        /// The event's position (0 is the header).
        number: usize,
        /// The event's offset.
        offset: usize,
        /// The field that does not fit.
        field: &'static str,
        /// Bytes the field needs.
        need: usize,
        /// Bytes left.
        have: usize,
    },
    /// The first event is not the crypto-agile header.
    #[error("the event log's first event is not a Spec ID Event03 header: {0}")]
    NoSpecId(&'static str),
    /// The header does not list SHA-384, so no event can be replayed into the RTMRs.
    #[error("the event log's Spec ID event does not list SHA-384 (TCG algorithm 0x000c)")]
    NoSha384,
    /// An event's field holds a value no log may hold.
    #[error("event {number} at offset {offset:#x}: {why}")]
    Invalid {
        /// The event's position.
        number: usize,
        /// The event's offset.
        offset: usize,
        /// What is wrong.
        why: String,
    },
}

/// Reads fields from the log, each bounded by what remains.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    number: usize,
    start: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], EventLogError> {
        let have = self.bytes.len() - self.at;
        if n > have {
            return Err(EventLogError::Truncated {
                number: self.number,
                offset: self.start,
                field,
                need: n,
                have,
            });
        }
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(out)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, EventLogError> {
        Ok(self.take(1, field)?[0])
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, EventLogError> {
        let b = self.take(2, field)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, EventLogError> {
        let b = self.take(4, field)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn invalid(&self, why: impl Into<String>) -> EventLogError {
        EventLogError::Invalid {
            number: self.number,
            offset: self.start,
            why: why.into(),
        }
    }

    /// Whether only padding is left: nothing, or all 0xFF (TDVF's fill) or all zeros.
    fn at_padding(&self) -> bool {
        let rest = &self.bytes[self.at..];
        rest.iter().all(|&b| b == 0xff) || rest.iter().all(|&b| b == 0)
    }
}

impl EventLog {
    /// Parses a log; trailing padding is allowed and not counted in [`EventLog::length`].
    pub fn parse(bytes: &[u8]) -> Result<Self, EventLogError> {
        if bytes.is_empty() {
            return Err(EventLogError::Empty);
        }
        if bytes.len() > MAX_LOG_BYTES {
            return Err(EventLogError::TooLarge { len: bytes.len() });
        }
        let mut r = Reader {
            bytes,
            at: 0,
            number: 0,
            start: 0,
        };
        let (header, sizes) = spec_id_event(&mut r)?;
        let mut events = vec![header];
        while !r.at_padding() {
            if events.len() >= MAX_EVENTS {
                return Err(EventLogError::TooManyEvents);
            }
            r.number = events.len();
            r.start = r.at;
            events.push(event2(&mut r, &sizes)?);
        }
        Ok(EventLog {
            events,
            length: r.at,
        })
    }

    /// The events that extend RTMR `rtmr` (0–3), in log order.
    pub fn extending(&self, rtmr: usize) -> impl Iterator<Item = &Event> {
        self.events.iter().filter(move |e| e.rtmr() == Some(rtmr))
    }

    /// RTMR0–3 replayed from zero: RTMR[i] ← SHA-384(RTMR[i] ‖ digest) for every event
    /// that extends it, in log order.
    pub fn replay(&self) -> [Mr; 4] {
        let mut out = [[0u8; 48]; 4];
        for (i, reg) in out.iter_mut().enumerate() {
            let digests: Vec<Mr> = self.extending(i).map(|e| e.sha384).collect();
            *reg = super::replay::extend_all(&digests);
        }
        out
    }
}

/// The header: a `TCG_PCR_EVENT` (SHA-1 layout) carrying `TCG_EfiSpecIDEventStruct`.
/// Returns it and the digest sizes by algorithm id.
fn spec_id_event(r: &mut Reader<'_>) -> Result<(Event, Vec<(u16, usize)>), EventLogError> {
    let mr_index = r.u32("index")?;
    let event_type = r.u32("event type")?;
    r.take(20, "SHA-1 digest")?;
    let size = r.u32("event size")? as usize;
    let data = r.take(size, "Spec ID event data")?;
    if event_type != EV_NO_ACTION {
        return Err(EventLogError::NoSpecId("its type is not EV_NO_ACTION"));
    }
    let mut s = Reader {
        bytes: data,
        at: 0,
        number: 0,
        start: 0,
    };
    if s.take(16, "Spec ID signature")? != SPEC_ID_SIGNATURE {
        return Err(EventLogError::NoSpecId(
            "its signature is not \"Spec ID Event03\"",
        ));
    }
    // platformClass, specVersionMinor, specVersionMajor, specErrata, uintnSize.
    s.take(8, "Spec ID version fields")?;
    let count = s.u32("Spec ID algorithm count")? as usize;
    if count == 0 || count > MAX_ALGORITHMS {
        return Err(EventLogError::NoSpecId(
            "it lists no digest algorithm, or more than 16",
        ));
    }
    let mut sizes = Vec::with_capacity(count);
    for _ in 0..count {
        let alg = s.u16("Spec ID algorithm id")?;
        let size = usize::from(s.u16("Spec ID digest size")?);
        if size == 0 || size > MAX_DIGEST_SIZE {
            return Err(EventLogError::NoSpecId(
                "a digest size is 0 or over 64 bytes",
            ));
        }
        if alg == TPM_ALG_SHA384 && size != 48 {
            return Err(EventLogError::NoSpecId(
                "it gives SHA-384 a size other than 48",
            ));
        }
        if sizes.iter().any(|&(a, _)| a == alg) {
            return Err(EventLogError::NoSpecId("it lists an algorithm twice"));
        }
        sizes.push((alg, size));
    }
    let vendor = usize::from(s.u8("Spec ID vendor info size")?);
    s.take(vendor, "Spec ID vendor info")?;
    if !sizes.iter().any(|&(a, _)| a == TPM_ALG_SHA384) {
        return Err(EventLogError::NoSha384);
    }
    let header = Event {
        number: 0,
        offset: 0,
        mr_index,
        event_type,
        sha384: [0; 48],
        data: data.to_vec(),
    };
    Ok((header, sizes))
}

/// One `TCG_PCR_EVENT2`.
fn event2(r: &mut Reader<'_>, sizes: &[(u16, usize)]) -> Result<Event, EventLogError> {
    let mr_index = r.u32("index")?;
    let event_type = r.u32("event type")?;
    if mr_index > 4 {
        return Err(r.invalid(format!(
            "index {mr_index} names no TDX register (0 MRTD, 1-4 RTMR0-3)"
        )));
    }
    let count = r.u32("digest count")? as usize;
    if count == 0 || count > sizes.len() {
        return Err(r.invalid(format!(
            "{count} digests, but the Spec ID event lists {} algorithms",
            sizes.len()
        )));
    }
    let mut sha384 = None;
    for _ in 0..count {
        let alg = r.u16("digest algorithm")?;
        let size = sizes
            .iter()
            .find(|&&(a, _)| a == alg)
            .map(|&(_, s)| s)
            .ok_or_else(|| {
                r.invalid(format!(
                    "digest algorithm {alg:#06x} is not in the Spec ID event"
                ))
            })?;
        let digest = r.take(size, "digest")?;
        if alg == TPM_ALG_SHA384 {
            if sha384.is_some() {
                return Err(r.invalid("two SHA-384 digests"));
            }
            let mut d = [0u8; 48];
            d.copy_from_slice(digest);
            sha384 = Some(d);
        }
    }
    let sha384 = sha384.ok_or_else(|| r.invalid("no SHA-384 digest"))?;
    let size = r.u32("event size")? as usize;
    let data = r.take(size, "event data")?.to_vec();
    Ok(Event {
        number: r.number,
        offset: r.start,
        mr_index,
        event_type,
        sha384,
        data,
    })
}

/// The TCG PC Client name of an event type.
pub fn event_type_name(t: u32) -> Option<&'static str> {
    Some(match t {
        0x0 => "EV_PREBOOT_CERT",
        0x1 => "EV_POST_CODE",
        0x3 => "EV_NO_ACTION",
        0x4 => "EV_SEPARATOR",
        0x5 => "EV_ACTION",
        0x6 => "EV_EVENT_TAG",
        0x7 => "EV_S_CRTM_CONTENTS",
        0x8 => "EV_S_CRTM_VERSION",
        0x9 => "EV_CPU_MICROCODE",
        0xa => "EV_PLATFORM_CONFIG_FLAGS",
        0xb => "EV_TABLE_OF_DEVICES",
        0xc => "EV_COMPACT_HASH",
        0xd => "EV_IPL",
        0xe => "EV_IPL_PARTITION_DATA",
        0xf => "EV_NONHOST_CODE",
        0x10 => "EV_NONHOST_CONFIG",
        0x11 => "EV_NONHOST_INFO",
        0x12 => "EV_OMIT_BOOT_DEVICE_EVENTS",
        0x8000_0001 => "EV_EFI_VARIABLE_DRIVER_CONFIG",
        0x8000_0002 => "EV_EFI_VARIABLE_BOOT",
        0x8000_0003 => "EV_EFI_BOOT_SERVICES_APPLICATION",
        0x8000_0004 => "EV_EFI_BOOT_SERVICES_DRIVER",
        0x8000_0005 => "EV_EFI_RUNTIME_SERVICES_DRIVER",
        0x8000_0006 => "EV_EFI_GPT_EVENT",
        0x8000_0007 => "EV_EFI_ACTION",
        0x8000_0008 => "EV_EFI_PLATFORM_FIRMWARE_BLOB",
        0x8000_0009 => "EV_EFI_HANDOFF_TABLES",
        0x8000_000a => "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
        0x8000_000b => "EV_EFI_HANDOFF_TABLES2",
        0x8000_000c => "EV_EFI_VARIABLE_BOOT2",
        0x8000_000d => "EV_EFI_GPT_EVENT2",
        0x8000_0010 => "EV_EFI_HCRTM_EVENT",
        0x8000_00e0 => "EV_EFI_VARIABLE_AUTHORITY",
        0x8000_00e1 => "EV_EFI_SPDM_FIRMWARE_BLOB",
        0x8000_00e2 => "EV_EFI_SPDM_FIRMWARE_CONFIG",
        _ => return None,
    })
}

/// Writes logs in the format [`EventLog::parse`] reads: for tests, fuzz seeds and guests
/// that append their own events. Only SHA-384 digests are written.
#[derive(Clone, Debug)]
pub struct LogWriter {
    bytes: Vec<u8>,
}

impl Default for LogWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl LogWriter {
    /// A log holding only the Spec ID header, listing SHA-384.
    pub fn new() -> Self {
        let mut spec = Vec::new();
        spec.extend_from_slice(SPEC_ID_SIGNATURE);
        // platformClass 0, spec version 2.0 errata 0, uintnSize 2 (UINT64).
        spec.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 2]);
        spec.extend_from_slice(&1u32.to_le_bytes());
        spec.extend_from_slice(&TPM_ALG_SHA384.to_le_bytes());
        spec.extend_from_slice(&48u16.to_le_bytes());
        spec.push(0);
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&EV_NO_ACTION.to_le_bytes());
        bytes.extend_from_slice(&[0; 20]);
        bytes.extend_from_slice(&(spec.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&spec);
        Self { bytes }
    }

    /// Goes on writing after the events of `log` (a log with its header, as
    /// [`LogWriter::finish`] or the CCEL gives it, padding removed).
    pub fn continuing(log: Vec<u8>) -> Self {
        Self { bytes: log }
    }

    /// Appends an event extending `mr_index` (1–4 for RTMR0–3) with `digest`.
    pub fn event(&mut self, mr_index: u32, event_type: u32, digest: &Mr, data: &[u8]) {
        self.bytes.extend_from_slice(&mr_index.to_le_bytes());
        self.bytes.extend_from_slice(&event_type.to_le_bytes());
        self.bytes.extend_from_slice(&1u32.to_le_bytes());
        self.bytes.extend_from_slice(&TPM_ALG_SHA384.to_le_bytes());
        self.bytes.extend_from_slice(digest);
        self.bytes
            .extend_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_le_bytes());
        self.bytes.extend_from_slice(data);
    }

    /// The log's bytes.
    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

#[cfg(test)]
#[path = "event_log_tests.rs"]
mod tests;
