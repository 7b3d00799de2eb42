//! The cost model on launch lists kiln emits, priced without data (the device model walks
//! every tile and counts, but moves no values).

use kiln_runtime::ascend::cost::{Bound, KernelCost};
use kiln_runtime::ascend::sim::estimate;
use kiln_runtime::ascend::Profile;
use kiln_runtime::ElemType;

use crate::ascend::testing::{build, graph};

/// The cost of the (one) MatMulV3 of an [m, k] x [k, n] product on `profile`.
fn matmul_cost(profile: &str, m: i64, k: i64, n: i64) -> KernelCost {
    let g = graph(&format!(
        "graph @t(%a: f32[{m}, {k}], %b: f32[{k}, {n}]) -> (y: f32[{m}, {n}]) {{
            %0 = MatMul(%a, %b) : f32[{m}, {n}]
            return %0
        }}"
    ));
    let art = build(&g, profile, ElemType::F16, &[]).unwrap();
    let p = Profile::by_name(profile).unwrap();
    let costs = estimate(&art.launch, p).unwrap();
    costs
        .into_iter()
        .find(|c| c.kernel_name == "MatMulV3")
        .unwrap()
}

#[test]
fn a_large_square_matmul_runs_near_the_cube_peak() {
    let p = Profile::by_name("ascend910b2").unwrap();
    // 24 cores x 4096 MACs x 2 flops x 1.8 GHz.
    assert_eq!(p.cube_peak_flops(), 353_894_400_000_000.0);
    let n = 4096;
    let c = matmul_cost("ascend910b2", n, n, n);
    let flops = 2.0 * (n as f64).powi(3);
    let efficiency = flops / c.time_s / p.cube_peak_flops();
    eprintln!(
        "4096^3 fp16 MatMulV3 on ascend910b2: {:.1} us, {:.1} TFLOPS, {:.1}% of the cube peak",
        c.time_s * 1e6,
        flops / c.time_s / 1e12,
        100.0 * efficiency
    );
    assert!(
        (0.70..=0.95).contains(&efficiency),
        "4096^3 at {:.1}% of peak: {c:?}",
        100.0 * efficiency
    );
    assert_eq!(c.bound, Bound::Cube);
    assert_eq!(c.block_dim, 24);
    // 512 tiles of 128x256, 22 on the busiest core, 8 x 16 x 256 fractal steps each.
    assert_eq!(c.cube_cycles, 22 * 8 * 16 * 256);
    // A, B and C fit L2: HBM moves each once.
    assert_eq!(c.hbm_bytes, 3 * (n * n * 2) as u64);
}

#[test]
fn a_decode_gemv_is_hbm_bound() {
    for profile in ["ascend910b2", "ascend910b4"] {
        let p = Profile::by_name(profile).unwrap();
        let c = matmul_cost(profile, 1, 4096, 4096);
        assert_eq!(c.bound, Bound::Hbm, "{profile}: {c:?}");
        let weights = 4096.0 * 4096.0 * 2.0;
        let hbm_s = c.hbm_bytes as f64 / p.hbm_bytes_per_s;
        assert!(c.hbm_bytes as f64 >= weights);
        assert_eq!(c.time_s, p.launch_s + hbm_s);
        eprintln!(
            "1x4096x4096 fp16 GEMV on {profile}: {:.2} us, bound by {:?} ({:.1} MB over HBM)",
            c.time_s * 1e6,
            c.bound,
            c.hbm_bytes as f64 / 1e6
        );
    }
}

#[test]
fn small_kernels_cost_their_launch() {
    let c = matmul_cost("ascend910b2", 7, 64, 128);
    assert_eq!(c.bound, Bound::Launch);
    assert!(c.time_s < 2.5e-6, "{c:?}");
}
