//! NVIDIA's certificates: the pinned roots, PEM chains, X.509 path checks (ECDSA P-384
//! throughout) and the FWID in the device certificate's TCG DICE extension.
//!
//! The GPU's chain has five certificates, leaf first: the attestation key certificate
//! (`GH100 A01 GSP FMC LF`), the chip's boot ROM identity (`GH100 A01 GSP BROM`), NVIDIA's
//! provisioner CA, the per-architecture identity CA and the NVIDIA Device Identity CA, which
//! verifiers pin. RIM signing chains end in the NVIDIA CoRIM signing root, pinned likewise.

use const_oid::db::rfc4519::CN;
use const_oid::db::rfc5280::{
    ID_CE_AUTHORITY_KEY_IDENTIFIER, ID_CE_BASIC_CONSTRAINTS, ID_CE_CERTIFICATE_POLICIES,
    ID_CE_CRL_DISTRIBUTION_POINTS, ID_CE_EXT_KEY_USAGE, ID_CE_KEY_USAGE, ID_CE_SUBJECT_ALT_NAME,
    ID_CE_SUBJECT_KEY_IDENTIFIER, ID_PE_AUTHORITY_INFO_ACCESS,
};
use const_oid::db::rfc5912::ID_SHA_384;
use const_oid::AssociatedOid;
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Any, Decode, DecodePem, Encode, Reader, SliceReader, Tag, Tagged};
use time::OffsetDateTime;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages};
use x509_cert::Certificate;

use super::GpuArch;
use crate::signature::{self, SignatureError, ECDSA_P384};

/// TCG DICE TcbInfo (TCG "DICE Attestation Architecture", tcg-dice-TcbInfo); NVIDIA's
/// Hopper certificates put the older CompositeDeviceID here. TCG's arcs are in no OID
/// database silk uses.
pub const OID_DICE_TCB_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.5.4.1");
/// The OID under which Blackwell certificates carry a DiceTcbInfo (NVIDIA's choice, one
/// arc below TcbInfo).
pub const OID_DICE_TCB_INFO_ALIAS: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.23.133.5.4.1.1");
/// TCG DICE's arc (tcg-dice): every extension under it is understood as far as a critical
/// flag goes, since only the FWID is read and none widens what a certificate may do.
const OID_TCG_DICE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.5.4");

/// Extensions whose meaning this verifier applies or that cannot widen what a certificate
/// may do; any other extension marked critical makes the certificate unusable (RFC 5280
/// 4.2), as OpenSSL, which NVIDIA's verifiers use, would have it.
const UNDERSTOOD: [ObjectIdentifier; 9] = [
    ID_CE_SUBJECT_KEY_IDENTIFIER,
    ID_CE_KEY_USAGE,
    ID_CE_SUBJECT_ALT_NAME,
    ID_CE_BASIC_CONSTRAINTS,
    ID_CE_CRL_DISTRIBUTION_POINTS,
    ID_CE_CERTIFICATE_POLICIES,
    ID_CE_AUTHORITY_KEY_IDENTIFIER,
    ID_CE_EXT_KEY_USAGE,
    ID_PE_AUTHORITY_INFO_ACCESS,
];

/// NVIDIA's public roots, pinned into the binary (see `roots/README.md`).
mod pinned {
    pub(super) const DEVICE_ROOT: &[u8] = include_bytes!("roots/verifier_device_root.pem");
    pub(super) const RIM_ROOT: &[u8] = include_bytes!("roots/verifier_RIM_root.pem");
}

