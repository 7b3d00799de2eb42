use kiln_ir::dtype::DType;
use kiln_ir::Tensor;

use crate::cpu::testing::{check, floats};

fn shape_str(s: &[&str]) -> String {
    s.join(", ")
}

/// Values of `floats` mapped by `f`, as `dtype`.
fn values(shape: &[usize], seed: u64, dtype: DType, f: impl Fn(f64) -> f64) -> Tensor {
    let v: Vec<f64> = floats(shape, seed).to_f64().into_iter().map(f).collect();
    Tensor::from_f64(dtype, shape.to_vec(), &v)
}

/// A one-node reduction graph over `x: dtype[dims]` with constant `axes`.
fn reduce_graph(op: &str, dtype: &str, dims: &[&str], axes: &[i64], keep: bool) -> String {
    let rank = dims.len() as i64;
    let norm: Vec<usize> = axes.iter().map(|&a| ((a + rank) % rank) as usize).collect();
    let out: Vec<&str> = dims
        .iter()
        .enumerate()
        .filter_map(|(i, d)| {
            if axes.is_empty() || norm.contains(&i) {
                keep.then_some("1")
            } else {
                Some(*d)
            }
        })
        .collect();
    let ax: Vec<String> = axes.iter().map(|a| a.to_string()).collect();
    format!(
        "graph @t(%x: {dtype}[{}]) -> (y: {dtype}[{}]) {{
           %0 = constant {{value = dense<i64[{}]>[{}]}} : i64[{}]
           %1 = {op}(%x, %0) {{keepdims = {}}} : {dtype}[{}]
           return %1
         }}",
        shape_str(dims),
        shape_str(&out),
        axes.len(),
        ax.join(", "),
        axes.len(),
        keep as i64,
        shape_str(&out),
    )
}

const ALL_REDUCE: &[&str] = &[
    "ReduceSum",
    "ReduceMean",
    "ReduceMax",
    "ReduceMin",
    "ReduceProd",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceSumSquare",
];

const AXES: &[&[i64]] = &[
    &[0],
    &[1],
    &[2],
    &[-1, 0],
    &[1, 2],
    &[0, 1],
    &[0, 1, 2],
    &[],
];

#[test]
fn every_reduction_f32_over_every_axis_set() {
    let x = values(&[3, 5, 9], 1, DType::F32, |v| v + 1.25);
    for op in ALL_REDUCE {
        for axes in AXES {
            for keep in [false, true] {
                let g = reduce_graph(op, "f32", &["3", "5", "9"], axes, keep);
                check(&g, std::slice::from_ref(&x), 1e-5, 1e-6);
            }
        }
    }
}

#[test]
fn reductions_f64_and_non_adjacent_axes() {
    let x = values(&[2, 3, 4, 5], 2, DType::F64, |v| v * 3.0);
    for op in ALL_REDUCE {
        for axes in [&[0i64, 2][..], &[1, 3], &[0, 3], &[3]] {
            let g = reduce_graph(op, "f64", &["2", "3", "4", "5"], axes, true);
            check(&g, std::slice::from_ref(&x), 1e-12, 1e-12);
        }
    }
}

#[test]
fn integer_reductions_are_exact() {
    for (dt, name) in [(DType::I32, "i32"), (DType::I64, "i64"), (DType::U8, "u8")] {
        let x = values(&[4, 3, 5], 3, dt, |v| (v * 9.0).round() + 9.0);
        for op in [
            "ReduceSum",
            "ReduceMax",
            "ReduceMin",
            "ReduceProd",
            "ReduceL1",
            "ReduceSumSquare",
        ] {
            for axes in [&[1i64][..], &[0, 2], &[2]] {
                let g = reduce_graph(op, name, &["4", "3", "5"], axes, false);
                check(&g, std::slice::from_ref(&x), 0.0, 0.0);
            }
        }
    }
}

