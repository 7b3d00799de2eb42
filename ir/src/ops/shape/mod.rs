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

/// Shape chains as exporters write them, inferred over a whole graph and then run.
#[cfg(test)]
mod chain_tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use crate::attr::{Attr, Attrs};
    use crate::dtype::DType;
    use crate::graph::{Graph, Value};
    use crate::infer::{add_inferred, infer_graph};
    use crate::interp::run;
    use crate::tensor::Tensor;
    use crate::types::ValueType;

    fn node(g: &mut Graph, op: &str, attrs: &[(&str, Attr)], inputs: &[Value]) -> Value {
        let a: Attrs = attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let id = add_inferred(g, op, a, inputs.iter().map(|&v| Some(v)).collect(), 1, "").unwrap();
        Value {
            node: id,
            output: 0,
        }
    }

    fn ints(g: &mut Graph, v: &[i64]) -> Value {
        let t = Tensor::from_i64s(vec![v.len()], v.to_vec()).unwrap();
        node(g, "constant", &[("value", Attr::Tensor(Arc::new(t)))], &[])
    }

    fn scalar(g: &mut Graph, v: i64) -> Value {
        node(
            g,
            "constant",
            &[("value", Attr::Tensor(Arc::new(Tensor::scalar_i64(v))))],
            &[],
        )
    }

    #[test]
    fn shape_gather_concat_reshape_chain() {
        let mut g = Graph::new("chain");
        let ty = ValueType::new(
            DType::F32,
            vec![1i64.into(), crate::dim::Dim::sym("seq"), 64i64.into()],
        );
        let x = g.add_input("x", ty);
        let s = node(
            &mut g,
            "Shape",
            &[("start", Attr::Int(1)), ("end", Attr::Int(2))],
            &[x],
        );
        let seq = node(&mut g, "Squeeze", &[], &[s]);
        let (zero, one) = (scalar(&mut g, 0), scalar(&mut g, 1));
        let r = node(&mut g, "Range", &[], &[zero, seq, one]);
        let ax0 = ints(&mut g, &[0]);
        let u = node(&mut g, "Unsqueeze", &[], &[seq, ax0]);
        let (c1, c4, cm1) = (ints(&mut g, &[1]), ints(&mut g, &[4]), ints(&mut g, &[-1]));
        let shape = node(
            &mut g,
            "Concat",
            &[("axis", Attr::Int(0))],
            &[c1, u, c4, cm1],
        );
        let y = node(&mut g, "Reshape", &[], &[x, shape]);
        let t = node(
            &mut g,
            "Transpose",
            &[("perm", Attr::Ints(vec![0, 2, 1, 3]))],
            &[y],
        );
        let (st, en, ax) = (
            ints(&mut g, &[8]),
            ints(&mut g, &[i64::MAX]),
            ints(&mut g, &[3]),
        );
        let half = node(&mut g, "Slice", &[], &[t, st, en, ax]);
        let full = node(&mut g, "Shape", &[], &[x]);
        let idx = scalar(&mut g, -2);
        let seq2 = node(&mut g, "Gather", &[], &[full, idx]);
        let seq2 = node(&mut g, "Unsqueeze", &[], &[seq2, ax0]);
        let c2 = ints(&mut g, &[2]);
        let eshape = node(&mut g, "Concat", &[("axis", Attr::Int(0))], &[c2, seq2]);
        let r2 = node(&mut g, "Unsqueeze", &[], &[r, ax0]);
        let e = node(&mut g, "Expand", &[], &[r2, eshape]);
        let cshape = node(&mut g, "Concat", &[("axis", Attr::Int(0))], &[u, c2]);
        let z = node(&mut g, "ConstantOfShape", &[], &[cshape]);
        for (name, v) in [("half", half), ("e", e), ("z", z)] {
            g.add_output(name, v);
        }
        infer_graph(&mut g).unwrap();
        let ty = |v: Value| g.value_type(v).to_string();
        assert_eq!(ty(r), "i64[seq]");
        assert_eq!(ty(y), "f32[1, seq, 4, 16]");
        assert_eq!(ty(half), "f32[1, 4, seq, 8]");
        assert_eq!(ty(e), "i64[2, seq]");
        assert_eq!(ty(z), "f32[seq, 2]");

        let input =
            Tensor::from_f32s(vec![1, 5, 64], (0..320).map(|v| v as f32).collect()).unwrap();
        let out = run(&g, &HashMap::from([("x".to_string(), input)])).unwrap();
        assert_eq!(out[0].1.shape(), &[1, 4, 5, 8]);
        // half[0, 1, 2, 0] = y[0, 2, 1, 8] = x[0, 2, 16 + 8].
        assert_eq!(out[0].1.to_f64()[(5 + 2) * 8], (2 * 64 + 24) as f64);
        assert_eq!(out[1].1.to_i64(), vec![0, 1, 2, 3, 4, 0, 1, 2, 3, 4]);
        assert_eq!(out[2].1.shape(), &[5, 2]);
    }
}
