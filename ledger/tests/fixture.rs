//! The promises the TypeScript contract tests execute in the TVM sandbox
//! (`ledger/ton/fixtures/promises-rust.json`) are built and signed here, by this crate: the
//! file must be exactly what this code makes now. `SILK_WRITE_FIXTURES=1` rewrites it.

use std::path::PathBuf;

use ed25519_dalek::SigningKey;
use silk_ledger::Promise;

fn fixture() -> serde_json::Value {
    // A marked development key: it signs test promises only.
    let payer = SigningKey::from_bytes(&[0x5a; 32]);
    let mut channel_id = [0u8; 32];
    channel_id[31] = 0x2a;
    let list: Vec<_> = [(1u64, 1u128), (2, 1_000_000_000), (7, 9_999_999_999)]
        .iter()
        .map(|&(seqno, amount)| {
            let signed = Promise {
                channel_id,
                seqno,
                amount,
            }
            .sign(&payer)
            .expect("signs");
            serde_json::json!({
                "channel_id": hex::encode(channel_id),
                "seqno": seqno,
                "amount": amount.to_string(),
                "payer_pubkey": hex::encode(payer.verifying_key().to_bytes()),
                "signature": hex::encode(signed.signature),
                "boc": hex::encode(signed.to_boc().expect("boc")),
            })
        })
        .collect();
    serde_json::Value::Array(list)
}

#[test]
fn the_sandbox_fixture_is_what_this_code_signs() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("ton/fixtures/promises-rust.json");
    let now = serde_json::to_string_pretty(&fixture()).unwrap() + "\n";
    if std::env::var_os("SILK_WRITE_FIXTURES").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &now).unwrap();
    }
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (SILK_WRITE_FIXTURES=1 writes it)", path.display()));
    assert_eq!(committed, now, "the Rust promise layout or signing changed");
}
