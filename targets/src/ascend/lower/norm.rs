//! Normalisations on the vector cores, rows of the normalised axes in UB: `rms_norm` ->
//! RmsNorm (y and the per-row rstd, as CANN's RmsNorm gives); `layer_norm` and ONNX
//! LayerNormalization -> LayerNormV4 (y, and the per-row mean and rstd in f32).

use kiln_ir::graph::NodeId;
use kiln_ir::AttrsExt;
use kiln_runtime::ascend::descriptor::{CoreType, Format};
use kiln_runtime::ElemType;

use super::{elementwise, DevTensor, LowerFn, Lowerer};
use crate::ascend::tiling::vector::{self, row_bytes};
use crate::error::TargetError;

pub const OPS: &[(&str, LowerFn)] = &[
    ("rms_norm", rms_norm),
    ("layer_norm", layer_norm),
    ("LayerNormalization", layer_norm),
];

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
    let out = lw.output(id, 0)?;
    let x = lw.cast(&x, out.dtype)?;
    let g = lw.cast(&g, x.dtype)?;
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

/// layer_norm(x, scale, bias?) {axis, eps} and LayerNormalization(X, Scale, B?) {axis,
/// epsilon} (whose Mean and InvStdDev outputs, when used, are cast from the kernel's f32).
fn layer_norm(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let node = lw.graph.node(id);
    let onnx = node.op == "LayerNormalization";
    let a = node.attrs.int_or("axis", -1).unwrap_or(-1);
    let eps = node
        .attrs
        .float_or(if onnx { "epsilon" } else { "eps" }, 1e-5)
        .unwrap_or(1e-5);
    let x = lw.input(id, 0)?;
    let x = lw.to_format(&x, Format::Nd)?;
    let rank = x.shape.len() as i64;
    let a = if a < 0 { a + rank } else { a };
    if a < 0 || a >= rank {
        return Err(lw.error(format!("axis out of range for rank {rank}")));
    }
    let cols: i64 = x.shape[a as usize..].iter().product();
    let rows = x.numel() / cols.max(1);
    let mut params = Vec::new();
    for i in 1..3 {
        match lw.opt_input(id, i)? {
            None => params.push(None),
            Some(p) => {
                if p.numel() != cols {
                    return Err(lw.unsupported(format!(
                        "layer norm with a parameter of shape {:?} (one value per normalised element is supported)",
                        p.shape
                    )));
                }
                let p = lw.to_format(&p, Format::Nd)?;
                let p = lw.cast(&p, x.dtype)?;
                params.push(Some(DevTensor {
                    shape: vec![cols],
                    ..p
                }));
            }
        }
    }
    let Some(gamma) = params[0].clone() else {
        return Err(lw.error("input 1 (scale) is missing"));
    };
    let out = lw.output(id, 0)?;
    let x = lw.cast(&x, out.dtype)?;
    let view = |t: &DevTensor, shape: Vec<i64>| DevTensor { shape, ..t.clone() };
    let (xm, ym) = (view(&x, vec![rows, cols]), view(&out, vec![rows, cols]));
    let mean = lw.scratch("mean", ElemType::F32, Format::Nd, vec![rows]);
    let rstd = lw.scratch("rstd", ElemType::F32, Format::Nd, vec![rows]);
    let size = x.dtype.size() as i64;
    let t = vector::rows(
        lw.profile,
        rows,
        cols,
        |b| b * 2 * row_bytes(cols, size) + row_bytes(cols, 4) + 8,
        2 * row_bytes(cols, size) + 64,
    )
    .map_err(|e| lw.error(e))?;
    let mut tiling = t.data();
    tiling.push("epsilonBits", eps.to_bits() as i64);
    lw.launch(
        "LayerNormV4",
        CoreType::Aiv,
        t.block_dim,
        tiling,
        vec![Some(xm), Some(gamma), params[1].clone()],
        vec![ym, mean.clone(), rstd.clone()],
    );
    // The statistics outputs of LayerNormalization, if anything reads them.
    for (i, stat) in [(1, mean), (2, rstd)] {
        let v = kiln_ir::graph::Value {
            node: id,
            output: i,
        };
        if i < lw.graph.node(id).outputs.len()
            && (!lw.graph.users(v).is_empty() || lw.graph.is_output(v))
        {
            let o = lw.output(id, i)?;
            let s = DevTensor {
                shape: o.shape.clone(),
                ..stat
            };
            elementwise::cast(lw, &s, &o)?;
        }
    }
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

    #[test]
    fn layer_norms_with_and_without_bias() {
        let text = "graph @t(%x: f32[3, 7, 40], %g: f32[40], %b: f32[40]) -> (a: f32[3, 7, 40], b: f32[3, 7, 40], m: f32[3, 7, 1]) {
            %0, %1, %2 = LayerNormalization(%x, %g, %b) {axis = -1, epsilon = 1e-5} : f32[3, 7, 40], f32[3, 7, 1], f32[3, 7, 1]
            %3 = layer_norm(%x, %g) {eps = 1e-6} : f32[3, 7, 40]
            return %0, %3, %1
        }";
        let inputs = [floats(&[3, 7, 40], 4), floats(&[40], 5), floats(&[40], 6)];
        for dtype in [ElemType::F16, ElemType::BF16] {
            let tol = if dtype == ElemType::F16 { 2e-3 } else { 1.6e-2 };
            check(text, &inputs, &[], dtype, tol);
        }
    }
}
