//! `silk-host run --dry-run`, `run` and `doctor` through the binary, on fake host roots
//! with a fake QEMU that prints what Debian bookworm's QEMU 7.2.22 prints: the whole
//! preflight report and the command line come out, with the exit codes --help states.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use silk_images::manifest::{Component, Manifest, SCHEMA};

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn both(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// An image (the synthetic AmdSev firmware, a stand-in kernel and initrd), a model disk,
/// a fake QEMU 7.2.22 and a host root shaped like this bookworm machine.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        let s = Setup {
            dir: tempfile::tempdir().unwrap(),
        };
        let img = s.path("image");
        std::fs::create_dir_all(&img).unwrap();
        std::fs::copy(
            repo().join("images/tests/data/snp/synthetic-amdsev.fd"),
            img.join("OVMF.fd"),
        )
        .unwrap();
        std::fs::write(img.join("vmlinuz"), b"not a real kernel").unwrap();
        std::fs::write(img.join("initrd.cpio"), b"070701 a small initrd").unwrap();
        let components = vec![
            Component::from_file(&img, "firmware", "OVMF.fd").unwrap(),
            Component::from_file(&img, "initrd", "initrd.cpio").unwrap(),
            Component::from_file(&img, "kernel", "vmlinuz").unwrap(),
        ];
        let kernel_cmdline = format!(
            "console=ttyS0 silk.components={}",
            Manifest::components_digest(&components)
        );
        let m = Manifest {
            components,
            inputs: vec![],
            kernel_cmdline,
            schema: SCHEMA.into(),
            source_date_epoch: 1_700_000_000,
        };
        std::fs::write(img.join("manifest.json"), m.to_pretty()).unwrap();
        std::fs::write(s.path("model.img"), b"disk").unwrap();
        script(
            &s.path("qemu"),
            "case \"$1\" in\n--version) echo 'QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)';;\n-object) printf 'List of user creatable objects:\\n  memory-backend-memfd\\n  sev-guest\\n';;\nesac\n",
        );
        let root = s.path("host");
        for (p, text) in [
            ("dev/kvm", ""),
            ("proc/cpuinfo", "processor : 0\nflags : fpu svm avx2\n"),
            ("proc/sys/kernel/osrelease", "6.1.0-28-amd64\n"),
            (
                "proc/cmdline",
                "BOOT_IMAGE=/boot/vmlinuz-6.1.0-28-amd64 ro quiet\n",
            ),
        ] {
            let f = root.join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, text).unwrap();
        }
        s
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn s(&self, p: &str) -> String {
        self.path(p).display().to_string()
    }

    fn silk_host(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_silk-host"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn run(&self, extra: &[&str]) -> Output {
        let (img, model, qemu, root) = (
            self.s("image"),
            self.s("model.img"),
            self.s("qemu"),
            self.s("host"),
        );
        let mut args = vec![
            "run",
            "--tee",
            "snp",
            "--image",
            &img,
            "--model",
            &model,
            "--listen",
            "127.0.0.1:0",
            "--forward-port",
            "40123",
            "--qemu",
            &qemu,
            "--host-root",
            &root,
        ];
        args.extend_from_slice(extra);
        self.silk_host(&args)
    }
}

#[test]
fn a_dry_run_on_a_too_old_qemu_prints_the_report_and_the_command_line_and_exits_1() {
    let s = Setup::new();
    let out = s.run(&["--dry-run"]);
    let text = both(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    for want in [
        "# preflight\n",
        "MISSING cpu",
        "MISSING kernel",
        "MISSING qemu       QEMU 7.2.22 is too old for SEV-SNP: need 9.1.0 or newer",
        "MISSING qemu-objects",
        "ok      ovmf",
        "NOT READY (missing: cpu, kernel, sev, sev-snp, iommu, qemu, qemu-objects)",
        "note: the command line below is for QEMU 9.1.0; found 7.2.22, which cannot run it",
        "# device plan\n",
        "# command line (QEMU 9.1.0)\n",
        "sev-snp-guest,id=sev0,cbitpos=51",
    ] {
        assert!(text.contains(want), "{want:?} not in\n{text}");
    }
    assert!(!text.contains("needs QEMU 9.1.0 or newer; found"), "{text}");

    let out = s.run(&["--dry-run", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["preflight"]["ready"], false);
    assert_eq!(v["plan"]["qemu_version"], "9.1.0");
    assert_eq!(
        v["notes"][0],
        "the command line below is for QEMU 9.1.0; found 7.2.22, which cannot run it"
    );
    assert!(v["command_line"]
        .as_str()
        .unwrap()
        .contains("sev-snp-guest"));
    let checks: Vec<&str> = v["preflight"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        checks,
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
}

#[test]
fn a_real_run_shows_the_whole_report_before_refusing_with_2() {
    let s = Setup::new();
    let out = s.run(&[]);
    let text = both(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("the host is not ready"), "{text}");
    assert!(
        text.contains("MISSING cpu") && text.contains("MISSING qemu"),
        "{text}"
    );
}

#[test]
fn a_dry_run_that_cannot_plan_exits_2() {
    let s = Setup::new();
    std::fs::write(s.path("image/vmlinuz"), b"changed").unwrap();
    let out = s.run(&["--dry-run"]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
}

#[test]
fn doctor_with_a_gpu_reads_its_group_and_nvidia_smi() {
    let s = Setup::new();
    let root = s.path("host");
    let gpu = root.join("sys/bus/pci/devices/0000:41:00.0");
    std::fs::create_dir_all(&gpu).unwrap();
    std::fs::write(gpu.join("class"), "0x030200\n").unwrap();
    let group = root.join("sys/kernel/iommu_groups/7/devices");
    std::fs::create_dir_all(&group).unwrap();
    std::os::unix::fs::symlink(&gpu, group.join("0000:41:00.0")).unwrap();
    std::os::unix::fs::symlink(
        root.join("sys/kernel/iommu_groups/7"),
        gpu.join("iommu_group"),
    )
    .unwrap();
    std::fs::create_dir_all(root.join("sys/bus/pci/drivers/vfio-pci")).unwrap();
    std::os::unix::fs::symlink(
        root.join("sys/bus/pci/drivers/vfio-pci"),
        gpu.join("driver"),
    )
    .unwrap();
    script(&s.path("nvidia-smi"), "echo 'CC status: OFF'\n");
    let (qemu, root, smi) = (s.s("qemu"), s.s("host"), s.s("nvidia-smi"));
    let args = [
        "doctor",
        "--tee",
        "tdx",
        "--gpu",
        "41:00.0",
        "--qemu",
        &qemu,
        "--nvidia-smi",
        &smi,
        "--host-root",
        &root,
        "--json",
    ];
    let out = s.silk_host(&args);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let check = |name: &str| {
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {v}"))
    };
    assert_eq!(check("iommu-group")["status"], "ok");
    assert_eq!(check("gpu-cc")["status"], "missing");
    assert!(check("gpu-cc")["detail"]
        .as_str()
        .unwrap()
        .contains("--gpu-bdf=0000:41:00.0 --set-cc-mode=on"));
    assert_eq!(check("qemu-objects")["status"], "missing");
    assert_eq!(
        check("ovmf")["status"],
        "warn",
        "no --image: the system's OVMF"
    );
    let text = s.silk_host(&args[..args.len() - 1]);
    let t = both(&text);
    assert_eq!(text.status.code(), Some(1), "{t}");
    assert!(
        t.contains("tdx: NOT READY (missing: cpu, kernel, cmdline, tdx"),
        "{t}"
    );
}
