//! Assorted ONNX ops: image resampling (Resize, GridSample, AffineGrid, RoiAlign), detection
//! (NonMaxSuppression), signal processing (DFT, STFT, windows, MelWeightMatrix), Dropout,
//! BitCast, the recurrent-state ops LinearAttention and CausalConvWithState, and
//! TfIdfVectorizer.

use half::{bf16, f16};

use crate::attr::{Attr, Attrs};
use crate::bail;
use crate::dtype::DType;
use crate::ops::{OpResult, OpSpec};
use crate::tensor::Tensor;

mod detect;
mod grid;
mod recurrent;
mod resize;
mod signal;
mod simple;
mod tfidf;

pub const SPECS: &[OpSpec] = &[
    OpSpec::new("Resize", resize::infer, resize::eval),
    OpSpec::new(
        "GridSample",
        grid::infer_grid_sample,
        grid::eval_grid_sample,
    ),
    OpSpec::new(
        "AffineGrid",
        grid::infer_affine_grid,
        grid::eval_affine_grid,
    ),
    OpSpec::new("RoiAlign", detect::infer_roi_align, detect::eval_roi_align),
    OpSpec::new("NonMaxSuppression", detect::infer_nms, detect::eval_nms),
    OpSpec::new("DFT", signal::infer_dft, signal::eval_dft),
    OpSpec::new("STFT", signal::infer_stft, signal::eval_stft),
    OpSpec::new("HannWindow", signal::infer_window, signal::eval_hann),
    OpSpec::new("HammingWindow", signal::infer_window, signal::eval_hamming),
    OpSpec::new(
        "BlackmanWindow",
        signal::infer_window,
        signal::eval_blackman,
    ),
    OpSpec::new("MelWeightMatrix", signal::infer_mel, signal::eval_mel),
    OpSpec::new("Dropout", simple::infer_dropout, simple::eval_dropout),
    OpSpec::new("BitCast", simple::infer_bitcast, simple::eval_bitcast),
    OpSpec::new(
        "LinearAttention",
        recurrent::infer_linear_attention,
        recurrent::eval_linear_attention,
    ),
    OpSpec::new(
        "CausalConvWithState",
        recurrent::infer_causal_conv,
        recurrent::eval_causal_conv,
    ),
    OpSpec::new("TfIdfVectorizer", tfidf::infer_tfidf, tfidf::eval_tfidf),
];

/// A dtype attribute, given as a dtype or as an ONNX `TensorProto.DataType` code; code 0
/// (ONNX's "undefined") counts as absent.
pub(crate) fn dtype_attr(attrs: &Attrs, name: &str) -> OpResult<Option<DType>> {
    match attrs.get(name) {
        None | Some(Attr::Int(0)) => Ok(None),
        Some(Attr::DType(d)) => Ok(Some(*d)),
        Some(Attr::Int(c)) => match i32::try_from(*c).ok().and_then(DType::from_onnx_code) {
            Some(d) => Ok(Some(d)),
            None => bail!("attribute `{name}`: ONNX dtype code {c} is not supported"),
        },
        Some(a) => bail!("attribute `{name}` must be a dtype, got {a:?}"),
    }
}

/// Rounds `x` to the precision of a float dtype (other dtypes: unchanged).
pub(crate) fn round_to(dtype: DType, x: f64) -> f64 {
    match dtype {
        DType::F32 => x as f32 as f64,
        DType::F16 => f16::from_f64(x).to_f64(),
        DType::BF16 => bf16::from_f64(x).to_f64(),
        d if d.is_fp8() => crate::fp8::decode(d, crate::fp8::encode(d, x as f32, true)) as f64,
        _ => x,
    }
}

/// The range of an integer dtype, as f64.
pub(crate) fn int_range(dtype: DType) -> (f64, f64) {
    match dtype {
        DType::I8 => (i8::MIN as f64, i8::MAX as f64),
        DType::I16 => (i16::MIN as f64, i16::MAX as f64),
        DType::I32 => (i32::MIN as f64, i32::MAX as f64),
        DType::I64 => (i64::MIN as f64, i64::MAX as f64),
        DType::U8 => (0.0, u8::MAX as f64),
        DType::U16 => (0.0, u16::MAX as f64),
        DType::U32 => (0.0, u32::MAX as f64),
        DType::U64 => (0.0, u64::MAX as f64),
        DType::Bool => (0.0, 1.0),
        _ => (f64::NEG_INFINITY, f64::INFINITY),
    }
}

