//! Model disks: the model's bytes, then a dm-verity hash area, in one file.
//!
//! Layout (one file, so the host attaches one read-only disk):
//!
//! ```text
//! 0                       model bytes, zero-padded to a 4096-byte block
//! hash_offset             dm-verity superblock (512 bytes, padded to 4096)
//! hash_offset + 4096      hash tree, top level first
//! ```
//!
//! This is exactly what `veritysetup format DISK DISK --hash-offset=HASH_OFFSET
//! --data-blocks=N --salt=SALT --uuid=UUID` writes over such a file, and the guest opens
//! it with `veritysetup open DISK model DISK ROOT --hash-offset=HASH_OFFSET` or the
//! [`VerityInfo::dm_table`] line. By default the salt and the UUID are derived from the
//! model's SHA-256, so the same model always gives the same disk, byte for byte, and the
//! same root hash: anyone can rebuild it from the model file alone. The model's length is
//! not in the verity metadata (the device is a whole number of blocks) and travels with
//! the root hash ([`ModelDisk::model_size`]).

use super::{read_block, TreeBuilder, VerityError, VerityInfo, VerityParams, BLOCK_SIZE};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// Choices for [`build_model_disk`]; the defaults make the disk reproducible.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelDiskOptions {
    /// Salt; default SHA-256("silk model-disk salt v1" || SHA-256(model)).
    pub salt: Option<Vec<u8>>,
    /// Superblock UUID; default from SHA-256("silk model-disk uuid v1" || SHA-256(model)),
    /// with the RFC 9562 version 8 (custom) and variant bits.
    pub uuid: Option<[u8; 16]>,
}

/// A built model disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelDisk {
    /// Root hash, salt, layout. `hash_offset` is where the superblock sits in the disk.
    pub verity: VerityInfo,
    /// SHA-256 of the model file.
    pub model_sha256: [u8; 32],
    /// Length of the model file in bytes (the guest reads only this much of the device).
    pub model_size: u64,
    /// Total size of the disk file.
    pub disk_size: u64,
}

/// Removes the partial file unless the build got as far as renaming it.
struct Partial {
    path: PathBuf,
    done: bool,
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn file_err<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(io::Error) -> VerityError + 'a {
    move |source| VerityError::File {
        path: path.to_path_buf(),
        op,
        source,
    }
}

/// The salt and UUID derived from a model digest (see [`ModelDiskOptions`]).
pub fn derived_params(model_sha256: &[u8; 32]) -> VerityParams {
    let salt = Sha256::new()
        .chain_update(b"silk model-disk salt v1")
        .chain_update(model_sha256)
        .finalize()
        .to_vec();
    let u = Sha256::new()
        .chain_update(b"silk model-disk uuid v1")
        .chain_update(model_sha256)
        .finalize();
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&u[..16]);
    uuid[6] = (uuid[6] & 0x0f) | 0x80;
    uuid[8] = (uuid[8] & 0x3f) | 0x80;
    VerityParams { salt, uuid }
}

/// Builds a model disk at `disk` from the file `model` and returns its root hash. The disk
/// is written under a temporary name beside `disk` and renamed into place only when
/// complete, so an error (or a model that changes while it is read) leaves no partial
/// file at `disk`.
pub fn build_model_disk(
    model: &Path,
    disk: &Path,
    opts: &ModelDiskOptions,
) -> Result<ModelDisk, VerityError> {
    build_model_disk_with_progress(model, disk, opts, &mut |_| {})
}

/// Reads through to `inner`, telling `read` how many bytes each call gave.
struct Counting<'a, R> {
    inner: R,
    read: &'a mut dyn FnMut(u64),
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        (self.read)(n as u64);
        Ok(n)
    }
}