/// Why NVIDIA certificates, or a path through them, are not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// A pinned root does not load.
    #[error("built-in {what}: {source}")]
    BuiltIn {
        /// `device root` or `RIM root`.
        what: &'static str,
        /// The decoder's error.
        source: der::Error,
    },
    /// Non-whitespace text after the last PEM block.
    #[error("text after the last certificate")]
    TextAfter,
    /// Non-whitespace text before a PEM block.
    #[error("text before certificate {0}")]
    TextBefore(usize),
    /// A PEM block without its END line.
    #[error("certificate {0} has no END line")]
    NoEnd(usize),
    /// A PEM block that is not a certificate.
    #[error("certificate {index}: {source}")]
    Certificate {
        /// Its 1-based place in the text.
        index: usize,
        /// The decoder's error.
        source: der::Error,
    },
    /// No PEM block at all.
    #[error("no PEM certificate found")]
    NoCertificate,
    /// A chain of another length than NVIDIA's.
    #[error("{found} certificates, NVIDIA's chains have {expected}")]
    Length {
        /// How many the chain has.
        found: usize,
        /// How many NVIDIA's have.
        expected: usize,
    },
    /// An empty chain.
    #[error("the chain is empty")]
    Empty,
    /// The chain ends in a self-signed certificate that is not the pinned root.
    #[error("the chain ends in {found:?}, a root that is not the pinned {pinned:?}")]
    ForeignRoot {
        /// The last certificate's CN.
        found: String,
        /// The pinned root's CN.
        pinned: String,
    },
    /// A certificate is not signed by the next.
    #[error("{subject:?} is not signed by {issuer:?}: {source}")]
    NotSignedBy {
        /// The subject's CN.
        subject: String,
        /// The issuer's CN.
        issuer: String,
        /// Why the signature was not accepted.
        source: SignatureError,
    },
    /// An issuer may not issue the certificates below it.
    #[error("{cert:?}: {reason}")]
    MayNotIssue {
        /// The issuer's CN.
        cert: String,
        /// Why not.
        reason: IssueError,
    },
    /// The root's self-signature does not verify.
    #[error("the root's self-signature: {0}")]
    RootSignature(SignatureError),
    /// A certificate is not valid yet.
    #[error("{cert:?} is not valid before {not_before}")]
    NotYetValid {
        /// Its CN.
        cert: String,
        /// Its notBefore.
        not_before: String,
    },
    /// A certificate has expired.
    #[error("{cert:?} expired at {not_after}")]
    Expired {
        /// Its CN.
        cert: String,
        /// Its notAfter.
        not_after: String,
    },
    /// A critical extension this verifier does not apply.
    #[error("{cert:?} has a critical extension {oid} this verifier does not understand")]
    UnknownCritical {
        /// Its CN.
        cert: String,
        /// The extension.
        oid: ObjectIdentifier,
    },
    /// The leaf's key usage does not allow signatures.
    #[error("{cert:?} may not make signatures (key usage)")]
    NoDigitalSignature {
        /// Its CN.
        cert: String,
    },
    /// An extension appears twice.
    #[error("{cert:?} has extension {oid} twice")]
    DuplicateExtension {
        /// Its CN.
        cert: String,
        /// The extension.
        oid: ObjectIdentifier,
    },
    /// An extension does not decode.
    #[error("{cert:?}: extension {oid}: {source}")]
    BadExtension {
        /// Its CN.
        cert: String,
        /// The extension.
        oid: ObjectIdentifier,
        /// The decoder's error.
        source: der::Error,
    },
    /// The root does not encode.
    #[error("root: {0}")]
    Encoding(der::Error),
}

/// Why an issuer may not issue the certificates below it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// No basic constraints extension.
    #[error("no basic constraints, so it is not a CA")]
    NoBasicConstraints,
    /// Basic constraints without `cA`.
    #[error("basic constraints say it is not a CA")]
    NotCa,
    /// More certificates below it than its path length allows.
    #[error("path length {below} exceeds its limit {max}")]
    PathLength {
        /// Non-self-issued certificates below it.
        below: usize,
        /// Its pathLenConstraint.
        max: u8,
    },
    /// Key usage without keyCertSign.
    #[error("key usage does not allow signing certificates")]
    NoCertSign,
}

