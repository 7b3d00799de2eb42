//! ONNX Runtime's `com.microsoft.RotaryEmbedding` -> `rope` and
//! `com.microsoft.SkipLayerNormalization` -> Add + `layer_norm`. These tests run each
//! rewrite (`rope_existing`, `skip_layer_norm`, which `fuse-rope` / `fuse-layer-norm` call)
//! as a rule of its own, then canonicalize, and check on the reference interpreter that the
//! result computes what the op did.

use kiln_compiler::passes::fuse::{rope_existing, skip_layer_norm, Fusion, Match, Rule};
use kiln_compiler::passes::{PassContext, PassManager};
use kiln_ir::text::{parse, print};
use kiln_ir::{Graph, NodeId};

use crate::support;

struct Only(fn(&Graph, NodeId) -> Option<Match>, &'static str);

impl Rule for Only {
    fn name(&self) -> &'static str {
        self.1
    }

    fn find(&self, g: &Graph, root: NodeId) -> Option<Match> {
        (self.0)(g, root)
    }
}

/// Runs `find` as rule `name`, then canonicalize; checks the outputs agree within `tol` and
/// returns the snapshot text.
fn check(
    text: &str,
    find: fn(&Graph, NodeId) -> Option<Match>,
    name: &'static str,
    dims: &[(&str, i64)],
    int_range: i64,
    tol: f64,
) -> String {
    let g = support::graph(text);
    let mut fused = g.clone();
    let mut ctx = PassContext::new();
    let rule = Fusion::new(Box::new(Only(find, name)));
    let changed = ctx
        .run_pass(&rule, &mut fused)
        .unwrap_or_else(|e| panic!("{e}"));
    PassManager::parse("canonicalize")
        .unwrap()
        .run(&mut fused, &mut ctx)
        .unwrap_or_else(|e| panic!("{e}"));
    let out = print(&fused);
    assert_eq!(
        print(&parse(&out).unwrap()),
        out,
        "output does not read back"
    );
    let feeds = support::inputs(&g, dims, int_range);
    let d = support::max_difference(&g, &fused, &feeds);
    assert!(d <= tol, "rewritten graph differs by {d} (tolerance {tol})");
    format!(
        "{}\n// ----- {name}, canonicalize ----->\n// {}\n\n{out}",
        print(&parse(text).unwrap()),
        if changed { "rewritten" } else { "unchanged" }
    )
}

/// RotaryEmbedding on 4-D `[B, N, S, H]` with per-token positions (0..16), halves; on 3-D
/// `[B, S, N * H]` with a position offset, interleaved, rotating 4 of each head's 8.
#[test]
fn ms_rotary_embedding() {
    insta::assert_snapshot!(check(
        r#"graph @g(%x: f32[2, 3, seq, 8], %p: i64[2, seq], %y: f32[2, seq, 16], %o: i64[1]) -> (a: f32[2, 3, seq, 8], b: f32[2, seq, 16]) {
  %cos = constant {value = @weight("cos")} : f32[24, 4]
  %sin = constant {value = @weight("sin")} : f32[24, 4]
  %c2 = constant {value = @weight("c2")} : f32[24, 2]
  %s2 = constant {value = @weight("s2")} : f32[24, 2]
  %a = com.microsoft.RotaryEmbedding(%x, %p, %cos, %sin) : f32[2, 3, seq, 8]
  %b = com.microsoft.RotaryEmbedding(%y, %o, %c2, %s2) {interleaved = 1, num_heads = 2, rotary_embedding_dim = 4} : f32[2, seq, 16]
  return %a, %b
}
"#,
        rope_existing::find,
        "fuse-rope",
        &[("seq", 3)],
        16,
        1e-6
    ));
}

/// Near miss: a 3-D input whose hidden size is symbolic (its head size is not known
/// statically) stays.
#[test]
fn ms_rotary_embedding_unknown_head_size_stays() {
    insta::assert_snapshot!(check(
        r#"graph @g(%x: f32[1, 3, hid], %p: i64[1, 3]) -> (a: f32[1, 3, hid]) {
  %cos = constant {value = @weight("cos")} : f32[8, 2]
  %a = com.microsoft.RotaryEmbedding(%x, %p, %cos, %cos) {num_heads = 2} : f32[1, 3, hid]
  return %a
}
"#,
        rope_existing::find,
        "fuse-rope",
        &[("hid", 8)],
        4,
        0.0
    ));
}

/// SkipLayerNormalization with beta and bias, the sum output read; one without beta and
/// bias; near misses: the mean output read, a skip that only tiles the input.
#[test]
fn ms_skip_layer_norm() {
    insta::assert_snapshot!(check(
        r#"graph @g(%x: f32[2, seq, 8], %s: f32[1, seq, 8], %r: f32[4, 8], %rs: f32[2, 8]) -> (y: f32[2, seq, 8], sum: f32[2, seq, 8], z: f32[2, seq, 8], m: f32[2, seq, 1], w: f32[4, 8]) {
  %g = constant {value = @weight("g")} : f32[8]
  %b = constant {value = @weight("b")} : f32[8]
  %bias = constant {value = @weight("bias")} : f32[8]
  %y, %m0, %i0, %sum = com.microsoft.SkipLayerNormalization(%x, %s, %g, %b, %bias) {epsilon = 1e-5} : f32[2, seq, 8], f32[2, seq, 1], f32[2, seq, 1], f32[2, seq, 8]
  %z = com.microsoft.SkipLayerNormalization(%y, %x, %g) : f32[2, seq, 8]
  %z2, %m = com.microsoft.SkipLayerNormalization(%z, %x, %g, %b) : f32[2, seq, 8], f32[2, seq, 1]
  %w = com.microsoft.SkipLayerNormalization(%r, %rs, %g, %b) : f32[4, 8]
  return %y, %sum, %z, %m, %w
}
"#,
        skip_layer_norm::find,
        "fuse-layer-norm",
        &[("seq", 3)],
        4,
        1e-5
    ));
}
