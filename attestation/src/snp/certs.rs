//! AMD's SEV-SNP certificates: the pinned roots, loading a VCEK/VLEK chain, and the VEK's
//! AMD-specific extensions.
//!
//! AMD's chain has three levels, all signed with RSASSA-PSS (SHA-384, MGF1-SHA-384, 48-byte
//! salt): the ARK (AMD Root Key, self-signed, one per product line) signs the ASK (AMD SEV
//! Key), which signs each chip's VCEK; for VLEKs the ARK signs the ASVK instead, which signs
//! the VLEKs it hands to cloud providers. The VCEK/VLEK ("VEK") is an ECDSA P-384 key that
//! signs attestation reports. Verification is in [`verify_signature_chain`].

use const_oid::db::rfc4519::CN;
use der::asn1::{Ia5StringRef, ObjectIdentifier, PrintableStringRef, Utf8StringRef};
use der::{Decode, DecodePem, Encode, Tag, Tagged};
use thiserror::Error;
use x509_cert::name::Name;
use x509_cert::Certificate;

use super::report::{ProductLine, TcbParts};

pub use super::chain::verify_signature_chain;

/// AMD's public ARK and ASK certificates, pinned into the binary so that a host cannot
/// substitute its own root. They are AMD KDS's `cert_chain` documents,
/// `https://kdsintf.amd.com/vcek/v1/{Milan,Genoa,Turin}/cert_chain` (ASK then ARK), as
/// shipped in `virtee/sev` 8.0.0 (`src/certs/snp/builtin/`), split into one file each.
mod pinned {
    pub(super) const MILAN_ARK: &[u8] = include_bytes!("roots/milan/ark.pem");
    pub(super) const MILAN_ASK: &[u8] = include_bytes!("roots/milan/ask.pem");
    pub(super) const GENOA_ARK: &[u8] = include_bytes!("roots/genoa/ark.pem");
    pub(super) const GENOA_ASK: &[u8] = include_bytes!("roots/genoa/ask.pem");
    pub(super) const TURIN_ARK: &[u8] = include_bytes!("roots/turin/ark.pem");
    pub(super) const TURIN_ASK: &[u8] = include_bytes!("roots/turin/ask.pem");
}

/// The DER of AMD's root key certificate (ARK) for `line`.
pub fn pinned_ark(line: ProductLine) -> Result<Vec<u8>, CertError> {
    let pem = match line {
        ProductLine::Milan => pinned::MILAN_ARK,
        ProductLine::Genoa => pinned::GENOA_ARK,
        ProductLine::Turin => pinned::TURIN_ARK,
    };
    cert_der(pem, "built-in ARK")
}

/// The DER of AMD's SEV signing key certificate (ASK) for `line`; it signs VCEKs only.
pub fn pinned_ask(line: ProductLine) -> Result<Vec<u8>, CertError> {
    let pem = match line {
        ProductLine::Milan => pinned::MILAN_ASK,
        ProductLine::Genoa => pinned::GENOA_ASK,
        ProductLine::Turin => pinned::TURIN_ASK,
    };
    cert_der(pem, "built-in ASK")
}

/// Why certificate bytes could not be used.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CertError {
    /// The bytes are not one DER or PEM X.509 certificate.
    #[error("{what}: not a DER or PEM X.509 certificate: {source}")]
    Parse {
        /// Which certificate.
        what: &'static str,
        /// The decoder's error.
        #[source]
        source: der::Error,
    },
    /// A PEM bundle holds the wrong number of certificates.
    #[error("{what}: expected {expected} certificates in the PEM bundle, found {found}")]
    BundleSize {
        /// Which bundle.
        what: &'static str,
        /// How many it must hold.
        expected: usize,
        /// How many it holds.
        found: usize,
    },
    /// A PEM bundle given as one VCEK/VLEK holds several certificates, none of them one.
    #[error(
        "{what}: the PEM holds {found} certificates and none is a VCEK or VLEK (subject CN \
         SEV-VCEK or SEV-VLEK); pass the VCEK alone, or the folder with --certs"
    )]
    NoVekInBundle {
        /// Which input.
        what: &'static str,
        /// How many certificates it holds.
        found: usize,
    },
    /// An extension appears more than once (RFC 5280 forbids it).
    #[error("VEK certificate has extension {oid} more than once")]
    DuplicateExtension {
        /// The extension's OID.
        oid: ObjectIdentifier,
    },
    /// An AMD extension's value is not of its documented type.
    #[error("VEK certificate extension {name} ({oid}) is malformed: not {expected}: {source}")]
    BadExtension {
        /// The extension's name in AMD's VCEK specification.
        name: &'static str,
        /// The extension's OID.
        oid: ObjectIdentifier,
        /// What its value must be.
        expected: ExtensionValue,
        /// The decoder's error.
        source: der::Error,
    },
    /// A required AMD extension is missing.
    #[error("VEK certificate lacks extension {name} ({oid}), which {line} requires")]
    MissingExtension {
        /// The extension's name.
        name: &'static str,
        /// The extension's OID.
        oid: ObjectIdentifier,
        /// The product line whose layout requires it.
        line: ProductLine,
    },
    /// An AMD extension is present that the product line's TCB layout has no field for.
    #[error(
        "VEK certificate has extension {name} ({oid}), which {line}'s TCB layout does not have"
    )]
    UnexpectedExtension {
        /// The extension's name.
        name: &'static str,
        /// The extension's OID.
        oid: ObjectIdentifier,
        /// The product line.
        line: ProductLine,
    },
}

