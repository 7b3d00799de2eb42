//! Shape ops: reshaping, joining and splitting, slicing and padding, broadcasting, shape
//! queries and generators. Shape-like inputs are read symbolically (`dims_input`) so that
//! `Shape -> Gather -> Concat -> Reshape` chains over symbolic dims infer exact shapes.

use crate::ops::OpSpec;

mod basic;
pub(crate) mod common;
mod generate;
mod join;
mod slice;
mod space;

pub const SPECS: &[OpSpec] = &[
    OpSpec::new("Identity", basic::infer_identity, basic::eval_identity)
        .with_sym(basic::sym_identity),
    OpSpec::new("Reshape", basic::infer_reshape, basic::eval_reshape).with_sym(basic::sym_reshape),
    OpSpec::new("Flatten", basic::infer_flatten, basic::eval_flatten),
    OpSpec::new("Squeeze", basic::infer_squeeze, basic::eval_squeeze).with_sym(basic::sym_squeeze),
    OpSpec::new("Unsqueeze", basic::infer_unsqueeze, basic::eval_unsqueeze)
        .with_sym(basic::sym_unsqueeze),
    OpSpec::new("Transpose", basic::infer_transpose, basic::eval_transpose),
    OpSpec::new("Shape", basic::infer_shape, basic::eval_shape).with_sym(basic::sym_shape),
    OpSpec::new("Size", basic::infer_size, basic::eval_size).with_sym(basic::sym_size),
    OpSpec::new("Concat", join::infer_concat, join::eval_concat).with_sym(join::sym_concat),
    OpSpec::new("Split", join::infer_split, join::eval_split),
    OpSpec::new("Slice", slice::infer_slice, slice::eval_slice).with_sym(slice::sym_slice),
    OpSpec::new("Pad", slice::infer_pad, slice::eval_pad),
    OpSpec::new(
        "CenterCropPad",
        slice::infer_center_crop_pad,
        slice::eval_center_crop_pad,
    ),
    OpSpec::new("Expand", generate::infer_expand, generate::eval_expand)
        .with_sym(generate::sym_expand),
    OpSpec::new("Tile", generate::infer_tile, generate::eval_tile),
    OpSpec::new(
        "ConstantOfShape",
        generate::infer_constant_of_shape,
        generate::eval_constant_of_shape,
    )
    .with_sym(generate::sym_constant_of_shape),
    OpSpec::new("Range", generate::infer_range, generate::eval_range).with_sym(generate::sym_range),
    OpSpec::new("EyeLike", generate::infer_eye_like, generate::eval_eye_like),
    OpSpec::new("Trilu", generate::infer_trilu, generate::eval_trilu),
    OpSpec::new(
        "DepthToSpace",
        space::infer_depth_to_space,
        space::eval_depth_to_space,
    ),
    OpSpec::new(
        "SpaceToDepth",
        space::infer_space_to_depth,
        space::eval_space_to_depth,
    ),
    OpSpec::new(
        "ReverseSequence",
        space::infer_reverse_sequence,
        space::eval_reverse_sequence,
    ),
];

/// Builders for op unit tests: run `infer` / `sym` / `eval` of one op on given inputs.
#[cfg(test)]
pub(crate) mod testutil {
    use std::cell::Cell;
    use std::sync::Arc;

    use crate::attr::{Attr, Attrs};
    use crate::dim::Dim;
    use crate::graph::WeightStore;
    use crate::ops::{lookup, EvalCtx, InferCtx, Known, OpResult};
    use crate::tensor::Tensor;
    use crate::types::ValueType;

    pub fn attrs(list: &[(&str, Attr)]) -> Attrs {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    pub fn ty(dtype: crate::dtype::DType, shape: &[&str]) -> ValueType {
        ValueType::new(
            dtype,
            shape.iter().map(|s| Dim::parse(s).unwrap()).collect(),
        )
    }

    pub fn dims(v: &[&str]) -> Known {
        Known::Dims(v.iter().map(|s| Dim::parse(s).unwrap()).collect())
    }

    pub fn ints(shape: &[usize], v: &[i64]) -> Tensor {
        Tensor::from_i64s(shape.to_vec(), v.to_vec()).unwrap()
    }

    pub fn floats(shape: &[usize], v: &[f32]) -> Tensor {
        Tensor::from_f32s(shape.to_vec(), v.to_vec()).unwrap()
    }

    /// Runs `infer` and `sym` of `op`.
    pub fn infer(
        op: &str,
        attrs: &Attrs,
        inputs: &[Option<ValueType>],
        known: Vec<Option<Known>>,
        num_outputs: usize,
    ) -> OpResult<(Vec<ValueType>, Option<Vec<Dim>>)> {
        let spec = lookup(op).expect("op is registered");
        let weights = WeightStore::default();
        let counter = Cell::new(0);
        let fresh = || {
            let k = counter.get();
            counter.set(k + 1);
            Dim::sym(&format!("u{k}"))
        };
        let mut known = known;
        known.resize(inputs.len(), None);
        let ctx = InferCtx {
            attrs,
            inputs: inputs.iter().map(|t| t.as_ref()).collect(),
            known,
            num_outputs,
            weights: &weights,
            previous: None,
            fresh: &fresh,
        };
        let types = (spec.infer)(&ctx)?;
        let sym = spec.sym.and_then(|f| f(&ctx));
        Ok((types, sym))
    }

    /// Runs `eval` of `op` on constant inputs, after checking that `infer` (seeing the
    /// inputs as constants) agrees with the computed types.
    pub fn eval(
        op: &str,
        attrs: &Attrs,
        inputs: &[Option<Tensor>],
        num_outputs: usize,
    ) -> OpResult<Vec<Tensor>> {
        let spec = lookup(op).expect("op is registered");
        let types: Vec<Option<ValueType>> = inputs
            .iter()
            .map(|t| t.as_ref().map(|t| ValueType::of(t.dtype(), t.shape())))
            .collect();
        let known = inputs
            .iter()
            .map(|t| t.as_ref().map(|t| Known::Tensor(Arc::new(t.clone()))))
            .collect();
        let (out_types, _) = infer(op, attrs, &types, known, num_outputs)?;
        let weights = WeightStore::default();
        let bindings = Default::default();
        let ctx = EvalCtx {
            attrs,
            inputs: inputs.iter().map(|t| t.clone().map(Arc::new)).collect(),
            num_outputs,
            output_types: &out_types,
            weights: &weights,
            bindings: &bindings,
        };
        let out = (spec.eval)(&ctx)?;
        assert!(out.len() >= num_outputs, "{op}: too few outputs");
        for (t, want) in out.iter().zip(&out_types) {
            assert_eq!(t.dtype(), want.dtype, "{op}: dtype differs from infer");
            assert_eq!(t.rank(), want.rank(), "{op}: rank differs from infer");
            for (&n, d) in t.shape().iter().zip(&want.shape) {
                if let Some(c) = d.as_const() {
                    assert_eq!(n as i64, c, "{op}: shape {:?} vs infer {want}", t.shape());
                }
            }
        }
        Ok(out)
    }
}
