//! Data movement on the vector cores, each output element a copy of an input element:
//! Transpose, Slice (StridedSlice), Expand (BroadcastTo), Concat (ConcatD), Split (SplitV),
//! and the gathers Gather (GatherV2), GatherND (GatherNd), GatherElements. Tiling: the 1-D
//! split over the output elements plus the op's attributes; UB holds per element the index
//! values it needs, a staging copy of its source and the output (times `bufferNum`).

use kiln_ir::graph::NodeId;
use kiln_ir::AttrsExt;
use kiln_runtime::ascend::descriptor::{CoreType, Format, Tiling};

use super::{DevTensor, LowerFn, Lowerer};
use crate::ascend::tiling::vector;
use crate::error::TargetError;

pub const OPS: &[(&str, LowerFn)] = &[
    ("Transpose", transpose),
    ("Slice", slice),
    ("Expand", expand),
    ("Concat", concat),
    ("Split", split),
    ("Gather", gather),
    ("GatherND", gather_nd),
    ("GatherElements", gather_elements),
];

/// Launches copy kernel `name` over `outputs` (their elements end to end).
pub fn launch_copy(
    lw: &mut Lowerer,
    name: &str,
    inputs: Vec<DevTensor>,
    outputs: Vec<DevTensor>,
    attrs: Tiling,
    index_bytes: i64,
) -> Result<(), TargetError> {
    let max_in = inputs
        .iter()
        .map(|x| x.dtype.size() as i64)
        .max()
        .unwrap_or(1);
    let out = outputs[0].dtype.size() as i64;
    let total: i64 = outputs.iter().map(|o| o.numel()).sum();
    let t = vector::split(lw.profile, total, |n| n * (index_bytes + max_in + out))
        .map_err(|e| lw.error(e))?;
    let mut tiling = t.data();
    tiling.0.extend(attrs.0);
    lw.launch(
        name,
        CoreType::Aiv,
        t.block_dim,
        tiling,
        inputs.into_iter().map(Some).collect(),
        outputs,
    );
    Ok(())
}

/// Input `i` in ND.
fn nd(lw: &mut Lowerer, id: NodeId, i: usize) -> Result<DevTensor, TargetError> {
    let x = lw.input(id, i)?;
    lw.to_format(&x, Format::Nd)
}

/// An axis attribute normalised against `rank`.
fn axis_attr(lw: &Lowerer, id: NodeId, default: i64, rank: usize) -> Result<usize, TargetError> {
    let a = lw
        .graph
        .node(id)
        .attrs
        .int_or("axis", default)
        .unwrap_or(default);
    let r = rank as i64;
    let n = if a < 0 { a + r } else { a };
    if n < 0 || n >= r.max(1) {
        return Err(lw.error(format!("axis {a} is out of range for rank {rank}")));
    }
    Ok(n as usize)
}

fn transpose(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = nd(lw, id, 0)?;
    let rank = x.shape.len();
    let perm = match lw.graph.node(id).attrs.ints("perm") {
        Ok(Some(p)) => p,
        Ok(None) => (0..rank as i64).rev().collect(),
        Err(e) => return Err(lw.error(e.to_string())),
    };
    let out = lw.output(id, 0)?;
    let x = lw.cast(&x, out.dtype)?;
    let mut t = Tiling::new();
    for (d, p) in perm.iter().enumerate() {
        t.push(&format!("perm{d}"), *p);
    }
    launch_copy(lw, "Transpose", vec![x], vec![out], t, 0)
}

