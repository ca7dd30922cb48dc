//! The QEMU command line, built from a typed plan. Pure: no file or process is touched.
//!
//! One plan type covers the three platforms so that everything but the TEE-specific lines
//! (direct kernel boot, the read-only model disk, networking, GPUs) is written once and the
//! golden tests pin each platform's exact arguments.

use std::fmt;
use std::net::SocketAddrV4;
use std::path::PathBuf;

use crate::pci::PciAddr;

/// The guest's address on QEMU's user-mode network (slirp's fixed default).
pub const GUEST_IP: &str = "10.0.2.15";
/// The port `silk-enclave` listens on inside the guest.
pub const GUEST_PORT: u16 = 8443;
/// The 64-bit PCI MMIO window (MiB) OVMF must reserve so that an H100's BARs fit, as
/// NVIDIA's confidential-computing deployment guide sets it (256 GiB).
pub const GPU_MMIO64_MB: u64 = 262_144;

/// A QEMU version, as `qemu-system-x86_64 --version` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct QemuVersion {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Micro.
    pub micro: u32,
}

impl QemuVersion {
    /// A version from its parts.
    pub const fn new(major: u32, minor: u32, micro: u32) -> Self {
        Self {
            major,
            minor,
            micro,
        }
    }

    /// Parses `--version` output: `QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7)`.
    pub fn parse(output: &str) -> Option<Self> {
        let rest = output.split("version").nth(1)?;
        let word = rest.split_whitespace().next()?;
        let mut parts = word.split('.').map(|p| {
            let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u32>().ok()
        });
        let major = parts.next()??;
        let minor = parts.next()??;
        let micro = parts.next().flatten().unwrap_or(0);
        Some(Self::new(major, minor, micro))
    }
}

impl fmt::Display for QemuVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.micro)
    }
}

/// Upstream QEMU gained SEV-SNP guests (with guest_memfd) in 9.1.
pub const MIN_QEMU_SNP: QemuVersion = QemuVersion::new(9, 1, 0);
/// Upstream QEMU gained TDX guests in 10.1.
pub const MIN_QEMU_TDX: QemuVersion = QemuVersion::new(10, 1, 0);
/// Oldest QEMU tried for development VMs (Debian bookworm's).
pub const MIN_QEMU_NONE: QemuVersion = QemuVersion::new(7, 2, 0);

/// Which hypervisor accelerator QEMU uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation; required for SNP and TDX.
    Kvm,
    /// Software emulation: slow, but needs nothing from the host (development, CI).
    Tcg,
}

/// Where TDX's quote generation service (QGS) listens on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuoteSocket {
    /// A vsock address; Intel's QGS listens on CID 2 (the host), port 4050 by default.
    Vsock {
        /// Context id.
        cid: u32,
        /// Port.
        port: u32,
    },
    /// A Unix socket path (e.g. `/var/run/tdx-qgs/qgs.socket`).
    Unix(PathBuf),
}

impl Default for QuoteSocket {
    fn default() -> Self {
        QuoteSocket::Vsock { cid: 2, port: 4050 }
    }
}

/// The trusted execution environment and its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tee {
    /// AMD SEV-SNP.
    Snp {
        /// The C-bit position in page table entries (51 on Milan, Genoa and Turin).
        cbitpos: u32,
        /// Physical address bits lost to encryption (1 on those parts).
        reduced_phys_bits: u32,
        /// The guest policy, when not QEMU's default (0x30000: SMT allowed, no debug).
        policy: Option<u64>,
    },
    /// Intel TDX.
    Tdx {
        /// Where to reach the quote generation service; `None` leaves quotes unavailable.
        quote_socket: Option<QuoteSocket>,
    },
    /// No TEE: development only; the enclave must use simulated evidence.
    None,
}

impl Tee {
    /// SNP with the EPYC defaults (cbitpos 51, reduced-phys-bits 1, QEMU's policy).
    pub fn snp() -> Self {
        Tee::Snp {
            cbitpos: 51,
            reduced_phys_bits: 1,
            policy: None,
        }
    }

