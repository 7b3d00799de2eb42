//! `fuse-layer-norm`.

use crate::support::check;

/// BERT as TorchScript writes its LayerNorm: ReduceMean, Sub, Pow, ReduceMean, Add eps,
/// Sqrt, Div, Mul by the weight, Add the bias.
#[test]
fn torchscript_mean_var_form() {
    insta::assert_snapshot!(check(
        r#"graph @g(%x: f32[2, seq, 32]) -> (y: f32[2, seq, 32]) {
  %w = constant {value = @weight("w")} : f32[32]
  %b = constant {value = @weight("b")} : f32[32]
  %axes = constant {value = dense<i64[1]>[-1]} : i64[1]
  %two = constant {value = dense<f32[]>[2.0]} : f32[]
  %eps = constant {value = dense<f32[]>[1e-12]} : f32[]
  %0 = ReduceMean(%x, %axes) {keepdims = 1} : f32[2, seq, 1]
  %1 = Sub(%x, %0) : f32[2, seq, 32]
  %2 = Pow(%1, %two) : f32[2, seq, 32]
  %3 = ReduceMean(%2, %axes) {keepdims = 1} : f32[2, seq, 1]
  %4 = Add(%3, %eps) : f32[2, seq, 1]
  %5 = Sqrt(%4) : f32[2, seq, 1]
  %6 = Div(%1, %5) : f32[2, seq, 32]
  %7 = Mul(%6, %w) : f32[2, seq, 32]
  %8 = Add(%7, %b) : f32[2, seq, 32]
  return %8
}
"#,
        &[("seq", 3)],
        1e-5
    ));
}

/// Other spellings and sizes: d * d, eps first, d * Reciprocal(Sqrt), the weight and bias
/// first, positive axes; a norm over the last two axes with a `[4, 6]` scale and no bias;
/// a norm with neither (`d * Pow(var + eps, -0.5)`), centred by a copy of the first centring
/// (CSE merges the two).
#[test]
fn other_spellings_and_axes() {
    insta::assert_snapshot!(check(
        r#"graph @g(%x: f32[seq, 24], %z: f32[3, 4, 6]) -> (y: f32[seq, 24], u: f32[3, 4, 6], v: f32[seq, 24]) {
  %w = constant {value = @weight("w")} : f32[1, 24]
  %b = constant {value = @weight("b")} : f32[24]
  %w2 = constant {value = @weight("w2")} : f32[4, 6]
  %ax = constant {value = dense<i64[1]>[1]} : i64[1]
  %ax12 = constant {value = dense<i64[2]>[2, 1]} : i64[2]
  %eps = constant {value = dense<f32[1]>[1e-5]} : f32[1]
  %mhalf = constant {value = dense<f32[]>[-0.5]} : f32[]
  %0 = ReduceMean(%x, %ax) {keepdims = 1} : f32[seq, 1]
  %1 = Sub(%x, %0) : f32[seq, 24]
  %2 = Mul(%1, %1) : f32[seq, 24]
  %3 = ReduceMean(%2, %ax) {keepdims = 1} : f32[seq, 1]
  %4 = Add(%eps, %3) : f32[seq, 1]
  %5 = Sqrt(%4) : f32[seq, 1]
  %6 = Reciprocal(%5) : f32[seq, 1]
  %7 = Mul(%1, %6) : f32[seq, 24]
  %8 = Mul(%w, %7) : f32[seq, 24]
  %9 = Add(%b, %8) : f32[seq, 24]
  %10 = ReduceMean(%z, %ax12) {keepdims = 1} : f32[3, 1, 1]
  %11 = Sub(%z, %10) : f32[3, 4, 6]
  %12 = Mul(%11, %11) : f32[3, 4, 6]
  %13 = ReduceMean(%12, %ax12) {keepdims = 1} : f32[3, 1, 1]
  %14 = Add(%13, %eps) : f32[3, 1, 1]
  %15 = Sqrt(%14) : f32[3, 1, 1]
  %16 = Div(%11, %15) : f32[3, 4, 6]
  %17 = Mul(%16, %w2) : f32[3, 4, 6]
  %18 = ReduceMean(%x, %ax) {keepdims = 1} : f32[seq, 1]
  %19 = Sub(%x, %18) : f32[seq, 24]
  %20 = Mul(%19, %19) : f32[seq, 24]
  %21 = ReduceMean(%20, %ax) {keepdims = 1} : f32[seq, 1]
  %22 = Add(%21, %eps) : f32[seq, 1]
  %23 = Pow(%22, %mhalf) : f32[seq, 1]
  %24 = Mul(%23, %1) : f32[seq, 24]
  return %9, %17, %24
}
"#,
        &[("seq", 5)],
        1e-5
    ));
}

