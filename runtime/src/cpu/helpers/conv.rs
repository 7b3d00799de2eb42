//! Convolution and pooling helpers over `[N, C, spatial...]` tensors of any spatial rank.
//!
//! Every helper ends its arguments with a window geometry:
//! ```text
//! n (spatial rank), N, C (input channels), then n values each of:
//! in dims, out dims, kernel dims, strides, dilations, begin pads, end pads
//! ```
//! Along an axis, window `o` tap `j` reads input position `o*stride - pad_begin +
//! j*dilation`; positions past `in + pad_end` are "beyond" (only a ceil-mode window reaches
//! there). f32 convolutions without zero points run as GEMMs over im2col panels; everything
//! else is computed directly in f64 (exact for the integer convolutions).

use super::elem::{self, from_code};
use super::{Helper, HelperFn, RunContext};
use crate::cpu::gemm::{gemm, PackedB, PackedBRef, NR};
use crate::model::tensor::ElemType;

/// Where a tap lands: `>= 0` an input offset, [`PAD`] padding, [`BEYOND`] past the padding.
const PAD: isize = -1;
const BEYOND: isize = -2;

struct Geo {
    batch: usize,
    channels: usize,
    input: Vec<usize>,
    out: Vec<usize>,
    kernel: Vec<usize>,
    strides: Vec<i64>,
    dilations: Vec<i64>,
    pad_begin: Vec<i64>,
    pad_end: Vec<i64>,
}

impl Geo {
    /// Reads the geometry at `s[at..]`.
    ///
    /// # Safety
    /// `args` holds the geometry's slots from `at` on.
    unsafe fn read(args: *const u64, at: usize) -> Geo {
        // SAFETY: the rank slot is present (caller).
        let n = unsafe { *args.add(at) } as usize;
        // SAFETY: 3 + 7n slots (caller).
        let s = unsafe { std::slice::from_raw_parts(args.add(at), 3 + 7 * n) };
        let us = |i: usize| -> Vec<usize> {
            s[3 + i * n..3 + (i + 1) * n]
                .iter()
                .map(|&x| x as usize)
                .collect()
        };
        let is = |i: usize| -> Vec<i64> {
            s[3 + i * n..3 + (i + 1) * n]
                .iter()
                .map(|&x| x as i64)
                .collect()
        };
        Geo {
            batch: s[1] as usize,
            channels: s[2] as usize,
            input: us(0),
            out: us(1),
            kernel: us(2),
            strides: is(3),
            dilations: is(4),
            pad_begin: is(5),
            pad_end: is(6),
        }
    }

    fn in_size(&self) -> usize {
        self.input.iter().product()
    }

    fn out_size(&self) -> usize {
        self.out.iter().product()
    }

    fn kernel_size(&self) -> usize {
        self.kernel.iter().product()
    }

    /// Entry `o * kernel_size + k`: where tap `k` of window `o` lands (row-major both).
    fn taps(&self) -> Vec<isize> {
        let n = self.input.len();
        let mut in_strides = vec![1isize; n];
        for a in (0..n.saturating_sub(1)).rev() {
            in_strides[a] = in_strides[a + 1] * self.input[a + 1] as isize;
        }
        let axis: Vec<Vec<isize>> = (0..n)
            .map(|a| {
                let len = self.input[a] as i64;
                let mut v = Vec::with_capacity(self.out[a] * self.kernel[a]);
                for o in 0..self.out[a] {
                    for j in 0..self.kernel[a] {
                        let p = o as i64 * self.strides[a] - self.pad_begin[a]
                            + j as i64 * self.dilations[a];
                        v.push(if p >= 0 && p < len {
                            p as isize
                        } else if p >= len + self.pad_end[a].max(0) {
                            BEYOND
                        } else {
                            PAD
                        });
                    }
                }
                v
            })
            .collect();
        let (on, kn) = (self.out_size(), self.kernel_size());
        let mut taps = Vec::with_capacity(on * kn);
        let mut oi = vec![0usize; n];
        let mut ki = vec![0usize; n];
        for _ in 0..on {
            ki.iter_mut().for_each(|k| *k = 0);
            for _ in 0..kn {
                let mut tap = 0isize;
                for a in 0..n {
                    let t = axis[a][oi[a] * self.kernel[a] + ki[a]];
                    tap = if tap == BEYOND || t == BEYOND {
                        BEYOND
                    } else if tap == PAD || t == PAD {
                        PAD
                    } else {
                        tap + t * in_strides[a]
                    };
                }
                taps.push(tap);
                increment(&mut ki, &self.kernel);
            }
            increment(&mut oi, &self.out);
        }
        taps
    }
}