fn slice(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = nd(lw, id, 0)?;
    let rank = x.shape.len();
    // The output shape (inferred) already says where each axis ends.
    let Some(starts) = lw.ints_input(id, 1) else {
        return Err(lw.unsupported("Slice with starts computed at run time"));
    };
    let axes = lw
        .ints_input(id, 3)
        .unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = lw
        .ints_input(id, 4)
        .unwrap_or_else(|| vec![1; starts.len()]);
    let mut begin = vec![0i64; rank];
    let mut stride = vec![1i64; rank];
    for (k, &a) in axes.iter().enumerate() {
        let a = if a < 0 { a + rank as i64 } else { a } as usize;
        let dim = x.shape[a];
        let step = steps[k];
        if step == 0 {
            return Err(lw.error("Slice with a zero step"));
        }
        let s = starts[k];
        let s = if s < 0 { s + dim } else { s };
        begin[a] = if step > 0 {
            s.clamp(0, dim)
        } else {
            s.clamp(0, dim - 1)
        };
        stride[a] = step;
    }
    let out = lw.output(id, 0)?;
    let x = lw.cast(&x, out.dtype)?;
    let mut t = Tiling::new();
    for (d, b) in begin.iter().enumerate() {
        t.push(&format!("begin{d}"), *b);
    }
    for (d, s) in stride.iter().enumerate() {
        t.push(&format!("stride{d}"), *s);
    }
    launch_copy(lw, "StridedSlice", vec![x], vec![out], t, 0)
}

fn expand(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = nd(lw, id, 0)?;
    let out = lw.output(id, 0)?;
    let x = lw.cast(&x, out.dtype)?;
    launch_copy(lw, "BroadcastTo", vec![x], vec![out], Tiling::new(), 0)
}

fn concat(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let out = lw.output(id, 0)?;
    let a = axis_attr(lw, id, 0, out.shape.len())?;
    let mut ins = Vec::new();
    for i in 0..lw.graph.node(id).inputs().len() {
        let x = nd(lw, id, i)?;
        ins.push(lw.cast(&x, out.dtype)?);
    }
    launch_copy(
        lw,
        "ConcatD",
        ins,
        vec![out],
        Tiling::new().with("axis", a as i64),
        0,
    )
}

fn split(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = nd(lw, id, 0)?;
    let a = axis_attr(lw, id, 0, x.shape.len())?;
    let outs = (0..lw.graph.node(id).outputs.len())
        .map(|i| lw.output(id, i))
        .collect::<Result<Vec<_>, _>>()?;
    let x = lw.cast(&x, outs[0].dtype)?;
    launch_copy(
        lw,
        "SplitV",
        vec![x],
        outs,
        Tiling::new().with("axis", a as i64),
        0,
    )
}

fn gather(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = nd(lw, id, 0)?;
    let idx = nd(lw, id, 1)?;
    let a = axis_attr(lw, id, 0, x.shape.len())?;
    let out = lw.output(id, 0)?;
    let x = lw.cast(&x, out.dtype)?;
    let ib = idx.dtype.size() as i64;
    launch_copy(
        lw,
        "GatherV2",
        vec![x, idx],
        vec![out],
        Tiling::new().with("axis", a as i64),
        ib,
    )
}

fn gather_nd(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    if lw.graph.node(id).attrs.int_or("batch_dims", 0).unwrap_or(0) != 0 {
        return Err(lw.unsupported("GatherND with batch_dims != 0"));
    }
    let x = nd(lw, id, 0)?;
    let idx = nd(lw, id, 1)?;
    let out = lw.output(id, 0)?;
    let x = lw.cast(&x, out.dtype)?;
    let ib = idx.dtype.size() as i64 * idx.shape.last().copied().unwrap_or(1);
    launch_copy(lw, "GatherNd", vec![x, idx], vec![out], Tiling::new(), ib)
}

fn gather_elements(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = nd(lw, id, 0)?;
    let idx = nd(lw, id, 1)?;
    let a = axis_attr(lw, id, 0, x.shape.len())?;
    let out = lw.output(id, 0)?;
    let x = lw.cast(&x, out.dtype)?;
    let ib = idx.dtype.size() as i64;
    let t = Tiling::new().with("axis", a as i64);
    launch_copy(lw, "GatherElements", vec![x, idx], vec![out], t, ib)
}

#[cfg(test)]
mod tests {
    use crate::ascend::testing::{check, floats};
    use kiln_ir::Tensor;
    use kiln_runtime::ElemType;

    fn f16(text: &str, inputs: &[Tensor]) -> Vec<String> {
        check(text, inputs, &[], ElemType::F16, 1e-3)
    }

