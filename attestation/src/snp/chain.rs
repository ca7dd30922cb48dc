//! Verifying a report's signature up to AMD's pinned root, one named check at a time.

use der::asn1::ObjectIdentifier;
use der::{Decode, Encode};
use p384::ecdsa::signature::Verifier as _;
use rsa::pkcs1::{RsaPssParams, TrailerField};
use rsa::pkcs8::DecodePublicKey as _;
use time::OffsetDateTime;
use x509_cert::Certificate;

use super::certs::{
    common_name, issuer_line, pinned_ark, pinned_ask, vek_kind, SnpCertificates, VekExtensions,
    VekKind,
};
use super::report::{AttestationReport, ProductLine, SigningKey, SIGNED_LEN};
use crate::verdict::{Check, Stage, Verdict};

const STAGE: Stage = Stage::Signature;

const OID_RSASSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const OID_MGF1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.8");
const OID_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// A certificate as used in the chain: parsed, with where it came from.
struct Link {
    cert: Certificate,
    der: Vec<u8>,
    source: &'static str,
}

impl Link {
    fn parse(der: &[u8], source: &'static str) -> Result<Self, String> {
        Certificate::from_der(der)
            .map(|cert| Link {
                cert,
                der: der.to_vec(),
                source,
            })
            .map_err(|e| format!("{source} is not a DER X.509 certificate: {e}"))
    }

    fn cn(&self) -> String {
        common_name(&self.cert.tbs_certificate.subject).unwrap_or_else(|| "<no CN>".into())
    }
}

/// Verifies `report` (parsed from `raw`) against AMD's chain: VEK → ASK/ASVK → ARK, the ARK
/// pinned per product line. Pushes one [`Check`] per step (all at [`Stage::Signature`]) to
/// `verdict`, whatever fails before it, so that a reader sees every problem at once:
///
/// `snp.product_line`, `snp.ark_pinned`, `snp.ark_self_signed`, `snp.ask_signed_by_ark`,
/// `snp.vek_signed_by_ask`, `snp.cert_validity`, `snp.signing_key`, `snp.report_signature`,
/// `snp.vek_tcb`, `snp.vek_chip_id`.
///
/// A missing ASK or ARK in `certs` is taken from the built-ins for the VEK's line. Returns the
/// product line when `snp.product_line` passed, for decoding TCB values; acceptance is still
/// only [`Verdict::accepted`].
pub fn verify_signature_chain(
    raw: &[u8],
    report: &AttestationReport,
    certs: &SnpCertificates,
    now: OffsetDateTime,
    verdict: &mut Verdict,
) -> Option<ProductLine> {
    let vek = Link::parse(&certs.vek, "VEK");
    let issuer = vek.as_ref().ok().and_then(|v| issuer_line(&v.cert));
    let line = issuer.map(|(line, _)| line);
    let kind = vek.as_ref().ok().and_then(|v| vek_kind(&v.cert));

    let line_ok = check_product_line(report, &vek, issuer, verdict);

    let ark = match (&certs.ark, line) {
        (Some(der), _) => Link::parse(der, "supplied ARK"),
        (None, Some(line)) => pinned_ark(line)
            .map_err(|e| e.to_string())
            .and_then(|der| Link::parse(&der, "built-in ARK")),
        (None, None) => Err("no ARK supplied and the VEK names no known product line".into()),
    };
    let ask = match (&certs.ask, line, kind) {
        (Some(der), _, _) => Link::parse(der, "supplied ASK"),
        (None, Some(line), Some(VekKind::Vcek)) => pinned_ask(line)
            .map_err(|e| e.to_string())
            .and_then(|der| Link::parse(&der, "built-in ASK")),
        (None, _, Some(VekKind::Vlek)) => {
            Err("no ASVK supplied; a VLEK is signed by the ASVK, which is not built in".into())
        }
        (None, _, _) => Err("no ASK supplied and the VEK's line or kind is unknown".into()),
    };

    check_ark_pinned(&ark, line, verdict);
    verdict.push(signed_by_check(
        "snp.ark_self_signed",
        "the ARK",
        &ark,
        &ark,
    ));
    verdict.push(signed_by_check(
        "snp.ask_signed_by_ark",
        "the ASK",
        &ark,
        &ask,
    ));
    verdict.push(signed_by_check(
        "snp.vek_signed_by_ask",
        "the VEK",
        &ask,
        &vek,
    ));
    check_validity(now, [("VEK", &vek), ("ASK", &ask), ("ARK", &ark)], verdict);
    check_signing_key(report, kind, verdict);
    check_report_signature(raw, report, &vek, verdict);
    check_vek_tcb(report, &vek, line, verdict);
    check_chip_id(report, &vek, kind, line, verdict);

    line.filter(|_| line_ok)
}

