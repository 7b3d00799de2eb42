//! GroupedMatmul (AIC) and GroupedMatmulSwiglu (MIX): one matmul per expert over that
//! expert's rows of the permuted tokens, the rows given at run time by the group list (the
//! cumulative end of each expert's rows, from MoeInitRoutingV2).
//!
//! GroupedMatmul: x [M, K], weight [E, K, N] (FRACTAL_NZ from compile time, or ND), bias
//! [E, N]?, group list [E] i64 -> y [M, N]. GroupedMatmulSwiglu: x, gate weight and up
//! weight [E, K, N], their biases [E, N]? (both or neither), group list -> h [M, N] =
//! act(x·Wg + bg, x·Wu + bu): the cube computes both tiles into two L0C accumulators, the
//! fixpipe writes them to the workspace in f32, the vector core applies the activation
//! (`activation` 0: swiglu with alphaBits, betaBits, limitBits, hasLimit; 1: gelu(g)·u;
//! 2: relu(g)·u; 3: g·u) and stores h.
//!
//! Tiling: experts, m, n, k, the cube blocking (baseM.. dbL0C, see [`super::super::matmul`]),
//! hasBias. The output tiles of all experts (expert-major, then M, then N) are dealt to
//! the blocks round robin: tile t to block t % blockDim. A dry run (no values) assumes the
//! rows split evenly over the experts.

use crate::ascend::descriptor::{Format, TensorBinding};
use crate::ascend::kernels::elementwise::erf;
use crate::ascend::kernels::matmul::{Blocking, Cube};
use crate::ascend::sim::core::{matrix_dims, KernelSim, Mem, Reject, SimResult};
use crate::model::tensor::ElemType;
use crate::reject;

fn f32_field(sim: &KernelSim, name: &str) -> SimResult<f32> {
    let bits = sim.tiling(name)?;
    u32::try_from(bits)
        .map(f32::from_bits)
        .map_err(|_| Reject(format!("tiling {name} {bits} is not an f32")))
}

/// The activation of the swiglu variant: (kind, alpha, beta, limit).
fn activation(sim: &KernelSim) -> SimResult<impl Fn(f32, f32) -> f32> {
    let kind = sim.tiling_count("activation")?;
    let alpha = f32_field(sim, "alphaBits")?;
    let beta = f32_field(sim, "betaBits")?;
    let limit = match sim.tiling_count("hasLimit")? {
        0 => None,
        _ => Some(f32_field(sim, "limitBits")?),
    };
    if kind > 3 {
        reject!("tiling activation {kind} is not 0..=3");
    }
    Ok(move |g: f32, u: f32| match kind {
        0 => {
            let (g, u) = match limit {
                Some(l) => (g.min(l), u.clamp(-l, l)),
                None => (g, u),
            };
            g / (1.0 + (-alpha * g).exp()) * (u + beta)
        }
        1 => 0.5 * g * (1.0 + erf(g as f64 / std::f64::consts::SQRT_2) as f32) * u,
        2 => g.max(0.0) * u,
        _ => g * u,
    })
}

