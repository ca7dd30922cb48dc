//! NVIDIA's GPU attestation report: a DMTF SPDM 1.1 GET_MEASUREMENTS request followed by
//! the MEASUREMENTS response the GPU signed over both (DSP0274 1.1, sections 10.11-10.12).
//!
//! ```text
//! request (37 bytes)   11 E0 | param1 (01: signature requested) | param2 (FF: all blocks)
//!                      | nonce (32) | slot id (1)
//! response             11 60 | param1 | param2 (slot id) | number of blocks (1)
//!                      | record length (3, LE) | record | responder nonce (32)
//!                      | opaque length (2, LE) | opaque data | signature (96: P-384 r || s)
//! measurement block    index (1) | spec (1, 01 = DMTF) | size (2, LE)
//!                      | DMTF value type (1) | value size (2, LE) | value
//! opaque data (NVIDIA) repeated: type (2, LE) | length (2, LE) | value
//! ```
//!
//! The parser is strict: every length must account for its bytes exactly, every field the
//! verifier reads may appear once, and nothing may follow the signature. A report with any
//! slack could carry bytes that change what a reader sees without touching the signature.

use thiserror::Error;

/// Length of the GET_MEASUREMENTS request NVML places before the response.
pub const REQUEST_LEN: usize = 37;
/// Length of the ECDSA P-384 signature (r || s) that ends the response.
pub const SIGNATURE_LEN: usize = 96;
/// SPDM version byte for 1.1.
const SPDM_11: u8 = 0x11;
const GET_MEASUREMENTS: u8 = 0xE0;
const MEASUREMENTS: u8 = 0x60;
/// MeasurementSpecification bit 0: the DMTF measurement format.
const DMTF_SPEC: u8 = 0x01;

/// Why a report could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SpdmError {
    /// The report ends before a field it announces.
    #[error("the report is truncated: {what} needs {need} bytes at offset {at}, {have} left")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Where it starts.
        at: usize,
        /// Its length.
        need: usize,
        /// Bytes left.
        have: usize,
    },
    /// A fixed header byte has the wrong value.
    #[error("{what} is {found:#04x}, expected {expected}")]
    Header {
        /// Which byte.
        what: &'static str,
        /// Its value.
        found: u8,
        /// What SPDM 1.1 requires.
        expected: &'static str,
    },
    /// The measurement record is inconsistent.
    #[error("measurement record: {0}")]
    Record(RecordError),
    /// The opaque data is inconsistent.
    #[error("opaque data: {0}")]
    Opaque(OpaqueError),
    /// Bytes follow the signature.
    #[error("{0} bytes follow the signature")]
    Trailing(usize),
}

/// What is wrong with a measurement record.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RecordError {
    /// Index 0 or 0xFF, which SPDM reserves.
    #[error("block index {0} is reserved")]
    ReservedIndex(u8),
    /// A measurement specification other than DMTF's.
    #[error("block {index} has measurement specification {spec:#04x}, expected 0x01 (DMTF)")]
    NotDmtf {
        /// The block's index.
        index: u8,
        /// Its MeasurementSpecification.
        spec: u8,
    },
    /// Two blocks with one index.
    #[error("block index {0} repeats")]
    RepeatedIndex(u8),
    /// A block whose size is not its DMTF value's plus the header.
    #[error("block {index}: measurement size {size} does not equal 3 + value size {value_size}")]
    BlockSize {
        /// The block's index.
        index: u8,
        /// Its measurement size.
        size: usize,
        /// Its DMTF value size.
        value_size: usize,
    },
    /// Bytes after the announced blocks.
    #[error("{extra} bytes after the {count} announced blocks")]
    Trailing {
        /// The bytes left.
        extra: usize,
        /// The number of blocks announced.
        count: u8,
    },
}

/// What is wrong with the opaque data.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum OpaqueError {
    /// A field type that appears twice (two readers could see two values).
    #[error("field {0} appears twice")]
    Repeated(u16),
    /// A fixed-size field of another size.
    #[error("field {kind} is {found} bytes, expected {expected}")]
    Size {
        /// The field type.
        kind: u16,
        /// Its length.
        found: usize,
        /// The length it has.
        expected: usize,
    },
    /// Measurement counts that are not whole `u32`s.
    #[error("measurement counts are {0} bytes, not a multiple of 4")]
    Counts(usize),
}