fn check_product_line(
    report: &AttestationReport,
    vek: &Result<Link, String>,
    issuer: Option<(ProductLine, VekKind)>,
    verdict: &mut Verdict,
) -> bool {
    let name = "snp.product_line";
    let expected =
        "the VEK's issuer names Milan, Genoa or Turin, and the report's CPUID (v3+) agrees";
    let from_cpuid = match report.cpuid {
        None => "no CPUID (v2 report)".to_string(),
        Some(c) => match c.product_line() {
            Some(l) => format!("CPUID {c} ({l})"),
            None => format!("CPUID {c} (unknown line)"),
        },
    };
    let check = match (vek, issuer) {
        (Err(e), _) => Check::fail(name, STAGE, expected, from_cpuid, e.clone()),
        (Ok(v), None) => {
            let cn = common_name(&v.cert.tbs_certificate.issuer).unwrap_or_default();
            let reason = format!("VEK issuer CN {cn:?} names no known product line");
            Check::fail(name, STAGE, expected, from_cpuid, reason)
        }
        (Ok(_), Some((line, _))) => {
            let found = format!("chain {line}; {from_cpuid}");
            match report.cpuid.map(|c| c.product_line()) {
                None => Check::pass(name, STAGE, expected, found),
                Some(Some(l)) if l == line => Check::pass(name, STAGE, expected, found),
                Some(Some(l)) => Check::fail(
                    name,
                    STAGE,
                    expected,
                    found,
                    format!("the report's CPU is {l} but the VEK is a {line} key"),
                ),
                Some(None) => Check::fail(
                    name,
                    STAGE,
                    expected,
                    found,
                    "the report's CPUID names no known product line",
                ),
            }
        }
    };
    let passed = check.passed();
    verdict.push(check);
    passed
}

fn check_ark_pinned(ark: &Result<Link, String>, line: Option<ProductLine>, verdict: &mut Verdict) {
    let name = "snp.ark_pinned";
    let expected = match line {
        Some(line) => format!("AMD's pinned ARK-{line}"),
        None => "AMD's pinned ARK for the VEK's product line".into(),
    };
    let check = match (ark, line) {
        (Err(e), _) => Check::fail(name, STAGE, expected, "no ARK", e.clone()),
        (Ok(a), None) => Check::fail(
            name,
            STAGE,
            expected,
            a.cn(),
            "the product line is unknown, so there is no pinned ARK to compare with",
        ),
        (Ok(a), Some(line)) => {
            let found = format!("{} {}", a.source, a.cn());
            match pinned_ark(line) {
                Err(e) => Check::fail(name, STAGE, expected, found, e.to_string()),
                Ok(pinned) if pinned == a.der => Check::pass(name, STAGE, expected, found),
                Ok(_) => {
                    let other = ProductLine::ALL
                        .into_iter()
                        .find(|l| pinned_ark(*l).is_ok_and(|p| p == a.der));
                    let reason = match other {
                        Some(other) => format!("the ARK is AMD's {other} root, not {line}'s"),
                        None => "the ARK is not AMD's pinned root certificate".into(),
                    };
                    Check::fail(name, STAGE, expected, found, reason)
                }
            }
        }
    };
    verdict.push(check);
}

