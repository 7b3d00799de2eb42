//! Attention and rotary embedding kernels.
//!
//! [`attention`] is a flash-style kernel: per (batch, kv head, query tile) it streams over
//! tiles of keys with an online softmax, so it never holds more than a tile of scores per
//! query row. The query heads that share a kv head (GQA/MQA) are processed together, so each
//! key tile is loaded once for all of them. Masking is by per-row key ranges (causal, windows,
//! per-batch lengths: whole tiles outside every row's range are skipped) plus up to two
//! additive masks; attention sinks, softcap, a two-segment key source (cache + new keys),
//! different q/k and v head sizes and an optional score/probability output are supported.
//!
//! Tensors are described by [`View`]s: an address, an element type and element strides for
//! (batch, head, sequence); the last axis (the head dimension) is contiguous. Arithmetic is
//! f32 whatever the storage type (f32, f16, bf16).
//!
//! Work is split with rayon over (batch x kv heads x query tiles); every item writes disjoint
//! output rows and computes in a fixed order, so results do not depend on the thread count.

use rayon::prelude::*;

/// Storage type of a tensor the kernels read or write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem {
    F32,
    F16,
    BF16,
    /// One byte, nonzero = true (masks only).
    Bool,
    I32,
    I64,
}

impl Elem {
    /// The code helpers receive in their argument slots.
    pub fn from_code(c: u64) -> Option<Elem> {
        Some(match c {
            0 => Elem::F32,
            1 => Elem::F16,
            2 => Elem::BF16,
            3 => Elem::Bool,
            4 => Elem::I32,
            5 => Elem::I64,
            _ => return None,
        })
    }

    pub fn code(self) -> u64 {
        match self {
            Elem::F32 => 0,
            Elem::F16 => 1,
            Elem::BF16 => 2,
            Elem::Bool => 3,
            Elem::I32 => 4,
            Elem::I64 => 5,
        }
    }

    pub fn size(self) -> usize {
        match self {
            Elem::F32 | Elem::I32 => 4,
            Elem::F16 | Elem::BF16 => 2,
            Elem::Bool => 1,
            Elem::I64 => 8,
        }
    }
}

/// IEEE half to f32.
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h as u32) & 0x8000) << 16;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = match exp {
        0 => {
            if man == 0 {
                sign
            } else {
                // Subnormal: man * 2^-24.
                let v = man as f32 * f32::from_bits(0x3380_0000);
                return if sign != 0 { -v } else { v };
            }
        }
        0x1f => sign | 0x7f80_0000 | (man << 13),
        _ => sign | ((exp + 112) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}

/// f32 to IEEE half, rounding to nearest even.
pub fn f32_to_f16(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32;
    let man = bits & 0x7f_ffff;
    if exp == 0xff {
        return sign
            | 0x7c00
            | if man != 0 {
                0x200 | (man >> 13) as u16
            } else {
                0
            };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        // Subnormal half: shift the full mantissa (with its implicit bit) right.
        let m = man | 0x80_0000;
        let shift = (14 - e) as u32;
        let half = 1u32 << (shift - 1);
        let rest = m & ((1u32 << shift) - 1);
        let mut v = m >> shift;
        if rest > half || (rest == half && v & 1 == 1) {
            v += 1;
        }
        return sign | v as u16;
    }
    let mut v = ((e as u32) << 10) | (man >> 13);
    let rest = man & 0x1fff;
    if rest > 0x1000 || (rest == 0x1000 && v & 1 == 1) {
        v += 1; // may carry into the exponent, up to infinity: still correct
    }
    sign | v as u16
}

pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

pub fn f32_to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    ((bits + 0x7fff + ((bits >> 16) & 1)) >> 16) as u16
}

