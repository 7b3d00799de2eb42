//! The index ops compiled and checked against the reference interpreter.

use std::collections::HashMap;

use kiln_ir::{DType, Dim, Tensor};

use crate::cpu::codegen::isa::CpuFeatures;
use crate::cpu::testing::{check, floats, graph, load, run};

fn ints(dtype: DType, shape: &[usize], v: &[i64]) -> Tensor {
    Tensor::from_i64(dtype, shape.to_vec(), v)
}

fn cast(t: &Tensor, dtype: DType) -> Tensor {
    Tensor::from_f64(dtype, t.shape().to_vec(), &t.to_f64())
}

/// Compiles and runs `text` without comparing (for inputs the interpreter rejects).
fn run_only(text: &str, inputs: &[Tensor]) -> Vec<Tensor> {
    let g = graph(text);
    let m = load(&g, CpuFeatures::host()).unwrap_or_else(|e| panic!("compile: {e}"));
    run(&m, inputs)
}

/// Checks `text`, whose output dims depend on input values, with those dims pinned to
/// `dims` (as a model's declared output shape pins them): the compiled graph reads the
/// values (scales, sizes, K) at run time.
fn check_pinned(text: &str, dims: &[(&str, i64)], inputs: &[Tensor], tol: f64) {
    let g0 = graph(text);
    let named: HashMap<String, Tensor> = g0
        .inputs()
        .iter()
        .map(|&v| g0.input_name(v).unwrap().to_string())
        .zip(inputs.iter().cloned())
        .collect();
    let want = kiln_ir::interp::run(&g0, &named).unwrap();
    let mut g = g0.clone();
    let pin = |s: &str| dims.iter().find(|d| d.0 == s).map(|d| Dim::from(d.1));
    for id in g.node_ids() {
        for t in &mut g.node_mut(id).outputs {
            t.shape = t.shape.iter().map(|d| d.substitute(&pin)).collect();
        }
    }
    let m = load(&g, CpuFeatures::host()).unwrap_or_else(|e| panic!("compile: {e}"));
    let got = run(&m, inputs);
    for ((name, w), g) in want.iter().zip(&got) {
        assert_eq!(w.shape(), g.shape(), "{name}");
        for (a, b) in w.to_f64().iter().zip(g.to_f64()) {
            let same = (a.is_nan() && b.is_nan()) || (a - b).abs() <= tol * (1.0 + a.abs());
            assert!(same, "{name}: {a} vs {b}");
        }
    }
}

fn compile_error(text: &str) -> String {
    let g = graph(text);
    match load(&g, CpuFeatures::host()) {
        Ok(_) => panic!("compiled: {text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn gather_every_axis_index_dtypes_and_negative_indices() {
    let x = floats(&[3, 4, 5], 1);
    for (axis, d) in [(0, 3i64), (1, 4), (2, 5), (-1, 5)] {
        for idt in ["i64", "i32"] {
            let dt = if idt == "i64" { DType::I64 } else { DType::I32 };
            let i = ints(dt, &[2, 2], &[0, -1, d - 1, -d]);
            let mut shape = vec!["3", "4", "5"];
            let ax = if axis < 0 { 2 } else { axis as usize };
            shape.splice(ax..ax + 1, ["2", "2"]);
            let text = format!(
                "graph @t(%x: f32[3, 4, 5], %i: {idt}[2, 2]) -> (y: f32[{}]) {{
                   %0 = Gather(%x, %i) {{axis = {axis}}} : f32[{}]
                   return %0
                 }}",
                shape.join(", "),
                shape.join(", ")
            );
            check(&text, &[x.clone(), i], 0.0, 0.0);
        }
    }
}

#[test]
fn gather_dtypes_scalar_index_and_symbolic_rows() {
    // Embedding lookup: rows of a table by token ids of a symbolic length.
    let table = floats(&[10, 6], 2);
    let ids = ints(DType::I64, &[1, 4], &[3, 0, 9, -2]);
    check(
        "graph @t(%w: f32[10, 6], %ids: i64[1, seq]) -> (y: f32[1, seq, 6]) {
           %0 = Gather(%w, %ids) {axis = 0} : f32[1, seq, 6]
           return %0
         }",
        &[table.clone(), ids],
        0.0,
        0.0,
    );
    for (dt, name) in [
        (DType::F16, "f16"),
        (DType::I64, "i64"),
        (DType::U8, "u8"),
        (DType::Bool, "bool"),
        (DType::F64, "f64"),
    ] {
        let x = cast(&floats(&[seq_len(), 3], 3), dt);
        let text = format!(
            "graph @t(%x: {name}[seq, 3], %i: i32[]) -> (y: {name}[seq]) {{
               %0 = Gather(%x, %i) {{axis = 1}} : {name}[seq]
               return %0
             }}"
        );
        check(&text, &[x, ints(DType::I32, &[], &[-1])], 0.0, 0.0);
    }
}

