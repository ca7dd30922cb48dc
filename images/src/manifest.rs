//! The image manifest: what a sealed guest image is made of, and its digest.
//!
//! An image is a directory holding the firmware (OVMF), the kernel, the initramfs and
//! `manifest.json`. The manifest names each component with its SHA-256 and size, the Debian
//! packages it was built from, and the kernel command line. `silk-host` launches only what
//! the manifest lists (and checks the digests first); verifiers rebuild the image from the
//! recipe and compare digests.
//!
//! **Canonical form.** The image digest is SHA-256 over the manifest's canonical bytes:
//! compact JSON (no whitespace), object keys in alphabetical order, components and inputs
//! sorted by name, no trailing newline. `manifest.json` on disk is the pretty form of the
//! same document; [`Manifest::digest`] re-derives the canonical bytes from the parsed value,
//! and unknown fields are rejected so that nothing a digest does not cover can be smuggled in.
//!
//! **How the enclave learns what it runs.** The manifest cannot sit inside the initramfs
//! (it holds the initramfs' own hash), so the recipe puts the digest of the component list,
//! [`Manifest::components_digest`], on the kernel command line as
//! `silk.components=<hex>`. The command line is part of the launch measurement (SNP
//! `kernel-hashes=on`, TDX RTMR), so the enclave can read it from `/proc/cmdline` and
//! trust it as far as it trusts its own measurement.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The `schema` value this code writes and accepts.
pub const SCHEMA: &str = "silk-image/1";
/// The manifest's file name inside an image directory.
pub const FILE_NAME: &str = "manifest.json";
/// The kernel command line key that carries [`Manifest::components_digest`].
pub const CMDLINE_COMPONENTS_KEY: &str = "silk.components";

/// The component names every bootable image has.
pub const REQUIRED: [&str; 3] = ["firmware", "initrd", "kernel"];

/// An image manifest. Field order is alphabetical: it *is* the canonical key order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The image's files (firmware, kernel, initrd), sorted by name.
    pub components: Vec<Component>,
    /// The Debian packages (and other inputs) the image was built from, sorted by name.
    pub inputs: Vec<Input>,
    /// The kernel command line the image must boot with (measured on SNP and TDX).
    pub kernel_cmdline: String,
    /// Always [`SCHEMA`].
    pub schema: String,
    /// The fixed timestamp every archived file carries (SOURCE_DATE_EPOCH).
    pub source_date_epoch: u64,
}

/// One file of the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    /// Its role: `firmware`, `kernel` or `initrd`.
    pub name: String,
    /// Its file name, relative to the image directory.
    pub path: String,
    /// Lowercase hex SHA-256 of its bytes.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

/// One input the image was built from (for provenance; covered by the digest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// The input's name, e.g. a `.deb` file name with its version.
    pub name: String,
    /// Lowercase hex SHA-256 of its bytes.
    pub sha256: String,
}

/// Why a manifest is unusable or does not match its image.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Reading a file failed.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The manifest is not valid JSON of the expected shape.
    #[error("{path}: not a silk image manifest: {source}")]
    Parse {
        /// The manifest file.
        path: PathBuf,
        /// What the JSON parser said.
        source: serde_json::Error,
    },
    /// The schema is not one this code understands.
    #[error("unsupported manifest schema {found:?} (expected {SCHEMA:?})")]
    Schema {
        /// The schema found.
        found: String,
    },
    /// A required component is missing.
    #[error("manifest lists no {0:?} component")]
    Missing(&'static str),
    /// A component or input name appears twice, or the list is not sorted.
    #[error("manifest {0} are not sorted by name or have duplicates")]
    Unsorted(&'static str),
    /// A component path escapes the image directory.
    #[error("component {name:?} has path {path:?}: must be a plain file name")]
    BadPath {
        /// The component.
        name: String,
        /// Its path.
        path: String,
    },
    /// A file's digest or size differs from the manifest's.
    #[error("component {name:?} ({path}) does not match the manifest: expected sha256 {expected}, found {found}")]
    Mismatch {
        /// The component.
        name: String,
        /// Its file.
        path: PathBuf,
        /// The manifest's digest.
        expected: String,
        /// The file's digest.
        found: String,
    },
    /// The command line's `silk.components=` value is absent or wrong.
    #[error("kernel command line must carry {CMDLINE_COMPONENTS_KEY}={expected}, found {found:?}")]
    CmdlineComponents {
        /// The digest of the component list.
        expected: String,
        /// What the command line has.
        found: Option<String>,
    },
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Lowercase hex SHA-256 of a file's contents, streamed.
pub fn sha256_file(path: &Path) -> Result<(String, u64), ManifestError> {
    use std::io::Read;
    let io_err = |source| ManifestError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io_err)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io_err)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((hex::encode(h.finalize()), size))
}

