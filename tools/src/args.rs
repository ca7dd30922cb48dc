//! The `silk` command line's arguments (clap). A module of the binary, not of the
//! library: `main.rs` matches on these and calls the library.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use silk_cli::docs::DocsCommand;
use silk_cli::log::LogArgs;
use silk_client::upstream::TargetArgs;
use silk_tools::measure::{LaunchOptions, Tee};

#[derive(Parser)]
#[command(name = "silk", version, about = "Private inference you can verify", long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
    #[command(flatten)]
    pub(crate) log: LogArgs,
}

#[derive(Subcommand)]
pub(crate) enum ReceiptsWhat {
    /// Verify receipts (JSON lines as `silk chat` and `silk-router --receipts` write them)
    /// against the worker's evidence bundle. Exit 0: all verified; 1: a check failed; 2:
    /// the inputs could not be used.
    Verify {
        /// The receipts file.
        file: PathBuf,
        /// The worker's evidence bundle (JSON, as its /v1/attestation serves it).
        #[arg(long)]
        bundle: PathBuf,
        /// Policy the bundle must verify under (TOML): the receipts are only as good as
        /// the attestation of the key that signed them.
        #[arg(long)]
        policy: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Verify attestation evidence (SEV-SNP report, TDX or SGX quote, NVIDIA GPU report,
    /// silk evidence bundle) against a policy. Exit 0: accepted; 1: rejected (evidence
    /// that does not parse included); 2: the inputs could not be used.
    #[command(override_usage = "silk verify [snp|tdx|gpu|bundle] <EVIDENCE> [OPTIONS]")]
    Verify {
        /// Evidence file: an SNP report or a DCAP quote (binary or hex text), an NVIDIA GPU
        /// report (hex, with --certs CHAIN), NRAS-style GPU JSON, or a silk bundle (JSON).
        /// May follow the format's name (`silk verify gpu REPORT`); detected otherwise.
        #[arg(value_name = "[FORMAT] EVIDENCE", num_args = 1..=2, required = true)]
        evidence: Vec<PathBuf>,
        /// SNP: the folder with the AMD certificates: vcek*/vlek* (DER or PEM), and
        /// ask*/asvk*, ark* or cert_chain* (PEM); missing ASK/ARK are taken from the pinned
        /// AMD roots. GPU: the device certificate chain file (PEM, leaf first).
        #[arg(long, value_name = "DIR|FILE")]
        certs: Option<PathBuf>,
        /// The VCEK or VLEK that signed an SNP report (DER or PEM; from a PEM holding
        /// several certificates, the one whose CN is SEV-VCEK/SEV-VLEK). With --certs, the
        /// ASK and ARK come from that folder.
        #[arg(long, value_name = "FILE")]
        vcek: Option<PathBuf>,
        /// Intel PCS collateral (JSON) for a quote. Defaults to EVIDENCE_collateral.json
        /// beside the evidence when that exists.
        #[arg(long, value_name = "FILE")]
        collateral: Option<PathBuf>,
        /// TDX: the TD's event log (the CCEL log area, e.g. a copy of the guest's
        /// /sys/firmware/acpi/tables/data/CCEL) for a standalone quote; it must replay to
        /// the quote's RTMR0-3. A bundle carries its own.
        #[arg(long, value_name = "FILE")]
        event_log: Option<PathBuf>,
        /// Policy (TOML, see docs/policy.md). Without one, everything is rejected.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// Verify as of this time (RFC 3339) instead of now.
        #[arg(long, value_name = "RFC3339")]
        now: Option<String>,
        /// Print the verdict as JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// NVIDIA RIMs (driver and VBIOS, *.xml / *.swidtag) for GPU evidence; each report
        /// is matched with the RIMs that describe its driver and VBIOS versions.
        #[arg(long, value_name = "DIR")]
        gpu_rims: Option<PathBuf>,
        /// GPU: the nonce (64 hex digits) the report was requested with. Bundle: the
        /// challenge sent (`GET /v1/attestation?nonce=HEX`), which its claims must carry.
        #[arg(long, value_name = "HEX", conflicts_with = "no_nonce")]
        nonce: Option<String>,
        /// Bundle: the oldest acceptable claims, in seconds before --now.
        #[arg(long, value_name = "SECS")]
        max_age: Option<u64>,
        /// GPU: accept the report whatever its nonce (it may be a replay; warned).
        #[arg(long)]
        no_nonce: bool,
        /// GPU: a saved DER OCSP response for the device chain (repeat for several).
        #[arg(long, value_name = "FILE")]
        ocsp: Vec<PathBuf>,
        /// A guest image directory (manifest.json, OVMF.fd, vmlinuz, initrd.cpio): the
        /// measurement must equal the one computed from it (the policy's allowlist for the
        /// platform is replaced; its other rules apply).
        #[arg(long, value_name = "DIR")]
        image: Option<PathBuf>,
        /// The platform for --image (default: the evidence's).
        #[arg(long, value_enum, requires = "image")]
        tee: Option<Tee>,
        #[command(flatten)]
        launch: LaunchOptions,
    },
    /// Compute the measurement a guest image will have (SEV-SNP launch digest, or TDX MRTD
    /// and RTMR1/RTMR2) from its files, and optionally write a policy allowing exactly it.
    Measure {
        /// The image directory (manifest.json and the files it lists).
        #[arg(long, value_name = "DIR")]
        image: PathBuf,
        /// The platform.
        #[arg(long, value_enum)]
        tee: Tee,
        #[command(flatten)]
        launch: LaunchOptions,
        /// Write a policy (TOML) that allows exactly this measurement.
        #[arg(long, value_name = "FILE")]
        policy_out: Option<PathBuf>,
        /// Print the prediction as one JSON document (keys in docs/cli.md).
        #[arg(long)]
        json: bool,
    },
    /// Build guest image parts.
    Image {
        #[command(subcommand)]
        what: ImageWhat,
    },
    /// Fetch what a verifier needs beside a saved report or quote. silk's clients never
    /// fetch it by themselves: enclaves serve it in their bundles.
    Collateral {
        #[command(subcommand)]
        what: CollateralWhat,
    },
    /// Start a local enclave (SIMULATED TEE) with the default model, verify it, and ask it
    /// a question through the sealed path.
    Demo {
        /// The model (GGUF file or safetensors directory).
        #[arg(long, default_value = "models/SmolLM2-135M-Instruct.Q4_1.gguf")]
        model: PathBuf,
        /// The silk-enclave binary (default: beside this one).
        #[arg(long)]
        enclave: Option<PathBuf>,
        /// Where the enclave runs the model: cpu, cuda or cuda:N (a silk-enclave built
        /// with `--features cuda`).
        #[arg(long, default_value = "cpu")]
        device: silk_engine::DeviceSpec,
        /// Most tokens in the answer.
        #[arg(long, default_value_t = 96)]
        max_tokens: usize,
        /// The question.
        #[arg(default_value = "What is the capital of France? Answer in one sentence.")]
        prompt: String,
    },
    /// Verify an enclave, then chat with it through the sealed path (interactive without
    /// a prompt).
    Chat {
        #[command(flatten)]
        target: TargetArgs,
        /// Most tokens per answer.
        #[arg(long, default_value_t = 256)]
        max_tokens: usize,
        /// Sampling temperature.
        #[arg(long, default_value_t = 0.0)]
        temperature: f32,
        /// Seed for repeatable sampling.
        #[arg(long)]
        seed: Option<u64>,
        /// A system message.
        #[arg(long)]
        system: Option<String>,
        /// The prompt; without one, read prompts from stdin.
        prompt: Option<String>,
    },
    /// Serve the OpenAI API on localhost, sealing every request to the verified enclave,
    /// and a page at /verify where a browser verifies the enclave and seals prompts itself.
    Proxy {
        /// Where to listen (keep it on loopback: requests arrive here in the clear).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        #[command(flatten)]
        target: TargetArgs,
        /// When the policy refuses the enclave, keep serving instead of exiting: the
        /// OpenAI routes answer 502 naming the failed checks (nothing falls back) and the
        /// page at /verify shows the browser's own verdict.
        #[arg(long)]
        serve_on_refusal: bool,
    },
    /// Pay for acknowledged receipts through a TON payment channel (offline: writes the
    /// signed promise as a bag of cells). Exit 2 when the inputs cannot be used.
    Pay {
        #[command(subcommand)]
        what: silk_tools::pay::PayCommand,
    },
    /// Build client policies from elsewhere (the TON image registry). Exit 2 on bad input.
    Policy {
        #[command(subcommand)]
        what: silk_tools::policy_ton::PolicyCommand,
    },
    /// Usage receipts: check them offline against the worker's evidence.
    Receipts {
        #[command(subcommand)]
        what: ReceiptsWhat,
    },
    /// Measure speed and print a table (or JSON with --json); progress on stderr.
    Bench {
        #[command(subcommand)]
        what: BenchWhat,
    },
    #[command(flatten)]
    Docs(DocsCommand),
}

#[derive(Subcommand)]
pub(crate) enum CollateralWhat {
    /// The VCEK for an SNP report (from AMD's KDS; for `silk verify --vcek`), or the DCAP
    /// collateral for a TDX or SGX quote (from Intel's PCS or a PCCS; for `silk verify
    /// --collateral`). Exit 0: written; 2: nothing written, and why.
    Fetch {
        /// The SNP report or DCAP quote (binary, or hex text).
        evidence: PathBuf,
        /// Where to write the VCEK (DER) or the collateral (JSON).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// AMD's KDS, or a cache of it.
        #[arg(long, value_name = "URL", default_value = silk_attestation::snp::kds::AMD_KDS)]
        kds_url: String,
        /// Intel's PCS, or a PCCS.
        #[arg(long, value_name = "URL", default_value = silk_attestation::tdx::pcs::INTEL_PCS)]
        pcs_url: String,
        /// Keep what is fetched here, and take it from here while it is fresh.
        #[arg(long, value_name = "DIR")]
        cache: Option<PathBuf>,
        /// Seconds to wait for a connection.
        #[arg(long, value_name = "SECS", default_value_t = 10)]
        connect_timeout: u64,
        /// Seconds for each whole answer after connecting.
        #[arg(long, value_name = "SECS", default_value_t = 30)]
        timeout: u64,
        /// The longest Retry-After (seconds) honoured on a 429 or 503; a longer one fails.
        #[arg(long, value_name = "SECS", default_value_t = 30)]
        max_retry_wait: u64,
        /// Requests per item, the first included.
        #[arg(long, value_name = "N", default_value_t = 3)]
        attempts: u32,
        /// The product line (Milan, Genoa, Turin) of a version 2 SNP report, which does
        /// not name it.
        #[arg(long, value_name = "LINE")]
        snp_product: Option<String>,
    },
}

#[derive(Subcommand)]
pub(crate) enum ImageWhat {
    /// Make a model file into a dm-verity disk and print its root hash, geometry and the
    /// kernel command line that binds an image to it.
    ModelDisk {
        /// The model file (GGUF).
        model: PathBuf,
        /// The disk to write.
        #[arg(short, long, value_name = "DISK")]
        out: PathBuf,
        /// The name the enclave serves the model under (default: the file name's stem).
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Subcommand)]
pub(crate) enum BenchWhat {
    /// The inference engine beside llama.cpp's own llama-bench and llama-batched-bench:
    /// prefill, decode (from an empty cache and after the prompt), aggregate decode for
    /// several sequences at once, and peak memory.
    Engine {
        /// GGUF files to measure (default: the default model and the variants
        /// scripts/reference/requant.py makes, where present).
        #[arg(long = "model", value_name = "GGUF")]
        models: Vec<PathBuf>,
        /// Compute threads for both engines (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Where silk runs the model: cpu, cuda or cuda:N (CUDA needs `silk` built with
        /// `--features cuda`); on a GPU the table adds decode's bandwidth roofline.
        #[arg(long, default_value = "cpu")]
        device: silk_engine::DeviceSpec,
        /// Prompt tokens.
        #[arg(long, default_value_t = 64)]
        prompt: usize,
        /// Decode steps.
        #[arg(long, default_value_t = 32)]
        decode: usize,
        /// Concurrent sequences for the aggregate rate.
        #[arg(long, value_delimiter = ',', default_value = "8,32")]
        concurrency: Vec<usize>,
        /// Repetitions; the best is reported.
        #[arg(long, default_value_t = 3)]
        reps: usize,
        /// llama.cpp's `llama-bench` (default: on PATH, else where scripts/llama-tools.sh
        /// builds it).
        #[arg(long, value_name = "PATH", env = "SILK_LLAMA_BENCH")]
        llama_bench: Option<PathBuf>,
        /// llama.cpp's `llama-batched-bench` (default: on PATH, else where
        /// scripts/llama-tools.sh builds it).
        #[arg(long, value_name = "PATH", env = "SILK_LLAMA_BATCHED_BENCH")]
        llama_batched_bench: Option<PathBuf>,
        /// Measure silk only.
        #[arg(long)]
        no_llama_cpp: bool,
        /// Print one JSON document (keys in docs/cli.md) instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// The sealed path (client -> silk proxy -> local SIMULATED enclave) beside the engine
    /// called in-process: decode tok/s and time to first token at each concurrency, and
    /// the cost of one attestation.
    Sealed {
        /// The model (GGUF file or safetensors directory).
        #[arg(long, default_value = "models/SmolLM2-135M-Instruct.Q4_1.gguf")]
        model: PathBuf,
        /// Concurrent streams per round.
        #[arg(long, value_delimiter = ',', default_value = "1,8")]
        concurrency: Vec<usize>,
        /// Tokens per answer.
        #[arg(long, default_value_t = 64)]
        max_tokens: usize,
        /// Rounds per concurrency.
        #[arg(long, default_value_t = 5)]
        reps: usize,
        /// Attestations measured.
        #[arg(long, default_value_t = 20)]
        attest_reps: usize,
        /// Kernel threads for the enclave and the direct engine alike (default:
        /// SILK_THREADS, else all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// The silk-enclave binary (default: beside this one).
        #[arg(long)]
        enclave: Option<PathBuf>,
        /// Print one JSON document (keys in docs/cli.md) instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// silk-router on the path: real answers routed beside direct, forwarding with a stub
    /// worker, registration to routable and worker death to unlisted.
    Router(silk_tools::bench_router::RouterBenchArgs),
}
