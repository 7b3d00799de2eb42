//! `fuse-rope`.

use crate::support::{check, check_with, PIPELINE};

/// HF's LLaMA: cos/sin = Cos/Sin(Concat(freqs, freqs)) unsqueezed over heads, q with 3 heads
/// and k with 1 as the exporter writes them (`x * cos + rotate_half(x) * sin`), and a second
/// spelling (`sin * rot + cos * x`, the negation as `* -1`).
#[test]
fn hf_rotate_half() {
    insta::assert_snapshot!(check(
        r#"graph @g(%q: f32[2, 3, seq, 16], %k: f32[2, 1, seq, 16], %f: f32[2, seq, 8]) -> (a: f32[2, 3, seq, 16], b: f32[2, 1, seq, 16]) {
  %one = constant {value = dense<i64[1]>[1]} : i64[1]
  %zero = constant {value = dense<i64[1]>[0]} : i64[1]
  %eight = constant {value = dense<i64[1]>[8]} : i64[1]
  %end = constant {value = dense<i64[1]>[9223372036854775807]} : i64[1]
  %last = constant {value = dense<i64[1]>[-1]} : i64[1]
  %minus = constant {value = dense<f32[]>[-1.0]} : f32[]
  %0 = Concat(%f, %f) {axis = -1} : f32[2, seq, 16]
  %1 = Cos(%0) : f32[2, seq, 16]
  %2 = Sin(%0) : f32[2, seq, 16]
  %c = Unsqueeze(%1, %one) : f32[2, 1, seq, 16]
  %s = Unsqueeze(%2, %one) : f32[2, 1, seq, 16]
  %3 = Mul(%q, %c) : f32[2, 3, seq, 16]
  %4 = Slice(%q, %zero, %eight, %last, %one) : f32[2, 3, seq, 8]
  %5 = Slice(%q, %eight, %end, %last, %one) : f32[2, 3, seq, 8]
  %6 = Neg(%5) : f32[2, 3, seq, 8]
  %7 = Concat(%6, %4) {axis = -1} : f32[2, 3, seq, 16]
  %8 = Mul(%7, %s) : f32[2, 3, seq, 16]
  %9 = Add(%3, %8) : f32[2, 3, seq, 16]
  %10 = Slice(%k, %eight, %end, %last, %one) : f32[2, 1, seq, 8]
  %11 = Mul(%10, %minus) : f32[2, 1, seq, 8]
  %12 = Slice(%k, %zero, %eight, %last, %one) : f32[2, 1, seq, 8]
  %13 = Concat(%11, %12) {axis = 3} : f32[2, 1, seq, 16]
  %14 = Mul(%s, %13) : f32[2, 1, seq, 16]
  %15 = Mul(%c, %k) : f32[2, 1, seq, 16]
  %16 = Add(%14, %15) : f32[2, 1, seq, 16]
  return %9, %16
}
"#,
        &[("seq", 5)],
        1e-5
    ));
}

