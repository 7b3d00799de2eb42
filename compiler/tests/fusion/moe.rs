//! `fuse-moe`, spelled-out forms: transformers' `batched_mm` experts under torch dynamo
//! (gathered stacked weights, batched MatMuls, the weighted sum over the k slots) and the
//! unrolled per-expert loop of older exports (every expert on every token, weighted by its
//! column of the routing weights), with the routings of Mixtral, Qwen3-MoE, GPT-OSS,
//! DeepSeek-V3 (grouped sigmoid), DeepSeek-V4 (sqrt-softplus, hash) and shared experts;
//! and near misses that must stay unfused.

use crate::support::check;

/// The batched_mm experts of Mixtral / Qwen3-MoE / DeepSeek as dynamo writes them: `x`
/// `[seq, h]` repeated k times, the fused gate/up `[e, 2i, h]` and down `[e, h, i]` stacks
/// gathered per slot by the flattened `idx` `[seq, k]`, `silu(gate) * up`, each slot
/// weighted by `w` `[seq, k]` and summed per token into `%{p}out` `[seq, h]`; sizes
/// `[e, k, h, i]`.
fn batched_mm(p: &str, x: &str, w: &str, idx: &str, [e, k, h, i]: [usize; 4]) -> String {
    let s = if k == 1 {
        "seq".to_string()
    } else {
        format!("seq*{k}")
    };
    let i2 = 2 * i;
    format!(
        r#"  %{p}one = constant {{value = dense<i64[1]>[1]}} : i64[1]
  %{p}last = constant {{value = dense<i64[1]>[-1]}} : i64[1]
  %{p}xu = Unsqueeze(%{x}, %{p}one) : f32[seq, 1, {h}]
  %{p}rep = constant {{value = dense<i64[3]>[1, {k}, 1]}} : i64[3]
  %{p}xe = Expand(%{p}xu, %{p}rep) : f32[seq, {k}, {h}]
  %{p}flat = constant {{value = dense<i64[2]>[-1, {h}]}} : i64[2]
  %{p}xs = Reshape(%{p}xe, %{p}flat) : f32[{s}, {h}]
  %{p}idxf = Reshape(%{idx}, %{p}last) : i64[{s}]
  %{p}idxc = Unsqueeze(%{p}idxf, %{p}last) : i64[{s}, 1]
  %{p}w13 = constant {{value = @weight("{p}gate_up")}} : f32[{e}, {i2}, {h}]
  %{p}g13 = GatherND(%{p}w13, %{p}idxc) {{batch_dims = 0}} : f32[{s}, {i2}, {h}]
  %{p}xcol = Unsqueeze(%{p}xs, %{p}last) : f32[{s}, {h}, 1]
  %{p}gu3 = MatMul(%{p}g13, %{p}xcol) : f32[{s}, {i2}, 1]
  %{p}gu = Squeeze(%{p}gu3, %{p}last) : f32[{s}, {i2}]
  %{p}gate, %{p}up = Split(%{p}gu) {{axis = 1, num_outputs = 2}} : f32[{s}, {i}], f32[{s}, {i}]
  %{p}sg = Sigmoid(%{p}gate) : f32[{s}, {i}]
  %{p}silu = Mul(%{p}gate, %{p}sg) : f32[{s}, {i}]
  %{p}h = Mul(%{p}silu, %{p}up) : f32[{s}, {i}]
  %{p}w2 = constant {{value = @weight("{p}down")}} : f32[{e}, {h}, {i}]
  %{p}g2 = GatherND(%{p}w2, %{p}idxc) {{batch_dims = 0}} : f32[{s}, {h}, {i}]
  %{p}hcol = Unsqueeze(%{p}h, %{p}last) : f32[{s}, {i}, 1]
  %{p}y3 = MatMul(%{p}g2, %{p}hcol) : f32[{s}, {h}, 1]
  %{p}y = Squeeze(%{p}y3, %{p}last) : f32[{s}, {h}]
  %{p}wf = Reshape(%{w}, %{p}last) : f32[{s}]
  %{p}wc = Unsqueeze(%{p}wf, %{p}last) : f32[{s}, 1]
  %{p}yw = Mul(%{p}y, %{p}wc) : f32[{s}, {h}]
  %{p}nkh = constant {{value = dense<i64[3]>[-1, {k}, {h}]}} : i64[3]
  %{p}yk = Reshape(%{p}yw, %{p}nkh) : f32[seq, {k}, {h}]
  %{p}out = ReduceSum(%{p}yk, %{p}one) {{keepdims = 0}} : f32[seq, {h}]
"#
    )
}

/// Softmax over the experts, top-k, renormalised (Mixtral): `%w`, `%idx` `[seq, k]`.
fn softmax_topk_norm(x: &str, e: usize, k: usize, h: usize) -> String {
    format!(
        r#"  %wr = constant {{value = @weight("router")}} : f32[{e}, {h}]
  %logits = Gemm(%{x}, %wr) {{transB = 1}} : f32[seq, {e}]
  %probs = Softmax(%logits) {{axis = -1}} : f32[seq, {e}]
  %k = constant {{value = dense<i64[1]>[{k}]}} : i64[1]
  %top, %idx = TopK(%probs, %k) {{axis = -1, largest = 1, sorted = 1}} : f32[seq, {k}], i64[seq, {k}]
  %rlast = constant {{value = dense<i64[1]>[-1]}} : i64[1]
  %tsum = ReduceSum(%top, %rlast) {{keepdims = 1}} : f32[seq, 1]
  %w = Div(%top, %tsum) : f32[seq, {k}]
"#
    )
}

