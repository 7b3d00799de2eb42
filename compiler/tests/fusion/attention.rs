//! `attention` fusion tests: attention spelled out (`fuse-attention`'s sdpa forms).

use crate::support::check;

/// torch dynamo's spelling of HF Llama eager attention: GQA (4 query heads, 2 kv heads)
/// with repeat_kv as Unsqueeze/Expand/Reshape, `kᵀ` through a `[B*H, T, D]` round trip,
/// the scale split as `d^-1/4` on q and on kᵀ, a causal mask from a Range comparison filled
/// with the f32 minimum, and the NaN guard after the Softmax. Causal is proven.
#[test]
fn dynamo_gqa_causal() {
    insta::assert_snapshot!(check(
        r#"graph @g(%x: f32[1, seq, 32]) -> (y: f32[1, seq, 32]) {
  %wq = constant {value = @weight("wq")} : f32[32, 32]
  %wk = constant {value = @weight("wk")} : f32[32, 16]
  %wv = constant {value = @weight("wv")} : f32[32, 16]
  %sq = constant {value = dense<i64[4]>[1, -1, 4, 8]} : i64[4]
  %skv = constant {value = dense<i64[4]>[1, -1, 2, 8]} : i64[4]
  %q0 = MatMul(%x, %wq) : f32[1, seq, 32]
  %q1 = Reshape(%q0, %sq) {allowzero = 1} : f32[1, seq, 4, 8]
  %q = Transpose(%q1) {perm = [0, 2, 1, 3]} : f32[1, 4, seq, 8]
  %k0 = MatMul(%x, %wk) : f32[1, seq, 16]
  %k1 = Reshape(%k0, %skv) {allowzero = 1} : f32[1, seq, 2, 8]
  %k = Transpose(%k1) {perm = [0, 2, 1, 3]} : f32[1, 2, seq, 8]
  %v0 = MatMul(%x, %wv) : f32[1, seq, 16]
  %v1 = Reshape(%v0, %skv) {allowzero = 1} : f32[1, seq, 2, 8]
  %v = Transpose(%v1) {perm = [0, 2, 1, 3]} : f32[1, 2, seq, 8]
  %ax2 = constant {value = dense<i64[1]>[2]} : i64[1]
  %rep = dims {value = dims<[1, 2, 2, seq, 8]>} : i64[5]
  %ku = Unsqueeze(%k, %ax2) : f32[1, 2, 1, seq, 8]
  %ke = Expand(%ku, %rep) : f32[1, 2, 2, seq, 8]
  %vu = Unsqueeze(%v, %ax2) : f32[1, 2, 1, seq, 8]
  %ve = Expand(%vu, %rep) : f32[1, 2, 2, seq, 8]
  %s4 = constant {value = dense<i64[4]>[1, 4, -1, 8]} : i64[4]
  %vr = Reshape(%ve, %s4) {allowzero = 1} : f32[1, 4, seq, 8]
  %s3 = dims {value = dims<[-1, seq, 8]>} : i64[3]
  %kr = Reshape(%ke, %s3) {allowzero = 0} : f32[4, seq, 8]
  %kt = Transpose(%kr) {perm = [0, 2, 1]} : f32[4, 8, seq]
  %s4t = dims {value = dims<[1, 4, 8, seq]>} : i64[4]
  %ktr = Reshape(%kt, %s4t) {allowzero = 0} : f32[1, 4, 8, seq]
  %quarter = constant {value = dense<f32[]>[0.59460354]} : f32[]
  %qs = Mul(%q, %quarter) : f32[1, 4, seq, 8]
  %ks = Mul(%ktr, %quarter) : f32[1, 4, 8, seq]
  %zero = constant {value = dense<i64[]>[0]} : i64[]
  %one = constant {value = dense<i64[]>[1]} : i64[]
  %n = dims {shape = [], value = dims<[seq]>} : i64[]
  %pos = Range(%zero, %n, %one) : i64[seq]
  %ax01 = constant {value = dense<i64[2]>[0, 1]} : i64[2]
  %ax3 = constant {value = dense<i64[1]>[3]} : i64[1]
  %p3 = Unsqueeze(%pos, %ax01) : i64[1, 1, seq]
  %rows = Unsqueeze(%p3, %ax3) : i64[1, 1, seq, 1]
  %cols = Unsqueeze(%p3, %ax2) : i64[1, 1, 1, seq]
  %allowed = LessOrEqual(%cols, %rows) : bool[1, 1, seq, seq]
  %fz = constant {value = dense<f32[]>[0.0]} : f32[]
  %fmin = constant {value = dense<f32[]>[-3.4028235e38]} : f32[]
  %mask = Where(%allowed, %fz, %fmin) : f32[1, 1, seq, seq]
  %s = MatMul(%qs, %ks) : f32[1, 4, seq, seq]
  %sm = Add(%s, %mask) : f32[1, 4, seq, seq]
  %p = Softmax(%sm) {axis = -1} : f32[1, 4, seq, seq]
  %nan = IsNaN(%p) : bool[1, 4, seq, seq]
  %pg = Where(%nan, %fz, %p) : f32[1, 4, seq, seq]
  %o = MatMul(%pg, %vr) : f32[1, 4, seq, 8]
  %ot = Transpose(%o) {perm = [0, 2, 1, 3]} : f32[1, seq, 4, 8]
  %so = constant {value = dense<i64[3]>[1, -1, 32]} : i64[3]
  %y = Reshape(%ot, %so) {allowzero = 1} : f32[1, seq, 32]
  return %y
}
"#,
        &[("seq", 5)],
        1e-5
    ));
}

