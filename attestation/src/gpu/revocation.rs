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

use const_oid::db::rfc5912::{ID_KP_OCSP_SIGNING, ID_SHA_1, ID_SHA_256, ID_SHA_384, ID_SHA_512};
use const_oid::db::rfc6960::ID_PKIX_OCSP_BASIC;
use const_oid::AssociatedOid;
use der::asn1::ObjectIdentifier;
use der::{Decode, Encode};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};
use time::OffsetDateTime;
use x509_cert::ext::pkix::ExtendedKeyUsage;
use x509_cert::Certificate;
use x509_ocsp::{
    BasicOcspResponse, CertStatus, OcspGeneralizedTime, OcspResponse, OcspResponseStatus,
    ResponderId, SingleResponse,
};

use super::certs::{self, common_name};
use crate::checks::gpu;
use crate::policy::GpuPolicy;
use crate::signature::{self, SignatureError, OCSP_RESPONSES};
use crate::verdict::{Check, Verdict};

/// What the verifier knows about revocation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Revocation {
    /// No revocation data (offline, or not fetched).
    #[default]
    Unavailable,
    /// DER OCSP responses (`application/ocsp-response`) for the chains' certificates.
    OcspResponses(Vec<Vec<u8>>),
}

/// Why revocation data does not show a chain to be good.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RevocationError {
    /// The chain to check is empty.
    #[error("the chain is empty")]
    EmptyChain,
    /// The chain does not end with a self-signed root.
    #[error("the chain must end with its root, but ends with {0:?}")]
    NoRoot(String),
    /// A response is not a usable basic OCSP response.
    #[error("OCSP response #{index}: {reason}")]
    Response {
        /// Its 1-based place among the responses.
        index: usize,
        /// What is wrong with it.
        reason: ResponseError,
    },
    /// A certificate's issuer name does not encode, so no CertID can name it.
    #[error("{cert:?}: subject: {source}")]
    IssuerName {
        /// The issuer's CN.
        cert: String,
        /// The encoder's error.
        source: der::Error,
    },
    /// A response that names a certificate is not signed by who may sign it.
    #[error("OCSP response #{index} for {cert:?} does not verify: {reason}")]
    Unverified {
        /// Its 1-based place among the responses.
        index: usize,
        /// The certificate it names.
        cert: String,
        /// Why it is not accepted.
        reason: Box<ResponderError>,
    },
    /// A verified response says the certificate is not good now.
    #[error("{cert:?}: {status}")]
    NotGood {
        /// The certificate's CN.
        cert: String,
        /// What the response says.
        status: StatusError,
    },
}

/// What is wrong with an OCSP response's envelope.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseError {
    /// Not DER `OCSPResponse`.
    #[error("malformed: {0}")]
    Malformed(der::Error),
    /// The responder answered with an error status.
    #[error("the responder answered {0}, not successful")]
    NotSuccessful(String),
    /// `successful` without a body.
    #[error("a successful response without responseBytes")]
    NoBody,
    /// A body of another type than basic.
    #[error("response type {0}, expected id-pkix-ocsp-basic")]
    NotBasic(ObjectIdentifier),
    /// A malformed basic body.
    #[error("malformed BasicOCSPResponse: {0}")]
    MalformedBasic(der::Error),
}

/// Why a response is not signed by someone who may sign it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResponderError {
    /// The signed part does not encode.
    #[error("tbsResponseData: {0}")]
    Encoding(der::Error),
    /// The responder ID names neither the issuer nor an included certificate.
    #[error("its responder is neither the issuer {issuer:?} nor a certificate included in it")]
    Unknown {
        /// The issuer's CN.
        issuer: String,
    },
    /// The delegated responder is not certified by the issuer for OCSP signing, now.
    #[error("the delegated responder {responder:?} {reason}")]
    Delegate {
        /// The responder's CN.
        responder: String,
        /// What is wrong with it.
        reason: DelegateError,
    },
    /// The signature does not verify.
    #[error("the signature by {signer:?}: {source}")]
    Signature {
        /// The signer's CN.
        signer: String,
        /// Why the signature was not accepted.
        source: SignatureError,
    },
}

/// What is wrong with a delegated OCSP responder's certificate.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DelegateError {
    /// Not issued, or not signed, by the certificate's issuer.
    #[error("is not issued by {issuer:?}: {source}")]
    NotIssued {
        /// The issuer's CN.
        issuer: String,
        /// Why its signature was not accepted.
        source: SignatureError,
    },
    /// Its extended key usage does not decode.
    #[error("has a malformed extended key usage: {0}")]
    BadUsage(der::Error),
    /// It lacks id-kp-OCSPSigning.
    #[error("lacks the id-kp-OCSPSigning extended key usage")]
    NotForOcsp,
    /// It is not valid now.
    #[error("is not valid now ({not_before} to {not_after})")]
    NotValid {
        /// Its notBefore.
        not_before: String,
        /// Its notAfter.
        not_after: String,
    },
}

