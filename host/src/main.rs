//! `silk-host`: launch, supervise and relay to a sealed silk guest.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use silk_host::app::{self, AccelChoice, AppError, RunOptions};
use silk_host::pci::PciAddr;
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
    /// Print the preflight report, device plan and QEMU command line, then exit.
    #[arg(long)]
    dry_run: bool,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
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
    };
    let quote_socket = match app::parse_quote_socket(&a.tdx_qgs) {
        Ok(q) => q,
        Err(e) => {
            eprintln!("silk-host: --tdx-qgs {e}");
            return ExitCode::from(2);
        }
    };
    let tee = match a.tee {
        TeeArg::Snp => Tee::Snp {
            cbitpos: 51,
            reduced_phys_bits: 1,
            policy: a.snp_policy,
        },
        TeeArg::Tdx => Tee::Tdx { quote_socket },
        TeeArg::None => Tee::None,
    };
    let opts = RunOptions {
        image: a.image,
        tee,
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
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("silk-host: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(app::run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ AppError::Preflight(_)) => {
            eprintln!("silk-host: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("silk-host: {e}");
            ExitCode::FAILURE
        }
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