/// The TorchScript exporter's spelling of BERT attention (MHA, 3 heads of 5): k laid out
/// transposed by one Transpose `[0, 2, 3, 1]`, a Div by `sqrt(d)` on the logits, the
/// extended mask `(1 - mask) * -10000` already `[B, 1, 1, T]`, Softmax over axis 3. The
/// mask is data: it stays the op's mask input as it is.
#[test]
fn torchscript_mha_div_sqrt() {
    insta::assert_snapshot!(check(
        r#"graph @g(%x: f32[batch, seq, 15], %am: i64[batch, seq]) -> (y: f32[batch, seq, 15]) {
  %wq = constant {value = @weight("wq")} : f32[15, 15]
  %wk = constant {value = @weight("wk")} : f32[15, 15]
  %wv = constant {value = @weight("wv")} : f32[15, 15]
  %bq = constant {value = @weight("bq")} : f32[15]
  %heads = constant {value = dense<i64[4]>[0, 0, 3, 5]} : i64[4]
  %q0 = MatMul(%x, %wq) : f32[batch, seq, 15]
  %q1 = Add(%q0, %bq) : f32[batch, seq, 15]
  %q2 = Reshape(%q1, %heads) : f32[batch, seq, 3, 5]
  %q = Transpose(%q2) {perm = [0, 2, 1, 3]} : f32[batch, 3, seq, 5]
  %k0 = MatMul(%x, %wk) : f32[batch, seq, 15]
  %k1 = Reshape(%k0, %heads) : f32[batch, seq, 3, 5]
  %kt = Transpose(%k1) {perm = [0, 2, 3, 1]} : f32[batch, 3, 5, seq]
  %v0 = MatMul(%x, %wv) : f32[batch, seq, 15]
  %v1 = Reshape(%v0, %heads) : f32[batch, seq, 3, 5]
  %v = Transpose(%v1) {perm = [0, 2, 1, 3]} : f32[batch, 3, seq, 5]
  %s = MatMul(%q, %kt) : f32[batch, 3, seq, seq]
  %root = constant {value = dense<f32[]>[2.236068]} : f32[]
  %sd = Div(%s, %root) : f32[batch, 3, seq, seq]
  %ax12 = constant {value = dense<i64[2]>[1, 2]} : i64[2]
  %m0 = Unsqueeze(%am, %ax12) : i64[batch, 1, 1, seq]
  %m1 = Cast(%m0) {to = f32} : f32[batch, 1, 1, seq]
  %f1 = constant {value = dense<f32[]>[1.0]} : f32[]
  %m2 = Sub(%f1, %m1) : f32[batch, 1, 1, seq]
  %big = constant {value = dense<f32[]>[-10000.0]} : f32[]
  %m3 = Mul(%m2, %big) : f32[batch, 1, 1, seq]
  %sm = Add(%sd, %m3) : f32[batch, 3, seq, seq]
  %p = Softmax(%sm) {axis = 3} : f32[batch, 3, seq, seq]
  %o = MatMul(%p, %v) : f32[batch, 3, seq, 5]
  %ot = Transpose(%o) {perm = [0, 2, 1, 3]} : f32[batch, seq, 3, 5]
  %so = constant {value = dense<i64[3]>[0, 0, 15]} : i64[3]
  %y = Reshape(%ot, %so) : f32[batch, seq, 15]
  return %y
}
"#,
        &[("batch", 2), ("seq", 4)],
        1e-5
    ));
}

/// torch dynamo's BERT (MiniLM) padding mask: the bool attention mask gathered per
/// (batch, key) through GatherND with Range indices, And-ed with an always-true row test,
/// broadcast to `[B, 1, S, T]`. It depends on batch and key only, so the op gets it as
/// `[B, 1, 1, T]`.
#[test]
fn dynamo_padding_mask_reduced_to_keys() {
    insta::assert_snapshot!(check(
        r#"graph @g(%q: f32[batch, 2, seq, 4], %k: f32[batch, 2, seq, 4], %v: f32[batch, 2, seq, 4], %am: i64[batch, seq]) -> (y: f32[batch, 2, seq, 4]) {
  %amb = Cast(%am) {to = bool} : bool[batch, seq]
  %zero = constant {value = dense<i64[]>[0]} : i64[]
  %one = constant {value = dense<i64[]>[1]} : i64[]
  %nb = dims {shape = [], value = dims<[batch]>} : i64[]
  %ns = dims {shape = [], value = dims<[seq]>} : i64[]
  %bi = Range(%zero, %nb, %one) : i64[batch]
  %si = Range(%zero, %ns, %one) : i64[seq]
  %ax12 = constant {value = dense<i64[2]>[1, 2]} : i64[2]
  %ax3 = constant {value = dense<i64[1]>[3]} : i64[1]
  %ax01 = constant {value = dense<i64[2]>[0, 1]} : i64[2]
  %ax2 = constant {value = dense<i64[1]>[2]} : i64[1]
  %axl = constant {value = dense<i64[1]>[-1]} : i64[1]
  %b3 = Unsqueeze(%bi, %ax12) : i64[batch, 1, 1]
  %b4 = Unsqueeze(%b3, %ax3) : i64[batch, 1, 1, 1]
  %s3 = Unsqueeze(%si, %ax01) : i64[1, 1, seq]
  %rows = Unsqueeze(%s3, %ax3) : i64[1, 1, seq, 1]
  %cols = Unsqueeze(%s3, %ax2) : i64[1, 1, 1, seq]
  %rowok = GreaterOrEqual(%rows, %zero) : bool[1, 1, seq, 1]
  %shape = dims {value = dims<[batch, 1, 1, seq]>} : i64[4]
  %be = Expand(%b4, %shape) : i64[batch, 1, 1, seq]
  %bu = Unsqueeze(%be, %axl) : i64[batch, 1, 1, seq, 1]
  %ce = Expand(%cols, %shape) : i64[batch, 1, 1, seq]
  %cu = Unsqueeze(%ce, %axl) : i64[batch, 1, 1, seq, 1]
  %idx = Concat(%bu, %cu) {axis = -1} : i64[batch, 1, 1, seq, 2]
  %keys = GatherND(%amb, %idx) {batch_dims = 0} : bool[batch, 1, 1, seq]
  %attend = And(%rowok, %keys) : bool[batch, 1, seq, seq]
  %fz = constant {value = dense<f32[]>[0.0]} : f32[]
  %fmin = constant {value = dense<f32[]>[-3.4028235e38]} : f32[]
  %mask = Where(%attend, %fz, %fmin) : f32[batch, 1, seq, seq]
  %scale = constant {value = dense<f32[]>[0.70710677]} : f32[]
  %qs = Mul(%q, %scale) : f32[batch, 2, seq, 4]
  %kt = Transpose(%k) {perm = [0, 1, 3, 2]} : f32[batch, 2, 4, seq]
  %kts = Mul(%kt, %scale) : f32[batch, 2, 4, seq]
  %s = MatMul(%qs, %kts) : f32[batch, 2, seq, seq]
  %sm = Add(%s, %mask) : f32[batch, 2, seq, seq]
  %p = Softmax(%sm) {axis = -1} : f32[batch, 2, seq, seq]
  %nan = IsNaN(%p) : bool[batch, 2, seq, seq]
  %pg = Where(%nan, %fz, %p) : f32[batch, 2, seq, seq]
  %y = MatMul(%pg, %v) : f32[batch, 2, seq, 4]
  return %y
}
"#,
        &[("batch", 3), ("seq", 5)],
        1e-5
    ));
}