fn seq_len() -> usize {
    7
}

#[test]
fn gather_constant_index_is_a_view() {
    let x = floats(&[4, 3], 4);
    check(
        "graph @t(%x: f32[4, 3]) -> (y: f32[2], z: f32[3]) {
           %0 = constant {value = dense<i64[]>[-2]} : i64[]
           %1 = Gather(%x, %0) {axis = 0} : f32[3]
           %2 = constant {value = dense<i32[2]>[2, 0]} : i32[2]
           %3 = Gather(%1, %2) {axis = 0} : f32[2]
           %4 = Gather(%x, %0) {axis = 0} : f32[3]
           return %3, %4
         }",
        &[x],
        0.0,
        0.0,
    );
}

#[test]
fn gather_out_of_range_gives_zeros() {
    let x = floats(&[3, 2], 5);
    let y = run_only(
        "graph @t(%x: f32[3, 2], %i: i64[3]) -> (y: f32[3, 2]) {
           %0 = Gather(%x, %i) {axis = 0} : f32[3, 2]
           return %0
         }",
        &[x.clone(), ints(DType::I64, &[3], &[1, 3, -4])],
    );
    let xv = x.to_f64();
    assert_eq!(y[0].to_f64(), vec![xv[2], xv[3], 0.0, 0.0, 0.0, 0.0]);
}

#[test]
fn gather_elements_axes() {
    let x = floats(&[3, 4], 6);
    for axis in [0i64, 1, -1] {
        for (idt, dt) in [("i64", DType::I64), ("i32", DType::I32)] {
            let i = ints(dt, &[2, 3], &[0, -1, 2, 1, 0, -2]);
            let text = format!(
                "graph @t(%x: f32[3, 4], %i: {idt}[2, 3]) -> (y: f32[2, 3]) {{
                   %0 = GatherElements(%x, %i) {{axis = {axis}}} : f32[2, 3]
                   return %0
                 }}"
            );
            check(&text, &[x.clone(), i], 0.0, 0.0);
        }
    }
}

#[test]
fn gather_nd_batch_dims() {
    let x = floats(&[2, 3, 4], 7);
    check(
        "graph @t(%x: f32[2, 3, 4], %i: i64[5, 2]) -> (y: f32[5, 4]) {
           %0 = GatherND(%x, %i) : f32[5, 4]
           return %0
         }",
        &[
            x.clone(),
            ints(DType::I64, &[5, 2], &[0, 0, 1, 2, -1, -1, 0, -3, 1, 1]),
        ],
        0.0,
        0.0,
    );
    check(
        "graph @t(%x: f32[2, 3, 4], %i: i32[2, 2, 2]) -> (y: f32[2, 2]) {
           %0 = GatherND(%x, %i) {batch_dims = 1} : f32[2, 2]
           return %0
         }",
        &[
            x.clone(),
            ints(DType::I32, &[2, 2, 2], &[0, 3, 2, -1, 1, 1, -3, 0]),
        ],
        0.0,
        0.0,
    );
    let p = ints(DType::I64, &[6, 1], &[5, 4, 3, 2, 1, 0]);
    check(
        "graph @t(%x: i64[seq, 1], %i: i64[1, seq, 1]) -> (y: i64[1, seq, 1]) {
           %0 = GatherND(%x, %i) : i64[1, seq, 1]
           return %0
         }",
        &[p, ints(DType::I64, &[1, 6, 1], &[0, 2, 4, 1, 3, 5])],
        0.0,
        0.0,
    );
}