/// Reads one element as f32 (bools as 0/1, integers converted).
///
/// # Safety
/// `p` points at a readable element of type `e`.
pub unsafe fn load1(e: Elem, p: *const u8) -> f32 {
    // SAFETY: the caller guarantees one readable element; unaligned reads are used since
    // views may start anywhere.
    unsafe {
        match e {
            Elem::F32 => (p as *const f32).read_unaligned(),
            Elem::F16 => f16_to_f32((p as *const u16).read_unaligned()),
            Elem::BF16 => bf16_to_f32((p as *const u16).read_unaligned()),
            Elem::Bool => (*p != 0) as u8 as f32,
            Elem::I32 => (p as *const i32).read_unaligned() as f32,
            Elem::I64 => (p as *const i64).read_unaligned() as f32,
        }
    }
}

/// Reads one integer element (i32 or i64; floats are truncated).
///
/// # Safety
/// `p` points at a readable element of type `e`.
pub unsafe fn load_int(e: Elem, p: *const u8) -> i64 {
    // SAFETY: as the caller guarantees.
    unsafe {
        match e {
            Elem::I32 => (p as *const i32).read_unaligned() as i64,
            Elem::I64 => (p as *const i64).read_unaligned(),
            _ => load1(e, p) as i64,
        }
    }
}

/// Reads `out.len()` consecutive elements as f32.
///
/// # Safety
/// `p` points at `out.len()` readable elements of type `e`.
pub unsafe fn load(e: Elem, p: *const u8, out: &mut [f32]) {
    match e {
        Elem::F32 => {
            // SAFETY: `out.len()` floats are readable at p; out is a distinct buffer.
            unsafe { std::ptr::copy_nonoverlapping(p, out.as_mut_ptr() as *mut u8, 4 * out.len()) }
        }
        _ => {
            for (i, o) in out.iter_mut().enumerate() {
                // SAFETY: element i is inside the readable range.
                *o = unsafe { load1(e, p.add(i * e.size())) };
            }
        }
    }
}

/// Writes `vals` as consecutive elements of type `e` (f32, f16 or bf16).
///
/// # Safety
/// `p` points at `vals.len()` writable elements of type `e`.
pub unsafe fn store(e: Elem, p: *mut u8, vals: &[f32]) {
    // SAFETY: the caller guarantees the destination range; unaligned writes.
    unsafe {
        match e {
            Elem::F32 => {
                std::ptr::copy_nonoverlapping(vals.as_ptr() as *const u8, p, 4 * vals.len())
            }
            Elem::F16 => {
                for (i, &v) in vals.iter().enumerate() {
                    (p.add(2 * i) as *mut u16).write_unaligned(f32_to_f16(v));
                }
            }
            Elem::BF16 => {
                for (i, &v) in vals.iter().enumerate() {
                    (p.add(2 * i) as *mut u16).write_unaligned(f32_to_bf16(v));
                }
            }
            Elem::Bool => {
                for (i, &v) in vals.iter().enumerate() {
                    *p.add(i) = (v != 0.0) as u8;
                }
            }
            Elem::I32 => {
                for (i, &v) in vals.iter().enumerate() {
                    (p.add(4 * i) as *mut i32).write_unaligned(v as i32);
                }
            }
            Elem::I64 => {
                for (i, &v) in vals.iter().enumerate() {
                    (p.add(8 * i) as *mut i64).write_unaligned(v as i64);
                }
            }
        }
    }
}

/// A tensor seen as (batch, head, sequence, contiguous last axis): element `(b, h, s, d)` is
/// at `addr + ((b*strides[0] + h*strides[1] + s*strides[2]) + d) * elem.size()`.
#[derive(Clone, Copy, Debug)]
pub struct View {
    pub addr: usize,
    pub elem: Elem,
    pub strides: [isize; 3],
}

impl View {
    /// The address of row `(b, h, s)`.
    pub fn row(&self, b: usize, h: usize, s: usize) -> *mut u8 {
        let off = b as isize * self.strides[0]
            + h as isize * self.strides[1]
            + s as isize * self.strides[2];
        (self.addr as isize + off * self.elem.size() as isize) as *mut u8
    }
}

/// A run of `len` keys (or values) along a view's sequence axis.
#[derive(Clone, Copy, Debug)]
pub struct Segment {
    pub view: View,
    pub len: usize,
}