/// MQA (6 query heads, one kv head) where MatMul broadcasting shares the head (no
/// repeat_kv), with a manual sqrt split: `d^-1/4` multiplied into q before its head split
/// and into k before it gains its head axis. No mask: bidirectional.
#[test]
fn mqa_broadcast_manual_sqrt_split() {
    insta::assert_snapshot!(check(
        r#"graph @g(%x: f32[2, seq, 24], %kv: f32[2, seq, 8]) -> (y: f32[2, 6, seq, 4]) {
  %wq = constant {value = @weight("wq")} : f32[24, 24]
  %wk = constant {value = @weight("wk")} : f32[8, 4]
  %wv = constant {value = @weight("wv")} : f32[8, 4]
  %quarter = constant {value = dense<f32[]>[0.70710677]} : f32[]
  %q0 = MatMul(%x, %wq) : f32[2, seq, 24]
  %q1 = Mul(%q0, %quarter) : f32[2, seq, 24]
  %heads = constant {value = dense<i64[4]>[2, -1, 6, 4]} : i64[4]
  %q2 = Reshape(%q1, %heads) {allowzero = 0} : f32[2, seq, 6, 4]
  %q = Transpose(%q2) {perm = [0, 2, 1, 3]} : f32[2, 6, seq, 4]
  %k0 = MatMul(%kv, %wk) : f32[2, seq, 4]
  %k1 = Mul(%quarter, %k0) : f32[2, seq, 4]
  %ax1 = constant {value = dense<i64[1]>[1]} : i64[1]
  %k2 = Unsqueeze(%k1, %ax1) : f32[2, 1, seq, 4]
  %kt = Transpose(%k2) {perm = [0, 1, 3, 2]} : f32[2, 1, 4, seq]
  %v0 = MatMul(%kv, %wv) : f32[2, seq, 4]
  %v = Unsqueeze(%v0, %ax1) : f32[2, 1, seq, 4]
  %s = MatMul(%q, %kt) : f32[2, 6, seq, seq]
  %p = Softmax(%s) {axis = -1} : f32[2, 6, seq, seq]
  %y = MatMul(%p, %v) : f32[2, 6, seq, 4]
  return %y
}
"#,
        &[("seq", 3)],
        1e-5
    ));
}

/// MLA (DeepSeek): q and k heads concatenated from a 6-wide "nope" and a 4-wide rope part
/// (Dk = 10), v 8 wide (Dv != Dk), the scale a Mul on the logits, and a causal mask from
/// the TorchScript exporter at a static length: a constant triangle of 0 / -inf, proven
/// causal from its values.
#[test]
fn mla_head_dims_constant_triangle() {
    insta::assert_snapshot!(check(
        r#"graph @g(%qn: f32[1, 2, 4, 6], %qr: f32[1, 2, 4, 4], %kn: f32[1, 2, 4, 6], %kr: f32[1, 2, 4, 4], %v: f32[1, 2, 4, 8]) -> (y: f32[1, 2, 4, 8]) {
  %q = Concat(%qn, %qr) {axis = -1} : f32[1, 2, 4, 10]
  %k = Concat(%kn, %kr) {axis = -1} : f32[1, 2, 4, 10]
  %kt = Transpose(%k) {perm = [0, 1, 3, 2]} : f32[1, 2, 10, 4]
  %s = MatMul(%q, %kt) : f32[1, 2, 4, 4]
  %scale = constant {value = dense<f32[]>[0.31622776]} : f32[]
  %ss = Mul(%s, %scale) : f32[1, 2, 4, 4]
  %tri = constant {value = dense<f32[4, 4]>[0.0, -inf, -inf, -inf, 0.0, 0.0, -inf, -inf, 0.0, 0.0, 0.0, -inf, 0.0, 0.0, 0.0, 0.0]} : f32[4, 4]
  %sm = Add(%ss, %tri) : f32[1, 2, 4, 4]
  %p = Softmax(%sm) {axis = -1} : f32[1, 2, 4, 4]
  %y = MatMul(%p, %v) : f32[1, 2, 4, 8]
  return %y
}
"#,
        &[],
        1e-5
    ));
}

