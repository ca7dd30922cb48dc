//! Every check against fake host roots shaped like real hosts: a ready SEV-SNP host and a
//! ready TDX host, each with and without a GPU, and this Debian bookworm machine.

use std::os::unix::fs::symlink;

use super::*;

const GPU: &str = "0000:41:00.0";
const AUDIO: &str = "0000:41:00.1";
const NIC: &str = "0000:42:00.0";
const BRIDGE: &str = "0000:40:01.1";

/// What `qemu-system-x86_64 -object help` printed (QEMU 11.1.3, trixie-backports; cut).
const OBJECTS_11: &str = "List of user creatable objects:\n  memory-backend-file\n  memory-backend-memfd\n  memory-backend-ram\n  sev-guest\n  sev-snp-guest\n  tdx-guest\n";
/// The same from Debian bookworm's QEMU 7.2.22 (cut).
const OBJECTS_7: &str = "List of user creatable objects:\n  memory-backend-file\n  memory-backend-memfd\n  memory-backend-ram\n  sev-guest\n";

fn data(p: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../images/tests/data")).join(p)
}

struct Host {
    dir: tempfile::TempDir,
    gpus: Vec<PciAddr>,
    nvidia_smi: Option<Result<String, String>>,
    objects: &'static str,
    qemu: QemuVersion,
}

impl Host {
    fn empty() -> Self {
        Host {
            dir: tempfile::tempdir().unwrap(),
            gpus: vec![],
            nvidia_smi: None,
            objects: OBJECTS_11,
            qemu: QemuVersion::new(11, 1, 3),
        }
    }

    fn file(&self, p: &str, content: &str) -> &Self {
        let path = self.dir.path().join(p.trim_start_matches('/'));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
        self
    }

    fn link(&self, p: &str, target: &str) {
        let path = self.dir.path().join(p.trim_start_matches('/'));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(&path);
        symlink(self.dir.path().join(target.trim_start_matches('/')), path).unwrap();
    }

    /// An EPYC host with SNP enabled in the BIOS, Linux 6.12 and the parameters set.
    fn snp() -> Self {
        let h = Self::empty();
        h.file("/dev/kvm", "")
            .file("/dev/sev", "")
            .file("/proc/cpuinfo", "processor : 0\nvendor_id : AuthenticAMD\nflags : fpu svm sev sev_es sev_snp\n")
            .file("/proc/sys/kernel/osrelease", "6.12.48+deb13-amd64\n")
            .file("/proc/cmdline", "BOOT_IMAGE=/vmlinuz-6.12 root=/dev/sda1 ro mem_encrypt=on kvm_amd.sev=1 kvm_amd.sev_snp=1 amd_iommu=on iommu=pt\n")
            .file("/sys/module/kvm_amd/parameters/sev", "Y\n")
            .file("/sys/module/kvm_amd/parameters/sev_es", "Y\n")
            .file("/sys/module/kvm_amd/parameters/sev_snp", "Y\n");
        std::fs::create_dir_all(h.dir.path().join("sys/kernel/iommu_groups/0")).unwrap();
        h
    }

    /// A Xeon host with TDX enabled in the BIOS, Linux 6.16 and kvm_intel.tdx=1.
    fn tdx() -> Self {
        let h = Self::empty();
        h.file("/dev/kvm", "")
            .file(
                "/proc/cpuinfo",
                "processor : 0\nvendor_id : GenuineIntel\nflags : fpu vmx tdx_host_platform\n",
            )
            .file("/proc/sys/kernel/osrelease", "6.16.9+deb13-amd64\n")
            .file(
                "/proc/cmdline",
                "BOOT_IMAGE=/vmlinuz ro kvm_intel.tdx=1 intel_iommu=on iommu=pt\n",
            )
            .file("/sys/module/kvm_intel/parameters/tdx", "Y\n")
            .file("/sys/module/kvm/parameters/enable_virt_at_load", "Y\n");
        std::fs::create_dir_all(h.dir.path().join("sys/kernel/iommu_groups/0")).unwrap();
        h
    }

    /// This machine's shape: Debian bookworm (Linux 6.1, QEMU 7.2.22), no SEV flags.
    fn bookworm() -> Self {
        let mut h = Self::empty();
        h.file(
            "/proc/cpuinfo",
            "processor : 0\nvendor_id : AuthenticAMD\nflags : fpu sse avx2 fma\n",
        )
        .file("/proc/sys/kernel/osrelease", "6.1.0-28-amd64\n")
        .file(
            "/proc/cmdline",
            "BOOT_IMAGE=/boot/vmlinuz-6.1.0-28-amd64 root=/dev/sda1 ro quiet\n",
        );
        h.objects = OBJECTS_7;
        h.qemu = QemuVersion::new(7, 2, 22);
        h
    }

