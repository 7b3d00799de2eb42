//! Helpers shared by the attention-family ops (ONNX `Attention`, `RotaryEmbedding` and the
//! ONNX Runtime contrib ops): dtype checks, head layouts, softmax and rotary rotation.

use crate::bail;
use crate::dim::Dim;
use crate::dtype::DType;
use crate::ops::{EvalCtx, InferCtx, OpResult};
use crate::tensor::Tensor;
use crate::types::ValueType;

/// Fails unless `dtype` is a (non-fp8) floating-point type.
pub(crate) fn require_float(dtype: DType, what: &str) -> OpResult<()> {
    if !dtype.is_float() || dtype.is_fp8() {
        bail!("{what} must be a float tensor (f32, f16, bf16 or f64), got {dtype}");
    }
    Ok(())
}

/// The type of input `i`, which must be a float tensor of rank `ranks`.
pub(crate) fn float_input_type<'a>(
    ctx: &InferCtx<'a>,
    i: usize,
    what: &str,
    ranks: &[usize],
) -> OpResult<&'a ValueType> {
    let t = ctx.input(i)?;
    require_float(t.dtype, what)?;
    if !ranks.contains(&t.rank()) {
        bail!("{what} must have rank {}, got {t}", ranks_text(ranks));
    }
    Ok(t)
}

/// Input `i` as a float tensor of one of the given ranks.
pub(crate) fn float_input<'a>(
    ctx: &'a EvalCtx,
    i: usize,
    what: &str,
    ranks: &[usize],
) -> OpResult<&'a Tensor> {
    let t = ctx.input(i)?;
    require_float(t.dtype(), what)?;
    if !ranks.contains(&t.rank()) {
        bail!(
            "{what} must have rank {}, got shape {:?}",
            ranks_text(ranks),
            t.shape()
        );
    }
    Ok(t)
}

fn ranks_text(ranks: &[usize]) -> String {
    ranks
        .iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join(" or ")
}

/// A positive integer attribute read as a count.
pub(crate) fn positive(v: i64, name: &str) -> OpResult<usize> {
    if v <= 0 {
        bail!("attribute `{name}` must be positive, got {v}");
    }
    Ok(v as usize)
}

/// `a / b` for a dim that must divide evenly when both are known.
pub(crate) fn div_dim(a: &Dim, b: usize, what: &str) -> OpResult<Dim> {
    if let Some(c) = a.as_const() {
        if b == 0 || c % b as i64 != 0 {
            bail!("{what}: {c} is not divisible by {b}");
        }
    }
    Ok(a.floor_div(&Dim::from(b as i64)))
}

/// Checks that two dims agree when both are known.
pub(crate) fn same_dim(a: &Dim, b: &Dim, what: &str) -> OpResult<()> {
    if let (Some(x), Some(y)) = (a.as_const(), b.as_const()) {
        if x != y {
            bail!("{what}: {x} != {y}");
        }
    }
    Ok(())
}

/// Q, K or V held as a dense `[batch][heads][seq][head_size]` array of f64.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Heads {
    pub data: Vec<f64>,
    pub b: usize,
    pub n: usize,
    pub s: usize,
    pub h: usize,
}

impl Heads {
    pub fn zeros(b: usize, n: usize, s: usize, h: usize) -> Heads {
        Heads {
            data: vec![0.0; b * n * s * h],
            b,
            n,
            s,
            h,
        }
    }

    /// From a `(batch, seq, row)` array, taking `n` heads of `h` values from column `offset`.
    pub fn from_bsd(
        x: &[f64],
        b: usize,
        s: usize,
        row: usize,
        offset: usize,
        n: usize,
        h: usize,
    ) -> Heads {
        let mut out = Heads::zeros(b, n, s, h);
        for bi in 0..b {
            for si in 0..s {
                let src = (bi * s + si) * row + offset;
                for ni in 0..n {
                    let dst = out.offset(bi, ni, si);
                    out.data[dst..dst + h].copy_from_slice(&x[src + ni * h..src + (ni + 1) * h]);
                }
            }
        }
        out
    }

    /// From a `(batch, heads, seq, head_size)` array.
    pub fn from_bnsh(x: Vec<f64>, b: usize, n: usize, s: usize, h: usize) -> Heads {
        debug_assert_eq!(x.len(), b * n * s * h);
        Heads {
            data: x,
            b,
            n,
            s,
            h,
        }
    }

    pub fn offset(&self, b: usize, n: usize, s: usize) -> usize {
        ((b * self.n + n) * self.s + s) * self.h
    }

    pub fn row(&self, b: usize, n: usize, s: usize) -> &[f64] {
        let o = self.offset(b, n, s);
        &self.data[o..o + self.h]
    }

    pub fn row_mut(&mut self, b: usize, n: usize, s: usize) -> &mut [f64] {
        let o = self.offset(b, n, s);
        &mut self.data[o..o + self.h]
    }

