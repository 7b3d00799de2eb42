//! Compiled attention, rotary and MoE steps against the reference interpreter.

use kiln_ir::tensor::{Data, Tensor};
use kiln_ir::DType;

use crate::cpu::testing::{self, check, floats};

fn bools(shape: &[usize], seed: u64) -> Tensor {
    let f = floats(shape, seed).to_f64();
    Tensor::from_bools(shape.to_vec(), f.iter().map(|&x| x > -0.6).collect()).unwrap()
}

fn i32s(shape: &[usize], v: &[i32]) -> Tensor {
    Tensor::new(shape.to_vec(), Data::I32(v.to_vec())).unwrap()
}

fn i64s(shape: &[usize], v: &[i64]) -> Tensor {
    Tensor::from_i64s(shape.to_vec(), v.to_vec()).unwrap()
}

fn ty(dt: &str, shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("{dt}[{}]", dims.join(", "))
}

/// ONNX Attention, 4-D, GQA, causal over a cache with a bool mask; present outputs and the
/// probabilities; query and key counts that are not multiples of the tiles.
#[test]
fn onnx_attention_gqa_cache_bool_mask_probs() {
    let (b, hq, hk, s, p, d) = (2, 4, 2, 67, 5, 8);
    let t = p + s;
    let text = format!(
        "graph @t(%q: {q}, %k: {k}, %v: {k}, %m: {m}, %pk: {pk}, %pv: {pk}) -> (y: {q}, a: {pr}, c: {pr}, w: {w}) {{
           %0, %1, %2, %3 = Attention(%q, %k, %v, %m, %pk, %pv) {{is_causal = 1, qk_matmul_output_mode = 3}} : {q}, {pr}, {pr}, {w}
           return %0, %1, %2, %3
         }}",
        q = ty("f32", &[b, hq, s, d]),
        k = ty("f32", &[b, hk, s, d]),
        m = ty("bool", &[s, t]),
        pk = ty("f32", &[b, hk, p, d]),
        pr = ty("f32", &[b, hk, t, d]),
        w = ty("f32", &[b, hq, s, t]),
    );
    let ins = [
        floats(&[b, hq, s, d], 1),
        floats(&[b, hk, s, d], 2),
        floats(&[b, hk, s, d], 3),
        bools(&[s, t], 4),
        floats(&[b, hk, p, d], 5),
        floats(&[b, hk, p, d], 6),
    ];
    check(&text, &ins, 1e-4, 1e-5);
}

/// ONNX Attention, 3-D, value head size != key head size, a float 4-D mask broadcast over
/// batch and queries, softcap, scale, raw scores out.
#[test]
fn onnx_attention_3d_diff_heads_softcap_raw_scores() {
    let (b, hq, hk, s, l, dk, dv) = (2, 3, 3, 5, 130, 4, 6);
    let text = format!(
        "graph @t(%q: {q}, %k: {k}, %v: {v}, %m: {m}) -> (y: {y}, w: {w}) {{
           %0, %1, %2, %3 = Attention(%q, %k, %v, %m) {{kv_num_heads = 3, q_num_heads = 3, qk_matmul_output_mode = 0, scale = 0.7, softcap = 2.0}} : {y}, {pk}, {pv}, {w}
           return %0, %3
         }}",
        q = ty("f32", &[b, s, hq * dk]),
        k = ty("f32", &[b, l, hk * dk]),
        v = ty("f32", &[b, l, hk * dv]),
        m = ty("f32", &[1, hq, 1, l]),
        y = ty("f32", &[b, s, hq * dv]),
        pk = ty("f32", &[b, hk, l, dk]),
        pv = ty("f32", &[b, hk, l, dv]),
        w = ty("f32", &[b, hq, s, l]),
    );
    let ins = [
        floats(&[b, s, hq * dk], 7),
        floats(&[b, l, hk * dk], 8),
        floats(&[b, l, hk * dv], 9),
        floats(&[1, hq, 1, l], 10),
    ];
    check(&text, &ins, 1e-4, 1e-5);
}

