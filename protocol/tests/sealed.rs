//! Sealed requests and streams under a relay that tampers with every byte it carries.

use silk_protocol::seal::{os_rng, CHUNK_HEADER, REQUEST_HEADER};
use silk_protocol::{
    open_request, seal_request, EnclaveKeys, SealError, StreamError, StreamOpener, StreamSealer,
};

const DIGEST: [u8; 32] = [7; 32];
const BODY: &[u8] =
    br#"{"model":"default","messages":[{"role":"user","content":"secret prompt"}]}"#;

fn pair() -> (EnclaveKeys, Vec<u8>, StreamOpener) {
    let keys = EnclaveKeys::generate(&mut os_rng());
    let (wire, opener) = seal_request(&keys.public_key(), &DIGEST, BODY, &mut os_rng()).unwrap();
    (keys, wire, opener)
}

fn stream(sealer: &mut StreamSealer, parts: &[&str]) -> Vec<Vec<u8>> {
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| sealer.seal(p.as_bytes(), i + 1 == parts.len()).unwrap())
        .collect()
}

fn open_all(opener: &mut StreamOpener, frames: &[Vec<u8>]) -> Result<Vec<String>, StreamError> {
    let mut out = Vec::new();
    for f in frames {
        for chunk in opener.push(f)? {
            out.push(String::from_utf8(chunk.to_vec()).unwrap());
        }
    }
    opener.finish()?;
    Ok(out)
}

#[test]
fn round_trip_request_and_stream() {
    let (keys, wire, mut opener) = pair();
    assert!(
        !wire.windows(13).any(|w| w == b"secret prompt"),
        "plaintext on the wire"
    );
    let (plain, mut sealer) = open_request(&keys, &DIGEST, &wire).unwrap();
    assert_eq!(plain.as_slice(), BODY);
    let frames = stream(&mut sealer, &["Hel", "lo", " world"]);
    assert_eq!(
        open_all(&mut opener, &frames).unwrap(),
        ["Hel", "lo", " world"]
    );
    assert_eq!(sealer.seal(b"more", false), Err(StreamError::Finished));
}

#[test]
fn stream_bytes_may_arrive_in_any_pieces() {
    let (keys, wire, mut opener) = pair();
    let (_, mut sealer) = open_request(&keys, &DIGEST, &wire).unwrap();
    let all: Vec<u8> = stream(&mut sealer, &["a", "bc", "def"]).concat();
    let mut got = String::new();
    for b in all.chunks(1) {
        for c in opener.push(b).unwrap() {
            got.push_str(std::str::from_utf8(&c).unwrap());
        }
    }
    opener.finish().unwrap();
    assert_eq!(got, "abcdef");
}

#[test]
fn every_request_byte_flip_is_refused() {
    let (keys, wire, _) = pair();
    for i in 0..wire.len() {
        let mut m = wire.clone();
        m[i] ^= 0x01;
        let e = open_request(&keys, &DIGEST, &m)
            .err()
            .unwrap_or_else(|| panic!("byte {i} flip accepted"));
        let expected = match i {
            0 => SealError::UnknownVersion(VERSION_FLIPPED),
            1..=32 => SealError::WrongClaims,
            _ => SealError::Decrypt,
        };
        assert_eq!(e, expected, "byte {i}");
    }
    assert_eq!(
        open_request(&keys, &DIGEST, &wire[..REQUEST_HEADER]).err(),
        Some(SealError::TooShort(REQUEST_HEADER))
    );
}

const VERSION_FLIPPED: u8 = silk_protocol::seal::VERSION ^ 0x01;

#[test]
fn request_for_other_claims_or_another_enclave_is_refused() {
    let (keys, wire, _) = pair();
    assert_eq!(
        open_request(&keys, &[8; 32], &wire).err(),
        Some(SealError::WrongClaims)
    );
    let other = EnclaveKeys::generate(&mut os_rng());
    assert_eq!(
        open_request(&other, &DIGEST, &wire).err(),
        Some(SealError::Decrypt)
    );
}

fn sealed_frames() -> (StreamOpener, Vec<Vec<u8>>) {
    let (keys, wire, opener) = pair();
    let (_, mut sealer) = open_request(&keys, &DIGEST, &wire).unwrap();
    (opener, stream(&mut sealer, &["one ", "two ", "three"]))
}

#[test]
fn every_stream_byte_flip_is_detected() {
    let (_, frames) = sealed_frames();
    let all = frames.concat();
    for i in 0..all.len() {
        let (mut opener, frames) = sealed_frames();
        let mut m = frames.concat();
        m[i] ^= 0x01;
        let r = opener.push(&m).and_then(|_| opener.finish());
        assert!(r.is_err(), "flip of stream byte {i} went unnoticed");
    }
}