/// GPT-J's interleaved rope on `[batch, seq, heads, head_dim]`: sin/cos gathered from a
/// cache by position ids and repeated per pair (Unsqueeze, Expand, Reshape),
/// `rotate_every_two` as a stack of (-odd, even).
#[test]
fn gptj_interleaved_gathered_by_position() {
    insta::assert_snapshot!(check_with(
        r#"graph @g(%x: f32[1, seq, 2, 8], %pos: i64[1, seq]) -> (y: f32[1, seq, 2, 8]) {
  %cache_c = constant {value = @weight("cos_cache")} : f32[6, 4]
  %cache_s = constant {value = @weight("sin_cache")} : f32[6, 4]
  %zero = constant {value = dense<i64[1]>[0]} : i64[1]
  %one = constant {value = dense<i64[1]>[1]} : i64[1]
  %two = constant {value = dense<i64[1]>[2]} : i64[1]
  %end = constant {value = dense<i64[1]>[9223372036854775807]} : i64[1]
  %last = constant {value = dense<i64[1]>[-1]} : i64[1]
  %ax4 = constant {value = dense<i64[1]>[4]} : i64[1]
  %rep = constant {value = dense<i64[5]>[1, 1, 1, 1, 2]} : i64[5]
  %shape = constant {value = dense<i64[4]>[1, -1, 1, 8]} : i64[4]
  %shape2 = constant {value = dense<i64[4]>[1, -1, 2, 8]} : i64[4]
  %0 = Gather(%cache_c, %pos) {axis = 0} : f32[1, seq, 4]
  %1 = Unsqueeze(%0, %two) : f32[1, seq, 1, 4]
  %2 = Unsqueeze(%1, %ax4) : f32[1, seq, 1, 4, 1]
  %3 = Expand(%2, %rep) : f32[1, seq, 1, 4, 2]
  %c = Reshape(%3, %shape) : f32[1, seq, 1, 8]
  %4 = Gather(%cache_s, %pos) {axis = 0} : f32[1, seq, 4]
  %5 = Unsqueeze(%4, %two) : f32[1, seq, 1, 4]
  %6 = Unsqueeze(%5, %ax4) : f32[1, seq, 1, 4, 1]
  %7 = Expand(%6, %rep) : f32[1, seq, 1, 4, 2]
  %s = Reshape(%7, %shape) : f32[1, seq, 1, 8]
  %8 = Slice(%x, %zero, %end, %last, %two) : f32[1, seq, 2, 4]
  %9 = Slice(%x, %one, %end, %last, %two) : f32[1, seq, 2, 4]
  %10 = Neg(%9) : f32[1, seq, 2, 4]
  %11 = Unsqueeze(%10, %last) : f32[1, seq, 2, 4, 1]
  %12 = Unsqueeze(%8, %last) : f32[1, seq, 2, 4, 1]
  %13 = Concat(%11, %12) {axis = -1} : f32[1, seq, 2, 4, 2]
  %14 = Reshape(%13, %shape2) : f32[1, seq, 2, 8]
  %15 = Mul(%x, %c) : f32[1, seq, 2, 8]
  %16 = Mul(%14, %s) : f32[1, seq, 2, 8]
  %17 = Add(%15, %16) : f32[1, seq, 2, 8]
  return %17
}
"#,
        PIPELINE,
        &[("seq", 4)],
        6,
        1e-5
    ));
}

/// Tables gathered by position ids from a constant cache whose halves are equal (a folded
/// `Concat(w, w)`): rope's tables are the first half of each gathered row.
#[test]
fn tables_gathered_from_constant_cache() {
    insta::assert_snapshot!(check_with(
        r#"graph @g(%x: f32[2, seq, 8], %pos: i64[seq]) -> (y: f32[2, seq, 8]) {
  %w = constant {value = @weight("w")} : f32[7, 4]
  %v = constant {value = @weight("v")} : f32[7, 4]
  %zero = constant {value = dense<i64[1]>[0]} : i64[1]
  %one = constant {value = dense<i64[1]>[1]} : i64[1]
  %four = constant {value = dense<i64[1]>[4]} : i64[1]
  %end = constant {value = dense<i64[1]>[9223372036854775807]} : i64[1]
  %last = constant {value = dense<i64[1]>[-1]} : i64[1]
  %cc = Concat(%w, %w) {axis = 1} : f32[7, 8]
  %sc = Concat(%v, %v) {axis = 1} : f32[7, 8]
  %c = Gather(%cc, %pos) {axis = 0} : f32[seq, 8]
  %s = Gather(%sc, %pos) {axis = 0} : f32[seq, 8]
  %0 = Slice(%x, %zero, %four, %last, %one) : f32[2, seq, 4]
  %1 = Slice(%x, %four, %end, %last, %one) : f32[2, seq, 4]
  %2 = Neg(%1) : f32[2, seq, 4]
  %3 = Concat(%2, %0) {axis = -1} : f32[2, seq, 8]
  %4 = Mul(%3, %s) : f32[2, seq, 8]
  %5 = Mul(%x, %c) : f32[2, seq, 8]
  %6 = Add(%4, %5) : f32[2, seq, 8]
  return %6
}
"#,
        PIPELINE,
        &[("seq", 6)],
        7,
        1e-5
    ));
}

