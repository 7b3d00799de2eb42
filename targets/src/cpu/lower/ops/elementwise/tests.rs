//! Compiled elementwise kernels against the reference interpreter: every op, every dtype
//! family, broadcasting in every position, odd sizes (vector tails), symbolic dims, NaN/inf
//! and integer edge cases, and fusion.
#![allow(clippy::cloned_ref_to_slice_refs)]

use kiln_ir::dtype::DType;
use kiln_ir::tensor::Tensor;

use crate::cpu::codegen::isa::{x86_64_isa, CpuFeatures};
use crate::cpu::testing::{check, graph, load, run};

/// Deterministic pseudo-random bits.
fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

/// Test data of `dtype`: floats in [-scale, scale) with specials mixed in when `specials`;
/// integers over the dtype's whole range, with small values and the extremes; bools.
fn data(dtype: DType, shape: &[usize], seed: u64, scale: f64, specials: bool) -> Tensor {
    let n: usize = shape.iter().product();
    let mut r = rng(seed);
    let shape = shape.to_vec();
    if dtype.is_float() {
        let sp = [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5,
            -2.5,
            1e-30,
            88.0,
            -100.0,
            1e30,
        ];
        let v: Vec<f64> = (0..n)
            .map(|i| {
                let u = (r() >> 11) as f64 / (1u64 << 53) as f64;
                if specials && i % 7 == 3 {
                    sp[(r() % sp.len() as u64) as usize]
                } else {
                    (u * 2.0 - 1.0) * scale
                }
            })
            .collect();
        return Tensor::from_f64(dtype, shape, &v);
    }
    if dtype == DType::Bool {
        let v = (0..n).map(|_| r() & 1 == 1).collect();
        return Tensor::from_bools(shape, v).unwrap();
    }
    let bits = dtype.size() * 8;
    let v: Vec<i64> = (0..n)
        .map(|i| match i % 5 {
            0 => (r() % 21) as i64 - 10,
            1 if specials => {
                let ext = [0i64, -1, 1, i64::MIN, i64::MAX];
                ext[(r() % 5) as usize]
            }
            _ => (r() >> (64 - bits)) as i64,
        })
        .collect();
    Tensor::from_i64(dtype, shape, &v)
}

fn broadcast(shapes: &[&[usize]]) -> Vec<usize> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![1; rank];
    for s in shapes {
        for (i, &d) in s.iter().enumerate() {
            let o = &mut out[rank - s.len() + i];
            if d != 1 {
                *o = d;
            }
        }
    }
    out
}

fn ty(dtype: DType, shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("{}[{}]", dtype.name(), dims.join(", "))
}

/// `op(inputs) {attrs}` with output dtype `out` (None: input 0's), compiled vs interpreted.
fn op_check(op: &str, attrs: &str, inputs: &[Tensor], out: Option<DType>, rtol: f64, atol: f64) {
    let shapes: Vec<&[usize]> = inputs.iter().map(|t| t.shape()).collect();
    let oshape = broadcast(&shapes);
    let out = out.unwrap_or(inputs[0].dtype());
    let params: Vec<String> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| format!("%x{i}: {}", ty(t.dtype(), t.shape())))
        .collect();
    let args: Vec<String> = (0..inputs.len()).map(|i| format!("%x{i}")).collect();
    let text = format!(
        "graph @t({}) -> (y: {o}) {{\n  %0 = {op}({}) {attrs} : {o}\n  return %0\n}}",
        params.join(", "),
        args.join(", "),
        o = ty(out, &oshape)
    );
    check(&text, inputs, rtol, atol);
}

const FLOATS: [DType; 4] = [DType::F32, DType::F64, DType::F16, DType::BF16];
const INTS: [DType; 8] = [
    DType::I8,
    DType::I16,
    DType::I32,
    DType::I64,
    DType::U8,
    DType::U16,
    DType::U32,
    DType::U64,
];