#[test]
fn reorder_replay_drop_truncate_and_trailing_data_are_detected() {
    let (mut o, f) = sealed_frames();
    assert_eq!(
        open_all(&mut o, &[f[1].clone(), f[0].clone(), f[2].clone()]),
        Err(StreamError::BadChunk { seq: 0 })
    );
    let (mut o, f) = sealed_frames();
    assert_eq!(
        open_all(&mut o, &[f[0].clone(), f[0].clone(), f[2].clone()]),
        Err(StreamError::BadChunk { seq: 1 })
    );
    let (mut o, f) = sealed_frames();
    assert_eq!(
        open_all(&mut o, &[f[0].clone(), f[2].clone()]),
        Err(StreamError::BadChunk { seq: 1 })
    );
    let (mut o, f) = sealed_frames();
    assert_eq!(
        open_all(&mut o, &f[..2]),
        Err(StreamError::Truncated { chunks: 2 })
    );
    let (mut o, f) = sealed_frames();
    let mut cut = f.concat();
    cut.truncate(cut.len() - 3);
    assert!(matches!(
        o.push(&cut).and_then(|_| o.finish()),
        Err(StreamError::Truncated { .. })
    ));
    let (mut o, f) = sealed_frames();
    let mut extra = f.clone();
    extra.push(vec![0; CHUNK_HEADER]);
    assert_eq!(open_all(&mut o, &extra), Err(StreamError::AfterLast));
}

#[test]
fn chunks_from_another_stream_do_not_splice() {
    let (mut o, f) = sealed_frames();
    let (_, g) = sealed_frames();
    assert_eq!(
        open_all(&mut o, &[f[0].clone(), g[1].clone(), f[2].clone()]),
        Err(StreamError::BadChunk { seq: 1 })
    );
}

#[test]
fn clearing_the_last_flag_is_detected() {
    let (mut o, f) = sealed_frames();
    let mut last = f[2].clone();
    last[0] = 0;
    assert_eq!(
        open_all(&mut o, &[f[0].clone(), f[1].clone(), last]),
        Err(StreamError::BadChunk { seq: 2 })
    );
}

fn with_receipt() -> (StreamOpener, Vec<Vec<u8>>) {
    let (keys, wire, opener) = pair();
    let (_, mut sealer) = open_request(&keys, &DIGEST, &wire).unwrap();
    let mut frames = vec![sealer.seal(b"answer", false).unwrap()];
    frames.push(sealer.seal_receipt(b"signed receipt bytes").unwrap());
    (opener, frames)
}

#[test]
fn the_receipt_ends_the_stream_sealed_and_in_clear() {
    let (mut opener, frames) = with_receipt();
    let got = open_all(&mut opener, &frames).unwrap();
    assert_eq!(got, vec!["answer".to_owned()]);
    opener.finish().unwrap();
    assert_eq!(opener.receipt(), Some(&b"signed receipt bytes"[..]));
    assert_eq!(opener.clear_receipt(), Some(&b"signed receipt bytes"[..]));
    // The router's scanner finds the clear copy however the bytes are cut.
    let all: Vec<u8> = frames.concat();
    for cut in [1, 3, 5, 7, 64] {
        let mut scan = silk_protocol::network::FrameScanner::default();
        for piece in all.chunks(cut) {
            scan.push(piece);
        }
        assert_eq!(
            scan.clear_receipt(),
            Some(&b"signed receipt bytes"[..]),
            "cut {cut}"
        );
    }
}

#[test]
fn receipt_frames_cannot_be_forged_or_doubled() {
    // The sealed receipt's flags are authenticated: dropping RECEIPT makes it fail.
    let (mut opener, mut frames) = with_receipt();
    frames[1][0] &= !0x02;
    assert!(open_all(&mut opener, &frames).is_err());
    // A second clear copy, or any other frame after the last, is refused.
    let (mut opener, mut frames) = with_receipt();
    let clear_len = 5 + b"signed receipt bytes".len();
    let clear = frames[1][frames[1].len() - clear_len..].to_vec();
    frames.push(clear);
    assert_eq!(open_all(&mut opener, &frames), Err(StreamError::AfterLast));
    // A receipt chunk that is not marked last is refused by its flags.
    let (keys, wire, mut opener) = pair();
    let (_, mut sealer) = open_request(&keys, &DIGEST, &wire).unwrap();
    let mut frame = sealer.seal(b"x", false).unwrap();
    frame[0] = 0x02;
    assert!(matches!(
        opener.push(&frame),
        Err(StreamError::BadFlags { flags: 0x02, .. })
    ));
}
