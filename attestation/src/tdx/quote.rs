//! The parts of a DCAP quote that a verifier appraises: header fields and the report body.
//!
//! The byte layout is decoded by `dcap-qvl`; this module maps its types onto ours so that
//! callers see one TD report shape for TDX 1.0 (quote v4, or v5 body type 2) and TDX 1.5
//! (quote v5 body types 3 and 4) bodies, with the 1.5-only fields as `Option`s.

use dcap_qvl::quote::{EnclaveReport, Report, TDReport10, TDReport15};

use crate::checks::{sgx, tdx, CheckId};

/// Quote header length, in bytes (Intel DCAP quote layout, v4 and v5).
const HEADER_LEN: usize = 48;
/// Length of the `u32` that precedes the signature data.
const SIG_DATA_LEN_FIELD: usize = 4;
/// Header `tee_type` value of an SGX enclave quote.
const TEE_TYPE_SGX: u32 = 0x0000_0000;
/// Header `tee_type` value of a TDX quote.
const TEE_TYPE_TDX: u32 = 0x0000_0081;

/// The trusted execution environment a quote was made in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TeeType {
    /// An Intel SGX enclave.
    Sgx,
    /// An Intel TDX trust domain.
    Tdx,
}

impl TeeType {
    /// The check that fails when bytes do not parse as a quote of this TEE (then nothing
    /// else runs).
    pub fn format_check(self) -> &'static CheckId {
        match self {
            TeeType::Tdx => &tdx::QUOTE_FORMAT,
            TeeType::Sgx => &sgx::QUOTE_FORMAT,
        }
    }
}

impl std::fmt::Display for TeeType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TeeType::Sgx => "SGX",
            TeeType::Tdx => "TDX",
        })
    }
}

/// Why a quote could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QuoteError {
    /// The quote is shorter than its fixed-size header.
    #[error("quote is {len} bytes, shorter than the {min}-byte header")]
    TooShort {
        /// Length of the input.
        len: usize,
        /// The least a quote can be.
        min: usize,
    },
    /// The header's `version` is not one this parser accepts.
    #[error("quote header version is {version}; expected 3 (SGX), 4 or 5")]
    UnsupportedVersion {
        /// The version found.
        version: u16,
    },
    /// The header's `tee_type` is neither SGX (0x00) nor TDX (0x81).
    #[error("quote header tee_type is {tee_type:#x}; expected 0x0 (SGX) or 0x81 (TDX)")]
    UnsupportedTeeType {
        /// The TEE type found.
        tee_type: u32,
    },
    /// The header, body or signature data does not decode.
    #[error("quote does not decode: {reason}")]
    Malformed {
        /// The decoder's reason: `dcap-qvl`'s parser reports text only (an
        /// `anyhow::Error`), so there is no type to keep.
        reason: String,
    },
    /// The signature data's length field runs past the end of the quote.
    #[error("quote does not decode: signature data length runs past the end of the quote")]
    SignatureDataOverrun,
    /// A part of the signature data that no signature covers is not in its one accepted
    /// encoding (see the `sigdata` module): a length with slack, an unexpected
    /// certification data type, non-canonical PEM, or a chain not ending at Intel's root.
    #[error("quote signature data field {field} {reason}")]
    NonCanonical {
        /// The field, e.g. `pck_cert_chain`.
        field: &'static str,
        /// What is wrong with it.
        reason: super::sigdata::Uncanonical,
    },
    /// Non-zero bytes follow the signature data. Nothing signs them, so they are refused
    /// rather than carried along unnoticed; zero padding (quote generators hand out
    /// fixed-size buffers) is allowed.
    #[error(
        "quote has a non-zero byte at offset {offset}, after its signature data ends at {end}"
    )]
    TrailingBytes {
        /// Offset of the first non-zero byte after the end.
        offset: usize,
        /// Where the quote, as its own length fields describe it, ends.
        end: usize,
    },
}

