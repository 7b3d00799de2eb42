//! Normalisations on the vector cores, rows of the normalised axes in UB: `rms_norm` ->
//! RmsNorm (y and the per-row rstd, as CANN's RmsNorm gives); an `Add` (no broadcasting)
//! read by an `rms_norm` -> one AddRmsNorm with it (y, rstd and the sum, which other ops
//! may read too), saving a launch and the sum's trip through HBM; `layer_norm` and ONNX
//! LayerNormalization -> LayerNormV4 (y, and the per-row mean and rstd in f32).

use kiln_ir::graph::{NodeId, Value};
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

/// The rms_norm that Add `add` lowers with as one AddRmsNorm, if there is one: it reads the
/// sum as its x, the Add does not broadcast, its scale is one value per normalised element
/// and already on the device (or a constant), and the two inputs, the sum and the norm's
/// output share one float device dtype ([`super::precision`] may keep some f32: those
/// cases stay two launches), and a row fits the fused kernel's UB. Returns the rms_norm node.
fn add_rms_norm_partner(lw: &Lowerer, add: NodeId) -> Result<Option<NodeId>, TargetError> {
    let g = lw.graph;
    let node = g.node(add);
    let (Some(a), Some(b)) = (node.input(0), node.input(1)) else {
        return Ok(None);
    };
    let sum = Value {
        node: add,
        output: 0,
    };
    let shape = lw.shape_of(sum)?;
    if node.inputs().len() != 2 || lw.shape_of(a)? != shape || lw.shape_of(b)? != shape {
        return Ok(None);
    }
    let dtype = lw.value_dtype(sum)?;
    if !matches!(dtype, ElemType::F16 | ElemType::BF16 | ElemType::F32)
        || lw.value_dtype(a)? != dtype
        || lw.value_dtype(b)? != dtype
    {
        return Ok(None);
    }
    for (user, slot) in g.users(sum) {
        let norm = g.node(user);
        if norm.op != "rms_norm" || slot != 0 || norm.input(0) != Some(sum) {
            continue;
        }
        let Some(scale) = norm.input(1) else {
            continue;
        };
        let ready = g.const_of(scale).is_some() || lw.values.contains_key(&scale);
        let Some((rows, cols)) = norm_rows(lw, user, &shape) else {
            continue;
        };
        // A row too wide for the fused kernel's UB still fits RmsNorm's, which has half
        // the row buffers.
        if add_rms_norm_tiling(lw, rows, cols, dtype).is_err() {
            continue;
        }
        let out = Value {
            node: user,
            output: 0,
        };
        if ready
            && lw.shape_of(scale)?.iter().product::<i64>() == cols
            && lw.value_dtype(out)? == dtype
        {
            return Ok(Some(user));
        }
    }
    Ok(None)
}

/// AddRmsNorm's row tiling: x1, x2, x and y per buffer and an f32 row temporary per row
/// of a tile; gamma and rstd once.
fn add_rms_norm_tiling(
    lw: &Lowerer,
    rows: i64,
    cols: i64,
    dtype: ElemType,
) -> Result<vector::RowTiling, String> {
    let size = dtype.size() as i64;
    vector::rows(
        lw.profile,
        rows,
        cols,
        |b| b * 4 * row_bytes(cols, size) + row_bytes(cols, 4) + 4,
        row_bytes(cols, size) + 32,
    )
}

/// Rows and cols of an rms_norm over `shape` (None if its axis is out of range).
fn norm_rows(lw: &Lowerer, id: NodeId, shape: &[i64]) -> Option<(i64, i64)> {
    let rank = shape.len() as i64;
    let a = lw.graph.node(id).attrs.int_or("axis", -1).unwrap_or(-1);
    let a = if a < 0 { a + rank } else { a };
    if a < 0 || a >= rank {
        return None;
    }
    let cols: i64 = shape[a as usize..].iter().product();
    Some((shape.iter().product::<i64>() / cols.max(1), cols))
}

/// Lowers Add `add` with the rms_norm reading it as one AddRmsNorm, if
/// [`add_rms_norm_partner`] finds one; false if the Add is left to lower alone.
pub fn add_rms_norm(lw: &mut Lowerer, add: NodeId) -> Result<bool, TargetError> {
    let Some(norm) = add_rms_norm_partner(lw, add)? else {
        return Ok(false);
    };
    let label = lw.current.clone();
    lw.current = format!("{label} + {}", lw.graph.node(norm).label());
    let mut xs = Vec::new();
    for i in 0..2 {
        let x = lw.input(add, i)?;
        xs.push(lw.to_format(&x, Format::Nd)?);
    }
    let g = lw.input(norm, 1)?;
    let g = lw.to_format(&g, Format::Nd)?;
    let sum = lw.output(add, 0)?;
    let g = lw.cast(&g, sum.dtype)?;
    let y = lw.output(norm, 0)?;
    let (rows, cols) = norm_rows(lw, norm, &sum.shape)
        .ok_or_else(|| lw.error("rms_norm axis out of range for the sum's rank"))?;
    let eps = lw
        .graph
        .node(norm)
        .attrs
        .float_or("eps", 1e-5)
        .unwrap_or(1e-5);
    let view = |t: &DevTensor, shape: Vec<i64>| DevTensor { shape, ..t.clone() };
    let m = vec![rows, cols];
    let rstd = lw.scratch("rstd", ElemType::F32, Format::Nd, vec![rows]);
    let t = add_rms_norm_tiling(lw, rows, cols, sum.dtype).map_err(|e| lw.error(e))?;
    let mut tiling = t.data();
    tiling.push("epsilonBits", eps.to_bits() as i64);
    lw.launch(
        "AddRmsNorm",
        CoreType::Aiv,
        t.block_dim,
        tiling,
        vec![
            Some(view(&xs[0], m.clone())),
            Some(view(&xs[1], m.clone())),
            Some(view(&g, vec![cols])),
        ],
        vec![view(&y, m.clone()), rstd, view(&sum, m)],
    );
    lw.current = label;
    Ok(true)
}