    /// A GPU and its audio function in one IOMMU group (with a bridge), `extra` there too.
    fn gpu(&mut self, driver: &str, extra: Option<(&str, &str, &str)>) {
        std::fs::create_dir_all(self.dir.path().join("sys/bus/pci/drivers/vfio-pci")).unwrap();
        let mut members = vec![
            (GPU, "0x030200", Some(driver)),
            (AUDIO, "0x040300", Some(driver)),
            (BRIDGE, "0x060400", Some("pcieport")),
        ];
        if let Some((addr, class, drv)) = extra {
            members.push((addr, class, Some(drv)));
        }
        for (addr, class, drv) in members {
            let dev = format!("/sys/bus/pci/devices/{addr}");
            self.file(&format!("{dev}/class"), &format!("{class}\n"));
            self.link(&format!("{dev}/iommu_group"), "/sys/kernel/iommu_groups/12");
            self.link(&format!("/sys/kernel/iommu_groups/12/devices/{addr}"), &dev);
            if let Some(d) = drv {
                std::fs::create_dir_all(self.dir.path().join(format!("sys/bus/pci/drivers/{d}")))
                    .unwrap();
                self.link(
                    &format!("{dev}/driver"),
                    &format!("/sys/bus/pci/drivers/{d}"),
                );
            }
        }
        self.gpus = vec![GPU.parse().unwrap()];
        self.nvidia_smi = Some(Ok("CC status: ON\n".into()));
    }

    fn check(&self, tee: &Tee, firmware: Option<PathBuf>) -> Report {
        HostRoot::new(self.dir.path()).check(&Needs {
            tee,
            gpus: &self.gpus,
            qemu: Ok(self.qemu),
            qemu_objects: Some(Ok(self.objects.into())),
            nvidia_smi: self.nvidia_smi.clone(),
            firmware,
        })
    }
}

fn names(r: &Report) -> Vec<&'static str> {
    r.checks.iter().map(|c| c.name).collect()
}

fn detail<'a>(r: &'a Report, name: &str) -> (&'a str, Status) {
    let c = r
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name} in\n{r}"));
    (&c.detail, c.status)
}

#[test]
fn a_ready_snp_host_passes_every_check() {
    let r = Host::snp().check(&Tee::snp(), Some(data("snp/synthetic-amdsev.fd")));
    assert!(r.ok(), "{r}");
    assert!(r.checks.iter().all(|c| c.status == Status::Ok), "{r}");
    assert_eq!(
        names(&r),
        [
            "kvm",
            "cpu",
            "kernel",
            "cmdline",
            "sev",
            "sev-snp",
            "iommu",
            "qemu",
            "qemu-objects",
            "ovmf"
        ]
    );
    assert!(detail(&r, "ovmf").0.contains("kernel-hashes page"));
}

#[test]
fn a_ready_snp_host_with_a_gpu() {
    let mut h = Host::snp();
    h.gpu("vfio-pci", None);
    let r = h.check(&Tee::snp(), Some(data("snp/synthetic-amdsev.fd")));
    assert!(r.checks.iter().all(|c| c.status == Status::Ok), "{r}");
    let (group, _) = detail(&r, "iommu-group");
    assert!(
        group.contains("IOMMU group 12") && group.contains(AUDIO),
        "{group}"
    );
    assert!(names(&r).ends_with(&[
        "vfio-pci",
        "iommu-group",
        "gpu-cc",
        "qemu",
        "qemu-objects",
        "ovmf"
    ]));
}

#[test]
fn a_ready_tdx_host_with_and_without_a_gpu() {
    let mut h = Host::tdx();
    let r = h.check(&Tee::tdx(), Some(data("tdx/synthetic-tdvf.fd")));
    assert!(r.checks.iter().all(|c| c.status == Status::Ok), "{r}");
    assert_eq!(
        names(&r),
        [
            "kvm",
            "cpu",
            "kernel",
            "cmdline",
            "tdx",
            "qemu",
            "qemu-objects",
            "ovmf"
        ]
    );
    h.gpu("vfio-pci", None);
    let r = h.check(&Tee::tdx(), Some(data("tdx/synthetic-tdvf.fd")));
    assert!(r.checks.iter().all(|c| c.status == Status::Ok), "{r}");
    // The SNP firmware is no TDVF.
    let r = h.check(&Tee::tdx(), Some(data("snp/synthetic-amdsev.fd")));
    assert_eq!(detail(&r, "ovmf").1, Status::Missing, "{r}");
}

#[test]
fn this_bookworm_machine_is_told_each_fix_for_snp() {
    let r = Host::bookworm().check(&Tee::snp(), None);
    let missing: Vec<_> = r.missing().map(|c| c.name).collect();
    assert_eq!(
        missing,
        [
            "kvm",
            "cpu",
            "kernel",
            "sev",
            "sev-snp",
            "iommu",
            "qemu",
            "qemu-objects"
        ]
    );
    let text = r.to_string();
    for fix in [
        "no svm, sev, sev_es, sev_snp in /proc/cpuinfo",
        "Linux 6.1.0-28-amd64 predates SEV-SNP host support (6.11)",
        "QEMU 7.2.22 is too old for SEV-SNP: need 9.1.0 or newer; Debian bookworm-backports has 10.0",
        "`-object help` lists no sev-snp-guest",
        "images/recipe/build-ovmf-amdsev.sh",
    ] {
        assert!(text.contains(fix), "{fix:?} not in\n{text}");
    }
    // Without an image, the firmware check says where firmware comes from (a warning).
    assert_eq!(detail(&r, "ovmf").1, Status::Warn);
}

