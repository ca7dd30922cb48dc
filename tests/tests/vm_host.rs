//! The guest image and silk-host, for real: the image builds reproducibly from Debian
//! packages, boots under QEMU (TCG, no KVM needed) with `--tee none`, and answers through
//! silk-host's relay; killing QEMU makes silk-host start it again.
//!
//! The payload is the recipe's busybox httpd stand-in serving the model disk (read through
//! dm-verity on every request), which proves the guest's networking, the hostfwd, the
//! relay and the verified model disk without the enclave. The sealed-path test (`silk
//! chat` against silk-enclave in the VM) builds on the same helpers.

use std::path::Path;
use std::time::{Duration, Instant};

use silk_host::app::run_until;
use silk_images::manifest::Manifest;
use silk_tests::vm::{
    build_image, dev_run_options, flip_byte, free_addr, http_get, metric, model_disk, require_qemu,
    wait_for,
};

const BOOT_TIMEOUT: Duration = Duration::from_secs(180);
/// The stand-in's view of the model, read through dm-verity (see images/recipe/model-cgi).
const MODEL_URL: &str = "/cgi-bin/model";

#[test]
fn vm_image_build_is_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let first = build_image(&a, &["--payload", "httpd"]);
    let second = build_image(&b, &["--payload", "httpd"]);
    assert_eq!(first, second, "image digests differ");
    for f in ["OVMF.fd", "vmlinuz", "initrd.cpio", "manifest.json"] {
        let (x, y) = (
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
        );
        assert!(
            x == y,
            "{f} differs between two builds from the same inputs"
        );
    }
    let m = Manifest::load(&a).unwrap();
    m.verify_files(&a).unwrap();
    assert_eq!(m.digest(), first);
    assert!(m.kernel_cmdline.contains("silk.payload=httpd"));
    // No build path leaks into the archive.
    let initrd = std::fs::read(a.join("initrd.cpio")).unwrap();
    let tmp = dir.path().to_string_lossy().into_owned();
    assert!(!initrd.windows(tmp.len()).any(|w| w == tmp.as_bytes()));
}

/// The default image's kernel is one that attests on both TEEs: Debian's 6.12 (6.9 or
/// later), recorded by digest, with the SEV-SNP and TDX guest drivers and configfs-tsm in
/// the initramfs's load list; and the built `silk measure --tee tdx` predicts RTMR1 and a
/// non-zero RTMR2 (command line and initrd measured) for it, with no warning.
#[test]
fn vm_default_image_kernel_attests_on_snp_and_tdx() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("image");
    build_image(&image, &["--payload", "httpd"]);
    let m = Manifest::load(&image).unwrap();
    let deb = m
        .inputs
        .iter()
        .find(|i| i.name.starts_with("linux-image-"))
        .expect("the kernel package among the manifest's inputs");
    assert_eq!(deb.sha256.len(), 64, "{deb:?}");
    // linux-image-6.12.95+deb12-amd64_6.12.95-1~bpo12+1_amd64.deb
    let release = deb.name["linux-image-".len()..]
        .split('_')
        .next()
        .unwrap_or_default();
    let mut nums = release.split(|c: char| !c.is_ascii_digit());
    let version: (u32, u32) = (
        nums.next().and_then(|n| n.parse().ok()).unwrap_or(0),
        nums.next().and_then(|n| n.parse().ok()).unwrap_or(0),
    );
    assert!(version >= (6, 9), "kernel {release} predates 6.9");

    // The module list (/etc/silk/modules) is plain text inside the uncompressed cpio.
    let initrd = std::fs::read(image.join("initrd.cpio")).unwrap();
    let has = |needle: &str| initrd.windows(needle.len()).any(|w| w == needle.as_bytes());
    for module in [
        "/kernel/fs/configfs/configfs.ko\n",
        "/kernel/drivers/virt/coco/tsm.ko\n",
        "/kernel/drivers/virt/coco/sev-guest/sev-guest.ko\n",
        "/kernel/drivers/virt/coco/tdx-guest/tdx-guest.ko\n",
        "/kernel/drivers/md/dm-verity.ko\n",
    ] {
        assert!(
            has(&format!("/lib/modules/{release}{module}")),
            "{module:?} is not in the guest's module list"
        );
    }
    assert!(
        !has(".ko.xz"),
        "a compressed module went into the initramfs"
    );

    let silk = silk_tests::vm::target_dir().join("debug/silk");
    assert!(
        silk.is_file(),
        "{} is missing: cargo build --bin silk",
        silk.display()
    );
    let out = std::process::Command::new(&silk)
        .args(["measure", "--tee", "tdx", "--image"])
        .arg(&image)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("RTMR1") && text.contains("RTMR2"), "{text}");
    assert!(
        !text.contains(&format!("RTMR2        {}", "00".repeat(48))),
        "{text}"
    );
    assert!(!text.contains("WARNING"), "{text}");
}

