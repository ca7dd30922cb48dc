//! Any bytes into the SEV-SNP report parser and the format detector: no panic, and a
//! parsed report always came from exactly REPORT_SIZE bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use silk_attestation::snp::report::{AttestationReport, REPORT_SIZE};

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = AttestationReport::from_bytes(data) {
        assert_eq!(data.len(), REPORT_SIZE);
        let _ = report.product_line();
    }
    let _ = silk_attestation::Evidence::detect(data);
});