impl Manifest {
    /// The canonical bytes (see the module docs).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut m = self.clone();
        m.components.sort_by(|a, b| a.name.cmp(&b.name));
        m.inputs.sort_by(|a, b| a.name.cmp(&b.name));
        // Serialising plain structs of strings and integers cannot fail.
        serde_json::to_vec(&m).unwrap_or_default()
    }

    /// The image digest: lowercase hex SHA-256 of [`Manifest::canonical_bytes`].
    pub fn digest(&self) -> String {
        sha256_hex(&self.canonical_bytes())
    }

    /// Lowercase hex SHA-256 of the canonical JSON of the sorted component list alone: the
    /// value the command line carries as `silk.components=` (it cannot cover the command
    /// line itself).
    pub fn components_digest(components: &[Component]) -> String {
        let mut c = components.to_vec();
        c.sort_by(|a, b| a.name.cmp(&b.name));
        sha256_hex(&serde_json::to_vec(&c).unwrap_or_default())
    }

    /// The pretty JSON written to `manifest.json` (ends with a newline).
    pub fn to_pretty(&self) -> String {
        let mut m = self.clone();
        m.components.sort_by(|a, b| a.name.cmp(&b.name));
        m.inputs.sort_by(|a, b| a.name.cmp(&b.name));
        let mut s = serde_json::to_string_pretty(&m).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Parses and validates a manifest (schema, sorted unique names, required components,
    /// plain file names, the command line's component digest).
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self, ManifestError> {
        let m: Manifest = serde_json::from_slice(bytes).map_err(|source| ManifestError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        m.validate()?;
        Ok(m)
    }

    /// Checks the manifest's own consistency (not the files; see [`Manifest::verify_files`]).
    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.schema != SCHEMA {
            return Err(ManifestError::Schema {
                found: self.schema.clone(),
            });
        }
        if !self.components.windows(2).all(|w| w[0].name < w[1].name) {
            return Err(ManifestError::Unsorted("components"));
        }
        if !self.inputs.windows(2).all(|w| w[0].name < w[1].name) {
            return Err(ManifestError::Unsorted("inputs"));
        }
        for req in REQUIRED {
            if !self.components.iter().any(|c| c.name == req) {
                return Err(ManifestError::Missing(req));
            }
        }
        for c in &self.components {
            let plain = !c.path.is_empty()
                && !c.path.contains('/')
                && c.path != "."
                && c.path != ".."
                && c.path != FILE_NAME;
            if !plain {
                return Err(ManifestError::BadPath {
                    name: c.name.clone(),
                    path: c.path.clone(),
                });
            }
        }
        let expected = Self::components_digest(&self.components);
        let found = cmdline_value(&self.kernel_cmdline, CMDLINE_COMPONENTS_KEY);
        if found != Some(expected.as_str()) {
            return Err(ManifestError::CmdlineComponents {
                expected,
                found: found.map(str::to_string),
            });
        }
        Ok(())
    }

    /// Reads and validates `DIR/manifest.json`.
    pub fn load(dir: &Path) -> Result<Self, ManifestError> {
        let path = dir.join(FILE_NAME);
        let bytes = std::fs::read(&path).map_err(|source| ManifestError::Io {
            path: path.clone(),
            source,
        })?;
        Self::parse(&bytes, &path)
    }

    /// Hashes every component file under `dir` and checks it against the manifest.
    pub fn verify_files(&self, dir: &Path) -> Result<(), ManifestError> {
        for c in &self.components {
            let path = dir.join(&c.path);
            let (found, size) = sha256_file(&path)?;
            if found != c.sha256 || size != c.size {
                return Err(ManifestError::Mismatch {
                    name: c.name.clone(),
                    path,
                    expected: c.sha256.clone(),
                    found,
                });
            }
        }
        Ok(())
    }

    /// The component with this name.
    pub fn component(&self, name: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.name == name)
    }

    /// The path of a component inside `dir`.
    pub fn component_path(&self, dir: &Path, name: &str) -> Option<PathBuf> {
        self.component(name).map(|c| dir.join(&c.path))
    }
}

impl Component {
    /// Describes the file at `dir/path` under the role `name`.
    pub fn from_file(dir: &Path, name: &str, path: &str) -> Result<Self, ManifestError> {
        let (sha256, size) = sha256_file(&dir.join(path))?;
        Ok(Self {
            name: name.to_string(),
            path: path.to_string(),
            sha256,
            size,
        })
    }
}