/// ONNX Attention: left/right windows, a mask shorter than the keys, the biased scores.
#[test]
fn onnx_attention_windows_short_mask() {
    let (b, h, s, d) = (1, 2, 9, 4);
    let text = format!(
        "graph @t(%q: {q}, %m: {m}) -> (y: {q}, w: {w}) {{
           %0, %1, %2, %3 = Attention(%q, %q, %q, %m) {{left_window_size = 2, right_window_size = 1, qk_matmul_output_mode = 2}} : {q}, {q}, {q}, {w}
           return %0, %3
         }}",
        q = ty("f32", &[b, h, s, d]),
        m = ty("f32", &[s, 7]),
        w = ty("f32", &[b, h, s, s]),
    );
    check(
        &text,
        &[floats(&[b, h, s, d], 11), floats(&[s, 7], 12)],
        1e-4,
        1e-5,
    );
}

/// ONNX Attention with nonpad_kv_seqlen (an external cache): per-batch key counts and
/// query positions, including a negative offset.
#[test]
fn onnx_attention_nonpad_causal() {
    let (b, h, s, t, d) = (3, 2, 4, 6, 8);
    let text = format!(
        "graph @t(%q: {q}, %k: {k}, %n: i64[3]) -> (y: {q}) {{
           %0 = Attention(%q, %k, %k, _, _, _, %n) {{is_causal = 1}} : {q}
           return %0
         }}",
        q = ty("f32", &[b, h, s, d]),
        k = ty("f32", &[b, h, t, d]),
    );
    let ins = [
        floats(&[b, h, s, d], 13),
        floats(&[b, h, t, d], 14),
        i64s(&[3], &[6, 2, 5]),
    ];
    check(&text, &ins, 1e-4, 1e-5);
}

/// f16 inputs and outputs.
#[test]
fn onnx_attention_f16() {
    let (b, h, s, d) = (1, 2, 5, 8);
    let q = floats(&[b, h, s, d], 15).cast(DType::F16);
    let text = format!(
        "graph @t(%q: {q}) -> (y: {q}) {{
           %0 = Attention(%q, %q, %q) {{is_causal = 1}} : {q}
           return %0
         }}",
        q = ty("f16", &[b, h, s, d]),
    );
    check(&text, &[q], 2e-3, 1e-3);
}

/// kiln's attention: GQA, MLA head sizes, cache, causal + window, sinks, a mask
/// broadcast over keys.
#[test]
fn fused_attention_cache_window_sinks() {
    let (b, hq, hk, s, p, dk, dv) = (2, 6, 2, 33, 70, 5, 3);
    let t = p + s;
    let text = format!(
        "graph @t(%q: {q}, %k: {k}, %v: {v}, %m: {m}, %pk: {pk}, %pv: {pv}, %sk: f32[{hq}]) -> (y: {y}, a: {ak}, c: {av}) {{
           %0, %1, %2 = attention(%q, %k, %v, %m, %pk, %pv, %sk) {{causal = 1, window = 40}} : {y}, {ak}, {av}
           return %0, %1, %2
         }}",
        q = ty("f32", &[b, hq, s, dk]),
        k = ty("f32", &[b, hk, s, dk]),
        v = ty("f32", &[b, hk, s, dv]),
        m = ty("f32", &[b, 1, s, 1]),
        pk = ty("f32", &[b, hk, p, dk]),
        pv = ty("f32", &[b, hk, p, dv]),
        y = ty("f32", &[b, hq, s, dv]),
        ak = ty("f32", &[b, hk, t, dk]),
        av = ty("f32", &[b, hk, t, dv]),
    );
    let ins = [
        floats(&[b, hq, s, dk], 16),
        floats(&[b, hk, s, dk], 17),
        floats(&[b, hk, s, dv], 18),
        floats(&[b, 1, s, 1], 19),
        floats(&[b, hk, p, dk], 20),
        floats(&[b, hk, p, dv], 21),
        floats(&[hq], 22),
    ];
    check(&text, &ins, 1e-4, 1e-5);
}

