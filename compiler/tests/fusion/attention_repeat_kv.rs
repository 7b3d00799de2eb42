//! `attention` fusion tests for the TorchScript exporter's `expand`: it writes
//! `x.expand(shape)` as `Expand(x, Where(Equal(shape, -1), 1, shape))` with `shape` computed
//! from `Shape` at run time, because a -1 in a torch expand shape keeps that dim. HF's
//! repeat_kv (GQA/MQA) and its causal mask broadcast both go through it. Canonicalize folds
//! the guard (a size is never -1), so the repeat and the mask are seen as what they are.
//! The graphs are checked as imported (`check_as_imported`): the types the text declares
//! for the Expands would otherwise tell the parser what only the fold can.

use crate::support::check_as_imported;

/// HF Llama eager attention as TorchScript writes it, GQA with 6 query heads sharing 2 kv
/// heads (repeat 3) of width 4: repeat_kv's `expand(b, kv_heads, 3, seq, d)` from the
/// shape of k, the reshape to `[b, kv_heads * 3, seq, d]` from the same gathered dims, and
/// the causal mask `expand(b, -1, seq, seq)` (a literal -1 that the guard makes 1). Fuses
/// to a GQA attention with causal proven.
#[test]
fn torchscript_gqa_expand_guards() {
    insta::assert_snapshot!(check_as_imported(
        r#"graph @g(%x: f32[1, seq, 24]) -> (y: f32[1, seq, 24]) {
  %wq = constant {value = @weight("wq")} : f32[24, 24]
  %wk = constant {value = @weight("wk")} : f32[24, 8]
  %wv = constant {value = @weight("wv")} : f32[24, 8]
  %sq = dims {value = dims<[1, seq, -1, 4]>} : i64[4]
  %q0 = MatMul(%x, %wq) : f32[1, seq, 24]
  %q1 = Reshape(%q0, %sq) {allowzero = 0} : f32[1, seq, 6, 4]
  %q = Transpose(%q1) {perm = [0, 2, 1, 3]} : f32[1, 6, seq, 4]
  %k0 = MatMul(%x, %wk) : f32[1, seq, 8]
  %k1 = Reshape(%k0, %sq) {allowzero = 0} : f32[1, seq, 2, 4]
  %k = Transpose(%k1) {perm = [0, 2, 1, 3]} : f32[1, 2, seq, 4]
  %v0 = MatMul(%x, %wv) : f32[1, seq, 8]
  %v1 = Reshape(%v0, %sq) {allowzero = 0} : f32[1, seq, 2, 4]
  %v = Transpose(%v1) {perm = [0, 2, 1, 3]} : f32[1, 2, seq, 4]
  %i0 = constant {value = dense<i64[]>[0]} : i64[]
  %i1 = constant {value = dense<i64[]>[1]} : i64[]
  %i2 = constant {value = dense<i64[]>[2]} : i64[]
  %i3 = constant {value = dense<i64[]>[3]} : i64[]
  %ax0 = constant {value = dense<i64[1]>[0]} : i64[1]
  %ax1 = constant {value = dense<i64[1]>[1]} : i64[1]
  %ax2 = constant {value = dense<i64[1]>[2]} : i64[1]
  %ax3 = constant {value = dense<i64[1]>[3]} : i64[1]
  %flat = constant {value = dense<i64[1]>[-1]} : i64[1]
  %minus = constant {value = dense<i64[]>[-1]} : i64[]
  %ks = Shape(%k) : i64[4]
  %kb = Gather(%ks, %i0) {axis = 0} : i64[]
  %kh = Gather(%ks, %i1) {axis = 0} : i64[]
  %kt = Gather(%ks, %i2) {axis = 0} : i64[]
  %kd = Gather(%ks, %i3) {axis = 0} : i64[]
  %ub = Unsqueeze(%kb, %ax0) : i64[1]
  %uh = Unsqueeze(%kh, %ax0) : i64[1]
  %rep = constant {value = dense<i64[1]>[3]} : i64[1]
  %ut = Unsqueeze(%kt, %ax0) : i64[1]
  %ud = Unsqueeze(%kd, %ax0) : i64[1]
  %cat5 = Concat(%ub, %uh, %rep, %ut, %ud) {axis = 0} : i64[5]
  %shape5 = Reshape(%cat5, %flat) {allowzero = 0} : i64[5]
  %n5 = Shape(%shape5) : i64[1]
  %ones5 = ConstantOfShape(%n5) {value = dense<i64[1]>[1]} : i64[5]
  %neg5 = Mul(%ones5, %minus) : i64[5]
  %keep5 = Equal(%shape5, %neg5) : bool[5]
  %to5 = Where(%keep5, %ones5, %shape5) : i64[5]
  %ku = Unsqueeze(%k, %ax2) : f32[1, 2, 1, seq, 4]
  %ke = Expand(%ku, %to5) : f32[1, 2, 3, seq, 4]
  %vu = Unsqueeze(%v, %ax2) : f32[1, 2, 1, seq, 4]
  %ve = Expand(%vu, %to5) : f32[1, 2, 3, seq, 4]
  %three = constant {value = dense<i64[]>[3]} : i64[]
  %heads = Mul(%kh, %three) : i64[]
  %uheads = Unsqueeze(%heads, %ax0) : i64[1]
  %cat4 = Concat(%ub, %uheads, %ut, %ud) {axis = 0} : i64[4]
  %kr = Reshape(%ke, %cat4) {allowzero = 0} : f32[1, 6, seq, 4]
  %vr = Reshape(%ve, %cat4) {allowzero = 0} : f32[1, 6, seq, 4]
  %xs = Shape(%x) : i64[3]
  %xt = Gather(%xs, %i1) {axis = 0} : i64[]
  %pos = Range(%i0, %xt, %i1) : i64[seq]
  %p1 = Unsqueeze(%pos, %ax0) : i64[1, seq]
  %p2 = Unsqueeze(%p1, %ax1) : i64[1, 1, seq]
  %rows = Unsqueeze(%p2, %ax3) : i64[1, 1, seq, 1]
  %cols = Unsqueeze(%p2, %ax2) : i64[1, 1, 1, seq]
  %allowed = LessOrEqual(%cols, %rows) : bool[1, 1, seq, seq]
  %xb = Gather(%xs, %i0) {axis = 0} : i64[]
  %mb = Unsqueeze(%xb, %ax0) : i64[1]
  %mt = Unsqueeze(%xt, %ax0) : i64[1]
  %cat4m = Concat(%mb, %flat, %mt, %mt) {axis = 0} : i64[4]
  %shape4 = Reshape(%cat4m, %flat) {allowzero = 0} : i64[4]
  %n4 = Shape(%shape4) : i64[1]
  %ones4 = ConstantOfShape(%n4) {value = dense<i64[1]>[1]} : i64[4]
  %neg4 = Mul(%ones4, %minus) : i64[4]
  %keep4 = Equal(%shape4, %neg4) : bool[4]
  %to4 = Where(%keep4, %ones4, %shape4) : i64[4]
  %allowed4 = Expand(%allowed, %to4) : bool[1, 1, seq, seq]
  %fz = constant {value = dense<f32[]>[0.0]} : f32[]
  %fmin = constant {value = dense<f32[]>[-3.4028235e38]} : f32[]
  %mask = Where(%allowed4, %fz, %fmin) : f32[1, 1, seq, seq]
  %krt = Transpose(%kr) {perm = [0, 1, 3, 2]} : f32[1, 6, 4, seq]
  %s = MatMul(%q, %krt) : f32[1, 6, seq, seq]
  %half = constant {value = dense<f32[]>[0.5]} : f32[]
  %ss = Mul(%s, %half) : f32[1, 6, seq, seq]
  %sm = Add(%ss, %mask) : f32[1, 6, seq, seq]
  %p = Softmax(%sm) {axis = -1} : f32[1, 6, seq, seq]
  %o = MatMul(%p, %vr) : f32[1, 6, seq, 4]
  %ot = Transpose(%o) {perm = [0, 2, 1, 3]} : f32[1, seq, 6, 4]
  %so = dims {value = dims<[1, seq, -1]>} : i64[3]
  %y = Reshape(%ot, %so) {allowzero = 0} : f32[1, seq, 24]
  return %y
}
"#,
        &[("seq", 5)],
        1e-5
    ));
}