/// An additive mask over (batch, query head, query, key): element at `addr + (b*s0 + h*s1 +
/// i*s2 + j*s3) * size`; broadcast axes have stride 0. Keys `j >= cols` count as `-inf`.
/// Bool masks add 0 (true) or `-inf` (false).
#[derive(Clone, Copy, Debug)]
pub struct Mask {
    pub addr: usize,
    pub elem: Elem,
    pub strides: [isize; 4],
    pub cols: usize,
}

/// What the optional score output holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QkMode {
    /// `scale * q.k` (ONNX mode 0).
    Raw,
    /// After the softcap (ONNX mode 1).
    Capped,
    /// After the masks (ONNX mode 2, GroupQueryAttention 1, MultiHeadAttention).
    Biased,
    /// The probabilities (ONNX mode 3, GroupQueryAttention 2).
    Probs,
}

/// The score output: a (batch, query head, query) view whose rows hold `cols` keys.
#[derive(Clone, Copy, Debug)]
pub struct QkOut {
    pub view: View,
    pub cols: usize,
    pub mode: QkMode,
    /// Every key gets a value (out-of-range keys: `-inf` scores, zero probabilities;
    /// ONNX). Otherwise only the keys in a row's range are written and the rest are zero
    /// (GroupQueryAttention).
    pub all_keys: bool,
}

/// One attention call. Keys are `k[0]` followed by `k[1]` (a cache and the new keys; either
/// may be empty); query head `h` reads kv head `h / (q_heads / kv_heads)`.
///
/// Query `i` of batch `b` sits at position `p = q_pos[b] + i` and sees keys `j` in
/// `[lo, hi)`, with `hi = min(kv_len[b], p + 1 if causal, p + right + 1 with a right window)`
/// and `lo = max(0, p - left)` with a left window (`max(0, hi - 1 - left)` with
/// `window_from_end`, GroupQueryAttention's rule).
#[derive(Clone, Debug)]
pub struct Attention {
    pub batch: usize,
    pub q_heads: usize,
    pub kv_heads: usize,
    pub q_len: usize,
    pub dk: usize,
    pub dv: usize,
    pub q: View,
    pub k: [Segment; 2],
    pub v: [Segment; 2],
    pub out: View,
    pub scale: f32,
    pub softcap: f32,
    pub causal: bool,
    pub left: Option<i64>,
    pub right: Option<i64>,
    pub window_from_end: bool,
    /// Keys each batch entry has (at most the total); empty: all.
    pub kv_len: Vec<usize>,
    /// Position of each batch entry's first query; empty: all 0.
    pub q_pos: Vec<i64>,
    pub masks: [Option<Mask>; 2],
    /// Per-query-head sink logits (address, type).
    pub sinks: Option<(usize, Elem)>,
    /// A sink of logit 0 for every head (smooth softmax), when `sinks` is absent.
    pub smooth: bool,
    pub qk: Option<QkOut>,
}

/// Keys per tile.
const KT: usize = 64;
/// Query rows (query heads of a group x queries) per work item, at most.
const QROWS: usize = 64;

impl Attention {
    fn total(&self) -> usize {
        self.k[0].len + self.k[1].len
    }

    /// The key range `[lo, hi)` of query `i` of batch `b`.
    fn range(&self, b: usize, i: usize) -> (usize, usize) {
        let t = self.total() as i64;
        let p = self.q_pos.get(b).copied().unwrap_or(0) + i as i64;
        let mut hi = self.kv_len.get(b).map_or(t, |&l| (l as i64).min(t));
        if self.causal {
            hi = hi.min(p + 1);
        }
        if let Some(right) = self.right {
            hi = hi.min(p.saturating_add(right).saturating_add(1));
        }
        let mut lo = 0i64;
        if let Some(left) = self.left {
            lo = if self.window_from_end {
                hi - 1 - left
            } else {
                p.saturating_sub(left)
            }
            .max(0);
        }
        let hi = hi.max(0) as usize;
        (lo.min(hi as i64) as usize, hi)
    }