/// Relative tolerance for a float dtype: a few ulp of f32 for f32/f64 (the inline
/// polynomials), one ulp of the dtype for f16/bf16 (a rare tie may round the other way).
fn tol(d: DType, f32_tol: f64) -> f64 {
    match d {
        DType::F16 => 1e-3,
        DType::BF16 => 8e-3,
        _ => f32_tol,
    }
}

#[test]
fn float_unary_ops() {
    let ops: &[(&str, &str, f64, f64)] = &[
        // (op, attrs, input scale, f32 rtol)
        ("Neg", "", 10.0, 0.0),
        ("Abs", "", 10.0, 0.0),
        ("Sign", "", 10.0, 0.0),
        ("Reciprocal", "", 10.0, 0.0),
        ("Sqrt", "", 10.0, 0.0),
        ("Floor", "", 10.0, 0.0),
        ("Ceil", "", 10.0, 0.0),
        ("Round", "", 10.0, 0.0),
        ("Exp", "", 100.0, 3e-7),
        ("Log", "", 100.0, 3e-7),
        ("Erf", "", 5.0, 3e-7),
        ("Tanh", "", 12.0, 3e-7),
        ("Sigmoid", "", 30.0, 5e-7),
        ("Sin", "", 10.0, 0.0),
        ("Cos", "", 10.0, 0.0),
        ("Tan", "", 10.0, 0.0),
        ("Asin", "", 1.0, 0.0),
        ("Acos", "", 1.0, 0.0),
        ("Atan", "", 10.0, 0.0),
        ("Sinh", "", 10.0, 0.0),
        ("Cosh", "", 10.0, 0.0),
        ("Asinh", "", 10.0, 0.0),
        ("Acosh", "", 10.0, 0.0),
        ("Atanh", "", 1.0, 0.0),
        ("Relu", "", 10.0, 0.0),
        ("LeakyRelu", "{alpha = 0.1}", 10.0, 0.0),
        ("Elu", "{alpha = 1.5}", 10.0, 1e-6),
        ("Selu", "", 10.0, 1e-6),
        ("Celu", "{alpha = 2.0}", 10.0, 1e-6),
        ("ThresholdedRelu", "{alpha = 0.3}", 10.0, 0.0),
        ("HardSigmoid", "{alpha = 0.3, beta = 0.4}", 10.0, 1e-7),
        ("HardSwish", "", 10.0, 1e-6),
        ("Softplus", "", 30.0, 1e-6),
        ("Softsign", "", 10.0, 3e-7),
        ("Mish", "", 10.0, 2e-6),
        ("Swish", "{alpha = 1.5}", 10.0, 1e-6),
        ("Gelu", "", 6.0, 2e-6),
        ("Gelu", "{approximate = \"tanh\"}", 6.0, 2e-6),
        ("Shrink", "{bias = 0.5, lambd = 1.5}", 10.0, 0.0),
        ("com.microsoft.Gelu", "", 6.0, 2e-6),
        ("com.microsoft.FastGelu", "", 6.0, 2e-6),
        ("com.microsoft.QuickGelu", "{alpha = 1.5}", 6.0, 1e-6),
    ];
    for &(op, attrs, scale, rt) in ops {
        for d in FLOATS {
            for (k, shape) in [vec![37], vec![3, 1, 5], vec![]].iter().enumerate() {
                let x = data(d, shape, 7 + k as u64, scale, true);
                // Where the reference itself cancels (FastGelu's 1 + tanh), absolute.
                op_check(op, attrs, &[x], None, tol(d, rt.max(1e-15)), 1e-15);
            }
        }
    }
}