/// The SPDM GET_MEASUREMENTS request as the GPU received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeasurementRequest {
    /// Param1: bit 0 asks for a signed response.
    pub param1: u8,
    /// Param2: the measurement operation (0xFF: all blocks).
    pub param2: u8,
    /// The requester's nonce: the freshness and binding value.
    pub nonce: [u8; 32],
    /// The certificate slot whose key signs the response.
    pub slot_id: u8,
}

/// One DMTF measurement block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeasurementBlock {
    /// The block's index (1-based; NVIDIA's RIMs number the same values from 0).
    pub index: u8,
    /// DMTFSpecMeasurementValueType (bit 7: raw bit stream, bits 6:0: component type).
    pub value_type: u8,
    /// The measurement value (a SHA-384 digest on Hopper and Blackwell).
    pub value: Vec<u8>,
}

/// NVIDIA's opaque-data field types (the legacy TLV layout, which Hopper and Blackwell
/// firmware emit). Names follow NVIDIA's `OPAQUE_FIELD_ID_*`.
pub mod field {
    /// Certificate issuer name.
    pub const CERT_ISSUER_NAME: u16 = 1;
    /// Certificate authority key identifier.
    pub const CERT_AUTHORITY_KEY_IDENTIFIER: u16 = 2;
    /// Driver version, NUL-terminated ASCII.
    pub const DRIVER_VERSION: u16 = 3;
    /// GPU info.
    pub const GPU_INFO: u16 = 4;
    /// SKU.
    pub const SKU: u16 = 5;
    /// VBIOS version, 8 bytes little-endian.
    pub const VBIOS_VERSION: u16 = 6;
    /// Manufacturer id.
    pub const MANUFACTURER_ID: u16 = 7;
    /// Tamper detection.
    pub const TAMPER_DETECTION: u16 = 8;
    /// SMC.
    pub const SMC: u16 = 9;
    /// VPR.
    pub const VPR: u16 = 10;
    /// NVDEC0 status: 0xAA enabled, 0x55 disabled (then measurement 35 is not compared).
    pub const NVDEC0_STATUS: u16 = 11;
    /// Measurement counts, u32 little-endian each.
    pub const MSRSCNT: u16 = 12;
    /// CPR info.
    pub const CPRINFO: u16 = 13;
    /// Board id.
    pub const BOARD_ID: u16 = 14;
    /// Chip SKU, NUL-padded ASCII (part of the VBIOS RIM's id).
    pub const CHIP_SKU: u16 = 15;
    /// Chip SKU modifier.
    pub const CHIP_SKU_MOD: u16 = 16;
    /// Project, NUL-padded ASCII (part of the VBIOS RIM's id).
    pub const PROJECT: u16 = 17;
    /// Project SKU, NUL-padded ASCII (part of the VBIOS RIM's id).
    pub const PROJECT_SKU: u16 = 18;
    /// Project SKU modifier.
    pub const PROJECT_SKU_MOD: u16 = 19;
    /// FWID: must equal the FWID in the device certificate's TCG DICE extension.
    pub const FWID: u16 = 20;
    /// Protected PCIe (multi-GPU) status: 0xAA enabled, 0x55 disabled.
    pub const PROTECTED_PCIE_STATUS: u16 = 21;
    /// NVSwitch PDIs, 8 bytes each.
    pub const SWITCH_PDI: u16 = 22;
    /// Opaque data format version (Blackwell firmware).
    pub const OPAQUE_DATA_VERSION: u16 = 34;
    /// Feature flag: the GPU's confidential mode (0 single-GPU, 1 multi-GPU passthrough,
    /// 2 protected PCIe), present from opaque data version 1.
    pub const FEATURE_FLAG: u16 = 36;
}

/// One opaque-data field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpaqueField {
    /// Its type (see [`field`]).
    pub kind: u16,
    /// Its value bytes.
    pub value: Vec<u8>,
}

/// A parsed attestation report: the request, the response and where the signature starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpdmReport {
    /// The GET_MEASUREMENTS request.
    pub request: MeasurementRequest,
    /// Response param1.
    pub response_param1: u8,
    /// Response param2 (slot id in bits 3:0).
    pub response_param2: u8,
    /// The measurement blocks, in report order.
    pub blocks: Vec<MeasurementBlock>,
    /// The responder's nonce.
    pub responder_nonce: [u8; 32],
    /// NVIDIA's opaque data, in report order.
    pub opaque: Vec<OpaqueField>,
    /// The ECDSA P-384 signature, r || s big-endian.
    pub signature: [u8; SIGNATURE_LEN],
    /// How many leading bytes of the report the signature covers.
    pub signed_len: usize,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, need: usize, what: &'static str) -> Result<&'a [u8], SpdmError> {
        let have = self.bytes.len() - self.at;
        if need > have {
            return Err(SpdmError::Truncated {
                what,
                at: self.at,
                need,
                have,
            });
        }
        let out = &self.bytes[self.at..self.at + need];
        self.at += need;
        Ok(out)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, SpdmError> {
        Ok(self.take(1, what)?[0])
    }

    fn le(&mut self, n: usize, what: &'static str) -> Result<usize, SpdmError> {
        Ok(self
            .take(n, what)?
            .iter()
            .rev()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b)))
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], SpdmError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }
}