    /// Row `j` of the keys (`vals = false`) or values of kv head `hk` in batch `b`.
    fn kv_row(&self, vals: bool, b: usize, hk: usize, j: usize) -> (*const u8, Elem) {
        let segs = if vals { &self.v } else { &self.k };
        let (seg, jj) = if j < segs[0].len {
            (&segs[0], j)
        } else {
            (&segs[1], j - segs[0].len)
        };
        (seg.view.row(b, hk, jj) as *const u8, seg.view.elem)
    }
}

/// Sum of `a[i] * b[i]` with eight independent partial sums (vectorizes without fast-math).
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = (acc[0] + acc[4]) + (acc[1] + acc[5]) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        s += x * y;
    }
    s
}

/// `y += a * x`.
#[inline]
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (yv, xv) in y.iter_mut().zip(x) {
        *yv += a * xv;
    }
}

/// Runs one attention call.
///
/// # Safety
/// Every view, segment, mask, sink and score output describes memory valid for the whole
/// described extent (reads; `out` and `qk` writable); `out` and `qk` overlap no input and
/// nothing else accesses them during the call. `q_heads` is a multiple of `kv_heads > 0`.
pub unsafe fn attention(p: &Attention) {
    if p.batch == 0 || p.q_heads == 0 || p.q_len == 0 || p.kv_heads == 0 {
        return;
    }
    let group = p.q_heads / p.kv_heads;
    let qt = (QROWS / group).clamp(1, p.q_len);
    let tiles = p.q_len.div_ceil(qt);
    let items = p.batch * p.kv_heads * tiles;
    (0..items).into_par_iter().for_each(|it| {
        let tile = it % tiles;
        let hk = (it / tiles) % p.kv_heads;
        let b = it / (tiles * p.kv_heads);
        let i0 = tile * qt;
        let i1 = (i0 + qt).min(p.q_len);
        // SAFETY: forwarded from the caller; items write disjoint output rows.
        unsafe { item(p, b, hk, group, i0, i1) };
    });
}

/// Per-row state of the online softmax.
struct Rows {
    q: Vec<f32>,
    lo: Vec<usize>,
    hi: Vec<usize>,
    m: Vec<f32>,
    l: Vec<f32>,
    acc: Vec<f32>,
    /// (query head, query) of each row.
    at: Vec<(usize, usize)>,
}