#[test]
fn transcendentals_are_accurate_on_many_points() {
    // Dense sweeps, compared with the f64 reference rounded to f32.
    for (op, scale, rt) in [
        ("Exp", 90.0, 2.5e-7),
        ("Log", 1e6, 2.5e-7),
        ("Erf", 4.5, 2.5e-7),
        ("Tanh", 10.0, 2.5e-7),
    ] {
        let mut x = data(DType::F32, &[4099], 11, scale, false);
        if op == "Log" {
            let v: Vec<f32> = x.to_f64().iter().map(|&v| v.abs() as f32).collect();
            x = Tensor::from_f32s(vec![4099], v).unwrap();
        }
        op_check(op, "", &[x], None, rt, 1e-37);
    }
    // Subnormal inputs and results.
    let v: Vec<f32> = vec![
        1e-40, 3e-39, -1e-40, 1e-45, -87.5, -100.0, -103.9, 88.7, 88.8,
    ];
    let x = Tensor::from_f32s(vec![9], v).unwrap();
    op_check("Exp", "", &[x.clone()], None, 3e-7, 1e-44);
    let v: Vec<f32> = vec![
        1e-40, 3e-39, 1e-45, 1.0, 1.0000001, 0.9999999, 2.0, 0.5, 7.0,
    ];
    op_check(
        "Log",
        "",
        &[Tensor::from_f32s(vec![9], v).unwrap()],
        None,
        3e-7,
        0.0,
    );
}

#[test]
fn float_binary_ops_broadcast_everywhere() {
    let shapes: &[(&[usize], &[usize])] = &[
        (&[4, 6, 9], &[4, 6, 9]),
        (&[4, 6, 9], &[9]),
        (&[4, 6, 9], &[6, 1]),
        (&[4, 1, 9], &[1, 6, 1]),
        (&[1], &[4, 6, 9]),
        (&[4, 6, 1], &[4, 1, 9]),
        (&[], &[7]),
        (&[5, 1], &[]),
        (&[2, 1, 3, 1, 5], &[1, 4, 1, 6, 1]),
    ];
    for op in [
        "Add", "Sub", "Mul", "Div", "Max", "Min", "Pow", "Mod", "PRelu",
    ] {
        let attrs = if op == "Mod" { "{fmod = 1}" } else { "" };
        for d in FLOATS {
            for (k, (a, b)) in shapes.iter().enumerate() {
                let x = data(d, a, 3 + k as u64, 4.0, true);
                let y = data(d, b, 100 + k as u64, 4.0, true);
                let rt = if op == "Pow" { tol(d, 1e-15) } else { 0.0 };
                op_check(op, attrs, &[x, y], None, rt, 0.0);
            }
        }
    }
    // Mod with the divisor's sign.
    for d in [DType::F32, DType::F64] {
        let x = data(d, &[33], 1, 10.0, true);
        let y = data(d, &[33], 2, 3.0, true);
        op_check("Mod", "", &[x, y], None, 0.0, 0.0);
    }
}

#[test]
fn comparisons_and_logic() {
    for op in ["Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual"] {
        for d in FLOATS.into_iter().chain(INTS) {
            let x = data(d, &[3, 11], 5, 3.0, true);
            let mut y = data(d, &[11], 6, 3.0, true);
            if !d.is_float() {
                // Some equal pairs.
                let mut v = y.to_i64();
                v[2] = x.to_i64()[2];
                y = Tensor::from_i64(d, vec![11], &v);
            }
            op_check(op, "", &[x, y], Some(DType::Bool), 0.0, 0.0);
        }
    }
    let a = data(DType::Bool, &[2, 3, 17], 1, 0.0, false);
    let b = data(DType::Bool, &[3, 1], 2, 0.0, false);
    for op in ["And", "Or", "Xor", "Equal"] {
        op_check(op, "", &[a.clone(), b.clone()], None, 0.0, 0.0);
    }
    op_check("Not", "", &[a], None, 0.0, 0.0);
    for d in [DType::F32, DType::F64, DType::F16] {
        let x = data(d, &[29], 3, 10.0, true);
        op_check("IsNaN", "", &[x.clone()], Some(DType::Bool), 0.0, 0.0);
        op_check("IsInf", "", &[x.clone()], Some(DType::Bool), 0.0, 0.0);
        op_check(
            "IsInf",
            "{detect_negative = 0}",
            &[x.clone()],
            Some(DType::Bool),
            0.0,
            0.0,
        );
        op_check(
            "IsInf",
            "{detect_positive = 0}",
            &[x],
            Some(DType::Bool),
            0.0,
            0.0,
        );
    }
}