fn expect(
    found: u8,
    want: u8,
    what: &'static str,
    expected: &'static str,
) -> Result<(), SpdmError> {
    if found == want {
        Ok(())
    } else {
        Err(SpdmError::Header {
            what,
            found,
            expected,
        })
    }
}

impl SpdmReport {
    /// Parses a report as NVML returns it (binary, request then response).
    pub fn parse(raw: &[u8]) -> Result<Self, SpdmError> {
        let mut c = Cursor { bytes: raw, at: 0 };
        expect(
            c.u8("request version")?,
            SPDM_11,
            "request version",
            "0x11 (SPDM 1.1)",
        )?;
        expect(
            c.u8("request code")?,
            GET_MEASUREMENTS,
            "request code",
            "0xe0 (GET_MEASUREMENTS)",
        )?;
        let param1 = c.u8("request param1")?;
        // Without bit 0 the response carries neither nonce nor signature: nothing to verify.
        if param1 & 1 == 0 {
            return Err(SpdmError::Header {
                what: "request param1",
                found: param1,
                expected: "bit 0 set (signature requested)",
            });
        }
        let param2 = c.u8("request param2")?;
        expect(
            param2,
            0xFF,
            "request param2",
            "0xff (all measurement blocks)",
        )?;
        let nonce = c.array::<32>("request nonce")?;
        let slot_id = c.u8("request slot id")?;
        let request = MeasurementRequest {
            param1,
            param2,
            nonce,
            slot_id,
        };

        expect(
            c.u8("response version")?,
            SPDM_11,
            "response version",
            "0x11 (SPDM 1.1)",
        )?;
        expect(
            c.u8("response code")?,
            MEASUREMENTS,
            "response code",
            "0x60 (MEASUREMENTS)",
        )?;
        let response_param1 = c.u8("response param1")?;
        let response_param2 = c.u8("response param2")?;
        if response_param2 & 0x0F != slot_id & 0x0F {
            return Err(SpdmError::Header {
                what: "response param2 (slot id)",
                found: response_param2,
                expected: "the request's slot id",
            });
        }
        let count = c.u8("number of blocks")?;
        let record_len = c.le(3, "measurement record length")?;
        let record = c.take(record_len, "measurement record")?;
        let blocks = parse_record(record, count)?;
        let responder_nonce = c.array::<32>("responder nonce")?;
        let opaque_len = c.le(2, "opaque length")?;
        let opaque = parse_opaque(c.take(opaque_len, "opaque data")?)?;
        let signed_len = c.at;
        let signature = c.array::<SIGNATURE_LEN>("signature")?;
        if c.left() != 0 {
            return Err(SpdmError::Trailing(c.left()));
        }
        Ok(Self {
            request,
            response_param1,
            response_param2,
            blocks,
            responder_nonce,
            opaque,
            signature,
            signed_len,
        })
    }

    /// The first opaque field of `kind`, if present (the parser forbids repeats of the
    /// fields the verifier reads).
    pub fn opaque_field(&self, kind: u16) -> Option<&[u8]> {
        self.opaque
            .iter()
            .find(|f| f.kind == kind)
            .map(|f| f.value.as_slice())
    }

    /// The driver version, e.g. `550.90.07` (the NUL terminator removed).
    pub fn driver_version(&self) -> Option<String> {
        self.opaque_field(field::DRIVER_VERSION).map(ascii_field)
    }

    /// The VBIOS version in NVIDIA's `96.00.9F.00.01` form (upper case, as RIMs write it).
    pub fn vbios_version(&self) -> Option<String> {
        self.opaque_field(field::VBIOS_VERSION)
            .and_then(format_vbios)
    }

    /// The FWID the firmware reports.
    pub fn fwid(&self) -> Option<&[u8]> {
        self.opaque_field(field::FWID)
    }

