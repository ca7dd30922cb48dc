//! `silk-host run`: ties the image, preflight, vfio, supervisor, relay and admin together.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use silk_images::manifest::{Manifest, ManifestError};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::pci::PciAddr;
use crate::preflight::{HostRoot, Needs, Report};
use crate::qemu::{
    self, Accel, BootFiles, PlanError, QemuVersion, Tee, VmPlan, MIN_QEMU_NONE, MIN_QEMU_SNP,
    MIN_QEMU_TDX,
};
use crate::supervisor::{Backoff, Supervisor, SupervisorError};
use crate::vfio::{Sysfs, VfioError, VfioGuard};

/// How to choose the accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccelChoice {
    /// KVM when usable (always for SNP/TDX), else TCG.
    Auto,
    /// Always KVM.
    Kvm,
    /// Always TCG (development only).
    Tcg,
}

/// Everything `silk-host run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The image directory (with `manifest.json`).
    pub image: PathBuf,
    /// The TEE.
    pub tee: Tee,
    /// The model disk image.
    pub model: PathBuf,
    /// GPUs to pass through.
    pub gpus: Vec<PciAddr>,
    /// Virtual CPUs.
    pub vcpus: u32,
    /// Guest memory in MiB.
    pub memory_mib: u64,
    /// Where clients connect (the relay).
    pub listen: SocketAddr,
    /// Where `/healthz` and `/metrics` are served, if anywhere.
    pub admin: Option<SocketAddr>,
    /// Print the plan and exit.
    pub dry_run: bool,
    /// The QEMU binary.
    pub qemu: PathBuf,
    /// The accelerator choice.
    pub accel: AccelChoice,
    /// The loopback port QEMU forwards to the guest (0: pick a free one).
    pub forward_port: u16,
    /// Let the guest open outbound connections.
    pub guest_outbound: bool,
    /// The root of the host filesystem for preflight (normally `/`).
    pub host_root: PathBuf,
    /// The sysfs root for vfio (normally `/sys`).
    pub sysfs: PathBuf,
}

