//! Softmax on the vector cores (CANN's SoftmaxV2) over any axis, rows in UB (the last
//! axis's rows contiguous, others gathered by the kernel: tiling `inner`).

use kiln_ir::graph::NodeId;
use kiln_ir::AttrsExt;
use kiln_runtime::ascend::descriptor::{CoreType, Format};

use super::{LowerFn, Lowerer};
use crate::ascend::tiling::vector::{self, row_bytes};
use crate::error::TargetError;

pub const OPS: &[(&str, LowerFn)] = &[("Softmax", softmax)];

fn softmax(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    let x = lw.to_format(&x, Format::Nd)?;
    let rank = x.shape.len() as i64;
    let a = lw.graph.node(id).attrs.int_or("axis", -1).unwrap_or(-1);
    let a = if a < 0 { a + rank } else { a };
    if a < 0 || a >= rank.max(1) {
        return Err(lw.error(format!("axis out of range for rank {rank}")));
    }
    let out = lw.output(id, 0)?;
    let x = lw.cast(&x, out.dtype)?;
    let cols = x.shape.get(a as usize).copied().unwrap_or(1);
    let inner: i64 = x.shape[(a as usize + 1).min(x.shape.len())..]
        .iter()
        .product();
    let rows = x.numel() / cols.max(1);
    let size = x.dtype.size() as i64;
    let t = vector::rows(
        lw.profile,
        rows,
        cols,
        |b| b * 2 * row_bytes(cols, size) + 2 * row_bytes(cols, 4),
        0,
    )
    .map_err(|e| lw.error(e))?;
    let mut tiling = t.data();
    tiling.push("inner", inner);
    lw.launch(
        "SoftmaxV2",
        CoreType::Aiv,
        t.block_dim,
        tiling,
        vec![Some(x)],
        vec![out],
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::ascend::testing::{check, floats};
    use kiln_runtime::ElemType;

    #[test]
    fn rows_of_any_axis() {
        let text = "graph @t(%x: f32[3, 70, 50]) -> (y: f32[3, 70, 50], z: f32[3, 70, 50]) {
            %0 = Softmax(%x) {axis = -1} : f32[3, 70, 50]
            %1 = Softmax(%x) {axis = 1} : f32[3, 70, 50]
            return %0, %1
        }";
        for dtype in [ElemType::F16, ElemType::BF16] {
            check(text, &[floats(&[3, 70, 50], 2)], &[], dtype, 1e-2);
        }
    }
}