pub fn run(sim: &mut KernelSim) -> SimResult<()> {
    let swiglu = sim.desc.kernel_name == "GroupedMatmulSwiglu";
    let x = sim.input(0)?;
    let weights: Vec<&TensorBinding> = if swiglu {
        vec![sim.input(1)?, sim.input(2)?]
    } else {
        vec![sim.input(1)?]
    };
    let nw = weights.len();
    let biases: Vec<Option<&TensorBinding>> = (0..nw).map(|i| sim.opt_input(1 + nw + i)).collect();
    let group_list = sim.input(1 + 2 * nw)?;
    let y = sim.output(0)?;
    let e = sim.tiling_positive("experts")?;
    let (m, n, k) = (
        sim.tiling_count("m")?,
        sim.tiling_positive("n")?,
        sim.tiling_positive("k")?,
    );
    let has_bias = sim.tiling_count("hasBias")? != 0;
    if biases.iter().any(|b| b.is_some() != has_bias) {
        reject!("tiling hasBias disagrees with the bound biases");
    }
    if matrix_dims(x) != (m, k)
        || matrix_dims(y) != (m, n)
        || x.format != Format::Nd
        || y.format != Format::Nd
    {
        reject!(
            "x is {:?} and y {:?}, the tiling says [{m}, {k}] and [{m}, {n}] ND",
            x.shape,
            y.shape
        );
    }
    for w in &weights {
        if w.shape != [e as i64, k as i64, n as i64] || w.dtype != x.dtype {
            reject!(
                "a weight is {} {:?}, the tiling says {} [{e}, {k}, {n}]",
                w.dtype,
                w.shape,
                x.dtype
            );
        }
    }
    if biases.iter().flatten().any(|b| b.numel() != (e * n) as u64) {
        reject!("biases must be [{e}, {n}]");
    }
    if group_list.numel() != e as u64 || !matches!(group_list.dtype, ElemType::I64 | ElemType::I32)
    {
        reject!("the group list must be {e} integers");
    }
    let act = if swiglu { Some(activation(sim)?) } else { None };
    let blocking = Blocking::read(sim)?;
    let (bm, bn) = (blocking.base_m, blocking.base_n);
    let size = x.dtype.size() as u64;
    let ws = if swiglu {
        let Some(w) = &sim.desc.workspace else {
            reject!("GroupedMatmulSwiglu needs a workspace");
        };
        let per = (2 * bm * bn * 4).div_ceil(512) * 512;
        if (per * sim.block_dim()) as u64 > w.bytes {
            reject!(
                "the workspace has {} B, the blocks need {} B",
                w.bytes,
                per * sim.block_dim()
            );
        }
        Some((w.buffer, w.offset, per))
    } else {
        None
    };
    let blocks = sim.block_dim();
    for blk in 0..blocks {
        let mut core = sim.core(blk);
        // The group list, read by the scalar unit.
        let mut ends = Vec::with_capacity(e);
        for i in 0..e {
            match core.scalar_read(group_list, i)? {
                Some(v) => ends.push(v as i64),
                None => ends.push(((i + 1) * m / e) as i64),
            }
        }
        let mut start = 0i64;
        let mut ranges = Vec::with_capacity(e);
        for (i, &end) in ends.iter().enumerate() {
            if end < start || end > m as i64 {
                reject!("group list entry {i} = {end} is not in {start}..={m}");
            }
            ranges.push((start as usize, end as usize));
            start = end;
        }
        let mut cube = Cube::new(
            &mut core,
            blocking.clone(),
            size,
            has_bias,
            if swiglu { 2 } else { 1 },
        )?;
        let ub = |c: usize, b: usize| ((c * b).div_ceil(32) * 32) as u64;
        let ub_tiles = if swiglu {
            Some((
                core.alloc(Mem::Ub, "gate", bm as u64 * ub(bn, 4))?,
                core.alloc(Mem::Ub, "up", bm as u64 * ub(bn, 4))?,
                core.alloc(Mem::Ub, "h", bm as u64 * ub(bn, size as usize))?,
            ))
        } else {
            None
        };
        let dry = core.is_dry();
        let mut t = 0usize;
        let mut mine = 0usize;
        for (ex, &(r0, r1)) in ranges.iter().enumerate() {
            for m0 in (r0..r1).step_by(bm) {
                for n0 in (0..n).step_by(bn) {
                    let this = t;
                    t += 1;
                    if this % blocks != blk {
                        continue;
                    }
                    let (rows, cols) = (bm.min(r1 - m0), bn.min(n - n0));
                    let accs: Vec<_> = (0..nw)
                        .map(|i| cube.c_l0[(mine * nw + i) % cube.c_l0.len()])
                        .collect();
                    mine += 1;
                    for (i, w) in weights.iter().enumerate() {
                        let bias = biases[i].map(|b| (b, ex * n + n0));
                        cube.product(
                            &mut core,
                            accs[i],
                            (x, m0),
                            (w, ex * k, n0),
                            (rows, cols, k),
                            bias,
                        )?;
                    }
                    let Some((buf, off, per)) = ws else {
                        cube.write(&mut core, y, accs[0], (m0, n0), (rows, cols))?;
                        continue;
                    };
                    // Both products to the workspace, the activation on the vector core.
                    let region = |j: usize| TensorBinding {
                        buffer: buf,
                        offset: off + (blk * per + j * bm * bn * 4) as u64,
                        dtype: ElemType::F32,
                        format: Format::Nd,
                        shape: vec![bm as i64, bn as i64],
                        storage_shape: vec![bm as i64, bn as i64],
                    };
                    let (g_ws, u_ws) = (region(0), region(1));
                    core.fixpipe(&g_ws, accs[0], 0, 0)?;
                    core.fixpipe(&u_ws, accs[1], 0, 0)?;
                    let (g_ub, u_ub, h_ub) = ub_tiles.expect("the swiglu variant has UB tiles");
                    core.load(g_ub, &g_ws, (0, rows), (0, cols))?;
                    core.load(u_ub, &u_ws, (0, rows), (0, cols))?;
                    let vals = if dry {
                        vec![0.0; rows * cols]
                    } else {
                        let (gv, uv) = (core.data(g_ub).0, core.data(u_ub).0);
                        let f = act.as_ref().expect("the swiglu variant has an activation");
                        gv.iter()
                            .zip(uv)
                            .map(|(&g, &u)| f(g as f32, u as f32) as f64)
                            .collect()
                    };
                    core.vector(h_ub, y.dtype, (rows, cols), vals, 6)?;
                    core.store(y, h_ub, m0, n0)?;
                }
            }
        }
    }
    Ok(())
}
