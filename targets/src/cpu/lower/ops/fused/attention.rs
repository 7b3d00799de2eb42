//! kiln's `attention` and ONNX `Attention` (opsets 23-24), lowered to the runtime's
//! `attention` helper.

use kiln_ir::attr::AttrsExt;
use kiln_ir::dim::Dim;
use kiln_ir::dtype::DType;
use kiln_ir::graph::{Graph, NodeId, Value};

use super::{
    attr, elem, float_elem, int_elem, konst, mask_strides, set_mask, strides, used, Slots,
};
use crate::cpu::lower::{Lowerer, Operand};
use crate::error::TargetError;

const SLOTS: usize = 80;
const FLAG_CAUSAL: u64 = 1;

fn zero() -> Dim {
    Dim::from(0i64)
}

/// Strides (batch, head, seq) of a `[B, H, S, D]` tensor.
fn bhsd(shape: &[Dim]) -> [Dim; 3] {
    let st = strides(shape);
    [st[0].clone(), st[1].clone(), st[2].clone()]
}

/// Strides (batch, head, seq) of a `[B, S, H * D]` tensor of heads of `d`.
fn bsd(shape: &[Dim], d: &Dim) -> [Dim; 3] {
    let st = strides(shape);
    [st[0].clone(), d.clone(), st[1].clone()]
}

/// Emits `attention` with the present outputs (when used) and the shared slots filled.
fn common(
    lw: &mut Lowerer,
    id: NodeId,
    s: &mut Slots,
    past: Option<(&Operand, &Operand)>,
    k_code: u64,
    v_code: u64,
) -> Result<(), TargetError> {
    for (out, code, slot) in [(1, k_code, 38), (2, v_code, 43)] {
        if used(lw, id, out) {
            let o = lw.output(id, out);
            s.view(slot, &o, code, &zero(), bhsd(&o.shape));
        }
    }
    if let Some((pk, pv)) = past {
        s.view(13, pk, k_code, &zero(), bhsd(&pk.shape));
        s.view(23, pv, v_code, &zero(), bhsd(&pv.shape));
        s.int(6, pk.shape[2].clone());
        s.int(79, pk.shape[2].clone());
    }
    let h = lw.helper("attention")?;
    lw.emit(h, std::mem::take(&mut s.0));
    Ok(())
}

/// The `Transpose [B, H, S, D] -> [B, S, H, D]` after kiln's `attention` (output 0's only
/// user; the present outputs unused), which the attention step writes directly: heads go
/// back together for the output projection without a copy.
pub fn output_transpose(g: &Graph, id: NodeId) -> Option<NodeId> {
    let node = g.node(id);
    if node.op != "attention" {
        return None;
    }
    let out = |i| Value {
        node: id,
        output: i,
    };
    let unused = |i| g.users(out(i)).is_empty() && !g.is_output(out(i));
    if !(1..node.outputs.len()).all(unused) || g.is_output(out(0)) {
        return None;
    }
    let [(t, 0)] = g.users(out(0))[..] else {
        return None;
    };
    let tn = g.node(t);
    let perm = tn.attrs.ints("perm").ok()??;
    (tn.op == "Transpose" && perm == [0, 2, 1, 3]).then_some(t)
}