fn rms_norm(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let done = Value {
        node: id,
        output: 0,
    };
    if lw.values.contains_key(&done) {
        return Ok(()); // lowered with the Add it reads, as AddRmsNorm
    }
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
    fn an_add_read_by_an_rms_norm_becomes_one_add_rms_norm() {
        // %0 feeds a norm and another Mul (the sum is AddRmsNorm's third output); %3
        // broadcasts its bias over the rows, so it stays an Add and an RmsNorm.
        let text = "graph @t(%x: f32[2, seq, 64], %r: f32[2, seq, 64], %g: f32[64], %b: f32[64]) -> (a: f32[2, seq, 64], b: f32[2, seq, 64], c: f32[2, seq, 64]) {
            %0 = Add(%x, %r) : f32[2, seq, 64]
            %1 = rms_norm(%0, %g) {eps = 1e-6} : f32[2, seq, 64]
            %2 = Mul(%0, %1) : f32[2, seq, 64]
            %3 = Add(%2, %b) : f32[2, seq, 64]
            %4 = rms_norm(%3, %g) : f32[2, seq, 64]
            return %1, %2, %4
        }";
        let inputs = [
            floats(&[2, 5, 64], 7),
            floats(&[2, 5, 64], 8),
            floats(&[64], 9),
            floats(&[64], 10),
        ];
        for dtype in [ElemType::F16, ElemType::BF16] {
            let tol = if dtype == ElemType::F16 { 2e-3 } else { 1.6e-2 };
            let k = check(text, &inputs, &[("seq", 5)], dtype, tol);
            let count = |name: &str| k.iter().filter(|k| *k == name).count();
            assert_eq!(
                (count("AddRmsNorm"), count("Add"), count("RmsNorm")),
                (1, 1, 1),
                "{k:?}"
            );
        }
    }

    #[test]
    fn a_row_too_wide_for_add_rms_norm_stays_an_add_and_an_rms_norm() {
        // One f16 row of 16384 is 32 KiB: x1, x2, x and y, an f32 row, gamma do not fit
        // the 192 KiB of UB; RmsNorm's x and y do.
        let text =
            "graph @t(%x: f32[2, 16384], %r: f32[2, 16384], %g: f32[16384]) -> (a: f32[2, 16384]) {
            %0 = Add(%x, %r) : f32[2, 16384]
            %1 = rms_norm(%0, %g) : f32[2, 16384]
            return %1
        }";
        let inputs = [
            floats(&[2, 16384], 11),
            floats(&[2, 16384], 12),
            floats(&[16384], 13),
        ];
        let k = check(text, &inputs, &[], ElemType::F16, 2e-3);
        assert!(
            k.contains(&"Add".to_string()) && k.contains(&"RmsNorm".to_string()),
            "{k:?}"
        );
        assert!(!k.contains(&"AddRmsNorm".to_string()), "{k:?}");
    }

    #[test]
    fn a_sum_kept_f32_for_a_selection_is_not_fused_with_a_bf16_norm() {
        // The TopK keeps %0 in f32 (precision.rs); the norm's output is bf16, a dtype
        // AddRmsNorm's y and x cannot differ in.
        let text = "graph @t(%x: f32[4, 32], %r: f32[4, 32], %g: f32[32]) -> (a: f32[4, 32], v: f32[4, 2], i: i64[4, 2]) {
            %0 = Add(%x, %r) : f32[4, 32]
            %1 = rms_norm(%0, %g) : f32[4, 32]
            %2 = constant {value = dense<i64[1]>[2]} : i64[1]
            %3, %4 = TopK(%0, %2) {axis = -1} : f32[4, 2], i64[4, 2]
            return %1, %3, %4
        }";
        let inputs = [
            floats(&[4, 32], 14),
            floats(&[4, 32], 15),
            floats(&[32], 16),
        ];
        let k = check(text, &inputs, &[], ElemType::BF16, 1.6e-2);
        assert!(!k.contains(&"AddRmsNorm".to_string()), "{k:?}");
        assert!(k.contains(&"RmsNorm".to_string()), "{k:?}");
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
