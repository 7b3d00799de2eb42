//! Linear quantization helpers: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear and
//! the requantization step of QLinearMatMul. Arithmetic follows kiln's reference
//! interpreter (ONNX's precision rules): values in f64, rounded to the scale's precision
//! where ONNX says so, integers round half to even and saturate.

use super::elem::{self, from_code, int_range, round_to};
use super::{Helper, HelperFn, RunContext};
use crate::model::tensor::ElemType;

/// A parameter broadcast over an index space: pointer, dtype, one stride per axis.
struct Param {
    ptr: *const u8,
    dtype: ElemType,
    strides: Vec<isize>,
}

fn read_param(s: &[u64], at: &mut usize, rank: usize) -> Param {
    let p = Param {
        ptr: s[*at] as *const u8,
        dtype: from_code(s[*at + 1]),
        strides: s[*at + 2..*at + 2 + rank]
            .iter()
            .map(|&x| x as i64 as isize)
            .collect(),
    };
    *at += 2 + rank;
    p
}

/// Calls `f(flat, offsets)` for every row-major index of `sizes`, with each param's offset.
fn walk(sizes: &[usize], params: &[&Param], mut f: impl FnMut(usize, &[isize])) {
    let total: usize = sizes.iter().product();
    let rank = sizes.len();
    let mut idx = vec![0usize; rank];
    let mut offs = vec![0isize; params.len()];
    for flat in 0..total {
        f(flat, &offs);
        for a in (0..rank).rev() {
            idx[a] += 1;
            for (o, p) in offs.iter_mut().zip(params) {
                *o += p.strides[a];
            }
            if idx[a] < sizes[a] {
                break;
            }
            for (o, p) in offs.iter_mut().zip(params) {
                *o -= p.strides[a] * sizes[a] as isize;
            }
            idx[a] = 0;
        }
    }
}

/// QLinearMatMul's requantization:
/// `y = saturate(round_even(acc · round(round(sa·sb) / sy)) + zy)` (rounding to the scales'
/// dtype).
///
/// Arguments: `acc (f64) | y | y dtype | scale dtype | rank | sizes[rank] |` then four
/// params `sa, sb, sy, zy`, each `ptr (0: zero), dtype, strides[rank]`.
///
/// # Safety
/// `ctx`/`args` per the `Call` convention; every access stays in its buffer.
unsafe extern "C" fn qlinear_requantize(_ctx: *const RunContext, args: *const u64) {
    // SAFETY: the header's slots are present (caller).
    let head = unsafe { std::slice::from_raw_parts(args, 5) };
    let rank = head[4] as usize;
    // SAFETY: as above, the whole list.
    let s = unsafe { std::slice::from_raw_parts(args, 5 + rank + 4 * (2 + rank)) };
    let acc = s[0] as *const f64;
    let y = s[1] as *mut u8;
    let yt = from_code(s[2]);
    let ts = from_code(s[3]);
    let sizes: Vec<usize> = s[5..5 + rank].iter().map(|&x| x as usize).collect();
    let mut at = 5 + rank;
    let ps: Vec<Param> = (0..4).map(|_| read_param(s, &mut at, rank)).collect();
    let refs: Vec<&Param> = ps.iter().collect();
    let (lo, hi) = int_range(yt);
    walk(&sizes, &refs, |i, o| {
        // SAFETY: i is inside acc and y, the offsets inside their params (caller).
        unsafe {
            let get = |k: usize| {
                if ps[k].ptr.is_null() {
                    0.0
                } else {
                    elem::load_f64(ps[k].dtype, ps[k].ptr, o[k])
                }
            };
            let mult = round_to(ts, round_to(ts, get(0) * get(1)) / get(2));
            let d = *acc.add(i) * mult + get(3);
            elem::store_f64(yt, y, i as isize, d.round_ties_even().clamp(lo, hi), true);
        }
    });
}

/// How a scale / zero point maps onto the elements of `x` (see the QuantizeLinear spec).
#[derive(Clone, Copy)]
enum Granularity {
    Tensor,
    Axis {
        len: usize,
        inner: usize,
    },
    Blocked {
        len: usize,
        blocks: usize,
        block: usize,
        inner: usize,
    },
}

impl Granularity {
    /// From slots `mode, len, blocks, block, inner` (mode 0 tensor, 1 axis, 2 blocked).
    fn read(s: &[u64]) -> Granularity {
        let (len, blocks, block, inner) = (
            s[1] as usize,
            s[2] as usize,
            (s[3] as usize).max(1),
            (s[4] as usize).max(1),
        );
        match s[0] {
            1 => Granularity::Axis {
                len: len.max(1),
                inner,
            },
            2 => Granularity::Blocked {
                len: len.max(1),
                blocks,
                block,
                inner,
            },
            _ => Granularity::Tensor,
        }
    }

    fn index(&self, flat: usize) -> usize {
        match *self {
            Granularity::Tensor => 0,
            Granularity::Axis { len, inner } => (flat / inner) % len,
            Granularity::Blocked {
                len,
                blocks,
                block,
                inner,
            } => {
                let i = flat % inner;
                let rest = flat / inner;
                let (a, o) = (rest % len, rest / len);
                (o * blocks + a / block) * inner + i
            }
        }
    }
}

