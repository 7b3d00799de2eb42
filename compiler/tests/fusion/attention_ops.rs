//! `fuse-attention`'s existing-op forms: ONNX `Attention`, `com.microsoft.MultiHeadAttention`
//! and `com.microsoft.GroupQueryAttention` become `attention` (GQA with `rope` first), and
//! compute what the ops did on the reference interpreter, presents included.

use crate::support::{check, check_with};

/// ONNX Attention, 4-D, GQA (4 query heads on 2 kv heads), causal over a cache, a float
/// mask, softcap; Y and both presents are read.
#[test]
fn onnx_4d_gqa_causal_cache_softcap() {
    insta::assert_snapshot!(check(
        r#"graph @g(%q: f32[2, 4, seq, 8], %k: f32[2, 2, seq, 8], %v: f32[2, 2, seq, 8], %m: f32[seq, past+seq], %pk: f32[2, 2, past, 8], %pv: f32[2, 2, past, 8]) -> (y: f32[2, 4, seq, 8], pk2: f32[2, 2, past+seq, 8], pv2: f32[2, 2, past+seq, 8]) {
  %y, %k2, %v2 = Attention(%q, %k, %v, %m, %pk, %pv) {is_causal = 1, softcap = 2.0} : f32[2, 4, seq, 8], f32[2, 2, past+seq, 8], f32[2, 2, past+seq, 8]
  return %y, %k2, %v2
}
"#,
        &[("seq", 3), ("past", 2)],
        1e-5
    ));
}

/// ONNX Attention, 3-D with 6 query heads on 3 kv heads of 4, a scale, a left window and
/// a bool mask one key short (padded with `false`); only Y is read.
#[test]
fn onnx_3d_window_short_bool_mask() {
    insta::assert_snapshot!(check(
        r#"graph @g(%q: f32[1, 5, 24], %k: f32[1, 5, 12], %v: f32[1, 5, 12], %m: bool[5, 4]) -> (y: f32[1, 5, 24]) {
  %y = Attention(%q, %k, %v, %m) {is_causal = 1, kv_num_heads = 3, left_window_size = 1, q_num_heads = 6, scale = 0.3} : f32[1, 5, 24]
  return %y
}
"#,
        &[],
        1e-5
    ));
}

/// ONNX Attention with an external cache (`nonpad_kv_seqlen`, per-batch key counts 0..6)
/// and causal: the offsets differ per batch entry, so it all becomes a bool mask; a right
/// window without causal becomes a mask too.
#[test]
fn onnx_nonpad_and_right_window_masks() {
    insta::assert_snapshot!(check_with(
        r#"graph @g(%q: f32[3, 2, 2, 4], %k: f32[3, 2, 6, 4], %v: f32[3, 2, 6, 4], %n: i64[3]) -> (y: f32[3, 2, 2, 4], z: f32[3, 2, 2, 4]) {
  %y = Attention(%q, %k, %v, _, _, _, %n) {is_causal = 1} : f32[3, 2, 2, 4]
  %z = Attention(%q, %k, %v) {left_window_size = 1, right_window_size = 2} : f32[3, 2, 2, 4]
  return %y, %z
}
"#,
        crate::support::PIPELINE,
        &[],
        7,
        1e-5
    ));
}

/// Near miss: the score output is read (any `qk_matmul_output_mode`): no `attention` output
/// holds it, so the op stays.
#[test]
fn onnx_qk_output_read_stays() {
    insta::assert_snapshot!(check(
        r#"graph @g(%q: f32[1, 2, 3, 4], %k: f32[1, 2, 3, 4], %v: f32[1, 2, 3, 4]) -> (y: f32[1, 2, 3, 4], s: f32[1, 2, 3, 3]) {
  %y, %pk, %pv, %s = Attention(%q, %k, %v) {qk_matmul_output_mode = 3} : f32[1, 2, 3, 4], f32[1, 2, 3, 4], f32[1, 2, 3, 4], f32[1, 2, 3, 3]
  return %y, %s
}
"#,
        &[],
        0.0
    ));
}