#[test]
fn one_hot_axes_and_depths() {
    let i = ints(DType::I64, &[2, 3], &[0, 2, -1, 5, -4, 1]);
    for axis in [-1i64, 0, 1, 2] {
        let shape = match axis {
            0 => "4, 2, 3",
            1 => "2, 4, 3",
            _ => "2, 3, 4",
        };
        let text = format!(
            "graph @t(%i: i64[2, 3], %v: f32[2]) -> (y: f32[{shape}]) {{
               %0 = constant {{value = dense<i64[]>[4]}} : i64[]
               %1 = OneHot(%i, %0, %v) {{axis = {axis}}} : f32[{shape}]
               return %1
             }}"
        );
        let v = Tensor::from_f32s(vec![2], vec![-1.0, 3.0]).unwrap();
        check(&text, &[i.clone(), v], 0.0, 0.0);
    }
    let f = Tensor::from_f32s(vec![3], vec![1.7, -1.2, 2.0]).unwrap();
    check(
        "graph @t(%i: f32[3], %v: i32[2]) -> (y: i32[3, 3]) {
           %0 = constant {value = dense<f32[]>[3.0]} : f32[]
           %1 = OneHot(%i, %0, %v) : i32[3, 3]
           return %1
         }",
        &[f, ints(DType::I32, &[2], &[0, 7])],
        0.0,
        0.0,
    );
}

#[test]
fn compress_with_constant_condition() {
    let x = floats(&[3, 4], 8);
    check(
        "graph @t(%x: f32[3, 4]) -> (y: f32[3, 2], z: f32[2]) {
           %0 = constant {value = dense<bool[3]>[false, true, true]} : bool[3]
           %1 = Compress(%x, %0) {axis = -1} : f32[3, 2]
           %2 = Compress(%x, %0) : f32[2]
           return %1, %2
         }",
        &[x],
        0.0,
        0.0,
    );
}

#[test]
fn data_dependent_shapes_are_clear_errors() {
    for (op, text) in [
        (
            "NonZero",
            "graph @t(%x: f32[4]) -> (y: i64[1, u0]) {
               %0 = NonZero(%x) : i64[1, u0]
               return %0
             }",
        ),
        (
            "Compress",
            "graph @t(%x: f32[4], %c: bool[4]) -> (y: f32[u0]) {
               %0 = Compress(%x, %c) : f32[u0]
               return %0
             }",
        ),
        (
            "Resize",
            "graph @t(%x: f32[1, 1, 2, 2], %s: f32[4]) -> (y: f32[u0, u1, u2, u3]) {
               %0 = Resize(%x, _, %s) : f32[u0, u1, u2, u3]
               return %0
             }",
        ),
    ] {
        let e = compile_error(text);
        assert!(
            e.contains(&format!("of {op} has the data-dependent shape")),
            "{e}"
        );
    }
}

#[test]
fn scatter_elements_reductions_and_duplicates() {
    let x = floats(&[3, 4], 9);
    let u = floats(&[2, 3], 10);
    let i = ints(DType::I64, &[2, 3], &[0, -1, 2, 0, 0, 1]);
    for red in ["none", "add", "mul", "max", "min"] {
        for axis in [0i64, 1] {
            for (idt, dt) in [("i64", DType::I64), ("i32", DType::I32)] {
                let text = format!(
                    "graph @t(%x: f32[3, 4], %i: {idt}[2, 3], %u: f32[2, 3]) -> (y: f32[3, 4]) {{
                       %0 = ScatterElements(%x, %i, %u) {{axis = {axis}, reduction = \"{red}\"}} : f32[3, 4]
                       return %0
                     }}"
                );
                check(&text, &[x.clone(), cast(&i, dt), u.clone()], 0.0, 0.0);
            }
        }
    }
    let xi = ints(DType::I32, &[5], &[1, 2, 3, 4, 5]);
    check(
        "graph @t(%x: i32[5], %i: i64[3], %u: i32[3]) -> (y: i32[5]) {
           %0 = ScatterElements(%x, %i, %u) {axis = 0, reduction = \"add\"} : i32[5]
           %1 = Scatter(%x, %i, %u) {axis = 0} : i32[5]
           return %0
         }",
        &[
            xi,
            ints(DType::I64, &[3], &[4, 4, -5]),
            ints(DType::I32, &[3], &[10, 20, 30]),
        ],
        0.0,
        0.0,
    );
}

