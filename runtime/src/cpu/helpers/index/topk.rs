//! TopK: the `k` largest (or smallest) elements of each line along an axis, in order, ties
//! broken by the lower index; NaN orders above every number, -0 equals 0.

use std::cmp::Ordering;

use crate::model::ElemType;

use super::{bytes, bytes_mut, elem, Args};

fn fcmp(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (false, false) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
        (x, y) => x.cmp(&y),
    }
}

/// Sorts the first `k` entries of `line` into place by `cmp` (a total order).
fn select<K: Copy>(line: &mut [(K, usize)], k: usize, cmp: impl Fn(&K, &K) -> Ordering) {
    let full = |a: &(K, usize), b: &(K, usize)| cmp(&a.0, &b.0).then(a.1.cmp(&b.1));
    if k == 0 {
        return;
    }
    if k < line.len() {
        line.select_nth_unstable_by(k - 1, full);
    }
    line[..k].sort_unstable_by(full);
}

/// `TopK` over x `[outer, d, inner]` -> values and indices `[outer, k, inner]`.
///
/// Args: `[x, values, indices, dtype, outer, d, inner, k, largest]`.
///
/// # Safety
/// The slots hold valid pointers to buffers of the sizes the other slots imply; the outputs
/// are disjoint from each other and from `x`.
pub unsafe fn top_k(args: *const u64) {
    // SAFETY: 9 slots.
    let mut a = unsafe { Args::new(args, 9) };
    let (x, vals, idxs) = (a.ptr(), a.ptr(), a.ptr());
    let e = a.elem();
    let (outer, d, inner, k, largest) = (a.u(), a.u(), a.u(), a.u(), a.u() != 0);
    let es = e.size();
    // SAFETY: the lowering passes the sizes of these buffers.
    let (x, vals, idxs) = unsafe {
        (
            bytes(x, outer * d * inner * es),
            bytes_mut(vals, outer * k * inner * es),
            bytes_mut(idxs, outer * k * inner * 8),
        )
    };
    vals.fill(0);
    idxs.fill(0);
    let kk = k.min(d);
    let mut write = |o: usize, j: usize, order: &mut dyn Iterator<Item = usize>| {
        for (r, p) in order.take(kk).enumerate() {
            let (src, dst) = ((o * d + p) * inner + j, (o * k + r) * inner + j);
            vals[dst * es..dst * es + es].copy_from_slice(&x[src * es..src * es + es]);
            idxs[dst * 8..dst * 8 + 8].copy_from_slice(&(p as i64).to_le_bytes());
        }
    };
    if elem::is_float(e) {
        let mut line: Vec<(f64, usize)> = Vec::with_capacity(d);
        for o in 0..outer {
            for j in 0..inner {
                line.clear();
                line.extend((0..d).map(|p| (elem::read_f64(x, e, (o * d + p) * inner + j), p)));
                if largest {
                    select(&mut line, kk, |a, b| fcmp(*b, *a));
                } else {
                    select(&mut line, kk, |a, b| fcmp(*a, *b));
                }
                write(o, j, &mut line.iter().map(|t| t.1));
            }
        }
    } else {
        let mut line: Vec<(i128, usize)> = Vec::with_capacity(d);
        for o in 0..outer {
            for j in 0..inner {
                line.clear();
                line.extend((0..d).map(|p| {
                    let f = (o * d + p) * inner + j;
                    let v = if e == ElemType::U64 {
                        elem::read_i64(x, e, f) as u64 as i128
                    } else {
                        elem::read_i64(x, e, f) as i128
                    };
                    (v, p)
                }));
                if largest {
                    select(&mut line, kk, |a, b| b.cmp(a));
                } else {
                    select(&mut line, kk, |a, b| a.cmp(b));
                }
                write(o, j, &mut line.iter().map(|t| t.1));
            }
        }
    }
}
