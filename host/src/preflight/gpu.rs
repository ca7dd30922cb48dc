//! GPU passthrough: each GPU's IOMMU group (what else passing it through would take from
//! the host) and the GPU's confidential-computing mode as `nvidia-smi` reports it.

use std::sync::Arc;

use super::{HostRoot, Report, Status};
use crate::pci::PciAddr;
use crate::vfio::{is_bridge, FileWriter, Sysfs, VFIO_DRIVER};

/// The confidential-computing mode NVIDIA's tools report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CcMode {
    /// All of the GPU's protections on: what a confidential guest needs.
    On,
    /// Protections off (the default).
    Off,
    /// Protections on but profiling and debugging allowed: not for production.
    DevTools,
}

/// Reads the CC mode from `nvidia-smi conf-compute -f` (`CC status: ON`) or the
/// confidential-compute lines of `nvidia-smi -q`. A `DevTools` line that reads ON wins
/// over the status. `None` when no line names it.
pub fn parse_cc_mode(text: &str) -> Option<CcMode> {
    let mut mode = None;
    let mut devtools = false;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let key = key.trim().to_ascii_lowercase();
        let value = value.trim().to_ascii_lowercase();
        let value = value.split_whitespace().next().unwrap_or("");
        if key.contains("devtools") || key.contains("dev tools") {
            devtools |= value == "on" || value == "enabled";
        } else if key.starts_with("cc status")
            || key.starts_with("cc state")
            || key.starts_with("cc mode")
            || key.contains("confidential compute mode")
        {
            mode = match value {
                "on" | "enabled" => Some(CcMode::On),
                "off" | "disabled" => Some(CcMode::Off),
                "devtools" => Some(CcMode::DevTools),
                _ => mode,
            };
        }
    }
    match mode {
        Some(CcMode::On) if devtools => Some(CcMode::DevTools),
        m => m,
    }
}

/// The fix for a GPU whose CC mode is wrong, with NVIDIA's gpu-admin-tools.
fn set_cc_on(gpu: PciAddr) -> String {
    format!(
        "python3 nvidia_gpu_tools.py --gpu-bdf={gpu} --set-cc-mode=on --reset-after-cc-mode-switch (NVIDIA's gpu-admin-tools)"
    )
}

fn class_name(class: Option<u32>) -> &'static str {
    match class.map(|c| c >> 8) {
        Some(0x0300) => "VGA controller",
        Some(0x0302) => "3D controller",
        Some(0x0403) => "audio device",
        Some(0x0604) => "PCI bridge",
        Some(0x0200) => "Ethernet controller",
        Some(0x0108) => "NVMe controller",
        Some(0x0c03) => "USB controller",
        Some(_) => "device",
        None => "device of unknown class",
    }
}

impl HostRoot {
    fn sysfs(&self) -> Sysfs {
        Sysfs::new(self.path("/sys"), Arc::new(FileWriter))
    }