/// Why the leaf's FWID could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FwidError {
    /// The leaf has no DICE extension for its architecture.
    #[error("the leaf certificate has no TCG DICE extension {0}")]
    NoExtension(ObjectIdentifier),
    /// The extension appears twice.
    #[error(transparent)]
    Duplicate(PathError),
    /// The extension's structure is not DICE's.
    #[error("extension {oid}: {reason}")]
    Structure {
        /// The extension.
        oid: ObjectIdentifier,
        /// What is wrong with it.
        reason: DiceError,
    },
}

/// What is wrong with a DICE structure.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DiceError {
    /// Not DER.
    #[error("{0}")]
    Der(#[from] der::Error),
    /// Another type where a SEQUENCE belongs.
    #[error("expected a SEQUENCE, found {0}")]
    NotSequence(Tag),
    /// An empty SEQUENCE.
    #[error("the DICE structure is empty")]
    Empty,
    /// A DiceTcbInfo without FWIDs.
    #[error("DiceTcbInfo has no fwids [6]")]
    NoFwids,
    /// An FWID with another number of fields than two.
    #[error("FWID has {0} fields, expected 2")]
    FwidFields(usize),
    /// An FWID of another hash than SHA-384.
    #[error("FWID hash algorithm {0}, expected SHA-384")]
    HashAlgorithm(ObjectIdentifier),
    /// An FWID digest of another length than SHA-384's.
    #[error("FWID digest is {0} bytes, expected 48")]
    DigestLength(usize),
}

/// A device chain whose chip is of neither known architecture.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArchError {
    /// The chain has no second certificate.
    #[error("the chain has no chip identity certificate")]
    NoChipCertificate,
    /// The chip's name is of no known architecture.
    #[error("chip {0:?} is neither Hopper (GH1xx) nor Blackwell (GB1xx/GB2xx)")]
    UnknownChip(String),
}

/// The NVIDIA Device Identity CA, the root of every GPU's attestation chain.
pub fn device_root() -> Result<Certificate, PathError> {
    Certificate::from_pem(pinned::DEVICE_ROOT).map_err(|source| PathError::BuiltIn {
        what: "device root",
        source,
    })
}

/// The NVIDIA CoRIM signing root, the root of every RIM signing chain.
pub fn rim_root() -> Result<Certificate, PathError> {
    Certificate::from_pem(pinned::RIM_ROOT).map_err(|source| PathError::BuiltIn {
        what: "RIM root",
        source,
    })
}

/// Splits a PEM text into certificates, in order. Only whitespace may stand between (or
/// around) the blocks, so nothing unsigned can ride along in the text.
pub fn parse_pem_chain(pem: &[u8]) -> Result<Vec<Certificate>, PathError> {
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    const END: &[u8] = b"-----END CERTIFICATE-----";
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let mut rest = pem;
    let mut certs = Vec::new();
    loop {
        let index = certs.len() + 1;
        let Some(start) = find(rest, BEGIN) else {
            if rest.iter().all(u8::is_ascii_whitespace) {
                break;
            }
            return Err(PathError::TextAfter);
        };
        if !rest[..start].iter().all(u8::is_ascii_whitespace) {
            return Err(PathError::TextBefore(index));
        }
        let end = find(&rest[start..], END).ok_or(PathError::NoEnd(index))? + start + END.len();
        let cert = Certificate::from_pem(&rest[start..end])
            .map_err(|source| PathError::Certificate { index, source })?;
        certs.push(cert);
        rest = &rest[end..];
    }
    if certs.is_empty() {
        return Err(PathError::NoCertificate);
    }
    Ok(certs)
}