/// What a verified response says that is not `good, now`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StatusError {
    /// Revoked, when and why.
    #[error("revoked at {at}{}", .reason.as_ref().map(|r| format!(" (reason {r})")).unwrap_or_default())]
    Revoked {
        /// The revocation time.
        at: String,
        /// The CRL reason, when given.
        reason: Option<String>,
    },
    /// The responder does not know the certificate.
    #[error("the responder says its status is unknown")]
    Unknown,
    /// The response is not valid yet.
    #[error("the OCSP response is not valid before its thisUpdate {0}")]
    NotYetValid(String),
    /// The response has expired.
    #[error("the OCSP response expired at its nextUpdate {0}")]
    Expired(String),
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
) -> Result<Coverage, RevocationError> {
    let last = chain.last().ok_or(RevocationError::EmptyChain)?;
    if last.tbs_certificate.subject != last.tbs_certificate.issuer {
        return Err(RevocationError::NoRoot(common_name(last)));
    }
    let parsed = responses
        .iter()
        .enumerate()
        .map(|(i, der)| {
            parse(der).map_err(|reason| RevocationError::Response {
                index: i + 1,
                reason,
            })
        })
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
                    verify_response(basic, issuer, now).map_err(|reason| {
                        RevocationError::Unverified {
                            index: i + 1,
                            cert: name.clone(),
                            reason: Box::new(reason),
                        }
                    })?;
                    verified = true;
                }
                status(single, now).map_err(|status| RevocationError::NotGood {
                    cert: name.clone(),
                    status,
                })?;
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
fn parse(der: &[u8]) -> Result<BasicOcspResponse, ResponseError> {
    let response = OcspResponse::from_der(der).map_err(ResponseError::Malformed)?;
    if response.response_status != OcspResponseStatus::Successful {
        return Err(ResponseError::NotSuccessful(format!(
            "{:?}",
            response.response_status
        )));
    }
    let bytes = response.response_bytes.ok_or(ResponseError::NoBody)?;
    if bytes.response_type != ID_PKIX_OCSP_BASIC {
        return Err(ResponseError::NotBasic(bytes.response_type));
    }
    BasicOcspResponse::from_der(bytes.response.as_bytes()).map_err(ResponseError::MalformedBasic)
}

/// Whether `single`'s CertID names `cert` as issued by `issuer`. A hash algorithm this
/// verifier does not know names nothing.
fn names(
    single: &SingleResponse,
    cert: &Certificate,
    issuer: &Certificate,
) -> Result<bool, RevocationError> {
    let id = &single.cert_id;
    if id.serial_number.as_bytes() != cert.tbs_certificate.serial_number.as_bytes() {
        return Ok(false);
    }
    let name =
        issuer
            .tbs_certificate
            .subject
            .to_der()
            .map_err(|source| RevocationError::IssuerName {
                cert: common_name(issuer),
                source,
            })?;
    let key = issuer
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    let digest = |data: &[u8]| -> Option<Vec<u8>> {
        Some(match id.hash_algorithm.oid {
            ID_SHA_1 => Sha1::digest(data).to_vec(),
            ID_SHA_256 => Sha256::digest(data).to_vec(),
            ID_SHA_384 => Sha384::digest(data).to_vec(),
            ID_SHA_512 => Sha512::digest(data).to_vec(),
            _ => return None,
        })
    };
    Ok(
        digest(&name).as_deref() == Some(id.issuer_name_hash.as_bytes())
            && digest(key).as_deref() == Some(id.issuer_key_hash.as_bytes()),
    )
}