#[test]
fn integer_ops_wrap_like_the_dtype() {
    for d in INTS {
        let x = data(d, &[3, 13], 9, 0.0, true);
        let y = data(d, &[13], 10, 0.0, true);
        // Divisors without zeros (the reference rejects division by zero).
        let nz: Vec<i64> = y
            .to_i64()
            .iter()
            .map(|&v| if v == 0 { 3 } else { v })
            .collect();
        let ynz = Tensor::from_i64(d, vec![13], &nz);
        for op in ["Add", "Sub", "Mul", "Max", "Min", "Sum"] {
            op_check(op, "", &[x.clone(), y.clone()], None, 0.0, 0.0);
        }
        // Mean sums in 64 bits (the reference in 128): sums that fit.
        let small: Vec<i64> = x.to_i64().iter().map(|v| v.rem_euclid(1000)).collect();
        let xs = Tensor::from_i64(d, vec![3, 13], &small);
        op_check("Mean", "", &[xs.clone(), xs], None, 0.0, 0.0);
        for (op, attrs) in [("Div", ""), ("Mod", ""), ("Mod", "{fmod = 1}")] {
            op_check(op, attrs, &[x.clone(), ynz.clone()], None, 0.0, 0.0);
        }
        for op in ["Neg", "Abs", "Sign", "Relu", "BitwiseNot"] {
            op_check(op, "", &[x.clone()], None, 0.0, 0.0);
        }
        for op in ["BitwiseAnd", "BitwiseOr", "BitwiseXor", "PRelu"] {
            op_check(op, "", &[x.clone(), y.clone()], None, 0.0, 0.0);
        }
        let bits = (d.size() * 8) as i64;
        let amounts: Vec<i64> = (0..13).map(|i| i * bits / 8 - 2).collect();
        let s = Tensor::from_i64(d, vec![13], &amounts);
        for dir in ["LEFT", "RIGHT"] {
            let attrs = format!("{{direction = \"{dir}\"}}");
            op_check("BitShift", &attrs, &[x.clone(), s.clone()], None, 0.0, 0.0);
        }
        let e = Tensor::from_i64(d, vec![5], &[0, 1, 2, 7, 3]);
        let b = data(d, &[4, 5], 4, 0.0, true);
        op_check("Pow", "", &[b.clone(), e], None, 0.0, 0.0);
        let ef = Tensor::from_f32s(vec![5], vec![0.5, 2.0, -1.0, 1.5, 0.0]).unwrap();
        op_check("Pow", "", &[b.clone(), ef], None, 0.0, 0.0);
        op_check("Shrink", "{bias = 1.5, lambd = 2.0}", &[b], None, 0.0, 0.0);
    }
    // Min / -1 and small dtypes' extremes.
    let x = Tensor::from_i64(
        DType::I32,
        vec![4],
        &[i32::MIN as i64, 7, -7, i32::MAX as i64],
    );
    let y = Tensor::from_i64(DType::I32, vec![4], &[-1, -2, 2, -1]);
    op_check("Div", "", &[x.clone(), y.clone()], None, 0.0, 0.0);
    op_check("Mod", "", &[x.clone(), y.clone()], None, 0.0, 0.0);
    op_check("Mod", "{fmod = 1}", &[x, y], None, 0.0, 0.0);
    let x = Tensor::from_i64(DType::I64, vec![2], &[i64::MIN, i64::MIN]);
    let y = Tensor::from_i64(DType::I64, vec![2], &[-1, 3]);
    op_check("Div", "", &[x.clone(), y.clone()], None, 0.0, 0.0);
    op_check("Mod", "", &[x, y], None, 0.0, 0.0);
}

#[test]
fn integer_division_by_zero_gives_zero() {
    // The reference rejects it; the compiled kernel must neither trap nor crash.
    let g = graph(
        "graph @t(%a: i32[4], %b: i32[4]) -> (q: i32[4], r: i32[4]) {
           %0 = Div(%a, %b) : i32[4]
           %1 = Mod(%a, %b) : i32[4]
           return %0, %1
         }",
    );
    let m = load(&g, CpuFeatures::host()).unwrap();
    let a = Tensor::from_i64(DType::I32, vec![4], &[5, -5, i32::MIN as i64, 9]);
    let b = Tensor::from_i64(DType::I32, vec![4], &[0, 0, -1, 4]);
    let out = run(&m, &[a, b]);
    assert_eq!(out[0].to_i64(), vec![0, 0, i32::MIN as i64, 2]);
    assert_eq!(out[1].to_i64(), vec![0, 0, 0, 1]);
}

