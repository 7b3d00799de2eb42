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
//! With AVX-512 and GEMM-sized work items, the common case (no softcap or score output, at
//! most one f32 mask with contiguous keys) turns each row of a score tile into exponentials
//! in one pass held in registers (scale, mask, range, maximum, `2^t`, sum); when a row's keys
//! fit in one tile there is no online correction at all, and P·V goes straight into f32
//! output rows, scaled once by each row's factor.
//!
//! Tensors are described by [`View`]s: an address, an element type and element strides for
//! (batch, head, sequence); the last axis (the head dimension) is contiguous. Arithmetic is
//! f32 whatever the storage type (f32, f16, bf16).
//!
//! Work is split with rayon over (batch x kv heads x query tiles); every item writes disjoint
//! output rows and computes in a fixed order, so results do not depend on the thread count.

use rayon::prelude::*;

use crate::cpu::gemm::{sgemm, BMatrix, Kernel};

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
const KT: usize = 128;
/// Work items with at most this many rows use dot products instead of GEMM calls.
const SMALL_ROWS: usize = 8;
/// Query rows (query heads of a group x queries) per work item, at most.
const QROWS: usize = 128;

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
#[inline(always)]
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
#[inline(always)]
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (yv, xv) in y.iter_mut().zip(x) {
        *yv += a * xv;
    }
}

/// `s[r*ld + j] = q_r . k_j` for `r < rows`, `j < kt`, key `j` at `k + j*stride`.
///
/// # Safety
/// `k` holds `kt` rows of `dk` floats `stride` apart; `wide` only with AVX2 and FMA.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn small_qk(
    wide: bool,
    q: &[f32],
    dk: usize,
    rows: usize,
    k: *const f32,
    stride: isize,
    kt: usize,
    s: &mut [f32],
    ld: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if wide {
        // SAFETY: forwarded; the CPU has AVX2 and FMA.
        unsafe { x86::qk(q, dk, rows, k, stride, kt, s, ld) };
        return;
    }
    let _ = wide;
    for jj in 0..kt {
        // SAFETY: row jj of the tile has dk floats.
        let kr = unsafe { std::slice::from_raw_parts(k.offset(jj as isize * stride), dk) };
        for row in 0..rows {
            s[row * ld + jj] = dot(&q[row * dk..(row + 1) * dk], kr);
        }
    }
}

/// `acc_r += sum_j p[r*ld + j] * v_j` for `r < rows`, value `j` at `v + j*stride`.
///
/// # Safety
/// `v` holds `kt` rows of `dv` floats `stride` apart; `wide` only with AVX2 and FMA.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn small_pv(
    wide: bool,
    p: &[f32],
    ld: usize,
    rows: usize,
    v: *const f32,
    stride: isize,
    kt: usize,
    dv: usize,
    acc: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if wide {
        // SAFETY: forwarded; the CPU has AVX2 and FMA.
        unsafe { x86::pv(p, ld, rows, v, stride, kt, dv, acc) };
        return;
    }
    let _ = wide;
    for jj in 0..kt {
        // SAFETY: row jj of the tile has dv floats.
        let vr = unsafe { std::slice::from_raw_parts(v.offset(jj as isize * stride), dv) };
        for row in 0..rows {
            let pw = p[row * ld + jj];
            if pw != 0.0 {
                axpy(&mut acc[row * dv..(row + 1) * dv], pw, vr);
            }
        }
    }
}

/// AVX2 + FMA versions of the few-row loops.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Horizontal sum of eight lanes.
    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        // SAFETY: register operations only (AVX available in the callers).
        unsafe {
            let lo = _mm256_castps256_ps128(v);
            let hi = _mm256_extractf128_ps(v, 1);
            let s = _mm_add_ps(lo, hi);
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
            _mm_cvtss_f32(s)
        }
    }

    /// See `small_qk`: rows in blocks of four share each key load.
    ///
    /// # Safety
    /// As `small_qk`, with AVX2 and FMA.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn qk(
        q: &[f32],
        dk: usize,
        rows: usize,
        k: *const f32,
        stride: isize,
        kt: usize,
        s: &mut [f32],
        ld: usize,
    ) {
        let d8 = dk / 8 * 8;
        let qp = q.as_ptr();
        for jj in 0..kt {
            // SAFETY: row jj has dk floats; q rows have dk floats; all reads are in range.
            unsafe {
                let kr = k.offset(jj as isize * stride);
                let mut r0 = 0;
                while r0 < rows {
                    let n = (rows - r0).min(4);
                    let mut a = [_mm256_setzero_ps(); 4];
                    let mut d = 0;
                    while d < d8 {
                        let kv = _mm256_loadu_ps(kr.add(d));
                        for (r, acc) in a.iter_mut().enumerate().take(n) {
                            let qv = _mm256_loadu_ps(qp.add((r0 + r) * dk + d));
                            *acc = _mm256_fmadd_ps(qv, kv, *acc);
                        }
                        d += 8;
                    }
                    for (r, acc) in a.iter().enumerate().take(n) {
                        let mut t = hsum(*acc);
                        for x in d8..dk {
                            t += *qp.add((r0 + r) * dk + x) * *kr.add(x);
                        }
                        s[(r0 + r) * ld + jj] = t;
                    }
                    r0 += n;
                }
            }
        }
    }

    /// See `small_pv`: eight output columns of four rows stay in registers over the keys.
    ///
    /// # Safety
    /// As `small_pv`, with AVX2 and FMA.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn pv(
        p: &[f32],
        ld: usize,
        rows: usize,
        v: *const f32,
        stride: isize,
        kt: usize,
        dv: usize,
        acc: &mut [f32],
    ) {
        let d8 = dv / 8 * 8;
        let ap = acc.as_mut_ptr();
        let mut r0 = 0;
        while r0 < rows {
            let n = (rows - r0).min(4);
            let mut c = 0;
            while c < d8 {
                // SAFETY: acc rows have dv floats, value rows dv floats, p rows kt values.
                unsafe {
                    let mut a = [_mm256_setzero_ps(); 4];
                    for (r, x) in a.iter_mut().enumerate().take(n) {
                        *x = _mm256_loadu_ps(ap.add((r0 + r) * dv + c));
                    }
                    for jj in 0..kt {
                        let vv = _mm256_loadu_ps(v.offset(jj as isize * stride).add(c));
                        for (r, x) in a.iter_mut().enumerate().take(n) {
                            let w = _mm256_set1_ps(p[(r0 + r) * ld + jj]);
                            *x = _mm256_fmadd_ps(w, vv, *x);
                        }
                    }
                    for (r, x) in a.iter().enumerate().take(n) {
                        _mm256_storeu_ps(ap.add((r0 + r) * dv + c), *x);
                    }
                }
                c += 8;
            }
            for r in r0..r0 + n {
                for jj in 0..kt {
                    let w = p[r * ld + jj];
                    for x in d8..dv {
                        // SAFETY: value row jj has dv floats.
                        acc[r * dv + x] += w * unsafe { *v.offset(jj as isize * stride).add(x) };
                    }
                }
            }
            r0 += n;
        }
    }
}

/// `exp(x)` in f32 to about 2 ulp, written so that loops over it vectorize: Cephes' range
/// reduction and polynomial, `2^n` built in the exponent bits. `exp(-inf) = 0`, NaN stays NaN.
#[inline(always)]
fn fast_exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    let xc = x.clamp(-87.0, 88.0);
    let n = (xc * LOG2E + ROUND) - ROUND;
    let r = xc - n * C1 - n * C2;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // n + 127 lands in the low mantissa bits of n + 127 + 2^23 (n is in [-126, 127]).
    let scale = f32::from_bits(((n + 8_388_735.0).to_bits() & 0xff) << 23);
    let v = y * scale;
    if x < -87.0 {
        0.0
    } else if x.is_nan() {
        x
    } else {
        v
    }
}

/// The largest element (NaNs ignored; they propagate through the exponentials), with
/// eight independent lanes so that it vectorizes.
#[inline(always)]
fn max_of(x: &[f32]) -> f32 {
    let mut m = [f32::NEG_INFINITY; 8];
    let mut c = x.chunks_exact(8);
    for ch in &mut c {
        for l in 0..8 {
            m[l] = if ch[l] > m[l] { ch[l] } else { m[l] };
        }
    }
    let mut r = f32::NEG_INFINITY;
    for &v in m.iter().chain(c.remainder()) {
        r = if v > r { v } else { r };
    }
    r
}