#[test]
fn scatter_nd_slices_and_reductions() {
    let x = floats(&[4, 3], 11);
    for red in ["none", "add", "mul", "max", "min"] {
        let text = format!(
            "graph @t(%x: f32[4, 3], %i: i64[3, 1], %u: f32[3, 3]) -> (y: f32[4, 3], z: f32[4, 3]) {{
               %0 = ScatterND(%x, %i, %u) {{reduction = \"{red}\"}} : f32[4, 3]
               %1 = constant {{value = dense<i64[2, 2]>[0, 1, -1, -1]}} : i64[2, 2]
               %2 = constant {{value = dense<f32[2]>[5.0, -6.0]}} : f32[2]
               %3 = ScatterND(%x, %1, %2) {{reduction = \"{red}\"}} : f32[4, 3]
               return %0, %3
             }}"
        );
        let i = ints(DType::I64, &[3, 1], &[1, -1, 1]);
        check(&text, &[x.clone(), i, floats(&[3, 3], 12)], 0.0, 0.0);
    }
    // A KV-cache style update with a symbolic sequence.
    check(
        "graph @t(%x: f32[2, seq, 3], %i: i64[2, 1, 2], %u: f32[2, 1, 3]) -> (y: f32[2, seq, 3]) {
           %0 = ScatterND(%x, %i, %u) : f32[2, seq, 3]
           return %0
         }",
        &[
            floats(&[2, 5, 3], 13),
            ints(DType::I64, &[2, 1, 2], &[0, 4, 1, 2]),
            floats(&[2, 1, 3], 14),
        ],
        0.0,
        0.0,
    );
}

#[test]
fn scatter_out_of_range_is_skipped() {
    let x = floats(&[3], 15);
    let y = run_only(
        "graph @t(%x: f32[3], %i: i64[2], %u: f32[2]) -> (y: f32[3]) {
           %0 = ScatterElements(%x, %i, %u) : f32[3]
           return %0
         }",
        &[
            x.clone(),
            ints(DType::I64, &[2], &[7, 1]),
            Tensor::from_f32s(vec![2], vec![9.0, 8.0]).unwrap(),
        ],
    );
    let xv = x.to_f64();
    assert_eq!(y[0].to_f64(), vec![xv[0], 8.0, xv[2]]);
}

#[test]
fn tensor_scatter_modes() {
    let c = floats(&[2, 2, 4, 3], 16);
    let u = floats(&[2, 2, 2, 3], 17);
    for mode in ["linear", "circular"] {
        let w = if mode == "linear" { [2, 0] } else { [3, 1] };
        let text = format!(
            "graph @t(%c: f32[2, 2, 4, 3], %u: f32[2, 2, 2, 3], %w: i64[2]) -> (y: f32[2, 2, 4, 3]) {{
               %0 = TensorScatter(%c, %u, %w) {{mode = \"{mode}\"}} : f32[2, 2, 4, 3]
               return %0
             }}"
        );
        check(
            &text,
            &[c.clone(), u.clone(), ints(DType::I64, &[2], &w)],
            0.0,
            0.0,
        );
    }
    check(
        "graph @t(%c: f32[2, 2, 4, 3], %u: f32[2, 2, 2, 3]) -> (y: f32[2, 2, 4, 3]) {
           %0 = TensorScatter(%c, %u, _) : f32[2, 2, 4, 3]
           return %0
         }",
        &[c, u],
        0.0,
        0.0,
    );
}

