//! The worker threads the kernels split their rows over.
//!
//! One rayon pool for the whole process, sized by `SILK_THREADS` (default: the number of
//! CPUs). Running a whole model step inside it ([`install`]) makes the calling thread one
//! of the workers, so a matrix product costs a work-stealing split rather than a thread
//! hand-off, and candle's own parallel operations inside the step share the same threads
//! instead of competing with them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

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

/// `pause` instructions between looks for work in [`install_busy`] (about a microsecond).
const SPIN_PAUSES: usize = 16;

/// How many times a thread in [`install_busy`] looks for work without finding any before
/// it gives up and sleeps as rayon's threads do: about 2 ms on current CPUs. Counted, not
/// timed: a clock read per look is cheap on bare metal but can be an emulated device
/// access in a VM without a stable TSC.
const SPIN_IDLE_LOOKS: u32 = 2048;

/// [`install`], with the pool's other threads kept awake until `f` returns.
///
/// A model step hands work to the threads a few hundred times (each matrix product and
/// each layer's attention), with a little serial work between. rayon lets an idle worker
/// fall asleep within microseconds, and waking it costs a futex call and a scheduler
/// round trip (tens of microseconds in a VM) every time; on a batched decode step that
/// was a fifth of the time. Here each other worker runs a job that looks for work in a
/// loop (`rayon::yield_now`) until the step is over, as llama.cpp's threads spin between
/// its graph nodes. The threads sleep again as soon as `f` returns.
pub fn install_busy<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let Some(pool) = pool() else {
        return f();
    };
    if pool.current_num_threads() < 2 || pool.current_thread_index().is_some() {
        return install(f);
    }
    let done = Arc::new(AtomicBool::new(false));
    let r = pool.install(|| {
        let me = rayon::current_thread_index();
        let flag = done.clone();
        pool.spawn_broadcast(move |ctx| {
            // The thread running `f` must never spin: it would hold `f` up (it could pick
            // this job up while waiting for a join inside `f`, which returns only after
            // `f` does).
            if Some(ctx.index()) == me {
                return;
            }
            let mut idle = 0;
            while !flag.load(Ordering::Acquire) {
                if rayon::yield_now() == Some(rayon::Yield::Executed) {
                    idle = 0;
                } else if idle >= SPIN_IDLE_LOOKS {
                    // Long without work: more threads than free CPUs (other processes,
                    // or a step's serial part running long). Spinning then only keeps
                    // the thread that has the work off a CPU; sleep the usual way.
                    return;
                } else {
                    idle += 1;
                    // Looking for work reads the other threads' queues: between looks,
                    // stay off the shared cache lines (and the core's other thread).
                    for _ in 0..SPIN_PAUSES {
                        std::hint::spin_loop();
                    }
                }
            }
        });
        f()
    });
    done.store(true, Ordering::Release);
    r
}
