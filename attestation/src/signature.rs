//! Every signature silk checks, verified in one place: AMD's RSASSA-PSS certificate chain
//! and the ECDSA P-384 report signature, NVIDIA's ECDSA P-384 device and RIM chains, GPU
//! reports and XML signatures, silk's simulated chain, and OCSP responses (ECDSA P-256 or
//! P-384, RSA PKCS#1 v1.5).
//!
//! One module so that every caller reads algorithms, keys and signatures the same way and
//! none can be lax where another is strict: a certificate's signed and unsigned algorithm
//! fields must agree (RFC 5280 4.1.1.2), a BIT STRING with unused bits is refused, a key
//! verifies only the algorithms of its type, and each caller names the algorithms its
//! chain may use, so that a certificate cannot move its chain to another one.

use const_oid::db::rfc5912::{
    ECDSA_WITH_SHA_256, ECDSA_WITH_SHA_384, ID_EC_PUBLIC_KEY, ID_MGF_1, ID_RSASSA_PSS, ID_SHA_384,
    RSA_ENCRYPTION, SECP_256_R_1, SECP_384_R_1, SHA_256_WITH_RSA_ENCRYPTION,
    SHA_384_WITH_RSA_ENCRYPTION,
};
use der::asn1::{BitString, ObjectIdentifier};
use der::{Decode, Encode};
use p384::ecdsa::signature::Verifier as _;
use rsa::pkcs1::{RsaPssParams, TrailerField};
use rsa::pkcs8::DecodePublicKey as _;
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::Certificate;

/// A signature algorithm silk accepts, with its parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Algorithm {
    /// ECDSA over P-256 with SHA-256 (OCSP responders).
    EcdsaP256Sha256,
    /// ECDSA over P-384 with SHA-384 (SEV-SNP reports, NVIDIA, silk's development chain).
    EcdsaP384Sha384,
    /// RSA PKCS#1 v1.5 with SHA-256 (OCSP responders).
    RsaPkcs1Sha256,
    /// RSA PKCS#1 v1.5 with SHA-384 (OCSP responders).
    RsaPkcs1Sha384,
    /// RSASSA-PSS with SHA-384, MGF1 with SHA-384, trailer field 1 and this salt length
    /// (AMD's ARK, ASK and ASVK certificates, with a 48-byte salt).
    RsaPssSha384 {
        /// The salt length, in bytes.
        salt_len: u8,
    },
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Algorithm::EcdsaP256Sha256 => f.write_str("ecdsa-with-SHA256"),
            Algorithm::EcdsaP384Sha384 => f.write_str("ecdsa-with-SHA384"),
            Algorithm::RsaPkcs1Sha256 => f.write_str("sha256WithRSAEncryption"),
            Algorithm::RsaPkcs1Sha384 => f.write_str("sha384WithRSAEncryption"),
            Algorithm::RsaPssSha384 { salt_len } => {
                write!(
                    f,
                    "RSASSA-PSS (SHA-384, MGF1-SHA-384, {salt_len}-byte salt)"
                )
            }
        }
    }
}

/// AMD's certificate algorithm (SEV-SNP Firmware ABI and KDS specifications).
pub const AMD_CERTIFICATES: &[Algorithm] = &[Algorithm::RsaPssSha384 { salt_len: 48 }];
/// The one algorithm of NVIDIA's device and RIM chains and of silk's development chain.
pub const ECDSA_P384: &[Algorithm] = &[Algorithm::EcdsaP384Sha384];
/// What OCSP responders sign with, as NVIDIA's and common CAs' responders do.
pub const OCSP_RESPONSES: &[Algorithm] = &[
    Algorithm::EcdsaP384Sha384,
    Algorithm::EcdsaP256Sha256,
    Algorithm::RsaPkcs1Sha256,
    Algorithm::RsaPkcs1Sha384,
];