/// DeepSeek-V3's MLA rope: the rope part of q (4 heads) and of the shared k (1 head) split
/// into even and odd elements, rotated with half tables and concatenated in halves order;
/// q's rope part is the last 8 of its 24 (after the no-rope part): a rope on that slice.
#[test]
fn deepseek_v3_split_even_odd() {
    insta::assert_snapshot!(check(
        r#"graph @g(%q: f32[1, 4, seq, 24], %k: f32[1, 1, seq, 8], %f: f32[1, seq, 4]) -> (a: f32[1, 4, seq, 24], b: f32[1, 1, seq, 8]) {
  %zero = constant {value = dense<i64[1]>[0]} : i64[1]
  %one = constant {value = dense<i64[1]>[1]} : i64[1]
  %two = constant {value = dense<i64[1]>[2]} : i64[1]
  %three = constant {value = dense<i64[1]>[3]} : i64[1]
  %end = constant {value = dense<i64[1]>[9223372036854775807]} : i64[1]
  %split = constant {value = dense<i64[2]>[16, 8]} : i64[2]
  %0 = Cos(%f) : f32[1, seq, 4]
  %1 = Sin(%f) : f32[1, seq, 4]
  %c = Unsqueeze(%0, %one) : f32[1, 1, seq, 4]
  %s = Unsqueeze(%1, %one) : f32[1, 1, seq, 4]
  %qn, %qr = Split(%q, %split) {axis = 3} : f32[1, 4, seq, 16], f32[1, 4, seq, 8]
  %2 = Slice(%qr, %zero, %end, %three, %two) : f32[1, 4, seq, 4]
  %3 = Slice(%qr, %one, %end, %three, %two) : f32[1, 4, seq, 4]
  %4 = Mul(%2, %c) : f32[1, 4, seq, 4]
  %5 = Mul(%3, %s) : f32[1, 4, seq, 4]
  %6 = Sub(%4, %5) : f32[1, 4, seq, 4]
  %7 = Mul(%3, %c) : f32[1, 4, seq, 4]
  %8 = Mul(%2, %s) : f32[1, 4, seq, 4]
  %9 = Add(%7, %8) : f32[1, 4, seq, 4]
  %10 = Concat(%6, %9) {axis = -1} : f32[1, 4, seq, 8]
  %11 = Concat(%qn, %10) {axis = -1} : f32[1, 4, seq, 24]
  %12 = Slice(%k, %zero, %end, %three, %two) : f32[1, 1, seq, 4]
  %13 = Slice(%k, %one, %end, %three, %two) : f32[1, 1, seq, 4]
  %14 = Mul(%c, %12) : f32[1, 1, seq, 4]
  %15 = Mul(%s, %13) : f32[1, 1, seq, 4]
  %16 = Sub(%14, %15) : f32[1, 1, seq, 4]
  %17 = Mul(%12, %s) : f32[1, 1, seq, 4]
  %18 = Mul(%c, %13) : f32[1, 1, seq, 4]
  %19 = Add(%17, %18) : f32[1, 1, seq, 4]
  %20 = Concat(%16, %19) {axis = 3} : f32[1, 1, seq, 8]
  return %11, %20
}
"#,
        &[("seq", 3)],
        1e-5
    ));
}

