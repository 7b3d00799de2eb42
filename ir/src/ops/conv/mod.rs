//! Convolutions and pools over `[N, C, spatial...]` tensors (1-D, 2-D, 3-D, any rank):
//! Conv, ConvTranspose, ConvInteger, QLinearConv, DeformConv, CausalConvWithState; AveragePool, MaxPool, LpPool,
//! their Global forms, MaxUnpool; Col2Im. Every one shares the window geometry of
//! [`window`]: output dims (symbolic in `infer`) and the taps each window reads.

pub mod convolution;
pub mod pool;
pub mod window;

use crate::attr::{Attrs, AttrsExt};
use crate::bail;
use crate::ops::{OpResult, OpSpec};
use crate::types::ValueType;

pub const SPECS: &[OpSpec] = &[
    OpSpec::new("Conv", convolution::infer_conv, convolution::eval_conv),
    OpSpec::new(
        "ConvInteger",
        convolution::infer_conv_integer,
        convolution::eval_conv_integer,
    ),
    OpSpec::new(
        "QLinearConv",
        convolution::infer_qlinear_conv,
        convolution::eval_qlinear_conv,
    ),
    OpSpec::new(
        "ConvTranspose",
        convolution::infer_conv_transpose,
        convolution::eval_conv_transpose,
    ),
    OpSpec::new(
        "DeformConv",
        convolution::infer_deform_conv,
        convolution::eval_deform_conv,
    ),
    OpSpec::new(
        "CausalConvWithState",
        convolution::infer_causal_conv,
        convolution::eval_causal_conv,
    ),
    OpSpec::new("AveragePool", pool::infer_pool, pool::eval_average_pool),
    OpSpec::new("MaxPool", pool::infer_max_pool, pool::eval_max_pool),
    OpSpec::new("LpPool", pool::infer_pool, pool::eval_lp_pool),
    OpSpec::new(
        "GlobalAveragePool",
        pool::infer_global_pool,
        pool::eval_global_average_pool,
    ),
    OpSpec::new(
        "GlobalMaxPool",
        pool::infer_global_pool,
        pool::eval_global_max_pool,
    ),
    OpSpec::new(
        "GlobalLpPool",
        pool::infer_global_pool,
        pool::eval_global_lp_pool,
    ),
    OpSpec::new("MaxUnpool", pool::infer_max_unpool, pool::eval_max_unpool),
    OpSpec::new("Col2Im", pool::infer_col2im, pool::eval_col2im),
];

/// Checks that `x` is `[N, C, spatial...]` with at least one spatial axis.
fn check_image(x: &ValueType, what: &str) -> OpResult<usize> {
    if x.rank() < 3 {
        bail!("{what} must be [N, C, spatial...] with at least one spatial axis, got {x}");
    }
    Ok(x.rank() - 2)
}

/// The kernel's spatial shape: the `kernel_shape` attribute, else the weight's spatial dims
/// when they are constant (`None` when neither is known).
fn kernel_shape(attrs: &Attrs, w_spatial: &[crate::dim::Dim]) -> OpResult<Option<Vec<i64>>> {
    if let Some(k) = attrs.ints("kernel_shape")? {
        if !k.is_empty() {
            if k.len() != w_spatial.len() {
                bail!(
                    "kernel_shape {k:?} does not match the weight's {} spatial dims",
                    w_spatial.len()
                );
            }
            return Ok(Some(k));
        }
    }
    Ok(w_spatial.iter().map(|d| d.as_const()).collect())
}

/// The `group` attribute, positive.
fn group_attr(attrs: &Attrs) -> OpResult<usize> {
    let g = attrs.int_or("group", 1)?;
    if g < 1 {
        bail!("group must be positive, got {g}");
    }
    Ok(g as usize)
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Runs one op through `infer` and `eval` on concrete tensors and checks they agree.

    use std::collections::HashMap;
    use std::sync::Arc;

    use crate::attr::{Attr, Attrs};
    use crate::dim::Dim;
    use crate::graph::WeightStore;
    use crate::ops::{lookup, EvalCtx, InferCtx, Known};
    use crate::tensor::Tensor;
    use crate::types::ValueType;

    pub fn attrs(list: &[(&str, Attr)]) -> Attrs {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    pub fn ints(v: &[i64]) -> Attr {
        Attr::Ints(v.to_vec())
    }

    pub fn f32s(shape: &[usize], v: &[f32]) -> Tensor {
        Tensor::from_f32s(shape.to_vec(), v.to_vec()).unwrap()
    }

    /// Runs `op`; every input's content is also known to `infer` (as a constant).
    pub fn run(
        op: &str,
        attrs: &Attrs,
        inputs: Vec<Option<Tensor>>,
        num_outputs: usize,
    ) -> Result<Vec<Tensor>, String> {
        let spec = lookup(op).ok_or("no such op")?;
        let weights = WeightStore::default();
        let types: Vec<Option<ValueType>> = inputs
            .iter()
            .map(|t| {
                t.as_ref().map(|t| {
                    ValueType::new(t.dtype(), t.shape().iter().map(|&d| Dim::from(d)).collect())
                })
            })
            .collect();
        let arcs: Vec<Option<Arc<Tensor>>> = inputs.into_iter().map(|t| t.map(Arc::new)).collect();
        let fresh = || Dim::sym("fresh");
        let ictx = InferCtx {
            attrs,
            inputs: types.iter().map(|t| t.as_ref()).collect(),
            known: arcs
                .iter()
                .map(|t| t.as_ref().map(|t| Known::Tensor(t.clone())))
                .collect(),
            num_outputs,
            weights: &weights,
            previous: None,
            fresh: &fresh,
        };
        let out_types = (spec.infer)(&ictx).map_err(|e| format!("infer: {e}"))?;
        let bindings = HashMap::new();
        let ectx = EvalCtx {
            attrs,
            inputs: arcs,
            num_outputs,
            output_types: &out_types,
            weights: &weights,
            bindings: &bindings,
        };
        let outs = (spec.eval)(&ectx).map_err(|e| format!("eval: {e}"))?;
        if outs.len() < num_outputs {
            return Err(format!("eval gave {} outputs", outs.len()));
        }
        for (t, ty) in outs.iter().zip(&out_types) {
            let want = ty.concrete_shape().ok_or("symbolic inferred shape")?;
            if t.dtype() != ty.dtype || t.shape() != want.as_slice() {
                return Err(format!(
                    "infer said {ty}, eval gave {}{:?}",
                    t.dtype(),
                    t.shape()
                ));
            }
        }
        Ok(outs)
    }

    /// Asserts `got` equals `want` within `tol`.
    pub fn close(got: &Tensor, want: &[f64], tol: f64) {
        let g = got.to_f64();
        assert_eq!(g.len(), want.len(), "got {g:?}, want {want:?}");
        for (i, (a, b)) in g.iter().zip(want).enumerate() {
            assert!(
                (a - b).abs() <= tol || (a.is_nan() && b.is_nan()),
                "element {i}: got {a}, want {b} (got {g:?})"
            );
        }
    }
}
