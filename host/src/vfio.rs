//! Hands GPUs to vfio-pci through sysfs, and gives them back on exit.
//!
//! VFIO assigns whole IOMMU groups: every endpoint in the GPU's group (its audio function,
//! for instance) must be bound to vfio-pci or to no driver before QEMU can open the GPU.
//! Binding uses `driver_override` + `drivers_probe` (the kernel's supported way to pick a
//! driver for one device) rather than `new_id`, which would also grab every other card
//! with the same vendor:device id.
//!
//! All access goes through [`Sysfs`], rooted at a directory (normally `/sys`) and writing
//! through a [`SysfsWriter`], so tests run against a fake tree whose writer plays the
//! kernel's part.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::pci::PciAddr;

/// The driver VFIO passthrough needs.
pub const VFIO_DRIVER: &str = "vfio-pci";

/// PCI class code (the upper 16 bits of `class`) of a PCI-to-PCI bridge.
const CLASS_BRIDGE: u32 = 0x0604;

/// Whether a device of this `class` (as [`Sysfs::class`] reads it) is a bridge. Bridges in
/// a GPU's group stay with their port driver (VFIO allows that): launch leaves them
/// bound, and preflight does not count them as devices passthrough would take.
pub fn is_bridge(class: Option<u32>) -> bool {
    class.is_some_and(|c| c >> 8 == CLASS_BRIDGE)
}

/// Performs sysfs writes. The real one writes files; a fake one can also play the kernel.
pub trait SysfsWriter: Send + Sync {
    /// Writes `value` to the sysfs attribute at `path`.
    fn write(&self, path: &Path, value: &str) -> std::io::Result<()>;
}

/// Writes straight to the files (the real kernel reacts).
#[derive(Debug, Default)]
pub struct FileWriter;

impl SysfsWriter for FileWriter {
    fn write(&self, path: &Path, value: &str) -> std::io::Result<()> {
        std::fs::write(path, value)
    }
}

/// A sysfs tree.
#[derive(Clone)]
pub struct Sysfs {
    root: PathBuf,
    writer: Arc<dyn SysfsWriter>,
}

impl std::fmt::Debug for Sysfs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sysfs").field("root", &self.root).finish()
    }
}

/// Why a GPU cannot be handed to vfio-pci (or given back).
#[derive(Debug, thiserror::Error)]
pub enum VfioError {
    /// No IOMMU groups: the IOMMU is off.
    #[error("the IOMMU is off ({0} has no groups): boot the host with amd_iommu=on or intel_iommu=on (and iommu=pt)")]
    IommuOff(PathBuf),
    /// The device does not exist.
    #[error("no PCI device {0} (see `lspci -D`)")]
    NoDevice(PciAddr),
    /// The device has no IOMMU group.
    #[error("PCI device {0} has no IOMMU group; is the IOMMU enabled for it?")]
    NoGroup(PciAddr),
    /// vfio-pci is not loaded.
    #[error("the vfio-pci driver is not loaded: run `modprobe vfio-pci`")]
    NoVfioDriver,
    /// After probing, the device is bound to something else.
    #[error("{addr} is bound to {found:?} after probing, not vfio-pci")]
    NotBound {
        /// The device.
        addr: PciAddr,
        /// The driver it ended up with.
        found: Option<String>,
    },
    /// A sysfs read or write failed.
    #[error("sysfs {what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The attribute.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// One device this host bound to vfio-pci, and what it had before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The device.
    pub addr: PciAddr,
    /// Its driver before (None: it had none). Devices already on vfio-pci are not listed.
    pub previous: Option<String>,
}

impl Sysfs {
    /// The real sysfs at `/sys`.
    pub fn real() -> Self {
        Self::new("/sys", Arc::new(FileWriter))
    }

    /// A sysfs tree rooted at `root`, written through `writer`.
    pub fn new(root: impl Into<PathBuf>, writer: Arc<dyn SysfsWriter>) -> Self {
        Self {
            root: root.into(),
            writer,
        }
    }

