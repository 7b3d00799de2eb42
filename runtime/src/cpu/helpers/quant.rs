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
/// params `sa, sb, sy, zy`, each `ptr, dtype, strides[rank]`.
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
            let get = |k: usize| elem::load_f64(ps[k].dtype, ps[k].ptr, o[k]);
            let mult = round_to(ts, round_to(ts, get(0) * get(1)) / get(2));
            let d = *acc.add(i) * mult + get(3);
            elem::store_f64(yt, y, i as isize, d.round_ties_even().clamp(lo, hi), true);
        }
    });
}

pub(super) const HELPERS: &[Helper] = &[Helper {
    name: "qlinear_requantize",
    func: HelperFn::Call(qlinear_requantize),
}];