    /// The GPU's IOMMU group: every member and its driver, and any member that is not a
    /// function of the GPU's own slot (nor a bridge), which passthrough would take too.
    pub(super) fn check_iommu_group(&self, gpu: PciAddr, r: &mut Report) {
        let sysfs = self.sysfs();
        let members = match sysfs.iommu_group(gpu) {
            Ok(m) => m,
            Err(e) => {
                r.push("iommu-group", Status::Missing, format!("{gpu}: {e}"));
                return;
            }
        };
        let group =
            std::fs::read_link(self.path(&format!("/sys/bus/pci/devices/{gpu}/iommu_group")))
                .ok()
                .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "?".into());
        let mut described = Vec::new();
        let mut strangers = Vec::new();
        let mut to_move = Vec::new();
        for m in &members {
            let class = sysfs.class(*m);
            let driver = sysfs.driver(*m);
            let bridge = is_bridge(class);
            let same_slot = (m.domain, m.bus, m.device) == (gpu.domain, gpu.bus, gpu.device);
            described.push(format!(
                "{m} {} ({})",
                class_name(class),
                driver.as_deref().unwrap_or("no driver")
            ));
            if bridge {
                continue;
            }
            if !same_slot {
                strangers.push(format!(
                    "{m} ({}, {})",
                    class_name(class),
                    driver.as_deref().unwrap_or("no driver")
                ));
            }
            if driver.as_deref() != Some(VFIO_DRIVER) {
                to_move.push(format!(
                    "{m} from {}",
                    driver.as_deref().unwrap_or("no driver")
                ));
            }
        }
        let list = described.join(", ");
        if !strangers.is_empty() {
            r.push(
                "iommu-group",
                Status::Missing,
                format!(
                    "{gpu}: IOMMU group {group} also holds {}, which passing the GPU through would take from the host: put the GPU in a slot with its own group, or enable ACS in the BIOS (group: {list})",
                    strangers.join(", ")
                ),
            );
        } else if to_move.is_empty() {
            r.push(
                "iommu-group",
                Status::Ok,
                format!("{gpu}: IOMMU group {group}: {list}; all on vfio-pci"),
            );
        } else {
            r.push(
                "iommu-group",
                Status::Warn,
                format!(
                    "{gpu}: IOMMU group {group}: {list}; silk-host moves {} to vfio-pci at launch (as root; under the systemd unit bind them beforehand: driverctl set-override ADDR vfio-pci)",
                    to_move.join(", ")
                ),
            );
        }
    }

    /// The GPUs' CC mode from `nvidia-smi conf-compute -f`'s output (`None`: nvidia-smi is
    /// not installed; `Err`: it failed, e.g. no NVIDIA driver holds the GPU).
    pub(super) fn check_gpu_cc(
        &self,
        gpus: &[PciAddr],
        nvidia_smi: Option<&Result<String, String>>,
        r: &mut Report,
    ) {
        let Some(first) = gpus.first().copied() else {
            return;
        };
        let query = format!(
            "python3 nvidia_gpu_tools.py --gpu-bdf={first} --query-cc-mode (NVIDIA's gpu-admin-tools, which also read a GPU bound to vfio-pci)"
        );
        let text = match nvidia_smi {
            None => {
                r.push(
                    "gpu-cc",
                    Status::Warn,
                    format!("nvidia-smi is not installed, so the CC mode is not read here: check it with {query}"),
                );
                return;
            }
            Some(Err(e)) => {
                r.push(
                    "gpu-cc",
                    Status::Warn,
                    format!("`nvidia-smi conf-compute -f` failed ({e}; a GPU on vfio-pci has no host driver): check it with {query}"),
                );
                return;
            }
            Some(Ok(t)) => t,
        };
        let fix: Vec<String> = gpus.iter().map(|g| set_cc_on(*g)).collect();
        match parse_cc_mode(text) {
            Some(CcMode::On) => r.push("gpu-cc", Status::Ok, "nvidia-smi: CC status ON"),
            Some(CcMode::Off) => r.push(
                "gpu-cc",
                Status::Missing,
                format!("nvidia-smi: CC status OFF: {}", fix.join("; ")),
            ),
            Some(CcMode::DevTools) => r.push(
                "gpu-cc",
                Status::Missing,
                format!(
                    "nvidia-smi: CC in devtools mode (profiling and debugging allowed; the GPU's attestation says so and policies refuse it): {}",
                    fix.join("; ")
                ),
            ),
            None => r.push(
                "gpu-cc",
                Status::Warn,
                format!("cannot read the CC mode from nvidia-smi's output: check it with {query}"),
            ),
        }
    }
}

/// Runs `nvidia-smi conf-compute -f`: `None` when nvidia-smi is not installed.
pub fn nvidia_smi_cc(program: &std::path::Path) -> Option<Result<String, String>> {
    match std::process::Command::new(program)
        .args(["conf-compute", "-f"])
        .output()
    {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => Some(Err(e.to_string())),
        Ok(o) if o.status.success() => Some(Ok(String::from_utf8_lossy(&o.stdout).into_owned())),
        Ok(o) => Some(Err(format!(
            "{}: {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cc_modes() {
        assert_eq!(parse_cc_mode("CC status: ON\n"), Some(CcMode::On));
        assert_eq!(parse_cc_mode("CC status: OFF\n"), Some(CcMode::Off));
        assert_eq!(
            parse_cc_mode("CC status: DEVTOOLS\n"),
            Some(CcMode::DevTools)
        );
        assert_eq!(
            parse_cc_mode("CC status: ON\nCC DevTools mode: ON\n"),
            Some(CcMode::DevTools)
        );
        assert_eq!(parse_cc_mode("No devices were found\n"), None);
    }
}