/// A tensor of `dtype` from f64 values, saturating: integers round half to even and clamp
/// to the dtype's range, floats clamp to the largest finite value (NaN stays NaN).
pub(crate) fn saturate_from_f64(dtype: DType, shape: Vec<usize>, v: &[f64]) -> Tensor {
    if dtype == DType::Bool {
        return Tensor::from_f64(dtype, shape, v);
    }
    if dtype.is_int() {
        let (lo, hi) = int_range(dtype);
        let r: Vec<f64> = v
            .iter()
            .map(|&x| x.round_ties_even().clamp(lo, hi))
            .collect();
        return Tensor::from_f64(dtype, shape, &r);
    }
    let max = match dtype {
        DType::F32 => f32::MAX as f64,
        DType::F16 => f16::MAX.to_f64(),
        DType::BF16 => bf16::MAX.to_f64(),
        _ => return Tensor::from_f64(dtype, shape, v),
    };
    let r: Vec<f64> = v.iter().map(|&x| x.clamp(-max, max)).collect();
    Tensor::from_f64(dtype, shape, &r)
}

/// Helpers shared by the families' unit tests: run one op through `infer` and `eval`,
/// checking that the two agree.
#[cfg(test)]
pub(crate) mod testutil {
    use std::collections::HashMap;
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

    pub fn f32t(shape: &[usize], v: &[f32]) -> Option<Tensor> {
        Some(Tensor::from_f32s(shape.to_vec(), v.to_vec()).unwrap())
    }

    pub fn i64t(shape: &[usize], v: &[i64]) -> Option<Tensor> {
        Some(Tensor::from_i64s(shape.to_vec(), v.to_vec()).unwrap())
    }

    /// Infers with every input known, evaluates, and checks the results match the types.
    pub fn run_op(
        op: &str,
        attrs: &Attrs,
        inputs: Vec<Option<Tensor>>,
        num_outputs: usize,
    ) -> OpResult<Vec<Tensor>> {
        let spec = lookup(op).expect("op is registered");
        let weights = WeightStore::default();
        let types: Vec<Option<ValueType>> = inputs
            .iter()
            .map(|t| t.as_ref().map(|t| ValueType::of(t.dtype(), t.shape())))
            .collect();
        let counter = std::cell::Cell::new(0);
        let fresh = || {
            counter.set(counter.get() + 1);
            Dim::sym(&format!("d{}", counter.get()))
        };
        let ictx = InferCtx {
            attrs,
            inputs: types.iter().map(|t| t.as_ref()).collect(),
            known: inputs
                .iter()
                .map(|t| t.as_ref().map(|t| Known::Tensor(Arc::new(t.clone()))))
                .collect(),
            num_outputs,
            weights: &weights,
            previous: None,
            fresh: &fresh,
        };
        let out_types = (spec.infer)(&ictx)?;
        let bindings = HashMap::new();
        let ectx = EvalCtx {
            attrs,
            inputs: inputs.into_iter().map(|t| t.map(Arc::new)).collect(),
            num_outputs,
            output_types: &out_types,
            weights: &weights,
            bindings: &bindings,
        };
        let out = (spec.eval)(&ectx)?;
        assert_eq!(out.len(), out_types.len().min(num_outputs));
        for (t, ty) in out.iter().zip(&out_types) {
            assert_eq!(t.dtype(), ty.dtype, "dtype of {op}");
            if let Some(s) = ty.concrete_shape() {
                assert_eq!(t.shape(), &s[..], "shape of {op}");
            }
        }
        Ok(out)
    }

    /// Infers `op` on symbolic input types; `known` gives constant contents per input.
    pub fn infer_types(
        op: &str,
        attrs: &Attrs,
        types: Vec<Option<ValueType>>,
        known: Vec<Option<Tensor>>,
        num_outputs: usize,
    ) -> OpResult<Vec<ValueType>> {
        let spec = lookup(op).expect("op is registered");
        let weights = WeightStore::default();
        let counter = std::cell::Cell::new(0);
        let fresh = || {
            counter.set(counter.get() + 1);
            Dim::sym(&format!("d{}", counter.get()))
        };
        let mut known: Vec<Option<Known>> = known
            .into_iter()
            .map(|t| t.map(|t| Known::Tensor(Arc::new(t))))
            .collect();
        known.resize(types.len(), None);
        let ctx = InferCtx {
            attrs,
            inputs: types.iter().map(|t| t.as_ref()).collect(),
            known,
            num_outputs,
            weights: &weights,
            previous: None,
            fresh: &fresh,
        };
        (spec.infer)(&ctx)
    }

    /// A type from a dtype and dims written as text (`"n"`, `"4"`).
    pub fn ty(dtype: crate::dtype::DType, dims: &[&str]) -> Option<ValueType> {
        Some(ValueType::new(
            dtype,
            dims.iter().map(|d| Dim::parse(d).unwrap()).collect(),
        ))
    }

    /// Asserts two float vectors agree to `tol`.
    pub fn close(got: &[f64], want: &[f64], tol: f64) {
        assert_eq!(got.len(), want.len(), "lengths differ: {got:?} vs {want:?}");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= tol || (g.is_nan() && w.is_nan()),
                "element {i}: got {g}, want {w}\n got {got:?}\nwant {want:?}"
            );
        }
    }

    pub fn s(v: &str) -> Attr {
        Attr::Str(v.to_string())
    }
}
