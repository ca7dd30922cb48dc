//! NVIDIA's Reference Integrity Manifests: ISO/IEC 19770-2 SWID tags (TCG RIM information
//! model) listing the golden measurement of each index, enveloped-signed with XML-DSig
//! (ECDSA P-384, SHA-384, C14N 1.1) by a key certified up to NVIDIA's CoRIM signing root.
//!
//! ```xml
//! <SoftwareIdentity xmlns="…19770/-2/2015/schema.xsd" xmlns:ns2="…xmlenc#sha384" …>
//!   <ns0:Meta colloquialVersion="550.144.03" product="GH100" …/>
//!   <ns0:Payload>
//!     <ns0:Resource type="Measurement" index="7" active="True" alternatives="1"
//!                   ns2:Hash0="4a5e…" name="Measurement_7" size="48"/> …
//!   </ns0:Payload>
//!   <ds:Signature>…</ds:Signature>
//! </SoftwareIdentity>
//! ```
//!
//! [`Rim::parse`] reads the document; [`Rim::verify`] checks its signature and signing
//! chain. A RIM's measurements mean nothing until `verify` passed.

use base64::Engine as _;
use sha2::{Digest, Sha384};
use thiserror::Error;
use time::OffsetDateTime;
use x509_cert::der::Decode;
use x509_cert::Certificate;

use super::c14n::{self, attr_ns, element_ns, scope_of, Element, Scope, XmlError};
use super::certs::{self, PathError};
use crate::signature::{Algorithm, PublicKey, SignatureBytes, SignatureError};

const SWID_NS: &str = "http://standards.iso.org/iso/19770/-2/2015/schema.xsd";
const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
const HASH_NS: &str = "http://www.w3.org/2001/04/xmlenc#sha384";
const C14N_11: &str = "http://www.w3.org/2006/12/xml-c14n11";
const C14N_10: &str = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const ECDSA_SHA384: &str = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384";
const DIGEST_SHA384: [&str; 2] = [
    "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "http://www.w3.org/2001/04/xmlenc#sha384",
];

/// Why a RIM could not be read or trusted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RimError {
    /// Not well-formed XML, or XML outside what silk canonicalizes.
    #[error("the RIM is not usable XML: {0}")]
    Xml(#[from] XmlError),
    /// A SWID or RIM element or attribute is missing or malformed.
    #[error("the RIM is malformed: {0}")]
    Schema(String),
    /// The XML signature is missing, malformed or of a kind silk does not accept.
    #[error("the RIM's XML signature is malformed or unsupported: {0}")]
    SignatureFormat(String),
    /// The signed content's digest differs from the one signed.
    #[error("the RIM's content does not match its signed digest (it was altered after signing)")]
    Digest,
    /// The signing certificate's key is not a P-384 key.
    #[error("the RIM's signing key: {0}")]
    Key(SignatureError),
    /// The ECDSA signature over SignedInfo does not verify.
    #[error("the RIM's signature does not verify with its signing certificate")]
    Signature,
    /// The signing chain does not lead to NVIDIA's pinned RIM root, or is not valid now.
    #[error("the RIM's signing chain is not trusted: {0}")]
    Chain(PathError),
}

/// One golden measurement: the values index `index` may hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoldenMeasurement {
    /// The 0-based index (the report's block index minus one).
    pub index: u32,
    /// Whether the verifier must compare it; inactive entries are placeholders.
    pub active: bool,
    /// Accepted values; the runtime value must equal one of them.
    pub alternatives: Vec<Vec<u8>>,
    /// The size in bytes every alternative has.
    pub size: usize,
    /// NVIDIA's name for it (`Measurement_7`).
    pub name: String,
}

/// A parsed (not yet verified) RIM.
#[derive(Clone, Debug)]
pub struct Rim {
    /// The SWID tagId.
    pub tag_id: String,
    /// Meta's colloquialVersion: the driver (`550.144.03`) or VBIOS (`96.00.5E.00.01`)
    /// version the RIM describes.
    pub version: String,
    /// Meta's product, the chip (`GH100`).
    pub product: String,
    /// Every measurement entry, active or not, in index order.
    pub measurements: Vec<GoldenMeasurement>,
    root: Element,
}

impl Rim {
    /// Parses a RIM document.
    pub fn parse(xml: &[u8]) -> Result<Self, RimError> {
        let root = c14n::parse(xml)?;
        let scope = scope_of(&Scope::new(), &root);
        if root.local() != "SoftwareIdentity" || element_ns(&Scope::new(), &root) != SWID_NS {
            return Err(RimError::Schema(format!(
                "the root element is <{}>, expected a SWID SoftwareIdentity",
                root.qname
            )));
        }
        let tag_id = required(&root, "tagId")?.to_owned();
        let meta = only_child(&root, &scope, SWID_NS, "Meta")?;
        let version = required(meta, "colloquialVersion")?.to_owned();
        let product = required(meta, "product")?.to_owned();
        let payload = only_child(&root, &scope, SWID_NS, "Payload")?;
        let payload_scope = scope_of(&scope, payload);
        let mut measurements: Vec<GoldenMeasurement> = Vec::new();
        for r in payload.elements() {
            let m = measurement(r, &payload_scope)?;
            if measurements.iter().any(|x| x.index == m.index) {
                return Err(RimError::Schema(format!("index {} appears twice", m.index)));
            }
            measurements.push(m);
        }
        if measurements.is_empty() {
            return Err(RimError::Schema("the Payload has no measurements".into()));
        }
        measurements.sort_by_key(|m| m.index);
        Ok(Self {
            tag_id,
            version,
            product,
            measurements,
            root,
        })
    }