/// The subject common name of `cert`, or `<no CN>`.
pub fn common_name(cert: &Certificate) -> String {
    cert.tbs_certificate
        .subject
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .find(|atv| atv.oid == CN)
        .and_then(|atv| {
            der::asn1::Utf8StringRef::try_from(&atv.value)
                .map(|s| s.as_str().to_owned())
                .ok()
                .or_else(|| {
                    der::asn1::PrintableStringRef::try_from(&atv.value)
                        .map(|s| s.as_str().to_owned())
                        .ok()
                })
        })
        .unwrap_or_else(|| "<no CN>".into())
}

/// Checks `certs` (leaf first) as a path up to `root`: each certificate names and is
/// signed (ECDSA P-384, SHA-384) by the next, issuers are CAs allowed to sign certificates
/// within their path length, every certificate (the root too) is valid at `now`, and no
/// certificate has a critical extension this verifier does not understand. The chain may
/// end with `root` itself or with a certificate `root` signed; a different self-signed
/// certificate at the end is refused, whatever it says. Returns a one-line summary.
pub fn verify_path(
    certs: &[Certificate],
    root: &Certificate,
    now: OffsetDateTime,
) -> Result<String, PathError> {
    let root_der = root.to_der().map_err(PathError::Encoding)?;
    let mut path: Vec<&Certificate> = certs.iter().collect();
    match certs.last() {
        None => return Err(PathError::Empty),
        Some(last) if last.to_der().ok().as_deref() == Some(root_der.as_slice()) => {}
        Some(last) if last.tbs_certificate.subject == last.tbs_certificate.issuer => {
            return Err(PathError::ForeignRoot {
                found: common_name(last),
                pinned: common_name(root),
            })
        }
        Some(_) => path.push(root),
    }
    for (i, pair) in path.windows(2).enumerate() {
        let (subject, issuer) = (pair[0], pair[1]);
        signature::verify_certificate(subject, issuer, ECDSA_P384).map_err(|source| {
            PathError::NotSignedBy {
                subject: common_name(subject),
                issuer: common_name(issuer),
                source,
            }
        })?;
        // Certificates below the issuer that are not self-issued count against pathLen.
        let below = path[..=i]
            .iter()
            .skip(1)
            .filter(|c| c.tbs_certificate.subject != c.tbs_certificate.issuer)
            .count();
        may_issue(issuer, below)?;
    }
    signature::verify_certificate(root, root, ECDSA_P384).map_err(PathError::RootSignature)?;
    for cert in &path {
        valid_at(cert, now)?;
        critical_understood(cert)?;
    }
    if let Some(ku) = extension::<KeyUsage>(path[0])? {
        if !ku.0.contains(KeyUsages::DigitalSignature) {
            return Err(PathError::NoDigitalSignature {
                cert: common_name(path[0]),
            });
        }
    }
    Ok(path
        .iter()
        .map(|c| common_name(c))
        .collect::<Vec<_>>()
        .join(" <- "))
}

fn may_issue(issuer: &Certificate, below: usize) -> Result<(), PathError> {
    let refuse = |reason| PathError::MayNotIssue {
        cert: common_name(issuer),
        reason,
    };
    let bc = extension::<BasicConstraints>(issuer)?
        .ok_or_else(|| refuse(IssueError::NoBasicConstraints))?;
    if !bc.ca {
        return Err(refuse(IssueError::NotCa));
    }
    if let Some(max) = bc.path_len_constraint {
        if below > usize::from(max) {
            return Err(refuse(IssueError::PathLength { below, max }));
        }
    }
    if let Some(ku) = extension::<KeyUsage>(issuer)? {
        if !ku.0.contains(KeyUsages::KeyCertSign) {
            return Err(refuse(IssueError::NoCertSign));
        }
    }
    Ok(())
}

fn valid_at(cert: &Certificate, now: OffsetDateTime) -> Result<(), PathError> {
    let v = &cert.tbs_certificate.validity;
    let secs = |t: x509_cert::time::Time| {
        i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
    };
    let now_s = now.unix_timestamp();
    if now_s < secs(v.not_before) {
        return Err(PathError::NotYetValid {
            cert: common_name(cert),
            not_before: v.not_before.to_string(),
        });
    }
    if now_s > secs(v.not_after) {
        return Err(PathError::Expired {
            cert: common_name(cert),
            not_after: v.not_after.to_string(),
        });
    }
    Ok(())
}

