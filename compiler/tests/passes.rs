//! Pass snapshots: IR text in, pipeline, IR text out. Each snapshot holds the input, the
//! pipeline and the output, so a review reads the whole story.

use kiln_compiler::passes::{Instrumentation, Pass, PassContext, PassManager};
use kiln_compiler::CompileError;
use kiln_ir::text::{parse, print};
use kiln_ir::Graph;

/// Parses `input`, runs `pipeline`, and returns the input, the pipeline and the result as
/// one text. Checks that the result reads back to the same text.
fn run(pipeline: &str, input: &str) -> String {
    let mut g = parse(input).unwrap_or_else(|e| panic!("{e}\n{input}"));
    let pm = PassManager::parse(pipeline).unwrap();
    pm.run(&mut g, &mut PassContext::new())
        .unwrap_or_else(|e| panic!("{e}"));
    let out = print(&g);
    assert_eq!(
        print(&parse(&out).unwrap()),
        out,
        "output does not read back"
    );
    format!(
        "{}\n// ----- {pipeline} ----->\n\n{out}",
        print(&parse(input).unwrap())
    )
}

/// Runs `pipeline` and checks it changes nothing.
fn unchanged(pipeline: &str, input: &str) {
    let mut g = parse(input).unwrap_or_else(|e| panic!("{e}\n{input}"));
    let before = print(&g);
    PassManager::parse(pipeline)
        .unwrap()
        .run(&mut g, &mut PassContext::new())
        .unwrap();
    assert_eq!(print(&g), before);
}

// ----- dce -----

#[test]
fn dce_removes_what_no_output_needs() {
    insta::assert_snapshot!(run(
        "dce",
        r#"graph @g(%x: f32[2], %unused: i64[]) -> (y: f32[2]) {
  %0 = constant {value = dense<f32[]>[1.0]} : f32[]
  %1 = constant(%0) {value = dense<f32[2]>[1.0, 2.0]} : f32[2]
  %2 = constant(%1, %x) {value = dense<f32[2]>[3.0, 4.0]} : f32[2]
  %3 = constant(%x) {value = dense<f32[2]>[5.0, 6.0]} : f32[2]
  return %2
}
"#
    ));
}

#[test]
fn dce_drops_weights_nothing_refers_to() {
    let mut g = parse(
        r#"graph @g() -> (y: f32[2]) {
  %0 = constant {value = @weight("kept")} : f32[2]
  %1 = constant {value = @weight("dropped")} : f32[2]
  return %0
}
"#,
    )
    .unwrap();
    let t = std::sync::Arc::new(kiln_ir::Tensor::from_f32s(vec![2], vec![1.0, 2.0]).unwrap());
    for name in ["kept", "dropped", "stray"] {
        g.weights.set(name, t.clone());
    }
    kiln_ir::infer::infer_graph(&mut g).unwrap();
    PassManager::parse("dce")
        .unwrap()
        .run(&mut g, &mut PassContext::new())
        .unwrap();
    let names: Vec<_> = g.weights.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(names, ["kept"]);
}

// ----- cse -----

#[test]
fn cse_merges_equal_nodes_and_keeps_near_misses() {
    insta::assert_snapshot!(run(
        "cse",
        r#"graph @g(%x: f32[2]) -> (a: f32[], b: f32[], c: f32[], d: f32[], e: f32[], f: f32[], g: f32[], h: f32[2], i: f32[2]) {
  %0 = constant {value = dense<f32[]>[0.0]} : f32[]
  %1 = constant {value = dense<f32[]>[0.0]} : f32[]
  %2 = constant {value = dense<f32[]>[-0.0]} : f32[]
  %3 = constant {value = dense<f32[]>[nan]} : f32[]
  %4 = constant {value = dense<f32[]>[nan(0x7fc00001)]} : f32[]
  %5 = constant {value = dense<f32[]>[nan]} : f32[]
  %6 = constant(%0) {value = dense<f32[]>[0.0]} : f32[]
  %7 = constant {value = @weight("w")} : f32[2]
  %8 = constant {value = @weight("w")} : f32[2]
  return %0, %1, %2, %3, %4, %5, %6, %7, %8
}
"#
    ));
}

