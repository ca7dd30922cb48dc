//! `silk verify`'s words where they used to mislead: FMSPCs that differ, collateral not
//! yet valid, and the VCEK given as a PEM bundle or together with `--certs`.

mod common;

use base64::Engine as _;
use common::{p, silk, tempdir, text, vectors};

const TDX_POLICY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../docs/examples/tdx-sample.toml"
);
const SNP_POLICY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../docs/examples/snp-milan-sample.toml"
);

#[test]
fn collateral_for_another_fmspc_names_both() {
    // The "outdated" sample's collateral is for FMSPC 90C06F000000; tdx_quote's platform
    // is B0C06F000000.
    let out = silk(&[
        "verify",
        &p(vectors().join("tdx/tdx_quote")),
        "--collateral",
        &p(vectors().join("tdx/tdx_quote_outdated_collateral.json")),
        "--policy",
        TDX_POLICY,
        "--now",
        "2026-02-19T00:00:00Z",
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("FAIL tdx.tcb_level: the FMSPCs differ")
            && t.contains("B0C06F000000")
            && t.contains("90C06F000000"),
        "{t}"
    );
    assert!(!t.contains("below every level"), "{t}");
}

#[test]
fn collateral_not_yet_valid_names_each_part_and_date() {
    let out = silk(&[
        "verify",
        &p(vectors().join("tdx/tdx_quote")),
        "--policy",
        TDX_POLICY,
        "--now",
        "2025-06-19T10:20:00Z",
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    // Issued 10:32:27; the TCB info (10:16:03) and the CRLs were already valid.
    assert!(
        t.contains(
            "FAIL tdx.collateral_window: collateral is not yet valid: the QE identity was issued \
             2025-06-19T10:32:27Z"
        ),
        "{t}"
    );
    assert!(!t.contains("the TCB info was issued"), "{t}");
}

fn vcek_pem() -> String {
    let der = std::fs::read(vectors().join("snp/milan/vcek_milan.der")).expect("vcek");
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

#[test]
fn vcek_from_a_pem_bundle_and_with_certs() {
    let dir = tempdir();
    let chain = std::fs::read_to_string(vectors().join("snp/milan/cert_chain.pem")).expect("chain");
    let report = p(vectors().join("snp/milan/report_milan.hex"));
    let verify = |extra: &[&str]| {
        let mut args = vec![
            "verify",
            &report,
            "--policy",
            SNP_POLICY,
            "--now",
            "2025-01-01T00:00:00Z",
        ];
        args.extend_from_slice(extra);
        silk(&args)
    };

    // ASK, ARK, then the VCEK: the VCEK is found by its CN.
    let bundle = dir.join("bundle.pem");
    std::fs::write(&bundle, format!("{chain}{}", vcek_pem())).expect("write");
    let out = verify(&["--vcek", &p(bundle)]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains("took the VCEK/VLEK of the 3 certificates"),
        "{t}"
    );

    // A bundle without a VCEK says so and what to do.
    let no_vcek = dir.join("chain.pem");
    std::fs::write(&no_vcek, &chain).expect("write");
    let out = verify(&["--vcek", &p(no_vcek)]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains("holds 2 certificates and none is a VCEK") && t.contains("--certs"),
        "{t}"
    );

    // --vcek with --certs: this VCEK, the ASK/ARK of that folder.
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).expect("mkdir");
    std::fs::write(certs.join("cert_chain.pem"), &chain).expect("write");
    let out = verify(&[
        "--vcek",
        &p(vectors().join("snp/milan/vcek_milan.der")),
        "--certs",
        &p(certs),
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("VCEK from --vcek, ASK/ARK from"), "{t}");
}
