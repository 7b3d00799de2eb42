//! Tests of the ONNX frontend on small models built here.

use std::collections::HashMap;
use std::path::Path;

use kiln_ir::{Attr, DType, Dim, Graph, Tensor};
use onnx_protobuf::{
    attribute_proto::AttributeType, tensor_proto::DataLocation, tensor_shape_proto, type_proto,
    AttributeProto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};

use super::*;

// ---- builders ----

enum D {
    V(i64),
    P(&'static str),
    Missing,
}

fn tensor_type(elem: i32, dims: &[D]) -> TypeProto {
    let mut shape = TensorShapeProto::new();
    for d in dims {
        let mut dim = tensor_shape_proto::Dimension::new();
        dim.value = match d {
            D::V(v) => Some(tensor_shape_proto::dimension::Value::DimValue(*v)),
            D::P(p) => Some(tensor_shape_proto::dimension::Value::DimParam(
                p.to_string(),
            )),
            D::Missing => None,
        };
        shape.dim.push(dim);
    }
    let mut t = type_proto::Tensor::new();
    t.elem_type = elem;
    t.shape = Some(shape).into();
    let mut tp = TypeProto::new();
    tp.value = Some(type_proto::Value::TensorType(t));
    tp
}

fn vi(name: &str, elem: i32, dims: &[D]) -> ValueInfoProto {
    let mut v = ValueInfoProto::new();
    v.name = name.into();
    v.type_ = Some(tensor_type(elem, dims)).into();
    v
}

fn out(name: &str) -> ValueInfoProto {
    let mut v = ValueInfoProto::new();
    v.name = name.into();
    v
}

fn node(op: &str, inputs: &[&str], outputs: &[&str], attrs: Vec<AttributeProto>) -> NodeProto {
    let mut n = NodeProto::new();
    n.op_type = op.into();
    n.name = format!("{op}_{}", outputs.first().copied().unwrap_or(""));
    n.input = inputs.iter().map(|s| s.to_string()).collect();
    n.output = outputs.iter().map(|s| s.to_string()).collect();
    n.attribute = attrs;
    n
}

fn attr(name: &str, ty: AttributeType, f: impl FnOnce(&mut AttributeProto)) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = ty.into();
    f(&mut a);
    a
}

fn a_int(name: &str, v: i64) -> AttributeProto {
    attr(name, AttributeType::INT, |a| a.i = v)
}

fn a_ints(name: &str, v: &[i64]) -> AttributeProto {
    attr(name, AttributeType::INTS, |a| a.ints = v.to_vec())
}

fn a_float(name: &str, v: f32) -> AttributeProto {
    attr(name, AttributeType::FLOAT, |a| a.f = v)
}

fn a_floats(name: &str, v: &[f32]) -> AttributeProto {
    attr(name, AttributeType::FLOATS, |a| a.floats = v.to_vec())
}

fn a_str(name: &str, v: &str) -> AttributeProto {
    attr(name, AttributeType::STRING, |a| a.s = v.as_bytes().to_vec())
}

fn a_tensor(name: &str, t: TensorProto) -> AttributeProto {
    attr(name, AttributeType::TENSOR, |a| a.t = Some(t).into())
}

fn a_graph(name: &str, g: GraphProto) -> AttributeProto {
    attr(name, AttributeType::GRAPH, |a| a.g = Some(g).into())
}

fn tp(name: &str, dtype: i32, dims: &[i64], f: impl FnOnce(&mut TensorProto)) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.into();
    t.data_type = dtype;
    t.dims = dims.to_vec();
    f(&mut t);
    t
}

fn f32_raw(name: &str, dims: &[i64], v: &[f32]) -> TensorProto {
    tp(name, 1, dims, |t| {
        t.raw_data = v.iter().flat_map(|x| x.to_le_bytes()).collect()
    })
}

fn graph(
    nodes: Vec<NodeProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: &[&str],
    inits: Vec<TensorProto>,
) -> GraphProto {
    let mut g = GraphProto::new();
    g.name = "test".into();
    g.node = nodes;
    g.input = inputs;
    g.output = outputs.iter().map(|o| out(o)).collect();
    g.initializer = inits;
    g
}

fn model_with(opsets: &[(&str, i64)], g: GraphProto) -> ModelProto {
    let mut m = ModelProto::new();
    m.ir_version = 8;
    for (d, v) in opsets {
        let mut o = OperatorSetIdProto::new();
        o.domain = d.to_string();
        o.version = *v;
        m.opset_import.push(o);
    }
    m.graph = Some(g).into();
    m
}

fn model(opset: i64, g: GraphProto) -> ModelProto {
    model_with(&[("", opset)], g)
}

fn import(m: &ModelProto) -> Result<Graph, CompileError> {
    import_model(m, None)
}

fn err(m: &ModelProto) -> String {
    import(m).unwrap_err().to_string()
}

fn run(g: &Graph, inputs: &[(&str, Tensor)]) -> Vec<Tensor> {
    let map: HashMap<String, Tensor> = inputs
        .iter()
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect();
    kiln_ir::interp::run(g, &map)
        .unwrap()
        .into_iter()
        .map(|(_, t)| t)
        .collect()
}

fn f32s(shape: Vec<usize>, v: Vec<f32>) -> Tensor {
    Tensor::from_f32s(shape, v).unwrap()
}

/// The tensor behind graph output `i`, which must be a constant.
fn output_const(g: &Graph, i: usize) -> Tensor {
    (*g.const_of(g.outputs()[i].1).expect("a constant output")).clone()
}

// ---- initializers ----

