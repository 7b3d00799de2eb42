//! Movement ops compiled and run against the reference interpreter.

use kiln_ir::dtype::DType;
use kiln_ir::Tensor;

use crate::cpu::testing::{check, floats};

/// Distinct values of `dtype` (floats scaled so that integer casts differ).
fn data(dtype: DType, shape: &[usize], seed: u64) -> Tensor {
    let f = floats(shape, seed);
    if dtype.is_float() {
        f.cast(dtype)
    } else {
        let v: Vec<f64> = f.to_f64().iter().map(|x| (x * 100.0).round()).collect();
        let v = if dtype == DType::Bool {
            v.iter().map(|x| f64::from(*x > 0.0)).collect()
        } else if matches!(dtype, DType::U8 | DType::U16 | DType::U32 | DType::U64) {
            v.iter().map(|x| x.abs()).collect()
        } else {
            v
        };
        Tensor::from_f64(dtype, shape.to_vec(), &v)
    }
}

/// One dtype per element size.
const SIZES: [DType; 5] = [DType::U8, DType::F16, DType::F32, DType::I64, DType::F64];

fn ty(dtype: DType, shape: &str) -> String {
    format!("{}[{shape}]", dtype.name())
}

fn run(text: &str, inputs: &[Tensor]) {
    if std::env::var("KILN_TEST_ECHO").is_ok() {
        eprintln!("{text}");
    }
    check(text, inputs, 0.0, 0.0);
}

#[test]
fn transposes_of_every_element_size() {
    let perms = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    for dt in SIZES {
        let x = data(dt, &[3, 5, 7], 1);
        for p in perms {
            let dims = [3, 5, 7];
            let out: Vec<String> = p.iter().map(|&a| dims[a].to_string()).collect();
            let text = format!(
                "graph @t(%x: {}) -> (y: {}) {{
                   %0 = Transpose(%x) {{perm = [{}, {}, {}]}} : {}
                   return %0
                 }}",
                ty(dt, "3, 5, 7"),
                ty(dt, &out.join(", ")),
                p[0],
                p[1],
                p[2],
                ty(dt, &out.join(", ")),
            );
            run(&text, std::slice::from_ref(&x));
        }
    }
}

#[test]
fn transposes_in_tiles_with_edges() {
    // 2-D transposes through the register tiles, with and without remainders.
    for (dt, r, c) in [
        (DType::F32, 13, 10),
        (DType::F32, 8, 4),
        (DType::I32, 4, 9),
        (DType::F64, 7, 5),
        (DType::I64, 2, 2),
        (DType::F32, 1, 9),
        (DType::F16, 13, 10),
        (DType::BF16, 8, 16),
        (DType::I16, 17, 9),
        (DType::U8, 16, 16),
        (DType::I8, 35, 21),
        (DType::Bool, 3, 40),
        // Several cache blocks (256 bytes a side) and edges.
        (DType::F32, 150, 70),
        (DType::F64, 40, 67),
        (DType::F16, 260, 131),
        (DType::U8, 300, 270),
    ] {
        let text = format!(
            "graph @t(%x: {}) -> (y: {}) {{
               %0 = Transpose(%x) : {}
               return %0
             }}",
            ty(dt, &format!("{r}, {c}")),
            ty(dt, &format!("{c}, {r}")),
            ty(dt, &format!("{c}, {r}")),
        );
        run(&text, &[data(dt, &[r, c], 2)]);
    }
}

#[test]
fn attention_head_transposes_with_a_symbolic_sequence() {
    for seq in [1, 5, 17] {
        let x = floats(&[1, seq, 3, 8], 3);
        run(
            "graph @t(%x: f32[1, seq, 3, 8]) -> (q: f32[1, 3, seq, 8], k: f32[1, 3, 8, seq], b: f32[1, seq, 3, 8]) {
               %0 = Transpose(%x) {perm = [0, 2, 1, 3]} : f32[1, 3, seq, 8]
               %1 = Transpose(%x) {perm = [0, 2, 3, 1]} : f32[1, 3, 8, seq]
               %2 = Transpose(%0) {perm = [0, 2, 1, 3]} : f32[1, seq, 3, 8]
               return %0, %1, %2
             }",
            &[x],
        );
    }
}