/// ONNX LayerNormalization is renamed when only its output 0 is read; one whose mean is
/// read stays.
#[test]
fn existing_op_is_renamed() {
    insta::assert_snapshot!(check(
        r#"graph @g(%x: f32[2, 3, 8]) -> (y: f32[2, 3, 8], z: f32[2, 3, 8], m: f32[2, 3, 1]) {
  %w = constant {value = @weight("w")} : f32[8]
  %b = constant {value = @weight("b")} : f32[8]
  %0, %1, %2 = LayerNormalization(%x, %w, %b) {axis = -1, epsilon = 1e-12, stash_type = 1} : f32[2, 3, 8], f32[2, 3, 1], f32[2, 3, 1]
  %3 = LayerNormalization(%0, %w) {axis = 2, epsilon = 0.001} : f32[2, 3, 8]
  %4, %5 = LayerNormalization(%3, %w, %b) : f32[2, 3, 8], f32[2, 3, 1]
  return %3, %4, %5
}
"#,
        &[],
        1e-5
    ));
}

/// Near misses: a mean over the first axis (not trailing); a variance over another axis than
/// the mean's; a variance of another tensor than the centred x; a scale that varies over
/// tokens (the norm fuses with a scale of one, the Mul stays); an eps that is not constant.
#[test]
fn near_misses_stay() {
    insta::assert_snapshot!(check(
        r#"graph @g(%x: f32[4, 6], %e: f32[]) -> (a: f32[4, 6], b: f32[4, 6], c: f32[4, 6], d: f32[4, 6], f: f32[4, 6]) {
  %w = constant {value = @weight("w")} : f32[4, 6]
  %ax0 = constant {value = dense<i64[1]>[0]} : i64[1]
  %ax1 = constant {value = dense<i64[1]>[-1]} : i64[1]
  %eps = constant {value = dense<f32[]>[1e-5]} : f32[]
  %m0 = ReduceMean(%x, %ax0) {keepdims = 1} : f32[1, 6]
  %d0 = Sub(%x, %m0) : f32[4, 6]
  %s0 = Mul(%d0, %d0) : f32[4, 6]
  %v0 = ReduceMean(%s0, %ax0) {keepdims = 1} : f32[1, 6]
  %p0 = Add(%v0, %eps) : f32[1, 6]
  %r0 = Sqrt(%p0) : f32[1, 6]
  %a = Div(%d0, %r0) : f32[4, 6]
  %m1 = ReduceMean(%x, %ax1) {keepdims = 1} : f32[4, 1]
  %d1 = Sub(%x, %m1) : f32[4, 6]
  %s1 = Mul(%d1, %d1) : f32[4, 6]
  %v1 = ReduceMean(%s1, %ax0) {keepdims = 1} : f32[1, 6]
  %p1 = Add(%v1, %eps) : f32[1, 6]
  %r1 = Sqrt(%p1) : f32[1, 6]
  %b = Div(%d1, %r1) : f32[4, 6]
  %s2 = Mul(%x, %x) : f32[4, 6]
  %v2 = ReduceMean(%s2, %ax1) {keepdims = 1} : f32[4, 1]
  %p2 = Add(%v2, %eps) : f32[4, 1]
  %r2 = Sqrt(%p2) : f32[4, 1]
  %c = Div(%d1, %r2) : f32[4, 6]
  %v3 = ReduceMean(%s1, %ax1) {keepdims = 1} : f32[4, 1]
  %p3 = Add(%v3, %eps) : f32[4, 1]
  %r3 = Sqrt(%p3) : f32[4, 1]
  %n3 = Div(%d1, %r3) : f32[4, 6]
  %d = Mul(%n3, %w) : f32[4, 6]
  %p4 = Add(%v3, %e) : f32[4, 1]
  %r4 = Sqrt(%p4) : f32[4, 1]
  %f = Div(%d1, %r4) : f32[4, 6]
  return %a, %b, %c, %d, %f
}
"#,
        &[],
        1e-5
    ));
}
