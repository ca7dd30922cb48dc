//! `silk`: the client command line.
//!
//! Exit status: 0 when the evidence verified under the policy, 1 when it was rejected,
//! 2 when the inputs could not be used (missing files, bad policy, unrecognised evidence).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use silk_client::verify::{run_verify, VerifyArgs};

#[derive(Parser)]
#[command(name = "silk", version, about = "Private inference you can verify", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Verify attestation evidence (SEV-SNP report, TDX or SGX quote) against a policy.
    Verify {
        /// Evidence file: an SNP report or a DCAP quote, binary or hex text.
        evidence: PathBuf,
        /// Directory with the AMD certificates: vcek*/vlek* (DER or PEM), and ask*/asvk*,
        /// ark* or cert_chain* (PEM). Missing ASK/ARK are taken from the pinned AMD roots.
        #[arg(long, value_name = "DIR", conflicts_with = "vcek")]
        certs: Option<PathBuf>,
        /// The VCEK or VLEK that signed an SNP report (DER or PEM).
        #[arg(long, value_name = "FILE")]
        vcek: Option<PathBuf>,
        /// Intel PCS collateral (JSON) for a quote. Defaults to EVIDENCE_collateral.json
        /// beside the evidence when that exists.
        #[arg(long, value_name = "FILE")]
        collateral: Option<PathBuf>,
        /// Policy (TOML, see docs/policy.md). Without one, everything is rejected.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// Verify as of this time (RFC 3339) instead of now.
        #[arg(long, value_name = "RFC3339")]
        now: Option<String>,
        /// Print the verdict as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Verify {
            evidence,
            certs,
            vcek,
            collateral,
            policy,
            now,
            json,
        } => {
            let args = VerifyArgs {
                evidence,
                certs,
                vcek,
                collateral,
                policy,
                now,
                json,
            };
            match run_verify(&args, &mut std::io::stdout()) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("silk verify: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}
