//! NVIDIA's published GPU evidence and RIMs (`vectors/gpu`, see its README):
//! every sample verifies or fails as the README says, with the check that names why.

use base64::Engine as _;
use silk_attestation::checks::{gpu as check, policy};
use silk_attestation::gpu::certs::PathError;
use silk_attestation::gpu::{
    self, certs, GpuArch, GpuEvidence, Revocation, Rim, RimError, RimStore,
};
use silk_attestation::{CheckId, Policy, Verdict};
use time::macros::datetime;
use time::OffsetDateTime;

const V: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../vectors/gpu");
const SAMPLES: &str = "nvidia-attestation-sdk/testdata/sample_attestation_data/gpu";
/// Inside every device chain's validity (they end in 9999) and the 535/570 RIM signers'.
const NOW: OffsetDateTime = datetime!(2025-03-01 0:00 UTC);
const NONCE_931D: &str = "931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb";

fn read(p: &str) -> Vec<u8> {
    let path = format!("{V}/{p}");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn report(p: &str) -> Vec<u8> {
    hex::decode(String::from_utf8(read(p)).expect("text").trim()).expect("hex")
}

fn nonce(h: &str) -> [u8; 32] {
    hex::decode(h).expect("hex").try_into().expect("32 bytes")
}

fn policy(extra: &str) -> Policy {
    Policy::from_toml(&format!(
        "[gpu]\narchitectures = [\"hopper\", \"blackwell\"]\nmin_driver_version = \"535\"\n\
         min_vbios_version = \"96.00.00.00.00\"\nallow_missing_revocation = true\n{extra}"
    ))
    .expect("policy")
}

/// (name, evidence, nonce) of every report sample, with the chain it ships with.
fn samples() -> Vec<(&'static str, GpuEvidence, [u8; 32])> {
    let ev = |arch, r: &str, c: &str| GpuEvidence {
        arch,
        report: report(r),
        cert_chain_pem: read(c),
    };
    let s = |f: &str| format!("{SAMPLES}/{f}");
    vec![
        (
            "nv-local hopper",
            ev(
                GpuArch::Hopper,
                "nv-local-gpu-verifier-2.7.3/samples/hopperAttestationReport.txt",
                "nv-local-gpu-verifier-2.7.3/samples/hopperCertChain.txt",
            ),
            nonce(NONCE_931D),
        ),
        (
            "sdk hopper 580",
            ev(
                GpuArch::Hopper,
                "nvidia-attestation-sdk/testdata/hopperAttestationReport.txt",
                "nvidia-attestation-sdk/testdata/hopperCertChain.txt",
            ),
            nonce("5bb22e377702d4e1e8215a903ba094826b9ac7f731dee1fe8102958bf2840aca"),
        ),
        (
            "sample hopper 535",
            ev(
                GpuArch::Hopper,
                &s("hopperAttestationReport.txt"),
                &s("hopperCertChain.txt"),
            ),
            nonce("27a328247bf7935c993341cf587be6f05986ccce4fe7ba2c54100bd616a58f66"),
        ),
        (
            "sample blackwell",
            ev(
                GpuArch::Blackwell,
                &s("blackwellAttestationReport.txt"),
                &s("blackwellCertChain.txt"),
            ),
            nonce(NONCE_931D),
        ),
        (
            "sample hopper expired",
            ev(
                GpuArch::Hopper,
                &s("hopperAttestationReportExpired.txt"),
                &s("hopperCertChainExpired.txt"),
            ),
            nonce(NONCE_931D),
        ),
        (
            "sample hopper invalid signature",
            ev(
                GpuArch::Hopper,
                &s("hopperAttestationReportInvalidSignature.txt"),
                &s("hopperCertChain.txt"),
            ),
            nonce(NONCE_931D),
        ),
    ]
}

fn passed(v: &Verdict, id: &CheckId) -> bool {
    v.check(id).is_some_and(|c| c.passed())
}

fn reason(v: &Verdict, id: &CheckId) -> String {
    match v.check(id).map(|c| &c.outcome) {
        Some(silk_attestation::Outcome::Fail { reason }) => reason.clone(),
        other => panic!("{} did not fail: {other:?}", id.name),
    }
}

const DEVICE_CHECKS: [&CheckId; 6] = [
    &check::REPORT_FORMAT,
    &check::CERT_CHAIN,
    &check::ARCHITECTURE,
    &check::REPORT_SIGNATURE,
    &check::FWID,
    &check::NONCE,
];

#[test]
fn every_report_sample_verifies_or_fails_as_its_readme_says() {
    for (name, ev, n) in samples() {
        let v = gpu::verify(
            &ev,
            &policy(""),
            &n,
            &RimStore::new(),
            &Revocation::Unavailable,
            NOW,
        );
        if name.ends_with("invalid signature") {
            // NEGATIVE: the signature must fail (its FWID also differs from the leaf's).
            assert!(
                reason(&v, &check::REPORT_SIGNATURE).contains("does not verify"),
                "{name}"
            );
            assert!(
                passed(&v, &check::CERT_CHAIN) && passed(&v, &check::NONCE),
                "{name}"
            );
        } else {
            for c in DEVICE_CHECKS {
                assert!(passed(&v, c), "{name}: {}: {:?}", c.name, v.check(c));
            }
        }
        // No sample comes with both of its RIMs, so none is accepted whole.
        assert!(!v.accepted(), "{name}");
        assert!(!passed(&v, &check::MEASUREMENTS), "{name}");
    }
}

#[test]
fn facts_name_versions_as_the_readme_does() {
    let want = [
        ("550.90.07", "96.00.9F.00.01", "GH100"),
        ("580.159.03", "96.00.74.00.20", "GH100"),
        ("535.86.09", "96.00.5E.00.01", "GH100"),
        ("575.32", "97.00.88.00.0F", "GB100"),
        ("570.124.03", "96.00.5E.00.04", "GH100"),
        ("560.00", "96.00.A5.00.01", "GH100"),
    ];
    for ((name, ev, n), (driver, vbios, chip)) in samples().into_iter().zip(want) {
        let v = gpu::verify(
            &ev,
            &policy(""),
            &n,
            &RimStore::new(),
            &Revocation::Unavailable,
            NOW,
        );
        let fact = |f: &str| {
            v.facts
                .iter()
                .find(|x| x.name == f)
                .map(|x| x.value.clone())
        };
        assert_eq!(fact("driver_version").as_deref(), Some(driver), "{name}");
        assert_eq!(fact("vbios_version").as_deref(), Some(vbios), "{name}");
        assert_eq!(fact("chip").as_deref(), Some(chip), "{name}");
    }
}

#[test]
fn nras_style_json_evidence_verifies() {
    let list: serde_json::Value = serde_json::from_slice(&read(
        "nvidia-attestation-sdk/testdata/evidence_hopper_590_12.json",
    ))
    .unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    for item in list.as_array().unwrap() {
        let ev = GpuEvidence {
            arch: GpuArch::from_name(item["arch"].as_str().unwrap()).unwrap(),
            report: b64.decode(item["evidence"].as_str().unwrap()).unwrap(),
            cert_chain_pem: b64.decode(item["certificate"].as_str().unwrap()).unwrap(),
        };
        let n = nonce(item["nonce"].as_str().unwrap());
        let v = gpu::verify(
            &ev,
            &policy(""),
            &n,
            &RimStore::new(),
            &Revocation::Unavailable,
            NOW,
        );
        for c in DEVICE_CHECKS {
            assert!(passed(&v, c), "{}: {:?}", c.name, v.check(c));
        }
        let fact = |f: &str| {
            v.facts
                .iter()
                .find(|x| x.name == f)
                .map(|x| x.value.clone())
        };
        assert_eq!(fact("driver_version").as_deref(), Some("590.12"));
        assert_eq!(fact("vbios_version").as_deref(), Some("96.00.A5.00.01"));
    }
}

#[test]
fn wrong_nonce_is_rejected_by_the_nonce_check_alone() {
    for (name, ev, n) in samples().into_iter().take(4) {
        let mut other = n;
        other[31] ^= 1;
        let v = gpu::verify(
            &ev,
            &policy(""),
            &other,
            &RimStore::new(),
            &Revocation::Unavailable,
            NOW,
        );
        assert!(
            reason(&v, &check::NONCE).contains("another nonce"),
            "{name}"
        );
        assert!(passed(&v, &check::REPORT_SIGNATURE), "{name}");
    }
}

#[test]
fn a_chain_from_another_gpu_or_architecture_is_rejected() {
    let mut s = samples();
    let (_, blackwell, bn) = s.remove(3);
    let (_, hopper, _) = s.remove(0);
    let mut swapped = blackwell.clone();
    swapped.cert_chain_pem = hopper.cert_chain_pem.clone();
    swapped.arch = GpuArch::Hopper;
    let v = gpu::verify(
        &swapped,
        &policy(""),
        &bn,
        &RimStore::new(),
        &Revocation::Unavailable,
        NOW,
    );
    assert!(!passed(&v, &check::REPORT_SIGNATURE));
    assert!(!passed(&v, &check::FWID));
    let mut lying = blackwell;
    lying.arch = GpuArch::Hopper;
    let v = gpu::verify(
        &lying,
        &policy(""),
        &bn,
        &RimStore::new(),
        &Revocation::Unavailable,
        NOW,
    );
    assert!(reason(&v, &check::ARCHITECTURE).contains("differs"));
}

#[test]
fn policy_rules_name_their_checks() {
    let (_, ev, n) = samples().remove(0);
    let rims = RimStore::new();
    let v = gpu::verify(
        &ev,
        &Policy::default(),
        &n,
        &rims,
        &Revocation::Unavailable,
        NOW,
    );
    assert!(reason(&v, &policy::GPU).contains("no [gpu] section"));
    assert!(!passed(&v, &check::ARCHITECTURE) && !passed(&v, &check::DRIVER_VERSION));
    let strict = Policy::from_toml("[gpu]\narchitectures = [\"blackwell\"]\nmin_driver_version = \"550.100\"\nmin_vbios_version = \"96.00.A0\"\n").unwrap();
    let v = gpu::verify(&ev, &strict, &n, &rims, &Revocation::Unavailable, NOW);
    assert!(reason(&v, &check::ARCHITECTURE).contains("does not accept Hopper"));
    assert!(reason(&v, &check::DRIVER_VERSION).contains("older"));
    assert!(reason(&v, &check::VBIOS_VERSION).contains("older"));
    assert!(reason(&v, &check::REVOCATION).contains("requires revocation"));
    let saved = Revocation::OcspResponses(vec![vec![0x30]]);
    let v = gpu::verify(&ev, &policy(""), &n, &rims, &saved, NOW);
    assert!(reason(&v, &check::REVOCATION).contains("OCSP response #1: malformed"));
    let v = gpu::verify(&ev, &policy(""), &n, &rims, &Revocation::Unavailable, NOW);
    assert!(passed(&v, &check::REVOCATION) && v.warnings.iter().any(|w| w.contains("revocation")));
}

#[test]
fn allow_missing_rims_accepts_with_a_warning() {
    let (_, ev, n) = samples().remove(0);
    let v = gpu::verify(
        &ev,
        &policy("allow_missing_rims = true"),
        &n,
        &RimStore::new(),
        &Revocation::Unavailable,
        NOW,
    );
    assert!(v.accepted(), "{:?}", v.failures().collect::<Vec<_>>());
    assert!(v.warnings.iter().any(|w| w.contains("NOT compared")));
}

#[test]
fn protected_pcie_mode_needs_the_policy() {
    let (_, ev, n) = samples().remove(5); // the invalid-signature sample reports 0xAA
    let v = gpu::verify(
        &ev,
        &policy(""),
        &n,
        &RimStore::new(),
        &Revocation::Unavailable,
        NOW,
    );
    assert!(reason(&v, &check::CC_MODE).contains("protected-PCIe"));
    let v = gpu::verify(
        &ev,
        &policy("allow_protected_pcie = true"),
        &n,
        &RimStore::new(),
        &Revocation::Unavailable,
        NOW,
    );
    assert!(passed(&v, &check::CC_MODE));
}

// RIMs ------------------------------------------------------------------------------------

fn verify_rim(p: &str, now: OffsetDateTime) -> Result<String, RimError> {
    Rim::parse(&read(p))?.verify(&certs::rim_root().unwrap(), now)
}

#[test]
fn every_published_rim_verifies_inside_its_validity() {
    let dir = format!("{V}/nv-local-gpu-verifier-2.7.3/samples");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".swidtag") {
            let summary = verify_rim(
                &format!("nv-local-gpu-verifier-2.7.3/samples/{name}"),
                datetime!(2024-06-01 0:00 UTC),
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                summary.ends_with("NVIDIA CoRIM signing Root CA"),
                "{summary}"
            );
            n += 1;
        }
    }
    assert_eq!(n, 26);
    verify_rim(
        "nvidia-attestation-sdk/testdata/NV_GPU_DRIVER_GH100_550.144.03.xml",
        NOW,
    )
    .unwrap();
    // Valid until 2025-06-22: outside that, the signer has expired.
    let e = verify_rim(
        "nv-local-gpu-verifier-2.7.3/samples/1010_0200_882_96005E0001_PROD.swidtag",
        datetime!(2025-07-01 0:00 UTC),
    )
    .unwrap_err();
    assert!(
        matches!(&e, RimError::Chain(PathError::Expired { .. })),
        "{e}"
    );
}

