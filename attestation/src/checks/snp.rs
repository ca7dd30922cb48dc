//! `snp.*`: AMD SEV-SNP attestation reports, their AMD certificate chain and the `[snp]`
//! rules.

use super::{family, CheckId, Family};
use crate::policy::key;

family! {
    prefix: "snp", title: "AMD SEV-SNP", paths: ["attestation/src/snp/"];

    REPORT_FORMAT = "snp.report_format", Signature, "attestation/src/snp/report.rs", [],
        "The evidence parses as an ATTESTATION_REPORT: its length, VERSION 2 to 5, \
         SIGNATURE_ALGO ECDSA P-384 with SHA-384, reserved fields zero. When it fails, \
         nothing else runs.";
    PRODUCT_LINE = "snp.product_line", Signature, "attestation/src/snp/chain.rs", [],
        "The VEK's issuer names Milan, Genoa or Turin, and the report's CPUID (version 3 \
         and later) names the same product line.";
    ARK_PINNED = "snp.ark_pinned", Signature, "attestation/src/snp/chain.rs", [],
        "The ARK (supplied or built in) is AMD's root for that product line, pinned in the \
         binary.";
    ARK_SELF_SIGNED = "snp.ark_self_signed", Signature, "attestation/src/snp/chain.rs", [],
        "The ARK's RSASSA-PSS (SHA-384) self-signature verifies.";
    ASK_SIGNED_BY_ARK = "snp.ask_signed_by_ark", Signature, "attestation/src/snp/chain.rs", [],
        "The ASK (the ASVK for a VLEK) is signed by the ARK.";
    VEK_SIGNED_BY_ASK = "snp.vek_signed_by_ask", Signature, "attestation/src/snp/chain.rs", [],
        "The VCEK or VLEK is signed by the ASK (or ASVK).";
    CERT_VALIDITY = "snp.cert_validity", Signature, "attestation/src/snp/chain.rs", [],
        "The VEK, ASK and ARK are all within their validity periods at the verification \
         time.";
    SIGNING_KEY = "snp.signing_key", Signature, "attestation/src/snp/vek.rs", [],
        "SIGNING_KEY names the kind of the supplied VEK (VCEK or VLEK) and MASK_CHIP_KEY is \
         clear.";
    REPORT_SIGNATURE = "snp.report_signature", Signature, "attestation/src/snp/vek.rs", [],
        "The report's ECDSA P-384/SHA-384 signature over bytes [0, 0x2A0) verifies with the \
         VEK's key.";
    VEK_TCB = "snp.vek_tcb", Signature, "attestation/src/snp/vek.rs", [],
        "The TCB the VEK was derived for (its SPL extensions) equals the report's \
         REPORTED_TCB.";
    VEK_CHIP_ID = "snp.vek_chip_id", Signature, "attestation/src/snp/vek.rs", [],
        "A VCEK's hwID equals the report's CHIP_ID; a masked (all-zero) CHIP_ID fails. A \
         VLEK is not chip-specific and passes.";
    DEBUG = "snp.debug", Platform, "attestation/src/snp/rules.rs", [key::SNP_ALLOW_DEBUG],
        "The guest policy's DEBUG bit is clear, unless the policy allows debug (then every \
         verdict warns).";
    SMT = "snp.smt", Platform, "attestation/src/snp/rules.rs", [key::SNP_ALLOW_SMT],
        "With `allow_smt = false`, the guest policy forbids SMT and PLATFORM_INFO shows SMT \
         off.";
    MIGRATION_AGENT = "snp.migration_agent", Platform, "attestation/src/snp/rules.rs",
        [key::SNP_ALLOW_MIGRATION_AGENT],
        "The guest policy does not allow a migration agent (MIGRATE_MA), unless the policy \
         does.";
    SINGLE_SOCKET = "snp.single_socket", Platform, "attestation/src/snp/rules.rs",
        [key::SNP_REQUIRE_SINGLE_SOCKET],
        "With `require_single_socket`, the guest policy's SINGLE_SOCKET bit is set.";
    VMPL = "snp.vmpl", Platform, "attestation/src/snp/rules.rs", [key::SNP_MAX_VMPL],
        "The report was requested at a VMPL no less privileged than `max_vmpl`.";
    PRODUCT = "snp.product", Platform, "attestation/src/snp/rules.rs", [key::SNP_PRODUCTS],
        "Runs when `products` is set: the chain's product line is one of them.";
    MIN_TCB = "snp.min_tcb", Platform, "attestation/src/snp/rules.rs", [key::SNP_MIN_TCB],
        "REPORTED_TCB, decoded with the product line's layout, meets `min_tcb` in every \
         component; a policy without `min_tcb` fails it.";
    GUEST_SVN = "snp.guest_svn", Platform, "attestation/src/snp/rules.rs",
        [key::SNP_MIN_GUEST_SVN],
        "Runs when `min_guest_svn` is set: GUEST_SVN is at least that.";
    MEASUREMENT = "snp.measurement", Measurement, "attestation/src/snp/rules.rs",
        [key::SNP_MEASUREMENTS, key::SNP_ALLOW_ANY_MEASUREMENT],
        "The launch measurement is in the allowlist (or any is allowed, with a warning).";
    ID_KEY = "snp.id_key", Measurement, "attestation/src/snp/rules.rs",
        [key::SNP_ID_KEY_DIGESTS],
        "Runs when `id_key_digests` is set: the ID key's digest is one of them.";
    AUTHOR_KEY = "snp.author_key", Measurement, "attestation/src/snp/rules.rs",
        [key::SNP_AUTHOR_KEY_DIGESTS],
        "Runs when `author_key_digests` is set: the report has an author key and its \
         digest is one of them.";
    HOST_DATA = "snp.host_data", Measurement, "attestation/src/snp/rules.rs",
        [key::SNP_HOST_DATA],
        "Runs when `host_data` is set: HOST_DATA equals it.";
    REPORT_DATA = "snp.report_data", Binding, "attestation/src/snp/rules.rs",
        [key::SNP_REPORT_DATA],
        "Runs when `report_data` is set: REPORT_DATA equals it. Without it the verdict warns \
         that the report is bound to nothing (silk's clients bind it with \
         `claims.report_data`).";
}
