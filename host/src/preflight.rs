//! Host checks before launch: each names what is missing and how to fix it.
//!
//! The checks read files under a root directory (normally `/`: `/proc`, `/sys`, `/dev`)
//! and take what commands print (`qemu-system-x86_64 --version` and `-object help`,
//! `nvidia-smi conf-compute -f`) as inputs, so the tests run them against fake roots and
//! recorded output. [`platform`] reads the CPU, kernel and command line; [`gpu`] the IOMMU
//! groups and the GPUs' confidential-computing mode.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::pci::PciAddr;
use crate::qemu::{QemuVersion, Tee, MIN_QEMU_NONE, MIN_QEMU_SNP, MIN_QEMU_TDX};

pub mod gpu;
pub mod platform;

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
    /// The GPUs that will be passed through.
    pub gpus: &'a [PciAddr],
    /// `qemu-system-x86_64 --version`'s parsed result, or why it could not be had.
    pub qemu: Result<QemuVersion, String>,
    /// What `qemu-system-x86_64 -object help` printed (`None`: not asked).
    pub qemu_objects: Option<Result<String, String>>,
    /// What `nvidia-smi conf-compute -f` printed (`None`: nvidia-smi is not installed).
    pub nvidia_smi: Option<Result<String, String>>,
    /// The image's firmware file, when there is an image to check (`silk-host doctor`
    /// may run without one).
    pub firmware: Option<PathBuf>,
}

impl<'a> Needs<'a> {
    /// Runs the commands whose output the checks read: `qemu --version`, `qemu -object
    /// help` and, with GPUs, `nvidia_smi conf-compute -f`.
    pub fn probe(
        tee: &'a Tee,
        gpus: &'a [PciAddr],
        qemu: &Path,
        nvidia_smi: &Path,
        firmware: Option<PathBuf>,
    ) -> Self {
        let version = qemu_version(qemu);
        let qemu_objects = version.is_ok().then(|| qemu_objects(qemu));
        let nvidia_smi = if gpus.is_empty() {
            None
        } else {
            gpu::nvidia_smi_cc(nvidia_smi)
        };
        Needs {
            tee,
            gpus,
            qemu: version,
            qemu_objects,
            nvidia_smi,
            firmware,
        }
    }
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

    pub(crate) fn path(&self, p: &str) -> PathBuf {
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
                platform::cpu_flags(&s)
                    .iter()
                    .any(|f| *f == "vmx" || *f == "svm")
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

        self.check_cpu(needs.tee, &mut r);
        self.check_kernel(needs.tee, &mut r);
        self.check_cmdline(needs.tee, needs.gpus.len(), &mut r);

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
                let off: Vec<&str> = ["sev", "sev_es"]
                    .into_iter()
                    .filter(|p| {
                        self.param_on(&format!("/sys/module/kvm_amd/parameters/{p}")) == Some(false)
                    })
                    .collect();
                match self.param_on("/sys/module/kvm_amd/parameters/sev_snp") {
                    Some(true) if !off.is_empty() => r.push(
                        "sev-snp",
                        Status::Missing,
                        format!(
                            "kvm_amd.sev_snp=Y but kvm_amd.{} is off: SEV-SNP builds on SEV and SEV-ES; set kvm_amd.sev=1 kvm_amd.sev_es=1 (and check the BIOS gives them ASIDs)",
                            off.join(", kvm_amd.")
                        ),
                    ),
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
                Some(true)
                    if self.param_on("/sys/module/kvm/parameters/enable_virt_at_load")
                        == Some(false) =>
                {
                    r.push(
                        "tdx",
                        Status::Missing,
                        "kvm_intel.tdx=Y but kvm.enable_virt_at_load=N: TDX needs it on (remove kvm.enable_virt_at_load=0)",
                    )
                }
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

        let gpus = !needs.gpus.is_empty();
        // SEV-SNP needs the AMD IOMMU even without a GPU: Linux will not enable SNP without it.
        if gpus || matches!(needs.tee, Tee::Snp { .. }) {
            if self.iommu_on() {
                r.push("iommu", Status::Ok, "IOMMU groups present");
            } else {
                r.push(
                    "iommu",
                    Status::Missing,
                    "the IOMMU is off (no /sys/kernel/iommu_groups): enable it in the BIOS (AMD IOMMU / VT-d) and boot with amd_iommu=on or intel_iommu=on, and iommu=pt",
                );
            }
        }
        if gpus {
            if self.exists("/sys/bus/pci/drivers/vfio-pci") {
                r.push("vfio-pci", Status::Ok, "vfio-pci driver loaded");
            } else {
                r.push(
                    "vfio-pci",
                    Status::Missing,
                    "the vfio-pci driver is not loaded: run `modprobe vfio-pci`",
                );
            }
            for gpu in needs.gpus {
                self.check_iommu_group(*gpu, &mut r);
            }
            self.check_gpu_cc(needs.gpus, needs.nvidia_smi.as_ref(), &mut r);
        }

        let (need, tee) = match needs.tee {
            Tee::Snp { .. } => (MIN_QEMU_SNP, "SEV-SNP"),
            Tee::Tdx { .. } => (MIN_QEMU_TDX, "TDX"),
            Tee::None => (MIN_QEMU_NONE, "development VMs"),
        };
        let get = qemu_source(needs.tee);
        match &needs.qemu {
            Ok(v) if *v >= need => r.push("qemu", Status::Ok, format!("QEMU {v}")),
            Ok(v) => r.push(
                "qemu",
                Status::Missing,
                format!("QEMU {v} is too old for {tee}: need {need} or newer; {get}"),
            ),
            Err(e) => r.push(
                "qemu",
                Status::Missing,
                format!("{e}: install QEMU {need} or newer for {tee}; {get}"),
            ),
        }
        if let Some(Ok(help)) = &needs.qemu_objects {
            check_qemu_objects(needs.tee, help, &mut r);
        }

        match &needs.firmware {
            Some(fw) => check_firmware(needs.tee, fw, &mut r),
            None => self.check_system_ovmf(needs.tee, &mut r),
        }
        r
    }

    /// Without an image: where the firmware an image needs comes from.
    fn check_system_ovmf(&self, tee: &Tee, r: &mut Report) {
        let found: Vec<String> = ["/usr/share/ovmf/OVMF.fd", "/usr/share/OVMF/OVMF_CODE_4M.fd"]
            .into_iter()
            .filter(|p| self.exists(p))
            .map(str::to_owned)
            .collect();
        let need = match tee {
            Tee::Snp { .. } => "an SNP image needs an AmdSev OVMF, which Debian does not package: images/recipe/build-ovmf-amdsev.sh builds one",
            Tee::Tdx { .. } => "Debian's OVMF.fd carries TDVF metadata and serves TDX images",
            Tee::None => "Debian's OVMF.fd serves development images",
        };
        if found.is_empty() {
            r.push(
                "ovmf",
                Status::Warn,
                format!("no system OVMF (apt install ovmf, to build images here); {need}"),
            );
        } else {
            r.push("ovmf", Status::Ok, format!("{}; {need}", found.join(", ")));
        }
    }
}

/// Where a Debian host gets a QEMU new enough for the TEE (checked with `apt-cache
/// madison` against the Debian archive; docs/operator.md has the table).
fn qemu_source(tee: &Tee) -> &'static str {
    match tee {
        Tee::Tdx { .. } => "Debian trixie-backports has 11.1 (trixie's own 10.0 predates TDX)",
        Tee::Snp { .. } => "Debian bookworm-backports has 10.0 (apt install -t bookworm-backports qemu-system-x86), trixie 10.0, trixie-backports 11.1",
        Tee::None => "Debian's qemu-system-x86 works",
    }
}