/// MQA as TorchScript writes it: 4 query heads of 8 share one kv head, repeat_kv's expand
/// shape `[b, 1, 4, seq, 8]` already folded to a `dims` by an earlier canonicalize but its
/// -1 guard still in place, no mask (bidirectional).
#[test]
fn torchscript_mqa_expand_guard() {
    insta::assert_snapshot!(check_as_imported(
        r#"graph @g(%q: f32[2, 4, seq, 8], %k: f32[2, 1, seq, 8], %v: f32[2, 1, seq, 8]) -> (y: f32[2, 4, seq, 8]) {
  %ax2 = constant {value = dense<i64[1]>[2]} : i64[1]
  %shape = dims {value = dims<[2, 1, 4, seq, 8]>} : i64[5]
  %ones = constant {value = dense<i64[5]>[1, 1, 1, 1, 1]} : i64[5]
  %neg = constant {value = dense<i64[5]>[-1, -1, -1, -1, -1]} : i64[5]
  %keep = Equal(%shape, %neg) : bool[5]
  %to = Where(%keep, %ones, %shape) : i64[5]
  %ku = Unsqueeze(%k, %ax2) : f32[2, 1, 1, seq, 8]
  %ke = Expand(%ku, %to) : f32[2, 1, 4, seq, 8]
  %vu = Unsqueeze(%v, %ax2) : f32[2, 1, 1, seq, 8]
  %ve = Expand(%vu, %to) : f32[2, 1, 4, seq, 8]
  %s4 = dims {value = dims<[2, 4, seq, 8]>} : i64[4]
  %kr = Reshape(%ke, %s4) {allowzero = 0} : f32[2, 4, seq, 8]
  %vr = Reshape(%ve, %s4) {allowzero = 0} : f32[2, 4, seq, 8]
  %krt = Transpose(%kr) {perm = [0, 1, 3, 2]} : f32[2, 4, 8, seq]
  %s = MatMul(%q, %krt) : f32[2, 4, seq, seq]
  %scale = constant {value = dense<f32[]>[0.35355338]} : f32[]
  %ss = Mul(%s, %scale) : f32[2, 4, seq, seq]
  %p = Softmax(%ss) {axis = -1} : f32[2, 4, seq, seq]
  %y = MatMul(%p, %vr) : f32[2, 4, seq, 8]
  return %y
}
"#,
        &[("seq", 3)],
        1e-5
    ));
}