/// GPT-OSS / DeepSeek-V4 eager attention: one kv head read as both k and v (repeated to 4
/// heads), a sliding-window causal mask (`j > i - 3 and j <= i`) from Range comparisons,
/// per-head sinks concatenated as a logit column, the max subtracted, the Softmax, the
/// sink column sliced off. Becomes causal + window 3 with the sinks input.
#[test]
fn sliding_window_with_sinks() {
    insta::assert_snapshot!(check(
        r#"graph @g(%q: f32[1, 4, seq, 8], %kv: f32[1, 1, seq, 8]) -> (y: f32[1, 4, seq, 8]) {
  %sinks = constant {value = @weight("sinks")} : f32[4]
  %ax2 = constant {value = dense<i64[1]>[2]} : i64[1]
  %rep = dims {value = dims<[1, 1, 4, seq, 8]>} : i64[5]
  %ku = Unsqueeze(%kv, %ax2) : f32[1, 1, 1, seq, 8]
  %ke = Expand(%ku, %rep) : f32[1, 1, 4, seq, 8]
  %s4 = constant {value = dense<i64[4]>[1, 4, -1, 8]} : i64[4]
  %k = Reshape(%ke, %s4) {allowzero = 1} : f32[1, 4, seq, 8]
  %kt = Transpose(%k) {perm = [0, 1, 3, 2]} : f32[1, 4, 8, seq]
  %s = MatMul(%q, %kt) : f32[1, 4, seq, seq]
  %scale = constant {value = dense<f32[]>[0.35355338]} : f32[]
  %ss = Mul(%s, %scale) : f32[1, 4, seq, seq]
  %zero = constant {value = dense<i64[]>[0]} : i64[]
  %one = constant {value = dense<i64[]>[1]} : i64[]
  %three = constant {value = dense<i64[]>[3]} : i64[]
  %n = dims {shape = [], value = dims<[seq]>} : i64[]
  %pos = Range(%zero, %n, %one) : i64[seq]
  %ax1 = constant {value = dense<i64[1]>[1]} : i64[1]
  %ax0 = constant {value = dense<i64[1]>[0]} : i64[1]
  %rows = Unsqueeze(%pos, %ax1) : i64[seq, 1]
  %cols = Unsqueeze(%pos, %ax0) : i64[1, seq]
  %lo = Sub(%rows, %three) : i64[seq, 1]
  %inwin = Greater(%cols, %lo) : bool[seq, seq]
  %past = LessOrEqual(%cols, %rows) : bool[seq, seq]
  %attend = And(%inwin, %past) : bool[seq, seq]
  %fz = constant {value = dense<f32[]>[0.0]} : f32[]
  %fmin = constant {value = dense<f32[]>[-3.4028235e38]} : f32[]
  %mask = Where(%attend, %fz, %fmin) : f32[seq, seq]
  %sm = Add(%ss, %mask) : f32[1, 4, seq, seq]
  %s14 = constant {value = dense<i64[4]>[1, 4, 1, 1]} : i64[4]
  %sk = Reshape(%sinks, %s14) : f32[1, 4, 1, 1]
  %col = dims {value = dims<[1, 4, seq, 1]>} : i64[4]
  %skc = Expand(%sk, %col) : f32[1, 4, seq, 1]
  %cat = Concat(%sm, %skc) {axis = -1} : f32[1, 4, seq, seq+1]
  %axl = constant {value = dense<i64[1]>[-1]} : i64[1]
  %mx = ReduceMax(%cat, %axl) {keepdims = 1} : f32[1, 4, seq, 1]
  %sh = Sub(%cat, %mx) : f32[1, 4, seq, seq+1]
  %pr = Softmax(%sh) {axis = -1} : f32[1, 4, seq, seq+1]
  %ax3 = constant {value = dense<i64[1]>[3]} : i64[1]
  %p = Slice(%pr, %ax0, %axl, %ax3, %ax1) : f32[1, 4, seq, seq]
  %y = MatMul(%p, %k) : f32[1, 4, seq, 8]
  return %y
}
"#,
        &[("seq", 7)],
        1e-5
    ));
}

/// A KV cache: past keys and values (graph inputs, 2 kv heads) concatenated with the new
/// ones along the sequence, GQA to 4 query heads (repeat_kv of k through a Reshape
/// inserting the repeat axis, of v through an Unsqueeze), the concatenations returned as the
/// present cache, and the causal mask of HF's cache positions (query `i` at `past + i`)
/// over all `past + seq` keys. Becomes past_k / past_v with causal, whose present outputs
/// replace the concatenations.
#[test]
fn kv_cache_with_present_outputs() {
    insta::assert_snapshot!(check(
        r#"graph @g(%q: f32[1, 4, seq, 4], %k: f32[1, 2, seq, 4], %v: f32[1, 2, seq, 4], %pk: f32[1, 2, past, 4], %pv: f32[1, 2, past, 4]) -> (y: f32[1, 4, seq, 4], present_k: f32[1, 2, past+seq, 4], present_v: f32[1, 2, past+seq, 4]) {
  %kc = Concat(%pk, %k) {axis = 2} : f32[1, 2, past+seq, 4]
  %vc = Concat(%pv, %v) {axis = 2} : f32[1, 2, past+seq, 4]
  %ax2 = constant {value = dense<i64[1]>[2]} : i64[1]
  %rep = dims {value = dims<[1, 2, 2, past+seq, 4]>} : i64[5]
  %s4 = constant {value = dense<i64[4]>[1, 4, -1, 4]} : i64[4]
  %s5 = constant {value = dense<i64[5]>[1, 2, 1, -1, 4]} : i64[5]
  %ku = Reshape(%kc, %s5) {allowzero = 1} : f32[1, 2, 1, past+seq, 4]
  %ke = Expand(%ku, %rep) : f32[1, 2, 2, past+seq, 4]
  %kr = Reshape(%ke, %s4) {allowzero = 1} : f32[1, 4, past+seq, 4]
  %vu = Unsqueeze(%vc, %ax2) : f32[1, 2, 1, past+seq, 4]
  %ve = Expand(%vu, %rep) : f32[1, 2, 2, past+seq, 4]
  %vr = Reshape(%ve, %s4) {allowzero = 1} : f32[1, 4, past+seq, 4]
  %kt = Transpose(%kr) {perm = [0, 1, 3, 2]} : f32[1, 4, 4, past+seq]
  %s = MatMul(%q, %kt) : f32[1, 4, seq, past+seq]
  %half = constant {value = dense<f32[]>[0.5]} : f32[]
  %ss = Mul(%s, %half) : f32[1, 4, seq, past+seq]
  %one = constant {value = dense<i64[]>[1]} : i64[]
  %zero = constant {value = dense<i64[]>[0]} : i64[]
  %np = dims {shape = [], value = dims<[past]>} : i64[]
  %nt = dims {shape = [], value = dims<[past+seq]>} : i64[]
  %qpos = Range(%np, %nt, %one) : i64[seq]
  %kpos = Range(%zero, %nt, %one) : i64[past+seq]
  %ax1 = constant {value = dense<i64[1]>[1]} : i64[1]
  %ax0 = constant {value = dense<i64[1]>[0]} : i64[1]
  %rows = Unsqueeze(%qpos, %ax1) : i64[seq, 1]
  %cols = Unsqueeze(%kpos, %ax0) : i64[1, past+seq]
  %attend = LessOrEqual(%cols, %rows) : bool[seq, past+seq]
  %fz = constant {value = dense<f32[]>[0.0]} : f32[]
  %ninf = constant {value = dense<f32[]>[-inf]} : f32[]
  %mask = Where(%attend, %fz, %ninf) : f32[seq, past+seq]
  %sm = Add(%ss, %mask) : f32[1, 4, seq, past+seq]
  %p = Softmax(%sm) {axis = -1} : f32[1, 4, seq, past+seq]
  %y = MatMul(%p, %vr) : f32[1, 4, seq, 4]
  return %y, %kc, %vc
}
"#,
        &[("past", 3), ("seq", 4)],
        1e-5
    ));
}