#[test]
fn transposes_that_only_move_unit_dims_are_views() {
    let x = floats(&[4, 1, 6], 4);
    run(
        "graph @t(%x: f32[4, 1, 6]) -> (y: f32[4, 2, 6]) {
           %0 = Transpose(%x) {perm = [1, 0, 2]} : f32[1, 4, 6]
           %1 = Concat(%0, %0) {axis = 0} : f32[2, 4, 6]
           %2 = Transpose(%1) {perm = [1, 0, 2]} : f32[4, 2, 6]
           return %2
         }",
        &[x],
    );
}

#[test]
fn slices_with_negative_steps_and_clamping() {
    for dt in SIZES {
        let x = data(dt, &[6, 7, 5], 5);
        let cases = [
            // (starts, ends, axes, steps, out shape)
            ("0, -1", "-1, 0", "0, 1", "1, -2", "5, 3, 5"),
            ("-1, 100", "-1000, -100", "2, 1", "-1, -3", "6, 3, 5"),
            ("1", "1000", "0", "2", "3, 7, 5"),
            ("2, 1", "5, 6", "0, 2", "1, 1", "3, 7, 4"),
            ("-100", "100", "-1", "3", "6, 7, 2"),
            ("4", "2", "1", "1", "6, 0, 5"),
            (
                "9223372036854775807",
                "-9223372036854775807",
                "1",
                "-1",
                "6, 7, 5",
            ),
        ];
        for (s, e, a, k, out) in cases {
            let n = s.split(',').count();
            let text = format!(
                "graph @t(%x: {}) -> (y: {}) {{
                   %0 = constant {{value = dense<i64[{n}]>[{s}]}} : i64[{n}]
                   %1 = constant {{value = dense<i64[{n}]>[{e}]}} : i64[{n}]
                   %2 = constant {{value = dense<i64[{n}]>[{a}]}} : i64[{n}]
                   %3 = constant {{value = dense<i64[{n}]>[{k}]}} : i64[{n}]
                   %4 = Slice(%x, %0, %1, %2, %3) : {}
                   return %4
                 }}",
                ty(dt, "6, 7, 5"),
                ty(dt, out),
                ty(dt, out),
            );
            run(&text, std::slice::from_ref(&x));
        }
    }
}

#[test]
fn slices_of_symbolic_dims() {
    for seq in [1, 3, 8] {
        let x = floats(&[seq, 6], 6);
        run(
            "graph @t(%x: f32[seq, 6]) -> (a: f32[seq-1, 6], b: f32[seq, 3], c: f32[1, 6], d: f32[seq, 6]) {
               %s1 = constant {value = dense<i64[1]>[1]} : i64[1]
               %big = constant {value = dense<i64[1]>[9223372036854775807]} : i64[1]
               %z = constant {value = dense<i64[1]>[0]} : i64[1]
               %ax1 = constant {value = dense<i64[1]>[1]} : i64[1]
               %st2 = constant {value = dense<i64[1]>[2]} : i64[1]
               %m1 = constant {value = dense<i64[1]>[-1]} : i64[1]
               %mbig = constant {value = dense<i64[1]>[-9223372036854775807]} : i64[1]
               %0 = Slice(%x, %s1, %big) : f32[seq-1, 6]
               %1 = Slice(%x, %z, %big, %ax1, %st2) : f32[seq, 3]
               %2 = Slice(%x, %m1, %big) : f32[1, 6]
               %3 = Slice(%x, %m1, %mbig, %z, %m1) : f32[seq, 6]
               return %0, %1, %2, %3
             }",
            &[x],
        );
    }
}