/// Mixtral: `[1, seq, H]` flattened to tokens, softmax top-k renormalised, batched_mm
/// experts with fused gate/up halves (`swiglu_fusion = 2`, weights used as they are), the
/// output viewed back as `[1, seq, H]`.
#[test]
fn mixtral_batched_mm() {
    let text = format!(
        r#"graph @g(%x: f32[1, seq, 12]) -> (y: f32[1, seq, 12]) {{
  %tok = constant {{value = dense<i64[2]>[-1, 12]}} : i64[2]
  %x2 = Reshape(%x, %tok) : f32[seq, 12]
{}{}  %back = constant {{value = dense<i64[3]>[1, -1, 12]}} : i64[3]
  %y = Reshape(%e_out, %back) : f32[1, seq, 12]
  return %y
}}
"#,
        softmax_topk_norm("x2", 6, 3, 12),
        batched_mm("e_", "x2", "w", "idx", [6, 3, 12, 8])
    );
    insta::assert_snapshot!(check(&text, &[("seq", 5)], 1e-5));
}

/// Qwen3-MoE without `norm_topk_prob` (the top-k softmax scores as they are), with other
/// sizes and transformers' other batched_mm layout: `x @ W[idx]` with `[E, in, out]` stacks
/// (re-laid to `[E, out, in]` constants), separate gate and up stacks (`w1`, `w3`),
/// `Gather` instead of `GatherND`, `Tile` for the repeat, and the routing weights applied
/// after the view as `[N, k, H]`.
#[test]
fn qwen3_moe_batched_mm_transposed_weights() {
    insta::assert_snapshot!(check(
        r#"graph @g(%x: f32[seq, 10]) -> (y: f32[seq, 10]) {
  %wr = constant {value = @weight("router")} : f32[10, 5]
  %logits = MatMul(%x, %wr) : f32[seq, 5]
  %probs = Softmax(%logits) {axis = 1} : f32[seq, 5]
  %k = constant {value = dense<i64[1]>[2]} : i64[1]
  %top, %idx = TopK(%probs, %k) {axis = 1, largest = 1, sorted = 1} : f32[seq, 2], i64[seq, 2]
  %one = constant {value = dense<i64[1]>[1]} : i64[1]
  %last = constant {value = dense<i64[1]>[-1]} : i64[1]
  %xu = Unsqueeze(%x, %one) : f32[seq, 1, 10]
  %rep = constant {value = dense<i64[3]>[1, 2, 1]} : i64[3]
  %xt = Tile(%xu, %rep) : f32[seq, 2, 10]
  %flat = constant {value = dense<i64[2]>[-1, 10]} : i64[2]
  %xs = Reshape(%xt, %flat) : f32[seq*2, 10]
  %idxf = Reshape(%idx, %last) : i64[seq*2]
  %xrow = Unsqueeze(%xs, %one) : f32[seq*2, 1, 10]
  %wgate = constant {value = @weight("gate")} : f32[5, 10, 6]
  %gg = Gather(%wgate, %idxf) {axis = 0} : f32[seq*2, 10, 6]
  %g3 = MatMul(%xrow, %gg) : f32[seq*2, 1, 6]
  %gate = Squeeze(%g3, %one) : f32[seq*2, 6]
  %wup = constant {value = @weight("up")} : f32[5, 10, 6]
  %gu = Gather(%wup, %idxf) {axis = 0} : f32[seq*2, 10, 6]
  %u3 = MatMul(%xrow, %gu) : f32[seq*2, 1, 6]
  %up = Squeeze(%u3, %one) : f32[seq*2, 6]
  %sg = Sigmoid(%gate) : f32[seq*2, 6]
  %silu = Mul(%sg, %gate) : f32[seq*2, 6]
  %h = Mul(%up, %silu) : f32[seq*2, 6]
  %hrow = Unsqueeze(%h, %one) : f32[seq*2, 1, 6]
  %wdown = constant {value = @weight("down")} : f32[5, 6, 10]
  %gd = Gather(%wdown, %idxf) {axis = 0} : f32[seq*2, 6, 10]
  %y3 = MatMul(%hrow, %gd) : f32[seq*2, 1, 10]
  %nkh = constant {value = dense<i64[3]>[-1, 2, 10]} : i64[3]
  %yk = Reshape(%y3, %nkh) : f32[seq, 2, 10]
  %two = constant {value = dense<i64[1]>[2]} : i64[1]
  %wk = Unsqueeze(%top, %two) : f32[seq, 2, 1]
  %yw = Mul(%wk, %yk) : f32[seq, 2, 10]
  %y = ReduceSum(%yw, %one) {keepdims = 0} : f32[seq, 10]
  return %y
}
"#,
        &[("seq", 7)],
        1e-5
    ));
}