/// Two TorchScript spellings of a causal mask on the logits: GPT-2's `Where(bias, w,
/// finfo.min)` with `bias` a slice of a constant lower triangle (static length 5), and
/// `torch.triu(full(-inf), 1)` as a Trilu (symbolic length) added to the logits.
#[test]
fn torchscript_causal_fill_and_trilu() {
    insta::assert_snapshot!(check(
        r#"graph @g(%q: f32[1, 2, 5, 4], %k: f32[1, 2, 5, 4], %v: f32[1, 2, 5, 4], %q2: f32[2, 3, seq, 4], %k2: f32[2, 3, seq, 4], %v2: f32[2, 3, seq, 4]) -> (y: f32[1, 2, 5, 4], z: f32[2, 3, seq, 4]) {
  %bias = constant {value = dense<bool[1, 1, 6, 6]>[true, false, false, false, false, false, true, true, false, false, false, false, true, true, true, false, false, false, true, true, true, true, false, false, true, true, true, true, true, false, true, true, true, true, true, true]} : bool[1, 1, 6, 6]
  %st = constant {value = dense<i64[2]>[0, 0]} : i64[2]
  %en = constant {value = dense<i64[2]>[5, 5]} : i64[2]
  %ax = constant {value = dense<i64[2]>[2, 3]} : i64[2]
  %causal = Slice(%bias, %st, %en, %ax) : bool[1, 1, 5, 5]
  %kt = Transpose(%k) {perm = [0, 1, 3, 2]} : f32[1, 2, 4, 5]
  %s = MatMul(%q, %kt) : f32[1, 2, 5, 5]
  %root = constant {value = dense<f32[]>[2.0]} : f32[]
  %sd = Div(%s, %root) : f32[1, 2, 5, 5]
  %fmin = constant {value = dense<f32[]>[-3.4028235e38]} : f32[]
  %sw = Where(%causal, %sd, %fmin) : f32[1, 2, 5, 5]
  %p = Softmax(%sw) {axis = -1} : f32[1, 2, 5, 5]
  %y = MatMul(%p, %v) : f32[1, 2, 5, 4]
  %ninf = constant {value = dense<f32[]>[-inf]} : f32[]
  %sq = dims {value = dims<[seq, seq]>} : i64[2]
  %full = Expand(%ninf, %sq) : f32[seq, seq]
  %d1 = constant {value = dense<i64[]>[1]} : i64[]
  %upper = Trilu(%full, %d1) {upper = 1} : f32[seq, seq]
  %kt2 = Transpose(%k2) {perm = [0, 1, 3, 2]} : f32[2, 3, 4, seq]
  %s2 = MatMul(%q2, %kt2) : f32[2, 3, seq, seq]
  %sd2 = Div(%s2, %root) : f32[2, 3, seq, seq]
  %sm2 = Add(%upper, %sd2) : f32[2, 3, seq, seq]
  %p2 = Softmax(%sm2) {axis = -1} : f32[2, 3, seq, seq]
  %z = MatMul(%p2, %v2) : f32[2, 3, seq, 4]
  return %y, %z
}
"#,
        &[("seq", 6)],
        1e-5
    ));
}

/// torch dynamo's own decomposition of `scaled_dot_product_attention(is_causal=True)`:
/// `Trilu(Expand(1.0), upper = 0)`, `Where(Equal(tril, 0), -inf, 0)` added to the logits,
/// with the scale split as `sqrt(scale)` on q and on kᵀ.
#[test]
fn dynamo_sdpa_is_causal() {
    insta::assert_snapshot!(check(
        r#"graph @g(%q: f32[2, 2, seq, 6], %k: f32[2, 2, seq, 6], %v: f32[2, 2, seq, 3]) -> (y: f32[2, 2, seq, 3]) {
  %one = constant {value = dense<f32[]>[1.0]} : f32[]
  %ss = dims {value = dims<[seq, seq]>} : i64[2]
  %ones = Expand(%one, %ss) : f32[seq, seq]
  %tril = Trilu(%ones) {upper = 0} : f32[seq, seq]
  %fz = constant {value = dense<f32[]>[0.0]} : f32[]
  %ninf = constant {value = dense<f32[]>[-inf]} : f32[]
  %off = Equal(%tril, %fz) : bool[seq, seq]
  %mask = Where(%off, %ninf, %fz) : f32[seq, seq]
  %sqrt = constant {value = dense<f32[]>[0.6389431]} : f32[]
  %qs = Mul(%q, %sqrt) : f32[2, 2, seq, 6]
  %kt = Transpose(%k) {perm = [0, 1, 3, 2]} : f32[2, 2, 6, seq]
  %kts = Mul(%kt, %sqrt) : f32[2, 2, 6, seq]
  %s = MatMul(%qs, %kts) : f32[2, 2, seq, seq]
  %sm = Add(%s, %mask) : f32[2, 2, seq, seq]
  %p = Softmax(%sm) {axis = -1} : f32[2, 2, seq, seq]
  %y = MatMul(%p, %v) : f32[2, 2, seq, 3]
  return %y
}
"#,
        &[("seq", 4)],
        1e-5
    ));
}

