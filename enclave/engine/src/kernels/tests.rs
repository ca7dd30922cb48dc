//! The kernels against a float reference built from the very same quantised values, and
//! the SIMD path against the portable one.

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::act::{quantize_row, Q8Block, QK};
use super::*;

const TYPES: [GgmlDType; 6] = [
    GgmlDType::Q4_0,
    GgmlDType::Q4_1,
    GgmlDType::Q8_0,
    GgmlDType::Q5_0,
    GgmlDType::Q4K,
    GgmlDType::Q6K,
];

/// A width of at least `k` that whole blocks of `dtype` fill.
fn cols_for(dtype: GgmlDType, k: usize) -> usize {
    k.next_multiple_of(dtype.block_size())
}

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // A few large values, like real activations, so block scales differ.
    (0..n)
        .map(|i| rng.gen_range(-1.0f32..1.0) * if i % 37 == 0 { 6.0 } else { 1.0 })
        .collect()
}

/// A quantised `[n, k]` weight and its exact dequantised values.
fn weight(dtype: GgmlDType, n: usize, k: usize, seed: u64) -> (QWeight, Vec<f32>) {
    let t = Tensor::from_vec(random(n * k, seed), (n, k), &Device::Cpu).unwrap();
    let q = QTensor::quantize(&t, dtype).unwrap();
    let deq = q.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap();
    (QWeight::from_qtensor(&q).unwrap(), deq.to_vec1().unwrap())
}

fn dequant_acts(x: &[f32], m: usize, k: usize, fmt: ActFormat) -> Vec<f32> {
    let mut out = Vec::with_capacity(m * k);
    for row in x.chunks(k) {
        let mut q = vec![Q8Block::default(); k / QK];
        quantize_row(row, &mut q, fmt);
        out.extend(
            q.iter()
                .flat_map(|b| b.qs.iter().map(move |&v| b.d * v as f32)),
        );
    }
    out
}

#[test]
fn products_match_the_reference_on_the_same_quantised_values() {
    let n = 37;
    for (ti, &dtype) in TYPES.iter().enumerate() {
        // Two K-quant blocks; five of the others.
        let k = cols_for(dtype, 160).max(2 * dtype.block_size());
        let (w, wd) = weight(dtype, n, k, 10 + ti as u64);
        // Both layouts, each on the best backend and on the portable one.
        let tiled = w.clone().into_tiles();
        let cases = [
            (&w, Backend::best()),
            (&tiled, Backend::best()),
            (&tiled, Backend::Scalar),
        ];
        for (m, (w, backend)) in [1, 3, 8].into_iter().flat_map(|m| cases.map(|c| (m, c))) {
            let x = random(m * k, 100 + m as u64);
            let xd = dequant_acts(&x, m, k, w.quant_type().act_format());
            let mut out = vec![0f32; m * n];
            w.matmul_with(&x, m, &mut out, backend).unwrap();
            for i in 0..m {
                for r in 0..n {
                    let terms = (0..k).map(|j| wd[r * k + j] as f64 * xd[i * k + j] as f64);
                    let (want, mag) = terms.fold((0f64, 0f64), |(s, a), t| (s + t, a + t.abs()));
                    let got = out[i * n + r] as f64;
                    // Q4_1's offset uses the f16-rounded block sum, like llama.cpp: allow
                    // for that rounding on top of float summation error.
                    assert!(
                        (got - want).abs() <= 1e-3 * mag + 1e-6,
                        "{dtype:?} {w:?} {backend:?} m={m} [{i},{r}]: {got} vs {want} (|terms| {mag})"
                    );
                }
            }
        }
    }
}

#[test]
fn simd_and_scalar_agree_bit_for_bit() {
    if !Backend::Avx2.is_available() {
        return;
    }
    let n = 19;
    for (ti, &dtype) in TYPES.iter().enumerate() {
        let k = cols_for(dtype, 512);
        let (w, _) = weight(dtype, n, k, 20 + ti as u64);
        for m in 1..=9 {
            let x = random(m * k, 200 + m as u64);
            let (mut a, mut b) = (vec![0f32; m * n], vec![0f32; m * n]);
            w.matmul_with(&x, m, &mut a, Backend::Scalar).unwrap();
            for backend in [Backend::Avx2, Backend::Avx2Vnni] {
                if !backend.is_available() {
                    continue;
                }
                w.matmul_with(&x, m, &mut b, backend).unwrap();
                let same = a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits());
                assert!(same, "{dtype:?} {backend:?} m={m}: {a:?} vs {b:?}");
            }
            // Tiles (19 rows: the last tile is partly padding), SIMD against portable.
            let tiled = w.clone().into_tiles();
            tiled.matmul_with(&x, m, &mut a, Backend::Scalar).unwrap();
            if Backend::VnniTiles.is_available() {
                tiled
                    .matmul_with(&x, m, &mut b, Backend::VnniTiles)
                    .unwrap();
                let same = a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits());
                assert!(same, "{dtype:?} tiles m={m}: {a:?} vs {b:?}");
            }
        }
    }
}

#[test]
fn fused_products_equal_separate_ones() {
    let k = 64;
    let (wq, _) = weight(GgmlDType::Q4_1, 33, k, 1);
    let (wk, _) = weight(GgmlDType::Q8_0, 5, k, 2);
    let (wv, _) = weight(GgmlDType::Q4_0, 70, k, 3);
    let m = 5;
    let x = random(m * k, 4);
    let mut fused: Vec<Vec<f32>> = [&wq, &wk, &wv]
        .iter()
        .map(|w| vec![0f32; m * w.rows()])
        .collect();
    {
        let mut outs: Vec<&mut [f32]> = fused.iter_mut().map(|v| v.as_mut_slice()).collect();
        matmul_many(&[&wq, &wk, &wv], &x, m, &mut outs, Backend::best()).unwrap();
    }
    for (w, f) in [&wq, &wk, &wv].iter().zip(&fused) {
        let mut alone = vec![0f32; m * w.rows()];
        w.matmul(&x, m, &mut alone).unwrap();
        assert_eq!(&alone, f);
    }
}

#[test]
fn bad_shapes_are_errors() {
    let (w, _) = weight(GgmlDType::Q8_0, 4, 64, 5);
    let mut out = vec![0f32; 8];
    assert!(w.matmul(&[0.0; 100], 2, &mut out).is_err());
    assert!(w.matmul(&[0.0; 128], 2, &mut out[..7]).is_err());
    assert!(QWeight::new(QuantType::Q4_0, 2, 48, vec![0; 54]).is_err());
    assert!(QWeight::new(QuantType::Q4_0, 2, 64, vec![0; 71]).is_err());
    let f = QTensor::quantize(
        &Tensor::zeros((2, 32), candle_core::DType::F32, &Device::Cpu).unwrap(),
        GgmlDType::F16,
    )
    .unwrap();
    assert!(matches!(
        QWeight::from_qtensor(&f),
        Err(KernelError::Unsupported(_))
    ));
}