/// Why a signature was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The algorithm identifier names an algorithm silk does not verify.
    #[error("signature algorithm {oid} is not one silk verifies")]
    UnknownAlgorithm {
        /// The algorithm's OID.
        oid: ObjectIdentifier,
    },
    /// RSASSA-PSS with parameters other than SHA-384, MGF1-SHA-384 and trailer field 1.
    #[error("RSASSA-PSS parameters are {found}, expected SHA-384 with MGF1-SHA-384")]
    PssParameters {
        /// What the parameters say.
        found: String,
    },
    /// The algorithm is known but not one this chain or message uses.
    #[error("signature algorithm is {found}, expected {}", list(.allowed))]
    NotAllowed {
        /// The algorithm found.
        found: Algorithm,
        /// The algorithms accepted here.
        allowed: &'static [Algorithm],
    },
    /// A certificate's `signatureAlgorithm` differs from its TBS `signature` field.
    #[error("signatureAlgorithm differs from the TBS signature field")]
    AlgorithmFieldsDiffer,
    /// The subject's issuer name is not the signer's subject name.
    #[error("issuer name {issuer} differs from the signer's subject {signer}")]
    IssuerName {
        /// The subject's issuer name.
        issuer: String,
        /// The signer's subject name.
        signer: String,
    },
    /// The key's type or curve is not one silk verifies with.
    #[error("the key is {found}, which silk does not verify with")]
    UnsupportedKey {
        /// The key's algorithm (and curve).
        found: String,
    },
    /// The key cannot make signatures of this algorithm.
    #[error("a {key} key cannot verify {algorithm}")]
    KeyMismatch {
        /// The key's kind.
        key: &'static str,
        /// The algorithm.
        algorithm: Algorithm,
    },
    /// The public key does not decode (a point off the curve, a malformed RSA key).
    #[error("the public key is malformed")]
    MalformedKey,
    /// A BIT STRING (key or signature) does not hold whole bytes.
    #[error("the {what} BIT STRING has unused bits")]
    UnusedBits {
        /// `public key` or `signature`.
        what: &'static str,
    },
    /// The signature bytes do not decode for the algorithm (wrong length, a zero or
    /// out-of-range scalar, bad DER).
    #[error("the signature is malformed")]
    MalformedSignature,
    /// Re-encoding the signed part failed.
    #[error("the signed part does not encode: {0}")]
    Encoding(der::Error),
    /// The signature does not verify with the key.
    #[error("the signature does not verify")]
    Invalid,
}

fn list(allowed: &[Algorithm]) -> String {
    let names: Vec<String> = allowed.iter().map(Algorithm::to_string).collect();
    names.join(" or ")
}

impl Algorithm {
    /// Reads an X.509 `AlgorithmIdentifier`. ECDSA and PKCS#1 v1.5 parameters are not
    /// read (they carry no choice); RSASSA-PSS's must be SHA-384 with MGF1-SHA-384.
    pub fn from_identifier(alg: &AlgorithmIdentifierOwned) -> Result<Self, SignatureError> {
        Ok(match alg.oid {
            ECDSA_WITH_SHA_256 => Algorithm::EcdsaP256Sha256,
            ECDSA_WITH_SHA_384 => Algorithm::EcdsaP384Sha384,
            SHA_256_WITH_RSA_ENCRYPTION => Algorithm::RsaPkcs1Sha256,
            SHA_384_WITH_RSA_ENCRYPTION => Algorithm::RsaPkcs1Sha384,
            ID_RSASSA_PSS => pss(alg)?,
            oid => return Err(SignatureError::UnknownAlgorithm { oid }),
        })
    }

    /// This algorithm, if `allowed` holds it.
    fn within(self, allowed: &'static [Algorithm]) -> Result<Self, SignatureError> {
        if allowed.contains(&self) {
            Ok(self)
        } else {
            Err(SignatureError::NotAllowed {
                found: self,
                allowed,
            })
        }
    }
}

fn pss(alg: &AlgorithmIdentifierOwned) -> Result<Algorithm, SignatureError> {
    let bad = |found: String| SignatureError::PssParameters { found };
    let der = alg
        .parameters
        .as_ref()
        .ok_or_else(|| bad("absent".into()))?
        .to_der()
        .map_err(SignatureError::Encoding)?;
    let params = RsaPssParams::from_der(&der).map_err(|e| bad(format!("malformed ({e})")))?;
    let mgf_hash = params.mask_gen.parameters.as_ref().map(|p| p.oid);
    if params.hash.oid != ID_SHA_384
        || params.mask_gen.oid != ID_MGF_1
        || mgf_hash != Some(ID_SHA_384)
        || params.trailer_field != TrailerField::BC
    {
        return Err(bad(format!(
            "hash {}, mask {} ({mgf_hash:?})",
            params.hash.oid, params.mask_gen.oid
        )));
    }
    Ok(Algorithm::RsaPssSha384 {
        salt_len: params.salt_len,
    })
}

