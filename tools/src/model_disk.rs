//! `silk image model-disk`: a model file made into a dm-verity disk, and everything an
//! operator needs to bind an image to it.

use std::io::Write;
use std::path::Path;

use silk_images::verity::{build_served_disk, ModelDisk, ModelVerity, ServedDiskError};

/// Why the disk could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ModelDiskError {
    /// The model, the disk or the served name (`--name`) is at fault.
    #[error(transparent)]
    Build(#[from] ServedDiskError),
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
    let (built, v) = build_served_disk(model, disk, name)?;
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