impl QuoteError {
    /// The offset of the field at fault, where the error knows it.
    pub fn offset(&self) -> Option<usize> {
        match self {
            QuoteError::UnsupportedVersion { .. } => Some(0),
            QuoteError::UnsupportedTeeType { .. } => Some(4),
            QuoteError::TrailingBytes { offset, .. } => Some(*offset),
            QuoteError::TooShort { .. }
            | QuoteError::Malformed { .. }
            | QuoteError::SignatureDataOverrun
            | QuoteError::NonCanonical { .. } => None,
        }
    }
}

/// TD attributes (TDX module ABI, `ATTRIBUTES` of `TDINFO_STRUCT`), a little-endian bit field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TdAttributes(pub u64);

impl TdAttributes {
    const DEBUG: u32 = 0;
    const SEPT_VE_DISABLE: u32 = 28;
    const MIGRATABLE: u32 = 29;
    const PKS: u32 = 30;
    const KL: u32 = 31;
    const PERFMON: u32 = 63;

    fn bit(self, bit: u32) -> bool {
        self.0 & (1 << bit) != 0
    }

    /// TUD.DEBUG (bit 0): the host can read and write the TD's state and private memory.
    pub fn debug(self) -> bool {
        self.bit(Self::DEBUG)
    }

    /// Any TUD bit (bits 7:0) set: Intel says to treat such a TD as untrusted.
    pub fn under_debug(self) -> bool {
        self.0 & 0xff != 0
    }

    /// SEC.SEPT_VE_DISABLE (bit 28): EPT violations on pending pages do not become #VE,
    /// which closes a host-driven #VE injection path.
    pub fn sept_ve_disable(self) -> bool {
        self.bit(Self::SEPT_VE_DISABLE)
    }

    /// SEC.MIGRATABLE (bit 29): a migration TD may export this TD's state.
    pub fn migratable(self) -> bool {
        self.bit(Self::MIGRATABLE)
    }

    /// SEC.PKS (bit 30): the TD may use supervisor protection keys.
    pub fn pks(self) -> bool {
        self.bit(Self::PKS)
    }

    /// SEC.KL (bit 31): the TD may use Key Locker.
    pub fn kl(self) -> bool {
        self.bit(Self::KL)
    }

    /// OTHER.PERFMON (bit 63): the TD may use performance monitoring.
    pub fn perfmon(self) -> bool {
        self.bit(Self::PERFMON)
    }
}

/// A TD report body: TDX 1.0 fields, plus the two TDX 1.5 fields when the quote has them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TdReport {
    /// TEE_TCB_SVN: the TDX module's and its loader's security versions.
    pub tee_tcb_svn: [u8; 16],
    /// MRSEAM: measurement of the TDX module.
    pub mr_seam: [u8; 48],
    /// MRSIGNERSEAM: signer of the TDX module (zero for Intel's).
    pub mr_signer_seam: [u8; 48],
    /// SEAMATTRIBUTES of the TDX module.
    pub seam_attributes: [u8; 8],
    /// TD attributes, e.g. debug.
    pub td_attributes: TdAttributes,
    /// XFAM: the extended CPU features the TD may use.
    pub xfam: u64,
    /// MRTD: measurement of the TD's initial contents (firmware).
    pub mr_td: [u8; 48],
    /// MRCONFIGID: software-defined configuration ID set at TD creation.
    pub mr_config_id: [u8; 48],
    /// MROWNER: software-defined ID of the TD's owner.
    pub mr_owner: [u8; 48],
    /// MROWNERCONFIG: software-defined owner configuration.
    pub mr_owner_config: [u8; 48],
    /// RTMR0–3: run-time extendable measurement registers.
    pub rtmr: [[u8; 48]; 4],
    /// REPORT_DATA chosen by the TD.
    pub report_data: [u8; 64],
    /// TEE_TCB_SVN2 (TDX 1.5 bodies only): the security versions after a TD-preserving update.
    pub tee_tcb_svn2: Option<[u8; 16]>,
    /// MRSERVICETD (TDX 1.5 bodies only): hash of the bound service TDs, zero when none.
    pub mr_service_td: Option<[u8; 48]>,
}

