//! kiln's f32 GEMM beside the core's measured FMA peak and the `gemm` crate, on 1 and 2
//! threads (rayon pools). `cargo bench -p kiln-runtime --bench gemm`
//!
//! Weights (B) are prepacked for kiln, as in a compiled artifact; the `gemm` crate gets the
//! plain row-major matrix (it packs inside each call). Attention shapes give kiln a strided B
//! (Kᵀ, or V row-major), packed inside the call too. Each number is the median over runs
//! alternating between kiln and the `gemm` crate, so both see the same machine noise.

use std::time::Instant;

use kiln_runtime::cpu::gemm::{sgemm, BMatrix, Kernel, PackedB};
use kiln_runtime::cpu::peak::fma_peak_gflops;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn data(len: usize, seed: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 7 + seed) % 13) as f32 * 0.1 - 0.6)
        .collect()
}

/// How B is laid out in memory for a shape.
#[derive(Clone, Copy, PartialEq)]
enum BKind {
    /// Weights: kiln prepacked, the gemm crate row-major.
    Weights,
    /// Kᵀ from a row-major K (`n x k`): B(p, j) = K[j][p].
    Transposed,
    /// A row-major activation (`k x n`), e.g. V.
    RowMajor,
}

struct Shape {
    name: &'static str,
    m: usize,
    n: usize,
    k: usize,
    b: BKind,
}

/// Times `f` alternating with `g`: medians of seconds per call of each.
fn time_pair(mut f: impl FnMut(), mut g: impl FnMut(), flops: f64) -> (f64, f64) {
    // Enough runs for a stable median, within ~0.4 s per side for big shapes.
    let runs = ((0.4e9 * 150.0 / flops) as usize).clamp(5, 301);
    for _ in 0..2 {
        f();
        g();
    }
    let (mut tf, mut tg) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let t = Instant::now();
        f();
        tf.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        g();
        tg.push(t.elapsed().as_secs_f64());
    }
    (median(tf), median(tg))
}

fn main() {
    let kernel = Kernel::detect();
    // The machine may be shared: the peak is measured before and after the GEMMs and the
    // higher one is the yardstick.
    let peak_before = fma_peak_gflops();
    let shapes = [
        Shape {
            name: "512^3",
            m: 512,
            n: 512,
            k: 512,
            b: BKind::Weights,
        },
        Shape {
            name: "2048^3",
            m: 2048,
            n: 2048,
            k: 2048,
            b: BKind::Weights,
        },
        Shape {
            name: "MiniLM qkv/out",
            m: 128,
            n: 384,
            k: 384,
            b: BKind::Weights,
        },
        Shape {
            name: "MiniLM ffn up",
            m: 128,
            n: 1536,
            k: 384,
            b: BKind::Weights,
        },
        Shape {
            name: "MiniLM ffn down",
            m: 128,
            n: 384,
            k: 1536,
            b: BKind::Weights,
        },
        Shape {
            name: "GEMV ffn up",
            m: 1,
            n: 1536,
            k: 384,
            b: BKind::Weights,
        },
        Shape {
            name: "GEMV ffn down",
            m: 1,
            n: 384,
            k: 1536,
            b: BKind::Weights,
        },
        Shape {
            name: "attn Q·Kᵀ",
            m: 128,
            n: 128,
            k: 32,
            b: BKind::Transposed,
        },
        Shape {
            name: "attn P·V",
            m: 128,
            n: 32,
            k: 128,
            b: BKind::RowMajor,
        },
    ];
    let pools: Vec<(usize, rayon::ThreadPool)> = [1, 2]
        .into_iter()
        .map(|t| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build();
            (t, pool.expect("a rayon pool"))
        })
        .collect();
    let mut rows = Vec::new();
    rows.push(format!(
        "{:<16} {:>14} {:>3}  {:>10} {:>9}  {:>10}  {:>9}",
        "shape", "m x n x k", "thr", "kiln GF/s", "% peak", "gemm GF/s", "kiln/gemm"
    ));
    let mut results = Vec::new();
    for s in &shapes {
        let (m, n, k) = (s.m, s.n, s.k);
        let a = data(m * k, 1);
        // Row-major k x n B, and its transpose (n x k) for Kᵀ.
        let b = data(k * n, 2);
        let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        let packed = PackedB::pack(&b, k, n, n);
        let mut c = vec![0.0f32; m * n];
        let mut c2 = vec![0.0f32; m * n];
        let flops = 2.0 * (m * n * k) as f64;
        for (threads, pool) in &pools {
            let (ours, theirs) = pool.install(|| {
                let kiln = || {
                    let bm = match s.b {
                        BKind::Weights => BMatrix::Packed(packed.view()),
                        BKind::Transposed => BMatrix::Strided {
                            ptr: bt.as_ptr(),
                            rs: 1,
                            cs: k as isize,
                        },
                        BKind::RowMajor => BMatrix::Strided {
                            ptr: b.as_ptr(),
                            rs: n as isize,
                            cs: 1,
                        },
                    };
                    // SAFETY: A is m x k row-major, B k x n as described, C m x n row-major.
                    unsafe {
                        sgemm(
                            kernel,
                            m,
                            n,
                            k,
                            a.as_ptr(),
                            k as isize,
                            1,
                            bm,
                            c.as_mut_ptr(),
                            n as isize,
                            false,
                        )
                    }
                };
                let par = if *threads > 1 {
                    gemm::Parallelism::Rayon(*threads)
                } else {
                    gemm::Parallelism::None
                };
                let crate_gemm = || {
                    let (bp, rs, cs) = match s.b {
                        BKind::Transposed => (bt.as_ptr(), 1, k as isize),
                        _ => (b.as_ptr(), n as isize, 1),
                    };
                    // SAFETY: the same matrices, as (column stride, row stride) pairs.
                    unsafe {
                        gemm::gemm(
                            m,
                            n,
                            k,
                            c2.as_mut_ptr(),
                            1,
                            n as isize,
                            false,
                            a.as_ptr(),
                            1,
                            k as isize,
                            bp,
                            cs,
                            rs,
                            0.0f32,
                            1.0f32,
                            false,
                            false,
                            false,
                            par,
                        )
                    }
                };
                time_pair(kiln, crate_gemm, flops)
            });
            results.push((
                s.name,
                format!("{m}x{n}x{k}"),
                *threads,
                flops / ours / 1e9,
                flops / theirs / 1e9,
            ));
        }
        let worst = c
            .iter()
            .zip(&c2)
            .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-3, "{}: kiln and gemm differ by {worst}", s.name);
    }
    let peak_after = fma_peak_gflops();
    let peak = peak_before.max(peak_after);
    println!(
        "f32 FMA peak, one core: {peak:.1} GFLOP/s (before {peak_before:.1}, after {peak_after:.1}); kiln kernel: {}",
        kernel.name
    );
    println!("% peak: of one core's peak per thread; medians of runs alternating kiln and gemm");
    for r in rows {
        println!("{r}");
    }
    for (name, shape, threads, gf, gg) in results {
        println!(
            "{:<16} {:>14} {:>3}  {:>10.1} {:>8.0}%  {:>10.1}  {:>9.2}",
            name,
            shape,
            threads,
            gf,
            100.0 * gf / (peak * threads as f64),
            gg,
            gf / gg
        );
    }
}
