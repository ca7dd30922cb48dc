//! The worker threads the kernels split their rows over.
//!
//! One rayon pool for the whole process, sized by `SILK_THREADS` (default: the number of
//! CPUs). Running a whole model step inside it ([`install`]) makes the calling thread one
//! of the workers, so a matrix product costs a work-stealing split rather than a thread
//! hand-off, and candle's own parallel operations inside the step share the same threads
//! instead of competing with them.

use std::sync::OnceLock;

/// The environment variable that sets the number of kernel threads.
pub const THREADS_ENV: &str = "SILK_THREADS";

fn pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        let n = std::env::var(THREADS_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("silk-kernel-{i}"))
            .build()
            .ok()
    })
    .as_ref()
}

/// Threads the kernels use: `SILK_THREADS` if set to a positive number, else the CPUs.
pub fn thread_count() -> usize {
    pool().map_or_else(rayon::current_num_threads, |p| p.current_num_threads())
}

/// Runs `f` on the kernel pool (directly, when already on it).
pub fn install<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    match pool() {
        Some(p) if p.current_thread_index().is_none() => p.install(f),
        // Already a worker of this pool, or the pool could not be built (then rayon's
        // global pool serves).
        _ => f(),
    }
}
