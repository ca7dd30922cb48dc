//! `silk-image`: the deterministic half of the image recipe.
//!
//! `images/recipe/build.sh` fetches Debian packages and lays out a staging tree; this tool
//! turns the tree into the initramfs, copies the kernel and firmware, and writes the
//! manifest. Everything that must be bit-identical across rebuilds happens here, in code
//! that does not depend on the host's cpio, find, sort or locale.

use clap::{Parser, Subcommand};
use silk_images::cpio::Archive;
use silk_images::manifest::{self, Component, Input, Manifest};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "silk-image", about = "Builds and checks silk guest images")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Packs a staging tree into an image directory (initrd.cpio, vmlinuz, OVMF.fd, manifest).
    Build {
        /// The initramfs staging tree (its root becomes `/`).
        #[arg(long)]
        root: PathBuf,
        /// The kernel (bzImage) to copy in as `vmlinuz`.
        #[arg(long)]
        kernel: PathBuf,
        /// The firmware (OVMF) to copy in as `OVMF.fd`.
        #[arg(long)]
        firmware: PathBuf,
        /// The kernel command line; `silk.components=<digest>` is appended.
        #[arg(long)]
        cmdline: String,
        /// Input files (e.g. the .deb packages) to record with their digests.
        #[arg(long = "input")]
        inputs: Vec<PathBuf>,
        /// The timestamp every archived file carries.
        #[arg(long)]
        source_date_epoch: u32,
        /// The image directory to write (created if absent).
        #[arg(long)]
        out: PathBuf,
    },
    /// Copies kernel modules and their dependencies into a staging tree (decompressing
    /// `.ko.xz`; modules the kernel builds in are skipped), and writes their load order to
    /// `etc/silk/modules`.
    Modules {
        /// The kernel's module directory (`.../lib/modules/<version>`).
        #[arg(long)]
        moddir: PathBuf,
        /// The staging tree.
        #[arg(long)]
        root: PathBuf,
        /// Modules to include (comma-separated names).
        #[arg(long, value_delimiter = ',')]
        want: Vec<String>,
    },
    /// Builds a dm-verity model disk (the model, then its hash tree) and prints the kernel
    /// command line fragment that binds an image to it (`build.sh --model-verity`).
    ModelDisk {
        /// The model file (e.g. a GGUF).
        model: PathBuf,
        /// The disk to write.
        #[arg(short, long)]
        out: PathBuf,
        /// The name the enclave serves the model under (default: the file name's stem).
        #[arg(long)]
        name: Option<String>,
    },
    /// Checks an image directory against its manifest and prints the image digest.
    Verify {
        /// The image directory.
        dir: PathBuf,
    },
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error(transparent)]
    Cpio(#[from] silk_images::cpio::CpioError),
    #[error(transparent)]
    Manifest(#[from] manifest::ManifestError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Kmod(#[from] silk_images::kmod::KmodError),
    #[error("{0} is not a lib/modules/<version> directory")]
    ModDir(PathBuf),
    #[error("input {0} has no usable file name")]
    InputName(PathBuf),
    #[error(transparent)]
    Verity(#[from] silk_images::verity::VerityError),
    #[error(transparent)]
    Cmdline(#[from] silk_images::verity::cmdline::CmdlineError),
    #[error(transparent)]
    ServedDisk(#[from] silk_images::verity::ServedDiskError),
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { what, path, source }
}

fn build(
    root: &Path,
    kernel: &Path,
    firmware: &Path,
    cmdline: &str,
    inputs: &[PathBuf],
    epoch: u32,
    out: &Path,
) -> Result<Manifest, Error> {
    // A malformed model binding would only show at boot, as a guest that will not start.
    silk_images::verity::ModelVerity::from_cmdline(cmdline)?;
    std::fs::create_dir_all(out).map_err(io("creating", out))?;
    // Steps, not bytes: packing is one call; a person sees which step is running.
    let progress = silk_cli::progress::steps(4, "silk-image build");
    silk_cli::progress::say(&progress, format!("packing {}", root.display()));
    let mut archive = Archive::new();
    archive.add_tree(root)?;
    let initrd = out.join("initrd.cpio");
    let bytes = archive.to_bytes(epoch)?;
    progress.inc(1);
    silk_cli::progress::say(&progress, format!("writing {}", initrd.display()));
    std::fs::write(&initrd, bytes).map_err(io("writing", &initrd))?;
    progress.inc(1);
    silk_cli::progress::say(&progress, "copying the kernel and firmware");
    let vmlinuz = out.join("vmlinuz");
    std::fs::copy(kernel, &vmlinuz).map_err(io("copying", kernel))?;
    let ovmf = out.join("OVMF.fd");
    std::fs::copy(firmware, &ovmf).map_err(io("copying", firmware))?;
    progress.inc(1);
    silk_cli::progress::say(&progress, "hashing the components and inputs");

    let components = vec![
        Component::from_file(out, "firmware", "OVMF.fd")?,
        Component::from_file(out, "initrd", "initrd.cpio")?,
        Component::from_file(out, "kernel", "vmlinuz")?,
    ];
    let mut recorded = Vec::new();
    for p in inputs {
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::InputName(p.clone()))?;
        let (sha256, _) = manifest::sha256_file(p)?;
        recorded.push(Input {
            name: name.to_string(),
            sha256,
        });
    }
    recorded.sort_by(|a, b| a.name.cmp(&b.name));
    recorded.dedup_by(|a, b| a.name == b.name);
    let kernel_cmdline = format!(
        "{} {}={}",
        cmdline.trim(),
        manifest::CMDLINE_COMPONENTS_KEY,
        Manifest::components_digest(&components)
    );
    let m = Manifest {
        components,
        inputs: recorded,
        kernel_cmdline,
        schema: manifest::SCHEMA.into(),
        source_date_epoch: u64::from(epoch),
    };
    m.validate()?;
    progress.inc(1);
    let path = out.join(manifest::FILE_NAME);
    std::fs::write(&path, m.to_pretty()).map_err(io("writing", &path))?;
    progress.finish_and_clear();
    Ok(m)
}

fn modules(moddir: &Path, root: &Path, want: &[String]) -> Result<(), Error> {
    let version = moddir
        .file_name()
        .and_then(|v| v.to_str())
        .ok_or_else(|| Error::ModDir(moddir.to_path_buf()))?;
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    let order = silk_images::kmod::resolve(moddir, &want)?;
    let guest_dir = Path::new("/lib/modules").join(version);
    let mut list = String::new();
    for rel in &order {
        // Decompressed here: busybox's insmod loads plain ELF modules only.
        let plain = silk_images::kmod::plain_path(rel);
        let bytes = silk_images::kmod::read_module(&moddir.join(rel))?;
        let dest = root.join("lib/modules").join(version).join(&plain);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(io("creating", parent))?;
        }
        std::fs::write(&dest, bytes).map_err(io("writing", &dest))?;
        list.push_str(&format!("{}\n", guest_dir.join(&plain).display()));
    }
    let etc = root.join("etc/silk");
    std::fs::create_dir_all(&etc).map_err(io("creating", &etc))?;
    let path = etc.join("modules");
    std::fs::write(&path, &list).map_err(io("writing", &path))?;
    print!("{list}");
    Ok(())
}

/// Builds the disk; prints the command line fragment on stdout and the details on stderr.
fn model_disk(model: &Path, out: &Path, name: Option<&str>) -> Result<(), Error> {
    let (disk, v) = silk_images::verity::build_served_disk(model, out, name)?;
    eprintln!(
        "silk-image: model disk {}: root {}, {} data blocks, hash offset {}, model {} bytes",
        out.display(),
        disk.verity.root_hex(),
        disk.verity.data_blocks,
        disk.verity.hash_offset,
        disk.model_size
    );
    println!("{}", v.cmdline());
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Build {
            root,
            kernel,
            firmware,
            cmdline,
            inputs,
            source_date_epoch,
            out,
        } => build(
            &root,
            &kernel,
            &firmware,
            &cmdline,
            &inputs,
            source_date_epoch,
            &out,
        ),
        Cmd::ModelDisk { model, out, name } => {
            return match model_disk(&model, &out, name.as_deref()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("silk-image: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Cmd::Modules { moddir, root, want } => {
            return match modules(&moddir, &root, &want) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("silk-image: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Cmd::Verify { dir } => Manifest::load(&dir)
            .map_err(Error::from)
            .and_then(|m| m.verify_files(&dir).map(|()| m).map_err(Error::from)),
    };
    match result {
        Ok(m) => {
            println!("{}", m.digest());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("silk-image: {e}");
            ExitCode::FAILURE
        }
    }
}
