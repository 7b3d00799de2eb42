//! Elements of any dtype, read as f64 or i64 and written back, for the helpers whose speed
//! does not matter much (generic contractions, convolution, pooling, quantization). The
//! conversions follow kiln's reference interpreter: floats round to nearest, integers from
//! floats truncate toward zero (NaN gives 0) and wrap into narrower types, fp8 saturates
//! unless told not to.
//!
//! A dtype travels in an argument slot as its index in [`ElemType::ALL`] ([`code`]).

use half::{bf16, f16};

use crate::model::tensor::ElemType;

/// The argument-slot code of a dtype.
pub fn code(t: ElemType) -> u64 {
    ElemType::ALL.iter().position(|&e| e == t).unwrap_or(0) as u64
}

/// The dtype of an argument-slot code (codes come from the compiler; an unknown one reads as
/// f32 rather than failing inside compiled code).
pub fn from_code(c: u64) -> ElemType {
    ElemType::ALL
        .get(c as usize)
        .copied()
        .unwrap_or(ElemType::F32)
}

/// Whether values of `t` are floats (accumulated in f64) rather than integers.
pub fn is_float(t: ElemType) -> bool {
    matches!(
        t,
        ElemType::F32
            | ElemType::F64
            | ElemType::F16
            | ElemType::BF16
            | ElemType::F8E4M3FN
            | ElemType::F8E4M3FNUZ
            | ElemType::F8E5M2
            | ElemType::F8E5M2FNUZ
    )
}

/// Element `i` of the array of `t` at `p`, as f64.
///
/// # Safety
/// `p` points at an array of `t` with an element `i`.
pub unsafe fn load_f64(t: ElemType, p: *const u8, i: isize) -> f64 {
    // SAFETY: element i of an array of t is readable (caller); unaligned reads are used
    // since buffers are only guaranteed aligned to their dtype by the planner.
    unsafe {
        match t {
            ElemType::F32 => p.cast::<f32>().offset(i).read_unaligned() as f64,
            ElemType::F64 => p.cast::<f64>().offset(i).read_unaligned(),
            ElemType::F16 => f16::from_bits(p.cast::<u16>().offset(i).read_unaligned()).to_f64(),
            ElemType::BF16 => bf16::from_bits(p.cast::<u16>().offset(i).read_unaligned()).to_f64(),
            ElemType::F8E4M3FN | ElemType::F8E4M3FNUZ | ElemType::F8E5M2 | ElemType::F8E5M2FNUZ => {
                fp8_decode(t, *p.offset(i)) as f64
            }
            ElemType::I8 => *p.cast::<i8>().offset(i) as f64,
            ElemType::I16 => p.cast::<i16>().offset(i).read_unaligned() as f64,
            ElemType::I32 => p.cast::<i32>().offset(i).read_unaligned() as f64,
            ElemType::I64 => p.cast::<i64>().offset(i).read_unaligned() as f64,
            ElemType::U8 => *p.offset(i) as f64,
            ElemType::U16 => p.cast::<u16>().offset(i).read_unaligned() as f64,
            ElemType::U32 => p.cast::<u32>().offset(i).read_unaligned() as f64,
            ElemType::U64 => p.cast::<u64>().offset(i).read_unaligned() as f64,
            ElemType::Bool => (*p.offset(i) != 0) as u8 as f64,
        }
    }
}

/// Element `i` of the array of `t` at `p`, as i64 (floats truncate toward zero).
///
/// # Safety
/// As [`load_f64`].
pub unsafe fn load_i64(t: ElemType, p: *const u8, i: isize) -> i64 {
    // SAFETY: as load_f64.
    unsafe {
        match t {
            ElemType::I8 => *p.cast::<i8>().offset(i) as i64,
            ElemType::I16 => p.cast::<i16>().offset(i).read_unaligned() as i64,
            ElemType::I32 => p.cast::<i32>().offset(i).read_unaligned() as i64,
            ElemType::I64 => p.cast::<i64>().offset(i).read_unaligned(),
            ElemType::U8 => *p.offset(i) as i64,
            ElemType::U16 => p.cast::<u16>().offset(i).read_unaligned() as i64,
            ElemType::U32 => p.cast::<u32>().offset(i).read_unaligned() as i64,
            ElemType::U64 => p.cast::<u64>().offset(i).read_unaligned() as i64,
            ElemType::Bool => (*p.offset(i) != 0) as i64,
            _ => {
                let v = load_f64(t, p, i);
                if v.is_nan() {
                    0
                } else {
                    v as i64
                }
            }
        }
    }
}