/// The same experts as TorchScript writes them (`torch.onnx.export` tracing): `Tile` and
/// `Flatten` for the repeat, `Gather` by the flat indices, the gate/up halves taken with two
/// `Slice`s (`swiglu_fusion = 2`); 8 experts, k = 2.
#[test]
fn torchscript_batched_mm_slice_halves() {
    insta::assert_snapshot!(check(
        r#"graph @g(%x: f32[seq, 8]) -> (y: f32[seq, 8]) {
  %wr = constant {value = @weight("router")} : f32[8, 8]
  %logits = MatMul(%x, %wr) : f32[seq, 8]
  %probs = Softmax(%logits) {axis = -1} : f32[seq, 8]
  %k = constant {value = dense<i64[1]>[2]} : i64[1]
  %top, %idx = TopK(%probs, %k) {axis = -1, largest = 1, sorted = 1} : f32[seq, 2], i64[seq, 2]
  %last = constant {value = dense<i64[1]>[-1]} : i64[1]
  %tsum = ReduceSum(%top, %last) {keepdims = 1} : f32[seq, 1]
  %w = Div(%top, %tsum) : f32[seq, 2]
  %one = constant {value = dense<i64[1]>[1]} : i64[1]
  %xu = Unsqueeze(%x, %one) : f32[seq, 1, 8]
  %rep = constant {value = dense<i64[3]>[1, 2, 1]} : i64[3]
  %xt = Tile(%xu, %rep) : f32[seq, 2, 8]
  %xs = Flatten(%xt) {axis = 2} : f32[seq*2, 8]
  %wf = Reshape(%w, %last) : f32[seq*2]
  %idxf = Reshape(%idx, %last) : i64[seq*2]
  %w13 = constant {value = @weight("gate_up_proj")} : f32[8, 12, 8]
  %g13 = Gather(%w13, %idxf) {axis = 0} : f32[seq*2, 12, 8]
  %xcol = Unsqueeze(%xs, %last) : f32[seq*2, 8, 1]
  %gu3 = MatMul(%g13, %xcol) : f32[seq*2, 12, 1]
  %gu = Squeeze(%gu3, %last) : f32[seq*2, 12]
  %zero = constant {value = dense<i64[1]>[0]} : i64[1]
  %six = constant {value = dense<i64[1]>[6]} : i64[1]
  %twelve = constant {value = dense<i64[1]>[12]} : i64[1]
  %gate = Slice(%gu, %zero, %six, %last) : f32[seq*2, 6]
  %up = Slice(%gu, %six, %twelve, %last) : f32[seq*2, 6]
  %sg = Sigmoid(%gate) : f32[seq*2, 6]
  %silu = Mul(%gate, %sg) : f32[seq*2, 6]
  %h = Mul(%silu, %up) : f32[seq*2, 6]
  %wd = constant {value = @weight("down_proj")} : f32[8, 8, 6]
  %gd = Gather(%wd, %idxf) {axis = 0} : f32[seq*2, 8, 6]
  %hcol = Unsqueeze(%h, %last) : f32[seq*2, 6, 1]
  %y3 = MatMul(%gd, %hcol) : f32[seq*2, 8, 1]
  %yd = Squeeze(%y3, %last) : f32[seq*2, 8]
  %wc = Unsqueeze(%wf, %last) : f32[seq*2, 1]
  %yw = Mul(%yd, %wc) : f32[seq*2, 8]
  %nkh = dims {value = dims<[seq, 2, 8]>} : i64[3]
  %yk = Reshape(%yw, %nkh) : f32[seq, 2, 8]
  %y = ReduceSum(%yk, %one) {keepdims = 0} : f32[seq, 8]
  return %y
}
"#,
        &[("seq", 6)],
        1e-5
    ));
}

/// Top-1 routing on sigmoid scores (not renormalised): the repeat of the tokens is a no-op
/// that canonicalize removes, and the weights and indices `[seq, 1]` share their shape with
/// the per-slot views.
#[test]
fn top1_sigmoid_batched_mm() {
    let text = format!(
        r#"graph @g(%x: f32[seq, 8]) -> (y: f32[seq, 8]) {{
  %wr = constant {{value = @weight("router")}} : f32[8, 5]
  %logits = MatMul(%x, %wr) : f32[seq, 5]
  %s = Sigmoid(%logits) : f32[seq, 5]
  %k = constant {{value = dense<i64[1]>[1]}} : i64[1]
  %w, %idx = TopK(%s, %k) {{axis = -1, largest = 1, sorted = 1}} : f32[seq, 1], i64[seq, 1]
{}  return %e_out
}}
"#,
        batched_mm("e_", "x", "w", "idx", [5, 1, 8, 4])
    );
    insta::assert_snapshot!(check(&text, &[("seq", 5)], 1e-5));
}

/// GPT-OSS: top-k of the (biased) logits then softmax over the k (normalise with softmax),
/// `[E, H, 2I]` gate/up stack used as `x @ W` with gate and up interleaved
/// (`swiglu_fusion = 1`), gathered biases, the clamped swiglu with alpha and `up + 1`
/// (a small limit so that the clamps act on these weights).
#[test]
fn gpt_oss_topk_softmax_interleaved_clamped_swiglu() {
    insta::assert_snapshot!(check(
        r#"graph @g(%x: f32[seq, 8]) -> (y: f32[seq, 8]) {
  %wr = constant {value = @weight("router")} : f32[4, 8]
  %br = constant {value = @weight("router_bias")} : f32[4]
  %logits = Gemm(%x, %wr, %br) {transB = 1} : f32[seq, 4]
  %k = constant {value = dense<i64[1]>[2]} : i64[1]
  %top, %idx = TopK(%logits, %k) {axis = -1, largest = 1, sorted = 1} : f32[seq, 2], i64[seq, 2]
  %w = Softmax(%top) {axis = 1} : f32[seq, 2]
  %one = constant {value = dense<i64[1]>[1]} : i64[1]
  %last = constant {value = dense<i64[1]>[-1]} : i64[1]
  %xu = Unsqueeze(%x, %one) : f32[seq, 1, 8]
  %rep = constant {value = dense<i64[3]>[1, 2, 1]} : i64[3]
  %xe = Expand(%xu, %rep) : f32[seq, 2, 8]
  %flat = constant {value = dense<i64[2]>[-1, 8]} : i64[2]
  %xs = Reshape(%xe, %flat) : f32[seq*2, 8]
  %idxf = Reshape(%idx, %last) : i64[seq*2]
  %idxc = Unsqueeze(%idxf, %last) : i64[seq*2, 1]
  %xrow = Unsqueeze(%xs, %one) : f32[seq*2, 1, 8]
  %w13 = constant {value = @weight("gate_up")} : f32[4, 8, 12]
  %g13 = GatherND(%w13, %idxc) {batch_dims = 0} : f32[seq*2, 8, 12]
  %p3 = MatMul(%xrow, %g13) : f32[seq*2, 1, 12]
  %p = Squeeze(%p3, %one) : f32[seq*2, 12]
  %b13 = constant {value = @weight("gate_up_bias")} : f32[4, 12]
  %gb = GatherND(%b13, %idxc) {batch_dims = 0} : f32[seq*2, 12]
  %pb = Add(%p, %gb) : f32[seq*2, 12]
  %zero = constant {value = dense<i64[1]>[0]} : i64[1]
  %big = constant {value = dense<i64[1]>[9223372036854775807]} : i64[1]
  %two = constant {value = dense<i64[1]>[2]} : i64[1]
  %gate = Slice(%pb, %zero, %big, %last, %two) : f32[seq*2, 6]
  %up = Slice(%pb, %one, %big, %last, %two) : f32[seq*2, 6]
  %lim = constant {value = dense<f32[]>[0.5]} : f32[]
  %nlim = constant {value = dense<f32[]>[-0.5]} : f32[]
  %gc = Clip(%gate, _, %lim) : f32[seq*2, 6]
  %uc = Clip(%up, %nlim, %lim) : f32[seq*2, 6]
  %alpha = constant {value = dense<f32[]>[1.702]} : f32[]
  %ga = Mul(%gc, %alpha) : f32[seq*2, 6]
  %sg = Sigmoid(%ga) : f32[seq*2, 6]
  %glu = Mul(%gc, %sg) : f32[seq*2, 6]
  %onef = constant {value = dense<f32[]>[1.0]} : f32[]
  %u1 = Add(%uc, %onef) : f32[seq*2, 6]
  %h = Mul(%u1, %glu) : f32[seq*2, 6]
  %hrow = Unsqueeze(%h, %one) : f32[seq*2, 1, 6]
  %wd = constant {value = @weight("down")} : f32[4, 6, 8]
  %gd = GatherND(%wd, %idxc) {batch_dims = 0} : f32[seq*2, 6, 8]
  %y3 = MatMul(%hrow, %gd) : f32[seq*2, 1, 8]
  %yd = Squeeze(%y3, %one) : f32[seq*2, 8]
  %bd = constant {value = @weight("down_bias")} : f32[4, 8]
  %gbd = GatherND(%bd, %idxc) {batch_dims = 0} : f32[seq*2, 8]
  %yb = Add(%yd, %gbd) : f32[seq*2, 8]
  %wf = Reshape(%w, %last) : f32[seq*2]
  %wc = Unsqueeze(%wf, %last) : f32[seq*2, 1]
  %yw = Mul(%wc, %yb) : f32[seq*2, 8]
  %nkh = constant {value = dense<i64[3]>[-1, 2, 8]} : i64[3]
  %yk = Reshape(%yw, %nkh) : f32[seq, 2, 8]
  %y = ReduceSum(%yk, %one) {keepdims = 0} : f32[seq, 8]
  return %y
}
"#,
        &[("seq", 6)],
        1e-5
    ));
}

