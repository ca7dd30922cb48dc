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
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum RimError {
    /// Not well-formed XML, or XML outside what silk canonicalizes.
    #[error("the RIM is not usable XML: {0}")]
    Xml(#[from] XmlError),
    /// A SWID or RIM element or attribute is missing or malformed.
    #[error("the RIM is malformed: {0}")]
    Schema(#[from] SchemaError),
    /// The XML signature is missing, malformed or of a kind silk does not accept.
    #[error("the RIM's XML signature is malformed or unsupported: {0}")]
    SignatureFormat(#[from] SignatureFormatError),
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

/// What is missing or malformed in a RIM's SWID content.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// The root is not a SWID SoftwareIdentity.
    #[error("the root element is <{0}>, expected a SWID SoftwareIdentity")]
    NotSwid(String),
    /// An element lacks a required attribute or child.
    #[error("<{element}> has no {name}")]
    Missing {
        /// The element's qualified name.
        element: String,
        /// The attribute or child.
        name: String,
    },
    /// A child that must be single appears more than once.
    #[error("<{element}> has more than one {name}")]
    MoreThanOne {
        /// The element's qualified name.
        element: String,
        /// The child.
        name: String,
    },
    /// Two measurements with one index.
    #[error("index {0} appears twice")]
    RepeatedIndex(u32),
    /// A Payload without measurements.
    #[error("the Payload has no measurements")]
    NoMeasurements,
    /// A measurement entry that is not one.
    #[error("<{element}>: {reason}")]
    Measurement {
        /// The entry's qualified name.
        element: String,
        /// What is wrong with it.
        reason: MeasurementError,
    },
}

/// What is wrong with one measurement entry of a RIM's Payload.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum MeasurementError {
    /// Something other than a SWID Resource.
    #[error("the Payload holds something other than a Resource")]
    NotResource,
    /// A Resource of another type than Measurement.
    #[error("type {0:?} is not Measurement")]
    NotMeasurement(Option<String>),
    /// A numeric attribute that is not a number (or too large).
    #[error("{0} is not a number that fits")]
    NotNumber(&'static str),
    /// `active` other than `True` or `False`.
    #[error("active is {0:?}, expected True or False")]
    Active(String),
    /// No alternatives, or more than 64.
    #[error("{0} alternatives")]
    Alternatives(u64),
    /// A missing alternative.
    #[error("no SHA-384 {0}")]
    NoHash(String),
    /// An alternative that is not hex.
    #[error("{hash}: {source}")]
    Hex {
        /// The attribute (`Hash0`).
        hash: String,
        /// The decoder's error.
        source: hex::FromHexError,
    },
    /// An alternative of another size than the entry's.
    #[error("{hash} is {found} bytes, size says {size}")]
    HashSize {
        /// The attribute (`Hash0`).
        hash: String,
        /// Its length.
        found: usize,
        /// The entry's size.
        size: usize,
    },
}

/// What is wrong with a RIM's XML signature, or outside the one profile silk accepts.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SignatureFormatError {
    /// Not exactly one ds:Signature in the document.
    #[error("the document must hold exactly one ds:Signature")]
    SignatureCount,
    /// The Signature is not a child of the root.
    #[error("the Signature is not a child of SoftwareIdentity")]
    NotChildOfRoot,
    /// An element's children are not the ones the profile has.
    #[error("<{element}> holds {found:?}, expected {expected:?}")]
    Children {
        /// The element's qualified name.
        element: String,
        /// Its children's local names.
        found: Vec<String>,
        /// The children the profile has.
        expected: &'static [&'static str],
    },
    /// An algorithm the profile does not have.
    #[error("{element} algorithm {found:?} is not accepted")]
    Algorithm {
        /// The element (`SignatureMethod`, …).
        element: String,
        /// Its Algorithm attribute.
        found: Option<String>,
    },
    /// A Reference to less than the whole document.
    #[error("the Reference must cover the whole document (URI=\"\")")]
    NotWholeDocument,
    /// Transforms other than enveloped-signature then C14N.
    #[error("expected the enveloped-signature transform and C14N")]
    Transforms,
    /// A base64 field that does not decode.
    #[error("{field}: {source}")]
    Base64 {
        /// `DigestValue`, `SignatureValue` or `X509Certificate`.
        field: &'static str,
        /// The decoder's error.
        source: base64::DecodeError,
    },
    /// A digest or signature of another length than SHA-384's or P-384's.
    #[error("DigestValue or SignatureValue has the wrong length")]
    Lengths,
    /// X509Data with something other than certificates.
    #[error("X509Data holds <{0}>")]
    X509Data(String),
    /// A certificate that does not parse.
    #[error("X509Certificate {index}: {source}")]
    Certificate {
        /// Its 1-based place in KeyInfo.
        index: usize,
        /// The decoder's error.
        source: der::Error,
    },
    /// KeyInfo without certificates.
    #[error("KeyInfo has no X509Certificate")]
    NoCertificate,
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
            return Err(SchemaError::NotSwid(root.qname.clone()).into());
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
                return Err(SchemaError::RepeatedIndex(m.index).into());
            }
            measurements.push(m);
        }
        if measurements.is_empty() {
            return Err(SchemaError::NoMeasurements.into());
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
            return Err(SignatureFormatError::NotChildOfRoot.into());
        };
        let sig_scope = scope_of(&scope, signature);
        let parts = SignatureParts::read(signature, &sig_scope)?;

        let chain = parts
            .certs
            .iter()
            .enumerate()
            .map(|(i, der)| {
                Certificate::from_der(der).map_err(|source| {
                    RimError::from(SignatureFormatError::Certificate {
                        index: i + 1,
                        source,
                    })
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        // The chain first, so that an expired or foreign signer is named as such.
        let summary = certs::verify_path(&chain, root, now).map_err(RimError::Chain)?;
        let signed = c14n::canonicalize_document(&self.root, Some(&[sig_pos]));
        if Sha384::digest(signed.as_bytes())[..] != parts.digest[..] {
            return Err(RimError::Digest);
        }
        let leaf = chain.first().ok_or(SignatureFormatError::NoCertificate)?;
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

fn required<'a>(e: &'a Element, name: &str) -> Result<&'a str, SchemaError> {
    e.attr(name).ok_or_else(|| SchemaError::Missing {
        element: e.qname.clone(),
        name: name.to_owned(),
    })
}

/// The single child of `parent` named `{ns}local`.
fn only_child<'a>(
    parent: &'a Element,
    scope: &Scope,
    ns: &str,
    local: &str,
) -> Result<&'a Element, SchemaError> {
    let mut found = parent
        .elements()
        .filter(|e| e.local() == local && element_ns(&scope_of(scope, e), e) == ns);
    let first = found.next().ok_or_else(|| SchemaError::Missing {
        element: parent.qname.clone(),
        name: local.to_owned(),
    })?;
    if found.next().is_some() {
        return Err(SchemaError::MoreThanOne {
            element: parent.qname.clone(),
            name: local.to_owned(),
        });
    }
    Ok(first)
}