/// MultiHeadAttention, separate 3-D q/k/v with a bias, a key padding mask of per-entry key
/// counts (0..5, filter value added), unidirectional, with a cache and presents.
#[test]
fn mha_bias_padding_counts_causal_cache() {
    insta::assert_snapshot!(check_with(
        r#"graph @g(%q: f32[2, seq, 12], %k: f32[2, seq, 12], %v: f32[2, seq, 6], %c: i32[2], %pk: f32[2, 3, 2, 4], %pv: f32[2, 3, 2, 2]) -> (y: f32[2, seq, 6], pk2: f32[2, 3, 2+seq, 4], pv2: f32[2, 3, 2+seq, 2]) {
  %b = constant {value = @weight("b")} : f32[30]
  %y, %k2, %v2 = com.microsoft.MultiHeadAttention(%q, %k, %v, %b, %c, _, %pk, %pv) {num_heads = 3, unidirectional = 1} : f32[2, seq, 6], f32[2, 3, 2+seq, 4], f32[2, 3, 2+seq, 2]
  return %y, %k2, %v2
}
"#,
        crate::support::PIPELINE,
        &[("seq", 3)],
        6,
        1e-5
    ));
}

/// MultiHeadAttention, packed QKV `[B, S, N, 3, H]` with a bias and an attention bias; and
/// 3-D q with packed KV and a `[B, T]` 0/1 padding mask; and q with k, v already in heads
/// (the bias then only reaches q), scale given.
#[test]
fn mha_packed_and_head_layouts() {
    insta::assert_snapshot!(check_with(
        r#"graph @g(%qkv: f32[2, 3, 2, 3, 4], %ab: f32[1, 2, 3, 3], %q: f32[2, 3, 8], %kv: f32[2, 5, 2, 2, 4], %m: i64[2, 5], %kh: f32[2, 2, 5, 4], %vh: f32[2, 2, 5, 4]) -> (a: f32[2, 3, 8], b: f32[2, 3, 8], c: f32[2, 3, 8]) {
  %bias = constant {value = @weight("bias")} : f32[24]
  %a = com.microsoft.MultiHeadAttention(%qkv, _, _, %bias, _, %ab) {num_heads = 2} : f32[2, 3, 8]
  %b = com.microsoft.MultiHeadAttention(%q, %kv, _, %bias, %m) {mask_filter_value = -1000.0, num_heads = 2} : f32[2, 3, 8]
  %c = com.microsoft.MultiHeadAttention(%q, %kh, %vh, %bias) {num_heads = 2, scale = 0.7} : f32[2, 3, 8]
  return %a, %b, %c
}
"#,
        crate::support::PIPELINE,
        &[],
        2,
        1e-5
    ));
}

/// Near miss: MultiHeadAttention whose qk output is read stays.
#[test]
fn mha_qk_output_read_stays() {
    insta::assert_snapshot!(check(
        r#"graph @g(%q: f32[1, 2, 4], %k: f32[1, 2, 4], %v: f32[1, 2, 4]) -> (y: f32[1, 2, 4], s: f32[1, 2, 2, 2]) {
  %y, %pk, %pv, %s = com.microsoft.MultiHeadAttention(%q, %k, %v) {num_heads = 2} : f32[1, 2, 4], f32[1, 2, 2, 2], f32[1, 2, 2, 2], f32[1, 2, 2, 2]
  return %y, %s
}
"#,
        &[],
        0.0
    ));
}

/// GroupQueryAttention as ONNX Runtime GenAI writes it for a decode step: packed QKV (4
/// query heads, 2 kv heads of 8), rotary from cos/sin caches, a cache of `past` rows, and
/// per-entry lengths seqlens_k (0..past, so entries are padded differently): the rotary
/// positions, the mask and the presents' layout follow each entry's own length.
#[test]
fn gqa_decode_packed_rotary_ragged() {
    insta::assert_snapshot!(check_with(
        r#"graph @g(%x: f32[3, 1, 64], %pk: f32[3, 2, past, 8], %pv: f32[3, 2, past, 8], %sl: i32[3]) -> (y: f32[3, 1, 32], k2: f32[3, 2, max(past+1, past), 8], v2: f32[3, 2, max(past+1, past), 8]) {
  %t = dims {dtype = i32, shape = [], value = dims<[past+1]>} : i32[]
  %cos = constant {value = @weight("cos")} : f32[16, 2]
  %sin = constant {value = @weight("sin")} : f32[16, 2]
  %y, %k2, %v2 = com.microsoft.GroupQueryAttention(%x, _, _, %pk, %pv, %sl, %t, %cos, %sin) {do_rotary = 1, kv_num_heads = 2, num_heads = 4, scale = 0.3} : f32[3, 1, 32], f32[3, 2, max(past+1, past), 8], f32[3, 2, max(past+1, past), 8]
  return %y, %k2, %v2
}
"#,
        crate::support::PIPELINE,
        &[("past", 5)],
        6,
        1e-5
    ));
}