fn increment(idx: &mut [usize], shape: &[usize]) {
    for a in (0..idx.len()).rev() {
        idx[a] += 1;
        if idx[a] < shape[a] {
            return;
        }
        idx[a] = 0;
    }
}

/// A tensor pointer and its dtype; null when absent.
#[derive(Clone, Copy)]
struct Ptr {
    p: *const u8,
    t: ElemType,
}

impl Ptr {
    fn read(s: &[u64], i: usize) -> Ptr {
        Ptr {
            p: s[i] as *const u8,
            t: from_code(s[i + 1]),
        }
    }

    /// # Safety
    /// Element `i` exists.
    unsafe fn get(&self, i: usize) -> f64 {
        // SAFETY: forwarded.
        unsafe { elem::load_f64(self.t, self.p, i as isize) }
    }
}

/// Conv / ConvInteger.
///
/// Arguments: `x | x dtype | w | w dtype | y | y dtype | bias (0: none) | bias dtype |
/// x zero point (0: none) | dtype | w zero point (0: none) | dtype | w zero-point count (1 or
/// M) | group | M |` geometry. W is `[M, C/group, kernel...]`.
///
/// # Safety
/// `ctx`/`args` per the `Call` convention; the tensors have the shapes the geometry implies.
unsafe extern "C" fn conv(ctx: *const RunContext, args: *const u64) {
    // SAFETY: 15 fixed slots, then the geometry (caller).
    let (s, geo) = unsafe { (std::slice::from_raw_parts(args, 15), Geo::read(args, 15)) };
    let (x, w, y, bias) = (
        Ptr::read(s, 0),
        Ptr::read(s, 2),
        Ptr::read(s, 4),
        Ptr::read(s, 6),
    );
    let (xzp, wzp) = (Ptr::read(s, 8), Ptr::read(s, 10));
    let wzp_count = s[12] as usize;
    let group = (s[13] as usize).max(1);
    let m = s[14] as usize;
    let (nb, c) = (geo.batch, geo.channels);
    let (cg, mg) = (c / group, m / group);
    let (isz, osz, ksz) = (geo.in_size(), geo.out_size(), geo.kernel_size());
    let taps = geo.taps();
    let fast = x.t == ElemType::F32
        && w.t == ElemType::F32
        && y.t == ElemType::F32
        && xzp.p.is_null()
        && wzp.p.is_null();
    if fast {
        // SAFETY: f32 tensors of the geometry's shapes (caller).
        unsafe {
            conv_f32(
                &*ctx,
                &geo,
                &taps,
                x.p.cast(),
                w.p.cast(),
                y.p as *mut f32,
                group,
                m,
            )
        };
        if !bias.p.is_null() {
            for i in 0..nb * m * osz {
                // SAFETY: y holds nb*m*osz floats and bias m values (caller).
                unsafe {
                    let yp = (y.p as *mut f32).add(i);
                    *yp = (*yp as f64 + bias.get((i / osz) % m)) as f32;
                }
            }
        }
        return;
    }
    let mut acc = vec![0f64; osz];
    for n in 0..nb {
        for mo in 0..m {
            let g = mo / mg.max(1);
            acc.fill(0.0);
            // SAFETY: every index below is inside its tensor (caller: shapes per geometry).
            unsafe {
                if !bias.p.is_null() {
                    acc.fill(bias.get(mo));
                }
                let wz = if wzp.p.is_null() {
                    0.0
                } else {
                    wzp.get(if wzp_count == 1 { 0 } else { mo })
                };
                let xz = if xzp.p.is_null() { 0.0 } else { xzp.get(0) };
                for cl in 0..cg {
                    let ci = g * cg + cl;
                    let xb = (n * c + ci) * isz;
                    let wb = (mo * cg + cl) * ksz;
                    let wk: Vec<f64> = (0..ksz).map(|k| w.get(wb + k) - wz).collect();
                    for (o, a) in acc.iter_mut().enumerate() {
                        let mut sum = 0.0;
                        for (&t, &wv) in taps[o * ksz..(o + 1) * ksz].iter().zip(&wk) {
                            if t >= 0 {
                                sum += (x.get(xb + t as usize) - xz) * wv;
                            }
                        }
                        *a += sum;
                    }
                }
                let yb = (n * m + mo) * osz;
                for (o, &a) in acc.iter().enumerate() {
                    elem::store_f64(y.t, y.p as *mut u8, (yb + o) as isize, a, true);
                }
            }
        }
    }
}