#[test]
fn negative_rims_fail_for_their_reason() {
    let t = "nvidia-attestation-sdk/testdata";
    let e = verify_rim(&format!("{t}/incorrect_signature_driver_rim.xml"), NOW).unwrap_err();
    assert_eq!(e, RimError::Signature);
    let e = verify_rim(&format!("{t}/incorrect_cert_chain_driver_rim.xml"), NOW).unwrap_err();
    assert!(
        matches!(&e, RimError::Chain(r @ PathError::ForeignRoot { .. }) if r.to_string().contains("Debug Only")),
        "{e}"
    );
    // The expired RIM's signer lived one day (2025-01-01 to 01-02); inside that day its
    // content does not match its digest either (it is an edited copy of a test RIM).
    let expired = format!("{t}/sample_rims/NV_GPU_DRIVER_GH100_570.124.03_expired.xml");
    let e = verify_rim(&expired, NOW).unwrap_err();
    assert!(
        matches!(&e, RimError::Chain(r @ PathError::Expired { .. }) if r.to_string().contains("expired at 2025-01-02")),
        "{e}"
    );
    assert_eq!(
        verify_rim(&expired, datetime!(2025-01-01 12:00 UTC)).unwrap_err(),
        RimError::Digest
    );
    for f in [
        "NV_GPU_DRIVER_GH100_535.86.09_measurement_mismatch.xml",
        "NV_SWITCH_BIOS_5612_0002_890_9610550001_invalid_signature.xml",
        "NV_SWITCH_BIOS_5612_0002_890_9610550001_measurement_mismatch.xml",
    ] {
        // Their signers' validity starts 2025-05-24.
        let e = verify_rim(
            &format!("{t}/sample_rims/{f}"),
            datetime!(2025-06-01 0:00 UTC),
        )
        .unwrap_err();
        assert_eq!(e, RimError::Digest, "{f}");
    }
    // A good RIM against a root other than NVIDIA's.
    let wrong =
        x509_cert::der::DecodePem::from_pem(read(&format!("{t}/incorrect_rim_root.crt"))).unwrap();
    let rim = Rim::parse(&read(&format!("{t}/NV_GPU_DRIVER_GH100_550.144.03.xml"))).unwrap();
    assert!(matches!(rim.verify(&wrong, NOW), Err(RimError::Chain(_))));
}