#[test]
fn cse_merges_chains_in_one_run() {
    insta::assert_snapshot!(run(
        "cse",
        r#"graph @g(%x: f32[2]) -> (a: f32[], b: f32[]) {
  %0 = constant(%x) {value = dense<f32[]>[1.0]} : f32[]
  %1 = constant(%0) {value = dense<f32[]>[2.0]} : f32[]
  %2 = constant(%x) {value = dense<f32[]>[1.0]} : f32[]
  %3 = constant(%2) {value = dense<f32[]>[2.0]} : f32[]
  return %1, %3
}
"#
    ));
}

// ----- shape-propagation -----

#[test]
fn shape_propagation_turns_numeric_dims_into_constants() {
    insta::assert_snapshot!(run(
        "shape-propagation",
        r#"graph @g(%x: f32[1, seq]) -> (a: i64[3], b: i64[2], c: i32[], d: i32[2]) {
  %0 = dims {value = dims<[1, 4, 16]>} : i64[3]
  %1 = dims {value = dims<[1, seq]>} : i64[2]
  %2 = dims {dtype = i32, shape = [], value = dims<[7]>} : i32[]
  %3 = dims {dtype = i32, value = dims<[2, seq*4]>} : i32[2]
  return %0, %1, %2, %3
}
"#
    ));
}

// ----- canonicalize -----

#[test]
fn canonicalize_reaches_a_fixed_point() {
    let text = r#"graph @g(%x: f32[1, seq]) -> (a: i64[3], b: f32[]) {
  %0 = dims {value = dims<[1, 4, 16]>} : i64[3]
  %1 = constant {value = dense<f32[]>[1.0]} : f32[]
  %2 = constant {value = dense<i64[3]>[1, 4, 16]} : i64[3]
  %3 = constant(%2) {value = dense<f32[]>[1.0]} : f32[]
  return %0, %3
}
"#;
    insta::assert_snapshot!(run("canonicalize", text));
    let mut g = parse(text).unwrap();
    let pm = PassManager::parse("canonicalize").unwrap();
    pm.run(&mut g, &mut PassContext::new()).unwrap();
    let once = print(&g);
    unchanged("canonicalize", &once);
}

// ----- the pass manager -----

const SMALL: &str = r#"graph @g(%x: f32[2]) -> (y: f32[2]) {
  %0 = constant {value = dense<f32[]>[1.0]} : f32[]
  %1 = constant {value = dense<f32[]>[1.0]} : f32[]
  %2 = constant(%0, %1, %x) {value = dense<f32[2]>[1.0, 2.0]} : f32[2]
  return %2
}
"#;

fn run_instrumented(
    pipeline: &str,
    instr: Instrumentation,
) -> Result<(String, Graph), CompileError> {
    let mut g = parse(SMALL).unwrap();
    let pm = PassManager::parse(pipeline)?;
    pm.check_instrumentation(&instr)?;
    let mut out = Vec::new();
    {
        let mut ctx = PassContext::with_output(instr, Box::new(&mut out));
        pm.run(&mut g, &mut ctx)?;
    }
    Ok((String::from_utf8(out).unwrap(), g))
}

#[test]
fn pipelines_name_unknown_passes() {
    let e = PassManager::parse("cse,frobnicate")
        .err()
        .unwrap()
        .to_string();
    let known: Vec<&str> = kiln_compiler::passes::PASSES
        .iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(
        e,
        format!(
            "unknown pass `frobnicate` (known passes: {})",
            known.join(", ")
        )
    );
    let e = PassManager::parse("cse,,dce").err().unwrap().to_string();
    assert_eq!(e, "empty pass name in pipeline `cse,,dce`");
    assert!(PassManager::parse("").is_ok());
    assert_eq!(
        PassManager::parse(" canonicalize , dce ").unwrap().names(),
        [
            "canonicalize",
            "constant-fold",
            "shape-propagation",
            "simplify",
            "cse",
            "dce"
        ]
    );
    let instr = Instrumentation {
        stop_after: Some("cse".into()),
        ..Default::default()
    };
    let e = run_instrumented("dce", instr).err().unwrap().to_string();
    assert_eq!(
        e,
        "--stop-after: pass `cse` does not run in this pipeline (it runs: dce)"
    );
    let instr = Instrumentation {
        print_after: ["cse-x".to_string()].into(),
        ..Default::default()
    };
    let e = run_instrumented("dce", instr).err().unwrap().to_string();
    assert!(
        e.starts_with("--print-after: unknown pass `cse-x` (known passes: "),
        "{e}"
    );
}