/// `good`, and current at `now`.
fn status(single: &SingleResponse, now: OffsetDateTime) -> Result<(), StatusError> {
    match &single.cert_status {
        CertStatus::Good(_) => {}
        CertStatus::Revoked(info) => {
            return Err(StatusError::Revoked {
                at: show(&info.revocation_time),
                reason: info.revocation_reason.map(|r| format!("{r:?}")),
            })
        }
        CertStatus::Unknown(_) => return Err(StatusError::Unknown),
    }
    if now.unix_timestamp() < secs(&single.this_update) {
        return Err(StatusError::NotYetValid(show(&single.this_update)));
    }
    if let Some(next) = &single.next_update {
        if now.unix_timestamp() > secs(next) {
            return Err(StatusError::Expired(show(next)));
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
) -> Result<(), ResponderError> {
    let tbs = basic
        .tbs_response_data
        .to_der()
        .map_err(ResponderError::Encoding)?;
    let responder = &basic.tbs_response_data.responder_id;
    let signer = if identifies(responder, issuer) {
        issuer
    } else {
        let delegate = basic
            .certs
            .iter()
            .flatten()
            .find(|c| identifies(responder, c))
            .ok_or_else(|| ResponderError::Unknown {
                issuer: common_name(issuer),
            })?;
        delegated(delegate, issuer, now).map_err(|reason| ResponderError::Delegate {
            responder: common_name(delegate),
            reason,
        })?;
        delegate
    };
    signature::verify_signed(
        &signer.tbs_certificate.subject_public_key_info,
        &basic.signature_algorithm,
        OCSP_RESPONSES,
        &tbs,
        &basic.signature,
    )
    .map(|_| ())
    .map_err(|source| ResponderError::Signature {
        signer: common_name(signer),
        source,
    })
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
) -> Result<(), DelegateError> {
    signature::verify_certificate(responder, issuer, OCSP_RESPONSES).map_err(|source| {
        DelegateError::NotIssued {
            issuer: common_name(issuer),
            source,
        }
    })?;
    let tbs = &responder.tbs_certificate;
    let eku = tbs
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == ExtendedKeyUsage::OID)
        .map(|e| ExtendedKeyUsage::from_der(e.extn_value.as_bytes()))
        .transpose()
        .map_err(DelegateError::BadUsage)?;
    if !eku.is_some_and(|u| u.0.contains(&ID_KP_OCSP_SIGNING)) {
        return Err(DelegateError::NotForOcsp);
    }
    let v = &tbs.validity;
    let at = |t: x509_cert::time::Time| {
        i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
    };
    let now_s = now.unix_timestamp();
    if now_s < at(v.not_before) || now_s > at(v.not_after) {
        return Err(DelegateError::NotValid {
            not_before: v.not_before.to_string(),
            not_after: v.not_after.to_string(),
        });
    }
    Ok(())
}

/// `gpu.revocation`: no certificate of the verified device `chain` is revoked, by the OCSP
/// responses in `revocation`; missing data fails unless the policy allows it (and then the
/// verdict warns).
pub(super) fn check_revocation(
    revocation: &Revocation,
    chain: Option<&[Certificate]>,
    rules: Option<&GpuPolicy>,
    now: OffsetDateTime,
    v: &mut Verdict,
) {
    let id = &gpu::REVOCATION;
    let expected = "no certificate of the device chain revoked (OCSP)";
    let allow_missing = rules.is_some_and(|p| p.allow_missing_revocation);
    let check = match revocation {
        Revocation::OcspResponses(responses) => {
            v.warn("the RIM signing chains' revocation is not checked, only the device chain's");
            match chain.map(with_root) {
                None => Check::fail(
                    id,
                    expected,
                    "OCSP responses supplied",
                    "the device chain did not verify, so its revocation cannot be checked",
                ),
                Some(Err(e)) => Check::fail(id, expected, "", e.to_string()),
                Some(Ok(full)) => match check(&full, responses, now) {
                    Err(e) => Check::fail(id, expected, "OCSP responses supplied", e.to_string()),
                    Ok(cov) if cov.complete() => {
                        Check::pass(id, expected, format!("good: {}", cov.good.join(", ")))
                    }
                    Ok(cov) => {
                        let found = format!(
                            "good: [{}]; no OCSP response for [{}]",
                            cov.good.join(", "),
                            cov.missing.join(", ")
                        );
                        if allow_missing {
                            v.warn("revocation was not checked for every device certificate: a revoked one would be accepted");
                            Check::pass(id, expected, found)
                        } else {
                            Check::fail(
                                id,
                                expected,
                                found,
                                "the policy requires revocation data for every certificate (allow_missing_revocation = false)",
                            )
                        }
                    }
                },
            }
        }
        Revocation::Unavailable if allow_missing => {
            v.warn("revocation was not checked: a revoked GPU or RIM key would be accepted");
            Check::pass(id, expected, "no revocation data; allowed by policy")
        }
        Revocation::Unavailable => Check::fail(
            id,
            expected,
            "no revocation data",
            "the policy requires revocation data (allow_missing_revocation = false)",
        ),
    };
    v.push(check);
}

/// The verified device chain ending with the pinned root (it may end one below it).
fn with_root(chain: &[Certificate]) -> Result<Vec<Certificate>, certs::PathError> {
    let mut full = chain.to_vec();
    if full
        .last()
        .is_some_and(|c| c.tbs_certificate.subject != c.tbs_certificate.issuer)
    {
        full.push(certs::device_root()?);
    }
    Ok(full)
}