/// Writes `v` as element `i` of the array of `t` at `p`: floats round to nearest (fp8
/// saturating to the largest finite value when `saturate`), integers truncate toward zero
/// (NaN gives 0) and wrap, bool is `v != 0`.
///
/// # Safety
/// `p` points at a writable array of `t` with an element `i`.
pub unsafe fn store_f64(t: ElemType, p: *mut u8, i: isize, v: f64, saturate: bool) {
    // SAFETY: element i is writable (caller).
    unsafe {
        match t {
            ElemType::F32 => p.cast::<f32>().offset(i).write_unaligned(v as f32),
            ElemType::F64 => p.cast::<f64>().offset(i).write_unaligned(v),
            ElemType::F16 => p
                .cast::<u16>()
                .offset(i)
                .write_unaligned(f16::from_f64(v).to_bits()),
            ElemType::BF16 => p
                .cast::<u16>()
                .offset(i)
                .write_unaligned(bf16::from_f64(v).to_bits()),
            ElemType::F8E4M3FN | ElemType::F8E4M3FNUZ | ElemType::F8E5M2 | ElemType::F8E5M2FNUZ => {
                *p.offset(i) = fp8_encode(t, v as f32, saturate)
            }
            ElemType::Bool => *p.offset(i) = (v != 0.0) as u8,
            ElemType::U64 => p.cast::<u64>().offset(i).write_unaligned(if v.is_nan() {
                0
            } else {
                v as i128 as u64
            }),
            _ => store_i64(t, p, i, if v.is_nan() { 0 } else { v as i64 }),
        }
    }
}

/// Writes `v` as element `i` of the array of `t` at `p`: integers wrap, floats convert.
///
/// # Safety
/// As [`store_f64`].
pub unsafe fn store_i64(t: ElemType, p: *mut u8, i: isize, v: i64) {
    // SAFETY: element i is writable (caller).
    unsafe {
        match t {
            ElemType::I8 => *p.cast::<i8>().offset(i) = v as i8,
            ElemType::I16 => p.cast::<i16>().offset(i).write_unaligned(v as i16),
            ElemType::I32 => p.cast::<i32>().offset(i).write_unaligned(v as i32),
            ElemType::I64 => p.cast::<i64>().offset(i).write_unaligned(v),
            ElemType::U8 => *p.offset(i) = v as u8,
            ElemType::U16 => p.cast::<u16>().offset(i).write_unaligned(v as u16),
            ElemType::U32 => p.cast::<u32>().offset(i).write_unaligned(v as u32),
            ElemType::U64 => p.cast::<u64>().offset(i).write_unaligned(v as u64),
            ElemType::Bool => *p.offset(i) = (v != 0) as u8,
            _ => store_f64(t, p, i, v as f64, true),
        }
    }
}

/// `x` rounded to the precision of float dtype `t` (unchanged for f64 and integers).
pub fn round_to(t: ElemType, x: f64) -> f64 {
    match t {
        ElemType::F32 => x as f32 as f64,
        ElemType::F16 => f16::from_f64(x).to_f64(),
        ElemType::BF16 => bf16::from_f64(x).to_f64(),
        ElemType::F8E4M3FN | ElemType::F8E4M3FNUZ | ElemType::F8E5M2 | ElemType::F8E5M2FNUZ => {
            fp8_decode(t, fp8_encode(t, x as f32, true)) as f64
        }
        _ => x,
    }
}

/// The value range of an integer dtype, as f64 (infinite for floats).
pub fn int_range(t: ElemType) -> (f64, f64) {
    match t {
        ElemType::I8 => (i8::MIN as f64, i8::MAX as f64),
        ElemType::I16 => (i16::MIN as f64, i16::MAX as f64),
        ElemType::I32 => (i32::MIN as f64, i32::MAX as f64),
        ElemType::I64 => (i64::MIN as f64, i64::MAX as f64),
        ElemType::U8 => (0.0, u8::MAX as f64),
        ElemType::U16 => (0.0, u16::MAX as f64),
        ElemType::U32 => (0.0, u32::MAX as f64),
        ElemType::U64 => (0.0, u64::MAX as f64),
        ElemType::Bool => (0.0, 1.0),
        _ => (f64::NEG_INFINITY, f64::INFINITY),
    }
}

/// An fp8 format: exponent and mantissa widths, bias, whether it is a "fnuz" format (no
/// negative zero, 0x80 the one NaN) and whether the top exponent holds IEEE infinities/NaNs.
struct Fp8Format {
    exp_bits: u32,
    man_bits: u32,
    bias: i32,
    fnuz: bool,
    ieee: bool,
}

