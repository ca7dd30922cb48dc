//! Offline OCSP checking (`gpu::revocation::check`) against a synthetic ECDSA P-384
//! chain (root → intermediate → leaf) and synthetic responses signed here.

use std::time::Duration;

use const_oid::db::rfc5912::{ECDSA_WITH_SHA_384, ID_SHA_1, ID_SHA_256};
use const_oid::db::rfc6960::ID_PKIX_OCSP_BASIC;
use der::asn1::{BitString, GeneralizedTime, ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use p384::ecdsa::signature::Signer as _;
use p384::pkcs8::DecodePrivateKey as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    PKCS_ECDSA_P384_SHA384,
};
use sha2::{Digest, Sha256};
use silk_attestation::gpu::revocation::{
    check, Coverage, DelegateError, ResponderError, ResponseError, RevocationError, StatusError,
};
use spki::AlgorithmIdentifierOwned;
use time::OffsetDateTime;
use x509_cert::ext::pkix::crl::CrlReason;
use x509_cert::Certificate;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspGeneralizedTime, OcspResponse, OcspResponseStatus,
    ResponderId, ResponseBytes, ResponseData, RevokedInfo, SingleResponse, Version,
};

/// Whether `err` is a response that does not verify for the reason `is` accepts.
fn unverified(err: &RevocationError, is: impl Fn(&ResponderError) -> bool) -> bool {
    matches!(err, RevocationError::Unverified { reason, .. } if is(reason))
}

const HOUR: u64 = 3600;

struct Party {
    cert: Certificate,
    key: p384::ecdsa::SigningKey,
}

struct Pki {
    root: Party,
    inter: Party,
    leaf: Party,
    /// Signs for the leaf's issuer (the intermediate), with and without the EKU.
    responder: Party,
    responder_no_eku: Party,
    now: OffsetDateTime,
}

fn key() -> (KeyPair, p384::ecdsa::SigningKey) {
    let kp = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap();
    let sk = p384::ecdsa::SigningKey::from_pkcs8_der(&kp.serialize_der()).unwrap();
    (kp, sk)
}

fn params(cn: &str, serial: u64, ca: bool) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.serial_number = Some(serial.into());
    if ca {
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    }
    p
}

fn parse(der: &[u8]) -> Certificate {
    Certificate::from_der(der).unwrap()
}

fn pki() -> Pki {
    let (root_kp, root_sk) = key();
    let root_p = params("Test Root CA", 1, true);
    let root_cert = parse(root_p.self_signed(&root_kp).unwrap().der());
    let root_issuer = Issuer::new(root_p, root_kp);
    let (inter_kp, inter_sk) = key();
    let inter_p = params("Test Intermediate CA", 2, true);
    let inter_cert = parse(inter_p.signed_by(&inter_kp, &root_issuer).unwrap().der());
    let inter_issuer = Issuer::new(inter_p, inter_kp);
    let (leaf_kp, leaf_sk) = key();
    let leaf_cert = parse(
        params("Test GPU Leaf", 3, false)
            .signed_by(&leaf_kp, &inter_issuer)
            .unwrap()
            .der(),
    );
    let (resp_kp, resp_sk) = key();
    let mut resp_p = params("Test OCSP Responder", 4, false);
    resp_p.extended_key_usages = vec![ExtendedKeyUsagePurpose::OcspSigning];
    let resp_cert = parse(resp_p.signed_by(&resp_kp, &inter_issuer).unwrap().der());
    let (bad_kp, bad_sk) = key();
    let bad_cert = parse(
        params("Test Responder Without EKU", 5, false)
            .signed_by(&bad_kp, &inter_issuer)
            .unwrap()
            .der(),
    );
    Pki {
        root: Party {
            cert: root_cert,
            key: root_sk,
        },
        inter: Party {
            cert: inter_cert,
            key: inter_sk,
        },
        leaf: Party {
            cert: leaf_cert,
            key: leaf_sk,
        },
        responder: Party {
            cert: resp_cert,
            key: resp_sk,
        },
        responder_no_eku: Party {
            cert: bad_cert,
            key: bad_sk,
        },
        now: OffsetDateTime::now_utc(),
    }
}

impl Pki {
    fn chain(&self) -> Vec<Certificate> {
        vec![
            self.leaf.cert.clone(),
            self.inter.cert.clone(),
            self.root.cert.clone(),
        ]
    }

    fn at(&self, offset_secs: i64) -> OcspGeneralizedTime {
        let t = u64::try_from(self.now.unix_timestamp() + offset_secs).unwrap();
        OcspGeneralizedTime(GeneralizedTime::from_unix_duration(Duration::from_secs(t)).unwrap())
    }

