//! `silk image model-disk`: a model file made into a dm-verity disk, and everything an
//! operator needs to bind an image to it.

use std::io::Write;
use std::path::Path;

use silk_images::verity::cmdline::served_name;
use silk_images::verity::{build_model_disk_with_progress, ModelDisk, ModelVerity, VerityError};

/// Why the disk could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ModelDiskError {
    /// Reading the model or writing the disk failed, or the model is empty.
    #[error(transparent)]
    Verity(#[from] VerityError),
    /// The served name cannot go on a kernel command line.
    #[error("--name {0:?}: use letters, digits, '.', '_' and '-' only (it goes on the kernel command line)")]
    Name(String),
    /// Writing the report failed.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

/// Builds the disk at `disk` from `model` and reports it on `out`.
pub fn run_model_disk(
    model: &Path,
    disk: &Path,
    name: Option<&str>,
    out: &mut dyn Write,
) -> Result<(ModelDisk, ModelVerity), ModelDiskError> {
    let name = match name {
        Some(n) => Some(
            served_name(&format!("{n}.x"))
                .filter(|s| s == n)
                .ok_or_else(|| ModelDiskError::Name(n.to_string()))?,
        ),
        None => model
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(served_name),
    };
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
    let v = ModelVerity::from_disk(&built, name);
    let info = &built.verity;
    let row = |out: &mut dyn Write, k: &str, val: &str| writeln!(out, "  {k:<12} {val}");
    writeln!(out, "silk image model-disk: {}", disk.display())?;
    row(
        out,
        "model",
        &format!(
            "{} ({} bytes, sha256 {})",
            model.display(),
            built.model_size,
            hex::encode(built.model_sha256)
        ),
    )?;
    row(out, "root hash", &info.root_hex())?;
    row(out, "salt", &hex::encode(&info.salt))?;
    row(
        out,
        "data blocks",
        &format!("{} x 4096 bytes", info.data_blocks),
    )?;
    row(out, "hash offset", &info.hash_offset.to_string())?;
    row(out, "model size", &built.model_size.to_string())?;
    row(out, "disk size", &built.disk_size.to_string())?;
    row(
        out,
        "model id",
        &format!("{} (what the enclave's claims carry)", v.model_id()),
    )?;
    row(out, "dm table", &v.dm_table("/dev/vda"))?;
    row(out, "cmdline", &v.cmdline())?;
    writeln!(
        out,
        "\nBind an image to this disk (the command line is measured):\n  \
         images/recipe/build.sh --out IMAGE_DIR ... --model-verity \"{}\"\n\
         and run it with silk-host --model {}. The same check by hand:\n  \
         veritysetup verify {} {} {} --hash-offset={}",
        v.cmdline(),
        disk.display(),
        disk.display(),
        disk.display(),
        info.root_hex(),
        info.hash_offset
    )?;
    Ok((built, v))
}
