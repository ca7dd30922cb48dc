//! A model disk built for serving: the name it is served under checked, the two passes
//! over the model shown on one progress bar, and its dm-verity binding. `silk image
//! model-disk` and `silk-image model-disk` both build disks this way.

use std::path::Path;

use super::cmdline::{served_name, ModelVerity};
use super::disk::{build_model_disk_with_progress, ModelDisk};
use super::VerityError;

/// Why a disk for serving could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServedDiskError {
    /// Reading the model or writing the disk failed, or the model is empty.
    #[error(transparent)]
    Verity(#[from] VerityError),
    /// The served name (`--name` of both model-disk commands) cannot go on a kernel
    /// command line.
    #[error("--name {0:?}: use letters, digits, '.', '_' and '-' only (it goes on the kernel command line)")]
    Name(String),
}

/// The name `model` is served under: `name` when given (refused when it cannot go on the
/// kernel command line), else the one its file name gives, if any.
pub fn served_model_name(
    model: &Path,
    name: Option<&str>,
) -> Result<Option<String>, ServedDiskError> {
    match name {
        // A file name made of the name alone gives it back only when it is usable as is.
        Some(n) => served_name(&format!("{n}.x"))
            .filter(|s| s == n)
            .map(Some)
            .ok_or_else(|| ServedDiskError::Name(n.to_string())),
        None => Ok(model
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(served_name)),
    }
}

/// Builds the disk at `disk` from `model` with a progress bar on stderr (hidden off a
/// terminal), and the binding an image needs to serve it under the checked name.
pub fn build_served_disk(
    model: &Path,
    disk: &Path,
    name: Option<&str>,
) -> Result<(ModelDisk, ModelVerity), ServedDiskError> {
    let name = served_model_name(model, name)?;
    // Two passes over the model (digest, then copy and tree): a bar for twice its size.
    let size = std::fs::metadata(model).map(|m| m.len()).unwrap_or(0);
    let progress = silk_cli::progress::bytes(2 * size, "pass 1/2: the model's digest");
    let mut copying = false;
    let built = build_model_disk_with_progress(model, disk, &Default::default(), &mut |n| {
        progress.inc(n);
        if !copying && progress.position() >= size {
            copying = true;
            progress.set_message("pass 2/2: the disk and its hash tree");
        }
    });
    progress.finish_and_clear();
    let built = built?;
    let verity = ModelVerity::from_disk(&built, name);
    Ok((built, verity))
}
