//! Normalisations on the vector cores: `rms_norm` -> RmsNorm (y and the per-row rstd, as
//! CANN's RmsNorm gives), rows of the normalised axes in UB.

use kiln_ir::graph::NodeId;
use kiln_ir::AttrsExt;
use kiln_runtime::ascend::descriptor::{CoreType, Format};
use kiln_runtime::ElemType;

use super::{DevTensor, LowerFn, Lowerer};
use crate::ascend::tiling::vector::{self, row_bytes};
use crate::error::TargetError;

pub const OPS: &[(&str, LowerFn)] = &[("rms_norm", rms_norm)];

fn rms_norm(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    let x = lw.to_format(&x, Format::Nd)?;
    let g = lw.input(id, 1)?;
    let g = lw.to_format(&g, Format::Nd)?;
    let rank = x.shape.len() as i64;
    let attrs = &lw.graph.node(id).attrs;
    let a = attrs.int_or("axis", -1).unwrap_or(-1);
    let eps = attrs.float_or("eps", 1e-5).unwrap_or(1e-5);
    let a = if a < 0 { a + rank } else { a };
    if a < 0 || a >= rank {
        return Err(lw.error(format!("axis out of range for rank {rank}")));
    }
    let cols: i64 = x.shape[a as usize..].iter().product();
    let rows = x.numel() / cols.max(1);
    if g.numel() != cols {
        return Err(lw.unsupported(format!(
            "rms_norm with a scale of shape {:?} (one value per normalised element is supported)",
            g.shape
        )));
    }
    let g = lw.cast(&g, x.dtype)?;
    let out = lw.output(id, 0)?;
    let view = |t: &DevTensor, shape: Vec<i64>| DevTensor { shape, ..t.clone() };
    let (xm, ym, gm) = (
        view(&x, vec![rows, cols]),
        view(&out, vec![rows, cols]),
        view(&g, vec![cols]),
    );
    let rstd = lw.scratch("rstd", ElemType::F32, Format::Nd, vec![rows]);
    let size = x.dtype.size() as i64;
    let t = vector::rows(
        lw.profile,
        rows,
        cols,
        |b| b * 2 * row_bytes(cols, size) + row_bytes(cols, 4) + 4,
        row_bytes(cols, size) + 32,
    )
    .map_err(|e| lw.error(e))?;
    let mut tiling = t.data();
    tiling.push("epsilonBits", eps.to_bits() as i64);
    lw.launch(
        "RmsNorm",
        CoreType::Aiv,
        t.block_dim,
        tiling,
        vec![Some(xm), Some(gm)],
        vec![ym, rstd],
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::ascend::testing::{check, floats};
    use kiln_runtime::ElemType;

    #[test]
    fn rms_norm_over_one_and_two_axes() {
        let text = "graph @t(%x: f32[2, seq, 64], %g: f32[64], %h: f32[seq, 64]) -> (a: f32[2, seq, 64], b: f32[2, seq, 64]) {
            %0 = rms_norm(%x, %g) {eps = 1e-6} : f32[2, seq, 64]
            %1 = rms_norm(%x, %h) {axis = -2} : f32[2, seq, 64]
            return %0, %1
        }";
        let inputs = [
            floats(&[2, 5, 64], 1),
            floats(&[64], 2),
            floats(&[5, 64], 3),
        ];
        for dtype in [ElemType::F16, ElemType::BF16] {
            let tol = if dtype == ElemType::F16 { 2e-3 } else { 1.6e-2 };
            let k = check(text, &inputs, &[("seq", 5)], dtype, tol);
            assert_eq!(k.iter().filter(|k| *k == "RmsNorm").count(), 2);
        }
    }
}
