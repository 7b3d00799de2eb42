//! Keeping the pool's other workers awake for the length of a run.
//!
//! An idle rayon worker spins briefly, then sleeps; waking it again costs tens of
//! microseconds on a virtual machine, as long as a decode step's parallel GEMVs take. A run
//! has many serial stretches (norms, rope, routing) between parallel steps, long enough for
//! the workers to fall asleep before each one. So while a run lasts, every other worker
//! runs a job that keeps taking whatever work the run shares out, yielding the core in
//! between rather than sleeping.

use std::sync::atomic::{AtomicBool, Ordering};

/// Runs `f` on the calling worker of the current pool while the pool's other workers stay
/// awake, taking the jobs `f` shares out, until `f` returns.
pub(crate) fn with_workers_awake<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let threads = rayon::current_num_threads();
    if threads < 2 {
        return f();
    }
    let done = AtomicBool::new(false);
    rayon::scope(|s| {
        for _ in 1..threads {
            s.spawn(|_| {
                while !done.load(Ordering::Acquire) {
                    if rayon::yield_now() != Some(rayon::Yield::Executed) {
                        // Runnable, never asleep: an idle core comes straight back here,
                        // a busy one gets on with other processes' work meanwhile.
                        std::thread::yield_now();
                    }
                }
            });
        }
        let r = f();
        done.store(true, Ordering::Release);
        r
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_shared_out_meanwhile_is_done_and_the_result_returned() {
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let sum: u64 = pool.install(|| {
                with_workers_awake(|| {
                    use rayon::prelude::*;
                    (0..10_000u64).into_par_iter().map(|v| v * v).sum()
                })
            });
            assert_eq!(sum, (0..10_000u64).map(|v| v * v).sum::<u64>());
        }
    }
}
