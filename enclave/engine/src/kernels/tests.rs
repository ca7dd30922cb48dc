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
            for backend in [Backend::VnniTiles, Backend::Avx2Tiles] {
                if !backend.is_available() {
                    continue;
                }
                tiled.matmul_with(&x, m, &mut b, backend).unwrap();
                let same = a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits());
                assert!(same, "{dtype:?} tiles {backend:?} m={m}: {a:?} vs {b:?}");
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

/// The AVX2 tile kernels against the portable reference, bit for bit, called directly on
/// whole matrices (so one call runs many tiles): row counts around the tile size (the last
/// tile partly padding), block counts around the prefetch distance, and activation row
/// counts around the kernels' group of four (33: eight groups and one row left).
#[cfg(target_arch = "x86_64")]
#[test]
fn avx2_tiles_match_the_portable_reference_bit_for_bit() {
    if !Backend::Avx2Tiles.is_available() {
        return;
    }
    for (ti, ty) in [
        QuantType::Q4_0,
        QuantType::Q4_1,
        QuantType::Q5_0,
        QuantType::Q8_0,
    ]
    .into_iter()
    .enumerate()
    {
        let dtype = match ty {
            QuantType::Q4_0 => GgmlDType::Q4_0,
            QuantType::Q4_1 => GgmlDType::Q4_1,
            QuantType::Q5_0 => GgmlDType::Q5_0,
            _ => GgmlDType::Q8_0,
        };
        for (ri, n) in [1usize, 15, 16, 17, 40].into_iter().enumerate() {
            for nb in [1usize, 2, 7, 8, 9, 17] {
                let k = nb * QK;
                let seed = (ti * 100 + ri * 10 + nb) as u64;
                let (w, _) = weight(dtype, n, k, 300 + seed);
                let tiled = w.into_tiles();
                assert_eq!(tiled.layout, Layout::Tiles);
                for m in [1usize, 2, 3, 8, 33] {
                    let x = random(m * k, 400 + seed + m as u64);
                    let mut q = vec![Q8Block::default(); m * nb];
                    for (qr, xr) in q.chunks_mut(nb).zip(x.chunks(k)) {
                        quantize_row(xr, qr, ty.act_format());
                    }
                    let acts: Vec<&[Q8Block]> = q.chunks(nb).collect();
                    let (mut want, mut got) = (vec![0f32; m * n], vec![1f32; m * n]);
                    for (o, simd) in [(&mut want, false), (&mut got, true)] {
                        let mut bands = OutRows::split(o, m, n, n);
                        if simd {
                            tiles_avx2::dot_tiles(ty, &tiled.data, &acts, nb, &mut bands[0]);
                        } else {
                            tiles::dot_tiles(ty, &tiled.data, &acts, nb, &mut bands[0]);
                        }
                    }
                    let same = want
                        .iter()
                        .zip(&got)
                        .all(|(p, q)| p.to_bits() == q.to_bits());
                    assert!(same, "{ty:?} n={n} nb={nb} m={m}: {want:?} vs {got:?}");
                }
            }
        }
    }
}

/// Weights that would saturate a careless kernel: Q8_0 values of ±127 and Q5_0/Q4 values
/// at their extremes against activations of ±127 of one sign (every `maddubs` pair and
/// every 16-bit partial sum at its bound), through the backend's whole path.
#[test]
fn avx2_tiles_are_exact_at_the_saturation_bounds() {
    if !Backend::Avx2Tiles.is_available() {
        return;
    }
    let (n, k, m) = (21, 4 * QK, 3);
    // One value of each block the opposite of the others and as large: it sets the block's
    // scale, and the others quantise to the largest unsigned value (15, 31; ±127 for Q8_0).
    let w: Vec<f32> = (0..n * k)
        .map(|i| {
            let v = if i % QK == 0 { -1.0 } else { 1.0 };
            if (i / k) % 2 == 0 {
                v
            } else {
                -v
            }
        })
        .collect();
    let x: Vec<f32> = (0..m * k)
        .map(|i| match i / k {
            0 => 1.0,
            1 => -1.0,
            _ => {
                if i % 2 == 0 {
                    1.0
                } else {
                    -1.0
                }
            }
        })
        .collect();
    let t = Tensor::from_vec(w, (n, k), &Device::Cpu).unwrap();
    for dtype in [
        GgmlDType::Q4_0,
        GgmlDType::Q4_1,
        GgmlDType::Q5_0,
        GgmlDType::Q8_0,
    ] {
        let q = QTensor::quantize(&t, dtype).unwrap();
        let tiled = QWeight::from_qtensor(&q).unwrap().into_tiles();
        let (mut a, mut b) = (vec![0f32; m * n], vec![0f32; m * n]);
        tiled.matmul_with(&x, m, &mut a, Backend::Scalar).unwrap();
        tiled
            .matmul_with(&x, m, &mut b, Backend::Avx2Tiles)
            .unwrap();
        let same = a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits());
        assert!(same, "{dtype:?}: {a:?} vs {b:?}");
    }
}

