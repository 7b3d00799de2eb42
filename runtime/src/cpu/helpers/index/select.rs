//! Selection by content: NonZero, Compress, Unique, NonMaxSuppression. Their output sizes
//! depend on data; they compile when the model pins them (a declared output shape), and the
//! helpers fill the compiled size: selections past it are dropped, missing ones are zeros.

use std::cmp::Ordering;

use crate::model::ElemType;

use super::{bytes, bytes_mut, count, elem, index_at, numel, strides, Args};

/// Whether element `i` is non-zero (NaN counts as non-zero).
fn truthy(b: &[u8], e: ElemType, i: usize) -> bool {
    if elem::is_float(e) {
        elem::read_f64(b, e, i) != 0.0
    } else {
        elem::read_i64(b, e, i) != 0
    }
}

fn put_i64(out: &mut [u8], i: usize, v: i64) {
    if let Some(d) = out.get_mut(i * 8..i * 8 + 8) {
        d.copy_from_slice(&v.to_le_bytes());
    }
}

/// `NonZero`: out `[rank, n]` holds the coordinates of the first `n` non-zero elements.
///
/// Args: `[x, out, code, n, rank, shape[rank]]`.
///
/// # Safety
/// The slots hold valid pointers to buffers of the sizes the other slots imply; `out` is
/// disjoint from the input.
pub unsafe fn non_zero(args: *const u64) {
    // SAFETY: slot 4 is the rank.
    let cnt = unsafe { count(args, 4, 5, 1) };
    // SAFETY: `cnt` slots.
    let mut a = unsafe { Args::new(args, cnt) };
    let (x, out) = (a.ptr(), a.ptr());
    let e = a.elem();
    let (n, rank) = (a.u(), a.u());
    let shape = a.list(rank);
    // SAFETY: the lowering passes the sizes of these buffers.
    let (x, out) = unsafe {
        (
            bytes(x, numel(&shape) * e.size()),
            bytes_mut(out, rank * n * 8),
        )
    };
    out.fill(0);
    let st = strides(&shape);
    let mut k = 0;
    for f in 0..numel(&shape) {
        if k >= n {
            break;
        }
        if truthy(x, e, f) {
            for ax in 0..rank {
                put_i64(out, ax * n + k, ((f / st[ax]) % shape[ax]) as i64);
            }
            k += 1;
        }
    }
}

/// `Compress`: data `[outer, d, row]` -> out `[outer, n, row]` keeping the positions whose
/// condition element is non-zero (the first `n` of them).
///
/// Args: `[x, cond, out, cond_code, outer, d, row_bytes, cond_len, n]`.
///
/// # Safety
/// As [`non_zero`].
pub unsafe fn compress(args: *const u64) {
    // SAFETY: 9 slots.
    let mut a = unsafe { Args::new(args, 9) };
    let (x, cond, out) = (a.ptr(), a.ptr(), a.ptr());
    let ce = a.elem();
    let (outer, d, row, clen, n) = (a.u(), a.u(), a.u(), a.u(), a.u());
    // SAFETY: the lowering passes the sizes of these buffers.
    let (x, cond, out) = unsafe {
        (
            bytes(x, outer * d * row),
            bytes(cond, clen * ce.size()),
            bytes_mut(out, outer * n * row),
        )
    };
    out.fill(0);
    let picks: Vec<usize> = (0..d.min(clen))
        .filter(|&k| truthy(cond, ce, k))
        .take(n)
        .collect();
    for o in 0..outer {
        for (j, &p) in picks.iter().enumerate() {
            let s = (o * d + p) * row;
            let t = (o * n + j) * row;
            out[t..t + row].copy_from_slice(&x[s..s + row]);
        }
    }
}

/// Sort keys of a tensor's elements: floats as f64 (NaN after everything, -0 equal to 0),
/// integers as i128.
enum Keys {
    F(Vec<f64>),
    I(Vec<i128>),
}

impl Keys {
    fn of(b: &[u8], e: ElemType, n: usize) -> Keys {
        if elem::is_float(e) {
            Keys::F((0..n).map(|i| elem::read_f64(b, e, i)).collect())
        } else if e == ElemType::U64 {
            Keys::I(
                (0..n)
                    .map(|i| elem::read_i64(b, e, i) as u64 as i128)
                    .collect(),
            )
        } else {
            Keys::I((0..n).map(|i| elem::read_i64(b, e, i) as i128).collect())
        }
    }

