//! Elementwise kernels (AIV): Add, Sub, Mul, RealDiv, Pow, Maximum, Minimum, the unary
//! math and activations, comparisons, logical ops, SelectV2, ClipByValueV2 (x, min, max),
//! Cast and TensorMove.
//!
//! Tiling (`totalLength`, `blockLength`, `tileLength`, `bufferNum`): block b handles output
//! elements b·blockLength .. (b+1)·blockLength; it walks them in tiles of tileLength, each
//! input tile loaded into UB (broadcast to the output by index, ONNX style), computed in
//! f64 from values exact in the input dtype (so in f32 or better) and rounded to the output
//! dtype, stored back. UB holds `bufferNum` tiles of every input and of the output, plus an
//! f32 temporary per value.

use crate::ascend::descriptor::{Format, TensorBinding};
use crate::ascend::kernels::split::Broadcast;
use crate::ascend::kernels::SimulateFn;
use crate::ascend::sim::core::{KernelSim, Mem, SimResult};
use crate::reject;

pub const KERNELS: &[(&str, SimulateFn)] = &[
    ("Add", run),
    ("Sub", run),
    ("Mul", run),
    ("RealDiv", run),
    ("Pow", run),
    ("Maximum", run),
    ("Minimum", run),
    ("Neg", run),
    ("Abs", run),
    ("Sqrt", run),
    ("Reciprocal", run),
    ("Exp", run),
    ("Log", run),
    ("Sigmoid", run),
    ("Tanh", run),
    ("Relu", run),
    ("Erf", run),
    ("Sin", run),
    ("Cos", run),
    ("Softplus", run),
    ("Equal", run),
    ("Less", run),
    ("LessEqual", run),
    ("Greater", run),
    ("GreaterEqual", run),
    ("IsNan", run),
    ("LogicalAnd", run),
    ("LogicalOr", run),
    ("LogicalNot", run),
    ("SelectV2", run),
    ("ClipByValueV2", run),
    ("Cast", run),
    ("TensorMove", run),
];

/// An elementwise function of its inputs' values.
type ElemFn = fn(&[f64]) -> f64;

/// The function of kernel `name`: its arity, its value per element, and vector
/// instructions per element (for the cost model).
fn op(name: &str) -> Option<(usize, ElemFn, u64)> {
    Some(match name {
        "Add" => (2, |x| x[0] + x[1], 1),
        "Sub" => (2, |x| x[0] - x[1], 1),
        "Mul" => (2, |x| x[0] * x[1], 1),
        "RealDiv" => (2, |x| x[0] / x[1], 1),
        "Pow" => (2, |x| x[0].powf(x[1]), 3),
        "Maximum" => (
            2,
            |x| {
                if x[0].is_nan() || x[1].is_nan() {
                    f64::NAN
                } else {
                    x[0].max(x[1])
                }
            },
            1,
        ),
        "Minimum" => (
            2,
            |x| {
                if x[0].is_nan() || x[1].is_nan() {
                    f64::NAN
                } else {
                    x[0].min(x[1])
                }
            },
            1,
        ),
        "Neg" => (1, |x| -x[0], 1),
        "Abs" => (1, |x| x[0].abs(), 1),
        "Sqrt" => (1, |x| x[0].sqrt(), 1),
        "Reciprocal" => (1, |x| 1.0 / x[0], 1),
        "Exp" => (1, |x| x[0].exp(), 1),
        "Log" => (1, |x| x[0].ln(), 1),
        "Sigmoid" => (1, |x| 1.0 / (1.0 + (-x[0]).exp()), 4),
        "Tanh" => (1, |x| x[0].tanh(), 6),
        "Relu" => (1, |x| if x[0] < 0.0 { 0.0 } else { x[0] }, 1),
        "Erf" => (1, |x| erf(x[0]), 12),
        "Sin" => (1, |x| x[0].sin(), 10),
        "Cos" => (1, |x| x[0].cos(), 10),
        "Softplus" => (
            1,
            |x| {
                if x[0] > 30.0 {
                    x[0]
                } else {
                    x[0].exp().ln_1p()
                }
            },
            3,
        ),
        "Equal" => (2, |x| (x[0] == x[1]) as u8 as f64, 1),
        "Less" => (2, |x| (x[0] < x[1]) as u8 as f64, 1),
        "LessEqual" => (2, |x| (x[0] <= x[1]) as u8 as f64, 1),
        "Greater" => (2, |x| (x[0] > x[1]) as u8 as f64, 1),
        "GreaterEqual" => (2, |x| (x[0] >= x[1]) as u8 as f64, 1),
        "IsNan" => (1, |x| x[0].is_nan() as u8 as f64, 1),
        "LogicalAnd" => (2, |x| (x[0] != 0.0 && x[1] != 0.0) as u8 as f64, 1),
        "LogicalOr" => (2, |x| (x[0] != 0.0 || x[1] != 0.0) as u8 as f64, 1),
        "LogicalNot" => (1, |x| (x[0] == 0.0) as u8 as f64, 1),
        "SelectV2" => (3, |x| if x[0] != 0.0 { x[1] } else { x[2] }, 1),
        "ClipByValueV2" => (
            3,
            |x| {
                if x[0].is_nan() {
                    x[0]
                } else {
                    x[0].max(x[1]).min(x[2])
                }
            },
            2,
        ),
        "Cast" | "TensorMove" => (1, |x| x[0], 1),
        _ => return None,
    })
}