#[test]
fn tampered_rims_are_rejected_and_reformatted_ones_are_not() {
    let good = String::from_utf8(read(
        "nvidia-attestation-sdk/testdata/NV_GPU_DRIVER_GH100_550.144.03.xml",
    ))
    .unwrap();
    let check = |xml: &str| Rim::parse(xml.as_bytes())?.verify(&certs::rim_root().unwrap(), NOW);
    check(&good).unwrap();
    // A golden value changed: the digest no longer matches.
    let t = good.replacen("4a5e4b3d", "4a5e4b3e", 1);
    assert_eq!(check(&t).unwrap_err(), RimError::Digest);
    // An inactive entry made active.
    let t = good.replacen(
        "index=\"0\" active=\"False\"",
        "index=\"0\" active=\"True\"",
        1,
    );
    assert_eq!(check(&t).unwrap_err(), RimError::Digest);
    // The signature value changed.
    let at = good.find("<ds:SignatureValue>").unwrap() + 20;
    let mut t = good.clone();
    t.replace_range(at..at + 1, if &good[at..at + 1] == "A" { "B" } else { "A" });
    assert!(check(&t).is_err());
    // Canonically equivalent rewrites (attribute order, quotes, empty-element form,
    // a comment) still verify: the signature covers the canonical form.
    let t = good
        .replacen("<ns0:Entity name=\"NVIDIA Corporation\" role=\"softwareCreator tagCreator\"/>", "<ns0:Entity role='softwareCreator tagCreator'  name=\"NVIDIA Corporation\" ></ns0:Entity><!-- x -->", 1);
    assert_ne!(t, good);
    check(&t).unwrap();
}