    /// TDX with Intel QGS on its default vsock address.
    pub fn tdx() -> Self {
        Tee::Tdx {
            quote_socket: Some(QuoteSocket::default()),
        }
    }

    /// `snp`, `tdx` or `none`.
    pub fn name(&self) -> &'static str {
        match self {
            Tee::Snp { .. } => "snp",
            Tee::Tdx { .. } => "tdx",
            Tee::None => "none",
        }
    }

    fn confidential(&self) -> bool {
        !matches!(self, Tee::None)
    }
}

/// The image files and command line to boot (all from the image manifest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootFiles {
    /// OVMF.
    pub firmware: PathBuf,
    /// The kernel (bzImage).
    pub kernel: PathBuf,
    /// The initramfs.
    pub initrd: PathBuf,
    /// The kernel command line, verbatim from the manifest: it is measured, so the host
    /// never edits it.
    pub cmdline: String,
}

/// Everything QEMU needs to start one guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmPlan {
    /// The TEE.
    pub tee: Tee,
    /// The accelerator (`Kvm` for SNP and TDX).
    pub accel: Accel,
    /// The QEMU that will run it (some arguments depend on it).
    pub qemu_version: QemuVersion,
    /// Virtual CPUs.
    pub vcpus: u32,
    /// Guest memory in MiB.
    pub memory_mib: u64,
    /// Firmware, kernel, initrd and command line.
    pub boot: BootFiles,
    /// The model disk, attached read-only.
    pub model_disk: PathBuf,
    /// GPUs to pass through (already bound to vfio-pci).
    pub gpus: Vec<PciAddr>,
    /// The host address QEMU forwards to the guest's [`GUEST_PORT`] (loopback only: the
    /// relay is the public face).
    pub forward: SocketAddrV4,
    /// Whether the guest may open connections out through slirp. Off by default: the
    /// enclave only answers.
    pub guest_outbound: bool,
}

/// Why a plan cannot be turned into a command line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// SNP and TDX run only under KVM.
    #[error("--tee {0} needs KVM (hardware virtualisation); TCG cannot run a confidential guest")]
    NeedsKvm(&'static str),
    /// The QEMU is too old for the TEE.
    #[error("--tee {tee} needs QEMU {need} or newer; found {found}")]
    QemuTooOld {
        /// The TEE.
        tee: &'static str,
        /// The oldest version that works.
        need: QemuVersion,
        /// The version found.
        found: QemuVersion,
    },
    /// A size is out of range.
    #[error("{0}")]
    Size(String),
    /// A path cannot be passed to QEMU (it would break QEMU's option syntax).
    #[error("path {0:?} contains a comma or is not UTF-8; QEMU's option syntax cannot carry it")]
    BadPath(PathBuf),
}

