//! Preflight against fake host roots.

use super::*;

struct Fake {
    dir: tempfile::TempDir,
}

impl Fake {
    fn new() -> Self {
        let f = Fake {
            dir: tempfile::tempdir().unwrap(),
        };
        f.file("/img/OVMF.fd", "fw");
        f
    }
    fn file(&self, p: &str, content: &str) -> &Self {
        let path = self.dir.path().join(p.trim_start_matches('/'));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
        self
    }
    fn dir(&self, p: &str) -> &Self {
        std::fs::create_dir_all(self.dir.path().join(p.trim_start_matches('/'))).unwrap();
        self
    }
    fn root(&self) -> HostRoot {
        HostRoot::new(self.dir.path())
    }
    fn firmware(&self) -> PathBuf {
        self.dir.path().join("img/OVMF.fd")
    }
    fn check(&self, tee: &Tee, gpus: usize, qemu: Result<QemuVersion, String>) -> Report {
        let gpus = &[GPU_ADDR][..gpus.min(1)];
        self.root().check(&Needs {
            tee,
            gpus,
            qemu,
            qemu_objects: None,
            nvidia_smi: Some(Ok("CC status: ON\n".into())),
            firmware: Some(self.firmware()),
        })
    }
}

fn status(r: &Report, name: &str) -> Status {
    r.checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name} in\n{r}"))
        .status
}

const SVM: &str = "processor : 0\nflags : fpu vme svm sev sev_es\n";
const GPU_ADDR: PciAddr = PciAddr {
    domain: 0,
    bus: 0x41,
    device: 0,
    function: 0,
};

#[test]
fn snp_host_ready() {
    let f = Fake::new();
    f.file("/dev/kvm", "")
        .file("/dev/sev", "")
        .file("/proc/cpuinfo", SVM)
        .file("/sys/module/kvm_amd/parameters/sev_snp", "Y\n")
        .dir("/sys/kernel/iommu_groups/3")
        .dir("/sys/bus/pci/drivers/vfio-pci");
    let r = f.check(&Tee::snp(), 0, Ok(QemuVersion::new(9, 2, 0)));
    let names: Vec<_> = r.checks.iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        ["kvm", "cpu", "kernel", "cmdline", "sev", "sev-snp", "iommu", "qemu", "ovmf"]
    );
}

#[test]
fn snp_host_missing_everything_says_what() {
    let f = Fake::new();
    f.file("/sys/module/kvm_amd/parameters/sev_snp", "N\n");
    let r = f.check(&Tee::snp(), 1, Ok(QemuVersion::new(8, 2, 2)));
    assert!(!r.ok());
    let missing: Vec<_> = r.missing().map(|c| c.name).collect();
    assert_eq!(
        missing,
        [
            "kvm",
            "cpu",
            "sev",
            "sev-snp",
            "iommu",
            "vfio-pci",
            "iommu-group",
            "qemu",
            "ovmf"
        ]
    );
    let text = r.to_string();
    assert!(text.contains("kvm_amd.sev_snp is off"), "{text}");
    assert!(
        text.contains("QEMU 8.2.2 is too old for SEV-SNP: need 9.1.0"),
        "{text}"
    );
    assert!(text.contains("modprobe vfio-pci"), "{text}");
    assert!(text.contains("amd_iommu=on"), "{text}");
}

#[test]
fn tdx_checks_the_kvm_intel_parameter() {
    let f = Fake::new();
    f.file("/dev/kvm", "")
        .file("/proc/cpuinfo", "flags : vmx tdx_host_platform\n")
        .file("/sys/module/kvm_intel/parameters/tdx", "N\n");
    let r = f.check(&Tee::tdx(), 0, Ok(QemuVersion::new(10, 1, 0)));
    assert_eq!(status(&r, "tdx"), Status::Missing);
    assert!(r.to_string().contains("kvm_intel.tdx=1"));
    f.file("/sys/module/kvm_intel/parameters/tdx", "Y\n");
    let r = f.check(&Tee::tdx(), 0, Ok(QemuVersion::new(10, 1, 0)));
    assert_eq!(status(&r, "tdx"), Status::Ok, "{r}");
    // No GPU: no IOMMU checks.
    assert!(r.checks.iter().all(|c| c.name != "iommu"));
}

#[test]
fn tdx_without_module_param_file() {
    let f = Fake::new();
    f.file("/dev/kvm", "")
        .file("/proc/cpuinfo", "flags : vmx\n");
    let r = f.check(&Tee::tdx(), 0, Ok(QemuVersion::new(10, 1, 0)));
    assert!(r.to_string().contains("kvm_intel is not loaded"));
}

#[test]
fn none_falls_back_to_tcg_with_a_warning() {
    let f = Fake::new();
    // A /dev/kvm without vmx/svm (a PVM sandbox): not usable by QEMU.
    f.file("/dev/kvm", "")
        .file("/proc/cpuinfo", "flags : fpu sse\n");
    assert!(!f.root().kvm_usable());
    let r = f.check(&Tee::None, 0, Ok(QemuVersion::new(7, 2, 22)));
    assert!(r.ok(), "{r}");
    assert_eq!(status(&r, "kvm"), Status::Warn);
    f.file("/proc/cpuinfo", SVM);
    assert!(f.root().kvm_usable());
}

#[test]
fn missing_qemu_and_firmware() {
    let f = Fake::new();
    std::fs::remove_file(f.firmware()).unwrap();
    let r = f.check(
        &Tee::None,
        0,
        Err("cannot run qemu-system-x86_64: not found".into()),
    );
    let text = r.to_string();
    assert!(text.contains("install QEMU 7.2.0 or newer"), "{text}");
    assert!(text.contains("rebuild the image"), "{text}");
    assert_eq!(r.missing().count(), 2);
}