#[test]
fn raw_data_initializers_inline_or_weights() {
    let small: Vec<f32> = (0..16).map(|i| i as f32).collect();
    let big: Vec<f32> = (0..17).map(|i| i as f32 * 0.5).collect();
    let g = graph(
        vec![],
        vec![],
        &["small", "big"],
        vec![
            f32_raw("small", &[4, 4], &small),
            f32_raw("big", &[17], &big),
        ],
    );
    let g = import(&model(18, g)).unwrap();
    let n_small = g.node(g.outputs()[0].1.node);
    assert!(matches!(n_small.attrs.get("value"), Some(Attr::Tensor(_))));
    let n_big = g.node(g.outputs()[1].1.node);
    assert_eq!(n_big.attrs.get("value"), Some(&Attr::Weight("big".into())));
    assert_eq!(g.weights.len(), 1);
    assert_eq!(output_const(&g, 0), f32s(vec![4, 4], small));
    assert_eq!(output_const(&g, 1), f32s(vec![17], big));
}

#[test]
fn typed_field_initializers() {
    let cases: Vec<(TensorProto, Tensor)> = vec![
        (
            tp("f", 1, &[2], |t| t.float_data = vec![1.5, -2.0]),
            f32s(vec![2], vec![1.5, -2.0]),
        ),
        (
            tp("d", 11, &[2], |t| t.double_data = vec![0.25, 3.0]),
            Tensor::from_f64(DType::F64, vec![2], &[0.25, 3.0]),
        ),
        (
            tp("i64", 7, &[3], |t| t.int64_data = vec![-1, 0, 1 << 40]),
            Tensor::from_i64s(vec![3], vec![-1, 0, 1 << 40]).unwrap(),
        ),
        (
            tp("i32", 6, &[2], |t| t.int32_data = vec![-7, 9]),
            Tensor::from_i64(DType::I32, vec![2], &[-7, 9]),
        ),
        (
            tp("i8", 3, &[2], |t| t.int32_data = vec![-128, 127]),
            Tensor::from_i64(DType::I8, vec![2], &[-128, 127]),
        ),
        (
            tp("i16", 5, &[1], |t| t.int32_data = vec![-300]),
            Tensor::from_i64(DType::I16, vec![1], &[-300]),
        ),
        (
            tp("u8", 2, &[2], |t| t.int32_data = vec![255, 1]),
            Tensor::from_i64(DType::U8, vec![2], &[255, 1]),
        ),
        (
            tp("u16", 4, &[1], |t| t.int32_data = vec![65535]),
            Tensor::from_i64(DType::U16, vec![1], &[65535]),
        ),
        (
            tp("b", 9, &[3], |t| t.int32_data = vec![1, 0, 1]),
            Tensor::from_bools(vec![3], vec![true, false, true]).unwrap(),
        ),
        (
            // f16 bit patterns: 1.0 = 0x3c00, -2.0 = 0xc000.
            tp("h", 10, &[2], |t| t.int32_data = vec![0x3c00, 0xc000]),
            Tensor::from_f64(DType::F16, vec![2], &[1.0, -2.0]),
        ),
        (
            // bf16 bit patterns: 1.0 = 0x3f80, 0.5 = 0x3f00.
            tp("bf", 16, &[2], |t| t.int32_data = vec![0x3f80, 0x3f00]),
            Tensor::from_f64(DType::BF16, vec![2], &[1.0, 0.5]),
        ),
        (
            // f8e4m3fn: 1.0 = 0x38.
            tp("f8", 17, &[1], |t| t.int32_data = vec![0x38]),
            Tensor::from_f64(DType::F8E4M3FN, vec![1], &[1.0]),
        ),
        (
            tp("u32", 12, &[2], |t| t.uint64_data = vec![4_000_000_000, 3]),
            Tensor::from_i64(DType::U32, vec![2], &[4_000_000_000, 3]),
        ),
        (
            tp("u64", 13, &[1], |t| t.uint64_data = vec![u64::MAX]),
            Tensor::from_i64(DType::U64, vec![1], &[-1]),
        ),
        (tp("empty", 1, &[0, 3], |_| {}), f32s(vec![0, 3], vec![])),
    ];
    let names: Vec<String> = cases.iter().map(|(t, _)| t.name.clone()).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let inits = cases.iter().map(|(t, _)| t.clone()).collect();
    let g = import(&model(18, graph(vec![], vec![], &refs, inits))).unwrap();
    for (i, (_, want)) in cases.iter().enumerate() {
        assert_eq!(&output_const(&g, i), want, "{}", names[i]);
    }
}

#[test]
fn initializer_errors() {
    let bad_len = tp("w", 1, &[3], |t| t.float_data = vec![1.0]);
    assert_eq!(
        err(&model(18, graph(vec![], vec![], &["w"], vec![bad_len]))),
        "tensor \"w\": float_data has 1 elements, its shape [3] needs 3"
    );
    let raw = tp("r", 7, &[2], |t| t.raw_data = vec![0; 9]);
    assert_eq!(
        err(&model(18, graph(vec![], vec![], &["r"], vec![raw]))),
        "tensor \"r\": raw_data has 9 bytes, its shape [2] and dtype i64 need 16"
    );
    let s = tp("s", 8, &[1], |t| t.string_data = vec![b"x".to_vec()]);
    assert_eq!(
        err(&model(18, graph(vec![], vec![], &["s"], vec![s]))),
        "unsupported dtype string (initializer \"s\")"
    );
    let i4 = tp("q", 22, &[2], |t| t.int32_data = vec![0x21]);
    assert_eq!(
        err(&model(18, graph(vec![], vec![], &["q"], vec![i4]))),
        "unsupported dtype int4 (initializer \"q\")"
    );
    let mut g = graph(vec![], vec![], &[], vec![]);
    let mut sp = onnx_protobuf::SparseTensorProto::new();
    sp.values = Some(tp("sp", 1, &[1], |t| t.float_data = vec![1.0])).into();
    g.sparse_initializer.push(sp);
    assert_eq!(err(&model(18, g)), "unsupported sparse initializer \"sp\"");
}