impl VmPlan {
    /// Checks the plan and returns QEMU's arguments (without the program name).
    pub fn args(&self) -> Result<Vec<String>, PlanError> {
        self.validate()?;
        let mut a = Args::default();
        let path = |p: &PathBuf| -> Result<String, PlanError> {
            match p.to_str() {
                Some(s) if !s.contains(',') => Ok(s.to_string()),
                _ => Err(PlanError::BadPath(p.clone())),
            }
        };

        a.pair("-name", "silk-guest");
        a.pair("-machine", &self.machine());
        a.pair(
            "-accel",
            match self.accel {
                Accel::Kvm => "kvm",
                Accel::Tcg => "tcg",
            },
        );
        a.pair("-cpu", self.cpu());
        a.pair("-smp", &self.vcpus.to_string());
        a.pair("-m", &format!("{}M", self.memory_mib));
        // No default devices: every device the guest sees is listed below, which keeps the
        // guest's view (and the measured ACPI tables) stable across QEMU builds.
        a.flag("-nodefaults");
        a.flag("-no-user-config");
        a.pair("-display", "none");
        a.pair("-serial", "stdio");
        // A guest reboot or panic ends QEMU; the supervisor restarts it as a fresh launch
        // (new measurement, new keys) instead of QEMU resetting a running CVM.
        a.flag("-no-reboot");

        match &self.tee {
            Tee::Snp {
                cbitpos,
                reduced_phys_bits,
                policy,
            } => {
                // guest_memfd backs private memory; the memfd backend holds the shared part.
                a.pair(
                    "-object",
                    &format!(
                        "memory-backend-memfd,id=ram1,size={}M,share=true,prealloc=false",
                        self.memory_mib
                    ),
                );
                let mut snp = format!(
                    "sev-snp-guest,id=sev0,cbitpos={cbitpos},reduced-phys-bits={reduced_phys_bits},kernel-hashes=on"
                );
                if let Some(p) = policy {
                    snp.push_str(&format!(",policy={p:#x}"));
                }
                a.pair("-object", &snp);
            }
            Tee::Tdx { quote_socket } => {
                // The nested socket address needs QEMU's JSON object syntax.
                let obj = match quote_socket {
                    None => r#"{"qom-type":"tdx-guest","id":"tdx0"}"#.to_string(),
                    Some(QuoteSocket::Vsock { cid, port }) => format!(
                        r#"{{"qom-type":"tdx-guest","id":"tdx0","quote-generation-socket":{{"type":"vsock","cid":"{cid}","port":"{port}"}}}}"#
                    ),
                    Some(QuoteSocket::Unix(p)) => format!(
                        r#"{{"qom-type":"tdx-guest","id":"tdx0","quote-generation-socket":{{"type":"unix","path":{}}}}}"#,
                        json_string(&path(p)?)
                    ),
                };
                a.pair("-object", &obj);
            }
            Tee::None => {}
        }

        a.pair("-bios", &path(&self.boot.firmware)?);
        a.pair("-kernel", &path(&self.boot.kernel)?);
        a.pair("-initrd", &path(&self.boot.initrd)?);
        a.pair("-append", &self.boot.cmdline);

        // Confidential guests cannot let devices DMA into private memory: virtio must use
        // the DMA API (bounce buffers in shared memory), which modern-only devices with
        // iommu_platform negotiate.
        let virtio_opts = if self.tee.confidential() {
            ",disable-legacy=on,iommu_platform=on"
        } else {
            ""
        };
        a.pair(
            "-drive",
            &format!(
                "file={},if=none,id=model,format=raw,readonly=on",
                path(&self.model_disk)?
            ),
        );
        a.pair(
            "-device",
            &format!("virtio-blk-pci,drive=model,serial=silk-model{virtio_opts}"),
        );
        let restrict = if self.guest_outbound { "off" } else { "on" };
        a.pair(
            "-netdev",
            &format!(
                "user,id=net0,restrict={restrict},hostfwd=tcp:{}:{}-{GUEST_IP}:{GUEST_PORT}",
                self.forward.ip(),
                self.forward.port()
            ),
        );
        a.pair(
            "-device",
            &format!("virtio-net-pci,netdev=net0{virtio_opts}"),
        );

        for (i, gpu) in self.gpus.iter().enumerate() {
            // One PCIe root port per GPU, as NVIDIA's guide does, so each GPU sits on its
            // own bus with room for its BARs.
            a.pair(
                "-device",
                &format!(
                    "pcie-root-port,id=gpu-port{i},bus=pcie.0,chassis={},slot={}",
                    i + 1,
                    i + 1
                ),
            );
            a.pair("-device", &format!("vfio-pci,host={gpu},bus=gpu-port{i}"));
        }
        if !self.gpus.is_empty() {
            a.pair(
                "-fw_cfg",
                &format!("name=opt/ovmf/X-PciMmio64Mb,string={GPU_MMIO64_MB}"),
            );
        }
        Ok(a.0)
    }

