//! Measures this core's f32 FMA peak: the yardstick GEMM efficiency is quoted against.

use std::time::Instant;

/// Single-thread f32 FMA throughput in GFLOP/s (best of a few runs), with the widest vectors
/// this CPU has.
pub fn fma_peak_gflops() -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: avx512f is present.
            return best_of(|iters| unsafe { fma_loop_avx512(iters) }, 16);
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: avx2 and fma are present.
            return best_of(|iters| unsafe { fma_loop_avx2(iters) }, 8);
        }
    }
    0.0
}

fn best_of(f: impl Fn(u64) -> f32, lanes: u64) -> f64 {
    let iters = 20_000_000u64;
    let mut best = 0.0f64;
    for _ in 0..5 {
        let t = Instant::now();
        let sink = f(iters);
        let s = t.elapsed().as_secs_f64();
        std::hint::black_box(sink);
        // 12 independent chains, 2 flops per FMA lane.
        best = best.max((iters * 12 * lanes * 2) as f64 / s / 1e9);
    }
    best
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma_loop_avx512(iters: u64) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm512_set1_ps(1.0); 12];
    let m = _mm512_set1_ps(0.999_999);
    let a = _mm512_set1_ps(1e-7);
    for _ in 0..iters {
        for x in acc.iter_mut() {
            *x = _mm512_fmadd_ps(*x, m, a);
        }
    }
    let mut s = _mm512_setzero_ps();
    for x in acc {
        s = _mm512_add_ps(s, x);
    }
    _mm512_reduce_add_ps(s)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_loop_avx2(iters: u64) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_set1_ps(1.0); 12];
    let m = _mm256_set1_ps(0.999_999);
    let a = _mm256_set1_ps(1e-7);
    for _ in 0..iters {
        for x in acc.iter_mut() {
            *x = _mm256_fmadd_ps(*x, m, a);
        }
    }
    let mut out = [0.0f32; 8];
    let mut s = _mm256_setzero_ps();
    for x in acc {
        s = _mm256_add_ps(s, x);
    }
    _mm256_storeu_ps(out.as_mut_ptr(), s);
    out.iter().sum()
}