/// What an AMD extension's value is, by AMD's specification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtensionValue {
    /// An SPL: a DER INTEGER in 0..=255.
    Spl,
    /// productName: a DER IA5String.
    Ia5String,
}

impl std::fmt::Display for ExtensionValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ExtensionValue::Spl => "a DER INTEGER in 0..=255",
            ExtensionValue::Ia5String => "a DER IA5String",
        })
    }
}

/// Parses one certificate given as DER or PEM and returns its DER.
pub fn cert_der(bytes: &[u8], what: &'static str) -> Result<Vec<u8>, CertError> {
    let parse = |source| CertError::Parse { what, source };
    if looks_like_pem(bytes) {
        Certificate::from_pem(bytes)
            .and_then(|cert| cert.to_der())
            .map_err(parse)
    } else {
        Certificate::from_der(bytes).map_err(parse)?;
        Ok(bytes.to_vec())
    }
}

/// The VCEK or VLEK in `bytes`: one certificate (DER or PEM), or the first certificate
/// of a PEM bundle whose subject CN is `SEV-VCEK` or `SEV-VLEK` (users pass the file
/// `snpguest` or KDS gave them, which may hold the ASK and ARK too). Returns its DER and
/// how many certificates the input held.
pub fn vek_der(bytes: &[u8], what: &'static str) -> Result<(Vec<u8>, usize), CertError> {
    if !looks_like_pem(bytes) {
        return cert_der(bytes, what).map(|der| (der, 1));
    }
    let certs =
        Certificate::load_pem_chain(bytes).map_err(|source| CertError::Parse { what, source })?;
    if certs.len() == 1 {
        return cert_der(bytes, what).map(|der| (der, 1));
    }
    let vek = certs.iter().find(|c| {
        common_name(&c.tbs_certificate.subject)
            .is_some_and(|cn| cn == "SEV-VCEK" || cn == "SEV-VLEK")
    });
    match vek {
        Some(cert) => cert
            .to_der()
            .map(|der| (der, certs.len()))
            .map_err(|source| CertError::Parse { what, source }),
        None => Err(CertError::NoVekInBundle {
            what,
            found: certs.len(),
        }),
    }
}

/// Parses a PEM bundle of certificates, in order, and returns their DER.
pub fn pem_bundle(pem: &[u8], what: &'static str) -> Result<Vec<Vec<u8>>, CertError> {
    let parse = |source| CertError::Parse { what, source };
    Certificate::load_pem_chain(pem)
        .map_err(parse)?
        .iter()
        .map(|cert| cert.to_der().map_err(parse))
        .collect()
}

fn looks_like_pem(bytes: &[u8]) -> bool {
    bytes.trim_ascii_start().starts_with(b"-----BEGIN")
}

/// The certificates that come with a report: the VEK, and optionally its ASK (or ASVK for a
/// VLEK) and ARK. A missing ASK or ARK is taken from the pinned built-ins for the VEK's
/// product line; a supplied ARK must equal the pinned one.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SnpCertificates {
    /// The VCEK or VLEK, DER.
    pub vek: Vec<u8>,
    /// The ASK (for a VCEK) or ASVK (for a VLEK), DER.
    pub ask: Option<Vec<u8>>,
    /// The ARK, DER.
    pub ark: Option<Vec<u8>>,
}

