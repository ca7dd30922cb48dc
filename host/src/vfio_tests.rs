//! vfio binding against a fake sysfs tree whose writer plays the kernel.

use super::*;
use std::os::unix::fs::symlink;
use std::sync::Mutex;

const GPU: &str = "0000:41:00.0";
const AUDIO: &str = "0000:41:00.1";
const BRIDGE: &str = "0000:40:01.1";

/// Plays the kernel's side of driver binding on a fake tree, and logs every write.
struct FakeKernel {
    root: PathBuf,
    log: Mutex<Vec<(String, String)>>,
    /// Writes to a path containing this fail with EBUSY, like a driver refusing to unbind.
    fail_on: Option<String>,
}

impl FakeKernel {
    fn dev(&self, addr: &str) -> PathBuf {
        self.root.join("bus/pci/devices").join(addr)
    }
    fn bind(&self, addr: &str, driver: &str) -> std::io::Result<()> {
        let link = self.dev(addr).join("driver");
        let _ = std::fs::remove_file(&link);
        symlink(self.root.join("bus/pci/drivers").join(driver), link)
    }
}

impl SysfsWriter for FakeKernel {
    fn write(&self, path: &Path, value: &str) -> std::io::Result<()> {
        let rel = path.strip_prefix(&self.root).unwrap().display().to_string();
        if self.fail_on.as_deref().is_some_and(|f| rel.contains(f)) {
            return Err(std::io::Error::from_raw_os_error(libc_ebusy()));
        }
        self.log
            .lock()
            .unwrap()
            .push((rel.clone(), value.to_string()));
        std::fs::write(path, value)?;
        let parts: Vec<&str> = rel.split('/').collect();
        match parts.as_slice() {
            ["bus", "pci", "drivers", _, "unbind"] => {
                std::fs::remove_file(self.dev(value).join("driver"))?;
            }
            ["bus", "pci", "drivers", driver, "bind"] => self.bind(value, driver)?,
            ["bus", "pci", "drivers_probe"] => {
                let o = std::fs::read_to_string(self.dev(value).join("driver_override"))?;
                let o = o.trim();
                if !o.is_empty() && !self.dev(value).join("driver").exists() {
                    self.bind(value, o)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn libc_ebusy() -> i32 {
    16
}

/// A tree with the GPU, its audio function and a bridge in IOMMU group 23.
fn tree(fail_on: Option<&str>) -> (tempfile::TempDir, Arc<FakeKernel>, Sysfs) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    for d in ["nvidia", "snd_hda_intel", "pcieport", VFIO_DRIVER] {
        let p = root.join("bus/pci/drivers").join(d);
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("bind"), "").unwrap();
        std::fs::write(p.join("unbind"), "").unwrap();
    }
    std::fs::write(root.join("bus/pci/drivers_probe"), "").unwrap();
    let group = root.join("kernel/iommu_groups/23/devices");
    std::fs::create_dir_all(&group).unwrap();
    std::fs::create_dir_all(root.join("kernel/iommu_groups/7/devices")).unwrap();
    let kernel = Arc::new(FakeKernel {
        root: root.clone(),
        log: Mutex::new(Vec::new()),
        fail_on: fail_on.map(String::from),
    });
    for (addr, class, driver) in [
        (GPU, "0x030200", Some("nvidia")),
        (AUDIO, "0x040300", Some("snd_hda_intel")),
        (BRIDGE, "0x060400", Some("pcieport")),
    ] {
        let dev = root.join("bus/pci/devices").join(addr);
        std::fs::create_dir_all(&dev).unwrap();
        std::fs::write(dev.join("class"), format!("{class}\n")).unwrap();
        std::fs::write(dev.join("driver_override"), "(null)\n").unwrap();
        symlink(root.join("kernel/iommu_groups/23"), dev.join("iommu_group")).unwrap();
        symlink(&dev, group.join(addr)).unwrap();
        if let Some(d) = driver {
            kernel.bind(addr, d).unwrap();
        }
    }
    let sysfs = Sysfs::new(root, kernel.clone());
    (dir, kernel, sysfs)
}

fn a(s: &str) -> PciAddr {
    s.parse().unwrap()
}

#[test]
fn lists_the_iommu_group() {
    let (_d, _k, s) = tree(None);
    assert!(s.iommu_enabled());
    assert_eq!(
        s.iommu_group(a(GPU)).unwrap(),
        vec![a(BRIDGE), a(GPU), a(AUDIO)]
    );
    assert_eq!(s.driver(a(GPU)).as_deref(), Some("nvidia"));
    assert_eq!(s.class(a(GPU)), Some(0x030200));
}

#[test]
fn binds_the_group_and_restores_on_drop() {
    let (_d, k, s) = tree(None);
    {
        let guard = s.bind_group(a(GPU)).unwrap();
        assert_eq!(
            guard.bindings(),
            &[
                Binding {
                    addr: a(GPU),
                    previous: Some("nvidia".into())
                },
                Binding {
                    addr: a(AUDIO),
                    previous: Some("snd_hda_intel".into())
                },
            ]
        );
        assert_eq!(s.driver(a(GPU)).as_deref(), Some(VFIO_DRIVER));
        assert_eq!(s.driver(a(AUDIO)).as_deref(), Some(VFIO_DRIVER));
        // The bridge keeps its port driver.
        assert_eq!(s.driver(a(BRIDGE)).as_deref(), Some("pcieport"));
    }
    assert_eq!(s.driver(a(GPU)).as_deref(), Some("nvidia"));
    assert_eq!(s.driver(a(AUDIO)).as_deref(), Some("snd_hda_intel"));
    let log = k.log.lock().unwrap().clone();
    let expect: Vec<(String, String)> = [
        (format!("bus/pci/devices/{GPU}/driver_override"), "vfio-pci"),
        ("bus/pci/drivers/nvidia/unbind".into(), GPU),
        ("bus/pci/drivers_probe".into(), GPU),
        (
            format!("bus/pci/devices/{AUDIO}/driver_override"),
            "vfio-pci",
        ),
        ("bus/pci/drivers/snd_hda_intel/unbind".into(), AUDIO),
        ("bus/pci/drivers_probe".into(), AUDIO),
        // Restored in reverse order.
        (format!("bus/pci/devices/{AUDIO}/driver_override"), "\n"),
        ("bus/pci/drivers/vfio-pci/unbind".into(), AUDIO),
        ("bus/pci/drivers/snd_hda_intel/bind".into(), AUDIO),
        (format!("bus/pci/devices/{GPU}/driver_override"), "\n"),
        ("bus/pci/drivers/vfio-pci/unbind".into(), GPU),
        ("bus/pci/drivers/nvidia/bind".into(), GPU),
    ]
    .into_iter()
    .map(|(p, v)| (p, v.to_string()))
    .collect();
    assert_eq!(log, expect);
}

#[test]
fn unbound_devices_stay_unbound_after_restore() {
    let (d, _k, s) = tree(None);
    std::fs::remove_file(d.path().join("bus/pci/devices").join(AUDIO).join("driver")).unwrap();
    drop(s.bind_group(a(GPU)).unwrap());
    assert_eq!(s.driver(a(AUDIO)), None);
    assert_eq!(s.driver(a(GPU)).as_deref(), Some("nvidia"));
}

#[test]
fn devices_already_on_vfio_are_left_alone() {
    let (_d, k, s) = tree(None);
    k.bind(AUDIO, VFIO_DRIVER).unwrap();
    let guard = s.bind_group(a(GPU)).unwrap();
    assert_eq!(guard.bindings().len(), 1);
    drop(guard);
    assert_eq!(s.driver(a(AUDIO)).as_deref(), Some(VFIO_DRIVER));
}

#[test]
fn a_failed_unbind_undoes_what_was_done() {
    let (_d, _k, s) = tree(Some("snd_hda_intel/unbind"));
    let err = s.bind_group(a(GPU)).unwrap_err();
    assert!(err.to_string().contains("snd_hda_intel/unbind"), "{err}");
    // The GPU, bound before the failure, is back on its driver.
    assert_eq!(s.driver(a(GPU)).as_deref(), Some("nvidia"));
    assert_eq!(s.driver(a(AUDIO)).as_deref(), Some("snd_hda_intel"));
}

#[test]
fn says_what_is_missing() {
    let (d, _k, s) = tree(None);
    assert!(matches!(
        s.bind_group(a("0000:99:00.0")),
        Err(VfioError::NoDevice(_))
    ));
    std::fs::remove_dir_all(d.path().join("bus/pci/drivers/vfio-pci")).unwrap();
    let err = s.bind_group(a(GPU)).unwrap_err();
    assert!(err.to_string().contains("modprobe vfio-pci"), "{err}");
    std::fs::remove_dir_all(d.path().join("kernel/iommu_groups")).unwrap();
    std::fs::create_dir_all(d.path().join("kernel/iommu_groups")).unwrap();
    let err = s.bind_group(a(GPU)).unwrap_err();
    assert!(err.to_string().contains("amd_iommu=on"), "{err}");
}