/// f32 convolution as one GEMM per (image, group): `Y[mg, osz] = W_g[mg, cg*ksz] ·
/// col[cg*ksz, osz]`, the im2col matrix written straight into GEMM panels.
///
/// # Safety
/// x, w, y are f32 tensors of the geometry's shapes.
#[allow(clippy::too_many_arguments)]
unsafe fn conv_f32(
    ctx: &RunContext,
    geo: &Geo,
    taps: &[isize],
    x: *const f32,
    w: *const f32,
    y: *mut f32,
    group: usize,
    m: usize,
) {
    let (nb, c) = (geo.batch, geo.channels);
    let (cg, mg) = (c / group, m / group);
    let (isz, osz, ksz) = (geo.in_size(), geo.out_size(), geo.kernel_size());
    let kk = cg * ksz;
    if mg == 0 || osz == 0 {
        return;
    }
    let mut panels = vec![0f32; PackedB::packed_len(kk, osz)];
    for n in 0..nb {
        for g in 0..group {
            for (o, win) in taps.chunks(ksz.max(1)).take(osz).enumerate() {
                let (p, j) = (o / NR, o % NR);
                for cl in 0..cg {
                    let xb = (n * c + g * cg + cl) * isz;
                    for (t, &tap) in win.iter().enumerate() {
                        let row = cl * ksz + t;
                        panels[(p * kk + row) * NR + j] = if tap >= 0 {
                            // SAFETY: the tap is inside the input plane (geometry).
                            unsafe { *x.add(xb + tap as usize) }
                        } else {
                            0.0
                        };
                    }
                }
            }
            // SAFETY: W_g is mg rows of kk floats; the output block is mg rows of osz.
            unsafe {
                let a = std::slice::from_raw_parts(w.add(g * mg * kk), mg * kk);
                let cblock =
                    std::slice::from_raw_parts_mut(y.add((n * m + g * mg) * osz), mg * osz);
                let b = PackedBRef {
                    k: kk,
                    n: osz,
                    data: &panels,
                };
                let _ = gemm(ctx.gemm, mg, a, kk.max(1), b, cblock, osz, false);
            }
        }
    }
}