impl SnpCertificates {
    /// Just a VEK (DER or PEM); the ASK and ARK will be the built-ins.
    pub fn from_vek(vek: &[u8]) -> Result<Self, CertError> {
        Ok(Self {
            vek: cert_der(vek, "VEK")?,
            ask: None,
            ark: None,
        })
    }

    /// A VEK (DER or PEM) and a PEM bundle holding the ASK (or ASVK) then the ARK, as AMD
    /// KDS serves `cert_chain`.
    pub fn from_vek_and_chain(vek: &[u8], chain_pem: &[u8]) -> Result<Self, CertError> {
        let what = "ASK/ARK chain";
        let chain = pem_bundle(chain_pem, what)?;
        let [ask, ark]: [Vec<u8>; 2] =
            chain
                .try_into()
                .map_err(|chain: Vec<Vec<u8>>| CertError::BundleSize {
                    what,
                    expected: 2,
                    found: chain.len(),
                })?;
        Ok(Self {
            vek: cert_der(vek, "VEK")?,
            ask: Some(ask),
            ark: Some(ark),
        })
    }
}

/// Which kind of endorsement key a VEK certificate holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VekKind {
    /// A chip's VCEK: subject CN `SEV-VCEK`, issued by the ASK `SEV-<line>`.
    Vcek,
    /// A VLEK: subject CN `SEV-VLEK`, issued by the ASVK `SEV-VLEK-<line>`.
    Vlek,
}

impl std::fmt::Display for VekKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VekKind::Vcek => "VCEK",
            VekKind::Vlek => "VLEK",
        })
    }
}

/// The first common name in `name`, if it is a string.
pub(super) fn common_name(name: &Name) -> Option<String> {
    let atv = name
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .find(|atv| atv.oid == CN)?;
    let value = &atv.value;
    let s = match value.tag() {
        Tag::Utf8String => value.decode_as::<Utf8StringRef<'_>>().ok()?.to_string(),
        Tag::PrintableString => value
            .decode_as::<PrintableStringRef<'_>>()
            .ok()?
            .to_string(),
        Tag::Ia5String => value.decode_as::<Ia5StringRef<'_>>().ok()?.to_string(),
        _ => return None,
    };
    Some(s)
}

/// The VEK's kind, from its subject CN.
pub(super) fn vek_kind(vek: &Certificate) -> Option<VekKind> {
    match common_name(&vek.tbs_certificate.subject)?.as_str() {
        "SEV-VCEK" => Some(VekKind::Vcek),
        "SEV-VLEK" => Some(VekKind::Vlek),
        _ => None,
    }
}

/// The product line and key kind the VEK's issuer CN names: `SEV-<line>` is an ASK (signs
/// VCEKs), `SEV-VLEK-<line>` an ASVK (signs VLEKs).
pub(super) fn issuer_line(vek: &Certificate) -> Option<(ProductLine, VekKind)> {
    let cn = common_name(&vek.tbs_certificate.issuer)?;
    let rest = cn.strip_prefix("SEV-")?;
    match rest.strip_prefix("VLEK-") {
        Some(line) => Some((ProductLine::from_name(line)?, VekKind::Vlek)),
        None => Some((ProductLine::from_name(rest)?, VekKind::Vcek)),
    }
}

/// AMD's VCEK and VLEK extensions, which no OID database lists: AMD "Versioned Chip
/// Endorsement Key (VCEK) Certificate and KDS Interface Specification" (publication 57230),
/// table of certificate extensions, under AMD's enterprise arc 1.3.6.1.4.1.3704.
pub mod oid {
    use der::asn1::ObjectIdentifier;

    /// productName: the product line and stepping (`Milan-B0`).
    pub const PRODUCT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.2");
    /// blSPL: the boot loader SPL.
    pub const BL_SPL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.1");
    /// teeSPL: the PSP OS SPL.
    pub const TEE_SPL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.2");
    /// snpSPL: the SNP firmware SPL.
    pub const SNP_SPL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.3");
    /// ucodeSPL: the microcode SPL.
    pub const UCODE_SPL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.8");
    /// fmcSPL: the FMC SPL (Turin and later).
    pub const FMC_SPL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.9");
    /// hwID: the chip ID (VCEKs only).
    pub const HW_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.4");
}

