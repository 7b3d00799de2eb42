//! GEMM microkernel throughput beside the core's measured FMA peak.
//! `cargo bench -p kiln-runtime --bench gemm`

use std::time::Instant;

use kiln_runtime::cpu::gemm::{gemm, Kernel, PackedB};
use kiln_runtime::cpu::peak::fma_peak_gflops;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let peak = fma_peak_gflops();
    println!("f32 FMA peak, one core: {peak:.1} GFLOP/s");
    for &s in &[512usize, 2048] {
        let a: Vec<f32> = (0..s * s).map(|i| (i % 7) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..s * s).map(|i| (i % 5) as f32 * 0.1).collect();
        let packed = PackedB::pack(&b, s, s, s);
        let mut c = vec![0.0f32; s * s];
        for kernel in Kernel::available() {
            let runs = if s >= 2048 { 5 } else { 30 };
            let mut times = Vec::new();
            for _ in 0..runs + 2 {
                let t = Instant::now();
                gemm(kernel, s, &a, s, packed.view(), &mut c, s, false)
                    .expect("shapes are consistent");
                times.push(t.elapsed().as_secs_f64());
            }
            let t = median(times[2..].to_vec());
            let gf = 2.0 * (s * s * s) as f64 / t / 1e9;
            println!(
                "{s}^3 {:<14} 1 thread: {gf:7.1} GFLOP/s ({:.0}% of peak), median of {runs}",
                kernel.name,
                100.0 * gf / peak
            );
        }
    }
}
