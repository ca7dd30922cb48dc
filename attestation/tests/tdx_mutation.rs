//! Every single-byte change of a real TDX quote must be rejected.
//!
//! With `dcap-qvl` alone, 700-odd of the 5006 positions of `tdx_quote` were accepted, all
//! in bytes no signature covers: the signature-data length at 632 (slack after the data
//! is ignored), the outer certification data type at 764-765, the PEM line feeds of the
//! PCK chain (LF to VT is skipped as whitespace), base64 padding bits, nearly all of the
//! Intel root CA copy that ends the chain (the verifier anchors on its own pinned root)
//! and the chain's NUL terminator. `Quote::from_bytes` now requires the one canonical
//! encoding of each (`QuoteError::NonCanonical`), so none is accepted; the 70 zero bytes
//! of padding after the signature data must stay zero (`QuoteError::TrailingBytes`).

use silk_attestation::tdx::{self, Quote, TdxCollateral};
use silk_attestation::{checks, Platform, Verdict};

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../vectors");

fn read(path: &str) -> Vec<u8> {
    let full = format!("{VECTORS}/{path}");
    std::fs::read(&full).unwrap_or_else(|e| panic!("reading {full}: {e}"))
}

/// Whether `raw` passes parsing and `tdx.quote_signature`.
fn accepted(raw: &[u8], c: &TdxCollateral) -> bool {
    let mut verdict = Verdict::new(Platform::Tdx);
    match tdx::verify(raw, c, c.latest_issue_date(), &mut verdict) {
        Err(_) => false,
        Ok(_) => verdict
            .check(&checks::tdx::QUOTE_SIGNATURE)
            .is_some_and(|check| check.passed()),
    }
}

#[test]
fn every_single_byte_change_of_the_tdx_quote_is_rejected() {
    let raw = read("tdx/tdx_quote");
    let c = TdxCollateral::from_json(&read("tdx/tdx_quote_collateral.json")).expect("collateral");
    assert!(accepted(&raw, &c), "the unmodified quote must verify");
    let original = Quote::from_bytes(&raw).expect("parses");

    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let positions: Vec<usize> = (0..raw.len()).collect();
    let accepted_positions: Vec<usize> = std::thread::scope(|s| {
        let workers: Vec<_> = positions
            .chunks(raw.len().div_ceil(threads))
            .map(|chunk| {
                let (raw, c) = (&raw, &c);
                s.spawn(move || {
                    let mut mutated = raw.clone();
                    chunk
                        .iter()
                        .copied()
                        .filter(|&i| {
                            mutated[i] ^= 0x01;
                            let ok = accepted(&mutated, c);
                            mutated[i] ^= 0x01;
                            ok
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("worker"))
            .collect()
    });

    for &i in &accepted_positions {
        let mut mutated = raw.clone();
        mutated[i] ^= 0x01;
        let parsed = Quote::from_bytes(&mutated).expect("accepted, so it parses");
        assert_eq!(parsed, original, "byte {i} changed what the quote reports");
    }
    assert_eq!(
        accepted_positions,
        Vec::<usize>::new(),
        "accepted mutations"
    );
}