/// ConvTranspose. W is `[C, M/group, kernel...]`; the geometry is that of a forward window
/// over the *output* (its `in` dims are Y's spatial dims, its `out` dims X's), so tap `k`
/// of X position `i` adds to Y position `taps[i*ksz + k]`.
///
/// Arguments: `x | x dtype | w | w dtype | y | y dtype | bias (0: none) | bias dtype |
/// group | M |` geometry.
///
/// # Safety
/// `ctx`/`args` per the `Call` convention; the tensors have the shapes the geometry implies.
unsafe extern "C" fn conv_transpose(_ctx: *const RunContext, args: *const u64) {
    // SAFETY: 10 fixed slots, then the geometry (caller).
    let (s, geo) = unsafe { (std::slice::from_raw_parts(args, 10), Geo::read(args, 10)) };
    let (x, w, y, bias) = (
        Ptr::read(s, 0),
        Ptr::read(s, 2),
        Ptr::read(s, 4),
        Ptr::read(s, 6),
    );
    let group = (s[8] as usize).max(1);
    let m = s[9] as usize;
    let (nb, c) = (geo.batch, geo.channels);
    let (cg, mg) = (c / group, m / group);
    // Y's spatial size is the geometry's "in", X's its "out".
    let (ysz, xsz, ksz) = (geo.in_size(), geo.out_size(), geo.kernel_size());
    let taps = geo.taps();
    let mut acc = vec![0f64; ysz];
    for n in 0..nb {
        for mo in 0..m {
            let g = mo / mg.max(1);
            let ml = mo - g * mg;
            acc.fill(0.0);
            // SAFETY: every index below is inside its tensor (caller).
            unsafe {
                for cl in 0..cg {
                    let ci = g * cg + cl;
                    let xb = (n * c + ci) * xsz;
                    let wb = (ci * mg + ml) * ksz;
                    for i in 0..xsz {
                        let xv = x.get(xb + i);
                        for (k, &t) in taps[i * ksz..(i + 1) * ksz].iter().enumerate() {
                            if t >= 0 {
                                acc[t as usize] += xv * w.get(wb + k);
                            }
                        }
                    }
                }
                let b = if bias.p.is_null() { 0.0 } else { bias.get(mo) };
                let yb = (n * m + mo) * ysz;
                for (o, &a) in acc.iter().enumerate() {
                    let v = if bias.p.is_null() { a } else { a + b };
                    elem::store_f64(y.t, y.p as *mut u8, (yb + o) as isize, v, true);
                }
            }
        }
    }
}

/// AveragePool / MaxPool / LpPool (and the global pools, as one window over the plane).
///
/// Arguments: `x | dtype | y | indices (i64, 0: none) | kind (0 average, 1 max, 2 Lp) |
/// count_include_pad | p (f64 bits) | storage_order |` geometry.
///
/// # Safety
/// `ctx`/`args` per the `Call` convention; the tensors have the shapes the geometry implies.
unsafe extern "C" fn pool(_ctx: *const RunContext, args: *const u64) {
    // SAFETY: 8 fixed slots, then the geometry (caller).
    let (s, geo) = unsafe { (std::slice::from_raw_parts(args, 8), Geo::read(args, 8)) };
    let x = Ptr::read(s, 0);
    let y = s[2] as *mut u8;
    let indices = s[3] as *mut i64;
    let kind = s[4];
    let include_pad = s[5] != 0;
    let pw = f64::from_bits(s[6]);
    let column_major = s[7] != 0;
    let planes = geo.batch * geo.channels;
    let (isz, osz, ksz) = (geo.in_size(), geo.out_size(), geo.kernel_size());
    let taps = geo.taps();
    // Column-major spatial index of a row-major spatial offset (storage_order = 1).
    let col_index = |off: usize| -> usize {
        let (mut rem, mut idx, mut col_stride) = (off, 0, 1);
        for a in 0..geo.input.len() {
            let row_stride: usize = geo.input[a + 1..].iter().product();
            idx += rem / row_stride * col_stride;
            rem %= row_stride;
            col_stride *= geo.input[a];
        }
        idx
    };
    for p in 0..planes {
        let base = p * isz;
        for o in 0..osz {
            let window = &taps[o * ksz..(o + 1) * ksz];
            // SAFETY: in-plane taps and output indices are inside x, y, indices (caller).
            unsafe {
                let v = match kind {
                    0 => {
                        let (mut sum, mut count) = (0.0, 0usize);
                        for &t in window {
                            if t >= 0 {
                                sum += x.get(base + t as usize);
                                count += 1;
                            } else if t == PAD && include_pad {
                                count += 1;
                            }
                        }
                        sum / count as f64
                    }
                    1 => {
                        let mut best: Option<(f64, usize)> = None;
                        for &t in window {
                            if t >= 0 {
                                let v = x.get(base + t as usize);
                                if best.is_none_or(|(b, _)| v > b) {
                                    best = Some((v, t as usize));
                                }
                            }
                        }
                        let (v, off) = best.unwrap_or((f64::NEG_INFINITY, 0));
                        if !indices.is_null() {
                            let sp = if column_major { col_index(off) } else { off };
                            *indices.add(p * osz + o) = (base + sp) as i64;
                        }
                        v
                    }
                    _ => {
                        let mut sum = 0.0;
                        for &t in window {
                            if t >= 0 {
                                sum += x.get(base + t as usize).abs().powf(pw);
                            }
                        }
                        sum.powf(1.0 / pw)
                    }
                };
                elem::store_f64(x.t, y, (p * osz + o) as isize, v, true);
            }
        }
    }
}

