//! Elementwise activations with attributes (AIV), run like the other elementwise kernels
//! ([`super::elementwise`]) with their attributes in the tiling:
//! - SwiGlu(gate, up): `g * sigmoid(alpha * g) * (u + beta)` with g = min(gate, limit),
//!   u = clamp(up, -limit, limit) when `hasLimit` (kiln's `swiglu`). Fields `alphaBits`,
//!   `betaBits`, `limitBits` (f32 bits), `hasLimit`.
//! - GeluV2(x): `x * Phi(x)`, or its tanh approximation when `approximate` = 1.

use crate::ascend::kernels::elementwise::{erf, run_with};
use crate::ascend::kernels::SimulateFn;
use crate::ascend::sim::core::{KernelSim, Reject, SimResult};

pub const KERNELS: &[(&str, SimulateFn)] = &[("SwiGlu", swiglu), ("GeluV2", gelu)];

fn f32_field(sim: &KernelSim, name: &str) -> SimResult<f64> {
    let bits = sim.tiling(name)?;
    u32::try_from(bits)
        .map(|b| f32::from_bits(b) as f64)
        .map_err(|_| Reject(format!("tiling {name} {bits} is not an f32")))
}

fn swiglu(sim: &mut KernelSim) -> SimResult<()> {
    let alpha = f32_field(sim, "alphaBits")?;
    let beta = f32_field(sim, "betaBits")?;
    let limit = match sim.tiling_count("hasLimit")? {
        0 => None,
        _ => Some(f32_field(sim, "limitBits")?),
    };
    let f = move |x: &[f64]| {
        let (g, u) = match limit {
            Some(l) => (x[0].min(l), x[1].clamp(-l, l)),
            None => (x[0], x[1]),
        };
        g / (1.0 + (-alpha * g).exp()) * (u + beta)
    };
    run_with(sim, 2, &f, 6)
}

fn gelu(sim: &mut KernelSim) -> SimResult<()> {
    let tanh = sim.tiling_count("approximate")? != 0;
    let f = move |x: &[f64]| {
        let v = x[0];
        if tanh {
            let c = (2.0 / std::f64::consts::PI).sqrt();
            0.5 * v * (1.0 + (c * (v + 0.044715 * v * v * v)).tanh())
        } else {
            0.5 * v * (1.0 + erf(v / std::f64::consts::SQRT_2))
        }
    };
    run_with(sim, 1, &f, 12)
}
