//! `silk measure`, `silk image model-disk` and `silk verify --image`, driven through the
//! binary on small synthetic images (the firmware fixtures of images/tests/data). The
//! values are compared with the silk-images library (itself checked against `sev`,
//! sev-snp-measure and veritysetup in images/tests) and, for model disks, with
//! `veritysetup` directly.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use silk_attestation::snp::simulated::SimulatedPlatform;
use silk_attestation::Policy;
use silk_images::manifest::{Component, Manifest, SCHEMA};
use silk_images::pe::QemuMemory;
use silk_images::snp::{launch_digest, SevHashes, SnpInputs, VcpuType, VmmType};
use silk_images::tdx::{self, DirectBoot, PageOrder};

const IMAGES_DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../images/tests/data");
/// The `sev` crate's firmware vectors (vectors/).
const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../vectors/snp/measurement");

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("silk-measure-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("mkdir");
    d
}

fn silk(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_silk"))
        .args(args)
        .output()
        .expect("run silk");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

const CMDLINE: &str = "console=ttyS0 panic=-1 quiet silk.evidence=sev-guest silk.payload=enclave";

/// Writes manifest.json for the three files already in `dir`, as silk-image does.
fn write_manifest(dir: &Path) -> Manifest {
    let components = vec![
        Component::from_file(dir, "firmware", "OVMF.fd").unwrap(),
        Component::from_file(dir, "initrd", "initrd.cpio").unwrap(),
        Component::from_file(dir, "kernel", "vmlinuz").unwrap(),
    ];
    let kernel_cmdline = format!(
        "{CMDLINE} silk.components={}",
        Manifest::components_digest(&components)
    );
    let m = Manifest {
        components,
        inputs: vec![],
        kernel_cmdline,
        schema: SCHEMA.into(),
        source_date_epoch: 1_700_000_000,
    };
    std::fs::write(dir.join("manifest.json"), m.to_pretty()).unwrap();
    m
}

fn image(dir: &Path, firmware: &[u8], kernel: &[u8]) -> Manifest {
    std::fs::write(dir.join("OVMF.fd"), firmware).unwrap();
    std::fs::write(dir.join("vmlinuz"), kernel).unwrap();
    std::fs::write(dir.join("initrd.cpio"), b"070701 a small initrd").unwrap();
    write_manifest(dir)
}

fn snp_firmware() -> Vec<u8> {
    std::fs::read(Path::new(IMAGES_DATA).join("snp/synthetic-amdsev.fd")).unwrap()
}

fn tdx_firmware() -> Vec<u8> {
    std::fs::read(Path::new(IMAGES_DATA).join("tdx/synthetic-tdvf.fd")).unwrap()
}

fn expected_snp(dir: &Path, m: &Manifest, vcpus: u32, cpu: &str) -> String {
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let d = launch_digest(&SnpInputs {
        ovmf: &read("OVMF.fd"),
        hashes: Some(SevHashes::new(
            &read("vmlinuz"),
            Some(&read("initrd.cpio")),
            Some(&m.kernel_cmdline),
        )),
        vcpus,
        vcpu_type: VcpuType::from_name(cpu).unwrap(),
        vmm: VmmType::Qemu,
        guest_features: 1,
    })
    .unwrap();
    hex::encode(d)
}

#[test]
fn measure_snp_prints_the_digest_and_writes_a_policy_that_allows_exactly_it() {
    let d = scratch("snp");
    let img = d.join("image");
    std::fs::create_dir_all(&img).unwrap();
    let m = image(
        &img,
        &snp_firmware(),
        b"not really a kernel, but SNP hashes any bytes",
    );
    let policy = d.join("policy.toml");
    let (code, text) = silk(&[
        "measure",
        "--image",
        s(&img),
        "--tee",
        "snp",
        "--vcpus",
        "4",
        "--vcpu-type",
        "EPYC-Milan",
        "--policy-out",
        s(&policy),
    ]);
    assert_eq!(code, Some(0), "{text}");
    let want = expected_snp(&img, &m, 4, "EPYC-Milan");
    assert!(text.contains(&format!("MEASUREMENT  {want}")), "{text}");
    assert!(
        text.contains(&m.digest()),
        "the manifest digest is shown: {text}"
    );
    assert!(
        text.contains("none bound"),
        "no model on this command line: {text}"
    );

    let p = Policy::from_toml(&std::fs::read_to_string(&policy).unwrap()).unwrap();
    let snp = p.snp.expect("an [snp] section");
    assert_eq!(
        snp.measurements
            .iter()
            .map(|h| h.to_string())
            .collect::<Vec<_>>(),
        vec![want.clone()]
    );
    assert!(!snp.allow_any_measurement && p.tdx.is_none() && !p.allow_simulated);

    // The defaults are silk-host's: 2 vCPUs of EPYC-v4.
    let (code, text) = silk(&["measure", "--image", s(&img), "--tee", "snp"]);
    assert_eq!(code, Some(0), "{text}");
    let default = expected_snp(&img, &m, 2, "EPYC-v4");
    assert!(text.contains(&default) && default != want, "{text}");
}

#[test]
fn one_byte_of_kernel_changes_the_measurement_and_a_stale_manifest_is_refused() {
    let d = scratch("onebyte");
    let mut kernel = b"kernel bytes ".repeat(100);
    let m = image(&d, &snp_firmware(), &kernel);
    let before = expected_snp(&d, &m, 2, "EPYC-v4");
    let (_, text) = silk(&["measure", "--image", s(&d), "--tee", "snp"]);
    assert!(text.contains(&before), "{text}");

    kernel[500] ^= 1;
    std::fs::write(d.join("vmlinuz"), &kernel).unwrap();
    let (code, text) = silk(&["measure", "--image", s(&d), "--tee", "snp"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("vmlinuz") && text.contains("does not match the manifest"),
        "{text}"
    );

    let m = write_manifest(&d);
    let (code, text) = silk(&["measure", "--image", s(&d), "--tee", "snp"]);
    assert_eq!(code, Some(0), "{text}");
    let after = expected_snp(&d, &m, 2, "EPYC-v4");
    assert_ne!(before, after);
    assert!(text.contains(&after) && !text.contains(&before), "{text}");
}

#[test]
fn measure_tdx_prints_mrtd_and_rtmrs_and_its_policy_round_trips() {
    let d = scratch("tdx");
    let kernel = common::bzimage("6.12.38+deb13-amd64 (debian-kernel@lists.debian.org) #1 SMP");
    let m = image(&d, &tdx_firmware(), &kernel);
    let policy = d.join("tdx.toml");
    let rtmr0 = "ab".repeat(48);
    let (code, text) = silk(&[
        "measure",
        "--image",
        s(&d),
        "--tee",
        "tdx",
        "--memory-mib",
        "4096",
        "--rtmr0",
        &rtmr0,
        "--policy-out",
        s(&policy),
    ]);
    assert_eq!(code, Some(0), "{text}");
    let mrtd = hex::encode(tdx::mrtd(&tdx_firmware(), PageOrder::PerPage).unwrap());
    let (r1, r2) = tdx::rtmrs(&DirectBoot {
        kernel: &kernel,
        initrd: Some(b"070701 a small initrd"),
        cmdline: &m.kernel_cmdline,
        memory: QemuMemory::q35(4096 << 20),
    })
    .unwrap();
    for v in [&mrtd, &hex::encode(r1), &hex::encode(r2)] {
        assert!(text.contains(v.as_str()), "{v} missing from: {text}");
    }
    // 6.12 measures its command line and initrd: RTMR2 is predicted, with no warning.
    assert_ne!(r2, [0; 48]);
    assert!(!text.contains("WARNING"), "{text}");
    let written = std::fs::read_to_string(&policy).unwrap();
    assert!(!written.contains("WARNING"), "{written}");
    let p = Policy::from_toml(&written).unwrap();
    let t = &p.tdx.expect("a [tdx] section").measurements;
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].mrtd.to_string(), mrtd);
    assert_eq!(t[0].rtmr0.map(|r| r.to_string()), Some(rtmr0));
    assert_eq!(t[0].rtmr1.map(|r| r.0), Some(r1));
    assert_eq!(t[0].rtmr2.map(|r| r.0), Some(r2));
    assert!(t[0].rtmr3.is_none());

    // The memory size moves the initrd, which QEMU writes into the measured kernel header.
    let (_, other) = silk(&[
        "measure",
        "--image",
        s(&d),
        "--tee",
        "tdx",
        "--memory-mib",
        "1024",
    ]);
    assert!(
        other.contains(&mrtd) && !other.contains(&hex::encode(r1)),
        "{other}"
    );
    assert!(!other.contains("WARNING"), "{other}");

    // A kernel before 6.9 measures neither its command line nor its initrd: RTMR2 is zero,
    // and the output and the policy say so.
    image(
        &d,
        &tdx_firmware(),
        &common::bzimage("6.1.0-56-amd64 (debian-kernel@lists.debian.org) #1"),
    );
    let (code, text) = silk(&[
        "measure",
        "--image",
        s(&d),
        "--tee",
        "tdx",
        "--policy-out",
        s(&policy),
    ]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(&format!("RTMR2        {}", "00".repeat(48))),
        "{text}"
    );
    assert!(
        text.contains("WARNING: kernel 6.1.0-56-amd64 predates Linux 6.9"),
        "{text}"
    );
    let written = std::fs::read_to_string(&policy).unwrap();
    assert!(written.contains("# WARNING: kernel 6.1.0"), "{written}");
    let p = Policy::from_toml(&written).unwrap();
    assert_eq!(
        p.tdx.unwrap().measurements[0].rtmr2.map(|r| r.0),
        Some([0; 48])
    );

    // The image recipe's kernel, bookworm-backports' 6.12, named as its bzImage names it.
    image(
        &d,
        &tdx_firmware(),
        &common::bzimage(
            "6.12.95+deb12-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC \
             Debian 6.12.95-1~bpo12+1",
        ),
    );
    let (code, text) = silk(&["measure", "--image", s(&d), "--tee", "tdx"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("RTMR1") && text.contains("RTMR2"), "{text}");
    assert!(
        !text.contains(&format!("RTMR2        {}", "00".repeat(48))),
        "{text}"
    );
    assert!(!text.contains("WARNING"), "{text}");
}

#[test]
fn missing_and_unusable_inputs_are_named() {
    let d = scratch("errors");
    let (code, text) = silk(&["measure", "--image", s(&d), "--tee", "snp"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("manifest.json"), "{text}");

    image(&d, &snp_firmware(), b"k");
    std::fs::remove_file(d.join("initrd.cpio")).unwrap();
    let (code, text) = silk(&["measure", "--image", s(&d), "--tee", "snp"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("initrd.cpio"), "{text}");

    // Firmware without SEV metadata at all, and OvmfX64 (SEV metadata, but no
    // kernel-hashes page: under SNP it would not measure the kernel).
    image(&d, &tdx_firmware(), b"k");
    let (code, text) = silk(&["measure", "--image", s(&d), "--tee", "snp"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("OVMF.fd") && text.contains("SEV metadata"),
        "{text}"
    );
    let x64 = Path::new(VECTORS).join("ovmf_OvmfX64_suffix.bin");
    match std::fs::read(&x64) {
        Ok(fd) => {
            image(&d, &fd, b"k");
            let (code, text) = silk(&["measure", "--image", s(&d), "--tee", "snp"]);
            assert_eq!(code, Some(2), "{text}");
            assert!(
                text.contains("OVMF.fd") && text.contains("build-ovmf-amdsev.sh"),
                "{text}"
            );
        }
        Err(_) => eprintln!(
            "!!! {} absent: the no-kernel-hashes error was not checked",
            x64.display()
        ),
    }

    image(&d, &snp_firmware(), b"k");
    let (code, text) = silk(&[
        "measure",
        "--image",
        s(&d),
        "--tee",
        "snp",
        "--vcpu-type",
        "Pentium",
    ]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("--vcpu-type") && text.contains("EPYC-Milan"),
        "{text}"
    );
    // A kernel that is not a PE image cannot be measured for TDX; the error names it.
    image(&d, &tdx_firmware(), b"k");
    let (code, text) = silk(&["measure", "--image", s(&d), "--tee", "tdx"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("vmlinuz"), "{text}");
}

#[test]
fn verify_with_image_requires_the_computed_measurement() {
    let d = scratch("verify");
    let m = image(&d, &snp_firmware(), b"the kernel that was launched");
    let digest: [u8; 48] = hex::decode(expected_snp(&d, &m, 2, "EPYC-v4"))
        .unwrap()
        .try_into()
        .unwrap();
    let p = SimulatedPlatform::generate().expect("dev chain");
    let certs = d.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::write(certs.join("vcek.der"), &p.chain().vcek).unwrap();
    std::fs::write(certs.join("ask.der"), &p.chain().ask).unwrap();
    std::fs::write(certs.join("ark.der"), &p.chain().ark).unwrap();
    let report = d.join("report.bin");
    std::fs::write(&report, p.report(&digest, &[9; 64])).unwrap();
    // The policy's own allowlist names another value: --image replaces it.
    let policy = d.join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "allow_simulated = true\nsimulated_roots = [\"{}\"]\n[snp]\nmeasurements = [\"{}\"]\nmin_tcb = {{}}\n",
            hex::encode(p.chain().root_digest()),
            "07".repeat(48)
        ),
    )
    .unwrap();
    let base = [
        "verify",
        s(&report),
        "--certs",
        s(&certs),
        "--policy",
        s(&policy),
    ];
    let (code, text) = silk(&base);
    assert_eq!(
        code,
        Some(1),
        "without --image the allowlist rejects it: {text}"
    );

    let (code, text) = silk(&[&base[..], &["--image", s(&d)]].concat());
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("must equal the one computed from the image"),
        "{text}"
    );

    // Another vCPU count is another launch: rejected, and the check says which.
    let (code, text) = silk(&[&base[..], &["--image", s(&d), "--vcpus", "3"]].concat());
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("FAIL snp.measurement"), "{text}");

    // An image with one other kernel byte: rejected.
    std::fs::write(d.join("vmlinuz"), b"the kernel that was launcheD").unwrap();
    write_manifest(&d);
    let (code, text) = silk(&[&base[..], &["--image", s(&d)]].concat());
    assert_eq!(code, Some(1), "{text}");

    let (code, text) = silk(&[&base[..], &["--image", s(&d), "--tee", "tdx"]].concat());
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("--tee tdx"), "{text}");
}