/// Col2Im: sums the columns `x [N, C*K, L]` back into images `y [N, C, image...]`; the
/// geometry is the forward window over the image (its windows are the L columns).
///
/// Arguments: `x | dtype | y |` geometry (its `C` is the image's channel count).
///
/// # Safety
/// `ctx`/`args` per the `Call` convention; the tensors have the shapes the geometry implies.
unsafe extern "C" fn col2im(_ctx: *const RunContext, args: *const u64) {
    // SAFETY: 3 fixed slots, then the geometry (caller).
    let (s, geo) = unsafe { (std::slice::from_raw_parts(args, 3), Geo::read(args, 3)) };
    let x = Ptr::read(s, 0);
    let y = s[2] as *mut u8;
    let (isz, osz, ksz) = (geo.in_size(), geo.out_size(), geo.kernel_size());
    let taps = geo.taps();
    let mut acc = vec![0f64; isz];
    for plane in 0..geo.batch * geo.channels {
        acc.fill(0.0);
        for k in 0..ksz {
            let row = (plane * ksz + k) * osz;
            for o in 0..osz {
                let t = taps[o * ksz + k];
                if t >= 0 {
                    // SAFETY: row + o is inside x (caller).
                    acc[t as usize] += unsafe { x.get(row + o) };
                }
            }
        }
        for (i, &v) in acc.iter().enumerate() {
            // SAFETY: the plane's elements are inside y (caller).
            unsafe { elem::store_f64(x.t, y, (plane * isz + i) as isize, v, true) };
        }
    }
}

/// MaxUnpool: zeroes `y` and writes each `x[i]` at flat position `indices[i]` of the
/// unpooled tensor of shape `natural` (which sits at the origin of y, possibly larger).
/// Indices outside the unpooled tensor are skipped.
///
/// Arguments: `x | dtype | indices (i64) | count | y | rank | natural dims | y dims`.
///
/// # Safety
/// `ctx`/`args` per the `Call` convention; x and indices hold `count` elements, y the
/// product of its dims.
unsafe extern "C" fn max_unpool(_ctx: *const RunContext, args: *const u64) {
    // SAFETY: 6 fixed slots, then 2 * rank dims (caller).
    let head = unsafe { std::slice::from_raw_parts(args, 6) };
    let r = head[5] as usize;
    // SAFETY: as above.
    let s = unsafe { std::slice::from_raw_parts(args, 6 + 2 * r) };
    let x = Ptr::read(s, 0);
    let ind = s[2] as *const i64;
    let count = s[3] as usize;
    let y = s[4] as *mut u8;
    let natural: Vec<usize> = s[6..6 + r].iter().map(|&d| d as usize).collect();
    let dims: Vec<usize> = s[6 + r..6 + 2 * r].iter().map(|&d| d as usize).collect();
    let total: usize = natural.iter().product();
    let ytotal: usize = dims.iter().product();
    for i in 0..ytotal {
        // SAFETY: y holds ytotal elements (caller).
        unsafe { elem::store_f64(x.t, y, i as isize, 0.0, true) };
    }
    for i in 0..count {
        // SAFETY: element i of indices and x (caller).
        let (at, v) = unsafe { (ind.add(i).read_unaligned(), x.get(i)) };
        if at < 0 || at as usize >= total {
            continue;
        }
        // Row-major position in the natural shape, re-laid in y's.
        let (mut rem, mut off) = (at as usize, 0usize);
        for a in 0..r {
            let ns: usize = natural[a + 1..].iter().product();
            let ys: usize = dims[a + 1..].iter().product();
            off += rem / ns * ys;
            rem %= ns;
        }
        if off < ytotal {
            // SAFETY: off < ytotal.
            unsafe { elem::store_f64(x.t, y, off as isize, v, true) };
        }
    }
}

