//! `silk verify`: load evidence and its inputs from files, verify, report.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use silk_attestation::snp::certs::SnpCertificates;
use silk_attestation::{EvidenceKind, Policy};
use silk_verifier::{InputError, Inputs, Shape, SnpCerts};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::measure::{self, LaunchOptions, MeasureError, Tee};
use silk_client::render;

pub use silk_verifier::Format;

/// The command's inputs, as paths and flags.
#[derive(Clone, Debug, Default)]
pub struct VerifyArgs {
    /// Evidence file (binary or hex).
    pub evidence: PathBuf,
    /// The format, when the user named it; detected otherwise.
    pub format: Option<Format>,
    /// Directory of AMD certificates, or for GPU evidence the device chain (PEM file).
    pub certs: Option<PathBuf>,
    /// A single VCEK/VLEK file.
    pub vcek: Option<PathBuf>,
    /// DCAP collateral JSON.
    pub collateral: Option<PathBuf>,
    /// Policy TOML.
    pub policy: Option<PathBuf>,
    /// Verification time (RFC 3339); now when absent.
    pub now: Option<String>,
    /// JSON output.
    pub json: bool,
    /// How the table marks checks: the style of the stream `out` is (plain by default).
    pub style: silk_client::render::Style,
    /// NVIDIA RIMs (driver and VBIOS) for a bundle's GPU evidence.
    pub gpu_rims: Option<PathBuf>,
    /// An image directory: the measurement must equal the one computed from it.
    pub image: Option<PathBuf>,
    /// The platform to compute for (default: the evidence's).
    pub tee: Option<Tee>,
    /// How the VM was launched (vCPUs, vCPU type, ...), for the computation.
    pub launch: LaunchOptions,
    /// The nonce a standalone GPU report must answer (hex, 32 bytes).
    pub nonce: Option<String>,
    /// Accept a standalone GPU report whatever its nonce (a possible replay).
    pub no_nonce: bool,
    /// A bundle's oldest acceptable claims, in seconds before `now`.
    pub max_age: Option<u64>,
    /// Saved DER OCSP responses for GPU device chains.
    pub ocsp: Vec<PathBuf>,
    /// The TD's event log (CCEL) for a standalone TDX quote.
    pub event_log: Option<PathBuf>,
}