#[test]
fn symbolic_dims_and_odd_rows() {
    // A MiniLM/DeepSeek-like mean over the hidden axis, with a symbolic sequence.
    let g = reduce_graph("ReduceMean", "f32", &["1", "seq", "67"], &[-1], true);
    check(&g, &[floats(&[1, 11, 67], 4)], 1e-5, 1e-6);
    let g = reduce_graph("ReduceSum", "f32", &["2", "seq", "3", "6"], &[1, 3], false);
    check(&g, &[floats(&[2, 7, 3, 6], 5)], 1e-5, 1e-6);
    let g = reduce_graph("ReduceMax", "f32", &["seq", "13"], &[0], true);
    check(&g, &[floats(&[9, 13], 6)], 0.0, 0.0);
    // Long rows: accuracy of f32 accumulation.
    let g = reduce_graph("ReduceSum", "f32", &["3", "4099"], &[1], true);
    check(
        &g,
        &[values(&[3, 4099], 7, DType::F32, |v| v + 0.5)],
        1e-5,
        1e-5,
    );
}

#[test]
fn empty_axes_noop_size_one_axes_and_empty_tensors() {
    let x = floats(&[3, 4], 8);
    check(
        "graph @t(%x: f32[3, 4]) -> (y: f32[3, 4]) {
           %0 = constant {value = dense<i64[0]>[]} : i64[0]
           %1 = ReduceSum(%x, %0) {noop_with_empty_axes = 1} : f32[3, 4]
           return %1
         }",
        std::slice::from_ref(&x),
        0.0,
        0.0,
    );
    check(
        "graph @t(%x: f32[3, 4], %a: i64[0]) -> (y: f32[1, 1]) {
           %0 = ReduceL2(%x, %a) : f32[1, 1]
           return %0
         }",
        &[x, Tensor::from_i64s(vec![0], vec![]).unwrap()],
        1e-6,
        0.0,
    );
    let g = reduce_graph("ReduceMean", "f32", &["3", "1", "4"], &[1], false);
    check(&g, &[floats(&[3, 1, 4], 9)], 0.0, 0.0);
    for op in ALL_REDUCE {
        let g = reduce_graph(op, "f32", &["2", "0", "4"], &[1], true);
        check(&g, &[floats(&[2, 0, 4], 1)], 0.0, 0.0);
    }
}

#[test]
fn nan_and_infinity_propagate() {
    let v = [
        1.0,
        f32::NAN,
        3.0,
        f32::INFINITY,
        -2.0,
        5.0,
        f32::NEG_INFINITY,
        0.5,
    ];
    let x = Tensor::from_f32s(vec![2, 4], v.to_vec()).unwrap();
    for op in ["ReduceMax", "ReduceMin", "ReduceLogSumExp", "ReduceSum"] {
        for axes in [&[0i64][..], &[1]] {
            let g = reduce_graph(op, "f32", &["2", "4"], axes, true);
            check(&g, std::slice::from_ref(&x), 1e-6, 0.0);
        }
    }
}

fn unary(op: &str, attrs: &str, dtype: &str, dims: &[&str]) -> String {
    let s = shape_str(dims);
    format!(
        "graph @t(%x: {dtype}[{s}]) -> (y: {dtype}[{s}]) {{
           %0 = {op}(%x) {attrs} : {dtype}[{s}]
           return %0
         }}"
    )
}

#[test]
fn softmax_family_contiguous_and_strided() {
    for op in ["Softmax", "LogSoftmax", "Hardmax"] {
        for (axis, dims, shape) in [
            (-1, vec!["3", "17"], vec![3usize, 17]),
            (1, vec!["2", "5", "3"], vec![2, 5, 3]),
            (0, vec!["4", "6"], vec![4, 6]),
            (-1, vec!["2", "seq", "128"], vec![2, 3, 128]),
        ] {
            let g = unary(op, &format!("{{axis = {axis}}}"), "f32", &dims);
            check(&g, &[floats(&shape, 10)], 1e-5, 1e-6);
            let big = values(&shape, 11, DType::F32, |v| v * 2000.0);
            check(&g, &[big], 1e-5, 1e-6);
            let g = unary(op, &format!("{{axis = {axis}}}"), "f64", &dims);
            check(
                &g,
                &[values(&shape, 12, DType::F64, |v| v * 30.0)],
                1e-6,
                1e-9,
            );
        }
    }
}

#[test]
fn softmax_of_masked_rows() {
    let v = [0.5, f32::NEG_INFINITY, 2.0, -1e30, 3.0, 1.0, 1.0, 1.0];
    let x = Tensor::from_f32s(vec![2, 4], v.to_vec()).unwrap();
    for op in ["Softmax", "LogSoftmax"] {
        check(
            &unary(op, "{axis = -1}", "f32", &["2", "4"]),
            std::slice::from_ref(&x),
            1e-6,
            1e-7,
        );
    }
}

