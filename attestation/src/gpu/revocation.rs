//! Revocation data for the device and RIM certificate chains, and its offline check.
//!
//! NVIDIA answers OCSP for its device and RIM chains (`ocsp.ndis.nvidia.com`). This crate
//! does no I/O, so revocation is an explicit input: the caller either fetched responses or
//! has none. [`check`] verifies saved DER OCSP responses against a chain (RFC 6960): for
//! every certificate below the root it looks for a `SingleResponse` whose `CertID`
//! (SHA-1, SHA-256, SHA-384 or SHA-512 over the issuer's name and key; the serial) names
//! it, verifies the `BasicOCSPResponse` signature with the issuer's key or with a
//! delegated responder certificate the issuer signed for `id-kp-OCSPSigning`, and requires
//! `good` within `thisUpdate ..= nextUpdate`. Certificates no response names are reported
//! as missing, and the policy's `allow_missing_revocation` decides about them; a verdict
//! that relied on it warns.

use der::asn1::{BitString, ObjectIdentifier};
use der::{Decode, Encode};
use p384::ecdsa::signature::Verifier as _;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};
use spki::AlgorithmIdentifierOwned;
use time::OffsetDateTime;
use x509_cert::ext::pkix::ExtendedKeyUsage;
use x509_cert::Certificate;
use x509_ocsp::{
    BasicOcspResponse, CertStatus, OcspGeneralizedTime, OcspResponse, OcspResponseStatus,
    ResponderId, SingleResponse,
};

use super::certs::common_name;

const ID_PKIX_OCSP_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
const ID_KP_OCSP_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9");
const OID_EXT_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_WITH_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const SHA384_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");

/// What the verifier knows about revocation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Revocation {
    /// No revocation data (offline, or not fetched).
    #[default]
    Unavailable,
    /// DER OCSP responses (`application/ocsp-response`) for the chains' certificates.
    OcspResponses(Vec<Vec<u8>>),
}

/// What verified OCSP responses say about a chain's certificates (by subject CN).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Certificates a verified, current response says are `good`, leaf first.
    pub good: Vec<String>,
    /// Certificates below the root that no response names, leaf first.
    pub missing: Vec<String>,
}

impl Coverage {
    /// Every certificate below the root has a verified `good` response.
    pub fn complete(&self) -> bool {
        self.missing.is_empty()
    }
}

