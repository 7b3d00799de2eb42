//! `fuse-swiglu`.

use crate::support::check;

/// LLaMA's MLP as dynamo writes it, `(g * Sigmoid(g)) * up`, and two other associations on
/// other sizes: `g * (Sigmoid(g) * up)`, `Sigmoid(g) * (up * g)`.
#[test]
fn sigmoid_mul_any_association() {
    insta::assert_snapshot!(check(
        r#"graph @g(%x: f32[1, seq, 16], %a: f32[2, 3, 10], %b: f32[2, 3, 10]) -> (y: f32[1, seq, 24], z: f32[2, 3, 10], w: f32[2, 3, 10]) {
  %wg = constant {value = @weight("wg")} : f32[16, 24]
  %wu = constant {value = @weight("wu")} : f32[16, 24]
  %g = MatMul(%x, %wg) : f32[1, seq, 24]
  %0 = Sigmoid(%g) : f32[1, seq, 24]
  %1 = Mul(%g, %0) : f32[1, seq, 24]
  %u = MatMul(%x, %wu) : f32[1, seq, 24]
  %2 = Mul(%1, %u) : f32[1, seq, 24]
  %3 = Sigmoid(%a) : f32[2, 3, 10]
  %4 = Mul(%3, %b) : f32[2, 3, 10]
  %5 = Mul(%a, %4) : f32[2, 3, 10]
  %6 = Sigmoid(%b) : f32[2, 3, 10]
  %7 = Mul(%a, %b) : f32[2, 3, 10]
  %8 = Mul(%6, %7) : f32[2, 3, 10]
  return %2, %5, %8
}
"#,
        &[("seq", 3)],
        1e-6
    ));
}

/// The SiLU as one op: ONNX Swish, ORT's QuickGelu (with its alpha); and a sigmoid of
/// `alpha * g`.
#[test]
fn silu_ops_and_alpha() {
    insta::assert_snapshot!(check(
        r#"graph @g(%g: f32[4, 12], %u: f32[4, 12]) -> (a: f32[4, 12], b: f32[4, 12], c: f32[4, 12]) {
  %al = constant {value = dense<f32[]>[1.5]} : f32[]
  %0 = Swish(%g) {alpha = 1.0} : f32[4, 12]
  %1 = Mul(%u, %0) : f32[4, 12]
  %2 = com.microsoft.QuickGelu(%g) {alpha = 1.702} : f32[4, 12]
  %3 = Mul(%2, %u) : f32[4, 12]
  %4 = Mul(%al, %g) : f32[4, 12]
  %5 = Sigmoid(%4) : f32[4, 12]
  %6 = Mul(%5, %g) : f32[4, 12]
  %7 = Mul(%u, %6) : f32[4, 12]
  return %1, %3, %7
}
"#,
        &[],
        1e-6
    ));
}

/// GPT-OSS's clamped unit (`(clamp(up, -7, 7) + 1) * min(g, 7) * sigmoid(1.702 min(g, 7))`)
/// and DeepSeek-V4's shared expert (limit 10, no beta; the up clamp as Min/Max), inputs
/// scaled so that the clamps bite.
#[test]
fn clamped_forms() {
    insta::assert_snapshot!(check(
        r#"graph @g(%g0: f32[seq, 8], %u0: f32[seq, 8]) -> (a: f32[seq, 8], b: f32[seq, 8]) {
  %k = constant {value = dense<f32[]>[20.0]} : f32[]
  %lim = constant {value = dense<f32[]>[7.0]} : f32[]
  %nlim = constant {value = dense<f32[]>[-7.0]} : f32[]
  %al = constant {value = dense<f32[]>[1.702]} : f32[]
  %one = constant {value = dense<f32[]>[1.0]} : f32[]
  %ten = constant {value = dense<f32[]>[10.0]} : f32[]
  %nten = constant {value = dense<f32[]>[-10.0]} : f32[]
  %g = Mul(%g0, %k) : f32[seq, 8]
  %u = Mul(%u0, %k) : f32[seq, 8]
  %0 = Clip(%g, _, %lim) : f32[seq, 8]
  %1 = Clip(%u, %nlim, %lim) : f32[seq, 8]
  %2 = Mul(%0, %al) : f32[seq, 8]
  %3 = Sigmoid(%2) : f32[seq, 8]
  %4 = Mul(%0, %3) : f32[seq, 8]
  %5 = Add(%1, %one) : f32[seq, 8]
  %6 = Mul(%5, %4) : f32[seq, 8]
  %7 = Clip(%g, _, %ten) : f32[seq, 8]
  %8 = Max(%u, %nten) : f32[seq, 8]
  %9 = Min(%8, %ten) : f32[seq, 8]
  %10 = Sigmoid(%7) : f32[seq, 8]
  %11 = Mul(%7, %10) : f32[seq, 8]
  %12 = Mul(%11, %9) : f32[seq, 8]
  return %6, %12
}
"#,
        &[("seq", 4)],
        1e-5
    ));
}

/// Near misses: the sigmoid of another tensor than the gate it multiplies; only the gate
/// clamped (the Clip stays before a swiglu); gate and up clamped with different limits
/// (both Clips stay before a swiglu); a plain SiLU with no up (no swiglu).
#[test]
fn near_misses_stay() {
    insta::assert_snapshot!(check(
        r#"graph @g(%a: f32[3, 8], %b: f32[3, 8], %u: f32[3, 8]) -> (p: f32[3, 8], q: f32[3, 8], r: f32[3, 8], s: f32[3, 8]) {
  %lim = constant {value = dense<f32[]>[0.5]} : f32[]
  %nlim = constant {value = dense<f32[]>[-0.25]} : f32[]
  %plim = constant {value = dense<f32[]>[0.25]} : f32[]
  %0 = Sigmoid(%a) : f32[3, 8]
  %1 = Mul(%b, %0) : f32[3, 8]
  %p = Mul(%1, %u) : f32[3, 8]
  %2 = Clip(%a, _, %lim) : f32[3, 8]
  %3 = Sigmoid(%2) : f32[3, 8]
  %4 = Mul(%2, %3) : f32[3, 8]
  %q = Mul(%4, %u) : f32[3, 8]
  %5 = Clip(%u, %nlim, %plim) : f32[3, 8]
  %7 = Mul(%3, %2) : f32[3, 8]
  %r = Mul(%7, %5) : f32[3, 8]
  %6 = Sigmoid(%b) : f32[3, 8]
  %s = Mul(%b, %6) : f32[3, 8]
  return %p, %q, %r, %s
}
"#,
        &[],
        1e-6
    ));
}
