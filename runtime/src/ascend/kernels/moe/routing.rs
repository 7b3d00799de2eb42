//! MoeInitRoutingV2 and MoeFinalizeRouting (AIV): the permutation of token rows into
//! expert order before the grouped matmuls, and the weighted un-permutation after.
//!
//! MoeInitRoutingV2: inputs x [N, H], experts [N, k] (i32). Outputs: expanded x [N·k, H]
//! (the rows of (n, j) sorted by expert, stably in n·k + j order), expanded row index
//! [N·k] i32 (for source row n·k + j, where it went), expert token cumsum [E] i64 (the end
//! of each expert's rows). Every block sorts the (small) expert ids itself and copies the
//! rows of its share of the N·k source rows; block 0 writes the index and the cumsum.
//! Tiling: the row split over the N·k rows (cols = H), and k, experts.
//!
//! MoeFinalizeRouting: inputs expanded rows [N·k, H], skip [N, H]?, bias [E, H]?, scales
//! [N, k] f32, expanded row index [N·k] i32, experts [N, k] i32. Output y [N, H] =
//! skip[n] + sum_j scales[n, j] · (expanded[index[n·k + j]] + bias[experts[n, j]]), in f32.
//! Tiling: the row split over the N tokens (cols = H), and k, hasSkip, hasBias.

use crate::ascend::kernels::split::RowSplit;
use crate::ascend::sim::core::{matrix_dims, KernelSim, Mem, SimResult};
use crate::model::tensor::ElemType;
use crate::reject;

/// Stable order of the N·k (token, slot) pairs by expert; positions and per-expert ends.
fn sort(experts: &[usize], e: usize) -> (Vec<usize>, Vec<usize>) {
    let mut counts = vec![0usize; e];
    for &x in experts {
        counts[x] += 1;
    }
    let mut start = vec![0usize; e];
    for i in 1..e {
        start[i] = start[i - 1] + counts[i - 1];
    }
    let ends: Vec<usize> = (0..e).map(|i| start[i] + counts[i]).collect();
    let pos = experts
        .iter()
        .map(|&x| {
            start[x] += 1;
            start[x] - 1
        })
        .collect();
    (pos, ends)
}

pub fn init(sim: &mut KernelSim) -> SimResult<()> {
    let (x, experts) = (sim.input(0)?, sim.input(1)?);
    let (ex, row_idx, cumsum) = (sim.output(0)?, sim.output(1)?, sim.output(2)?);
    let (n, h) = matrix_dims(x);
    let k = sim.tiling_positive("k")?;
    let e = sim.tiling_positive("experts")?;
    let nk = n * k;
    if experts.numel() as usize != nk || matrix_dims(ex) != (nk, h) || ex.dtype != x.dtype {
        reject!(
            "MoeInitRoutingV2 of x [{n}, {h}] with {k} experts per token into {:?}",
            ex.shape
        );
    }
    if row_idx.numel() as usize != nk
        || cumsum.numel() as usize != e
        || row_idx.dtype != ElemType::I32
        || cumsum.dtype != ElemType::I64
    {
        reject!("MoeInitRoutingV2 gives an i32 row index [{nk}] and an i64 cumsum [{e}]");
    }
    let split = RowSplit::read(sim, nk, h)?;
    let ids: Vec<usize> = (0..nk).collect();
    for blk in 0..sim.block_dim() {
        let mut core = sim.core(blk);
        let sorted = core.alloc(Mem::Ub, "expert ids", ((nk * 8).div_ceil(32) * 32) as u64)?;
        let rows_q = split.buffers(&mut core, "rows", x.dtype.size(), split.buffers)?;
        let idx_ub = core.alloc(Mem::Ub, "row index", ((nk * 4).div_ceil(32) * 32) as u64)?;
        let cum_ub = core.alloc(Mem::Ub, "cumsum", ((e * 8).div_ceil(32) * 32) as u64)?;
        core.load_elements(sorted, experts, &ids)?;
        let dry = core.is_dry();
        let (pos, ends) = if dry {
            ((0..nk).collect(), vec![nk; e])
        } else {
            let ev: Vec<i64> = core.data(sorted).0.iter().map(|&v| v as i64).collect();
            if let Some(bad) = ev.iter().find(|&&v| v < 0 || v as usize >= e) {
                reject!("expert id {bad} is outside 0..{e}");
            }
            sort(&ev.iter().map(|&v| v as usize).collect::<Vec<_>>(), e)
        };
        // A sort of N·k keys: about log2(N·k) passes.
        let passes = (usize::BITS - nk.max(2).leading_zeros()) as u64;
        core.vector(sorted, ElemType::I64, (1, nk), vec![0.0; nk], passes)?;
        if blk == 0 {
            core.vector(
                idx_ub,
                ElemType::I32,
                (1, nk),
                pos.iter().map(|&p| p as f64).collect(),
                1,
            )?;
            core.store_flat(row_idx, idx_ub, 0)?;
            core.vector(
                cum_ub,
                ElemType::I64,
                (1, e),
                ends.iter().map(|&p| p as f64).collect(),
                1,
            )?;
            core.store_flat(cumsum, cum_ub, 0)?;
        }
        for (t, r, rows) in split.tiles(blk) {
            let slot = t % split.buffers;
            // Source rows r.. are (token, slot) pairs; token = row / k.
            let src: Vec<usize> = (r..r + rows)
                .flat_map(|s| {
                    let tok = s / k;
                    (0..h).map(move |c| tok * h + c)
                })
                .collect();
            core.load_elements(rows_q[slot], x, &src)?;
            let dst: Vec<usize> = if dry {
                Vec::new()
            } else {
                (r..r + rows)
                    .flat_map(|s| (0..h).map(move |c| (s, c)))
                    .map(|(s, c)| pos[s] * h + c)
                    .collect()
            };
            core.scatter(ex, rows_q[slot], &dst)?;
        }
    }
    Ok(())
}

