//! Quick decode-speed probe: `cargo run --release -p silk-engine --example decode_speed -- MODEL.gguf`.
use std::time::Instant;

use candle_core::Device;
use silk_engine::{load, SeqStep};

fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: decode_speed MODEL.gguf [BATCH]");
    let batch: usize = std::env::args()
        .nth(2)
        .map_or(1, |s| s.parse().expect("batch"));
    let t0 = Instant::now();
    let m = load(path.as_ref(), &Device::Cpu).expect("load").model;
    println!("load {:?}", t0.elapsed());
    let prompt: Vec<u32> = (0..64).map(|i| 100 + i).collect();
    let mut caches: Vec<_> = (0..batch).map(|_| m.new_cache()).collect();
    let t0 = Instant::now();
    for c in caches.iter_mut() {
        m.forward(&mut [SeqStep {
            tokens: &prompt,
            cache: c,
        }])
        .expect("prefill");
    }
    let dt = t0.elapsed().as_secs_f64();
    println!("prefill {:.1} tok/s", (64 * batch) as f64 / dt);
    let steps = 32;
    let t0 = Instant::now();
    for _ in 0..steps {
        let mut s: Vec<SeqStep> = caches
            .iter_mut()
            .map(|c| SeqStep {
                tokens: &[42],
                cache: c,
            })
            .collect();
        m.forward(&mut s).expect("decode");
    }
    let dt = t0.elapsed().as_secs_f64();
    println!(
        "decode batch {batch}: {:.1} tok/s aggregate",
        (steps * batch) as f64 / dt
    );
}