/// One work item: query heads `hk*group ..` for queries `i0..i1` of batch `b`.
///
/// # Safety
/// As [`attention`].
unsafe fn item(p: &Attention, b: usize, hk: usize, group: usize, i0: usize, i1: usize) {
    let (dk, dv) = (p.dk, p.dv);
    let qn = i1 - i0;
    let nrows = group * qn;
    let total = p.total();
    let mut r = Rows {
        q: vec![0f32; nrows * dk],
        lo: vec![0; nrows],
        hi: vec![0; nrows],
        m: vec![f32::NEG_INFINITY; nrows],
        l: vec![0f32; nrows],
        acc: vec![0f32; nrows * dv],
        at: Vec::with_capacity(nrows),
    };
    for g in 0..group {
        let h = hk * group + g;
        for i in i0..i1 {
            let row = r.at.len();
            r.at.push((h, i));
            // SAFETY: (b, h, i) is inside q's extent.
            unsafe {
                load(
                    p.q.elem,
                    p.q.row(b, h, i),
                    &mut r.q[row * dk..(row + 1) * dk],
                )
            };
            let (lo, hi) = p.range(b, i);
            r.lo[row] = lo;
            r.hi[row] = hi;
        }
    }
    let all_keys = p.qk.is_some_and(|q| q.all_keys);
    let probs = p.qk.filter(|q| q.mode == QkMode::Probs);
    // Biased scores of every row, kept for the probabilities.
    let mut full = if probs.is_some() {
        vec![f32::NEG_INFINITY; nrows * total]
    } else {
        Vec::new()
    };
    let (jlo, jhi) = if all_keys {
        (0, total)
    } else {
        let lo = (0..nrows)
            .filter(|&x| r.lo[x] < r.hi[x])
            .map(|x| r.lo[x])
            .min()
            .unwrap_or(0);
        let hi = (0..nrows)
            .filter(|&x| r.lo[x] < r.hi[x])
            .map(|x| r.hi[x])
            .max()
            .unwrap_or(0);
        (lo, hi)
    };
    let mut kbuf = vec![0f32; KT * dk];
    let mut vbuf = vec![0f32; KT * dv];
    let mut s = vec![0f32; KT];
    let mut qkrow = vec![0f32; KT];
    let mut j0 = jlo;
    while j0 < jhi {
        let j1 = (j0 + KT).min(jhi);
        let kt = j1 - j0;
        for j in j0..j1 {
            let (kp, ke) = p.kv_row(false, b, hk, j);
            let (vp, ve) = p.kv_row(true, b, hk, j);
            let jj = j - j0;
            // SAFETY: key/value row j of (b, hk) is inside its segment.
            unsafe {
                load(ke, kp, &mut kbuf[jj * dk..(jj + 1) * dk]);
                load(ve, vp, &mut vbuf[jj * dv..(jj + 1) * dv]);
            }
        }
        for row in 0..nrows {
            let (lo, hi) = (r.lo[row], r.hi[row]);
            if !all_keys && (lo >= hi || hi <= j0 || lo >= j1) {
                continue;
            }
            let (h, i) = r.at[row];
            let qr = &r.q[row * dk..(row + 1) * dk];
            for jj in 0..kt {
                s[jj] = dot(qr, &kbuf[jj * dk..(jj + 1) * dk]) * p.scale;
            }
            // SAFETY: (b, h, i) and keys j0..j1 are inside the views and masks.
            unsafe {
                scores(
                    p,
                    b,
                    h,
                    i,
                    j0,
                    &mut s[..kt],
                    lo,
                    hi,
                    &mut qkrow,
                    &mut full,
                    row,
                )
            };
            // Online softmax over this tile.
            let tmax = s[..kt].iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let m_old = r.m[row];
            let m_new = m_old.max(tmax);
            if m_new == f32::NEG_INFINITY {
                continue;
            }
            let corr = (m_old - m_new).exp();
            let acc = &mut r.acc[row * dv..(row + 1) * dv];
            if corr != 1.0 {
                acc.iter_mut().for_each(|x| *x *= corr);
            }
            let mut sum = 0f32;
            for jj in 0..kt {
                let w = (s[jj] - m_new).exp();
                if w != 0.0 {
                    sum += w;
                    axpy(acc, w, &vbuf[jj * dv..(jj + 1) * dv]);
                }
            }
            r.l[row] = r.l[row] * corr + sum;
            r.m[row] = m_new;
        }
        j0 = j1;
    }
    // Finish: the sinks join the denominator; write the rows.
    let mut orow = vec![0f32; dv];
    for row in 0..nrows {
        let (h, i) = r.at[row];
        let sink = match p.sinks {
            // SAFETY: the sink vector holds q_heads elements.
            Some((addr, e)) => Some(unsafe { load1(e, (addr + h * e.size()) as *const u8) }),
            None if p.smooth => Some(0.0),
            None => None,
        };
        let mut m = r.m[row];
        let mut l = r.l[row];
        let acc = &r.acc[row * dv..(row + 1) * dv];
        let mut scale_acc = 1.0f32;
        if let Some(sv) = sink {
            let m2 = m.max(sv);
            if m2 != f32::NEG_INFINITY {
                let c = if m == f32::NEG_INFINITY {
                    0.0
                } else {
                    (m - m2).exp()
                };
                l = l * c + (sv - m2).exp();
                scale_acc = c;
                m = m2;
            }
        }
        if m == f32::NEG_INFINITY || l == 0.0 {
            orow.iter_mut().for_each(|x| *x = 0.0);
        } else {
            let f = scale_acc / l;
            for (o, a) in orow.iter_mut().zip(acc) {
                *o = a * f;
            }
        }
        // SAFETY: (b, h, i) is inside out's extent.
        unsafe { store(p.out.elem, p.out.row(b, h, i), &orow) };
        if let Some(q) = probs {
            let fr = &mut full[row * total..(row + 1) * total];
            for x in fr.iter_mut() {
                *x = if m == f32::NEG_INFINITY || l == 0.0 {
                    0.0
                } else {
                    (*x - m).exp() / l
                };
            }
            let (lo, hi) = if q.all_keys {
                (0, total.min(q.cols))
            } else {
                (r.lo[row].min(q.cols), r.hi[row].min(q.cols))
            };
            if lo < hi {
                let dst = q.view.row(b, h, i);
                // SAFETY: the score row holds `cols` elements.
                unsafe { store(q.view.elem, dst.add(lo * q.view.elem.size()), &fr[lo..hi]) };
            }
        }
    }
}