/// The value of `key=` on a kernel command line (the last one wins, as in the kernel).
pub fn cmdline_value<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline
        .split_ascii_whitespace()
        .rev()
        .filter_map(|w| w.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        let components = vec![
            Component {
                name: "firmware".into(),
                path: "OVMF.fd".into(),
                sha256: "aa".repeat(32),
                size: 1,
            },
            Component {
                name: "initrd".into(),
                path: "initrd.cpio".into(),
                sha256: "bb".repeat(32),
                size: 2,
            },
            Component {
                name: "kernel".into(),
                path: "vmlinuz".into(),
                sha256: "cc".repeat(32),
                size: 3,
            },
        ];
        let cd = Manifest::components_digest(&components);
        Manifest {
            components,
            inputs: vec![Input {
                name: "busybox-static_1.35.0-4+b3_amd64.deb".into(),
                sha256: "dd".repeat(32),
            }],
            kernel_cmdline: format!("console=ttyS0 silk.components={cd}"),
            schema: SCHEMA.into(),
            source_date_epoch: 1_700_000_000,
        }
    }

    #[test]
    fn canonical_bytes_are_compact_and_sorted() {
        let m = sample();
        let s = String::from_utf8(m.canonical_bytes()).unwrap();
        assert!(s.starts_with(r#"{"components":[{"name":"firmware","path":"OVMF.fd","#));
        assert!(s.contains(r#""schema":"silk-image/1","source_date_epoch":1700000000}"#));
        assert!(!s.contains(' ') || s.contains("console=ttyS0 silk"));
        assert!(!s.contains('\n'));
    }

    #[test]
    fn pretty_form_round_trips_to_the_same_digest() {
        let m = sample();
        let parsed = Manifest::parse(m.to_pretty().as_bytes(), Path::new("m.json")).unwrap();
        assert_eq!(parsed.digest(), m.digest());
        assert_eq!(m.digest().len(), 64);
    }

    #[test]
    fn any_change_changes_the_digest() {
        let base = sample().digest();
        let mut m = sample();
        m.kernel_cmdline.push_str(" quiet");
        assert_ne!(m.digest(), base);
        let mut m = sample();
        m.inputs[0].sha256 = "ee".repeat(32);
        assert_ne!(m.digest(), base);
    }

    #[test]
    fn rejects_unknown_fields_and_bad_shapes() {
        let mut v: serde_json::Value = serde_json::from_str(&sample().to_pretty()).unwrap();
        v["extra"] = serde_json::json!(1);
        let bytes = serde_json::to_vec(&v).unwrap();
        assert!(matches!(
            Manifest::parse(&bytes, Path::new("m")),
            Err(ManifestError::Parse { .. })
        ));

        let mut m = sample();
        m.schema = "other/2".into();
        assert!(matches!(m.validate(), Err(ManifestError::Schema { .. })));

        let mut m = sample();
        m.components.swap(0, 1);
        assert!(matches!(
            m.validate(),
            Err(ManifestError::Unsorted("components"))
        ));

        let mut m = sample();
        m.components.retain(|c| c.name != "kernel");
        assert!(matches!(
            m.validate(),
            Err(ManifestError::Missing("kernel"))
        ));

        let mut m = sample();
        m.components[0].path = "../OVMF.fd".into();
        assert!(matches!(m.validate(), Err(ManifestError::BadPath { .. })));
    }

    #[test]
    fn cmdline_must_carry_the_components_digest() {
        let mut m = sample();
        m.components[1].sha256 = "ff".repeat(32);
        let err = m.validate().unwrap_err();
        assert!(
            matches!(err, ManifestError::CmdlineComponents { found: Some(_), .. }),
            "{err}"
        );
        let mut m = sample();
        m.kernel_cmdline = "console=ttyS0".into();
        assert!(matches!(
            m.validate(),
            Err(ManifestError::CmdlineComponents { found: None, .. })
        ));
    }

    #[test]
    fn verify_files_detects_a_swapped_file() {
        let dir = tempfile::tempdir().unwrap();
        for (p, data) in [("OVMF.fd", "fw"), ("initrd.cpio", "rd"), ("vmlinuz", "k")] {
            std::fs::write(dir.path().join(p), data).unwrap();
        }
        let components = ["firmware:OVMF.fd", "initrd:initrd.cpio", "kernel:vmlinuz"]
            .iter()
            .map(|s| {
                let (n, p) = s.split_once(':').unwrap();
                Component::from_file(dir.path(), n, p).unwrap()
            })
            .collect::<Vec<_>>();
        let mut m = sample();
        m.kernel_cmdline = format!(
            "silk.components={}",
            Manifest::components_digest(&components)
        );
        m.components = components;
        m.validate().unwrap();
        m.verify_files(dir.path()).unwrap();
        std::fs::write(dir.path().join("vmlinuz"), "evil").unwrap();
        let err = m.verify_files(dir.path()).unwrap_err();
        assert!(err.to_string().contains("\"kernel\""), "{err}");
    }

    #[test]
    fn cmdline_value_takes_the_last() {
        assert_eq!(cmdline_value("a=1 b=2 a=3", "a"), Some("3"));
        assert_eq!(cmdline_value("quiet", "a"), None);
    }
}
