//! What Linux shows of the CPU, the BIOS settings and the kernel a confidential guest needs:
//! `/proc/cpuinfo` flags, `/proc/sys/kernel/osrelease`, `/proc/cmdline` and the KVM
//! modules' parameters. Each reading is a pure function of the file's text, so the tests
//! feed recorded text; none reads the kernel log.
//!
//! Linux shows the BIOS settings through the CPU flags it keeps: it clears `sev`, `sev_es`
//! and `sev_snp` when the BIOS left SME/SEV off, clears `sev_snp` when the BIOS reserved no
//! RMP table or the IOMMU cannot support SNP (or `sev=nosnp` is on the command line), and
//! sets `tdx_host_platform` only when the BIOS reserved TDX private KeyIDs.

use super::{HostRoot, Report, Status};
use crate::qemu::Tee;

/// Linux 6.11 is the first with SEV-SNP host support in KVM.
pub const MIN_KERNEL_SNP: (u32, u32) = (6, 11);
/// Linux 6.16 is the first with TDX host support in KVM.
pub const MIN_KERNEL_TDX: (u32, u32) = (6, 16);

/// The flags of the first `flags` line of `/proc/cpuinfo`.
pub fn cpu_flags(cpuinfo: &str) -> Vec<&str> {
    cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, f)| f.split_whitespace().collect())
        .unwrap_or_default()
}

/// `major.minor` of `/proc/sys/kernel/osrelease` (e.g. `6.1.0-28-amd64` gives (6, 1)).
pub fn kernel_version(osrelease: &str) -> Option<(u32, u32)> {
    let mut parts = osrelease.trim().split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// The kernel command line as `key` / optional `value` pairs, in order.
pub fn cmdline_params(cmdline: &str) -> Vec<(&str, Option<&str>)> {
    cmdline
        .split_whitespace()
        .map(|w| match w.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (w, None),
        })
        .collect()
}

/// The last value given for `key` (the kernel takes the last), `Some("")` for a bare flag.
fn param<'a>(params: &[(&'a str, Option<&'a str>)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .rev()
        .find(|(k, _)| k.replace('-', "_") == key.replace('-', "_"))
        .map(|(_, v)| v.unwrap_or(""))
}

fn off(v: &str) -> bool {
    matches!(v, "0" | "n" | "N" | "off" | "false")
}

impl HostRoot {
    fn read(&self, p: &str) -> Option<String> {
        std::fs::read_to_string(self.path(p)).ok()
    }

    /// The CPU flags check: what the BIOS enabled, as Linux shows it.
    pub(super) fn check_cpu(&self, tee: &Tee, r: &mut Report) {
        if matches!(tee, Tee::None) {
            return;
        }
        let Some(cpuinfo) = self.read("/proc/cpuinfo") else {
            r.push("cpu", Status::Missing, "cannot read /proc/cpuinfo");
            return;
        };
        let flags = cpu_flags(&cpuinfo);
        let has = |f: &str| flags.contains(&f);
        match tee {
            Tee::Snp { .. } => {
                let lacking: Vec<&str> = ["svm", "sev", "sev_es", "sev_snp"]
                    .into_iter()
                    .filter(|f| !has(f))
                    .collect();
                let fix = if !has("svm") {
                    "the CPU shows no svm: SEV-SNP needs an AMD EPYC (Milan or later) with SVM enabled in the BIOS"
                } else if !has("sev") {
                    "enable SMEE (memory encryption) and SEV in the BIOS, with SEV ASIDs above 0; Linux hides the sev flags while they are off"
                } else if !has("sev_es") {
                    "enable SEV-ES in the BIOS (SEV-ES ASIDs above 0)"
                } else {
                    "enable SEV-SNP and SNP memory coverage (the RMP table) in the BIOS, and the IOMMU; Linux clears sev_snp when the BIOS reserved no RMP table, when the IOMMU cannot support SNP, or with sev=nosnp on the command line"
                };
                if lacking.is_empty() {
                    r.push(
                        "cpu",
                        Status::Ok,
                        "svm sev sev_es sev_snp: the BIOS enabled SEV-SNP and reserved the RMP table",
                    );
                } else {
                    r.push(
                        "cpu",
                        Status::Missing,
                        format!("no {} in /proc/cpuinfo: {fix}", lacking.join(", ")),
                    );
                }
            }
            Tee::Tdx { .. } => {
                if !has("vmx") {
                    r.push(
                        "cpu",
                        Status::Missing,
                        "no vmx in /proc/cpuinfo: TDX needs a Xeon (4th gen or later) with VT-x enabled in the BIOS",
                    );
                } else if !has("tdx_host_platform") {
                    r.push(
                        "cpu",
                        Status::Missing,
                        "no tdx_host_platform in /proc/cpuinfo: enable TME, TME-MT (multi-key), TDX, the SEAM loader and a TDX key split above 0 in the BIOS (Linux sets the flag only when the BIOS reserved TDX KeyIDs; kernels before 6.8 never show it)",
                    );
                } else {
                    r.push(
                        "cpu",
                        Status::Ok,
                        "vmx tdx_host_platform: the BIOS enabled TDX and reserved its KeyIDs",
                    );
                }
            }
            Tee::None => {}
        }
    }

