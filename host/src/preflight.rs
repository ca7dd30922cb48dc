//! Host checks before launch: each names what is missing and how to fix it.
//!
//! The checks read files under a root directory (normally `/`) and take the QEMU version
//! as an input, so the tests run them against fake roots.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::qemu::{QemuVersion, Tee, MIN_QEMU_NONE, MIN_QEMU_SNP, MIN_QEMU_TDX};

/// The outcome of one check (`ok`, `warn` or `missing` in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Present and usable.
    Ok,
    /// Usable, with a caveat (e.g. falling back to TCG).
    Warn,
    /// Missing: the launch would fail.
    Missing,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    /// Short name, e.g. `kvm`.
    pub name: &'static str,
    /// The outcome.
    pub status: Status,
    /// What was found, and for a problem, how to fix it.
    pub detail: String,
}

/// All checks for one launch. In JSON: `{"ready": bool, "checks": [{"name", "status",
/// "detail"}]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// In the order they ran.
    pub checks: Vec<Check>,
}

impl Report {
    /// Whether nothing is missing.
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Missing)
    }

    /// The checks that failed.
    pub fn missing(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.status == Status::Missing)
    }

    fn push(&mut self, name: &'static str, status: Status, detail: impl Into<String>) {
        self.checks.push(Check {
            name,
            status,
            detail: detail.into(),
        });
    }
}

impl serde::Serialize for Report {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut r = s.serialize_struct("Report", 2)?;
        r.serialize_field("ready", &self.ok())?;
        r.serialize_field("checks", &self.checks)?;
        r.end()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.checks {
            let mark = match c.status {
                Status::Ok => "ok     ",
                Status::Warn => "warn   ",
                Status::Missing => "MISSING",
            };
            writeln!(f, "{mark} {:<10} {}", c.name, c.detail)?;
        }
        Ok(())
    }
}

/// What the launch needs, for the checks.
#[derive(Debug, Clone)]
pub struct Needs<'a> {
    /// The TEE.
    pub tee: &'a Tee,
    /// How many GPUs will be passed through.
    pub gpus: usize,
    /// `qemu-system-x86_64 --version`'s parsed result, or why it could not be had.
    pub qemu: Result<QemuVersion, String>,
    /// The image's firmware file, when there is an image to check (`silk-host doctor`
    /// may run without one).
    pub firmware: Option<PathBuf>,
}

/// The files under a host root that the checks read.
#[derive(Debug, Clone)]
pub struct HostRoot {
    root: PathBuf,
}

impl HostRoot {
    /// The real host (`/`).
    pub fn real() -> Self {
        Self::new("/")
    }

