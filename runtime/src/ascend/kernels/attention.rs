//! FusedInferAttentionScore (MIX: cube and vector cores), kiln's `attention` with the KV
//! cache already concatenated: flash attention over key blocks with an online softmax.
//!
//! Inputs: q [B, Hq, S, Dk], k [B, Hkv, T, Dk], v [B, Hkv, T, Dv] (T keys, the first
//! `prefix` of them the cache), mask (optional, bool or float, broadcast to
//! [B, Hq, S, T]), sinks (optional, [Hq]). Output [B, Hq, S, Dv]. Query head h reads kv
//! head h / (Hq / Hkv); query i sits at position prefix + i.
//!
//! Tiling: batch, numHeads, numKvHeads, querySeq, kvSeq, headDimK, headDimV, prefix,
//! scaleBits, softcapBits (f32 bits), causal, window, hasMask, hasSinks, sOuter (query rows
//! per task), sInner (keys per block), tasksPerCore. Task t = (b, h, query tile) goes to
//! block t / tasksPerCore.
//!
//! Per task: Q goes GM -> L1 -> L0A once; per key block the cube computes S = Q·Kᵀ (K
//! copied L1 -> L0B transposed) into L0C and the fixpipe writes it to the block's
//! workspace in f32; the vector core reads it into UB, applies scale, softcap, mask,
//! causal and window, updates the row max and sum, and writes P = exp(S - max) in the
//! input dtype to the workspace; the cube computes P·V into L0C, written to the workspace
//! in f32; the vector core rescales its f32 accumulator and adds it. Key blocks entirely
//! masked by causality or the window are skipped. At the end the rows are divided by their
//! sum (sinks adding exp(sink - max)), fully masked rows give zeros, and the result is
//! stored in the output dtype.

use crate::ascend::descriptor::{Format, TensorBinding};
use crate::ascend::kernels::split::Broadcast;
use crate::ascend::kernels::SimulateFn;
use crate::ascend::sim::core::{KernelSim, Mem, Reject, SimResult};
use crate::model::tensor::ElemType;
use crate::reject;

pub const KERNELS: &[(&str, SimulateFn)] = &[("FusedInferAttentionScore", run)];

struct Params {
    batch: usize,
    hq: usize,
    hkv: usize,
    s: usize,
    t: usize,
    dk: usize,
    dv: usize,
    prefix: usize,
    scale: f32,
    softcap: f32,
    causal: bool,
    window: usize,
    s_outer: usize,
    s_inner: usize,
    tasks_per_core: usize,
}

fn f32_field(sim: &KernelSim, name: &str) -> SimResult<f32> {
    let bits = sim.tiling(name)?;
    u32::try_from(bits)
        .map(f32::from_bits)
        .map_err(|_| Reject(format!("tiling {name} {bits} is not an f32")))
}

fn params(sim: &KernelSim) -> SimResult<Params> {
    Ok(Params {
        batch: sim.tiling_positive("batch")?,
        hq: sim.tiling_positive("numHeads")?,
        hkv: sim.tiling_positive("numKvHeads")?,
        s: sim.tiling_count("querySeq")?,
        t: sim.tiling_count("kvSeq")?,
        dk: sim.tiling_positive("headDimK")?,
        dv: sim.tiling_positive("headDimV")?,
        prefix: sim.tiling_count("prefix")?,
        scale: f32_field(sim, "scaleBits")?,
        softcap: f32_field(sim, "softcapBits")?,
        causal: sim.tiling_count("causal")? != 0,
        window: sim.tiling_count("window")?,
        s_outer: sim.tiling_positive("sOuter")?,
        s_inner: sim.tiling_positive("sInner")?,
        tasks_per_core: sim.tiling_positive("tasksPerCore")?,
    })
}