#[test]
fn top_k_orders_and_ties() {
    let x = Tensor::from_f32s(
        vec![2, 6],
        vec![1., 3., 3., -0., 0., 2., 5., f32::NAN, 5., -1., 5., 4.],
    )
    .unwrap();
    for largest in [0, 1] {
        for axis in [-1i64, 1] {
            let text = format!(
                "graph @t(%x: f32[2, 6]) -> (v: f32[2, 4], i: i64[2, 4]) {{
                   %0 = constant {{value = dense<i64[1]>[4]}} : i64[1]
                   %1, %2 = TopK(%x, %0) {{axis = {axis}, largest = {largest}, sorted = 1}} : f32[2, 4], i64[2, 4]
                   return %1, %2
                 }}"
            );
            check(&text, std::slice::from_ref(&x), 0.0, 0.0);
        }
    }
    // Axis 0 with an inner stride, integer data, symbolic rows.
    let xi = ints(
        DType::I32,
        &[5, 3],
        &[4, 1, 1, 4, 2, 2, 9, 1, 0, -3, 7, 2, 4, 1, 8],
    );
    check(
        "graph @t(%x: i32[5, 3]) -> (v: i32[2, 3], i: i64[2, 3]) {
           %0 = constant {value = dense<i64[1]>[2]} : i64[1]
           %1, %2 = TopK(%x, %0) {axis = 0} : i32[2, 3], i64[2, 3]
           return %1, %2
         }",
        &[xi],
        0.0,
        0.0,
    );
    check(
        "graph @t(%x: f32[seq, 8]) -> (v: f32[seq, 2], i: i64[seq, 2]) {
           %0 = constant {value = dense<i64[1]>[2]} : i64[1]
           %1, %2 = TopK(%x, %0) {axis = -1, largest = 1, sorted = 0} : f32[seq, 2], i64[seq, 2]
           return %1, %2
         }",
        &[floats(&[5, 8], 18)],
        0.0,
        0.0,
    );
    let u = Tensor::from_le_bytes(
        DType::U64,
        vec![3],
        &[u64::MAX, 3, 1u64 << 63]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    check(
        "graph @t(%x: u64[3]) -> (v: u64[2], i: i64[2]) {
           %0 = constant {value = dense<i64[1]>[2]} : i64[1]
           %1, %2 = TopK(%x, %0) : u64[2], i64[2]
           return %1, %2
         }",
        &[u],
        0.0,
        0.0,
    );
}

