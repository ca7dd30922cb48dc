//! What to ask Intel's Provisioning Certification Service (PCS, or a PCCS caching it) for
//! a quote's collateral, and how its answers become the collateral JSON that
//! [`TdxCollateral::from_json`] reads.
//!
//! Pure: the caller does the HTTP (the enclave's collateral fetcher) and hands the answers
//! back here. Nothing in the answers is trusted: the collateral is verified against
//! Intel's pinned root when a quote is checked, so a PCCS, a proxy or a cache on the path
//! can make collateral unavailable or stale, never accepted.
//!
//! The URLs follow the PCS API v4 (Intel's "Provisioning Certification Service for ECDSA
//! Attestation", `/sgx/certification/v4` and `/tdx/certification/v4`): the PCK CRL of the
//! CA that issued the quote's PCK certificate, the TCB info for the PCK certificate's
//! FMSPC, the QE identity, and the root CA's CRL. PCS signs TCB info and QE identity over
//! the exact bytes of the `tcbInfo` / `enclaveIdentity` members of its answer, so those
//! members are cut out of the answer as served, never parsed and written again.

use percent_encoding::percent_decode_str;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{CollateralError, TdxCollateral};

/// Intel's PCS.
pub const INTEL_PCS: &str = "https://api.trustedservices.intel.com";

/// The CRL distribution point of Intel's SGX root CA (named in the root certificate).
pub const INTEL_ROOT_CA_CRL: &str =
    "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der";

/// The header that carries the PCK CRL's issuer chain (percent-encoded PEM).
pub const PCK_CRL_CHAIN_HEADER: &str = "SGX-PCK-CRL-Issuer-Chain";
/// The header that carries the TCB info's issuer chain (TDX answers).
pub const TCB_INFO_CHAIN_HEADER: &str = "TCB-Info-Issuer-Chain";
/// The same header in SGX answers and older PCCS versions.
pub const SGX_TCB_INFO_CHAIN_HEADER: &str = "SGX-TCB-Info-Issuer-Chain";
/// The header that carries the QE identity's issuer chain.
pub const QE_IDENTITY_CHAIN_HEADER: &str = "SGX-Enclave-Identity-Issuer-Chain";

/// Why collateral could not be requested for a quote, or assembled from the answers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PcsError {
    /// The quote does not parse, or carries no PCK certificate chain to read the FMSPC
    /// and issuing CA from.
    #[error("the quote names no platform to fetch collateral for: {0}")]
    Quote(String),
    /// The base URL is not http(s).
    #[error("PCS base URL {0:?} is not an http:// or https:// URL")]
    BaseUrl(String),
    /// An answer lacks a header it must have.
    #[error("the {item} answer has no {header} header")]
    MissingHeader {
        /// What was asked for, e.g. `TCB info`.
        item: &'static str,
        /// The header's name.
        header: &'static str,
    },
    /// A header is not percent-encoded UTF-8 PEM.
    #[error("the {item} answer's {header} header is not percent-encoded PEM")]
    BadHeader {
        /// What was asked for.
        item: &'static str,
        /// The header's name.
        header: &'static str,
    },
    /// A JSON answer does not have the members PCS sends.
    #[error("the {item} answer is not PCS JSON with {member} and a hex signature: {detail}")]
    Json {
        /// What was asked for.
        item: &'static str,
        /// The member holding the signed document.
        member: &'static str,
        /// The decoder's message.
        detail: String,
    },
    /// A CRL answer is neither DER nor the hex a PCCS sends.
    #[error("the {item} answer is empty or neither a DER CRL nor hex")]
    Crl {
        /// What was asked for.
        item: &'static str,
    },
    /// The assembled collateral does not read back (a date or CRL in it is malformed).
    #[error("the assembled collateral does not read: {0}")]
    Collateral(#[from] CollateralError),
}

/// Which CA issued a PCK certificate; PCS keeps one CRL per CA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PckCa {
    /// Intel SGX PCK Processor CA.
    Processor,
    /// Intel SGX PCK Platform CA.
    Platform,
}

impl PckCa {
    /// The `ca` query value PCS expects.
    pub fn as_query(self) -> &'static str {
        match self {
            PckCa::Processor => "processor",
            PckCa::Platform => "platform",
        }
    }
}

