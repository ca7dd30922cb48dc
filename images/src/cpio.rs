//! A deterministic writer for the initramfs: the `newc` cpio format the Linux kernel unpacks.
//!
//! Hand-written on purpose: the image digest goes into the enclave's claims and verifiers
//! rebuild the image to check it, so the archive bytes must depend only on the file contents
//! and modes. GNU cpio and `find | sort` differ across versions and locales (entry order,
//! inode numbers, device numbers, trailer padding); this writer fixes every header field:
//! entries sorted by path bytes, inode numbers counted from 1 in that order, uid/gid 0,
//! one mtime for all (SOURCE_DATE_EPOCH), no device numbers, no hard links.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

/// What one archive entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file with these contents.
    File(Vec<u8>),
    /// A symbolic link to this target.
    Symlink(String),
}

/// One archive entry: a kind and its permission bits (the low 12 bits of `st_mode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Directory, file or symlink.
    pub kind: EntryKind,
    /// Permission bits, e.g. `0o755`; file type bits are derived from `kind`.
    pub perm: u32,
}

/// Why an archive could not be built.
#[derive(Debug, thiserror::Error)]
pub enum CpioError {
    /// An entry's path is empty, absolute, or has `.`/`..` components.
    #[error("cpio entry path {0:?} must be relative, non-empty and without . or .. components")]
    BadPath(String),
    /// A field does not fit the format's 8 hex digits (files over 4 GiB).
    #[error("cpio entry {0:?} is too large for the newc format (4 GiB limit)")]
    TooLarge(String),
    /// Reading the staging tree failed.
    #[error("reading {path}: {source}")]
    Read {
        /// The file or directory being read.
        path: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The staging tree holds something other than a directory, file or symlink.
    #[error("{0}: only directories, regular files and symlinks can go into the initramfs")]
    Unsupported(String),
    /// Writing the archive failed.
    #[error("writing the archive: {0}")]
    Write(#[from] io::Error),
}

/// An archive under construction: paths (relative, `/`-separated) to entries.
///
/// A `BTreeMap` keeps entries sorted by path bytes, so insertion order never shows.
#[derive(Debug, Default, Clone)]
pub struct Archive {
    entries: BTreeMap<String, Entry>,
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

impl Archive {
    /// An empty archive.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) an entry. Parent directories are not implied: add them too, or
    /// use [`Archive::add_tree`], which does.
    pub fn insert(&mut self, path: &str, entry: Entry) -> Result<(), CpioError> {
        check_path(path)?;
        self.entries.insert(path.to_string(), entry);
        Ok(())
    }

    /// Adds every directory, file and symlink under `root`, with paths relative to it.
    /// Modes come from the files; owners and times do not (they are fixed on write).
    pub fn add_tree(&mut self, root: &Path) -> Result<(), CpioError> {
        self.walk(root, root)
    }

    fn walk(&mut self, root: &Path, dir: &Path) -> Result<(), CpioError> {
        use std::os::unix::fs::PermissionsExt;
        let read_err = |p: &Path, source| CpioError::Read {
            path: p.display().to_string(),
            source,
        };
        let listing = std::fs::read_dir(dir).map_err(|e| read_err(dir, e))?;
        for item in listing {
            let item = item.map_err(|e| read_err(dir, e))?;
            let path = item.path();
            let meta = std::fs::symlink_metadata(&path).map_err(|e| read_err(&path, e))?;
            let rel = path
                .strip_prefix(root)
                .map_err(|_| CpioError::BadPath(path.display().to_string()))?;
            let rel = rel
                .to_str()
                .ok_or_else(|| CpioError::BadPath(rel.display().to_string()))?
                .to_string();
            let perm = meta.permissions().mode() & 0o7777;
            let ft = meta.file_type();
            if ft.is_dir() {
                self.insert(
                    &rel,
                    Entry {
                        kind: EntryKind::Dir,
                        perm,
                    },
                )?;
                self.walk(root, &path)?;
            } else if ft.is_file() {
                let data = std::fs::read(&path).map_err(|e| read_err(&path, e))?;
                self.insert(
                    &rel,
                    Entry {
                        kind: EntryKind::File(data),
                        perm,
                    },
                )?;
            } else if ft.is_symlink() {
                let target = std::fs::read_link(&path).map_err(|e| read_err(&path, e))?;
                let target = target
                    .to_str()
                    .ok_or_else(|| CpioError::BadPath(target.display().to_string()))?
                    .to_string();
                self.insert(
                    &rel,
                    Entry {
                        kind: EntryKind::Symlink(target),
                        perm: 0o777,
                    },
                )?;
            } else {
                return Err(CpioError::Unsupported(path.display().to_string()));
            }
        }
        Ok(())
    }

    /// Number of entries (without the trailer).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the archive has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes the archive in `newc` format with every entry's mtime set to `mtime`.
    pub fn write_to<W: Write>(&self, out: &mut W, mtime: u32) -> Result<(), CpioError> {
        let mut written: u64 = 0;
        for (ino, (path, entry)) in self.entries.iter().enumerate() {
            let (mode, nlink, data): (u32, u32, &[u8]) = match &entry.kind {
                EntryKind::Dir => (S_IFDIR | entry.perm, 2, &[]),
                EntryKind::File(d) => (S_IFREG | entry.perm, 1, d),
                EntryKind::Symlink(t) => (S_IFLNK | entry.perm, 1, t.as_bytes()),
            };
            let size = u32::try_from(data.len()).map_err(|_| CpioError::TooLarge(path.clone()))?;
            // Inode numbers must differ per entry or the kernel treats files as hard links.
            let ino = u32::try_from(ino + 1).map_err(|_| CpioError::TooLarge(path.clone()))?;
            written += write_header(out, path, ino, mode, nlink, mtime, size)?;
            out.write_all(data)?;
            written += data.len() as u64;
            written += pad(out, written, 4)?;
        }
        written += write_header(out, "TRAILER!!!", 0, 0, 1, 0, 0)?;
        // The kernel reads archives in 512-byte blocks, as cpio writes them.
        pad(out, written, 512)?;
        Ok(())
    }

    /// The archive's bytes; see [`Archive::write_to`].
    pub fn to_bytes(&self, mtime: u32) -> Result<Vec<u8>, CpioError> {
        let mut out = Vec::new();
        self.write_to(&mut out, mtime)?;
        Ok(out)
    }
}

fn check_path(path: &str) -> Result<(), CpioError> {
    let ok = !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\0')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
    if ok {
        Ok(())
    } else {
        Err(CpioError::BadPath(path.to_string()))
    }
}

fn write_header<W: Write>(
    out: &mut W,
    name: &str,
    ino: u32,
    mode: u32,
    nlink: u32,
    mtime: u32,
    size: u32,
) -> Result<u64, CpioError> {
    let namesize = u32::try_from(name.len() + 1).map_err(|_| CpioError::TooLarge(name.into()))?;
    // magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor,
    // rdevmajor, rdevminor, namesize, check
    let header = format!(
        "070701{ino:08x}{mode:08x}{:08x}{:08x}{nlink:08x}{mtime:08x}{size:08x}{:08x}{:08x}{:08x}{:08x}{namesize:08x}{:08x}",
        0, 0, 0, 0, 0, 0, 0
    );
    out.write_all(header.as_bytes())?;
    out.write_all(name.as_bytes())?;
    out.write_all(&[0])?;
    let n = header.len() as u64 + u64::from(namesize);
    Ok(n + pad(out, n, 4)?)
}

/// Writes zeros so that `written` becomes a multiple of `to`; returns how many.
fn pad<W: Write>(out: &mut W, written: u64, to: u64) -> Result<u64, CpioError> {
    let n = (to - written % to) % to;
    out.write_all(&vec![0u8; n as usize])?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(data: &[u8], perm: u32) -> Entry {
        Entry {
            kind: EntryKind::File(data.to_vec()),
            perm,
        }
    }

    #[test]
    fn header_layout_matches_newc() {
        let mut a = Archive::new();
        a.insert("init", file(b"#!/bin/sh\n", 0o755)).unwrap();
        let bytes = a.to_bytes(1_700_000_000).unwrap();
        let expect_header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            1, 0o100755, 0, 0, 1, 1_700_000_000u32, 10, 0, 0, 0, 0, 5, 0
        );
        assert_eq!(&bytes[..110], expect_header.as_bytes());
        // name "init\0" ends at 115, padded to 116; data follows.
        assert_eq!(&bytes[110..116], b"init\0\0");
        assert_eq!(&bytes[116..126], b"#!/bin/sh\n");
        assert_eq!(bytes.len() % 512, 0);
        let trailer = bytes
            .windows(10)
            .position(|w| w == b"TRAILER!!!")
            .expect("trailer present");
        assert!(trailer > 126);
    }

    #[test]
    fn insertion_order_does_not_matter() {
        let mut a = Archive::new();
        let mut b = Archive::new();
        let items = [
            (
                "bin",
                Entry {
                    kind: EntryKind::Dir,
                    perm: 0o755,
                },
            ),
            (
                "bin/sh",
                Entry {
                    kind: EntryKind::Symlink("busybox".into()),
                    perm: 0o777,
                },
            ),
            ("bin/busybox", file(b"ELF", 0o755)),
            ("init", file(b"x", 0o755)),
        ];
        for (p, e) in items.iter() {
            a.insert(p, e.clone()).unwrap();
        }
        for (p, e) in items.iter().rev() {
            b.insert(p, e.clone()).unwrap();
        }
        assert_eq!(a.to_bytes(0).unwrap(), b.to_bytes(0).unwrap());
    }

    #[test]
    fn rejects_bad_paths() {
        let mut a = Archive::new();
        for p in ["", "/init", "a/../b", "./x", "a//b"] {
            assert!(
                matches!(a.insert(p, file(b"", 0o644)), Err(CpioError::BadPath(_))),
                "{p}"
            );
        }
    }

    #[test]
    fn tree_walk_ignores_times_and_owners() {
        use std::os::unix::fs::{symlink, PermissionsExt};
        let make = |stamp: bool| {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir(dir.path().join("bin")).unwrap();
            std::fs::write(dir.path().join("bin/busybox"), b"ELF").unwrap();
            std::fs::set_permissions(
                dir.path().join("bin/busybox"),
                std::fs::Permissions::from_mode(0o755),
            )
            .unwrap();
            symlink("busybox", dir.path().join("bin/sh")).unwrap();
            if stamp {
                std::thread::sleep(std::time::Duration::from_millis(20));
                std::fs::write(dir.path().join("bin/busybox"), b"ELF").unwrap();
            }
            let mut a = Archive::new();
            a.add_tree(dir.path()).unwrap();
            a.to_bytes(42).unwrap()
        };
        let first = make(false);
        assert_eq!(first, make(true));
        assert!(first.windows(7).any(|w| w == b"busybox"));
    }
}
