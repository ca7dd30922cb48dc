//! A channel's whole life, built by this crate's message builders and executed by the
//! TypeScript sandbox tests (`ledger/ton/tests/flow.spec.ts` runs
//! `ledger/ton/fixtures/channel-flow-rust/`): deploy and deposit, a forged and a foreign
//! promise refused, a payee close; and on a second channel a payer closing with an old
//! promise after the expiry, the payee disputing with the newer one, a third party
//! finishing. The directory must be exactly what this code writes now;
//! `SILK_WRITE_FIXTURES=1` rewrites it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ed25519_dalek::SigningKey;
use silk_ledger::channel::{self, ChannelParams, DEPOSIT_GAS};
use silk_ledger::request::{Message, Request};
use silk_ledger::{Promise, SignedPromise};
use tonlib_core::TonAddress;

const TON: u128 = 1_000_000_000;
const OPEN_AT: u32 = 1_790_000_000;
const EXPIRY: u32 = 1_800_000_000;
const WINDOW: u32 = 3600;
/// What the payee and payer attach to the ops that run the contract's code.
const OP_VALUE: u128 = 20_000_000;

fn addr(b: u8) -> TonAddress {
    TonAddress::new(0, [b; 32].into())
}

struct Flow {
    files: BTreeMap<String, String>,
    steps: Vec<serde_json::Value>,
}

impl Flow {
    fn step(&mut self, name: &str, from: &TonAddress, now: u32, msg: Message, exit: u32) {
        let file = format!(
            "{:02}-{}.json",
            self.steps.len() + 1,
            name.replace(' ', "-")
        );
        let req = Request {
            valid_until: u64::from(now) + 600,
            messages: vec![msg],
        };
        self.files.insert(
            file.clone(),
            serde_json::to_string_pretty(&req).unwrap() + "\n",
        );
        self.steps.push(serde_json::json!({
            "name": name, "from": from.to_hex(), "request": file, "now": now, "exit": exit,
        }));
    }
}

fn open(p: &ChannelParams, deposit: u128) -> Message {
    Message::new(
        &p.address().unwrap(),
        deposit + DEPOSIT_GAS,
        channel::deposit_body(deposit).unwrap(),
        Some(p.state_init().unwrap()),
    )
    .unwrap()
}

fn to(p: &ChannelParams, body: tonlib_core::cell::Cell) -> Message {
    Message::new(&p.address().unwrap(), OP_VALUE, body, None).unwrap()
}

fn flow() -> BTreeMap<String, String> {
    // A marked development key: it signs test promises only.
    let key = SigningKey::from_bytes(&[0x5b; 32]);
    let payer_key = key.verifying_key().to_bytes();
    let (payer, payee_a, payee_b, anyone) = (addr(0x11), addr(0x22), addr(0x33), addr(0x44));
    let params = |payee: &TonAddress, nonce: &[u8]| ChannelParams {
        channel_id: ChannelParams::derive_id(&payer_key, payee, nonce),
        payer: payer.clone(),
        payer_key,
        payee: payee.clone(),
        dispute_window: WINDOW,
        expiry: EXPIRY,
    };
    let (a, b) = (params(&payee_a, b"a"), params(&payee_b, b"b"));
    let promise = |p: &ChannelParams, seqno, amount| -> SignedPromise {
        Promise {
            channel_id: p.channel_id,
            seqno,
            amount,
        }
        .sign(&key)
        .unwrap()
    };
    let mut f = Flow {
        files: BTreeMap::new(),
        steps: Vec::new(),
    };
    let t = OPEN_AT;
    f.step("open a", &payer, t, open(&a, 10 * TON), 0);
    f.step("open b", &payer, t, open(&b, 10 * TON), 0);
    let a2 = promise(&a, 2, 3_250_000_007);
    let mut forged = a2;
    forged.promise.amount += 1;
    f.step(
        "forged close a",
        &payee_a,
        t + 1,
        to(&a, channel::payee_close_body(&forged).unwrap()),
        101,
    );
    let foreign = promise(&b, 5, 1);
    f.step(
        "foreign close a",
        &payee_a,
        t + 1,
        to(&a, channel::payee_close_body(&foreign).unwrap()),
        104,
    );
    f.step(
        "payer close a early",
        &payer,
        t + 1,
        to(&a, channel::payer_start_close_body(None).unwrap()),
        107,
    );
    f.step(
        "close a",
        &payee_a,
        t + 2,
        to(&a, channel::payee_close_body(&a2).unwrap()),
        0,
    );
    let (b1, b3) = (promise(&b, 1, TON), promise(&b, 3, 4 * TON + 1));
    f.step(
        "payer close b with old",
        &payer,
        EXPIRY + 10,
        to(&b, channel::payer_start_close_body(Some(&b1)).unwrap()),
        0,
    );
    f.step(
        "dispute b",
        &payee_b,
        EXPIRY + 20,
        to(&b, channel::dispute_body(&b3).unwrap()),
        0,
    );
    f.step(
        "early finish b",
        &anyone,
        EXPIRY + 30,
        to(&b, channel::finish_body().unwrap()),
        110,
    );
    f.step(
        "finish b",
        &anyone,
        EXPIRY + 10 + WINDOW,
        to(&b, channel::finish_body().unwrap()),
        0,
    );
    let expect = |p: &ChannelParams, paid: u128| {
        serde_json::json!({
            "address": p.address().unwrap().to_hex(), "payer": p.payer.to_hex(),
            "payee": p.payee.to_hex(), "deposit": (10 * TON).to_string(), "paid": paid.to_string(),
        })
    };
    let steps = serde_json::json!({
        "steps": f.steps,
        "expect": { "channels": [expect(&a, a2.promise.amount), expect(&b, b3.promise.amount)] },
    });
    f.files.insert(
        "steps.json".into(),
        serde_json::to_string_pretty(&steps).unwrap() + "\n",
    );
    f.files
}

#[test]
fn the_sandbox_flow_is_what_this_code_builds() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("ton/fixtures/channel-flow-rust");
    let files = flow();
    if std::env::var_os("SILK_WRITE_FIXTURES").is_some() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in &files {
            std::fs::write(dir.join(name), text).unwrap();
        }
    }
    let mut committed = BTreeMap::new();
    for e in std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (SILK_WRITE_FIXTURES=1 writes it)", dir.display()))
    {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        committed.insert(name, std::fs::read_to_string(&path).unwrap());
    }
    assert_eq!(
        committed.keys().collect::<Vec<_>>(),
        files.keys().collect::<Vec<_>>()
    );
    for (name, text) in &files {
        assert_eq!(
            &committed[name], text,
            "{name}: the Rust message layout changed"
        );
    }
}
