//! Gather, GatherElements, GatherND, OneHot. Elements move as bytes, so one helper serves
//! every dtype. An out-of-range index yields zeros.

use super::{bytes, bytes_mut, count, elem, index_at, norm, numel, strides, Args};

/// Copies `row.len()` bytes, with fixed-size moves for the small rows of scalar gathers.
#[inline]
fn put(dst: &mut [u8], src: &[u8]) {
    match src.len() {
        4 => {
            let a: [u8; 4] = src.try_into().unwrap_or([0; 4]);
            dst.copy_from_slice(&a);
        }
        8 => {
            let a: [u8; 8] = src.try_into().unwrap_or([0; 8]);
            dst.copy_from_slice(&a);
        }
        _ => dst.copy_from_slice(src),
    }
}

/// `Gather` along one axis: data `[outer, d, row]`, indices `[n]` -> out `[outer, n, row]`.
///
/// Args: `[data, idx, out, idx_code, outer, d, n, row_bytes]`.
///
/// # Safety
/// The slots hold valid pointers to buffers of the sizes the other slots imply.
pub unsafe fn gather(args: *const u64) {
    // SAFETY: 8 slots.
    let mut a = unsafe { Args::new(args, 8) };
    let (data, idx, out) = (a.ptr(), a.ptr(), a.ptr());
    let ie = a.elem();
    let (outer, d, n, row) = (a.u(), a.u(), a.u(), a.u());
    // SAFETY: the lowering passes the sizes of these buffers; `out` does not overlap them.
    let (data, idx, out) = unsafe {
        (
            bytes(data, outer * d * row),
            bytes(idx, n * ie.size()),
            bytes_mut(out, outer * n * row),
        )
    };
    if row == 0 || out.is_empty() {
        return;
    }
    // Normalise the indices once (usize::MAX: out of range).
    let picks: Vec<usize> = (0..n)
        .map(|j| norm(index_at(idx, ie, j), d).unwrap_or(usize::MAX))
        .collect();
    for (o, dst) in out.chunks_exact_mut(n * row).enumerate() {
        let src = data.get(o * d * row..(o + 1) * d * row).unwrap_or(&[]);
        for (&p, dst) in picks.iter().zip(dst.chunks_exact_mut(row)) {
            match src.get(p.wrapping_mul(row)..p.wrapping_mul(row).wrapping_add(row)) {
                Some(s) if p != usize::MAX => put(dst, s),
                _ => dst.fill(0),
            }
        }
    }
}

/// `GatherElements`: `out[i] = data[i with i[axis] = idx[i]]`.
///
/// Args: `[data, idx, out, idx_code, elem_bytes, rank, axis, data_shape[rank],
/// idx_shape[rank]]`.
///
/// # Safety
/// As [`gather`].
pub unsafe fn gather_elements(args: *const u64) {
    // SAFETY: slot 5 is the rank.
    let n = unsafe { count(args, 5, 7, 2) };
    // SAFETY: `n` slots.
    let mut a = unsafe { Args::new(args, n) };
    let (data, idx, out) = (a.ptr(), a.ptr(), a.ptr());
    let ie = a.elem();
    let (es, rank, axis) = (a.u(), a.u(), a.u());
    let (ds, is) = (a.list(rank), a.list(rank));
    if axis >= rank {
        return;
    }
    let (dn, n_out) = (numel(&ds), numel(&is));
    // SAFETY: the lowering passes the sizes of these buffers.
    let (data, idx, out) = unsafe {
        (
            bytes(data, dn * es),
            bytes(idx, n_out * ie.size()),
            bytes_mut(out, n_out * es),
        )
    };
    let dst = strides(&ds);
    let mut c = vec![0usize; rank];
    for (f, o) in out.chunks_exact_mut(es.max(1)).enumerate() {
        let mut off = Some(0usize);
        for ax in 0..rank {
            let k = if ax == axis {
                norm(index_at(idx, ie, f), ds[ax])
            } else {
                (c[ax] < ds[ax]).then_some(c[ax])
            };
            off = off.zip(k).map(|(s, k)| s + k * dst[ax]);
        }
        match off.and_then(|off| data.get(off * es..off * es + es)) {
            Some(s) => o.copy_from_slice(s),
            None => o.fill(0),
        }
        // Advance the multi-index over the index shape.
        for ax in (0..rank).rev() {
            c[ax] += 1;
            if c[ax] < is[ax] {
                break;
            }
            c[ax] = 0;
        }
    }
}

