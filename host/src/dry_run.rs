//! `silk-host run --dry-run`: what a launch would do, as text for a person or, with
//! `--json`, as one JSON document for a program.
//!
//! The JSON document's keys (stable; new keys may be added):
//!
//! ```text
//! image          the image directory
//! image_digest   SHA-256 of the canonical manifest
//! preflight      {"ready": bool, "checks": [{"name", "status": ok|warn|missing, "detail"}]}
//! notes          [string]: what the command line assumes that the host lacks, e.g. "the
//!                command line below is for QEMU 9.1.0; found 7.2.22, which cannot run it"
//! plan           {"tee": snp|tdx|none, "accelerator": kvm|tcg, "qemu_version", "vcpus",
//!                 "memory_mib", "firmware", "kernel", "initrd", "cmdline", "model_disk",
//!                 "guest_outbound", "gpus": [PCI address]}
//! relay          {"listen": client address, "forward": QEMU's loopback forward}
//! admin          address of /healthz and /metrics, or null
//! vfio           [{"gpu", "device", "driver"} or {"gpu", "error"}]: each device of each
//!                GPU's IOMMU group, and the driver it leaves for vfio-pci
//! qemu           {"program", "args": [string]}
//! command_line   the same, quoted for a POSIX shell
//! ```
//!
//! Both forms are printed in full whatever preflight found; `silk-host` then exits 0 when
//! nothing is missing and 1 when something is (the report's `MISSING` lines say what).

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::app::{Prepared, RunOptions};
use crate::preflight::Report;
use crate::qemu::{self, Accel};
use crate::vfio::Sysfs;

/// One device that passing a GPU through would move to vfio-pci, or why its group could
/// not be read.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum VfioMove {
    /// A device in the GPU's IOMMU group.
    Device {
        /// The GPU asked for.
        gpu: String,
        /// A device of its group (the GPU itself included).
        device: String,
        /// Its driver now (`none` when unbound).
        driver: String,
    },
    /// The group could not be read.
    Unreadable {
        /// The GPU asked for.
        gpu: String,
        /// Why.
        error: String,
    },
}

/// The devices each GPU's passthrough would move.
pub fn vfio_moves(opts: &RunOptions) -> Vec<VfioMove> {
    let sysfs = Sysfs::new(&opts.sysfs, Arc::new(crate::vfio::FileWriter));
    let mut moves = Vec::new();
    for gpu in &opts.gpus {
        match sysfs.iommu_group(*gpu) {
            Ok(members) => moves.extend(members.into_iter().map(|m| VfioMove::Device {
                gpu: gpu.to_string(),
                device: m.to_string(),
                driver: sysfs.driver(m).unwrap_or_else(|| "none".into()),
            })),
            Err(e) => moves.push(VfioMove::Unreadable {
                gpu: gpu.to_string(),
                error: e.to_string(),
            }),
        }
    }
    moves
}

/// `ready`, or `NOT READY (missing: a, b)`: the report's last line.
pub fn verdict(r: &Report) -> String {
    if r.ok() {
        "ready".to_owned()
    } else {
        let names: Vec<&str> = r.missing().map(|c| c.name).collect();
        format!("NOT READY (missing: {})", names.join(", "))
    }
}

/// The text: preflight, device plan, GPU groups, and the command line.
pub fn text(opts: &RunOptions, p: &Prepared) -> String {
    let mut s = format!(
        "# image {} (digest {})\n",
        opts.image.display(),
        p.image_digest
    );
    s.push_str("\n# preflight\n");
    s.push_str(&p.report.to_string());
    s.push_str(&verdict(&p.report));
    s.push('\n');
    for n in &p.notes {
        s.push_str(&format!("note: {n}\n"));
    }
    s.push_str("\n# device plan\n");
    s.push_str(&p.plan.describe());
    s.push_str(&format!("relay: {} -> {}\n", opts.listen, p.plan.forward));
    if let Some(a) = opts.admin {
        s.push_str(&format!("admin: http://{a}/healthz, http://{a}/metrics\n"));
    }
    for m in vfio_moves(opts) {
        match m {
            VfioMove::Device {
                gpu,
                device,
                driver,
            } => s.push_str(&format!(
                "vfio: {device} (IOMMU group of {gpu}) driver {driver} -> vfio-pci\n"
            )),
            VfioMove::Unreadable { gpu, error } => s.push_str(&format!("vfio: {gpu}: {error}\n")),
        }
    }
    s.push_str(&format!(
        "\n# command line (QEMU {})\n",
        p.plan.qemu_version
    ));
    s.push_str(&qemu::shell_join(&opts.qemu.to_string_lossy(), &p.args));
    s.push('\n');
    s
}

#[derive(Serialize)]
struct Plan<'a> {
    tee: &'static str,
    accelerator: &'static str,
    qemu_version: String,
    vcpus: u32,
    memory_mib: u64,
    firmware: &'a Path,
    kernel: &'a Path,
    initrd: &'a Path,
    cmdline: &'a str,
    model_disk: &'a Path,
    guest_outbound: bool,
    gpus: Vec<String>,
}

#[derive(Serialize)]
struct Relay {
    listen: String,
    forward: String,
}

#[derive(Serialize)]
struct Qemu<'a> {
    program: &'a Path,
    args: &'a [String],
}

/// The document `--dry-run --json` prints (see the module docs for its keys).
#[derive(Serialize)]
pub struct DryRun<'a> {
    image: &'a Path,
    image_digest: &'a str,
    preflight: &'a Report,
    notes: Vec<&'a str>,
    plan: Plan<'a>,
    relay: Relay,
    admin: Option<String>,
    vfio: Vec<VfioMove>,
    qemu: Qemu<'a>,
    command_line: String,
}

/// The dry run as a serialisable document.
pub fn json<'a>(opts: &'a RunOptions, p: &'a Prepared) -> DryRun<'a> {
    let plan = &p.plan;
    DryRun {
        image: &opts.image,
        image_digest: &p.image_digest,
        preflight: &p.report,
        notes: p.notes.iter().map(String::as_str).collect(),
        plan: Plan {
            tee: plan.tee.name(),
            accelerator: match plan.accel {
                Accel::Kvm => "kvm",
                Accel::Tcg => "tcg",
            },
            qemu_version: plan.qemu_version.to_string(),
            vcpus: plan.vcpus,
            memory_mib: plan.memory_mib,
            firmware: &plan.boot.firmware,
            kernel: &plan.boot.kernel,
            initrd: &plan.boot.initrd,
            cmdline: &plan.boot.cmdline,
            model_disk: &plan.model_disk,
            guest_outbound: plan.guest_outbound,
            gpus: plan.gpus.iter().map(ToString::to_string).collect(),
        },
        relay: Relay {
            listen: opts.listen.to_string(),
            forward: plan.forward.to_string(),
        },
        admin: opts.admin.map(|a| a.to_string()),
        vfio: vfio_moves(opts),
        qemu: Qemu {
            program: &opts.qemu,
            args: &p.args,
        },
        command_line: qemu::shell_join(&opts.qemu.to_string_lossy(), &p.args),
    }
}
