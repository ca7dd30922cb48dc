//! TDX event logs through the built `silk`: a log built from the image recipe's own
//! predicted events, given beside a real TDX quote (`--event-log`) or inside a bundle, is
//! replayed against the quote's RTMRs (`tdx.event_log`) and, with `--image`, compared
//! with the image's events (`tdx.image_events`), which names the first that differs.
//!
//! The quote is real vendor evidence, so no log built here replays to its registers:
//! `tdx.event_log` fails in every case, naming them, and the image comparison is read from
//! its own check. Replay equal to the registers is tested in attestation/ and protocol/.

mod common;

use std::path::Path;

use common::{
    bzimage, json_check, json_passed, p, real_tdx_bundle, silk, tempdir, test_claims, text, vectors,
};
use silk_attestation::checks::tdx as check;
use silk_attestation::tdx::event_log::LogWriter;
use silk_images::manifest::{Component, Manifest, SCHEMA};
use silk_images::pe::QemuMemory;
use silk_images::tdx::{self, DirectBoot, NamedEvent};

const IMAGES_DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../images/tests/data");
const IN_WINDOW: &str = "2025-06-20T00:00:00Z";
const CMDLINE: &str = "console=ttyS0 panic=-1 quiet silk.evidence=configfs";

/// An image folder as silk-image writes it, with a 6.12 EFI-stub kernel.
fn image(dir: &Path) -> (Vec<u8>, Vec<u8>, String) {
    let kernel = bzimage("6.12.38+deb13-amd64 (debian-kernel@lists.debian.org) #1 SMP");
    let initrd = b"070701 a small initrd".to_vec();
    let firmware = std::fs::read(Path::new(IMAGES_DATA).join("tdx/synthetic-tdvf.fd")).unwrap();
    std::fs::write(dir.join("OVMF.fd"), firmware).unwrap();
    std::fs::write(dir.join("vmlinuz"), &kernel).unwrap();
    std::fs::write(dir.join("initrd.cpio"), &initrd).unwrap();
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
        kernel_cmdline: kernel_cmdline.clone(),
        schema: SCHEMA.into(),
        source_date_epoch: 1_700_000_000,
    };
    std::fs::write(dir.join("manifest.json"), m.to_pretty()).unwrap();
    (kernel, initrd, kernel_cmdline)
}

/// The event log of a boot of these files, in the order TDVF and the EFI stub log: an
/// RTMR0 event, the kernel, the boot action and separator (RTMR1), the command line and
/// initrd (RTMR2), then ExitBootServices (RTMR1); padded as the CCEL area is.
fn boot_log(kernel: &[u8], initrd: &[u8], cmdline: &str) -> Vec<u8> {
    let named = tdx::direct_boot_named_events(&DirectBoot {
        kernel,
        initrd: Some(initrd),
        cmdline,
        memory: QemuMemory::q35(2048 << 20),
    })
    .unwrap();
    let by = |r: usize| -> Vec<&NamedEvent> { named.iter().filter(|e| e.rtmr == r).collect() };
    let (r1, r2) = (by(1), by(2));
    let mut w = LogWriter::new();
    w.event(1, 0x8000_000a, &tdx::sha384(b"TD HOB"), b"");
    let mut put = |e: &NamedEvent| w.event(e.rtmr as u32 + 1, 0x8000_0003, &e.digest, b"");
    r1[..3].iter().for_each(|e| put(e));
    r2.iter().for_each(|e| put(e));
    r1[3..].iter().for_each(|e| put(e));
    let mut log = w.finish();
    log.resize(log.len() + 512, 0xff);
    log
}

fn verify_json(args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let out = silk(args);
    let value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out)));
    (out.status.code(), value)
}

fn quote_with_log(log: &Path, policy: &Path, extra: &[&str]) -> serde_json::Value {
    let quote = p(vectors().join("tdx/tdx_quote"));
    let mut args = vec![
        "verify",
        &quote,
        "--event-log",
        log.to_str().unwrap(),
        "--policy",
        policy.to_str().unwrap(),
        "--now",
        IN_WINDOW,
        "--json",
    ];
    args.extend_from_slice(extra);
    let (code, v) = verify_json(&args);
    assert_eq!(code, Some(1), "{v:#}");
    v
}

