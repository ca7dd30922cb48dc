//! Picks the kernel modules the guest needs, with their dependencies, in load order.
//!
//! Debian's kernel package ships no `modules.dep` (its postinst runs depmod), and the
//! image recipe must not depend on the build host's kmod, so the dependencies are read
//! from each module's own `.modinfo` ELF section (`depends=a,b`), as depmod does; the
//! `object` crate parses the ELF.
//!
//! Debian's 6.12 kernel compresses its modules (`.ko.xz`, `CONFIG_MODULE_COMPRESS_XZ`):
//! [`read_module`] decompresses them, so the initramfs carries plain `.ko` files that any
//! `insmod` loads. A wanted module that this kernel builds in (listed in
//! `modules.builtin`, as `virtio_pci` is in 6.12) needs no file and is skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use object::elf::{FileHeader64, EM_X86_64};
use object::read::elf::{FileHeader as _, SectionHeader as _};
use object::LittleEndian;

/// Why a module set could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum KmodError {
    /// Reading the module tree failed.
    #[error("reading {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A wanted module, or a dependency, is not in the tree.
    #[error("kernel module {name:?} not found under {dir} (needed by {needed_by})")]
    NotFound {
        /// The module.
        name: String,
        /// The tree searched.
        dir: PathBuf,
        /// Who needed it.
        needed_by: String,
    },
    /// A `.ko` file is not an x86-64 (64-bit little-endian) ELF with a `.modinfo` section.
    #[error("{0}: not an x86-64 kernel module (no readable .modinfo section)")]
    BadElf(PathBuf),
    /// The dependency graph has a cycle.
    #[error("kernel module dependency cycle through {0:?}")]
    Cycle(String),
    /// A `.ko.xz` file is not a valid xz stream.
    #[error("{path}: not a valid xz-compressed kernel module: {reason}")]
    Xz {
        /// The module file.
        path: PathBuf,
        /// What the decoder found wrong.
        reason: String,
    },
}

/// The file name suffixes of kernel modules this reads: plain, and xz as Debian ships them.
const SUFFIXES: [&str; 2] = [".ko.xz", ".ko"];

/// A module's canonical name: file stem with `-` as `_` (the kernel treats them alike).
pub fn canonical(name: &str) -> String {
    let stem = SUFFIXES
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name);
    stem.replace('-', "_")
}

/// The path a module has in the initramfs: its path in the tree, without `.xz`.
pub fn plain_path(rel: &Path) -> PathBuf {
    match rel.to_str().and_then(|r| r.strip_suffix(".xz")) {
        Some(plain) => PathBuf::from(plain),
        None => rel.to_path_buf(),
    }
}