/// kiln's attention with a symbolic sequence length (one artifact, several lengths).
#[test]
fn fused_attention_symbolic_seq() {
    let text = "graph @t(%q: f32[1, 2, seq, 4]) -> (y: f32[1, 2, seq, 4]) {
           %0 = attention(%q, %q, %q) {causal = 1} : f32[1, 2, seq, 4]
           return %0
         }";
    for s in [1, 7, 65] {
        check(text, &[floats(&[1, 2, s, 4], 23 + s as u64)], 1e-4, 1e-5);
    }
}

#[allow(clippy::too_many_arguments)]
fn gqa_text(
    b: usize,
    n: usize,
    nk: usize,
    s: usize,
    h: usize,
    past: usize,
    total: usize,
    present: usize,
    attrs: &str,
    extra: &str,
) -> String {
    format!(
        "graph @t(%x: {x}, %pk: {pk}, %pv: {pk}, %sl: i32[{b}]{extra_params}) -> (y: {y}, a: {pr}, c: {pr}) {{
           %0 = constant {{value = dense<i32[]>[{total}]}} : i32[]
           %1, %2, %3 = com.microsoft.GroupQueryAttention(%x, _, _, %pk, %pv, %sl, %0{extra}) {{kv_num_heads = {nk}, num_heads = {n}{attrs}}} : {y}, {pr}, {pr}
           return %1, %2, %3
         }}",
        x = ty("f32", &[b, s, (n + 2 * nk) * h]),
        pk = ty("f32", &[b, nk, past, h]),
        y = ty("f32", &[b, s, n * h]),
        pr = ty("f32", &[b, nk, present, h]),
        extra_params = if extra.contains("%cos") {
            ", %cos: f32[128, 4], %sin: f32[128, 4]"
        } else {
            ""
        },
    )
}

fn tables() -> (Tensor, Tensor) {
    let ang: Vec<f32> = (0..128 * 4)
        .map(|i| (i / 4) as f32 * 0.1 * (1.0 + (i % 4) as f32))
        .collect();
    (
        Tensor::from_f32s(vec![128, 4], ang.iter().map(|a| a.cos()).collect()).unwrap(),
        Tensor::from_f32s(vec![128, 4], ang.iter().map(|a| a.sin()).collect()).unwrap(),
    )
}

/// GroupQueryAttention, packed QKV, prompt with rotary and a ragged batch entry.
#[test]
fn gqa_prompt_rotary_packed() {
    let (b, n, nk, s, h) = (2, 4, 2, 70, 8);
    let text = gqa_text(b, n, nk, s, h, 0, s, s, ", do_rotary = 1", ", %cos, %sin");
    let (cos, sin) = tables();
    let ins = [
        floats(&[b, s, (n + 2 * nk) * h], 30),
        floats(&[b, nk, 0, h], 31),
        floats(&[b, nk, 0, h], 32),
        i32s(&[b], &[69, 50]),
        cos,
        sin,
    ];
    check(&text, &ins, 1e-4, 1e-5);
}

/// GroupQueryAttention decode over a cache with rotary, a local window and softcap.
#[test]
fn gqa_decode_rotary_window_softcap() {
    let (b, n, nk, s, h, past) = (2, 4, 1, 2, 8, 40);
    let text = gqa_text(
        b,
        n,
        nk,
        s,
        h,
        past,
        41,
        41,
        ", do_rotary = 1, local_window_size = 9, softcap = 1.5, rotary_interleaved = 1",
        ", %cos, %sin",
    );
    let (cos, sin) = tables();
    let ins = [
        floats(&[b, s, (n + 2 * nk) * h], 33),
        floats(&[b, nk, past, h], 34),
        floats(&[b, nk, past, h], 35),
        i32s(&[b], &[40, 20]),
        cos,
        sin,
    ];
    check(&text, &ins, 1e-4, 1e-5);
}