/// `subject` names `issuer` as its issuer and carries a valid RSA-PSS signature by it.
fn signed_by_check(
    name: &'static str,
    what: &str,
    issuer: &Result<Link, String>,
    subject: &Result<Link, String>,
) -> Check {
    let (issuer, subject) = match (issuer, subject) {
        (Ok(i), Ok(s)) => (i, s),
        (Err(e), _) | (_, Err(e)) => {
            return Check::fail(
                name,
                STAGE,
                format!("{what} signed by its issuer"),
                "",
                e.clone(),
            )
        }
    };
    let expected = format!("{what} signed by {} ({})", issuer.cn(), issuer.source);
    let found = format!("{} ({})", subject.cn(), subject.source);
    match verify_rsa_pss(&issuer.cert, &subject.cert) {
        Ok(()) => Check::pass(name, STAGE, expected, found),
        Err(reason) => Check::fail(name, STAGE, expected, found, reason),
    }
}

/// Checks `subject`'s RSASSA-PSS signature with `issuer`'s key, with the parameters the
/// certificate declares, which must be SHA-384 with MGF1-SHA-384 as AMD uses.
fn verify_rsa_pss(issuer: &Certificate, subject: &Certificate) -> Result<(), String> {
    let tbs = &subject.tbs_certificate;
    if tbs.issuer != issuer.tbs_certificate.subject {
        return Err(format!(
            "issuer name {} differs from the signer's subject {}",
            tbs.issuer, issuer.tbs_certificate.subject
        ));
    }
    // RFC 5280 4.1.1.2: the signed and unsigned algorithm identifiers must match, or an
    // attacker could change how the signature is read without breaking it.
    if subject.signature_algorithm != tbs.signature {
        return Err("signatureAlgorithm differs from the TBS signature field".into());
    }
    let alg = &subject.signature_algorithm;
    if alg.oid != OID_RSASSA_PSS {
        return Err(format!(
            "signature algorithm is {}, expected RSASSA-PSS",
            alg.oid
        ));
    }
    let params_der = alg
        .parameters
        .as_ref()
        .ok_or("RSASSA-PSS without parameters")?
        .to_der()
        .map_err(|e| format!("RSASSA-PSS parameters: {e}"))?;
    let params =
        RsaPssParams::from_der(&params_der).map_err(|e| format!("RSASSA-PSS parameters: {e}"))?;
    let mgf_hash = params.mask_gen.parameters.as_ref().map(|p| p.oid);
    if params.hash.oid != OID_SHA384
        || params.mask_gen.oid != OID_MGF1
        || mgf_hash != Some(OID_SHA384)
        || params.trailer_field != TrailerField::BC
    {
        return Err(format!(
            "RSASSA-PSS parameters are hash {}, mask {} ({:?}), expected SHA-384 with MGF1-SHA-384",
            params.hash.oid, params.mask_gen.oid, mgf_hash
        ));
    }
    let spki_der = issuer
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| format!("issuer key: {e}"))?;
    let key = rsa::RsaPublicKey::from_public_key_der(&spki_der)
        .map_err(|e| format!("issuer key is not RSA: {e}"))?;
    let verifier =
        rsa::pss::VerifyingKey::<sha2::Sha384>::new_with_salt_len(key, params.salt_len.into());
    let sig_bytes = subject
        .signature
        .as_bytes()
        .ok_or("signature BIT STRING has unused bits")?;
    let sig = rsa::pss::Signature::try_from(sig_bytes).map_err(|e| format!("signature: {e}"))?;
    let tbs_der = tbs.to_der().map_err(|e| format!("TBS certificate: {e}"))?;
    rsa::signature::Verifier::verify(&verifier, &tbs_der, &sig)
        .map_err(|_| "RSA-PSS signature does not verify".into())
}