/// How a signature's bytes are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureBytes<'a> {
    /// As X.509 and OCSP carry it: ECDSA as a DER `Ecdsa-Sig-Value`, RSA as the raw
    /// signature.
    Der(&'a [u8]),
    /// ECDSA `r || s`, each big-endian and as long as the curve's order (SPDM, XML-DSig,
    /// and SEV-SNP reports once their little-endian fields are turned around).
    Fixed(&'a [u8]),
}

/// A public key silk verifies with.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublicKey {
    /// ECDSA over P-256.
    EcdsaP256(p256::ecdsa::VerifyingKey),
    /// ECDSA over P-384.
    EcdsaP384(p384::ecdsa::VerifyingKey),
    /// RSA.
    Rsa(rsa::RsaPublicKey),
}

impl PublicKey {
    /// Reads a `SubjectPublicKeyInfo`: an EC key on P-256 or P-384, or an RSA key.
    pub fn from_spki(spki: &SubjectPublicKeyInfoOwned) -> Result<Self, SignatureError> {
        match spki.algorithm.oid {
            ID_EC_PUBLIC_KEY => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
                let point = spki
                    .subject_public_key
                    .as_bytes()
                    .ok_or(SignatureError::UnusedBits { what: "public key" })?;
                match curve {
                    Some(SECP_384_R_1) => p384::ecdsa::VerifyingKey::from_sec1_bytes(point)
                        .map(PublicKey::EcdsaP384)
                        .map_err(|_| SignatureError::MalformedKey),
                    Some(SECP_256_R_1) => p256::ecdsa::VerifyingKey::from_sec1_bytes(point)
                        .map(PublicKey::EcdsaP256)
                        .map_err(|_| SignatureError::MalformedKey),
                    other => Err(SignatureError::UnsupportedKey {
                        found: format!("an EC key on curve {other:?}"),
                    }),
                }
            }
            RSA_ENCRYPTION => {
                let der = spki.to_der().map_err(SignatureError::Encoding)?;
                rsa::RsaPublicKey::from_public_key_der(&der)
                    .map(PublicKey::Rsa)
                    .map_err(|_| SignatureError::MalformedKey)
            }
            oid => Err(SignatureError::UnsupportedKey {
                found: format!("of algorithm {oid}"),
            }),
        }
    }

    /// The subject key of `cert`.
    pub fn of(cert: &Certificate) -> Result<Self, SignatureError> {
        Self::from_spki(&cert.tbs_certificate.subject_public_key_info)
    }

    /// The P-384 key of `cert`, for signatures that are P-384 by their format.
    pub fn p384_of(cert: &Certificate) -> Result<p384::ecdsa::VerifyingKey, SignatureError> {
        match Self::of(cert)? {
            PublicKey::EcdsaP384(key) => Ok(key),
            other => Err(SignatureError::KeyMismatch {
                key: other.kind(),
                algorithm: Algorithm::EcdsaP384Sha384,
            }),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            PublicKey::EcdsaP256(_) => "P-256",
            PublicKey::EcdsaP384(_) => "P-384",
            PublicKey::Rsa(_) => "RSA",
        }
    }

    /// Verifies `signature` over `message` with this key and `algorithm`.
    pub fn verify(
        &self,
        algorithm: Algorithm,
        message: &[u8],
        signature: SignatureBytes<'_>,
    ) -> Result<(), SignatureError> {
        // The arithmetic is ring's (constant-time, and several times faster than the
        // pure-Rust curves and RSA, which a client re-verifying bundles feels); the keys
        // stay the RustCrypto types that parse and validate them.
        use ring::signature as rs;
        let ring_verify = |alg: &'static dyn rs::VerificationAlgorithm, key: &[u8], sig: &[u8]| {
            rs::UnparsedPublicKey::new(alg, key)
                .verify(message, sig)
                .map_err(|_| SignatureError::Invalid)
        };
        match (self, algorithm, signature) {
            (PublicKey::EcdsaP384(key), Algorithm::EcdsaP384Sha384, sig) => {
                let point = key.to_encoded_point(false);
                match sig {
                    SignatureBytes::Der(b) => {
                        // Refused as malformed exactly when it is not a DER signature.
                        p384::ecdsa::Signature::from_der(b)
                            .map_err(|_| SignatureError::MalformedSignature)?;
                        ring_verify(&rs::ECDSA_P384_SHA384_ASN1, point.as_bytes(), b)
                    }
                    SignatureBytes::Fixed(b) => {
                        p384::ecdsa::Signature::from_slice(b)
                            .map_err(|_| SignatureError::MalformedSignature)?;
                        ring_verify(&rs::ECDSA_P384_SHA384_FIXED, point.as_bytes(), b)
                    }
                }
            }
            (PublicKey::EcdsaP256(key), Algorithm::EcdsaP256Sha256, sig) => {
                let point = key.to_encoded_point(false);
                match sig {
                    SignatureBytes::Der(b) => {
                        p256::ecdsa::Signature::from_der(b)
                            .map_err(|_| SignatureError::MalformedSignature)?;
                        ring_verify(&rs::ECDSA_P256_SHA256_ASN1, point.as_bytes(), b)
                    }
                    SignatureBytes::Fixed(b) => {
                        p256::ecdsa::Signature::from_slice(b)
                            .map_err(|_| SignatureError::MalformedSignature)?;
                        ring_verify(&rs::ECDSA_P256_SHA256_FIXED, point.as_bytes(), b)
                    }
                }
            }
            (
                PublicKey::Rsa(key),
                Algorithm::RsaPkcs1Sha256 | Algorithm::RsaPkcs1Sha384,
                SignatureBytes::Der(b),
            ) => {
                let alg: &'static rs::RsaParameters = if algorithm == Algorithm::RsaPkcs1Sha256 {
                    &rs::RSA_PKCS1_2048_8192_SHA256
                } else {
                    &rs::RSA_PKCS1_2048_8192_SHA384
                };
                rsa_verify(key, alg, message, b)
            }
            // ring's PSS takes the salt as long as the digest, which is what AMD uses; any
            // other length goes through the `rsa` crate.
            (
                PublicKey::Rsa(key),
                Algorithm::RsaPssSha384 { salt_len: 48 },
                SignatureBytes::Der(b),
            ) => rsa_verify(key, &rs::RSA_PSS_2048_8192_SHA384, message, b),
            (PublicKey::Rsa(key), Algorithm::RsaPssSha384 { salt_len }, SignatureBytes::Der(b)) => {
                let sig = rsa::pss::Signature::try_from(b)
                    .map_err(|_| SignatureError::MalformedSignature)?;
                rsa::pss::VerifyingKey::<sha2::Sha384>::new_with_salt_len(
                    key.clone(),
                    usize::from(salt_len),
                )
                .verify(message, &sig)
                .map_err(|_| SignatureError::Invalid)
            }
            (key, algorithm, _) => Err(SignatureError::KeyMismatch {
                key: key.kind(),
                algorithm,
            }),
        }
    }
}