/// `x[i] = exp(x[i] - m)`, returning the sum (eight partial sums, so that it vectorizes).
#[inline(always)]
fn exp_sum(x: &mut [f32], m: f32) -> f32 {
    for v in x.iter_mut() {
        *v = fast_exp(*v - m);
    }
    let mut acc = [0f32; 8];
    let mut c = x.chunks_exact(8);
    for ch in &mut c {
        for l in 0..8 {
            acc[l] += ch[l];
        }
    }
    let mut s = (acc[0] + acc[4]) + (acc[1] + acc[5]) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for v in c.remainder() {
        s += v;
    }
    s
}

/// The online-softmax row operations with AVX-512: sixteen lanes, FMA in the polynomial.
/// Same definitions as [`max_of`], [`exp_sum`] and [`fast_exp`] (NaNs, `-inf`, the zero
/// below -87), other rounding.
#[cfg(target_arch = "x86_64")]
mod x512 {
    use std::arch::x86_64::*;

    /// A mask of the first `n` (< 16) lanes.
    #[inline(always)]
    fn lanes(n: usize) -> __mmask16 {
        ((1u32 << n) - 1) as __mmask16
    }

    /// # Safety
    /// The CPU has AVX-512F.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub unsafe fn max_of(x: &[f32]) -> f32 {
        // SAFETY: full vectors inside x, then a masked tail.
        unsafe {
            let mut m = _mm512_set1_ps(f32::NEG_INFINITY);
            let mut c = x.chunks_exact(16);
            for ch in &mut c {
                // A NaN lane in the first operand yields the second: NaNs are skipped.
                m = _mm512_max_ps(_mm512_loadu_ps(ch.as_ptr()), m);
            }
            let r = c.remainder();
            if !r.is_empty() {
                let t = _mm512_mask_loadu_ps(m, lanes(r.len()), r.as_ptr());
                m = _mm512_max_ps(t, m);
            }
            _mm512_reduce_max_ps(m)
        }
    }

    /// Masked logits and their largest: `x[j] += mask[j]` for `j < inside` (no mask: `x`
    /// as is), `x[j] = -inf` outside `[a, z)` or past `inside`; returns the largest.
    ///
    /// # Safety
    /// The CPU has AVX-512F; `mask` (if not null) holds `inside.min(x.len())` floats.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub unsafe fn mask_max(
        x: &mut [f32],
        mask: *const f32,
        inside: usize,
        a: usize,
        z: usize,
    ) -> f32 {
        let n = x.len();
        let (a, z) = (a.min(n), z.min(n).min(inside));
        let ninf = _mm512_set1_ps(f32::NEG_INFINITY);
        let mut m = ninf;
        let mut j = 0;
        // SAFETY: vectors (masked past n) inside x; mask reads masked to j < z <= inside.
        unsafe {
            while j < n {
                let k = if n - j >= 16 { 0xffff } else { lanes(n - j) };
                // Lanes j.. inside [a, z).
                let lo = if a > j {
                    !lanes((a - j).min(16))
                } else {
                    0xffff
                };
                let hi = if z >= j + 16 {
                    0xffff
                } else if z > j {
                    lanes(z - j)
                } else {
                    0
                };
                let live = k & lo & hi;
                let mut v = _mm512_maskz_loadu_ps(k, x.as_ptr().add(j));
                if !mask.is_null() {
                    v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(live, mask.add(j)));
                }
                let v = _mm512_mask_blend_ps(live, ninf, v);
                _mm512_mask_storeu_ps(x.as_mut_ptr().add(j), k, v);
                m = _mm512_max_ps(v, m);
                j += 16;
            }
            _mm512_reduce_max_ps(m)
        }
    }

    /// `exp(x)` of sixteen lanes for `x <= 0` (see `fast_exp`): 0 below -87 (no
    /// subnormals), NaN stays NaN. Lanes below -87 (down to `-inf`) may compute garbage in
    /// the polynomial; the final scale zeroes them, so no clamp is needed.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn exp16(x: __m512) -> __m512 {
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
        );
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_359_4), x);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.121_944_4e-4), r);
        let mut p = _mm512_set1_ps(1.987_569_1e-4);
        for k in [
            1.398_199_9e-3,
            8.333_452e-3,
            4.166_579_6e-2,
            0.166_666_65,
            0.5,
        ] {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(k));
        }
        let y = _mm512_fmadd_ps(
            _mm512_mul_ps(p, r),
            r,
            _mm512_add_ps(r, _mm512_set1_ps(1.0)),
        );
        // Kept: not below -87 (NaN compares unordered, so it is kept and propagates).
        let keep = _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(x, _mm512_set1_ps(-87.0));
        _mm512_maskz_scalef_ps(keep, y, n)
    }

    /// `2^t` of sixteen lanes for `t <= 0`: `2^floor(t)` (the scale step) times a degree-5
    /// fit of `2^f` on `[0, 1)`, `f = t - floor(t)` (one reduce step), about 2 ulp; 0 for `t`
    /// below -125 (no subnormals; `-inf` included), NaN stays NaN.
    #[target_feature(enable = "avx512f,avx512dq")]
    #[inline]
    fn exp2_16(t: __m512) -> __m512 {
        let f = _mm512_reduce_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(t);
        let mut p = _mm512_set1_ps(1.867_130_4e-3);
        for k in [9.017_03e-3, 5.579_991_3e-2, 0.240_164_44, 0.693_151_3, 1.0] {
            p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(k));
        }
        // Kept: not below -125 (NaN compares unordered, so it is kept and propagates).
        let keep = _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(t, _mm512_set1_ps(-125.0));
        _mm512_maskz_scalef_ps(keep, p, t)
    }

    /// One row of a key tile of at most [`super::KT`] scores, in one pass held in registers:
    /// the logits `x[j] * scale + mask[j]` for `j` in `[a, z)` below `inside` (no mask: no
    /// addition), `-inf` elsewhere; `m`, the larger of `m_old` and their largest; then
    /// `x[j] = exp(logit - m)` (zero outside the range). Returns `m` and the sum `l` of
    /// those exponentials; with `m = -inf` (nothing live), `x` is all zeros and `l` 0.
    ///
    /// # Safety
    /// The CPU has AVX-512F and DQ; `x.len() <= 128`; `mask` (if not null) holds
    /// `inside.min(x.len())` floats.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512dq")]
    #[inline]
    pub unsafe fn softmax_row(
        x: &mut [f32],
        scale: f32,
        mask: *const f32,
        inside: usize,
        a: usize,
        z: usize,
        m_old: f32,
    ) -> (f32, f32) {
        let n = x.len();
        // SAFETY: forwarded; each size holds x.
        unsafe {
            if n == 128 && a == 0 && z.min(inside) >= n {
                // Every key live: no lane masks.
                return softmax_row_n::<8, true>(x, scale, mask, inside, a, z, m_old);
            }
            match n {
                0..=32 => softmax_row_n::<2, false>(x, scale, mask, inside, a, z, m_old),
                33..=64 => softmax_row_n::<4, false>(x, scale, mask, inside, a, z, m_old),
                _ => softmax_row_n::<8, false>(x, scale, mask, inside, a, z, m_old),
            }
        }
    }

    /// [`softmax_row`] over `VECS` vectors (`x.len() <= 16 * VECS <= 128`); `FULL`: all
    /// `16 * VECS` keys are in `x` and live.
    ///
    /// # Safety
    /// As [`softmax_row`].
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512dq")]
    #[inline]
    unsafe fn softmax_row_n<const VECS: usize, const FULL: bool>(
        x: &mut [f32],
        scale: f32,
        mask: *const f32,
        inside: usize,
        a: usize,
        z: usize,
        m_old: f32,
    ) -> (f32, f32) {
        let n = x.len();
        debug_assert!(n <= VECS * 16 && VECS <= 8);
        let z = z.min(n).min(inside);
        let a = a.min(z);
        // Live keys [a, z) as bits.
        let live: u128 = if a < z {
            (!0u128 >> (128 - (z - a))) << a
        } else {
            0
        };
        // Lanes inside x, per vector.
        let inx = |k: usize| -> __mmask16 {
            if n >= 16 * (k + 1) {
                0xffff
            } else if n > 16 * k {
                lanes(n - 16 * k)
            } else {
                0
            }
        };
        let ninf = _mm512_set1_ps(f32::NEG_INFINITY);
        let sv = _mm512_set1_ps(scale);
        let mut v = [ninf; VECS];
        // SAFETY: loads masked to live keys (inside x and the mask's `inside` values),
        // stores masked to lanes inside x.
        unsafe {
            // With a positive scale, lanes loaded as -inf stay -inf (the mask adds 0 there).
            let positive = scale > 0.0;
            for (k, vk) in v.iter_mut().enumerate() {
                if FULL {
                    let s = _mm512_loadu_ps(x.as_ptr().add(16 * k));
                    *vk = if mask.is_null() {
                        _mm512_mul_ps(s, sv)
                    } else {
                        _mm512_fmadd_ps(s, sv, _mm512_loadu_ps(mask.add(16 * k)))
                    };
                    continue;
                }
                let lm = (live >> (16 * k)) as __mmask16;
                let s = _mm512_mask_loadu_ps(ninf, lm, x.as_ptr().add(16 * k));
                let t = if mask.is_null() {
                    _mm512_mul_ps(s, sv)
                } else {
                    _mm512_fmadd_ps(s, sv, _mm512_maskz_loadu_ps(lm, mask.add(16 * k)))
                };
                *vk = if positive {
                    t
                } else {
                    _mm512_mask_blend_ps(lm, ninf, t)
                };
            }
            // A NaN lane in max's first operand yields the second, so `max(q, -inf)` turns
            // NaNs into -inf and `max(p, that)` skips NaNs on both sides.
            let m = _mm512_reduce_max_ps(tree(
                v,
                |p, q| _mm512_max_ps(p, _mm512_max_ps(q, ninf)),
                |p, q| _mm512_max_ps(p, q),
            ))
            .max(m_old);
            if m == f32::NEG_INFINITY {
                for k in 0..VECS {
                    _mm512_mask_storeu_ps(x.as_mut_ptr().add(16 * k), inx(k), _mm512_setzero_ps());
                }
                return (m, 0.0);
            }
            // exp(v - m) = 2^(v log2(e) - m log2(e)): the rounding of the second product
            // is the same for the whole row, so it cancels in the normalisation.
            let l2e = _mm512_set1_ps(std::f32::consts::LOG2_E);
            let off = _mm512_set1_ps(-m * std::f32::consts::LOG2_E);
            for vk in v.iter_mut() {
                *vk = exp2_16(_mm512_fmadd_ps(*vk, l2e, off));
            }
            let add = |p, q| _mm512_add_ps(p, q);
            let l = _mm512_reduce_add_ps(tree(v, add, add));
            for (k, vk) in v.iter().enumerate() {
                if FULL {
                    _mm512_storeu_ps(x.as_mut_ptr().add(16 * k), *vk);
                } else {
                    _mm512_mask_storeu_ps(x.as_mut_ptr().add(16 * k), inx(k), *vk);
                }
            }
            (m, l)
        }
    }

    /// `VECS` (a power of two, at least 2) vectors combined as a balanced tree, for a short
    /// dependency chain: `first` on the leaves' pairs, `op` above.
    #[inline(always)]
    fn tree<const VECS: usize>(
        mut v: [__m512; VECS],
        first: impl Fn(__m512, __m512) -> __m512,
        op: impl Fn(__m512, __m512) -> __m512,
    ) -> __m512 {
        let mut w = VECS / 2;
        for k in 0..w {
            v[k] = first(v[k], v[k + w]);
        }
        while w > 1 {
            w /= 2;
            for k in 0..w {
                v[k] = op(v[k], v[k + w]);
            }
        }
        v[0]
    }

    /// `x[i] = exp(x[i] - m)`; returns the sum.
    ///
    /// # Safety
    /// The CPU has AVX-512F.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub unsafe fn exp_sum(x: &mut [f32], m: f32) -> f32 {
        // SAFETY: full vectors inside x, then a masked tail.
        unsafe {
            let mv = _mm512_set1_ps(m);
            let mut acc = _mm512_setzero_ps();
            let mut c = x.chunks_exact_mut(16);
            for ch in &mut c {
                let e = exp16(_mm512_sub_ps(_mm512_loadu_ps(ch.as_ptr()), mv));
                _mm512_storeu_ps(ch.as_mut_ptr(), e);
                acc = _mm512_add_ps(acc, e);
            }
            let r = c.into_remainder();
            if !r.is_empty() {
                let k = lanes(r.len());
                let e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, r.as_ptr()), mv));
                _mm512_mask_storeu_ps(r.as_mut_ptr(), k, e);
                acc = _mm512_mask_add_ps(acc, k, acc, e);
            }
            _mm512_reduce_add_ps(acc)
        }
    }
}