    /// The host kernel's version against the first with host support for the TEE.
    pub(super) fn check_kernel(&self, tee: &Tee, r: &mut Report) {
        let (need, what) = match tee {
            Tee::Snp { .. } => (MIN_KERNEL_SNP, "SEV-SNP"),
            Tee::Tdx { .. } => (MIN_KERNEL_TDX, "TDX"),
            Tee::None => return,
        };
        let release = self.read("/proc/sys/kernel/osrelease");
        let release = release.as_deref().map(str::trim);
        match release.and_then(kernel_version) {
            Some(v) if v >= need => r.push("kernel", Status::Ok, format!("Linux {}", release.unwrap_or_default())),
            Some(_) => r.push(
                "kernel",
                Status::Missing,
                format!(
                    "Linux {} predates {what} host support ({}.{}): install a newer kernel ({})",
                    release.unwrap_or_default(),
                    need.0,
                    need.1,
                    match tee {
                        Tee::Tdx { .. } => "6.16 or later, e.g. Debian trixie-backports' linux-image-amd64, or a distribution kernel with Intel's TDX host patches",
                        _ => "Debian: linux-image-amd64 from bookworm-backports or trixie, 6.12",
                    }
                ),
            ),
            None => r.push(
                "kernel",
                Status::Warn,
                "cannot read the kernel version from /proc/sys/kernel/osrelease",
            ),
        }
    }

    /// `/proc/cmdline`: parameters that turn the TEE or the IOMMU off, and those the fix
    /// needs.
    pub(super) fn check_cmdline(&self, tee: &Tee, gpus: usize, r: &mut Report) {
        if matches!(tee, Tee::None) && gpus == 0 {
            return;
        }
        let Some(cmdline) = self.read("/proc/cmdline") else {
            r.push("cmdline", Status::Warn, "cannot read /proc/cmdline");
            return;
        };
        let params = cmdline_params(&cmdline);
        let get = |k: &str| param(&params, k);
        let mut problems = Vec::new();
        let mut advice = Vec::new();
        let (iommu_key, iommu_on) = match tee {
            Tee::Tdx { .. } => ("intel_iommu", "intel_iommu=on"),
            _ => ("amd_iommu", "amd_iommu=on"),
        };
        match tee {
            Tee::Snp { .. } => {
                if get("sev").is_some_and(|v| v.split(',').any(|o| o == "nosnp")) {
                    problems.push("sev=nosnp turns SEV-SNP off: remove it".to_owned());
                }
                for p in ["kvm_amd.sev", "kvm_amd.sev_es", "kvm_amd.sev_snp"] {
                    if get(p).is_some_and(off) {
                        problems.push(format!("{p}=0 turns it off: set {p}=1"));
                    }
                }
                if get("amd_iommu").is_some_and(|v| v == "off")
                    || get("iommu").is_some_and(|v| v == "off")
                {
                    problems.push("the IOMMU is turned off, and SEV-SNP needs it: remove amd_iommu=off / iommu=off".into());
                }
            }
            Tee::Tdx { .. } => {
                match get("kvm_intel.tdx") {
                    Some(v) if !off(v) => {}
                    Some(_) => problems.push("kvm_intel.tdx=0: set kvm_intel.tdx=1".into()),
                    None => {
                        problems.push("no kvm_intel.tdx=1 (TDX is off by default): add it".into())
                    }
                }
                if get("kvm.enable_virt_at_load").is_some_and(off) {
                    problems.push("kvm.enable_virt_at_load=0: TDX needs it on (remove it)".into());
                }
            }
            Tee::None => {}
        }
        if gpus > 0 {
            if get(iommu_key).is_some_and(|v| v == "off")
                || get("iommu").is_some_and(|v| v == "off")
            {
                problems.push(format!(
                    "the IOMMU is turned off, and GPU passthrough needs it: set {iommu_on}"
                ));
            }
            if matches!(tee, Tee::Tdx { .. }) && get(iommu_key).is_none() {
                advice.push("intel_iommu=on");
            }
            if get("iommu") != Some("pt") {
                advice.push("iommu=pt (host devices skip translation; NVIDIA's guide sets it)");
            }
        }
        let relevant: Vec<String> = params
            .iter()
            .filter(|(k, _)| {
                let k = k.replace('-', "_");
                k.starts_with("kvm") || k.contains("iommu") || k == "mem_encrypt" || k == "sev"
            })
            .map(|(k, v)| v.map_or_else(|| (*k).to_owned(), |v| format!("{k}={v}")))
            .collect();
        let found = if relevant.is_empty() {
            "nothing relevant set".to_owned()
        } else {
            relevant.join(" ")
        };
        if !problems.is_empty() {
            r.push(
                "cmdline",
                Status::Missing,
                format!("{found}: {}", problems.join("; ")),
            );
        } else if !advice.is_empty() {
            r.push(
                "cmdline",
                Status::Warn,
                format!("{found}; consider adding {}", advice.join(", ")),
            );
        } else {
            r.push("cmdline", Status::Ok, found);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_flags_versions_and_parameters() {
        let info = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu svm sev sev_es sev_snp\nprocessor\t: 1\nflags : fpu\n";
        assert_eq!(cpu_flags(info), ["fpu", "svm", "sev", "sev_es", "sev_snp"]);
        assert!(cpu_flags("processor : 0\n").is_empty());
        assert_eq!(kernel_version("6.1.0-28-amd64\n"), Some((6, 1)));
        assert_eq!(kernel_version("6.16.3+deb13-amd64"), Some((6, 16)));
        assert_eq!(kernel_version("6.12"), Some((6, 12)));
        assert_eq!(kernel_version("linux"), None);
        let p = cmdline_params(
            "BOOT_IMAGE=/vmlinuz ro quiet kvm_amd.sev_snp=1 iommu=pt kvm-amd.sev=0 iommu=off",
        );
        assert_eq!(param(&p, "quiet"), Some(""));
        assert_eq!(
            param(&p, "kvm_amd.sev"),
            Some("0"),
            "dashes and underscores are one"
        );
        assert_eq!(param(&p, "iommu"), Some("off"), "the last one counts");
        assert_eq!(param(&p, "mem_encrypt"), None);
    }
}
