use super::*;
use crate::claims::Claims;
use silk_attestation::checks::{ack, offer, receipt};

fn claims(key: &SigningKeyPair) -> Claims {
    Claims {
        hpke_public_key: [1; 32],
        tls_spki_sha256: [2; 32],
        image_digest: [3; 32],
        model: "sha256:ab".into(),
        gpu_nonce: Vec::new(),
        challenge: Vec::new(),
        created_at: 1_764_000_000,
        software_version: "t".into(),
        receipt_public_key: key.public_key(),
        payout_address: "EQowner".into(),
        evidence_provider: "simulated".into(),
        gpu_policy_sha256: Vec::new(),
    }
}

fn offer(worker: [u8; 32]) -> Offer {
    Offer {
        worker_id: worker,
        model: "smol".into(),
        price_prompt: 1_000,
        price_completion: 3_000,
        payout_address: "EQowner".into(),
        expires_at: 2_000,
    }
}

fn receipt(worker: [u8; 32]) -> Receipt {
    Receipt {
        worker_id: worker,
        request_digest: [7; 32],
        model: "smol".into(),
        prompt_tokens: 12,
        completion_tokens: 30,
        offer_digest: [8; 32],
        started_at_ms: 10,
        ended_at_ms: 20,
        counter: 1,
    }
}

#[test]
fn offer_verifies_through_the_claims_receipt_key() {
    let key = SigningKeyPair::generate();
    let c = claims(&key);
    let id = c.digest().unwrap();
    let signed = offer(id).sign(&key).unwrap();
    assert_eq!(signed.verify(&c, &id, 1_000).unwrap(), offer(id));
    // Each refusal names its check.
    let other = SigningKeyPair::generate();
    let forged = offer(id).sign(&other).unwrap();
    assert_eq!(
        forged.verify(&c, &id, 1_000).unwrap_err().check(),
        offer::SIGNATURE.name
    );
    let wrong_worker = offer([0; 32]).sign(&key).unwrap();
    assert_eq!(
        wrong_worker.verify(&c, &id, 1_000).unwrap_err().check(),
        offer::WORKER.name
    );
    let mut o = offer(id);
    o.payout_address = "EQthief".into();
    assert_eq!(
        o.sign(&key)
            .unwrap()
            .verify(&c, &id, 1_000)
            .unwrap_err()
            .check(),
        offer::PAYOUT.name
    );
    assert_eq!(
        signed.verify(&c, &id, 2_000).unwrap_err().check(),
        offer::EXPIRED.name
    );
}

#[test]
fn every_offer_byte_flip_is_refused() {
    let key = SigningKeyPair::generate();
    let c = claims(&key);
    let id = c.digest().unwrap();
    let signed = offer(id).sign(&key).unwrap();
    for i in 0..signed.body.0.len() + signed.signature.0.len() {
        let mut m = signed.clone();
        if i < m.body.0.len() {
            m.body.0[i] ^= 1;
        } else {
            m.signature.0[i - signed.body.0.len()] ^= 1;
        }
        assert!(m.verify(&c, &id, 1_000).is_err(), "byte {i}");
    }
}

#[test]
fn receipt_round_trips_and_every_byte_matters() {
    let key = SigningKeyPair::generate();
    let r = receipt([5; 32]);
    let signed = r.sign(&key).unwrap();
    assert_eq!(Receipt::verify(&signed, &key.public_key()).unwrap(), r);
    for i in 0..signed.len() {
        let mut m = signed.clone();
        m[i] ^= 0x10;
        assert!(Receipt::verify(&m, &key.public_key()).is_err(), "byte {i}");
    }
    for n in 0..signed.len() {
        assert!(Receipt::verify(&signed[..n], &key.public_key()).is_err());
    }
    let err = Receipt::verify(&signed, &SigningKeyPair::generate().public_key()).unwrap_err();
    assert_eq!(err.check(), receipt::SIGNATURE.name);
}

