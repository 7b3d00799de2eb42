use std::sync::Arc;

use half::{bf16, f16};

use super::*;
use crate::attr::{Attr, Attrs};
use crate::dim::Dim;
use crate::dtype::DType;
use crate::graph::{Graph, WeightStore};
use crate::tensor::{Data, Tensor};
use crate::types::ValueType;

/// Parses `text`, prints it, and checks the print is `text` itself and reads back the same.
fn roundtrip(text: &str) -> Graph {
    let g = parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let printed = print(&g);
    assert_eq!(printed, text);
    let again = parse(&printed).unwrap_or_else(|e| panic!("{e}\n{printed}"));
    assert_eq!(print(&again), printed);
    g
}

fn parse_err(text: &str) -> String {
    match parse(text) {
        Ok(g) => panic!("parsed, expected an error:\n{}", print(&g)),
        Err(e) => e.to_string(),
    }
}

const BASIC: &str = r#"graph @main(%input_ids: i64[1, seq], %"past.0.key": f32[1, 4, past, 16]) -> (logits: f32[256, 64], "present.0": i64[2]) {
  %0 = constant {value = @weight("model.embed.weight")} : f32[256, 64]
  %1 = constant(%input_ids, _, %"past.0.key") {value = dense<i64[2]>[1, -1]} : i64[2]
  %2 = dims {value = dims<[1, seq, past+seq, seq*4, floordiv(seq+1, 2)]>} : i64[5]
  return %0, %1
}
"#;

#[test]
fn roundtrips_basic_text() {
    let g = roundtrip(BASIC);
    assert_eq!(g.name, "main");
    assert_eq!(g.inputs().len(), 2);
    assert_eq!(g.input_name(g.inputs()[1]), Some("past.0.key"));
    assert_eq!(g.outputs()[1].0, "present.0");
    // The weight is absent from the store: its printed type is kept.
    let w = g.outputs()[0].1;
    assert_eq!(g.value_type(w), &ValueType::of(DType::F32, &[256, 64]));
    // The absent input is kept as an absent slot.
    let c = g.outputs()[1].1.node;
    assert_eq!(g.node(c).inputs().len(), 3);
    assert_eq!(g.node(c).inputs()[1], None);
}

#[test]
fn comments_and_whitespace_are_free() {
    let text = "// a header\ngraph   @g ( ) -> ( y :f32[ 2 ] ) { // sig\n\n  %7 =constant{value=dense<f32[2]>[1.5,2]}:f32[2]\n return %7 }";
    let g = parse(text).unwrap();
    assert_eq!(
        print(&g),
        "graph @g() -> (y: f32[2]) {\n  %0 = constant {value = dense<f32[2]>[1.5, 2.0]} : f32[2]\n  return %0\n}\n"
    );
}

fn attr_graph(attrs: Attrs) -> Graph {
    let mut g = Graph::new("attrs");
    let mut a = attrs;
    a.insert(
        "value".into(),
        Attr::Tensor(Arc::new(Tensor::scalar_i64(7))),
    );
    let id = g.add_node(
        "constant",
        a,
        vec![],
        vec![ValueType::of(DType::I64, &[])],
        "",
    );
    g.add_output(
        "y",
        crate::graph::Value {
            node: id,
            output: 0,
        },
    );
    g
}

/// Prints, parses and prints again; checks the texts agree and the attributes survive
/// exactly (floats compared by bits).
fn check_graph_roundtrip(g: &Graph) -> String {
    let text = print(g);
    let back =
        parse_with_weights(&text, g.weights.clone()).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(print(&back), text);
    text
}

