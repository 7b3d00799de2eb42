//! `fuse-gelu`.

use crate::support::check;

/// BERT/MiniLM's exact GELU after a biased projection (Div by sqrt 2, Erf, Add 1, Mul x,
/// Mul 0.5), and another spelling on other sizes (`x * 0.70710677`, `(0.5 * x) * (erf + 1)`).
#[test]
fn erf_forms() {
    insta::assert_snapshot!(check(
        r#"graph @g(%h: f32[2, seq, 16], %z: f32[5, 7]) -> (y: f32[2, seq, 32], v: f32[5, 7]) {
  %w = constant {value = @weight("w")} : f32[16, 32]
  %b = constant {value = @weight("b")} : f32[32]
  %sq2 = constant {value = dense<f32[]>[1.4142135]} : f32[]
  %isq2 = constant {value = dense<f32[]>[0.70710677]} : f32[]
  %one = constant {value = dense<f32[]>[1.0]} : f32[]
  %half = constant {value = dense<f32[]>[0.5]} : f32[]
  %0 = MatMul(%h, %w) : f32[2, seq, 32]
  %x = Add(%0, %b) : f32[2, seq, 32]
  %1 = Div(%x, %sq2) : f32[2, seq, 32]
  %2 = Erf(%1) : f32[2, seq, 32]
  %3 = Add(%2, %one) : f32[2, seq, 32]
  %4 = Mul(%x, %3) : f32[2, seq, 32]
  %5 = Mul(%4, %half) : f32[2, seq, 32]
  %6 = Mul(%z, %isq2) : f32[5, 7]
  %7 = Erf(%6) : f32[5, 7]
  %8 = Add(%one, %7) : f32[5, 7]
  %9 = Mul(%half, %z) : f32[5, 7]
  %10 = Mul(%9, %8) : f32[5, 7]
  return %5, %10
}
"#,
        &[("seq", 3)],
        1e-6
    ));
}

/// The tanh approximation: GPT-2's `gelu_new` (`x + 0.044715 * Pow(x, 3)`) and BLOOM's
/// (`0.79788456 * x * (1 + 0.044715 * x * x)`).
#[test]
fn tanh_forms() {
    insta::assert_snapshot!(check(
        r#"graph @g(%x: f32[3, 20], %z: f32[2, 4, 6]) -> (y: f32[3, 20], v: f32[2, 4, 6]) {
  %k = constant {value = dense<f32[]>[0.7978846]} : f32[]
  %c = constant {value = dense<f32[]>[0.044715]} : f32[]
  %three = constant {value = dense<f32[]>[3.0]} : f32[]
  %one = constant {value = dense<f32[]>[1.0]} : f32[]
  %half = constant {value = dense<f32[]>[0.5]} : f32[]
  %0 = Pow(%x, %three) : f32[3, 20]
  %1 = Mul(%c, %0) : f32[3, 20]
  %2 = Add(%x, %1) : f32[3, 20]
  %3 = Mul(%k, %2) : f32[3, 20]
  %4 = Tanh(%3) : f32[3, 20]
  %5 = Add(%one, %4) : f32[3, 20]
  %6 = Mul(%half, %x) : f32[3, 20]
  %7 = Mul(%6, %5) : f32[3, 20]
  %8 = Mul(%z, %half) : f32[2, 4, 6]
  %9 = Mul(%k, %z) : f32[2, 4, 6]
  %10 = Mul(%c, %z) : f32[2, 4, 6]
  %11 = Mul(%10, %z) : f32[2, 4, 6]
  %12 = Add(%11, %one) : f32[2, 4, 6]
  %13 = Mul(%9, %12) : f32[2, 4, 6]
  %14 = Tanh(%13) : f32[2, 4, 6]
  %15 = Add(%14, %one) : f32[2, 4, 6]
  %16 = Mul(%8, %15) : f32[2, 4, 6]
  return %7, %16
}
"#,
        &[],
        1e-6
    ));
}

/// Near misses: no `1 +` (x * erf(x / sqrt 2) / 2); Erf of x / 2; the erf of another tensor
/// than the one multiplied; a tanh polynomial with another cubic coefficient.
#[test]
fn near_misses_stay() {
    insta::assert_snapshot!(check(
        r#"graph @g(%x: f32[4, 6], %z: f32[4, 6]) -> (a: f32[4, 6], b: f32[4, 6], c: f32[4, 6], d: f32[4, 6]) {
  %sq2 = constant {value = dense<f32[]>[1.4142135]} : f32[]
  %two = constant {value = dense<f32[]>[2.0]} : f32[]
  %one = constant {value = dense<f32[]>[1.0]} : f32[]
  %half = constant {value = dense<f32[]>[0.5]} : f32[]
  %k = constant {value = dense<f32[]>[0.7978846]} : f32[]
  %c = constant {value = dense<f32[]>[0.05]} : f32[]
  %three = constant {value = dense<f32[]>[3.0]} : f32[]
  %0 = Div(%x, %sq2) : f32[4, 6]
  %1 = Erf(%0) : f32[4, 6]
  %2 = Mul(%x, %1) : f32[4, 6]
  %a = Mul(%2, %half) : f32[4, 6]
  %3 = Div(%x, %two) : f32[4, 6]
  %4 = Erf(%3) : f32[4, 6]
  %5 = Add(%4, %one) : f32[4, 6]
  %6 = Mul(%x, %5) : f32[4, 6]
  %b = Mul(%6, %half) : f32[4, 6]
  %7 = Add(%1, %one) : f32[4, 6]
  %8 = Mul(%z, %7) : f32[4, 6]
  %c2 = Mul(%8, %half) : f32[4, 6]
  %9 = Pow(%x, %three) : f32[4, 6]
  %10 = Mul(%c, %9) : f32[4, 6]
  %11 = Add(%x, %10) : f32[4, 6]
  %12 = Mul(%k, %11) : f32[4, 6]
  %13 = Tanh(%12) : f32[4, 6]
  %14 = Add(%13, %one) : f32[4, 6]
  %15 = Mul(%x, %14) : f32[4, 6]
  %d = Mul(%15, %half) : f32[4, 6]
  return %a, %b, %c2, %d
}
"#,
        &[],
        1e-6
    ));
}
