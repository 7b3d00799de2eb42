//! `fuse-moe`'s existing-op form: `com.microsoft.MoE` becomes `moe`, computing what ONNX
//! Runtime's op does on the reference interpreter.

use crate::support::check;

/// GPT-OSS as ONNX Runtime GenAI writes it: router logits per token `[B*S, E]` from a
/// Reshape, interleaved fused swiglu (limit 7, alpha 1.702, beta 1) with biases, top-2 of 4
/// renormalised.
#[test]
fn gpt_oss_interleaved_swiglu_top2() {
    insta::assert_snapshot!(check(
        r#"graph @g(%x: f32[2, seq, 16]) -> (y: f32[2, seq, 16]) {
  %wr = constant {value = @weight("wr")} : f32[16, 4]
  %l = MatMul(%x, %wr) : f32[2, seq, 4]
  %s = constant {value = dense<i64[2]>[-1, 4]} : i64[2]
  %r = Reshape(%l, %s) : f32[2*seq, 4]
  %w1 = constant {value = @weight("w1")} : f32[4, 24, 16]
  %b1 = constant {value = @weight("b1")} : f32[4, 24]
  %w2 = constant {value = @weight("w2")} : f32[4, 16, 12]
  %b2 = constant {value = @weight("b2")} : f32[4, 16]
  %y = com.microsoft.MoE(%x, %r, %w1, %b1, %w2, %b2) {activation_alpha = 1.702, activation_beta = 1.0, activation_type = "swiglu", k = 2, normalize_routing_weights = 1, swiglu_fusion = 1, swiglu_limit = 7.0, use_sparse_mixer = 0} : f32[2, seq, 16]
  return %y
}
"#,
        &[("seq", 3)],
        1e-5
    ));
}

/// Tokens as rows `[T, H]`: a silu-gated MLP with fc3 and its bias, top-1 of 6 not
/// renormalised; relu without fc3, top-3 renormalised; and identity with the default
/// activation left implicit (ONNX Runtime's default is relu, written out).
#[test]
fn rows_silu_relu_identity() {
    insta::assert_snapshot!(check(
        r#"graph @g(%x: f32[5, 8], %r: f32[5, 6]) -> (a: f32[5, 8], b: f32[5, 8], c: f32[5, 8]) {
  %w1 = constant {value = @weight("w1")} : f32[6, 10, 8]
  %b1 = constant {value = @weight("b1")} : f32[6, 10]
  %w2 = constant {value = @weight("w2")} : f32[6, 8, 10]
  %w3 = constant {value = @weight("w3")} : f32[6, 10, 8]
  %b3 = constant {value = @weight("b3")} : f32[6, 10]
  %a = com.microsoft.MoE(%x, %r, %w1, %b1, %w2, _, %w3, %b3) {activation_type = "silu", k = 1} : f32[5, 8]
  %b = com.microsoft.MoE(%x, %r, %w1, _, %w2) {k = 3, normalize_routing_weights = 1} : f32[5, 8]
  %c = com.microsoft.MoE(%x, %r, %w1, %b1, %w2) {activation_type = "identity", k = 2} : f32[5, 8]
  return %a, %b, %c
}
"#,
        &[],
        1e-5
    ));
}

/// Swiglu with gate and up in halves (`swiglu_fusion = 2`), a limit that clamps (0.5), 8
/// experts, top-3 renormalised, no biases; and unfused swiglu with fc3 (an fc3 that
/// `swiglu_fusion = 1` would ignore is dropped).
#[test]
fn swiglu_halves_and_separate_up() {
    insta::assert_snapshot!(check(
        r#"graph @g(%x: f32[seq, 12], %r: f32[seq, 8]) -> (a: f32[seq, 12], b: f32[seq, 12], c: f32[seq, 12]) {
  %w1 = constant {value = @weight("w1")} : f32[8, 14, 12]
  %w2 = constant {value = @weight("w2")} : f32[8, 12, 7]
  %g1 = constant {value = @weight("g1")} : f32[8, 7, 12]
  %w3 = constant {value = @weight("w3")} : f32[8, 7, 12]
  %a = com.microsoft.MoE(%x, %r, %w1, _, %w2) {activation_type = "swiglu", k = 3, normalize_routing_weights = 1, swiglu_fusion = 2, swiglu_limit = 0.5} : f32[seq, 12]
  %b = com.microsoft.MoE(%x, %r, %g1, _, %w2, _, %w3) {activation_type = "swiglu", k = 2} : f32[seq, 12]
  %c = com.microsoft.MoE(%x, %r, %w1, _, %w2, _, %w3) {activation_type = "swiglu", k = 2, swiglu_fusion = 1} : f32[seq, 12]
  return %a, %b, %c
}
"#,
        &[("seq", 4)],
        1e-5
    ));
}

/// Near misses that stay: gelu (ONNX Runtime's tanh approximation, `moe` has the exact
/// erf), and use_sparse_mixer.
#[test]
fn gelu_and_sparse_mixer_stay() {
    insta::assert_snapshot!(check(
        r#"graph @g(%x: f32[3, 8], %r: f32[3, 4]) -> (a: f32[3, 8], b: f32[3, 8]) {
  %w1 = constant {value = @weight("w1")} : f32[4, 6, 8]
  %w2 = constant {value = @weight("w2")} : f32[4, 8, 6]
  %a = com.microsoft.MoE(%x, %r, %w1, _, %w2) {activation_type = "gelu", k = 2} : f32[3, 8]
  %b = com.microsoft.MoE(%x, %r, %w1, _, %w2) {activation_type = "relu", k = 2, use_sparse_mixer = 1} : f32[3, 8]
  return %a, %b
}
"#,
        &[],
        0.0
    ));
}
