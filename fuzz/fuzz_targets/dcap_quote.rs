//! Any bytes into the DCAP quote parser (TDX and SGX): no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use silk_attestation::tdx::Quote;

fuzz_target!(|data: &[u8]| {
    let _ = Quote::from_bytes(data);
});