#[test]
fn slices_from_symbolic_starts() {
    for seq in [1, 2, 6] {
        run(
            "graph @t(%x: f32[seq, 6]) -> (a: f32[1, 6], b: f32[seq, 2]) {
               %0 = dims {value = dims<[seq-1]>} : i64[1]
               %1 = constant {value = dense<i64[1]>[9223372036854775807]} : i64[1]
               %2 = Slice(%x, %0, %1) : f32[1, 6]
               %3 = dims {value = dims<[seq-1, 4]>} : i64[2]
               %4 = dims {value = dims<[-9223372036854775807, 2]>} : i64[2]
               %5 = constant {value = dense<i64[2]>[-1, -1]} : i64[2]
               %6 = Slice(%x, %3, %4, _, %5) : f32[seq, 2]
               return %2, %6
             }",
            &[floats(&[seq, 6], 36)],
        );
    }
}

#[test]
fn slices_by_dims_nodes() {
    let x = floats(&[2, 9, 4], 7);
    run(
        "graph @t(%x: f32[2, seq, 4], %y: f32[1, past]) -> (a: f32[4, min(past, seq), 4]) {
           %0 = dims {value = dims<[0]>} : i64[1]
           %1 = dims {value = dims<[past]>} : i64[1]
           %2 = constant {value = dense<i64[1]>[1]} : i64[1]
           %3 = Slice(%x, %0, %1, %2) : f32[2, min(past, seq), 4]
           %4 = Concat(%3, %3) {axis = 0} : f32[4, min(past, seq), 4]
           return %4
         }",
        &[x, floats(&[1, 5], 8)],
    );
}

#[test]
fn expands() {
    for dt in SIZES {
        let text = format!(
            "graph @t(%x: {}) -> (y: {}, z: {}) {{
               %0 = constant {{value = dense<i64[3]>[2, 1, 6]}} : i64[3]
               %1 = Expand(%x, %0) : {}
               %2 = constant {{value = dense<i64[2]>[3, 19]}} : i64[2]
               %3 = Expand(%x, %2) : {}
               return %1, %3
             }}",
            ty(dt, "3, 1"),
            ty(dt, "2, 3, 6"),
            ty(dt, "3, 19"),
            ty(dt, "2, 3, 6"),
            ty(dt, "3, 19"),
        );
        run(&text, &[data(dt, &[3, 1], 9)]);
    }
    run(
        "graph @t(%x: f32[seq, 1], %r: f32[1, 5]) -> (y: f32[seq, 5], z: f32[seq, 5]) {
           %0 = dims {value = dims<[seq, 5]>} : i64[2]
           %1 = Expand(%x, %0) : f32[seq, 5]
           %2 = Expand(%r, %0) : f32[seq, 5]
           return %1, %2
         }",
        &[floats(&[4, 1], 10), floats(&[1, 5], 11)],
    );
}

#[test]
fn concats() {
    for dt in SIZES {
        for (axis, a, b, out) in [
            (0, "2, 3", "4, 3", "9, 3"),
            (1, "3, 2", "3, 4", "3, 9"),
            (-1, "3, 2", "3, 4", "3, 9"),
        ] {
            let text = format!(
                "graph @t(%a: {}, %b: {}, %c: {}) -> (y: {}) {{
                   %0 = Concat(%a, %b, %c) {{axis = {axis}}} : {}
                   return %0
                 }}",
                ty(dt, a),
                ty(dt, b),
                ty(dt, "3, 3"),
                ty(dt, out),
                ty(dt, out),
            );
            let shape = |s: &str| -> Vec<usize> {
                s.split(", ").map(|d| d.parse().expect("dim")).collect()
            };
            run(
                &text,
                &[
                    data(dt, &shape(a), 12),
                    data(dt, &shape(b), 13),
                    data(dt, &[3, 3], 14),
                ],
            );
        }
    }
    // Symbolic: a KV cache append, and an empty input.
    run(
        "graph @t(%p: f32[1, 2, past, 4], %k: f32[1, 2, seq, 4], %e: f32[1, 2, 0, 4]) -> (y: f32[1, 2, past+seq, 4]) {
           %0 = Concat(%p, %e, %k) {axis = 2} : f32[1, 2, past+seq, 4]
           return %0
         }",
        &[
            floats(&[1, 2, 3, 4], 15),
            floats(&[1, 2, 2, 4], 16),
            floats(&[1, 2, 0, 4], 17),
        ],
    );
}