    fn cmp(&self, i: usize, j: usize) -> Ordering {
        match self {
            Keys::F(v) => match (v[i].is_nan(), v[j].is_nan()) {
                (false, false) => v[i].partial_cmp(&v[j]).unwrap_or(Ordering::Equal),
                (a, b) => a.cmp(&b),
            },
            Keys::I(v) => v[i].cmp(&v[j]),
        }
    }
}

/// `Unique` over items along an axis: x `[outer, d, inner]`, item `k` is the slice at `k`.
/// Outputs (any may be 0: absent): y `[outer, u, inner]`, indices `[u]` (first
/// occurrences), inverse `[d]`, counts `[u]`; `u` is the compiled count.
///
/// Args: `[x, y, indices, inverse, counts, code, outer, d, inner, u, sorted, indices_len,
/// counts_len]`.
///
/// # Safety
/// As [`non_zero`].
pub unsafe fn unique(args: *const u64) {
    // SAFETY: 13 slots.
    let mut a = unsafe { Args::new(args, 13) };
    let (x, y, first, inv, cnt) = (a.ptr(), a.ptr(), a.ptr(), a.ptr(), a.ptr());
    let e = a.elem();
    let (outer, d, inner, u, sorted) = (a.u(), a.u(), a.u(), a.u(), a.u() != 0);
    let (first_len, cnt_len) = (a.u(), a.u());
    let es = e.size();
    // SAFETY: the lowering passes the sizes of these buffers (absent outputs are 0).
    let (x, y, first, inv, cnt) = unsafe {
        (
            bytes(x, outer * d * inner * es),
            bytes_mut(y, outer * u * inner * es),
            bytes_mut(first, first_len * 8),
            bytes_mut(inv, d * 8),
            bytes_mut(cnt, cnt_len * 8),
        )
    };
    for o in [&mut *y, &mut *first, &mut *inv, &mut *cnt] {
        o.fill(0);
    }
    let keys = Keys::of(x, e, outer * d * inner);
    let at = |k: usize, o: usize, j: usize| (o * d + k) * inner + j;
    let cmp = |p: usize, q: usize| -> Ordering {
        for o in 0..outer {
            for j in 0..inner {
                let c = keys.cmp(at(p, o, j), at(q, o, j));
                if c.is_ne() {
                    return c;
                }
            }
        }
        Ordering::Equal
    };
    let mut order: Vec<usize> = (0..d).collect();
    order.sort_by(|&p, &q| cmp(p, q));
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut group_of = vec![0usize; d];
    for (pos, &k) in order.iter().enumerate() {
        if pos == 0 || cmp(order[pos - 1], k).is_ne() {
            groups.push((k, 0));
        }
        let g = groups.len() - 1;
        groups[g].1 += 1;
        group_of[k] = g;
    }
    let mut rank: Vec<usize> = (0..groups.len()).collect();
    if !sorted {
        rank.sort_by_key(|&g| groups[g].0);
    }
    let mut pos_of = vec![0usize; groups.len()];
    for (p, &g) in rank.iter().enumerate() {
        pos_of[g] = p;
    }
    for (p, &g) in rank.iter().enumerate() {
        let (k, c) = groups[g];
        put_i64(first, p, k as i64);
        put_i64(cnt, p, c as i64);
        if p < u && !y.is_empty() {
            for o in 0..outer {
                let (s, t) = (at(k, o, 0) * es, (o * u + p) * inner * es);
                y[t..t + inner * es].copy_from_slice(&x[s..s + inner * es]);
            }
        }
    }
    for k in 0..d {
        put_i64(inv, k, pos_of[group_of[k]] as i64);
    }
}

/// Whether two boxes overlap by an IoU above `threshold`, in f32 like ONNX's reference.
fn suppress(b1: &[f32], b2: &[f32], center: bool, threshold: f32) -> bool {
    let (x1min, x1max, y1min, y1max, x2min, x2max, y2min, y2max);
    if center {
        let (w1, h1, w2, h2) = (b1[2] / 2.0, b1[3] / 2.0, b2[2] / 2.0, b2[3] / 2.0);
        (x1min, x1max, x2min, x2max) = (b1[0] - w1, b1[0] + w1, b2[0] - w2, b2[0] + w2);
        (y1min, y1max, y2min, y2max) = (b1[1] - h1, b1[1] + h1, b2[1] - h2, b2[1] + h2);
    } else {
        (x1min, x1max) = (b1[1].min(b1[3]), b1[1].max(b1[3]));
        (x2min, x2max) = (b2[1].min(b2[3]), b2[1].max(b2[3]));
        (y1min, y1max) = (b1[0].min(b1[2]), b1[0].max(b1[2]));
        (y2min, y2max) = (b2[0].min(b2[2]), b2[0].max(b2[2]));
    }
    let ix = x1min.max(x2min);
    let ix2 = x1max.min(x2max);
    if ix2 <= ix {
        return false;
    }
    let iy = y1min.max(y2min);
    let iy2 = y1max.min(y2max);
    if iy2 <= iy {
        return false;
    }
    let inter = (ix2 - ix) * (iy2 - iy);
    let a1 = (x1max - x1min) * (y1max - y1min);
    let a2 = (x2max - x2min) * (y2max - y2min);
    let union = a1 + a2 - inter;
    if inter <= 0.0 || a1 <= 0.0 || a2 <= 0.0 || union <= 0.0 {
        return false;
    }
    inter / union > threshold
}

