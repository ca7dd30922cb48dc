//! SEV-SNP launch digests checked against two independent implementations: virtee's `sev`
//! crate (its own test vectors, and live on the same inputs) and virtee's Python
//! `sev-snp-measure` (committed golden digests, and live when it is installed).

use silk_images::snp::{self, SevHashes, SnpError, SnpInputs, VcpuType, VmmType};
use std::path::{Path, PathBuf};
use std::process::Command;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/snp");
const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../vectors/snp/measurement");

fn firmware_path(name: &str) -> PathBuf {
    let local = Path::new(DATA).join(name);
    if local.exists() {
        local
    } else {
        Path::new(VECTORS).join(name)
    }
}

fn read(path: impl AsRef<Path>) -> Vec<u8> {
    let path = path.as_ref();
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

struct Case {
    name: String,
    firmware: String,
    vcpus: u32,
    vcpu_type: String,
    vmm: String,
    guest_features: u64,
    kernel: bool,
    initrd: bool,
    cmdline: Option<String>,
    digest: String,
}

fn golden() -> Vec<Case> {
    let v: serde_json::Value =
        serde_json::from_slice(&read(Path::new(DATA).join("golden.json"))).unwrap();
    v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            name: c["name"].as_str().unwrap().into(),
            firmware: c["firmware"].as_str().unwrap().into(),
            vcpus: c["vcpus"].as_u64().unwrap() as u32,
            vcpu_type: c["vcpu_type"].as_str().unwrap().into(),
            vmm: c["vmm"].as_str().unwrap().into(),
            guest_features: c["guest_features"].as_u64().unwrap(),
            kernel: c["kernel"].as_bool().unwrap(),
            initrd: c["initrd"].as_bool().unwrap(),
            cmdline: c["cmdline"].as_str().map(String::from),
            digest: c["digest"].as_str().unwrap().into(),
        })
        .collect()
}

fn ours(c: &Case) -> Result<[u8; 48], SnpError> {
    let ovmf = read(firmware_path(&c.firmware));
    let kernel = read(Path::new(DATA).join("kernel.bin"));
    let initrd = read(Path::new(DATA).join("initrd.bin"));
    let hashes = c.kernel.then(|| {
        SevHashes::new(
            &kernel,
            c.initrd.then_some(&initrd[..]),
            c.cmdline.as_deref(),
        )
    });
    snp::launch_digest(&SnpInputs {
        ovmf: &ovmf,
        hashes,
        vcpus: c.vcpus,
        vcpu_type: VcpuType::from_name(&c.vcpu_type).unwrap(),
        vmm: VmmType::from_name(&c.vmm).unwrap(),
        guest_features: c.guest_features,
    })
}

#[test]
fn golden_digests_from_sev_snp_measure() {
    let cases = golden();
    assert!(cases.len() >= 10);
    for c in &cases {
        assert_eq!(hex::encode(ours(c).unwrap()), c.digest, "case {}", c.name);
    }
}