/// Near miss: the same MQA repeat, but its shape guard compares against 0, a value `seq`
/// can take (an empty sequence). The guard is not folded, so the Expand's shape stays
/// unknown until run time and the repeat is not recognised: the attention fuses over k and
/// v as repeated in memory (Unsqueeze, Expand, Reshape left in place), 4 heads of each.
#[test]
fn expand_guard_against_a_possible_size_stays() {
    insta::assert_snapshot!(check_as_imported(
        r#"graph @g(%q: f32[2, 4, seq, 8], %k: f32[2, 1, seq, 8], %v: f32[2, 1, seq, 8]) -> (y: f32[2, 4, seq, 8]) {
  %ax2 = constant {value = dense<i64[1]>[2]} : i64[1]
  %shape = dims {value = dims<[2, 1, 4, seq, 8]>} : i64[5]
  %ones = constant {value = dense<i64[5]>[1, 1, 1, 1, 1]} : i64[5]
  %zeros = constant {value = dense<i64[5]>[0, 0, 0, 0, 0]} : i64[5]
  %empty = Equal(%shape, %zeros) : bool[5]
  %to = Where(%empty, %ones, %shape) : i64[5]
  %ku = Unsqueeze(%k, %ax2) : f32[2, 1, 1, seq, 8]
  %ke = Expand(%ku, %to) : f32[2, 1, u0, u1, 8]
  %vu = Unsqueeze(%v, %ax2) : f32[2, 1, 1, seq, 8]
  %ve = Expand(%vu, %to) : f32[2, 1, u0, u1, 8]
  %s4 = dims {value = dims<[2, 4, seq, 8]>} : i64[4]
  %kr = Reshape(%ke, %s4) {allowzero = 0} : f32[2, 4, seq, 8]
  %vr = Reshape(%ve, %s4) {allowzero = 0} : f32[2, 4, seq, 8]
  %krt = Transpose(%kr) {perm = [0, 1, 3, 2]} : f32[2, 4, 8, seq]
  %s = MatMul(%q, %krt) : f32[2, 4, seq, seq]
  %scale = constant {value = dense<f32[]>[0.35355338]} : f32[]
  %ss = Mul(%s, %scale) : f32[2, 4, seq, seq]
  %p = Softmax(%ss) {axis = -1} : f32[2, 4, seq, seq]
  %y = MatMul(%p, %vr) : f32[2, 4, seq, 8]
  return %y
}
"#,
        &[("seq", 3)],
        1e-5
    ));
}