/// erf to about 1e-7 (Abramowitz & Stegun 7.1.26), below what f16 and bf16 resolve.
pub fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    (1.0 - poly * (-z * z).exp()).copysign(x)
}

fn run(sim: &mut KernelSim) -> SimResult<()> {
    let name = sim.desc.kernel_name.as_str();
    let Some((arity, f, ops)) = op(name) else {
        reject!("no elementwise kernel {name}");
    };
    run_with(sim, arity, &f, ops)
}

/// Runs an elementwise kernel of `arity` inputs computing `f` per element, `ops` vector
/// instructions per element (for kernels with attributes, which build `f` from them).
pub fn run_with(
    sim: &mut KernelSim,
    arity: usize,
    f: &dyn Fn(&[f64]) -> f64,
    ops: u64,
) -> SimResult<()> {
    let name = sim.desc.kernel_name.as_str();
    if sim.desc.inputs.len() != arity {
        reject!(
            "{name} takes {arity} inputs, the descriptor binds {}",
            sim.desc.inputs.len()
        );
    }
    let out = sim.output(0)?;
    let ins: Vec<&TensorBinding> = (0..arity).map(|i| sim.input(i)).collect::<SimResult<_>>()?;
    for b in ins.iter().chain([&out]) {
        if b.format != Format::Nd {
            reject!("{name} takes ND tensors, not {}", b.format);
        }
    }
    let maps: Vec<Broadcast> = ins
        .iter()
        .map(|b| Broadcast::new(&out.shape, &b.shape))
        .collect::<SimResult<_>>()?;
    let total = sim.tiling_count("totalLength")?;
    let block_length = sim.tiling_positive("blockLength")?;
    let tile = sim.tiling_positive("tileLength")?;
    let buffers = sim.tiling_positive("bufferNum")?;
    if total as u64 != out.numel() {
        reject!(
            "tiling totalLength {total} but the output has {} elements",
            out.numel()
        );
    }
    if block_length * sim.block_dim() < total {
        reject!(
            "{} blocks of {block_length} elements do not cover the {total} elements",
            sim.block_dim()
        );
    }
    let align = sim.profile.ub_align as usize;
    let up = |bytes: usize| (bytes.div_ceil(align) * align) as u64;
    for b in 0..sim.block_dim() {
        let mut core = sim.core(b);
        let mut queues = Vec::new();
        for (i, x) in ins.iter().enumerate() {
            let q = (0..buffers)
                .map(|j| core.alloc(Mem::Ub, &format!("in{i}.{j}"), up(tile * x.dtype.size())))
                .collect::<SimResult<Vec<_>>>()?;
            queues.push(q);
        }
        let outq = (0..buffers)
            .map(|j| core.alloc(Mem::Ub, &format!("out.{j}"), up(tile * out.dtype.size())))
            .collect::<SimResult<Vec<_>>>()?;
        for i in 0..=arity {
            core.alloc(Mem::Ub, &format!("f32 temp {i}"), up(tile * 4))?;
        }
        let start = b * block_length;
        let end = total.min(start + block_length);
        let mut idx = Vec::with_capacity(tile);
        for (t, s) in (start..end).step_by(tile).enumerate() {
            let n = tile.min(end - s);
            let slot = t % buffers;
            for (i, x) in ins.iter().enumerate() {
                idx.clear();
                idx.extend((s..s + n).map(|o| maps[i].index(o)));
                core.load_elements(queues[i][slot], x, &idx)?;
            }
            let mut args = vec![0f64; arity];
            let dry = core.is_dry();
            let vals: Vec<f64> = (0..n)
                .map(|e| {
                    if dry {
                        return 0.0;
                    }
                    for (i, q) in queues.iter().enumerate() {
                        args[i] = core.data(q[slot]).0[e];
                    }
                    f(&args)
                })
                .collect();
            core.vector(outq[slot], out.dtype, (1, n), vals, ops)?;
            core.store_flat(out, outq[slot], s)?;
        }
    }
    Ok(())
}
