//! Everything a relay can hand an enclave or a client in the sealed session: claims,
//! evidence bundles, sealed requests, sealed response streams and RA-TLS certificates.
//! None may panic; what decodes must re-encode to the same bytes (claims).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use silk_protocol::{open_request, ratls, seal_request, Claims, EnclaveKeys, EvidenceBundle};

fn keys() -> &'static EnclaveKeys {
    static KEYS: OnceLock<EnclaveKeys> = OnceLock::new();
    KEYS.get_or_init(|| EnclaveKeys::generate(&mut silk_protocol::seal::os_rng()))
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    match which % 5 {
        0 => {
            if let Ok(c) = Claims::decode(rest) {
                assert_eq!(c.encode().expect("decoded claims encode"), rest);
            }
        }
        1 => {
            let _ = EvidenceBundle::from_json(rest);
        }
        2 => {
            let _ = open_request(keys(), &[0; 32], rest);
        }
        3 => {
            // A stream for a real request, fed the fuzzer's bytes in two pieces.
            let (_, mut opener) = seal_request(
                &keys().public_key(),
                &[0; 32],
                b"{}",
                &mut silk_protocol::seal::os_rng(),
            )
            .expect("seal");
            let cut = rest.len() / 2;
            if opener.push(&rest[..cut]).is_ok() && opener.push(&rest[cut..]).is_ok() {
                let _ = opener.finish();
            }
        }
        _ => {
            let _ = ratls::read_certificate(rest);
        }
    }
});
