//! `silk measure` and `silk verify --image`: the measurement the hardware will report for
//! a guest image, computed from the image's own files, and a policy that allows exactly it.
//!
//! The image directory is what `images/recipe/build.sh` writes: `manifest.json` and the
//! files it lists (firmware, kernel, initrd). Every file is checked against the manifest
//! before it is measured, so the prediction is of the image the manifest describes. The
//! computing itself is `silk-images` (see `docs/measurement.md`); this module picks the
//! inputs, explains the result and turns it into policy.

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

use silk_attestation::policy::{HexBytes, PolicyError, TdxMeasurement};
use silk_attestation::tdx::replay::{Predicted, PredictedEvent};
use silk_attestation::Policy;
use silk_images::manifest::{Manifest, ManifestError};
use silk_images::pe::QemuMemory;
use silk_images::snp::{self, SevHashes, SnpError, SnpInputs, VcpuType, VmmType};
use silk_images::tdx::{self, DirectBoot, PageOrder, TdxError};
use silk_images::verity::cmdline::CmdlineError;
use silk_images::verity::ModelVerity;

mod report;
pub use report::json;

/// Which confidential-computing platform to predict for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Tee {
    /// AMD SEV-SNP: the launch digest (MEASUREMENT).
    Snp,
    /// Intel TDX: MRTD, RTMR1 and RTMR2 (RTMR0 is recorded, not predicted).
    Tdx,
}

impl Tee {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Tee::Snp => "snp",
            Tee::Tdx => "tdx",
        }
    }
}

/// How the VM is launched: everything besides the image that changes the measurement.
/// The defaults are `silk-host`'s.
#[derive(Clone, Debug, clap::Args)]
pub struct LaunchOptions {
    /// vCPUs the VM is launched with (SNP: one VMSA page each).
    #[arg(long, default_value_t = 2)]
    pub vcpus: u32,
    /// SNP: the QEMU `-cpu` model (silk-host launches SNP guests as EPYC-v4).
    #[arg(long, default_value = "EPYC-v4")]
    pub vcpu_type: String,
    /// SNP: the VMM, `qemu`, `ec2` or `gce`.
    #[arg(long, default_value = "qemu")]
    pub vmm: String,
    /// SNP: SEV_FEATURES of the VMSAs (0x1; 0x21 on hosts that enable debug-swap).
    #[arg(long, default_value = "0x1", value_parser = parse_u64)]
    pub guest_features: u64,
    /// TDX: guest memory in MiB (QEMU writes the initrd's address into the measured kernel).
    #[arg(long, default_value_t = 2048)]
    pub memory_mib: u64,
    /// TDX: how the VMM adds firmware pages, `per-page` (upstream KVM) or `per-section`.
    #[arg(long, default_value = "per-page")]
    pub tdx_page_order: String,
    /// TDX: RTMR0 as recorded once for this VMM configuration (96 hex digits); without it
    /// the policy does not compare RTMR0.
    #[arg(long, value_name = "HEX")]
    pub rtmr0: Option<String>,
}

impl Default for LaunchOptions {
    fn default() -> Self {
        LaunchOptions {
            vcpus: 2,
            vcpu_type: "EPYC-v4".into(),
            vmm: "qemu".into(),
            guest_features: 1,
            memory_mib: 2048,
            tdx_page_order: "per-page".into(),
            rtmr0: None,
        }
    }
}

fn parse_u64(text: &str) -> Result<u64, String> {
    let t = text.trim();
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16),
        None => t.parse(),
    }
    .map_err(|_| format!("{text:?} is not a number (decimal or 0x hex)"))
}