#[test]
fn prints_before_and_after_passes_with_headers() {
    let instr = Instrumentation {
        print_before: ["cse".to_string()].into(),
        print_after_all: true,
        ..Default::default()
    };
    let (out, _) = run_instrumented("cse,dce", instr).unwrap();
    insta::assert_snapshot!(out);
}

#[test]
fn print_after_all_inside_canonicalize_shows_only_changes() {
    let instr = Instrumentation {
        print_after_all: true,
        print_after: ["canonicalize".to_string()].into(),
        ..Default::default()
    };
    let (out, _) = run_instrumented("canonicalize", instr).unwrap();
    insta::assert_snapshot!(out);
}

#[test]
fn stop_after_stops_the_pipeline() {
    let instr = Instrumentation {
        stop_after: Some("cse".into()),
        ..Default::default()
    };
    let (_, g) = run_instrumented("cse,dce", instr).unwrap();
    // dce did not run: the merged-away constant's twin is still there, unused ones too.
    assert_eq!(g.node_count(), 3);
    let instr = Instrumentation {
        stop_after: Some("cse".into()),
        ..Default::default()
    };
    // Inside canonicalize too.
    let (_, g) = run_instrumented("canonicalize,dce", instr).unwrap();
    assert_eq!(g.node_count(), 3);
}

#[test]
fn dump_dir_gets_numbered_files() {
    let dir = std::env::temp_dir().join(format!("kiln-dump-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let instr = Instrumentation {
        dump_dir: Some(dir.clone()),
        ..Default::default()
    };
    run_instrumented("cse,dce,canonicalize", instr).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    // canonicalize found nothing left to do: its member runs are not dumped.
    assert_eq!(names, ["00-input.kir", "01-cse.kir", "02-dce.kir"]);
    assert_eq!(
        std::fs::read_to_string(dir.join("00-input.kir")).unwrap(),
        SMALL
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A pass that breaks the graph: it points the graph output at a node it removes.
struct Breaker;

impl Pass for Breaker {
    fn name(&self) -> &'static str {
        "breaker"
    }

    fn run(&self, g: &mut Graph, _: &mut PassContext) -> Result<bool, CompileError> {
        let v = g.outputs()[0].1;
        g.remove_node(v.node);
        Ok(true)
    }
}

#[test]
fn a_verifier_failure_names_the_pass() {
    let mut g = parse(SMALL).unwrap();
    let e = PassContext::new()
        .run_pass(&Breaker, &mut g)
        .err()
        .unwrap()
        .to_string();
    assert_eq!(
        e,
        "the IR does not verify after pass `breaker`: invalid graph: graph output \"y\" refers to a value that does not exist"
    );
}

// ----- constant-fold (ONNX ops) -----

#[test]
fn constant_fold_evaluates_constant_subgraphs() {
    insta::assert_snapshot!(run(
        "constant-fold",
        r#"graph @g(%x: f32[2]) -> (a: f32[2], b: i64[32], c: f32[2], d: f32[2], e: i64[2], f: i64[1]) {
  %0 = constant {value = dense<f32[2]>[1.0, 2.0]} : f32[2]
  %1 = constant {value = dense<f32[]>[0.5]} : f32[]
  %2 = Mul(%0, %1) : f32[2]
  %3 = Add(%2, %1) : f32[2]
  %4 = constant {value = dense<i64[]>[0]} : i64[]
  %5 = constant {value = dense<i64[]>[32]} : i64[]
  %6 = constant {value = dense<i64[]>[1]} : i64[]
  %7 = Range(%4, %5, %6) : i64[32]
  %8 = constant {value = dense<i64[4]>[4, 1, 3, 2]} : i64[4]
  %9 = constant {value = dense<i64[1]>[2]} : i64[1]
  %10, %11 = TopK(%8, %9) {axis = -1, largest = 1, sorted = 1} : i64[2], i64[2]
  %12 = Clip(%3, _, %1) : f32[2]
  %17 = constant {value = dense<i64[2]>[2, 2]} : i64[2]
  %13, %14 = Split(%8, %17) {axis = 0} : i64[2], i64[2]
  %15 = Mul(%3, %x) : f32[2]
  %16 = Shape(%14) : i64[1]
  return %3, %7, %12, %15, %11, %16
}
"#
    ));
}

#[test]
fn constant_fold_leaves_what_it_must_not_fold() {
    // Not folded: a non-constant input; a weight without data; a result over 1M elements
    // (ConstantOfShape 2048x1024); an op whose evaluation fails (integer division by zero).
    let text = r#"graph @g(%x: f32[2]) -> (a: f32[2], b: f32[2], c: f32[2048, 1024], d: i64[2]) {
  %0 = constant {value = dense<f32[2]>[1.0, 2.0]} : f32[2]
  %1 = Add(%0, %x) : f32[2]
  %2 = constant {value = @weight("absent")} : f32[2]
  %3 = Add(%0, %2) : f32[2]
  %4 = constant {value = dense<i64[2]>[2048, 1024]} : i64[2]
  %5 = ConstantOfShape(%4) {value = dense<f32[1]>[1.0]} : f32[2048, 1024]
  %6 = constant {value = dense<i64[2]>[7, 0]} : i64[2]
  %7 = Div(%6, %6) : i64[2]
  return %1, %3, %5, %7
}
"#;
    unchanged("constant-fold", text);
}