/// The TorchScript spelling of `torch.nn.MultiheadAttention` (need_weights): heads folded
/// into the batch (`[B*H, L, D]`, 2 x 3 heads of 4) by `view(L, B*H, D).transpose(0, 1)`,
/// q scaled, `bmm(q, kᵀ)` with the float attn_mask added, Softmax, `bmm(p, v)`. One
/// attention gets a `[L, S]` mask, the other a per-head `[B*H, L, S]` mask, which the op
/// reads as `[B, H, L, S]`.
#[test]
fn torchscript_multihead_attention_bmm() {
    insta::assert_snapshot!(check(
        r#"graph @g(%x: f32[seq, 2, 12], %m: f32[seq, seq], %mh: f32[6, seq, seq]) -> (y: f32[seq, 2, 12], z: f32[seq, 2, 12]) {
  %wq = constant {value = @weight("wq")} : f32[12, 12]
  %wk = constant {value = @weight("wk")} : f32[12, 12]
  %wv = constant {value = @weight("wv")} : f32[12, 12]
  %heads = constant {value = dense<i64[3]>[0, 6, 4]} : i64[3]
  %q0 = MatMul(%x, %wq) : f32[seq, 2, 12]
  %q1 = Reshape(%q0, %heads) : f32[seq, 6, 4]
  %q2 = Transpose(%q1) {perm = [1, 0, 2]} : f32[6, seq, 4]
  %half = constant {value = dense<f32[]>[0.5]} : f32[]
  %q = Mul(%q2, %half) : f32[6, seq, 4]
  %k0 = MatMul(%x, %wk) : f32[seq, 2, 12]
  %k1 = Reshape(%k0, %heads) : f32[seq, 6, 4]
  %k = Transpose(%k1) {perm = [1, 0, 2]} : f32[6, seq, 4]
  %v0 = MatMul(%x, %wv) : f32[seq, 2, 12]
  %v1 = Reshape(%v0, %heads) : f32[seq, 6, 4]
  %v = Transpose(%v1) {perm = [1, 0, 2]} : f32[6, seq, 4]
  %kt = Transpose(%k) {perm = [0, 2, 1]} : f32[6, 4, seq]
  %s = MatMul(%q, %kt) : f32[6, seq, seq]
  %out = constant {value = dense<i64[3]>[0, 2, 12]} : i64[3]
  %sm = Add(%m, %s) : f32[6, seq, seq]
  %p = Softmax(%sm) {axis = -1} : f32[6, seq, seq]
  %o = MatMul(%p, %v) : f32[6, seq, 4]
  %ot = Transpose(%o) {perm = [1, 0, 2]} : f32[seq, 6, 4]
  %y = Reshape(%ot, %out) : f32[seq, 2, 12]
  %sm2 = Add(%s, %mh) : f32[6, seq, seq]
  %p2 = Softmax(%sm2) {axis = -1} : f32[6, seq, seq]
  %o2 = MatMul(%p2, %v) : f32[6, seq, 4]
  %ot2 = Transpose(%o2) {perm = [1, 0, 2]} : f32[seq, 6, 4]
  %z = Reshape(%ot2, %out) : f32[seq, 2, 12]
  return %y, %z
}
"#,
        &[("seq", 5)],
        1e-5
    ));
}

/// bmm over `[B*H, S, D]` flattened from `[B, H, S, D]` (B = 2) with GQA's repeat_kv
/// (4 query heads, 2 kv heads) before the flattening, and a per-head mask `[B*H, S, T]`:
/// batch and heads split apart again, the mask reshaped to `[B, H, S, T]`.
#[test]
fn bmm_of_flattened_gqa_heads() {
    insta::assert_snapshot!(check(
        r#"graph @g(%q: f32[2, 4, seq, 4], %k: f32[2, 2, seq, 4], %v: f32[2, 2, seq, 4], %mh: f32[8, seq, seq]) -> (y: f32[2, 4, seq, 4]) {
  %ax2 = constant {value = dense<i64[1]>[2]} : i64[1]
  %rep = dims {value = dims<[2, 2, 2, seq, 4]>} : i64[5]
  %flat = dims {value = dims<[8, seq, 4]>} : i64[3]
  %ku = Unsqueeze(%k, %ax2) : f32[2, 2, 1, seq, 4]
  %ke = Expand(%ku, %rep) : f32[2, 2, 2, seq, 4]
  %kf = Reshape(%ke, %flat) : f32[8, seq, 4]
  %vu = Unsqueeze(%v, %ax2) : f32[2, 2, 1, seq, 4]
  %ve = Expand(%vu, %rep) : f32[2, 2, 2, seq, 4]
  %vf = Reshape(%ve, %flat) : f32[8, seq, 4]
  %qf = Reshape(%q, %flat) : f32[8, seq, 4]
  %kt = Transpose(%kf) {perm = [0, 2, 1]} : f32[8, 4, seq]
  %s = MatMul(%qf, %kt) : f32[8, seq, seq]
  %half = constant {value = dense<f32[]>[0.5]} : f32[]
  %ss = Mul(%s, %half) : f32[8, seq, seq]
  %sm = Add(%ss, %mh) : f32[8, seq, seq]
  %p = Softmax(%sm) {axis = -1} : f32[8, seq, seq]
  %o = MatMul(%p, %vf) : f32[8, seq, 4]
  %out = constant {value = dense<i64[4]>[2, 4, -1, 4]} : i64[4]
  %y = Reshape(%o, %out) : f32[2, 4, seq, 4]
  return %y
}
"#,
        &[("seq", 3)],
        1e-5
    ));
}