#[test]
fn vm_boots_under_tcg_and_serves_through_the_relay() {
    require_qemu();
    let dir = tempfile::tempdir().unwrap();
    let token = format!("silk-vm-test-{}", std::process::id());
    let token_file = dir.path().join("token.txt");
    std::fs::write(&token_file, &token).unwrap();
    let disk = dir.path().join("model.img");
    let verity = model_disk(&disk, &token_file);
    let image = dir.path().join("image");
    build_image(&image, &["--payload", "httpd", "--model-verity", &verity]);

    let (listen, admin) = (free_addr(), free_addr());
    let opts = dev_run_options(image.clone(), disk, 1024, listen, admin);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let host = rt.spawn(run_until(opts, stopped));

    let healthy = || {
        http_get(admin, "/healthz")
            .ok()
            .filter(|(code, _)| *code == 200)
    };
    let metrics = || {
        http_get(admin, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default()
    };

    let t0 = Instant::now();
    wait_for("the guest to report ready", BOOT_TIMEOUT, healthy);
    eprintln!(
        "boot to healthy under TCG: {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    let (code, body) = http_get(listen, MODEL_URL).unwrap();
    assert_eq!((code, body.as_str()), (200, token.as_str()));
    let m = metrics();
    assert!(metric(&m, "silk_host_relay_bytes_total{direction=\"to_client\"}").unwrap() > 0);
    assert_eq!(metric(&m, "silk_host_vm_restarts_total"), Some(0));

    // Kill QEMU: silk-host notices, restarts it, and the relay serves again.
    let pid = metric(&m, "silk_host_vm_pid").expect("QEMU's pid in /metrics");
    assert!(pid > 0);
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    wait_for("the restart", Duration::from_secs(30), || {
        (metric(&metrics(), "silk_host_vm_restarts_total") == Some(1)).then_some(())
    });
    let t1 = Instant::now();
    wait_for("the guest to be ready again", BOOT_TIMEOUT, healthy);
    eprintln!("restart to healthy: {:.1}s", t1.elapsed().as_secs_f64());
    let (code, body) = http_get(listen, MODEL_URL).unwrap();
    assert_eq!((code, body.as_str()), (200, token.as_str()));
    let new_pid = metric(&metrics(), "silk_host_vm_pid").unwrap();
    assert_ne!(new_pid, pid);

    // Stop: QEMU gets SIGTERM and is gone when run_until returns.
    stop.send(true).unwrap();
    rt.block_on(host).unwrap().unwrap();
    assert!(
        !Path::new(&format!("/proc/{new_pid}")).exists(),
        "QEMU still running"
    );
    assert!(http_get(listen, "/").is_err(), "the relay still accepts");
}

/// A host that changes the model disk under a running guest gets read errors, never other
/// bytes: one flipped bit in the model data makes the next read of the model through
/// dm-verity fail; the original bytes read fine again.
#[test]
fn vm_changed_model_disk_gives_read_errors_never_other_bytes() {
    require_qemu();
    let dir = tempfile::tempdir().unwrap();
    // Several 4096-byte blocks, so the change lands in a block other than the first.
    let content: String = (0..900).map(|i| format!("block-{i:05} ")).collect();
    let model = dir.path().join("model.bin");
    std::fs::write(&model, &content).unwrap();
    let disk = dir.path().join("model.img");
    let verity = model_disk(&disk, &model);
    let image = dir.path().join("image");
    build_image(&image, &["--payload", "httpd", "--model-verity", &verity]);

    let (listen, admin) = (free_addr(), free_addr());
    let opts = dev_run_options(image, disk.clone(), 1024, listen, admin);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let host = rt.spawn(run_until(opts, stopped));
    let t0 = Instant::now();
    wait_for("the guest to report ready", BOOT_TIMEOUT, || {
        http_get(admin, "/healthz")
            .ok()
            .filter(|(code, _)| *code == 200)
    });
    eprintln!("boot to healthy: {:.1}s", t0.elapsed().as_secs_f64());
    let read = || http_get(listen, MODEL_URL).unwrap();
    assert_eq!(
        read(),
        (200, content.clone()),
        "the untouched model reads back"
    );

    // One bit of model data, in the third block.
    flip_byte(&disk, 2 * 4096 + 17);
    let (code, body) = read();
    assert_eq!(
        code, 502,
        "a changed data block must fail the read: {body:?}"
    );
    assert!(
        !body.contains("block-"),
        "no model bytes after a failed read: {body:?}"
    );
    flip_byte(&disk, 2 * 4096 + 17);
    assert_eq!(read(), (200, content), "restored, it reads again");

    // (The hash tree is checked too, but dm-verity keeps verified hash blocks in memory, so
    // a tree changed under a running guest is only read again after a reboot.)
    stop.send(true).unwrap();
    rt.block_on(host).unwrap().unwrap();
}
