//! What the CLI tests share: running the built `silk`, the vendor vectors, scratch folders.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// The real vendor evidence beside the repository.
pub fn vectors() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../vectors"))
}

/// Runs the built `silk` with `args`.
pub fn silk(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_silk"))
        .args(args)
        .output()
        .expect("run silk")
}

/// stdout then stderr, as a user reads them.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A path as an argument.
pub fn p(path: PathBuf) -> String {
    path.display().to_string()
}

/// A fresh directory under the system's temporary folder.
pub fn tempdir() -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "silk-cli-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

/// The check named `name` in a `--json` verdict.
pub fn json_check<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no check {name} in {v:#}"))
}

/// Whether the check named `name` passed.
pub fn json_passed(v: &serde_json::Value, name: &str) -> bool {
    json_check(v, name)["outcome"]["status"] == "pass"
}

/// A minimal EFI-stub bzImage (as images/tests/tdx.rs builds it): MZ + PE32+ headers below
/// the setup header at 0x1f1, three sections, the setup header fields QEMU patches, and a
/// kernel release string.
pub fn bzimage(release: &str) -> Vec<u8> {
    let mut k: Vec<u8> = (0..0x6100u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    k[..0x200].fill(0);
    k[..2].copy_from_slice(b"MZ");
    k[0x3c..0x40].copy_from_slice(&0x40u32.to_le_bytes());
    k[0x40..0x44].copy_from_slice(b"PE\0\0");
    let coff = 0x44;
    k[coff..coff + 2].copy_from_slice(&0x8664u16.to_le_bytes());
    k[coff + 2..coff + 4].copy_from_slice(&3u16.to_le_bytes());
    k[coff + 16..coff + 18].copy_from_slice(&240u16.to_le_bytes());
    let opt = coff + 20;
    k[opt..opt + 2].copy_from_slice(&0x20bu16.to_le_bytes());
    k[opt + 32..opt + 36].copy_from_slice(&0x1000u32.to_le_bytes());
    k[opt + 36..opt + 40].copy_from_slice(&0x200u32.to_le_bytes());
    k[opt + 56..opt + 60].copy_from_slice(&0x7000u32.to_le_bytes());
    k[opt + 60..opt + 64].copy_from_slice(&0x200u32.to_le_bytes());
    k[opt + 108..opt + 112].copy_from_slice(&16u32.to_le_bytes());
    let table = opt + 240;
    for (i, (name, va, size, ptr)) in [
        (b".setup\0\0", 0x1000u32, 0xe00u32, 0x200u32),
        (b".text\0\0\0", 0x2000, 0x4000, 0x1000),
        (b".data\0\0\0", 0x6000, 0x1000, 0x5000),
    ]
    .iter()
    .enumerate()
    {
        let s = table + 40 * i;
        k[s..s + 8].copy_from_slice(*name);
        k[s + 8..s + 12].copy_from_slice(&size.to_le_bytes());
        k[s + 12..s + 16].copy_from_slice(&va.to_le_bytes());
        k[s + 16..s + 20].copy_from_slice(&size.to_le_bytes());
        k[s + 20..s + 24].copy_from_slice(&ptr.to_le_bytes());
    }
    k[0x1f1] = 7;
    k[0x202..0x206].copy_from_slice(b"HdrS");
    k[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
    k[0x210] = 0;
    k[0x211] = 0x01;
    k[0x218..0x228].fill(0);
    k[0x228..0x22c].fill(0);
    k[0x22c..0x230].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    k[0x236..0x238].copy_from_slice(&0x7fu16.to_le_bytes());
    // kernel_version: the release string, inside the setup sectors.
    k[0x20e..0x210].copy_from_slice(&0x100u16.to_le_bytes());
    k[0x300..0x300 + release.len()].copy_from_slice(release.as_bytes());
    k[0x300 + release.len()] = 0;
    k
}
/// Claims as a test enclave states them, for bundles over the real TDX quote (whose
/// REPORT_DATA is not over them, so `claims.report_data` fails and every other check runs).
pub fn test_claims() -> silk_protocol::Claims {
    silk_protocol::Claims {
        hpke_public_key: [1; 32],
        tls_spki_sha256: [2; 32],
        image_digest: [3; 32],
        model: "sha256:00".into(),
        gpu_nonce: vec![],
        challenge: vec![],
        created_at: 1_750_377_600,
        software_version: "silk test".into(),
        receipt_public_key: [9; 32],
        payout_address: String::new(),
        evidence_provider: "simulated".into(),
        gpu_policy_sha256: Vec::new(),
    }
}

/// A bundle of the real TDX quote with its collateral inside, over `claims`, with
/// `event_log` when given, written to `dir/bundle.json`; returns that path.
pub fn real_tdx_bundle(
    dir: &std::path::Path,
    claims: &silk_protocol::Claims,
    event_log: Option<Vec<u8>>,
) -> String {
    use silk_protocol::bundle::{Bytes, EvidenceBundle, PlatformEvidence};
    let bundle = EvidenceBundle {
        version: 1,
        platform: PlatformEvidence::Tdx {
            quote: Bytes(std::fs::read(vectors().join("tdx/tdx_quote")).unwrap()),
            collateral: Some(Bytes(
                std::fs::read(vectors().join("tdx/tdx_quote_collateral.json")).unwrap(),
            )),
            event_log: event_log.map(Bytes),
        },
        claims: Bytes(claims.encode().unwrap()),
        gpus: vec![],
    };
    let path = dir.join("bundle.json");
    std::fs::write(&path, bundle.to_json()).unwrap();
    p(path)
}

pub mod replay;
