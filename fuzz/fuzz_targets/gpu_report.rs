//! The NVIDIA GPU report parser (SPDM GET_MEASUREMENTS + opaque data) and RIM XML parser
//! must never panic, and a parsed report's accessors must stay in bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use silk_attestation::gpu::{c14n, Rim, SpdmReport};

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = SpdmReport::parse(data) {
        assert!(r.signed_len + 96 == data.len());
        let _ = (r.driver_version(), r.vbios_version(), r.vbios_rim_id(), r.nvdec0_status());
    }
    if let Ok(root) = c14n::parse(data) {
        let _ = c14n::canonicalize_document(&root, Some(&[0]));
    }
    let _ = Rim::parse(data);
});