    /// As a `(batch, seq, heads * head_size)` array.
    pub fn to_bsd(&self) -> Vec<f64> {
        let mut out = vec![0.0; self.data.len()];
        let row = self.n * self.h;
        for bi in 0..self.b {
            for ni in 0..self.n {
                for si in 0..self.s {
                    let dst = (bi * self.s + si) * row + ni * self.h;
                    out[dst..dst + self.h].copy_from_slice(self.row(bi, ni, si));
                }
            }
        }
        out
    }

    pub fn shape(&self) -> Vec<usize> {
        vec![self.b, self.n, self.s, self.h]
    }
}

pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The maximum of a row, NaN if any element is NaN (as numpy's `max`).
fn nan_max(row: &[f64]) -> f64 {
    let mut m = f64::NEG_INFINITY;
    for &x in row {
        if x.is_nan() {
            return f64::NAN;
        }
        if x > m {
            m = x;
        }
    }
    m
}

/// Softmax of a row in place. A row with no finite maximum (every element `-inf`, or empty)
/// becomes all zeros; a NaN anywhere makes the row NaN.
///
/// With `sink`, the denominator gets one more term for a virtual logit of that value, which
/// receives no output ("smooth softmax" / attention sinks): `exp(x_i - m) / (sum_j exp(x_j - m)
/// + exp(sink - m))` with `m = max(max_j x_j, sink)`.
pub(crate) fn softmax_in_place(row: &mut [f64], sink: Option<f64>) {
    let mut m = nan_max(row);
    if m.is_nan() {
        row.iter_mut().for_each(|x| *x = f64::NAN);
        return;
    }
    if let Some(s) = sink {
        if s.is_nan() {
            row.iter_mut().for_each(|x| *x = f64::NAN);
            return;
        }
        m = m.max(s);
    }
    if m == f64::NEG_INFINITY {
        row.iter_mut().for_each(|x| *x = 0.0);
        return;
    }
    let mut sum = 0.0;
    for x in row.iter_mut() {
        *x = (*x - m).exp();
        sum += *x;
    }
    if let Some(s) = sink {
        sum += (s - m).exp();
    }
    for x in row.iter_mut() {
        *x /= sum;
    }
}

/// `softcap * tanh(x / softcap)` for a positive softcap; `x` otherwise.
pub(crate) fn softcap(x: f64, cap: f64) -> f64 {
    if cap > 0.0 {
        cap * (x / cap).tanh()
    } else {
        x
    }
}

/// Rotates the first `2 * cos.len()` elements of `x` in place by the angles whose cosines and
/// sines are given: pairs `(x[i], x[i + d/2])` when not interleaved, `(x[2i], x[2i + 1])` when
/// interleaved. `(a, b) -> (a cos - b sin, a sin + b cos)`.
pub(crate) fn rotate(x: &mut [f64], cos: &[f64], sin: &[f64], interleaved: bool) {
    let half = cos.len();
    for i in 0..half {
        let (ia, ib) = if interleaved {
            (2 * i, 2 * i + 1)
        } else {
            (i, i + half)
        };
        let (a, b) = (x[ia], x[ib]);
        x[ia] = a * cos[i] - b * sin[i];
        x[ib] = a * sin[i] + b * cos[i];
    }
}

/// A `(positions, rotary_dim / 2)` cosine or sine table.
pub(crate) struct RopeCache {
    pub cos: Vec<f64>,
    pub sin: Vec<f64>,
    pub rows: usize,
    pub half: usize,
}

impl RopeCache {
    pub fn new(cos: &Tensor, sin: &Tensor) -> OpResult<RopeCache> {
        if cos.shape() != sin.shape() {
            bail!(
                "cos_cache {:?} and sin_cache {:?} must have the same shape",
                cos.shape(),
                sin.shape()
            );
        }
        let half = cos.shape().last().copied().unwrap_or(0);
        let rows = cos.len().checked_div(half).unwrap_or(0);
        Ok(RopeCache {
            cos: cos.to_f64(),
            sin: sin.to_f64(),
            rows,
            half,
        })
    }

    /// The cosines and sines of row `pos`.
    pub fn at(&self, pos: i64) -> OpResult<(&[f64], &[f64])> {
        if pos < 0 || pos as usize >= self.rows {
            bail!(
                "position {pos} is out of range for a rotary cache of {} positions",
                self.rows
            );
        }
        let o = pos as usize * self.half;
        Ok((&self.cos[o..o + self.half], &self.sin[o..o + self.half]))
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Runs one op through its `infer` and `eval`, checking that they agree.
    use std::collections::HashMap;
    use std::sync::Arc;

    use crate::attr::Attrs;
    use crate::graph::WeightStore;
    use crate::ops::{lookup, EvalCtx, InferCtx, Known, OpResult};
    use crate::tensor::Tensor;
    use crate::types::ValueType;

    pub fn f32s(shape: &[usize], v: &[f32]) -> Tensor {
        Tensor::from_f32s(shape.to_vec(), v.to_vec()).expect("test tensor")
    }

    pub fn i64s(shape: &[usize], v: &[i64]) -> Tensor {
        Tensor::from_i64s(shape.to_vec(), v.to_vec()).expect("test tensor")
    }

    pub fn i32s(shape: &[usize], v: &[i32]) -> Tensor {
        Tensor::new(shape.to_vec(), crate::tensor::Data::I32(v.to_vec())).expect("test tensor")
    }

    /// Infers, evaluates, checks every output against its inferred type, returns the outputs.
    /// Input contents are visible to `infer` when `known` is set.
    pub fn run_known(
        op: &str,
        inputs: &[Option<Tensor>],
        attrs: Attrs,
        num_outputs: usize,
        known: bool,
    ) -> OpResult<Vec<Tensor>> {
        let spec = lookup(op).expect("op is registered");
        let types: Vec<Option<ValueType>> = inputs
            .iter()
            .map(|t| t.as_ref().map(|t| ValueType::of(t.dtype(), t.shape())))
            .collect();
        let weights = WeightStore::default();
        let fresh = || crate::dim::Dim::sym("fresh");
        let ictx = InferCtx {
            attrs: &attrs,
            inputs: types.iter().map(|t| t.as_ref()).collect(),
            known: inputs
                .iter()
                .map(|t| {
                    t.as_ref()
                        .filter(|_| known)
                        .map(|t| Known::Tensor(Arc::new(t.clone())))
                })
                .collect(),
            num_outputs,
            weights: &weights,
            previous: None,
            fresh: &fresh,
        };
        let out_types = (spec.infer)(&ictx)?;
        assert!(out_types.len() >= num_outputs, "infer gave too few outputs");
        let out_types = &out_types[..num_outputs];
        let ectx = EvalCtx {
            attrs: &attrs,
            inputs: inputs.iter().map(|t| t.clone().map(Arc::new)).collect(),
            num_outputs,
            output_types: out_types,
            weights: &weights,
            bindings: &HashMap::new(),
        };
        let outs = (spec.eval)(&ectx)?;
        assert!(outs.len() >= num_outputs, "eval gave too few outputs");
        for (i, (t, ty)) in outs.iter().zip(out_types).enumerate() {
            assert_eq!(t.dtype(), ty.dtype, "output {i} dtype");
            if let Some(s) = ty.concrete_shape() {
                assert_eq!(t.shape(), &s[..], "output {i} shape");
            } else {
                assert_eq!(t.rank(), ty.rank(), "output {i} rank");
            }
        }
        Ok(outs.into_iter().take(num_outputs).collect())
    }

    pub fn run(
        op: &str,
        inputs: &[Option<Tensor>],
        attrs: Attrs,
        num_outputs: usize,
    ) -> OpResult<Vec<Tensor>> {
        run_known(op, inputs, attrs, num_outputs, true)
    }

    pub fn assert_close(got: &Tensor, want: &[f64], tol: f64) {
        let g = got.to_f64();
        assert_eq!(g.len(), want.len(), "length");
        for (i, (a, b)) in g.iter().zip(want).enumerate() {
            assert!(
                (a - b).abs() <= tol * (1.0 + b.abs()),
                "element {i}: got {a}, want {b}\n got {g:?}\nwant {want:?}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_rows() {
        let mut r = vec![0.0, (2.0f64).ln(), f64::NEG_INFINITY];
        softmax_in_place(&mut r, None);
        assert_eq!(r, vec![1.0 / 3.0, 2.0 / 3.0, 0.0]);
        let mut r = vec![f64::NEG_INFINITY; 3];
        softmax_in_place(&mut r, None);
        assert_eq!(r, vec![0.0; 3]);
        // A sink of logit ln(2) takes two shares of four.
        let mut r = vec![0.0, 0.0];
        softmax_in_place(&mut r, Some((2.0f64).ln()));
        assert!((r[0] - 0.25).abs() < 1e-15 && (r[1] - 0.25).abs() < 1e-15);
        let mut r = vec![1.0, f64::NAN];
        softmax_in_place(&mut r, None);
        assert!(r.iter().all(|x| x.is_nan()));
    }

    #[test]
    fn rotation() {
        // 90 degrees: (a, b) -> (-b, a).
        let mut x = vec![1.0, 2.0, 3.0, 4.0, 9.0];
        rotate(&mut x, &[0.0, 1.0], &[1.0, 0.0], false);
        assert_eq!(x, vec![-3.0, 2.0, 1.0, 4.0, 9.0]);
        let mut x = vec![1.0, 2.0, 3.0, 4.0, 9.0];
        rotate(&mut x, &[0.0, 1.0], &[1.0, 0.0], true);
        assert_eq!(x, vec![-2.0, 1.0, 3.0, 4.0, 9.0]);
    }

    #[test]
    fn head_layouts() {
        // (b=1, s=2, row=5): heads start at column 1, two heads of two.
        let x: Vec<f64> = (0..10).map(f64::from).collect();
        let h = Heads::from_bsd(&x, 1, 2, 5, 1, 2, 2);
        assert_eq!(h.data, vec![1.0, 2.0, 6.0, 7.0, 3.0, 4.0, 8.0, 9.0]);
        assert_eq!(h.to_bsd(), vec![1.0, 2.0, 3.0, 4.0, 6.0, 7.0, 8.0, 9.0]);
    }
}
