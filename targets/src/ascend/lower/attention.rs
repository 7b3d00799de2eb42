//! `attention` -> FusedInferAttentionScore (MIX: Q·Kᵀ and P·V on the cube, the online
//! softmax on the vector cores, exchanging tiles through the kernel's workspace). A KV
//! cache (past_k / past_v) is appended first by ConcatD into the present_k / present_v
//! outputs, and the kernel reads the whole cache with `prefix` = the past length, as a
//! deployment keeps its cache in HBM. Tiling: the shapes, scale, softcap, causal, window,
//! and `sOuter` x `sInner` (query rows x keys per step) sized to L0A/L0B/L0C, L1 and UB.

use kiln_ir::graph::{NodeId, Value};
use kiln_ir::AttrsExt;
use kiln_runtime::ascend::descriptor::{CoreType, Format, Tiling};
use kiln_runtime::ascend::Profile;
use kiln_runtime::ElemType;

use super::movement::launch_copy;
use super::{DevTensor, LowerFn, Lowerer};
use crate::error::TargetError;

pub const OPS: &[(&str, LowerFn)] = &[("attention", attention)];

fn up(x: i64, a: i64) -> i64 {
    (x + a - 1) / a * a
}

/// The largest (sOuter, sInner) whose buffers fit, for head dims dk, dv (2-byte inputs).
fn blocks(p: &Profile, s: i64, t: i64, dk: i64, dv: i64) -> Option<(i64, i64)> {
    let (dk, dv) = (up(dk, 16), up(dv, 16));
    let fits = |so: i64, si: i64| {
        let ub_row = |b: i64| up(b, 32);
        so * dk * 2 + so * si * 2 <= p.l0a_bytes as i64
            && dk * si * 2 + si * dv * 2 <= p.l0b_bytes as i64
            && so * si * 4 + so * dv * 4 <= p.l0c_bytes as i64
            && (so * dk + si * dk + si * dv + so * si) * 2 <= p.l1_bytes as i64
            && so * (ub_row(si * 4) * 2 + ub_row(si * 2) + ub_row(dv * 4) * 2 + ub_row(dv * 2)) + 32
                <= p.ub_bytes as i64
    };
    let (smax, tmax) = (up(s.max(1), 16).min(128), up(t.max(1), 16).min(128));
    let mut best = None;
    for so in (16..=smax).rev().step_by(16) {
        for si in (16..=tmax).rev().step_by(16) {
            if fits(so, si) && best.is_none_or(|(a, b)| so * si > a * b) {
                best = Some((so, si));
            }
        }
    }
    best
}