/// Why a measurement could not be computed or written.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    /// The manifest or a file it lists is missing, invalid or different from the manifest.
    #[error("image: {0}")]
    Manifest(#[from] ManifestError),
    /// A file could not be read or written.
    #[error("cannot {op} {}: {source}", path.display())]
    File {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The firmware cannot measure a kernel under SNP.
    #[error(
        "{}: this firmware has no SEV-SNP kernel-hashes section, so under SEV-SNP it would \
         not measure the kernel, initrd or command line. Build the AmdSev firmware \
         (images/recipe/build-ovmf-amdsev.sh) and the image with build.sh --firmware",
        .0.display()
    )]
    NoKernelHashes(PathBuf),
    /// The SNP launch digest could not be computed.
    #[error("SEV-SNP measurement of {}: {source}", path.display())]
    Snp {
        /// The firmware.
        path: PathBuf,
        /// What is wrong.
        source: SnpError,
    },
    /// The TDX measurement could not be computed.
    #[error("TDX measurement of {}: {source}", path.display())]
    Tdx {
        /// The file at fault (firmware for MRTD, kernel for the RTMRs).
        path: PathBuf,
        /// What is wrong.
        source: TdxError,
    },
    /// An option's value is not one this command knows.
    #[error("--{option} {value:?}: {expected}")]
    Option {
        /// The option.
        option: &'static str,
        /// Its value.
        value: String,
        /// What was expected.
        expected: String,
    },
    /// The command line's model-disk keys are inconsistent.
    #[error("image command line: {0}")]
    Cmdline(#[from] CmdlineError),
    /// The policy written does not load (a bug: it is checked before it is written).
    #[error("the generated policy does not load: {0}")]
    Policy(#[from] PolicyError),
    /// `silk verify --image` needs the policy's platform section for its other rules.
    #[error(
        "--image replaces the [{0}] measurement rules of the policy, but the policy has no \
         [{0}] section (it holds the other rules, e.g. min_tcb): add one, or write one with \
         silk measure --policy-out"
    )]
    NoSection(&'static str),
}

/// The predicted values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expected {
    /// The SNP launch digest.
    Snp([u8; 48]),
    /// The TDX registers (RTMR0 only when given, as a recorded value).
    Tdx {
        /// MRTD.
        mrtd: [u8; 48],
        /// RTMR0 as recorded, if given.
        rtmr0: Option<[u8; 48]>,
        /// RTMR1 (kernel, boot events).
        rtmr1: [u8; 48],
        /// RTMR2 (command line, initrd).
        rtmr2: [u8; 48],
    },
}

/// An image's prediction and what it was computed from.
#[derive(Clone, Debug)]
pub struct Measurement {
    /// The image directory.
    pub dir: PathBuf,
    /// The manifest.
    pub manifest: Manifest,
    /// The predicted values.
    pub expected: Expected,
    /// One line on the launch parameters used.
    pub launch: String,
    /// The model disk the command line binds, if any.
    pub model: Option<ModelVerity>,
    /// What the measurement does not cover, said loudly.
    pub warnings: Vec<String>,
    /// TDX: the RTMR1 and RTMR2 events predicted, each named by what it measures, for
    /// comparing with a TD's event log.
    pub events: Option<Predicted>,
}

fn read(
    dir: &Path,
    manifest: &Manifest,
    name: &'static str,
) -> Result<(PathBuf, Vec<u8>), MeasureError> {
    let path = manifest
        .component_path(dir, name)
        .ok_or(ManifestError::Missing(name))?;
    let bytes = std::fs::read(&path).map_err(|source| MeasureError::File {
        op: "read",
        path: path.clone(),
        source,
    })?;
    Ok((path, bytes))
}

/// The kernel release a bzImage names in its setup header (`kernel_version`, boot
/// protocol 2.00+), as (major, minor, the whole string).
pub fn kernel_release(bzimage: &[u8]) -> Option<(u32, u32, String)> {
    if bzimage.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let ptr = u16::from_le_bytes(bzimage.get(0x20e..0x210)?.try_into().ok()?) as usize;
    if ptr == 0 {
        return None;
    }
    let tail = bzimage.get(ptr + 0x200..)?;
    let text = &tail[..tail.iter().position(|&b| b == 0)?.min(200)];
    let text = std::str::from_utf8(text).ok()?;
    let release = text.split_whitespace().next()?.to_string();
    let mut nums = release.split(|c: char| !c.is_ascii_digit());
    let major = nums.next()?.parse().ok()?;
    let minor = nums.next()?.parse().ok()?;
    Some((major, minor, release))
}