/// HF eager attention in f16: the softmax taken in f32 (`Cast` to f32 and back around it)
/// and the causal mask filled with f16's minimum, -65504.
#[test]
fn f16_with_softmax_in_f32() {
    insta::assert_snapshot!(check(
        r#"graph @g(%q: f16[1, 2, seq, 4], %k: f16[1, 2, seq, 4], %v: f16[1, 2, seq, 4]) -> (y: f16[1, 2, seq, 4]) {
  %zero = constant {value = dense<i64[]>[0]} : i64[]
  %one = constant {value = dense<i64[]>[1]} : i64[]
  %n = dims {shape = [], value = dims<[seq]>} : i64[]
  %pos = Range(%zero, %n, %one) : i64[seq]
  %ax1 = constant {value = dense<i64[1]>[1]} : i64[1]
  %ax0 = constant {value = dense<i64[1]>[0]} : i64[1]
  %rows = Unsqueeze(%pos, %ax1) : i64[seq, 1]
  %cols = Unsqueeze(%pos, %ax0) : i64[1, seq]
  %attend = LessOrEqual(%cols, %rows) : bool[seq, seq]
  %hz = constant {value = dense<f16[]>[0.0]} : f16[]
  %hmin = constant {value = dense<f16[]>[-65504.0]} : f16[]
  %mask = Where(%attend, %hz, %hmin) : f16[seq, seq]
  %kt = Transpose(%k) {perm = [0, 1, 3, 2]} : f16[1, 2, 4, seq]
  %s = MatMul(%q, %kt) : f16[1, 2, seq, seq]
  %half = constant {value = dense<f16[]>[0.5]} : f16[]
  %ss = Mul(%s, %half) : f16[1, 2, seq, seq]
  %sm = Add(%ss, %mask) : f16[1, 2, seq, seq]
  %s32 = Cast(%sm) {to = f32} : f32[1, 2, seq, seq]
  %p32 = Softmax(%s32) {axis = -1} : f32[1, 2, seq, seq]
  %p = Cast(%p32) {to = f16} : f16[1, 2, seq, seq]
  %y = MatMul(%p, %v) : f16[1, 2, seq, 4]
  return %y
}
"#,
        &[("seq", 4)],
        2e-3
    ));
}

/// `scores.masked_fill(cond, value)` as exported, `Where(cond, value, scores)`: a padding
/// mask `mask == 0` filled with -1e9 (kept, as the additive `Where(cond, -1e9, 0)`), and a
/// causal `triu(ones, 1)` filled with -inf (proven causal).
#[test]
fn masked_fill_spellings() {
    insta::assert_snapshot!(check(
        r#"graph @g(%q: f32[batch, 2, seq, 4], %k: f32[batch, 2, seq, 4], %v: f32[batch, 2, seq, 4], %am: i64[batch, 1, 1, seq]) -> (y: f32[batch, 2, seq, 4], z: f32[batch, 2, seq, 4]) {
  %kt = Transpose(%k) {perm = [0, 1, 3, 2]} : f32[batch, 2, 4, seq]
  %s = MatMul(%q, %kt) : f32[batch, 2, seq, seq]
  %root = constant {value = dense<f32[]>[2.0]} : f32[]
  %sd = Div(%s, %root) : f32[batch, 2, seq, seq]
  %zero = constant {value = dense<i64[]>[0]} : i64[]
  %pad = Equal(%am, %zero) : bool[batch, 1, 1, seq]
  %big = constant {value = dense<f32[]>[-1e9]} : f32[]
  %f1 = Where(%pad, %big, %sd) : f32[batch, 2, seq, seq]
  %p1 = Softmax(%f1) {axis = -1} : f32[batch, 2, seq, seq]
  %y = MatMul(%p1, %v) : f32[batch, 2, seq, 4]
  %one = constant {value = dense<f32[]>[1.0]} : f32[]
  %ss = dims {value = dims<[seq, seq]>} : i64[2]
  %ones = Expand(%one, %ss) : f32[seq, seq]
  %d1 = constant {value = dense<i64[]>[1]} : i64[]
  %up = Trilu(%ones, %d1) {upper = 1} : f32[seq, seq]
  %future = Cast(%up) {to = bool} : bool[seq, seq]
  %ninf = constant {value = dense<f32[]>[-inf]} : f32[]
  %f2 = Where(%future, %ninf, %sd) : f32[batch, 2, seq, seq]
  %p2 = Softmax(%f2) {axis = -1} : f32[batch, 2, seq, seq]
  %z = MatMul(%p2, %v) : f32[batch, 2, seq, 4]
  return %y, %z
}
"#,
        &[("batch", 2), ("seq", 5)],
        1e-5
    ));
}

/// Gemma 2's logit softcap `c * tanh(x / c)` between the scale and the mask.
#[test]
fn softcap() {
    insta::assert_snapshot!(check(
        r#"graph @g(%q: f32[1, 2, seq, 4], %k: f32[1, 2, seq, 4], %v: f32[1, 2, seq, 4], %m: f32[1, 1, seq, seq]) -> (y: f32[1, 2, seq, 4]) {
  %kt = Transpose(%k) {perm = [0, 1, 3, 2]} : f32[1, 2, 4, seq]
  %s = MatMul(%q, %kt) : f32[1, 2, seq, seq]
  %scale = constant {value = dense<f32[]>[0.5]} : f32[]
  %ss = Mul(%s, %scale) : f32[1, 2, seq, seq]
  %cap = constant {value = dense<f32[]>[0.8]} : f32[]
  %d = Div(%ss, %cap) : f32[1, 2, seq, seq]
  %t = Tanh(%d) : f32[1, 2, seq, seq]
  %c = Mul(%t, %cap) : f32[1, 2, seq, seq]
  %sm = Add(%c, %m) : f32[1, 2, seq, seq]
  %p = Softmax(%sm) {axis = -1} : f32[1, 2, seq, seq]
  %y = MatMul(%p, %v) : f32[1, 2, seq, 4]
  return %y
}
"#,
        &[("seq", 4)],
        1e-5
    ));
}

