//! The default model's (SmolLM2-135M) matrix products at decode (m = 1), batched decode
//! (m = 8) and prefill (m = 64) sizes: the native kernels against candle's `QMatMul`, and
//! where the CPU has them (AVX2 or AVX-512 VNNI), the tiled kernels (`tiles`) against the
//! row kernels (`native`).
//!
//! `cargo bench -p silk-engine --bench kernels`; `SILK_THREADS=N` sets the threads.
// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::time::Duration;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use silk_engine::kernels::{self, Backend, QWeight};

/// (name, type, rows n, cols k): SmolLM2-135M's shapes (q, k, v fused as one 960-row
/// product the way the decoder runs them; gate and up likewise).
const SHAPES: [(&str, GgmlDType, usize, usize); 6] = [
    ("qkv_q4_1", GgmlDType::Q4_1, 960, 576),
    ("gate_up_q4_1", GgmlDType::Q4_1, 3072, 576),
    ("down_q4_1", GgmlDType::Q4_1, 576, 1536),
    ("gate_up_q4_0", GgmlDType::Q4_0, 3072, 576),
    ("gate_up_q8_0", GgmlDType::Q8_0, 3072, 576),
    ("output_q8_0", GgmlDType::Q8_0, 49152, 576),
];

fn data(n: usize) -> Vec<f32> {
    // Deterministic, varied values; the timings do not depend on them.
    (0..n)
        .map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 250.0)
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("matmul");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    println!(
        "threads: {}, backend: {:?}",
        kernels::thread_count(),
        Backend::best()
    );
    for (name, dtype, n, k) in SHAPES {
        let w = Tensor::from_vec(data(n * k), (n, k), &Device::Cpu).expect("weights");
        let q = QTensor::quantize(&w, dtype).expect("quantize");
        let native = QWeight::from_qtensor(&q).expect("native");
        // The row kernels the tiles replace.
        let rows_backend = match Backend::best() {
            Backend::VnniTiles => Backend::Avx2Vnni,
            Backend::Avx2Tiles => Backend::Avx2,
            b => b,
        };
        let tiled = Backend::best()
            .tiles()
            .then(|| native.clone().prepared_for(Backend::best()));
        let candle = QMatMul::from_qtensor(q).expect("qmatmul");
        for m in [1usize, 8, 64] {
            let x = data(m * k);
            let xt = Tensor::from_vec(x.clone(), (m, k), &Device::Cpu).expect("x");
            let mut out = vec![0f32; m * n];
            g.throughput(Throughput::Elements((m * n * k) as u64));
            g.bench_with_input(
                BenchmarkId::new(format!("{name}/native"), m),
                &m,
                |b, &m| {
                    b.iter(|| {
                        native
                            .matmul_with(&x, m, &mut out, rows_backend)
                            .expect("matmul")
                    })
                },
            );
            if let Some(t) = &tiled {
                g.bench_with_input(BenchmarkId::new(format!("{name}/tiles"), m), &m, |b, &m| {
                    b.iter(|| t.matmul(&x, m, &mut out).expect("matmul"))
                });
            }
            if m <= 8 {
                g.bench_with_input(BenchmarkId::new(format!("{name}/candle"), m), &m, |b, _| {
                    b.iter(|| candle.forward(&xt).expect("forward"))
                });
            }
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