    /// The tree's root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn device_dir(&self, addr: PciAddr) -> PathBuf {
        self.root.join("bus/pci/devices").join(addr.to_string())
    }

    fn write(&self, path: PathBuf, value: &str) -> Result<(), VfioError> {
        self.writer
            .write(&path, value)
            .map_err(|source| VfioError::Io {
                what: "write",
                path,
                source,
            })
    }

    /// Whether the kernel has any IOMMU group (the IOMMU is on).
    pub fn iommu_enabled(&self) -> bool {
        std::fs::read_dir(self.root.join("kernel/iommu_groups"))
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
    }

    /// The device's current driver, if any.
    pub fn driver(&self, addr: PciAddr) -> Option<String> {
        std::fs::read_link(self.device_dir(addr).join("driver"))
            .ok()
            .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()))
    }

    /// The device's PCI class (e.g. `0x030200` for a 3D controller).
    pub fn class(&self, addr: PciAddr) -> Option<u32> {
        let s = std::fs::read_to_string(self.device_dir(addr).join("class")).ok()?;
        u32::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok()
    }

    /// Every device in `addr`'s IOMMU group (including `addr`), sorted.
    pub fn iommu_group(&self, addr: PciAddr) -> Result<Vec<PciAddr>, VfioError> {
        let dev = self.device_dir(addr);
        if !dev.exists() {
            return Err(VfioError::NoDevice(addr));
        }
        let group =
            std::fs::canonicalize(dev.join("iommu_group")).map_err(|_| VfioError::NoGroup(addr))?;
        let devices = group.join("devices");
        let listing = std::fs::read_dir(&devices).map_err(|source| VfioError::Io {
            what: "list",
            path: devices.clone(),
            source,
        })?;
        let mut members = Vec::new();
        for e in listing.flatten() {
            if let Some(a) = e.file_name().to_str().and_then(|n| n.parse().ok()) {
                members.push(a);
            }
        }
        members.sort();
        Ok(members)
    }

    /// Binds `addr` and the other endpoints of its IOMMU group to vfio-pci. The guard
    /// puts the previous drivers back when dropped.
    pub fn bind_group(&self, addr: PciAddr) -> Result<VfioGuard, VfioError> {
        let groups = self.root.join("kernel/iommu_groups");
        if !self.iommu_enabled() {
            return Err(VfioError::IommuOff(groups));
        }
        let members = self.iommu_group(addr)?;
        if !self.root.join("bus/pci/drivers").join(VFIO_DRIVER).exists() {
            return Err(VfioError::NoVfioDriver);
        }
        let mut guard = VfioGuard {
            sysfs: self.clone(),
            bindings: Vec::new(),
        };
        for member in members {
            if is_bridge(self.class(member)) {
                continue;
            }
            let previous = self.driver(member);
            if previous.as_deref() == Some(VFIO_DRIVER) {
                continue;
            }
            // Record before touching it, so a half-done bind is still undone on drop.
            guard.bindings.push(Binding {
                addr: member,
                previous: previous.clone(),
            });
            let dev = self.device_dir(member);
            self.write(dev.join("driver_override"), VFIO_DRIVER)?;
            if let Some(prev) = &previous {
                self.write(
                    self.root.join("bus/pci/drivers").join(prev).join("unbind"),
                    &member.to_string(),
                )?;
            }
            self.write(self.root.join("bus/pci/drivers_probe"), &member.to_string())?;
            let now = self.driver(member);
            if now.as_deref() != Some(VFIO_DRIVER) {
                return Err(VfioError::NotBound {
                    addr: member,
                    found: now,
                });
            }
            tracing::info!(device = %member, previous = ?previous, "bound to vfio-pci");
        }
        Ok(guard)
    }
}

/// Devices bound to vfio-pci by [`Sysfs::bind_group`]; dropping it restores them.
#[derive(Debug)]
pub struct VfioGuard {
    sysfs: Sysfs,
    bindings: Vec<Binding>,
}

impl VfioGuard {
    /// What was bound, and what each device had before.
    pub fn bindings(&self) -> &[Binding] {
        &self.bindings
    }

    /// Gives every device back to its previous driver (or leaves it unbound if it had
    /// none). Errors are collected, not fatal: one stuck device must not keep the others.
    pub fn restore(&mut self) -> Vec<VfioError> {
        let mut errors = Vec::new();
        let s = &self.sysfs;
        for b in self.bindings.drain(..).rev() {
            let dev = s.device_dir(b.addr);
            let addr = b.addr.to_string();
            // An empty write clears the override (the kernel accepts "\n" too).
            let mut steps = vec![(dev.join("driver_override"), "\n".to_string())];
            let now = s.driver(b.addr);
            if now.as_deref() == Some(VFIO_DRIVER) {
                steps.push((
                    s.root
                        .join("bus/pci/drivers")
                        .join(VFIO_DRIVER)
                        .join("unbind"),
                    addr.clone(),
                ));
            }
            // A device whose unbind failed half-way still has its driver: leave it be.
            if let Some(prev) = b.previous.as_ref().filter(|p| now.as_ref() != Some(*p)) {
                steps.push((
                    s.root.join("bus/pci/drivers").join(prev).join("bind"),
                    addr.clone(),
                ));
            }
            for (path, value) in steps {
                if let Err(e) = s.write(path, &value) {
                    errors.push(e);
                }
            }
            tracing::info!(device = %b.addr, driver = ?b.previous, "restored previous binding");
        }
        errors
    }
}

impl Drop for VfioGuard {
    fn drop(&mut self) {
        for e in self.restore() {
            tracing::error!("restoring a device after passthrough: {e}");
        }
    }
}

#[cfg(test)]
#[path = "vfio_tests.rs"]
mod tests;