/// The four requests that make up a quote's collateral.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcsRequests {
    /// The platform's FMSPC, upper-case hex.
    pub fmspc: String,
    /// The CA that issued the quote's PCK certificate.
    pub ca: PckCa,
    /// The PCK CRL (DER).
    pub pck_crl: String,
    /// The TCB info for the FMSPC.
    pub tcb_info: String,
    /// The QE identity.
    pub qe_identity: String,
    /// The root CA CRL: Intel's distribution point for PCS, the PCCS's `rootcacrl`
    /// otherwise (which answers hex).
    pub root_ca_crl: String,
}

/// Reads the FMSPC and the issuing CA from the quote's PCK certificate and forms the
/// requests against `base` (PCS or a PCCS; a trailing `/sgx/certification/v4` or
/// `/tdx/certification/v4` is accepted and dropped).
pub fn requests(base: &str, quote: &[u8]) -> Result<PcsRequests, PcsError> {
    let base = base
        .trim_end_matches('/')
        .trim_end_matches("/sgx/certification/v4")
        .trim_end_matches("/tdx/certification/v4");
    if !(base.starts_with("https://") || base.starts_with("http://")) {
        return Err(PcsError::BaseUrl(base.to_owned()));
    }
    let parsed =
        dcap_qvl::quote::Quote::parse(quote).map_err(|e| PcsError::Quote(e.to_string()))?;
    let fmspc = dcap_qvl::intel::quote_fmspc(&parsed)
        .map_err(|e| PcsError::Quote(format!("FMSPC: {e}")))?;
    let ca = dcap_qvl::intel::quote_ca(&parsed)
        .map_err(|e| PcsError::Quote(format!("PCK issuer: {e}")))?;
    let ca = match ca {
        dcap_qvl::config::PckCa::Platform => PckCa::Platform,
        dcap_qvl::config::PckCa::Processor => PckCa::Processor,
    };
    let tee = if parsed.header.is_sgx() { "sgx" } else { "tdx" };
    let fmspc = hex::encode_upper(fmspc);
    let root_ca_crl = if base == INTEL_PCS {
        INTEL_ROOT_CA_CRL.to_owned()
    } else {
        format!("{base}/sgx/certification/v4/rootcacrl")
    };
    Ok(PcsRequests {
        pck_crl: format!(
            "{base}/sgx/certification/v4/pckcrl?ca={}&encoding=der",
            ca.as_query()
        ),
        tcb_info: format!("{base}/{tee}/certification/v4/tcb?fmspc={fmspc}"),
        qe_identity: format!("{base}/{tee}/certification/v4/qe/identity"),
        root_ca_crl,
        fmspc,
        ca,
    })
}

/// One answer: its body and a way to read its headers.
pub struct Answer<'a> {
    /// The body.
    pub body: &'a [u8],
    /// The header with this name (case-insensitive), if present.
    pub header: &'a dyn Fn(&str) -> Option<String>,
}

/// The answers to [`PcsRequests`], in its order.
pub struct PcsAnswers<'a> {
    /// The PCK CRL.
    pub pck_crl: Answer<'a>,
    /// The TCB info.
    pub tcb_info: Answer<'a>,
    /// The QE identity.
    pub qe_identity: Answer<'a>,
    /// The root CA CRL.
    pub root_ca_crl: &'a [u8],
}

/// The collateral JSON object (the shape `dcap-qvl` and Phala's PCCS client write).
#[derive(serde::Serialize)]
struct CollateralJson<'a> {
    pck_crl_issuer_chain: String,
    root_ca_crl: String,
    pck_crl: String,
    tcb_info_issuer_chain: String,
    tcb_info: &'a str,
    tcb_info_signature: &'a str,
    qe_identity_issuer_chain: String,
    qe_identity: &'a str,
    qe_identity_signature: &'a str,
}

#[derive(Deserialize)]
struct TcbInfoAnswer<'a> {
    #[serde(rename = "tcbInfo", borrow)]
    tcb_info: &'a RawValue,
    signature: &'a str,
}