    /// The NVDEC0 status byte.
    pub fn nvdec0_status(&self) -> Option<u8> {
        self.opaque_field(field::NVDEC0_STATUS)
            .and_then(|v| v.first().copied())
    }

    /// The VBIOS RIM id NVIDIA's RIM service uses: `NV_GPU_VBIOS_{project}_{project sku}_
    /// {chip sku}_{version without dots}`.
    pub fn vbios_rim_id(&self) -> Option<String> {
        let project = self.opaque_field(field::PROJECT).map(ascii_field)?;
        let sku = self.opaque_field(field::PROJECT_SKU).map(ascii_field)?;
        let chip = self.opaque_field(field::CHIP_SKU).map(ascii_field)?;
        let version = self.vbios_version()?.replace('.', "");
        Some(format!("NV_GPU_VBIOS_{project}_{sku}_{chip}_{version}").to_uppercase())
    }

    /// The measurement block with this (1-based) index.
    pub fn block(&self, index: u8) -> Option<&MeasurementBlock> {
        self.blocks.iter().find(|b| b.index == index)
    }
}

/// ASCII text up to the first NUL, trimmed.
fn ascii_field(v: &[u8]) -> String {
    let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
    String::from_utf8_lossy(&v[..end]).trim().to_owned()
}

/// NVIDIA's VBIOS version formatting: read the 8 bytes as a little-endian number, take its
/// low four bytes most significant first, then the fifth byte (`format_vbios_version` in
/// the reference verifier). `00 9f 00 96 01 00 00 00` becomes `96.00.9F.00.01`.
pub fn format_vbios(v: &[u8]) -> Option<String> {
    let v: &[u8; 8] = v.try_into().ok()?;
    let parts = [v[3], v[2], v[1], v[0], v[4]];
    Some(
        parts
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join("."),
    )
}

fn parse_record(record: &[u8], count: u8) -> Result<Vec<MeasurementBlock>, SpdmError> {
    let mut c = Cursor {
        bytes: record,
        at: 0,
    };
    let mut blocks: Vec<MeasurementBlock> = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let index = c.u8("block index")?;
        let spec = c.u8("block measurement specification")?;
        let size = c.le(2, "block measurement size")?;
        let body = c.take(size, "block measurement")?;
        if index == 0 || index == 0xFF {
            return Err(SpdmError::Record(RecordError::ReservedIndex(index)));
        }
        if spec != DMTF_SPEC {
            return Err(SpdmError::Record(RecordError::NotDmtf { index, spec }));
        }
        if blocks.iter().any(|b| b.index == index) {
            return Err(SpdmError::Record(RecordError::RepeatedIndex(index)));
        }
        let mut m = Cursor { bytes: body, at: 0 };
        let value_type = m.u8("DMTF value type")?;
        let value_size = m.le(2, "DMTF value size")?;
        let value = m.take(value_size, "DMTF value")?.to_vec();
        if m.left() != 0 {
            return Err(SpdmError::Record(RecordError::BlockSize {
                index,
                size,
                value_size,
            }));
        }
        blocks.push(MeasurementBlock {
            index,
            value_type,
            value,
        });
    }
    if c.left() != 0 {
        return Err(SpdmError::Record(RecordError::Trailing {
            extra: c.left(),
            count,
        }));
    }
    Ok(blocks)
}