/// Masked logits (`-inf`, or far below the row's max) give exact zeros, never the
/// ~1e-38 an unguarded exp leaves (which turn subnormal once divided by the sum).
#[test]
fn softmax_of_masked_logits_is_exactly_zero() {
    let mut v = vec![0.25f32; 64];
    for (j, x) in v.iter_mut().enumerate().skip(40) {
        *x = if j % 2 == 0 { f32::NEG_INFINITY } else { -1e9 };
    }
    let x = Tensor::from_f32s(vec![2, 32], v).unwrap();
    check(
        &unary("Softmax", "{axis = -1}", "f32", &["2", "32"]),
        std::slice::from_ref(&x),
        1e-6,
        0.0,
    );
}

#[test]
fn hardmax_ties_and_lp_norms() {
    let x = Tensor::from_f32s(vec![2, 3], vec![1.0, 5.0, 5.0, 0.0, 0.0, 0.0]).unwrap();
    check(
        &unary("Hardmax", "{axis = 1}", "f32", &["2", "3"]),
        std::slice::from_ref(&x),
        0.0,
        0.0,
    );
    check(
        &unary("Hardmax", "{axis = 0}", "f32", &["2", "3"]),
        std::slice::from_ref(&x),
        0.0,
        0.0,
    );
    for p in [1, 2] {
        for axis in [0, 1] {
            let g = unary(
                "LpNormalization",
                &format!("{{axis = {axis}, p = {p}}}"),
                "f32",
                &["2", "3"],
            );
            check(&g, std::slice::from_ref(&x), 1e-6, 0.0);
            let g = unary(
                "LpNormalization",
                &format!("{{axis = {axis}, p = {p}}}"),
                "f32",
                &["5", "9"],
            );
            check(&g, &[floats(&[5, 9], 13)], 1e-6, 0.0);
        }
    }
}

fn arg_graph(op: &str, dtype: &str, dims: &[&str], axis: i64, keep: bool, last: bool) -> String {
    let a = ((axis + dims.len() as i64) % dims.len() as i64) as usize;
    let out: Vec<&str> = dims
        .iter()
        .enumerate()
        .filter_map(|(i, d)| {
            if i == a {
                keep.then_some("1")
            } else {
                Some(*d)
            }
        })
        .collect();
    format!(
        "graph @t(%x: {dtype}[{}]) -> (y: i64[{}]) {{
           %0 = {op}(%x) {{axis = {axis}, keepdims = {}, select_last_index = {}}} : i64[{}]
           return %0
         }}",
        shape_str(dims),
        shape_str(&out),
        keep as i64,
        last as i64,
        shape_str(&out)
    )
}

#[test]
fn argmax_argmin_ties_nan_and_axes() {
    let ties = Tensor::from_f32s(
        vec![2, 2, 3],
        vec![
            1.0,
            5.0,
            5.0,
            2.0,
            0.0,
            0.0,
            f32::NAN,
            1.0,
            f32::NAN,
            3.0,
            3.0,
            3.0,
        ],
    )
    .unwrap();
    for op in ["ArgMax", "ArgMin"] {
        for axis in [0, 1, -1] {
            for keep in [false, true] {
                for last in [false, true] {
                    let g = arg_graph(op, "f32", &["2", "2", "3"], axis, keep, last);
                    check(&g, std::slice::from_ref(&ties), 0.0, 0.0);
                }
            }
            let xi = values(&[3, 4, 5], 14, DType::I32, |v| (v * 3.0).round());
            let g = arg_graph(op, "i32", &["3", "4", "5"], axis, true, true);
            check(&g, &[xi], 0.0, 0.0);
            let xu = values(&[3, 4, 5], 15, DType::U64, |v| (v * 3.0).round() + 3.0);
            let g = arg_graph(op, "u64", &["3", "4", "5"], axis, false, false);
            check(&g, &[xu], 0.0, 0.0);
        }
    }
}

