//! silk's simulated SEV-SNP platform, for development and CI where there is no TEE.
//!
//! A development chain mirrors AMD's — a root ("ARK"), a signing key ("ASK") and a chip
//! key ("VCEK") with the same TCB and hwID extensions — but every key is a P-384 key that
//! silk generates, and every name says SIMULATED. Reports use the real SEV-SNP layout, so
//! everything after the signature check (policy, REPORT_DATA binding, the claims) runs the
//! same code as on hardware.
//!
//! Such evidence proves nothing about the machine: whoever holds the development root can
//! sign any report. A verifier accepts it only when its policy says `allow_simulated = true`
//! *and* pins that root's digest in `simulated_roots`, and every verdict then carries a
//! warning that it is SIMULATED.

use der::{Decode, Encode};
use p384::ecdsa::signature::Signer;
use p384::ecdsa::{Signature, SigningKey};
use p384::pkcs8::DecodePrivateKey;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, IsCa, Issuer, KeyPair,
    PKCS_ECDSA_P384_SHA384,
};
use sha2::{Digest, Sha256};
use x509_cert::Certificate;
use zeroize::Zeroizing;

use super::certs::oid;
use super::report::{
    AttestationReport, ProductLine, TcbParts, TcbVersion, REPORT_SIZE, SIGNED_LEN,
};
use crate::checks::sim;
use crate::signature::{self, PublicKey, SignatureBytes, SignatureError, ECDSA_P384};
use crate::verdict::{Check, Verdict};

/// Common name of the simulated root; its presence marks a chain as simulated.
pub const ROOT_CN: &str = "silk development ARK (SIMULATED, not AMD)";
const ASK_CN: &str = "silk development ASK (SIMULATED, not AMD)";
const VCEK_CN: &str = "SEV-VCEK (SIMULATED by silk, not AMD)";
/// PEM label of the development chip key: it says what it is wherever it is copied.
const DEV_KEY_LABEL: &str = "SILK DEVELOPMENT CHIP KEY (SIMULATED, NOT SECRET)";
const DEV_TCB: TcbParts = TcbParts {
    fmc: None,
    bootloader: 4,
    tee: 0,
    snp: 22,
    microcode: 213,
};

/// Why the development chain could not be made or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimulatedError {
    /// Certificate generation failed.
    #[error("cannot build the development chain: {0}")]
    Build(#[from] rcgen::Error),
    /// The chip key does not encode or decode as PKCS#8.
    #[error("development key: {0}")]
    Key(#[from] p384::pkcs8::Error),
    /// A PEM block does not encode or decode (`pem-rfc7468`'s error is not a
    /// `std::error::Error`, so it is shown, not chained).
    #[error("development chain PEM: {0}")]
    Pem(der::pem::Error),
    /// The PEM text is not what [`SimulatedPlatform::to_pem`] writes.
    #[error("development chain PEM: {0}")]
    Layout(#[from] PemLayout),
}

/// How a development chain's PEM text differs from what [`SimulatedPlatform::to_pem`]
/// writes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PemLayout {
    /// A BEGIN line without an END line.
    #[error("unterminated block")]
    UnterminatedBlock,
    /// An END line that does not end.
    #[error("unterminated END line")]
    UnterminatedEnd,
    /// Not three certificates and a key.
    #[error("expected 3 certificates and a key, found {0} blocks")]
    BlockCount(usize),
    /// A block with another label than its place needs.
    #[error("block `{found}` where `{want}` belongs")]
    Label {
        /// The block's label.
        found: String,
        /// The label its place needs.
        want: &'static str,
    },
    /// The root is not one of silk's development roots.
    #[error("the root is not a silk development root")]
    NotDevelopmentRoot,
}

/// The public half of a development chain, as an evidence bundle carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimulatedChain {
    /// The development root, DER.
    pub ark: Vec<u8>,
    /// The development signing key's certificate, DER.
    pub ask: Vec<u8>,
    /// The simulated chip key's certificate, DER.
    pub vcek: Vec<u8>,
}

