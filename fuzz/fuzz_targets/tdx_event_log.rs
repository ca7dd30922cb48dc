//! Any bytes into the TDX event log parser, replay and image comparison: no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use silk_attestation::tdx::event_log::EventLog;
use silk_attestation::tdx::replay::{self, Predicted, PredictedEvent};

fuzz_target!(|data: &[u8]| {
    if let Ok(log) = EventLog::parse(data) {
        let quoted = log.replay();
        let _ = replay::replay_check(&log, &quoted);
        let mut p = Predicted::default();
        p.rtmr[1] = Some(vec![PredictedEvent {
            component: "kernel".into(),
            digest: [0; 48],
        }]);
        let _ = replay::image_check(&log, &p);
    }
});