#[test]
fn cumsum_cumprod_flags_dtypes_and_runtime_axis() {
    for op in ["CumSum", "CumProd"] {
        for (excl, rev) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            for axis in [0i64, 1, -1] {
                let g = format!(
                    "graph @t(%x: f64[3, 4, 2]) -> (y: f64[3, 4, 2]) {{
                       %0 = constant {{value = dense<i64[]>[{axis}]}} : i64[]
                       %1 = {op}(%x, %0) {{exclusive = {excl}, reverse = {rev}}} : f64[3, 4, 2]
                       return %1
                     }}"
                );
                check(
                    &g,
                    &[values(&[3, 4, 2], 16, DType::F64, |v| v + 1.5)],
                    1e-12,
                    0.0,
                );
            }
        }
        let g = format!(
            "graph @t(%x: i32[2, seq], %a: i32[]) -> (y: i32[2, seq]) {{
               %0 = {op}(%x, %a) {{exclusive = 1}} : i32[2, seq]
               return %0
             }}"
        );
        let xi = values(&[2, 5], 17, DType::I32, |v| (v * 5.0).round());
        for a in [0, 1, -2] {
            let ax = Tensor::from_i64(DType::I32, vec![], &[a]);
            check(&g, &[xi.clone(), ax], 0.0, 0.0);
        }
    }
}

#[test]
fn layer_norm_forms() {
    // MiniLM's form, with the statistics outputs.
    let x = values(&[2, 5, 384], 18, DType::F32, |v| v * 4.0 + 1.0);
    let g = floats(&[384], 19);
    let b = floats(&[384], 20);
    check(
        "graph @t(%x: f32[2, seq, 384], %g: f32[384], %b: f32[384]) -> (y: f32[2, seq, 384], m: f32[2, seq, 1], r: f32[2, seq, 1]) {
           %0, %1, %2 = LayerNormalization(%x, %g, %b) {axis = -1, epsilon = 1e-12} : f32[2, seq, 384], f32[2, seq, 1], f32[2, seq, 1]
           return %0, %1, %2
         }",
        &[x.clone(), g.clone(), b.clone()],
        1e-5,
        1e-5,
    );
    check(
        "graph @t(%x: f32[2, seq, 384], %g: f32[384]) -> (y: f32[2, seq, 384]) {
           %0 = layer_norm(%x, %g) {eps = 1e-5} : f32[2, seq, 384]
           return %0
         }",
        &[x, g],
        1e-5,
        1e-5,
    );
    // Over two axes, an odd row, a scalar scale, f64.
    check(
        "graph @t(%x: f64[3, 5, 7], %g: f64[5, 7], %b: f64[1]) -> (y: f64[3, 5, 7]) {
           %0, %1, %2 = LayerNormalization(%x, %g, %b) {axis = 1} : f64[3, 5, 7], f32[3, 1, 1], f32[3, 1, 1]
           return %0
         }",
        &[
            values(&[3, 5, 7], 21, DType::F64, |v| v),
            values(&[5, 7], 22, DType::F64, |v| v),
            values(&[1], 23, DType::F64, |v| v),
        ],
        1e-10,
        1e-12,
    );
}

#[test]
fn rms_norm_forms() {
    let x = floats(&[2, 3, 37], 24);
    let g = floats(&[37], 25);
    for (op, eps) in [("rms_norm", "eps"), ("RMSNormalization", "epsilon")] {
        check(
            &format!(
                "graph @t(%x: f32[2, seq, 37], %g: f32[37]) -> (y: f32[2, seq, 37]) {{
                   %0 = {op}(%x, %g) {{{eps} = 1e-6}} : f32[2, seq, 37]
                   return %0
                 }}"
            ),
            &[x.clone(), g.clone()],
            1e-5,
            1e-6,
        );
    }
    check(
        "graph @t(%x: f32[2, seq, 37], %g: f32[37]) -> (y: f32[2, seq, 37], r: f32[2, seq, 1]) {
           %0, %1 = SimplifiedLayerNormalization(%x, %g) {epsilon = 1e-6} : f32[2, seq, 37], f32[2, seq, 1]
           return %0, %1
         }",
        &[x, g],
        1e-5,
        1e-6,
    );
}