impl TdReport {
    /// Maps a TDX 1.0 body, and the 1.5 body around it if there is one.
    pub(crate) fn from_dcap(base: &TDReport10, v15: Option<&TDReport15>) -> Self {
        Self {
            tee_tcb_svn: base.tee_tcb_svn,
            mr_seam: base.mr_seam,
            mr_signer_seam: base.mr_signer_seam,
            seam_attributes: base.seam_attributes,
            td_attributes: TdAttributes(u64::from_le_bytes(base.td_attributes)),
            xfam: u64::from_le_bytes(base.xfam),
            mr_td: base.mr_td,
            mr_config_id: base.mr_config_id,
            mr_owner: base.mr_owner,
            mr_owner_config: base.mr_owner_config,
            rtmr: [base.rt_mr0, base.rt_mr1, base.rt_mr2, base.rt_mr3],
            report_data: base.report_data,
            tee_tcb_svn2: v15.map(|r| r.tee_tcb_svn2),
            mr_service_td: v15.map(|r| r.mr_service_td),
        }
    }
}

/// An SGX enclave report body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SgxReport {
    /// MRENCLAVE: measurement of the enclave's contents.
    pub mr_enclave: [u8; 32],
    /// MRSIGNER: hash of the enclave signer's public key.
    pub mr_signer: [u8; 32],
    /// ISVPRODID chosen by the signer.
    pub isv_prod_id: u16,
    /// ISVSVN: the enclave's security version.
    pub isv_svn: u16,
    /// ATTRIBUTES (flags, then XFRM), little-endian.
    pub attributes: [u8; 16],
    /// REPORT_DATA chosen by the enclave.
    pub report_data: [u8; 64],
}

impl SgxReport {
    /// ATTRIBUTES.DEBUG (bit 1): the enclave's memory can be read by a debugger.
    pub fn debug(&self) -> bool {
        self.attributes[0] & 0b10 != 0
    }

    pub(crate) fn from_dcap(r: &EnclaveReport) -> Self {
        Self {
            mr_enclave: r.mr_enclave,
            mr_signer: r.mr_signer,
            isv_prod_id: r.isv_prod_id,
            isv_svn: r.isv_svn,
            attributes: r.attributes,
            report_data: r.report_data,
        }
    }
}

/// The report a quote carries.
#[derive(Clone, Debug, PartialEq, Eq)]
// One quote is parsed per verification; boxing the TD report would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum QuoteBody {
    /// A TD report (TDX).
    Td(TdReport),
    /// An enclave report (SGX).
    Sgx(SgxReport),
}

impl QuoteBody {
    /// Maps `dcap-qvl`'s report; TDX 1.5ex fields beyond the 1.5 body are not carried.
    pub(crate) fn from_dcap(report: &Report) -> Self {
        match report {
            Report::SgxEnclave(r) => QuoteBody::Sgx(SgxReport::from_dcap(r)),
            Report::TD10(r) => QuoteBody::Td(TdReport::from_dcap(r, None)),
            Report::TD15(r) => QuoteBody::Td(TdReport::from_dcap(&r.base, Some(r))),
            Report::TD15Ex(r) => QuoteBody::Td(TdReport::from_dcap(&r.base.base, Some(&r.base))),
        }
    }
}

/// What parsing a quote gives, whether or not its signatures verify.
///
/// Nothing here is authenticated until [`verify`](super::verify) has passed
/// `tdx.quote_signature`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quote {
    /// Header `version`: 3 (SGX), 4 or 5.
    pub version: u16,
    /// Header `tee_type`.
    pub tee_type: TeeType,
    /// The report body.
    pub body: QuoteBody,
}