/// The workspace regions of block `b`: scores (f32), probabilities (`p_dtype`), partial
/// output (f32), each 512-byte aligned.
fn workspace(
    sim: &KernelSim,
    p: &Params,
    p_dtype: ElemType,
    b: usize,
) -> SimResult<[TensorBinding; 3]> {
    let Some(ws) = &sim.desc.workspace else {
        reject!("FusedInferAttentionScore needs a workspace");
    };
    let a = |x: usize| x.div_ceil(512) * 512;
    let sizes = [
        a(p.s_outer * p.s_inner * 4),
        a(p.s_outer * p.s_inner * p_dtype.size()),
        a(p.s_outer * p.dv * 4),
    ];
    let per_block: usize = sizes.iter().sum();
    if ((b + 1) * per_block) as u64 > ws.bytes {
        reject!(
            "block {b} needs workspace up to {} B, the kernel has {} B",
            (b + 1) * per_block,
            ws.bytes
        );
    }
    let region = |off: usize, dtype: ElemType, cols: usize| TensorBinding {
        buffer: ws.buffer,
        offset: ws.offset + (b * per_block + off) as u64,
        dtype,
        format: Format::Nd,
        shape: vec![p.s_outer as i64, cols as i64],
        storage_shape: vec![p.s_outer as i64, cols as i64],
    };
    Ok([
        region(0, ElemType::F32, p.s_inner),
        region(sizes[0], p_dtype, p.s_inner),
        region(sizes[0] + sizes[1], ElemType::F32, p.dv),
    ])
}

fn check(
    p: &Params,
    q: &TensorBinding,
    k: &TensorBinding,
    v: &TensorBinding,
    out: &TensorBinding,
) -> SimResult<()> {
    let want = |b: &TensorBinding, h: usize, s: usize, d: usize, what: &str| -> SimResult<()> {
        if b.format != Format::Nd || b.shape != [p.batch as i64, h as i64, s as i64, d as i64] {
            reject!(
                "{what} is {:?} {}, the tiling says [{}, {h}, {s}, {d}] ND",
                b.shape,
                b.format,
                p.batch
            );
        }
        Ok(())
    };
    want(q, p.hq, p.s, p.dk, "q")?;
    want(k, p.hkv, p.t, p.dk, "k")?;
    want(v, p.hkv, p.t, p.dv, "v")?;
    want(out, p.hq, p.s, p.dv, "the output")?;
    if !p.hq.is_multiple_of(p.hkv) || p.prefix > p.t {
        reject!(
            "{} query heads over {} kv heads, prefix {} of {} keys",
            p.hq,
            p.hkv,
            p.prefix,
            p.t
        );
    }
    if q.dtype != k.dtype
        || q.dtype != v.dtype
        || !matches!(q.dtype, ElemType::F16 | ElemType::BF16)
    {
        reject!(
            "q, k, v must share f16 or bf16, not {}, {}, {}",
            q.dtype,
            k.dtype,
            v.dtype
        );
    }
    if !p.s_outer.is_multiple_of(16) || !p.s_inner.is_multiple_of(16) {
        reject!(
            "sOuter {} and sInner {} must be multiples of 16",
            p.s_outer,
            p.s_inner
        );
    }
    Ok(())
}