/// The first element of an optional scalar input as f64, if present.
fn first(a: &mut Args) -> Option<f64> {
    let (p, e, n) = (a.ptr(), a.elem(), a.u());
    // SAFETY: the lowering passes a pointer to `n` elements of type `e`, or 0.
    let b = unsafe { bytes(p, n.min(1) * e.size()) };
    (!b.is_empty()).then(|| elem::read_f64(b, e, 0))
}

/// `NonMaxSuppression`: boxes `[B, N, 4]`, scores `[B, C, N]` -> out `[n, 3]` rows of
/// (batch, class, box), the first `n` selections.
///
/// Args: `[boxes, scores, out, boxes_code, scores_code, center_point_box, max_per_class,
/// max_code, max_len, iou, iou_code, iou_len, score_threshold, threshold_code,
/// threshold_len, B, N, C, n]` (absent optional inputs have pointer 0 and length 0).
///
/// # Safety
/// As [`non_zero`].
pub unsafe fn non_max_suppression(args: *const u64) {
    // SAFETY: 19 slots.
    let mut a = unsafe { Args::new(args, 19) };
    let (boxes, scores, out) = (a.ptr(), a.ptr(), a.ptr());
    let (be, se) = (a.elem(), a.elem());
    let center = a.u() != 0;
    let max_out = {
        let (p, e, n) = (a.ptr(), a.elem(), a.u());
        // SAFETY: a pointer to `n` elements of type `e`, or 0.
        let b = unsafe { bytes(p, n.min(1) * e.size()) };
        if b.is_empty() {
            0
        } else {
            index_at(b, e, 0).max(0) as usize
        }
    };
    let iou = first(&mut a).unwrap_or(0.0) as f32;
    let score_th = first(&mut a).map(|v| v as f32);
    let (nb, nbox, ncls, n) = (a.u(), a.u(), a.u(), a.u());
    // SAFETY: the lowering passes the sizes of these buffers.
    let (boxes, scores, out) = unsafe {
        (
            bytes(boxes, nb * nbox * 4 * be.size()),
            bytes(scores, nb * ncls * nbox * se.size()),
            bytes_mut(out, n * 3 * 8),
        )
    };
    out.fill(0);
    let bv: Vec<f32> = (0..nb * nbox * 4)
        .map(|i| elem::read_f64(boxes, be, i) as f32)
        .collect();
    let sv: Vec<f32> = (0..nb * ncls * nbox)
        .map(|i| elem::read_f64(scores, se, i) as f32)
        .collect();
    let mut k = 0;
    for b in 0..nb {
        let bb = &bv[b * nbox * 4..(b + 1) * nbox * 4];
        for cl in 0..ncls {
            let sc = &sv[(b * ncls + cl) * nbox..(b * ncls + cl + 1) * nbox];
            let mut cand: Vec<usize> = (0..nbox)
                .filter(|&i| score_th.is_none_or(|t| sc[i] > t))
                .collect();
            cand.sort_by(|&i, &j| sc[j].total_cmp(&sc[i]).then(i.cmp(&j)));
            let mut kept: Vec<usize> = Vec::new();
            for i in cand {
                if kept.len() >= max_out {
                    break;
                }
                let bi = &bb[i * 4..i * 4 + 4];
                if kept
                    .iter()
                    .all(|&q| !suppress(bi, &bb[q * 4..q * 4 + 4], center, iou))
                {
                    kept.push(i);
                    if k < n {
                        for (c, v) in [b, cl, i].into_iter().enumerate() {
                            put_i64(out, k * 3 + c, v as i64);
                        }
                    }
                    k += 1;
                }
            }
        }
    }
}