/// [`build_model_disk`], calling `read` with the number of model bytes each read gave.
/// The model is read twice (its digest first, then the copy that is hashed into the
/// tree), so the calls add up to twice its size: what a progress bar for a model of many
/// gigabytes counts to.
pub fn build_model_disk_with_progress(
    model: &Path,
    disk: &Path,
    opts: &ModelDiskOptions,
    read: &mut dyn FnMut(u64),
) -> Result<ModelDisk, VerityError> {
    // Pass 1: the model's digest, which names it and seeds the default salt and UUID.
    let f = File::open(model).map_err(file_err(model, "open"))?;
    let mut h = Sha256::new();
    let mut counted = Counting { inner: f, read };
    io::copy(&mut counted, &mut h).map_err(file_err(model, "read"))?;
    let read = counted.read;
    let model_sha256: [u8; 32] = h.finalize().into();
    let derived = derived_params(&model_sha256);
    let params = VerityParams {
        salt: opts.salt.clone().unwrap_or(derived.salt),
        uuid: opts.uuid.unwrap_or(derived.uuid),
    };
    let mut tree = TreeBuilder::new(&params.salt)?;

    let name = disk
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "disk".into());
    let mut partial = Partial {
        path: disk.with_file_name(format!(".{name}.partial-{}", std::process::id())),
        done: false,
    };
    let out = File::create(&partial.path).map_err(file_err(&partial.path, "create"))?;
    let mut out = BufWriter::new(out);

    // Pass 2: copy the data while hashing it, checking it is still the same model.
    let mut f = Counting {
        inner: File::open(model).map_err(file_err(model, "open"))?,
        read,
    };
    let mut again = Sha256::new();
    let mut buf = [0u8; BLOCK_SIZE];
    let mut model_size = 0u64;
    loop {
        let n = read_block(&mut f, &mut buf).map_err(file_err(model, "read"))?;
        if n == 0 {
            break;
        }
        again.update(&buf[..n]);
        model_size += n as u64;
        tree.push(&buf);
        out.write_all(&buf)
            .map_err(file_err(&partial.path, "write"))?;
        if n < BLOCK_SIZE {
            // A short read is the end only if the file agrees.
            if f.read(&mut [0u8; 1]).map_err(file_err(model, "read"))? != 0 {
                return Err(VerityError::ModelChanged(model.to_path_buf()));
            }
            break;
        }
    }
    if <[u8; 32]>::from(again.finalize()) != model_sha256 {
        return Err(VerityError::ModelChanged(model.to_path_buf()));
    }
    let tree = tree.finish()?;
    tree.write_hash_area(&mut out, &params)
        .map_err(file_err(&partial.path, "write"))?;
    let out = out
        .into_inner()
        .map_err(|e| file_err(&partial.path, "write")(e.into_error()))?;
    out.sync_all().map_err(file_err(&partial.path, "sync"))?;
    drop(out);
    fs::rename(&partial.path, disk).map_err(file_err(disk, "rename into place"))?;
    partial.done = true;

    let hash_offset = tree.data_blocks * BLOCK_SIZE as u64;
    let hash_size = tree.hash_size();
    Ok(ModelDisk {
        verity: VerityInfo {
            root_hash: tree.root,
            salt: params.salt,
            uuid: params.uuid,
            data_blocks: tree.data_blocks,
            data_size: model_size,
            hash_offset,
            hash_size,
        },
        model_sha256,
        model_size,
        disk_size: hash_offset + hash_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_uuid_has_version_8_bits() {
        let p = derived_params(&[1; 32]);
        assert_eq!(p.salt.len(), 32);
        assert_eq!(p.uuid[6] >> 4, 8);
        assert_eq!(p.uuid[8] >> 6, 2);
        assert_ne!(derived_params(&[2; 32]), p);
    }

    #[test]
    fn progress_counts_two_passes_and_the_same_disk_comes_out() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("m.gguf");
        let bytes: Vec<u8> = (0..3 * BLOCK_SIZE as u32 + 100).map(|i| i as u8).collect();
        fs::write(&model, &bytes).unwrap();
        let mut total = 0u64;
        let with = build_model_disk_with_progress(
            &model,
            &dir.path().join("a.disk"),
            &Default::default(),
            &mut |n| total += n,
        )
        .unwrap();
        assert_eq!(total, 2 * bytes.len() as u64);
        let without =
            build_model_disk(&model, &dir.path().join("b.disk"), &Default::default()).unwrap();
        assert_eq!(with, without);
        assert_eq!(
            fs::read(dir.path().join("a.disk")).unwrap(),
            fs::read(dir.path().join("b.disk")).unwrap()
        );
    }

    #[test]
    fn no_partial_file_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("model.disk");
        let err =
            build_model_disk(&dir.path().join("absent"), &disk, &Default::default()).unwrap_err();
        assert!(err.to_string().contains("absent"), "{err}");
        let empty = dir.path().join("empty");
        fs::write(&empty, b"").unwrap();
        assert!(matches!(
            build_model_disk(&empty, &disk, &Default::default()),
            Err(VerityError::Empty)
        ));
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "only the empty model remains: {left:?}");
    }
}
