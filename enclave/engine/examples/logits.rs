//! Prints the last-position logits for token ids: `logits MODEL.gguf ID...` (one per line).
use candle_core::Device;
use silk_engine::{load, SeqStep};

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: logits MODEL.gguf ID...");
    let ids: Vec<u32> = args.map(|a| a.parse().expect("token id")).collect();
    let m = load(path.as_ref(), &Device::Cpu).expect("load").model;
    let mut c = m.new_cache();
    let l = m
        .forward(&mut [SeqStep {
            tokens: &ids,
            cache: &mut c,
        }])
        .expect("forward");
    for v in l.to_vec2::<f32>().expect("logits")[0].iter() {
        println!("{v}");
    }
}