#[test]
fn every_attribute_kind_roundtrips_exactly() {
    let floats = vec![
        0.0f32,
        -0.0,
        1.0,
        0.1,
        1e-6,
        1e20,
        -3.5e-42, // subnormal
        f32::MAX,
        f32::MIN_POSITIVE,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::from_bits(0x7fc0_0001),
        f32::from_bits(0xffc0_0000),
    ];
    let mut attrs = Attrs::new();
    attrs.insert("i".into(), Attr::Int(-3));
    attrs.insert("big".into(), Attr::Int(i64::MIN));
    attrs.insert("f".into(), Attr::Float(1.0));
    attrs.insert("fs".into(), Attr::Floats(floats.clone()));
    attrs.insert("s".into(), Attr::Str("a \"q\" \\ \n\t\r \u{1} é 漢".into()));
    attrs.insert("is".into(), Attr::Ints(vec![1, -2, i64::MAX]));
    attrs.insert("empty_is".into(), Attr::Ints(vec![]));
    attrs.insert("empty_fs".into(), Attr::Floats(vec![]));
    attrs.insert("empty_ss".into(), Attr::Strs(vec![]));
    attrs.insert("ss".into(), Attr::Strs(vec!["x".into(), "".into()]));
    attrs.insert("to".into(), Attr::DType(DType::BF16));
    attrs.insert(
        "d".into(),
        Attr::Dims(vec![
            Dim::from(1i64),
            Dim::sym("seq"),
            Dim::parse("past+seq*4-1").unwrap(),
            Dim::parse("max(1, floordiv(seq, 2))").unwrap(),
            Dim::from(-1i64),
        ]),
    );
    attrs.insert("empty_d".into(), Attr::Dims(vec![]));
    attrs.insert("w".into(), Attr::Weight("a \"weird\" name".into()));
    attrs.insert("odd name".into(), Attr::Int(0));
    let g = attr_graph(attrs.clone());
    let text = check_graph_roundtrip(&g);
    assert!(
        text.contains(r#"s = "a \"q\" \\ \n\t\r \u{1} é 漢""#),
        "{text}"
    );
    assert!(text.contains("empty_fs = floats<[]>"), "{text}");
    assert!(text.contains("empty_is = []"), "{text}");
    assert!(text.contains("empty_ss = strs<[]>"), "{text}");
    assert!(
        text.contains("d = dims<[1, seq, past+seq*4-1, max(1, floordiv(seq, 2)), -1]>"),
        "{text}"
    );
    assert!(text.contains("f = 1.0,"), "{text}");
    assert!(text.contains("\"odd name\" = 0"), "{text}");
    assert!(text.contains("to = bf16"), "{text}");
    assert!(
        text.contains("inf, -inf, nan, nan(0x7fc00001), nan(0xffc00000)]"),
        "{text}"
    );

    let back = parse(&text).unwrap();
    let node = back.node(back.outputs()[0].1.node);
    for (k, v) in &attrs {
        let got = node.attrs.get(k).unwrap();
        match (v, got) {
            (Attr::Floats(a), Attr::Floats(b)) => {
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(a), bits(b), "{k}");
            }
            _ => assert_eq!(v, got, "{k}"),
        }
    }
}

fn tensor_of(dtype: DType, shape: Vec<usize>, data: Data) -> Tensor {
    Tensor::with_dtype(dtype, shape, data).unwrap()
}

