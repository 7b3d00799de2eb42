//! `fuse-rms-norm`.

use crate::support::check;

/// torch dynamo's spelling of HF's LlamaRMSNorm: Pow, ReduceMean, Add eps, Sqrt,
/// Reciprocal, Mul, Mul by the weight.
#[test]
fn dynamo_rsqrt_form() {
    insta::assert_snapshot!(check(
        r#"graph @g(%x: f32[2, seq, 16]) -> (y: f32[2, seq, 16]) {
  %w = constant {value = @weight("w")} : f32[16]
  %two = constant {value = dense<f32[]>[2.0]} : f32[]
  %axes = constant {value = dense<i64[1]>[-1]} : i64[1]
  %eps = constant {value = dense<f32[]>[1e-6]} : f32[]
  %0 = Pow(%x, %two) : f32[2, seq, 16]
  %1 = ReduceMean(%0, %axes) {keepdims = 1} : f32[2, seq, 1]
  %2 = Add(%1, %eps) : f32[2, seq, 1]
  %3 = Sqrt(%2) : f32[2, seq, 1]
  %4 = Reciprocal(%3) : f32[2, seq, 1]
  %5 = Mul(%x, %4) : f32[2, seq, 16]
  %6 = Mul(%w, %5) : f32[2, seq, 16]
  return %6
}
"#,
        &[("seq", 3)],
        1e-6
    ));
}

/// Another spelling with other sizes: x*x, eps first, a division by the root, the weight
/// on the right, axis given as a positive index; and a second norm sharing the input.
#[test]
fn div_sqrt_form_and_positive_axis() {
    insta::assert_snapshot!(check(
        r#"graph @g(%x: f32[seq, 40]) -> (y: f32[seq, 40], z: f32[seq, 40]) {
  %w = constant {value = @weight("w")} : f32[1, 40]
  %axes = constant {value = dense<i64[1]>[1]} : i64[1]
  %eps = constant {value = dense<f32[1]>[1e-5]} : f32[1]
  %one = constant {value = dense<f32[]>[1.0]} : f32[]
  %0 = Mul(%x, %x) : f32[seq, 40]
  %1 = ReduceMean(%0, %axes) {keepdims = 1} : f32[seq, 1]
  %2 = Add(%eps, %1) : f32[seq, 1]
  %3 = Sqrt(%2) : f32[seq, 1]
  %4 = Div(%x, %3) : f32[seq, 40]
  %5 = Mul(%4, %w) : f32[seq, 40]
  %6 = Div(%one, %3) : f32[seq, 1]
  %7 = Mul(%6, %x) : f32[seq, 40]
  return %5, %7
}
"#,
        &[("seq", 5)],
        1e-6
    ));
}

/// ONNX's RMSNormalization and ORT's SimplifiedLayerNormalization are renamed.
#[test]
fn existing_ops_are_renamed() {
    insta::assert_snapshot!(check(
        r#"graph @g(%x: f32[3, 8]) -> (y: f32[3, 8], z: f32[3, 8]) {
  %w = constant {value = @weight("w")} : f32[8]
  %0 = RMSNormalization(%x, %w) {axis = -1, epsilon = 0.001} : f32[3, 8]
  %1 = SimplifiedLayerNormalization(%0, %w) {axis = -1, epsilon = 1e-6} : f32[3, 8]
  return %0, %1
}
"#,
        &[],
        1e-6
    ));
}

/// Near misses: a mean over another axis than the last; a scale that varies over tokens
/// (stays a Mul after the norm); an eps that is not a scalar constant.
#[test]
fn near_misses_stay() {
    insta::assert_snapshot!(check(
        r#"graph @g(%x: f32[4, 6], %e: f32[]) -> (a: f32[4, 6], b: f32[4, 6], c: f32[4, 6]) {
  %w = constant {value = @weight("w")} : f32[4, 6]
  %ax0 = constant {value = dense<i64[1]>[0]} : i64[1]
  %ax1 = constant {value = dense<i64[1]>[-1]} : i64[1]
  %eps = constant {value = dense<f32[]>[1e-6]} : f32[]
  %sq = Mul(%x, %x) : f32[4, 6]
  %m0 = ReduceMean(%sq, %ax0) {keepdims = 1} : f32[1, 6]
  %a0 = Add(%m0, %eps) : f32[1, 6]
  %s0 = Sqrt(%a0) : f32[1, 6]
  %a = Div(%x, %s0) : f32[4, 6]
  %m1 = ReduceMean(%sq, %ax1) {keepdims = 1} : f32[4, 1]
  %a1 = Add(%m1, %eps) : f32[4, 1]
  %s1 = Sqrt(%a1) : f32[4, 1]
  %n1 = Div(%x, %s1) : f32[4, 6]
  %b = Mul(%n1, %w) : f32[4, 6]
  %a2 = Add(%m1, %e) : f32[4, 1]
  %s2 = Sqrt(%a2) : f32[4, 1]
  %c = Div(%x, %s2) : f32[4, 6]
  return %a, %b, %c
}
"#,
        &[],
        1e-6
    ));
}

/// ONNX Runtime's SkipSimplifiedLayerNormalization: the residual sum (with a bias, and a
/// skip `[S, H]` repeated over the batch) becomes Adds, which also replace the sum output
/// where it is read, then rms_norm (epsilon default 1e-12). Near misses stay: the inverse
/// std dev output read; a skip that only tiles the input (ONNX Runtime's `[2, H]` skip for
/// `[4, H]` rows), which no broadcasting Add computes.
#[test]
fn skip_simplified_layer_norm() {
    insta::assert_snapshot!(check(
        r#"graph @g(%x: f32[2, seq, 8], %s: f32[seq, 8], %r: f32[4, 8], %rs: f32[2, 8]) -> (y: f32[2, seq, 8], sum: f32[2, seq, 8], z: f32[2, seq, 8], inv: f32[2, seq, 1], w: f32[4, 8]) {
  %g = constant {value = @weight("g")} : f32[8]
  %b = constant {value = @weight("b")} : f32[8]
  %y, %m, %i, %sum = com.microsoft.SkipSimplifiedLayerNormalization(%x, %s, %g, %b) {epsilon = 1e-5} : f32[2, seq, 8], f32[2, seq, 1], f32[2, seq, 1], f32[2, seq, 8]
  %z = com.microsoft.SkipSimplifiedLayerNormalization(%y, %x, %g) : f32[2, seq, 8]
  %z2, %m2, %inv = com.microsoft.SkipSimplifiedLayerNormalization(%z, %x, %g) : f32[2, seq, 8], f32[2, seq, 1], f32[2, seq, 1]
  %w = com.microsoft.SkipSimplifiedLayerNormalization(%r, %rs, %g) : f32[4, 8]
  return %y, %sum, %z, %inv, %w
}
"#,
        &[("seq", 3)],
        1e-5
    ));
}