/// GroupQueryAttention with a sliding-window cache (GPT-OSS's banded layers): a prompt and
/// decode steps that wrap the cache.
#[test]
fn gqa_sliding_window_cache() {
    let (b, n, nk, h, cap) = (1, 2, 1, 4, 8);
    for (s, sk) in [(3usize, 2i32), (1, 8), (1, 12), (2, 14)] {
        let text = gqa_text(
            b,
            n,
            nk,
            s,
            h,
            cap,
            sk as usize + 1,
            cap,
            ", local_window_size = 5, sliding_window_cache = 1",
            "",
        );
        let ins = [
            floats(&[b, s, (n + 2 * nk) * h], 36 + s as u64),
            floats(&[b, nk, cap, h], 37),
            floats(&[b, nk, cap, h], 38),
            i32s(&[b], &[sk]),
        ];
        check(&text, &ins, 1e-4, 1e-5);
    }
}

/// GroupQueryAttention with separate K/V, head sinks, an attention bias and the
/// probabilities output.
#[test]
fn gqa_sinks_bias_probs() {
    let (b, n, nk, s, h, past, total) = (2, 4, 2, 3, 4, 5, 8);
    let text = format!(
        "graph @t(%q: {q}, %k: {k}, %pk: {pk}, %sl: i32[{b}], %bias: {bias}, %sink: f32[{n}]) -> (y: {q}, w: {w}) {{
           %0 = constant {{value = dense<i32[]>[{total}]}} : i32[]
           %1, %2, %3, %4 = com.microsoft.GroupQueryAttention(%q, %k, %k, %pk, %pk, %sl, %0, _, _, _, %bias, %sink) {{kv_num_heads = {nk}, num_heads = {n}, qk_output = 2}} : {q}, {pr}, {pr}, {w}
           return %1, %4
         }}",
        q = ty("f32", &[b, s, n * h]),
        k = ty("f32", &[b, s, nk * h]),
        pk = ty("f32", &[b, nk, past, h]),
        pr = ty("f32", &[b, nk, total, h]),
        bias = ty("f32", &[1, n, s, total]),
        w = ty("f32", &[b, n, s, total]),
    );
    let ins = [
        floats(&[b, s, n * h], 40),
        floats(&[b, s, nk * h], 41),
        floats(&[b, nk, past, h], 42),
        i32s(&[b], &[7, 5]),
        floats(&[1, n, s, total], 43),
        floats(&[n], 44),
    ];
    check(&text, &ins, 1e-4, 1e-5);
}

#[test]
fn rotary_onnx_3d_positions_and_4d_tables() {
    let (cos, sin) = tables();
    let text = "graph @t(%x: f32[2, 3, 24], %cos: f32[128, 4], %sin: f32[128, 4], %p: i64[2, 3]) -> (y: f32[2, 3, 24]) {
           %0 = RotaryEmbedding(%x, %cos, %sin, %p) {num_heads = 2, rotary_embedding_dim = 8} : f32[2, 3, 24]
           return %0
         }";
    let ins = [
        floats(&[2, 3, 24], 50),
        cos.clone(),
        sin.clone(),
        i64s(&[2, 3], &[0, 5, 63, 2, 2, 7]),
    ];
    check(text, &ins, 1e-5, 1e-6);
    let c3 = floats(&[1, 3, 2], 51);
    let s3 = floats(&[1, 3, 2], 52);
    let text = "graph @t(%x: f32[2, 2, 3, 4], %cos: f32[1, 3, 2], %sin: f32[1, 3, 2]) -> (y: f32[2, 2, 3, 4]) {
           %0 = RotaryEmbedding(%x, %cos, %sin) {interleaved = 1} : f32[2, 2, 3, 4]
           return %0
         }";
    check(text, &[floats(&[2, 2, 3, 4], 53), c3, s3], 1e-5, 1e-6);
}

