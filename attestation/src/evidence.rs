//! Recognising evidence by its bytes, and verifying it end to end against a policy.

use time::OffsetDateTime;

use crate::checks::{self, CheckId};
use crate::policy::{Policy, Section};
use crate::snp::certs::{verify_signature_chain, SnpCertificates};
use crate::snp::report::{AttestationReport, ReportError, REPORT_SIZE};
use crate::snp::simulated;
use crate::tdx::{self, QuoteBody, QuoteError, TdxCollateral, TeeType};
use crate::verdict::{Check, Platform, Verdict};

/// What kind of evidence a byte string holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvidenceKind {
    /// An AMD SEV-SNP attestation report.
    SnpReport,
    /// An Intel DCAP quote (v3, v4 or v5) for a TD or an SGX enclave.
    DcapQuote(TeeType),
    /// An NVIDIA GPU attestation report (SPDM GET_MEASUREMENTS request and response).
    GpuReport,
}

impl std::fmt::Display for EvidenceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EvidenceKind::SnpReport => f.write_str("AMD SEV-SNP attestation report"),
            EvidenceKind::DcapQuote(TeeType::Tdx) => f.write_str("Intel TDX DCAP quote"),
            EvidenceKind::DcapQuote(TeeType::Sgx) => f.write_str("Intel SGX DCAP quote"),
            EvidenceKind::GpuReport => f.write_str("NVIDIA GPU attestation report"),
        }
    }
}

/// Evidence bytes whose format has been recognised.
#[derive(Clone, Debug)]
pub struct Evidence {
    /// The format.
    pub kind: EvidenceKind,
    /// The raw binary evidence (hex input already decoded).
    pub bytes: Vec<u8>,
}

/// Why hex text does not decode.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum HexTextError {
    /// Hex digits that do not decode (an odd count).
    #[error(transparent)]
    Decode(#[from] hex::FromHexError),
    /// A character that is not a hex digit, in text that is otherwise hex.
    #[error(
        "character {} at offset {offset} (byte {}) is not a hex digit",
        .character.escape_default(),
        .offset / 2
    )]
    NotHexDigit {
        /// The character.
        character: char,
        /// Its offset in the text (after whitespace and a `0x` prefix are removed).
        offset: usize,
    },
}