/// Linux measures its command line and initrd into RTMR2 from its EFI stub only from 6.9.
const RTMR2_FROM: (u32, u32) = (6, 9);

fn option(option: &'static str, value: &str, expected: String) -> MeasureError {
    MeasureError::Option {
        option,
        value: value.to_string(),
        expected,
    }
}

/// Loads the image at `dir`, checks its files against its manifest and computes what
/// the hardware will report for it under `tee`.
pub fn measure(dir: &Path, tee: Tee, launch: &LaunchOptions) -> Result<Measurement, MeasureError> {
    let manifest = Manifest::load(dir)?;
    manifest.verify_files(dir)?;
    let model = ModelVerity::from_cmdline(&manifest.kernel_cmdline)?;
    let (fw_path, firmware) = read(dir, &manifest, "firmware")?;
    let (kernel_path, kernel) = read(dir, &manifest, "kernel")?;
    let (_, initrd) = read(dir, &manifest, "initrd")?;
    let cmdline = manifest.kernel_cmdline.as_str();
    let mut warnings = Vec::new();
    let mut events = None;
    let (expected, line) = match tee {
        Tee::Snp => {
            let vcpu_type = VcpuType::from_name(&launch.vcpu_type).ok_or_else(|| {
                let known: Vec<_> = snp::VCPU_TYPES.iter().map(|t| t.name).collect();
                option(
                    "vcpu-type",
                    &launch.vcpu_type,
                    format!("one of {}", known.join(", ")),
                )
            })?;
            let vmm = VmmType::from_name(&launch.vmm)
                .ok_or_else(|| option("vmm", &launch.vmm, "qemu, ec2 or gce".into()))?;
            let digest = snp::launch_digest(&SnpInputs {
                ovmf: &firmware,
                hashes: Some(SevHashes::new(&kernel, Some(&initrd), Some(cmdline))),
                vcpus: launch.vcpus,
                vcpu_type,
                vmm,
                guest_features: launch.guest_features,
            })
            .map_err(|source| match source {
                SnpError::NoKernelHashesSection => MeasureError::NoKernelHashes(fw_path.clone()),
                source => MeasureError::Snp {
                    path: fw_path.clone(),
                    source,
                },
            })?;
            let line = format!(
                "SEV-SNP, {} vCPU(s) {}, VMM {}, guest features {:#x}, kernel-hashes=on",
                launch.vcpus,
                vcpu_type.name,
                launch.vmm.to_ascii_lowercase(),
                launch.guest_features
            );
            (Expected::Snp(digest), line)
        }
        Tee::Tdx => {
            let order = match launch.tdx_page_order.as_str() {
                "per-page" => PageOrder::PerPage,
                "per-section" => PageOrder::PerSection,
                other => {
                    return Err(option(
                        "tdx-page-order",
                        other,
                        "per-page or per-section".into(),
                    ))
                }
            };
            let rtmr0 = match &launch.rtmr0 {
                Some(text) => Some(
                    HexBytes::<48>::parse(text)
                        .map_err(|e| option("rtmr0", text, e.to_string()))?
                        .0,
                ),
                None => None,
            };
            let mrtd = tdx::mrtd(&firmware, order).map_err(|source| MeasureError::Tdx {
                path: fw_path.clone(),
                source,
            })?;
            let named = tdx::direct_boot_named_events(&DirectBoot {
                kernel: &kernel,
                initrd: Some(&initrd),
                cmdline,
                memory: QemuMemory::q35(launch.memory_mib << 20),
            })
            .map_err(|source| MeasureError::Tdx {
                path: kernel_path.clone(),
                source,
            })?;
            let mut predicted = Predicted::default();
            for r in [1, 2] {
                predicted.rtmr[r] = Some(
                    named
                        .iter()
                        .filter(|e| e.rtmr == r)
                        .map(|e| PredictedEvent {
                            component: e.component.to_owned(),
                            digest: e.digest,
                        })
                        .collect(),
                );
            }
            let replay = |r: usize| {
                let digests: Vec<[u8; 48]> = predicted.rtmr[r]
                    .iter()
                    .flatten()
                    .map(|e| e.digest)
                    .collect();
                tdx::replay(&digests)
            };
            let (rtmr1, mut rtmr2) = (replay(1), replay(2));
            // An older kernel's EFI stub measures nothing: RTMR2 stays zero, and neither
            // the command line (with the model's verity root) nor the initrd is measured.
            match kernel_release(&kernel) {
                Some((major, minor, release)) if (major, minor) < RTMR2_FROM => {
                    rtmr2 = [0; 48];
                    predicted.rtmr[2] = Some(Vec::new());
                    warnings.push(format!(
                        "kernel {release} predates Linux 6.9: under TDX its EFI stub does not \
                         measure the command line or the initrd, so RTMR2 is zero and NEITHER \
                         (nor the model's dm-verity root on the command line) is covered by \
                         the measurement; build the image with a kernel of 6.9 or later \
                         (images/recipe/build.sh takes Debian's 6.12 unless told otherwise)"
                    ));
                }
                Some(_) => {}
                None => warnings.push(
                    "the kernel names no release: RTMR2 assumes its EFI stub measures the \
                     command line and initrd (Linux 6.9 and later); an older kernel leaves it zero"
                        .into(),
                ),
            }
            let line = format!(
                "TDX, QEMU direct kernel boot, q35 with {} MiB, pages added {}",
                launch.memory_mib, launch.tdx_page_order
            );
            events = Some(predicted);
            (
                Expected::Tdx {
                    mrtd,
                    rtmr0,
                    rtmr1,
                    rtmr2,
                },
                line,
            )
        }
    };
    Ok(Measurement {
        dir: dir.to_path_buf(),
        manifest,
        expected,
        launch: line,
        model,
        warnings,
        events,
    })
}

