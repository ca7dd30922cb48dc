//! `silk measure --json`: the prediction as one JSON document.
//!
//! Keys (stable; new keys may be added):
//!
//! ```text
//! image            the image directory
//! manifest_digest  SHA-256 of the canonical manifest (the image digest)
//! components       [{"name", "path", "sha256", "size"}] as the manifest lists them
//! launch           the launch parameters used, in words
//! tee              "snp" or "tdx"
//! measurement      SNP: the launch digest (hex); absent for TDX
//! mrtd, rtmr1, rtmr2   TDX: hex; absent for SNP
//! rtmr0            TDX: the recorded value given with --rtmr0, or null (not predicted)
//! model            {"id", "size", "name"} of the model disk the command line binds, or null
//! warnings         [string]: what the measurement does not cover
//! policy_written   the --policy-out file, or null
//! ```

use std::path::Path;

use serde::Serialize;
use silk_images::manifest::Component;

use super::{Expected, Measurement};

#[derive(Serialize)]
struct Model {
    id: String,
    size: u64,
    name: Option<String>,
}

#[derive(Serialize)]
struct Report<'a> {
    image: &'a Path,
    manifest_digest: String,
    components: &'a [Component],
    launch: &'a str,
    tee: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    measurement: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mrtd: Option<String>,
    // Present (possibly null) for TDX only: null says "not predicted".
    #[serde(skip_serializing_if = "Option::is_none")]
    rtmr0: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rtmr1: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rtmr2: Option<String>,
    model: Option<Model>,
    warnings: &'a [String],
    policy_written: Option<&'a Path>,
}

/// Writes `m` (and where its policy was written, if it was) as one JSON document.
pub fn json(
    m: &Measurement,
    policy_written: Option<&Path>,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let mut r = Report {
        image: &m.dir,
        manifest_digest: m.manifest.digest(),
        components: &m.manifest.components,
        launch: &m.launch,
        tee: "snp",
        measurement: None,
        mrtd: None,
        rtmr0: None,
        rtmr1: None,
        rtmr2: None,
        model: m.model.as_ref().map(|v| Model {
            id: v.model_id(),
            size: v.model_size,
            name: v.model_name.clone(),
        }),
        warnings: &m.warnings,
        policy_written,
    };
    match &m.expected {
        Expected::Snp(d) => r.measurement = Some(hex::encode(d)),
        Expected::Tdx {
            mrtd,
            rtmr0,
            rtmr1,
            rtmr2,
        } => {
            r.tee = "tdx";
            r.mrtd = Some(hex::encode(mrtd));
            r.rtmr0 = Some(rtmr0.map(hex::encode));
            r.rtmr1 = Some(hex::encode(rtmr1));
            r.rtmr2 = Some(hex::encode(rtmr2));
        }
    }
    silk_cli::json(out, &r)
}