#[test]
fn live_sev_snp_measure_agrees_when_installed() {
    if Command::new("sev-snp-measure")
        .arg("--help")
        .output()
        .is_err()
    {
        eprintln!(
            "!!! sev-snp-measure is not installed: only the committed golden digests were \
             checked (pip install -r scripts/reference/requirements.txt)"
        );
        return;
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/reference/snp_measure_fixtures.py"
    );
    let out = Command::new("python3")
        .args([script, "--check"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sev-snp-measure now disagrees with golden.json: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The expected digests in the `sev` crate's own tests (sev 8.0.0 tests/measurement.rs),
/// for QEMU. Its EC2 vectors predate EC2's 2026 VMSA change (rdx 0 → 0x600) that
/// sev-snp-measure 0.0.13 follows, and so does silk.
#[test]
fn sev_crate_test_vectors() {
    let amdsev = read(Path::new(VECTORS).join("ovmf_AmdSev_suffix.bin"));
    let x64 = read(Path::new(VECTORS).join("ovmf_OvmfX64_suffix.bin"));
    assert_eq!(
        hex::encode(snp::ovmf_digest(&amdsev).unwrap()),
        "086e2e9149ebf45abdc3445fba5b2da8270bdbb04094d7a2c37faaa4b24af3aa16aff8c374c2a55c467a50da6d466b74"
    );
    let epyc_v4 = VcpuType::from_name("EPYC-v4").unwrap();
    let empty = SevHashes::new(b"", Some(b""), None);
    let cmd = SevHashes::new(b"", Some(b""), Some("console=ttyS0 loglevel=7"));
    // (firmware, hashes, vCPUs, guest features, expected digest)
    type Vector<'a> = (&'a [u8], Option<SevHashes>, u32, u64, &'a str);
    let cases: [Vector; 10] = [
        (&amdsev, Some(empty), 1, 0x1, "ddc5224521617a536ee7ce9dd6224d1b58a8d4fda1c741f3ac99fc4bfa04ba6e9fc98646d4a07a9079397fa3852819b5"),
        (&amdsev, Some(empty), 1, 0x21, "329c8ce0972ae52343b64d34a434a86f245dfd74f5ed7aae15d22efc78fb9683632b9b50e4e1d7fa41179ef98a7ef198"),
        (&amdsev, Some(cmd), 1, 0x1, "6d287813eb5222d770f75005c664e34c204f385ce832cc2ce7d0d6f354454362f390ef83a92046c042e706363b4b08fa"),
        (&amdsev, Some(cmd), 1, 0x21, "803f691094946e42068aaa3a8f9e26a5c89f36f7b73ecfb28c653360fe4b3aba7e534442e7e1e17895dfe778d0228977"),
        (&amdsev, None, 1, 0x1, "19358ba9a7615534a9a1e2f0dfc29384dcd4dcb7062ff9c6013b26869a5fc6ecabe033c48dd6f6db5d6d76e7c5df632d"),
        (&amdsev, None, 1, 0x21, "e1e1ca029dd7973ab9513295be68198472dcd4fc834bd9af9b63f6e8a1674dbf281a9278a4a2ebe0eed9f22adbcd0e2b"),
        (&amdsev, Some(empty), 4, 0x1, "5061fffb019493a903613d56d54b94912a1a2f9e4502385f5c194616753720a92441310ba6c4933de877c36e23046ad5"),
        (&amdsev, Some(empty), 4, 0x21, "4953b1fb416fa874980e8442b3706d345926d5f38879134e00813c5d7abcbe78eafe7b422907be0b4698e2414a631942"),
        (&x64, None, 1, 0x1, "da0296de8193586a5512078dcd719eccecbd87e2b825ad4148c44f665dc87df21e5b49e21523a9ad993afdb6a30b4005"),
        (&x64, None, 1, 0x21, "28797ae0afaba4005a81e629acebfb59e6687949d6be44007cd5506823b0dd66f146aaae26ff291eed7b493d8a64c385"),
    ];
    for (i, (ovmf, hashes, vcpus, features, want)) in cases.into_iter().enumerate() {
        let got = snp::launch_digest(&SnpInputs {
            ovmf,
            hashes,
            vcpus,
            vcpu_type: epyc_v4,
            vmm: VmmType::Qemu,
            guest_features: features,
        })
        .unwrap();
        assert_eq!(hex::encode(got), want, "sev crate vector {i}");
    }
    // A kernel with a firmware that cannot measure one is refused, as in the sev crate.
    let err = snp::launch_digest(&SnpInputs {
        ovmf: &x64,
        hashes: Some(empty),
        vcpus: 1,
        vcpu_type: epyc_v4,
        vmm: VmmType::Qemu,
        guest_features: 1,
    })
    .unwrap_err();
    assert_eq!(err, SnpError::NoKernelHashesSection);
}

/// The `sev` crate computed live on every golden QEMU case (it reads files by path).
#[test]
fn sev_crate_agrees_on_golden_qemu_cases() {
    use sev::measurement::{snp::*, vcpu_types::CpuType, vmsa::GuestFeatures};
    for c in golden().iter().filter(|c| c.vmm == "qemu") {
        let args = SnpMeasurementArgs {
            vcpus: c.vcpus,
            vcpu_type: CpuType::try_from(c.vcpu_type.as_str()).unwrap(),
            ovmf_file: firmware_path(&c.firmware),
            guest_features: GuestFeatures(c.guest_features),
            kernel_file: c.kernel.then(|| Path::new(DATA).join("kernel.bin")),
            initrd_file: c.initrd.then(|| Path::new(DATA).join("initrd.bin")),
            append: c.cmdline.as_deref(),
            ovmf_hash_str: None,
            vmm_type: None,
        };
        let theirs = snp_calc_launch_digest(args).unwrap().get_hex_ld();
        assert_eq!(hex::encode(ours(c).unwrap()), theirs, "case {}", c.name);
    }
}

#[test]
fn one_byte_changes_change_the_digest() {
    let ovmf = read(firmware_path("synthetic-amdsev.fd"));
    let kernel = read(Path::new(DATA).join("kernel.bin"));
    let initrd = read(Path::new(DATA).join("initrd.bin"));
    let cmdline = "console=ttyS0 ro";
    let digest = |ovmf: &[u8], kernel: &[u8], initrd: &[u8], cmdline: &str| {
        snp::launch_digest(&SnpInputs {
            ovmf,
            hashes: Some(SevHashes::new(kernel, Some(initrd), Some(cmdline))),
            vcpus: 2,
            vcpu_type: VcpuType::from_name("EPYC-Milan").unwrap(),
            vmm: VmmType::Qemu,
            guest_features: 1,
        })
        .unwrap()
    };
    let base = digest(&ovmf, &kernel, &initrd, cmdline);
    let flip = |b: &[u8], at: usize| {
        let mut v = b.to_vec();
        v[at] ^= 1;
        v
    };
    assert_ne!(digest(&flip(&ovmf, 100), &kernel, &initrd, cmdline), base);
    assert_ne!(digest(&ovmf, &flip(&kernel, 5000), &initrd, cmdline), base);
    assert_ne!(digest(&ovmf, &kernel, &flip(&initrd, 0), cmdline), base);
    assert_ne!(digest(&ovmf, &kernel, &initrd, "console=ttyS1 ro"), base);
    assert_ne!(digest(&ovmf, &kernel, &initrd, "console=ttyS0 ro "), base);
}

/// Debian's OVMF.fd (package `ovmf`) has SEV metadata but no kernel-hashes page; when it
/// is installed, both tools must agree on it without a kernel.
#[test]
fn debian_ovmf_live_when_installed() {
    let fd = Path::new("/usr/share/ovmf/OVMF.fd");
    let Ok(ovmf) = std::fs::read(fd) else {
        eprintln!("!!! {} absent: Debian OVMF check skipped", fd.display());
        return;
    };
    let milan = VcpuType::from_name("EPYC-Milan").unwrap();
    let ours = snp::launch_digest(&SnpInputs {
        ovmf: &ovmf,
        hashes: None,
        vcpus: 4,
        vcpu_type: milan,
        vmm: VmmType::Qemu,
        guest_features: 1,
    })
    .unwrap();
    let err = snp::launch_digest(&SnpInputs {
        ovmf: &ovmf,
        hashes: Some(SevHashes::new(b"k", None, None)),
        vcpus: 4,
        vcpu_type: milan,
        vmm: VmmType::Qemu,
        guest_features: 1,
    });
    assert_eq!(err, Err(SnpError::NoKernelHashesSection));
    let out = Command::new("sev-snp-measure")
        .args(["--mode", "snp", "--vcpus", "4", "--vcpu-type", "EPYC-Milan"])
        .args(["--output-format", "hex", "--ovmf"])
        .arg(fd)
        .output();
    match out {
        Ok(o) if o.status.success() => {
            assert_eq!(hex::encode(ours), String::from_utf8_lossy(&o.stdout).trim())
        }
        _ => eprintln!("!!! sev-snp-measure not runnable: Debian OVMF compared to nothing"),
    }
}

/// The AmdSevX64 firmware that images/recipe/build-ovmf-amdsev.sh builds (at
/// images/recipe/out/OVMF-AmdSev.fd, or SILK_AMDSEV_OVMF): a full-size image with a
/// kernel-hashes page, measured with a kernel by silk, the `sev` crate and, when
/// installed, sev-snp-measure.
#[test]
fn built_amdsev_firmware_when_present() {
    let path = std::env::var("SILK_AMDSEV_OVMF").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/recipe/out/OVMF-AmdSev.fd").into()
    });
    let Ok(ovmf) = std::fs::read(&path) else {
        eprintln!("!!! no AmdSev firmware at {path}: built-firmware check skipped");
        return;
    };
    let kernel = Path::new(DATA).join("kernel.bin");
    let initrd = Path::new(DATA).join("initrd.bin");
    let cmdline = "console=ttyS0 root=/dev/vda ro";
    for (vcpus, cpu, features) in [(1, "EPYC-Milan", 1), (8, "EPYC-Genoa", 0x21)] {
        let ours = snp::launch_digest(&SnpInputs {
            ovmf: &ovmf,
            hashes: Some(SevHashes::new(
                &read(&kernel),
                Some(&read(&initrd)),
                Some(cmdline),
            )),
            vcpus,
            vcpu_type: VcpuType::from_name(cpu).unwrap(),
            vmm: VmmType::Qemu,
            guest_features: features,
        })
        .expect("the built firmware must measure a kernel (edk2 from 2023 on)");
        use sev::measurement::{snp::*, vcpu_types::CpuType, vmsa::GuestFeatures};
        let theirs = snp_calc_launch_digest(SnpMeasurementArgs {
            vcpus,
            vcpu_type: CpuType::try_from(cpu).unwrap(),
            ovmf_file: path.clone().into(),
            guest_features: GuestFeatures(features),
            kernel_file: Some(kernel.clone()),
            initrd_file: Some(initrd.clone()),
            append: Some(cmdline),
            ovmf_hash_str: None,
            vmm_type: None,
        })
        .unwrap();
        assert_eq!(hex::encode(ours), theirs.get_hex_ld(), "{vcpus} x {cpu}");
        let out = Command::new("sev-snp-measure")
            .args(["--mode", "snp", "--output-format", "hex", "--vcpus"])
            .arg(vcpus.to_string())
            .args([
                "--vcpu-type",
                cpu,
                "--guest-features",
                &format!("{features:#x}"),
            ])
            .args(["--ovmf", &path, "--append", cmdline, "--kernel"])
            .arg(&kernel)
            .arg("--initrd")
            .arg(&initrd)
            .output();
        if let Some(o) = out.ok().filter(|o| o.status.success()) {
            assert_eq!(hex::encode(ours), String::from_utf8_lossy(&o.stdout).trim());
        } else {
            eprintln!("!!! sev-snp-measure not runnable: built firmware checked against sev only");
        }
    }
}