#[test]
fn variadic_where_clip() {
    for d in FLOATS
        .into_iter()
        .chain([DType::I32, DType::U8, DType::I64])
    {
        let a = data(d, &[2, 1, 7], 1, 5.0, true);
        let b = data(d, &[3, 7], 2, 5.0, true);
        let c = data(d, &[1], 3, 5.0, true);
        let small = |t: &Tensor| {
            if d.is_float() {
                return t.clone();
            }
            let v: Vec<i64> = t.to_i64().iter().map(|v| v.rem_euclid(1000)).collect();
            Tensor::from_i64(d, t.shape().to_vec(), &v)
        };
        let (a, b, c) = (small(&a), small(&b), small(&c));
        for op in ["Max", "Min", "Sum", "Mean"] {
            let rt = if op == "Mean" {
                tol(d, 2.5e-7)
            } else {
                tol(d, 0.0)
            };
            let rt = if d.is_float() && op == "Sum" {
                tol(d, 2.5e-7)
            } else {
                rt
            };
            op_check(op, "", &[a.clone(), b.clone(), c.clone()], None, rt, 1e-30);
            op_check(op, "", &[b.clone()], None, 0.0, 0.0);
        }
        let cond = data(DType::Bool, &[3, 1], 4, 0.0, false);
        op_check(
            "Where",
            "",
            &[cond, a.clone(), b.clone()],
            Some(d),
            0.0,
            0.0,
        );
        // Clip with both, one or no bound.
        let lo = data(d, &[], 5, 2.0, false);
        let hi = data(d, &[], 6, 2.0, false);
        let x = data(d, &[5, 9], 7, 5.0, true);
        for (name, ins) in [
            ("both", vec![x.clone(), lo.clone(), hi.clone()]),
            ("lo", vec![x.clone(), lo.clone()]),
            ("none", vec![x.clone()]),
        ] {
            let _ = name;
            op_check("Clip", "", &ins, None, 0.0, 0.0);
        }
        let text = format!(
            "graph @t(%x: {t}, %hi: {s}) -> (y: {t}) {{
               %0 = Clip(%x, _, %hi) : {t}
               return %0
             }}",
            t = ty(d, &[5, 9]),
            s = ty(d, &[])
        );
        check(&text, &[x, hi], 0.0, 0.0);
    }
}

#[test]
fn casts_between_every_pair() {
    let all: Vec<DType> = FLOATS
        .into_iter()
        .chain(INTS)
        .chain([DType::Bool])
        .collect();
    for &from in &all {
        for &to in &all {
            for scale in [3.0, 70000.0, 1e20] {
                let x = data(from, &[67], 17, scale, true);
                op_check(
                    "Cast",
                    &format!("{{to = {}}}", to.name()),
                    &[x],
                    Some(to),
                    0.0,
                    0.0,
                );
            }
        }
    }
    // Rounding at the edges: halfway cases, overflow, subnormals.
    let v = vec![
        65504.0,
        65519.9,
        65520.0,
        1e-8,
        6e-8,
        2.98e-8,
        -2.99e-8,
        1.0009765625,
        1.00048828125,
        3.0e38,
        -1e-45,
        1.00390625,
        1.005859375,
    ];
    for src in [DType::F32, DType::F64] {
        let x = Tensor::from_f64(src, vec![v.len()], &v);
        for to in [DType::F16, DType::BF16, DType::F32] {
            op_check(
                "Cast",
                &format!("{{to = {}}}", to.name()),
                &[x.clone()],
                Some(to),
                0.0,
                0.0,
            );
        }
    }
    let x = data(DType::F32, &[9], 1, 3.0, true);
    let like = data(DType::I16, &[2], 1, 0.0, false);
    check(
        "graph @t(%x: f32[9], %l: i16[2]) -> (y: i16[9]) {
           %0 = CastLike(%x, %l) : i16[9]
           return %0
         }",
        &[x, like],
        0.0,
        0.0,
    );
}