#[test]
fn skip_layer_norms() {
    let x = floats(&[2, 3, 20], 26);
    let s = floats(&[3, 20], 27);
    let g = floats(&[20], 28);
    let b = floats(&[20], 29);
    let bias = floats(&[20], 30);
    check(
        "graph @t(%x: f32[2, 3, 20], %s: f32[3, 20], %g: f32[20], %b: f32[20], %c: f32[20]) -> (y: f32[2, 3, 20], m: f32[2, 3, 1], r: f32[2, 3, 1], z: f32[2, 3, 20]) {
           %0, %1, %2, %3 = com.microsoft.SkipLayerNormalization(%x, %s, %g, %b, %c) {epsilon = 1e-5} : f32[2, 3, 20], f32[2, 3, 1], f32[2, 3, 1], f32[2, 3, 20]
           return %0, %1, %2, %3
         }",
        &[x.clone(), s.clone(), g.clone(), b, bias],
        1e-5,
        1e-6,
    );
    check(
        "graph @t(%x: f32[2, 3, 20], %s: f32[3, 20], %g: f32[20]) -> (y: f32[2, 3, 20], z: f32[2, 3, 20]) {
           %0, %1, %2, %3 = com.microsoft.SkipSimplifiedLayerNormalization(%x, %s, %g) {epsilon = 1e-5} : f32[2, 3, 20], f32[2, 3, 1], f32[2, 3, 1], f32[2, 3, 20]
           return %0, %3
         }",
        &[x, s, g],
        1e-5,
        1e-6,
    );
}

#[test]
fn channel_and_batch_norms() {
    let x = floats(&[2, 6, 3, 5], 31);
    let sc = floats(&[6], 32);
    let bi = floats(&[6], 33);
    check(
        "graph @t(%x: f32[2, 6, 3, 5], %s: f32[6], %b: f32[6]) -> (y: f32[2, 6, 3, 5]) {
           %0 = InstanceNormalization(%x, %s, %b) {epsilon = 1e-5} : f32[2, 6, 3, 5]
           return %0
         }",
        &[x.clone(), sc.clone(), bi.clone()],
        1e-4,
        1e-5,
    );
    check(
        "graph @t(%x: f32[2, 6, 3, 5], %s: f32[6], %b: f32[6]) -> (y: f32[2, 6, 3, 5]) {
           %0 = GroupNormalization(%x, %s, %b) {epsilon = 1e-5, num_groups = 3} : f32[2, 6, 3, 5]
           return %0
         }",
        &[x.clone(), sc.clone(), bi.clone()],
        1e-4,
        1e-5,
    );
    let var = values(&[6], 34, DType::F32, |v| v.abs() + 0.1);
    check(
        "graph @t(%x: f32[2, 6, 3, 5], %s: f32[6], %b: f32[6], %m: f32[6], %v: f32[6]) -> (y: f32[2, 6, 3, 5]) {
           %0 = BatchNormalization(%x, %s, %b, %m, %v) {epsilon = 1e-5} : f32[2, 6, 3, 5]
           return %0
         }",
        &[x, sc, bi.clone(), bi, var],
        1e-5,
        1e-6,
    );
}

#[test]
fn losses() {
    let x = floats(&[3, 5, 2], 35);
    let t = Tensor::from_i64s(vec![3, 2], vec![0, 4, 2, -1, 3, 1]).unwrap();
    let w = values(&[5], 36, DType::F32, |v| v.abs() + 0.5);
    for red in ["none", "sum", "mean"] {
        let out = if red == "none" { "3, 2" } else { "" };
        for op in ["NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss"] {
            check(
                &format!(
                    "graph @t(%x: f32[3, 5, 2], %t: i64[3, 2], %w: f32[5]) -> (y: f32[{out}]) {{
                       %0 = {op}(%x, %t, %w) {{ignore_index = -1, reduction = \"{red}\"}} : f32[{out}]
                       return %0
                     }}"
                ),
                &[x.clone(), t.clone(), w.clone()],
                1e-5,
                1e-6,
            );
        }
    }
    let x2 = floats(&[4, 3], 37);
    let t2 = Tensor::from_i64(DType::I32, vec![4], &[2, 0, 1, 1]);
    check(
        "graph @t(%x: f32[4, 3], %t: i32[4]) -> (y: f32[], p: f32[4, 3]) {
           %0, %1 = SoftmaxCrossEntropyLoss(%x, %t) : f32[], f32[4, 3]
           return %0, %1
         }",
        &[x2, t2],
        1e-5,
        1e-6,
    );
}