    /// A host whose filesystem starts at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.root.join(p.trim_start_matches('/'))
    }

    fn exists(&self, p: &str) -> bool {
        self.path(p).exists()
    }

    /// A kernel module parameter that reads `Y`, `y` or `1`.
    fn param_on(&self, p: &str) -> Option<bool> {
        let s = std::fs::read_to_string(self.path(p)).ok()?;
        Some(matches!(s.trim(), "Y" | "y" | "1"))
    }

    /// Whether the CPU advertises hardware virtualisation (vmx or svm).
    pub fn hw_virt(&self) -> bool {
        std::fs::read_to_string(self.path("/proc/cpuinfo"))
            .map(|s| {
                s.lines()
                    .filter(|l| l.starts_with("flags"))
                    .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"))
            })
            .unwrap_or(false)
    }

    /// Whether KVM can run QEMU guests here: `/dev/kvm` exists *and* the CPU has vmx/svm.
    /// Some sandboxes expose a `/dev/kvm` without hardware virtualisation (a PVM-style
    /// hypervisor) that QEMU cannot drive, so the device alone is not enough.
    pub fn kvm_usable(&self) -> bool {
        self.exists("/dev/kvm") && self.hw_virt()
    }

    fn iommu_on(&self) -> bool {
        std::fs::read_dir(self.path("/sys/kernel/iommu_groups"))
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
    }

    /// Runs every check that applies to `needs`.
    pub fn check(&self, needs: &Needs<'_>) -> Report {
        let mut r = Report::default();
        let confidential = !matches!(needs.tee, Tee::None);

        let kvm = self.exists("/dev/kvm");
        match (kvm, self.hw_virt(), confidential) {
            (true, true, _) => r.push("kvm", Status::Ok, "/dev/kvm present, CPU has vmx/svm"),
            (_, _, true) => r.push(
                "kvm",
                Status::Missing,
                "no usable KVM (/dev/kvm with vmx/svm): enable virtualisation in the BIOS and load kvm_amd or kvm_intel",
            ),
            (true, false, false) => r.push(
                "kvm",
                Status::Warn,
                "/dev/kvm exists but the CPU shows no vmx/svm: using TCG (slow, development only)",
            ),
            (false, _, false) => r.push(
                "kvm",
                Status::Warn,
                "no /dev/kvm: using TCG (slow, development only)",
            ),
        }

        match needs.tee {
            Tee::Snp { .. } => {
                if self.exists("/dev/sev") {
                    r.push("sev", Status::Ok, "/dev/sev present");
                } else {
                    r.push(
                        "sev",
                        Status::Missing,
                        "no /dev/sev: enable SEV, SEV-SNP and SMEE in the BIOS, and load the ccp and kvm_amd modules",
                    );
                }
                match self.param_on("/sys/module/kvm_amd/parameters/sev_snp") {
                    Some(true) => r.push("sev-snp", Status::Ok, "kvm_amd.sev_snp=Y"),
                    Some(false) => r.push(
                        "sev-snp",
                        Status::Missing,
                        "kvm_amd.sev_snp is off: the host kernel needs SNP host support (Linux 6.11+), SNP enabled in the BIOS, and kvm_amd.sev_snp=1",
                    ),
                    None => r.push(
                        "sev-snp",
                        Status::Missing,
                        "no /sys/module/kvm_amd/parameters/sev_snp: kvm_amd is not loaded or the kernel predates SNP host support (Linux 6.11+)",
                    ),
                }
            }
            Tee::Tdx { .. } => match self.param_on("/sys/module/kvm_intel/parameters/tdx") {
                Some(true) => r.push("tdx", Status::Ok, "kvm_intel.tdx=Y"),
                Some(false) => r.push(
                    "tdx",
                    Status::Missing,
                    "kvm_intel.tdx is off: enable TDX (and TME-MT) in the BIOS and boot with kvm_intel.tdx=1",
                ),
                None => r.push(
                    "tdx",
                    Status::Missing,
                    "no /sys/module/kvm_intel/parameters/tdx: kvm_intel is not loaded or the host kernel lacks TDX host support (Linux 6.16+)",
                ),
            },
            Tee::None => {}
        }

        if needs.gpus > 0 {
            if self.iommu_on() {
                r.push("iommu", Status::Ok, "IOMMU groups present");
            } else {
                r.push(
                    "iommu",
                    Status::Missing,
                    "the IOMMU is off (no /sys/kernel/iommu_groups): boot with amd_iommu=on or intel_iommu=on, and iommu=pt",
                );
            }
            if self.exists("/sys/bus/pci/drivers/vfio-pci") {
                r.push("vfio-pci", Status::Ok, "vfio-pci driver loaded");
            } else {
                r.push(
                    "vfio-pci",
                    Status::Missing,
                    "the vfio-pci driver is not loaded: run `modprobe vfio-pci`",
                );
            }
        }

        let (need, tee) = match needs.tee {
            Tee::Snp { .. } => (MIN_QEMU_SNP, "SEV-SNP"),
            Tee::Tdx { .. } => (MIN_QEMU_TDX, "TDX"),
            Tee::None => (MIN_QEMU_NONE, "development VMs"),
        };
        match &needs.qemu {
            Ok(v) if *v >= need => r.push("qemu", Status::Ok, format!("QEMU {v}")),
            Ok(v) => r.push(
                "qemu",
                Status::Missing,
                format!("QEMU {v} is too old for {tee}: need {need} or newer"),
            ),
            Err(e) => r.push(
                "qemu",
                Status::Missing,
                format!("{e}: install qemu-system-x86 (QEMU {need} or newer for {tee})"),
            ),
        }

        match &needs.firmware {
            Some(fw) if fw.is_file() => {
                r.push("ovmf", Status::Ok, format!("{} present", fw.display()))
            }
            Some(fw) => r.push(
                "ovmf",
                Status::Missing,
                format!(
                    "{} missing: rebuild the image (images/recipe/build.sh)",
                    fw.display()
                ),
            ),
            None => {}
        }
        r
    }
}

/// Runs `qemu --version` and parses it.
pub fn qemu_version(qemu: &Path) -> Result<QemuVersion, String> {
    let out = std::process::Command::new(qemu)
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", qemu.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    QemuVersion::parse(&text)
        .ok_or_else(|| format!("cannot read a version from `{} --version`", qemu.display()))
}

#[cfg(test)]
#[path = "preflight_tests.rs"]
mod tests;