/// RSA with ring, from the key's modulus and exponent. A key ring will not take (under
/// 2048 bits) fails as invalid, as the `rsa` crate's refusal did.
fn rsa_verify(
    key: &rsa::RsaPublicKey,
    alg: &'static ring::signature::RsaParameters,
    message: &[u8],
    sig: &[u8],
) -> Result<(), SignatureError> {
    use rsa::traits::PublicKeyParts as _;
    if sig.len() != key.size() {
        return Err(SignatureError::MalformedSignature);
    }
    ring::signature::RsaPublicKeyComponents {
        n: key.n().to_bytes_be(),
        e: key.e().to_bytes_be(),
    }
    .verify(alg, message, sig)
    .map_err(|_| SignatureError::Invalid)
}

/// Verifies a signature as X.509 and OCSP carry it: `signature` (a BIT STRING) over
/// `message` by `signer`'s key, with the algorithm `algorithm` names, which must be one of
/// `allowed`. Returns the algorithm.
pub fn verify_signed(
    signer: &SubjectPublicKeyInfoOwned,
    algorithm: &AlgorithmIdentifierOwned,
    allowed: &'static [Algorithm],
    message: &[u8],
    signature: &BitString,
) -> Result<Algorithm, SignatureError> {
    let algorithm = Algorithm::from_identifier(algorithm)?.within(allowed)?;
    let sig = signature
        .as_bytes()
        .ok_or(SignatureError::UnusedBits { what: "signature" })?;
    PublicKey::from_spki(signer)?.verify(algorithm, message, SignatureBytes::Der(sig))?;
    Ok(algorithm)
}