#[test]
fn every_dtype_of_inline_tensor_roundtrips_bit_exact() {
    let tensors = vec![
        tensor_of(
            DType::F32,
            vec![2, 3],
            Data::F32(vec![
                1.0,
                -0.0,
                0.1,
                f32::INFINITY,
                f32::NAN,
                f32::from_bits(0x7f80_0001),
            ]),
        ),
        tensor_of(
            DType::F64,
            vec![4],
            Data::F64(vec![
                0.1,
                1e300,
                f64::NEG_INFINITY,
                f64::from_bits(0x7ff0_0000_0000_0001),
            ]),
        ),
        tensor_of(
            DType::F16,
            vec![5],
            Data::F16(vec![
                f16::from_f32(0.1),
                f16::from_bits(0x0001),
                f16::NEG_INFINITY,
                f16::NAN,
                f16::from_bits(0x7e01),
            ]),
        ),
        tensor_of(
            DType::BF16,
            vec![3],
            Data::BF16(vec![
                bf16::from_f32(2.71),
                bf16::NAN,
                bf16::from_bits(0xffc1),
            ]),
        ),
        tensor_of(
            DType::F8E4M3FN,
            vec![4],
            Data::F8(vec![0x00, 0x80, 0x7e, 0xff]),
        ),
        tensor_of(DType::F8E4M3FNUZ, vec![3], Data::F8(vec![0x00, 0x80, 0x01])),
        tensor_of(
            DType::F8E5M2,
            vec![4],
            Data::F8(vec![0x7c, 0xfc, 0x7f, 0x7d]),
        ),
        tensor_of(DType::F8E5M2FNUZ, vec![2], Data::F8(vec![0x80, 0x7f])),
        tensor_of(DType::I8, vec![2], Data::I8(vec![i8::MIN, i8::MAX])),
        tensor_of(DType::I16, vec![2], Data::I16(vec![i16::MIN, 7])),
        tensor_of(DType::I32, vec![1], Data::I32(vec![i32::MIN])),
        tensor_of(DType::I64, vec![2], Data::I64(vec![i64::MIN, i64::MAX])),
        tensor_of(DType::U8, vec![1], Data::U8(vec![255])),
        tensor_of(DType::U16, vec![1], Data::U16(vec![65535])),
        tensor_of(DType::U32, vec![1], Data::U32(vec![u32::MAX])),
        tensor_of(DType::U64, vec![2], Data::U64(vec![u64::MAX, 0])),
        tensor_of(DType::Bool, vec![2, 1], Data::Bool(vec![true, false])),
        tensor_of(DType::F32, vec![0, 3], Data::F32(vec![])),
        tensor_of(DType::I64, vec![], Data::I64(vec![-5])),
    ];
    for t in tensors {
        let mut attrs = Attrs::new();
        attrs.insert("t".into(), Attr::Tensor(Arc::new(t.clone())));
        let g = attr_graph(attrs);
        let text = check_graph_roundtrip(&g);
        let back = parse(&text).unwrap();
        let node = back.node(back.outputs()[0].1.node);
        let Some(Attr::Tensor(b)) = node.attrs.get("t") else {
            panic!("no tensor")
        };
        assert_eq!(b.dtype(), t.dtype());
        assert_eq!(b.shape(), t.shape());
        assert_eq!(b.to_le_bytes(), t.to_le_bytes(), "{}", tensor_to_string(&t));
    }
    assert_eq!(
        tensor_to_string(&tensor_of(
            DType::Bool,
            vec![2],
            Data::Bool(vec![true, false])
        )),
        "dense<bool[2]>[true, false]"
    );
    assert_eq!(
        tensor_to_string(&tensor_of(
            DType::F16,
            vec![2],
            Data::F16(vec![f16::NAN, f16::from_bits(0x7e01)])
        )),
        "dense<f16[2]>[nan, nan(0x7e01)]"
    );
}

#[test]
fn weights_in_the_store_give_the_type_and_must_agree_with_the_text() {
    let text = "graph @w() -> (y: f32[2]) {\n  %0 = constant {value = @weight(\"w\")} : f32[2]\n  return %0\n}\n";
    let mut store = WeightStore::default();
    store.set(
        "w",
        Arc::new(Tensor::from_f32s(vec![2], vec![1.0, 2.0]).unwrap()),
    );
    let g = parse_with_weights(text, store).unwrap();
    assert_eq!(print(&g), text);
    assert_eq!(
        g.const_of(g.outputs()[0].1).unwrap().to_f64(),
        vec![1.0, 2.0]
    );

    let mut store = WeightStore::default();
    store.set(
        "w",
        Arc::new(Tensor::from_f32s(vec![3], vec![1.0, 2.0, 3.0]).unwrap()),
    );
    let e = parse_with_weights(text, store).unwrap_err().to_string();
    assert_eq!(e, "2:3: constant infers f32[3], the text says f32[2]");
}