/// The AMD-specific extensions of a VCEK or VLEK certificate.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct VekExtensions {
    /// productName (1.3.6.1.4.1.3704.1.2), e.g. `Milan-B0` or `Turin`.
    pub product_name: Option<String>,
    /// blSPL (…3704.1.3.1): bootloader SPL the key was derived for.
    pub bootloader: Option<u8>,
    /// teeSPL (…3704.1.3.2).
    pub tee: Option<u8>,
    /// snpSPL (…3704.1.3.3).
    pub snp: Option<u8>,
    /// ucodeSPL (…3704.1.3.8).
    pub microcode: Option<u8>,
    /// fmcSPL (…3704.1.3.9), Turin and later.
    pub fmc: Option<u8>,
    /// hwID (…3704.1.4): the chip ID, 64 bytes before Turin and 8 bytes from Turin on. VLEKs
    /// have none.
    pub hw_id: Option<Vec<u8>>,
}

impl VekExtensions {
    /// Reads the extensions of a VEK certificate given as DER.
    pub fn from_der(vek: &[u8]) -> Result<Self, CertError> {
        let cert = Certificate::from_der(vek).map_err(|source| CertError::Parse {
            what: "VEK",
            source,
        })?;
        Self::from_cert(&cert)
    }

    pub(super) fn from_cert(cert: &Certificate) -> Result<Self, CertError> {
        let exts = cert
            .tbs_certificate
            .extensions
            .as_deref()
            .unwrap_or_default();
        let mut seen = std::collections::BTreeSet::new();
        for ext in exts {
            if !seen.insert(ext.extn_id) {
                return Err(CertError::DuplicateExtension { oid: ext.extn_id });
            }
        }
        let value = |oid: ObjectIdentifier| {
            exts.iter()
                .find(|e| e.extn_id == oid)
                .map(|e| e.extn_value.as_bytes())
        };
        let spl = |name: &'static str, oid: ObjectIdentifier| -> Result<Option<u8>, CertError> {
            value(oid)
                .map(|bytes| {
                    // The value is a DER INTEGER; u8's decoder rejects negatives and values
                    // above 255, which an SPL cannot be.
                    u8::from_der(bytes).map_err(|source| CertError::BadExtension {
                        name,
                        oid,
                        expected: ExtensionValue::Spl,
                        source,
                    })
                })
                .transpose()
        };
        let product_name = value(oid::PRODUCT_NAME)
            .map(|bytes| {
                Ia5StringRef::from_der(bytes)
                    .map(|s| s.to_string())
                    .map_err(|source| CertError::BadExtension {
                        name: "productName",
                        oid: oid::PRODUCT_NAME,
                        expected: ExtensionValue::Ia5String,
                        source,
                    })
            })
            .transpose()?;
        Ok(Self {
            product_name,
            bootloader: spl("blSPL", oid::BL_SPL)?,
            tee: spl("teeSPL", oid::TEE_SPL)?,
            snp: spl("snpSPL", oid::SNP_SPL)?,
            microcode: spl("ucodeSPL", oid::UCODE_SPL)?,
            fmc: spl("fmcSPL", oid::FMC_SPL)?,
            // The extension's value is the raw chip ID, not a nested DER value.
            hw_id: value(oid::HW_ID).map(<[u8]>::to_vec),
        })
    }

    /// The TCB the key was derived for, in `line`'s layout: the bootloader, TEE, SNP and
    /// microcode SPLs must all be present, and fmcSPL must be present exactly on Turin.
    pub fn tcb_parts(&self, line: ProductLine) -> Result<TcbParts, CertError> {
        let need =
            |v: Option<u8>, name, oid| v.ok_or(CertError::MissingExtension { name, oid, line });
        let fmc = match (line.has_turin_tcb_layout(), self.fmc) {
            (true, Some(fmc)) => Some(fmc),
            (true, None) => {
                return Err(CertError::MissingExtension {
                    name: "fmcSPL",
                    oid: oid::FMC_SPL,
                    line,
                })
            }
            (false, Some(_)) => {
                return Err(CertError::UnexpectedExtension {
                    name: "fmcSPL",
                    oid: oid::FMC_SPL,
                    line,
                })
            }
            (false, None) => None,
        };
        Ok(TcbParts {
            fmc,
            bootloader: need(self.bootloader, "blSPL", oid::BL_SPL)?,
            tee: need(self.tee, "teeSPL", oid::TEE_SPL)?,
            snp: need(self.snp, "snpSPL", oid::SNP_SPL)?,
            microcode: need(self.microcode, "ucodeSPL", oid::UCODE_SPL)?,
        })
    }
}