pub fn finalize(sim: &mut KernelSim) -> SimResult<()> {
    let expanded = sim.input(0)?;
    let (skip, bias) = (sim.opt_input(1), sim.opt_input(2));
    let (scales, row_idx, experts) = (sim.input(3)?, sim.input(4)?, sim.input(5)?);
    let y = sim.output(0)?;
    let (n, h) = matrix_dims(y);
    let k = sim.tiling_positive("k")?;
    if (sim.tiling_count("hasSkip")? != 0) != skip.is_some()
        || (sim.tiling_count("hasBias")? != 0) != bias.is_some()
    {
        reject!("tiling hasSkip / hasBias disagree with the bound inputs");
    }
    if matrix_dims(expanded) != (n * k, h)
        || scales.numel() as usize != n * k
        || scales.dtype != ElemType::F32
    {
        reject!(
            "MoeFinalizeRouting of {:?} rows with f32 scales [{n}, {k}] into [{n}, {h}]",
            expanded.shape
        );
    }
    if skip.is_some_and(|s| matrix_dims(s) != (n, h)) || bias.is_some_and(|b| matrix_dims(b).1 != h)
    {
        reject!("skip must be [{n}, {h}] and bias [E, {h}]");
    }
    let split = RowSplit::read(sim, n, h)?;
    let size = y.dtype.size();
    let e_rows = bias.map_or(0, |b| matrix_dims(b).0);
    for blk in 0..sim.block_dim() {
        let mut core = sim.core(blk);
        let gathered = RowSplit {
            cols: h * k,
            rows: n,
            per_core: split.per_core,
            tile_rows: split.tile_rows,
            buffers: split.buffers,
        };
        let rq = gathered.buffers(&mut core, "expert rows", size, split.buffers)?;
        let bq = gathered.buffers(&mut core, "bias rows", size, 1)?[0];
        let sq = split.buffers(&mut core, "skip", size, split.buffers)?;
        let meta = RowSplit {
            cols: k,
            rows: n,
            per_core: split.per_core,
            tile_rows: split.tile_rows,
            buffers: 1,
        };
        let wq = meta.buffers(&mut core, "scales", 4, 1)?[0];
        let iq = meta.buffers(&mut core, "row index", 4, 1)?[0];
        let eq = meta.buffers(&mut core, "experts", 4, 1)?[0];
        split.buffers(&mut core, "f32 acc", 4, 1)?;
        let out = split.buffers(&mut core, "y", size, split.buffers)?;
        let dry = core.is_dry();
        for (t, r, rows) in split.tiles(blk) {
            let slot = t % split.buffers;
            let meta_idx: Vec<usize> = (r * k..(r + rows) * k).collect();
            core.load_elements(wq, scales, &meta_idx)?;
            core.load_elements(iq, row_idx, &meta_idx)?;
            core.load_elements(eq, experts, &meta_idx)?;
            let (wv, iv, ev) = if dry {
                (
                    vec![0.0; rows * k],
                    vec![0usize; rows * k],
                    vec![0usize; rows * k],
                )
            } else {
                let iv: Vec<usize> = core.data(iq).0.iter().map(|&v| v as usize).collect();
                let ev: Vec<usize> = core.data(eq).0.iter().map(|&v| v as usize).collect();
                if let Some(bad) = iv.iter().find(|&&v| v >= n * k) {
                    reject!("expanded row index {bad} is outside 0..{}", n * k);
                }
                if bias.is_some() {
                    if let Some(bad) = ev.iter().find(|&&v| v >= e_rows) {
                        reject!("expert {bad} has no bias row (of {e_rows})");
                    }
                }
                (core.data(wq).0.to_vec(), iv, ev)
            };
            let src: Vec<usize> = iv
                .iter()
                .flat_map(|&p| (0..h).map(move |c| p * h + c))
                .collect();
            core.load_elements(rq[slot], expanded, &src)?;
            if let Some(b) = bias {
                let bsrc: Vec<usize> = ev
                    .iter()
                    .flat_map(|&x| (0..h).map(move |c| x * h + c))
                    .collect();
                core.load_elements(bq, b, &bsrc)?;
            }
            if let Some(s) = skip {
                core.load(sq[slot], s, (r, rows), (0, h))?;
            }
            let mut vals = vec![0f64; rows * h];
            if !dry {
                let rv = core.data(rq[slot]).0;
                let bv = bias.map(|_| core.data(bq).0);
                let sv = skip.map(|_| core.data(sq[slot]).0);
                for i in 0..rows {
                    for c in 0..h {
                        let mut acc = sv.map_or(0.0, |s| s[i * h + c] as f32);
                        for j in 0..k {
                            let q = i * k + j;
                            let mut v = rv[q * h + c] as f32;
                            if let Some(bv) = bv {
                                v += bv[q * h + c] as f32;
                            }
                            acc += wv[q] as f32 * v;
                        }
                        vals[i * h + c] = acc as f64;
                    }
                }
            }
            core.vector(out[slot], y.dtype, (rows, h), vals, 2 * k as u64 + 1)?;
            core.store(y, out[slot], r, 0)?;
        }
    }
    Ok(())
}
