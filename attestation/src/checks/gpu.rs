//! `gpu.*`: NVIDIA GPU evidence (SPDM reports, device chains, RIMs) and the `[gpu]` rules.

use super::{family, CheckId, Family};
use crate::policy::key;

family! {
    prefix: "gpu", title: "NVIDIA GPUs (see gpu.md)", paths: ["attestation/src/gpu/"];

    REQUIRED = "gpu.required", Measurement, "attestation/src/gpu/verify.rs",
        [key::GPU_REQUIRED],
        "Runs when `required` is set and the CVM presented no GPU evidence, and then fails.";
    COUNT = "gpu.count", Measurement, "attestation/src/gpu/verify.rs", [key::GPU_COUNT],
        "Runs when `count` is set and GPU evidence is present: it covers exactly that many \
         GPUs.";
    REPORT_FORMAT = "gpu.report_format", Signature, "attestation/src/gpu/verify.rs", [],
        "The report parses as an SPDM 1.1 GET_MEASUREMENTS request and signed response with \
         NVIDIA's opaque data, with no slack. When it fails, nothing after it runs.";
    CERT_CHAIN = "gpu.cert_chain", Signature, "attestation/src/gpu/verify.rs", [],
        "The device chain has NVIDIA's five certificates up to the pinned NVIDIA Device \
         Identity CA, each signed by the next, CAs within their path lengths, all valid \
         now.";
    ARCHITECTURE = "gpu.architecture", Platform, "attestation/src/gpu/verify.rs",
        [key::GPU_ARCHITECTURES],
        "The chain's chip is of the architecture the evidence claims, which the policy \
         allows.";
    REPORT_SIGNATURE = "gpu.report_signature", Signature, "attestation/src/gpu/verify.rs", [],
        "The report's ECDSA P-384/SHA-384 signature over request and response verifies with \
         the chain's leaf.";
    FWID = "gpu.fwid", Signature, "attestation/src/gpu/verify.rs", [],
        "The report's FWID equals the FWID in the leaf's TCG DICE extension (passes with a \
         warning when older firmware reports none).";
    NONCE = "gpu.nonce", Binding, "attestation/src/gpu/verify.rs", [],
        "The request nonce is the one the verifier expects (for a CVM's GPUs, \
         `claims.gpu_nonce`).";
    CC_MODE = "gpu.cc_mode", Platform, "attestation/src/gpu/verify.rs",
        [key::GPU_ALLOW_PROTECTED_PCIE],
        "The GPU runs single-GPU confidential computing, not protected PCIe (unless the \
         policy allows it).";
    DRIVER_VERSION = "gpu.driver_version", Platform, "attestation/src/gpu/verify.rs",
        [key::GPU_MIN_DRIVER_VERSION],
        "The driver version is at least the minimum (required key: write 0 to accept any).";
    VBIOS_VERSION = "gpu.vbios_version", Platform, "attestation/src/gpu/verify.rs",
        [key::GPU_MIN_VBIOS_VERSION],
        "The VBIOS version is at least the minimum (required key: write 0 to accept any).";
    DRIVER_RIM = "gpu.driver_rim", Measurement, "attestation/src/gpu/measurements.rs",
        [key::GPU_ALLOW_MISSING_RIMS],
        "A driver RIM for this driver version and chip is at hand, NVIDIA-signed and valid.";
    VBIOS_RIM = "gpu.vbios_rim", Measurement, "attestation/src/gpu/measurements.rs",
        [key::GPU_ALLOW_MISSING_RIMS],
        "A VBIOS RIM for this VBIOS version and chip is at hand, NVIDIA-signed and valid.";
    MEASUREMENTS = "gpu.measurements", Measurement, "attestation/src/gpu/measurements.rs",
        [key::GPU_ALLOW_MISSING_RIMS],
        "Every active golden measurement of both RIMs equals the report's (NVDEC0's is \
         skipped when NVDEC0 is off).";
    REVOCATION = "gpu.revocation", Freshness, "attestation/src/gpu/revocation.rs",
        [key::GPU_ALLOW_MISSING_REVOCATION],
        "Verified OCSP responses say every certificate of the device chain is good now.";
}