/// The TorchScript exporter flattens DeepSeek-V3's `cat(q_nope, cat(a, b))` into one
/// Concat: a split form's pair ending a longer Concat. q (2 heads, 6 no-rope + 6 rope dims,
/// even/odd) and a split-halves rotation after two passed-through inputs become
/// `Concat(p.., rope(x))`. Near misses (on another q): the pair not adjacent (the no-rope
/// part between its halves) and the pair in the other order stay as they are.
#[test]
fn split_pair_ending_a_flattened_concat() {
    insta::assert_snapshot!(check(
        r#"graph @g(%q: f32[1, 2, seq, 12], %r: f32[1, 2, seq, 12], %x: f32[1, 3, seq, 4], %p: f32[1, 3, seq, 2], %f: f32[1, seq, 3], %h: f32[1, seq, 2]) -> (a: f32[1, 2, seq, 12], b: f32[1, 3, seq, 8], c: f32[1, 2, seq, 12], d: f32[1, 2, seq, 12]) {
  %zero = constant {value = dense<i64[1]>[0]} : i64[1]
  %one = constant {value = dense<i64[1]>[1]} : i64[1]
  %two = constant {value = dense<i64[1]>[2]} : i64[1]
  %three = constant {value = dense<i64[1]>[3]} : i64[1]
  %four = constant {value = dense<i64[1]>[4]} : i64[1]
  %end = constant {value = dense<i64[1]>[9223372036854775807]} : i64[1]
  %split = constant {value = dense<i64[2]>[6, 6]} : i64[2]
  %0 = Cos(%f) : f32[1, seq, 3]
  %1 = Sin(%f) : f32[1, seq, 3]
  %c = Unsqueeze(%0, %one) : f32[1, 1, seq, 3]
  %s = Unsqueeze(%1, %one) : f32[1, 1, seq, 3]
  %qn, %qr = Split(%q, %split) {axis = 3} : f32[1, 2, seq, 6], f32[1, 2, seq, 6]
  %2 = Slice(%qr, %zero, %end, %three, %two) : f32[1, 2, seq, 3]
  %3 = Slice(%qr, %one, %end, %three, %two) : f32[1, 2, seq, 3]
  %4 = Mul(%2, %c) : f32[1, 2, seq, 3]
  %5 = Mul(%3, %s) : f32[1, 2, seq, 3]
  %6 = Sub(%4, %5) : f32[1, 2, seq, 3]
  %7 = Mul(%3, %c) : f32[1, 2, seq, 3]
  %8 = Mul(%2, %s) : f32[1, 2, seq, 3]
  %9 = Add(%7, %8) : f32[1, 2, seq, 3]
  %a = Concat(%qn, %6, %9) {axis = -1} : f32[1, 2, seq, 12]
  %10 = Cos(%h) : f32[1, seq, 2]
  %11 = Sin(%h) : f32[1, seq, 2]
  %hc = Unsqueeze(%10, %one) : f32[1, 1, seq, 2]
  %hs = Unsqueeze(%11, %one) : f32[1, 1, seq, 2]
  %12 = Slice(%x, %zero, %two, %three, %one) : f32[1, 3, seq, 2]
  %13 = Slice(%x, %two, %four, %three, %one) : f32[1, 3, seq, 2]
  %14 = Mul(%hc, %12) : f32[1, 3, seq, 2]
  %15 = Mul(%13, %hs) : f32[1, 3, seq, 2]
  %16 = Sub(%14, %15) : f32[1, 3, seq, 2]
  %17 = Mul(%13, %hc) : f32[1, 3, seq, 2]
  %18 = Mul(%12, %hs) : f32[1, 3, seq, 2]
  %19 = Add(%18, %17) : f32[1, 3, seq, 2]
  %b = Concat(%p, %p, %16, %19) {axis = 3} : f32[1, 3, seq, 8]
  %rn, %rr = Split(%r, %split) {axis = 3} : f32[1, 2, seq, 6], f32[1, 2, seq, 6]
  %20 = Slice(%rr, %zero, %end, %three, %two) : f32[1, 2, seq, 3]
  %21 = Slice(%rr, %one, %end, %three, %two) : f32[1, 2, seq, 3]
  %22 = Mul(%20, %c) : f32[1, 2, seq, 3]
  %23 = Mul(%21, %s) : f32[1, 2, seq, 3]
  %24 = Sub(%22, %23) : f32[1, 2, seq, 3]
  %25 = Mul(%21, %c) : f32[1, 2, seq, 3]
  %26 = Mul(%20, %s) : f32[1, 2, seq, 3]
  %27 = Add(%25, %26) : f32[1, 2, seq, 3]
  %c2 = Concat(%24, %rn, %27) {axis = -1} : f32[1, 2, seq, 12]
  %d2 = Concat(%rn, %27, %24) {axis = -1} : f32[1, 2, seq, 12]
  return %a, %b, %c2, %d2
}
"#,
        &[("seq", 3)],
        1e-5
    ));
}