#[test]
fn constant_fold_makes_weights_of_large_results() {
    let mut g = parse(
        r#"graph @g() -> (a: f32[4, 8]) {
  %0 = constant {value = dense<i64[2]>[4, 8]} : i64[2]
  %1 = ConstantOfShape(%0) {value = dense<f32[1]>[2.5]} : f32[4, 8]
  return %1
}
"#,
    )
    .unwrap();
    PassManager::parse("constant-fold")
        .unwrap()
        .run(&mut g, &mut PassContext::new())
        .unwrap();
    assert_eq!(
        print(&g),
        "graph @g() -> (a: f32[4, 8]) {\n  %0 = constant {value = dense<i64[2]>[4, 8]} : i64[2]\n  %1 = constant {value = @weight(\"ConstantOfShape\")} : f32[4, 8]\n  return %1\n}\n"
    );
    let w = g.weights.get("ConstantOfShape").unwrap();
    assert_eq!(w.shape(), [4, 8]);
    assert!(w.to_f64().iter().all(|&x| x == 2.5));
}

// ----- shape-propagation (ONNX ops) -----

/// What torch's dynamo exporter writes to split heads: the shape is computed from the
/// input's shape at run time.
const DYNAMO_RESHAPE: &str = r#"graph @g(%x: f32[1, seq, 64]) -> (y: f32[1, seq, 4, 16]) {
  %0 = Shape(%x) : i64[3]
  %1 = constant {value = dense<i64[]>[0]} : i64[]
  %2 = Gather(%0, %1) {axis = 0} : i64[]
  %3 = constant {value = dense<i64[]>[1]} : i64[]
  %4 = Gather(%0, %3) {axis = 0} : i64[]
  %5 = constant {value = dense<i64[1]>[0]} : i64[1]
  %6 = Unsqueeze(%2, %5) : i64[1]
  %7 = Unsqueeze(%4, %5) : i64[1]
  %8 = constant {value = dense<i64[1]>[4]} : i64[1]
  %9 = constant {value = dense<i64[1]>[16]} : i64[1]
  %10 = Concat(%6, %7, %8, %9) {axis = 0} : i64[4]
  %11 = Reshape(%x, %10) {allowzero = 0} : f32[1, seq, 4, 16]
  return %11
}
"#;

#[test]
fn shape_propagation_folds_dynamo_shape_chains() {
    insta::assert_snapshot!(run("shape-propagation", DYNAMO_RESHAPE));
}

#[test]
fn shape_propagation_keeps_data_dependent_shapes() {
    // NonZero's output size is known only when it runs: a `dims` node holding it could run
    // before it.
    unchanged(
        "shape-propagation",
        r#"graph @g(%x: f32[seq]) -> (y: i64[2]) {
  %0 = NonZero(%x) : i64[1, u0]
  %1 = Shape(%0) : i64[2]
  return %1
}
"#,
    );
}