#[test]
fn splits() {
    for dt in SIZES {
        let x = data(dt, &[4, 7], 18);
        let text = format!(
            "graph @t(%x: {}) -> (a: {}, b: {}, c: {}, d: {}, e: {}) {{
               %0, %1, %2 = Split(%x) {{axis = 1, num_outputs = 3}} : {}, {}, {}
               %s = constant {{value = dense<i64[2]>[1, 3]}} : i64[2]
               %3, %4 = Split(%x, %s) : {}, {}
               return %0, %1, %2, %3, %4
             }}",
            ty(dt, "4, 7"),
            ty(dt, "4, 3"),
            ty(dt, "4, 3"),
            ty(dt, "4, 1"),
            ty(dt, "1, 7"),
            ty(dt, "3, 7"),
            ty(dt, "4, 3"),
            ty(dt, "4, 3"),
            ty(dt, "4, 1"),
            ty(dt, "1, 7"),
            ty(dt, "3, 7"),
        );
        run(&text, &[x]);
    }
    // Views of the outermost dim, read by a later op.
    run(
        "graph @t(%x: f32[1, seq, 6]) -> (a: f32[1, seq, 2], b: f32[1, seq, 6]) {
           %s = constant {value = dense<i64[2]>[2, 4]} : i64[2]
           %0, %1 = Split(%x, %s) {axis = -1} : f32[1, seq, 2], f32[1, seq, 4]
           %2 = Concat(%1, %0) {axis = 2} : f32[1, seq, 6]
           return %0, %2
         }",
        &[floats(&[1, 5, 6], 19)],
    );
}

#[test]
fn tiles() {
    for dt in SIZES {
        let text = format!(
            "graph @t(%x: {}) -> (y: {}) {{
               %0 = constant {{value = dense<i64[3]>[2, 1, 3]}} : i64[3]
               %1 = Tile(%x, %0) : {}
               return %1
             }}",
            ty(dt, "2, 3, 5"),
            ty(dt, "4, 3, 15"),
            ty(dt, "4, 3, 15"),
        );
        run(&text, &[data(dt, &[2, 3, 5], 20)]);
    }
}

#[test]
fn pads_of_every_mode() {
    for dt in SIZES {
        for mode in ["constant", "edge", "reflect", "wrap"] {
            for (pads, out) in [
                ("1, 2, 3, 1", "7, 8"),
                ("0, -1, 2, 0", "5, 4"),
                ("2, 0, 0, 0", "5, 5"),
            ] {
                let text = format!(
                    "graph @t(%x: {}) -> (y: {}) {{
                       %0 = constant {{value = dense<i64[4]>[{pads}]}} : i64[4]
                       %1 = Pad(%x, %0) {{mode = \"{mode}\"}} : {}
                       return %1
                     }}",
                    ty(dt, "3, 5"),
                    ty(dt, out),
                    ty(dt, out),
                );
                run(&text, &[data(dt, &[3, 5], 21)]);
            }
        }
    }
    // A constant value, axes, and a symbolic dim.
    run(
        "graph @t(%x: f32[seq, 3]) -> (y: f32[seq+3, 2]) {
           %0 = constant {value = dense<i64[4]>[1, -1, 2, 0]} : i64[4]
           %1 = constant {value = dense<f32[]>[2.5]} : f32[]
           %2 = constant {value = dense<i64[2]>[0, 1]} : i64[2]
           %3 = Pad(%x, %0, %1, %2) : f32[seq+3, 2]
           return %3
         }",
        &[floats(&[4, 3], 22)],
    );
    run(
        "graph @t(%x: f32[seq, 3], %v: f32[]) -> (y: f32[seq, 5]) {
           %0 = constant {value = dense<i64[4]>[0, 1, 0, 1]} : i64[4]
           %3 = Pad(%x, %0, %v) : f32[seq, 5]
           return %3
         }",
        &[floats(&[4, 3], 23), Tensor::scalar_f32(-7.0)],
    );
}