fn external(name: &str, dims: &[i64], location: &str, offset: u64, length: u64) -> TensorProto {
    tp(name, 1, dims, |t| {
        t.data_location = DataLocation::EXTERNAL.into();
        for (k, v) in [
            ("location", location.to_string()),
            ("offset", offset.to_string()),
            ("length", length.to_string()),
        ] {
            let mut e = StringStringEntryProto::new();
            e.key = k.into();
            e.value = v;
            t.external_data.push(e);
        }
    })
}

#[test]
fn external_data() {
    let dir = std::env::temp_dir().join(format!("kiln-ext-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let vals: Vec<f32> = (0..20).map(|i| i as f32).collect();
    let mut bytes = vec![0u8; 8];
    bytes.extend(vals.iter().flat_map(|x| x.to_le_bytes()));
    std::fs::write(dir.join("sub/w.bin"), &bytes).unwrap();
    let g = graph(
        vec![],
        vec![],
        &["a", "b"],
        vec![
            external("a", &[20], "sub/w.bin", 8, 80),
            external("b", &[2], "sub/w.bin", 16, 8),
        ],
    );
    let m = model(18, g);
    std::fs::write(dir.join("model.onnx"), m.write_to_bytes().unwrap()).unwrap();
    let g = import_file(&dir.join("model.onnx")).unwrap();
    assert_eq!(output_const(&g, 0), f32s(vec![20], vals.clone()));
    assert_eq!(output_const(&g, 1), f32s(vec![2], vec![2.0, 3.0]));

    let escape = model(
        18,
        graph(
            vec![],
            vec![],
            &["a"],
            vec![external("a", &[2], "../w.bin", 0, 8)],
        ),
    );
    assert_eq!(
        import_model(&escape, Some(&dir)).unwrap_err().to_string(),
        "initializer \"a\": external data location \"../w.bin\" must be a relative path inside the model's folder"
    );
    let abs = model(
        18,
        graph(
            vec![],
            vec![],
            &["a"],
            vec![external("a", &[2], "/etc/passwd", 0, 8)],
        ),
    );
    assert!(import_model(&abs, Some(&dir))
        .unwrap_err()
        .to_string()
        .contains("must be a relative path inside the model's folder"));
    let past = model(
        18,
        graph(
            vec![],
            vec![],
            &["a"],
            vec![external("a", &[30], "sub/w.bin", 8, 120)],
        ),
    );
    assert!(import_model(&past, Some(&dir))
        .unwrap_err()
        .to_string()
        .contains("is past the end of"));
    let wrong_len = model(
        18,
        graph(
            vec![],
            vec![],
            &["a"],
            vec![external("a", &[2], "sub/w.bin", 0, 4)],
        ),
    );
    assert_eq!(
        import_model(&wrong_len, Some(&dir))
            .unwrap_err()
            .to_string(),
        "initializer \"a\": external data length 4 does not match its shape and dtype (8 bytes)"
    );
    let no_base = model(
        18,
        graph(
            vec![],
            vec![],
            &["a"],
            vec![external("a", &[2], "sub/w.bin", 0, 8)],
        ),
    );
    assert!(import_model(&no_base, None)
        .unwrap_err()
        .to_string()
        .contains("needs the model's folder"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn initializer_listed_as_input_is_a_constant() {
    let g = graph(
        vec![node("Add", &["x", "w"], &["y"], vec![])],
        vec![vi("x", 1, &[D::V(2)]), vi("w", 1, &[D::V(2)])],
        &["y"],
        vec![f32_raw("w", &[2], &[10.0, 20.0])],
    );
    let g = import(&model(18, g)).unwrap();
    assert_eq!(g.inputs().len(), 1);
    let y = run(&g, &[("x", f32s(vec![2], vec![1.0, 2.0]))]);
    assert_eq!(y[0], f32s(vec![2], vec![11.0, 22.0]));
}

// ---- graph inputs ----

#[test]
fn input_dims() {
    let g = graph(
        vec![node("Identity", &["x"], &["y"], vec![])],
        vec![vi(
            "x",
            1,
            &[
                D::V(2),
                D::P("s0"),
                D::P("s0 + 1"),
                D::P("seq-len"),
                D::Missing,
                D::P("2batch"),
            ],
        )],
        &["y"],
        vec![],
    );
    let g = import(&model(18, g)).unwrap();
    let t = g.value_type(g.inputs()[0]);
    let want: Vec<Dim> = vec![
        Dim::from(2i64),
        Dim::sym("s0"),
        Dim::sym("s0").add(&Dim::from(1i64)),
        Dim::sym("seq_len"),
        Dim::sym("x_4"),
        Dim::sym("_2batch"),
    ];
    assert_eq!(t.shape, want);
    assert_eq!(t.dtype, DType::F32);
}

#[test]
fn unsupported_input_types() {
    let mut seq = ValueInfoProto::new();
    seq.name = "s".into();
    let mut tpr = TypeProto::new();
    let mut sq = type_proto::Sequence::new();
    sq.elem_type = Some(tensor_type(1, &[])).into();
    tpr.value = Some(type_proto::Value::SequenceType(sq));
    seq.type_ = Some(tpr).into();
    let g = graph(vec![], vec![seq], &[], vec![]);
    assert_eq!(
        err(&model(18, g)),
        "unsupported sequence type (input \"s\")"
    );
    let g = graph(vec![], vec![vi("t", 8, &[D::V(1)])], &[], vec![]);
    assert_eq!(err(&model(18, g)), "unsupported dtype string (input \"t\")");
    let g = graph(vec![], vec![vi("u", 21, &[D::V(1)])], &[], vec![]);
    assert_eq!(err(&model(18, g)), "unsupported dtype uint4 (input \"u\")");
    let g = graph(vec![], vec![vi("f", 23, &[D::V(1)])], &[], vec![]);
    assert_eq!(
        err(&model(18, g)),
        "unsupported dtype float4e2m1 (input \"f\")"
    );
}

// ---- ops, domains, opsets ----

#[test]
fn unsupported_ops_name_domain_opset_and_node() {
    let mut n = node("LabelEncoder", &["x"], &["y"], vec![]);
    n.domain = "ai.onnx.ml".into();
    n.name = "n3".into();
    let g = graph(vec![n], vec![vi("x", 7, &[D::V(1)])], &["y"], vec![]);
    assert_eq!(
        err(&model_with(&[("", 18), ("ai.onnx.ml", 2)], g)),
        "unsupported op LabelEncoder (domain ai.onnx.ml, opset 2) at node \"n3\""
    );
    let mut n = node("NoSuchOp", &["x"], &["y"], vec![]);
    n.name = String::new();
    let g = graph(vec![n], vec![vi("x", 1, &[D::V(1)])], &["y"], vec![]);
    assert_eq!(
        err(&model(13, g)),
        "unsupported op NoSuchOp (domain ai.onnx, opset 13) at node \"y\""
    );
    let mut n = node("Adam", &["x"], &["y"], vec![]);
    n.domain = "ai.onnx.preview.training".into();
    let g = graph(vec![n], vec![vi("x", 1, &[D::V(1)])], &["y"], vec![]);
    assert_eq!(
        err(&model_with(&[("", 18), ("ai.onnx.preview.training", 1)], g)),
        "unsupported op Adam (domain ai.onnx.preview.training, opset 1) at node \"Adam_y\""
    );
    let g = graph(
        vec![node("Loop", &["x"], &["y"], vec![])],
        vec![vi("x", 1, &[D::V(1)])],
        &["y"],
        vec![],
    );
    assert_eq!(
        err(&model(16, g)),
        "unsupported op Loop (domain ai.onnx, opset 16) at node \"Loop_y\""
    );
    let g = graph(
        vec![node("Identity", &["x"], &["y"], vec![])],
        vec![vi("x", 1, &[D::V(1)])],
        &["y"],
        vec![],
    );
    assert_eq!(
        err(&model(99, g)),
        "unsupported op Identity (domain ai.onnx, opset 99): kiln knows default-domain opsets 1 to 28 at node \"Identity_y\""
    );
}

#[test]
fn undefined_values_are_errors() {
    let g = graph(
        vec![node("Identity", &["nope"], &["y"], vec![])],
        vec![],
        &["y"],
        vec![],
    );
    assert_eq!(
        err(&model(18, g)),
        "value \"nope\" is used but never defined at node \"Identity_y\""
    );
}

#[test]
fn cast_to_is_a_dtype() {
    let g = graph(
        vec![node("Cast", &["x"], &["y"], vec![a_int("to", 7)])],
        vec![vi("x", 1, &[D::V(2)])],
        &["y"],
        vec![],
    );
    let g = import(&model(18, g)).unwrap();
    let cast = g.node(g.outputs()[0].1.node);
    assert_eq!(cast.attrs.get("to"), Some(&Attr::DType(DType::I64)));
    let y = run(&g, &[("x", f32s(vec![2], vec![1.7, -2.2]))]);
    assert_eq!(y[0], Tensor::from_i64s(vec![2], vec![1, -2]).unwrap());
    let g = graph(
        vec![node("Cast", &["x"], &["y"], vec![a_int("to", 8)])],
        vec![vi("x", 1, &[D::V(2)])],
        &["y"],
        vec![],
    );
    assert_eq!(
        err(&model(18, g)),
        "unsupported dtype string (Cast.to) at node \"Cast_y\""
    );
}

// ---- Constant and If ----

#[test]
fn constant_nodes() {
    let g = graph(
        vec![
            node("Constant", &[], &["a"], vec![a_float("value_float", 1.5)]),
            node(
                "Constant",
                &[],
                &["b"],
                vec![a_ints("value_ints", &[1, 2, 3])],
            ),
            node("Constant", &[], &["c"], vec![a_int("value_int", 7)]),
            node(
                "Constant",
                &[],
                &["d"],
                vec![a_floats("value_floats", &[0.5; 20])],
            ),
            node(
                "Constant",
                &[],
                &["e"],
                vec![a_tensor("value", f32_raw("", &[2], &[1.0, 2.0]))],
            ),
        ],
        vec![],
        &["a", "b", "c", "d", "e"],
        vec![],
    );
    let g = import(&model(18, g)).unwrap();
    assert_eq!(output_const(&g, 0), Tensor::scalar_f32(1.5));
    assert_eq!(
        output_const(&g, 1),
        Tensor::from_i64s(vec![3], vec![1, 2, 3]).unwrap()
    );
    assert_eq!(output_const(&g, 2), Tensor::scalar_i64(7));
    assert_eq!(output_const(&g, 3), f32s(vec![20], vec![0.5; 20]));
    assert_eq!(g.weights.len(), 1);
    assert_eq!(output_const(&g, 4), f32s(vec![2], vec![1.0, 2.0]));
    let g = graph(
        vec![node(
            "Constant",
            &[],
            &["s"],
            vec![a_str("value_string", "hi")],
        )],
        vec![],
        &["s"],
        vec![],
    );
    assert_eq!(
        err(&model(18, g)),
        "unsupported dtype string (Constant.value_string) at node \"Constant_s\""
    );
    let sparse = attr("sparse_value", AttributeType::SPARSE_TENSOR, |_| {});
    let g = graph(
        vec![node("Constant", &[], &["s"], vec![sparse])],
        vec![],
        &["s"],
        vec![],
    );
    assert_eq!(
        err(&model(18, g)),
        "unsupported sparse tensor (Constant.sparse_value) at node \"Constant_s\""
    );
}

fn branch(value: f32) -> GraphProto {
    // Adds a constant to the outer value `x`.
    graph(
        vec![
            node("Constant", &[], &["k"], vec![a_float("value_float", value)]),
            node("Add", &["x", "k"], &["r"], vec![]),
        ],
        vec![],
        &["r"],
        vec![],
    )
}

#[test]
fn if_with_a_known_condition_is_inlined() {
    for (cond, want) in [(true, 11.0), (false, 101.0)] {
        let c = tp("c", 9, &[], |t| t.int32_data = vec![cond as i32]);
        let g = graph(
            vec![
                // The condition is computed from constants: known at import time.
                node("Identity", &["c"], &["c2"], vec![]),
                node(
                    "If",
                    &["c2"],
                    &["y"],
                    vec![
                        a_graph("then_branch", branch(10.0)),
                        a_graph("else_branch", branch(100.0)),
                    ],
                ),
            ],
            vec![vi("x", 1, &[D::V(1)])],
            &["y"],
            vec![c],
        );
        let g = import(&model(18, g)).unwrap();
        let y = run(&g, &[("x", f32s(vec![1], vec![1.0]))]);
        assert_eq!(y[0], f32s(vec![1], vec![want]));
    }
    // A condition known only at run time: both branches, joined by Where.
    let g = graph(
        vec![node(
            "If",
            &["c"],
            &["y"],
            vec![
                a_graph("then_branch", branch(1.0)),
                a_graph("else_branch", branch(2.0)),
            ],
        )],
        vec![vi("x", 1, &[D::V(1)]), vi("c", 9, &[D::V(1)])],
        &["y"],
        vec![],
    );
    let g = import(&model(18, g)).unwrap();
    for (c, want) in [(true, 11.0), (false, 12.0)] {
        let y = run(
            &g,
            &[
                ("x", f32s(vec![1], vec![10.0])),
                ("c", Tensor::from_bools(vec![1], vec![c]).unwrap()),
            ],
        );
        assert_eq!(y[0], f32s(vec![1], vec![want]));
    }
    // ... unless the branches' types differ.
    let other = graph(
        vec![node(
            "Constant",
            &[],
            &["r"],
            vec![a_ints("value_ints", &[1, 2])],
        )],
        vec![],
        &["r"],
        vec![],
    );
    let g = graph(
        vec![node(
            "If",
            &["c"],
            &["y"],
            vec![
                a_graph("then_branch", branch(1.0)),
                a_graph("else_branch", other),
            ],
        )],
        vec![vi("x", 1, &[D::V(1)]), vi("c", 9, &[])],
        &["y"],
        vec![],
    );
    assert_eq!(
        err(&model(18, g)),
        "unsupported op If (domain ai.onnx, opset 18): its condition is not known at import time and output 0 is f32[1] in then_branch, i64[2] in else_branch at node \"If_y\""
    );
}

#[test]
fn errors_inside_if_branches_name_the_inner_node() {
    let inner = graph(
        vec![node("Loop", &["x"], &["r"], vec![])],
        vec![],
        &["r"],
        vec![],
    );
    let c = tp("c", 9, &[], |t| t.int32_data = vec![1]);
    let g = graph(
        vec![node(
            "If",
            &["c"],
            &["y"],
            vec![
                a_graph("then_branch", inner.clone()),
                a_graph("else_branch", inner),
            ],
        )],
        vec![vi("x", 1, &[D::V(1)])],
        &["y"],
        vec![c],
    );
    assert_eq!(
        err(&model(18, g)),
        "unsupported op Loop (domain ai.onnx, opset 18) at node \"Loop_r\""
    );
}

// ---- opset upgrades ----

#[test]
fn reduce_and_squeeze_axes_attributes_become_inputs() {
    let g = graph(
        vec![
            node(
                "ReduceSum",
                &["x"],
                &["s"],
                vec![a_ints("axes", &[1]), a_int("keepdims", 1)],
            ),
            node("Squeeze", &["s"], &["q"], vec![a_ints("axes", &[1])]),
            node("Unsqueeze", &["q"], &["u"], vec![a_ints("axes", &[0])]),
        ],
        vec![vi("x", 1, &[D::V(2), D::V(3)])],
        &["u"],
        vec![],
    );
    let g = import(&model(11, g)).unwrap();
    let y = run(&g, &[("x", f32s(vec![2, 3], vec![1., 2., 3., 4., 5., 6.]))]);
    assert_eq!(y[0], f32s(vec![1, 2], vec![6.0, 15.0]));
}

#[test]
fn old_split_pad_clip_slice() {
    let g = graph(
        vec![
            node(
                "Split",
                &["x"],
                &["a", "b"],
                vec![a_int("axis", 0), a_ints("split", &[1, 3])],
            ),
            node(
                "Pad",
                &["b"],
                &["p"],
                vec![a_ints("pads", &[1, 0]), a_float("value", 9.0)],
            ),
            node(
                "Clip",
                &["p"],
                &["c"],
                vec![a_float("min", 2.0), a_float("max", 8.5)],
            ),
            node(
                "Slice",
                &["c"],
                &["s"],
                vec![
                    a_ints("starts", &[1]),
                    a_ints("ends", &[3]),
                    a_ints("axes", &[0]),
                ],
            ),
        ],
        vec![vi("x", 1, &[D::V(4)])],
        &["a", "p", "c", "s"],
        vec![],
    );
    let g = import(&model(9, g)).unwrap();
    let y = run(&g, &[("x", f32s(vec![4], vec![1., 5., 3., 9.]))]);
    assert_eq!(y[0], f32s(vec![1], vec![1.]));
    assert_eq!(y[1], f32s(vec![4], vec![9., 5., 3., 9.]));
    assert_eq!(y[2], f32s(vec![4], vec![8.5, 5., 3., 8.5]));
    assert_eq!(y[3], f32s(vec![2], vec![5., 3.]));
}

#[test]
fn split_without_sizes_gets_num_outputs() {
    let g = graph(
        vec![node("Split", &["x"], &["a", "b"], vec![])],
        vec![vi("x", 1, &[D::V(4)])],
        &["a", "b"],
        vec![],
    );
    let g = import(&model(13, g)).unwrap();
    let split = g.node(g.outputs()[0].1.node);
    assert_eq!(split.attrs.get("num_outputs"), Some(&Attr::Int(2)));
    let y = run(&g, &[("x", f32s(vec![4], vec![1., 2., 3., 4.]))]);
    assert_eq!(y[1], f32s(vec![2], vec![3., 4.]));
}

#[test]
fn softmax_before_13_coerces_to_2d() {
    let g = graph(
        vec![node("Softmax", &["x"], &["y"], vec![a_int("axis", 1)])],
        vec![vi("x", 1, &[D::V(1), D::V(2), D::V(2)])],
        &["y"],
        vec![],
    );
    let g = import(&model(11, g)).unwrap();
    let y = run(&g, &[("x", f32s(vec![1, 2, 2], vec![0., 0., 0., 0.]))]);
    // Softmax over all four elements, not over axis 1 alone.
    assert_eq!(y[0], f32s(vec![1, 2, 2], vec![0.25; 4]));
    let g13 = graph(
        vec![node("Softmax", &["x"], &["y"], vec![a_int("axis", 1)])],
        vec![vi("x", 1, &[D::V(1), D::V(2), D::V(2)])],
        &["y"],
        vec![],
    );
    let g13 = import(&model(13, g13)).unwrap();
    let y = run(&g13, &[("x", f32s(vec![1, 2, 2], vec![0., 0., 0., 0.]))]);
    assert_eq!(y[0], f32s(vec![1, 2, 2], vec![0.5; 4]));
}

#[test]
fn upsample_becomes_resize() {
    let g = graph(
        vec![node(
            "Upsample",
            &["x", "sc"],
            &["y"],
            vec![a_str("mode", "nearest")],
        )],
        vec![vi("x", 1, &[D::V(1), D::V(2)])],
        &["y"],
        vec![f32_raw("sc", &[2], &[1.0, 2.0])],
    );
    let g = import(&model(9, g)).unwrap();
    let r = g.node(g.outputs()[0].1.node);
    assert_eq!(r.op, "Resize");
    let y = run(&g, &[("x", f32s(vec![1, 2], vec![1., 2.]))]);
    assert_eq!(y[0], f32s(vec![1, 4], vec![1., 1., 2., 2.]));
    // Upsample-7: scales attribute; Upsample-1: height/width scales of NCHW.
    for (opset, attrs) in [
        (7, vec![a_floats("scales", &[1.0, 1.0, 1.0, 2.0])]),
        (
            1,
            vec![a_float("height_scale", 1.0), a_float("width_scale", 2.0)],
        ),
    ] {
        let g = graph(
            vec![node("Upsample", &["x"], &["y"], attrs)],
            vec![vi("x", 1, &[D::V(1), D::V(1), D::V(1), D::V(2)])],
            &["y"],
            vec![],
        );
        let g = import(&model(opset, g)).unwrap();
        let y = run(&g, &[("x", f32s(vec![1, 1, 1, 2], vec![1., 2.]))]);
        assert_eq!(
            y[0],
            f32s(vec![1, 1, 1, 4], vec![1., 1., 2., 2.]),
            "opset {opset}"
        );
    }
}

#[test]
fn rewrite_table_is_documented() {
    let t = upgrade::table();
    assert!(t
        .iter()
        .any(|(op, before, _)| *op == "ReduceSum" && *before == 13));
    assert!(t.iter().all(|(_, _, what)| !what.is_empty()));
}

#[test]
fn import_bytes_decodes_and_reports_garbage() {
    let g = graph(vec![], vec![vi("x", 1, &[D::V(1)])], &["x"], vec![]);
    let bytes = model(18, g).write_to_bytes().unwrap();
    assert!(import_bytes(&bytes, None).is_ok());
    assert!(import_bytes(&[0xff, 0xff, 0xff], None)
        .unwrap_err()
        .to_string()
        .starts_with("not an ONNX model"));
    let e = import_file(Path::new("/nonexistent/m.onnx"))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("/nonexistent/m.onnx: "), "{e}");
}

#[test]
fn resize_11_empty_roi_and_scales_become_absent() {
    let g = graph(
        vec![node(
            "Resize",
            &["x", "roi", "scales", "sizes"],
            &["y"],
            vec![a_str("mode", "nearest")],
        )],
        vec![vi("x", 1, &[D::V(1), D::V(2)])],
        &["y"],
        vec![
            tp("roi", 1, &[0], |_| {}),
            tp("scales", 1, &[0], |_| {}),
            tp("sizes", 7, &[2], |t| t.int64_data = vec![1, 4]),
        ],
    );
    let g = import(&model(11, g)).unwrap();
    let r = g.node(g.outputs()[0].1.node);
    assert_eq!(r.inputs()[1], None);
    assert_eq!(r.inputs()[2], None);
    assert!(r.inputs()[3].is_some());
    let y = run(&g, &[("x", f32s(vec![1, 2], vec![1., 2.]))]);
    assert_eq!(y[0].shape(), &[1, 4]);
}

#[test]
fn microsoft_ops_are_prefixed() {
    let mut n = node("NoSuchContribOp", &["x"], &["y"], vec![]);
    n.domain = "com.microsoft".into();
    let g = graph(vec![n], vec![vi("x", 1, &[D::V(1)])], &["y"], vec![]);
    assert_eq!(
        err(&model_with(&[("", 18), ("com.microsoft", 1)], g)),
        "unsupported op NoSuchContribOp (domain com.microsoft, opset 1) at node \"NoSuchContribOp_y\""
    );
    let mut n = node("Identity", &["x"], &["y"], vec![]);
    n.domain = "com.example".into();
    let g = graph(vec![n], vec![vi("x", 1, &[D::V(1)])], &["y"], vec![]);
    assert_eq!(
        err(&model(18, g)),
        "unsupported op Identity (domain com.example, opset ?): the model imports no opset for this domain at node \"Identity_y\""
    );
}

#[test]
fn node_origin_is_the_onnx_name_or_first_output() {
    let mut a = node("Identity", &["x"], &["y"], vec![]);
    a.name = "my/node".into();
    let mut b = node("Identity", &["y"], &["z"], vec![]);
    b.name = String::new();
    let g = graph(
        vec![a, b],
        vec![vi("x", 1, &[D::V(1)])],
        &["y", "z"],
        vec![],
    );
    let g = import(&model(18, g)).unwrap();
    assert_eq!(g.node(g.outputs()[0].1.node).origin, "my/node");
    assert_eq!(g.node(g.outputs()[1].1.node).origin, "z");
}

#[test]
fn malformed_bytes_never_panic() {
    // A model touching many paths: initializers, attributes, a subgraph, symbolic dims.
    let g = graph(
        vec![
            node("Add", &["x", "w"], &["a"], vec![]),
            node(
                "ReduceSum",
                &["a"],
                &["s"],
                vec![a_ints("axes", &[1]), a_int("keepdims", 0)],
            ),
            node("Cast", &["s"], &["c"], vec![a_int("to", 11)]),
            node(
                "Constant",
                &[],
                &["k"],
                vec![a_tensor("value", f32_raw("", &[2], &[1.0, 2.0]))],
            ),
            node(
                "If",
                &["b"],
                &["y"],
                vec![
                    a_graph("then_branch", branch(1.0)),
                    a_graph("else_branch", branch(2.0)),
                ],
            ),
        ],
        vec![vi("x", 1, &[D::P("n"), D::V(3)])],
        &["c", "k", "y"],
        vec![
            f32_raw("w", &[3], &[1.0, 2.0, 3.0]),
            tp("b", 9, &[], |t| t.int32_data = vec![1]),
        ],
    );
    let bytes = model(11, g).write_to_bytes().unwrap();
    assert!(import_bytes(&bytes, None).is_ok());
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..3000 {
        let mut b = bytes.clone();
        for _ in 0..(1 + next() % 4) {
            let i = (next() % b.len() as u64) as usize;
            match next() % 3 {
                0 => b[i] = next() as u8,
                1 => b[i] ^= 1 << (next() % 8),
                _ => b.truncate(i),
            }
            if b.is_empty() {
                break;
            }
        }
        let r = std::panic::catch_unwind(|| import_bytes(&b, None));
        assert!(r.is_ok(), "import panicked on {b:?}");
    }
}

#[test]
fn local_functions_are_inlined() {
    // custom.ScaleAdd(a, b) = a * alpha + b, alpha an attribute with a default of 2.
    let mut f = onnx_protobuf::FunctionProto::new();
    f.domain = "custom".into();
    f.name = "ScaleAdd".into();
    f.input = vec!["a".into(), "b".into()];
    f.output = vec!["r".into()];
    f.attribute_proto.push(a_float("alpha", 2.0));
    let mut c = node("Constant", &[], &["k"], vec![]);
    c.attribute
        .push(attr("value_float", AttributeType::FLOAT, |a| {
            a.ref_attr_name = "alpha".into()
        }));
    f.node = vec![
        c,
        node("Mul", &["a", "k"], &["m"], vec![]),
        node("Add", &["m", "b"], &["r"], vec![]),
    ];
    let mut o = OperatorSetIdProto::new();
    o.version = 18;
    f.opset_import.push(o);
    let mut call1 = node("ScaleAdd", &["x", "x"], &["y"], vec![]);
    call1.domain = "custom".into();
    let mut call2 = node(
        "ScaleAdd",
        &["y", "x"],
        &["z"],
        vec![a_float("alpha", 10.0)],
    );
    call2.domain = "custom".into();
    let g = graph(
        vec![call1, call2],
        vec![vi("x", 1, &[D::V(1)])],
        &["y", "z"],
        vec![],
    );
    let mut m = model_with(&[("", 18), ("custom", 1)], g);
    m.functions.push(f);
    let g = import(&m).unwrap();
    let y = run(&g, &[("x", f32s(vec![1], vec![1.0]))]);
    assert_eq!(y[0], f32s(vec![1], vec![3.0]));
    assert_eq!(y[1], f32s(vec![1], vec![31.0]));
    assert_eq!(g.node(g.outputs()[1].1.node).origin, "ScaleAdd_z/Add_r");
}

#[test]
fn dropout_batchnorm_gridsample_old_forms() {
    let g = graph(
        vec![node(
            "Dropout",
            &["x"],
            &["y"],
            vec![a_float("ratio", 0.3), a_int("is_test", 1)],
        )],
        vec![vi("x", 1, &[D::V(2)])],
        &["y"],
        vec![],
    );
    let g = import(&model(6, g)).unwrap();
    let d = g.node(g.outputs()[0].1.node);
    assert!(d.attrs.is_empty());
    assert_eq!(
        g.const_of(d.inputs()[1].unwrap()).unwrap().to_f64(),
        vec![0.3f32 as f64]
    );
    let y = run(&g, &[("x", f32s(vec![2], vec![1.0, 2.0]))]);
    assert_eq!(y[0], f32s(vec![2], vec![1.0, 2.0]));

    let bn = |spatial: i64| {
        let p = |n: &str, v: f32| f32_raw(n, &[1], &[v]);
        graph(
            vec![node(
                "BatchNormalization",
                &["x", "s", "b", "m", "v"],
                &["y"],
                vec![
                    a_int("spatial", spatial),
                    a_int("is_test", 1),
                    a_float("epsilon", 0.0),
                ],
            )],
            vec![vi("x", 1, &[D::V(1), D::V(1), D::V(2)])],
            &["y"],
            vec![p("s", 2.0), p("b", 1.0), p("m", 0.5), p("v", 1.0)],
        )
    };
    let g = import(&model(7, bn(1))).unwrap();
    let y = run(&g, &[("x", f32s(vec![1, 1, 2], vec![0.5, 1.5]))]);
    assert_eq!(y[0], f32s(vec![1, 1, 2], vec![1.0, 3.0]));
    assert_eq!(
        err(&model(7, bn(0))),
        "unsupported BatchNormalization with spatial = 0 at node \"BatchNormalization_y\""
    );

    let g = graph(
        vec![node(
            "GridSample",
            &["x", "grid"],
            &["y"],
            vec![a_str("mode", "bilinear")],
        )],
        vec![
            vi("x", 1, &[D::V(1), D::V(1), D::V(2), D::V(2)]),
            vi("grid", 1, &[D::V(1), D::V(1), D::V(1), D::V(2)]),
        ],
        &["y"],
        vec![],
    );
    let g = import(&model(16, g)).unwrap();
    let gs = g.node(g.outputs()[0].1.node);
    assert_eq!(gs.attrs.get("mode"), Some(&Attr::Str("linear".into())));
}

#[test]
fn dft_17_axis_attribute_becomes_input_2() {
    // A length-2 real signal on axis 1 of [1, 2, 1]: DFT [x0 + x1, x0 - x1].
    let g = graph(
        vec![node("DFT", &["x"], &["y"], vec![])],
        vec![vi("x", 1, &[D::V(1), D::V(2), D::V(1)])],
        &["y"],
        vec![],
    );
    let g = import(&model(17, g)).unwrap();
    let dft = g.node(g.outputs()[0].1.node);
    assert_eq!(
        g.const_of(dft.inputs()[2].unwrap()).unwrap().to_i64(),
        vec![1]
    );
    let y = run(&g, &[("x", f32s(vec![1, 2, 1], vec![3.0, 1.0]))]);
    let want = f32s(vec![1, 2, 2], vec![4.0, 0.0, 2.0, 0.0]);
    assert_eq!(
        crate::conformance::compare(&want, &y[0], 0.0, 1e-12),
        Ok(())
    );
}

// ---- declared output shapes ----

#[test]
fn declared_output_dims_pin_data_dependent_dims() {
    let mut g = graph(
        vec![node("TopK", &["x", "k"], &["v", "i"], vec![])],
        vec![vi("x", 1, &[D::V(3), D::V(5)]), vi("k", 7, &[D::V(1)])],
        &[],
        vec![],
    );
    g.output = vec![
        vi("v", 1, &[D::V(3), D::V(2)]),
        vi("i", 7, &[D::V(3), D::P("k_out")]),
    ];
    let m = model(18, g.clone());
    let ir = import(&m).unwrap();
    let shapes: Vec<String> = ir
        .outputs()
        .iter()
        .map(|(_, v)| ir.value_type(*v).to_string())
        .collect();
    assert_eq!(shapes, ["f32[3, 2]", "i64[3, 2]"]);
    // The interpreter checks the pinned dim against the data.
    let x = f32s(vec![3, 5], (0..15).map(|v| v as f32).collect());
    let k = Tensor::from_i64(DType::I64, vec![1], &[2]);
    let out = run(&ir, &[("x", x.clone()), ("k", k)]);
    assert_eq!(out[1].to_i64(), vec![4, 3, 4, 3, 4, 3]);
    let map = HashMap::from([
        ("x".to_string(), x),
        ("k".to_string(), Tensor::from_i64(DType::I64, vec![1], &[3])),
    ]);
    assert!(kiln_ir::interp::run(&ir, &map).is_err());
    // Two declarations that disagree leave the dim symbolic.
    g.output[1] = vi("i", 7, &[D::V(3), D::V(4)]);
    let ir = import(&model(18, g)).unwrap();
    let (_, v) = &ir.outputs()[0];
    assert!(ir.value_type(*v).shape[1].as_sym().is_some());
}
