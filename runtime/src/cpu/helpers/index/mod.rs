//! Index helpers: gathers and scatters, OneHot, TopK, Resize, GridSample, selection by
//! content (NonZero, Compress, Unique, NonMaxSuppression) and friends.
//!
//! Every helper is a `Call` helper: `args` holds pointers, sizes (element counts) and codes,
//! laid out as each helper's doc comment says. Dtype codes are positions in
//! [`ElemType::ALL`](crate::model::ElemType::ALL). Indices come from data, so every index
//! is checked: an out-of-range index never reads or writes outside a buffer (gathers write
//! zeros for it, scatters skip it). Every buffer is sized from arguments, so the lowering
//! passes the sizes of the buffers it allocated.

pub mod elem;
mod gather;
mod resize;
mod sample;
mod scatter;
mod select;
mod topk;

use super::{Helper, HelperFn, RunContext};
use crate::model::ElemType;

/// Reads the argument slots of one call.
pub(crate) struct Args<'a> {
    s: &'a [u64],
    at: usize,
}

impl<'a> Args<'a> {
    /// # Safety
    /// `p` points at `n` readable u64 slots that outlive `'a`.
    pub unsafe fn new(p: *const u64, n: usize) -> Args<'a> {
        // SAFETY: guaranteed by the caller.
        Args {
            s: unsafe { std::slice::from_raw_parts(p, n) },
            at: 0,
        }
    }

    pub fn u(&mut self) -> usize {
        let v = self.s.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        usize::try_from(v).unwrap_or(usize::MAX)
    }

    pub fn i(&mut self) -> i64 {
        let v = self.s.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        v as i64
    }

    pub fn f(&mut self) -> f64 {
        f64::from_bits(self.i() as u64)
    }

    pub fn ptr(&mut self) -> usize {
        self.u()
    }

    pub fn elem(&mut self) -> ElemType {
        elem::elem(self.u() as u64).unwrap_or(ElemType::U8)
    }

    pub fn list(&mut self, n: usize) -> Vec<usize> {
        (0..n).map(|_| self.u()).collect()
    }
}

/// Number of slots to read when a call's slot count depends on its slot `at` (a rank): the
/// fixed slots, plus `per` slots for each of `slot[at]` items.
///
/// # Safety
/// `p` points at least `at + 1` readable slots.
pub(crate) unsafe fn count(p: *const u64, at: usize, fixed: usize, per: usize) -> usize {
    // SAFETY: the caller guarantees slot `at` exists.
    let n = unsafe { *p.add(at) } as usize;
    fixed + per * n.min(64)
}

/// A read-only byte view of `len` bytes at `p` (empty for a null pointer or zero length).
///
/// # Safety
/// A non-null `p` with `len > 0` points at `len` readable bytes not written during `'a`.
pub(crate) unsafe fn bytes<'a>(p: usize, len: usize) -> &'a [u8] {
    if p == 0 || len == 0 {
        return &[];
    }
    // SAFETY: guaranteed by the caller.
    unsafe { std::slice::from_raw_parts(p as *const u8, len) }
}

/// A writable byte view of `len` bytes at `p` (empty for a null pointer or zero length).
///
/// # Safety
/// A non-null `p` with `len > 0` points at `len` writable bytes no other view aliases
/// during `'a`.
pub(crate) unsafe fn bytes_mut<'a>(p: usize, len: usize) -> &'a mut [u8] {
    if p == 0 || len == 0 {
        return &mut [];
    }
    // SAFETY: guaranteed by the caller.
    unsafe { std::slice::from_raw_parts_mut(p as *mut u8, len) }
}

/// Index `k` (negative counts from the end) normalised against a dim of `d`, if in range.
#[inline]
pub(crate) fn norm(k: i64, d: usize) -> Option<usize> {
    let k = if k < 0 { k.checked_add(d as i64)? } else { k };
    (k >= 0 && (k as u64) < d as u64).then_some(k as usize)
}

/// Reads index `i` of an index tensor of type `e` as i64.
#[inline]
pub(crate) fn index_at(b: &[u8], e: ElemType, i: usize) -> i64 {
    match e {
        ElemType::I64 => i64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8])),
        ElemType::I32 => {
            i32::from_le_bytes(b[i * 4..i * 4 + 4].try_into().unwrap_or([0; 4])) as i64
        }
        _ => elem::read_i64(b, e, i),
    }
}

/// Row-major strides of `shape`, in elements.
pub(crate) fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1].saturating_mul(shape[i + 1]);
    }
    s
}

pub(crate) fn numel(shape: &[usize]) -> usize {
    shape.iter().fold(1usize, |a, &d| a.saturating_mul(d))
}

macro_rules! call_helpers {
    ($($name:literal => $f:path),* $(,)?) => {
        pub(super) const HELPERS: &[Helper] = &[
            $(Helper { name: $name, func: HelperFn::Call({
                unsafe extern "C" fn h(_ctx: *const RunContext, args: *const u64) {
                    // SAFETY: compiled code passes the slots the helper documents, pointing
                    // at buffers of the sizes given among them.
                    unsafe { $f(args) }
                }
                h
            }) }),*
        ];
    };
}

call_helpers! {
    "index_gather" => gather::gather,
    "index_gather_elements" => gather::gather_elements,
    "index_gather_nd" => gather::gather_nd,
    "index_one_hot" => gather::one_hot,
    "index_scatter_elements" => scatter::scatter_elements,
    "index_scatter_nd" => scatter::scatter_nd,
    "index_tensor_scatter" => scatter::tensor_scatter,
    "index_top_k" => topk::top_k,
    "index_resize" => resize::resize,
    "index_grid_sample" => sample::grid_sample,
    "index_affine_grid" => sample::affine_grid,
    "index_roi_align" => sample::roi_align,
    "index_max_unpool" => scatter::max_unpool,
    "index_non_zero" => select::non_zero,
    "index_compress" => select::compress,
    "index_unique" => select::unique,
    "index_non_max_suppression" => select::non_max_suppression,
}