/// The AVX-512 row operations (F and DQ) can run here.
fn simd512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512dq")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Runs one attention call.
///
/// # Safety
/// Every view, segment, mask, sink and score output describes memory valid for the whole
/// described extent (reads; `out` and `qk` writable); `out` and `qk` overlap no input and
/// nothing else accesses them during the call. `q_heads` is a multiple of `kv_heads > 0`.
/// `kernel` comes from [`Kernel::detect`] on this CPU.
pub unsafe fn attention(kernel: Kernel, p: &Attention) {
    if p.batch == 0 || p.q_heads == 0 || p.q_len == 0 || p.kv_heads == 0 {
        return;
    }
    let group = p.q_heads / p.kv_heads;
    let qt = (QROWS / group).clamp(1, p.q_len);
    let tiles = p.q_len.div_ceil(qt);
    let items = p.batch * p.kv_heads * tiles;
    let wide = simd();
    let wide512 = wide && simd512();
    (0..items).into_par_iter().for_each(|it| {
        let tile = it % tiles;
        let hk = (it / tiles) % p.kv_heads;
        let b = it / (tiles * p.kv_heads);
        let i0 = tile * qt;
        let i1 = (i0 + qt).min(p.q_len);
        let w = Work {
            kernel,
            wide,
            b,
            hk,
            group,
            i0,
            i1,
        };
        // SAFETY: forwarded from the caller; items write disjoint output rows. The AVX2
        // and AVX-512 versions run only where the CPU has those features.
        unsafe {
            if wide512 {
                item_avx512(p, &w)
            } else if wide {
                item_avx2(p, &w)
            } else {
                item_generic(p, &w)
            }
        }
    });
}

/// Whether the AVX2 + FMA versions of the row loops can run here.
fn simd() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// One work item: query heads `hk*group ..` for queries `i0..i1` of batch `b`.
struct Work {
    kernel: Kernel,
    /// AVX2 and FMA are available.
    wide: bool,
    b: usize,
    hk: usize,
    group: usize,
    i0: usize,
    i1: usize,
}