    #[test]
    fn transposes() {
        let k = f16(
            "graph @t(%x: f32[2, 3, 5, 4]) -> (a: f32[2, 5, 3, 4], b: f32[4, 3, 5, 2], c: f32[4, 5, 3, 2]) {
                %0 = Transpose(%x) {perm = [0, 2, 1, 3]} : f32[2, 5, 3, 4]
                %1 = Transpose(%x) {perm = [3, 1, 2, 0]} : f32[4, 3, 5, 2]
                %2 = Transpose(%x) : f32[4, 5, 3, 2]
                return %0, %1, %2
            }",
            &[floats(&[2, 3, 5, 4], 1)],
        );
        assert_eq!(k.iter().filter(|k| *k == "Transpose").count(), 3);
    }

    #[test]
    fn slices_with_steps_and_negative_starts() {
        f16(
            "graph @t(%x: f32[4, 10]) -> (a: f32[3, 4], b: f32[2, 3]) {
                %0 = constant {value = dense<i64[2]>[1, -8]} : i64[2]
                %1 = constant {value = dense<i64[2]>[4, 9]} : i64[2]
                %2 = constant {value = dense<i64[2]>[0, 1]} : i64[2]
                %3 = constant {value = dense<i64[2]>[1, 2]} : i64[2]
                %4 = Slice(%x, %0, %1, %2, %3) : f32[3, 4]
                %5 = constant {value = dense<i64[2]>[-1, 100]} : i64[2]
                %6 = constant {value = dense<i64[2]>[-5, 0]} : i64[2]
                %7 = constant {value = dense<i64[2]>[-2, -3]} : i64[2]
                %8 = Slice(%x, %5, %6, %2, %7) : f32[2, 3]
                return %4, %8
            }",
            &[floats(&[4, 10], 2)],
        );
    }

    #[test]
    fn expand_concat_split() {
        let k = f16(
            "graph @t(%x: f32[3, 1], %y: f32[2, 3, 5]) -> (a: f32[2, 3, 4], b: f32[2, 3, 9], c: f32[2, 3, 2], d: f32[2, 3, 7]) {
                %0 = constant {value = dense<i64[3]>[2, 3, 4]} : i64[3]
                %1 = Expand(%x, %0) : f32[2, 3, 4]
                %2 = Concat(%1, %y) {axis = -1} : f32[2, 3, 9]
                %3 = constant {value = dense<i64[2]>[2, 7]} : i64[2]
                %4, %5 = Split(%2, %3) {axis = 2} : f32[2, 3, 2], f32[2, 3, 7]
                return %1, %2, %4, %5
            }",
            &[floats(&[3, 1], 3), floats(&[2, 3, 5], 4)],
        );
        assert!(k.contains(&"BroadcastTo".to_string()) && k.contains(&"SplitV".to_string()));
    }

    #[test]
    fn gathers() {
        let ids = Tensor::from_i64s(vec![2, 3], vec![0, 9, -1, 4, 4, 2]).unwrap();
        let nd = Tensor::from_i64s(vec![2, 2, 2], vec![0, 1, 3, 4, 2, 0, -1, -5]).unwrap();
        let el = Tensor::from_i64s(vec![4, 2], vec![0, 5, 1, 1, -1, 2, 3, 0]).unwrap();
        let k = f16(
            "graph @t(%e: f32[10, 6], %ids: i64[2, 3], %d: f32[4, 5, 6], %nd: i64[2, 2, 2], %el: i64[4, 2]) -> (a: f32[2, 3, 6], b: f32[10, 2, 3], c: f32[2, 2, 6], g: f32[4, 2]) {
                %0 = Gather(%e, %ids) {axis = 0} : f32[2, 3, 6]
                %1 = constant {value = dense<i64[2, 3]>[0, 5, -1, 4, 4, 2]} : i64[2, 3]
                %2 = Gather(%e, %1) {axis = 1} : f32[10, 2, 3]
                %3 = GatherND(%d, %nd) : f32[2, 2, 6]
                %5 = constant {value = dense<i64[2]>[0, 0]} : i64[2]
                %6 = constant {value = dense<i64[2]>[4, 6]} : i64[2]
                %7 = Slice(%e, %5, %6) : f32[4, 6]
                %8 = GatherElements(%7, %el) {axis = 1} : f32[4, 2]
                return %0, %2, %3, %8
            }",
            &[floats(&[10, 6], 5), ids, floats(&[4, 5, 6], 6), nd, el],
        );
        assert!(k.contains(&"GatherNd".to_string()));
    }
}