#[test]
fn resize_modes() {
    let x = floats(&[1, 2, 4, 5], 19);
    let cases = [
        (
            "nearest",
            "asymmetric",
            "floor",
            "[1.0, 1.0, 2.0, 1.5]",
            "1, 2, 8, 7",
        ),
        (
            "nearest",
            "half_pixel",
            "round_prefer_ceil",
            "[1.0, 1.0, 0.5, 2.0]",
            "1, 2, 2, 10",
        ),
        (
            "linear",
            "half_pixel",
            "round_prefer_floor",
            "[1.0, 1.0, 1.5, 0.6]",
            "1, 2, 6, 3",
        ),
        (
            "linear",
            "align_corners",
            "round_prefer_floor",
            "[1.0, 1.0, 2.0, 2.0]",
            "1, 2, 8, 10",
        ),
        (
            "cubic",
            "pytorch_half_pixel",
            "round_prefer_floor",
            "[1.0, 1.0, 0.5, 0.8]",
            "1, 2, 2, 4",
        ),
        (
            "cubic",
            "half_pixel_symmetric",
            "round_prefer_floor",
            "[1.0, 1.0, 1.7, 1.3]",
            "1, 2, 6, 6",
        ),
    ];
    for (mode, coord, nearest, scales, out) in cases {
        for extra in ["", ", antialias = 1", ", exclude_outside = 1"] {
            let text = format!(
                "graph @t(%x: f32[1, 2, 4, 5]) -> (y: f32[{out}]) {{
                   %0 = constant {{value = dense<f32[4]>{scales}}} : f32[4]
                   %1 = Resize(%x, _, %0) {{mode = \"{mode}\", coordinate_transformation_mode = \"{coord}\", nearest_mode = \"{nearest}\"{extra}}} : f32[{out}]
                   return %1
                 }}"
            );
            check(&text, std::slice::from_ref(&x), 1e-6, 1e-6);
        }
    }
    // sizes with an aspect-ratio policy on two axes; tf_crop_and_resize with roi.
    check(
        "graph @t(%x: f32[1, 2, 4, 5]) -> (y: f32[1, 2, 3, 4], z: f32[1, 2, 3, 3]) {
           %0 = constant {value = dense<i64[2]>[3, 3]} : i64[2]
           %1 = Resize(%x, _, _, %0) {axes = [2, 3], keep_aspect_ratio_policy = \"not_smaller\", mode = \"linear\"} : f32[1, 2, 3, 4]
           %2 = constant {value = dense<f32[4]>[0.1, 0.2, 0.9, 0.7]} : f32[4]
           %3 = Resize(%x, %2, _, %0) {axes = [3, 2], coordinate_transformation_mode = \"tf_crop_and_resize\", extrapolation_value = 7.0, mode = \"linear\"} : f32[1, 2, 3, 3]
           return %1, %3
         }",
        std::slice::from_ref(&x),
        1e-6,
        1e-6,
    );
    // Integer images round and saturate.
    let xi = ints(DType::U8, &[1, 1, 2, 3], &[0, 255, 100, 30, 7, 250]);
    check(
        "graph @t(%x: u8[1, 1, 2, 3]) -> (y: u8[1, 1, 4, 6]) {
           %0 = constant {value = dense<f32[4]>[1.0, 1.0, 2.0, 2.0]} : f32[4]
           %1 = Resize(%x, _, %0) {mode = \"cubic\"} : u8[1, 1, 4, 6]
           return %1
         }",
        &[xi],
        0.0,
        0.0,
    );
}

#[test]
fn grid_sample_modes_and_padding() {
    let x = floats(&[1, 2, 3, 4], 20);
    let mut g = floats(&[1, 2, 5, 2], 21).to_f64();
    g.iter_mut().for_each(|v| *v *= 1.4);
    let g = Tensor::from_f64(DType::F32, vec![1, 2, 5, 2], &g);
    for mode in ["nearest", "bilinear", "bicubic"] {
        for padding in ["zeros", "border", "reflection"] {
            for align in [0, 1] {
                let text = format!(
                    "graph @t(%x: f32[1, 2, 3, 4], %g: f32[1, 2, 5, 2]) -> (y: f32[1, 2, 2, 5]) {{
                       %0 = GridSample(%x, %g) {{align_corners = {align}, mode = \"{mode}\", padding_mode = \"{padding}\"}} : f32[1, 2, 2, 5]
                       return %0
                     }}"
                );
                check(&text, &[x.clone(), g.clone()], 1e-6, 1e-6);
            }
        }
    }
    // Volumetric.
    check(
        "graph @t(%x: f32[1, 1, 2, 3, 2], %g: f32[1, 2, 2, 1, 3]) -> (y: f32[1, 1, 2, 2, 1]) {
           %0 = GridSample(%x, %g) {mode = \"linear\"} : f32[1, 1, 2, 2, 1]
           return %0
         }",
        &[floats(&[1, 1, 2, 3, 2], 22), floats(&[1, 2, 2, 1, 3], 23)],
        1e-6,
        1e-6,
    );
}

#[test]
fn roi_align_affine_grid_max_unpool() {
    let x = floats(&[2, 2, 5, 6], 24);
    let rois = Tensor::from_f32s(
        vec![3, 4],
        vec![0.5, 1.0, 4.0, 3.5, 0.0, 0.0, 5.0, 4.0, 1.2, 0.3, 2.2, 4.4],
    )
    .unwrap();
    for mode in ["avg", "max"] {
        for coord in ["half_pixel", "output_half_pixel"] {
            let text = format!(
                "graph @t(%x: f32[2, 2, 5, 6], %r: f32[3, 4], %b: i64[3]) -> (y: f32[3, 2, 2, 3]) {{
                   %0 = RoiAlign(%x, %r, %b) {{coordinate_transformation_mode = \"{coord}\", mode = \"{mode}\", output_height = 2, output_width = 3, sampling_ratio = 2, spatial_scale = 0.9}} : f32[3, 2, 2, 3]
                   return %0
                 }}"
            );
            check(
                &text,
                &[x.clone(), rois.clone(), ints(DType::I64, &[3], &[1, 0, 1])],
                1e-6,
                1e-6,
            );
        }
    }
    check(
        "graph @t(%t: f32[2, 2, 3]) -> (y: f32[2, 3, 4, 2]) {
           %0 = constant {value = dense<i64[4]>[2, 1, 3, 4]} : i64[4]
           %1 = AffineGrid(%t, %0) {align_corners = 0} : f32[2, 3, 4, 2]
           return %1
         }",
        &[floats(&[2, 2, 3], 25)],
        1e-6,
        1e-6,
    );
    check(
        "graph @t(%x: f32[1, 1, 2, 2], %i: i64[1, 1, 2, 2]) -> (y: f32[1, 1, 4, 4]) {
           %0 = MaxUnpool(%x, %i) {kernel_shape = [2, 2], strides = [2, 2]} : f32[1, 1, 4, 4]
           return %0
         }",
        &[
            floats(&[1, 1, 2, 2], 26),
            ints(DType::I64, &[1, 1, 2, 2], &[5, 7, 13, 15]),
        ],
        0.0,
        0.0,
    );
}