/// Prints the measurement as a small table.
pub fn print(m: &Measurement, out: &mut dyn Write) -> std::io::Result<()> {
    let row = |out: &mut dyn Write, k: &str, v: &str| writeln!(out, "  {k:<12} {v}");
    writeln!(out, "silk measure: {}", m.dir.display())?;
    row(
        out,
        "image",
        &format!("manifest digest {}", m.manifest.digest()),
    )?;
    for c in &m.manifest.components {
        row(
            out,
            &c.name,
            &format!("{} ({} bytes, sha256 {})", c.path, c.size, c.sha256),
        )?;
    }
    row(out, "launch", &m.launch)?;
    match &m.expected {
        Expected::Snp(d) => row(out, "MEASUREMENT", &hex::encode(d))?,
        Expected::Tdx {
            mrtd,
            rtmr0,
            rtmr1,
            rtmr2,
        } => {
            row(out, "MRTD", &hex::encode(mrtd))?;
            match rtmr0 {
                Some(r) => row(
                    out,
                    "RTMR0",
                    &format!("{} (recorded, given)", hex::encode(r)),
                )?,
                None => row(
                    out,
                    "RTMR0",
                    "not predicted: it depends on the VMM's ACPI tables; record it once per \
                     VMM configuration and pass --rtmr0",
                )?,
            }
            row(out, "RTMR1", &hex::encode(rtmr1))?;
            row(out, "RTMR2", &hex::encode(rtmr2))?;
        }
    }
    for w in &m.warnings {
        writeln!(out, "  WARNING: {w}")?;
    }
    match &m.model {
        Some(v) => row(
            out,
            "model",
            &format!(
                "{} ({} bytes; its dm-verity root is on the image's command line)",
                v.model_id(),
                v.model_size
            ),
        ),
        None => row(
            out,
            "model",
            "none bound (no silk.verity= on the command line: this guest opens no model)",
        ),
    }
}

