//! `silk collateral fetch`: what a verifier needs beside a report, fetched on request.
//!
//! silk's clients never fetch collateral by themselves: enclaves put it in their bundles.
//! This command is for the cases where a bundle or a saved report lacks it and the user
//! asks: it fetches the VCEK for an SNP report from AMD's KDS, or the DCAP collateral for
//! a TDX or SGX quote from Intel's PCS (or a PCCS), with the enclave's own fetcher (the
//! same bounds, retries and cache), and writes it where `silk verify --vcek` or
//! `--collateral` reads it. What it writes is checked against pinned vendor roots when it
//! is used, so the service it came from need not be trusted.

use std::path::{Path, PathBuf};

use silk_enclave::collateral::{self, CollateralConfig};

/// What to fetch for and where from.
pub struct FetchArgs {
    /// The report or quote (binary, or hex text).
    pub evidence: PathBuf,
    /// Where to write the VCEK (DER) or collateral (JSON).
    pub out: PathBuf,
    /// The sources, cache and bounds.
    pub config: CollateralConfig,
}

/// Why nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum FetchCommandError {
    /// The evidence file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The evidence is neither an SNP report nor a DCAP quote.
    #[error("{0}: neither an SEV-SNP report nor a DCAP quote")]
    Unknown(PathBuf),
    /// Fetching failed.
    #[error(transparent)]
    Fetch(#[from] collateral::CollateralError),
    /// The output could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Fetches and writes; returns what was written, for the user.
pub fn run(args: &FetchArgs) -> Result<String, FetchCommandError> {
    let raw = std::fs::read(&args.evidence).map_err(|source| FetchCommandError::Read {
        path: args.evidence.clone(),
        source,
    })?;
    let raw = decode_hex_text(raw);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| FetchCommandError::Read {
            path: args.evidence.clone(),
            source,
        })?;
    let (bytes, what) =
        if silk_protocol::attestation::snp::AttestationReport::from_bytes(&raw).is_ok() {
            let der = rt.block_on(collateral::vcek(&args.config, &raw))?;
            (der, format!("the VCEK (DER) from {}", args.config.kds))
        } else if dcap_quote(&raw) {
            let json = rt.block_on(collateral::tdx(
                &args.config,
                &raw,
                time::OffsetDateTime::now_utc(),
            ))?;
            (
                json,
                format!("the DCAP collateral (JSON) from {}", args.config.pcs),
            )
        } else {
            return Err(FetchCommandError::Unknown(args.evidence.clone()));
        };
    write_whole(&args.out, &bytes).map_err(|source| FetchCommandError::Write {
        path: args.out.clone(),
        source,
    })?;
    Ok(format!("wrote {what} to {}", args.out.display()))
}

/// A DCAP quote's header: version 3 to 5 and attestation key type 2 (ECDSA P-256). What
/// is wrong beyond that is for the PCS request builder to name.
fn dcap_quote(raw: &[u8]) -> bool {
    raw.len() >= 48
        && matches!(u16::from_le_bytes([raw[0], raw[1]]), 3..=5)
        && u16::from_le_bytes([raw[2], raw[3]]) == 2
}

/// Hex text (with an optional 0x) becomes bytes; anything else is kept.
fn decode_hex_text(raw: Vec<u8>) -> Vec<u8> {
    let Ok(text) = std::str::from_utf8(&raw) else {
        return raw;
    };
    let t = text.trim();
    hex::decode(t.strip_prefix("0x").unwrap_or(t)).unwrap_or(raw)
}

/// Writes `bytes` to a temporary file beside `path` and renames it over `path`, so a
/// failure leaves no half-written output.
fn write_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