#[test]
fn run_time_scales_sizes_k_and_depth() {
    let x = floats(&[1, 1, 3, 4], 27);
    let scales = Tensor::from_f32s(vec![4], vec![1.0, 1.0, 0.6, 1.5]).unwrap();
    check_pinned(
        "graph @t(%x: f32[1, 1, 3, 4], %s: f32[4]) -> (y: f32[u0, u1, u2, u3]) {
           %0 = Resize(%x, _, %s) {mode = \"cubic\"} : f32[u0, u1, u2, u3]
           return %0
         }",
        &[("u0", 1), ("u1", 1), ("u2", 1), ("u3", 6)],
        &[x.clone(), scales],
        1e-6,
    );
    let roi = Tensor::from_f32s(vec![4], vec![0.2, 0.1, 0.9, 0.8]).unwrap();
    check_pinned(
        "graph @t(%x: f32[1, 1, 3, 4], %r: f32[4], %z: i64[2]) -> (y: f32[1, 1, u0, u1]) {
           %0 = Resize(%x, %r, _, %z) {axes = [2, 3], coordinate_transformation_mode = \"tf_crop_and_resize\", mode = \"linear\"} : f32[1, 1, u0, u1]
           return %0
         }",
        &[("u0", 5), ("u1", 2)],
        &[x.clone(), roi, ints(DType::I64, &[2], &[5, 2])],
        1e-6,
    );
    check_pinned(
        "graph @t(%x: f32[3, 4], %k: i64[1]) -> (v: f32[3, u0], i: i64[3, u0]) {
           %0, %1 = TopK(%x, %k) : f32[3, u0], i64[3, u0]
           return %0, %1
         }",
        &[("u0", 3)],
        &[floats(&[3, 4], 28), ints(DType::I64, &[1], &[3])],
        0.0,
    );
    check_pinned(
        "graph @t(%i: i64[3], %d: i64[], %v: f32[2]) -> (y: f32[3, u0]) {
           %0 = OneHot(%i, %d, %v) : f32[3, u0]
           return %0
         }",
        &[("u0", 5)],
        &[
            ints(DType::I64, &[3], &[4, -1, 9]),
            ints(DType::I64, &[], &[5]),
            Tensor::from_f32s(vec![2], vec![0.0, 1.0]).unwrap(),
        ],
        0.0,
    );
}

#[test]
fn selections_with_pinned_sizes() {
    let x = Tensor::from_f32s(vec![2, 3], vec![0.0, -0.0, 2.0, f32::NAN, 0.0, -1.0]).unwrap();
    check_pinned(
        "graph @t(%x: f32[2, 3]) -> (y: i64[2, u0]) {
           %0 = NonZero(%x) : i64[2, u0]
           return %0
         }",
        &[("u0", 3)],
        std::slice::from_ref(&x),
        0.0,
    );
    let c = Tensor::from_i64(DType::Bool, vec![4], &[1, 0, 1, 1]);
    let c2 = Tensor::from_i64(DType::Bool, vec![2], &[0, 1]);
    check_pinned(
        "graph @t(%x: f32[2, 3], %c: bool[4], %d: bool[2]) -> (y: f32[u0, 3], z: f32[u1]) {
           %0 = Compress(%x, %d) {axis = 0} : f32[u0, 3]
           %1 = Compress(%x, %c) : f32[u1]
           return %0, %1
         }",
        &[("u0", 1), ("u1", 3)],
        &[x, c, c2],
        0.0,
    );
    let v = Tensor::from_f32s(vec![4, 2], vec![1., 2., 0., 9., 1., 2., -0., 9.]).unwrap();
    for sorted in [0, 1] {
        let text = format!(
            "graph @t(%x: f32[4, 2]) -> (y: f32[u0, 2], i: i64[u0], v: i64[4], c: i64[u0], f: f32[u1]) {{
               %0, %1, %2, %3 = Unique(%x) {{axis = 0, sorted = {sorted}}} : f32[u0, 2], i64[u0], i64[4], i64[u0]
               %4 = Unique(%x) {{sorted = {sorted}}} : f32[u1]
               return %0, %1, %2, %3, %4
             }}"
        );
        check_pinned(
            &text,
            &[("u0", 2), ("u1", 4)],
            std::slice::from_ref(&v),
            0.0,
        );
    }
    let boxes = Tensor::from_f32s(
        vec![1, 6, 4],
        vec![
            0., 0., 1., 1., 0., 0.1, 1., 1.1, 0., -0.1, 1., 0.9, 0., 10., 1., 11., 0., 10.1, 1.,
            11.1, 0., 100., 1., 101.,
        ],
    )
    .unwrap();
    let scores = Tensor::from_f32s(vec![1, 1, 6], vec![0.9, 0.75, 0.6, 0.95, 0.5, 0.3]).unwrap();
    check_pinned(
        "graph @t(%b: f32[1, 6, 4], %s: f32[1, 1, 6], %m: i64[1], %iou: f32[1], %th: f32[1]) -> (y: i64[u0, 3]) {
           %0 = NonMaxSuppression(%b, %s, %m, %iou, %th) : i64[u0, 3]
           return %0
         }",
        &[("u0", 3)],
        &[
            boxes,
            scores,
            ints(DType::I64, &[1], &[3]),
            Tensor::from_f32s(vec![1], vec![0.5]).unwrap(),
            Tensor::from_f32s(vec![1], vec![0.0]).unwrap(),
        ],
        0.0,
    );
}