impl SimulatedChain {
    /// SHA-256 of the root certificate: what a policy pins in `simulated_roots`.
    pub fn root_digest(&self) -> [u8; 32] {
        Sha256::digest(&self.ark).into()
    }
}

/// A development platform: the chain and the chip key that signs reports.
pub struct SimulatedPlatform {
    chain: SimulatedChain,
    vcek_key: SigningKey,
    chip_id: [u8; 64],
    tcb: TcbParts,
}

/// `oid`'s arcs, as rcgen takes them.
fn arcs(oid: der::asn1::ObjectIdentifier) -> Vec<u64> {
    oid.arcs().map(u64::from).collect()
}

fn spl_ext(oid: der::asn1::ObjectIdentifier, value: u8) -> CustomExtension {
    // AMD encodes each SPL as a DER INTEGER.
    let der = der::asn1::Uint::new(&[value])
        .and_then(|u| u.to_der())
        .unwrap_or_default();
    CustomExtension::from_oid_content(&arcs(oid), der)
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.distinguished_name
        .push(DnType::OrganizationName, "silk development (SIMULATED)");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p
}

impl SimulatedPlatform {
    /// Generates a fresh development chain for a simulated Milan-layout chip.
    pub fn generate() -> Result<Self, SimulatedError> {
        let ark_key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384)?;
        let ask_key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384)?;
        let vcek_pair = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384)?;
        let ark_params = ca_params(ROOT_CN);
        let ark = ark_params.self_signed(&ark_key)?;
        let ask_params = ca_params(ASK_CN);
        let ask = ask_params.signed_by(&ask_key, &Issuer::from_params(&ark_params, &ark_key))?;

        let mut chip_id = [0u8; 64];
        let root: [u8; 32] = Sha256::digest(ark.der()).into();
        chip_id[..32].copy_from_slice(&root);
        chip_id[32..].copy_from_slice(&root);
        let tcb = DEV_TCB;
        let mut vcek_params = CertificateParams::default();
        vcek_params
            .distinguished_name
            .push(DnType::CommonName, VCEK_CN);
        vcek_params.custom_extensions = vec![
            spl_ext(oid::BL_SPL, tcb.bootloader),
            spl_ext(oid::TEE_SPL, tcb.tee),
            spl_ext(oid::SNP_SPL, tcb.snp),
            spl_ext(oid::UCODE_SPL, tcb.microcode),
            CustomExtension::from_oid_content(&arcs(oid::HW_ID), chip_id.to_vec()),
        ];
        let vcek =
            vcek_params.signed_by(&vcek_pair, &Issuer::from_params(&ask_params, &ask_key))?;
        let pkcs8 = Zeroizing::new(vcek_pair.serialize_der());
        let vcek_key = SigningKey::from_pkcs8_der(&pkcs8)?;
        Ok(Self {
            chain: SimulatedChain {
                ark: ark.der().to_vec(),
                ask: ask.der().to_vec(),
                vcek: vcek.der().to_vec(),
            },
            vcek_key,
            chip_id,
            tcb,
        })
    }

    /// The chain and the chip key as PEM, for handing a development platform from the
    /// process that pins its root (`silk demo`, `silk-host`) to the enclave that signs with
    /// it. The key block is labelled as a development key; the text is wiped when dropped.
    pub fn to_pem(&self) -> Result<Zeroizing<String>, SimulatedError> {
        use p384::pkcs8::EncodePrivateKey;
        let enc = |label: &str, der: &[u8]| {
            der::pem::encode_string(label, der::pem::LineEnding::LF, der)
                .map_err(SimulatedError::Pem)
        };
        let key = self.vcek_key.to_pkcs8_der()?;
        let mut out = Zeroizing::new(String::new());
        out.push_str(&enc("CERTIFICATE", &self.chain.ark)?);
        out.push_str(&enc("CERTIFICATE", &self.chain.ask)?);
        out.push_str(&enc("CERTIFICATE", &self.chain.vcek)?);
        out.push_str(&Zeroizing::new(enc(DEV_KEY_LABEL, key.as_bytes())?));
        Ok(out)
    }

    /// Reads what [`SimulatedPlatform::to_pem`] wrote: the root, signing-key and chip
    /// certificates in that order, then the development chip key.
    pub fn from_pem(text: &str) -> Result<Self, SimulatedError> {
        let mut blocks = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("-----BEGIN ") {
            let tail = &rest[start..];
            let end_tag = tail.find("-----END ").ok_or(PemLayout::UnterminatedBlock)?;
            let close = tail[end_tag + 9..]
                .find("-----")
                .ok_or(PemLayout::UnterminatedEnd)?;
            let block_len = end_tag + 9 + close + 5;
            let (label, der) =
                der::pem::decode_vec(&tail.as_bytes()[..block_len]).map_err(SimulatedError::Pem)?;
            blocks.push((label.to_owned(), Zeroizing::new(der)));
            rest = &tail[block_len..];
        }
        let [ark, ask, vcek, key] = blocks.as_slice() else {
            return Err(PemLayout::BlockCount(blocks.len()).into());
        };
        for (label, want) in [
            (&ark.0, "CERTIFICATE"),
            (&ask.0, "CERTIFICATE"),
            (&vcek.0, "CERTIFICATE"),
            (&key.0, DEV_KEY_LABEL),
        ] {
            if label != want {
                return Err(PemLayout::Label {
                    found: label.clone(),
                    want,
                }
                .into());
            }
        }
        if !is_simulated(Some(&ark.1)) {
            return Err(PemLayout::NotDevelopmentRoot.into());
        }
        let vcek_key = SigningKey::from_pkcs8_der(&key.1)?;
        let chain = SimulatedChain {
            ark: ark.1.to_vec(),
            ask: ask.1.to_vec(),
            vcek: vcek.1.to_vec(),
        };
        // The chip id and TCB are derived exactly as `generate` derives them.
        let root = chain.root_digest();
        let mut chip_id = [0u8; 64];
        chip_id[..32].copy_from_slice(&root);
        chip_id[32..].copy_from_slice(&root);
        Ok(Self {
            chain,
            vcek_key,
            chip_id,
            tcb: DEV_TCB,
        })
    }

    /// The public chain, for evidence bundles and policies.
    pub fn chain(&self) -> &SimulatedChain {
        &self.chain
    }

    /// A version-3 report in the SEV-SNP layout with this measurement and REPORT_DATA,
    /// signed by the simulated VCEK. Guest policy: SMT allowed, no debug, no migration
    /// agent; VMPL 0.
    pub fn report(&self, measurement: &[u8; 48], report_data: &[u8; 64]) -> Vec<u8> {
        let mut r = vec![0u8; REPORT_SIZE];
        let put = |r: &mut Vec<u8>, at: usize, b: &[u8]| r[at..at + b.len()].copy_from_slice(b);
        put(&mut r, 0x00, &3u32.to_le_bytes());
        put(&mut r, 0x08, &0x3_0000u64.to_le_bytes()); // SMT allowed + reserved bit 17
        put(&mut r, 0x34, &1u32.to_le_bytes()); // ECDSA P-384 with SHA-384
        let tcb = TcbVersion::from_parts(self.tcb, ProductLine::Milan)
            .0
            .to_le_bytes();
        for at in [0x38, 0x180, 0x1E0, 0x1F0] {
            put(&mut r, at, &tcb); // current, reported, committed, launch
        }
        put(&mut r, 0x50, report_data);
        put(&mut r, 0x90, measurement);
        put(&mut r, 0x188, &[0x19, 0x01, 0x01]); // CPUID: family 19h model 01h (Milan)
        put(&mut r, 0x1A0, &self.chip_id);
        put(&mut r, 0x1E8, &[7, 55, 1]); // current firmware 1.55 build 7
        put(&mut r, 0x1EC, &[7, 55, 1]);
        let sig: Signature = self.vcek_key.sign(&r[..SIGNED_LEN]);
        // The wire holds r and s little-endian in 72-byte fields.
        let (rb, sb) = (sig.r().to_bytes(), sig.s().to_bytes());
        for (i, b) in rb.iter().rev().enumerate() {
            r[0x2A0 + i] = *b;
        }
        for (i, b) in sb.iter().rev().enumerate() {
            r[0x2A0 + 72 + i] = *b;
        }
        r
    }
}

