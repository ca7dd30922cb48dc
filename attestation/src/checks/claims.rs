//! `claims.*`: silk's claims (the enclave's keys, image and model) bound to the hardware
//! evidence and to the connection.

use super::{family, CheckId, Family};

family! {
    prefix: "claims", title: "silk's claims", paths: ["protocol/src/", "client/src/"];

    REPORT_DATA = "claims.report_data", Binding, "protocol/src/bundle.rs", [],
        "The evidence's REPORT_DATA is SHA-512 of the claims, so the claims are the attested \
         ones.";
    CHALLENGE = "claims.challenge", Freshness, "protocol/src/bundle.rs", [],
        "The claims answer this client's challenge, so the evidence is not a replay.";
    FRESH = "claims.fresh", Freshness, "protocol/src/bundle.rs", [],
        "The claims were made within the client's maximum age, and not in the future beyond \
         five minutes of clock skew.";
    GPU_NONCE = "claims.gpu_nonce", Binding, "protocol/src/gpu.rs", [],
        "The claims' GPU nonce is derived from the claimed HPKE and TLS keys, so each GPU \
         report is bound to this enclave's boot.";
    TLS_KEY = "claims.tls_key", Binding, "protocol/src/ratls.rs", [],
        "The TLS key the server presented is the one the attested claims carry.";
    SAME_ENCLAVE = "claims.same_enclave", Binding, "client/src/session.rs", [],
        "Fresh evidence (answering the client's challenge) comes from the same enclave as \
         the base evidence, the TLS peer or the listed worker.";
}