/// QuantizeLinear: `y = saturate(round_even(x / scale) + zero_point)`, the division in the
/// precision dtype; fp8 outputs add the zero point and round on store.
///
/// Arguments: `x | x dtype | y | y dtype | scale | scale dtype | zp (0: none) | zp dtype |
/// precision dtype | saturate | n | granularity (mode, len, blocks, block, inner)`.
///
/// # Safety
/// `ctx`/`args` per the `Call` convention; x and y hold n elements, scale and zp as many
/// as the granularity indexes.
unsafe extern "C" fn quantize_linear(_ctx: *const RunContext, args: *const u64) {
    // SAFETY: 16 slots (caller).
    let s = unsafe { std::slice::from_raw_parts(args, 16) };
    let (x, xt) = (s[0] as *const u8, from_code(s[1]));
    let (y, yt) = (s[2] as *mut u8, from_code(s[3]));
    let (sc, st) = (s[4] as *const u8, from_code(s[5]));
    let (zp, zt) = (s[6] as *const u8, from_code(s[7]));
    let prec = from_code(s[8]);
    let saturate = s[9] != 0;
    let n = s[10] as usize;
    let g = Granularity::read(&s[11..16]);
    let fp8 = elem::is_float(yt);
    let (lo, hi) = int_range(yt);
    for i in 0..n {
        let k = g.index(i) as isize;
        // SAFETY: element i of x and y, element k of scale and zp exist (caller).
        unsafe {
            let v = elem::load_f64(xt, x, i as isize);
            let scale = elem::load_f64(st, sc, k);
            let d = round_to(prec, round_to(prec, v) / round_to(prec, scale));
            let z = if zp.is_null() {
                0.0
            } else {
                elem::load_f64(zt, zp, k)
            };
            let q = if fp8 {
                d + z
            } else {
                (d.round_ties_even() + z).clamp(lo, hi)
            };
            elem::store_f64(yt, y, i as isize, q, saturate);
        }
    }
}

/// DequantizeLinear: `y = (x - zero_point) · scale`, rounded to f32 and then to y's dtype.
///
/// Arguments: `x | x dtype | y | y dtype | scale | scale dtype | zp (0: none) | zp dtype |
/// n | granularity (mode, len, blocks, block, inner)`.
///
/// # Safety
/// As `quantize_linear`.
unsafe extern "C" fn dequantize_linear(_ctx: *const RunContext, args: *const u64) {
    // SAFETY: 14 slots (caller).
    let s = unsafe { std::slice::from_raw_parts(args, 14) };
    let (x, xt) = (s[0] as *const u8, from_code(s[1]));
    let (y, yt) = (s[2] as *mut u8, from_code(s[3]));
    let (sc, st) = (s[4] as *const u8, from_code(s[5]));
    let (zp, zt) = (s[6] as *const u8, from_code(s[7]));
    let n = s[8] as usize;
    let g = Granularity::read(&s[9..14]);
    for i in 0..n {
        let k = g.index(i) as isize;
        // SAFETY: as quantize_linear.
        unsafe {
            let v = elem::load_f64(xt, x, i as isize);
            let z = if zp.is_null() {
                0.0
            } else {
                elem::load_f64(zt, zp, k)
            };
            let r = round_to(ElemType::F32, (v - z) * elem::load_f64(st, sc, k));
            elem::store_f64(yt, y, i as isize, r, true);
        }
    }
}

/// DynamicQuantizeLinear on f32: the u8 scale and zero point covering `[min(x, 0),
/// max(x, 0)]`, and x quantized with them, all in f32 as the spec's reference.
///
/// Arguments: `x | n | y (u8) | scale (f32 scalar, 0: not wanted) | zero point (u8 scalar,
/// 0: not wanted)`.
///
/// # Safety
/// `ctx`/`args` per the `Call` convention; x and y hold n elements.
unsafe extern "C" fn dynamic_quantize_linear(_ctx: *const RunContext, args: *const u64) {
    // SAFETY: 5 slots (caller).
    let s = unsafe { std::slice::from_raw_parts(args, 5) };
    let n = s[1] as usize;
    // SAFETY: x holds n f32 (caller).
    let x = unsafe { std::slice::from_raw_parts(s[0] as *const f32, n) };
    let max = x.iter().fold(0.0f32, |a, &b| a.max(b));
    let min = x.iter().fold(0.0f32, |a, &b| a.min(b));
    let scale = if max == min { 1.0f32 } else { max - min } / 255.0f32;
    let zp = (0.0f32 - min / scale).clamp(0.0, 255.0).round_ties_even();
    let y = s[2] as *mut u8;
    for (i, &v) in x.iter().enumerate() {
        let q = ((v / scale).round_ties_even() + zp).clamp(0.0, 255.0);
        // SAFETY: y holds n bytes (caller).
        unsafe { *y.add(i) = q as u8 };
    }
    // SAFETY: the scalar outputs, when given, are writable (caller).
    unsafe {
        if s[3] != 0 {
            (s[3] as *mut f32).write_unaligned(scale);
        }
        if s[4] != 0 {
            *(s[4] as *mut u8) = zp as u8;
        }
    }
}

pub(super) const HELPERS: &[Helper] = &[
    Helper {
        name: "qlinear_requantize",
        func: HelperFn::Call(qlinear_requantize),
    },
    Helper {
        name: "quantize_linear",
        func: HelperFn::Call(quantize_linear),
    },
    Helper {
        name: "dequantize_linear",
        func: HelperFn::Call(dequantize_linear),
    },
    Helper {
        name: "dynamic_quantize_linear",
        func: HelperFn::Call(dynamic_quantize_linear),
    },
];
