//! Canonical form of a quote's signature data.
//!
//! The quote signature covers only the header and body; the QE report signature covers
//! the attestation key and QE authentication data; the PCK chain's DER is checked up to
//! Intel's root. That leaves bytes no signature covers: the length and type fields of
//! the signature data, the PEM text around the certificates' DER, and the copy of the
//! root CA at the end of the chain (the verifier anchors on its own pinned root, not on
//! this copy). `dcap-qvl` ignores all of them, so a relay could change them freely.
//! Requiring one encoding for each makes every byte of a quote matter.

use dcap_qvl::quote::{AuthData, CertificationData};
use der::pem::{self, LineEnding};
use sha2::{Digest, Sha256};

use super::quote::QuoteError;

/// Certification data type 5: a PEM PCK certificate chain, leaf first.
const CERT_TYPE_PCK_CHAIN: u16 = 5;
/// Certification data type 6: QE report certification data (quote v4 and v5).
const CERT_TYPE_QE_REPORT: u16 = 6;
/// ECDSA signature and attestation key, at the start of all signature data.
const SIG_AND_KEY_LEN: usize = 64 + 64;
/// QE report and its signature.
const QE_REPORT_AND_SIG_LEN: usize = 384 + 64;
/// A certification data header: `u16` type and `u32` size.
const CERT_HEADER_LEN: usize = 2 + 4;
/// The `u16` length of the QE authentication data.
const QE_AUTH_LEN_FIELD: usize = 2;

/// SHA-256 of the DER of the Intel SGX Root CA, the anchor `dcap-qvl` pins.
const INTEL_SGX_ROOT_CA_SHA256: [u8; 32] = [
    0x44, 0xa0, 0x19, 0x6b, 0x2b, 0x99, 0xf8, 0x89, 0xb8, 0xe1, 0x49, 0xe9, 0x5b, 0x80, 0x7a, 0x35,
    0x0e, 0x74, 0x24, 0x96, 0x43, 0x99, 0xe8, 0x85, 0xa7, 0xcb, 0xb8, 0xcc, 0xfa, 0xb6, 0x74, 0xd3,
];

const PEM_LABEL: &str = "CERTIFICATE";
const PEM_END: &[u8] = b"-----END CERTIFICATE-----\n";

/// How a part of the signature data differs from its one accepted encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Uncanonical {
    /// A certification data type other than the one the quote version has.
    #[error("is {found}, expected {expected}")]
    CertType {
        /// The type found.
        found: u16,
        /// The type expected.
        expected: u16,
    },
    /// A certification data size with slack.
    #[error("is {found}, but the QE report certification data is {contents} bytes")]
    CertSize {
        /// The size field.
        found: usize,
        /// What its contents take.
        contents: usize,
    },
    /// A signature data length with slack.
    #[error("is {declared}, but its contents are {contents} bytes")]
    Length {
        /// The length field.
        declared: usize,
        /// What the contents take.
        contents: usize,
    },
    /// A PEM block without its END line.
    #[error("certificate {0} has no \"-----END CERTIFICATE-----\" line")]
    NoEnd(usize),
    /// A block that is not PEM.
    #[error("certificate {index} is not PEM: {error}")]
    NotPem {
        /// The certificate's place, from 0.
        index: usize,
        /// The PEM decoder's error.
        error: pem::Error,
    },
    /// A PEM block with another label.
    #[error("certificate {index} is labelled {label:?}")]
    Label {
        /// The certificate's place, from 0.
        index: usize,
        /// Its label.
        label: String,
    },
    /// A certificate whose canonical PEM does not encode.
    #[error("certificate {index}: {error}")]
    Encoding {
        /// The certificate's place, from 0.
        index: usize,
        /// The PEM encoder's error.
        error: pem::Error,
    },
    /// PEM other than the canonical form.
    #[error("certificate {0} is not in canonical PEM form")]
    NotCanonicalPem(usize),
    /// Something other than NUL after the last certificate.
    #[error("byte {0} after the last certificate is not NUL")]
    Trailing(usize),
    /// No certificate at all.
    #[error("holds no certificate")]
    Empty,
    /// A chain that does not end in Intel's root.
    #[error("the last certificate is not the Intel SGX Root CA")]
    NotIntelRoot,
}