    /// The active golden measurements.
    pub fn active(&self) -> impl Iterator<Item = &GoldenMeasurement> {
        self.measurements.iter().filter(|m| m.active)
    }

    /// Verifies the enveloped XML signature (the digest of the document without its
    /// Signature, then ECDSA over SignedInfo with the first certificate's key) and that
    /// the certificates in KeyInfo chain to `root` and are valid at `now`. Returns the
    /// chain's summary.
    pub fn verify(&self, root: &Certificate, now: OffsetDateTime) -> Result<String, RimError> {
        let scope = scope_of(&Scope::new(), &self.root);
        let sig_pos = signature_position(&self.root, &scope)?;
        let Some(signature) = self.root.elements().nth(sig_pos) else {
            return Err(RimError::SignatureFormat("no Signature".into()));
        };
        let sig_scope = scope_of(&scope, signature);
        let parts = SignatureParts::read(signature, &sig_scope)?;

        let chain = parts
            .certs
            .iter()
            .enumerate()
            .map(|(i, der)| {
                Certificate::from_der(der).map_err(|e| {
                    RimError::SignatureFormat(format!("X509Certificate {}: {e}", i + 1))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        // The chain first, so that an expired or foreign signer is named as such.
        let summary = certs::verify_path(&chain, root, now).map_err(RimError::Chain)?;
        let signed = c14n::canonicalize_document(&self.root, Some(&[sig_pos]));
        if Sha384::digest(signed.as_bytes())[..] != parts.digest[..] {
            return Err(RimError::Digest);
        }
        let leaf = chain
            .first()
            .ok_or_else(|| RimError::SignatureFormat("KeyInfo has no X509Certificate".into()))?;
        let key = PublicKey::p384_of(leaf).map_err(RimError::Key)?;
        let signed_info = c14n::canonicalize_subtree(parts.signed_info, &sig_scope);
        PublicKey::EcdsaP384(key)
            .verify(
                Algorithm::EcdsaP384Sha384,
                signed_info.as_bytes(),
                SignatureBytes::Fixed(&parts.signature_value),
            )
            .map_err(|_| RimError::Signature)?;
        Ok(summary)
    }
}

fn required<'a>(e: &'a Element, name: &str) -> Result<&'a str, RimError> {
    e.attr(name)
        .ok_or_else(|| RimError::Schema(format!("<{}> has no {name}", e.qname)))
}

/// The single child of `parent` named `{ns}local`.
fn only_child<'a>(
    parent: &'a Element,
    scope: &Scope,
    ns: &str,
    local: &str,
) -> Result<&'a Element, RimError> {
    let mut found = parent
        .elements()
        .filter(|e| e.local() == local && element_ns(&scope_of(scope, e), e) == ns);
    let first = found
        .next()
        .ok_or_else(|| RimError::Schema(format!("<{}> has no {local}", parent.qname)))?;
    if found.next().is_some() {
        return Err(RimError::Schema(format!(
            "<{}> has more than one {local}",
            parent.qname
        )));
    }
    Ok(first)
}

fn measurement(r: &Element, parent: &Scope) -> Result<GoldenMeasurement, RimError> {
    let scope = scope_of(parent, r);
    let bad = |what: String| RimError::Schema(format!("<{}>: {what}", r.qname));
    if r.local() != "Resource" || element_ns(&scope, r) != SWID_NS {
        return Err(bad(
            "the Payload holds something other than a Resource".into()
        ));
    }
    if r.attr("type") != Some("Measurement") {
        return Err(bad(format!("type {:?} is not Measurement", r.attr("type"))));
    }
    let number = |name: &str| -> Result<u64, RimError> {
        required(r, name)?
            .parse::<u64>()
            .map_err(|_| bad(format!("{name} is not a number")))
    };
    let index = u32::try_from(number("index")?).map_err(|_| bad("index too large".into()))?;
    // NVIDIA's two verifiers disagree on anything but these two spellings (the Python one
    // treats any other value as active, the C++ one as inactive), so accept only them.
    let active = match required(r, "active")? {
        "True" => true,
        "False" => false,
        other => return Err(bad(format!("active is {other:?}, expected True or False"))),
    };
    let count = number("alternatives")?;
    let size = usize::try_from(number("size")?).map_err(|_| bad("size too large".into()))?;
    if count == 0 || count > 64 {
        return Err(bad(format!("{count} alternatives")));
    }
    let mut alternatives = Vec::new();
    for i in 0..count {
        let local = format!("Hash{i}");
        let hex_value = attr_ns(&scope, r, HASH_NS, &local)
            .ok_or_else(|| bad(format!("no SHA-384 {local}")))?;
        let value = hex::decode(hex_value).map_err(|e| bad(format!("{local}: {e}")))?;
        if value.len() != size {
            return Err(bad(format!(
                "{local} is {} bytes, size says {size}",
                value.len()
            )));
        }
        alternatives.push(value);
    }
    Ok(GoldenMeasurement {
        index,
        active,
        alternatives,
        size,
        name: required(r, "name")?.to_owned(),
    })
}