fn parse_opaque(bytes: &[u8]) -> Result<Vec<OpaqueField>, SpdmError> {
    let mut c = Cursor { bytes, at: 0 };
    let mut fields: Vec<OpaqueField> = Vec::new();
    while c.left() > 0 {
        let kind = c.le(2, "opaque field type")? as u16;
        let len = c.le(2, "opaque field length")?;
        let value = c.take(len, "opaque field value")?.to_vec();
        if fields.iter().any(|f| f.kind == kind) {
            // A second copy of a field could make two readers see two different values.
            return Err(SpdmError::Opaque(OpaqueError::Repeated(kind)));
        }
        let fixed = match kind {
            field::NVDEC0_STATUS | field::PROTECTED_PCIE_STATUS => Some(1),
            field::VBIOS_VERSION => Some(8),
            field::FWID => Some(48),
            _ => None,
        };
        if let Some(expected) = fixed.filter(|&n| n != value.len()) {
            return Err(SpdmError::Opaque(OpaqueError::Size {
                kind,
                found: value.len(),
                expected,
            }));
        }
        if kind == field::MSRSCNT && value.len() % 4 != 0 {
            return Err(SpdmError::Opaque(OpaqueError::Counts(value.len())));
        }
        fields.push(OpaqueField { kind, value });
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal well-formed report: two blocks, three opaque fields, a zero signature.
    pub(crate) fn synthetic() -> Vec<u8> {
        let mut r = vec![0x11, 0xE0, 0x01, 0xFF];
        r.extend([7u8; 32]);
        r.push(0);
        r.extend([0x11, 0x60, 0x00, 0x00, 2]);
        let mut record = Vec::new();
        for index in [1u8, 2] {
            record.extend([index, 1, 51, 0, 1, 48, 0]);
            record.extend([index; 48]);
        }
        r.extend(&(record.len() as u32).to_le_bytes()[..3]);
        r.extend(record);
        r.extend([9u8; 32]);
        let mut opaque = Vec::new();
        let mut tlv = |kind: u16, v: &[u8]| {
            opaque.extend(kind.to_le_bytes());
            opaque.extend((v.len() as u16).to_le_bytes());
            opaque.extend(v);
        };
        tlv(field::DRIVER_VERSION, b"550.90.07\0");
        tlv(
            field::VBIOS_VERSION,
            &[0x00, 0x9f, 0x00, 0x96, 0x01, 0, 0, 0],
        );
        tlv(field::NVDEC0_STATUS, &[0x55]);
        r.extend((opaque.len() as u16).to_le_bytes());
        r.extend(opaque);
        r.extend([0u8; SIGNATURE_LEN]);
        r
    }

    #[test]
    fn parses_every_field() {
        let raw = synthetic();
        let r = SpdmReport::parse(&raw).unwrap();
        assert_eq!(r.request.nonce, [7; 32]);
        assert_eq!(r.request.slot_id, 0);
        assert_eq!(r.blocks.len(), 2);
        assert_eq!(r.block(2).unwrap().value, vec![2; 48]);
        assert_eq!(r.block(2).unwrap().value_type, 1);
        assert_eq!(r.responder_nonce, [9; 32]);
        assert_eq!(r.driver_version().as_deref(), Some("550.90.07"));
        assert_eq!(r.vbios_version().as_deref(), Some("96.00.9F.00.01"));
        assert_eq!(r.nvdec0_status(), Some(0x55));
        assert_eq!(r.signed_len, raw.len() - SIGNATURE_LEN);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let raw = synthetic();
        for len in 0..raw.len() {
            assert!(SpdmReport::parse(&raw[..len]).is_err(), "length {len}");
        }
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let mut raw = synthetic();
        raw.push(0);
        assert_eq!(SpdmReport::parse(&raw), Err(SpdmError::Trailing(1)));
    }

    #[test]
    fn header_bytes_are_checked() {
        for (at, what) in [
            (0, "request version"),
            (1, "request code"),
            (3, "request param2"),
        ] {
            let mut raw = synthetic();
            raw[at] ^= 0x40;
            let e = SpdmReport::parse(&raw).unwrap_err();
            assert!(e.to_string().starts_with(what), "{e}");
        }
        let mut raw = synthetic();
        raw[2] = 0; // no signature requested
        assert!(SpdmReport::parse(&raw).is_err());
        raw = synthetic();
        raw[REQUEST_LEN + 3] = 1; // slot id differs from the request's
        assert!(SpdmReport::parse(&raw).is_err());
    }

    #[test]
    fn repeated_block_index_and_opaque_field_are_errors() {
        let mut raw = synthetic();
        raw[REQUEST_LEN + 8 + 55] = 1; // second block claims index 1
        assert_eq!(
            SpdmReport::parse(&raw),
            Err(SpdmError::Record(RecordError::RepeatedIndex(1)))
        );
        // The NVDEC0 field (last TLV, 5 bytes before the signature) renamed to the
        // VBIOS type would repeat it.
        let mut raw = synthetic();
        let at = raw.len() - SIGNATURE_LEN - 5;
        raw[at] = field::DRIVER_VERSION as u8;
        let e = SpdmReport::parse(&raw).unwrap_err();
        assert!(
            matches!(&e, SpdmError::Opaque(OpaqueError::Repeated(_))),
            "{e}"
        );
    }

    #[test]
    fn vbios_formatting_matches_nvidia() {
        assert_eq!(
            format_vbios(&[0x01, 0x00, 0x5e, 0x96, 0x04, 0, 0, 0]).unwrap(),
            "96.5E.00.01.04"
        );
        assert_eq!(format_vbios(&[1, 2, 3]), None);
    }
}
