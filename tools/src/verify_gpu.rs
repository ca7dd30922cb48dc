//! `silk verify` for NVIDIA GPU evidence held on its own: the files and flags it takes.
//! The evidence itself (a report with its chain, or NRAS-style JSON) is read and checked
//! by [`silk_verifier`].

use std::fs;
use std::path::{Path, PathBuf};

use silk_verifier::{GpuNonce, Inputs};

use crate::verify::{read, VerifyArgs, VerifyCmdError};

/// Loads what standalone GPU evidence needs from the flags into `inputs`.
pub(crate) fn load(
    args: &VerifyArgs,
    raw: &[u8],
    inputs: &mut Inputs,
    notes: &mut Vec<String>,
) -> Result<(), VerifyCmdError> {
    if args.image.is_some() {
        return Err(VerifyCmdError::Missing(
            "--image: a GPU report measures GPU firmware, not a guest image".into(),
        ));
    }
    inputs.gpu_nonce = expected_nonce(args)?;
    let first = raw.iter().find(|b| !b.is_ascii_whitespace()).copied();
    if matches!(first, Some(b'[' | b'{')) {
        if args.certs.is_some() {
            notes.push("--certs ignored: the JSON carries each GPU's certificate chain".into());
        }
    } else {
        let Some(chain_path) = &args.certs else {
            return Err(VerifyCmdError::Missing(
                "a GPU report needs the GPU's device certificate chain: pass --certs FILE \
                 (PEM, leaf first, as nvtrust's *CertChain.txt)"
                    .into(),
            ));
        };
        if chain_path.is_dir() {
            return Err(VerifyCmdError::Missing(format!(
                "--certs {} is a folder; for a GPU report it is the certificate chain file (PEM)",
                chain_path.display()
            )));
        }
        inputs.gpu_chain = Some(read("GPU certificate chain", chain_path)?);
    }
    if let Some(dir) = &args.gpu_rims {
        inputs.gpu_rims = rims_from_dir(dir)?;
    }
    inputs.ocsp = args
        .ocsp
        .iter()
        .map(|p| read("OCSP response", p))
        .collect::<Result<_, _>>()?;
    Ok(())
}

/// The RIM files (`*.xml`, `*.swidtag`) of a directory, each named by its file name, in
/// name order. A directory with none is an error, so that a wrong path never reads as "no
/// RIM supplied".
pub(crate) fn rims_from_dir(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, VerifyCmdError> {
    let entries = fs::read_dir(dir).map_err(|source| VerifyCmdError::Read {
        what: "RIM directory",
        path: dir.to_owned(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    let mut rims = Vec::new();
    for path in paths {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !matches!(ext.to_ascii_lowercase().as_str(), "xml" | "swidtag") {
            continue;
        }
        let name = path
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        rims.push((name, read("RIM", &path)?));
    }
    if rims.is_empty() {
        return Err(VerifyCmdError::Collateral {
            path: dir.to_owned(),
            reason: "no RIM files (*.xml, *.swidtag) in this directory".into(),
        });
    }
    Ok(rims)
}

/// The nonce the report must answer, from `--nonce` or `--no-nonce`.
fn expected_nonce(args: &VerifyArgs) -> Result<GpuNonce, VerifyCmdError> {
    match (&args.nonce, args.no_nonce) {
        (Some(_), true) => Err(VerifyCmdError::Missing(
            "--nonce and --no-nonce contradict each other: pass one".into(),
        )),
        (Some(text), false) => {
            let text = text.trim();
            let text = text
                .strip_prefix("0x")
                .or_else(|| text.strip_prefix("0X"))
                .unwrap_or(text);
            let bytes = hex::decode(text).map_err(|e| {
                VerifyCmdError::Missing(format!("--nonce {text:?} is not hex: {e}"))
            })?;
            let nonce: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                VerifyCmdError::Missing(format!(
                    "--nonce is {} bytes; a GPU report's nonce is 32 bytes (64 hex digits)",
                    bytes.len()
                ))
            })?;
            Ok(GpuNonce::Expect(nonce))
        }
        (None, true) => Ok(GpuNonce::AcceptReplay),
        (None, false) => Err(VerifyCmdError::Missing(
            "a GPU report must answer a nonce you chose: pass --nonce HEX (the 32 bytes the \
             report was requested with), or --no-nonce to accept a report that may be a replay"
                .into(),
        )),
    }
}