/// Verifies that `issuer` signed `subject`: the subject names the issuer, its two
/// algorithm fields agree and name one of `allowed`, and the signature over its TBS part
/// verifies with the issuer's key. Returns the algorithm.
pub fn verify_certificate(
    subject: &Certificate,
    issuer: &Certificate,
    allowed: &'static [Algorithm],
) -> Result<Algorithm, SignatureError> {
    let tbs = &subject.tbs_certificate;
    if tbs.issuer != issuer.tbs_certificate.subject {
        return Err(SignatureError::IssuerName {
            issuer: tbs.issuer.to_string(),
            signer: issuer.tbs_certificate.subject.to_string(),
        });
    }
    // RFC 5280 4.1.1.2: otherwise a relay could change how the signature is read without
    // breaking it.
    if subject.signature_algorithm != tbs.signature {
        return Err(SignatureError::AlgorithmFieldsDiffer);
    }
    let message = tbs.to_der().map_err(SignatureError::Encoding)?;
    verify_signed(
        &issuer.tbs_certificate.subject_public_key_info,
        &subject.signature_algorithm,
        allowed,
        &message,
        &subject.signature,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use p384::ecdsa::signature::Signer as _;
    use rcgen::{CertificateParams, DnType, IsCa, Issuer, KeyPair, PKCS_ECDSA_P384_SHA384};

    fn ca(cn: &str) -> (CertificateParams, KeyPair) {
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        (p, KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap())
    }

    fn parse(der: &[u8]) -> Certificate {
        Certificate::from_der(der).unwrap()
    }

    #[test]
    fn a_certificate_verifies_only_under_its_issuer_and_allowed_algorithms() {
        let (root_p, root_k) = ca("root");
        let root = parse(root_p.self_signed(&root_k).unwrap().der());
        let (leaf_p, leaf_k) = ca("leaf");
        let leaf = parse(
            leaf_p
                .signed_by(&leaf_k, &Issuer::from_params(&root_p, &root_k))
                .unwrap()
                .der(),
        );
        assert_eq!(
            verify_certificate(&leaf, &root, ECDSA_P384),
            Ok(Algorithm::EcdsaP384Sha384)
        );
        assert!(matches!(
            verify_certificate(&leaf, &leaf, ECDSA_P384),
            Err(SignatureError::IssuerName { .. })
        ));
        assert!(matches!(
            verify_certificate(&leaf, &root, AMD_CERTIFICATES),
            Err(SignatureError::NotAllowed { .. })
        ));
        // Another root with the same name: the names match, the signature does not.
        let (other_p, other_k) = ca("root");
        let other = parse(other_p.self_signed(&other_k).unwrap().der());
        assert_eq!(
            verify_certificate(&leaf, &other, ECDSA_P384),
            Err(SignatureError::Invalid)
        );
        let mut altered = leaf.clone();
        altered.signature_algorithm.oid = ECDSA_WITH_SHA_256;
        assert_eq!(
            verify_certificate(&altered, &root, OCSP_RESPONSES),
            Err(SignatureError::AlgorithmFieldsDiffer)
        );
    }

    #[test]
    fn fixed_signatures_and_key_types() {
        let sk = p384::ecdsa::SigningKey::from_slice(&[7; 48]).unwrap();
        let sig: p384::ecdsa::Signature = sk.sign(b"message");
        let key = PublicKey::EcdsaP384(*sk.verifying_key());
        let fixed = sig.to_bytes();
        assert_eq!(
            key.verify(
                Algorithm::EcdsaP384Sha384,
                b"message",
                SignatureBytes::Fixed(&fixed)
            ),
            Ok(())
        );
        assert_eq!(
            key.verify(
                Algorithm::EcdsaP384Sha384,
                b"massage",
                SignatureBytes::Fixed(&fixed)
            ),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            key.verify(
                Algorithm::EcdsaP384Sha384,
                b"message",
                SignatureBytes::Fixed(&fixed[1..])
            ),
            Err(SignatureError::MalformedSignature)
        );
        assert!(matches!(
            key.verify(
                Algorithm::RsaPkcs1Sha256,
                b"message",
                SignatureBytes::Der(&fixed)
            ),
            Err(SignatureError::KeyMismatch { key: "P-384", .. })
        ));
    }
}