/// The TorchScript exporter's `x.expand(shape)`: the shape from `Shape`, its -1 entries
/// (which keep a dim in torch) replaced by 1 through `Where(Equal(shape, -1), 1, shape)`.
/// Sizes are never -1, so the guard folds away and the Expand gets a known shape; a literal
/// -1 in the shape (a mask's `expand(b, -1, seq, seq)`) becomes 1.
#[test]
fn shape_propagation_folds_torchscript_expand_guards() {
    insta::assert_snapshot!(run(
        "canonicalize",
        r#"graph @g(%k: f32[1, 2, seq, 4], %m: bool[1, 1, 1, seq]) -> (y: f32[1, 2, 3, seq, 4], z: bool[1, 1, seq, seq]) {
  %0 = Shape(%k) : i64[4]
  %1 = constant {value = dense<i64[]>[1]} : i64[]
  %2 = Gather(%0, %1) {axis = 0} : i64[]
  %3 = constant {value = dense<i64[]>[2]} : i64[]
  %4 = Gather(%0, %3) {axis = 0} : i64[]
  %5 = constant {value = dense<i64[1]>[0]} : i64[1]
  %6 = Unsqueeze(%2, %5) : i64[1]
  %7 = Unsqueeze(%4, %5) : i64[1]
  %8 = constant {value = dense<i64[1]>[1]} : i64[1]
  %9 = constant {value = dense<i64[1]>[3]} : i64[1]
  %10 = constant {value = dense<i64[1]>[4]} : i64[1]
  %11 = Concat(%8, %6, %9, %7, %10) {axis = 0} : i64[5]
  %12 = Shape(%11) : i64[1]
  %13 = ConstantOfShape(%12) {value = dense<i64[1]>[1]} : i64[5]
  %14 = constant {value = dense<i64[]>[-1]} : i64[]
  %15 = Mul(%13, %14) : i64[5]
  %16 = Equal(%11, %15) : bool[5]
  %17 = Where(%16, %13, %11) : i64[5]
  %18 = constant {value = dense<i64[1]>[2]} : i64[1]
  %19 = Unsqueeze(%k, %18) : f32[1, 2, 1, seq, 4]
  %20 = Expand(%19, %17) : f32[1, 2, 3, seq, 4]
  %21 = constant {value = dense<i64[1]>[-1]} : i64[1]
  %22 = Concat(%8, %21, %7, %7) {axis = 0} : i64[4]
  %23 = constant {value = dense<i64[4]>[1, 1, 1, 1]} : i64[4]
  %24 = constant {value = dense<i64[4]>[-1, -1, -1, -1]} : i64[4]
  %25 = Equal(%22, %24) : bool[4]
  %26 = Where(%25, %23, %22) : i64[4]
  %27 = Expand(%m, %26) : bool[1, 1, seq, seq]
  return %20, %27
}
"#
    ));
}

/// A guard against a value a size can take (0 here: `seq` may be empty) is not decided:
/// the Expand's shape stays unknown until run time.
#[test]
fn shape_propagation_keeps_expand_guards_against_possible_sizes() {
    insta::assert_snapshot!(run(
        "canonicalize",
        r#"graph @g(%k: f32[1, 2, 1, seq, 4]) -> (y: f32[u0, 2, u2, u3, 4]) {
  %0 = dims {value = dims<[1, 2, 3, seq, 4]>} : i64[5]
  %1 = constant {value = dense<i64[5]>[1, 1, 1, 1, 1]} : i64[5]
  %2 = constant {value = dense<i64[5]>[0, 0, 0, 0, 0]} : i64[5]
  %3 = Equal(%0, %2) : bool[5]
  %4 = Where(%3, %1, %0) : i64[5]
  %5 = Expand(%k, %4) : f32[u0, 2, u2, u3, 4]
  return %5
}
"#
    ));
}

// ----- simplify -----