#[test]
fn this_bookworm_machine_is_told_each_fix_for_tdx() {
    let mut h = Host::bookworm();
    h.gpu("nvidia", None);
    h.nvidia_smi = None;
    let r = h.check(&Tee::tdx(), None);
    let text = r.to_string();
    for fix in [
        "no vmx in /proc/cpuinfo",
        "predates TDX host support (6.16)",
        "no kvm_intel.tdx=1 (TDX is off by default)",
        "Debian trixie-backports has 11.1",
        "`-object help` lists no tdx-guest",
        "nvidia_gpu_tools.py --gpu-bdf=0000:41:00.0 --query-cc-mode",
    ] {
        assert!(text.contains(fix), "{fix:?} not in\n{text}");
    }
    let (group, status) = detail(&r, "iommu-group");
    assert_eq!(status, Status::Warn, "{group}");
    assert!(
        group.contains("moves 0000:41:00.0 from nvidia, 0000:41:00.1 from nvidia"),
        "{group}"
    );
    assert_eq!(detail(&r, "gpu-cc").1, Status::Warn);
}

#[test]
fn snp_flags_and_parameters_name_the_bios_and_boot_fixes() {
    let h = Host::snp();
    h.file("/proc/cpuinfo", "flags : svm sev sev_es\n")
        .file("/proc/cmdline", "ro sev=nosnp kvm_amd.sev_snp=0\n")
        .file("/sys/module/kvm_amd/parameters/sev_es", "N\n");
    let r = h.check(&Tee::snp(), None);
    let (cpu, _) = detail(&r, "cpu");
    assert!(
        cpu.contains("no sev_snp") && cpu.contains("RMP table"),
        "{cpu}"
    );
    let (cmdline, status) = detail(&r, "cmdline");
    assert_eq!(status, Status::Missing);
    assert!(
        cmdline.contains("sev=nosnp turns SEV-SNP off")
            && cmdline.contains("set kvm_amd.sev_snp=1"),
        "{cmdline}"
    );
    let (param, _) = detail(&r, "sev-snp");
    assert!(param.contains("kvm_amd.sev_es is off"), "{param}");
}

#[test]
fn tdx_without_bios_support_or_virt_at_load() {
    let h = Host::tdx();
    h.file("/proc/cpuinfo", "flags : vmx\n")
        .file("/sys/module/kvm/parameters/enable_virt_at_load", "N\n")
        .file(
            "/proc/cmdline",
            "ro kvm_intel.tdx=1 kvm.enable_virt_at_load=0\n",
        );
    let r = h.check(&Tee::tdx(), None);
    assert!(detail(&r, "cpu").0.contains("TME-MT"), "{r}");
    assert!(detail(&r, "tdx").0.contains("enable_virt_at_load=N"), "{r}");
    assert!(
        detail(&r, "cmdline")
            .0
            .contains("kvm.enable_virt_at_load=0"),
        "{r}"
    );
}

#[test]
fn a_group_shared_with_a_network_card_is_named() {
    let mut h = Host::snp();
    h.gpu("vfio-pci", Some((NIC, "0x020000", "ixgbe")));
    let r = h.check(&Tee::snp(), None);
    let (group, status) = detail(&r, "iommu-group");
    assert_eq!(status, Status::Missing);
    assert!(
        group.contains("also holds 0000:42:00.0 (Ethernet controller, ixgbe)"),
        "{group}"
    );
    assert!(group.contains("ACS"), "{group}");
}

#[test]
fn the_gpu_cc_mode_from_nvidia_smi() {
    let mut h = Host::snp();
    h.gpu("vfio-pci", None);
    for (out, status, says) in [
        (Ok("CC status: ON\n"), Status::Ok, "CC status ON"),
        (
            Ok("CC status: OFF\n"),
            Status::Missing,
            "--set-cc-mode=on --reset-after-cc-mode-switch",
        ),
        (Ok("CC status: DEVTOOLS\n"), Status::Missing, "devtools"),
        (Ok("something else\n"), Status::Warn, "--query-cc-mode"),
        (
            Err("exit status: 9: NVIDIA-SMI has failed"),
            Status::Warn,
            "no host driver",
        ),
    ] {
        h.nvidia_smi = Some(out.map(str::to_owned).map_err(str::to_owned));
        let r = h.check(&Tee::snp(), None);
        let (d, s) = detail(&r, "gpu-cc");
        assert_eq!(s, status, "{d}");
        assert!(d.contains(says), "{says:?} not in {d}");
    }
}
