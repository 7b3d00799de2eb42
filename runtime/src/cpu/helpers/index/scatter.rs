//! ScatterElements, ScatterND, TensorScatter, MaxUnpool. The output starts as a copy of
//! the data (unless it is the data's own buffer); updates apply in order; an update whose
//! index is out of range is skipped.

use crate::model::ElemType;

use super::{bytes, bytes_mut, count, elem, index_at, norm, numel, strides, Args};

/// Reduction codes: 0 none, 1 add, 2 mul, 3 max, 4 min.
#[derive(Clone, Copy, PartialEq)]
enum Red {
    None,
    Add,
    Mul,
    Max,
    Min,
}

fn red(code: usize) -> Red {
    match code {
        1 => Red::Add,
        2 => Red::Mul,
        3 => Red::Max,
        4 => Red::Min,
        _ => Red::None,
    }
}

/// Where updates land: the output's bytes, or for float reductions an f64 copy of the
/// output that is rounded back once at the end (the interpreter accumulates in f64).
struct Target<'a> {
    out: &'a mut [u8],
    e: ElemType,
    r: Red,
    acc: Vec<f64>,
}

impl<'a> Target<'a> {
    fn new(out: &'a mut [u8], e: ElemType, r: Red) -> Target<'a> {
        let acc = if r != Red::None && elem::is_float(e) {
            (0..out.len() / e.size())
                .map(|i| elem::read_f64(out, e, i))
                .collect()
        } else {
            Vec::new()
        };
        Target { out, e, r, acc }
    }

    /// `out[t] = out[t] (red) upd[s]`; integers combine as i64 with wrapping arithmetic.
    #[inline]
    fn apply(&mut self, t: usize, upd: &[u8], s: usize) {
        let (e, es) = (self.e, self.e.size());
        if self.r == Red::None {
            self.out[t * es..t * es + es].copy_from_slice(&upd[s * es..s * es + es]);
        } else if elem::is_float(e) {
            let (d, u) = (self.acc[t], elem::read_f64(upd, e, s));
            self.acc[t] = match self.r {
                Red::Add => d + u,
                Red::Mul => d * u,
                Red::Max => d.max(u),
                _ => d.min(u),
            };
        } else {
            let (d, u) = (elem::read_i64(self.out, e, t), elem::read_i64(upd, e, s));
            let v = match self.r {
                Red::Add => d.wrapping_add(u),
                Red::Mul => d.wrapping_mul(u),
                Red::Max => d.max(u),
                _ => d.min(u),
            };
            elem::write_i64(self.out, e, t, v);
        }
    }

    fn finish(self) {
        for (i, &v) in self.acc.iter().enumerate() {
            elem::write_f64(self.out, self.e, i, v);
        }
    }
}

/// The output view, holding a copy of `data` (`len` bytes) unless both are one buffer.
///
/// # Safety
/// `data` and `out` point at `len` bytes each and are the same buffer or disjoint ones;
/// nothing else accesses `out` during `'a`.
unsafe fn start<'a>(data: usize, out: usize, len: usize) -> &'a mut [u8] {
    // SAFETY: guaranteed by the caller.
    let o = unsafe { bytes_mut(out, len) };
    if data != out {
        // SAFETY: disjoint from `out`, `len` readable bytes.
        o.copy_from_slice(unsafe { bytes(data, len) });
    }
    o
}

/// `ScatterElements` (and `Scatter`): `out[i with i[axis] = idx[i]] (red)= upd[i]`.
///
/// Args: `[data, idx, upd, out, idx_code, dtype, reduction, upd_len, rank, axis,
/// data_shape[rank], idx_shape[rank]]`.
///
/// # Safety
/// The slots hold valid pointers to buffers of the sizes the other slots imply; `out` is
/// `data` or disjoint from every input.
pub unsafe fn scatter_elements(args: *const u64) {
    // SAFETY: slot 8 is the rank.
    let n = unsafe { count(args, 8, 10, 2) };
    // SAFETY: `n` slots.
    let mut a = unsafe { Args::new(args, n) };
    let (data, idx, upd, out) = (a.ptr(), a.ptr(), a.ptr(), a.ptr());
    let (ie, e) = (a.elem(), a.elem());
    let (r, upd_len, rank, axis) = (red(a.u()), a.u(), a.u(), a.u());
    let (ds, is) = (a.list(rank), a.list(rank));
    let es = e.size();
    let n_idx = numel(&is);
    // SAFETY: the lowering passes the sizes of these buffers.
    let (out, idx, upd) = unsafe {
        (
            start(data, out, numel(&ds) * es),
            bytes(idx, n_idx * ie.size()),
            bytes(upd, upd_len * es),
        )
    };
    if axis >= rank || out.is_empty() {
        return;
    }
    let dst = strides(&ds);
    let mut c = vec![0usize; rank];
    let mut out = Target::new(out, e, r);
    for f in 0..n_idx.min(upd_len) {
        let mut off = Some(0usize);
        for ax in 0..rank {
            let k = if ax == axis {
                norm(index_at(idx, ie, f), ds[ax])
            } else {
                (c[ax] < ds[ax]).then_some(c[ax])
            };
            off = off.zip(k).map(|(s, k)| s + k * dst[ax]);
        }
        if let Some(t) = off {
            out.apply(t, upd, f);
        }
        for ax in (0..rank).rev() {
            c[ax] += 1;
            if c[ax] < is[ax] {
                break;
            }
            c[ax] = 0;
        }
    }
    out.finish();
}

/// `ScatterND`: for each index tuple `t` (of `m` indices), the slice `out[idx[t]]` (red)=
/// `upd[t]`.
///
/// Args: `[data, idx, upd, out, idx_code, dtype, reduction, upd_len, tuples, rank, m,
/// data_shape[rank]]`.
///
/// # Safety
/// As [`scatter_elements`].
pub unsafe fn scatter_nd(args: *const u64) {
    // SAFETY: slot 9 is the rank.
    let n = unsafe { count(args, 9, 11, 1) };
    // SAFETY: `n` slots.
    let mut a = unsafe { Args::new(args, n) };
    let (data, idx, upd, out) = (a.ptr(), a.ptr(), a.ptr(), a.ptr());
    let (ie, e) = (a.elem(), a.elem());
    let (r, upd_len, tuples, rank, m) = (red(a.u()), a.u(), a.u(), a.u(), a.u());
    let ds = a.list(rank);
    let es = e.size();
    // SAFETY: the lowering passes the sizes of these buffers.
    let (out, idx, upd) = unsafe {
        (
            start(data, out, numel(&ds) * es),
            bytes(idx, tuples * m * ie.size()),
            bytes(upd, upd_len * es),
        )
    };
    if m > rank || out.is_empty() {
        return;
    }
    let st = strides(&ds);
    let inner = numel(&ds[m..]);
    let mut out = Target::new(out, e, r);
    for t in 0..tuples {
        if (t + 1) * inner > upd_len {
            break;
        }
        let mut off = Some(0usize);
        for k in 0..m {
            let i = norm(index_at(idx, ie, t * m + k), ds[k]);
            off = off.zip(i).map(|(o, i)| o + i * st[k]);
        }
        let Some(off) = off else { continue };
        if r == Red::None {
            let (d, s) = (off * es, t * inner * es);
            out.out[d..d + inner * es].copy_from_slice(&upd[s..s + inner * es]);
        } else {
            for j in 0..inner {
                out.apply(off + j, upd, t * inner + j);
            }
        }
    }
    out.finish();
}

/// `TensorScatter`: cache `[batch, per_batch, max_len, inner]`, update `[batch, per_batch,
/// len, inner]` written at sequence position `write_indices[batch]` (0 without them),
/// wrapping around `max_len` in circular mode; positions past the cache are skipped.
///
/// Args: `[cache, upd, write_indices (0: none), out, wi_code, batch, per_batch, max_len,
/// len, inner_bytes, circular, upd_bytes, wi_len]`.
///
/// # Safety
/// As [`scatter_elements`].
pub unsafe fn tensor_scatter(args: *const u64) {
    // SAFETY: 13 slots.
    let mut a = unsafe { Args::new(args, 13) };
    let (cache, upd, wi, out) = (a.ptr(), a.ptr(), a.ptr(), a.ptr());
    let we = a.elem();
    let (batch, per_batch, max_len, len, inner) = (a.u(), a.u(), a.u(), a.u(), a.u());
    let circular = a.u() != 0;
    let (upd_bytes, wi_len) = (a.u(), a.u());
    let prefix = batch * per_batch;
    // SAFETY: the lowering passes the sizes of these buffers.
    let (out, upd, wi) = unsafe {
        (
            start(cache, out, prefix * max_len * inner),
            bytes(upd, upd_bytes),
            bytes(wi, wi_len * we.size()),
        )
    };
    if out.is_empty() || inner == 0 {
        return;
    }
    for p in 0..prefix {
        let b = p / per_batch.max(1);
        let w = if b < wi_len && !wi.is_empty() {
            index_at(wi, we, b)
        } else {
            0
        };
        for s in 0..len {
            let mut ci = w.saturating_add(s as i64);
            if circular && max_len > 0 {
                ci = ci.rem_euclid(max_len as i64);
            }
            if ci < 0 || ci as u64 >= max_len as u64 {
                continue;
            }
            let t = (p * max_len + ci as usize) * inner;
            let src = (p * len + s) * inner;
            if let Some(u) = upd.get(src..src + inner) {
                out[t..t + inner].copy_from_slice(u);
            }
        }
    }
}

/// `MaxUnpool`: zeros of the output shape, then `x[i]` placed at flat position `idx[i]` of
/// the natural unpooled shape (which sits at the origin of the output).
///
/// Args: `[x, idx, out, idx_code, elem_bytes, n, rank, natural[rank], out_shape[rank]]`.
///
/// # Safety
/// As [`scatter_elements`].
pub unsafe fn max_unpool(args: *const u64) {
    // SAFETY: slot 6 is the rank.
    let n = unsafe { count(args, 6, 7, 2) };
    // SAFETY: `n` slots.
    let mut a = unsafe { Args::new(args, n) };
    let (x, idx, out) = (a.ptr(), a.ptr(), a.ptr());
    let ie = a.elem();
    let (es, count, rank) = (a.u(), a.u(), a.u());
    let (nat, os) = (a.list(rank), a.list(rank));
    // SAFETY: the lowering passes the sizes of these buffers.
    let (x, idx, out) = unsafe {
        (
            bytes(x, count * es),
            bytes(idx, count * ie.size()),
            bytes_mut(out, numel(&os) * es),
        )
    };
    out.fill(0);
    let (ns, ost) = (strides(&nat), strides(&os));
    let total = numel(&nat);
    for i in 0..count {
        let Ok(k) = usize::try_from(index_at(idx, ie, i)) else {
            continue;
        };
        if k >= total {
            continue;
        }
        let (mut rem, mut o) = (k, 0usize);
        let mut inside = true;
        for ax in 0..rank {
            let c = rem / ns[ax];
            rem %= ns[ax];
            inside &= c < os[ax];
            o += c * ost[ax];
        }
        if inside {
            if let (Some(d), Some(s)) =
                (out.get_mut(o * es..o * es + es), x.get(i * es..i * es + es))
            {
                d.copy_from_slice(s);
            }
        }
    }
}