/// # Safety
/// As [`attention`]; the CPU has AVX-512F and DQ, AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx2,fma")]
unsafe fn item_avx512(p: &Attention, w: &Work) {
    // SAFETY: forwarded.
    unsafe { item::<true>(p, w) }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn item_avx512(p: &Attention, w: &Work) {
    // SAFETY: forwarded.
    unsafe { item::<false>(p, w) }
}

/// # Safety
/// As [`attention`]; the CPU has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn item_avx2(p: &Attention, w: &Work) {
    // SAFETY: forwarded.
    unsafe { item::<false>(p, w) }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn item_avx2(p: &Attention, w: &Work) {
    // SAFETY: forwarded.
    unsafe { item::<false>(p, w) }
}

/// # Safety
/// As [`attention`].
unsafe fn item_generic(p: &Attention, w: &Work) {
    // SAFETY: forwarded.
    unsafe { item::<false>(p, w) }
}

/// The largest element of a row of scores ([`max_of`]; AVX-512 with `X512`).
///
/// # Safety
/// `X512` only where the CPU has AVX-512F.
#[inline(always)]
unsafe fn row_max<const X512: bool>(x: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if X512 {
        // SAFETY: the caller's promise.
        return unsafe { x512::max_of(x) };
    }
    max_of(x)
}

/// [`exp_sum`] (AVX-512 with `X512`).
///
/// # Safety
/// `X512` only where the CPU has AVX-512F.
#[inline(always)]
unsafe fn row_exp_sum<const X512: bool>(x: &mut [f32], m: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if X512 {
        // SAFETY: the caller's promise.
        return unsafe { x512::exp_sum(x, m) };
    }
    exp_sum(x, m)
}

/// Per-item buffers, kept per thread from call to call.
#[derive(Default)]
struct Scratch {
    q: Vec<f32>,
    lo: Vec<usize>,
    hi: Vec<usize>,
    at: Vec<(usize, usize)>,
    m: Vec<f32>,
    l: Vec<f32>,
    acc: Vec<f32>,
    full: Vec<f32>,
    kbuf: Vec<f32>,
    vbuf: Vec<f32>,
    s: Vec<f32>,
    tmp: Vec<f32>,
    orow: Vec<f32>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// `v` cleared and filled with `len` copies of `x`.
fn reset<T: Clone>(v: &mut Vec<T>, len: usize, x: T) {
    v.clear();
    v.resize(len, x);
}

/// A tile of keys or values as the GEMM reads it: f32 rows at `ptr`, `stride` apart.
struct Tile {
    ptr: *const f32,
    stride: isize,
}

/// Keys (`vals = false`) or values `j0..j1` of kv head `hk` in batch `b`: read in place
/// when they are f32 rows of one segment, else converted into `buf`.
///
/// # Safety
/// As [`attention`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile(
    p: &Attention,
    vals: bool,
    b: usize,
    hk: usize,
    j0: usize,
    j1: usize,
    d: usize,
    buf: &mut Vec<f32>,
) -> Tile {
    let segs = if vals { &p.v } else { &p.k };
    for (base, seg) in [(0, &segs[0]), (segs[0].len, &segs[1])] {
        if seg.view.elem == Elem::F32 && j0 >= base && j1 <= base + seg.len && j1 > j0 {
            return Tile {
                ptr: seg.view.row(b, hk, j0 - base) as *const f32,
                stride: seg.view.strides[2],
            };
        }
    }
    if buf.len() < (j1 - j0) * d {
        buf.resize(KT * d, 0.0);
    }
    for j in j0..j1 {
        let (ptr, e) = p.kv_row(vals, b, hk, j);
        let jj = j - j0;
        // SAFETY: row j of (b, hk) is inside its segment.
        unsafe { load(e, ptr, &mut buf[jj * d..(jj + 1) * d]) };
    }
    Tile {
        ptr: buf.as_ptr(),
        stride: d as isize,
    }
}

/// # Safety
/// As [`attention`]; `X512` only where the CPU has AVX-512F and DQ.
#[inline(always)]
unsafe fn item<const X512: bool>(p: &Attention, w: &Work) {
    // The buffers are taken out of their cell while in use: a nested call on this thread
    // (a task picked up while waiting) starts from empty ones instead of sharing them.
    let mut sc = SCRATCH.with(|c| std::mem::take(&mut *c.borrow_mut()));
    // SAFETY: forwarded.
    unsafe { item_with::<X512>(p, w, &mut sc) };
    SCRATCH.with(|c| *c.borrow_mut() = sc);
}

/// # Safety
/// As [`item`].
#[inline(always)]
unsafe fn item_with<const X512: bool>(p: &Attention, w: &Work, sc: &mut Scratch) {
    let (dk, dv) = (p.dk, p.dv);
    let (b, hk, group) = (w.b, w.hk, w.group);
    let qn = w.i1 - w.i0;
    let nrows = group * qn;
    let total = p.total();
    // The common case takes one pass for the logits and their maximum: no softcap or score
    // output, at most one f32 mask with contiguous keys.
    let plain = p.softcap == 0.0 && p.qk.is_none();
    let fast_mask: Option<Option<&Mask>> = match &p.masks {
        [None, None] if plain => Some(None),
        [Some(mk), None] if plain && mk.elem == Elem::F32 && mk.strides[3] == 1 => Some(Some(mk)),
        _ => None,
    };
    // With AVX-512 and GEMM-sized items, one register pass per row turns scores into
    // exponentials ([`x512::softmax_row`]), applying the scale on the way.
    let fused = X512 && nrows > SMALL_ROWS && fast_mask.is_some();
    // Otherwise, without a softcap or a score output, the scale goes into q once instead of
    // into every score.
    let prescale = plain && !fused;
    // f32 query rows are read in place by the GEMM when nothing needs to change in them and
    // the item is one query head (with several, one GEMM per head would pack each key tile
    // that many times).
    let q_in_place = fused && group == 1 && p.q.elem == Elem::F32 && p.q.strides[2] > 0;
    let Scratch {
        q,
        lo,
        hi,
        at,
        m,
        l,
        acc,
        full,
        kbuf,
        vbuf,
        s,
        tmp,
        orow,
    } = sc;
    if !q_in_place {
        reset(q, nrows * dk, 0f32);
    }
    reset(lo, nrows, 0usize);
    reset(hi, nrows, 0usize);
    at.clear();
    for g in 0..group {
        let h = hk * group + g;
        for i in w.i0..w.i1 {
            let row = at.len();
            at.push((h, i));
            (lo[row], hi[row]) = p.range(b, i);
            if q_in_place {
                continue;
            }
            let qr = &mut q[row * dk..(row + 1) * dk];
            let src = p.q.row(b, h, i);
            if prescale && p.q.elem == Elem::F32 {
                for (d, o) in qr.iter_mut().enumerate() {
                    // SAFETY: row (b, h, i) of q holds dk floats (maybe unaligned).
                    *o = unsafe { (src as *const f32).add(d).read_unaligned() } * p.scale;
                }
            } else {
                // SAFETY: (b, h, i) is inside q's extent.
                unsafe { load(p.q.elem, src, qr) };
                if prescale {
                    for x in qr.iter_mut() {
                        *x *= p.scale;
                    }
                }
            }
        }
    }
    reset(m, nrows, f32::NEG_INFINITY);
    reset(l, nrows, 0f32);
    // The first key tile's P·V GEMM overwrites the accumulator (rows without live keys get
    // zero probabilities there); the few-row loops only add to it.
    if nrows <= SMALL_ROWS {
        reset(acc, nrows * dv, 0f32);
    } else if acc.len() < nrows * dv {
        acc.resize(nrows * dv, 0f32);
    }
    let all_keys = p.qk.is_some_and(|q| q.all_keys);
    let probs = p.qk.filter(|q| q.mode == QkMode::Probs);
    // Biased scores of every row, kept for the probabilities.
    if probs.is_some() {
        reset(full, nrows * total, f32::NEG_INFINITY);
    } else {
        full.clear();
    }
    let live = |x: usize| lo[x] < hi[x];
    let (jlo, jhi) = if all_keys {
        (0, total)
    } else {
        let a = (0..nrows).filter(|&x| live(x)).map(|x| lo[x]).min();
        let z = (0..nrows).filter(|&x| live(x)).map(|x| hi[x]).max();
        (a.unwrap_or(0), z.unwrap_or(0))
    };
    if jlo >= jhi && nrows > SMALL_ROWS {
        // No key tile: no GEMM writes the accumulator.
        reset(acc, nrows * dv, 0f32);
    }
    let sink_of = |h: usize| match p.sinks {
        // SAFETY: the sink vector holds q_heads elements.
        Some((addr, e)) => Some(unsafe { load1(e, (addr + h * e.size()) as *const u8) }),
        None if p.smooth => Some(0.0),
        None => None,
    };
    // One key tile in the fused case: each row's maximum and sum are final after its pass,
    // so P·V goes straight to f32 output rows, which are then scaled by the row's factor.
    // Items of several query heads keep the accumulator: one GEMM per head would pack the
    // value tile that many times.
    let direct = fused
        && group == 1
        && jlo < jhi
        && jhi - jlo <= KT
        && p.out.elem == Elem::F32
        && p.out.strides[2] > 0;
    // Conversion buffers (kbuf, vbuf) are sized when a tile cannot be read in place; the
    // score tile is written before it is read.
    if s.len() < nrows * KT {
        s.resize(nrows * KT, 0f32);
    }
    if !fused && tmp.len() < KT {
        tmp.resize(KT, 0f32);
    }
    let mut j0 = jlo;
    while j0 < jhi {
        let j1 = (j0 + KT).min(jhi);
        let kt = j1 - j0;
        // SAFETY: keys j0..j1 exist; the buffers hold a tile.
        let kt_src = unsafe { tile(p, false, b, hk, j0, j1, dk, kbuf) };
        if nrows <= SMALL_ROWS {
            // Few rows (decode): dot products straight from the key rows.
            // SAFETY: the tile holds kt rows of dk floats; q and s are sized for nrows.
            unsafe { small_qk(w.wide, q, dk, nrows, kt_src.ptr, kt_src.stride, kt, s, KT) };
        } else if q_in_place {
            // S = Q Kᵀ per query head of the group, reading its rows i0..i1 in place.
            for g in 0..group {
                // SAFETY: rows i0..i1 of head (b, hk*group + g) hold dk floats each,
                // q.strides[2] apart; the key tile kt rows of dk; s nrows x KT.
                unsafe {
                    sgemm(
                        w.kernel,
                        qn,
                        kt,
                        dk,
                        p.q.row(b, hk * group + g, w.i0) as *const f32,
                        p.q.strides[2],
                        1,
                        BMatrix::Strided {
                            ptr: kt_src.ptr,
                            rs: 1,
                            cs: kt_src.stride,
                        },
                        s.as_mut_ptr().add(g * qn * KT),
                        KT as isize,
                        false,
                    )
                };
            }
        } else {
            // S = Q Kᵀ: B[d, j] = K[j, d].
            // SAFETY: q holds nrows x dk, the key tile kt rows of dk, s nrows x KT.
            unsafe {
                sgemm(
                    w.kernel,
                    nrows,
                    kt,
                    dk,
                    q.as_ptr(),
                    dk as isize,
                    1,
                    BMatrix::Strided {
                        ptr: kt_src.ptr,
                        rs: 1,
                        cs: kt_src.stride,
                    },
                    s.as_mut_ptr(),
                    KT as isize,
                    false,
                )
            };
        }
        for row in 0..nrows {
            let sr = &mut s[row * KT..row * KT + kt];
            let (rlo, rhi) = (lo[row], hi[row]);
            if !all_keys && (rlo >= rhi || rhi <= j0 || rlo >= j1) {
                sr.fill(0.0);
                continue;
            }
            let (h, i) = at[row];
            let m_old = m[row];
            #[cfg(target_arch = "x86_64")]
            if fused {
                let (ptr, inside) = match fast_mask {
                    Some(Some(mk)) => {
                        let off = b as isize * mk.strides[0]
                            + h as isize * mk.strides[1]
                            + i as isize * mk.strides[2]
                            + j0 as isize;
                        // SAFETY: the mask row holds keys j0..cols (only those are read).
                        let ptr = unsafe { (mk.addr as *const f32).offset(off) };
                        (ptr, mk.cols.saturating_sub(j0))
                    }
                    _ => (std::ptr::null(), kt),
                };
                let (a, z) = (rlo.saturating_sub(j0), rhi.saturating_sub(j0));
                // SAFETY: fused implies X512 (the caller's promise); kt <= KT = 128.
                let (m_new, sum) =
                    unsafe { x512::softmax_row(sr, p.scale, ptr, inside, a, z, m_old) };
                if m_new == f32::NEG_INFINITY {
                    continue;
                }
                if direct {
                    // The row's output factor, kept in l: c / l' with the sink in the
                    // denominator (m' = max(m, sink), c = exp(m - m'), l' = l c +
                    // exp(sink - m')), as in the finish below. Rows left at 0 are dead.
                    let (mut c, mut lr) = (1.0f32, sum);
                    if let Some(sv) = sink_of(h) {
                        let m2 = m_new.max(sv);
                        c = (m_new - m2).exp();
                        lr = sum * c + (sv - m2).exp();
                    }
                    l[row] = if lr == 0.0 { 0.0 } else { c / lr };
                    continue;
                }
                if m_old == f32::NEG_INFINITY {
                    l[row] = sum;
                } else {
                    let corr = fast_exp(m_old - m_new);
                    if corr != 1.0 {
                        for x in acc[row * dv..(row + 1) * dv].iter_mut() {
                            *x *= corr;
                        }
                    }
                    l[row] = l[row] * corr + sum;
                }
                m[row] = m_new;
                continue;
            }
            let tmax = match fast_mask {
                // SAFETY: X512 (the caller's promise); the mask row holds its keys j0..inside.
                #[cfg(target_arch = "x86_64")]
                Some(mask) if X512 => unsafe {
                    let (ptr, inside) = match mask {
                        Some(mk) => {
                            let off = b as isize * mk.strides[0]
                                + h as isize * mk.strides[1]
                                + i as isize * mk.strides[2]
                                + j0 as isize;
                            let inside = mk.cols.saturating_sub(j0);
                            ((mk.addr as *const f32).offset(off), inside)
                        }
                        None => (std::ptr::null(), kt),
                    };
                    let (a, z) = (rlo.saturating_sub(j0), rhi.saturating_sub(j0));
                    x512::mask_max(sr, ptr, inside, a, z)
                },
                _ => {
                    if !prescale {
                        for x in sr.iter_mut() {
                            *x *= p.scale;
                        }
                    }
                    // SAFETY: (b, h, i) and keys j0..j1 are inside the views and masks.
                    unsafe { scores(p, b, h, i, j0, sr, rlo, rhi, tmp) };
                    if !full.is_empty() {
                        full[row * total + j0..row * total + j1].copy_from_slice(sr);
                    }
                    // SAFETY: X512 only with AVX-512F (the caller's promise).
                    unsafe { row_max::<X512>(sr) }
                }
            };
            let m_new = m_old.max(tmax);
            if m_new == f32::NEG_INFINITY {
                sr.fill(0.0);
                continue;
            }
            let corr = fast_exp(m_old - m_new);
            // A row's first live tile: its accumulator is still all zeros.
            if corr != 1.0 && m_old != f32::NEG_INFINITY {
                for x in acc[row * dv..(row + 1) * dv].iter_mut() {
                    *x *= corr;
                }
            }
            // SAFETY: as above.
            let sum = unsafe { row_exp_sum::<X512>(sr, m_new) };
            l[row] = l[row] * corr + sum;
            m[row] = m_new;
        }
        // SAFETY: values j0..j1 exist; the buffers hold a tile.
        let vt = unsafe { tile(p, true, b, hk, j0, j1, dv, vbuf) };
        if direct {
            // out = P V per query head of the group, then scaled by each row's factor.
            for g in 0..group {
                // SAFETY: s holds nrows x kt probabilities, the value tile kt rows of dv;
                // rows i0..i1 of output head (b, hk*group + g) hold dv floats each,
                // out.strides[2] apart, written by this item only.
                unsafe {
                    sgemm(
                        w.kernel,
                        qn,
                        dv,
                        kt,
                        s.as_ptr().add(g * qn * KT),
                        KT as isize,
                        1,
                        BMatrix::Strided {
                            ptr: vt.ptr,
                            rs: vt.stride,
                            cs: 1,
                        },
                        p.out.row(b, hk * group + g, w.i0) as *mut f32,
                        p.out.strides[2],
                        false,
                    )
                };
            }
        } else if nrows <= SMALL_ROWS {
            // SAFETY: the tile holds kt rows of dv floats; s and acc are sized for nrows.
            unsafe { small_pv(w.wide, s, KT, nrows, vt.ptr, vt.stride, kt, dv, acc) };
        } else {
            // acc += P V.
            // SAFETY: s holds nrows x kt probabilities, the value tile kt rows of dv, acc
            // nrows x dv.
            unsafe {
                sgemm(
                    w.kernel,
                    nrows,
                    dv,
                    kt,
                    s.as_ptr(),
                    KT as isize,
                    1,
                    BMatrix::Strided {
                        ptr: vt.ptr,
                        rs: vt.stride,
                        cs: 1,
                    },
                    acc.as_mut_ptr(),
                    dv as isize,
                    j0 > jlo,
                )
            };
        }
        j0 = j1;
    }
    if direct {
        for (row, &(h, i)) in at.iter().enumerate() {
            let f = l[row];
            let o = p.out.row(b, h, i) as *mut f32;
            for d in 0..dv {
                // SAFETY: (b, h, i) is inside out's extent: dv floats, maybe unaligned,
                // written by this item only.
                unsafe {
                    let x = o.add(d);
                    x.write_unaligned(if f == 0.0 {
                        0.0
                    } else {
                        x.read_unaligned() * f
                    });
                }
            }
        }
        return;
    }
    // Finish: the sinks join the denominator; write the rows.
    if orow.len() < dv {
        orow.resize(dv, 0f32);
    }
    let orow = &mut orow[..dv];
    for row in 0..nrows {
        let (h, i) = at[row];
        let sink = sink_of(h);
        let (mut mr, mut lr) = (m[row], l[row]);
        let ar = &acc[row * dv..(row + 1) * dv];
        let mut scale_acc = 1.0f32;
        if let Some(sv) = sink {
            let m2 = mr.max(sv);
            if m2 != f32::NEG_INFINITY {
                let c = if mr == f32::NEG_INFINITY {
                    0.0
                } else {
                    (mr - m2).exp()
                };
                lr = lr * c + (sv - m2).exp();
                scale_acc = c;
                mr = m2;
            }
        }
        let dead = mr == f32::NEG_INFINITY || lr == 0.0;
        let f = if dead { 0.0 } else { scale_acc / lr };
        let dst = p.out.row(b, h, i);
        if p.out.elem == Elem::F32 {
            let dst = dst as *mut f32;
            for (d, a) in ar.iter().enumerate() {
                let o = if dead { 0.0 } else { a * f };
                // SAFETY: (b, h, i) is inside out's extent: dv floats, maybe unaligned.
                unsafe { dst.add(d).write_unaligned(o) };
            }
        } else {
            for (o, a) in orow.iter_mut().zip(ar) {
                *o = if dead { 0.0 } else { a * f };
            }
            // SAFETY: (b, h, i) is inside out's extent.
            unsafe { store(p.out.elem, dst, orow) };
        }
        if let Some(qo) = probs {
            let fr = &mut full[row * total..(row + 1) * total];
            for x in fr.iter_mut() {
                *x = if dead { 0.0 } else { (*x - mr).exp() / lr };
            }
            let (a, z) = if qo.all_keys {
                (0, total.min(qo.cols))
            } else {
                (lo[row].min(qo.cols), hi[row].min(qo.cols))
            };
            if a < z {
                let dst = qo.view.row(b, h, i);
                // SAFETY: the score row holds `cols` elements.
                unsafe { store(qo.view.elem, dst.add(a * qo.view.elem.size()), &fr[a..z]) };
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
#[inline(always)]
unsafe fn scores(
    p: &Attention,
    b: usize,
    h: usize,
    i: usize,
    j0: usize,
    s: &mut [f32],
    lo: usize,
    hi: usize,
    tmp: &mut [f32],
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
    if p.qk.is_some() {
        write(QkMode::Raw, s);
    }
    if p.softcap > 0.0 {
        for x in s.iter_mut() {
            *x = p.softcap * (*x / p.softcap).tanh();
        }
    }
    if p.qk.is_some() {
        write(QkMode::Capped, s);
    }
    for mask in p.masks.iter().flatten() {
        let base = b as isize * mask.strides[0]
            + h as isize * mask.strides[1]
            + i as isize * mask.strides[2];
        let at = |j: usize| {
            let off = (base + j as isize * mask.strides[3]) * mask.elem.size() as isize;
            (mask.addr as isize + off) as *const u8
        };
        // Keys j0..inside have mask values; the rest are past the mask's end.
        let inside = mask.cols.clamp(j0, j0 + kt);
        let n = inside - j0;
        if mask.strides[3] == 1 {
            // SAFETY: keys j0..inside of this mask row exist.
            unsafe { load(mask.elem, at(j0), &mut tmp[..n]) };
        } else if n > 0 {
            // SAFETY: as above (one broadcast value).
            let v = unsafe { load1(mask.elem, at(j0)) };
            tmp[..n].fill(v);
        }
        if mask.elem == Elem::Bool {
            for x in tmp[..n].iter_mut() {
                *x = if *x != 0.0 { 0.0 } else { f32::NEG_INFINITY };
            }
        }
        for (x, m) in s[..n].iter_mut().zip(&tmp[..n]) {
            *x += m;
        }
        s[n..].fill(f32::NEG_INFINITY);
    }
    let a = lo.saturating_sub(j0).min(kt);
    s[..a].fill(f32::NEG_INFINITY);
    let z = hi.saturating_sub(j0).min(kt);
    if z < kt {
        s[z..].fill(f32::NEG_INFINITY);
    }
    if p.qk.is_some() {
        write(QkMode::Biased, s);
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
        unsafe { attention(Kernel::detect(), &p) };
        for (i, (a, b)) in out.iter().zip(&want).enumerate() {
            assert!((a - b).abs() < 1e-5, "{i}: {a} vs {b}");
        }
    }

    /// The one-pass logits (scale in q, one f32 mask with contiguous keys) against the
    /// general path (taken when a score output is asked for) and an f64 reference: a mask
    /// per query row with `-inf`, `-1e9` and NaN-free padding, a fully masked row (zeros),
    /// causal ranges, key tiles past the mask's columns.
    #[test]
    fn one_pass_logits_match_the_general_path() {
        let (h, s, t, d) = (3, 37, 150, 32);
        let f = |n: usize, m: f32| {
            (0..n)
                .map(|i| ((i as f32 + 1.0) * m).sin())
                .collect::<Vec<f32>>()
        };
        let (q, k, v) = (f(h * s * d, 0.37), f(h * t * d, 0.91), f(h * t * d, 1.3));
        // Mask [s, cols]: cols < t, so keys past it count as masked.
        let cols = 140;
        let mut mask = f(s * cols, 0.05);
        for i in 0..s {
            for j in 0..cols {
                if (i + j) % 11 == 0 {
                    mask[i * cols + j] = f32::NEG_INFINITY;
                } else if j > 120 {
                    mask[i * cols + j] = -1e9;
                }
            }
        }
        mask[5 * cols..6 * cols].fill(f32::NEG_INFINITY);
        let view = |p: *const f32, rows: usize| View {
            addr: p as usize,
            elem: Elem::F32,
            strides: [0, (rows * d) as isize, d as isize],
        };
        let seg = |p: *const f32, len: usize| Segment {
            view: view(p, t),
            len,
        };
        let mut out = vec![0f32; h * s * d];
        let mut p = Attention {
            batch: 1,
            q_heads: h,
            kv_heads: h,
            q_len: s,
            dk: d,
            dv: d,
            q: view(q.as_ptr(), s),
            k: [seg(k.as_ptr(), 0), seg(k.as_ptr(), t)],
            v: [seg(v.as_ptr(), 0), seg(v.as_ptr(), t)],
            out: view(out.as_mut_ptr(), s),
            scale: 0.3,
            softcap: 0.0,
            causal: true,
            left: None,
            right: None,
            window_from_end: false,
            kv_len: vec![],
            q_pos: vec![(t - s) as i64],
            masks: [
                Some(Mask {
                    addr: mask.as_ptr() as usize,
                    elem: Elem::F32,
                    strides: [0, 0, cols as isize, 1],
                    cols,
                }),
                None,
            ],
            sinks: None,
            smooth: false,
            qk: None,
        };
        // SAFETY: all views describe the vectors above.
        unsafe { attention(Kernel::detect(), &p) };
        let fast = out.clone();
        let mut scores = vec![0f32; h * s * t];
        p.qk = Some(QkOut {
            view: View {
                addr: scores.as_mut_ptr() as usize,
                elem: Elem::F32,
                strides: [0, (s * t) as isize, t as isize],
            },
            cols: t,
            mode: QkMode::Raw,
            all_keys: true,
        });
        // SAFETY: as above, the score output too.
        unsafe { attention(Kernel::detect(), &p) };
        for hh in 0..h {
            for i in 0..s {
                let row = (hh * s + i) * d;
                let pos = t - s + i;
                let l: Vec<f64> = (0..t)
                    .map(|j| {
                        let m = if j < cols {
                            mask[i * cols + j] as f64
                        } else {
                            f64::NEG_INFINITY
                        };
                        if j > pos || m == f64::NEG_INFINITY {
                            return f64::NEG_INFINITY;
                        }
                        let dot: f64 = (0..d)
                            .map(|x| q[row + x] as f64 * k[(hh * t + j) * d + x] as f64)
                            .sum();
                        0.3 * dot + m
                    })
                    .collect();
                let mx = l.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                for x in 0..d {
                    let want = if mx == f64::NEG_INFINITY {
                        0.0
                    } else {
                        let den: f64 = l.iter().map(|&z| (z - mx).exp()).sum();
                        (0..t)
                            .map(|j| (l[j] - mx).exp() / den * v[(hh * t + j) * d + x] as f64)
                            .sum()
                    };
                    let (a, b) = (fast[row + x], out[row + x]);
                    assert!(
                        (a as f64 - want).abs() < 2e-5,
                        "h{hh} i{i} x{x}: {a} vs {want}"
                    );
                    assert!(
                        (a - b).abs() < 2e-6,
                        "h{hh} i{i} x{x}: one pass {a}, general {b}"
                    );
                }
                if i == 5 {
                    assert!(fast[row..row + d].iter().all(|&x| x == 0.0), "masked row");
                }
            }
        }
    }

    /// One key tile (no online correction; with one query head per item, P·V written
    /// straight to the output and scaled there) against the general path and an f64
    /// reference: a sink per head, a per-batch key count, a mask per (batch, key) with `-inf`
    /// and `-1e9`, output rows of the heads interleaved; MHA and GQA; and the same with a
    /// bf16 output.
    #[test]
    fn single_key_tile_matches_the_general_path() {
        single_key_tile(4, 4);
        single_key_tile(4, 2);
    }

    fn single_key_tile(hq: usize, hk: usize) {
        let (bn, s, t, d) = (2, 20, 100, 16);
        let f = |n: usize, m: f32| {
            (0..n)
                .map(|i| ((i as f32 + 1.0) * m).sin())
                .collect::<Vec<f32>>()
        };
        // q and out as [b, s, h, d], k and v as [b, h, t, d].
        let (q, k, v) = (
            f(bn * s * hq * d, 0.37),
            f(bn * hk * t * d, 0.91),
            f(bn * hk * t * d, 1.3),
        );
        let mut mask = f(bn * t, 0.05);
        for j in 0..t {
            if j % 13 == 0 {
                mask[j] = f32::NEG_INFINITY;
            }
            if j > 90 {
                mask[t + j] = -1e9;
            }
        }
        let sinks = [0.5f32, -1.0, 2.0, f32::NEG_INFINITY];
        let kv_len = vec![t, 70];
        let tok = |p: *const f32| View {
            addr: p as usize,
            elem: Elem::F32,
            strides: [(s * hq * d) as isize, d as isize, (hq * d) as isize],
        };
        let kv = |p: *const f32| Segment {
            view: View {
                addr: p as usize,
                elem: Elem::F32,
                strides: [(hk * t * d) as isize, (t * d) as isize, d as isize],
            },
            len: t,
        };
        let empty = Segment {
            view: kv(k.as_ptr()).view,
            len: 0,
        };
        let mut out = vec![0f32; bn * s * hq * d];
        let mut p = Attention {
            batch: bn,
            q_heads: hq,
            kv_heads: hk,
            q_len: s,
            dk: d,
            dv: d,
            q: tok(q.as_ptr()),
            k: [empty, kv(k.as_ptr())],
            v: [empty, kv(v.as_ptr())],
            out: tok(out.as_mut_ptr()),
            scale: 0.4,
            softcap: 0.0,
            causal: false,
            left: None,
            right: None,
            window_from_end: false,
            kv_len: kv_len.clone(),
            q_pos: vec![],
            masks: [
                Some(Mask {
                    addr: mask.as_ptr() as usize,
                    elem: Elem::F32,
                    strides: [t as isize, 0, 0, 1],
                    cols: t,
                }),
                None,
            ],
            sinks: Some((sinks.as_ptr() as usize, Elem::F32)),
            smooth: false,
            qk: None,
        };
        // SAFETY: all views describe the vectors above.
        unsafe { attention(Kernel::detect(), &p) };
        let fast = out.clone();
        let mut half = vec![0u16; bn * s * hq * d];
        p.out = View {
            addr: half.as_mut_ptr() as usize,
            elem: Elem::BF16,
            ..p.out
        };
        // SAFETY: as above, with the bf16 output.
        unsafe { attention(Kernel::detect(), &p) };
        let mut scores = vec![0f32; bn * hq * s * t];
        p.out = tok(out.as_mut_ptr());
        p.qk = Some(QkOut {
            view: View {
                addr: scores.as_mut_ptr() as usize,
                elem: Elem::F32,
                strides: [(hq * s * t) as isize, (s * t) as isize, t as isize],
            },
            cols: t,
            mode: QkMode::Raw,
            all_keys: false,
        });
        // SAFETY: as above, the score output too.
        unsafe { attention(Kernel::detect(), &p) };
        for b in 0..bn {
            for (h, &sink) in sinks.iter().enumerate() {
                for i in 0..s {
                    let row = ((b * s + i) * hq + h) * d;
                    let kvh = (b * hk + h / (hq / hk)) * t;
                    let l: Vec<f64> = (0..kv_len[b])
                        .map(|j| {
                            let dot: f64 = (0..d)
                                .map(|x| q[row + x] as f64 * k[(kvh + j) * d + x] as f64)
                                .sum();
                            0.4 * dot + mask[b * t + j] as f64
                        })
                        .chain([sink as f64])
                        .collect();
                    let mx = l.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let den: f64 = l.iter().map(|&z| (z - mx).exp()).sum();
                    for x in 0..d {
                        let want: f64 = (0..kv_len[b])
                            .map(|j| (l[j] - mx).exp() / den * v[(kvh + j) * d + x] as f64)
                            .sum();
                        let (a, g) = (fast[row + x], out[row + x]);
                        let hb = bf16_to_f32(half[row + x]);
                        assert!(
                            (a as f64 - want).abs() < 2e-5,
                            "b{b} h{h} i{i} x{x}: {a} vs {want}"
                        );
                        assert!(
                            (a - g).abs() < 2e-6,
                            "b{b} h{h} i{i} x{x}: one tile {a}, general {g}"
                        );
                        assert!(
                            (hb - a).abs() <= a.abs() / 128.0,
                            "b{b} h{h} i{i} x{x}: bf16 {hb} vs {a}"
                        );
                    }
                }
            }
        }
    }

    /// The same call on pools of 1 and 3 threads gives the same bits.
    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let (hq, hk, s, d) = (4, 2, 150, 16);
        let f = |n: usize, m: f32| {
            (0..n)
                .map(|i| ((i as f32 + 1.0) * m).sin())
                .collect::<Vec<f32>>()
        };
        let (q, k, v) = (f(hq * s * d, 0.3), f(hk * s * d, 0.7), f(hk * s * d, 1.1));
        let view = |p: *const f32, rows: usize| View {
            addr: p as usize,
            elem: Elem::F32,
            strides: [0, (rows * d) as isize, d as isize],
        };
        let run = |threads: usize| {
            let mut out = vec![0f32; hq * s * d];
            let empty = Segment {
                view: view(k.as_ptr(), 0),
                len: 0,
            };
            let p = Attention {
                batch: 1,
                q_heads: hq,
                kv_heads: hk,
                q_len: s,
                dk: d,
                dv: d,
                q: view(q.as_ptr(), s),
                k: [
                    empty,
                    Segment {
                        view: view(k.as_ptr(), s),
                        len: s,
                    },
                ],
                v: [
                    empty,
                    Segment {
                        view: view(v.as_ptr(), s),
                        len: s,
                    },
                ],
                out: view(out.as_mut_ptr(), s),
                scale: 0.25,
                softcap: 0.0,
                causal: true,
                left: None,
                right: None,
                window_from_end: false,
                kv_len: vec![],
                q_pos: vec![],
                masks: [None, None],
                sinks: None,
                smooth: false,
                qk: None,
            };
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            // SAFETY: the views describe the vectors above.
            pool.install(|| unsafe { attention(Kernel::detect(), &p) });
            out
        };
        let (a, b) = (run(1), run(3));
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
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

#[cfg(test)]
mod bench {
    use super::*;

    /// CPU seconds this process has used (all threads), from /proc.
    fn cpu_time() -> f64 {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let after = stat.rsplit(')').next().unwrap_or("");
        let f: Vec<&str> = after.split_whitespace().collect();
        let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        (t(11) + t(12)) / 100.0
    }

    /// Runs `f` for about a second of CPU time; returns CPU ms per run.
    fn per_run(mut f: impl FnMut()) -> f64 {
        let c0 = cpu_time();
        let mut runs = 0;
        while cpu_time() - c0 < 1.0 || runs < 3 {
            f();
            runs += 1;
        }
        (cpu_time() - c0) * 1e3 / runs as f64
    }

    /// MiniLM's attention (12 heads of 32, 128 queries and keys, a float padding mask) on
    /// one thread: the fastest of many runs, the least disturbed on a busy machine, beside
    /// a GEMM of the same products (`cargo test --release -p kiln-runtime attention_minilm_min
    /// -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn attention_minilm_min() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let (h, s, d) = (12usize, 128usize, 32usize);
        let data = |n: usize, seed: usize| -> Vec<f32> {
            (0..n)
                .map(|i| ((i * 7919 + seed * 104_729) % 2001) as f32 / 1000.0 - 1.0)
                .collect()
        };
        let (q, k, v) = (data(h * s * d, 1), data(h * s * d, 2), data(h * s * d, 3));
        let mask: Vec<f32> = (0..s).map(|j| if j < s - 8 { 0.0 } else { -1e9 }).collect();
        let mut out = vec![0f32; h * s * d];
        let view = |p: *const f32| View {
            addr: p as usize,
            elem: Elem::F32,
            strides: [0, (s * d) as isize, d as isize],
        };
        let seg = |p: *const f32, len| Segment { view: view(p), len };
        let p = Attention {
            batch: 1,
            q_heads: h,
            kv_heads: h,
            q_len: s,
            dk: d,
            dv: d,
            q: view(q.as_ptr()),
            k: [seg(k.as_ptr(), 0), seg(k.as_ptr(), s)],
            v: [seg(v.as_ptr(), 0), seg(v.as_ptr(), s)],
            out: view(out.as_mut_ptr()),
            scale: 0.176_776_7,
            softcap: 0.0,
            causal: false,
            left: None,
            right: None,
            window_from_end: false,
            kv_len: vec![],
            q_pos: vec![],
            masks: [
                Some(Mask {
                    addr: mask.as_ptr() as usize,
                    elem: Elem::F32,
                    strides: [0, 0, 0, 1],
                    cols: s,
                }),
                None,
            ],
            sinks: None,
            smooth: false,
            qk: None,
        };
        // SAFETY: the views describe the vectors above.
        let attn = || pool.install(|| unsafe { attention(Kernel::detect(), &p) });
        // The same products as two GEMMs per head (Q·Kᵀ, P·V), no softmax.
        let mut sc = vec![0f32; s * s];
        let mut gemms = || {
            pool.install(|| {
                for hh in 0..h {
                    let o = hh * s * d;
                    // SAFETY: one head's q, k, v, out and an s x s score buffer.
                    unsafe {
                        sgemm(
                            Kernel::detect(),
                            s,
                            s,
                            d,
                            q.as_ptr().add(o),
                            d as isize,
                            1,
                            BMatrix::Strided {
                                ptr: k.as_ptr().add(o),
                                rs: 1,
                                cs: d as isize,
                            },
                            sc.as_mut_ptr(),
                            s as isize,
                            false,
                        );
                        sgemm(
                            Kernel::detect(),
                            s,
                            d,
                            s,
                            sc.as_ptr(),
                            s as isize,
                            1,
                            BMatrix::Strided {
                                ptr: v.as_ptr().add(o),
                                rs: d as isize,
                                cs: 1,
                            },
                            out.as_mut_ptr().add(o),
                            d as isize,
                            false,
                        );
                    }
                }
            })
        };
        // Alternating, so that both see the same machine.
        let (mut ta, mut tg) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..400 {
            let t = std::time::Instant::now();
            attn();
            ta = ta.min(t.elapsed().as_secs_f64() * 1e6);
            let t = std::time::Instant::now();
            gemms();
            tg = tg.min(t.elapsed().as_secs_f64() * 1e6);
        }
        println!(
            "minilm attention, 1 thread, best of 400: {ta:.1} us; its two GEMMs alone {tg:.1} us"
        );
    }

    /// Times typical shapes: `cargo test --release -p kiln-runtime attention_timing --
    /// --ignored --nocapture`.
    #[test]
    #[ignore]
    fn attention_timing() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        // Calibration: a square GEMM on the same pool.
        let n = 384;
        let (a, bm) = (vec![0.5f32; n * n], vec![0.25f32; n * n]);
        let mut c = vec![0f32; n * n];
        let ms = per_run(|| {
            // SAFETY: n x n matrices.
            pool.install(|| unsafe {
                sgemm(
                    Kernel::detect(),
                    n,
                    n,
                    n,
                    a.as_ptr(),
                    n as isize,
                    1,
                    BMatrix::Strided {
                        ptr: bm.as_ptr(),
                        rs: n as isize,
                        cs: 1,
                    },
                    c.as_mut_ptr(),
                    n as isize,
                    false,
                )
            })
        });
        println!(
            "gemm {n}: {ms:.2} CPU ms, {:.1} GFLOP/s per core",
            2.0 * (n * n * n) as f64 / ms / 1e6
        );
        for &(name, hq, hk, s, t, d, causal) in &[
            (
                "minilm b1 s128",
                12usize,
                12usize,
                128usize,
                128usize,
                32usize,
                false,
            ),
            ("prefill s512 gqa", 32, 8, 512, 512, 128, true),
            ("decode t4096 gqa", 32, 8, 1, 4096, 128, true),
            ("decode t256 gqa", 32, 8, 1, 256, 128, true),
        ] {
            let q = vec![0.01f32; hq * s * d];
            let k = vec![0.02f32; hk * t * d];
            let v = vec![0.03f32; hk * t * d];
            let mut out = vec![0f32; hq * s * d];
            let view = |p: *const f32, rows: usize| View {
                addr: p as usize,
                elem: Elem::F32,
                strides: [0, (rows * d) as isize, d as isize],
            };
            let empty = Segment {
                view: view(k.as_ptr(), 0),
                len: 0,
            };
            let p = Attention {
                batch: 1,
                q_heads: hq,
                kv_heads: hk,
                q_len: s,
                dk: d,
                dv: d,
                q: view(q.as_ptr(), s),
                k: [
                    empty,
                    Segment {
                        view: view(k.as_ptr(), t),
                        len: t,
                    },
                ],
                v: [
                    empty,
                    Segment {
                        view: view(v.as_ptr(), t),
                        len: t,
                    },
                ],
                out: view(out.as_mut_ptr(), s),
                scale: 0.1,
                softcap: 0.0,
                causal,
                left: None,
                right: None,
                window_from_end: false,
                kv_len: vec![],
                q_pos: vec![(t - s) as i64],
                masks: [None, None],
                sinks: None,
                smooth: false,
                qk: None,
            };
            // SAFETY: the views describe the vectors above.
            let ms = per_run(|| pool.install(|| unsafe { attention(Kernel::detect(), &p) }));
            let flops = 4.0 * (hq * s * t * d) as f64 / if causal && s > 1 { 2.0 } else { 1.0 };
            println!(
                "{name}: {ms:.2} CPU ms, {:.1} GFLOP/s per core",
                flops / ms / 1e6
            );
        }
    }
}