#[test]
fn center_crop_pads() {
    run(
        "graph @t(%x: f32[5, 4, 3]) -> (y: f32[3, 7, 3]) {
           %0 = constant {value = dense<i64[3]>[3, 7, 3]} : i64[3]
           %1 = CenterCropPad(%x, %0) : f32[3, 7, 3]
           return %1
         }",
        &[floats(&[5, 4, 3], 24)],
    );
}

#[test]
fn depth_and_space() {
    for mode in ["DCR", "CRD"] {
        let text = format!(
            "graph @t(%x: f32[2, 8, 3, 5]) -> (y: f32[2, 2, 6, 10], z: f32[2, 8, 3, 5]) {{
               %0 = DepthToSpace(%x) {{blocksize = 2, mode = \"{mode}\"}} : f32[2, 2, 6, 10]
               %1 = SpaceToDepth(%0) {{blocksize = 2, mode = \"{mode}\"}} : f32[2, 8, 3, 5]
               return %0, %1
             }}"
        );
        run(&text, &[floats(&[2, 8, 3, 5], 25)]);
    }
}

#[test]
fn trilu_with_constant_and_run_time_k() {
    for dt in SIZES {
        for upper in [0, 1] {
            for k in [-2, 0, 1, 6] {
                let text = format!(
                    "graph @t(%x: {}) -> (y: {}) {{
                       %0 = constant {{value = dense<i64[]>[{k}]}} : i64[]
                       %1 = Trilu(%x, %0) {{upper = {upper}}} : {}
                       return %1
                     }}",
                    ty(dt, "2, 5, 19"),
                    ty(dt, "2, 5, 19"),
                    ty(dt, "2, 5, 19"),
                );
                run(&text, &[data(dt, &[2, 5, 19], 26)]);
            }
        }
    }
    for k in [-3, 0, 2, 40] {
        run(
            "graph @t(%x: f32[seq, 18], %k: i64[]) -> (y: f32[seq, 18], z: f32[seq, 18]) {
               %0 = Trilu(%x, %k) : f32[seq, 18]
               %1 = Trilu(%x, %k) {upper = 0} : f32[seq, 18]
               return %0, %1
             }",
            &[floats(&[7, 18], 27), Tensor::scalar_i64(k)],
        );
    }
}

#[test]
fn generators() {
    run(
        "graph @t(%x: f32[3, 5], %s: f32[seq]) -> (a: i64[3, 5], b: f32[3, 5], c: i32[5, seq], r: i64[4], f: f32[5], d: f64[3]) {
           %0 = EyeLike(%x) {dtype = i64, k = 1} : i64[3, 5]
           %1 = EyeLike(%x) {k = -1} : f32[3, 5]
           %2 = dims {value = dims<[5, seq]>} : i64[2]
           %3 = ConstantOfShape(%2) {value = dense<i32[1]>[-4]} : i32[5, seq]
           %s0 = constant {value = dense<i64[]>[10]} : i64[]
           %l0 = constant {value = dense<i64[]>[-1]} : i64[]
           %d0 = constant {value = dense<i64[]>[-3]} : i64[]
           %4 = Range(%s0, %l0, %d0) : i64[4]
           %s1 = constant {value = dense<f32[]>[0.5]} : f32[]
           %l1 = constant {value = dense<f32[]>[3.0]} : f32[]
           %d1 = constant {value = dense<f32[]>[0.5]} : f32[]
           %5 = Range(%s1, %l1, %d1) : f32[5]
           %s2 = constant {value = dense<f64[]>[1.0]} : f64[]
           %l2 = constant {value = dense<f64[]>[-0.5]} : f64[]
           %d2 = constant {value = dense<f64[]>[-0.6]} : f64[]
           %6 = Range(%s2, %l2, %d2) : f64[3]
           return %0, %1, %3, %4, %5, %6
         }",
        &[floats(&[3, 5], 28), floats(&[4], 29)],
    );
    // A symbolic length.
    run(
        "graph @t(%x: f32[1, seq]) -> (r: i64[seq]) {
           %0 = dims {value = dims<[0]>} : i64[1]
           %1 = dims {value = dims<[seq]>} : i64[1]
           %2 = dims {value = dims<[1]>} : i64[1]
           %3 = Range(%0, %1, %2) : i64[seq]
           return %3
         }",
        &[floats(&[1, 6], 30)],
    );
}