/// kiln's `attention(q, k, v, mask?, past_k?, past_v?, sinks?)`.
pub fn lower_fused(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let attrs = lw.graph.node(id).attrs.clone();
    let q = lw.input(id, 0)?;
    let k = lw.input(id, 1)?;
    let v = lw.input(id, 2)?;
    if q.shape.len() != 4 || k.shape.len() != 4 || v.shape.len() != 4 {
        return Err(lw.error("q, k, v must have rank 4"));
    }
    let code = float_elem(lw, q.dtype, "attention")?;
    let (dk, dv) = (q.shape[3].clone(), v.shape[3].clone());
    let mut s = Slots::new(SLOTS);
    for (i, d) in [&q.shape[0], &q.shape[1], &k.shape[1], &q.shape[2], &dk, &dv]
        .into_iter()
        .enumerate()
    {
        s.int(i, d.clone());
    }
    s.int(7, k.shape[2].clone());
    s.view(8, &q, code, &zero(), bhsd(&q.shape));
    s.view(18, &k, code, &zero(), bhsd(&k.shape));
    s.view(28, &v, code, &zero(), bhsd(&v.shape));
    match output_transpose(lw.graph, id) {
        // [B, S, H, D]: strides (batch, head, seq) = (S*H*D, D, H*D).
        Some(t) => {
            let out = lw.output(t, 0);
            let st = strides(&out.shape);
            let view = [st[0].clone(), st[2].clone(), st[1].clone()];
            s.view(33, &out, code, &zero(), view);
        }
        None => {
            let out = lw.output(id, 0);
            s.view(33, &out, code, &zero(), bhsd(&out.shape));
        }
    }
    let scale = match attr(lw, attrs.float("scale"))? {
        Some(x) => x,
        None => 1.0 / (konst(lw, &dk, "head size")? as f32).sqrt(),
    };
    s.f32(48, scale);
    s.f32(49, attr(lw, attrs.float_or("softcap", 0.0))?);
    let causal = attr(lw, attrs.int_or("causal", 0))? != 0;
    s.bits(50, if causal { FLAG_CAUSAL } else { 0 });
    let window = attr(lw, attrs.int_or("window", 0))?;
    s.bits(
        51,
        if window > 0 {
            (window - 1) as u64
        } else {
            u64::MAX
        },
    );
    s.bits(52, u64::MAX);
    let past = match (lw.opt_input(id, 4), lw.opt_input(id, 5)) {
        (Some(a), Some(b)) => Some((a, b)),
        _ => None,
    };
    let total = match &past {
        Some((pk, _)) => pk.shape[2].add(&k.shape[2]),
        None => k.shape[2].clone(),
    };
    if let Some(m) = lw.opt_input(id, 3) {
        let mc = elem(lw, m.dtype, "mask")?;
        if m.dtype != DType::Bool {
            float_elem(lw, m.dtype, "mask")?;
        }
        let st = mask_strides(&m.shape, true);
        set_mask(&mut s, 53, &m, mc, st, total.clone());
    }
    if let Some(sk) = lw.opt_input(id, 6) {
        let c = float_elem(lw, sk.dtype, "sinks")?;
        s.ptr(67, &sk, &zero());
        s.bits(68, c);
    }
    if let Some((pk, pv)) = &past {
        if pk.dtype != q.dtype || pv.dtype != q.dtype {
            return Err(lw.unsupported("a cache of another dtype than q"));
        }
    }
    let past_ref = past.as_ref().map(|(a, b)| (a, b));
    common(lw, id, &mut s, past_ref, code, code)
}

