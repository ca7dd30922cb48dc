//! The kernel's configfs-tsm report interface (Linux 6.7+), for SEV-SNP and TDX guests.
//!
//! A report is requested by creating a directory under `/sys/kernel/config/tsm/report`,
//! writing the 64-byte REPORT_DATA to its `inblob` (and, for SNP, the VMPL to
//! `privlevel`), then reading `outblob`: an SNP attestation report or a TDX quote (the
//! kernel asks the quoting service). `provider` names the backend and `generation` counts
//! writes to the directory, so reading it around `outblob` detects another writer racing
//! this one (the kernel documents this check). `auxblob` holds the SNP certificate table
//! when the host supplies one. The directory is removed afterwards.
//!
//! The file operations go through [`ReportFs`], so the protocol is tested against an
//! in-memory stand-in for the kernel.

use std::io;
use std::path::{Path, PathBuf};

use super::{EvidenceError, Platform, RawEvidence};

/// Where configfs-tsm lives.
pub const DEFAULT_ROOT: &str = "/sys/kernel/config/tsm/report";

/// The few file operations configfs-tsm needs.
pub trait ReportFs {
    /// Creates the request directory.
    fn create_dir(&self, dir: &Path) -> io::Result<()>;
    /// Writes an attribute.
    fn write(&self, file: &Path, bytes: &[u8]) -> io::Result<()>;
    /// Reads an attribute.
    fn read(&self, file: &Path) -> io::Result<Vec<u8>>;
    /// Removes the request directory.
    fn remove_dir(&self, dir: &Path) -> io::Result<()>;
}

/// The real file system.
pub struct SysFs;

impl ReportFs for SysFs {
    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir(dir)
    }
    fn write(&self, file: &Path, bytes: &[u8]) -> io::Result<()> {
        std::fs::write(file, bytes)
    }
    fn read(&self, file: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(file)
    }
    fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::remove_dir(dir)
    }
}

/// Removes the request directory however the request ends.
struct Cleanup<'a, F: ReportFs> {
    fs: &'a F,
    dir: PathBuf,
}

impl<F: ReportFs> Drop for Cleanup<'_, F> {
    fn drop(&mut self) {
        let _ = self.fs.remove_dir(&self.dir);
    }
}

/// An I/O error on `path` while doing `what` (shared with [`super::ccel`]).
pub(super) fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> EvidenceError + 'a {
    move |source| EvidenceError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

fn generation(fs: &impl ReportFs, dir: &Path) -> Result<u64, EvidenceError> {
    let path = dir.join("generation");
    let text = fs.read(&path).map_err(io_err("generation", &path))?;
    String::from_utf8_lossy(&text)
        .trim()
        .parse()
        .map_err(|_| EvidenceError::Malformed(format!("configfs-tsm generation {text:?}")))
}