/// Partial rotary: the first 8 of 12 dims rotated, the rest passed through, with rotate_half
/// (Phi) and with split halves: one rope with rotary_dim = 8 each.
#[test]
fn partial_rotary() {
    insta::assert_snapshot!(check(
        r#"graph @g(%x: f32[1, 2, seq, 12], %z: f32[seq, 12], %f: f32[seq, 4]) -> (a: f32[1, 2, seq, 12], b: f32[seq, 12]) {
  %zero = constant {value = dense<i64[1]>[0]} : i64[1]
  %one = constant {value = dense<i64[1]>[1]} : i64[1]
  %four = constant {value = dense<i64[1]>[4]} : i64[1]
  %eight = constant {value = dense<i64[1]>[8]} : i64[1]
  %end = constant {value = dense<i64[1]>[9223372036854775807]} : i64[1]
  %last = constant {value = dense<i64[1]>[-1]} : i64[1]
  %c = Cos(%f) : f32[seq, 4]
  %s = Sin(%f) : f32[seq, 4]
  %cc = Concat(%c, %c) {axis = -1} : f32[seq, 8]
  %ss = Concat(%s, %s) {axis = -1} : f32[seq, 8]
  %xr = Slice(%x, %zero, %eight, %last, %one) : f32[1, 2, seq, 8]
  %xp = Slice(%x, %eight, %end, %last, %one) : f32[1, 2, seq, 4]
  %0 = Slice(%xr, %zero, %four, %last, %one) : f32[1, 2, seq, 4]
  %1 = Slice(%xr, %four, %end, %last, %one) : f32[1, 2, seq, 4]
  %2 = Neg(%1) : f32[1, 2, seq, 4]
  %3 = Concat(%2, %0) {axis = -1} : f32[1, 2, seq, 8]
  %4 = Mul(%3, %ss) : f32[1, 2, seq, 8]
  %5 = Mul(%xr, %cc) : f32[1, 2, seq, 8]
  %6 = Add(%5, %4) : f32[1, 2, seq, 8]
  %7 = Concat(%6, %xp) {axis = -1} : f32[1, 2, seq, 12]
  %zr = Slice(%z, %zero, %eight, %last, %one) : f32[seq, 8]
  %zp = Slice(%z, %eight, %end, %last, %one) : f32[seq, 4]
  %8 = Slice(%zr, %zero, %four, %last, %one) : f32[seq, 4]
  %9 = Slice(%zr, %four, %eight, %last, %one) : f32[seq, 4]
  %10 = Mul(%8, %c) : f32[seq, 4]
  %11 = Mul(%9, %s) : f32[seq, 4]
  %12 = Sub(%10, %11) : f32[seq, 4]
  %13 = Mul(%9, %c) : f32[seq, 4]
  %14 = Mul(%8, %s) : f32[seq, 4]
  %15 = Add(%13, %14) : f32[seq, 4]
  %16 = Concat(%12, %15) {axis = -1} : f32[seq, 8]
  %17 = Concat(%16, %zp) {axis = -1} : f32[seq, 12]
  return %7, %17
}
"#,
        &[("seq", 4)],
        1e-5
    ));
}

