//! `silk collateral fetch`: what a verifier needs beside a report, fetched on request.
//!
//! silk's clients never fetch collateral by themselves: enclaves put it in their bundles.
//! This command is for the cases where a bundle or a saved report lacks it and the user
//! asks: it fetches the VCEK for an SNP report from AMD's KDS, or the DCAP collateral for
//! a TDX or SGX quote from Intel's PCS (or a PCCS), with the enclave's own fetcher (the
//! same bounds, retries and cache), and writes it where `silk verify --vcek` or
//! `--collateral` reads it. What it writes is checked against pinned vendor roots when it
//! is used, so the service it came from need not be trusted.

use std::path::PathBuf;

use silk_attestation::{Evidence, EvidenceKind};
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
    #[error("{path}: neither an SEV-SNP report nor a DCAP quote ({found})")]
    Unknown {
        /// The file.
        path: PathBuf,
        /// What it is, or why it is no evidence.
        found: String,
    },
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
    // `silk verify`'s own reading of evidence files: binary or hex text, format detected.
    let evidence = Evidence::detect(&raw).map_err(|e| FetchCommandError::Unknown {
        path: args.evidence.clone(),
        found: e.to_string(),
    })?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| FetchCommandError::Read {
            path: args.evidence.clone(),
            source,
        })?;
    let (bytes, what) = match evidence.kind {
        EvidenceKind::SnpReport => {
            let der = rt.block_on(collateral::vcek(&args.config, &evidence.bytes))?;
            (der, format!("the VCEK (DER) from {}", args.config.kds))
        }
        EvidenceKind::DcapQuote(_) => {
            let json = rt.block_on(collateral::tdx(
                &args.config,
                &evidence.bytes,
                time::OffsetDateTime::now_utc(),
            ))?;
            (
                json,
                format!("the DCAP collateral (JSON) from {}", args.config.pcs),
            )
        }
        other => {
            return Err(FetchCommandError::Unknown {
                path: args.evidence.clone(),
                found: format!("an {other}"),
            })
        }
    };
    // Written whole (a temporary file renamed over it), as the ledger keeps its files.
    silk_ledger::store::write_file(&args.out, &bytes).map_err(|source| {
        FetchCommandError::Write {
            path: args.out.clone(),
            source,
        }
    })?;
    Ok(format!("wrote {what} to {}", args.out.display()))
}
