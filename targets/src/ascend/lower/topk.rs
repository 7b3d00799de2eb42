//! TopK on the vector cores (CANN's TopKV2) over the last axis: values and i64 positions,
//! sorted, ties to the lower position, as the reference does for `sorted` either way.

use kiln_ir::graph::NodeId;
use kiln_ir::AttrsExt;
use kiln_runtime::ascend::descriptor::{CoreType, Format};

use super::{LowerFn, Lowerer};
use crate::ascend::tiling::vector::{self, row_bytes};
use crate::error::TargetError;

pub const OPS: &[(&str, LowerFn)] = &[("TopK", topk)];

fn topk(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    let x = lw.to_format(&x, Format::Nd)?;
    let rank = x.shape.len() as i64;
    let attrs = &lw.graph.node(id).attrs;
    let a = attrs.int_or("axis", -1).unwrap_or(-1);
    let largest = attrs.int_or("largest", 1).unwrap_or(1);
    if a != -1 && a != rank - 1 {
        return Err(lw.unsupported(format!(
            "TopK over axis {a} of rank {rank} (the last axis is supported)"
        )));
    }
    let k = match lw.ints_input(id, 1).as_deref() {
        Some([k]) => *k,
        _ => return Err(lw.unsupported("TopK with K computed at run time")),
    };
    let values = lw.output(id, 0)?;
    let x = lw.cast(&x, values.dtype)?;
    let indices = lw.output(id, 1)?;
    let (rows, cols) = x.matrix();
    let size = x.dtype.size() as i64;
    let isize = indices.dtype.size() as i64;
    let t = vector::rows(
        lw.profile,
        rows,
        cols,
        |b| {
            b * (row_bytes(cols, size) + row_bytes(k, size) + row_bytes(k, isize))
                + row_bytes(cols, 8)
        },
        0,
    )
    .map_err(|e| lw.error(e))?;
    let mut tiling = t.data();
    tiling.push("k", k);
    tiling.push("largest", (largest != 0) as i64);
    lw.launch(
        "TopKV2",
        CoreType::Aiv,
        t.block_dim,
        tiling,
        vec![Some(x)],
        vec![values, indices],
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::ascend::testing::{check, floats};
    use kiln_ir::Tensor;
    use kiln_runtime::ElemType;

    #[test]
    fn largest_and_smallest_with_ties() {
        // Values a few f16 ulps apart tie after rounding: positions decide, lower first.
        let v: Vec<f32> = (0..40).map(|i| ((i * 7) % 10) as f32 * 0.25).collect();
        let x = Tensor::from_f32s(vec![4, 10], v).unwrap();
        let text = "graph @t(%x: f32[4, 10], %y: f32[3, 33]) -> (a: f32[4, 3], b: i64[4, 3], c: f32[3, 5], d: i64[3, 5]) {
            %0 = constant {value = dense<i64[1]>[3]} : i64[1]
            %1, %2 = TopK(%x, %0) {axis = -1, largest = 1, sorted = 1} : f32[4, 3], i64[4, 3]
            %3 = constant {value = dense<i64[1]>[5]} : i64[1]
            %4, %5 = TopK(%y, %3) {largest = 0, sorted = 0} : f32[3, 5], i64[3, 5]
            return %1, %2, %4, %5
        }";
        check(text, &[x, floats(&[3, 33], 1)], &[], ElemType::F16, 1e-3);
    }
}
