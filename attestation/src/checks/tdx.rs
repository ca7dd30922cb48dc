//! `tdx.*`: Intel TDX DCAP quotes, their collateral and the `[tdx]` rules. The four
//! vendor checks (`quote_signature`, `collateral_window`, `tcb_level`, `td_attributes`)
//! carry these names for SGX quotes too.

use super::{family, CheckId, Family};
use crate::policy::key;

family! {
    prefix: "tdx", title: "Intel TDX (and the DCAP checks of SGX quotes)",
    paths: ["attestation/src/tdx/"];

    QUOTE_FORMAT = "tdx.quote_format", Signature, "attestation/src/tdx/quote.rs", [],
        "The evidence parses as a TDX DCAP quote (version 4 or 5) whose signature data is in \
         its one canonical encoding and is followed by nothing but zeros. When it fails, \
         nothing else runs.";
    QUOTE_SIGNATURE = "tdx.quote_signature", Signature, "attestation/src/tdx/dcap.rs", [],
        "dcap-qvl verifies the PCK chain to Intel's SGX root CA with its CRLs, the QE report \
         and identity, the quote's signature, and the TCB info and QE identity signatures.";
    TCB_LEVEL = "tdx.tcb_level", Platform, "attestation/src/tdx/dcap.rs", [],
        "Reported only when it fails, after the signatures verified: the platform's TCB \
         matches no level of the TCB info (Intel's TCB not supported), the TCB info is for \
         another FMSPC (both are named), or the level is revoked.";
    TD_ATTRIBUTES = "tdx.td_attributes", Platform, "attestation/src/tdx/dcap.rs", [],
        "Reported only when it fails, after the signatures verified: the TD is migratable, \
         profiled, bound to a service TD, sets reserved attribute bits or lacks \
         SEPT_VE_DISABLE.";
    COLLATERAL_WINDOW = "tdx.collateral_window", Freshness,
        "attestation/src/tdx/collateral.rs", [],
        "The verification time lies within every collateral part's validity; a failure \
         names the part (TCB info, QE identity, PCK CRL, root CA CRL) and its date.";
    DEBUG = "tdx.debug", Platform, "attestation/src/tdx/rules.rs", [key::TDX_ALLOW_DEBUG],
        "No TUD attribute bit (DEBUG or its profiling variants) is set, unless the policy \
         allows debug (then every verdict warns).";
    TCB_STATUS = "tdx.tcb_status", Platform, "attestation/src/tdx/rules.rs",
        [key::TDX_ALLOWED_TCB_STATUSES],
        "Intel's TCB status for the platform is one the policy allows (default `UpToDate` \
         only).";
    ADVISORIES = "tdx.advisories", Platform, "attestation/src/tdx/rules.rs",
        [key::TDX_ALLOWED_ADVISORY_IDS],
        "Runs when `allowed_advisory_ids` is set: every advisory id of the TCB status is \
         listed.";
    TEE_TCB_SVN = "tdx.tee_tcb_svn", Platform, "attestation/src/tdx/rules.rs",
        [key::TDX_MIN_TEE_TCB_SVN],
        "Runs when `min_tee_tcb_svn` is set: TEE_TCB_SVN meets it byte by byte.";
    MR_SEAM = "tdx.mr_seam", Platform, "attestation/src/tdx/rules.rs", [key::TDX_MR_SEAM],
        "Runs when `mr_seam` is set: the TDX module's measurement is one of them.";
    MEASUREMENT = "tdx.measurement", Measurement, "attestation/src/tdx/rules.rs",
        [key::TDX_MEASUREMENTS, key::TDX_ALLOW_ANY_MEASUREMENT],
        "MRTD and the RTMRs an allowlist entry names match it (or any is allowed, with a \
         warning); a failure names the register that differs.";
    EVENT_LOG = "tdx.event_log", Measurement, "attestation/src/tdx/replay.rs", [],
        "Runs when the evidence carries the TD's event log (the CCEL log area): it parses as a \
         TCG crypto-agile log and replaying its SHA-384 digests gives the quote's RTMR0-3; a \
         failure names each register that differs, replayed and quoted, or why the log does \
         not parse.";
    IMAGE_EVENTS = "tdx.image_events", Measurement, "attestation/src/tdx/replay.rs", [],
        "Runs with an event log and an image to compare with (`silk verify --image`): the \
         logged RTMR1 and RTMR2 events are those the image predicts, in order; a failure \
         names the first that differs (register, place in the log, component, expected and \
         found digest).";
    MR_CONFIG_ID = "tdx.mr_config_id", Measurement, "attestation/src/tdx/rules.rs",
        [key::TDX_MR_CONFIG_ID],
        "Runs when `mr_config_id` is set: MRCONFIGID equals it.";
    MR_OWNER = "tdx.mr_owner", Measurement, "attestation/src/tdx/rules.rs",
        [key::TDX_MR_OWNER],
        "Runs when `mr_owner` is set: MROWNER equals it.";
    MR_OWNER_CONFIG = "tdx.mr_owner_config", Measurement, "attestation/src/tdx/rules.rs",
        [key::TDX_MR_OWNER_CONFIG],
        "Runs when `mr_owner_config` is set: MROWNERCONFIG equals it.";
    REPORT_DATA = "tdx.report_data", Binding, "attestation/src/tdx/rules.rs",
        [key::TDX_REPORT_DATA],
        "Runs when `report_data` is set: REPORT_DATA equals it (otherwise the verdict \
         warns).";
    COLLATERAL_AGE = "tdx.collateral_age", Freshness, "attestation/src/tdx/rules.rs",
        [key::TDX_MAX_COLLATERAL_AGE],
        "Runs when `max_collateral_age` is set: the TCB info was issued within that span.";
}