/// DeepSeek-V3's grouped sigmoid routing (`e_score_correction_bias` for choosing only;
/// group score = sum of the top 2; `topk_group` groups kept, the rest filled with -inf;
/// weights gathered from the unbiased scores, renormalised with a 1e-20 eps, scaled) with
/// 8 experts in 4 groups, k = 3, and a shared expert (`x @ W` matrices, re-laid) added to
/// the routed output viewed back as `[1, seq, H]`.
#[test]
fn deepseek_v3_grouped_sigmoid_with_shared_expert() {
    let text = format!(
        r#"graph @g(%x: f32[1, seq, 8]) -> (y: f32[1, seq, 8]) {{
  %tok = constant {{value = dense<i64[2]>[-1, 8]}} : i64[2]
  %x2 = Reshape(%x, %tok) : f32[seq, 8]
  %wr = constant {{value = @weight("router")}} : f32[8, 8]
  %logits = Gemm(%x2, %wr) {{transB = 1}} : f32[seq, 8]
  %s = Sigmoid(%logits) : f32[seq, 8]
  %bias = constant {{value = @weight("e_score_correction_bias")}} : f32[8]
  %sel = Add(%s, %bias) : f32[seq, 8]
  %grp = constant {{value = dense<i64[3]>[-1, 4, 2]}} : i64[3]
  %sg = Reshape(%sel, %grp) : f32[seq, 4, 2]
  %two = constant {{value = dense<i64[1]>[2]}} : i64[1]
  %t2, %t2i = TopK(%sg, %two) {{axis = -1, largest = 1, sorted = 1}} : f32[seq, 4, 2], i64[seq, 4, 2]
  %last = constant {{value = dense<i64[1]>[-1]}} : i64[1]
  %gs = ReduceSum(%t2, %last) {{keepdims = 0}} : f32[seq, 4]
  %gk, %gi = TopK(%gs, %two) {{axis = -1, largest = 1, sorted = 0}} : f32[seq, 2], i64[seq, 2]
  %zf = constant {{value = dense<f32[]>[0.0]}} : f32[]
  %gshape = dims {{value = dims<[seq, 4]>}} : i64[2]
  %zeros = Expand(%zf, %gshape) : f32[seq, 4]
  %oshape = dims {{value = dims<[seq, 2]>}} : i64[2]
  %ones = ConstantOfShape(%oshape) {{value = dense<f32[1]>[1.0]}} : f32[seq, 2]
  %gmask = ScatterElements(%zeros, %gi, %ones) {{axis = 1}} : f32[seq, 4]
  %gmu = Unsqueeze(%gmask, %last) : f32[seq, 4, 1]
  %exp = constant {{value = dense<i64[3]>[1, 4, 2]}} : i64[3]
  %gme = Expand(%gmu, %exp) : f32[seq, 4, 2]
  %emask = Reshape(%gme, %tok) : f32[seq, 8]
  %bmask = Cast(%emask) {{to = bool}} : bool[seq, 8]
  %nmask = Not(%bmask) : bool[seq, 8]
  %ninf = constant {{value = dense<f32[]>[-inf]}} : f32[]
  %masked = Where(%nmask, %ninf, %sel) : f32[seq, 8]
  %k = constant {{value = dense<i64[1]>[3]}} : i64[1]
  %tv, %idx = TopK(%masked, %k) {{axis = -1, largest = 1, sorted = 0}} : f32[seq, 3], i64[seq, 3]
  %wv = GatherElements(%s, %idx) {{axis = 1}} : f32[seq, 3]
  %den = ReduceSum(%wv, %last) {{keepdims = 1}} : f32[seq, 1]
  %eps = constant {{value = dense<f32[]>[1e-20]}} : f32[]
  %dene = Add(%den, %eps) : f32[seq, 1]
  %wn = Div(%wv, %dene) : f32[seq, 3]
  %scale = constant {{value = dense<f32[]>[2.5]}} : f32[]
  %w = Mul(%wn, %scale) : f32[seq, 3]
{}  %back = constant {{value = dense<i64[3]>[1, -1, 8]}} : i64[3]
  %r3 = Reshape(%e_out, %back) : f32[1, seq, 8]
  %sw1 = constant {{value = @weight("shared.gate")}} : f32[8, 6]
  %sw3 = constant {{value = @weight("shared.up")}} : f32[8, 6]
  %sw2 = constant {{value = @weight("shared.down")}} : f32[6, 8]
  %sgp = MatMul(%x, %sw1) : f32[1, seq, 6]
  %ssig = Sigmoid(%sgp) : f32[1, seq, 6]
  %ssilu = Mul(%sgp, %ssig) : f32[1, seq, 6]
  %sup = MatMul(%x, %sw3) : f32[1, seq, 6]
  %sh = Mul(%ssilu, %sup) : f32[1, seq, 6]
  %sy = MatMul(%sh, %sw2) : f32[1, seq, 8]
  %y = Add(%r3, %sy) : f32[1, seq, 8]
  return %y
}}
"#,
        batched_mm("e_", "x2", "w", "idx", [8, 3, 8, 4])
    );
    insta::assert_snapshot!(check(&text, &[("seq", 6)], 1e-5));
}