/// Raw K-quant blocks, `rows` rows of `blocks` each: random bytes (every scale and
/// minimum pattern, Q6_K scales down to -128) with f16 scales from tiny to the largest
/// finite, and every third row at the integer bounds the AVX2 kernel relies on (Q4_K:
/// every nibble 15 and every scale and minimum 63; Q6_K: every value -32, scales -128).
fn k_blocks(ty: QuantType, rows: usize, blocks: usize, seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let bb = ty.block_bytes();
    let mut data: Vec<u8> = (0..rows * blocks * bb).map(|_| rng.gen()).collect();
    // Finite f16s: 1.0, the smallest subnormal, the largest finite (both signs), random.
    let scales = [0x3c00u16, 0x0001, 0x7bff, 0xfbff, 0x1400, 0x2e66];
    for (i, blk) in data.chunks_exact_mut(bb).enumerate() {
        let row = i / blocks;
        if row % 3 == 2 {
            match ty {
                QuantType::Q4K => blk[4..].fill(0xff),
                _ => {
                    blk[..192].fill(0);
                    blk[192..208].fill(0x80);
                }
            }
        }
        let mut f16 = |at: usize| {
            let v = if rng.gen_range(0..4) == 0 {
                scales[rng.gen_range(0..scales.len())]
            } else {
                rng.gen_range(0x0400u16..0x3800) | if rng.gen() { 0x8000 } else { 0 }
            };
            blk[at..at + 2].copy_from_slice(&v.to_le_bytes());
        };
        match ty {
            QuantType::Q4K => {
                f16(0);
                f16(2);
            }
            _ => f16(208),
        }
    }
    data
}

/// Activations for the K-quant tests: random, then rows of one sign at the quantiser's
/// extremes (every value ±127) and alternating.
fn k_acts(m: usize, k: usize, seed: u64) -> Vec<f32> {
    let mut x = random(m * k, seed);
    for (r, row) in x.chunks_mut(k).enumerate() {
        match r % 4 {
            1 => row.fill(1.0),
            2 => row.fill(-3.0),
            3 => row
                .iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v = if i % 2 == 0 { 1.0 } else { -1.0 }),
            _ => {}
        }
    }
    x
}

/// Tiled Q4_K and Q6_K against the row kernels, bit for bit: the AVX2 tile kernel called
/// directly on whole matrices (many tiles, the last partly padding) and through the
/// backends (bands of rows), the portable tile reference, and the scalar and AVX2 row
/// kernels all give the same bits, for row counts around the tile, one to three blocks,
/// and activation row counts around the kernel's group of four.
#[test]
fn k_quant_tiles_equal_the_row_kernels_bit_for_bit() {
    for (ti, ty) in [QuantType::Q4K, QuantType::Q6K].into_iter().enumerate() {
        for (ri, n) in [1usize, 15, 16, 17, 40].into_iter().enumerate() {
            for blocks in [1usize, 2, 3] {
                let (nb, k) = (8 * blocks, 256 * blocks);
                let seed = (ti * 100 + ri * 10 + blocks) as u64;
                let w = QWeight::new(ty, n, k, k_blocks(ty, n, blocks, 500 + seed)).unwrap();
                let tiled = w.clone().into_tiles();
                assert_eq!(tiled.layout, Layout::Tiles);
                for m in [1usize, 2, 3, 4, 5, 8, 33] {
                    let x = k_acts(m, k, 600 + seed + m as u64);
                    let mut want = vec![0f32; m * n];
                    w.matmul_with(&x, m, &mut want, Backend::Scalar).unwrap();
                    let check = |got: &[f32], what: &str| {
                        let same = want
                            .iter()
                            .zip(got)
                            .all(|(p, q)| p.to_bits() == q.to_bits());
                        assert!(
                            same,
                            "{ty:?} {what} n={n} nb={nb} m={m}: {want:?} vs {got:?}"
                        );
                    };
                    let mut got = vec![1f32; m * n];
                    tiled.matmul_with(&x, m, &mut got, Backend::Scalar).unwrap();
                    check(&got, "tile reference");
                    for backend in [Backend::Avx2, Backend::Avx2Tiles] {
                        if !backend.is_available() {
                            continue;
                        }
                        let mut got = vec![1f32; m * n];
                        w.clone()
                            .prepared_for(backend)
                            .matmul_with(&x, m, &mut got, backend)
                            .unwrap();
                        check(&got, &format!("{backend:?}"));
                    }
                    #[cfg(target_arch = "x86_64")]
                    if Backend::Avx2Tiles.is_available() {
                        let mut q = vec![Q8Block::default(); m * nb];
                        for (qr, xr) in q.chunks_mut(nb).zip(x.chunks(k)) {
                            quantize_row(xr, qr, ty.act_format());
                        }
                        let acts: Vec<&[Q8Block]> = q.chunks(nb).collect();
                        let mut got = vec![1f32; m * n];
                        let mut bands = OutRows::split(&mut got, m, n, n);
                        tiles_k_avx2::dot_tiles(ty, &tiled.data, &acts, nb, &mut bands[0]);
                        check(&got, "AVX2 tile kernel");
                    }
                }
            }
        }
    }
}

/// Which backends tile the K-quants: both tile backends do (with the AVX2 K kernel, whose
/// results are the row kernels' bit for bit); the others keep rows.
#[test]
fn the_tile_backends_tile_k_quants() {
    let w = QWeight::new(QuantType::Q4K, 3, 256, k_blocks(QuantType::Q4K, 3, 1, 7)).unwrap();
    for backend in [
        Backend::Scalar,
        Backend::Avx2,
        Backend::Avx2Vnni,
        Backend::VnniTiles,
        Backend::Avx2Tiles,
    ] {
        let want = if matches!(backend, Backend::VnniTiles | Backend::Avx2Tiles) {
            Layout::Tiles
        } else {
            Layout::Rows
        };
        assert_eq!(w.clone().prepared_for(backend).layout, want, "{backend:?}");
    }
}