#[test]
fn a_one_byte_change_in_kernel_initrd_or_command_line_is_named_as_the_first_drifted_event() {
    let dir = tempdir();
    let img = dir.join("image");
    std::fs::create_dir_all(&img).unwrap();
    let (kernel, initrd, cmdline) = image(&img);
    let policy = dir.join("p.toml");
    std::fs::write(&policy, "[tdx]\nallow_any_measurement = true\n").unwrap();
    let log = dir.join("ccel.bin");
    let with_image = ["--image", img.to_str().unwrap(), "--tee", "tdx"];

    // The image's own events: the comparison passes (the real quote's RTMRs still differ).
    std::fs::write(&log, boot_log(&kernel, &initrd, &cmdline)).unwrap();
    let v = quote_with_log(&log, &policy, &with_image);
    assert!(json_passed(&v, check::IMAGE_EVENTS.name), "{v:#}");
    assert!(!json_passed(&v, check::EVENT_LOG.name));

    let mut k = kernel.clone();
    k[0x3000] ^= 1;
    let mut i = initrd.clone();
    i[10] ^= 1;
    let c = cmdline.replacen("quiet", "quieT", 1);
    for (what, register, bytes) in [
        ("kernel", "RTMR1 event 0", boot_log(&k, &initrd, &cmdline)),
        ("initrd", "RTMR2 event 1", boot_log(&kernel, &i, &cmdline)),
        (
            "command line",
            "RTMR2 event 0",
            boot_log(&kernel, &initrd, &c),
        ),
    ] {
        std::fs::write(&log, &bytes).unwrap();
        let v = quote_with_log(&log, &policy, &with_image);
        let c = json_check(&v, check::IMAGE_EVENTS.name);
        assert_eq!(c["outcome"]["status"], "fail", "{what}: {c:#}");
        let found = c["found"].as_str().unwrap();
        assert!(
            found.starts_with(register) && found.contains(&format!(", {what}: expected ")),
            "{what}: {found}"
        );
    }
}

#[test]
fn a_log_that_does_not_replay_to_the_quote_is_refused_naming_the_registers() {
    let dir = tempdir();
    let policy = dir.join("p.toml");
    std::fs::write(&policy, "[tdx]\nallow_any_measurement = true\n").unwrap();
    let log = dir.join("ccel.bin");
    let mut w = LogWriter::new();
    w.event(3, 6, &tdx::sha384(b"not this TD's command line"), b"");
    std::fs::write(&log, w.finish()).unwrap();
    let v = quote_with_log(&log, &policy, &[]);
    // Everything else about the real quote passes; the log alone refuses it.
    assert!(json_passed(&v, check::QUOTE_SIGNATURE.name), "{v:#}");
    let c = json_check(&v, check::EVENT_LOG.name);
    assert_eq!(c["outcome"]["status"], "fail");
    assert!(
        c["found"].as_str().unwrap().contains("RTMR2: replayed "),
        "{c:#}"
    );

    // Truncated and garbage logs: refused at the same check, saying why.
    let mut cut = LogWriter::new();
    cut.event(2, 4, &[0; 48], &[0; 4]);
    let cut = cut.finish();
    for (bytes, why) in [
        (cut[..cut.len() - 2].to_vec(), "truncated"),
        (
            b"this is not an event log, only some text".to_vec(),
            "event log",
        ),
    ] {
        std::fs::write(&log, bytes).unwrap();
        let v = quote_with_log(&log, &policy, &[]);
        let c = json_check(&v, check::EVENT_LOG.name);
        assert_eq!(c["found"], "does not parse", "{c:#}");
        assert!(
            c["outcome"]["reason"].as_str().unwrap().contains(why),
            "{c:#}"
        );
    }

    // A log for evidence that has no RTMRs (an SNP report, an SGX quote) is an input error.
    for evidence in ["snp/milan/report_milan.hex", "sgx/sgx_quote"] {
        let out = silk(&[
            "verify",
            &p(vectors().join(evidence)),
            "--event-log",
            log.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(2), "{evidence}: {}", text(&out));
        assert!(
            text(&out).contains("--event-log is for TDX"),
            "{evidence}: {}",
            text(&out)
        );
    }
}

#[test]
fn a_bundle_carries_its_event_log() {
    let dir = tempdir();
    let policy = dir.join("p.toml");
    std::fs::write(&policy, "[tdx]\nallow_any_measurement = true\n").unwrap();
    let mut w = LogWriter::new();
    w.event(4, 6, &tdx::sha384(b"runtime"), b"");
    let path = real_tdx_bundle(&dir, &test_claims(), Some(w.finish()));
    let (code, v) = verify_json(&[
        "verify",
        &path,
        "--policy",
        &p(policy),
        "--now",
        IN_WINDOW,
        "--json",
    ]);
    assert_eq!(code, Some(1), "{v:#}");
    let c = json_check(&v, check::EVENT_LOG.name);
    assert!(
        c["found"].as_str().unwrap().contains("RTMR3: replayed "),
        "{c:#}"
    );
}
