//! Reductions (AIV): ReduceSum, ReduceMean, ReduceMax, ReduceMin over the axes in the
//! tiling's `axes` bitmask (bit d: axis d of the input), keepdims or not (the output's
//! element count is what matters). Tiling: the 1-D split over output elements, plus `axes`
//! and `chunkLength`: a tile of outputs reads its reduced elements `chunkLength` per output
//! at a time into UB, accumulating in f32 (max and min exactly).

use crate::ascend::kernels::split::{dims, ravel, unravel, Split};
use crate::ascend::kernels::SimulateFn;
use crate::ascend::sim::core::{KernelSim, SimResult};
use crate::reject;

pub const KERNELS: &[(&str, SimulateFn)] = &[
    ("ReduceSum", run),
    ("ReduceMean", run),
    ("ReduceMax", run),
    ("ReduceMin", run),
];

fn run(sim: &mut KernelSim) -> SimResult<()> {
    let name = sim.desc.kernel_name.clone();
    let (x, y) = (sim.input(0)?, sim.output(0)?);
    let shape = dims(&x.shape);
    let mask = sim.tiling_count("axes")?;
    if mask >> shape.len() != 0 {
        reject!(
            "tiling axes {mask:#b} names axes beyond rank {}",
            shape.len()
        );
    }
    let reduced: Vec<usize> = (0..shape.len()).filter(|d| mask >> d & 1 == 1).collect();
    let kept: Vec<usize> = (0..shape.len()).filter(|d| mask >> d & 1 == 0).collect();
    let kept_shape: Vec<usize> = kept.iter().map(|&d| shape[d]).collect();
    let red_shape: Vec<usize> = reduced.iter().map(|&d| shape[d]).collect();
    let r: usize = red_shape.iter().product();
    let outs: usize = kept_shape.iter().product();
    if y.numel() as usize != outs || y.dtype != x.dtype {
        reject!(
            "{name} of {:?} over axes {reduced:?} cannot give {} {:?}",
            x.shape,
            y.dtype,
            y.shape
        );
    }
    let split = Split::read(sim, outs)?;
    let chunk = sim.tiling_positive("chunkLength")?;
    let size = x.dtype.size();
    for b in 0..sim.block_dim() {
        let mut core = sim.core(b);
        let src = split.queue(&mut core, "src", chunk.min(r.max(1)) * size)?;
        let acc = split.queue(&mut core, "acc", 4)?;
        let out = split.queue(&mut core, "out", size)?;
        let dry = core.is_dry();
        let (mut ki, mut ri, mut full) = (
            vec![0; kept.len()],
            vec![0; reduced.len()],
            vec![0; shape.len()],
        );
        for (t, s, n) in split.tiles(split.block(b)) {
            let slot = t % split.buffers;
            let mut accs = vec![
                match name.as_str() {
                    "ReduceMax" => f32::NEG_INFINITY,
                    "ReduceMin" => f32::INFINITY,
                    _ => 0.0,
                };
                n
            ];
            for c0 in (0..r).step_by(chunk) {
                let c = chunk.min(r - c0);
                let mut idx = Vec::with_capacity(n * c);
                for e in 0..n {
                    unravel(s + e, &kept_shape, &mut ki);
                    for (j, &d) in kept.iter().enumerate() {
                        full[d] = ki[j];
                    }
                    for q in c0..c0 + c {
                        unravel(q, &red_shape, &mut ri);
                        for (j, &d) in reduced.iter().enumerate() {
                            full[d] = ri[j];
                        }
                        idx.push(ravel(&full, &shape));
                    }
                }
                core.load_elements(src[slot], x, &idx)?;
                if !dry {
                    let v = core.data(src[slot]).0;
                    for (e, a) in accs.iter_mut().enumerate() {
                        for &x in &v[e * c..(e + 1) * c] {
                            let x = x as f32;
                            *a = match name.as_str() {
                                _ if a.is_nan() || x.is_nan() => f32::NAN,
                                "ReduceMax" => a.max(x),
                                "ReduceMin" => a.min(x),
                                _ => *a + x,
                            };
                        }
                    }
                }
                let acc_vals = accs.iter().map(|&a| a as f64).collect();
                core.vector(
                    acc[slot],
                    crate::model::tensor::ElemType::F32,
                    (1, n),
                    acc_vals,
                    c as u64,
                )?;
            }
            let vals = accs
                .iter()
                .map(|&a| {
                    if name == "ReduceMean" {
                        (a / r as f32) as f64
                    } else {
                        a as f64
                    }
                })
                .collect();
            core.vector(out[slot], y.dtype, (1, n), vals, 1)?;
            core.store_flat(y, out[slot], s)?;
        }
    }
    Ok(())
}