/// Turns `s` (scaled scores of keys `j0..`) into masked logits for row `(b, h, i)`, writing
/// the score output on the way.
///
/// # Safety
/// As [`attention`].
#[allow(clippy::too_many_arguments)]
unsafe fn scores(
    p: &Attention,
    b: usize,
    h: usize,
    i: usize,
    j0: usize,
    s: &mut [f32],
    lo: usize,
    hi: usize,
    qkrow: &mut [f32],
    full: &mut [f32],
    row: usize,
) {
    let kt = s.len();
    let write = |mode: QkMode, vals: &[f32]| {
        let Some(q) = p.qk else { return };
        if q.mode != mode {
            return;
        }
        let (a, z) = if q.all_keys {
            (j0, (j0 + kt).min(q.cols))
        } else {
            (j0.max(lo), (j0 + kt).min(hi).min(q.cols))
        };
        if a < z {
            // SAFETY: the row holds `cols` elements; keys a..z are below cols.
            unsafe {
                let dst = q.view.row(b, h, i).add(a * q.view.elem.size());
                store(q.view.elem, dst, &vals[a - j0..z - j0]);
            }
        }
    };
    write(QkMode::Raw, s);
    if p.softcap > 0.0 {
        for x in s.iter_mut() {
            *x = p.softcap * (*x / p.softcap).tanh();
        }
    }
    write(QkMode::Capped, s);
    for mask in p.masks.iter().flatten() {
        let base = b as isize * mask.strides[0]
            + h as isize * mask.strides[1]
            + i as isize * mask.strides[2];
        for (jj, x) in s.iter_mut().enumerate() {
            let j = j0 + jj;
            let add = if j >= mask.cols {
                f32::NEG_INFINITY
            } else {
                let at = (base + j as isize * mask.strides[3]) * mask.elem.size() as isize;
                // SAFETY: (b, h, i, j) is inside the mask's extent.
                let v = unsafe { load1(mask.elem, (mask.addr as isize + at) as *const u8) };
                if mask.elem == Elem::Bool {
                    if v != 0.0 {
                        0.0
                    } else {
                        f32::NEG_INFINITY
                    }
                } else {
                    v
                }
            };
            *x += add;
        }
    }
    for (jj, x) in s.iter_mut().enumerate() {
        let j = j0 + jj;
        if j < lo || j >= hi {
            *x = f32::NEG_INFINITY;
        }
    }
    if let Some(q) = p.qk {
        if q.mode == QkMode::Biased {
            qkrow[..kt].copy_from_slice(s);
            write(QkMode::Biased, &qkrow[..kt]);
        }
    }
    if !full.is_empty() {
        let total = p.total();
        full[row * total + j0..row * total + j0 + kt].copy_from_slice(s);
    }
}

/// Where the rotary tables' row for token `(b, h, s)` comes from.
#[derive(Clone, Debug)]
pub enum Positions {
    /// Row `b*rows[0] + h*rows[1] + s*rows[2]` (tables already gathered per token).
    Strided { rows: [usize; 3] },
    /// Row `ids[b*strides[0] + s*strides[1]]` (position ids of type `elem`).
    Ids {
        addr: usize,
        elem: Elem,
        strides: [isize; 2],
    },
    /// Row `offset[b] + s`.
    Offset(Vec<i64>),
}