/// ONNX `Attention`: Q, K, V 3-D `(B, S, heads * D)` or 4-D `(B, heads, S, D)`, attn_mask,
/// past_key, past_value, nonpad_kv_seqlen; outputs Y, present_key, present_value,
/// qk_matmul_output.
pub fn lower_onnx(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let attrs = lw.graph.node(id).attrs.clone();
    let q = lw.input(id, 0)?;
    let k = lw.input(id, 1)?;
    let v = lw.input(id, 2)?;
    let rank = q.shape.len();
    if !(rank == 3 || rank == 4) || k.shape.len() != rank || v.shape.len() != rank {
        return Err(lw.error("Q, K and V must all be 3-D or all 4-D"));
    }
    let qc = float_elem(lw, q.dtype, "Q")?;
    let kc = float_elem(lw, k.dtype, "K")?;
    let vc = float_elem(lw, v.dtype, "V")?;
    let y_ty = lw
        .graph
        .value_type(Value {
            node: id,
            output: 0,
        })
        .clone();
    let (b, nq, nkv, sq, l, dk, dv) = if rank == 3 {
        let nq = attr(lw, attrs.int("q_num_heads"))?.unwrap_or(0);
        let nkv = attr(lw, attrs.int("kv_num_heads"))?.unwrap_or(0);
        if nq <= 0 || nkv <= 0 {
            return Err(lw.error("3-D inputs need q_num_heads and kv_num_heads"));
        }
        let dk = q.shape[2].floor_div(&Dim::from(nq));
        let dv = v.shape[2].floor_div(&Dim::from(nkv));
        (
            q.shape[0].clone(),
            Dim::from(nq),
            Dim::from(nkv),
            q.shape[1].clone(),
            k.shape[1].clone(),
            dk,
            dv,
        )
    } else {
        (
            q.shape[0].clone(),
            q.shape[1].clone(),
            k.shape[1].clone(),
            q.shape[2].clone(),
            k.shape[2].clone(),
            q.shape[3].clone(),
            v.shape[3].clone(),
        )
    };
    let view_of = |op: &Operand, d: &Dim| {
        if rank == 3 {
            bsd(&op.shape, d)
        } else {
            bhsd(&op.shape)
        }
    };
    let mut s = Slots::new(SLOTS);
    for (i, d) in [&b, &nq, &nkv, &sq, &dk, &dv].into_iter().enumerate() {
        s.int(i, d.clone());
    }
    s.int(7, l.clone());
    s.view(8, &q, qc, &zero(), view_of(&q, &dk));
    s.view(18, &k, kc, &zero(), view_of(&k, &dk));
    s.view(28, &v, vc, &zero(), view_of(&v, &dv));
    let out = lw.output(id, 0);
    let oc = float_elem(lw, y_ty.dtype, "Y")?;
    s.view(33, &out, oc, &zero(), view_of(&out, &dv));
    let scale = match attr(lw, attrs.float("scale"))? {
        Some(x) => x,
        None => 1.0 / (konst(lw, &dk, "head size")? as f32).sqrt(),
    };
    s.f32(48, scale);
    s.f32(49, attr(lw, attrs.float_or("softcap", 0.0))?);
    let causal = attr(lw, attrs.int_or("is_causal", 0))? != 0;
    s.bits(50, if causal { FLAG_CAUSAL } else { 0 });
    let left = attr(lw, attrs.int_or("left_window_size", -1))?;
    let right = attr(lw, attrs.int_or("right_window_size", -1))?;
    if left < -1 || right < -1 {
        return Err(lw.error("window sizes must be -1 or nonnegative"));
    }
    s.bits(51, left as u64);
    s.bits(52, right as u64);
    let past = match (lw.opt_input(id, 4), lw.opt_input(id, 5)) {
        (Some(a), Some(c)) => Some((a, c)),
        (None, None) => None,
        _ => return Err(lw.error("past_key and past_value must be given together")),
    };
    if let Some((pk, pv)) = &past {
        if pk.shape.len() != 4 || pv.shape.len() != 4 {
            return Err(lw.error("past_key and past_value must be 4-D"));
        }
        float_elem(lw, pk.dtype, "past_key")?;
        float_elem(lw, pv.dtype, "past_value")?;
        if pk.dtype != k.dtype || pv.dtype != v.dtype {
            return Err(lw.unsupported("a cache of another dtype than K / V"));
        }
    }
    let total = match &past {
        Some((pk, _)) => pk.shape[2].add(&l),
        None => l.clone(),
    };
    if let Some(m) = lw.opt_input(id, 3) {
        if m.shape.is_empty() || m.shape.len() > 4 {
            return Err(lw.error("attn_mask must have rank 1 to 4"));
        }
        let mc = elem(lw, m.dtype, "attn_mask")?;
        if m.dtype != DType::Bool {
            float_elem(lw, m.dtype, "attn_mask")?;
        }
        let cols = m.shape[m.shape.len() - 1].clone();
        let st = mask_strides(&m.shape, false);
        set_mask(&mut s, 53, &m, mc, st, cols);
    }
    if let Some(np) = lw.opt_input(id, 6) {
        if past.is_some() {
            return Err(lw.error("nonpad_kv_seqlen cannot be combined with past_key / past_value"));
        }
        let c = int_elem(lw, np.dtype, "nonpad_kv_seqlen")?;
        s.ptr(77, &np, &zero());
        s.bits(78, c);
    }
    if used(lw, id, 3) {
        let mode = attr(lw, attrs.int_or("qk_matmul_output_mode", 0))?;
        if !(0..=3).contains(&mode) {
            return Err(lw.error(format!("qk_matmul_output_mode must be 0 to 3, got {mode}")));
        }
        let qk = lw.output(id, 3);
        let c = float_elem(lw, qk.dtype, "qk_matmul_output")?;
        s.view(69, &qk, c, &zero(), bhsd(&qk.shape));
        s.int(74, total.clone());
        s.bits(75, mode as u64);
        s.bits(76, 1);
    }
    let past_ref = past.as_ref().map(|(a, c)| (a, c));
    common(lw, id, &mut s, past_ref, kc, vc)
}

#[cfg(test)]
mod tests {
    use crate::cpu::codegen::isa::CpuFeatures;
    use crate::cpu::testing::{check, floats, graph, load};

    #[test]
    fn attention_writes_its_output_transposed() {
        let text = "graph @t(%q: f32[batch, 3, seq, 32], %k: f32[batch, 3, seq, 32], %v: f32[batch, 3, seq, 32], %m: f32[batch, 1, 1, seq]) -> (y: f32[batch, seq, 3, 32]) {
               %0 = attention(%q, %k, %v, %m) : f32[batch, 3, seq, 32]
               %1 = Transpose(%0) {perm = [0, 2, 1, 3]} : f32[batch, seq, 3, 32]
               return %1
             }";
        for (b, s) in [(1, 7), (2, 20)] {
            let x = |seed| floats(&[b, 3, s, 32], seed);
            check(
                text,
                &[x(1), x(2), x(3), floats(&[b, 1, 1, s], 4)],
                1e-5,
                1e-6,
            );
        }
        let m = load(&graph(text), CpuFeatures::host()).unwrap();
        let steps: Vec<&str> = m
            .manifest()
            .steps
            .iter()
            .map(|s| s.kernel.as_str())
            .collect();
        assert_eq!(steps, ["helper attention"]);
        // The attention output is also read as is: the transpose stays a step.
        let text =
            "graph @t(%q: f32[1, 2, seq, 32]) -> (y: f32[1, seq, 2, 32], z: f32[1, 2, seq, 32]) {
               %0 = attention(%q, %q, %q) : f32[1, 2, seq, 32]
               %1 = Transpose(%0) {perm = [0, 2, 1, 3]} : f32[1, seq, 2, 32]
               %2 = Neg(%0) : f32[1, 2, seq, 32]
               return %1, %2
             }";
        check(text, &[floats(&[1, 2, 9, 32], 5)], 1e-5, 1e-6);
        let m = load(&graph(text), CpuFeatures::host()).unwrap();
        assert_eq!(m.manifest().steps.len(), 3);
    }
}