    fn validate(&self) -> Result<(), PlanError> {
        let (need, name) = match &self.tee {
            Tee::Snp { .. } => (MIN_QEMU_SNP, "snp"),
            Tee::Tdx { .. } => (MIN_QEMU_TDX, "tdx"),
            Tee::None => (MIN_QEMU_NONE, "none"),
        };
        if self.tee.confidential() && self.accel != Accel::Kvm {
            return Err(PlanError::NeedsKvm(name));
        }
        if self.qemu_version < need {
            return Err(PlanError::QemuTooOld {
                tee: name,
                need,
                found: self.qemu_version,
            });
        }
        if self.vcpus == 0 || self.vcpus > 512 {
            return Err(PlanError::Size(format!(
                "--vcpus {} is out of range (1..=512)",
                self.vcpus
            )));
        }
        if self.memory_mib < 128 {
            return Err(PlanError::Size(format!(
                "--memory {}M is too small: the guest needs at least 128M",
                self.memory_mib
            )));
        }
        Ok(())
    }

    fn machine(&self) -> String {
        match &self.tee {
            Tee::Snp { .. } => {
                "q35,confidential-guest-support=sev0,memory-backend=ram1,vmport=off".into()
            }
            // TDX needs the split IRQ chip; the HPET is not available to TDs.
            Tee::Tdx { .. } => {
                "q35,confidential-guest-support=tdx0,kernel-irqchip=split,hpet=off".into()
            }
            Tee::None => "q35".into(),
        }
    }

    fn cpu(&self) -> &'static str {
        match (&self.tee, self.accel) {
            // A named model keeps the CPUID pages (part of what SNP validates) stable.
            (Tee::Snp { .. }, _) => "EPYC-v4",
            (_, Accel::Kvm) => "host",
            // `max` gives TCG guests RDRAND, so the enclave's entropy pool fills at boot.
            (_, Accel::Tcg) => "max",
        }
    }

    /// A human-readable description of the devices the guest gets.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        let accel = match self.accel {
            Accel::Kvm => "KVM",
            Accel::Tcg => "TCG (software emulation)",
        };
        s.push_str(&format!(
            "tee: {}\naccelerator: {accel}\nqemu: {}\nvcpus: {}, memory: {} MiB\n",
            self.tee.name(),
            self.qemu_version,
            self.vcpus,
            self.memory_mib
        ));
        s.push_str(&format!(
            "firmware: {}\nkernel: {}\ninitrd: {}\ncmdline: {}\n",
            self.boot.firmware.display(),
            self.boot.kernel.display(),
            self.boot.initrd.display(),
            self.boot.cmdline
        ));
        s.push_str(&format!(
            "model disk (virtio-blk, read-only): {}\n",
            self.model_disk.display()
        ));
        s.push_str(&format!(
            "network: user-mode, guest {GUEST_IP}:{GUEST_PORT} forwarded from {} (outbound {})\n",
            self.forward,
            if self.guest_outbound {
                "allowed"
            } else {
                "blocked"
            }
        ));
        if self.gpus.is_empty() {
            s.push_str("gpus: none\n");
        }
        for gpu in &self.gpus {
            s.push_str(&format!(
                "gpu: vfio-pci {gpu} on its own root port, 64-bit MMIO window {GPU_MMIO64_MB} MiB\n"
            ));
        }
        s
    }
}

#[derive(Default)]
struct Args(Vec<String>);

impl Args {
    fn flag(&mut self, f: &str) {
        self.0.push(f.to_string());
    }
    fn pair(&mut self, k: &str, v: &str) {
        self.0.push(k.to_string());
        self.0.push(v.to_string());
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Quotes arguments for a POSIX shell, for `--dry-run` output an operator can paste.
pub fn shell_join(program: &str, args: &[String]) -> String {
    std::iter::once(program)
        .chain(args.iter().map(String::as_str))
        .map(|a| {
            let plain = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%".contains(c));
            if plain {
                a.to_string()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
#[path = "qemu_tests.rs"]
mod tests;
