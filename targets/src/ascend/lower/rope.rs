//! `rope` -> RotaryPositionEmbedding on the vector cores: rows of x's last axis in UB with
//! the cos/sin rows each one uses (broadcast over x's leading dims by the kernel). Tiling:
//! the row split, `half` (rotated pairs) and `interleaved`.

use kiln_ir::graph::NodeId;
use kiln_ir::AttrsExt;
use kiln_runtime::ascend::descriptor::{CoreType, Format};

use super::{LowerFn, Lowerer};
use crate::ascend::tiling::vector::{self, row_bytes};
use crate::error::TargetError;

pub const OPS: &[(&str, LowerFn)] = &[("rope", rope)];

fn rope(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let interleaved = lw
        .graph
        .node(id)
        .attrs
        .int_or("interleaved", 0)
        .unwrap_or(0);
    let out = lw.output(id, 0)?;
    let mut ins = Vec::new();
    for i in 0..3 {
        let x = lw.input(id, i)?;
        let x = lw.to_format(&x, Format::Nd)?;
        ins.push(lw.cast(&x, out.dtype)?);
    }
    let (rows, d) = ins[0].matrix();
    let h = ins[1].shape.last().copied().unwrap_or(0);
    let size = out.dtype.size() as i64;
    let t = vector::rows(
        lw.profile,
        rows,
        d,
        |b| b * (2 * row_bytes(d, size) + 2 * row_bytes(h, size)) + row_bytes(d, 4),
        0,
    )
    .map_err(|e| lw.error(e))?;
    let mut tiling = t.data();
    tiling.push("half", h);
    tiling.push("interleaved", (interleaved != 0) as i64);
    let inputs = ins.into_iter().map(Some).collect();
    lw.launch(
        "RotaryPositionEmbedding",
        CoreType::Aiv,
        t.block_dim,
        tiling,
        inputs,
        vec![out],
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::ascend::testing::{check, floats};
    use kiln_runtime::ElemType;

    #[test]
    fn halves_interleaved_and_partial_rotation() {
        let text = "graph @t(%x: f32[2, 3, 5, 16], %c: f32[5, 8], %s: f32[5, 8], %c2: f32[2, 1, 5, 4], %s2: f32[2, 1, 5, 4]) -> (a: f32[2, 3, 5, 16], b: f32[2, 3, 5, 16]) {
            %0 = rope(%x, %c, %s) : f32[2, 3, 5, 16]
            %1 = rope(%x, %c2, %s2) {interleaved = 1} : f32[2, 3, 5, 16]
            return %0, %1
        }";
        let inputs = [
            floats(&[2, 3, 5, 16], 1),
            floats(&[5, 8], 2),
            floats(&[5, 8], 3),
            floats(&[2, 1, 5, 4], 4),
            floats(&[2, 1, 5, 4], 5),
        ];
        for dtype in [ElemType::F16, ElemType::BF16] {
            let tol = if dtype == ElemType::F16 { 2e-3 } else { 1.6e-2 };
            let k = check(text, &inputs, &[], dtype, tol);
            assert_eq!(
                k.iter().filter(|k| *k == "RotaryPositionEmbedding").count(),
                2
            );
        }
    }
}
