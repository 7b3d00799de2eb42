//! kiln's fused ops: one reference definition each of the computations that the fusion
//! passes recognise in exported graphs and that the targets run as single kernels.
//!
//! | op | file |
//! |----|------|
//! | `rms_norm(x, scale) {axis = -1, eps = 1e-5}` | [`rms_norm`] |
//! | `layer_norm(x, scale, bias?) {axis = -1, eps = 1e-5}` | [`layer_norm`] |
//! | `swiglu(gate, up) {alpha = 1.0, beta = 0.0, limit?}` | [`swiglu`] |
//! | `rope(x, cos, sin) {interleaved = 0, rotary_dim?}` | [`rope`] |
//! | `attention(q, k, v, mask?, past_k?, past_v?, sinks?) {scale?, causal = 0, window = 0, softcap = 0.0}` | [`attention`] |
//! | `moe(x, router_logits, w1, b1?, w2, b2?, w3?, b3?, selection_bias?, hash_table?, token_ids?, shared_w1?, shared_w2?, shared_w3?, shared_gate?)` | [`moe`] |
//!
//! Every op computes in f64 and returns its main input's dtype. `gelu` is not a fused op:
//! ONNX's `Gelu {approximate = "none" | "tanh"}` (opset 20) already is exactly that op.

use crate::bail;
use crate::ops::{EvalCtx, InferCtx, OpResult, OpSpec};
use crate::tensor::Tensor;
use crate::types::{broadcast_concrete, broadcast_shapes, ValueType};

pub mod attention;
pub mod layer_norm;
pub mod moe;
pub mod rms_norm;
pub mod rope;
pub mod swiglu;

pub const SPECS: &[OpSpec] = &[
    OpSpec::new("rms_norm", rms_norm::infer, rms_norm::eval),
    OpSpec::new("layer_norm", layer_norm::infer, layer_norm::eval),
    OpSpec::new("swiglu", swiglu::infer, swiglu::eval),
    OpSpec::new("rope", rope::infer, rope::eval),
    OpSpec::new("attention", attention::infer, attention::eval),
    OpSpec::new("moe", moe::infer, moe::eval),
];

/// The type of input `i`, which must be a float tensor.
pub(crate) fn float_input<'a>(ctx: &InferCtx<'a>, i: usize) -> OpResult<&'a ValueType> {
    let t = ctx.input(i)?;
    if !t.dtype.is_float() {
        bail!("input {i} must be a float tensor, got {t}");
    }
    Ok(t)
}

/// Input `i`, which must be a float tensor.
pub(crate) fn float_tensor<'a>(ctx: &'a EvalCtx, i: usize) -> OpResult<&'a Tensor> {
    let t = ctx.input(i)?;
    if !t.dtype().is_float() {
        bail!("input {i} must be a float tensor, got {}", t.dtype());
    }
    Ok(t)
}

/// Checks (symbolically) that `p` broadcasts to `x` without changing `x`'s shape.
pub(crate) fn check_broadcasts_to(x: &ValueType, p: &ValueType, what: &str) -> OpResult<()> {
    match broadcast_shapes(&[&x.shape, &p.shape]) {
        Some(s) if s.len() == x.rank() => Ok(()),
        _ => bail!("{what} {p} does not broadcast to {x}"),
    }
}

/// For each element (row-major) of a tensor of shape `out`, the flat index of the element
/// of a tensor of shape `shape` that numpy-broadcasts to it. `shape` must broadcast to `out`.
pub(crate) fn broadcast_index(out: &[usize], shape: &[usize]) -> Vec<usize> {
    let rank = out.len();
    let pad = rank - shape.len();
    // Stride of each output axis in the source (0 where the source broadcasts).
    let mut src_strides = vec![0usize; rank];
    let mut s = 1usize;
    for a in (0..shape.len()).rev() {
        if shape[a] != 1 {
            src_strides[pad + a] = s;
        }
        s *= shape[a];
    }
    let n: usize = out.iter().product();
    let mut idx = vec![0usize; n];
    let mut pos = vec![0usize; rank];
    let mut cur = 0usize;
    for slot in idx.iter_mut() {
        *slot = cur;
        for a in (0..rank).rev() {
            pos[a] += 1;
            cur += src_strides[a];
            if pos[a] < out[a] {
                break;
            }
            cur -= src_strides[a] * pos[a];
            pos[a] = 0;
        }
    }
    idx
}

/// `p`'s values broadcast to the full shape `shape`; an error if `p` does not broadcast
/// to `shape` without changing it.
pub(crate) fn broadcast_to(p: &Tensor, shape: &[usize], what: &str) -> OpResult<Vec<f64>> {
    if broadcast_concrete(&[shape, p.shape()]).as_deref() != Some(shape) {
        bail!("{what} {:?} does not broadcast to {shape:?}", p.shape());
    }
    let v = p.to_f64();
    if p.shape() == shape {
        return Ok(v);
    }
    Ok(broadcast_index(shape, p.shape())
        .into_iter()
        .map(|i| v[i])
        .collect())
}

/// Normalised `axis` and `eps` of the normalisations.
pub(crate) fn norm_attrs(attrs: &crate::attr::Attrs, rank: usize) -> OpResult<(usize, f64)> {
    use crate::attr::AttrsExt;
    let a = crate::ops::util::attr_axis(attrs, -1, rank)?;
    let eps = attrs.float_or("eps", 1e-5)? as f64;
    if eps.is_nan() || eps < 0.0 {
        bail!("eps must be >= 0, got {eps}");
    }
    Ok((a, eps))
}

#[cfg(test)]
pub(crate) mod test_util {
    use std::collections::HashMap;

    use crate::attr::Attrs;
    use crate::graph::{Graph, Value};
    use crate::infer::add_inferred;
    use crate::interp;
    use crate::tensor::Tensor;
    use crate::types::ValueType;

    /// A little graph builder for equivalence tests against ONNX-op spellings.
    pub struct G {
        pub g: Graph,
        pub feeds: HashMap<String, Tensor>,
    }

    impl G {
        pub fn new() -> G {
            G {
                g: Graph::new("t"),
                feeds: HashMap::new(),
            }
        }

        pub fn input(&mut self, name: &str, t: &Tensor) -> Value {
            self.feeds.insert(name.to_string(), t.clone());
            self.g.add_input(name, ValueType::of(t.dtype(), t.shape()))
        }

        pub fn op(&mut self, op: &str, attrs: Attrs, inputs: &[Option<Value>]) -> Value {
            let id = add_inferred(&mut self.g, op, attrs, inputs.to_vec(), 1, "")
                .unwrap_or_else(|e| panic!("{op}: {e}"));
            Value {
                node: id,
                output: 0,
            }
        }

        /// Runs the graph with `outs` as its outputs.
        pub fn run(mut self, outs: &[Value]) -> Vec<Tensor> {
            for (i, v) in outs.iter().enumerate() {
                self.g.add_output(&format!("out{i}"), *v);
            }
            interp::run(&self.g, &self.feeds)
                .expect("graph runs")
                .into_iter()
                .map(|(_, t)| t)
                .collect()
        }
    }
}