/// CausalConvWithState: a depthwise causal 1-D convolution over `[B, C, L]` with a carried
/// state of the last `k-1` inputs, optional bias and SiLU.
///
/// Arguments: `x | dtype | w | w dtype | bias (0: none) | bias dtype | past (0: none) |
/// past dtype | y | state (0: not wanted) | B | C | L | k | silu`.
///
/// # Safety
/// `ctx`/`args` per the `Call` convention; x, y are `[B, C, L]`, w `[C, 1, k]`, past and
/// state `[B, C, k-1]`, bias `[C]`.
unsafe extern "C" fn causal_conv(_ctx: *const RunContext, args: *const u64) {
    // SAFETY: 15 slots (caller).
    let s = unsafe { std::slice::from_raw_parts(args, 15) };
    let (x, w, bias, past) = (
        Ptr::read(s, 0),
        Ptr::read(s, 2),
        Ptr::read(s, 4),
        Ptr::read(s, 6),
    );
    let (y, state) = (s[8] as *mut u8, s[9] as *mut u8);
    let (nb, c, len, k) = (
        s[10] as usize,
        s[11] as usize,
        s[12] as usize,
        (s[13] as usize).max(1),
    );
    let silu = s[14] != 0;
    let plen = len + k - 1;
    let mut padded = vec![0f64; plen];
    for row in 0..nb * c {
        let ch = row % c;
        // SAFETY: every index below is inside its tensor (caller).
        unsafe {
            for (j, p) in padded[..k - 1].iter_mut().enumerate() {
                *p = if past.p.is_null() {
                    0.0
                } else {
                    past.get(row * (k - 1) + j)
                };
            }
            for t in 0..len {
                padded[k - 1 + t] = x.get(row * len + t);
            }
            let wk: Vec<f64> = (0..k).map(|j| w.get(ch * k + j)).collect();
            let b = if bias.p.is_null() { 0.0 } else { bias.get(ch) };
            for t in 0..len {
                let acc: f64 = wk.iter().zip(&padded[t..t + k]).map(|(a, b)| a * b).sum();
                let mut v = acc + b;
                if silu {
                    let r = elem::round_to(x.t, v);
                    v = r / (1.0 + (-r).exp());
                }
                elem::store_f64(x.t, y, (row * len + t) as isize, v, true);
            }
            if !state.is_null() {
                for j in 0..k - 1 {
                    let v = padded[plen - (k - 1) + j];
                    elem::store_f64(x.t, state, (row * (k - 1) + j) as isize, v, true);
                }
            }
        }
    }
}

/// Multilinear interpolation of the plane at `base` of `x` (spatial dims `dims`) at real
/// coordinates `at`; positions outside the plane read zero.
///
/// # Safety
/// The plane's elements are inside x.
unsafe fn interpolate(x: &Ptr, base: usize, dims: &[usize], at: &[f64]) -> f64 {
    let n = dims.len();
    let mut total = 0.0;
    'corner: for corner in 0..(1usize << n) {
        let mut weight = 1.0;
        let mut off = 0usize;
        for a in 0..n {
            let lo = at[a].floor();
            let frac = at[a] - lo;
            let (p, wgt) = if corner >> a & 1 == 1 {
                (lo + 1.0, frac)
            } else {
                (lo, 1.0 - frac)
            };
            if wgt == 0.0 || p < 0.0 || p >= dims[a] as f64 {
                continue 'corner;
            }
            weight *= wgt;
            let stride: usize = dims[a + 1..].iter().product();
            off += p as usize * stride;
        }
        // SAFETY: off is inside the plane (checked per axis above).
        total += weight * unsafe { x.get(base + off) };
    }
    total
}