/// DeepSeek-V4: interleaved rope on the last 4 of 32 dims (after the no-rope part), tables
/// repeated per pair; and its inverse on the attention output (sin negated).
#[test]
fn deepseek_v4_interleaved_tail_and_inverse() {
    insta::assert_snapshot!(check(
        r#"graph @g(%x: f32[1, 4, seq, 32], %o: f32[1, 4, seq, 32], %f: f32[1, seq, 2]) -> (a: f32[1, 4, seq, 32], b: f32[1, 4, seq, 32]) {
  %zero = constant {value = dense<i64[1]>[0]} : i64[1]
  %one = constant {value = dense<i64[1]>[1]} : i64[1]
  %two = constant {value = dense<i64[1]>[2]} : i64[1]
  %three = constant {value = dense<i64[1]>[3]} : i64[1]
  %m4 = constant {value = dense<i64[1]>[-4]} : i64[1]
  %end = constant {value = dense<i64[1]>[9223372036854775807]} : i64[1]
  %last = constant {value = dense<i64[1]>[-1]} : i64[1]
  %rep = constant {value = dense<i64[4]>[1, 1, 1, 2]} : i64[4]
  %sh3 = constant {value = dense<i64[3]>[1, -1, 4]} : i64[3]
  %sh4 = constant {value = dense<i64[4]>[1, 4, -1, 4]} : i64[4]
  %cs = Cos(%f) : f32[1, seq, 2]
  %sn = Sin(%f) : f32[1, seq, 2]
  %0 = Unsqueeze(%cs, %three) : f32[1, seq, 2, 1]
  %1 = Expand(%0, %rep) : f32[1, seq, 2, 2]
  %2 = Reshape(%1, %sh3) : f32[1, seq, 4]
  %c = Unsqueeze(%2, %one) : f32[1, 1, seq, 4]
  %3 = Unsqueeze(%sn, %three) : f32[1, seq, 2, 1]
  %4 = Expand(%3, %rep) : f32[1, seq, 2, 2]
  %5 = Reshape(%4, %sh3) : f32[1, seq, 4]
  %s = Unsqueeze(%5, %one) : f32[1, 1, seq, 4]
  %xn = Slice(%x, %zero, %m4, %three, %one) : f32[1, 4, seq, 28]
  %xr = Slice(%x, %m4, %end, %three, %one) : f32[1, 4, seq, 4]
  %6 = Mul(%xr, %c) : f32[1, 4, seq, 4]
  %7 = Slice(%xr, %zero, %end, %three, %two) : f32[1, 4, seq, 2]
  %8 = Slice(%xr, %one, %end, %three, %two) : f32[1, 4, seq, 2]
  %9 = Neg(%8) : f32[1, 4, seq, 2]
  %10 = Unsqueeze(%9, %last) : f32[1, 4, seq, 2, 1]
  %11 = Unsqueeze(%7, %last) : f32[1, 4, seq, 2, 1]
  %12 = Concat(%10, %11) {axis = -1} : f32[1, 4, seq, 2, 2]
  %13 = Reshape(%12, %sh4) : f32[1, 4, seq, 4]
  %14 = Mul(%13, %s) : f32[1, 4, seq, 4]
  %15 = Add(%6, %14) : f32[1, 4, seq, 4]
  %16 = Concat(%xn, %15) {axis = -1} : f32[1, 4, seq, 32]
  %ns = Neg(%sn) : f32[1, seq, 2]
  %17 = Unsqueeze(%ns, %three) : f32[1, seq, 2, 1]
  %18 = Expand(%17, %rep) : f32[1, seq, 2, 2]
  %19 = Reshape(%18, %sh3) : f32[1, seq, 4]
  %is = Unsqueeze(%19, %one) : f32[1, 1, seq, 4]
  %on = Slice(%o, %zero, %m4, %three, %one) : f32[1, 4, seq, 28]
  %or = Slice(%o, %m4, %end, %three, %one) : f32[1, 4, seq, 4]
  %20 = Mul(%or, %c) : f32[1, 4, seq, 4]
  %21 = Slice(%or, %zero, %end, %three, %two) : f32[1, 4, seq, 2]
  %22 = Slice(%or, %one, %end, %three, %two) : f32[1, 4, seq, 2]
  %23 = Neg(%22) : f32[1, 4, seq, 2]
  %24 = Unsqueeze(%23, %last) : f32[1, 4, seq, 2, 1]
  %25 = Unsqueeze(%21, %last) : f32[1, 4, seq, 2, 1]
  %26 = Concat(%24, %25) {axis = -1} : f32[1, 4, seq, 2, 2]
  %27 = Reshape(%26, %sh4) : f32[1, 4, seq, 4]
  %28 = Mul(%27, %is) : f32[1, 4, seq, 4]
  %29 = Add(%20, %28) : f32[1, 4, seq, 4]
  %30 = Concat(%on, %29) {axis = -1} : f32[1, 4, seq, 32]
  return %16, %30
}
"#,
        &[("seq", 3)],
        1e-5
    ));
}