/// Whether `ark_der` is a simulated development root (its subject says SIMULATED).
pub fn is_simulated(ark_der: Option<&[u8]>) -> bool {
    ark_der
        .and_then(|d| Certificate::from_der(d).ok())
        .is_some_and(|c| c.tbs_certificate.subject.to_string().contains("SIMULATED"))
}

/// Verifies a simulated chain and the report's signature with it, pushing the checks that
/// stand in for AMD's: `sim.allowed`, `sim.root_pinned`, `sim.chain`,
/// `sim.report_signature`. Returns the product line whose TCB layout the simulated chip
/// uses (Milan).
pub fn verify_simulated(
    raw: &[u8],
    chain: &SimulatedChain,
    allow: bool,
    pinned_roots: &[[u8; 32]],
    verdict: &mut Verdict,
) -> Option<ProductLine> {
    verdict.simulated = true;
    verdict.warn("SIMULATED evidence: signed by a silk development key, not by AMD; it proves nothing about the machine");
    verdict.push(Check::from_bool(
        &sim::ALLOWED,
        allow,
        "allow_simulated = true",
        "SIMULATED evidence",
        || "the policy does not allow simulated evidence".into(),
    ));
    let digest = chain.root_digest();
    verdict.push(Check::from_bool(
        &sim::ROOT_PINNED,
        pinned_roots.contains(&digest),
        if pinned_roots.is_empty() {
            "a pinned development root (simulated_roots)".to_owned()
        } else {
            format!("one of {} pinned development roots", pinned_roots.len())
        },
        hex::encode(digest),
        || "this development root is not pinned in the policy's simulated_roots".into(),
    ));
    let parsed: Result<Vec<Certificate>, ChainError> = [&chain.ark, &chain.ask, &chain.vcek]
        .iter()
        .map(|d| Certificate::from_der(d).map_err(ChainError::NotCertificate))
        .collect();
    let chain_ok = parsed.as_ref().map_err(Clone::clone).and_then(|c| {
        let signed = |what, subject, issuer| {
            signature::verify_certificate(subject, issuer, ECDSA_P384)
                .map(|_| ())
                .map_err(|source| ChainError::Signature { what, source })
        };
        signed("root", &c[0], &c[0])?;
        signed("ASK", &c[1], &c[0])?;
        signed("VCEK", &c[2], &c[1])
    });
    let expected = "root → ASK → VCEK signatures";
    verdict.push(match &chain_ok {
        Ok(()) => Check::pass(&sim::CHAIN, expected, "valid"),
        Err(e) => Check::fail(&sim::CHAIN, expected, "invalid", e.to_string()),
    });
    let sig_ok = parsed
        .ok()
        .is_some_and(|c| report_signed_by(raw, &c[2]).is_ok());
    verdict.push(Check::from_bool(
        &sim::REPORT_SIGNATURE,
        sig_ok,
        "ECDSA P-384 over the report by the simulated VCEK",
        if sig_ok { "valid" } else { "invalid" },
        || "the report's signature does not verify with the simulated VCEK".into(),
    ));
    Some(ProductLine::Milan)
}