#[test]
fn simplify_removes_exporter_noise() {
    insta::assert_snapshot!(run(
        "simplify",
        r#"graph @g(%x: f32[2, 3, 4], %m: i64[2, 3, 4]) -> (a: f32[2, 3, 4], b: f32[2, 3, 4], c: f32[2, 3, 4], d: f32[4, 6], e: f32[2, 3, 4], f: f32[2, 3, 4], g: f32[4, 3, 2], h: f32[2, 3, 4], i: f32[2, 3, 4]) {
  %0 = Identity(%x) : f32[2, 3, 4]
  %1 = Cast(%0) {to = f32} : f32[2, 3, 4]
  %2 = CastLike(%1, %x) : f32[2, 3, 4]
  %3 = constant {value = dense<i64[2]>[6, 4]} : i64[2]
  %4 = Reshape(%x, %3) {allowzero = 0} : f32[6, 4]
  %5 = constant {value = dense<i64[2]>[4, -1]} : i64[2]
  %6 = Reshape(%4, %5) {allowzero = 0} : f32[4, 6]
  %7 = constant {value = dense<i64[3]>[2, 3, 4]} : i64[3]
  %8 = Reshape(%x, %7) {allowzero = 0} : f32[2, 3, 4]
  %9 = Transpose(%x) {perm = [0, 1, 2]} : f32[2, 3, 4]
  %10 = Transpose(%x) {perm = [1, 0, 2]} : f32[3, 2, 4]
  %11 = Transpose(%10) {perm = [1, 0, 2]} : f32[2, 3, 4]
  %12 = Transpose(%10) {perm = [2, 0, 1]} : f32[4, 3, 2]
  %13 = Dropout(%x) {seed = 0} : f32[2, 3, 4]
  %14 = constant {value = dense<bool[]>[false]} : bool[]
  %15, %16 = Dropout(%x, _, %14) : f32[2, 3, 4], bool[2, 3, 4]
  return %2, %8, %9, %6, %11, %13, %12, %15, %0
}
"#
    ));
}

#[test]
fn simplify_leaves_near_misses() {
    // A real Cast; a Reshape of a Reshape whose shape copies a dim (0); a real Transpose;
    // a training-mode Dropout; a Dropout whose mask is used.
    unchanged(
        "simplify",
        r#"graph @g(%x: f32[2, 3, 4]) -> (a: f16[2, 3, 4], b: f32[6, 2, 2], c: f32[3, 2, 4], d: f32[2, 3, 4], e: f32[2, 3, 4], f: bool[2, 3, 4]) {
  %0 = Cast(%x) {to = f16} : f16[2, 3, 4]
  %1 = constant {value = dense<i64[2]>[6, 4]} : i64[2]
  %2 = Reshape(%x, %1) {allowzero = 0} : f32[6, 4]
  %3 = constant {value = dense<i64[3]>[0, 2, -1]} : i64[3]
  %4 = Reshape(%2, %3) {allowzero = 0} : f32[6, 2, 2]
  %5 = Transpose(%x) {perm = [1, 0, 2]} : f32[3, 2, 4]
  %6 = constant {value = dense<bool[]>[true]} : bool[]
  %7 = Dropout(%x, _, %6) : f32[2, 3, 4]
  %8, %9 = Dropout(%x) : f32[2, 3, 4], bool[2, 3, 4]
  return %0, %4, %5, %7, %8, %9
}
"#,
    );
}

// ----- cse (ONNX ops) -----

#[test]
fn cse_merges_onnx_nodes_not_lookalikes() {
    insta::assert_snapshot!(run(
        "cse",
        r#"graph @g(%x: f32[2], %y: f32[2]) -> (a: f32[2], b: f32[2], c: f32[2], d: f32[], e: f32[], f: f32[]) {
  %0 = Add(%x, %y) : f32[2]
  %1 = Add(%x, %y) : f32[2]
  %2 = Add(%y, %x) : f32[2]
  %3 = constant {value = dense<i64[1]>[0]} : i64[1]
  %4 = ReduceSum(%0, %3) {keepdims = 0} : f32[]
  %5 = ReduceSum(%1, %3) {keepdims = 0} : f32[]
  %6 = ReduceSum(%1, %3) {keepdims = 0, noop_with_empty_axes = 1} : f32[]
  return %0, %1, %2, %4, %5, %6
}
"#
    ));
}

// ----- canonicalize (ONNX ops) -----