fn check_validity<const N: usize>(
    now: OffsetDateTime,
    links: [(&str, &Result<Link, String>); N],
    verdict: &mut Verdict,
) {
    let name = "snp.cert_validity";
    let expected = format!("VEK, ASK and ARK valid at {}", crate::format_time(now));
    let mut found = Vec::new();
    let mut problems = Vec::new();
    let now_s = now.unix_timestamp();
    for (what, link) in links {
        let link = match link {
            Ok(l) => l,
            Err(e) => {
                problems.push(format!("{what}: {e}"));
                continue;
            }
        };
        let v = &link.cert.tbs_certificate.validity;
        let secs = |t: x509_cert::time::Time| {
            i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
        };
        let (from, to) = (secs(v.not_before), secs(v.not_after));
        found.push(format!("{what} {} to {}", v.not_before, v.not_after));
        if now_s < from {
            problems.push(format!("{what} is not valid before {}", v.not_before));
        } else if now_s > to {
            problems.push(format!("{what} expired at {}", v.not_after));
        }
    }
    let found = found.join("; ");
    verdict.push(if problems.is_empty() {
        Check::pass(name, STAGE, expected, found)
    } else {
        Check::fail(name, STAGE, expected, found, problems.join("; "))
    });
}

fn check_signing_key(report: &AttestationReport, kind: Option<VekKind>, verdict: &mut Verdict) {
    let name = "snp.signing_key";
    let expected =
        "SIGNING_KEY names the kind of the supplied VEK (VCEK or VLEK), MASK_CHIP_KEY clear";
    let found = format!(
        "SIGNING_KEY {}, MASK_CHIP_KEY {}, certificate {}",
        report.signing_key,
        u8::from(report.mask_chip_key),
        kind.map_or("of unknown kind".into(), |k| k.to_string())
    );
    let reason = match (report.signing_key, kind) {
        _ if report.mask_chip_key => Some("MASK_CHIP_KEY is set: the firmware did not sign".into()),
        (SigningKey::Vcek, Some(VekKind::Vcek)) | (SigningKey::Vlek, Some(VekKind::Vlek)) => None,
        (SigningKey::None, _) => Some("the report is not signed (SIGNING_KEY = none)".into()),
        (SigningKey::Reserved(v), _) => Some(format!("SIGNING_KEY {v} is reserved")),
        (_, None) => Some("the VEK's subject is neither SEV-VCEK nor SEV-VLEK".into()),
        (key, Some(kind)) => Some(format!(
            "the report was signed by a {key} but the certificate is a {kind}"
        )),
    };
    verdict.push(match reason {
        None => Check::pass(name, STAGE, expected, found),
        Some(reason) => Check::fail(name, STAGE, expected, found, reason),
    });
}

fn check_report_signature(
    raw: &[u8],
    report: &AttestationReport,
    vek: &Result<Link, String>,
    verdict: &mut Verdict,
) {
    let name = "snp.report_signature";
    let expected = "ECDSA P-384/SHA-384 signature over report bytes [0, 0x2A0) by the VEK";
    let result = (|| -> Result<String, String> {
        // The caller's parsed report must be the one in `raw`, or checks on its fields would
        // be about bytes nobody signed.
        if AttestationReport::from_bytes(raw).as_ref() != Ok(report) {
            return Err("the raw bytes do not parse to the report being verified".into());
        }
        let vek = vek.as_ref().map_err(Clone::clone)?;
        let spki = &vek.cert.tbs_certificate.subject_public_key_info;
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
        if spki.algorithm.oid != OID_EC_PUBLIC_KEY || curve != Some(OID_SECP384R1) {
            return Err(format!(
                "VEK key is {} ({curve:?}), expected EC P-384",
                spki.algorithm.oid
            ));
        }
        let point = spki
            .subject_public_key
            .as_bytes()
            .ok_or("VEK key BIT STRING has unused bits")?;
        let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(point)
            .map_err(|_| "VEK key is not a valid P-384 point")?;
        let r = scalar_be("R", &report.signature.r)?;
        let s = scalar_be("S", &report.signature.s)?;
        let sig = p384::ecdsa::Signature::from_scalars(r, s)
            .map_err(|_| "R or S is zero or not below the group order")?;
        let signed = raw.get(..SIGNED_LEN).ok_or("report too short")?;
        key.verify(signed, &sig)
            .map_err(|_| "the signature does not verify with the VEK's key".to_string())?;
        Ok(format!(
            "signature verifies with {} ({})",
            vek.cn(),
            vek.source
        ))
    })();
    verdict.push(match result {
        Ok(found) => Check::pass(name, STAGE, expected, found),
        Err(reason) => Check::fail(name, STAGE, expected, "signature does not verify", reason),
    });
}