fn attention(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let attrs = lw.graph.node(id).attrs.clone();
    let scale = attrs.float("scale").ok().flatten();
    let causal = attrs.int_or("causal", 0).unwrap_or(0);
    let window = attrs.int_or("window", 0).unwrap_or(0);
    let softcap = attrs.float_or("softcap", 0.0).unwrap_or(0.0);
    let out = lw.output(id, 0)?;
    let dt = out.dtype;
    let read = |lw: &mut Lowerer, i: usize| -> Result<Option<DevTensor>, TargetError> {
        match lw.opt_input(id, i)? {
            Some(x) => {
                let x = lw.to_format(&x, Format::Nd)?;
                Ok(Some(x))
            }
            None => Ok(None),
        }
    };
    let (q, k, v) = (
        read(lw, 0)?.expect("attention has q"),
        read(lw, 1)?.expect("attention has k"),
        read(lw, 2)?.expect("attention has v"),
    );
    let (q, k, v) = (lw.cast(&q, dt)?, lw.cast(&k, dt)?, lw.cast(&v, dt)?);
    let mask = match read(lw, 3)? {
        Some(m) if m.dtype == ElemType::Bool => Some(m),
        Some(m) => Some(lw.cast(&m, dt)?),
        None => None,
    };
    let (past_k, past_v) = (read(lw, 4)?, read(lw, 5)?);
    let sinks = match read(lw, 6)? {
        Some(s) => Some(lw.cast(&s, dt)?),
        None => None,
    };
    let used = |lw: &Lowerer, i: usize| {
        let v = Value {
            node: id,
            output: i,
        };
        i < lw.graph.node(id).outputs.len()
            && (!lw.graph.users(v).is_empty() || lw.graph.is_output(v))
    };
    // The keys and values the kernel reads: the cache with the new ones appended.
    let mut kv = Vec::new();
    for (i, new, past) in [(1, &k, &past_k), (2, &v, &past_v)] {
        let full = match past {
            Some(past) => {
                let past = lw.cast(past, dt)?;
                let mut shape = new.shape.clone();
                shape[2] += past.shape[2];
                let dst = if used(lw, i) {
                    lw.output(id, i)?
                } else {
                    lw.scratch(
                        if i == 1 { "keys" } else { "values" },
                        dt,
                        Format::Nd,
                        shape,
                    )
                };
                let t = Tiling::new().with("axis", 2);
                launch_copy(
                    lw,
                    "ConcatD",
                    vec![past, new.clone()],
                    vec![dst.clone()],
                    t,
                    0,
                )?;
                dst
            }
            None => {
                if used(lw, i) {
                    lw.alias_output(id, i, new)?;
                }
                new.clone()
            }
        };
        kv.push(full);
    }
    let (kf, vf) = (kv[0].clone(), kv[1].clone());
    let prefix = past_k.as_ref().map_or(0, |p| p.shape[2]);
    let [b, hq, s, dk] = q.shape[..] else {
        return Err(lw.error(format!("q has shape {:?}, not [B, H, S, D]", q.shape)));
    };
    let (hkv, t, dv) = (kf.shape[1], kf.shape[2], vf.shape[3]);
    let Some((so, si)) = blocks(lw.profile, s, t, dk, dv) else {
        return Err(lw.unsupported(format!(
            "attention with head dims {dk} and {dv} (no tile fits)"
        )));
    };
    let tasks = b * hq * ((s + so - 1) / so).max(1);
    let cores = lw.profile.aic_cores as i64;
    let per_core = ((tasks + cores - 1) / cores).max(1);
    let block_dim = ((tasks + per_core - 1) / per_core).max(1);
    let scale = scale.unwrap_or(1.0 / (dk as f32).sqrt());
    let tiling = Tiling::new()
        .with("batch", b)
        .with("numHeads", hq)
        .with("numKvHeads", hkv)
        .with("querySeq", s)
        .with("kvSeq", t)
        .with("headDimK", dk)
        .with("headDimV", dv)
        .with("prefix", prefix)
        .with("scaleBits", scale.to_bits() as i64)
        .with("softcapBits", softcap.to_bits() as i64)
        .with("causal", (causal != 0) as i64)
        .with("window", window)
        .with("hasMask", mask.is_some() as i64)
        .with("hasSinks", sinks.is_some() as i64)
        .with("sOuter", so)
        .with("sInner", si)
        .with("tasksPerCore", per_core);
    let per_block =
        up(so * si * 4, 512) + up(so * si * dt.size() as i64, 512) + up(so * dv * 4, 512);
    let ws = lw.workspace((per_block * block_dim) as u64);
    lw.launch_with_workspace(
        "FusedInferAttentionScore",
        CoreType::Mix,
        block_dim as u32,
        tiling,
        vec![Some(q), Some(kf), Some(vf), mask, sinks],
        vec![out],
        Some(ws),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::ascend::testing::{check, floats};
    use kiln_ir::Tensor;
    use kiln_runtime::ElemType;

    fn both(text: &str, inputs: &[Tensor]) -> Vec<String> {
        let mut k = Vec::new();
        for dtype in [ElemType::F16, ElemType::BF16] {
            let tol = if dtype == ElemType::F16 { 3e-3 } else { 2e-2 };
            k = check(text, inputs, &[], dtype, tol);
        }
        k
    }

    #[test]
    fn causal_gqa_prefill_over_several_key_blocks() {
        let k = both(
            "graph @t(%q: f32[1, 4, 150, 32], %k: f32[1, 2, 150, 32], %v: f32[1, 2, 150, 24]) -> (y: f32[1, 4, 150, 24]) {
                %0 = attention(%q, %k, %v) {causal = 1} : f32[1, 4, 150, 24]
                return %0
            }",
            &[floats(&[1, 4, 150, 32], 1), floats(&[1, 2, 150, 32], 2), floats(&[1, 2, 150, 24], 3)],
        );
        assert!(k.contains(&"FusedInferAttentionScore".to_string()));
    }

    #[test]
    fn decode_with_a_cache_window_sinks_and_softcap() {
        let k = both(
            "graph @t(%q: f32[2, 4, 1, 16], %k: f32[2, 1, 1, 16], %v: f32[2, 1, 1, 16], %pk: f32[2, 1, 40, 16], %pv: f32[2, 1, 40, 16], %s: f32[4]) -> (y: f32[2, 4, 1, 16], pk: f32[2, 1, 41, 16], pv: f32[2, 1, 41, 16]) {
                %0, %1, %2 = attention(%q, %k, %v, _, %pk, %pv, %s) {causal = 1, window = 8, softcap = 2.0, scale = 0.5} : f32[2, 4, 1, 16], f32[2, 1, 41, 16], f32[2, 1, 41, 16]
                return %0, %1, %2
            }",
            &[
                floats(&[2, 4, 1, 16], 4),
                floats(&[2, 1, 1, 16], 5),
                floats(&[2, 1, 1, 16], 6),
                floats(&[2, 1, 40, 16], 7),
                floats(&[2, 1, 40, 16], 8),
                floats(&[4], 9),
            ],
        );
        assert_eq!(k.iter().filter(|k| *k == "ConcatD").count(), 2);
    }

    #[test]
    fn masks_bool_and_float_fully_masked_rows_give_zeros() {
        let bits: Vec<bool> = (0..5 * 7).map(|i| i % 3 != 0 && i >= 7).collect();
        let mask = Tensor::from_bools(vec![5, 7], bits).unwrap();
        both(
            "graph @t(%q: f32[1, 2, 5, 16], %k: f32[1, 2, 7, 16], %v: f32[1, 2, 7, 16], %m: bool[5, 7], %f: f32[1, 1, 5, 7]) -> (a: f32[1, 2, 5, 16], b: f32[1, 2, 5, 16]) {
                %0 = attention(%q, %k, %v, %m) : f32[1, 2, 5, 16]
                %1 = attention(%q, %k, %v, %f) : f32[1, 2, 5, 16]
                return %0, %1
            }",
            &[
                floats(&[1, 2, 5, 16], 10),
                floats(&[1, 2, 7, 16], 11),
                floats(&[1, 2, 7, 16], 12),
                mask,
                floats(&[1, 1, 5, 7], 13),
            ],
        );
    }
}