#[derive(Deserialize)]
struct QeIdentityAnswer<'a> {
    #[serde(rename = "enclaveIdentity", borrow)]
    identity: &'a RawValue,
    signature: &'a str,
}

/// Assembles the collateral JSON from PCS's answers, and checks that it reads back.
pub fn assemble(answers: &PcsAnswers<'_>) -> Result<Vec<u8>, PcsError> {
    let tcb: TcbInfoAnswer<'_> =
        serde_json::from_slice(answers.tcb_info.body).map_err(|e| PcsError::Json {
            item: "TCB info",
            member: "tcbInfo",
            detail: e.to_string(),
        })?;
    let qe: QeIdentityAnswer<'_> =
        serde_json::from_slice(answers.qe_identity.body).map_err(|e| PcsError::Json {
            item: "QE identity",
            member: "enclaveIdentity",
            detail: e.to_string(),
        })?;
    for (item, member, sig) in [
        ("TCB info", "tcbInfo", tcb.signature),
        ("QE identity", "enclaveIdentity", qe.signature),
    ] {
        if sig.is_empty() || hex::decode(sig).is_err() {
            return Err(PcsError::Json {
                item,
                member,
                detail: "the signature is not hex".into(),
            });
        }
    }
    let tcb_chain = chain(&answers.tcb_info, "TCB info", TCB_INFO_CHAIN_HEADER)
        .or_else(|_| chain(&answers.tcb_info, "TCB info", SGX_TCB_INFO_CHAIN_HEADER))?;
    let doc = CollateralJson {
        pck_crl_issuer_chain: chain(&answers.pck_crl, "PCK CRL", PCK_CRL_CHAIN_HEADER)?,
        root_ca_crl: hex::encode(crl_der(answers.root_ca_crl, "root CA CRL")?),
        pck_crl: hex::encode(crl_der(answers.pck_crl.body, "PCK CRL")?),
        tcb_info_issuer_chain: tcb_chain,
        tcb_info: tcb.tcb_info.get(),
        tcb_info_signature: tcb.signature,
        qe_identity_issuer_chain: chain(
            &answers.qe_identity,
            "QE identity",
            QE_IDENTITY_CHAIN_HEADER,
        )?,
        qe_identity: qe.identity.get(),
        qe_identity_signature: qe.signature,
    };
    // Plain strings under string keys: serialising cannot fail.
    let json = serde_json::to_vec(&doc).unwrap_or_default();
    TdxCollateral::from_json(&json)?;
    Ok(json)
}

/// A percent-encoded PEM chain from a header.
fn chain(
    answer: &Answer<'_>,
    item: &'static str,
    header: &'static str,
) -> Result<String, PcsError> {
    let raw = (answer.header)(header).ok_or(PcsError::MissingHeader { item, header })?;
    let pem = percent_decode_str(&raw)
        .decode_utf8()
        .map_err(|_| PcsError::BadHeader { item, header })?;
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(PcsError::BadHeader { item, header });
    }
    Ok(pem.into_owned())
}

/// A CRL as DER: PCS answers DER (`encoding=der`, and the root CA's distribution point)
/// or PEM (without `encoding`); a PCCS answers the root CA CRL as hex.
fn crl_der(body: &[u8], item: &'static str) -> Result<Vec<u8>, PcsError> {
    use base64::Engine as _;
    const PEM_BEGIN: &str = "-----BEGIN X509 CRL-----";
    const PEM_END: &str = "-----END X509 CRL-----";
    if body.first() == Some(&0x30) {
        return Ok(body.to_vec());
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| PcsError::Crl { item })?
        .trim();
    let der = match text
        .strip_prefix(PEM_BEGIN)
        .and_then(|t| t.strip_suffix(PEM_END))
    {
        Some(b64) => {
            let b64: String = b64.split_whitespace().collect();
            base64::engine::general_purpose::STANDARD.decode(b64).ok()
        }
        None => hex::decode(text).ok(),
    };
    match der {
        Some(der) if der.first() == Some(&0x30) => Ok(der),
        _ => Err(PcsError::Crl { item }),
    }
}

#[cfg(test)]
#[path = "pcs_tests.rs"]
mod tests;