/// A module file's ELF bytes: read as is, or decompressed when its name ends in `.xz`.
pub fn read_module(path: &Path) -> Result<Vec<u8>, KmodError> {
    let bytes = std::fs::read(path).map_err(|source| KmodError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if path.extension().and_then(|e| e.to_str()) != Some("xz") {
        return Ok(bytes);
    }
    let mut out = Vec::new();
    lzma_rs::xz_decompress(&mut bytes.as_slice(), &mut out).map_err(|e| KmodError::Xz {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(out)
}

/// The canonical names of the modules the kernel has built in, from `modules.builtin`
/// (one `kernel/.../name.ko` a line); empty when the tree has no such file.
pub fn builtin(moddir: &Path) -> Result<BTreeSet<String>, KmodError> {
    let path = moddir.join("modules.builtin");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(source) => return Err(KmodError::Io { path, source }),
    };
    Ok(text
        .lines()
        .filter_map(|l| l.rsplit('/').next())
        .filter(|n| !n.is_empty())
        .map(canonical)
        .collect())
}

/// The `key=value` strings of an x86-64 module's `.modinfo` section (64-bit,
/// little-endian ELF), or `None` when the bytes are not such a module.
pub fn modinfo(elf: &[u8]) -> Option<Vec<(String, String)>> {
    let header = FileHeader64::<LittleEndian>::parse(elf).ok()?;
    let endian = header.endian().ok()?;
    if header.e_machine(endian) != EM_X86_64 {
        return None;
    }
    let sections = header.sections(endian, elf).ok()?;
    let (_, section) = sections.section_by_name(endian, b".modinfo")?;
    let data = section.data(endian, elf).ok()?;
    Some(
        data.split(|b| *b == 0)
            .filter_map(|kv| std::str::from_utf8(kv).ok())
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// The `.ko` files under a module directory, by canonical name (paths relative to it).
pub fn index(moddir: &Path) -> Result<BTreeMap<String, PathBuf>, KmodError> {
    let mut out = BTreeMap::new();
    let mut stack = vec![moddir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let rd = std::fs::read_dir(&dir).map_err(|source| KmodError::Io {
            path: dir.clone(),
            source,
        })?;
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Some(n) = p.file_name().and_then(|n| n.to_str()) {
                if SUFFIXES.iter().any(|s| n.ends_with(s)) {
                    let rel = p.strip_prefix(moddir).unwrap_or(&p).to_path_buf();
                    out.insert(canonical(n), rel);
                }
            }
        }
    }
    Ok(out)
}

/// The modules to load for `wanted`, dependencies first, each once. Paths are relative to
/// `moddir` (as in the tree: a `.ko.xz` stays one; see [`plain_path`]). Wanted modules the
/// kernel has built in are left out.
pub fn resolve(moddir: &Path, wanted: &[&str]) -> Result<Vec<PathBuf>, KmodError> {
    let idx = index(moddir)?;
    let mut order = Vec::new();
    // Built-in modules count as loaded already: a file of the same name is never needed.
    let mut done = builtin(moddir)?;
    let mut visiting = BTreeSet::new();
    for w in wanted {
        visit(
            moddir,
            &idx,
            &canonical(w),
            "the image recipe",
            &mut done,
            &mut visiting,
            &mut order,
        )?;
    }
    Ok(order)
}

fn visit(
    moddir: &Path,
    idx: &BTreeMap<String, PathBuf>,
    name: &str,
    needed_by: &str,
    done: &mut BTreeSet<String>,
    visiting: &mut BTreeSet<String>,
    order: &mut Vec<PathBuf>,
) -> Result<(), KmodError> {
    if done.contains(name) {
        return Ok(());
    }
    if !visiting.insert(name.to_string()) {
        return Err(KmodError::Cycle(name.to_string()));
    }
    let rel = idx.get(name).ok_or_else(|| KmodError::NotFound {
        name: name.to_string(),
        dir: moddir.to_path_buf(),
        needed_by: needed_by.to_string(),
    })?;
    let path = moddir.join(rel);
    let bytes = read_module(&path)?;
    let info = modinfo(&bytes).ok_or_else(|| KmodError::BadElf(path.clone()))?;
    let deps: Vec<String> = info
        .iter()
        .filter(|(k, _)| k == "depends")
        .flat_map(|(_, v)| v.split(',').filter(|d| !d.is_empty()).map(canonical))
        .collect();
    for d in deps {
        visit(moddir, idx, &d, name, done, visiting, order)?;
    }
    visiting.remove(name);
    done.insert(name.to_string());
    order.push(rel.clone());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal x86-64 relocatable ELF64 with a section-name table and a `.modinfo`
    /// section, as a kernel module has them.
    fn fake_ko(modinfo: &str) -> Vec<u8> {
        let shstr = b"\0.shstrtab\0.modinfo\0".to_vec();
        let info = modinfo.replace(';', "\0").into_bytes();
        let mut elf = vec![0u8; 64];
        elf[0..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2; // ELFCLASS64
        elf[5] = 1; // little-endian
        elf[6] = 1; // EV_CURRENT
        elf[0x10..0x12].copy_from_slice(&1u16.to_le_bytes()); // ET_REL
        elf[0x12..0x14].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
        elf[0x14..0x18].copy_from_slice(&1u32.to_le_bytes()); // EV_CURRENT
        elf[0x34..0x36].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        let shstr_off = elf.len();
        elf.extend_from_slice(&shstr);
        let info_off = elf.len();
        elf.extend_from_slice(&info);
        let shoff = elf.len();
        let mut sh = |name: u32, kind: u32, off: usize, size: usize| {
            let mut h = vec![0u8; 64];
            h[0..4].copy_from_slice(&name.to_le_bytes());
            h[4..8].copy_from_slice(&kind.to_le_bytes());
            h[24..32].copy_from_slice(&(off as u64).to_le_bytes());
            h[32..40].copy_from_slice(&(size as u64).to_le_bytes());
            elf.extend_from_slice(&h);
        };
        sh(0, 0, 0, 0);
        sh(1, 3, shstr_off, shstr.len()); // SHT_STRTAB
        sh(11, 1, info_off, info.len()); // SHT_PROGBITS
        elf[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        elf[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        elf[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
        elf[0x3e..0x40].copy_from_slice(&1u16.to_le_bytes());
        elf
    }

    fn tree(mods: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (path, deps) in mods {
            let p = d.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, fake_ko(&format!("license=GPL;depends={deps};name=x"))).unwrap();
        }
        d
    }

    #[test]
    fn reads_modinfo() {
        let info = modinfo(&fake_ko("license=GPL;depends=a,b")).unwrap();
        assert_eq!(info[1], ("depends".into(), "a,b".into()));
        assert!(modinfo(b"not an elf").is_none());
        // Another machine's module, and a big-endian one, are not this guest's.
        let mut arm = fake_ko("depends=");
        arm[0x12] = 183; // EM_AARCH64
        assert!(modinfo(&arm).is_none());
        let mut big = fake_ko("depends=");
        big[5] = 2;
        assert!(modinfo(&big).is_none());
        // A section table past the end of the file is refused, not read out of bounds.
        let mut cut = fake_ko("depends=");
        cut.truncate(cut.len() - 10);
        assert!(modinfo(&cut).is_none());
    }

    #[test]
    fn resolves_dependencies_first_once_each() {
        let d = tree(&[
            ("kernel/drivers/virtio/virtio.ko", ""),
            ("kernel/drivers/virtio/virtio_ring.ko", "virtio"),
            ("kernel/drivers/block/virtio_blk.ko", "virtio,virtio_ring"),
            ("kernel/drivers/md/dm-verity.ko", "dm-bufio"),
            ("kernel/drivers/md/dm-bufio.ko", ""),
        ]);
        let order = resolve(d.path(), &["virtio_blk", "dm_verity", "virtio"]).unwrap();
        let names: Vec<String> = order
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "virtio.ko",
                "virtio_ring.ko",
                "virtio_blk.ko",
                "dm-bufio.ko",
                "dm-verity.ko"
            ]
        );
    }

    #[test]
    fn reads_xz_modules_and_skips_built_in_ones() {
        // As Debian's 6.12 ships them: xz-compressed, virtio_pci built in.
        let d = tree(&[("kernel/drivers/md/dm-bufio.ko", "")]);
        let ko = fake_ko("license=GPL;depends=dm-bufio,virtio_pci;name=dm_verity");
        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut ko.as_slice(), &mut xz).unwrap();
        let rel = Path::new("kernel/drivers/md/dm-verity.ko.xz");
        std::fs::write(d.path().join(rel), &xz).unwrap();
        let err = resolve(d.path(), &["dm_verity"]).unwrap_err();
        assert!(
            err.to_string().contains("\"virtio_pci\" not found"),
            "{err}"
        );
        std::fs::write(
            d.path().join("modules.builtin"),
            "kernel/drivers/virtio/virtio_pci.ko\nkernel/drivers/virtio/virtio.ko\n",
        )
        .unwrap();
        let order = resolve(d.path(), &["virtio_pci", "dm-verity"]).unwrap();
        assert_eq!(
            order,
            [Path::new("kernel/drivers/md/dm-bufio.ko"), rel],
            "built-in modules are not loaded"
        );
        assert_eq!(read_module(&d.path().join(rel)).unwrap(), ko);
        assert_eq!(plain_path(rel), Path::new("kernel/drivers/md/dm-verity.ko"));
        assert_eq!(canonical("dm-verity.ko.xz"), "dm_verity");

        // A damaged stream is named, not loaded as garbage.
        xz[20] ^= 0xff;
        std::fs::write(d.path().join(rel), &xz).unwrap();
        let err = resolve(d.path(), &["dm_verity"]).unwrap_err();
        assert!(
            matches!(err, KmodError::Xz { .. }) && err.to_string().contains("dm-verity.ko.xz"),
            "{err}"
        );
    }

    #[test]
    fn names_a_missing_dependency_and_cycles() {
        let d = tree(&[("kernel/a.ko", "b")]);
        let err = resolve(d.path(), &["a"]).unwrap_err();
        assert!(
            err.to_string().contains("\"b\" not found") && err.to_string().contains("needed by a"),
            "{err}"
        );
        let d = tree(&[("kernel/a.ko", "b"), ("kernel/b.ko", "a")]);
        assert!(matches!(
            resolve(d.path(), &["a"]),
            Err(KmodError::Cycle(_))
        ));
    }
}