/// Why `silk-host run` failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The image is missing, malformed, or its files do not match the manifest.
    #[error("image: {0}")]
    Image(#[from] ManifestError),
    /// The model disk cannot be read.
    #[error("model disk {path}: {source}")]
    Model {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The host lacks something the launch needs.
    #[error("the host is not ready:\n{0}")]
    Preflight(Report),
    /// The plan is inconsistent.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A GPU could not be handed to vfio-pci.
    #[error(transparent)]
    Vfio(#[from] VfioError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// QEMU could not be started.
    #[error(transparent)]
    Supervisor(#[from] SupervisorError),
}

/// The checked plan and what preflight found.
#[derive(Debug)]
pub struct Prepared {
    /// The VM.
    pub plan: VmPlan,
    /// QEMU's arguments.
    pub args: Vec<String>,
    /// The preflight report.
    pub report: Report,
    /// The image digest (SHA-256 of the canonical manifest).
    pub image_digest: String,
    /// What the command line assumes that the host does not provide: set when QEMU's
    /// version could not be read, or is too old, and the plan was made for the oldest
    /// QEMU that can run it (so a dry run still shows the command line it would need).
    pub notes: Vec<String>,
}

/// Loads and verifies the image, runs preflight, and builds the QEMU arguments.
///
/// A host that is not ready is no error here: the report says what is missing, and the
/// arguments are built anyway (for the oldest QEMU that can run them when the one found
/// is missing or too old), so a dry run can show both. Errors are the inputs' own: an
/// image that does not verify, an unreadable model, a plan QEMU cannot express.
pub fn prepare(opts: &RunOptions) -> Result<Prepared, AppError> {
    let manifest = Manifest::load(&opts.image)?;
    manifest.verify_files(&opts.image)?;
    // validate() guarantees the required components; the error is for completeness.
    let component = |name: &'static str| {
        manifest
            .component_path(&opts.image, name)
            .ok_or(ManifestError::Missing(name))
    };
    let boot = BootFiles {
        firmware: component("firmware")?,
        kernel: component("kernel")?,
        initrd: component("initrd")?,
        cmdline: manifest.kernel_cmdline.clone(),
    };
    std::fs::File::open(&opts.model).map_err(|source| AppError::Model {
        path: opts.model.clone(),
        source,
    })?;

    let host = HostRoot::new(&opts.host_root);
    let needs = Needs::probe(
        &opts.tee,
        &opts.gpus,
        &opts.qemu,
        Path::new("nvidia-smi"),
        Some(boot.firmware.clone()),
    );
    let report = host.check(&needs);
    let qemu_result = needs.qemu;
    let need = assumed_version(&opts.tee);
    let mut notes = Vec::new();
    let qemu_version = match qemu_result {
        Ok(v) if v >= need => v,
        Ok(v) => {
            notes.push(format!(
                "the command line below is for QEMU {need}; found {v}, which cannot run it"
            ));
            need
        }
        Err(e) => {
            notes.push(format!("{e}; the command line below is for QEMU {need}"));
            need
        }
    };
    let accel = match (opts.accel, &opts.tee) {
        (AccelChoice::Kvm, _) => Accel::Kvm,
        (AccelChoice::Tcg, _) => Accel::Tcg,
        (AccelChoice::Auto, Tee::None) if !host.kvm_usable() => Accel::Tcg,
        (AccelChoice::Auto, _) => Accel::Kvm,
    };
    let port = if opts.forward_port != 0 {
        opts.forward_port
    } else {
        free_loopback_port().map_err(|source| AppError::Listen {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            source,
        })?
    };
    let plan = VmPlan {
        tee: opts.tee.clone(),
        accel,
        qemu_version,
        vcpus: opts.vcpus,
        memory_mib: opts.memory_mib,
        boot,
        model_disk: opts.model.clone(),
        gpus: opts.gpus.clone(),
        forward: SocketAddrV4::new(Ipv4Addr::LOCALHOST, port),
        guest_outbound: opts.guest_outbound,
    };
    let args = plan.args()?;
    Ok(Prepared {
        plan,
        args,
        report,
        image_digest: manifest.digest(),
        notes,
    })
}

/// Runs the VM until SIGTERM or Ctrl-C.
pub async fn run(opts: RunOptions) -> Result<(), AppError> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(signals(tx));
    run_until(opts, rx).await
}

/// Runs the VM until `stop` turns true (or QEMU cannot be started at all).
pub async fn run_until(opts: RunOptions, stop: watch::Receiver<bool>) -> Result<(), AppError> {
    let prepared = prepare(&opts)?;
    if opts.dry_run {
        print!("{}", crate::dry_run::text(&opts, &prepared));
        return Ok(());
    }
    for c in &prepared.report.checks {
        tracing::info!(check = c.name, status = ?c.status, "{}", c.detail);
    }
    if !prepared.report.ok() {
        return Err(AppError::Preflight(prepared.report));
    }
    tracing::info!(image = %opts.image.display(), digest = %prepared.image_digest, "image verified");

    let metrics = Arc::new(Metrics::default());
    // One internal stop signal: the caller's, or the supervisor giving up.
    let (tx, rx) = watch::channel(false);
    let forward = tx.clone();
    let mut stop = stop;
    tokio::spawn(async move {
        if stop.wait_for(|s| *s).await.is_ok() {
            let _ = forward.send(true);
        }
    });
    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| AppError::Listen { addr, source })
    };
    let relay_listener = bind(opts.listen).await?;
    let admin_listener = match opts.admin {
        Some(a) => Some(bind(a).await?),
        None => None,
    };

    let sysfs = Sysfs::new(&opts.sysfs, Arc::new(crate::vfio::FileWriter));
    let mut guards: Vec<VfioGuard> = Vec::new();
    for gpu in &opts.gpus {
        guards.push(sysfs.bind_group(*gpu)?);
    }

    let target = SocketAddr::V4(prepared.plan.forward);
    tracing::info!(listen = %opts.listen, %target, "relaying");
    let relay = tokio::spawn(crate::relay::serve(
        relay_listener,
        target,
        metrics.clone(),
        rx.clone(),
    ));
    let admin = admin_listener.map(|l| {
        tracing::info!(addr = ?opts.admin, "admin endpoint up");
        tokio::spawn(crate::admin::serve(l, metrics.clone(), rx.clone()))
    });

    let supervisor = Supervisor {
        program: opts.qemu.clone(),
        args: prepared.args,
        backoff: Backoff::default(),
        stop_grace: Duration::from_secs(15),
        metrics,
    };
    let result = supervisor.run(rx).await;
    let _ = tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), relay).await;
    if let Some(a) = admin {
        let _ = tokio::time::timeout(Duration::from_secs(5), a).await;
    }
    // Give the GPUs back only once QEMU is gone (the supervisor waited for it).
    drop(guards);
    result.map_err(AppError::from)
}