/// Timing of attention at MiniLM's shapes (12 heads of 32, seq 128, an additive float mask
/// `[B, 1, 1, T]`): the fused `attention` op beside the unfused MatMul / Add / Softmax /
/// MatMul chain it replaces (`cargo test --release -p kiln-targets attention_minilm --
/// --ignored --nocapture`). Medians and minimums of runs alternating the two, per thread
/// count (on a busy machine the minimums are the less disturbed).
#[cfg(test)]
mod bench {
    use std::collections::HashMap;
    use std::time::Instant;

    use kiln_runtime::{ElemType, Model, Tensor as RtTensor};

    use crate::cpu::codegen::isa::CpuFeatures;
    use crate::cpu::testing::{floats, graph, load_with};
    use crate::cpu::CpuOptions;

    fn load(text: &str, threads: usize) -> Model {
        let options = CpuOptions {
            features: CpuFeatures::host(),
            bounds: HashMap::new(),
        };
        load_with(&graph(text), &options, threads).unwrap()
    }

    fn input(shape: &[usize], seed: u64) -> RtTensor {
        let t = floats(shape, seed);
        RtTensor::from_bytes(ElemType::F32, shape, &t.to_le_bytes()).unwrap()
    }

    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }

    #[test]
    #[ignore]
    fn attention_minilm() {
        let (h, s, d) = (12, 128, 32);
        let fused = "graph @t(%q: f32[1, 12, seq, 32], %k: f32[1, 12, seq, 32], %v: f32[1, 12, seq, 32], %m: f32[1, 1, 1, seq]) -> (y: f32[1, 12, seq, 32]) {
               %0 = attention(%q, %k, %v, %m) : f32[1, 12, seq, 32]
               return %0
             }";
        let unfused = "graph @t(%q: f32[1, 12, seq, 32], %kt: f32[1, 12, 32, seq], %v: f32[1, 12, seq, 32], %m: f32[1, 1, 1, seq]) -> (y: f32[1, 12, seq, 32]) {
               %c = constant {value = dense<f32[]>[0.17677669]} : f32[]
               %0 = MatMul(%q, %kt) : f32[1, 12, seq, seq]
               %1 = Mul(%0, %c) : f32[1, 12, seq, seq]
               %2 = Add(%1, %m) : f32[1, 12, seq, seq]
               %3 = Softmax(%2) {axis = -1} : f32[1, 12, seq, seq]
               %4 = MatMul(%3, %v) : f32[1, 12, seq, 32]
               return %4
             }";
        let q = input(&[1, h, s, d], 1);
        let k = input(&[1, h, s, d], 2);
        let kt = input(&[1, h, d, s], 2);
        let v = input(&[1, h, s, d], 3);
        // Padding: the last 8 keys masked out.
        let mv: Vec<f32> = (0..s).map(|j| if j < s - 8 { 0.0 } else { -1e9 }).collect();
        let bytes: Vec<u8> = mv.iter().flat_map(|x| x.to_le_bytes()).collect();
        let mask = RtTensor::from_bytes(ElemType::F32, &[1, 1, 1, s], &bytes).unwrap();
        let fi = [q.clone(), k, v.clone(), mask.clone()];
        let ui = [q, kt, v, mask];
        for threads in [1, 2] {
            let (mf, mu) = (load(fused, threads), load(unfused, threads));
            for _ in 0..5 {
                mf.run(&fi).unwrap();
                mu.run(&ui).unwrap();
            }
            let (mut tf, mut tu) = (Vec::new(), Vec::new());
            for _ in 0..200 {
                let t = Instant::now();
                mf.run(&fi).unwrap();
                tf.push(t.elapsed().as_secs_f64() * 1e6);
                let t = Instant::now();
                mu.run(&ui).unwrap();
                tu.push(t.elapsed().as_secs_f64() * 1e6);
            }
            let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
            let (fm, um) = (min(&tf), min(&tu));
            let (f, u) = (median(tf), median(tu));
            println!(
                "attention 12 x 128 x 32, {threads} thr: fused {f:7.1} us (min {fm:6.1}), unfused {u:7.1} us (min {um:6.1}), fused/unfused {:.2} (of the minimums {:.2})",
                f / u,
                fm / um
            );
        }
    }
}