#[test]
fn reverse_sequences() {
    for (ba, ta, shape) in [(1, 0, [4, 3, 2]), (0, 1, [3, 4, 2])] {
        let dims = format!("{}, {}, {}", shape[0], shape[1], shape[2]);
        let text = format!(
            "graph @t(%x: f32[{dims}], %l: i64[3]) -> (y: f32[{dims}]) {{
               %0 = ReverseSequence(%x, %l) {{batch_axis = {ba}, time_axis = {ta}}} : f32[{dims}]
               return %0
             }}"
        );
        let lens = Tensor::from_i64s(vec![3], vec![4, 1, 2]).expect("lens");
        run(&text, &[floats(&shape, 31), lens]);
    }
}

#[test]
fn bit_casts_and_inference_dropout() {
    run(
        "graph @t(%x: f32[3, seq], %b: bool[4]) -> (a: i32[3, seq], b: u8[4], y: f32[3, seq], m: bool[3, seq]) {
           %0 = BitCast(%x) {to = i32} : i32[3, seq]
           %1 = BitCast(%b) {to = u8} : u8[4]
           %2, %3 = Dropout(%x) {seed = 3} : f32[3, seq], bool[3, seq]
           return %0, %1, %2, %3
         }",
        &[
            floats(&[3, 5], 33),
            Tensor::from_bools(vec![4], vec![true, false, false, true]).expect("bools"),
        ],
    );
}

#[test]
fn training_dropout_draws_as_the_reference() {
    for (t, r) in [(true, 0.3f32), (false, 0.3), (true, 0.0), (true, 0.75)] {
        run(
            "graph @t(%x: f32[3, 40], %r: f32[], %t: bool[]) -> (y: f32[3, 40], m: bool[3, 40]) {
               %0, %1 = Dropout(%x, %r, %t) {seed = 7} : f32[3, 40], bool[3, 40]
               return %0, %1
             }",
            &[
                floats(&[3, 40], 34),
                Tensor::scalar_f32(r),
                Tensor::from_bools(vec![], vec![t]).expect("bool"),
            ],
        );
    }
    run(
        "graph @t(%x: f64[50]) -> (y: f64[50]) {
           %0 = constant {value = dense<bool[]>[true]} : bool[]
           %1 = Dropout(%x, _, %0) : f64[50]
           return %1
         }",
        &[floats(&[50], 35).cast(DType::F64)],
    );
}

#[test]
fn shapes_and_sizes() {
    run(
        "graph @t(%x: f32[2, seq, 3]) -> (a: i64[3], b: i64[2], c: i64[]) {
           %0 = Shape(%x) : i64[3]
           %1 = Shape(%x) {start = 1} : i64[2]
           %2 = Size(%x) : i64[]
           return %0, %1, %2
         }",
        &[floats(&[2, 5, 3], 32)],
    );
}