    /// A `good` single response for `cert` issued by `issuer`, valid an hour either side.
    fn single(&self, cert: &Certificate, issuer: &Certificate) -> SingleResponse {
        SingleResponse {
            cert_id: cert_id(ID_SHA_256, cert, issuer),
            cert_status: CertStatus::good(),
            this_update: self.at(-(HOUR as i64)),
            next_update: Some(self.at(HOUR as i64)),
            single_extensions: None,
        }
    }
}

fn cert_id(alg: ObjectIdentifier, cert: &Certificate, issuer: &Certificate) -> CertId {
    let h = |d: &[u8]| -> Vec<u8> {
        if alg == ID_SHA_1 {
            sha1::Sha1::digest(d).to_vec()
        } else {
            Sha256::digest(d).to_vec()
        }
    };
    let name = issuer.tbs_certificate.subject.to_der().unwrap();
    let key = issuer
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: alg,
            parameters: Some(der::asn1::Null.into()),
        },
        issuer_name_hash: OctetString::new(h(&name)).unwrap(),
        issuer_key_hash: OctetString::new(h(key)).unwrap(),
        serial_number: cert.tbs_certificate.serial_number.clone(),
    }
}

/// A DER OCSPResponse, `responder` naming the signer, signed with `key`.
fn response(
    responder: &Certificate,
    key: &p384::ecdsa::SigningKey,
    singles: Vec<SingleResponse>,
    certs: Option<Vec<Certificate>>,
    produced: OcspGeneralizedTime,
) -> Vec<u8> {
    let tbs = ResponseData {
        version: Version::V1,
        responder_id: ResponderId::ByName(responder.tbs_certificate.subject.clone()),
        produced_at: produced,
        responses: singles,
        response_extensions: None,
    };
    let sig: p384::ecdsa::Signature = key.sign(&tbs.to_der().unwrap());
    let basic = BasicOcspResponse {
        tbs_response_data: tbs,
        signature_algorithm: AlgorithmIdentifierOwned {
            oid: ECDSA_WITH_SHA_384,
            parameters: None,
        },
        signature: BitString::from_bytes(sig.to_der().as_bytes()).unwrap(),
        certs,
    };
    OcspResponse {
        response_status: OcspResponseStatus::Successful,
        response_bytes: Some(ResponseBytes {
            response_type: ID_PKIX_OCSP_BASIC,
            response: OctetString::new(basic.to_der().unwrap()).unwrap(),
        }),
    }
    .to_der()
    .unwrap()
}

/// Good responses for the leaf (from the intermediate) and the intermediate (from the root).
fn good(p: &Pki) -> Vec<Vec<u8>> {
    vec![
        response(
            &p.inter.cert,
            &p.inter.key,
            vec![p.single(&p.leaf.cert, &p.inter.cert)],
            None,
            p.at(0),
        ),
        response(
            &p.root.cert,
            &p.root.key,
            vec![p.single(&p.inter.cert, &p.root.cert)],
            None,
            p.at(0),
        ),
    ]
}

#[test]
fn good_responses_cover_the_chain() {
    let p = pki();
    let cov = check(&p.chain(), &good(&p), p.now).unwrap();
    assert_eq!(
        cov,
        Coverage {
            good: vec!["Test GPU Leaf".into(), "Test Intermediate CA".into()],
            missing: vec![],
        }
    );
    assert!(cov.complete());
}

#[test]
fn sha1_cert_ids_match() {
    let p = pki();
    let mut s = p.single(&p.leaf.cert, &p.inter.cert);
    s.cert_id = cert_id(ID_SHA_1, &p.leaf.cert, &p.inter.cert);
    let r = response(&p.inter.cert, &p.inter.key, vec![s], None, p.at(0));
    let cov = check(&p.chain(), &[r], p.now).unwrap();
    assert_eq!(cov.good, vec!["Test GPU Leaf".to_string()]);
    assert_eq!(cov.missing, vec!["Test Intermediate CA".to_string()]);
}