fn run(sim: &mut KernelSim) -> SimResult<()> {
    let p = params(sim)?;
    let (q, k, v, out) = (sim.input(0)?, sim.input(1)?, sim.input(2)?, sim.output(0)?);
    let mask = sim.opt_input(3);
    let sinks = sim.opt_input(4);
    if (sim.tiling_count("hasMask")? != 0) != mask.is_some()
        || (sim.tiling_count("hasSinks")? != 0) != sinks.is_some()
    {
        reject!("tiling hasMask / hasSinks disagree with the bound inputs");
    }
    check(&p, q, k, v, out)?;
    let full = [p.batch as i64, p.hq as i64, p.s as i64, p.t as i64];
    let mask_map = match mask {
        Some(m) => Some(Broadcast::new(&full, &m.shape)?),
        None => None,
    };
    if let Some(s) = sinks {
        if s.numel() != p.hq as u64 {
            reject!("sinks has {} elements for {} heads", s.numel(), p.hq);
        }
    }
    let q_tiles = p.s.div_ceil(p.s_outer);
    let tasks = p.batch * p.hq * q_tiles;
    if p.tasks_per_core * sim.block_dim() < tasks {
        reject!(
            "{} blocks of {} tasks do not cover the {tasks} tasks",
            sim.block_dim(),
            p.tasks_per_core
        );
    }
    let dt = q.dtype;
    let size = dt.size() as u64;
    let (so, si, dk, dv) = (
        p.s_outer as u64,
        p.s_inner as u64,
        (p.dk as u64).div_ceil(16) * 16,
        (p.dv as u64).div_ceil(16) * 16,
    );
    let group = p.hq / p.hkv;
    for blk in 0..sim.block_dim() {
        let [ws_s, ws_p, ws_o] = workspace(sim, &p, dt, blk)?;
        let mut core = sim.core(blk);
        // Cube side.
        let q_l1 = core.alloc(Mem::L1, "q", so * dk * size)?;
        let k_l1 = core.alloc(Mem::L1, "k", si * dk * size)?;
        let v_l1 = core.alloc(Mem::L1, "v", si * dv * size)?;
        let p_l1 = core.alloc(Mem::L1, "p", so * si * size)?;
        let q_l0 = core.alloc(Mem::L0A, "q", so * dk * size)?;
        let p_l0 = core.alloc(Mem::L0A, "p", so * si * size)?;
        let kt_l0 = core.alloc(Mem::L0B, "kT", dk * si * size)?;
        let v_l0 = core.alloc(Mem::L0B, "v", si * dv * size)?;
        let s_l0c = core.alloc(Mem::L0C, "s", so * si * 4)?;
        let o_l0c = core.alloc(Mem::L0C, "o", so * dv * 4)?;
        // Vector side.
        let ub = |x: u64| x.div_ceil(32) * 32;
        let s_ub = core.alloc(Mem::Ub, "s", so * ub(si * 4))?;
        let p_ub = core.alloc(Mem::Ub, "p", so * ub(si * size))?;
        let m_ub = core.alloc(Mem::Ub, "mask", so * ub(si * 4))?;
        let o_ub = core.alloc(Mem::Ub, "o partial", so * ub(dv * 4))?;
        let acc_ub = core.alloc(Mem::Ub, "o", so * ub(dv * 4))?;
        let out_ub = core.alloc(Mem::Ub, "out", so * ub(dv * size))?;
        let sink_ub = core.alloc(Mem::Ub, "sink", 32)?;
        let dry = core.is_dry();
        let first = blk * p.tasks_per_core;
        for task in first..tasks.min(first + p.tasks_per_core) {
            let (bh, qt) = (task / q_tiles, task % q_tiles);
            let (b, h) = (bh / p.hq, bh % p.hq);
            let g = h / group;
            let i0 = qt * p.s_outer;
            let rows = p.s_outer.min(p.s - i0);
            let q_row = bh * p.s + i0;
            let kv_row = (b * p.hkv + g) * p.t;
            core.load(q_l1, q, (q_row, rows), (0, p.dk))?;
            core.copy_to_l0(q_l0, q_l1, (0, rows), (0, p.dk))?;
            let mut m = vec![f32::NEG_INFINITY; rows];
            let mut l = vec![0f32; rows];
            let mut acc = vec![0f32; rows * p.dv];
            let last_pos = p.prefix + i0 + rows - 1;
            let first_pos = p.prefix + i0;
            for j0 in (0..p.t).step_by(p.s_inner) {
                let n = p.s_inner.min(p.t - j0);
                if p.causal && j0 > last_pos {
                    break;
                }
                if p.window > 0 && j0 + n - 1 + p.window <= first_pos {
                    continue;
                }
                // S = Q·Kᵀ on the cube, to the workspace.
                core.load(k_l1, k, (kv_row + j0, n), (0, p.dk))?;
                core.copy_to_l0_transposed(kt_l0, k_l1, (0, n), (0, p.dk))?;
                core.mmad(s_l0c, q_l0, kt_l0, true)?;
                core.fixpipe(&ws_s, s_l0c, 0, 0)?;
                // Softmax update on the vector core.
                core.load(s_ub, &ws_s, (0, rows), (0, n))?;
                let mut mask_vals = Vec::new();
                if let (Some(mb), Some(map)) = (mask, &mask_map) {
                    let idx: Vec<usize> = (0..rows)
                        .flat_map(|i| {
                            let base = ((b * p.hq + h) * p.s + i0 + i) * p.t;
                            (j0..j0 + n).map(move |j| map.index(base + j))
                        })
                        .collect();
                    core.load_elements(m_ub, mb, &idx)?;
                    if !dry {
                        mask_vals = core.data(m_ub).0.to_vec();
                    }
                }
                let mut probs = vec![0f64; rows * n];
                let mut factors = vec![0f32; rows];
                if !dry {
                    let sv = core.data(s_ub).0;
                    for i in 0..rows {
                        let pos = p.prefix + i0 + i;
                        let mut x = vec![f32::NEG_INFINITY; n];
                        for (jj, xv) in x.iter_mut().enumerate() {
                            let j = j0 + jj;
                            if p.causal && j > pos || p.window > 0 && j + p.window <= pos {
                                continue;
                            }
                            let mut v = sv[i * n + jj] as f32 * p.scale;
                            if p.softcap > 0.0 {
                                v = p.softcap * (v / p.softcap).tanh();
                            }
                            if let Some(mb) = mask {
                                let mv = mask_vals[i * n + jj];
                                if mb.dtype == ElemType::Bool {
                                    if mv == 0.0 {
                                        continue;
                                    }
                                } else {
                                    v += mv as f32;
                                }
                            }
                            *xv = v;
                        }
                        let bm = x.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                        let m_new = m[i].max(bm);
                        factors[i] = if m_new == f32::NEG_INFINITY {
                            1.0
                        } else {
                            (m[i] - m_new).exp()
                        };
                        let mut sum = 0f32;
                        for (jj, &xv) in x.iter().enumerate() {
                            let e = if m_new == f32::NEG_INFINITY {
                                0.0
                            } else {
                                (xv - m_new).exp()
                            };
                            // P goes to the cube in the input dtype; the sum uses the same.
                            let e = crate::ascend::sim::values::round(dt, e as f64);
                            probs[i * n + jj] = e;
                            sum += e as f32;
                        }
                        l[i] = l[i] * factors[i] + sum;
                        m[i] = m_new;
                    }
                }
                // scale, cap, mask, max, subtract, exp, sum, cast.
                core.vector(p_ub, dt, (rows, n), probs, 8)?;
                core.store(&ws_p, p_ub, 0, 0)?;
                // O_partial = P·V on the cube, to the workspace.
                core.load(p_l1, &ws_p, (0, rows), (0, n))?;
                core.copy_to_l0(p_l0, p_l1, (0, rows), (0, n))?;
                core.load(v_l1, v, (kv_row + j0, n), (0, p.dv))?;
                core.copy_to_l0(v_l0, v_l1, (0, n), (0, p.dv))?;
                core.mmad(o_l0c, p_l0, v_l0, true)?;
                core.fixpipe(&ws_o, o_l0c, 0, 0)?;
                // acc = acc * exp(m_old - m_new) + O_partial on the vector core.
                core.load(o_ub, &ws_o, (0, rows), (0, p.dv))?;
                if !dry {
                    let ov = core.data(o_ub).0;
                    for i in 0..rows {
                        for d in 0..p.dv {
                            let a = &mut acc[i * p.dv + d];
                            *a = *a * factors[i] + ov[i * p.dv + d] as f32;
                        }
                    }
                }
                let acc_vals = acc.iter().map(|&a| a as f64).collect();
                core.vector(acc_ub, ElemType::F32, (rows, p.dv), acc_vals, 2)?;
            }
            // Normalise (with the sink) and store.
            let mut sink = f32::NEG_INFINITY;
            if let Some(sb) = sinks {
                core.load_elements(sink_ub, sb, &[h])?;
                if !dry {
                    sink = core.data(sink_ub).0[0] as f32;
                }
            }
            let mut vals = vec![0f64; rows * p.dv];
            if !dry {
                for i in 0..rows {
                    let mf = m[i].max(sink);
                    if mf == f32::NEG_INFINITY {
                        continue; // fully masked: zeros
                    }
                    let den = l[i] * (m[i] - mf).exp() + (sink - mf).exp();
                    let f = (m[i] - mf).exp() / den;
                    for d in 0..p.dv {
                        vals[i * p.dv + d] = (acc[i * p.dv + d] * f) as f64;
                    }
                }
            }
            core.vector(out_ub, out.dtype, (rows, p.dv), vals, 2)?;
            core.store(out, out_ub, q_row, 0)?;
        }
    }
    Ok(())
}