#[test]
fn measurements_are_compared_with_nvidias_rules() {
    // The 535.86.09 report with its genuine VBIOS RIM and with the NVIDIA-signed
    // "measurement_mismatch" VBIOS RIM, whose index 9 differs; its driver RIM only exists
    // as a tampered copy. At a time inside all their signers' validity:
    const NOW: OffsetDateTime = datetime!(2025-06-01 0:00 UTC);
    let (_, ev, n) = samples().remove(2);
    let mut rims = RimStore::new();
    rims.insert(
        "NV_GPU_VBIOS_1010_0200_882_96005E0001",
        &read("nv-local-gpu-verifier-2.7.3/samples/1010_0200_882_96005E0001_PROD.swidtag"),
    )
    .unwrap();
    rims.insert("NV_GPU_DRIVER_GH100_535.86.09", &read("nvidia-attestation-sdk/testdata/sample_rims/NV_GPU_DRIVER_GH100_535.86.09_measurement_mismatch.xml")).unwrap();
    let v = gpu::verify(&ev, &policy(""), &n, &rims, &Revocation::Unavailable, NOW);
    assert!(
        passed(&v, &check::VBIOS_RIM),
        "{:?}",
        v.check(&check::VBIOS_RIM)
    );
    assert!(reason(&v, &check::DRIVER_RIM).contains("altered"));
    let r = reason(&v, &check::MEASUREMENTS);
    assert!(
        r.contains("driver RIM did not verify") && !r.contains("VBIOS index"),
        "{r}"
    );

    // With the NVIDIA-signed "measurement_mismatch" VBIOS RIM beside the genuine one (both
    // describe 96.00.5E.00.01), the one the report matches is used and named.
    rims.insert("mismatch.xml", &read("nvidia-attestation-sdk/testdata/sample_rims/NV_GPU_VBIOS_1010_0200_882_96005E0001_measurement_mismatch.xml")).unwrap();
    let v = gpu::verify(&ev, &policy(""), &n, &rims, &Revocation::Unavailable, NOW);
    let found = &v.check(&check::VBIOS_RIM).unwrap().found;
    assert!(
        passed(&v, &check::VBIOS_RIM)
            && found.starts_with("NV_GPU_VBIOS_1010_0200_882_96005E0001:")
            && found.contains("also tried mismatch.xml: measurements differ"),
        "{found}"
    );
    assert!(!reason(&v, &check::MEASUREMENTS).contains("VBIOS index"));

    // The mismatching RIM alone: it verifies, and the measurement check names index 9.
    let mut rims = RimStore::new();
    rims.insert("mismatch.xml", &read("nvidia-attestation-sdk/testdata/sample_rims/NV_GPU_VBIOS_1010_0200_882_96005E0001_measurement_mismatch.xml")).unwrap();
    let v = gpu::verify(&ev, &policy(""), &n, &rims, &Revocation::Unavailable, NOW);
    assert!(passed(&v, &check::VBIOS_RIM));
    let r = reason(&v, &check::MEASUREMENTS);
    assert!(r.contains("VBIOS index 9:"), "{r}");

    // A RIM for another version is never taken for this one, whatever it is called.
    let mut rims = RimStore::new();
    rims.insert(
        "NV_GPU_VBIOS_1010_0200_882_96005E0001",
        &read("nv-local-gpu-verifier-2.7.3/samples/1010_0200_882_96005E0003_PROD.swidtag"),
    )
    .unwrap();
    let v = gpu::verify(&ev, &policy(""), &n, &rims, &Revocation::Unavailable, NOW);
    let found = &v.check(&check::VBIOS_RIM).unwrap().found;
    assert!(
        !passed(&v, &check::VBIOS_RIM)
            && found.contains("none of the 1 RIM(s) supplied describes VBIOS 96.00.5E.00.01"),
        "{found}"
    );
}