/// A 72-byte little-endian signature component as the 48-byte big-endian P-384 scalar.
fn scalar_be(which: &str, le: &[u8; 72]) -> Result<p384::FieldBytes, String> {
    let (low, high) = le.split_at(48);
    if high.iter().any(|&b| b != 0) {
        return Err(format!("signature {which} has non-zero bytes beyond 48"));
    }
    let mut be = p384::FieldBytes::default();
    for (dst, src) in be.iter_mut().zip(low.iter().rev()) {
        *dst = *src;
    }
    Ok(be)
}

fn check_vek_tcb(
    report: &AttestationReport,
    vek: &Result<Link, String>,
    line: Option<ProductLine>,
    verdict: &mut Verdict,
) {
    let name = "snp.vek_tcb";
    let reported = line.map(|l| report.reported_tcb.parts(l));
    let found = match reported {
        Some(p) => format!("REPORTED_TCB {} ({p})", report.reported_tcb),
        None => format!("REPORTED_TCB {}", report.reported_tcb),
    };
    let result = (|| -> Result<String, String> {
        let vek = vek.as_ref().map_err(Clone::clone)?;
        let line = line.ok_or("the product line is unknown, so the TCB layout is too")?;
        let certified = VekExtensions::from_cert(&vek.cert)
            .and_then(|e| e.tcb_parts(line))
            .map_err(|e| e.to_string())?;
        if Some(certified) == reported {
            Ok(format!("VEK certifies {certified}"))
        } else {
            Err(format!(
                "VEK certifies {certified}, the report claims another TCB"
            ))
        }
    })();
    verdict.push(match result {
        Ok(expected) => Check::pass(name, STAGE, expected, found),
        Err(reason) => Check::fail(name, STAGE, "the VEK's TCB extensions", found, reason),
    });
}

/// The VCEK is derived from one chip's secret; its hwID must be the report's CHIP_ID. A
/// masked (all-zero) CHIP_ID fails: the report then names no chip to compare, and a verifier
/// that accepts that must say so in its policy rather than get it by default.
fn check_chip_id(
    report: &AttestationReport,
    vek: &Result<Link, String>,
    kind: Option<VekKind>,
    line: Option<ProductLine>,
    verdict: &mut Verdict,
) {
    let name = "snp.vek_chip_id";
    let expected = "the VCEK's hwID equals the report's CHIP_ID";
    let found = format!("CHIP_ID {}", hex::encode(report.chip_id));
    let result = (|| -> Result<&'static str, String> {
        let vek = vek.as_ref().map_err(Clone::clone)?;
        match kind {
            Some(VekKind::Vlek) => return Ok("VLEK: not chip-specific, has no hwID to compare"),
            Some(VekKind::Vcek) => {}
            None => return Err("the VEK is neither a VCEK nor a VLEK".into()),
        }
        if report.chip_id_masked() {
            return Err("CHIP_ID is masked (all zero); the report names no chip".into());
        }
        let line = line.ok_or("the product line is unknown, so the hwID length is too")?;
        let hw_id = VekExtensions::from_cert(&vek.cert)
            .map_err(|e| e.to_string())?
            .hw_id
            .ok_or("the VCEK has no hwID extension")?;
        // Turin's hwID is 8 bytes; the report zero-pads it to 64.
        let len = if line == ProductLine::Turin { 8 } else { 64 };
        let (head, tail) = report.chip_id.split_at(len);
        if hw_id.len() != len {
            return Err(format!(
                "{line} hwID must be {len} bytes, the VCEK's is {}",
                hw_id.len()
            ));
        }
        if head != hw_id.as_slice() || tail.iter().any(|&b| b != 0) {
            return Err(format!("the VCEK's hwID is {}", hex::encode(&hw_id)));
        }
        Ok("VCEK hwID matches")
    })();
    verdict.push(match result {
        Ok(why) => Check::pass(name, STAGE, expected, format!("{found}: {why}")),
        Err(reason) => Check::fail(name, STAGE, expected, found, reason),
    });
}
