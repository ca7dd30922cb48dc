//! The enclave's side of a sealed request, natively, for the Node tests of `SealedRequest`
//! (`verifier/wasm/test/verifier.test.mjs`): a request sealed in WebAssembly must open
//! here, and the answer sealed here must open there.
//!
//! Prints `{"hpkePublicKey": HEX, "claimsDigest": HEX}` and a newline, reads the sealed
//! request from stdin until it closes, opens it, and writes the answer's stream to stdout:
//! "you said: " and the request's text, cut every 3 bytes (so UTF-8 characters are split
//! between chunks), the last chunk marked last. Exits 1, saying why, when it cannot open.

use std::io::{Read, Write};

use silk_protocol::seal::os_rng;
use silk_protocol::{open_request, EnclaveKeys};

fn main() -> Result<(), String> {
    let keys = EnclaveKeys::generate(&mut os_rng());
    let digest = [0x5e_u8; 32];
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{{\"hpkePublicKey\": \"{}\", \"claimsDigest\": \"{}\"}}",
        hex::encode(keys.public_key()),
        hex::encode(digest)
    )
    .and_then(|()| out.flush())
    .map_err(|e| e.to_string())?;
    let mut wire = Vec::new();
    std::io::stdin()
        .read_to_end(&mut wire)
        .map_err(|e| e.to_string())?;
    let (plain, mut sealer) =
        open_request(&keys, &digest, &wire).map_err(|e| format!("open: {e}"))?;
    let answer = [b"you said: ".as_slice(), plain.as_slice()].concat();
    let chunks: Vec<&[u8]> = answer.chunks(3).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let frame = sealer
            .seal(chunk, i + 1 == chunks.len())
            .map_err(|e| e.to_string())?;
        out.write_all(&frame).map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())
}