/// A policy (TOML) that allows exactly this measurement, with a header saying where it
/// came from. It is checked to load before it is returned.
pub fn policy_toml(m: &Measurement) -> Result<String, MeasureError> {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Written by `silk measure` for the image {}",
        m.dir.display()
    );
    let _ = writeln!(s, "# (manifest digest {}).", m.manifest.digest());
    let _ = writeln!(
        s,
        "# It allows exactly the measurement computed for: {}.",
        m.launch
    );
    if let Some(v) = &m.model {
        let _ = writeln!(
            s,
            "# The image binds the model {} (dm-verity root on its command line).",
            v.model_id()
        );
    }
    for w in &m.warnings {
        let _ = writeln!(s, "# WARNING: {w}");
    }
    match &m.expected {
        Expected::Snp(d) => {
            s.push_str(
                "# min_tcb below accepts any TCB: raise it to the firmware versions you require.\n\n",
            );
            s.push_str("[snp]\n");
            let _ = writeln!(s, "measurements = [\"{}\"]", hex::encode(d));
            s.push_str("min_tcb = { bootloader = 0, tee = 0, snp = 0, microcode = 0 }\n");
        }
        Expected::Tdx {
            mrtd,
            rtmr0,
            rtmr1,
            rtmr2,
        } => {
            if rtmr0.is_none() {
                s.push_str(
                    "# RTMR0 is not compared: record it for your VMM and add rtmr0 = \"...\".\n",
                );
            }
            s.push_str("\n[tdx]\n\n[[tdx.measurements]]\n");
            let _ = writeln!(s, "mrtd = \"{}\"", hex::encode(mrtd));
            if let Some(r) = rtmr0 {
                let _ = writeln!(s, "rtmr0 = \"{}\"", hex::encode(r));
            }
            let _ = writeln!(s, "rtmr1 = \"{}\"", hex::encode(rtmr1));
            let _ = writeln!(s, "rtmr2 = \"{}\"", hex::encode(rtmr2));
        }
    }
    Policy::from_toml(&s)?;
    Ok(s)
}

/// Writes the policy to `path`.
pub fn write_policy(m: &Measurement, path: &Path) -> Result<(), MeasureError> {
    let text = policy_toml(m)?;
    std::fs::write(path, text).map_err(|source| MeasureError::File {
        op: "write",
        path: path.to_path_buf(),
        source,
    })
}

/// `silk verify --image`: makes the policy's measurement rule for `tee` require exactly
/// the computed value (its allowlist is replaced; `allow_any_measurement` is turned off).
/// Returns a note for the output.
pub fn pin_policy(policy: &mut Policy, m: &Measurement) -> Result<String, MeasureError> {
    match &m.expected {
        Expected::Snp(d) => {
            let snp = policy.snp.as_mut().ok_or(MeasureError::NoSection("snp"))?;
            snp.measurements = vec![HexBytes(*d)];
            snp.allow_any_measurement = false;
            Ok(format!(
                "--image {}: the measurement must equal the one computed from the image ({}); \
                 the policy's own [snp] allowlist is not used",
                m.dir.display(),
                m.launch
            ))
        }
        Expected::Tdx {
            mrtd,
            rtmr0,
            rtmr1,
            rtmr2,
        } => {
            let t = policy.tdx.as_mut().ok_or(MeasureError::NoSection("tdx"))?;
            t.measurements = vec![TdxMeasurement {
                mrtd: HexBytes(*mrtd),
                rtmr0: rtmr0.map(HexBytes),
                rtmr1: Some(HexBytes(*rtmr1)),
                rtmr2: Some(HexBytes(*rtmr2)),
                rtmr3: None,
            }];
            t.allow_any_measurement = false;
            Ok(format!(
                "--image {}: MRTD, RTMR1 and RTMR2 must equal those computed from the image ({}){}; \
                 the policy's own [tdx] measurements are not used",
                m.dir.display(),
                m.launch,
                if rtmr0.is_some() { ", RTMR0 the one given" } else { "" }
            ))
        }
    }
}
