//! TopK: the `k` largest (or smallest) elements of each line along an axis, in order, ties
//! broken by the lower index; NaN orders above every number, -0 equals 0.

use std::cmp::Ordering;

use crate::model::ElemType;

use super::{bytes, bytes_mut, elem, Args};

/// Up to this `k`, lines are scanned once keeping a sorted list of the best `k` (routing
/// picks 1 to 8 of a few hundred experts); larger `k` selects then sorts.
const SMALL_K: usize = 16;

/// The positions of the best `k` keys of `line` (best first by `cmp`, which orders the
/// better key first; equal keys by position), into `best`.
fn best_k<K: Copy>(
    line: &[K],
    k: usize,
    cmp: impl Fn(&K, &K) -> Ordering,
    best: &mut Vec<(K, usize)>,
    scratch: &mut Vec<(K, usize)>,
) {
    best.clear();
    if k == 0 {
        return;
    }
    if k <= SMALL_K {
        // Positions arrive in increasing order, so an equal key never displaces a kept one.
        for (p, &key) in line.iter().enumerate() {
            if best.len() == k && cmp(&key, &best[k - 1].0) != Ordering::Less {
                continue;
            }
            let at = best.partition_point(|b| cmp(&b.0, &key) != Ordering::Greater);
            if best.len() == k {
                best.pop();
            }
            best.insert(at, (key, p));
        }
        return;
    }
    let full = |a: &(K, usize), b: &(K, usize)| cmp(&a.0, &b.0).then(a.1.cmp(&b.1));
    scratch.clear();
    scratch.extend(line.iter().copied().zip(0..));
    if k < scratch.len() {
        scratch.select_nth_unstable_by(k - 1, full);
    }
    scratch[..k].sort_unstable_by(full);
    best.extend_from_slice(&scratch[..k]);
}

/// An integer that orders like the float `v` under TopK's rules: -0 equals 0, every NaN
/// equals every other and orders above infinity.
#[inline]
fn float_key(v: f64) -> i64 {
    let v = if v == 0.0 {
        0.0
    } else if v.is_nan() {
        f64::NAN
    } else {
        v
    };
    let b = v.to_bits() as i64;
    if b < 0 {
        b ^ i64::MAX
    } else {
        b
    }
}

/// Reads line `(o, j)` (`d` elements `inner` apart) of float `x` as ordered keys.
fn float_line(x: &[u8], e: ElemType, start: usize, inner: usize, d: usize, out: &mut Vec<i64>) {
    out.clear();
    match e {
        ElemType::F32 => out.extend((0..d).map(|p| {
            let i = (start + p * inner) * 4;
            float_key(f32::from_le_bytes([x[i], x[i + 1], x[i + 2], x[i + 3]]) as f64)
        })),
        _ => out.extend((0..d).map(|p| float_key(elem::read_f64(x, e, start + p * inner)))),
    }
}

/// Reads line `(o, j)` of integer `x` as ordered keys (u64 shifted to order right as i64).
fn int_line(x: &[u8], e: ElemType, start: usize, inner: usize, d: usize, out: &mut Vec<i64>) {
    out.clear();
    out.extend((0..d).map(|p| {
        let v = elem::read_i64(x, e, start + p * inner);
        if e == ElemType::U64 {
            v ^ i64::MIN
        } else {
            v
        }
    }));
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
    let mut write = |o: usize, j: usize, best: &[(_, usize)]| {
        for (r, &(_, p)) in best.iter().enumerate() {
            let (src, dst) = ((o * d + p) * inner + j, (o * k + r) * inner + j);
            let (v, s) = (
                &mut vals[dst * es..dst * es + es],
                &x[src * es..src * es + es],
            );
            match es {
                4 => v.copy_from_slice(&[s[0], s[1], s[2], s[3]]),
                _ => v.copy_from_slice(s),
            }
            idxs[dst * 8..dst * 8 + 8].copy_from_slice(&(p as i64).to_le_bytes());
        }
    };
    let (mut best, mut scratch) = (Vec::new(), Vec::new());
    if elem::is_float(e) {
        let mut line = Vec::new();
        for o in 0..outer {
            for j in 0..inner {
                float_line(x, e, o * d * inner + j, inner, d, &mut line);
                if largest {
                    best_k(&line, kk, |a, b| b.cmp(a), &mut best, &mut scratch);
                } else {
                    best_k(&line, kk, |a, b| a.cmp(b), &mut best, &mut scratch);
                }
                write(o, j, &best);
            }
        }
    } else {
        let mut line = Vec::new();
        for o in 0..outer {
            for j in 0..inner {
                int_line(x, e, o * d * inner + j, inner, d, &mut line);
                if largest {
                    best_k(&line, kk, |a, b| b.cmp(a), &mut best, &mut scratch);
                } else {
                    best_k(&line, kk, |a, b| a.cmp(b), &mut best, &mut scratch);
                }
                write(o, j, &best);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fcmp(a: &f64, b: &f64) -> Ordering {
        match (a.is_nan(), b.is_nan()) {
            (false, false) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
            (x, y) => x.cmp(&y),
        }
    }

    #[test]
    fn float_keys_order_like_floats() {
        let v = [
            f64::NEG_INFINITY,
            -3.5,
            -1e-300,
            -0.0,
            0.0,
            1e-300,
            2.0,
            f64::INFINITY,
            f64::NAN,
            -f64::NAN,
        ];
        for a in v {
            for b in v {
                assert_eq!(float_key(a).cmp(&float_key(b)), fcmp(&a, &b), "{a} {b}");
            }
        }
    }

    #[test]
    fn small_and_large_k_agree_with_a_full_sort() {
        let mut s = 7u64;
        let line: Vec<f64> = (0..200)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                ((s >> 33) % 17) as f64 - 8.0
            })
            .collect();
        let mut want: Vec<usize> = (0..line.len()).collect();
        want.sort_by(|&p, &q| fcmp(&line[q], &line[p]).then(p.cmp(&q)));
        let keys: Vec<i64> = line.iter().map(|&v| float_key(v)).collect();
        let (mut best, mut scratch) = (Vec::new(), Vec::new());
        for k in [1, 2, 8, 16, 17, 100, 200] {
            best_k(&keys, k, |a, b| b.cmp(a), &mut best, &mut scratch);
            let got: Vec<usize> = best.iter().map(|t| t.1).collect();
            assert_eq!(got, want[..k], "k = {k}");
        }
    }
}