#[test]
fn symbolic_dims_and_dynamic_broadcast() {
    let text = "graph @t(%a: f32[2, seq, 5], %b: f32[seq, 1], %c: f32[5]) -> (y: f32[2, seq, 5]) {
       %0 = Mul(%a, %b) : f32[2, seq, 5]
       %1 = Add(%0, %c) : f32[2, seq, 5]
       %2 = Erf(%1) : f32[2, seq, 5]
       return %2
     }";
    for seq in [1, 3, 10] {
        let a = data(DType::F32, &[2, seq, 5], 1, 2.0, false);
        let b = data(DType::F32, &[seq, 1], 2, 2.0, false);
        let c = data(DType::F32, &[5], 3, 2.0, false);
        check(text, &[a, b, c], 3e-7, 1e-30);
    }
    // Two different symbols: either may be 1 at run time.
    let text = "graph @t(%a: f32[n, 3], %b: f32[m, 3]) -> (y: f32[max(m, n), 3]) {
       %0 = Add(%a, %b) : f32[max(m, n), 3]
       return %0
     }";
    for (n, m) in [(4, 4), (1, 4), (4, 1), (1, 1)] {
        let a = data(DType::F32, &[n, 3], 1, 2.0, false);
        let b = data(DType::F32, &[m, 3], 2, 2.0, false);
        check(text, &[a, b], 0.0, 0.0);
    }
    let text = "graph @t(%a: f32[3, n], %b: f32[3, m]) -> (y: f32[3, max(m, n)]) {
       %0 = Sub(%a, %b) : f32[3, max(m, n)]
       return %0
     }";
    for (n, m) in [(5, 5), (1, 6), (6, 1)] {
        let a = data(DType::F32, &[3, n], 1, 2.0, false);
        let b = data(DType::F32, &[3, m], 2, 2.0, false);
        check(text, &[a, b], 0.0, 0.0);
    }
}

#[test]
fn fused_ops_and_dropout() {
    for d in [DType::F32, DType::F16, DType::F64] {
        let g = data(d, &[3, 10], 1, 9.0, true);
        let u = data(d, &[3, 10], 2, 9.0, true);
        let t = ty(d, &[3, 10]);
        for attrs in ["", "{alpha = 1.702, beta = 1.0, limit = 7.0}"] {
            check(
                &format!(
                    "graph @t(%g: {t}, %u: {t}) -> (y: {t}) {{
                       %0 = swiglu(%g, %u) {attrs} : {t}
                       return %0
                     }}"
                ),
                &[g.clone(), u.clone()],
                tol(d, 1e-6),
                1e-30,
            );
        }
        check(
            &format!(
                "graph @t(%g: {t}, %u: {t}) -> (y: {t}) {{
                   %0 = SwiGLU(%g, %u) {{alpha = 1.5}} : {t}
                   return %0
                 }}"
            ),
            &[g.clone(), u.clone()],
            tol(d, 1e-6),
            1e-30,
        );
        let b = data(d, &[10], 3, 1.0, false);
        check(
            &format!(
                "graph @t(%x: {t}, %b: {bt}) -> (y: {t}) {{
                   %0 = com.microsoft.FastGelu(%x, %b) : {t}
                   return %0
                 }}",
                bt = ty(d, &[10])
            ),
            &[g.clone(), b],
            tol(d, 2e-6),
            1e-15,
        );
        check(
            &format!(
                "graph @t(%x: {t}) -> (y: {t}, m: bool[3, 10]) {{
                   %0, %1 = Dropout(%x) : {t}, bool[3, 10]
                   return %0, %1
                 }}"
            ),
            &[g],
            0.0,
            0.0,
        );
    }
}

/// The number of steps the lowering schedules for `text`.
fn steps(text: &str) -> usize {
    let g = graph(text);
    let isa = x86_64_isa(CpuFeatures::host()).unwrap();
    crate::cpu::lower::lower(&g, &isa).unwrap().steps.len()
}