#[test]
fn bad_indices_stay_inside_buffers() {
    let x = floats(&[2, 3], 29);
    let big = ints(DType::I64, &[2, 3], &[9, -9, i64::MAX, i64::MIN, 2, -1]);
    let y = run_only(
        "graph @t(%x: f32[2, 3], %i: i64[2, 3]) -> (a: f32[2, 3], b: f32[2, 3]) {
           %0 = GatherElements(%x, %i) {axis = 1} : f32[2, 3]
           %1 = ScatterElements(%x, %i, %x) {axis = 1, reduction = \"add\"} : f32[2, 3]
           return %0, %1
         }",
        &[x.clone(), big],
    );
    let xv = x.to_f64();
    assert_eq!(y[0].to_f64(), vec![0.0, 0.0, 0.0, 0.0, xv[5], xv[5]]);
    let mut want = xv.clone();
    // Duplicates accumulate in f64 and round once, like the interpreter.
    want[5] = (xv[5] + xv[4] + xv[5]) as f32 as f64;
    assert_eq!(y[1].to_f64(), want);
    let nd = ints(DType::I64, &[3, 2], &[1, 7, -3, 0, 1, -1]);
    let y = run_only(
        "graph @t(%x: f32[2, 3], %i: i64[3, 2], %u: f32[3]) -> (a: f32[3], b: f32[2, 3]) {
           %0 = GatherND(%x, %i) : f32[3]
           %1 = ScatterND(%x, %i, %u) : f32[2, 3]
           return %0, %1
         }",
        &[
            x.clone(),
            nd,
            Tensor::from_f32s(vec![3], vec![7.0, 8.0, 9.0]).unwrap(),
        ],
    );
    assert_eq!(y[0].to_f64(), vec![0.0, 0.0, xv[5]]);
    let mut want = xv.clone();
    want[5] = 9.0;
    assert_eq!(y[1].to_f64(), want);
    let y = run_only(
        "graph @t(%c: f32[2, 1, 3, 1], %u: f32[2, 1, 2, 1], %w: i64[2]) -> (y: f32[2, 1, 3, 1]) {
           %0 = TensorScatter(%c, %u, %w) : f32[2, 1, 3, 1]
           return %0
         }",
        &[
            Tensor::from_f32s(vec![2, 1, 3, 1], vec![0.0; 6]).unwrap(),
            Tensor::from_f32s(vec![2, 1, 2, 1], vec![1.0, 2.0, 3.0, 4.0]).unwrap(),
            ints(DType::I64, &[2], &[2, -5]),
        ],
    );
    assert_eq!(y[0].to_f64(), vec![0.0, 0.0, 1.0, 0.0, 0.0, 0.0]);
    let y = run_only(
        "graph @t(%x: f32[1, 1, 2, 2], %i: i64[1, 1, 2, 2]) -> (y: f32[1, 1, 4, 4]) {
           %0 = MaxUnpool(%x, %i) {kernel_shape = [2, 2], strides = [2, 2]} : f32[1, 1, 4, 4]
           return %0
         }",
        &[
            Tensor::from_f32s(vec![1, 1, 2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap(),
            ints(DType::I64, &[1, 1, 2, 2], &[-1, 16, 3, i64::MAX]),
        ],
    );
    let mut want = vec![0.0; 16];
    want[3] = 3.0;
    assert_eq!(y[0].to_f64(), want);
}