#[test]
fn canonicalize_cleans_a_dynamo_block() {
    let text = r#"graph @g(%x: f32[1, seq, 64]) -> (y: f32[1, 4, seq, 16]) {
  %0 = Shape(%x) : i64[3]
  %1 = constant {value = dense<i64[]>[1]} : i64[]
  %2 = Gather(%0, %1) {axis = 0} : i64[]
  %3 = constant {value = dense<i64[1]>[0]} : i64[1]
  %4 = Unsqueeze(%2, %3) : i64[1]
  %5 = constant {value = dense<i64[1]>[1]} : i64[1]
  %6 = constant {value = dense<i64[1]>[4]} : i64[1]
  %7 = constant {value = dense<i64[1]>[16]} : i64[1]
  %8 = Concat(%5, %4, %6, %7) {axis = 0} : i64[4]
  %9 = Identity(%x) : f32[1, seq, 64]
  %10 = Reshape(%9, %8) {allowzero = 0} : f32[1, seq, 4, 16]
  %11 = Transpose(%10) {perm = [0, 2, 1, 3]} : f32[1, 4, seq, 16]
  %12 = constant {value = dense<f32[]>[2.0]} : f32[]
  %13 = constant {value = dense<f32[]>[0.5]} : f32[]
  %14 = Mul(%12, %13) : f32[]
  %15 = Mul(%11, %14) : f32[1, 4, seq, 16]
  %16 = Cast(%15) {to = f32} : f32[1, 4, seq, 16]
  return %16
}
"#;
    insta::assert_snapshot!(run("canonicalize", text));
    let mut g = parse(text).unwrap();
    PassManager::parse("canonicalize")
        .unwrap()
        .run(&mut g, &mut PassContext::new())
        .unwrap();
    unchanged("canonicalize", &print(&g));
}

#[test]
fn constant_fold_treats_training_dropout_as_random() {
    // Inference Dropout is the identity: folded. Training Dropout draws a mask: not folded,
    // and two of them are not merged either.
    insta::assert_snapshot!(run(
        "constant-fold,cse,dce",
        r#"graph @g() -> (a: f32[2], b: f32[2], c: f32[2]) {
  %0 = constant {value = dense<f32[2]>[1.0, 2.0]} : f32[2]
  %1 = Dropout(%0) : f32[2]
  %2 = constant {value = dense<bool[]>[true]} : bool[]
  %3 = Dropout(%0, _, %2) : f32[2]
  %4 = Dropout(%0, _, %2) : f32[2]
  return %1, %3, %4
}
"#
    ));
}

#[test]
fn simplify_drops_identity_elements_and_shape_noops() {
    insta::assert_snapshot!(run(
        "simplify",
        r#"graph @g(%x: f32[2, 3], %b: bool[2, 3]) -> (a: f32[2, 3], b: f32[2, 3], c: f32[2, 3], d: bool[2, 3], e: f32[2, 3], f: f32[2, 3], g: f32[4, 2, 3], h: f32[2, 3], i: f32[2, 3]) {
  %0 = constant {value = dense<f32[1]>[1.0]} : f32[1]
  %1 = Mul(%x, %0) : f32[2, 3]
  %2 = Mul(%0, %1) : f32[2, 3]
  %3 = Div(%2, %0) : f32[2, 3]
  %4 = constant {value = dense<bool[]>[true]} : bool[]
  %5 = And(%4, %b) : bool[2, 3]
  %6 = constant {value = dense<i64[2]>[2, 1]} : i64[2]
  %7 = Expand(%x, %6) : f32[2, 3]
  %8 = constant {value = dense<i64[2]>[1, 1]} : i64[2]
  %9 = Tile(%7, %8) : f32[2, 3]
  %10 = constant {value = dense<f32[4, 1, 1]>[1.0, 1.0, 1.0, 1.0]} : f32[4, 1, 1]
  %11 = Mul(%x, %10) : f32[4, 2, 3]
  %12 = constant {value = dense<f32[1]>[2.0]} : f32[1]
  %13 = Mul(%x, %12) : f32[2, 3]
  %14 = Div(%0, %x) : f32[2, 3]
  return %3, %1, %2, %5, %7, %9, %11, %13, %14
}
"#
    ));
}
