//! `silk-host`: launch, supervise and relay to a sealed silk guest.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use silk_cli::docs::DocsCommand;
use silk_cli::log::LogArgs;
use silk_host::app::{self, AccelChoice, AppError, RunOptions};
use silk_host::pci::PciAddr;
use silk_host::preflight::{HostRoot, Needs, Report};
use silk_host::qemu::Tee;

#[derive(Parser)]
#[command(
    name = "silk-host",
    version,
    about = "Runs a sealed silk guest VM and relays clients to it"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    #[command(flatten)]
    log: LogArgs,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start the VM, supervise it, and relay clients to it until SIGTERM.
    Run(RunArgs),
    /// The owner's side of payment: channels, promises, close messages (offline files,
    /// or an HTTP endpoint collecting promises).
    Settle {
        /// The settlement directory (channels and the highest promise per channel).
        #[arg(long, default_value = "settle")]
        dir: PathBuf,
        #[command(subcommand)]
        what: silk_host::settle::SettleCmd,
    },
    /// Check that this host can launch a guest, without launching one: KVM; for SEV-SNP
    /// or TDX the CPU flags the BIOS settings leave, the host kernel's version, its
    /// command line and KVM's parameters; for GPUs the IOMMU, vfio-pci, each GPU's IOMMU
    /// group and its CC mode (nvidia-smi); QEMU's version and objects; the firmware.
    /// Exit 0: ready; 1: something is missing (each line says how to fix it); 2: bad input.
    Doctor(DoctorArgs),
    #[command(flatten)]
    Docs(DocsCommand),
}

#[derive(clap::Args)]
struct DoctorArgs {
    /// The trusted execution environment to check for.
    #[arg(long, value_enum)]
    tee: TeeArg,
    /// A GPU that will be passed through (PCI address); repeat for more. Adds the IOMMU
    /// and vfio-pci checks.
    #[arg(long = "gpu")]
    gpus: Vec<PciAddr>,
    /// The image directory, whose firmware is then checked too.
    #[arg(long)]
    image: Option<PathBuf>,
    /// The QEMU binary (run with --version and -object help).
    #[arg(long, default_value = "qemu-system-x86_64")]
    qemu: PathBuf,
    /// nvidia-smi, run as `nvidia-smi conf-compute -f` for the GPUs' CC mode when there is
    /// a --gpu (a warning, not a failure, when it is not installed).
    #[arg(long, default_value = "nvidia-smi")]
    nvidia_smi: PathBuf,
    /// Print the report as one JSON document: {"tee", "ready", "checks": [{"name",
    /// "status": ok|warn|missing, "detail"}]}.
    #[arg(long)]
    json: bool,
    /// Root of the host filesystem for the checks (for testing).
    #[arg(long, default_value = "/", hide = true)]
    host_root: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum TeeArg {
    /// AMD SEV-SNP.
    Snp,
    /// Intel TDX.
    Tdx,
    /// No TEE (development; simulated evidence only).
    None,
}

#[derive(Clone, Copy, ValueEnum)]
enum AccelArg {
    Auto,
    Kvm,
    Tcg,
}

#[derive(clap::Args)]
struct RunArgs {
    /// The image directory (manifest.json, OVMF.fd, vmlinuz, initrd.cpio).
    #[arg(long)]
    image: PathBuf,
    /// The trusted execution environment.
    #[arg(long, value_enum)]
    tee: TeeArg,
    /// The model disk image (attached read-only).
    #[arg(long)]
    model: PathBuf,
    /// A GPU to pass through (PCI address, e.g. 0000:41:00.0); repeat for more.
    #[arg(long = "gpu")]
    gpus: Vec<PciAddr>,
    /// Virtual CPUs.
    #[arg(long, default_value_t = 2)]
    vcpus: u32,
    /// Guest memory (e.g. 2G, 8192M).
    #[arg(long, default_value = "2G", value_parser = app::parse_size_mib)]
    memory: u64,
    /// Where clients connect.
    #[arg(long)]
    listen: SocketAddr,
    /// Where /healthz and /metrics are served.
    #[arg(long)]
    admin: Option<SocketAddr>,
    /// Print the preflight report, device plan and QEMU command line, then exit: 0 when
    /// the host is ready, 1 when something is missing (all of it is printed anyway, the
    /// command line for the oldest QEMU that can run it), 2 when the image, model or
    /// flags cannot make a plan. Without it, a host that is not ready exits 2.
    #[arg(long)]
    dry_run: bool,
    /// With --dry-run: print it as one JSON document (keys in docs/cli.md).
    #[arg(long, requires = "dry_run")]
    json: bool,
    /// The QEMU binary.
    #[arg(long, default_value = "qemu-system-x86_64")]
    qemu: PathBuf,
    /// Accelerator: auto picks KVM when usable (always for SNP/TDX), else TCG.
    #[arg(long, value_enum, default_value = "auto")]
    accel: AccelArg,
    /// Loopback port QEMU forwards to the guest (0: any free port).
    #[arg(long, default_value_t = 0)]
    forward_port: u16,
    /// Let the guest open outbound connections (off: the enclave only answers).
    #[arg(long)]
    guest_outbound: bool,
    /// SEV-SNP guest policy (hex), when not QEMU's default.
    #[arg(long, value_parser = parse_hex)]
    snp_policy: Option<u64>,
    /// TDX quote generation service: vsock:CID:PORT, unix:PATH or none.
    #[arg(long, default_value = "vsock:2:4050")]
    tdx_qgs: String,
    /// Root of the host filesystem for the preflight checks (for testing).
    #[arg(long, default_value = "/", hide = true)]
    host_root: PathBuf,
    /// Root of sysfs for vfio (for testing).
    #[arg(long, default_value = "/sys", hide = true)]
    sysfs: PathBuf,
}

fn parse_hex(s: &str) -> Result<u64, String> {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).map_err(|e| format!("{s:?}: {e}"))
}

