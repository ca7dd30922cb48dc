//! NVIDIA's certificates: the pinned roots, PEM chains, X.509 path checks (ECDSA P-384
//! throughout) and the FWID in the device certificate's TCG DICE extension.
//!
//! The GPU's chain has five certificates, leaf first: the attestation key certificate
//! (`GH100 A01 GSP FMC LF`), the chip's boot ROM identity (`GH100 A01 GSP BROM`), NVIDIA's
//! provisioner CA, the per-architecture identity CA and the NVIDIA Device Identity CA, which
//! verifiers pin. RIM signing chains end in the NVIDIA CoRIM signing root, pinned likewise.

use der::asn1::{ObjectIdentifier, OctetString};
use der::{Any, Decode, DecodePem, Encode, Reader, SliceReader, Tag, Tagged};
use p384::ecdsa::signature::Verifier as _;
use time::OffsetDateTime;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages};
use x509_cert::Certificate;

use super::GpuArch;

const ECDSA_WITH_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const OID_BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
const OID_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.15");
/// TCG DICE TcbInfo; NVIDIA's Hopper certificates put the older CompositeDeviceID here.
pub const OID_DICE_TCB_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.5.4.1");
/// The OID under which Blackwell certificates carry a DiceTcbInfo.
pub const OID_DICE_TCB_INFO_ALIAS: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.23.133.5.4.1.1");
const CN: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");

/// Extensions whose meaning this verifier applies or that cannot widen what a certificate
/// may do; any other extension marked critical makes the certificate unusable (RFC 5280
/// 4.2), as OpenSSL, which NVIDIA's verifiers use, would have it.
const UNDERSTOOD: [&str; 10] = [
    "2.5.29.14",         // subject key identifier
    "2.5.29.15",         // key usage
    "2.5.29.17",         // subject alternative name
    "2.5.29.19",         // basic constraints
    "2.5.29.31",         // CRL distribution points
    "2.5.29.32",         // certificate policies
    "2.5.29.35",         // authority key identifier
    "2.5.29.37",         // extended key usage
    "1.3.6.1.5.5.7.1.1", // authority information access
    "2.23.133.5.4",      // TCG DICE (prefix, see `understood`)
];

/// NVIDIA's public roots, pinned into the binary (see `roots/README.md`).
mod pinned {
    pub(super) const DEVICE_ROOT: &[u8] = include_bytes!("roots/verifier_device_root.pem");
    pub(super) const RIM_ROOT: &[u8] = include_bytes!("roots/verifier_RIM_root.pem");
}

/// The NVIDIA Device Identity CA, the root of every GPU's attestation chain.
pub fn device_root() -> Result<Certificate, String> {
    Certificate::from_pem(pinned::DEVICE_ROOT).map_err(|e| format!("built-in device root: {e}"))
}

/// The NVIDIA CoRIM signing root, the root of every RIM signing chain.
pub fn rim_root() -> Result<Certificate, String> {
    Certificate::from_pem(pinned::RIM_ROOT).map_err(|e| format!("built-in RIM root: {e}"))
}

