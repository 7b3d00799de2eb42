//! Indexing ops: gathers and scatters, one-hot, selection by content (NonZero, Compress,
//! Unique, TopK) and cumulative sums and products.

use std::cmp::Ordering;

use crate::bail;
use crate::dtype::DType;
use crate::ops::{OpResult, OpSpec};
use crate::tensor::{Data, Tensor};

mod cumulative;
mod gather;
mod scatter;
mod select;

pub const SPECS: &[OpSpec] = &[
    OpSpec::new("Gather", gather::infer_gather, gather::eval_gather).with_sym(gather::sym_gather),
    OpSpec::new(
        "GatherElements",
        gather::infer_gather_elements,
        gather::eval_gather_elements,
    ),
    OpSpec::new("GatherND", gather::infer_gather_nd, gather::eval_gather_nd),
    OpSpec::new(
        "ScatterElements",
        scatter::infer_scatter,
        scatter::eval_scatter_elements,
    ),
    OpSpec::new(
        "Scatter",
        scatter::infer_scatter,
        scatter::eval_scatter_elements,
    ),
    OpSpec::new(
        "ScatterND",
        scatter::infer_scatter,
        scatter::eval_scatter_nd,
    ),
    OpSpec::new(
        "TensorScatter",
        scatter::infer_tensor_scatter,
        scatter::eval_tensor_scatter,
    ),
    OpSpec::new("OneHot", select::infer_one_hot, select::eval_one_hot),
    OpSpec::new("NonZero", select::infer_non_zero, select::eval_non_zero),
    OpSpec::new("Compress", select::infer_compress, select::eval_compress),
    OpSpec::new("Unique", select::infer_unique, select::eval_unique),
    OpSpec::new("TopK", select::infer_top_k, select::eval_top_k),
    OpSpec::new("CumSum", cumulative::infer_cum, cumulative::eval_cum_sum),
    OpSpec::new("CumProd", cumulative::infer_cum, cumulative::eval_cum_prod),
];

/// Normalises index `i` (negative counts from the end) against an axis of size `d`.
pub(crate) fn norm_index(i: i64, d: usize, what: &str) -> OpResult<usize> {
    let n = if i < 0 { i + d as i64 } else { i };
    if n < 0 || n >= d as i64 {
        bail!("{what} index {i} is out of range for a dim of {d}");
    }
    Ok(n as usize)
}

/// A tensor's elements in a form that orders like the values: floats as f64 (with -0 as 0,
/// NaN after everything), integers as i128 (so that u64 orders right).
pub(crate) enum Keys {
    F(Vec<f64>),
    I(Vec<i128>),
}

impl Keys {
    pub fn of(t: &Tensor) -> Keys {
        if t.dtype().is_float() {
            return Keys::F(
                t.to_f64()
                    .into_iter()
                    .map(|x| if x == 0.0 { 0.0 } else { x })
                    .collect(),
            );
        }
        match t.data() {
            Data::U64(v) => Keys::I(v.iter().map(|&x| x as i128).collect()),
            _ => Keys::I(t.to_i64().into_iter().map(|x| x as i128).collect()),
        }
    }

    /// Compares elements `i` and `j`.
    pub fn cmp(&self, i: usize, j: usize) -> Ordering {
        match self {
            Keys::F(v) => match (v[i].is_nan(), v[j].is_nan()) {
                (false, false) => v[i].partial_cmp(&v[j]).unwrap_or(Ordering::Equal),
                (a, b) => a.cmp(&b),
            },
            Keys::I(v) => v[i].cmp(&v[j]),
        }
    }
}

/// Whether `dtype` can index (any integer type).
pub(crate) fn check_index_dtype(dtype: DType, what: &str) -> OpResult<()> {
    if !dtype.is_int() {
        bail!("{what} must be integers, got {dtype}");
    }
    Ok(())
}