const GELU_CHAIN: &str = "graph @t(%x: f32[2, seq, 12], %b: f32[12]) -> (y: f32[2, seq, 12]) {
   %0 = Add(%x, %b) : f32[2, seq, 12]
   %1 = constant {value = dense<f32[]>[1.4142135]} : f32[]
   %2 = Div(%0, %1) : f32[2, seq, 12]
   %3 = Erf(%2) : f32[2, seq, 12]
   %4 = constant {value = dense<f32[]>[1.0]} : f32[]
   %5 = Add(%3, %4) : f32[2, seq, 12]
   %6 = constant {value = dense<f32[]>[0.5]} : f32[]
   %7 = Mul(%6, %5) : f32[2, seq, 12]
   %8 = Mul(%0, %7) : f32[2, seq, 12]
   return %8
 }";

#[test]
fn chains_fuse_into_one_kernel() {
    assert_eq!(steps(GELU_CHAIN), 1);
    for seq in [1, 5] {
        let x = data(DType::F32, &[2, seq, 12], 1, 4.0, true);
        let b = data(DType::F32, &[12], 2, 1.0, false);
        check(GELU_CHAIN, &[x, b], 2e-6, 1e-30);
    }
    // A value that is also a graph output keeps its buffer and its own step; values used
    // twice inside one group are computed once.
    let text = "graph @t(%x: f32[4, 6], %y: f32[6]) -> (a: f32[4, 6], b: f32[4, 6]) {
       %0 = Add(%x, %y) : f32[4, 6]
       %1 = Exp(%0) : f32[4, 6]
       %2 = Neg(%0) : f32[4, 6]
       %3 = Mul(%1, %2) : f32[4, 6]
       return %3, %0
     }";
    assert_eq!(steps(text), 2);
    let x = data(DType::F32, &[4, 6], 1, 2.0, false);
    let y = data(DType::F32, &[6], 2, 2.0, false);
    check(text, &[x, y], 3e-7, 0.0);
    // Mixed dtypes in one group: a bool mask cast to f32 and scaled (vectorized), an i64
    // chain (scalar), and an f16 chain rounded after every op.
    let text = "graph @t(%m: bool[3, 9], %x: f32[3, 9]) -> (y: f32[3, 9]) {
       %0 = Cast(%m) {to = f32} : f32[3, 9]
       %1 = constant {value = dense<f32[]>[1.0]} : f32[]
       %2 = Sub(%1, %0) : f32[3, 9]
       %3 = constant {value = dense<f32[]>[-10000.0]} : f32[]
       %4 = Mul(%2, %3) : f32[3, 9]
       %5 = Add(%4, %x) : f32[3, 9]
       return %5
     }";
    assert_eq!(steps(text), 1);
    let m = data(DType::Bool, &[3, 9], 1, 0.0, false);
    let x = data(DType::F32, &[3, 9], 2, 2.0, false);
    check(text, &[m, x], 0.0, 0.0);
    let text = "graph @t(%a: i64[7], %b: i64[7]) -> (y: i32[7]) {
       %0 = Mul(%a, %b) : i64[7]
       %1 = Cast(%0) {to = i32} : i32[7]
       %2 = Abs(%1) : i32[7]
       return %2
     }";
    assert_eq!(steps(text), 1);
    let a = data(DType::I64, &[7], 1, 0.0, true);
    let b = data(DType::I64, &[7], 2, 0.0, true);
    check(text, &[a, b], 0.0, 0.0);
    let text = "graph @t(%a: f16[33], %b: f16[33]) -> (y: f16[33]) {
       %0 = Mul(%a, %b) : f16[33]
       %1 = Add(%0, %a) : f16[33]
       %2 = Sub(%1, %b) : f16[33]
       return %2
     }";
    let a = data(DType::F16, &[33], 1, 300.0, true);
    let b = data(DType::F16, &[33], 2, 300.0, true);
    check(text, &[a, b], 0.0, 0.0);
}