/// Times the attention transposes of MiniLM (seq 128):
/// `cargo test --release -p kiln-targets movement::tests::bench -- --ignored --nocapture`.
#[test]
#[ignore]
fn bench_attention_transposes() {
    use crate::cpu::codegen::isa::CpuFeatures;
    use crate::cpu::testing::{graph, load};
    // Chains of 8 transposes (back and forth) ending in a small slice, so that the run's
    // own costs (inputs, outputs) stay out of the way.
    let chain = |shape: &str, other: &str, perm: &str| {
        let mut t = format!("graph @t(%x: f32[{shape}]) -> (y: f32[1, 1]) {{\n");
        let mut prev = "%x".to_string();
        for k in 0..8 {
            let ty = if k % 2 == 0 { other } else { shape };
            t += &format!("  %{k} = Transpose({prev}) {{perm = [{perm}]}} : f32[{ty}]\n");
            prev = format!("%{k}");
        }
        let r = shape.split(',').count();
        let ones = vec!["1"; r].join(", ");
        t += &format!(
            "  %s = dims {{value = dims<[{}]>}} : i64[{r}]\n  %e = dims {{value = dims<[{ones}]>}} : i64[{r}]\n  %8 = Slice({prev}, %s, %e) : f32[{ones}]\n  return %8\n}}",
            vec!["0"; r].join(", ")
        );
        t.replace("-> (y: f32[1, 1])", &format!("-> (y: f32[{ones}])"))
    };
    let cases = [
        (
            "heads [1,128,12,32] <-> [1,12,128,32]",
            chain("1, 128, 12, 32", "1, 12, 128, 32", "0, 2, 1, 3"),
            vec![1, 128, 12, 32],
        ),
        (
            "keys [12,128,32] <-> [12,32,128]",
            chain("12, 128, 32", "12, 32, 128", "0, 2, 1"),
            vec![12, 128, 32],
        ),
        (
            "rows [128,384] <-> [384,128]",
            chain("128, 384", "384, 128", "1, 0"),
            vec![128, 384],
        ),
        (
            "big [1024,1536] <-> [1536,1024]",
            chain("1024, 1536", "1536, 1024", "1, 0"),
            vec![1024, 1536],
        ),
        (
            "big copy [8,1024,1536] <-> [1024,8,1536]",
            chain("8, 1024, 1536", "1024, 8, 1536", "1, 0, 2"),
            vec![8, 1024, 1536],
        ),
    ];
    for (name, text, shape) in cases {
        let g = graph(&text);
        let model = load(&g, CpuFeatures::host()).expect("compiles");
        let x = floats(&shape, 1);
        let rt = kiln_runtime::Tensor::from_bytes(
            kiln_runtime::ElemType::from_name("f32").expect("f32"),
            x.shape(),
            &x.to_le_bytes(),
        )
        .expect("tensor");
        let inputs = [rt];
        for _ in 0..100 {
            model.run(&inputs).expect("runs");
        }
        // The process's CPU time (the machine may be busy): the first field of every
        // thread's schedstat, in ns.
        let cpu_ns = || -> f64 {
            let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
                return 0.0;
            };
            dir.filter_map(|e| {
                let s = std::fs::read_to_string(e.ok()?.path().join("schedstat")).ok()?;
                s.split_whitespace().next()?.parse::<f64>().ok()
            })
            .sum()
        };
        let n = if shape.iter().product::<usize>() > 1 << 20 {
            10
        } else {
            1000
        };
        let (t, c0) = (std::time::Instant::now(), cpu_ns());
        for _ in 0..n {
            model.run(&inputs).expect("runs");
        }
        let per = |total: f64| total / n as f64 / 8.0;
        eprintln!(
            "{name}: {:.2} us per transpose ({:.2} us wall)",
            per((cpu_ns() - c0) / 1e3),
            per(t.elapsed().as_secs_f64() * 1e6)
        );
    }
}