#[test]
fn rotary_ms_offset_and_fused_rope() {
    let (cos, sin) = tables();
    let text = "graph @t(%x: f32[1, 3, 16], %p: i64[1], %cos: f32[128, 4], %sin: f32[128, 4]) -> (y: f32[1, 3, 16]) {
           %0 = com.microsoft.RotaryEmbedding(%x, %p, %cos, %sin) {num_heads = 2} : f32[1, 3, 16]
           return %0
         }";
    check(
        text,
        &[floats(&[1, 3, 16], 54), i64s(&[1], &[9]), cos, sin],
        1e-5,
        1e-6,
    );
    let text = "graph @t(%x: f32[2, 3, 5, 10], %c: f32[2, 1, 5, 3], %s: f32[2, 1, 5, 3]) -> (y: f32[2, 3, 5, 10]) {
           %0 = rope(%x, %c, %s) : f32[2, 3, 5, 10]
           return %0
         }";
    let ins = [
        floats(&[2, 3, 5, 10], 55),
        floats(&[2, 1, 5, 3], 56),
        floats(&[2, 1, 5, 3], 57),
    ];
    check(text, &ins, 1e-5, 1e-6);
    let text =
        "graph @t(%x: f32[2, 3, 5, 6], %c: f32[5, 3], %s: f32[5, 3]) -> (y: f32[2, 3, 5, 6]) {
           %0 = rope(%x, %c, %s) {interleaved = 1} : f32[2, 3, 5, 6]
           return %0
         }";
    let ins = [
        floats(&[2, 3, 5, 6], 58),
        floats(&[5, 3], 59),
        floats(&[5, 3], 60),
    ];
    check(text, &ins, 1e-5, 1e-6);
}

/// MultiHeadAttention: projection bias, key padding mask, causal over a cache, scores out.
#[test]
fn mha_bias_padding_causal_cache() {
    let (b, n, s, l, h, p) = (2, 2, 3, 3, 4, 2);
    let t = p + l;
    let text = format!(
        "graph @t(%q: {q}, %k: {q}, %v: {q}, %bias: f32[{nb}], %m: i32[{b}, {t}], %pk: {pk}, %pv: {pk}) -> (y: {q}, a: {pr}, c: {pr}, w: {w}) {{
           %0, %1, %2, %3 = com.microsoft.MultiHeadAttention(%q, %k, %v, %bias, %m, _, %pk, %pv) {{num_heads = {n}, unidirectional = 1}} : {q}, {pr}, {pr}, {w}
           return %0, %1, %2, %3
         }}",
        q = ty("f32", &[b, s, n * h]),
        nb = 3 * n * h,
        pk = ty("f32", &[b, n, p, h]),
        pr = ty("f32", &[b, n, t, h]),
        w = ty("f32", &[b, n, s, t]),
    );
    let ins = [
        floats(&[b, s, n * h], 61),
        floats(&[b, l, n * h], 62),
        floats(&[b, l, n * h], 63),
        floats(&[3 * n * h], 64),
        i32s(&[b, t], &[1, 1, 0, 1, 1, 1, 0, 0, 0, 0]),
        floats(&[b, n, p, h], 65),
        floats(&[b, n, p, h], 66),
    ];
    check(&text, &ins, 1e-4, 1e-5);
}

/// A `constant` statement `%name = constant {value = dense<...>}` of pseudo-random floats.
fn dense(name: &str, shape: &[usize], seed: u64) -> String {
    let ty = ty("f32", shape);
    format!(
        "%{name} = constant {{value = {}}} : {ty}\n",
        testing::dense(shape, seed)
    )
}