/// DeepSeek-V4: two layers hash-routed by the token ids of a graph input through one
/// `tid2eid` lookup that both read (the second layer's region shares it). The first layer:
/// sqrt(softplus) scores with torch's softplus threshold spelled out, renormalised and
/// scaled, separate gate and up stacks (`w3`), the clamped swiglu (limit only), and a
/// shared expert with the same clamps; the second: plain `Sqrt(Softplus)`, no shared expert.
#[test]
fn deepseek_v4_hash_routed_sqrt_softplus() {
    let text = format!(
        r#"graph @g(%x: f32[seq, 8], %ids: i64[1, seq]) -> (y: f32[seq, 8]) {{
  %wr = constant {{value = @weight("router_a")}} : f32[6, 8]
  %la = Gemm(%x, %wr) {{transB = 1}} : f32[seq, 6]
  %spa = Softplus(%la) : f32[seq, 6]
  %thr = constant {{value = dense<f32[]>[20.0]}} : f32[]
  %gta = Greater(%la, %thr) : bool[seq, 6]
  %wha = Where(%gta, %la, %spa) : f32[seq, 6]
  %sa = Sqrt(%wha) : f32[seq, 6]
  %last = constant {{value = dense<i64[1]>[-1]}} : i64[1]
  %idsf = Reshape(%ids, %last) : i64[seq]
  %idsc = Unsqueeze(%idsf, %last) : i64[seq, 1]
  %table = constant {{value = @weight("tid2eid")}} : i64[4, 2]
  %hidx = GatherND(%table, %idsc) {{batch_dims = 0}} : i64[seq, 2]
  %wva = GatherElements(%sa, %hidx) {{axis = 1}} : f32[seq, 2]
  %dena = ReduceSum(%wva, %last) {{keepdims = 1}} : f32[seq, 1]
  %wna = Div(%wva, %dena) : f32[seq, 2]
  %scale = constant {{value = dense<f32[]>[1.5]}} : f32[]
  %wa = Mul(%wna, %scale) : f32[seq, 2]
  %one = constant {{value = dense<i64[1]>[1]}} : i64[1]
  %xu = Unsqueeze(%x, %one) : f32[seq, 1, 8]
  %rep = constant {{value = dense<i64[3]>[1, 2, 1]}} : i64[3]
  %xe = Expand(%xu, %rep) : f32[seq, 2, 8]
  %flat = constant {{value = dense<i64[2]>[-1, 8]}} : i64[2]
  %xs = Reshape(%xe, %flat) : f32[seq*2, 8]
  %idxf = Reshape(%hidx, %last) : i64[seq*2]
  %idxc = Unsqueeze(%idxf, %last) : i64[seq*2, 1]
  %xcol = Unsqueeze(%xs, %last) : f32[seq*2, 8, 1]
  %wg = constant {{value = @weight("a.gate")}} : f32[6, 4, 8]
  %gg = GatherND(%wg, %idxc) {{batch_dims = 0}} : f32[seq*2, 4, 8]
  %g3 = MatMul(%gg, %xcol) : f32[seq*2, 4, 1]
  %gate = Squeeze(%g3, %last) : f32[seq*2, 4]
  %wu = constant {{value = @weight("a.up")}} : f32[6, 4, 8]
  %gu = GatherND(%wu, %idxc) {{batch_dims = 0}} : f32[seq*2, 4, 8]
  %u3 = MatMul(%gu, %xcol) : f32[seq*2, 4, 1]
  %up = Squeeze(%u3, %last) : f32[seq*2, 4]
  %lim = constant {{value = dense<f32[]>[0.3]}} : f32[]
  %nlim = constant {{value = dense<f32[]>[-0.3]}} : f32[]
  %gc = Clip(%gate, _, %lim) : f32[seq*2, 4]
  %uc = Clip(%up, %nlim, %lim) : f32[seq*2, 4]
  %sgc = Sigmoid(%gc) : f32[seq*2, 4]
  %silu = Mul(%gc, %sgc) : f32[seq*2, 4]
  %h = Mul(%silu, %uc) : f32[seq*2, 4]
  %wd = constant {{value = @weight("a.down")}} : f32[6, 8, 4]
  %gd = GatherND(%wd, %idxc) {{batch_dims = 0}} : f32[seq*2, 8, 4]
  %hcol = Unsqueeze(%h, %last) : f32[seq*2, 4, 1]
  %y3 = MatMul(%gd, %hcol) : f32[seq*2, 8, 1]
  %yd = Squeeze(%y3, %last) : f32[seq*2, 8]
  %wf = Reshape(%wa, %last) : f32[seq*2]
  %wc = Unsqueeze(%wf, %last) : f32[seq*2, 1]
  %yw = Mul(%yd, %wc) : f32[seq*2, 8]
  %nkh = constant {{value = dense<i64[3]>[-1, 2, 8]}} : i64[3]
  %yk = Reshape(%yw, %nkh) : f32[seq, 2, 8]
  %ra = ReduceSum(%yk, %one) {{keepdims = 0}} : f32[seq, 8]
  %s1 = constant {{value = @weight("a.shared.gate")}} : f32[8, 5]
  %s3 = constant {{value = @weight("a.shared.up")}} : f32[8, 5]
  %s2 = constant {{value = @weight("a.shared.down")}} : f32[5, 8]
  %sg = MatMul(%x, %s1) : f32[seq, 5]
  %sgl = Clip(%sg, _, %lim) : f32[seq, 5]
  %ssig = Sigmoid(%sgl) : f32[seq, 5]
  %ssilu = Mul(%ssig, %sgl) : f32[seq, 5]
  %su = MatMul(%x, %s3) : f32[seq, 5]
  %suc = Clip(%su, %nlim, %lim) : f32[seq, 5]
  %sh = Mul(%suc, %ssilu) : f32[seq, 5]
  %sy = MatMul(%sh, %s2) : f32[seq, 8]
  %ya = Add(%sy, %ra) : f32[seq, 8]
  %xb = Add(%x, %ya) : f32[seq, 8]
  %wrb = constant {{value = @weight("router_b")}} : f32[6, 8]
  %lb = Gemm(%xb, %wrb) {{transB = 1}} : f32[seq, 6]
  %spb = Softplus(%lb) : f32[seq, 6]
  %sb = Sqrt(%spb) : f32[seq, 6]
  %wvb = GatherElements(%sb, %hidx) {{axis = 1}} : f32[seq, 2]
  %denb = ReduceSum(%wvb, %last) {{keepdims = 1}} : f32[seq, 1]
  %wb = Div(%wvb, %denb) : f32[seq, 2]
{}  %y = Add(%xb, %b_out) : f32[seq, 8]
  return %y
}}
"#,
        batched_mm("b_", "xb", "wb", "hidx", [6, 2, 8, 3])
    );
    insta::assert_snapshot!(check(&text, &[("seq", 6)], 1e-5));
}

