use super::*;
use crate::tdx::event_log::LogWriter;

fn d(text: &[u8]) -> Mr {
    Sha384::digest(text).into()
}

fn predicted() -> Predicted {
    let ev = |c: &str, t: &[u8]| PredictedEvent {
        component: c.into(),
        digest: d(t),
    };
    Predicted {
        rtmr: [
            None,
            Some(vec![ev("kernel", b"k"), ev("separator", b"s")]),
            Some(vec![ev("command line", b"c"), ev("initrd", b"i")]),
            None,
        ],
    }
}

fn log(events: &[(u32, &[u8])]) -> EventLog {
    let mut w = LogWriter::new();
    // An RTMR0 event the image does not predict, which the diff leaves alone.
    w.event(1, 0x8000_000a, &d(b"firmware config"), b"");
    for (index, text) in events {
        w.event(*index, 6, &d(text), b"");
    }
    EventLog::parse(&w.finish()).unwrap()
}

#[test]
fn the_predicted_events_match_and_the_first_difference_is_named() {
    let good = log(&[(2, b"k"), (3, b"c"), (2, b"s"), (3, b"i")]);
    assert_eq!(first_difference(&good, &predicted()), None);
    assert!(image_check(&good, &predicted()).passed());

    let bad = log(&[(2, b"k"), (3, b"c"), (2, b"s"), (3, b"I")]);
    let drift = first_difference(&bad, &predicted()).unwrap();
    assert_eq!((drift.rtmr, drift.position), (2, 1));
    assert_eq!(drift.component, "initrd");
    assert_eq!(drift.logged.as_ref().map(|l| l.0), Some(5));
    assert_eq!(drift.expected, Some(d(b"i")));
    assert_eq!(drift.found, Some(d(b"I")));
    let c = image_check(&bad, &predicted());
    assert!(!c.passed());
    assert!(c.found.contains("RTMR2 event 1") && c.found.contains(&hex::encode(d(b"I"))));

    // The first in log order wins: the command line comes before the separator.
    let two = log(&[(2, b"k"), (3, b"C"), (2, b"S"), (3, b"i")]);
    assert_eq!(
        first_difference(&two, &predicted()).unwrap().component,
        "command line"
    );
}

#[test]
fn missing_and_extra_events_are_named() {
    let short = log(&[(2, b"k"), (3, b"c"), (2, b"s")]);
    let drift = first_difference(&short, &predicted()).unwrap();
    assert_eq!((drift.rtmr, drift.component.as_str()), (2, "initrd"));
    assert_eq!((&drift.logged, drift.found), (&None, None));
    assert!(drift.to_string().contains("missing from the log"));

    let long = log(&[(2, b"k"), (3, b"c"), (2, b"s"), (3, b"i"), (3, b"x")]);
    let drift = first_difference(&long, &predicted()).unwrap();
    assert_eq!(drift.expected, None);
    assert!(drift.component.contains("does not predict"));
}

#[test]
fn replay_must_equal_the_quoted_registers() {
    let l = log(&[(2, b"k"), (3, b"c")]);
    let quoted = l.replay();
    assert!(replay_check(&l, &quoted).passed());
    let mut other = quoted;
    other[2][0] ^= 1;
    let c = replay_check(&l, &other);
    assert!(!c.passed());
    assert!(c.found.starts_with("RTMR2: replayed "), "{}", c.found);
    assert!(c.found.contains(&hex::encode(other[2])));
    assert_eq!(c.name, tdx::EVENT_LOG.name);

    let mut v = Verdict::new(crate::verdict::Platform::Tdx);
    assert!(!verify(b"garbage", &quoted, Some(&predicted()), &mut v));
    let c = v.check(&tdx::EVENT_LOG).unwrap();
    assert!(!c.passed());
    assert!(v.check(&tdx::IMAGE_EVENTS).is_none());
}
