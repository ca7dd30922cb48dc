//! Damaged evidence through the binary: every single-byte change of the real Milan report
//! and of the real TDX quote must exit 1 (rejected, naming a failed check), never 0, and
//! never 2 ("inputs unusable"): evidence that does not parse is evidence the verifier
//! rejects.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{p, tempdir, vectors};

const SNP_POLICY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../docs/examples/snp-milan-sample.toml"
);
const TDX_POLICY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../docs/examples/tdx-sample.toml"
);

/// Runs `silk verify` on `base` with each position changed by `xor`, two at a time, and
/// returns the positions whose exit code was not 1 (with the code and the output).
fn mutate_all(
    base: &[u8],
    xor: u8,
    positions: &[usize],
    args: &[String],
) -> Vec<(usize, Option<i32>, String)> {
    let dir = tempdir();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    let bad = std::thread::scope(|s| {
        let workers: Vec<_> = positions
            .chunks(positions.len().div_ceil(threads).max(1))
            .enumerate()
            .map(|(w, chunk)| {
                let dir = &dir;
                s.spawn(move || {
                    let path = dir.join(format!("mutated-{w}.bin"));
                    let mut bad = Vec::new();
                    let mut bytes = base.to_vec();
                    for &i in chunk {
                        bytes[i] ^= xor;
                        std::fs::write(&path, &bytes).expect("write");
                        bytes[i] ^= xor;
                        let out = Command::new(env!("CARGO_BIN_EXE_silk"))
                            .arg("verify")
                            .arg(&path)
                            .args(args)
                            .output()
                            .expect("run silk");
                        let stdout = String::from_utf8_lossy(&out.stdout);
                        let named = stdout.contains("\n  FAIL ");
                        if out.status.code() != Some(1) || !named {
                            bad.push((
                                i,
                                out.status.code(),
                                format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)),
                            ));
                        }
                    }
                    bad
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("worker"))
            .collect::<Vec<_>>()
    });
    let _ = std::fs::remove_dir_all(&dir);
    bad
}

fn report(bad: &[(usize, Option<i32>, String)]) -> String {
    let first = bad.first().map(|b| b.2.as_str()).unwrap_or_default();
    format!(
        "{} positions did not exit 1 with a named check: {:?}\nfirst output:\n{first}",
        bad.len(),
        bad.iter().map(|b| (b.0, b.1)).take(40).collect::<Vec<_>>()
    )
}

fn milan_report() -> Vec<u8> {
    let hex = std::fs::read_to_string(vectors().join("snp/milan/report_milan.hex")).expect("read");
    hex::decode(hex.trim()).expect("hex")
}

#[test]
fn every_single_byte_change_of_the_milan_report_exits_1() {
    let base = milan_report();
    let args: Vec<String> = [
        "--certs",
        &p(vectors().join("snp/milan")),
        "--policy",
        SNP_POLICY,
        "--now",
        "2025-01-01T00:00:00Z",
    ]
    .map(str::to_owned)
    .to_vec();
    let all: Vec<usize> = (0..base.len()).collect();
    for xor in [0x01, 0xff] {
        let bad = mutate_all(&base, xor, &all, &args);
        assert!(bad.is_empty(), "xor {xor:#04x}: {}", report(&bad));
    }
}

#[test]
fn every_single_byte_change_of_the_tdx_quote_exits_1() {
    let base = std::fs::read(vectors().join("tdx/tdx_quote")).expect("read");
    let collateral = vectors().join("tdx/tdx_quote_collateral.json");
    let args: Vec<String> = [
        "--collateral",
        &p(collateral),
        "--policy",
        TDX_POLICY,
        "--now",
        "2025-06-20T00:00:00Z",
    ]
    .map(str::to_owned)
    .to_vec();
    let all: Vec<usize> = (0..base.len()).collect();
    let bad = mutate_all(&base, 0x01, &all, &args);
    assert!(bad.is_empty(), "xor 0x01: {}", report(&bad));
    // Whole-byte changes of the header, the body and the start of the signature data,
    // where the parser's own checks (versions, types, lengths) sit.
    let head: Vec<usize> = (0..base.len().min(1100)).collect();
    let bad = mutate_all(&base, 0xff, &head, &args);
    assert!(bad.is_empty(), "xor 0xff: {}", report(&bad));
}

/// Damaged hex text is damaged evidence too, when what decodes is clearly a report.
#[test]
fn damaged_hex_text_is_rejected_at_the_format_check() {
    let dir = tempdir();
    let hex_text = std::fs::read(vectors().join("snp/milan/report_milan.hex")).expect("read");
    let mut damaged = hex_text.clone();
    damaged[100] = b'g';
    let path: PathBuf = dir.join("damaged.hex");
    std::fs::write(&path, &damaged).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_silk"))
        .args(["verify", &p(path.clone())])
        .args([
            "--certs",
            &p(vectors().join("snp/milan")),
            "--policy",
            SNP_POLICY,
        ])
        .output()
        .expect("run");
    let t = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("FAIL snp.report_format") && t.contains("offset 100"),
        "{t}"
    );
}

/// With the format named (`silk verify tdx …`), evidence damaged past recognition is
/// still rejected at that format's check.
#[test]
fn a_named_format_rejects_at_its_own_check() {
    let dir = tempdir();
    let mut quote = std::fs::read(vectors().join("tdx/tdx_quote")).expect("read");
    quote[..8].copy_from_slice(&[0xff; 8]);
    let path = dir.join("quote.bin");
    std::fs::write(&path, &quote).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_silk"))
        .args(["verify", "tdx", &p(path)])
        .args([
            "--collateral",
            &p(vectors().join("tdx/tdx_quote_collateral.json")),
        ])
        .args(["--policy", TDX_POLICY])
        .output()
        .expect("run");
    let t = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("FAIL tdx.quote_format"), "{t}");
    let _ = std::fs::remove_dir_all(dir);
}