fn tee(
    arg: TeeArg,
    snp_policy: Option<u64>,
    quote_socket: Option<silk_host::qemu::QuoteSocket>,
) -> Tee {
    match arg {
        TeeArg::Snp => Tee::Snp {
            cbitpos: 51,
            reduced_phys_bits: 1,
            policy: snp_policy,
        },
        TeeArg::Tdx => Tee::Tdx { quote_socket },
        TeeArg::None => Tee::None,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Cmd::Docs(d) = &cli.cmd {
        return match d.run(Cli::command(), &mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("silk-host: {e}");
                ExitCode::from(2)
            }
        };
    }
    cli.log.init("info");
    if let Cmd::Doctor(a) = &cli.cmd {
        return doctor(a);
    }
    // The relay holds two descriptors a connection; the common soft limit of 1024 would
    // let a few hundred idle clients exhaust them.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::info!("open-files limit: {n}"),
        Err(e) => tracing::warn!("cannot raise the open-files limit: {e}"),
    }
    let a = match cli.cmd {
        Cmd::Run(a) => a,
        Cmd::Settle { dir, what } => {
            return match silk_host::settle::run(&dir, what, &mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("silk-host settle: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Cmd::Doctor(_) | Cmd::Docs(_) => return ExitCode::SUCCESS,
    };
    let quote_socket = match app::parse_quote_socket(&a.tdx_qgs) {
        Ok(q) => q,
        Err(e) => {
            eprintln!("silk-host: --tdx-qgs {e}");
            return ExitCode::from(2);
        }
    };
    let opts = RunOptions {
        image: a.image,
        tee: tee(a.tee, a.snp_policy, quote_socket),
        model: a.model,
        gpus: a.gpus,
        vcpus: a.vcpus,
        memory_mib: a.memory,
        listen: a.listen,
        admin: a.admin,
        dry_run: a.dry_run,
        qemu: a.qemu,
        accel: match a.accel {
            AccelArg::Auto => AccelChoice::Auto,
            AccelArg::Kvm => AccelChoice::Kvm,
            AccelArg::Tcg => AccelChoice::Tcg,
        },
        forward_port: a.forward_port,
        guest_outbound: a.guest_outbound,
        host_root: a.host_root,
        sysfs: a.sysfs,
    };
    if opts.dry_run {
        return dry_run(&opts, a.json);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("silk-host: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(app::run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => app_exit(&e),
    }
}

/// 2 when the host is not ready, 1 for anything else.
fn app_exit(e: &AppError) -> ExitCode {
    eprintln!("silk-host: {e}");
    match e {
        AppError::Preflight(_) => ExitCode::from(2),
        _ => ExitCode::FAILURE,
    }
}

/// `run --dry-run`: the plan as text or JSON, printed in full whatever preflight found;
/// the launch is not attempted. 0 ready, 1 something missing, 2 no plan can be made.
fn dry_run(opts: &RunOptions, json: bool) -> ExitCode {
    let prepared = match app::prepare(opts) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("silk-host: {e}");
            return ExitCode::from(2);
        }
    };
    let mut out = std::io::stdout();
    let written = if json {
        silk_cli::json(&mut out, &silk_host::dry_run::json(opts, &prepared))
    } else {
        std::io::Write::write_all(
            &mut out,
            silk_host::dry_run::text(opts, &prepared).as_bytes(),
        )
    };
    match written {
        Ok(()) if prepared.report.ok() => ExitCode::SUCCESS,
        Ok(()) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("silk-host: writing the dry run: {e}");
            ExitCode::from(2)
        }
    }
}