/// kiln's moe: softmax top-2, renormalised, swiglu with w3, biases; weights as constants
/// (prepacked) and as inputs (packed per call).
#[test]
fn fused_moe_swiglu_top2_const_and_input_weights() {
    let (n0, n1, hd, e, i) = (3, 5, 8, 4, 6);
    let a = "{k = 2, normalize_routing_weights = 1}";
    let (x, r, y) = (
        ty("f32", &[n0, n1, hd]),
        ty("f32", &[n0, n1, e]),
        ty("f32", &[n0, n1, hd]),
    );
    let mut text = format!("graph @t(%x: {x}, %r: {r}) -> (y: {y}) {{\n");
    text += &dense("0", &[e, i, hd], 70);
    text += &dense("1", &[e, i], 71);
    text += &dense("2", &[e, hd, i], 72);
    text += &dense("3", &[e, hd], 73);
    text += &dense("4", &[e, i, hd], 74);
    text += &dense("5", &[e, i], 75);
    text += &format!("%6 = moe(%x, %r, %0, %1, %2, %3, %4, %5) {a} : {y}\nreturn %6\n}}");
    let ins = [floats(&[n0, n1, hd], 76), floats(&[n0, n1, e], 77)];
    check(&text, &ins, 1e-4, 1e-5);
    let text = format!(
        "graph @t(%x: {x}, %r: {r}, %w1: {w1}, %w2: {w2}, %w3: {w1}) -> (y: {y}) {{
           %0 = moe(%x, %r, %w1, _, %w2, _, %w3) {a} : {y}
           return %0
         }}",
        w1 = ty("f32", &[e, i, hd]),
        w2 = ty("f32", &[e, hd, i]),
    );
    let ins = [
        floats(&[n0, n1, hd], 78),
        floats(&[n0, n1, e], 79),
        floats(&[e, i, hd], 80),
        floats(&[e, hd, i], 81),
        floats(&[e, i, hd], 82),
    ];
    check(&text, &ins, 1e-4, 1e-5);
}

/// kiln's moe: sigmoid scores with a selection bias and group-limited routing, gelu
/// experts without up, scaling, gated shared experts (gelu(w1 x) * w3 x).
#[test]
fn fused_moe_groups_gelu_shared() {
    let (n, hd, e, i, is) = (7, 8, 8, 5, 12);
    let a = "{activation_type = \"gelu\", k = 3, n_group = 4, topk_group = 2, routed_scaling_factor = 2.5, scoring_func = \"sigmoid\"}";
    let (x, r) = (ty("f32", &[n, hd]), ty("f32", &[n, e]));
    let mut text = format!("graph @t(%x: {x}, %r: {r}) -> (y: {x}) {{\n");
    text += &dense("0", &[e, i, hd], 83);
    text += &dense("1", &[e, hd, i], 84);
    text += &dense("2", &[e], 85);
    text += &dense("3", &[is, hd], 86);
    text += &dense("4", &[hd, is], 87);
    text += &dense("5", &[is, hd], 88);
    text += &dense("6", &[hd], 89);
    text += &format!(
        "%7 = moe(%x, %r, %0, _, %1, _, _, _, %2, _, _, %3, %4, %5, %6) {a} : {x}\nreturn %7\n}}"
    );
    check(
        &text,
        &[floats(&[n, hd], 90), floats(&[n, e], 91)],
        1e-4,
        1e-5,
    );
}