#[test]
fn prints_graphs_built_out_of_order_in_a_stable_topological_order() {
    let mut g = Graph::new("g");
    let x = g.add_input("x", ValueType::of(DType::F32, &[2]));
    let mut attrs = Attrs::new();
    attrs.insert(
        "value".into(),
        Attr::Tensor(Arc::new(Tensor::scalar_f32(1.0))),
    );
    // `a` reads `b`, which is added after it.
    let a = g.add_node(
        "constant",
        attrs.clone(),
        vec![Some(x)],
        vec![ValueType::of(DType::F32, &[])],
        "",
    );
    let b = g.add_node(
        "constant",
        attrs,
        vec![],
        vec![ValueType::of(DType::F32, &[])],
        "",
    );
    g.set_input(a, 1, Some(crate::graph::Value { node: b, output: 0 }));
    g.add_output("y", crate::graph::Value { node: a, output: 0 });
    let text = check_graph_roundtrip(&g);
    assert_eq!(
        text,
        "graph @g(%x: f32[2]) -> (y: f32[]) {\n  %0 = constant {value = dense<f32[]>[1.0]} : f32[]\n  %1 = constant(%x, %0) {value = dense<f32[]>[1.0]} : f32[]\n  return %1\n}\n"
    );
}

#[test]
fn graph_outputs_may_be_inputs_or_repeat() {
    roundtrip("graph @\"my-graph\"(%\"0\": f32[2], %_: i64[]) -> (a: f32[2], b: f32[2], \"\": i64[]) {\n  return %\"0\", %\"0\", %_\n}\n");
}