fn veritysetup(args: &[&str]) -> std::process::Output {
    let bin = ["veritysetup", "/usr/sbin/veritysetup", "/sbin/veritysetup"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok())
        .expect("veritysetup not found: install Debian's cryptsetup-bin (scripts/setup.sh does)");
    Command::new(bin).args(args).output().unwrap()
}

#[test]
fn model_disk_root_hash_equals_veritysetup() {
    let d = scratch("disk");
    let model = d.join("tiny-model.Q4_1.gguf");
    let bytes: Vec<u8> = (0..70_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
        .collect();
    std::fs::write(&model, &bytes).unwrap();
    let disk = d.join("model.img");
    let (code, text) = silk(&["image", "model-disk", s(&model), "-o", s(&disk)]);
    assert_eq!(code, Some(0), "{text}");
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(k).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| panic!("no {k} in {text}"))
    };
    let root = field("root hash");
    let salt = field("salt");
    let hash_offset = field("hash offset");
    assert_eq!(field("data blocks"), "18 x 4096 bytes");
    assert_eq!(hash_offset, (18 * 4096).to_string());
    assert!(text.contains(&format!("verity:{root}")), "{text}");
    assert!(
        text.contains(&format!("silk.verity={root}"))
            && text.contains("silk.model_name=tiny-model.Q4_1"),
        "{text}"
    );

    // veritysetup over the same padded data, with the same salt and offset.
    let theirs = d.join("theirs.img");
    let mut padded = bytes.clone();
    padded.resize(18 * 4096, 0);
    std::fs::write(&theirs, &padded).unwrap();
    let out = veritysetup(&[
        "format",
        s(&theirs),
        s(&theirs),
        "--data-blocks=18",
        &format!("--hash-offset={hash_offset}"),
        &format!("--salt={salt}"),
    ]);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{printed}");
    let their_root = printed
        .lines()
        .find_map(|l| l.strip_prefix("Root hash:"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|| panic!("no root hash in {printed}"));
    assert_eq!(root, their_root);
    // And veritysetup accepts our disk under that root.
    let ok = veritysetup(&[
        "verify",
        s(&disk),
        s(&disk),
        &root,
        &format!("--hash-offset={hash_offset}"),
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let (code, text) = silk(&["image", "model-disk", s(&d.join("absent")), "-o", s(&disk)]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("absent"), "{text}");
    let (code, text) = silk(&[
        "image",
        "model-disk",
        s(&model),
        "-o",
        s(&disk),
        "--name",
        "a b",
    ]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("--name"), "{text}");
}
