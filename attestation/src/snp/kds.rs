//! What to ask AMD's Key Distribution Service (KDS) for the key that signed a report.
//!
//! Pure: the caller does the HTTP. The URLs follow AMD's "Versioned Chip Endorsement Key
//! (VCEK) Certificate and KDS Interface Specification" (#57230): a VCEK is named by the
//! product line, the chip's hardware ID and the SPLs of the TCB it was derived for (the
//! report's REPORTED_TCB). Turin and later name the chip by the first 8 bytes of CHIP_ID
//! and add the FMC's SPL. A VLEK is not chip-specific and KDS hands it only to the cloud
//! provider that registered it, so it cannot be fetched here: it must come from the host
//! (the extended report's certificate table).
//!
//! Nothing KDS answers is trusted: the VCEK is verified against the pinned ASK/ARK and
//! against the report (hwID, TCB) when a bundle is checked.

use super::report::{AttestationReport, SigningKey};
use super::tcb::ProductLine;

/// AMD's KDS.
pub const AMD_KDS: &str = "https://kdsintf.amd.com";

/// Why a report's VCEK cannot be asked for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KdsError {
    /// The KDS base URL is not http(s).
    #[error("KDS base URL {0:?} is not an http:// or https:// URL")]
    BaseUrl(String),
    /// A VLEK (or no key) signed the report; only a VCEK can be fetched by chip.
    #[error(
        "the report is signed by its {0}, which KDS does not serve by chip: the host must \
         provide it in the extended report's certificate table"
    )]
    NotVcek(SigningKey),
    /// The platform masks CHIP_ID, so no VCEK can be named.
    #[error("the report's CHIP_ID is masked (all zeros): KDS cannot name its VCEK")]
    MaskedChipId,
    /// A version 2 report does not name its CPU, and no product line was given.
    #[error(
        "the report (version {0}) does not name its product line; give it (Milan, Genoa or \
         Turin)"
    )]
    UnknownProduct(u32),
}

/// The URL of the VCEK that signed `report`, on `base` (AMD's KDS or a cache of it).
///
/// `line` is used when the report does not name its product line (version 2); a report
/// that names one is believed over it, since the certificate must match the report anyway.
pub fn vcek_url(
    base: &str,
    report: &AttestationReport,
    line: Option<ProductLine>,
) -> Result<String, KdsError> {
    let base = checked_base(base)?;
    if report.signing_key != SigningKey::Vcek {
        return Err(KdsError::NotVcek(report.signing_key));
    }
    if report.chip_id_masked() {
        return Err(KdsError::MaskedChipId);
    }
    let line = report
        .product_line()
        .or(line)
        .ok_or(KdsError::UnknownProduct(report.version))?;
    let tcb = report.reported_tcb.parts(line);
    let (hwid, fmc) = match tcb.fmc {
        Some(fmc) if line.has_turin_tcb_layout() => (
            hex::encode(&report.chip_id[..8]),
            format!("fmcSPL={fmc:02}&"),
        ),
        _ => (hex::encode(report.chip_id), String::new()),
    };
    Ok(format!(
        "{base}/vcek/v1/{line}/{hwid}?{fmc}blSPL={:02}&teeSPL={:02}&snpSPL={:02}&ucodeSPL={:02}",
        tcb.bootloader, tcb.tee, tcb.snp, tcb.microcode
    ))
}

/// The URL of the ASK + ARK chain (PEM) for VCEKs of `line`.
pub fn cert_chain_url(base: &str, line: ProductLine) -> Result<String, KdsError> {
    Ok(format!("{}/vcek/v1/{line}/cert_chain", checked_base(base)?))
}

/// The URL of the ARK-signed CRL (DER) for VCEKs of `line`.
pub fn crl_url(base: &str, line: ProductLine) -> Result<String, KdsError> {
    Ok(format!("{}/vcek/v1/{line}/crl", checked_base(base)?))
}

fn checked_base(base: &str) -> Result<&str, KdsError> {
    let base = base.trim_end_matches('/');
    if base.starts_with("https://") || base.starts_with("http://") {
        Ok(base)
    } else {
        Err(KdsError::BaseUrl(base.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snp::tcb::{TcbParts, TcbVersion};

    const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../vectors");

    fn milan() -> AttestationReport {
        let path = format!("{VECTORS}/snp/milan/report_milan.hex");
        let text = std::fs::read_to_string(&path).expect("vector");
        let raw = hex::decode(text.trim()).expect("hex");
        AttestationReport::from_bytes(&raw).expect("report")
    }

    #[test]
    fn milan_vcek_url_names_chip_and_reported_tcb() {
        let r = milan();
        // A version 2 report: the product line is given.
        assert_eq!(r.version, 2);
        let url = vcek_url("https://kdsintf.amd.com/", &r, Some(ProductLine::Milan)).expect("url");
        let tcb = r.reported_tcb.parts(ProductLine::Milan);
        let want = format!(
            "https://kdsintf.amd.com/vcek/v1/Milan/{}?blSPL={:02}&teeSPL={:02}&snpSPL={:02}&ucodeSPL={:02}",
            hex::encode(r.chip_id),
            tcb.bootloader,
            tcb.tee,
            tcb.snp,
            tcb.microcode
        );
        assert_eq!(url, want);
        assert_eq!(hex::encode(r.chip_id).len(), 128);
    }

    #[test]
    fn turin_names_eight_bytes_of_chip_id_and_the_fmc() {
        let mut r = milan();
        r.cpuid = None;
        r.reported_tcb = TcbVersion::from_parts(
            TcbParts {
                fmc: Some(1),
                bootloader: 2,
                tee: 3,
                snp: 4,
                microcode: 210,
            },
            ProductLine::Turin,
        );
        let url = vcek_url(AMD_KDS, &r, Some(ProductLine::Turin)).expect("url");
        assert_eq!(
            url,
            format!(
                "{AMD_KDS}/vcek/v1/Turin/{}?fmcSPL=01&blSPL=02&teeSPL=03&snpSPL=04&ucodeSPL=210",
                hex::encode(&r.chip_id[..8])
            )
        );
    }

    #[test]
    fn what_cannot_be_named_is_refused() {
        let r = milan();
        assert_eq!(
            vcek_url(AMD_KDS, &r, None),
            Err(KdsError::UnknownProduct(r.version))
        );
        let mut r = milan();
        r.signing_key = SigningKey::Vlek;
        assert_eq!(
            vcek_url(AMD_KDS, &r, Some(ProductLine::Milan)),
            Err(KdsError::NotVcek(SigningKey::Vlek))
        );
        let mut masked = milan();
        masked.chip_id = [0; 64];
        assert_eq!(
            vcek_url(AMD_KDS, &masked, Some(ProductLine::Milan)),
            Err(KdsError::MaskedChipId)
        );
        assert!(matches!(
            vcek_url("kdsintf.amd.com", &milan(), Some(ProductLine::Milan)),
            Err(KdsError::BaseUrl(_))
        ));
        assert_eq!(
            cert_chain_url(AMD_KDS, ProductLine::Genoa).expect("url"),
            "https://kdsintf.amd.com/vcek/v1/Genoa/cert_chain"
        );
        assert_eq!(
            crl_url(AMD_KDS, ProductLine::Milan).expect("url"),
            "https://kdsintf.amd.com/vcek/v1/Milan/crl"
        );
    }
}
