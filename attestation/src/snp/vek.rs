//! The checks that tie a report to its VEK (VCEK or VLEK): the key kind the report names
//! (`snp.signing_key`), the report's signature (`snp.report_signature`), and the TCB and
//! chip the VEK certifies (`snp.vek_tcb`, `snp.vek_chip_id`).

use super::certs::{CertError, VekExtensions, VekKind};
use super::chain::{Link, LinkError};
use super::report::{
    AttestationReport, OversizedScalar, ProductLine, SigningKey, TcbParts, SIGNED_LEN,
};
use crate::checks::snp;
use crate::signature::{Algorithm, PublicKey, SignatureBytes, SignatureError};
use crate::verdict::{Check, Verdict};

/// Why a VEK check failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VekError {
    /// The VEK (or a certificate it needs) is not at hand.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// The firmware wrote zeros instead of a signature.
    #[error("MASK_CHIP_KEY is set: the firmware did not sign")]
    MaskChipKey,
    /// SIGNING_KEY says no key signed the report.
    #[error("the report is not signed (SIGNING_KEY = none)")]
    Unsigned,
    /// SIGNING_KEY holds a reserved value.
    #[error("SIGNING_KEY {0} is reserved")]
    ReservedSigningKey(u8),
    /// The certificate is neither a VCEK nor a VLEK.
    #[error("the VEK's subject is neither SEV-VCEK nor SEV-VLEK")]
    UnknownKind,
    /// The report names one kind of key and the certificate is the other.
    #[error("the report was signed by a {key} but the certificate is a {kind}")]
    KindDiffers {
        /// What SIGNING_KEY says.
        key: SigningKey,
        /// What the certificate is.
        kind: VekKind,
    },
    /// The caller's parsed report is not the one in the raw bytes.
    #[error("the raw bytes do not parse to the report being verified")]
    NotThisReport,
    /// The VEK's key is not a P-384 key.
    #[error("VEK key: {0}")]
    Key(SignatureError),
    /// A signature component is too long for P-384.
    #[error(transparent)]
    Scalar(#[from] OversizedScalar),
    /// R or S is zero or not below the group order.
    #[error("R or S is zero or not below the group order")]
    MalformedSignature,
    /// The signature does not verify.
    #[error("the signature does not verify with the VEK's key")]
    BadSignature,
    /// The TCB layout, and so what to compare, depends on the unknown product line.
    #[error("the product line is unknown, so {what} is too")]
    UnknownLine {
        /// `the TCB layout` or `the hwID length`.
        what: &'static str,
    },
    /// The VEK's AMD extensions are missing or malformed.
    #[error(transparent)]
    Extensions(#[from] CertError),
    /// The VEK certifies another TCB than the report claims.
    #[error("VEK certifies {certified}, the report claims another TCB")]
    TcbDiffers {
        /// The TCB in the certificate.
        certified: TcbParts,
    },
    /// The report's CHIP_ID is all zero.
    #[error("CHIP_ID is masked (all zero); the report names no chip")]
    ChipIdMasked,
    /// The VCEK has no hwID extension.
    #[error("the VCEK has no hwID extension")]
    NoHwId,
    /// The hwID has the wrong length for the line.
    #[error("{line} hwID must be {expected} bytes, the VCEK's is {found}")]
    HwIdLength {
        /// The product line.
        line: ProductLine,
        /// Its hwID length.
        expected: usize,
        /// The certificate's.
        found: usize,
    },
    /// The hwID names another chip.
    #[error("the VCEK's hwID is {hw_id}")]
    HwIdDiffers {
        /// The certificate's hwID, hex.
        hw_id: String,
    },
}

pub(super) fn check_signing_key(
    report: &AttestationReport,
    kind: Option<VekKind>,
    verdict: &mut Verdict,
) {
    let expected =
        "SIGNING_KEY names the kind of the supplied VEK (VCEK or VLEK), MASK_CHIP_KEY clear";
    let found = format!(
        "SIGNING_KEY {}, MASK_CHIP_KEY {}, certificate {}",
        report.signing_key,
        u8::from(report.mask_chip_key),
        kind.map_or("of unknown kind".into(), |k| k.to_string())
    );
    let result = match (report.signing_key, kind) {
        _ if report.mask_chip_key => Err(VekError::MaskChipKey),
        (SigningKey::Vcek, Some(VekKind::Vcek)) | (SigningKey::Vlek, Some(VekKind::Vlek)) => {
            Ok(found.clone())
        }
        (SigningKey::None, _) => Err(VekError::Unsigned),
        (SigningKey::Reserved(v), _) => Err(VekError::ReservedSigningKey(v)),
        (_, None) => Err(VekError::UnknownKind),
        (key, Some(kind)) => Err(VekError::KindDiffers { key, kind }),
    };
    verdict.push(Check::from_result(
        &snp::SIGNING_KEY,
        expected,
        result,
        found,
    ));
}

pub(super) fn check_report_signature(
    raw: &[u8],
    report: &AttestationReport,
    vek: &Result<Link, LinkError>,
    verdict: &mut Verdict,
) {
    let expected = "ECDSA P-384/SHA-384 signature over report bytes [0, 0x2A0) by the VEK";
    let result = (|| -> Result<String, VekError> {
        // The caller's parsed report must be the one in `raw`, or checks on its fields would
        // be about bytes nobody signed.
        if AttestationReport::from_bytes(raw).as_ref() != Ok(report) {
            return Err(VekError::NotThisReport);
        }
        let vek = vek.as_ref().map_err(Clone::clone)?;
        let key = PublicKey::EcdsaP384(PublicKey::p384_of(&vek.cert).map_err(VekError::Key)?);
        let fixed = report.signature.to_fixed()?;
        let signed = raw.get(..SIGNED_LEN).ok_or(VekError::NotThisReport)?;
        key.verify(
            Algorithm::EcdsaP384Sha384,
            signed,
            SignatureBytes::Fixed(&fixed),
        )
        .map_err(|e| match e {
            SignatureError::Invalid => VekError::BadSignature,
            _ => VekError::MalformedSignature,
        })?;
        Ok(format!(
            "signature verifies with {} ({})",
            vek.cn(),
            vek.source
        ))
    })();
    verdict.push(Check::from_result(
        &snp::REPORT_SIGNATURE,
        expected,
        result,
        "signature does not verify",
    ));
}

pub(super) fn check_vek_tcb(
    report: &AttestationReport,
    vek: &Result<Link, LinkError>,
    line: Option<ProductLine>,
    verdict: &mut Verdict,
) {
    let reported = line.map(|l| report.reported_tcb.parts(l));
    let found = match reported {
        Some(p) => format!("REPORTED_TCB {} ({p})", report.reported_tcb),
        None => format!("REPORTED_TCB {}", report.reported_tcb),
    };
    let result = (|| -> Result<TcbParts, VekError> {
        let vek = vek.as_ref().map_err(Clone::clone)?;
        let line = line.ok_or(VekError::UnknownLine {
            what: "the TCB layout",
        })?;
        let certified = VekExtensions::from_cert(&vek.cert)?.tcb_parts(line)?;
        if Some(certified) == reported {
            Ok(certified)
        } else {
            Err(VekError::TcbDiffers { certified })
        }
    })();
    verdict.push(match result {
        Ok(certified) => Check::pass(&snp::VEK_TCB, format!("VEK certifies {certified}"), found),
        Err(reason) => Check::fail(
            &snp::VEK_TCB,
            "the VEK's TCB extensions",
            found,
            reason.to_string(),
        ),
    });
}

/// The VCEK is derived from one chip's secret; its hwID must be the report's CHIP_ID. A
/// masked (all-zero) CHIP_ID fails: the report then names no chip to compare, and a verifier
/// that accepts that must say so in its policy rather than get it by default.
pub(super) fn check_chip_id(
    report: &AttestationReport,
    vek: &Result<Link, LinkError>,
    kind: Option<VekKind>,
    line: Option<ProductLine>,
    verdict: &mut Verdict,
) {
    let expected = "the VCEK's hwID equals the report's CHIP_ID";
    let found = format!("CHIP_ID {}", hex::encode(report.chip_id));
    let result = (|| -> Result<&'static str, VekError> {
        let vek = vek.as_ref().map_err(Clone::clone)?;
        match kind {
            Some(VekKind::Vlek) => return Ok("VLEK: not chip-specific, has no hwID to compare"),
            Some(VekKind::Vcek) => {}
            None => return Err(VekError::UnknownKind),
        }
        if report.chip_id_masked() {
            return Err(VekError::ChipIdMasked);
        }
        let line = line.ok_or(VekError::UnknownLine {
            what: "the hwID length",
        })?;
        let hw_id = VekExtensions::from_cert(&vek.cert)?
            .hw_id
            .ok_or(VekError::NoHwId)?;
        // Turin's hwID is 8 bytes; the report zero-pads it to 64.
        let len = if line == ProductLine::Turin { 8 } else { 64 };
        let (head, tail) = report.chip_id.split_at(len);
        if hw_id.len() != len {
            return Err(VekError::HwIdLength {
                line,
                expected: len,
                found: hw_id.len(),
            });
        }
        if head != hw_id.as_slice() || tail.iter().any(|&b| b != 0) {
            return Err(VekError::HwIdDiffers {
                hw_id: hex::encode(&hw_id),
            });
        }
        Ok("VCEK hwID matches")
    })();
    verdict.push(match result {
        Ok(why) => Check::pass(&snp::VEK_CHIP_ID, expected, format!("{found}: {why}")),
        Err(reason) => Check::fail(&snp::VEK_CHIP_ID, expected, found, reason.to_string()),
    });
}