/// The per-expert loop of older exports, 3 experts with k = 2 (Mixtral's routing): every
/// expert's `x @ W` MLP on all tokens (matrices transposed and stacked into the op's
/// `[E, out, in]` at compile time), weighted by its `Slice` of the routing weights scattered
/// into `[N, E]`, summed by Adds into zeros; Qwen2-MoE's sigmoid-gated shared expert added
/// last.
#[test]
fn expert_loop_scattered_weights_gated_shared_expert() {
    let mut experts = String::new();
    for e in 0..3 {
        experts += &format!(
            r#"  %e{e}_wg = constant {{value = @weight("experts.{e}.gate")}} : f32[6, 4]
  %e{e}_wu = constant {{value = @weight("experts.{e}.up")}} : f32[6, 4]
  %e{e}_wd = constant {{value = @weight("experts.{e}.down")}} : f32[4, 6]
  %e{e}_g = MatMul(%x, %e{e}_wg) : f32[seq, 4]
  %e{e}_s = Sigmoid(%e{e}_g) : f32[seq, 4]
  %e{e}_a = Mul(%e{e}_g, %e{e}_s) : f32[seq, 4]
  %e{e}_u = MatMul(%x, %e{e}_wu) : f32[seq, 4]
  %e{e}_h = Mul(%e{e}_a, %e{e}_u) : f32[seq, 4]
  %e{e}_y = MatMul(%e{e}_h, %e{e}_wd) : f32[seq, 6]
  %e{e}_st = constant {{value = dense<i64[1]>[{e}]}} : i64[1]
  %e{e}_en = constant {{value = dense<i64[1]>[{}]}} : i64[1]
  %e{e}_c = Slice(%d, %e{e}_st, %e{e}_en, %ax) : f32[seq, 1]
  %e{e}_t = Mul(%e{e}_y, %e{e}_c) : f32[seq, 6]
"#,
            e + 1
        );
    }
    let text = format!(
        r#"graph @g(%x: f32[seq, 6]) -> (y: f32[seq, 6]) {{
  %wr = constant {{value = @weight("router")}} : f32[6, 3]
  %logits = MatMul(%x, %wr) : f32[seq, 3]
  %probs = Softmax(%logits) {{axis = -1}} : f32[seq, 3]
  %k = constant {{value = dense<i64[1]>[2]}} : i64[1]
  %top, %idx = TopK(%probs, %k) {{axis = -1, largest = 1, sorted = 1}} : f32[seq, 2], i64[seq, 2]
  %last = constant {{value = dense<i64[1]>[-1]}} : i64[1]
  %tsum = ReduceSum(%top, %last) {{keepdims = 1}} : f32[seq, 1]
  %w = Div(%top, %tsum) : f32[seq, 2]
  %dshape = dims {{value = dims<[seq, 3]>}} : i64[2]
  %zeros = ConstantOfShape(%dshape) {{value = dense<f32[1]>[0.0]}} : f32[seq, 3]
  %d = ScatterElements(%zeros, %idx, %w) {{axis = 1}} : f32[seq, 3]
  %ax = constant {{value = dense<i64[1]>[1]}} : i64[1]
{experts}  %yshape = dims {{value = dims<[seq, 6]>}} : i64[2]
  %acc = ConstantOfShape(%yshape) {{value = dense<f32[1]>[0.0]}} : f32[seq, 6]
  %s0 = Add(%acc, %e0_t) : f32[seq, 6]
  %s01 = Add(%s0, %e1_t) : f32[seq, 6]
  %routed = Add(%s01, %e2_t) : f32[seq, 6]
  %sgw = constant {{value = @weight("shared_expert_gate")}} : f32[6, 1]
  %sgl = MatMul(%x, %sgw) : f32[seq, 1]
  %sgs = Sigmoid(%sgl) : f32[seq, 1]
  %s1 = constant {{value = @weight("shared.gate")}} : f32[6, 5]
  %s3 = constant {{value = @weight("shared.up")}} : f32[6, 5]
  %s2 = constant {{value = @weight("shared.down")}} : f32[5, 6]
  %sg = MatMul(%x, %s1) : f32[seq, 5]
  %ss = Sigmoid(%sg) : f32[seq, 5]
  %sa = Mul(%sg, %ss) : f32[seq, 5]
  %su = MatMul(%x, %s3) : f32[seq, 5]
  %sh = Mul(%sa, %su) : f32[seq, 5]
  %sm = MatMul(%sh, %s2) : f32[seq, 6]
  %shared = Mul(%sgs, %sm) : f32[seq, 6]
  %y = Add(%routed, %shared) : f32[seq, 6]
  return %y
}}
"#
    );
    insta::assert_snapshot!(check(&text, &[("seq", 5)], 1e-5));
}