/// DeformConv: a grouped convolution whose taps are displaced by per-position offsets (and
/// scaled by an optional mask), sampled by multilinear interpolation.
///
/// Arguments: `x | dtype | w | dtype | offset | dtype | bias (0: none) | dtype | mask (0:
/// none) | dtype | y | group | M | offset groups |` geometry. Offsets are `[N, og*K*n,
/// out...]`, the mask `[N, og*K, out...]`.
///
/// # Safety
/// `ctx`/`args` per the `Call` convention; the tensors have the shapes the geometry implies.
unsafe extern "C" fn deform_conv(_ctx: *const RunContext, args: *const u64) {
    // SAFETY: 14 fixed slots, then the geometry (caller).
    let (s, geo) = unsafe { (std::slice::from_raw_parts(args, 14), Geo::read(args, 14)) };
    let (x, w, off, bias, mask) = (
        Ptr::read(s, 0),
        Ptr::read(s, 2),
        Ptr::read(s, 4),
        Ptr::read(s, 6),
        Ptr::read(s, 8),
    );
    let y = s[10] as *mut u8;
    let group = (s[11] as usize).max(1);
    let m = s[12] as usize;
    let og = (s[13] as usize).max(1);
    let n = geo.input.len();
    let (nb, c) = (geo.batch, geo.channels);
    let (isz, osz, ksz) = (geo.in_size(), geo.out_size(), geo.kernel_size());
    let (cg, mg, cpo) = (c / group, m / group, (c / og).max(1));
    let mut acc = vec![0f64; nb * m * osz];
    let mut col = vec![0f64; ksz * osz];
    let mut at = vec![0f64; n];
    let mut oi = vec![0usize; n];
    let mut ki = vec![0usize; n];
    for b in 0..nb {
        for ci in 0..c {
            let g = ci / cpo;
            let base = (b * c + ci) * isz;
            oi.iter_mut().for_each(|v| *v = 0);
            for o in 0..osz {
                ki.iter_mut().for_each(|v| *v = 0);
                for k in 0..ksz {
                    for a in 0..n {
                        let ch = (g * ksz + k) * n + a;
                        let pos = oi[a] as i64 * geo.strides[a] - geo.pad_begin[a]
                            + ki[a] as i64 * geo.dilations[a];
                        // SAFETY: the offset tensor has this element (caller).
                        at[a] = pos as f64 + unsafe { off.get((b * og * ksz * n + ch) * osz + o) };
                    }
                    // SAFETY: the plane at base is inside x (caller).
                    let mut v = unsafe { interpolate(&x, base, &geo.input, &at) };
                    if !mask.p.is_null() {
                        // SAFETY: the mask has this element (caller).
                        v *= unsafe { mask.get((b * og * ksz + g * ksz + k) * osz + o) };
                    }
                    col[k * osz + o] = v;
                    increment(&mut ki, &geo.kernel);
                }
                increment(&mut oi, &geo.out);
            }
            let (gi, cl) = (ci / cg.max(1), ci % cg.max(1));
            for mo in gi * mg..(gi + 1) * mg {
                let yp = &mut acc[(b * m + mo) * osz..(b * m + mo + 1) * osz];
                for k in 0..ksz {
                    // SAFETY: the weight has this element (caller).
                    let wv = unsafe { w.get((mo * cg + cl) * ksz + k) };
                    for (yv, &cv) in yp.iter_mut().zip(&col[k * osz..(k + 1) * osz]) {
                        *yv += wv * cv;
                    }
                }
            }
        }
    }
    for (i, &v) in acc.iter().enumerate() {
        // SAFETY: y holds nb*m*osz elements, the bias m (caller).
        unsafe {
            let v = if bias.p.is_null() {
                v
            } else {
                v + bias.get((i / osz.max(1)) % m.max(1))
            };
            elem::store_f64(x.t, y, i as isize, v, true);
        }
    }
}

pub(super) const HELPERS: &[Helper] = &[
    Helper {
        name: "conv",
        func: HelperFn::Call(conv),
    },
    Helper {
        name: "conv_transpose",
        func: HelperFn::Call(conv_transpose),
    },
    Helper {
        name: "pool",
        func: HelperFn::Call(pool),
    },
    Helper {
        name: "col2im",
        func: HelperFn::Call(col2im),
    },
    Helper {
        name: "max_unpool",
        func: HelperFn::Call(max_unpool),
    },
    Helper {
        name: "deform_conv",
        func: HelperFn::Call(deform_conv),
    },
    Helper {
        name: "causal_conv",
        func: HelperFn::Call(causal_conv),
    },
];