/// A rotary embedding over (batch, heads, seq) rows of `head` values: the first `2 * half`
/// values of each row turn by the angles of its table row (pairs `(x[p], x[p + half])`, or
/// `(x[2p], x[2p + 1])` when interleaved); the rest are copied.
#[derive(Clone, Debug)]
pub struct Rotary {
    pub batch: usize,
    pub heads: usize,
    pub seq: usize,
    pub head: usize,
    pub half: usize,
    pub interleaved: bool,
    pub x: View,
    pub out: View,
    /// Tables of `rows` rows of `half` values.
    pub cos: (usize, Elem),
    pub sin: (usize, Elem),
    pub rows: usize,
    pub positions: Positions,
}

/// Runs a rotary embedding. A token whose table row is out of range gets NaN.
///
/// # Safety
/// The views and tables are valid for their extents; `out` rows do not overlap `x` rows other
/// than their own (in place is fine).
pub unsafe fn rotary(r: &Rotary) {
    let n = r.batch * r.heads * r.seq;
    let chunk = 64;
    (0..n.div_ceil(chunk)).into_par_iter().for_each(|c| {
        let mut x = vec![0f32; r.head];
        let mut cs = vec![0f32; r.half];
        let mut sn = vec![0f32; r.half];
        for t in c * chunk..((c + 1) * chunk).min(n) {
            let s = t % r.seq;
            let h = (t / r.seq) % r.heads;
            let b = t / (r.seq * r.heads);
            let row = match &r.positions {
                Positions::Strided { rows } => {
                    Some((b * rows[0] + h * rows[1] + s * rows[2]) as i64)
                }
                Positions::Ids {
                    addr,
                    elem,
                    strides,
                } => {
                    let off = b as isize * strides[0] + s as isize * strides[1];
                    // SAFETY: (b, s) is inside the id tensor.
                    Some(unsafe {
                        load_int(
                            *elem,
                            (*addr as isize + off * elem.size() as isize) as *const u8,
                        )
                    })
                }
                Positions::Offset(o) => o.get(b).map(|o| o + s as i64),
            };
            // SAFETY: (b, h, s) is inside x.
            unsafe { load(r.x.elem, r.x.row(b, h, s), &mut x) };
            match row {
                Some(row) if row >= 0 && (row as usize) < r.rows => {
                    let o = row as usize * r.half;
                    // SAFETY: table row `row` of `half` values exists.
                    unsafe {
                        load(
                            r.cos.1,
                            (r.cos.0 + o * r.cos.1.size()) as *const u8,
                            &mut cs,
                        );
                        load(
                            r.sin.1,
                            (r.sin.0 + o * r.sin.1.size()) as *const u8,
                            &mut sn,
                        );
                    }
                    for q in 0..r.half {
                        let (a, bb) = if r.interleaved {
                            (2 * q, 2 * q + 1)
                        } else {
                            (q, q + r.half)
                        };
                        let (xa, xb) = (x[a], x[bb]);
                        x[a] = xa * cs[q] - xb * sn[q];
                        x[bb] = xa * sn[q] + xb * cs[q];
                    }
                }
                _ => x.iter_mut().for_each(|v| *v = f32::NAN),
            }
            // SAFETY: (b, h, s) is inside out.
            unsafe { store(r.out.elem, r.out.row(b, h, s), &x) };
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_conversions_round_trip() {
        for &x in &[
            0.0f32, -0.0, 1.0, -2.5, 65504.0, 6.1e-5, 5.96e-8, 1e-3, 3.25,
        ] {
            let h = f32_to_f16(x);
            let back = f16_to_f32(h);
            assert!((back - x).abs() <= x.abs() * 1e-3 + 6e-8, "{x} -> {back}");
        }
        assert_eq!(f32_to_f16(1.0), 0x3c00);
        assert_eq!(f32_to_f16(f32::INFINITY), 0x7c00);
        assert!(f16_to_f32(f32_to_f16(f32::NAN)).is_nan());
        assert_eq!(f32_to_f16(70000.0), 0x7c00);
        assert_eq!(f32_to_bf16(1.0), 0x3f80);
        assert_eq!(bf16_to_f32(0x3f80), 1.0);
    }

    /// Plain softmax attention over a dense [b, h, s, d] layout, in f64.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        hq: usize,
        hk: usize,
        s: usize,
        t: usize,
        d: usize,
        causal: bool,
    ) -> Vec<f32> {
        let mut out = vec![0f32; hq * s * d];
        let g = hq / hk;
        for h in 0..hq {
            for i in 0..s {
                let mut l: Vec<f64> = (0..t)
                    .map(|j| {
                        if causal && j > i + t - s {
                            return f64::NEG_INFINITY;
                        }
                        (0..d)
                            .map(|x| {
                                q[(h * s + i) * d + x] as f64 * k[((h / g) * t + j) * d + x] as f64
                            })
                            .sum::<f64>()
                            / (d as f64).sqrt()
                    })
                    .collect();
                let m = l.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let mut den = 0.0;
                for x in l.iter_mut() {
                    *x = (*x - m).exp();
                    den += *x;
                }
                for x in 0..d {
                    out[(h * s + i) * d + x] = (0..t)
                        .map(|j| l[j] / den * v[((h / g) * t + j) * d + x] as f64)
                        .sum::<f64>() as f32;
                }
            }
        }
        out
    }

    #[test]
    fn gqa_causal_with_cache_over_many_tiles() {
        let (hq, hk, s, t, d) = (6, 2, 70, 150, 9);
        let f = |n: usize, m: f32| {
            (0..n)
                .map(|i| ((i as f32 + 1.0) * m).sin())
                .collect::<Vec<f32>>()
        };
        let (q, k, v) = (f(hq * s * d, 0.37), f(hk * t * d, 0.91), f(hk * t * d, 1.3));
        let want = reference(&q, &k, &v, hq, hk, s, t, d, true);
        let mut out = vec![0f32; hq * s * d];
        let view = |p: *const f32, rows: usize| View {
            addr: p as usize,
            elem: Elem::F32,
            strides: [0, (rows * d) as isize, d as isize],
        };
        let past = t - s;
        // Keys split into a cache of `past` rows and `s` new ones.
        let (kc, kn): (Vec<f32>, Vec<f32>) = split(&k, hk, t, past, d);
        let (vc, vn): (Vec<f32>, Vec<f32>) = split(&v, hk, t, past, d);
        let p = Attention {
            batch: 1,
            q_heads: hq,
            kv_heads: hk,
            q_len: s,
            dk: d,
            dv: d,
            q: view(q.as_ptr(), s),
            k: [
                Segment {
                    view: view(kc.as_ptr(), past),
                    len: past,
                },
                Segment {
                    view: view(kn.as_ptr(), s),
                    len: s,
                },
            ],
            v: [
                Segment {
                    view: view(vc.as_ptr(), past),
                    len: past,
                },
                Segment {
                    view: view(vn.as_ptr(), s),
                    len: s,
                },
            ],
            out: view(out.as_mut_ptr(), s),
            scale: 1.0 / (d as f32).sqrt(),
            softcap: 0.0,
            causal: true,
            left: None,
            right: None,
            window_from_end: false,
            kv_len: vec![],
            q_pos: vec![past as i64],
            masks: [None, None],
            sinks: None,
            smooth: false,
            qk: None,
        };
        // SAFETY: all views describe the vectors above.
        unsafe { attention(&p) };
        for (i, (a, b)) in out.iter().zip(&want).enumerate() {
            assert!((a - b).abs() < 1e-5, "{i}: {a} vs {b}");
        }
    }

    fn split(x: &[f32], h: usize, t: usize, p: usize, d: usize) -> (Vec<f32>, Vec<f32>) {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for hh in 0..h {
            a.extend_from_slice(&x[hh * t * d..(hh * t + p) * d]);
            b.extend_from_slice(&x[(hh * t + p) * d..(hh + 1) * t * d]);
        }
        (a, b)
    }
}