/// Whether `oid` is `arc` or lies under it.
fn under(oid: &ObjectIdentifier, arc: &ObjectIdentifier) -> bool {
    let (mut oid, mut arc) = (oid.arcs(), arc.arcs());
    arc.all(|a| oid.next() == Some(a))
}

fn critical_understood(cert: &Certificate) -> Result<(), PathError> {
    for ext in cert.tbs_certificate.extensions.iter().flatten() {
        let known = UNDERSTOOD.contains(&ext.extn_id) || under(&ext.extn_id, &OID_TCG_DICE);
        if ext.critical && !known {
            return Err(PathError::UnknownCritical {
                cert: common_name(cert),
                oid: ext.extn_id,
            });
        }
    }
    Ok(())
}

/// Decodes the extension `T` of `cert`; an extension present twice is an error.
fn extension<T: for<'a> Decode<'a> + AssociatedOid>(
    cert: &Certificate,
) -> Result<Option<T>, PathError> {
    let Some(value) = raw_extension(cert, T::OID)? else {
        return Ok(None);
    };
    T::from_der(&value)
        .map(Some)
        .map_err(|source| PathError::BadExtension {
            cert: common_name(cert),
            oid: T::OID,
            source,
        })
}

/// The FWID (a SHA-384 digest) in the leaf's TCG DICE extension, as NVIDIA places it per
/// architecture: Blackwell writes a DiceTcbInfo under 2.23.133.5.4.1.1 and the digest is
/// its first FWID; Hopper writes, under 2.23.133.5.4.1, the CompositeDeviceID of the
/// first DICE drafts (`SEQUENCE { version, SubjectPublicKeyInfo, FWID }`). NVIDIA's
/// verifiers also accept a DiceTcbInfo there and, failing both, "the last 48 bytes" of the
/// extension; silk parses the structures and accepts no raw tail, so that the digest it
/// compares is the one the encoding labels as the FWID.
pub fn leaf_fwid(leaf: &Certificate, arch: GpuArch) -> Result<Vec<u8>, FwidError> {
    let oid = match arch {
        GpuArch::Hopper => OID_DICE_TCB_INFO,
        GpuArch::Blackwell => OID_DICE_TCB_INFO_ALIAS,
    };
    let value = raw_extension(leaf, oid)
        .map_err(FwidError::Duplicate)?
        .ok_or(FwidError::NoExtension(oid))?;
    let structure = |reason| FwidError::Structure { oid, reason };
    let fields = elements(&value).map_err(structure)?;
    match fields.first().map(Any::tag) {
        // CompositeDeviceID: version INTEGER, device key, FWID.
        Some(Tag::Integer) if fields.len() == 3 => fwid_digest(&fields[2]),
        Some(_) => dice_tcb_info_fwid(&fields),
        None => Err(DiceError::Empty),
    }
    .map_err(structure)
}

/// The raw value of an extension (its OCTET STRING content); present twice is an error.
fn raw_extension(cert: &Certificate, oid: ObjectIdentifier) -> Result<Option<Vec<u8>>, PathError> {
    let mut found = cert
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .filter(|e| e.extn_id == oid);
    let first = found.next().map(|e| e.extn_value.as_bytes().to_vec());
    if found.next().is_some() {
        return Err(PathError::DuplicateExtension {
            cert: common_name(cert),
            oid,
        });
    }
    Ok(first)
}