/// Why evidence could not be recognised or verified.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvidenceError {
    /// The input is empty.
    #[error("the evidence is empty")]
    Empty,
    /// The input looks like hex text but does not decode.
    #[error("the evidence looks like hex text but does not decode: {reason}")]
    BadHex {
        /// What is wrong, with the offset.
        reason: HexTextError,
        /// What the hex that does decode looks like, when that is clear.
        kind: Option<EvidenceKind>,
    },
    /// Neither an SNP report, a DCAP quote nor an NVIDIA GPU report.
    #[error(
        "unrecognised evidence ({len} bytes): not an SNP report ({REPORT_SIZE} bytes), a DCAP \
         quote (version 3-5, TEE type 0x00 or 0x81, Intel's QE vendor id) nor an NVIDIA GPU \
         report (SPDM 11 e0 .. 11 60); first bytes {}",
        hex::encode(.first_bytes)
    )]
    Unrecognised {
        /// Length of the (decoded) input.
        len: usize,
        /// Its first bytes (up to 8).
        first_bytes: Vec<u8>,
    },
    /// The SNP report is malformed.
    #[error(transparent)]
    SnpReport(#[from] ReportError),
    /// The quote is malformed.
    #[error(transparent)]
    Quote(#[from] QuoteError),
    /// The evidence needs inputs the caller did not give.
    #[error("{0}")]
    MissingInput(&'static str),
}

impl Evidence {
    /// Recognises binary or hex-text evidence (hex may have a `0x` prefix and whitespace).
    pub fn detect(input: &[u8]) -> Result<Self, EvidenceError> {
        let bytes = decode_text(input)?;
        if bytes.is_empty() {
            return Err(EvidenceError::Empty);
        }
        let kind = classify(&bytes)?;
        Ok(Self { kind, bytes })
    }
}

/// The evidence's bytes: hex text decoded (a `0x` prefix and whitespace allowed), binary
/// as it is, without deciding what it is.
pub fn decode_text(input: &[u8]) -> Result<Vec<u8>, EvidenceError> {
    let text: Vec<u8> = input
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let text = text
        .strip_prefix(b"0x")
        .or_else(|| text.strip_prefix(b"0X"))
        .unwrap_or(&text);
    // Binary evidence is never all hex digits: an SNP report starts with a little-endian
    // version (0x02..) and a quote with a little-endian u16 version, both bytes < 0x30.
    if !text.is_empty() && text.iter().all(u8::is_ascii_hexdigit) {
        return hex::decode(text).map_err(|e| EvidenceError::BadHex {
            reason: e.into(),
            kind: None,
        });
    }
    // Hex text with a few damaged characters is damaged evidence, not binary evidence:
    // binary reports and quotes are mostly bytes outside the hex digits.
    let digits = text.iter().filter(|b| b.is_ascii_hexdigit()).count();
    if text.len() >= 64 && digits * 100 >= text.len() * 99 {
        let bad = text
            .iter()
            .position(|b| !b.is_ascii_hexdigit())
            .unwrap_or_default();
        let prefix: Vec<u8> = hex::decode(&text[..bad & !1]).unwrap_or_default();
        let kind = if text.len() == 2 * REPORT_SIZE {
            Some(EvidenceKind::SnpReport)
        } else {
            classify(&prefix).ok()
        };
        return Err(EvidenceError::BadHex {
            reason: HexTextError::NotHexDigit {
                character: char::from(text[bad]),
                offset: bad,
            },
            kind,
        });
    }
    Ok(input.to_vec())
}

fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Intel's QE vendor id, in every DCAP quote header Intel's quoting enclaves make.
const INTEL_QE_VENDOR_ID: [u8; 16] = [
    0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07,
];

/// How many of a DCAP quote header's four recognisable fields hold what quotes hold, and
/// the TEE type. Damage to one byte breaks at most one field, so a damaged quote is still
/// recognised (and then rejected at its format check, not called unknown input).
fn quote_header_score(b: &[u8]) -> (usize, Option<u32>) {
    let tee = le_u32(b, 4);
    let score = [
        matches!(le_u16(b, 0), Some(3..=5)),
        matches!(le_u16(b, 2), Some(2 | 3)),
        matches!(tee, Some(0x00 | 0x81)),
        b.get(12..28) == Some(&INTEL_QE_VENDOR_ID[..]),
    ]
    .iter()
    .filter(|&&ok| ok)
    .count();
    (score, tee)
}

/// Whether the bytes start like an NVIDIA SPDM 1.1 GET_MEASUREMENTS request (`11 e0`)
/// followed, after the nonce and slot, by its response (`11 60`); three of the four
/// bytes suffice, for the same reason as for quotes.
fn looks_like_gpu_report(b: &[u8]) -> bool {
    b.len() > 41
        && [b[0] == 0x11, b[1] == 0xe0, b[37] == 0x11, b[38] == 0x60]
            .iter()
            .filter(|&&ok| ok)
            .count()
            >= 3
}

fn classify(bytes: &[u8]) -> Result<EvidenceKind, EvidenceError> {
    let (score, tee_type) = quote_header_score(bytes);
    // An SNP report has a fixed size; its version is checked by the parser, so that a
    // report with a damaged version is rejected at `snp.report_format`.
    if bytes.len() == REPORT_SIZE && score < 3 {
        return Ok(EvidenceKind::SnpReport);
    }
    if score >= 2 {
        let tee = match tee_type {
            Some(0x81) => TeeType::Tdx,
            Some(0x00) => TeeType::Sgx,
            _ if le_u16(bytes, 0) == Some(3) => TeeType::Sgx,
            _ => TeeType::Tdx,
        };
        return Ok(EvidenceKind::DcapQuote(tee));
    }
    if looks_like_gpu_report(bytes) {
        return Ok(EvidenceKind::GpuReport);
    }
    Err(EvidenceError::Unrecognised {
        len: bytes.len(),
        first_bytes: bytes[..bytes.len().min(8)].to_vec(),
    })
}

impl EvidenceError {
    /// When this error means the evidence is of a known kind but does not parse, the
    /// verdict that rejects it at that kind's format check (`snp.report_format`,
    /// `tdx.quote_format`, `sgx.quote_format`, `gpu.report_format`), naming the offset
    /// where known. `None` for errors that are the caller's to fix: empty input, an
    /// unknown format, missing inputs. `kind` is what the caller recognised, if anything.
    pub fn as_rejection(&self, kind: Option<EvidenceKind>) -> Option<(EvidenceKind, Verdict)> {
        let (kind, found, reason) = match self {
            EvidenceError::SnpReport(e) => (EvidenceKind::SnpReport, at(e.offset()), e.to_string()),
            EvidenceError::Quote(e) => (
                kind.unwrap_or(EvidenceKind::DcapQuote(TeeType::Tdx)),
                at(e.offset()),
                e.to_string(),
            ),
            EvidenceError::BadHex { reason, kind } => {
                ((*kind)?, "damaged hex text".to_owned(), reason.to_string())
            }
            _ => return None,
        };
        Some((kind, malformed(kind, found, reason)))
    }
}

/// Where a parse error is, as a format check's `found` says it.
fn at(offset: Option<usize>) -> String {
    offset.map_or_else(|| "does not parse".to_owned(), |o| format!("offset {o:#x}"))
}

/// A kind's format check.
pub fn format_check(kind: EvidenceKind) -> &'static CheckId {
    match kind {
        EvidenceKind::SnpReport => AttestationReport::FORMAT_CHECK,
        EvidenceKind::DcapQuote(tee) => tee.format_check(),
        EvidenceKind::GpuReport => &checks::gpu::REPORT_FORMAT,
    }
}

/// A verdict rejecting evidence of `kind` at its format check.
pub fn malformed(kind: EvidenceKind, found: String, reason: String) -> Verdict {
    let (platform, expected) = match kind {
        EvidenceKind::SnpReport => (
            Platform::SevSnp,
            "an SEV-SNP attestation report (AMD SEV-SNP ABI, Table 23)",
        ),
        EvidenceKind::DcapQuote(TeeType::Tdx) => (Platform::Tdx, "a TDX DCAP quote (v4/v5)"),
        EvidenceKind::DcapQuote(TeeType::Sgx) => (Platform::Sgx, "an SGX DCAP quote (v3)"),
        EvidenceKind::GpuReport => (
            Platform::NvidiaGpu,
            "SPDM 1.1 GET_MEASUREMENTS request and signed response",
        ),
    };
    let mut verdict = Verdict::new(platform);
    verdict.push(Check::fail(format_check(kind), expected, found, reason));
    verdict
}

/// Verifies an SEV-SNP report: AMD signature chain, then the policy's rules.
pub fn verify_snp(
    raw: &[u8],
    certs: &SnpCertificates,
    policy: &Policy,
    now: OffsetDateTime,
) -> Result<(AttestationReport, Verdict), EvidenceError> {
    let report = AttestationReport::from_bytes(raw)?;
    let mut verdict = Verdict::new(Platform::SevSnp);
    let line = match (&certs.ask, &certs.ark) {
        (Some(ask), Some(ark)) if simulated::is_simulated(Some(ark)) => {
            let chain = simulated::SimulatedChain {
                ark: ark.clone(),
                ask: ask.clone(),
                vcek: certs.vek.clone(),
            };
            let pins: Vec<[u8; 32]> = policy.simulated_roots.iter().map(|h| h.0).collect();
            simulated::verify_simulated(raw, &chain, policy.allow_simulated, &pins, &mut verdict)
        }
        _ => verify_signature_chain(raw, &report, certs, now, &mut verdict),
    };
    snp_facts(&report, line, &mut verdict);
    match &policy.snp {
        Some(rules) => rules.evaluate(&report, line, &mut verdict),
        None => verdict.push(Section::Snp.missing()),
    }
    Ok((report, verdict))
}

/// Verifies a DCAP quote (TDX or SGX) with its collateral, then the policy's rules.
pub fn verify_quote(
    raw: &[u8],
    collateral: &TdxCollateral,
    policy: &Policy,
    now: OffsetDateTime,
) -> Result<(tdx::Quote, Verdict), EvidenceError> {
    // What the header looks like only picks the verdict's platform: a header damaged past
    // recognition is the parser's to reject, as a malformed quote.
    let platform = match classify(raw) {
        Ok(EvidenceKind::DcapQuote(TeeType::Sgx)) => Platform::Sgx,
        _ => Platform::Tdx,
    };
    let mut verdict = Verdict::new(platform);
    let (quote, tcb) = tdx::verify(raw, collateral, now, &mut verdict)?;
    quote_facts(&quote, tcb.as_ref(), &mut verdict);
    match (&quote.body, &policy.tdx, &policy.sgx) {
        (QuoteBody::Td(td), Some(rules), _) => {
            rules.evaluate(td, tcb.as_ref(), collateral, now, &mut verdict)
        }
        (QuoteBody::Sgx(sgx), _, Some(rules)) => {
            rules.evaluate(sgx, tcb.as_ref(), collateral, now, &mut verdict)
        }
        (QuoteBody::Td(_), None, _) => verdict.push(Section::Tdx.missing()),
        (QuoteBody::Sgx(_), _, None) => verdict.push(Section::Sgx.missing()),
    }
    Ok((quote, verdict))
}

fn snp_facts(
    r: &AttestationReport,
    line: Option<crate::snp::report::ProductLine>,
    v: &mut Verdict,
) {
    v.fact("version", r.version.to_string());
    if let Some(line) = line {
        v.fact("product", line.to_string());
    }
    v.fact("measurement", hex::encode(r.measurement));
    v.fact("report_data", hex::encode(r.report_data));
    v.fact("host_data", hex::encode(r.host_data));
    v.fact("guest_policy", format!("{:#x}", r.policy.0));
    v.fact("vmpl", r.vmpl.to_string());
    v.fact("guest_svn", r.guest_svn.to_string());
    let tcb = |t: crate::snp::report::TcbVersion| match line {
        Some(l) => t.parts(l).to_string(),
        None => format!("{:#018x}", t.0),
    };
    v.fact("reported_tcb", tcb(r.reported_tcb));
    v.fact("current_tcb", tcb(r.current_tcb));
    v.fact("committed_tcb", tcb(r.committed_tcb));
    v.fact("launch_tcb", tcb(r.launch_tcb));
    v.fact("signing_key", format!("{:?}", r.signing_key));
    v.fact("chip_id", hex::encode(r.chip_id));
    v.fact("id_key_digest", hex::encode(r.id_key_digest));
    v.fact("author_key_digest", hex::encode(r.author_key_digest));
    v.fact("platform_info", format!("{:#x}", r.platform_info.0));
    v.fact(
        "firmware",
        format!(
            "{}.{} build {}",
            r.current_version.major, r.current_version.minor, r.current_version.build
        ),
    );
}

fn quote_facts(q: &tdx::Quote, tcb: Option<&tdx::TcbVerdict>, v: &mut Verdict) {
    v.fact("quote_version", q.version.to_string());
    if let Some(tcb) = tcb {
        v.fact("tcb_status", tcb.status.to_string());
        v.fact("advisory_ids", tcb.advisory_ids.join(", "));
    }
    match &q.body {
        QuoteBody::Td(td) => {
            v.fact("mr_td", hex::encode(td.mr_td));
            for (name, reg) in ["rtmr0", "rtmr1", "rtmr2", "rtmr3"].iter().zip(&td.rtmr) {
                v.fact(name, hex::encode(reg));
            }
            v.fact("mr_config_id", hex::encode(td.mr_config_id));
            v.fact("mr_owner", hex::encode(td.mr_owner));
            v.fact("mr_owner_config", hex::encode(td.mr_owner_config));
            v.fact("mr_seam", hex::encode(td.mr_seam));
            v.fact("td_attributes", format!("{:#018x}", td.td_attributes.0));
            v.fact("xfam", format!("{:#018x}", td.xfam));
            v.fact("tee_tcb_svn", hex::encode(td.tee_tcb_svn));
            v.fact("report_data", hex::encode(td.report_data));
        }
        QuoteBody::Sgx(sgx) => {
            v.fact("mr_enclave", hex::encode(sgx.mr_enclave));
            v.fact("mr_signer", hex::encode(sgx.mr_signer));
            v.fact("isv_prod_id", sgx.isv_prod_id.to_string());
            v.fact("isv_svn", sgx.isv_svn.to_string());
            v.fact("report_data", hex::encode(sgx.report_data));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_hex_snp_report() {
        let mut text = b"0x".to_vec();
        let mut report = vec![0u8; REPORT_SIZE];
        report[0] = 2;
        text.extend(hex::encode(&report).bytes());
        text.push(b'\n');
        let ev = Evidence::detect(&text).unwrap();
        assert_eq!(ev.kind, EvidenceKind::SnpReport);
        assert_eq!(ev.bytes, report);
    }

    #[test]
    fn detects_quotes_by_tee_type() {
        let mut q = vec![0u8; 64];
        q[0] = 4;
        q[4] = 0x81;
        assert_eq!(classify(&q).unwrap(), EvidenceKind::DcapQuote(TeeType::Tdx));
        q[4] = 0;
        assert_eq!(classify(&q).unwrap(), EvidenceKind::DcapQuote(TeeType::Sgx));
    }

    #[test]
    fn rejects_junk_with_reason() {
        assert!(matches!(Evidence::detect(b""), Err(EvidenceError::Empty)));
        let e = Evidence::detect(b"hello world").unwrap_err();
        assert!(e.to_string().contains("unrecognised"), "{e}");
        let e = Evidence::detect(b"abc").unwrap_err();
        assert!(matches!(e, EvidenceError::BadHex { kind: None, .. }), "{e}");
        assert!(e.as_rejection(None).is_none());
    }
}