/// Masks that cannot be proven causal stay the op's mask: a triangle one position off
/// (`j <= i + 1`), and causal And padding (it depends on data). Neither is dropped.
#[test]
fn unproven_masks_stay_masks() {
    insta::assert_snapshot!(check(
        r#"graph @g(%q: f32[1, 2, seq, 4], %k: f32[1, 2, seq, 4], %v: f32[1, 2, seq, 4], %am: bool[1, seq]) -> (y: f32[1, 2, seq, 4], z: f32[1, 2, seq, 4]) {
  %zero = constant {value = dense<i64[]>[0]} : i64[]
  %one = constant {value = dense<i64[]>[1]} : i64[]
  %n = dims {shape = [], value = dims<[seq]>} : i64[]
  %pos = Range(%zero, %n, %one) : i64[seq]
  %ax1 = constant {value = dense<i64[1]>[1]} : i64[1]
  %ax0 = constant {value = dense<i64[1]>[0]} : i64[1]
  %rows = Unsqueeze(%pos, %ax1) : i64[seq, 1]
  %cols = Unsqueeze(%pos, %ax0) : i64[1, seq]
  %next = Add(%rows, %one) : i64[seq, 1]
  %ahead = LessOrEqual(%cols, %next) : bool[seq, seq]
  %fz = constant {value = dense<f32[]>[0.0]} : f32[]
  %ninf = constant {value = dense<f32[]>[-inf]} : f32[]
  %m1 = Where(%ahead, %fz, %ninf) : f32[seq, seq]
  %kt = Transpose(%k) {perm = [0, 1, 3, 2]} : f32[1, 2, 4, seq]
  %s = MatMul(%q, %kt) : f32[1, 2, seq, seq]
  %s1 = Add(%s, %m1) : f32[1, 2, seq, seq]
  %p1 = Softmax(%s1) {axis = -1} : f32[1, 2, seq, seq]
  %y = MatMul(%p1, %v) : f32[1, 2, seq, 4]
  %causal = LessOrEqual(%cols, %rows) : bool[seq, seq]
  %both = And(%causal, %am) : bool[seq, seq]
  %m2 = Where(%both, %fz, %ninf) : f32[seq, seq]
  %s2 = Add(%s, %m2) : f32[1, 2, seq, seq]
  %p2 = Softmax(%s2) {axis = -1} : f32[1, 2, seq, seq]
  %z = MatMul(%p2, %v) : f32[1, 2, seq, 4]
  return %y, %z
}
"#,
        &[("seq", 5)],
        1e-5
    ));
}

/// Near misses that stay unfused: a Softmax over the query axis; repeat_kv as a tile
/// (heads `r * Hkv + g`, which the op's `h / (Hq / Hkv)` sharing is not); the scale applied
/// after the mask (it would scale the mask too); a v scaled by a constant (the op has no
/// output scale).
#[test]
fn near_misses_stay() {
    insta::assert_snapshot!(check(
        r#"graph @g(%q: f32[1, 4, seq, 4], %k: f32[1, 2, seq, 4], %v: f32[1, 2, seq, 4], %m: f32[1, 1, seq, seq]) -> (a: f32[1, 4, seq, 4], b: f32[1, 4, seq, 4], c: f32[1, 4, seq, 4], d: f32[1, 4, seq, 4]) {
  %ax2 = constant {value = dense<i64[1]>[2]} : i64[1]
  %ax1 = constant {value = dense<i64[1]>[1]} : i64[1]
  %rep = dims {value = dims<[1, 2, 2, seq, 4]>} : i64[5]
  %s4 = constant {value = dense<i64[4]>[1, 4, -1, 4]} : i64[4]
  %ku = Unsqueeze(%k, %ax2) : f32[1, 2, 1, seq, 4]
  %ke = Expand(%ku, %rep) : f32[1, 2, 2, seq, 4]
  %kr = Reshape(%ke, %s4) {allowzero = 1} : f32[1, 4, seq, 4]
  %vu = Unsqueeze(%v, %ax2) : f32[1, 2, 1, seq, 4]
  %ve = Expand(%vu, %rep) : f32[1, 2, 2, seq, 4]
  %vr = Reshape(%ve, %s4) {allowzero = 1} : f32[1, 4, seq, 4]
  %kt = Transpose(%kr) {perm = [0, 1, 3, 2]} : f32[1, 4, 4, seq]
  %s = MatMul(%q, %kt) : f32[1, 4, seq, seq]
  %half = constant {value = dense<f32[]>[0.5]} : f32[]
  %ss = Mul(%s, %half) : f32[1, 4, seq, seq]
  %sm = Add(%ss, %m) : f32[1, 4, seq, seq]
  %pa = Softmax(%sm) {axis = 2} : f32[1, 4, seq, seq]
  %a = MatMul(%pa, %vr) : f32[1, 4, seq, 4]
  %tile = dims {value = dims<[1, 2, 2, seq, 4]>} : i64[5]
  %kt1 = Unsqueeze(%k, %ax1) : f32[1, 1, 2, seq, 4]
  %kt2 = Expand(%kt1, %tile) : f32[1, 2, 2, seq, 4]
  %kt3 = Reshape(%kt2, %s4) {allowzero = 1} : f32[1, 4, seq, 4]
  %vt1 = Unsqueeze(%v, %ax1) : f32[1, 1, 2, seq, 4]
  %vt2 = Expand(%vt1, %tile) : f32[1, 2, 2, seq, 4]
  %vt3 = Reshape(%vt2, %s4) {allowzero = 1} : f32[1, 4, seq, 4]
  %ktt = Transpose(%kt3) {perm = [0, 1, 3, 2]} : f32[1, 4, 4, seq]
  %st = MatMul(%q, %ktt) : f32[1, 4, seq, seq]
  %stm = Add(%st, %m) : f32[1, 4, seq, seq]
  %pb = Softmax(%stm) {axis = -1} : f32[1, 4, seq, seq]
  %b = MatMul(%pb, %vt3) : f32[1, 4, seq, 4]
  %s2 = MatMul(%q, %kt) : f32[1, 4, seq, seq]
  %s2m = Add(%s2, %m) : f32[1, 4, seq, seq]
  %s2s = Mul(%s2m, %half) : f32[1, 4, seq, seq]
  %pc = Softmax(%s2s) {axis = -1} : f32[1, 4, seq, seq]
  %c = MatMul(%pc, %vr) : f32[1, 4, seq, 4]
  %s3 = MatMul(%q, %kt) : f32[1, 4, seq, seq]
  %pd = Softmax(%s3) {axis = -1} : f32[1, 4, seq, seq]
  %vh = Mul(%vr, %half) : f32[1, 4, seq, 4]
  %d = MatMul(%pd, %vh) : f32[1, 4, seq, 4]
  return %a, %b, %c, %d
}
"#,
        &[("seq", 3)],
        1e-5
    ));
}