fn measurement(r: &Element, parent: &Scope) -> Result<GoldenMeasurement, SchemaError> {
    let scope = scope_of(parent, r);
    let bad = |reason| SchemaError::Measurement {
        element: r.qname.clone(),
        reason,
    };
    if r.local() != "Resource" || element_ns(&scope, r) != SWID_NS {
        return Err(bad(MeasurementError::NotResource));
    }
    if r.attr("type") != Some("Measurement") {
        return Err(bad(MeasurementError::NotMeasurement(
            r.attr("type").map(str::to_owned),
        )));
    }
    let number = |name: &'static str| -> Result<u64, SchemaError> {
        required(r, name)?
            .parse::<u64>()
            .map_err(|_| bad(MeasurementError::NotNumber(name)))
    };
    let index =
        u32::try_from(number("index")?).map_err(|_| bad(MeasurementError::NotNumber("index")))?;
    // NVIDIA's two verifiers disagree on anything but these two spellings (the Python one
    // treats any other value as active, the C++ one as inactive), so accept only them.
    let active = match required(r, "active")? {
        "True" => true,
        "False" => false,
        other => return Err(bad(MeasurementError::Active(other.to_owned()))),
    };
    let count = number("alternatives")?;
    let size =
        usize::try_from(number("size")?).map_err(|_| bad(MeasurementError::NotNumber("size")))?;
    if count == 0 || count > 64 {
        return Err(bad(MeasurementError::Alternatives(count)));
    }
    let mut alternatives = Vec::new();
    for i in 0..count {
        let hash = format!("Hash{i}");
        let hex_value = attr_ns(&scope, r, HASH_NS, &hash)
            .ok_or_else(|| bad(MeasurementError::NoHash(hash.clone())))?;
        let value = hex::decode(hex_value).map_err(|source| {
            bad(MeasurementError::Hex {
                hash: hash.clone(),
                source,
            })
        })?;
        if value.len() != size {
            return Err(bad(MeasurementError::HashSize {
                hash,
                found: value.len(),
                size,
            }));
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
fn signature_position(root: &Element, scope: &Scope) -> Result<usize, SignatureFormatError> {
    fn count(e: &Element, scope: &Scope) -> usize {
        e.elements()
            .map(|c| {
                let s = scope_of(scope, c);
                usize::from(c.local() == "Signature" && element_ns(&s, c) == DSIG_NS) + count(c, &s)
            })
            .sum()
    }
    if count(root, scope) != 1 {
        return Err(SignatureFormatError::SignatureCount);
    }
    root.elements()
        .position(|c| c.local() == "Signature" && element_ns(&scope_of(scope, c), c) == DSIG_NS)
        .ok_or(SignatureFormatError::NotChildOfRoot)
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
    fn read(sig: &'a Element, scope: &Scope) -> Result<Self, SignatureFormatError> {
        use SignatureFormatError as E;
        let ds = |e: &'a Element, names: &'static [&'static str]| {
            let s = scope_of(scope, e);
            let kids: Vec<&Element> = e.elements().collect();
            let locals: Vec<&str> = kids.iter().map(|k| k.local()).collect();
            if locals != names
                || kids
                    .iter()
                    .any(|k| element_ns(&scope_of(&s, k), k) != DSIG_NS)
            {
                return Err(E::Children {
                    element: e.qname.clone(),
                    found: locals.iter().map(|l| (*l).to_owned()).collect(),
                    expected: names,
                });
            }
            Ok(kids)
        };
        let algorithm = |e: &Element, allowed: &[&str]| match e.attr("Algorithm") {
            Some(a) if allowed.contains(&a) && e.elements().next().is_none() => Ok(()),
            a => Err(E::Algorithm {
                element: e.local().to_owned(),
                found: a.map(str::to_owned),
            }),
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
            return Err(E::NotWholeDocument);
        }
        let r = ds(reference, &["Transforms", "DigestMethod", "DigestValue"])?;
        let transforms: Vec<&Element> = r[0].elements().collect();
        match transforms.as_slice() {
            [env] => algorithm(env, &[ENVELOPED])?,
            [env, c] => {
                algorithm(env, &[ENVELOPED])?;
                algorithm(c, &[C14N_11, C14N_10])?;
            }
            _ => return Err(E::Transforms),
        }
        algorithm(r[1], &DIGEST_SHA384)?;
        let base64_of =
            |field, e: &Element| base64(&e.text()).map_err(|source| E::Base64 { field, source });
        let digest = base64_of("DigestValue", r[2])?;
        let signature_value = base64_of("SignatureValue", value)?;
        if digest.len() != 48 || signature_value.len() != 96 {
            return Err(E::Lengths);
        }
        let data = ds(key_info, &["X509Data"])?;
        let certs = data[0]
            .elements()
            .map(|c| {
                if c.local() != "X509Certificate" {
                    return Err(E::X509Data(c.qname.clone()));
                }
                base64_of("X509Certificate", c)
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