#[test]
fn revoked_fails_naming_the_certificate_time_and_reason() {
    let p = pki();
    let mut s = p.single(&p.leaf.cert, &p.inter.cert);
    s.cert_status = CertStatus::revoked(RevokedInfo {
        revocation_time: p.at(-60),
        revocation_reason: Some(CrlReason::KeyCompromise),
    });
    let r = response(&p.inter.cert, &p.inter.key, vec![s], None, p.at(0));
    let err = check(&p.chain(), &[r], p.now).unwrap_err();
    assert!(
        matches!(
            err,
            RevocationError::NotGood {
                status: StatusError::Revoked { .. },
                ..
            }
        ),
        "{err:?}"
    );
    let e = err.to_string();
    assert!(e.contains("Test GPU Leaf") && e.contains("revoked"), "{e}");
    assert!(e.contains("KeyCompromise"), "{e}");
}

#[test]
fn unknown_status_fails() {
    let p = pki();
    let mut s = p.single(&p.leaf.cert, &p.inter.cert);
    s.cert_status = CertStatus::unknown();
    let r = response(&p.inter.cert, &p.inter.key, vec![s], None, p.at(0));
    let err = check(&p.chain(), &[r], p.now).unwrap_err();
    assert!(
        matches!(
            err,
            RevocationError::NotGood {
                status: StatusError::Unknown,
                ..
            }
        ),
        "{err:?}"
    );
    let e = err.to_string();
    assert!(e.contains("Test GPU Leaf") && e.contains("unknown"), "{e}");
}

#[test]
fn signature_by_another_key_fails() {
    let p = pki();
    // Names the intermediate as responder but is signed with the leaf's key.
    let r = response(
        &p.inter.cert,
        &p.leaf.key,
        vec![p.single(&p.leaf.cert, &p.inter.cert)],
        None,
        p.at(0),
    );
    let err = check(&p.chain(), &[r], p.now).unwrap_err();
    assert!(
        unverified(&err, |r| matches!(r, ResponderError::Signature { .. })),
        "{err:?}"
    );
    let e = err.to_string();
    assert!(
        e.contains("Test GPU Leaf") && e.contains("does not verify"),
        "{e}"
    );
}

#[test]
fn tampered_response_fails() {
    let p = pki();
    let mut r = good(&p);
    // Extend the leaf response's nextUpdate without re-signing it.
    let resp = OcspResponse::from_der(&r[0]).unwrap();
    let bytes = resp.response_bytes.unwrap();
    let mut basic = BasicOcspResponse::from_der(bytes.response.as_bytes()).unwrap();
    basic.tbs_response_data.responses[0].next_update = Some(p.at(10 * HOUR as i64));
    r[0] = OcspResponse {
        response_status: OcspResponseStatus::Successful,
        response_bytes: Some(ResponseBytes {
            response_type: ID_PKIX_OCSP_BASIC,
            response: OctetString::new(basic.to_der().unwrap()).unwrap(),
        }),
    }
    .to_der()
    .unwrap();
    let err = check(&p.chain(), &r, p.now).unwrap_err();
    assert!(matches!(err, RevocationError::Unverified { .. }), "{err:?}");
    let e = err.to_string();
    assert!(e.contains("does not verify"), "{e}");
}

#[test]
fn expired_next_update_fails() {
    let p = pki();
    let mut s = p.single(&p.leaf.cert, &p.inter.cert);
    s.this_update = p.at(-(3 * HOUR as i64));
    s.next_update = Some(p.at(-(HOUR as i64)));
    let r = response(
        &p.inter.cert,
        &p.inter.key,
        vec![s],
        None,
        p.at(-(3 * HOUR as i64)),
    );
    let err = check(&p.chain(), &[r], p.now).unwrap_err();
    assert!(
        matches!(
            err,
            RevocationError::NotGood {
                status: StatusError::Expired(_),
                ..
            }
        ),
        "{err:?}"
    );
    let e = err.to_string();
    assert!(
        e.contains("Test GPU Leaf") && e.contains("nextUpdate"),
        "{e}"
    );
}

#[test]
fn future_this_update_fails() {
    let p = pki();
    let mut s = p.single(&p.leaf.cert, &p.inter.cert);
    s.this_update = p.at(HOUR as i64);
    s.next_update = None;
    let r = response(&p.inter.cert, &p.inter.key, vec![s], None, p.at(0));
    let err = check(&p.chain(), &[r], p.now).unwrap_err();
    assert!(
        matches!(
            err,
            RevocationError::NotGood {
                status: StatusError::NotYetValid(_),
                ..
            }
        ),
        "{err:?}"
    );
    let e = err.to_string();
    assert!(e.contains("thisUpdate"), "{e}");
}

