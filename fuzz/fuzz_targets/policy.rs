//! Any text into the policy parser: no panic; a policy that loads serialises back to TOML
//! that loads again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use silk_attestation::Policy;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(policy) = Policy::from_toml(text) {
        let again = toml::to_string(&policy).expect("a loaded policy serialises");
        Policy::from_toml(&again).expect("a serialised policy loads again");
    }
});