/// Near misses: halves that do not line up (6 + 10 of 16); tables whose halves differ
/// (`Concat(cos, sin)`); the rotation of another tensor than the one scaled by cos; a split
/// form with the signs of the other rotation direction swapped between its halves.
#[test]
fn near_misses_stay() {
    insta::assert_snapshot!(check(
        r#"graph @g(%x: f32[2, seq, 16], %z: f32[2, seq, 16], %f: f32[seq, 8]) -> (a: f32[2, seq, 16], b: f32[2, seq, 16], c: f32[2, seq, 16], d: f32[2, seq, 16]) {
  %zero = constant {value = dense<i64[1]>[0]} : i64[1]
  %one = constant {value = dense<i64[1]>[1]} : i64[1]
  %six = constant {value = dense<i64[1]>[6]} : i64[1]
  %eight = constant {value = dense<i64[1]>[8]} : i64[1]
  %end = constant {value = dense<i64[1]>[9223372036854775807]} : i64[1]
  %last = constant {value = dense<i64[1]>[-1]} : i64[1]
  %cf = Cos(%f) : f32[seq, 8]
  %sf = Sin(%f) : f32[seq, 8]
  %cc = Concat(%cf, %cf) {axis = -1} : f32[seq, 16]
  %ss = Concat(%sf, %sf) {axis = -1} : f32[seq, 16]
  %cs = Concat(%cf, %sf) {axis = -1} : f32[seq, 16]
  %0 = Slice(%x, %zero, %six, %last, %one) : f32[2, seq, 6]
  %1 = Slice(%x, %six, %end, %last, %one) : f32[2, seq, 10]
  %2 = Neg(%1) : f32[2, seq, 10]
  %3 = Concat(%2, %0) {axis = -1} : f32[2, seq, 16]
  %4 = Mul(%3, %ss) : f32[2, seq, 16]
  %5 = Mul(%x, %cc) : f32[2, seq, 16]
  %a = Add(%5, %4) : f32[2, seq, 16]
  %6 = Slice(%x, %zero, %eight, %last, %one) : f32[2, seq, 8]
  %7 = Slice(%x, %eight, %end, %last, %one) : f32[2, seq, 8]
  %8 = Neg(%7) : f32[2, seq, 8]
  %9 = Concat(%8, %6) {axis = -1} : f32[2, seq, 16]
  %10 = Mul(%9, %ss) : f32[2, seq, 16]
  %11 = Mul(%x, %cs) : f32[2, seq, 16]
  %b = Add(%11, %10) : f32[2, seq, 16]
  %12 = Mul(%z, %cc) : f32[2, seq, 16]
  %c = Add(%12, %10) : f32[2, seq, 16]
  %13 = Mul(%6, %cf) : f32[2, seq, 8]
  %14 = Mul(%7, %sf) : f32[2, seq, 8]
  %15 = Add(%13, %14) : f32[2, seq, 8]
  %16 = Mul(%7, %cf) : f32[2, seq, 8]
  %17 = Mul(%6, %sf) : f32[2, seq, 8]
  %18 = Sub(%16, %17) : f32[2, seq, 8]
  %d = Concat(%15, %18) {axis = -1} : f32[2, seq, 16]
  return %a, %b, %c, %d
}
"#,
        &[("seq", 4)],
        1e-5
    ));
}