/// Every movement node of a model's text IR (`KILN_KIR=path`), alone in a graph whose
/// other inputs are graph inputs, compiled and (when its input shapes bind) checked:
/// `KILN_KIR=model.kir cargo test --release -p kiln-targets movement::tests::model_nodes -- --ignored --nocapture`.
#[test]
#[ignore]
fn model_nodes() {
    use std::collections::HashMap;

    use kiln_ir::graph::{Graph, Value};

    let Ok(path) = std::env::var("KILN_KIR") else {
        return;
    };
    let text = std::fs::read_to_string(&path).expect("reads the file");
    let g = kiln_ir::text::parse(&text).expect("parses");
    let bind: HashMap<String, i64> = [("batch", 2), ("seq", 5), ("past", 3)]
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
    let (mut ok, mut failed, mut ran) = (0, 0, 0);
    for id in g.topo_order().expect("acyclic") {
        let node = g.node(id);
        if !super::OPS.iter().any(|(name, _)| *name == node.op) {
            continue;
        }
        let mut sub = Graph::new("node");
        let mut inputs = Vec::new();
        let mut data_inputs = Vec::new();
        for (i, v) in node.inputs().iter().enumerate() {
            let Some(v) = v else {
                inputs.push(None);
                continue;
            };
            let p = g.node(v.node);
            let inline = p.op == "dims" || (p.op == "constant" && g.const_of(*v).is_some());
            let nv = if inline {
                let n = sub.add_node(&p.op, p.attrs.clone(), vec![], p.outputs.clone(), "");
                Value { node: n, output: 0 }
            } else {
                let ty = g.value_type(*v).clone();
                data_inputs.push(ty.clone());
                sub.add_input(&format!("in{i}"), ty)
            };
            inputs.push(Some(nv));
        }
        // The symbols of the node's types, as dims of one more input.
        let mut syms = Vec::new();
        for t in node.outputs.iter().chain(data_inputs.iter()) {
            for d in &t.shape {
                d.symbols(&mut syms);
            }
        }
        syms.sort();
        syms.dedup();
        let sym_shape: Vec<kiln_ir::Dim> = syms.iter().map(|s| kiln_ir::Dim::sym(s)).collect();
        let sym_ty = kiln_ir::ValueType::new(DType::U8, sym_shape);
        sub.add_input("syms", sym_ty.clone());
        data_inputs.push(sym_ty);
        let n = sub.add_node(
            &node.op,
            node.attrs.clone(),
            inputs,
            node.outputs.clone(),
            "",
        );
        for o in 0..node.outputs.len() {
            sub.add_output(&format!("out{o}"), Value { node: n, output: o });
        }
        let text = kiln_ir::text::print(&sub);
        let line = text.lines().rev().nth(2).unwrap_or("").trim().to_string();
        // Concrete inputs when every input dim is a constant or a plain symbol.
        let shapes: Option<Vec<Vec<usize>>> = data_inputs
            .iter()
            .map(|t| {
                t.shape
                    .iter()
                    .map(|d| match (d.as_const(), d.as_sym()) {
                        (Some(c), _) => Some(c as usize),
                        (None, Some(s)) => Some(*bind.get(s).unwrap_or(&4) as usize),
                        _ => None,
                    })
                    .collect()
            })
            .collect();
        match crate::cpu::testing::load(
            &crate::cpu::testing::graph(&text),
            crate::cpu::codegen::isa::CpuFeatures::host(),
        ) {
            Err(e) => {
                failed += 1;
                eprintln!("FAIL {line}\n     {e}");
                continue;
            }
            Ok(_) => ok += 1,
        }
        if let Some(shapes) = shapes {
            let ins: Vec<Tensor> = data_inputs
                .iter()
                .zip(&shapes)
                .enumerate()
                .map(|(k, (t, s))| data(t.dtype, s, k as u64))
                .collect();
            run(&text, &ins);
            ran += 1;
        }
    }
    eprintln!("{path}: {ok} compiled ({ran} checked), {failed} rejected");
}