/// Why `silk verify` could not even start verifying. A rejected verdict is not an error.
#[derive(Debug, thiserror::Error)]
pub enum VerifyCmdError {
    /// A file could not be read.
    #[error("cannot read {what} {}: {source}", path.display())]
    Read {
        /// What the file was meant to be.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The policy is invalid.
    #[error("{}: {source}", path.display())]
    Policy {
        /// The policy file.
        path: PathBuf,
        /// What is wrong.
        source: silk_attestation::policy::PolicyError,
    },
    /// The evidence is unrecognised or malformed.
    #[error("{}: {source}", path.display())]
    Evidence {
        /// The evidence file.
        path: PathBuf,
        /// What is wrong.
        source: silk_attestation::EvidenceError,
    },
    /// A certificate could not be loaded.
    #[error("{}: {reason}", path.display())]
    Certificate {
        /// The certificate file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The collateral could not be loaded.
    #[error("{}: {reason}", path.display())]
    Collateral {
        /// The collateral file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// `--now` is not RFC 3339.
    #[error("--now {0:?} is not an RFC 3339 time (e.g. 2025-06-19T10:16:03Z)")]
    Now(String),
    /// A required input is missing.
    #[error("{0}")]
    Missing(String),
    /// The expected measurement could not be computed from `--image`.
    #[error(transparent)]
    Image(#[from] MeasureError),
    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

pub(crate) fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, VerifyCmdError> {
    fs::read(path).map_err(|source| VerifyCmdError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

/// Runs `silk verify`, writing the verdict to `out`. Returns whether it was accepted.
///
/// This reads the files the flags name and checks the flags make sense together; the
/// verification itself is [`silk_verifier::verify`], the same function the WASM and
/// Python builds call.
pub fn run_verify(args: &VerifyArgs, out: &mut dyn Write) -> Result<bool, VerifyCmdError> {
    let now = match &args.now {
        Some(text) => {
            OffsetDateTime::parse(text, &Rfc3339).map_err(|_| VerifyCmdError::Now(text.clone()))?
        }
        None => OffsetDateTime::now_utc(),
    };
    let policy = match &args.policy {
        Some(path) => {
            let text = read("policy", path)?;
            let text = String::from_utf8_lossy(&text);
            Policy::from_toml(&text).map_err(|source| VerifyCmdError::Policy {
                path: path.clone(),
                source,
            })?
        }
        None => Policy::default(),
    };
    let raw = read("evidence", &args.evidence)?;
    let mut notes = Vec::new();
    if args.policy.is_none() {
        notes.push("no --policy given: the empty policy rejects everything".to_owned());
    }
    let mut inputs = Inputs::new(policy, now);
    let shape = silk_verifier::shape(&raw, args.format);
    if let Some(path) = &args.event_log {
        match shape {
            Shape::Platform(Some(EvidenceKind::DcapQuote(silk_attestation::tdx::TeeType::Tdx)))
            | Shape::Bundle => {
                inputs.tdx_event_log = Some(read("event log", path)?);
            }
            _ => {
                return Err(VerifyCmdError::Missing(
                    "--event-log is for TDX evidence (a quote, or a bundle)".into(),
                ))
            }
        }
    }
    match shape {
        Shape::Gpu => crate::verify_gpu::load(args, &raw, &mut inputs, &mut notes)?,
        Shape::Bundle => {
            if args.no_nonce {
                return Err(VerifyCmdError::Missing(
                    "--no-nonce is for a standalone GPU report; a bundle's challenge is \
                     checked only when --nonce gives it"
                        .into(),
                ));
            }
            if let Some(text) = &args.nonce {
                let text = text.trim();
                let challenge = hex::decode(text).map_err(|e| {
                    VerifyCmdError::Missing(format!("--nonce {text:?} is not hex: {e}"))
                })?;
                inputs.challenge = Some(challenge);
            }
            inputs.max_age_secs = args.max_age;
            if let Some(dir) = &args.gpu_rims {
                inputs.gpu_rims = crate::verify_gpu::rims_from_dir(dir)?;
            }
            if let Some(path) = &args.collateral {
                inputs.tdx_collateral = Some(read_collateral(path)?);
            }
        }
        Shape::Platform(Some(EvidenceKind::SnpReport)) => {
            let certs = load_snp_certs(args, &mut notes)?;
            inputs.snp = SnpCerts {
                vek: Some(certs.vek),
                ask: certs.ask,
                ark: certs.ark,
                chain: None,
            };
        }
        Shape::Platform(Some(EvidenceKind::DcapQuote(_))) => {
            let path = collateral_path(args, &mut notes)?;
            inputs.tdx_collateral = Some(read_collateral(&path)?);
        }
        // Evidence that does not parse is refused by the verifier, at its format's check.
        Shape::Platform(_) => {}
    }
    // Only --image needs the kind before verifying (a bundle's means parsing it twice).
    if args.image.is_some() {
        if let Some(kind) = shape.kind(&raw) {
            pin_to_image(args, &mut inputs, kind, &mut notes)?;
        }
    }
    let outcome =
        silk_verifier::verify(&raw, args.format, &inputs).map_err(|e| input_error(args, e))?;
    notes.extend(outcome.notes);
    let source = args.evidence.display().to_string();
    if args.json {
        out.write_all(
            silk_verifier::verdict_json(&outcome.verdict, outcome.kind, &source, now).as_bytes(),
        )?;
    } else {
        render::table(
            &outcome.verdict,
            outcome.kind,
            &source,
            now,
            &notes,
            args.style,
            out,
        )?;
    }
    Ok(outcome.verdict.accepted())
}

/// Reads Intel PCS collateral, refusing JSON that is not collateral with the file's name.
fn read_collateral(path: &Path) -> Result<Vec<u8>, VerifyCmdError> {
    let json = read("collateral", path)?;
    silk_attestation::tdx::TdxCollateral::from_json(&json).map_err(|e| {
        VerifyCmdError::Collateral {
            path: path.to_owned(),
            reason: e.to_string(),
        }
    })?;
    Ok(json)
}

/// The core's refusal to start, with the file it concerns.
fn input_error(args: &VerifyArgs, e: InputError) -> VerifyCmdError {
    let path = match &e {
        InputError::Collateral { what: "RIM", .. } => args
            .gpu_rims
            .clone()
            .unwrap_or_else(|| args.evidence.clone()),
        _ => args.evidence.clone(),
    };
    match e {
        InputError::Evidence(source) => VerifyCmdError::Evidence { path, source },
        InputError::Collateral { reason, .. } | InputError::Bundle(reason) => {
            VerifyCmdError::Collateral { path, reason }
        }
        InputError::Certificate { what, reason } => VerifyCmdError::Certificate {
            path,
            reason: format!("{what}: {reason}"),
        },
        other => VerifyCmdError::Missing(other.to_string()),
    }
}

/// `--image`: replaces the policy's measurement rule with the value computed from the
/// image, for the platform the evidence is from.
fn pin_to_image(
    args: &VerifyArgs,
    inputs: &mut Inputs,
    kind: EvidenceKind,
    notes: &mut Vec<String>,
) -> Result<(), VerifyCmdError> {
    use silk_attestation::tdx::TeeType;
    let Some(dir) = &args.image else {
        return Ok(());
    };
    let found = match kind {
        EvidenceKind::SnpReport => Tee::Snp,
        EvidenceKind::DcapQuote(TeeType::Tdx) => Tee::Tdx,
        EvidenceKind::DcapQuote(TeeType::Sgx) => {
            return Err(VerifyCmdError::Missing(
                "--image: an SGX quote measures an enclave, not a guest image".into(),
            ))
        }
        EvidenceKind::GpuReport => {
            return Err(VerifyCmdError::Missing(
                "--image: a GPU report measures GPU firmware, not a guest image".into(),
            ))
        }
    };
    if let Some(tee) = args.tee {
        if tee != found {
            return Err(VerifyCmdError::Missing(format!(
                "--tee {} but the evidence is {} evidence",
                tee.name(),
                found.name()
            )));
        }
    }
    let m = measure::measure(dir, found, &args.launch)?;
    notes.push(measure::pin_policy(&mut inputs.policy, &m)?);
    inputs.tdx_image_events = m.events.clone();
    Ok(())
}

fn collateral_path(args: &VerifyArgs, notes: &mut Vec<String>) -> Result<PathBuf, VerifyCmdError> {
    if let Some(path) = &args.collateral {
        return Ok(path.clone());
    }
    let mut beside = args.evidence.clone().into_os_string();
    beside.push("_collateral.json");
    let beside = PathBuf::from(beside);
    if beside.is_file() {
        notes.push(format!(
            "collateral: {} (found beside the quote)",
            beside.display()
        ));
        return Ok(beside);
    }
    Err(VerifyCmdError::Missing(format!(
        "a DCAP quote needs its collateral: pass --collateral FILE (Intel PCS JSON); \
         {} does not exist",
        beside.display()
    )))
}

/// Loads the VCEK/VLEK and any ASK/ARK from `--vcek` and/or `--certs`: with both, the
/// VCEK given and the ASK/ARK from the folder.
fn load_snp_certs(
    args: &VerifyArgs,
    notes: &mut Vec<String>,
) -> Result<SnpCertificates, VerifyCmdError> {
    let vcek = match &args.vcek {
        Some(path) => {
            let bytes = read("VCEK", path)?;
            let (der, count) = silk_attestation::snp::certs::vek_der(&bytes, "VCEK/VLEK")
                .map_err(|e| cert_error(path, &e))?;
            if count > 1 {
                notes.push(format!(
                    "--vcek {}: took the VCEK/VLEK of the {count} certificates it holds",
                    path.display()
                ));
            }
            Some(der)
        }
        None => None,
    };
    let Some(dir) = &args.certs else {
        return match vcek {
            Some(vek) => Ok(SnpCertificates {
                vek,
                ask: None,
                ark: None,
            }),
            None => Err(VerifyCmdError::Missing(
                "an SNP report needs the certificate that signed it: pass --vcek FILE or --certs DIR"
                    .into(),
            )),
        };
    };
    if dir.is_file() {
        return Err(VerifyCmdError::Missing(format!(
            "--certs {} is a file; for an SNP report it is the folder holding vcek*, ask*, \
             ark* or cert_chain* (use --vcek FILE for a single certificate)",
            dir.display()
        )));
    }
    let entries = fs::read_dir(dir).map_err(|source| VerifyCmdError::Read {
        what: "certificate directory",
        path: dir.clone(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    let (mut vek, mut ask, mut ark) = (None, None, None);
    for path in paths {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        if name.starts_with("vcek") || name.starts_with("vlek") {
            if vcek.is_none() {
                vek = Some(load_cert("VCEK/VLEK", &path)?);
            }
        } else if name.starts_with("cert_chain") {
            let bytes = read("certificate chain", &path)?;
            let chain = silk_attestation::snp::certs::pem_bundle(&bytes, "certificate chain")
                .map_err(|e| cert_error(&path, &e))?;
            let mut it = chain.into_iter();
            ask = it.next();
            ark = it.next();
        } else if name.starts_with("ask") || name.starts_with("asvk") {
            ask = Some(load_cert("ASK/ASVK", &path)?);
        } else if name.starts_with("ark") {
            ark = Some(load_cert("ARK", &path)?);
        }
    }
    let vek = match (vcek, vek) {
        (Some(v), _) => {
            notes.push(format!(
                "VCEK from --vcek, ASK/ARK from {} where present",
                dir.display()
            ));
            v
        }
        (None, Some(v)) => v,
        (None, None) => {
            return Err(VerifyCmdError::Missing(format!(
                "{} holds no vcek* or vlek* certificate",
                dir.display()
            )))
        }
    };
    Ok(SnpCertificates { vek, ask, ark })
}

fn cert_error(path: &Path, e: &dyn std::fmt::Display) -> VerifyCmdError {
    VerifyCmdError::Certificate {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

/// Reads one certificate (PEM or DER) and returns its DER.
fn load_cert(what: &'static str, path: &Path) -> Result<Vec<u8>, VerifyCmdError> {
    let bytes = read(what, path)?;
    silk_attestation::snp::certs::cert_der(&bytes, what).map_err(|e| cert_error(path, &e))
}
