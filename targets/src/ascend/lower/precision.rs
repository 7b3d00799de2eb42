//! Where the device keeps f32: values that decide a selection. A top-k over router scores
//! computed in f16/bf16 picks other experts than the reference whenever two scores round
//! to the same value, and a flipped choice changes a token's output entirely. So the
//! inputs of selections (TopK, ArgMax/ArgMin, moe's router logits), and what they are
//! computed from back to the matmul that produced them, stay in f32 on the device (the
//! matmul writing f32 from its f32 accumulator, as CANN's MatMulV3 can), and so do the
//! values a TopK selects. A moe router's input is kept f32 as well, back through its norm
//! into the residual stream: routing margins below a bf16 residual stream's error are real
//! (mixtral's shared test model has a token whose 2nd and 3rd experts' logits differ by
//! 1e-3 of their scale), and a bf16 stream flips them.

use std::collections::HashSet;

use kiln_ir::graph::{Graph, Value};

/// Ops an f32 value is traced back through: cheap vector math and data movement.
const THROUGH: &[&str] = &[
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Neg",
    "Exp",
    "Log",
    "Sqrt",
    "Sigmoid",
    "Tanh",
    "Relu",
    "Softplus",
    "Softmax",
    "Cast",
    "Reshape",
    "Squeeze",
    "Unsqueeze",
    "Flatten",
    "Identity",
    "Transpose",
    "Gather",
    "GatherElements",
    "Slice",
    "Concat",
    "Expand",
    "ReduceSum",
    "ReduceMean",
    "ReduceMax",
    "Where",
    "rms_norm",
];

/// Ops whose output is kept f32 but whose inputs are not traced (matmuls).
const SOURCES: &[&str] = &["MatMul", "Gemm"];

/// The activation a router matmul reads to make `logits` (through cheap ops), if any: its
/// routing is only as exact as that input, so it is kept f32 too, back through the norm to
/// the residual stream.
fn router_input(g: &Graph, logits: Value) -> Option<Value> {
    let mut v = logits;
    loop {
        let producer = g.node(v.node);
        match producer.op.as_str() {
            "MatMul" | "Gemm" => return producer.input(0),
            op if THROUGH.contains(&op) && op != "rms_norm" => v = producer.input(0)?,
            _ => return None,
        }
    }
}

/// The float values the device keeps in f32.
pub fn f32_values(g: &Graph) -> HashSet<Value> {
    let mut keep = HashSet::new();
    let mut todo = Vec::new();
    for id in g.node_ids() {
        let node = g.node(id);
        let seed = match node.op.as_str() {
            "TopK" | "ArgMax" | "ArgMin" => node.input(0),
            "moe" => node.input(1),
            _ => None,
        };
        todo.extend(seed);
        if node.op == "moe" {
            todo.extend(node.input(1).and_then(|l| router_input(g, l)));
        }
        if node.op == "TopK" {
            keep.insert(Value {
                node: id,
                output: 0,
            });
        }
    }
    while let Some(v) = todo.pop() {
        if !g.value_type(v).dtype.is_float() || !keep.insert(v) {
            continue;
        }
        let producer = g.node(v.node);
        if THROUGH.contains(&producer.op.as_str()) {
            todo.extend(producer.inputs().iter().flatten().copied());
        } else if !SOURCES.contains(&producer.op.as_str())
            && producer.op != "constant"
            && producer.op != "input"
        {
            // Computed by a kernel that works in the device dtype: not kept.
            keep.remove(&v);
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use crate::ascend::testing::{build, check, floats, graph};
    use kiln_runtime::ElemType;

    const ROUTER: &str = "graph @t(%x: f32[6, 32], %w: f32[32, 8], %b: f32[8]) -> (v: f32[6, 2], i: i64[6, 2], y: f32[6, 8]) {
        %0 = MatMul(%x, %w) : f32[6, 8]
        %1 = Sigmoid(%0) : f32[6, 8]
        %2 = Add(%1, %b) : f32[6, 8]
        %3 = constant {value = dense<i64[1]>[2]} : i64[1]
        %4, %5 = TopK(%2, %3) {axis = -1} : f32[6, 2], i64[6, 2]
        %6 = Mul(%0, %0) : f32[6, 8]
        return %4, %5, %6
    }";

    #[test]
    fn a_moe_router_input_stays_f32_back_through_its_norm() {
        let text = "graph @t(%x: f32[4, 16], %g: f32[16], %w: f32[16, 2], %w1: f32[2, 8, 16], %w2: f32[2, 16, 4]) -> (y: f32[4, 16]) {
            %0 = Add(%x, %x) : f32[4, 16]
            %1 = rms_norm(%0, %g) {axis = -1, eps = 1e-6} : f32[4, 16]
            %2 = MatMul(%1, %w) : f32[4, 2]
            %3 = moe(%1, %2, %w1, _, %w2) {swiglu_fusion = 2} : f32[4, 16]
            return %3
        }";
        let art = build(&graph(text), "ascend910b2", ElemType::BF16, &[]);
        // The experts' weights are inputs here, which moe does not take.
        let e = art.err().expect("computed expert weights").to_string();
        assert!(e.contains("w1 computed at run time"), "{e}");
        let g = graph(text);
        let keep = super::f32_values(&g);
        let out = |n: usize| kiln_ir::graph::Value {
            node: g.topo_order().unwrap()[n],
            output: 0,
        };
        // Inputs 0-4, then Add, rms_norm, MatMul, moe.
        assert!(keep.contains(&out(5)) && keep.contains(&out(6)) && keep.contains(&out(7)));
        assert!(!keep.contains(&out(8)));
    }

    #[test]
    fn router_scores_stay_f32_from_the_matmul_to_the_top_k() {
        let art = build(&graph(ROUTER), "ascend910b2", ElemType::BF16, &[]).unwrap();
        let out: Vec<(String, ElemType)> = art
            .launch
            .kernels
            .iter()
            .map(|k| (k.kernel_name.clone(), k.outputs[0].dtype))
            .collect();
        let find = |name: &str| out.iter().find(|(n, _)| n == name).unwrap().1;
        assert_eq!(find("MatMulV3"), ElemType::F32);
        assert_eq!(find("Sigmoid"), ElemType::F32);
        assert_eq!(find("TopKV2"), ElemType::F32);
        // The matmul's other reader works in bf16: its f32 input is cast down.
        assert_eq!(find("Mul"), ElemType::BF16);
        let inputs = [floats(&[6, 32], 1), floats(&[32, 8], 2), floats(&[8], 3)];
        check(ROUTER, &inputs, &[], ElemType::BF16, 1.6e-2);
    }
}
