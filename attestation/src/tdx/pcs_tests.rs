use super::*;
use crate::tdx::TdxCollateral;

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../vectors");

fn read(path: &str) -> Vec<u8> {
    let full = format!("{VECTORS}/{path}");
    std::fs::read(&full).unwrap_or_else(|e| panic!("reading {full}: {e}"))
}

/// The recorded answer's header `name`, from `NAME.headers`.
fn header(path: &str, name: &str) -> Option<String> {
    let text = String::from_utf8(read(&format!("{path}.headers"))).expect("headers are text");
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

struct Recorded {
    tcb: Vec<u8>,
    qe: Vec<u8>,
    pck: Vec<u8>,
    root: Vec<u8>,
}

fn recorded() -> Recorded {
    Recorded {
        tcb: read("recorded/pcs/tcb.json"),
        qe: read("recorded/pcs/qe_identity.json"),
        pck: read("recorded/pcs/pckcrl.der"),
        root: read("recorded/pcs/rootcacrl.hex"),
    }
}

fn assemble_with(
    r: &Recorded,
    tcb_header: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<u8>, PcsError> {
    let qe_header = |n: &str| header("recorded/pcs/qe_identity.json", n);
    let pck_header = |n: &str| header("recorded/pcs/pckcrl.der", n);
    assemble(&PcsAnswers {
        pck_crl: Answer {
            body: &r.pck,
            header: &pck_header,
        },
        tcb_info: Answer {
            body: &r.tcb,
            header: tcb_header,
        },
        qe_identity: Answer {
            body: &r.qe,
            header: &qe_header,
        },
        root_ca_crl: &r.root,
    })
}

#[test]
fn requests_name_the_quotes_platform() {
    let quote = read("tdx/tdx_quote");
    let r = requests("https://pccs.example/sgx/certification/v4/", &quote).expect("requests");
    assert_eq!(r.fmspc, "B0C06F000000");
    assert_eq!(r.ca, PckCa::Platform);
    assert_eq!(
        r.tcb_info,
        "https://pccs.example/tdx/certification/v4/tcb?fmspc=B0C06F000000"
    );
    assert_eq!(
        r.qe_identity,
        "https://pccs.example/tdx/certification/v4/qe/identity"
    );
    assert_eq!(
        r.pck_crl,
        "https://pccs.example/sgx/certification/v4/pckcrl?ca=platform&encoding=der"
    );
    assert_eq!(
        r.root_ca_crl,
        "https://pccs.example/sgx/certification/v4/rootcacrl"
    );
    let pcs = requests(INTEL_PCS, &quote).expect("requests");
    assert_eq!(pcs.root_ca_crl, INTEL_ROOT_CA_CRL);
    let sgx = requests(INTEL_PCS, &read("sgx/sgx_quote")).expect("sgx requests");
    assert!(
        sgx.tcb_info.contains("/sgx/certification/v4/tcb?fmspc="),
        "{sgx:?}"
    );
}

#[test]
fn requests_refuse_what_names_no_platform() {
    assert!(matches!(
        requests("ftp://x", &read("tdx/tdx_quote")),
        Err(PcsError::BaseUrl(_))
    ));
    assert!(matches!(
        requests(INTEL_PCS, b"not a quote"),
        Err(PcsError::Quote(_))
    ));
}

#[test]
fn assembled_collateral_is_the_recorded_one_and_verifies_the_quote() {
    let r = recorded();
    let tcb_header = |n: &str| header("recorded/pcs/tcb.json", n);
    let json = assemble_with(&r, &tcb_header).expect("assembles");
    let ours: serde_json::Value = serde_json::from_slice(&json).expect("json");
    let theirs: serde_json::Value =
        serde_json::from_slice(&read("tdx/tdx_quote_collateral.json")).expect("json");
    for field in [
        "pck_crl_issuer_chain",
        "root_ca_crl",
        "pck_crl",
        "tcb_info_issuer_chain",
        "tcb_info",
        "tcb_info_signature",
        "qe_identity_issuer_chain",
        "qe_identity",
        "qe_identity_signature",
    ] {
        assert_eq!(
            ours[field].as_str().map(str::to_lowercase),
            theirs[field].as_str().map(str::to_lowercase),
            "{field}"
        );
    }
    let c = TdxCollateral::from_json(&json).expect("reads");
    let mut v = crate::Verdict::new(crate::Platform::Tdx);
    crate::tdx::verify(&read("tdx/tdx_quote"), &c, c.latest_issue_date(), &mut v).expect("parses");
    assert!(v.accepted(), "{v:#?}");
}

#[test]
fn signed_members_are_cut_out_exactly_as_served() {
    let mut r = recorded();
    // Whitespace inside the signed member is kept, so the signature then fails at
    // verification instead of a re-serialised document passing by accident.
    let text = String::from_utf8(r.tcb.clone()).expect("text");
    r.tcb = text
        .replacen("\"id\":\"TDX\"", "\"id\": \"TDX\"", 1)
        .into_bytes();
    let tcb_header = |n: &str| header("recorded/pcs/tcb.json", n);
    let json = assemble_with(&r, &tcb_header).expect("assembles");
    let c = TdxCollateral::from_json(&json).expect("reads");
    let mut v = crate::Verdict::new(crate::Platform::Tdx);
    crate::tdx::verify(&read("tdx/tdx_quote"), &c, c.latest_issue_date(), &mut v).expect("parses");
    assert!(!v.accepted());
    assert!(!v
        .check(&crate::checks::tdx::QUOTE_SIGNATURE)
        .expect("ran")
        .passed());
}

#[test]
fn broken_answers_are_named() {
    let r = recorded();
    let none = |_: &str| None;
    assert!(matches!(
        assemble_with(&r, &none),
        Err(PcsError::MissingHeader {
            item: "TCB info",
            ..
        })
    ));
    let garbage = |_: &str| Some("not%20a%20chain".to_owned());
    assert!(matches!(
        assemble_with(&r, &garbage),
        Err(PcsError::BadHeader {
            item: "TCB info",
            ..
        })
    ));
    let tcb_header = |n: &str| header("recorded/pcs/tcb.json", n);
    let mut cut = recorded();
    cut.tcb.truncate(cut.tcb.len() / 2);
    assert!(matches!(
        assemble_with(&cut, &tcb_header),
        Err(PcsError::Json {
            item: "TCB info",
            ..
        })
    ));
    let mut bad_crl = recorded();
    bad_crl.root = b"zz".to_vec();
    assert!(matches!(
        assemble_with(&bad_crl, &tcb_header),
        Err(PcsError::Crl {
            item: "root CA CRL"
        })
    ));
    bad_crl.root = Vec::new();
    assert!(matches!(
        assemble_with(&bad_crl, &tcb_header),
        Err(PcsError::Crl {
            item: "root CA CRL"
        })
    ));
}

#[test]
fn crls_come_as_der_pem_or_hex() {
    use base64::Engine as _;
    let der = read("recorded/pcs/pckcrl.der");
    let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
    let pem = format!("-----BEGIN X509 CRL-----\n{b64}\n-----END X509 CRL-----\n");
    assert_eq!(crl_der(pem.as_bytes(), "x").expect("pem"), der);
    assert_eq!(
        crl_der(hex::encode(&der).as_bytes(), "x").expect("hex"),
        der
    );
    assert_eq!(crl_der(&der, "x").expect("der"), der);
}