/// Splits a PEM text into certificates, in order. Only whitespace may stand between (or
/// around) the blocks, so nothing unsigned can ride along in the text.
pub fn parse_pem_chain(pem: &[u8]) -> Result<Vec<Certificate>, String> {
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    const END: &[u8] = b"-----END CERTIFICATE-----";
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let mut rest = pem;
    let mut certs = Vec::new();
    loop {
        let Some(start) = find(rest, BEGIN) else {
            if rest.iter().all(u8::is_ascii_whitespace) {
                break;
            }
            return Err("text after the last certificate".into());
        };
        if !rest[..start].iter().all(u8::is_ascii_whitespace) {
            return Err(format!("text before certificate {}", certs.len() + 1));
        }
        let end = find(&rest[start..], END)
            .ok_or_else(|| format!("certificate {} has no END line", certs.len() + 1))?
            + start
            + END.len();
        let cert = Certificate::from_pem(&rest[start..end])
            .map_err(|e| format!("certificate {}: {e}", certs.len() + 1))?;
        certs.push(cert);
        rest = &rest[end..];
    }
    if certs.is_empty() {
        return Err("no PEM certificate found".into());
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
) -> Result<String, String> {
    let root_der = root.to_der().map_err(|e| format!("root: {e}"))?;
    let mut path: Vec<&Certificate> = certs.iter().collect();
    match certs.last() {
        None => return Err("the chain is empty".into()),
        Some(last) if last.to_der().ok().as_deref() == Some(root_der.as_slice()) => {}
        Some(last) if last.tbs_certificate.subject == last.tbs_certificate.issuer => {
            return Err(format!(
                "the chain ends in {:?}, a root that is not the pinned {:?}",
                common_name(last),
                common_name(root)
            ))
        }
        Some(_) => path.push(root),
    }
    for (i, pair) in path.windows(2).enumerate() {
        let (subject, issuer) = (pair[0], pair[1]);
        signed_by(subject, issuer).map_err(|e| {
            format!(
                "{:?} is not signed by {:?}: {e}",
                common_name(subject),
                common_name(issuer)
            )
        })?;
        // Certificates below the issuer that are not self-issued count against pathLen.
        let below = path[..=i]
            .iter()
            .skip(1)
            .filter(|c| c.tbs_certificate.subject != c.tbs_certificate.issuer)
            .count();
        may_issue(issuer, below).map_err(|e| format!("{:?}: {e}", common_name(issuer)))?;
    }
    signed_by(root, root).map_err(|e| format!("the root's self-signature: {e}"))?;
    for cert in &path {
        valid_at(cert, now)?;
        critical_understood(cert)?;
    }
    if let Some(ku) = extension::<KeyUsage>(path[0], OID_KEY_USAGE)? {
        if !ku.0.contains(KeyUsages::DigitalSignature) {
            return Err(format!(
                "{:?} may not make signatures (key usage)",
                common_name(path[0])
            ));
        }
    }
    Ok(path
        .iter()
        .map(|c| common_name(c))
        .collect::<Vec<_>>()
        .join(" <- "))
}

fn signed_by(subject: &Certificate, issuer: &Certificate) -> Result<(), String> {
    let tbs = &subject.tbs_certificate;
    if tbs.issuer != issuer.tbs_certificate.subject {
        return Err("its issuer name differs from the signer's subject".into());
    }
    // RFC 5280 4.1.1.2: the two algorithm fields must agree.
    if subject.signature_algorithm != tbs.signature
        || subject.signature_algorithm.oid != ECDSA_WITH_SHA384
    {
        return Err(format!(
            "signature algorithm {} (expected ecdsa-with-SHA384)",
            subject.signature_algorithm.oid
        ));
    }
    let key = p384_key(issuer)?;
    let sig_der = subject
        .signature
        .as_bytes()
        .ok_or("the signature BIT STRING has unused bits")?;
    let sig = p384::ecdsa::Signature::from_der(sig_der).map_err(|e| format!("signature: {e}"))?;
    let tbs_der = tbs.to_der().map_err(|e| format!("TBS: {e}"))?;
    key.verify(&tbs_der, &sig)
        .map_err(|_| "the ECDSA signature does not verify".into())
}

/// The P-384 public key of `cert`.
pub fn p384_key(cert: &Certificate) -> Result<p384::ecdsa::VerifyingKey, String> {
    let spki = &cert.tbs_certificate.subject_public_key_info;
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    if spki.algorithm.oid != EC_PUBLIC_KEY || curve != Some(SECP384R1) {
        return Err(format!(
            "{:?} has a {} key, expected EC P-384",
            common_name(cert),
            spki.algorithm.oid
        ));
    }
    let point = spki
        .subject_public_key
        .as_bytes()
        .ok_or("the public key BIT STRING has unused bits")?;
    p384::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(|e| format!("public key: {e}"))
}

fn may_issue(issuer: &Certificate, below: usize) -> Result<(), String> {
    let bc = extension::<BasicConstraints>(issuer, OID_BASIC_CONSTRAINTS)?
        .ok_or("no basic constraints, so it is not a CA")?;
    if !bc.ca {
        return Err("basic constraints say it is not a CA".into());
    }
    if let Some(max) = bc.path_len_constraint {
        if below > usize::from(max) {
            return Err(format!("path length {below} exceeds its limit {max}"));
        }
    }
    if let Some(ku) = extension::<KeyUsage>(issuer, OID_KEY_USAGE)? {
        if !ku.0.contains(KeyUsages::KeyCertSign) {
            return Err("key usage does not allow signing certificates".into());
        }
    }
    Ok(())
}

fn valid_at(cert: &Certificate, now: OffsetDateTime) -> Result<(), String> {
    let v = &cert.tbs_certificate.validity;
    let secs = |t: x509_cert::time::Time| {
        i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
    };
    let now_s = now.unix_timestamp();
    if now_s < secs(v.not_before) {
        return Err(format!(
            "{:?} is not valid before {}",
            common_name(cert),
            v.not_before
        ));
    }
    if now_s > secs(v.not_after) {
        return Err(format!(
            "{:?} expired at {}",
            common_name(cert),
            v.not_after
        ));
    }
    Ok(())
}

fn critical_understood(cert: &Certificate) -> Result<(), String> {
    for ext in cert.tbs_certificate.extensions.iter().flatten() {
        let oid = ext.extn_id.to_string();
        let known = UNDERSTOOD
            .iter()
            .any(|u| oid == *u || (u.starts_with("2.23.133.5.4") && oid.starts_with(u)));
        if ext.critical && !known {
            return Err(format!(
                "{:?} has a critical extension {oid} this verifier does not understand",
                common_name(cert)
            ));
        }
    }
    Ok(())
}

/// Decodes the extension `oid` of `cert` as `T`; an extension present twice is an error.
fn extension<T: for<'a> Decode<'a>>(
    cert: &Certificate,
    oid: ObjectIdentifier,
) -> Result<Option<T>, String> {
    let mut found = cert
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .filter(|e| e.extn_id == oid);
    let Some(ext) = found.next() else {
        return Ok(None);
    };
    if found.next().is_some() {
        return Err(format!("{:?} has extension {oid} twice", common_name(cert)));
    }
    T::from_der(ext.extn_value.as_bytes())
        .map(Some)
        .map_err(|e| format!("{:?}: extension {oid}: {e}", common_name(cert)))
}

/// The FWID (a SHA-384 digest) in the leaf's TCG DICE extension, as NVIDIA places it per
/// architecture: Blackwell writes a DiceTcbInfo under 2.23.133.5.4.1.1 and the digest is
/// its first FWID; Hopper writes, under 2.23.133.5.4.1, the CompositeDeviceID of the
/// first DICE drafts (`SEQUENCE { version, SubjectPublicKeyInfo, FWID }`). NVIDIA's
/// verifiers also accept a DiceTcbInfo there and, failing both, "the last 48 bytes" of the
/// extension; silk parses the structures and accepts no raw tail, so that the digest it
/// compares is the one the encoding labels as the FWID.
pub fn leaf_fwid(leaf: &Certificate, arch: GpuArch) -> Result<Vec<u8>, String> {
    let oid = match arch {
        GpuArch::Hopper => OID_DICE_TCB_INFO,
        GpuArch::Blackwell => OID_DICE_TCB_INFO_ALIAS,
    };
    let value = raw_extension(leaf, oid)?
        .ok_or_else(|| format!("the leaf certificate has no TCG DICE extension {oid}"))?;
    let fields = elements(&value).map_err(|e| format!("extension {oid}: {e}"))?;
    let fwid = match fields.first().map(Any::tag) {
        // CompositeDeviceID: version INTEGER, device key, FWID.
        Some(Tag::Integer) if fields.len() == 3 => fwid_digest(&fields[2]),
        Some(_) => dice_tcb_info_fwid(&fields),
        None => Err("the DICE structure is empty".into()),
    };
    fwid.map_err(|e| format!("extension {oid}: {e}"))
}

/// The raw value of an extension (its OCTET STRING content); present twice is an error.
fn raw_extension(cert: &Certificate, oid: ObjectIdentifier) -> Result<Option<Vec<u8>>, String> {
    let mut found = cert
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .filter(|e| e.extn_id == oid);
    let first = found.next().map(|e| e.extn_value.as_bytes().to_vec());
    if found.next().is_some() {
        return Err(format!("{:?} has extension {oid} twice", common_name(cert)));
    }
    Ok(first)
}

/// The elements of the DER SEQUENCE in `der`, which must be all of `der`.
fn elements(der: &[u8]) -> Result<Vec<Any>, String> {
    let seq = Any::from_der(der).map_err(|e| e.to_string())?;
    if seq.tag() != Tag::Sequence {
        return Err(format!("expected a SEQUENCE, found {}", seq.tag()));
    }
    let mut reader = SliceReader::new(seq.value()).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    while !reader.is_finished() {
        out.push(reader.decode::<Any>().map_err(|e| e.to_string())?);
    }
    Ok(out)
}

/// DiceTcbInfo's `fwids [6] IMPLICIT SEQUENCE OF FWID`: the first FWID's digest.
fn dice_tcb_info_fwid(fields: &[Any]) -> Result<Vec<u8>, String> {
    let fwids = fields
        .iter()
        .find(|f| {
            matches!(f.tag(), Tag::ContextSpecific { constructed: true, number } if number.value() == 6)
        })
        .ok_or("DiceTcbInfo has no fwids [6]")?;
    let mut reader = SliceReader::new(fwids.value()).map_err(|e| e.to_string())?;
    let first: Any = reader
        .decode()
        .map_err(|e| format!("DiceTcbInfo fwids: {e}"))?;
    fwid_digest(&first)
}

/// `FWID ::= SEQUENCE { hashAlg OBJECT IDENTIFIER, digest OCTET STRING }`, SHA-384 only.
fn fwid_digest(fwid: &Any) -> Result<Vec<u8>, String> {
    let der = fwid.to_der().map_err(|e| e.to_string())?;
    let parts = elements(&der).map_err(|e| format!("FWID: {e}"))?;
    let [alg, digest] = parts.as_slice() else {
        return Err(format!("FWID has {} fields, expected 2", parts.len()));
    };
    let alg: ObjectIdentifier = alg.decode_as().map_err(|e| format!("FWID hashAlg: {e}"))?;
    if alg != SHA384 {
        return Err(format!("FWID hash algorithm {alg}, expected SHA-384"));
    }
    let digest: OctetString = digest
        .decode_as()
        .map_err(|e| format!("FWID digest: {e}"))?;
    if digest.as_bytes().len() != 48 {
        return Err(format!(
            "FWID digest is {} bytes, expected 48",
            digest.as_bytes().len()
        ));
    }
    Ok(digest.into_bytes())
}

/// The GPU architecture a device chain belongs to, from the chip named in its second
/// certificate's common name (`GH100 A01 GSP BROM`: Hopper; `GB100 …`: Blackwell), which
/// NVIDIA's verifiers report as the hardware model.
pub fn chain_arch(certs: &[Certificate]) -> Result<(String, GpuArch), String> {
    let cert = certs
        .get(1)
        .ok_or("the chain has no chip identity certificate")?;
    let cn = common_name(cert);
    let chip = cn.split_whitespace().next().unwrap_or_default().to_owned();
    let arch = if chip.starts_with("GH1") {
        GpuArch::Hopper
    } else if chip.starts_with("GB1") || chip.starts_with("GB2") {
        GpuArch::Blackwell
    } else {
        return Err(format!(
            "chip {cn:?} is neither Hopper (GH1xx) nor Blackwell (GB1xx/GB2xx)"
        ));
    };
    Ok((chip, arch))
}