impl Quote {
    /// Parses a DCAP quote (v3 SGX, v4 SGX or TDX, v5 with any body type `dcap-qvl` knows).
    pub fn from_bytes(raw: &[u8]) -> Result<Self, QuoteError> {
        let header = raw.get(..HEADER_LEN).ok_or(QuoteError::TooShort {
            len: raw.len(),
            min: HEADER_LEN,
        })?;
        // Checked here, before the decoder, so that these two errors name their field.
        let version = u16::from_le_bytes([header[0], header[1]]);
        let tee_type = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let tee_type = match tee_type {
            TEE_TYPE_SGX => TeeType::Sgx,
            TEE_TYPE_TDX => TeeType::Tdx,
            other => return Err(QuoteError::UnsupportedTeeType { tee_type: other }),
        };
        if !(3..=5).contains(&version) {
            return Err(QuoteError::UnsupportedVersion { version });
        }

        let parsed = dcap_qvl::quote::Quote::parse(raw).map_err(|e| QuoteError::Malformed {
            reason: format!("{e:#}"),
        })?;
        let (sig_data_len, end) = encoded_len(raw, parsed.signed_length())?;
        super::sigdata::check(&parsed.auth_data, sig_data_len)?;
        let padding = raw.get(end..).unwrap_or_default();
        if let Some(pos) = padding.iter().position(|&b| b != 0) {
            return Err(QuoteError::TrailingBytes {
                offset: end + pos,
                end,
            });
        }
        Ok(Self {
            version,
            tee_type,
            body: QuoteBody::from_dcap(&parsed.report),
        })
    }

    /// The body's REPORT_DATA, whichever TEE made it.
    pub fn report_data(&self) -> &[u8; 64] {
        match &self.body {
            QuoteBody::Td(r) => &r.report_data,
            QuoteBody::Sgx(r) => &r.report_data,
        }
    }

    /// The TD report, when this is a TDX quote.
    pub fn td_report(&self) -> Option<&TdReport> {
        match &self.body {
            QuoteBody::Td(r) => Some(r),
            QuoteBody::Sgx(_) => None,
        }
    }
}

/// The signature data's length field, and where the quote ends by it: the signed part,
/// the length, then that many bytes.
fn encoded_len(raw: &[u8], signed_len: usize) -> Result<(usize, usize), QuoteError> {
    let malformed = || QuoteError::SignatureDataOverrun;
    let len_end = signed_len
        .checked_add(SIG_DATA_LEN_FIELD)
        .ok_or_else(malformed)?;
    let len_bytes: [u8; 4] = raw
        .get(signed_len..len_end)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(malformed)?;
    let sig_len = usize::try_from(u32::from_le_bytes(len_bytes)).map_err(|_| malformed())?;
    let end = len_end.checked_add(sig_len).ok_or_else(malformed)?;
    Ok((sig_len, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn td_attribute_bits() {
        let attrs = TdAttributes(1 | 1 << 28 | 1 << 30 | 1 << 31 | 1 << 63);
        assert!(attrs.debug() && attrs.under_debug());
        assert!(attrs.sept_ve_disable() && attrs.pks() && attrs.kl() && attrs.perfmon());
        assert!(!attrs.migratable());
        let none = TdAttributes(0);
        assert!(!none.debug() && !none.under_debug() && !none.sept_ve_disable());
        assert!(TdAttributes(1 << 29).migratable());
        assert!(!TdAttributes(0x10).debug() && TdAttributes(0x10).under_debug());
    }

    #[test]
    fn short_and_foreign_headers_name_the_field() {
        assert_eq!(
            Quote::from_bytes(&[0; 10]),
            Err(QuoteError::TooShort { len: 10, min: 48 })
        );
        let mut header = [0u8; 48];
        header[0] = 4;
        header[4] = 0x42;
        assert_eq!(
            Quote::from_bytes(&header),
            Err(QuoteError::UnsupportedTeeType { tee_type: 0x42 })
        );
        header[0] = 9;
        header[4] = 0x81;
        assert_eq!(
            Quote::from_bytes(&header),
            Err(QuoteError::UnsupportedVersion { version: 9 })
        );
    }

    #[test]
    fn sgx_debug_is_attributes_bit_1() {
        let mut r = SgxReport {
            mr_enclave: [0; 32],
            mr_signer: [0; 32],
            isv_prod_id: 0,
            isv_svn: 0,
            attributes: [0; 16],
            report_data: [0; 64],
        };
        assert!(!r.debug());
        r.attributes[0] = 0b10;
        assert!(r.debug());
        r.attributes[0] = 0b01;
        assert!(!r.debug());
    }
}
