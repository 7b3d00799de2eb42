//! Scatters (AIV), in place on their first input (`var`, which is also the output; the
//! launch list copies the data into it first): ScatterNdUpdate (ONNX ScatterND without
//! reduction) and ScatterElements (without reduction). Tiling: the 1-D split over the
//! update elements, and `axis` (ScatterElements). A tile reads its updates and the index
//! values they need into UB, then writes each update to its place in var.

use crate::ascend::descriptor::Format;
use crate::ascend::kernels::split::{dims, ravel, unravel, Split};
use crate::ascend::kernels::SimulateFn;
use crate::ascend::sim::core::{KernelSim, SimResult};
use crate::reject;

pub const KERNELS: &[(&str, SimulateFn)] = &[("ScatterNdUpdate", run), ("ScatterElements", run)];

fn run(sim: &mut KernelSim) -> SimResult<()> {
    let name = sim.desc.kernel_name.clone();
    let (var, indices, updates, out) =
        (sim.input(0)?, sim.input(1)?, sim.input(2)?, sim.output(0)?);
    if out.offset != var.offset || out.shape != var.shape || out.dtype != var.dtype {
        reject!("{name} updates var in place: its output must be var");
    }
    if [var, indices, updates]
        .iter()
        .any(|b| b.format != Format::Nd)
        || updates.dtype != var.dtype
    {
        reject!("{name} takes ND tensors and updates of var's dtype");
    }
    let vshape = dims(&var.shape);
    let ishape = dims(&indices.shape);
    let ushape = dims(&updates.shape);
    let nd = name == "ScatterNdUpdate";
    let (per, axis) = if nd {
        (*ishape.last().unwrap_or(&0), 0)
    } else {
        let a = sim.tiling_count("axis")?;
        if a >= vshape.len() || ishape != ushape {
            reject!("ScatterElements over axis {a} of {vshape:?} with indices {ishape:?}");
        }
        (1, a)
    };
    let total = updates.numel() as usize;
    let split = Split::read(sim, total)?;
    for b in 0..sim.block_dim() {
        let mut core = sim.core(b);
        let uq = split.queue(&mut core, "updates", updates.dtype.size())?;
        let iq = split.queue(&mut core, "indices", per * indices.dtype.size())?;
        let dry = core.is_dry();
        let mut ui = vec![0; ushape.len()];
        for (t, s, n) in split.tiles(split.block(b)) {
            let slot = t % split.buffers;
            let mut pos = Vec::with_capacity(n * per);
            for e in 0..n {
                unravel(s + e, &ushape, &mut ui);
                if nd {
                    let lead = ishape.len() - 1;
                    let base = ravel(&ui[..lead], &ishape[..lead]) * per;
                    pos.extend(base..base + per);
                } else {
                    pos.push(s + e);
                }
            }
            core.load_elements(iq[slot], indices, &pos)?;
            let flat: Vec<usize> = (s..s + n).collect();
            core.load_elements(uq[slot], updates, &flat)?;
            let mut targets = Vec::with_capacity(n);
            if !dry {
                let iv = core.data(iq[slot]).0.to_vec();
                for e in 0..n {
                    unravel(s + e, &ushape, &mut ui);
                    let mut vi = vec![0; vshape.len()];
                    if nd {
                        let lead = ishape.len() - 1;
                        for (d, &v) in iv[e * per..(e + 1) * per].iter().enumerate() {
                            vi[d] = wrap(v, vshape[d])?;
                        }
                        vi[per..].copy_from_slice(&ui[lead..]);
                    } else {
                        vi.copy_from_slice(&ui);
                        vi[axis] = wrap(iv[e], vshape[axis])?;
                    }
                    targets.push(ravel(&vi, &vshape));
                }
            }
            core.scatter(out, uq[slot], &targets)?;
        }
    }
    Ok(())
}

fn wrap(v: f64, n: usize) -> SimResult<usize> {
    let i = v as i64;
    let w = if i < 0 { i + n as i64 } else { i };
    if w < 0 || w >= n as i64 {
        reject!("index {i} is out of range for an axis of {n}");
    }
    Ok(w as usize)
}