/// The QEMU object types the TEE's command line creates.
pub fn needed_objects(tee: &Tee) -> &'static [&'static str] {
    match tee {
        Tee::Snp { .. } => &["sev-snp-guest", "memory-backend-memfd"],
        Tee::Tdx { .. } => &["tdx-guest"],
        Tee::None => &[],
    }
}

/// Checks `qemu-system-x86_64 -object help` lists the object types the TEE needs (a
/// distribution may build QEMU without them, whatever its version).
fn check_qemu_objects(tee: &Tee, help: &str, r: &mut Report) {
    let needed = needed_objects(tee);
    if needed.is_empty() {
        return;
    }
    let listed: Vec<&str> = help.split_whitespace().collect();
    let lacking: Vec<&str> = needed
        .iter()
        .copied()
        .filter(|o| !listed.contains(o))
        .collect();
    if lacking.is_empty() {
        r.push("qemu-objects", Status::Ok, needed.join(", "));
    } else {
        r.push(
            "qemu-objects",
            Status::Missing,
            format!(
                "`-object help` lists no {}: this QEMU was built without them; {}",
                lacking.join(", "),
                qemu_source(tee)
            ),
        );
    }
}

/// The image's firmware: present, and for SNP and TDX a build that can launch the guest.
fn check_firmware(tee: &Tee, fw: &Path, r: &mut Report) {
    let bytes = match std::fs::read(fw) {
        Ok(b) => b,
        Err(e) => {
            r.push(
                "ovmf",
                Status::Missing,
                format!(
                    "{}: {e}: rebuild the image (images/recipe/build.sh)",
                    fw.display()
                ),
            );
            return;
        }
    };
    let shown = fw.display();
    match tee {
        Tee::Snp { .. } => match silk_images::snp::SevFirmware::parse(&bytes) {
            Ok(f) if f.measures_kernel() => r.push(
                "ovmf",
                Status::Ok,
                format!("{shown}: an AmdSev build with a kernel-hashes page"),
            ),
            Ok(_) => r.push(
                "ovmf",
                Status::Missing,
                format!("{shown} has SEV metadata but no kernel-hashes page, so it cannot measure the kernel: build an AmdSev OVMF (images/recipe/build-ovmf-amdsev.sh) and rebuild the image with --firmware"),
            ),
            Err(e) => r.push(
                "ovmf",
                Status::Missing,
                format!("{shown} is no SEV firmware ({e}): build an AmdSev OVMF (images/recipe/build-ovmf-amdsev.sh) and rebuild the image with --firmware"),
            ),
        },
        Tee::Tdx { .. } => match silk_images::tdx::tdvf_sections(&bytes) {
            Ok(_) => r.push("ovmf", Status::Ok, format!("{shown}: carries TDVF metadata")),
            Err(e) => r.push(
                "ovmf",
                Status::Missing,
                format!("{shown} has no TDVF metadata ({e}): rebuild the image with a TDX-capable OVMF (Debian's OVMF.fd)"),
            ),
        },
        Tee::None => r.push("ovmf", Status::Ok, format!("{shown} present")),
    }
}

/// Runs `qemu -object help` (what object types this QEMU was built with).
pub fn qemu_objects(qemu: &Path) -> Result<String, String> {
    let out = std::process::Command::new(qemu)
        .args(["-object", "help"])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", qemu.display()))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
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

#[cfg(test)]
#[path = "preflight/host_tests.rs"]
mod host_tests;