/// The per-expert loop with 4 experts, k = 2, sigmoid scores not renormalised, the routing
/// weights made dense with `OneHot` and each expert's column taken with `Gather`; ungated
/// GELU experts (erf spelling) as `Gemm`s with `[out, in]` matrices and biases; the sum a
/// balanced Add tree.
#[test]
fn expert_loop_one_hot_gelu_experts_with_biases() {
    let mut experts = String::new();
    for e in 0..4 {
        experts += &format!(
            r#"  %e{e}_w1 = constant {{value = @weight("experts.{e}.fc1")}} : f32[8, 6]
  %e{e}_b1 = constant {{value = @weight("experts.{e}.fc1.bias")}} : f32[8]
  %e{e}_w2 = constant {{value = @weight("experts.{e}.fc2")}} : f32[6, 8]
  %e{e}_b2 = constant {{value = @weight("experts.{e}.fc2.bias")}} : f32[6]
  %e{e}_f = Gemm(%x, %e{e}_w1, %e{e}_b1) {{transB = 1}} : f32[seq, 8]
  %e{e}_hf = Mul(%e{e}_f, %half) : f32[seq, 8]
  %e{e}_fd = Div(%e{e}_f, %sqrt2) : f32[seq, 8]
  %e{e}_er = Erf(%e{e}_fd) : f32[seq, 8]
  %e{e}_er1 = Add(%e{e}_er, %onef) : f32[seq, 8]
  %e{e}_h = Mul(%e{e}_hf, %e{e}_er1) : f32[seq, 8]
  %e{e}_y = Gemm(%e{e}_h, %e{e}_w2, %e{e}_b2) {{transB = 1}} : f32[seq, 6]
  %e{e}_i = constant {{value = dense<i64[]>[{e}]}} : i64[]
  %e{e}_c1 = Gather(%d, %e{e}_i) {{axis = 1}} : f32[seq]
  %e{e}_c = Unsqueeze(%e{e}_c1, %last) : f32[seq, 1]
  %e{e}_t = Mul(%e{e}_c, %e{e}_y) : f32[seq, 6]
"#
        );
    }
    let text = format!(
        r#"graph @g(%x: f32[seq, 6]) -> (y: f32[seq, 6]) {{
  %wr = constant {{value = @weight("router")}} : f32[4, 6]
  %logits = Gemm(%x, %wr) {{transB = 1}} : f32[seq, 4]
  %s = Sigmoid(%logits) : f32[seq, 4]
  %k = constant {{value = dense<i64[1]>[2]}} : i64[1]
  %top, %idx = TopK(%s, %k) {{axis = -1, largest = 1, sorted = 1}} : f32[seq, 2], i64[seq, 2]
  %depth = constant {{value = dense<i64[]>[4]}} : i64[]
  %vals = constant {{value = dense<f32[2]>[0.0, 1.0]}} : f32[2]
  %oh = OneHot(%idx, %depth, %vals) {{axis = -1}} : f32[seq, 2, 4]
  %last = constant {{value = dense<i64[1]>[-1]}} : i64[1]
  %wu = Unsqueeze(%top, %last) : f32[seq, 2, 1]
  %ohw = Mul(%oh, %wu) : f32[seq, 2, 4]
  %one = constant {{value = dense<i64[1]>[1]}} : i64[1]
  %d = ReduceSum(%ohw, %one) {{keepdims = 0}} : f32[seq, 4]
  %half = constant {{value = dense<f32[]>[0.5]}} : f32[]
  %sqrt2 = constant {{value = dense<f32[]>[1.4142135]}} : f32[]
  %onef = constant {{value = dense<f32[]>[1.0]}} : f32[]
{experts}  %s01 = Add(%e0_t, %e1_t) : f32[seq, 6]
  %s23 = Add(%e2_t, %e3_t) : f32[seq, 6]
  %y = Add(%s01, %s23) : f32[seq, 6]
  return %y
}}
"#
    );
    insta::assert_snapshot!(check(&text, &[("seq", 5)], 1e-5));
}

