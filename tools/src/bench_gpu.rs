//! `silk bench engine --device cuda`: which GPU it is, how fast its memory is, and how
//! close one-sequence decode comes to that memory's roofline.
//!
//! Decoding one token reads every weight matrix once, so its rate is bounded by
//! `bandwidth / bytes of weights read per token`. The fraction reached is
//! `bytes per token × decode tok/s ÷ bandwidth`. The bandwidth is the card's peak from
//! its data sheet, looked up by the name `nvidia-smi` gives (`SILK_GPU_BANDWIDTH_GBS`
//! overrides it, in GB/s, for a card the table lacks).

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::process::Command;

use candle_core::quantized::gguf_file;
use serde::Serialize;

/// Peak memory bandwidth in GB/s (10⁹ bytes/s) by a substring of the GPU's name; the
/// first match wins, so more specific names come first.
const BANDWIDTH_GBS: &[(&str, f64)] = &[
    ("GH200", 4000.0),
    ("H200", 4800.0),
    ("H100 NVL", 3900.0),
    ("H100 PCIe", 2000.0),
    ("H100", 3350.0),
    ("H800 PCIe", 2000.0),
    ("H800", 3350.0),
    ("B200", 8000.0),
    ("A100-SXM4-80GB", 2039.0),
    ("A100 80GB PCIe", 1935.0),
    ("A100", 1555.0),
    ("L40S", 864.0),
    ("L40", 864.0),
    ("L4", 300.0),
    ("A10G", 600.0),
    ("A10", 600.0),
    ("RTX PRO 6000", 1792.0),
    ("RTX 5090", 1792.0),
    ("RTX 4090", 1008.0),
    ("RTX 6000 Ada", 960.0),
    ("RTX A6000", 768.0),
];

/// The card's peak bandwidth in GB/s, by its name (see [`BANDWIDTH_GBS`]).
pub fn bandwidth_gbs(name: &str) -> Option<f64> {
    BANDWIDTH_GBS
        .iter()
        .find(|(k, _)| name.contains(k))
        .map(|&(_, v)| v)
}

/// The GPU a benchmark ran on.
#[derive(Clone, Debug, Serialize)]
pub struct GpuInfo {
    /// Its name as `nvidia-smi` prints it, e.g. `NVIDIA H100 80GB HBM3`.
    pub name: String,
    /// Peak memory bandwidth in GB/s, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bandwidth_gbs: Option<f64>,
}

impl GpuInfo {
    /// GPU `index` as `nvidia-smi` names it; `None` when nvidia-smi does not answer.
    pub fn query(index: usize) -> Option<Self> {
        let out = Command::new("nvidia-smi")
            .args(["--query-gpu=name", "--format=csv,noheader", "-i"])
            .arg(index.to_string())
            .output()
            .ok()
            .filter(|o| o.status.success())?;
        let name = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let bandwidth_gbs = std::env::var("SILK_GPU_BANDWIDTH_GBS")
            .ok()
            .and_then(|v| v.parse().ok())
            .or_else(|| bandwidth_gbs(&name));
        Some(Self {
            name,
            bandwidth_gbs,
        })
    }
}

/// Bytes of weights one decode step reads in the GGUF at `path`: every tensor but the
/// token embedding, of which a step reads one row (unless the output matrix is the
/// embedding itself, tied, when it is read whole). `None` when the file is not GGUF.
pub fn weight_bytes_per_token(path: &Path) -> Option<u64> {
    let mut r = BufReader::new(File::open(path).ok()?);
    let content = gguf_file::Content::read(&mut r).ok()?;
    let bytes = |info: &gguf_file::TensorInfo| {
        let dt = info.ggml_dtype;
        (info.shape.elem_count() / dt.block_size() * dt.type_size()) as u64
    };
    let tied = !content.tensor_infos.contains_key("output.weight");
    Some(
        content
            .tensor_infos
            .iter()
            .filter(|(name, _)| tied || name.as_str() != "token_embd.weight")
            .map(|(_, info)| bytes(info))
            .sum(),
    )
}

/// Where one-sequence decode stands against the card's memory bandwidth.
#[derive(Clone, Debug, Serialize)]
pub struct Roofline {
    /// Bytes of weights read per decoded token.
    pub weight_bytes_per_token: u64,
    /// Those bytes × decode tok/s, in GB/s.
    pub achieved_gbs: f64,
    /// The card's peak, in GB/s.
    pub peak_gbs: f64,
    /// `achieved_gbs / peak_gbs`.
    pub fraction: f64,
}

impl Roofline {
    /// The roofline of a decode rate, when both the bytes and the card's bandwidth are known.
    pub fn of(bytes: Option<u64>, decode_tok_s: f64, gpu: Option<&GpuInfo>) -> Option<Self> {
        let bytes = bytes?;
        let peak_gbs = gpu?.bandwidth_gbs?;
        let achieved_gbs = bytes as f64 * decode_tok_s / 1e9;
        Some(Self {
            weight_bytes_per_token: bytes,
            achieved_gbs,
            peak_gbs,
            fraction: achieved_gbs / peak_gbs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards_are_told_apart_by_name() {
        for (name, want) in [
            ("NVIDIA H100 80GB HBM3", Some(3350.0)),
            ("NVIDIA H100 PCIe", Some(2000.0)),
            ("NVIDIA H100 NVL", Some(3900.0)),
            ("NVIDIA H200", Some(4800.0)),
            ("NVIDIA GH200 480GB", Some(4000.0)),
            ("NVIDIA A100-SXM4-80GB", Some(2039.0)),
            ("NVIDIA A100 80GB PCIe", Some(1935.0)),
            ("NVIDIA A100-PCIE-40GB", Some(1555.0)),
            ("NVIDIA L40S", Some(864.0)),
            ("NVIDIA L4", Some(300.0)),
            ("Tesla T4", None),
        ] {
            assert_eq!(bandwidth_gbs(name), want, "{name}");
        }
    }

    #[test]
    fn a_tied_model_reads_every_tensor_per_token() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../enclave/engine/tests/fixtures/tiny_llama_q4_1.gguf"
        ));
        let bytes = weight_bytes_per_token(path).expect("a GGUF");
        let file = std::fs::metadata(path).expect("fixture").len();
        // The tensors are the file less its header and alignment padding.
        assert!(bytes < file && bytes > file / 2, "{bytes} of {file}");
        assert!(weight_bytes_per_token(Path::new("Cargo.toml")).is_none());
    }

    #[test]
    fn the_fraction_is_bytes_times_rate_over_peak() {
        let gpu = GpuInfo {
            name: "NVIDIA H100 80GB HBM3".into(),
            bandwidth_gbs: Some(3350.0),
        };
        let r = Roofline::of(Some(100_000_000), 16_750.0, Some(&gpu)).expect("known card");
        assert!((r.achieved_gbs - 1675.0).abs() < 1e-6);
        assert!((r.fraction - 0.5).abs() < 1e-9);
        assert!(Roofline::of(None, 1.0, Some(&gpu)).is_none());
    }
}
