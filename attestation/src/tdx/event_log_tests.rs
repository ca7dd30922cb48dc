use super::*;
use crate::tdx::replay::extend_all;
use sha2::{Digest, Sha384};

fn d(text: &[u8]) -> Mr {
    Sha384::digest(text).into()
}

/// A log with two RTMR1 events, an EV_NO_ACTION and one RTMR2 event.
fn sample() -> Vec<u8> {
    let mut w = LogWriter::new();
    w.event(2, 0x8000_0003, &d(b"kernel"), b"");
    w.event(2, 0x8000_0007, &d(b"action"), b"action");
    w.event(3, EV_NO_ACTION, &d(b"ignored"), b"info");
    w.event(3, 0x6, &d(b"cmdline"), b"LOADED_IMAGE::LoadOptions");
    w.finish()
}

#[test]
fn parses_and_replays_each_register_from_zero() {
    let log = EventLog::parse(&sample()).unwrap();
    assert_eq!(log.events.len(), 5);
    assert_eq!(log.events[4].number, 4);
    assert_eq!(log.events[3].rtmr(), None, "EV_NO_ACTION extends nothing");
    let r = log.replay();
    assert_eq!(r[0], [0; 48]);
    assert_eq!(r[1], extend_all(&[d(b"kernel"), d(b"action")]));
    assert_eq!(r[2], extend_all(&[d(b"cmdline")]));
    assert_eq!(r[3], [0; 48]);
    assert_eq!(log.events[2].type_name(), "EV_EFI_ACTION");
}

#[test]
fn padding_after_the_log_is_not_an_event() {
    let raw = sample();
    for fill in [0xffu8, 0] {
        let mut padded = raw.clone();
        padded.resize(raw.len() + 4096, fill);
        let log = EventLog::parse(&padded).unwrap();
        assert_eq!(log.length, raw.len());
        assert_eq!(log.events.len(), 5);
    }
}

#[test]
fn every_truncation_is_a_clear_error_never_a_panic() {
    let raw = sample();
    for cut in 1..raw.len() {
        match EventLog::parse(&raw[..cut]) {
            Err(EventLogError::Truncated { field, .. }) => assert!(!field.is_empty()),
            // A cut exactly between events leaves a shorter, valid log.
            Ok(log) => assert!(log.events.len() < 5, "cut at {cut}"),
            Err(e) => panic!("cut at {cut}: unexpected {e}"),
        }
    }
    let e = EventLog::parse(&raw[..raw.len() - 3]).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("truncated") && text.contains("event 4"),
        "{text}"
    );
}

#[test]
fn garbage_and_hostile_headers_are_refused() {
    assert_eq!(EventLog::parse(&[]), Err(EventLogError::Empty));
    assert!(matches!(
        EventLog::parse(b"hello, this is not an event log at all, not even close"),
        Err(EventLogError::Truncated { .. } | EventLogError::NoSpecId(_))
    ));
    assert!(matches!(
        EventLog::parse(&vec![0u8; MAX_LOG_BYTES + 1]),
        Err(EventLogError::TooLarge { .. })
    ));
    // A header whose signature is wrong.
    let mut raw = sample();
    raw[32] ^= 1;
    assert!(matches!(
        EventLog::parse(&raw),
        Err(EventLogError::NoSpecId(_))
    ));
    // An event size far past the end.
    let mut raw = LogWriter::new();
    raw.event(2, 4, &d(b"x"), b"abc");
    let mut raw = raw.finish();
    let n = raw.len();
    raw[n - 7..n - 3].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        EventLog::parse(&raw),
        Err(EventLogError::Truncated {
            field: "event data",
            ..
        })
    ));
}

#[test]
fn events_must_carry_sha384_and_name_a_register() {
    let header = LogWriter::new().finish();
    let event = |index: u32, count: u32, alg: u16| {
        let mut raw = header.clone();
        raw.extend_from_slice(&index.to_le_bytes());
        raw.extend_from_slice(&4u32.to_le_bytes());
        raw.extend_from_slice(&count.to_le_bytes());
        raw.extend_from_slice(&alg.to_le_bytes());
        raw.extend_from_slice(&[1; 48]);
        raw.extend_from_slice(&0u32.to_le_bytes());
        EventLog::parse(&raw)
    };
    assert!(event(4, 1, TPM_ALG_SHA384).is_ok());
    for (index, count, alg, want) in [
        (5, 1, TPM_ALG_SHA384, "names no TDX register"),
        (1, 0, TPM_ALG_SHA384, "0 digests"),
        (1, 1_000_000, TPM_ALG_SHA384, "1000000 digests"),
        (1, 1, 0x000b, "not in the Spec ID event"),
    ] {
        let e = event(index, count, alg).unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
    }
}

#[test]
fn a_log_of_many_events_is_capped() {
    let mut w = LogWriter::new();
    for _ in 0..MAX_EVENTS {
        w.event(4, 0xd, &[0; 48], b"");
    }
    assert_eq!(
        EventLog::parse(&w.finish()),
        Err(EventLogError::TooManyEvents)
    );
}

#[test]
fn a_header_without_sha384_is_refused() {
    let mut raw = LogWriter::new().finish();
    // The one algorithm id (after 32 bytes of event header, 16 of signature, 8, 4).
    raw[32 + 28..32 + 30].copy_from_slice(&0x000bu16.to_le_bytes());
    raw[32 + 30..32 + 32].copy_from_slice(&32u16.to_le_bytes());
    assert_eq!(EventLog::parse(&raw), Err(EventLogError::NoSha384));
}

#[test]
fn every_single_byte_change_parses_or_is_refused_without_panicking() {
    let raw = sample();
    let mut p = crate::tdx::replay::Predicted::default();
    p.rtmr[1] = Some(vec![]);
    for at in 0..raw.len() {
        for value in [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff] {
            let mut bad = raw.clone();
            bad[at] = value;
            if let Ok(log) = EventLog::parse(&bad) {
                let _ = log.replay();
                let _ = crate::tdx::replay::image_check(&log, &p);
            }
        }
    }
}