/// `doctor`: 0 ready, 1 something missing, 2 bad input.
fn doctor(a: &DoctorArgs) -> ExitCode {
    let firmware = match &a.image {
        None => None,
        Some(dir) => match silk_images::manifest::Manifest::load(dir) {
            Ok(m) => m.component_path(dir, "firmware"),
            Err(e) => {
                eprintln!("silk-host doctor: --image {}: {e}", dir.display());
                return ExitCode::from(2);
            }
        },
    };
    let tee = tee(a.tee, None, None);
    let report = HostRoot::new(&a.host_root).check(&Needs::probe(
        &tee,
        &a.gpus,
        &a.qemu,
        &a.nvidia_smi,
        firmware,
    ));
    #[derive(serde::Serialize)]
    struct Doctor<'a> {
        tee: &'static str,
        #[serde(flatten)]
        report: &'a Report,
    }
    let mut out = std::io::stdout();
    let written = if a.json {
        silk_cli::json(
            &mut out,
            &Doctor {
                tee: tee.name(),
                report: &report,
            },
        )
    } else {
        let verdict = silk_host::dry_run::verdict(&report);
        write!(out, "{report}\n{}: {verdict}\n", tee.name())
    };
    if let Err(e) = written {
        eprintln!("silk-host doctor: {e}");
        return ExitCode::from(2);
    }
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "silk-host",
            "run",
            "--image",
            "i",
            "--tee",
            "tdx",
            "--model",
            "m",
            "--listen",
            "127.0.0.1:1",
            "--gpu",
            "41:00.0",
            "--gpu",
            "0000:c1:00.0",
            "--memory",
            "8G",
            "--tdx-qgs",
            "unix:/run/qgs",
            "--snp-policy",
            "0x30000",
        ])
        .unwrap();
        let Cmd::Run(a) = cli.cmd else {
            panic!("parsed as run")
        };
        assert_eq!(a.gpus.len(), 2);
        assert_eq!(a.memory, 8192);
        assert_eq!(a.snp_policy, Some(0x30000));
        assert!(Cli::try_parse_from(["silk-host", "run", "--tee", "sgx"]).is_err());
    }
}