#[test]
fn another_serial_counts_as_missing() {
    let p = pki();
    let mut s = p.single(&p.leaf.cert, &p.inter.cert);
    s.cert_id.serial_number = 99u32.into();
    let r = response(&p.inter.cert, &p.inter.key, vec![s], None, p.at(0));
    let cov = check(&p.chain(), &[r], p.now).unwrap();
    assert!(cov.good.is_empty() && !cov.complete());
    assert_eq!(
        cov.missing,
        vec![
            "Test GPU Leaf".to_string(),
            "Test Intermediate CA".to_string()
        ]
    );
}

#[test]
fn no_responses_means_everything_missing() {
    let p = pki();
    let cov = check(&p.chain(), &[], p.now).unwrap();
    assert_eq!(cov.missing.len(), 2);
}

#[test]
fn delegated_responder_with_ocsp_signing_passes() {
    let p = pki();
    let r = response(
        &p.responder.cert,
        &p.responder.key,
        vec![p.single(&p.leaf.cert, &p.inter.cert)],
        Some(vec![p.responder.cert.clone()]),
        p.at(0),
    );
    let cov = check(&p.chain(), &[r], p.now).unwrap();
    assert_eq!(cov.good, vec!["Test GPU Leaf".to_string()]);
}

#[test]
fn delegated_responder_without_eku_fails() {
    let p = pki();
    let r = response(
        &p.responder_no_eku.cert,
        &p.responder_no_eku.key,
        vec![p.single(&p.leaf.cert, &p.inter.cert)],
        Some(vec![p.responder_no_eku.cert.clone()]),
        p.at(0),
    );
    let err = check(&p.chain(), &[r], p.now).unwrap_err();
    assert!(
        unverified(&err, |r| matches!(
            r,
            ResponderError::Delegate {
                reason: DelegateError::NotForOcsp,
                ..
            }
        )),
        "{err:?}"
    );
    let e = err.to_string();
    assert!(
        e.contains("id-kp-OCSPSigning") && e.contains("Test GPU Leaf"),
        "{e}"
    );
}

#[test]
fn delegated_responder_not_included_fails() {
    let p = pki();
    let r = response(
        &p.responder.cert,
        &p.responder.key,
        vec![p.single(&p.leaf.cert, &p.inter.cert)],
        None,
        p.at(0),
    );
    let err = check(&p.chain(), &[r], p.now).unwrap_err();
    assert!(
        unverified(&err, |r| matches!(r, ResponderError::Unknown { .. })),
        "{err:?}"
    );
    let e = err.to_string();
    assert!(e.contains("neither the issuer"), "{e}");
}

#[test]
fn delegated_responder_of_another_issuer_fails() {
    let p = pki();
    // The intermediate's responder may not answer for the intermediate itself (its issuer
    // is the root).
    let r = response(
        &p.responder.cert,
        &p.responder.key,
        vec![p.single(&p.inter.cert, &p.root.cert)],
        Some(vec![p.responder.cert.clone()]),
        p.at(0),
    );
    let err = check(&p.chain(), &[r], p.now).unwrap_err();
    assert!(
        unverified(&err, |r| matches!(
            r,
            ResponderError::Delegate {
                reason: DelegateError::NotIssued { .. },
                ..
            }
        )),
        "{err:?}"
    );
    let e = err.to_string();
    assert!(
        e.contains("Test Intermediate CA") && e.contains("not issued by"),
        "{e}"
    );
}

#[test]
fn malformed_and_unsuccessful_responses_fail() {
    let p = pki();
    let err = check(&p.chain(), &[vec![0x30, 0x03, 0x0a]], p.now).unwrap_err();
    assert!(
        matches!(
            err,
            RevocationError::Response {
                index: 1,
                reason: ResponseError::Malformed(_)
            }
        ),
        "{err:?}"
    );
    let e = err.to_string();
    assert!(e.contains("OCSP response #1: malformed"), "{e}");
    let try_later = OcspResponse {
        response_status: OcspResponseStatus::TryLater,
        response_bytes: None,
    }
    .to_der()
    .unwrap();
    let err = check(&p.chain(), &[try_later], p.now).unwrap_err();
    assert!(
        matches!(
            err,
            RevocationError::Response {
                reason: ResponseError::NotSuccessful(_),
                ..
            }
        ),
        "{err:?}"
    );
    let e = err.to_string();
    assert!(e.contains("TryLater"), "{e}");
}

#[test]
fn chain_must_end_with_its_root() {
    let p = pki();
    let err = check(&p.chain()[..2], &good(&p), p.now).unwrap_err();
    assert!(matches!(err, RevocationError::NoRoot(_)), "{err:?}");
    let e = err.to_string();
    assert!(e.contains("must end with its root"), "{e}");
}
