//! The native quantised products against candle: dequantise the weights, multiply in f32.
//!
//! The kernels quantise activations to 8 bits (as llama.cpp does), so they differ from
//! the f32 product by that rounding: about 0.4% of the output's scale on average, at
//! most ~1.5% over these outputs. (The exact check, against a reference built from the
//! same quantised activations, is the unit test in `src/kernels/tests.rs`.)

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use silk_engine::kernels::{Backend, QWeight};

fn random(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
}

#[test]
fn native_products_match_candle_dequantised_f32() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let n = 53; // odd rows
    for dtype in [
        GgmlDType::Q4_0,
        GgmlDType::Q4_1,
        GgmlDType::Q8_0,
        GgmlDType::Q5_0,
        GgmlDType::Q4K,
        GgmlDType::Q6K,
    ] {
        // A multiple of the block: 192 for the 32-value formats, two K-quant blocks.
        let k = 192usize
            .next_multiple_of(dtype.block_size())
            .max(2 * dtype.block_size());
        let w = Tensor::from_vec(random(&mut rng, n * k), (n, k), &Device::Cpu).unwrap();
        let q = QTensor::quantize(&w, dtype).unwrap();
        let wd = q.dequantize(&Device::Cpu).unwrap();
        let native = QWeight::from_qtensor(&q).unwrap();
        for m in [1, 3, 8] {
            let x = random(&mut rng, m * k);
            let xt = Tensor::from_vec(x.clone(), (m, k), &Device::Cpu).unwrap();
            let want: Vec<f32> = xt
                .matmul(&wd.t().unwrap())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let rms = (want.iter().map(|v| v * v).sum::<f32>() / want.len() as f32).sqrt();
            for backend in [Backend::Scalar, Backend::best()] {
                let mut got = vec![0f32; m * n];
                native.matmul_with(&x, m, &mut got, backend).unwrap();
                let worst = got
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(
                    worst <= 0.03 * rms,
                    "{dtype:?} m={m} {backend:?}: max error {worst}, output rms {rms}"
                );
            }
        }
    }
}
