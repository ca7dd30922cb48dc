//! Golden tests: the exact QEMU arguments per platform.

use super::*;

fn plan(tee: Tee, accel: Accel, version: QemuVersion) -> VmPlan {
    VmPlan {
        tee,
        accel,
        qemu_version: version,
        vcpus: 4,
        memory_mib: 8192,
        boot: BootFiles {
            firmware: "/img/OVMF.fd".into(),
            kernel: "/img/vmlinuz".into(),
            initrd: "/img/initrd.cpio".into(),
            cmdline: "console=ttyS0 silk.evidence=sev-guest".into(),
        },
        model_disk: "/models/smollm2.img".into(),
        gpus: vec![],
        forward: "127.0.0.1:40443".parse().unwrap(),
        guest_outbound: false,
    }
}

fn common_tail(virtio: &str) -> Vec<String> {
    [
        "-bios",
        "/img/OVMF.fd",
        "-kernel",
        "/img/vmlinuz",
        "-initrd",
        "/img/initrd.cpio",
        "-append",
        "console=ttyS0 silk.evidence=sev-guest",
        "-drive",
        "file=/models/smollm2.img,if=none,id=model,format=raw,readonly=on",
        "-device",
        &format!("virtio-blk-pci,drive=model,serial=silk-model{virtio}"),
        "-netdev",
        "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:40443-10.0.2.15:8443",
        "-device",
        &format!("virtio-net-pci,netdev=net0{virtio}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn head(machine: &str, accel: &str, cpu: &str) -> Vec<String> {
    [
        "-name",
        "silk-guest",
        "-machine",
        machine,
        "-accel",
        accel,
        "-cpu",
        cpu,
        "-smp",
        "4",
        "-m",
        "8192M",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

const CC_VIRTIO: &str = ",disable-legacy=on,iommu_platform=on";

#[test]
fn snp_golden() {
    let args = plan(Tee::snp(), Accel::Kvm, QemuVersion::new(9, 2, 0))
        .args()
        .unwrap();
    let mut want = head(
        "q35,confidential-guest-support=sev0,memory-backend=ram1,vmport=off",
        "kvm",
        "EPYC-v4",
    );
    want.extend(
        [
            "-object",
            "memory-backend-memfd,id=ram1,size=8192M,share=true,prealloc=false",
            "-object",
            "sev-snp-guest,id=sev0,cbitpos=51,reduced-phys-bits=1,kernel-hashes=on",
        ]
        .map(String::from),
    );
    want.extend(common_tail(CC_VIRTIO));
    assert_eq!(args, want);
}

#[test]
fn snp_with_policy_and_two_gpus() {
    let mut p = plan(
        Tee::Snp {
            cbitpos: 51,
            reduced_phys_bits: 1,
            policy: Some(0x30000),
        },
        Accel::Kvm,
        QemuVersion::new(10, 0, 0),
    );
    p.gpus = vec!["0000:41:00.0".parse().unwrap(), "c1:00.0".parse().unwrap()];
    let args = p.args().unwrap();
    assert!(args.contains(
        &"sev-snp-guest,id=sev0,cbitpos=51,reduced-phys-bits=1,kernel-hashes=on,policy=0x30000"
            .to_string()
    ));
    let tail: Vec<&str> = args[args.len() - 10..].iter().map(String::as_str).collect();
    assert_eq!(
        tail,
        [
            "-device",
            "pcie-root-port,id=gpu-port0,bus=pcie.0,chassis=1,slot=1",
            "-device",
            "vfio-pci,host=0000:41:00.0,bus=gpu-port0",
            "-device",
            "pcie-root-port,id=gpu-port1,bus=pcie.0,chassis=2,slot=2",
            "-device",
            "vfio-pci,host=0000:c1:00.0,bus=gpu-port1",
            "-fw_cfg",
            "name=opt/ovmf/X-PciMmio64Mb,string=262144",
        ]
    );
}

#[test]
fn tdx_golden() {
    let args = plan(Tee::tdx(), Accel::Kvm, QemuVersion::new(10, 1, 0))
        .args()
        .unwrap();
    let mut want = head(
        "q35,confidential-guest-support=tdx0,kernel-irqchip=split,hpet=off",
        "kvm",
        "host",
    );
    want.extend(
        [
            "-object",
            r#"{"qom-type":"tdx-guest","id":"tdx0","quote-generation-socket":{"type":"vsock","cid":"2","port":"4050"}}"#,
        ]
        .map(String::from),
    );
    want.extend(common_tail(CC_VIRTIO));
    assert_eq!(args, want);
}

#[test]
fn tdx_unix_quote_socket_and_gpu() {
    let mut p = plan(
        Tee::Tdx {
            quote_socket: Some(QuoteSocket::Unix("/var/run/tdx-qgs/qgs.socket".into())),
        },
        Accel::Kvm,
        QemuVersion::new(10, 1, 0),
    );
    p.gpus = vec!["0000:17:00.0".parse().unwrap()];
    let args = p.args().unwrap();
    assert!(args.contains(
        &r#"{"qom-type":"tdx-guest","id":"tdx0","quote-generation-socket":{"type":"unix","path":"/var/run/tdx-qgs/qgs.socket"}}"#
            .to_string()
    ));
    assert!(args.contains(&"vfio-pci,host=0000:17:00.0,bus=gpu-port0".to_string()));
    assert!(args.contains(&"name=opt/ovmf/X-PciMmio64Mb,string=262144".to_string()));
}

#[test]
fn none_tcg_golden() {
    let mut p = plan(Tee::None, Accel::Tcg, QemuVersion::new(7, 2, 22));
    p.vcpus = 2;
    p.memory_mib = 1024;
    let args = p.args().unwrap();
    let mut want = head("q35", "tcg", "max");
    want[9] = "2".into();
    want[11] = "1024M".into();
    want.extend(common_tail(""));
    assert_eq!(args, want);
}

#[test]
fn none_kvm_uses_host_cpu_and_outbound_toggle() {
    let mut p = plan(Tee::None, Accel::Kvm, QemuVersion::new(8, 2, 0));
    p.guest_outbound = true;
    let args = p.args().unwrap();
    assert_eq!(args[7], "host");
    assert!(args.contains(
        &"user,id=net0,restrict=off,hostfwd=tcp:127.0.0.1:40443-10.0.2.15:8443".to_string()
    ));
}

#[test]
fn confidential_guests_need_kvm_and_new_qemu() {
    let err = plan(Tee::snp(), Accel::Tcg, QemuVersion::new(9, 2, 0))
        .args()
        .unwrap_err();
    assert_eq!(err, PlanError::NeedsKvm("snp"));
    let err = plan(Tee::snp(), Accel::Kvm, QemuVersion::new(8, 2, 2))
        .args()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("needs QEMU 9.1.0 or newer; found 8.2.2"),
        "{err}"
    );
    let err = plan(Tee::tdx(), Accel::Kvm, QemuVersion::new(9, 2, 0))
        .args()
        .unwrap_err();
    assert!(matches!(err, PlanError::QemuTooOld { tee: "tdx", .. }));
}

#[test]
fn rejects_bad_sizes_and_paths() {
    let mut p = plan(Tee::None, Accel::Tcg, QemuVersion::new(7, 2, 0));
    p.memory_mib = 64;
    assert!(matches!(p.args(), Err(PlanError::Size(_))));
    let mut p = plan(Tee::None, Accel::Tcg, QemuVersion::new(7, 2, 0));
    p.vcpus = 0;
    assert!(matches!(p.args(), Err(PlanError::Size(_))));
    let mut p = plan(Tee::None, Accel::Tcg, QemuVersion::new(7, 2, 0));
    p.model_disk = "/models/a,b.img".into();
    assert!(matches!(p.args(), Err(PlanError::BadPath(_))));
}

#[test]
fn parses_qemu_versions() {
    let v = QemuVersion::parse(
        "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright (c) 2003-2022",
    );
    assert_eq!(v, Some(QemuVersion::new(7, 2, 22)));
    assert_eq!(
        QemuVersion::parse("QEMU emulator version 10.1.0"),
        Some(QemuVersion::new(10, 1, 0))
    );
    assert_eq!(
        QemuVersion::parse("QEMU emulator version 9.2.50 (v9.2.0-1234-gdeadbeef)"),
        Some(QemuVersion::new(9, 2, 50))
    );
    assert_eq!(QemuVersion::parse("qemu-kvm 8.2"), None);
    assert_eq!(QemuVersion::parse("garbage"), None);
    assert!(QemuVersion::new(10, 1, 0) > QemuVersion::new(9, 2, 99));
}

#[test]
fn describe_lists_devices() {
    let mut p = plan(Tee::snp(), Accel::Kvm, QemuVersion::new(9, 2, 0));
    p.gpus = vec!["41:00.0".parse().unwrap()];
    let d = p.describe();
    assert!(d.contains("tee: snp"));
    assert!(d.contains("model disk (virtio-blk, read-only): /models/smollm2.img"));
    assert!(d.contains("gpu: vfio-pci 0000:41:00.0"));
    assert!(d.contains("outbound blocked"));
}

#[test]
fn shell_join_quotes_what_needs_it() {
    let s = shell_join(
        "qemu-system-x86_64",
        &[
            "-append".into(),
            "console=ttyS0 quiet".into(),
            "-m".into(),
            "1024M".into(),
        ],
    );
    assert_eq!(
        s,
        "qemu-system-x86_64 -append 'console=ttyS0 quiet' -m 1024M"
    );
    assert_eq!(shell_join("x", &["it's".into()]), r"x 'it'\''s'");
}