/// The position among the root's child elements of the one ds:Signature, which must be
/// the only one in the document (a second could be what a reader trusts instead).
fn signature_position(root: &Element, scope: &Scope) -> Result<usize, RimError> {
    fn count(e: &Element, scope: &Scope) -> usize {
        e.elements()
            .map(|c| {
                let s = scope_of(scope, c);
                usize::from(c.local() == "Signature" && element_ns(&s, c) == DSIG_NS) + count(c, &s)
            })
            .sum()
    }
    if count(root, scope) != 1 {
        return Err(RimError::SignatureFormat(
            "the document must hold exactly one ds:Signature".into(),
        ));
    }
    root.elements()
        .position(|c| c.local() == "Signature" && element_ns(&scope_of(scope, c), c) == DSIG_NS)
        .ok_or_else(|| {
            RimError::SignatureFormat("the Signature is not a child of SoftwareIdentity".into())
        })
}

struct SignatureParts<'a> {
    signed_info: &'a Element,
    digest: Vec<u8>,
    signature_value: Vec<u8>,
    certs: Vec<Vec<u8>>,
}

impl<'a> SignatureParts<'a> {
    /// Reads the Signature, accepting only the one profile NVIDIA uses: one Reference to
    /// the whole document (`URI=""`), the enveloped-signature transform then inclusive
    /// C14N, SHA-384, ECDSA P-384, and the signer's certificate chain in KeyInfo.
    fn read(sig: &'a Element, scope: &Scope) -> Result<Self, RimError> {
        let fmt = |s: String| RimError::SignatureFormat(s);
        let ds = |e: &'a Element, names: &[&str]| -> Result<Vec<&'a Element>, RimError> {
            let s = scope_of(scope, e);
            let kids: Vec<&Element> = e.elements().collect();
            let locals: Vec<&str> = kids.iter().map(|k| k.local()).collect();
            if locals != names
                || kids
                    .iter()
                    .any(|k| element_ns(&scope_of(&s, k), k) != DSIG_NS)
            {
                return Err(fmt(format!(
                    "<{}> holds {locals:?}, expected {names:?}",
                    e.qname
                )));
            }
            Ok(kids)
        };
        let algorithm = |e: &Element, allowed: &[&str]| -> Result<(), RimError> {
            match e.attr("Algorithm") {
                Some(a) if allowed.contains(&a) && e.elements().next().is_none() => Ok(()),
                a => Err(fmt(format!(
                    "{} algorithm {a:?} is not accepted",
                    e.local()
                ))),
            }
        };
        let top = ds(sig, &["SignedInfo", "SignatureValue", "KeyInfo"])?;
        let (signed_info, value, key_info) = (top[0], top[1], top[2]);
        let si = ds(
            signed_info,
            &["CanonicalizationMethod", "SignatureMethod", "Reference"],
        )?;
        algorithm(si[0], &[C14N_11, C14N_10])?;
        algorithm(si[1], &[ECDSA_SHA384])?;
        let reference = si[2];
        if reference.attr("URI") != Some("") {
            return Err(fmt(
                "the Reference must cover the whole document (URI=\"\")".into(),
            ));
        }
        let r = ds(reference, &["Transforms", "DigestMethod", "DigestValue"])?;
        let transforms: Vec<&Element> = r[0].elements().collect();
        match transforms.as_slice() {
            [env] => algorithm(env, &[ENVELOPED])?,
            [env, c] => {
                algorithm(env, &[ENVELOPED])?;
                algorithm(c, &[C14N_11, C14N_10])?;
            }
            _ => {
                return Err(fmt(
                    "expected the enveloped-signature transform and C14N".into()
                ))
            }
        }
        algorithm(r[1], &DIGEST_SHA384)?;
        let digest = base64(&r[2].text()).map_err(|e| fmt(format!("DigestValue: {e}")))?;
        let signature_value =
            base64(&value.text()).map_err(|e| fmt(format!("SignatureValue: {e}")))?;
        if digest.len() != 48 || signature_value.len() != 96 {
            return Err(fmt(
                "DigestValue or SignatureValue has the wrong length".into()
            ));
        }
        let data = ds(key_info, &["X509Data"])?;
        let certs = data[0]
            .elements()
            .map(|c| {
                if c.local() != "X509Certificate" {
                    return Err(fmt(format!("X509Data holds <{}>", c.qname)));
                }
                base64(&c.text()).map_err(|e| fmt(format!("X509Certificate: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            signed_info,
            digest,
            signature_value,
            certs,
        })
    }
}

/// Base64 as XML-DSig writes it: whitespace between the characters is allowed.
fn base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(compact)
}