/// kiln's moe: hash routing by token id, sqrt-softplus scores, swiglu fused in halves with
/// a limit.
#[test]
fn fused_moe_hash_halves_limit() {
    let (n, hd, e, i) = (5, 4, 3, 3);
    let a = "{activation_alpha = 1.702, activation_beta = 1.0, k = 2, scoring_func = \"sqrt_softplus\", swiglu_fusion = 2, swiglu_limit = 0.5}";
    let (x, r) = (ty("f32", &[1, n, hd]), ty("f32", &[1, n, e]));
    let mut text =
        format!("graph @t(%x: {x}, %r: {r}, %tab: i64[4, 2], %ids: i32[1, {n}]) -> (y: {x}) {{\n");
    text += &dense("0", &[e, 2 * i, hd], 92);
    text += &dense("1", &[e, 2 * i], 93);
    text += &dense("2", &[e, hd, i], 94);
    text +=
        &format!("%3 = moe(%x, %r, %0, %1, %2, _, _, _, _, %tab, %ids) {a} : {x}\nreturn %3\n}}");
    let ins = [
        floats(&[1, n, hd], 95),
        floats(&[1, n, e], 96),
        i64s(&[4, 2], &[0, 1, 2, 2, 1, 0, 2, 0]),
        i32s(&[1, n], &[3, 0, 1, 2, 3]),
    ];
    check(&text, &ins, 1e-4, 1e-5);
}

/// com.microsoft.MoE as GPT-OSS exports it: interleaved swiglu with alpha, beta, limit,
/// biases, top-2 renormalised; and relu with fc3, gelu (tanh) without.
#[test]
fn ms_moe_gpt_oss_and_relu_gelu() {
    let (b, s, hd, e, i) = (2, 3, 8, 4, 5);
    let a = "{activation_alpha = 1.702, activation_beta = 1.0, activation_type = \"swiglu\", k = 2, normalize_routing_weights = 1, swiglu_fusion = 1, swiglu_limit = 7.0}";
    let (x, r) = (ty("f32", &[b, s, hd]), ty("f32", &[b * s, e]));
    let mut text = format!("graph @t(%x: {x}, %r: {r}) -> (y: {x}) {{\n");
    text += &dense("0", &[e, 2 * i, hd], 97);
    text += &dense("1", &[e, 2 * i], 98);
    text += &dense("2", &[e, hd, i], 99);
    text += &dense("3", &[e, hd], 100);
    text += &format!("%4 = com.microsoft.MoE(%x, %r, %0, %1, %2, %3) {a} : {x}\nreturn %4\n}}");
    let ins = [floats(&[b, s, hd], 101), floats(&[b * s, e], 102)];
    check(&text, &ins, 1e-4, 1e-5);
    for (act, fc3) in [("relu", true), ("gelu", false)] {
        let (x, r) = (ty("f32", &[6, hd]), ty("f32", &[6, e]));
        let mut text = format!("graph @t(%x: {x}, %r: {r}) -> (y: {x}) {{\n");
        text += &dense("0", &[e, i, hd], 103);
        text += &dense("1", &[e, hd, i], 104);
        text += &dense("2", &[e, i, hd], 105);
        let w3 = if fc3 { ", _, %2" } else { "" };
        text += &format!(
            "%3 = com.microsoft.MoE(%x, %r, %0, _, %1{w3}) {{activation_type = \"{act}\", k = 1}} : {x}\nreturn %3\n}}"
        );
        check(
            &text,
            &[floats(&[6, hd], 106), floats(&[6, e], 107)],
            1e-4,
            1e-5,
        );
    }
}

/// bf16 Q/K/V with a bool mask and the probabilities, 3-D with GQA.
#[test]
fn onnx_attention_bf16_3d_gqa() {
    let (b, hq, hk, s, d) = (1, 4, 1, 9, 8);
    let q = floats(&[b, s, hq * d], 110).cast(DType::BF16);
    let k = floats(&[b, s, hk * d], 111).cast(DType::BF16);
    let text = format!(
        "graph @t(%q: {q}, %k: {k}, %m: bool[{s}, {s}]) -> (y: {q}, w: {w}) {{
           %0, %1, %2, %3 = Attention(%q, %k, %k, %m) {{kv_num_heads = {hk}, q_num_heads = {hq}, qk_matmul_output_mode = 3}} : {q}, {p}, {p}, {w}
           return %0, %3
         }}",
        q = ty("bf16", &[b, s, hq * d]),
        k = ty("bf16", &[b, s, hk * d]),
        p = ty("bf16", &[b, hk, s, d]),
        w = ty("bf16", &[b, hq, s, s]),
    );
    check(&text, &[q, k, bools(&[s, s], 112)], 1e-2, 1e-2);
}

