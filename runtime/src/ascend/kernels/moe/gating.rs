//! MoeGatingTopK (AIV): per token, scores from the router logits (softmax, sigmoid or
//! sqrt-softplus), selection scores (plus the bias), the k experts (group-limited: only
//! the `kGroup` best of `groupCount` groups, a group scored by the sum of its two best
//! selection scores), and their weights (the unbiased scores, renormalised or not, times
//! the scaling factor). All in f32, as CANN's gating kernels compute.
//!
//! MoeGatingTopKHash (AIV) is kiln's own, for DeepSeek-V4's hash-routed layers (CANN has no
//! such kernel): the same scores and weights, but the k experts of token n are row
//! `token_ids[n]` of a [V, k] table (`tid2eid`) instead of a top-k.
//!
//! Inputs: logits [N, E] f32, bias [E] f32?, then for the hash variant the table [V, k]
//! and the token ids [N] (ints). Outputs: weights [N, k] f32, experts [N, k] i32. Tiling:
//! the row split over the N tokens (cols = E), then k, kGroup, groupCount, normType (0
//! softmax, 1 sigmoid, 2 sqrt-softplus), renorm, routedScalingFactorBits, hasBias.

use crate::ascend::kernels::split::RowSplit;
use crate::ascend::sim::core::{matrix_dims, KernelSim, Mem, Reject, SimResult};
use crate::model::tensor::ElemType;
use crate::reject;

/// The routing of one token: (experts, weights).
#[allow(clippy::too_many_arguments)]
pub fn route(
    logits: &[f32],
    bias: Option<&[f32]>,
    norm: usize,
    k: usize,
    groups: usize,
    k_group: usize,
    renorm: bool,
    scale: f32,
    hashed: Option<&[usize]>,
) -> (Vec<usize>, Vec<f32>) {
    let e = logits.len();
    let s: Vec<f32> = match norm {
        0 => {
            let m = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            let ex: Vec<f32> = logits.iter().map(|&l| (l - m).exp()).collect();
            let sum: f32 = ex.iter().sum();
            ex.iter().map(|&x| x / sum).collect()
        }
        1 => logits.iter().map(|&l| 1.0 / (1.0 + (-l).exp())).collect(),
        _ => logits
            .iter()
            .map(|&l| if l > 30.0 { l } else { l.exp().ln_1p() }.sqrt())
            .collect(),
    };
    let sel: Vec<f32> = match bias {
        Some(b) => s.iter().zip(b).map(|(x, y)| x + y).collect(),
        None => s.clone(),
    };
    let chosen: Vec<usize> = match hashed {
        Some(h) => h.to_vec(),
        None => {
            let per = e / groups.max(1);
            let mut allowed = vec![true; e];
            if groups > 1 {
                let gs: Vec<f32> = (0..groups)
                    .map(|g| {
                        let mut v: Vec<f32> = sel[g * per..(g + 1) * per].to_vec();
                        v.sort_by(|a, b| b.total_cmp(a));
                        v.iter().take(2.min(per)).sum()
                    })
                    .collect();
                let mut order: Vec<usize> = (0..groups).collect();
                order.sort_by(|&a, &b| gs[b].total_cmp(&gs[a]).then(a.cmp(&b)));
                allowed = vec![false; e];
                for &g in order.iter().take(k_group) {
                    for a in allowed.iter_mut().skip(g * per).take(per) {
                        *a = true;
                    }
                }
            }
            let mut order: Vec<usize> = (0..e).filter(|&i| allowed[i]).collect();
            order.sort_by(|&a, &b| sel[b].total_cmp(&sel[a]).then(a.cmp(&b)));
            order.truncate(k);
            order
        }
    };
    let mut w: Vec<f32> = chosen.iter().map(|&c| s[c]).collect();
    if renorm {
        let sum: f32 = w.iter().sum();
        w.iter_mut().for_each(|x| *x /= sum);
    }
    w.iter_mut().for_each(|x| *x *= scale);
    (chosen, w)
}