fn fp8_format(t: ElemType) -> Fp8Format {
    match t {
        ElemType::F8E4M3FN => Fp8Format {
            exp_bits: 4,
            man_bits: 3,
            bias: 7,
            fnuz: false,
            ieee: false,
        },
        ElemType::F8E4M3FNUZ => Fp8Format {
            exp_bits: 4,
            man_bits: 3,
            bias: 8,
            fnuz: true,
            ieee: false,
        },
        ElemType::F8E5M2 => Fp8Format {
            exp_bits: 5,
            man_bits: 2,
            bias: 15,
            fnuz: false,
            ieee: true,
        },
        _ => Fp8Format {
            exp_bits: 5,
            man_bits: 2,
            bias: 16,
            fnuz: true,
            ieee: false,
        },
    }
}

/// The value of fp8 code `c` of dtype `t`.
pub fn fp8_decode(t: ElemType, c: u8) -> f32 {
    let f = fp8_format(t);
    if f.fnuz && c == 0x80 {
        return f32::NAN;
    }
    let sign = if c & 0x80 != 0 { -1.0f32 } else { 1.0 };
    let e = ((c >> f.man_bits) as u32) & ((1 << f.exp_bits) - 1);
    let m = (c as u32) & ((1 << f.man_bits) - 1);
    let e_max = (1 << f.exp_bits) - 1;
    if f.ieee && e == e_max {
        return if m == 0 {
            sign * f32::INFINITY
        } else {
            f32::NAN
        };
    }
    if t == ElemType::F8E4M3FN && e == e_max && m == (1 << f.man_bits) - 1 {
        return f32::NAN;
    }
    let v = if e == 0 {
        m as f32 * 2f32.powi(1 - f.bias - f.man_bits as i32)
    } else {
        (1.0 + m as f32 / (1 << f.man_bits) as f32) * 2f32.powi(e as i32 - f.bias)
    };
    sign * v
}

/// The fp8 code of dtype `t` nearest to `x` (ties to even); past the largest finite value,
/// that value with `saturate`, else infinity where the format has one, else NaN.
pub fn fp8_encode(t: ElemType, x: f32, saturate: bool) -> u8 {
    let fnuz = matches!(t, ElemType::F8E4M3FNUZ | ElemType::F8E5M2FNUZ);
    let nan = if fnuz { 0x80 } else { 0x7F };
    if x.is_nan() {
        return nan;
    }
    let sign = if x.is_sign_negative() { 0x80u8 } else { 0 };
    let max = match t {
        ElemType::F8E4M3FN => 0x7Eu8,
        ElemType::F8E5M2 => 0x7B,
        _ => 0x7F,
    };
    let overflow = if saturate {
        sign | max
    } else if t == ElemType::F8E5M2 {
        sign | 0x7C
    } else {
        nan
    };
    let a = x.abs();
    if a.is_infinite() {
        return overflow;
    }
    let max_v = fp8_decode(t, max);
    let step = max_v - fp8_decode(t, max - 1);
    let (mut best, mut best_d) = (0u8, f32::INFINITY);
    for c in 0..=max {
        let d = (fp8_decode(t, c) - a).abs();
        if d < best_d || (d == best_d && c & 1 == 0) {
            best = c;
            best_d = d;
        }
    }
    let d_over = (max_v + step - a).abs();
    if d_over < best_d || (d_over == best_d && best == max && max & 1 == 1) {
        return overflow;
    }
    if best == 0 && fnuz {
        return 0;
    }
    sign | best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut buf = [0u8; 16];
        for t in ElemType::ALL {
            assert_eq!(from_code(code(t)), t);
            // SAFETY: buf holds 16 bytes, enough for element 1 of every dtype.
            unsafe {
                store_f64(t, buf.as_mut_ptr(), 1, 3.0, true);
                let want = if t == ElemType::Bool { 1.0 } else { 3.0 };
                assert_eq!(load_f64(t, buf.as_ptr(), 1), want, "{t:?}");
                store_i64(t, buf.as_mut_ptr(), 1, -1);
                let back = load_i64(t, buf.as_ptr(), 1);
                let want = match t {
                    ElemType::U8 => 255,
                    ElemType::U16 => 65535,
                    ElemType::U32 => u32::MAX as i64,
                    ElemType::Bool => 1,
                    _ => -1,
                };
                assert_eq!(back, want, "{t:?}");
            }
        }
        assert_eq!(fp8_encode(ElemType::F8E4M3FN, 1000.0, true), 0x7E);
        assert_eq!(fp8_encode(ElemType::F8E4M3FN, 1000.0, false), 0x7F);
        assert_eq!(fp8_decode(ElemType::F8E5M2, 0x7B), 57344.0);
    }
}