/// The elements of the DER SEQUENCE in `der`, which must be all of `der`.
fn elements(der: &[u8]) -> Result<Vec<Any>, DiceError> {
    let seq = Any::from_der(der)?;
    if seq.tag() != Tag::Sequence {
        return Err(DiceError::NotSequence(seq.tag()));
    }
    let mut reader = SliceReader::new(seq.value())?;
    let mut out = Vec::new();
    while !reader.is_finished() {
        out.push(reader.decode::<Any>()?);
    }
    Ok(out)
}

/// DiceTcbInfo's `fwids [6] IMPLICIT SEQUENCE OF FWID`: the first FWID's digest.
fn dice_tcb_info_fwid(fields: &[Any]) -> Result<Vec<u8>, DiceError> {
    let fwids = fields
        .iter()
        .find(|f| {
            matches!(f.tag(), Tag::ContextSpecific { constructed: true, number } if number.value() == 6)
        })
        .ok_or(DiceError::NoFwids)?;
    let mut reader = SliceReader::new(fwids.value())?;
    let first: Any = reader.decode()?;
    fwid_digest(&first)
}

/// `FWID ::= SEQUENCE { hashAlg OBJECT IDENTIFIER, digest OCTET STRING }`, SHA-384 only.
fn fwid_digest(fwid: &Any) -> Result<Vec<u8>, DiceError> {
    let der = fwid.to_der()?;
    let parts = elements(&der)?;
    let [alg, digest] = parts.as_slice() else {
        return Err(DiceError::FwidFields(parts.len()));
    };
    let alg: ObjectIdentifier = alg.decode_as()?;
    if alg != ID_SHA_384 {
        return Err(DiceError::HashAlgorithm(alg));
    }
    let digest: OctetString = digest.decode_as()?;
    if digest.as_bytes().len() != 48 {
        return Err(DiceError::DigestLength(digest.as_bytes().len()));
    }
    Ok(digest.into_bytes())
}

/// The GPU architecture a device chain belongs to, from the chip named in its second
/// certificate's common name (`GH100 A01 GSP BROM`: Hopper; `GB100 …`: Blackwell), which
/// NVIDIA's verifiers report as the hardware model.
pub fn chain_arch(certs: &[Certificate]) -> Result<(String, GpuArch), ArchError> {
    let cert = certs.get(1).ok_or(ArchError::NoChipCertificate)?;
    let cn = common_name(cert);
    let chip = cn.split_whitespace().next().unwrap_or_default().to_owned();
    let arch = if chip.starts_with("GH1") {
        GpuArch::Hopper
    } else if chip.starts_with("GB1") || chip.starts_with("GB2") {
        GpuArch::Blackwell
    } else {
        return Err(ArchError::UnknownChip(cn));
    };
    Ok((chip, arch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arcs_under_an_arc_not_by_text() {
        let dice = OID_TCG_DICE;
        assert!(under(&OID_DICE_TCB_INFO, &dice));
        assert!(under(&OID_DICE_TCB_INFO_ALIAS, &dice));
        assert!(under(&dice, &dice));
        // 2.23.133.5.40 starts with the same text but is not under 2.23.133.5.4.
        assert!(!under(
            &ObjectIdentifier::new_unwrap("2.23.133.5.40"),
            &dice
        ));
        assert!(!under(&ID_CE_KEY_USAGE, &dice));
    }

    #[test]
    fn pem_text_outside_blocks_is_refused() {
        let root = include_str!("roots/verifier_device_root.pem");
        assert_eq!(parse_pem_chain(root.as_bytes()).map(|c| c.len()), Ok(1));
        let before = format!("x{root}");
        assert_eq!(
            parse_pem_chain(before.as_bytes()).unwrap_err(),
            PathError::TextBefore(1)
        );
        let after = format!("{root}x");
        assert_eq!(
            parse_pem_chain(after.as_bytes()).unwrap_err(),
            PathError::TextAfter
        );
        assert_eq!(
            parse_pem_chain(b" \n").unwrap_err(),
            PathError::NoCertificate
        );
    }
}