/// Timing of MiniLM's row ops (`cargo test --release -p kiln-targets minilm_rows -- --ignored --nocapture`).
#[test]
#[ignore]
fn minilm_rows_timing() {
    use crate::cpu::codegen::isa::CpuFeatures;
    use crate::cpu::testing::{graph, load, run};
    let cases = [
        (
            "graph @t(%x: f32[1, 12, 128, 128]) -> (y: f32[1, 12, 128, 128]) {
               %0 = Identity(%x) : f32[1, 12, 128, 128]
               return %0
             }",
            vec![floats(&[1, 12, 128, 128], 4)],
        ),
        (
            "graph @t(%x: f32[1, 128, 384], %g: f32[384], %b: f32[384]) -> (y: f32[1, 128, 384]) {
               %0, %1, %2 = LayerNormalization(%x, %g, %b) {axis = -1, epsilon = 1e-12} : f32[1, 128, 384], f32[1, 128, 1], f32[1, 128, 1]
               return %0
             }",
            vec![floats(&[1, 128, 384], 1), floats(&[384], 2), floats(&[384], 3)],
        ),
        (
            "graph @t(%x: f32[1, 12, 128, 128]) -> (y: f32[1, 12, 128, 128]) {
               %0 = Softmax(%x) {axis = -1} : f32[1, 12, 128, 128]
               return %0
             }",
            vec![floats(&[1, 12, 128, 128], 4)],
        ),
        (
            "graph @t(%x: f32[1, 12, 128, 128]) -> (y: f32[1, 12, 128, 128]) {
               %0 = LpNormalization(%x) {axis = -1, p = 1} : f32[1, 12, 128, 128]
               return %0
             }",
            vec![floats(&[1, 12, 128, 128], 4)],
        ),
    ];
    for (text, inputs) in cases {
        let m = load(&graph(text), CpuFeatures::host()).unwrap();
        run(&m, &inputs);
        let rt: Vec<_> = inputs
            .iter()
            .map(|t| {
                let e = kiln_runtime::ElemType::from_name(t.dtype().name()).unwrap();
                kiln_runtime::Tensor::from_bytes(e, t.shape(), &t.to_le_bytes()).unwrap()
            })
            .collect();
        let mut best = std::time::Duration::MAX;
        for _ in 0..300 {
            let t = std::time::Instant::now();
            m.run(&rt).unwrap();
            best = best.min(t.elapsed());
        }
        println!("{best:?} per run (best of 300)");
    }
}

#[test]
fn batch_norm_training_mode() {
    let x = floats(&[3, 4, 2, 5], 40);
    let sc = floats(&[4], 41);
    let bi = floats(&[4], 42);
    let var = values(&[4], 43, DType::F32, |v| v.abs() + 0.1);
    check(
        "graph @t(%x: f32[3, 4, 2, 5], %s: f32[4], %b: f32[4], %m: f32[4], %v: f32[4]) -> (y: f32[3, 4, 2, 5], rm: f32[4], rv: f32[4]) {
           %0, %1, %2 = BatchNormalization(%x, %s, %b, %m, %v) {epsilon = 1e-5, momentum = 0.8, training_mode = 1} : f32[3, 4, 2, 5], f32[4], f32[4]
           return %0, %1, %2
         }",
        &[x, sc, bi.clone(), bi, var],
        1e-5,
        1e-6,
    );
}

#[test]
fn mean_variance_normalization() {
    let x = floats(&[3, 4, 2, 5], 44);
    check(
        "graph @t(%x: f32[3, 4, 2, 5]) -> (y: f32[3, 4, 2, 5]) {
           %0 = MeanVarianceNormalization(%x) : f32[3, 4, 2, 5]
           return %0
         }",
        std::slice::from_ref(&x),
        1e-5,
        1e-6,
    );
    check(
        "graph @t(%x: f32[3, 4, 2, 5]) -> (y: f32[3, 4, 2, 5]) {
           %0 = MeanVarianceNormalization(%x) {axes = [1, 3]} : f32[3, 4, 2, 5]
           return %0
         }",
        &[x],
        1e-5,
        1e-6,
    );
}