pub fn run(sim: &mut KernelSim) -> SimResult<()> {
    let x = sim.input(0)?;
    let bias = sim.opt_input(1);
    let (table, ids) = (sim.opt_input(2), sim.opt_input(3));
    let (weights, experts) = (sim.output(0)?, sim.output(1)?);
    let (n, e) = matrix_dims(x);
    let k = sim.tiling_positive("k")?;
    let k_group = sim.tiling_positive("kGroup")?;
    let groups = sim.tiling_positive("groupCount")?;
    let norm = sim.tiling_count("normType")?;
    let renorm = sim.tiling_count("renorm")? != 0;
    let bits = sim.tiling("routedScalingFactorBits")?;
    let scale = u32::try_from(bits).map(f32::from_bits).map_err(|_| {
        Reject(format!(
            "tiling routedScalingFactorBits {bits} is not an f32"
        ))
    })?;
    let hashed = sim.desc.kernel_name == "MoeGatingTopKHash";
    if (sim.tiling_count("hasBias")? != 0) != bias.is_some() {
        reject!("tiling hasBias disagrees with the bound inputs");
    }
    if hashed != (table.is_some() && ids.is_some()) {
        reject!("the hash table and token ids are the inputs of MoeGatingTopKHash alone");
    }
    if norm > 2 || e % groups != 0 || k_group > groups || !hashed && k > e {
        reject!("{k} of {e} experts in {groups} groups ({k_group} kept), normType {norm}");
    }
    if matrix_dims(weights) != (n, k)
        || matrix_dims(experts) != (n, k)
        || weights.dtype != ElemType::F32
        || experts.dtype != ElemType::I32
        || x.dtype != ElemType::F32
    {
        reject!("MoeGatingTopK takes f32 logits [{n}, {e}] and gives f32 weights and i32 experts [{n}, {k}]");
    }
    let split = RowSplit::read(sim, n, e)?;
    let k_rows = RowSplit {
        cols: k,
        rows: n,
        per_core: split.per_core,
        tile_rows: split.tile_rows,
        buffers: split.buffers,
    };
    for blk in 0..sim.block_dim() {
        let mut core = sim.core(blk);
        let xq = split.buffers(&mut core, "logits", 4, split.buffers)?;
        split.buffers(&mut core, "scores", 4, 2)?;
        let bq = core.alloc(Mem::Ub, "bias", (e * 4).div_ceil(32) as u64 * 32)?;
        let wq = k_rows.buffers(&mut core, "weights", 4, split.buffers)?;
        let iq = k_rows.buffers(&mut core, "experts", 4, split.buffers)?;
        let hq = k_rows.buffers(&mut core, "hashed", 8, 1)?[0];
        let dry = core.is_dry();
        let mut bias_vals = None;
        for (t, r, rows) in split.tiles(blk) {
            let slot = t % split.buffers;
            if let (Some(b), None) = (bias, &bias_vals) {
                core.load_elements(bq, b, &(0..e).collect::<Vec<_>>())?;
                bias_vals = Some(
                    core.data(bq)
                        .0
                        .iter()
                        .map(|&v| v as f32)
                        .collect::<Vec<_>>(),
                );
            }
            core.load(xq[slot], x, (r, rows), (0, e))?;
            let mut hashed_rows: Vec<Vec<usize>> = Vec::new();
            if let (true, Some(table), Some(ids)) = (hashed, table, ids) {
                core.load_elements(hq, ids, &(r..r + rows).collect::<Vec<_>>())?;
                let tok: Vec<f64> = core.data(hq).0.to_vec();
                let vocab = matrix_dims(table).0;
                let mut idx = Vec::with_capacity(rows * k);
                for (i, &tid) in tok.iter().enumerate().take(if dry { 0 } else { rows }) {
                    let tid = tid as i64;
                    if tid < 0 || tid as usize >= vocab {
                        reject!(
                            "token id {tid} of token {} is outside the {vocab}-row hash table",
                            r + i
                        );
                    }
                    idx.extend((0..k).map(|j| tid as usize * k + j));
                }
                core.load_elements(hq, table, &idx)?;
                let hv = core.data(hq).0;
                for i in 0..if dry { 0 } else { rows } {
                    let row: Vec<usize> =
                        hv[i * k..(i + 1) * k].iter().map(|&v| v as usize).collect();
                    if let Some(&bad) = row.iter().find(|&&v| v >= e) {
                        reject!(
                            "the hash table sends token {} to expert {bad} of {e}",
                            r + i
                        );
                    }
                    hashed_rows.push(row);
                }
            }
            let (mut ws, mut is) = (vec![0f64; rows * k], vec![0f64; rows * k]);
            if !dry {
                let xv = core.data(xq[slot]).0;
                for i in 0..rows {
                    let logits: Vec<f32> =
                        xv[i * e..(i + 1) * e].iter().map(|&v| v as f32).collect();
                    let h = hashed_rows.get(i).map(|v| v.as_slice());
                    let (c, w) = route(
                        &logits,
                        bias_vals.as_deref(),
                        norm,
                        k,
                        groups,
                        k_group,
                        renorm,
                        scale,
                        h,
                    );
                    for j in 0..k {
                        ws[i * k + j] = w[j] as f64;
                        is[i * k + j] = c[j] as f64;
                    }
                }
            }
            // scores, bias, group sums, group and expert top-k, renorm, scale.
            core.vector(wq[slot], ElemType::F32, (rows, k), ws, 12)?;
            core.vector(iq[slot], ElemType::I32, (rows, k), is, 1)?;
            core.store(weights, wq[slot], r, 0)?;
            core.store(experts, iq[slot], r, 0)?;
        }
    }
    Ok(())
}