/// Checks `chain` (leaf first, ending with its self-signed root, already verified as a
/// path) against the DER OCSP responses at `now`.
///
/// Fails, naming the certificate, when a response that names a certificate does not
/// verify (signature, responder), says `revoked` (with the time and reason) or `unknown`,
/// is not yet valid or past its `nextUpdate`; also when a response is malformed or not
/// `successful`. Certificates no response names are [`Coverage::missing`], which is not
/// an error here: the caller's policy decides.
pub fn check(
    chain: &[Certificate],
    responses: &[Vec<u8>],
    now: OffsetDateTime,
) -> Result<Coverage, String> {
    let last = chain.last().ok_or("the chain is empty")?;
    if last.tbs_certificate.subject != last.tbs_certificate.issuer {
        return Err(format!(
            "the chain must end with its root, but ends with {:?}",
            common_name(last)
        ));
    }
    let parsed = responses
        .iter()
        .enumerate()
        .map(|(i, der)| parse(der).map_err(|e| format!("OCSP response #{}: {e}", i + 1)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut coverage = Coverage::default();
    for pair in chain.windows(2) {
        let (cert, issuer) = (&pair[0], &pair[1]);
        let name = common_name(cert);
        let mut found = false;
        for (i, basic) in parsed.iter().enumerate() {
            let mut verified = false;
            for single in &basic.tbs_response_data.responses {
                if !names(single, cert, issuer)? {
                    continue;
                }
                if !verified {
                    verify_response(basic, issuer, now).map_err(|e| {
                        format!("OCSP response #{} for {name:?} does not verify: {e}", i + 1)
                    })?;
                    verified = true;
                }
                status(single, now).map_err(|e| format!("{name:?}: {e}"))?;
                found = true;
            }
        }
        if found {
            coverage.good.push(name);
        } else {
            coverage.missing.push(name);
        }
    }
    Ok(coverage)
}

/// An `OCSPResponse` that must be `successful` with a basic response.
fn parse(der: &[u8]) -> Result<BasicOcspResponse, String> {
    let response = OcspResponse::from_der(der).map_err(|e| format!("malformed: {e}"))?;
    if response.response_status != OcspResponseStatus::Successful {
        return Err(format!(
            "the responder answered {:?}, not successful",
            response.response_status
        ));
    }
    let bytes = response
        .response_bytes
        .ok_or("a successful response without responseBytes")?;
    if bytes.response_type != ID_PKIX_OCSP_BASIC {
        return Err(format!(
            "response type {}, expected id-pkix-ocsp-basic",
            bytes.response_type
        ));
    }
    BasicOcspResponse::from_der(bytes.response.as_bytes())
        .map_err(|e| format!("malformed BasicOCSPResponse: {e}"))
}

/// Whether `single`'s CertID names `cert` as issued by `issuer`. A hash algorithm this
/// verifier does not know names nothing.
fn names(
    single: &SingleResponse,
    cert: &Certificate,
    issuer: &Certificate,
) -> Result<bool, String> {
    let id = &single.cert_id;
    if id.serial_number.as_bytes() != cert.tbs_certificate.serial_number.as_bytes() {
        return Ok(false);
    }
    let name = issuer
        .tbs_certificate
        .subject
        .to_der()
        .map_err(|e| format!("{:?}: subject: {e}", common_name(issuer)))?;
    let key = issuer
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    let digest = |data: &[u8]| -> Option<Vec<u8>> {
        Some(match id.hash_algorithm.oid {
            SHA1 => Sha1::digest(data).to_vec(),
            SHA256 => Sha256::digest(data).to_vec(),
            SHA384 => Sha384::digest(data).to_vec(),
            SHA512 => Sha512::digest(data).to_vec(),
            _ => return None,
        })
    };
    Ok(
        digest(&name).as_deref() == Some(id.issuer_name_hash.as_bytes())
            && digest(key).as_deref() == Some(id.issuer_key_hash.as_bytes()),
    )
}

/// `good`, and current at `now`.
fn status(single: &SingleResponse, now: OffsetDateTime) -> Result<(), String> {
    match &single.cert_status {
        CertStatus::Good(_) => {}
        CertStatus::Revoked(info) => {
            return Err(format!(
                "revoked at {}{}",
                show(&info.revocation_time),
                info.revocation_reason
                    .map(|r| format!(" (reason {r:?})"))
                    .unwrap_or_default()
            ))
        }
        CertStatus::Unknown(_) => {
            return Err("the responder says its status is unknown".into());
        }
    }
    let this = secs(&single.this_update);
    if now.unix_timestamp() < this {
        return Err(format!(
            "the OCSP response is not valid before its thisUpdate {}",
            show(&single.this_update)
        ));
    }
    if let Some(next) = &single.next_update {
        if now.unix_timestamp() > secs(next) {
            return Err(format!(
                "the OCSP response expired at its nextUpdate {}",
                show(next)
            ));
        }
    }
    Ok(())
}

fn secs(t: &OcspGeneralizedTime) -> i64 {
    i64::try_from(t.0.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
}

fn show(t: &OcspGeneralizedTime) -> String {
    t.0.to_date_time().to_string()
}

/// The response is signed by `issuer` itself or by a delegated responder that `issuer`
/// certified for OCSP signing (RFC 6960 4.2.2.2), chosen by the responder ID.
fn verify_response(
    basic: &BasicOcspResponse,
    issuer: &Certificate,
    now: OffsetDateTime,
) -> Result<(), String> {
    let tbs = basic
        .tbs_response_data
        .to_der()
        .map_err(|e| format!("tbsResponseData: {e}"))?;
    let responder = &basic.tbs_response_data.responder_id;
    let signer = if identifies(responder, issuer) {
        issuer
    } else {
        let delegate = basic
            .certs
            .iter()
            .flatten()
            .find(|c| identifies(responder, c))
            .ok_or_else(|| {
                format!(
                    "its responder is neither the issuer {:?} nor a certificate included in it",
                    common_name(issuer)
                )
            })?;
        delegated(delegate, issuer, now)?;
        delegate
    };
    verify_signature(signer, &basic.signature_algorithm, &tbs, &basic.signature)
        .map_err(|e| format!("the signature by {:?}: {e}", common_name(signer)))
}

/// Whether the responder ID names `cert` (by subject, or by the SHA-1 of its key).
fn identifies(id: &ResponderId, cert: &Certificate) -> bool {
    match id {
        ResponderId::ByName(name) => *name == cert.tbs_certificate.subject,
        ResponderId::ByKey(hash) => {
            let key = cert
                .tbs_certificate
                .subject_public_key_info
                .subject_public_key
                .raw_bytes();
            Sha1::digest(key)[..] == *hash.as_bytes()
        }
    }
}

/// A delegated responder: issued and signed by `issuer`, with id-kp-OCSPSigning in its
/// extended key usage, valid at `now`.
fn delegated(
    responder: &Certificate,
    issuer: &Certificate,
    now: OffsetDateTime,
) -> Result<(), String> {
    let name = common_name(responder);
    let tbs = &responder.tbs_certificate;
    if tbs.issuer != issuer.tbs_certificate.subject {
        return Err(format!(
            "the delegated responder {name:?} is not issued by {:?}",
            common_name(issuer)
        ));
    }
    if responder.signature_algorithm != tbs.signature {
        return Err(format!(
            "the delegated responder {name:?} has mismatched signature algorithms"
        ));
    }
    let tbs_der = tbs.to_der().map_err(|e| format!("{name:?}: TBS: {e}"))?;
    verify_signature(
        issuer,
        &responder.signature_algorithm,
        &tbs_der,
        &responder.signature,
    )
    .map_err(|e| {
        format!(
            "the delegated responder {name:?} is not signed by {:?}: {e}",
            common_name(issuer)
        )
    })?;
    let eku = tbs
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == OID_EXT_KEY_USAGE)
        .map(|e| ExtendedKeyUsage::from_der(e.extn_value.as_bytes()))
        .transpose()
        .map_err(|e| format!("the delegated responder {name:?}: extended key usage: {e}"))?;
    if !eku.is_some_and(|u| u.0.contains(&ID_KP_OCSP_SIGNING)) {
        return Err(format!(
            "the delegated responder {name:?} lacks the id-kp-OCSPSigning extended key usage"
        ));
    }
    let v = &tbs.validity;
    let at = |t: x509_cert::time::Time| {
        i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
    };
    let now_s = now.unix_timestamp();
    if now_s < at(v.not_before) || now_s > at(v.not_after) {
        return Err(format!(
            "the delegated responder {name:?} is not valid now ({} to {})",
            v.not_before, v.not_after
        ));
    }
    Ok(())
}

/// Verifies `sig` over `msg` with `signer`'s key: ECDSA P-384/SHA-384, ECDSA
/// P-256/SHA-256, or RSA PKCS#1 v1.5 with SHA-256/384.
fn verify_signature(
    signer: &Certificate,
    alg: &AlgorithmIdentifierOwned,
    msg: &[u8],
    sig: &BitString,
) -> Result<(), String> {
    let spki = &signer.tbs_certificate.subject_public_key_info;
    let sig = sig
        .as_bytes()
        .ok_or("the signature BIT STRING has unused bits")?;
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    let point = || {
        spki.subject_public_key
            .as_bytes()
            .ok_or("the public key BIT STRING has unused bits")
    };
    let bad = |_| "the signature does not verify".to_string();
    match (spki.algorithm.oid, curve, alg.oid) {
        (EC_PUBLIC_KEY, Some(SECP384R1), ECDSA_WITH_SHA384) => {
            let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(point()?)
                .map_err(|e| format!("public key: {e}"))?;
            let sig =
                p384::ecdsa::Signature::from_der(sig).map_err(|e| format!("signature: {e}"))?;
            key.verify(msg, &sig).map_err(bad)
        }
        (EC_PUBLIC_KEY, Some(SECP256R1), ECDSA_WITH_SHA256) => {
            let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(point()?)
                .map_err(|e| format!("public key: {e}"))?;
            let sig =
                p256::ecdsa::Signature::from_der(sig).map_err(|e| format!("signature: {e}"))?;
            key.verify(msg, &sig).map_err(bad)
        }
        (RSA_ENCRYPTION, _, SHA256_WITH_RSA | SHA384_WITH_RSA) => {
            use rsa::pkcs8::DecodePublicKey as _;
            let der = spki.to_der().map_err(|e| format!("public key: {e}"))?;
            let key = rsa::RsaPublicKey::from_public_key_der(&der)
                .map_err(|e| format!("public key: {e}"))?;
            let sig =
                rsa::pkcs1v15::Signature::try_from(sig).map_err(|e| format!("signature: {e}"))?;
            if alg.oid == SHA256_WITH_RSA {
                rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key).verify(msg, &sig)
            } else {
                rsa::pkcs1v15::VerifyingKey::<Sha384>::new(key).verify(msg, &sig)
            }
            .map_err(bad)
        }
        (key, _, alg) => Err(format!(
            "unsupported signature algorithm {alg} for a {key} key"
        )),
    }
}