/// Routings the op does not have stay unfused (and correct): top-k of the raw logits used as
/// weights (no softmax), weights renormalised over the tokens instead of the k, a softmax
/// over the tokens, tanh scores.
#[test]
fn near_miss_routings_stay() {
    let router = |p: &str, scores: &str, weights: &str| {
        format!(
            r#"  %{p}wr = constant {{value = @weight("{p}router")}} : f32[3, 4]
  %{p}l = Gemm(%x, %{p}wr) {{transB = 1}} : f32[seq, 3]
{scores}  %{p}top, %{p}idx = TopK(%{p}s, %k) {{axis = -1, largest = 1, sorted = 1}} : f32[seq, 2], i64[seq, 2]
{weights}"#
        )
    };
    let layers = [
        router(
            "a_",
            "  %a_s = Identity(%a_l) : f32[seq, 3]\n",
            "  %a_w = Identity(%a_top) : f32[seq, 2]\n",
        ),
        router(
            "b_",
            "  %b_s = Softmax(%b_l) {axis = -1} : f32[seq, 3]\n",
            "  %b_sum = ReduceSum(%b_top, %zero) {keepdims = 1} : f32[1, 2]\n  %b_w = Div(%b_top, %b_sum) : f32[seq, 2]\n",
        ),
        router(
            "c_",
            "  %c_s = Softmax(%c_l) {axis = 0} : f32[seq, 3]\n",
            "  %c_w = Identity(%c_top) : f32[seq, 2]\n",
        ),
        router(
            "d_",
            "  %d_s = Tanh(%d_l) : f32[seq, 3]\n",
            "  %d_w = Identity(%d_top) : f32[seq, 2]\n",
        ),
    ];
    let mut body = String::new();
    for (l, p) in layers.iter().zip(["a_", "b_", "c_", "d_"]) {
        body += l;
        body += &batched_mm(
            &format!("{p}e_"),
            "x",
            &format!("{p}w"),
            &format!("{p}idx"),
            [3, 2, 4, 2],
        );
    }
    let text = format!(
        r#"graph @g(%x: f32[seq, 4]) -> (a: f32[seq, 4], b: f32[seq, 4], c: f32[seq, 4], d: f32[seq, 4]) {{
  %k = constant {{value = dense<i64[1]>[2]}} : i64[1]
  %zero = constant {{value = dense<i64[1]>[0]}} : i64[1]
{body}  return %a_e_out, %b_e_out, %c_e_out, %d_e_out
}}
"#
    );
    insta::assert_snapshot!(check(&text, &[("seq", 4)], 1e-6));
}

/// Group-limited routing whose masked experts get 0 instead of -inf (with a bias, a masked
/// expert could then still be chosen over an allowed one with a negative score) stays
/// unfused; a shared expert whose activation differs from the routed experts' (GELU, not
/// SiLU) is left outside while the routed experts fuse.
#[test]
fn near_miss_group_fill_and_shared_activation() {
    let text = format!(
        r#"graph @g(%x: f32[seq, 4]) -> (a: f32[seq, 4], b: f32[seq, 4]) {{
  %wr = constant {{value = @weight("router")}} : f32[4, 4]
  %l = Gemm(%x, %wr) {{transB = 1}} : f32[seq, 4]
  %s = Sigmoid(%l) : f32[seq, 4]
  %bias = constant {{value = @weight("bias")}} : f32[4]
  %sel = Add(%s, %bias) : f32[seq, 4]
  %grp = constant {{value = dense<i64[3]>[-1, 2, 2]}} : i64[3]
  %sg = Reshape(%sel, %grp) : f32[seq, 2, 2]
  %two = constant {{value = dense<i64[1]>[2]}} : i64[1]
  %t2, %t2i = TopK(%sg, %two) {{axis = -1, largest = 1, sorted = 1}} : f32[seq, 2, 2], i64[seq, 2, 2]
  %last = constant {{value = dense<i64[1]>[-1]}} : i64[1]
  %gs = ReduceSum(%t2, %last) {{keepdims = 0}} : f32[seq, 2]
  %kg = constant {{value = dense<i64[1]>[1]}} : i64[1]
  %gk, %gi = TopK(%gs, %kg) {{axis = -1, largest = 1, sorted = 0}} : f32[seq, 1], i64[seq, 1]
  %zf = constant {{value = dense<f32[]>[0.0]}} : f32[]
  %gshape = dims {{value = dims<[seq, 2]>}} : i64[2]
  %zeros = Expand(%zf, %gshape) : f32[seq, 2]
  %oshape = dims {{value = dims<[seq, 1]>}} : i64[2]
  %ones = ConstantOfShape(%oshape) {{value = dense<f32[1]>[1.0]}} : f32[seq, 1]
  %gmask = ScatterElements(%zeros, %gi, %ones) {{axis = 1}} : f32[seq, 2]
  %gmu = Unsqueeze(%gmask, %last) : f32[seq, 2, 1]
  %exp = constant {{value = dense<i64[3]>[1, 2, 2]}} : i64[3]
  %gme = Expand(%gmu, %exp) : f32[seq, 2, 2]
  %tok = constant {{value = dense<i64[2]>[-1, 4]}} : i64[2]
  %emask = Reshape(%gme, %tok) : f32[seq, 4]
  %bmask = Cast(%emask) {{to = bool}} : bool[seq, 4]
  %nmask = Not(%bmask) : bool[seq, 4]
  %masked = Where(%nmask, %zf, %sel) : f32[seq, 4]
  %top, %idx = TopK(%masked, %two) {{axis = -1, largest = 1, sorted = 0}} : f32[seq, 2], i64[seq, 2]
  %w = GatherElements(%s, %idx) {{axis = 1}} : f32[seq, 2]
{}  %rb = constant {{value = @weight("b_router")}} : f32[4, 4]
  %lb = Gemm(%x, %rb) {{transB = 1}} : f32[seq, 4]
  %sb = Softmax(%lb) {{axis = -1}} : f32[seq, 4]
  %topb, %idxb = TopK(%sb, %two) {{axis = -1, largest = 1, sorted = 1}} : f32[seq, 2], i64[seq, 2]
{}  %s1 = constant {{value = @weight("shared.fc1")}} : f32[4, 3]
  %s2 = constant {{value = @weight("shared.fc2")}} : f32[3, 4]
  %sf = MatMul(%x, %s1) : f32[seq, 3]
  %sgl = Gelu(%sf) : f32[seq, 3]
  %sy = MatMul(%sgl, %s2) : f32[seq, 4]
  %b = Add(%b_out, %sy) : f32[seq, 4]
  return %a_out, %b
}}
"#,
        batched_mm("a_", "x", "w", "idx", [4, 2, 4, 2]),
        batched_mm("b_", "x", "topb", "idxb", [4, 2, 4, 2])
    );
    insta::assert_snapshot!(check(&text, &[("seq", 5)], 1e-5));
}