async fn signals(tx: watch::Sender<bool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot watch SIGTERM: {e}");
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: stopping"),
    }
    let _ = tx.send(true);
}

/// A loopback port nothing listens on right now (QEMU binds it a moment later).
fn free_loopback_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(l.local_addr()?.port())
}

/// Parses a memory size: `4096` (MiB), `512M`, `8G`, `1T` (binary units).
pub fn parse_size_mib(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'M' => 1,
                'G' => 1024,
                'T' => 1024 * 1024,
                _ => return Err(format!("{s:?}: unit must be M, G or T")),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 4096, 512M, 8G)"))?;
    n.checked_mul(mult)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("{s:?} is out of range"))
}

/// Parses `--tdx-qgs`: `vsock:CID:PORT`, `unix:PATH` or `none`.
pub fn parse_quote_socket(s: &str) -> Result<Option<qemu::QuoteSocket>, String> {
    if s == "none" {
        return Ok(None);
    }
    if let Some(p) = s.strip_prefix("unix:") {
        return Ok(Some(qemu::QuoteSocket::Unix(p.into())));
    }
    let bad = || format!("{s:?}: expected vsock:CID:PORT, unix:PATH or none");
    let rest = s.strip_prefix("vsock:").ok_or_else(bad)?;
    let (cid, port) = rest.split_once(':').ok_or_else(bad)?;
    Ok(Some(qemu::QuoteSocket::Vsock {
        cid: cid.parse().map_err(|_| bad())?,
        port: port.parse().map_err(|_| bad())?,
    }))
}

/// The QEMU version the plan would use for `tee` when none can be read.
pub fn assumed_version(tee: &Tee) -> QemuVersion {
    match tee {
        Tee::Snp { .. } => MIN_QEMU_SNP,
        Tee::Tdx { .. } => MIN_QEMU_TDX,
        Tee::None => MIN_QEMU_NONE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size_mib("4096"), Ok(4096));
        assert_eq!(parse_size_mib("512M"), Ok(512));
        assert_eq!(parse_size_mib("8G"), Ok(8192));
        assert_eq!(parse_size_mib("1t"), Ok(1 << 20));
        assert!(parse_size_mib("8K").is_err());
        assert!(parse_size_mib("G").is_err());
        assert!(parse_size_mib("0").is_err());
        assert!(parse_size_mib("99999999999999999999G").is_err());
    }

    #[test]
    fn quote_sockets() {
        assert_eq!(parse_quote_socket("none"), Ok(None));
        assert_eq!(
            parse_quote_socket("vsock:2:4050"),
            Ok(Some(qemu::QuoteSocket::Vsock { cid: 2, port: 4050 }))
        );
        assert_eq!(
            parse_quote_socket("unix:/run/qgs.sock"),
            Ok(Some(qemu::QuoteSocket::Unix("/run/qgs.sock".into())))
        );
        assert!(parse_quote_socket("tcp:1").is_err());
        assert!(parse_quote_socket("vsock:x:1").is_err());
    }
}