/// `GatherND`: data `[batch, D_0..D_{m-1}, row]`, indices `[batch, per_batch, m]` -> out
/// `[batch, per_batch, row]`.
///
/// Args: `[data, data_bytes, idx, out, idx_code, row_bytes, batch, per_batch, m, D[m]]`.
///
/// # Safety
/// As [`gather`].
pub unsafe fn gather_nd(args: *const u64) {
    // SAFETY: slot 8 is m.
    let n = unsafe { count(args, 8, 9, 1) };
    // SAFETY: `n` slots.
    let mut a = unsafe { Args::new(args, n) };
    let (data, data_bytes, idx, out) = (a.ptr(), a.u(), a.ptr(), a.ptr());
    let ie = a.elem();
    let (row, batch, per_batch, m) = (a.u(), a.u(), a.u(), a.u());
    let dims = a.list(m);
    let tuples = batch * per_batch;
    // SAFETY: the lowering passes the sizes of these buffers.
    let (data, idx, out) = unsafe {
        (
            bytes(data, data_bytes),
            bytes(idx, tuples * m * ie.size()),
            bytes_mut(out, tuples * row),
        )
    };
    if row == 0 {
        return;
    }
    let st = strides(&dims);
    let per_batch_rows = numel(&dims);
    for (t, dst) in out.chunks_exact_mut(row).enumerate() {
        let mut r = Some((t / per_batch.max(1)) * per_batch_rows);
        for k in 0..m {
            let i = norm(index_at(idx, ie, t * m + k), dims[k]);
            r = r.zip(i).map(|(r, i)| r + i * st[k]);
        }
        match r.and_then(|r| data.get(r * row..r * row + row)) {
            Some(s) => put(dst, s),
            None => dst.fill(0),
        }
    }
}

/// `OneHot`: out `[outer, depth, inner]` holds `values[1]` where `idx[outer, inner]`
/// (negative counts from the end; floats truncate) equals the position, `values[0]`
/// elsewhere.
///
/// Args: `[idx, values, out, idx_code, elem_bytes, outer, depth, inner]`.
///
/// # Safety
/// As [`gather`].
pub unsafe fn one_hot(args: *const u64) {
    // SAFETY: 8 slots.
    let mut a = unsafe { Args::new(args, 8) };
    let (idx, values, out) = (a.ptr(), a.ptr(), a.ptr());
    let ie = a.elem();
    let (es, outer, depth, inner) = (a.u(), a.u(), a.u(), a.u());
    // SAFETY: the lowering passes the sizes of these buffers.
    let (idx, values, out) = unsafe {
        (
            bytes(idx, outer * inner * ie.size()),
            bytes(values, 2 * es),
            bytes_mut(out, outer * depth * inner * es),
        )
    };
    if es == 0 || out.is_empty() || values.len() < 2 * es {
        return;
    }
    let (off, on) = values.split_at(es);
    for o in out.chunks_exact_mut(es) {
        o.copy_from_slice(off);
    }
    for o in 0..outer {
        for j in 0..inner {
            let k = if elem::is_float(ie) {
                let x = elem::read_f64(idx, ie, o * inner + j);
                if x.is_nan() {
                    0
                } else {
                    x as i64
                }
            } else {
                elem::read_i64(idx, ie, o * inner + j)
            };
            if let Some(k) = norm(k, depth) {
                let at = ((o * depth + k) * inner + j) * es;
                out[at..at + es].copy_from_slice(on);
            }
        }
    }
}
