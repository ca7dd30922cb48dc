//! `offer.*`, `receipt.*` and `ack.*`: what an answer cost and who signed it. Not
//! attestation: a worker's price offer and usage receipt are signed by the receipt key its
//! attested claims carry, and a client's acknowledgement by the client's own key; payment
//! channels settle only receipts that pass these checks (see `docs/network.md` and
//! `docs/payments.md`). Each family lives in its own module, as every family does.

/// `offer.*`: a worker's signed price offer.
pub mod offer {
    use super::super::{family, CheckId, Family};

    family! {
        prefix: "offer", title: "price offers", paths: ["protocol/src/receipt.rs", "router/src/", "client/src/"];

        FORMAT = "offer.format", Usage, "protocol/src/receipt.rs", [],
            "The offer is well-formed canonical bytes within the size limit.";
        SIGNATURE = "offer.signature", Usage, "protocol/src/receipt.rs", [],
            "The offer is signed by the receipt key in the worker's attested claims.";
        WORKER = "offer.worker", Usage, "protocol/src/receipt.rs", [],
            "The offer names the worker whose evidence was verified.";
        PAYOUT = "offer.payout", Usage, "protocol/src/receipt.rs", [],
            "The offer's payout address is the one the worker's attested claims carry.";
        EXPIRED = "offer.expired", Usage, "protocol/src/receipt.rs", [],
            "The offer has not expired at the verifier's time.";
        MODEL = "offer.model", Usage, "router/src/admission.rs", [],
            "The offer serves the model the worker registered (router) or the client asked \
             for (client).";
        PRICE = "offer.price", Usage, "client/src/network.rs", [],
            "The offer's prices are within the client's limits.";
    }
}

/// `receipt.*`: a worker's signed usage receipt for one answer.
pub mod receipt {
    use super::super::{family, CheckId, Family};

    family! {
        prefix: "receipt", title: "usage receipts", paths: ["protocol/src/receipt.rs", "client/src/"];

        FORMAT = "receipt.format", Usage, "protocol/src/receipt.rs", [],
            "The receipt is well-formed canonical bytes within the size limit.";
        SIGNATURE = "receipt.signature", Usage, "protocol/src/receipt.rs", [],
            "The receipt is signed by the receipt key in the worker's attested claims.";
        TIME = "receipt.time", Usage, "protocol/src/receipt.rs", [],
            "The receipt's time lies within the offer's validity.";
        WORKER = "receipt.worker", Usage, "protocol/src/receipt.rs", [],
            "The receipt names the worker that answered.";
        REQUEST_DIGEST = "receipt.request_digest", Usage, "protocol/src/receipt.rs", [],
            "The receipt covers this request (SHA-256 of the sealed request).";
        OFFER = "receipt.offer", Usage, "protocol/src/receipt.rs", [],
            "The receipt names the offer the request was priced under.";
        PROMPT_TOKENS = "receipt.prompt_tokens", Usage, "protocol/src/receipt.rs", [],
            "The receipt's prompt token count is the one the client knows.";
        COMPLETION_TOKENS = "receipt.completion_tokens", Usage, "protocol/src/receipt.rs", [],
            "The receipt's completion token count is the one the client counted, within the \
             request's limit.";
        MISSING = "receipt.missing", Usage, "protocol/src/receipt.rs", [],
            "The answer ended with a receipt.";
        DUPLICATE = "receipt.duplicate", Usage, "protocol/src/receipt.rs", [],
            "No other receipt for the same request was seen before.";
        CLEAR_COPY = "receipt.clear_copy", Usage, "client/src/receipts.rs", [],
            "The receipt a router relays in the clear is byte for byte the sealed one.";
    }
}

/// `ack.*`: a client's acknowledgement of a receipt.
pub mod ack {
    use super::super::{family, CheckId, Family};

    family! {
        prefix: "ack", title: "acknowledgements", paths: ["protocol/src/receipt.rs", "client/src/", "tools/src/"];

        FORMAT = "ack.format", Usage, "protocol/src/receipt.rs", [],
            "The acknowledgement is well-formed canonical bytes within the size limit.";
        SIGNATURE = "ack.signature", Usage, "protocol/src/receipt.rs", [],
            "The acknowledgement is signed by the client's key.";
        RECEIPT = "ack.receipt", Usage, "protocol/src/receipt.rs", [],
            "The acknowledgement covers these exact receipt bytes.";
        MISSING = "ack.missing", Usage, "tools/src/pay.rs", [],
            "The receipt was acknowledged by this client (only those are paid).";
        CLIENT = "ack.client", Usage, "tools/src/pay.rs", [],
            "The acknowledgement was made with this client's own key.";
    }
}