fn non_canonical(field: &'static str, reason: Uncanonical) -> QuoteError {
    QuoteError::NonCanonical { field, reason }
}

/// Checks that the signature data, `sig_data_len` bytes long by its length field, is
/// exactly what its parsed parts encode to.
pub(crate) fn check(auth: &AuthData, sig_data_len: usize) -> Result<(), QuoteError> {
    let (pck_data, consumed) = match auth {
        AuthData::V3(v3) => {
            let qe = v3.qe_auth_data.data.len();
            let certs = &v3.certification_data;
            let len = SIG_AND_KEY_LEN + QE_REPORT_AND_SIG_LEN + QE_AUTH_LEN_FIELD + qe;
            (certs, len + CERT_HEADER_LEN + certs.body.data.len())
        }
        AuthData::V4(v4) => {
            let outer = &v4.certification_data;
            if outer.cert_type != CERT_TYPE_QE_REPORT {
                return Err(non_canonical(
                    "certification_data.type",
                    Uncanonical::CertType {
                        found: outer.cert_type,
                        expected: CERT_TYPE_QE_REPORT,
                    },
                ));
            }
            let qe = v4.qe_report_data.qe_auth_data.data.len();
            let inner = &v4.qe_report_data.certification_data;
            let inner_len = QE_REPORT_AND_SIG_LEN
                + QE_AUTH_LEN_FIELD
                + qe
                + CERT_HEADER_LEN
                + inner.body.data.len();
            if outer.body.data.len() != inner_len {
                return Err(non_canonical(
                    "certification_data.size",
                    Uncanonical::CertSize {
                        found: outer.body.data.len(),
                        contents: inner_len,
                    },
                ));
            }
            (inner, SIG_AND_KEY_LEN + CERT_HEADER_LEN + inner_len)
        }
    };
    if consumed != sig_data_len {
        return Err(non_canonical(
            "signature_data_len",
            Uncanonical::Length {
                declared: sig_data_len,
                contents: consumed,
            },
        ));
    }
    check_pck_data(pck_data)
}

/// A PCK chain must be canonical PEM (RFC 7468, 64-column base64, LF line ends) ending
/// with Intel's root CA, optionally followed by NUL terminators. Other certification
/// data types carry no chain (the collateral supplies it) and are left to `dcap-qvl`.
fn check_pck_data(data: &CertificationData) -> Result<(), QuoteError> {
    if data.cert_type != CERT_TYPE_PCK_CHAIN {
        return Ok(());
    }
    let mut rest = &data.body.data[..];
    let mut last_der = None;
    let mut index = 0usize;
    while rest.first().is_some_and(|&b| b != 0) {
        let end = find(rest, PEM_END)
            .ok_or_else(|| non_canonical("pck_cert_chain", Uncanonical::NoEnd(index)))?
            + PEM_END.len();
        let (block, after) = rest.split_at(end);
        let (label, der) = pem::decode_vec(block).map_err(|error| {
            non_canonical("pck_cert_chain", Uncanonical::NotPem { index, error })
        })?;
        if label != PEM_LABEL {
            return Err(non_canonical(
                "pck_cert_chain",
                Uncanonical::Label {
                    index,
                    label: label.to_owned(),
                },
            ));
        }
        let canonical = pem::encode_string(PEM_LABEL, LineEnding::LF, &der).map_err(|error| {
            non_canonical("pck_cert_chain", Uncanonical::Encoding { index, error })
        })?;
        if canonical.as_bytes() != block {
            return Err(non_canonical(
                "pck_cert_chain",
                Uncanonical::NotCanonicalPem(index),
            ));
        }
        last_der = Some(der);
        rest = after;
        index += 1;
    }
    if let Some(pos) = rest.iter().position(|&b| b != 0) {
        return Err(non_canonical("pck_cert_chain", Uncanonical::Trailing(pos)));
    }
    let root = last_der.ok_or_else(|| non_canonical("pck_cert_chain", Uncanonical::Empty))?;
    if Sha256::digest(&root)[..] != INTEL_SGX_ROOT_CA_SHA256 {
        return Err(non_canonical("pck_cert_chain", Uncanonical::NotIntelRoot));
    }
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