#[test]
fn parse_errors_name_the_place_and_what_was_expected() {
    let cases: &[(&str, &str)] = &[
        ("", "1:1: expected `graph`, found end of input"),
        ("graph @g(%x: f32[2],) -> () {\n  return\n}\n", "1:21: expected a value (`%...`), found `)`"),
        (
            "graph @g() -> () {\n  %0 = constant {value = dense<f32[]>[1.0]} : f32[]\n  %1 = Frobnicate(%0) : f32[]\n  return\n}",
            "3:8: unknown op `Frobnicate`",
        ),
        (
            "graph @g() -> () {\n  %0 = constant(%1) {value = dense<f32[]>[1.0]} : f32[]\n  return\n}",
            "2:17: use of undefined value %1",
        ),
        (
            "graph @g(%x: f32[2]) -> (y: f32[2]) {\n  return %x, %x\n}",
            "3:1: `return` gives 2 values, the signature declares 1 output",
        ),
        (
            "graph @g(%x: f33[2]) -> () {\n  return\n}",
            "1:14: unknown dtype `f33`",
        ),
        (
            "graph @g(%x: f32[2]) -> (y: f32[3]) {\n  return %x\n}",
            "1:26: output `y` is f32[2], the signature says f32[3]",
        ),
        (
            "graph @g() -> () {\n  %0 = constant {value = dense<f32[3]>[1.0, 2.0]} : f32[3]\n  return\n}",
            "2:39: tensor of shape [3] needs 3 elements, found 2",
        ),
        (
            "graph @g() -> () {\n  %0 = constant {value = dense<u8[1]>[256]} : u8[1]\n  return\n}",
            "2:39: 256 is out of range for u8",
        ),
        (
            "graph @g() -> () {\n  %0 = constant {value = dense<f32[]>[1.0]} : f32[]\n  %0 = constant {value = dense<f32[]>[1.0]} : f32[]\n  return\n}",
            "3:3: value %0 is defined twice",
        ),
        (
            "graph @g() -> () {\n  %0 = constant : f32[]\n  return\n}",
            "2:3: constant: constant needs a `value` tensor or weight",
        ),
        (
            "graph @g() -> () {\n  %0 = constant {value = dense<f32[]>[1.0]} : f32[], f32[]\n  return\n}",
            "2:45: 1 value defined but 2 types given",
        ),
        (
            "graph @g() -> () {\n  %0, %1 = constant {value = dense<f32[]>[1.0]} : f32[], f32[]\n  return\n}",
            "2:3: constant gives 1 output, the statement defines 2",
        ),
        (
            "graph @g(%x: f32[seq+]) -> () {\n  return\n}",
            "1:18: bad dim `seq+`: unexpected end of dim",
        ),
        (
            "graph @g() -> () {\n  %0 = constant {value = \"abc} : f32[]\n  return\n}",
            "2:26: unterminated string",
        ),
        (
            "graph @g() -> () {\n  %0 = input {name = \"x\"} : f32[]\n  return\n}",
            "2:8: graph inputs are declared in the signature, not with `input`",
        ),
        (
            "graph @g() -> () {\n  return\n}\nextra",
            "4:1: expected end of input, found `extra`",
        ),
        (
            "graph @g() -> () {\n  %0 = constant {value = dense<f32[]>[1.0], value = 1} : f32[]\n  return\n}",
            "2:45: attribute `value` is given twice",
        ),
        (
            "graph @g() -> () {\n  %0 = constant {value = frob} : f32[]\n  return\n}",
            "2:26: unknown attribute value `frob`",
        ),
        (
            "graph @g() -> () {\n  %0 = constant {value = 99999999999999999999} : f32[]\n  return\n}",
            "2:26: integer `99999999999999999999` is out of range",
        ),
    ];
    let mut bad = Vec::new();
    for (text, want) in cases {
        let got = parse_err(text);
        if &got != want {
            bad.push(format!("for:\n{text}\n  got: {got}\n want: {want}"));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// A small deterministic generator for the malformed-text tests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn malformed_text_never_panics() {
    let mut attrs = Attrs::new();
    attrs.insert(
        "fs".into(),
        Attr::Floats(vec![1.5, f32::NAN, f32::from_bits(0x7fc0_0001)]),
    );
    attrs.insert("s".into(), Attr::Str("é\"\\\u{1}".into()));
    attrs.insert(
        "d".into(),
        Attr::Dims(vec![Dim::parse("floordiv(seq+1, 2)").unwrap()]),
    );
    attrs.insert(
        "t".into(),
        Attr::Tensor(Arc::new(tensor_of(
            DType::F16,
            vec![2],
            Data::F16(vec![f16::NAN, f16::ONE]),
        ))),
    );
    let seeds = [BASIC.to_string(), print(&attr_graph(attrs))];
    let alphabet: Vec<char> = "%@_(){}[]<>,=:-\"\\/ \n0123456789.eaxyz漢"
        .chars()
        .collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for seed in &seeds {
        let chars: Vec<char> = seed.chars().collect();
        // Every prefix.
        for n in 0..chars.len() {
            let s: String = chars[..n].iter().collect();
            let _ = parse(&s);
        }
        // Random edits: deletions, insertions, replacements, swaps of ranges.
        for _ in 0..3000 {
            let mut c = chars.clone();
            for _ in 0..1 + rng.below(3) {
                if c.is_empty() {
                    break;
                }
                let i = rng.below(c.len());
                match rng.below(4) {
                    0 => {
                        c.remove(i);
                    }
                    1 => c.insert(i, alphabet[rng.below(alphabet.len())]),
                    2 => c[i] = alphabet[rng.below(alphabet.len())],
                    _ => {
                        let j = rng.below(c.len());
                        c.swap(i, j);
                    }
                }
            }
            let s: String = c.into_iter().collect();
            if let Ok(g) = parse(&s) {
                // Whatever parses must print and parse back to the same text.
                let p = print(&g);
                assert_eq!(print(&parse(&p).unwrap()), p, "from:\n{s}");
            }
        }
    }
    // Deep nesting in dims is rejected, not a stack overflow.
    let deep = format!(
        "graph @g(%x: f32[{}seq{}]) -> () {{\n  return\n}}",
        "(".repeat(100_000),
        ")".repeat(100_000)
    );
    assert!(parse_err(&deep).contains("nested too deeply"));
}