/// kiln's moe over many tokens with more experts than are used, silu with w3, and shared
/// experts spanning several token blocks.
#[test]
fn fused_moe_many_tokens_idle_experts() {
    let (n, hd, e, i, is) = (150, 16, 16, 8, 24);
    let a = "{activation_type = \"silu\", k = 1}";
    let (x, r) = (ty("f32", &[n, hd]), ty("f32", &[n, e]));
    let mut text = format!("graph @t(%x: {x}, %r: {r}) -> (y: {x}) {{\n");
    text += &dense("0", &[e, i, hd], 113);
    text += &dense("1", &[e, hd, i], 114);
    text += &dense("2", &[e, i, hd], 115);
    text += &dense("3", &[is, hd], 116);
    text += &dense("4", &[hd, is], 117);
    text += &dense("5", &[is, hd], 118);
    text += &format!(
        "%6 = moe(%x, %r, %0, _, %1, _, %2, _, _, _, _, %3, %4, %5) {a} : {x}\nreturn %6\n}}"
    );
    // Router logits favouring a few experts, so most get no token.
    let mut lg = floats(&[n, e], 119).to_f64();
    for (t, row) in lg.chunks_mut(e).enumerate() {
        row[t % 3] += 4.0;
    }
    let lg = Tensor::from_f32s(vec![n, e], lg.iter().map(|&v| v as f32).collect()).unwrap();
    check(&text, &[floats(&[n, hd], 120), lg], 1e-4, 1e-5);
}

/// Runs a compiled graph on `inputs`, returning the run's error.
fn run_error(text: &str, inputs: &[Tensor]) -> String {
    use crate::cpu::codegen::isa::CpuFeatures;
    let g = crate::cpu::testing::graph(text);
    let model = crate::cpu::testing::load(&g, CpuFeatures::host()).expect("compiles");
    let rt: Vec<kiln_runtime::Tensor> = inputs
        .iter()
        .map(|t| {
            let e = kiln_runtime::ElemType::from_name(t.dtype().name()).unwrap();
            kiln_runtime::Tensor::from_bytes(e, t.shape(), &t.to_le_bytes()).unwrap()
        })
        .collect();
    match model.run(&rt) {
        Ok(_) => panic!("the run succeeded"),
        Err(e) => e.to_string(),
    }
}

/// Lengths and positions out of range fail the run with a one-line error.
#[test]
fn bad_lengths_and_positions_are_run_errors() {
    let (b, n, nk, s, h, past) = (1, 2, 1, 1, 4, 3);
    let text = gqa_text(b, n, nk, s, h, past, 4, 4, "", "");
    let ins = [
        floats(&[b, s, (n + 2 * nk) * h], 130),
        floats(&[b, nk, past, h], 131),
        floats(&[b, nk, past, h], 132),
        i32s(&[b], &[9]),
    ];
    let e = run_error(&text, &ins);
    assert!(e.contains("seqlens_k value 9"), "{e}");
    let (cos, sin) = tables();
    let text = "graph @t(%x: f32[1, 2, 8], %cos: f32[128, 4], %sin: f32[128, 4], %p: i64[1, 2]) -> (y: f32[1, 2, 8]) {
           %0 = RotaryEmbedding(%x, %cos, %sin, %p) {num_heads = 1} : f32[1, 2, 8]
           return %0
         }";
    let e = run_error(
        text,
        &[floats(&[1, 2, 8], 133), cos, sin, i64s(&[1, 2], &[3, 128])],
    );
    assert!(e.contains("position"), "{e}");
}