#[test]
fn receipt_layout_is_fixed() {
    let body = receipt([5; 32]).encode().unwrap();
    assert_eq!(&body[..8], RECEIPT_MAGIC);
    assert_eq!(&body[8..40], &[5; 32]);
    assert_eq!(&body[40..72], &[7; 32]);
    assert_eq!(&body[72..74], &[0, 4]);
    assert_eq!(&body[74..78], b"smol");
    assert_eq!(&body[78..82], &12u32.to_be_bytes());
    assert_eq!(&body[82..86], &30u32.to_be_bytes());
    assert_eq!(&body[86..118], &[8; 32]);
    assert_eq!(&body[118..126], &10u64.to_be_bytes());
    assert_eq!(&body[126..134], &20u64.to_be_bytes());
    assert_eq!(&body[134..], &1u64.to_be_bytes());
}

#[test]
fn a_receipt_ending_before_it_started_is_refused() {
    let key = SigningKeyPair::generate();
    let mut r = receipt([5; 32]);
    r.ended_at_ms = 5;
    let err = Receipt::verify(&r.sign(&key).unwrap(), &key.public_key()).unwrap_err();
    assert_eq!(err.check(), receipt::TIME.name);
}

#[test]
fn expected_names_what_differs() {
    let r = receipt([5; 32]);
    let ok = Expected {
        worker_id: [5; 32],
        request_digest: [7; 32],
        offer_digest: Some([8; 32]),
        usage: Some((12, 30)),
        content_events: 30,
    };
    ok.check(&r).unwrap();
    type Change = Box<dyn Fn(&mut Expected)>;
    let cases: [(Change, &str); 6] = [
        (Box::new(|e| e.worker_id = [0; 32]), receipt::WORKER.name),
        (
            Box::new(|e| e.request_digest = [0; 32]),
            receipt::REQUEST_DIGEST.name,
        ),
        (
            Box::new(|e| e.offer_digest = Some([0; 32])),
            receipt::OFFER.name,
        ),
        (
            Box::new(|e| e.usage = Some((11, 30))),
            receipt::PROMPT_TOKENS.name,
        ),
        (
            Box::new(|e| e.usage = Some((12, 29))),
            receipt::COMPLETION_TOKENS.name,
        ),
        (
            Box::new(|e| {
                e.usage = None;
                e.content_events = 31
            }),
            receipt::COMPLETION_TOKENS.name,
        ),
    ];
    for (change, check) in cases {
        let mut e = ok.clone();
        change(&mut e);
        assert_eq!(e.check(&r).unwrap_err().check(), check);
    }
}

#[test]
fn ack_binds_the_receipt_and_the_client_key() {
    let worker = SigningKeyPair::generate();
    let client = SigningKeyPair::generate();
    let signed = receipt([5; 32]).sign(&worker).unwrap();
    let ack = Ack::sign(&signed, &client, 99);
    let got = Ack::verify(&ack, &signed).unwrap();
    assert_eq!(got.client_key, client.public_key());
    assert_eq!(got.acked_at, 99);
    let other = receipt([6; 32]).sign(&worker).unwrap();
    assert_eq!(
        Ack::verify(&ack, &other).unwrap_err().check(),
        ack::RECEIPT.name
    );
    let mut bad = ack.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(
        Ack::verify(&bad, &signed).unwrap_err().check(),
        ack::SIGNATURE.name
    );
}

#[test]
fn client_key_survives_its_seed() {
    let k = SigningKeyPair::generate();
    let again = SigningKeyPair::from_seed(&k.seed());
    assert_eq!(k.public_key(), again.public_key());
}

#[test]
fn cost_rounds_up() {
    let o = offer([0; 32]);
    assert_eq!(o.cost(0, 0), 0);
    assert_eq!(o.cost(1, 0), 1);
    assert_eq!(o.cost(1_000, 1_000), 4);
    assert_eq!(
        o.cost(u32::MAX, u32::MAX),
        (u128::from(u32::MAX) * 4_000).div_ceil(1_000_000)
    );
}