/// Requests a report with `report_data` through configfs-tsm under `root`. `vmpl` is
/// written to `privlevel` (SNP only; `None` leaves the kernel's default). `name` must be
/// unique among concurrent requests.
pub fn request(
    fs: &impl ReportFs,
    root: &Path,
    name: &str,
    report_data: &[u8; 64],
    vmpl: Option<u32>,
) -> Result<RawEvidence, EvidenceError> {
    let dir = root.join(name);
    fs.create_dir(&dir)
        .map_err(io_err("report directory", &dir))?;
    let _cleanup = Cleanup {
        fs,
        dir: dir.clone(),
    };
    let mut writes = 0u64;
    let inblob = dir.join("inblob");
    fs.write(&inblob, report_data)
        .map_err(io_err("inblob", &inblob))?;
    writes += 1;
    if let Some(level) = vmpl {
        let path = dir.join("privlevel");
        fs.write(&path, level.to_string().as_bytes())
            .map_err(io_err("privlevel", &path))?;
        writes += 1;
    }
    let before = generation(fs, &dir)?;
    let outblob_path = dir.join("outblob");
    let outblob = fs
        .read(&outblob_path)
        .map_err(io_err("outblob", &outblob_path))?;
    let provider_path = dir.join("provider");
    let provider = fs
        .read(&provider_path)
        .map_err(io_err("provider", &provider_path))?;
    let after = generation(fs, &dir)?;
    // Each of our writes bumped the generation once; anything else means another process
    // wrote to this request between our inblob and our outblob.
    if before != writes || after != before {
        return Err(EvidenceError::Raced {
            expected: writes,
            found: after.max(before),
        });
    }
    let aux_path = dir.join("auxblob");
    let aux = fs.read(&aux_path).ok().filter(|a| !a.is_empty());
    let provider = String::from_utf8_lossy(&provider).trim().to_owned();
    let platform = match provider.as_str() {
        "sev_guest" => Platform::SevSnp,
        "tdx_guest" => Platform::Tdx,
        other => return Err(EvidenceError::UnknownProvider(other.to_owned())),
    };
    if outblob.is_empty() {
        return Err(EvidenceError::Malformed(
            "configfs-tsm returned an empty outblob".into(),
        ));
    }
    Ok(RawEvidence {
        platform,
        evidence: outblob,
        certificates: aux,
    })
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::HashMap;

    use super::*;

    /// A stand-in for the kernel: counts writes into `generation` and answers `outblob`
    /// with the inblob prefixed by a marker.
    #[derive(Default)]
    struct FakeKernel {
        files: RefCell<HashMap<PathBuf, Vec<u8>>>,
        dirs: RefCell<Vec<PathBuf>>,
        provider: &'static str,
        racer: bool,
    }

    impl ReportFs for FakeKernel {
        fn create_dir(&self, dir: &Path) -> io::Result<()> {
            if self.dirs.borrow().contains(&dir.to_owned()) {
                return Err(io::ErrorKind::AlreadyExists.into());
            }
            self.dirs.borrow_mut().push(dir.to_owned());
            let mut f = self.files.borrow_mut();
            f.insert(dir.join("generation"), b"0\n".to_vec());
            f.insert(
                dir.join("provider"),
                format!("{}\n", self.provider).into_bytes(),
            );
            Ok(())
        }
        fn write(&self, file: &Path, bytes: &[u8]) -> io::Result<()> {
            let dir = file.parent().unwrap_or(Path::new("/")).to_owned();
            let mut f = self.files.borrow_mut();
            let g: u64 = String::from_utf8_lossy(&f[&dir.join("generation")])
                .trim()
                .parse()
                .unwrap_or(0);
            let bump = if self.racer { 2 } else { 1 };
            f.insert(
                dir.join("generation"),
                format!("{}\n", g + bump).into_bytes(),
            );
            f.insert(file.to_owned(), bytes.to_vec());
            if file.ends_with("inblob") {
                let mut out = b"REPORT:".to_vec();
                out.extend_from_slice(bytes);
                f.insert(dir.join("outblob"), out);
            }
            Ok(())
        }
        fn read(&self, file: &Path) -> io::Result<Vec<u8>> {
            self.files
                .borrow()
                .get(file)
                .cloned()
                .ok_or_else(|| io::ErrorKind::NotFound.into())
        }
        fn remove_dir(&self, dir: &Path) -> io::Result<()> {
            self.dirs.borrow_mut().retain(|d| d != dir);
            Ok(())
        }
    }

    #[test]
    fn snp_request_writes_inblob_and_privlevel_and_cleans_up() {
        let k = FakeKernel {
            provider: "sev_guest",
            ..FakeKernel::default()
        };
        let root = Path::new("/cfg");
        let ev = request(&k, root, "silk-1", &[5; 64], Some(0)).unwrap();
        assert_eq!(ev.platform, Platform::SevSnp);
        assert_eq!(&ev.evidence[..7], b"REPORT:");
        assert_eq!(&ev.evidence[7..], &[5; 64]);
        assert_eq!(k.files.borrow()[&root.join("silk-1/privlevel")], b"0");
        assert!(k.dirs.borrow().is_empty(), "request directory left behind");
    }

    #[test]
    fn tdx_provider_is_recognised() {
        let k = FakeKernel {
            provider: "tdx_guest",
            ..FakeKernel::default()
        };
        let ev = request(&k, Path::new("/cfg"), "r", &[1; 64], None).unwrap();
        assert_eq!(ev.platform, Platform::Tdx);
    }

    #[test]
    fn a_racing_writer_is_detected() {
        let k = FakeKernel {
            provider: "sev_guest",
            racer: true,
            ..FakeKernel::default()
        };
        let e = request(&k, Path::new("/cfg"), "r", &[1; 64], None).unwrap_err();
        assert!(matches!(e, EvidenceError::Raced { .. }), "{e}");
        assert!(k.dirs.borrow().is_empty());
    }

    #[test]
    fn unknown_provider_and_missing_interface_are_errors() {
        let k = FakeKernel {
            provider: "arm_cca_guest",
            ..FakeKernel::default()
        };
        let e = request(&k, Path::new("/cfg"), "r", &[1; 64], None).unwrap_err();
        assert!(e.to_string().contains("arm_cca_guest"), "{e}");
        let e = request(
            &SysFs,
            Path::new("/nonexistent/tsm/report"),
            "r",
            &[1; 64],
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("report directory"), "{e}");
    }
}