/// Why the simulated chain does not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// A certificate does not parse.
    #[error("certificate: {0}")]
    NotCertificate(der::Error),
    /// A certificate is not signed by the one above it.
    #[error("{what}: {source}")]
    Signature {
        /// `root`, `ASK` or `VCEK`.
        what: &'static str,
        /// Why the signature was not accepted.
        source: SignatureError,
    },
}

/// The report's signature, as SEV-SNP lays it out, with the simulated VCEK's key.
fn report_signed_by(raw: &[u8], vcek: &Certificate) -> Result<(), SignatureError> {
    let report =
        AttestationReport::from_bytes(raw).map_err(|_| SignatureError::MalformedSignature)?;
    let fixed = report
        .signature
        .to_fixed()
        .map_err(|_| SignatureError::MalformedSignature)?;
    let signed = raw
        .get(..SIGNED_LEN)
        .ok_or(SignatureError::MalformedSignature)?;
    PublicKey::EcdsaP384(PublicKey::p384_of(vcek)?).verify(
        signature::Algorithm::EcdsaP384Sha384,
        signed,
        SignatureBytes::Fixed(&fixed),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snp::report::AttestationReport;

    #[test]
    fn simulated_report_parses_and_verifies_only_when_pinned_and_allowed() {
        let p = SimulatedPlatform::generate().unwrap();
        let raw = p.report(&[7; 48], &[9; 64]);
        let report = AttestationReport::from_bytes(&raw).unwrap();
        assert_eq!(report.measurement, [7; 48]);
        assert_eq!(report.report_data, [9; 64]);
        assert!(is_simulated(Some(&p.chain().ark)));

        let pin = [p.chain().root_digest()];
        let mut v = Verdict::new(crate::Platform::SevSnp);
        verify_simulated(&raw, p.chain(), true, &pin, &mut v);
        assert!(v.accepted(), "{:?}", v.failures().collect::<Vec<_>>());
        assert!(v.warnings.iter().any(|w| w.contains("SIMULATED")));

        let mut v = Verdict::new(crate::Platform::SevSnp);
        verify_simulated(&raw, p.chain(), false, &pin, &mut v);
        assert!(!v.check(&sim::ALLOWED).unwrap().passed());

        let mut v = Verdict::new(crate::Platform::SevSnp);
        verify_simulated(&raw, p.chain(), true, &[[0; 32]], &mut v);
        assert!(!v.check(&sim::ROOT_PINNED).unwrap().passed());
    }

    #[test]
    fn pem_round_trip_keeps_the_chain_and_the_signing_key() {
        let p = SimulatedPlatform::generate().unwrap();
        let pem = p.to_pem().unwrap();
        assert!(pem.contains("SILK DEVELOPMENT CHIP KEY"));
        let q = SimulatedPlatform::from_pem(&pem).unwrap();
        assert_eq!(q.chain(), p.chain());
        let raw = q.report(&[7; 48], &[9; 64]);
        let mut v = Verdict::new(crate::Platform::SevSnp);
        verify_simulated(&raw, p.chain(), true, &[p.chain().root_digest()], &mut v);
        assert!(v.accepted(), "{:?}", v.failures().collect::<Vec<_>>());
        // Blocks out of order, or missing, are refused with a message.
        let text: &str = &pem;
        let cut = text.rfind("-----BEGIN").unwrap();
        assert!(SimulatedPlatform::from_pem(&text[..cut]).is_err());
        assert!(SimulatedPlatform::from_pem("").is_err());
    }

    #[test]
    fn another_platforms_chain_or_a_changed_byte_fails() {
        let p = SimulatedPlatform::generate().unwrap();
        let q = SimulatedPlatform::generate().unwrap();
        let raw = p.report(&[7; 48], &[9; 64]);
        let pin = [p.chain().root_digest()];
        let mut v = Verdict::new(crate::Platform::SevSnp);
        let mixed = SimulatedChain {
            vcek: q.chain().vcek.clone(),
            ..p.chain().clone()
        };
        verify_simulated(&raw, &mixed, true, &pin, &mut v);
        assert!(!v.check(&sim::CHAIN).unwrap().passed());
        assert!(!v.check(&sim::REPORT_SIGNATURE).unwrap().passed());
        for i in (0..SIGNED_LEN).step_by(7) {
            let mut m = raw.clone();
            m[i] ^= 1;
            let mut v = Verdict::new(crate::Platform::SevSnp);
            verify_simulated(&m, p.chain(), true, &pin, &mut v);
            assert!(!v.accepted(), "byte {i}");
        }
    }
}