/// GroupQueryAttention on a first prompt with no cache: separate q, k, v (6 query heads on
/// 3 kv heads of 4), entries of 1..seq valid tokens (the rest padding), a local window of
/// 2, softcap, head sinks and interleaved rotary; presents are read.
#[test]
fn gqa_prompt_padding_window_sinks() {
    insta::assert_snapshot!(check_with(
        r#"graph @g(%q: f32[2, seq, 24], %k: f32[2, seq, 12], %v: f32[2, seq, 12], %sl: i32[2]) -> (y: f32[2, seq, 24], k2: f32[2, 3, seq, 4]) {
  %t = dims {dtype = i32, shape = [], value = dims<[seq]>} : i32[]
  %cos = constant {value = @weight("cos")} : f32[8, 1]
  %sin = constant {value = @weight("sin")} : f32[8, 1]
  %sink = constant {value = @weight("sink")} : f32[6]
  %y, %k2, %v2 = com.microsoft.GroupQueryAttention(%q, %k, %v, _, _, %sl, %t, %cos, %sin, _, _, %sink) {do_rotary = 1, kv_num_heads = 3, local_window_size = 2, num_heads = 6, rotary_interleaved = 1, softcap = 1.5} : f32[2, seq, 24], f32[2, 3, seq, 4], f32[2, 3, seq, 4]
  return %y, %k2
}
"#,
        crate::support::PIPELINE,
        &[("seq", 4)],
        4,
        1e-5
    ));
}

/// GroupQueryAttention with a windowed cache (GPT-OSS's banded layers): capacity 6, window
/// 4, so 3 rows are reclaimed at a time; entries at 1..12 positions, most past the
/// capacity; smooth_softmax (a sink of 0). Beside it non-causal GQA (each entry sees all of
/// its keys), on entries of 1..6 positions.
#[test]
fn gqa_windowed_cache_and_non_causal() {
    insta::assert_snapshot!(check_with(
        r#"graph @g(%x: f32[4, 1, 16], %pk: f32[4, 1, 6, 4], %pv: f32[4, 1, 6, 4], %sl: i32[4]) -> (y: f32[4, 1, 8], k2: f32[4, 1, 6, 4], v2: f32[4, 1, 6, 4], z: f32[4, 1, 8]) {
  %t = constant {value = dense<i32[]>[12]} : i32[]
  %cos = constant {value = @weight("cos")} : f32[16, 2]
  %sin = constant {value = @weight("sin")} : f32[16, 2]
  %y, %k2, %v2 = com.microsoft.GroupQueryAttention(%x, _, _, %pk, %pv, %sl, %t, %cos, %sin) {do_rotary = 1, kv_num_heads = 1, local_window_size = 4, num_heads = 2, sliding_window_cache = 1, smooth_softmax = 1} : f32[4, 1, 8], f32[4, 1, 6, 4], f32[4, 1, 6, 4]
  %five = constant {value = dense<i32[]>[5]} : i32[]
  %sl5 = Min(%sl, %five) : i32[4]
  %z = com.microsoft.GroupQueryAttention(%x, _, _, %pk, %pv, %sl5, %t) {causal = 0, kv_num_heads = 1, num_heads = 2} : f32[4, 1, 8]
  return %y, %k2, %v2, %z
}
"#,
        crate::support::PIPELINE,
        &[],
        12,
        1e-5
    ));
}

/// Near misses: GroupQueryAttention with explicit position_ids, and one whose output_qk is
/// read, stay as they are.
#[test]
fn gqa_position_ids_or_qk_output_stay() {
    insta::assert_snapshot!(check_with(
        r#"graph @g(%x: f32[1, 2, 16], %sl: i32[1], %pos: i64[1, 2]) -> (y: f32[1, 2, 8], z: f32[1, 2, 8], s: f32[1, 2, 2, 2]) {
  %t = constant {value = dense<i32[]>[2]} : i32[]
  %cos = constant {value = @weight("cos")} : f32[4, 2]
  %sin = constant {value = @weight("sin")} : f32[4, 2]
  %y = com.microsoft.GroupQueryAttention(%x, _, _, _, _, %sl, %t, %cos, %sin, %pos) {do_rotary = 1, kv_num_heads = 1, num_heads = 2} : f32[1, 2, 8]
  %z, %k2, %v2, %s = com.microsoft.GroupQueryAttention(%x, _, _, _, _, %sl, %t) {kv_num_heads = 1, num_heads = 2, qk_output = 1} : f32[1, 2, 8], f32[1, 1, 2, 4], f32[1, 1, 2, 4], f32[1, 2, 2, 2]
  return %y, %z, %s
}
"#,
        crate::support::PIPELINE,
        &[],
        2,
        0.0
    ));
}
