//! Elements as the index helpers see them: a dtype code (the position of the element type
//! in [`ElemType::ALL`]) and little-endian bytes, read and written as f64 or i64 with the
//! conversions of kiln's reference interpreter.

use crate::model::ElemType;

/// The element type of dtype code `code`, if any.
pub fn elem(code: u64) -> Option<ElemType> {
    ElemType::ALL.get(usize::try_from(code).ok()?).copied()
}

/// Whether the helpers can compute on this type (every type but the fp8 ones).
pub fn computable(e: ElemType) -> bool {
    !matches!(
        e,
        ElemType::F8E4M3FN | ElemType::F8E4M3FNUZ | ElemType::F8E5M2 | ElemType::F8E5M2FNUZ
    )
}

pub fn is_float(e: ElemType) -> bool {
    matches!(
        e,
        ElemType::F32 | ElemType::F64 | ElemType::F16 | ElemType::BF16
    )
}

fn le<const N: usize>(b: &[u8], i: usize) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[i * N..i * N + N]);
    a
}

/// Element `i` of `b` (elements of type `e`) as f64. fp8 reads as 0 (never asked for: the
/// lowering rejects fp8 where it would matter).
pub fn read_f64(b: &[u8], e: ElemType, i: usize) -> f64 {
    match e {
        ElemType::F32 => f32::from_le_bytes(le(b, i)) as f64,
        ElemType::F64 => f64::from_le_bytes(le(b, i)),
        ElemType::F16 => f16_to_f64(u16::from_le_bytes(le(b, i))),
        ElemType::BF16 => f32::from_bits((u16::from_le_bytes(le(b, i)) as u32) << 16) as f64,
        ElemType::U64 => u64::from_le_bytes(le(b, i)) as f64,
        _ if !computable(e) => 0.0,
        _ => read_i64(b, e, i) as f64,
    }
}

/// Element `i` as i64: signed types sign-extend, unsigned ones zero-extend, u64 reinterprets,
/// floats truncate (saturating), bools are 0 or 1.
pub fn read_i64(b: &[u8], e: ElemType, i: usize) -> i64 {
    match e {
        ElemType::I8 => i8::from_le_bytes(le(b, i)) as i64,
        ElemType::I16 => i16::from_le_bytes(le(b, i)) as i64,
        ElemType::I32 => i32::from_le_bytes(le(b, i)) as i64,
        ElemType::I64 => i64::from_le_bytes(le(b, i)),
        ElemType::U8 | ElemType::Bool => b[i] as i64,
        ElemType::U16 => u16::from_le_bytes(le(b, i)) as i64,
        ElemType::U32 => u32::from_le_bytes(le(b, i)) as i64,
        ElemType::U64 => u64::from_le_bytes(le(b, i)) as i64,
        _ => {
            let x = read_f64(b, e, i);
            if x.is_nan() {
                0
            } else {
                x as i64
            }
        }
    }
}

/// Writes `x` as element `i`: floats round to nearest even, integers convert like the
/// interpreter's `Tensor::from_f64` (NaN is 0, out-of-range values saturate to i64 and
/// then wrap to the type; u64 goes through i128), bools are `x != 0`.
pub fn write_f64(b: &mut [u8], e: ElemType, i: usize, x: f64) {
    match e {
        ElemType::F32 => b[i * 4..i * 4 + 4].copy_from_slice(&(x as f32).to_le_bytes()),
        ElemType::F64 => b[i * 8..i * 8 + 8].copy_from_slice(&x.to_le_bytes()),
        ElemType::F16 => b[i * 2..i * 2 + 2].copy_from_slice(&f64_to_f16(x).to_le_bytes()),
        ElemType::BF16 => b[i * 2..i * 2 + 2].copy_from_slice(&f64_to_bf16(x).to_le_bytes()),
        ElemType::Bool => b[i] = u8::from(x != 0.0),
        ElemType::U64 => b[i * 8..i * 8 + 8].copy_from_slice(&(x as i128 as u64).to_le_bytes()),
        _ if !computable(e) => {}
        _ => write_i64(b, e, i, if x.is_nan() { 0 } else { x as i64 }),
    }
}

/// Writes `x` as element `i`: integers wrap, floats convert, bools are `x != 0`.
pub fn write_i64(b: &mut [u8], e: ElemType, i: usize, x: i64) {
    match e {
        ElemType::I8 | ElemType::U8 => b[i] = x as u8,
        ElemType::Bool => b[i] = u8::from(x != 0),
        ElemType::I16 | ElemType::U16 => {
            b[i * 2..i * 2 + 2].copy_from_slice(&(x as u16).to_le_bytes())
        }
        ElemType::I32 | ElemType::U32 => {
            b[i * 4..i * 4 + 4].copy_from_slice(&(x as u32).to_le_bytes())
        }
        ElemType::I64 | ElemType::U64 => b[i * 8..i * 8 + 8].copy_from_slice(&x.to_le_bytes()),
        _ => write_f64(b, e, i, x as f64),
    }
}

/// `x` rounded to the precision of float type `e` (itself for other types).
pub fn round_to(e: ElemType, x: f64) -> f64 {
    match e {
        ElemType::F32 => x as f32 as f64,
        ElemType::F16 => f16_to_f64(f64_to_f16(x)),
        ElemType::BF16 => f32::from_bits((f64_to_bf16(x) as u32) << 16) as f64,
        _ => x,
    }
}

/// The largest finite value of float type `e` (infinity for f64 and non-floats).
pub fn float_max(e: ElemType) -> f64 {
    match e {
        ElemType::F32 => f32::MAX as f64,
        ElemType::F16 => 65504.0,
        ElemType::BF16 => f32::from_bits(0x7f7f_0000) as f64,
        _ => f64::INFINITY,
    }
}

/// The range of integer type `e` as f64.
pub fn int_range(e: ElemType) -> (f64, f64) {
    match e {
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

/// Writes an interpolated value the way resampling ops store results: integers round half to
/// even and clamp to their range, floats clamp to their finite range.
pub fn write_saturated(b: &mut [u8], e: ElemType, i: usize, x: f64) {
    if e == ElemType::Bool {
        return write_f64(b, e, i, x);
    }
    if is_float(e) {
        let m = float_max(e);
        return write_f64(b, e, i, x.clamp(-m, m));
    }
    let (lo, hi) = int_range(e);
    write_f64(b, e, i, x.round_ties_even().clamp(lo, hi));
}

pub fn f16_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let man = (h & 0x3ff) as f64;
    match exp {
        0 => sign * man * 2f64.powi(-24),
        31 if man == 0.0 => sign * f64::INFINITY,
        31 => f64::NAN.copysign(sign),
        _ => sign * (1.0 + man / 1024.0) * 2f64.powi(exp - 15),
    }
}

/// `x` rounded to nearest even in a binary format with `mbits` mantissa bits and exponent
/// bias `bias` (exponent field `2 * bias + 1` is inf/NaN); returns the bits without sign.
fn round_small(x: f64, mbits: u32, bias: i64) -> u64 {
    let b = x.to_bits() & !(1u64 << 63);
    let exp = (b >> 52) as i64;
    let man = b & ((1u64 << 52) - 1);
    let inf = ((2 * bias + 1) as u64) << mbits;
    if exp == 0x7ff {
        return if man != 0 {
            inf | (1 << (mbits - 1))
        } else {
            inf
        };
    }
    if exp == 0 {
        return 0; // f64 subnormals are far below the smallest value of these formats
    }
    let e = exp - 1023;
    let sig = (1u64 << 52) | man;
    // Mantissa bits of the result: normal numbers keep `mbits` below the leading one,
    // subnormals (e < 1 - bias) keep fewer.
    let shift = 52 - mbits as i64 + (1 - bias - e).max(0);
    if shift >= 64 {
        return 0;
    }
    let shift = shift as u32;
    let mut m = sig >> shift;
    let rem = sig & ((1u64 << shift) - 1);
    let half = 1u64 << (shift - 1);
    if rem > half || (rem == half && m & 1 == 1) {
        m += 1;
    }
    let r = if e >= 1 - bias {
        // Normal: the leading one of `m` lands on the exponent's lowest bit.
        (((e + bias - 1) as u64) << mbits) + m
    } else {
        m
    };
    r.min(inf)
}

pub fn f64_to_f16(x: f64) -> u16 {
    let sign = if x.is_sign_negative() { 0x8000 } else { 0 };
    sign | round_small(x, 10, 15) as u16
}

pub fn f64_to_bf16(x: f64) -> u16 {
    let sign = if x.is_sign_negative() { 0x8000 } else { 0 };
    sign | round_small(x, 7, 127) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_conversions_round_to_nearest_even() {
        assert_eq!(f64_to_f16(1.0), 0x3c00);
        assert_eq!(f64_to_f16(-2.0), 0xc000);
        assert_eq!(f64_to_f16(65504.0), 0x7bff);
        assert_eq!(f64_to_f16(65519.0), 0x7bff);
        assert_eq!(f64_to_f16(65520.0), 0x7c00);
        assert_eq!(f64_to_f16(2f64.powi(-24)), 0x0001);
        assert_eq!(f64_to_f16(2f64.powi(-25)), 0x0000);
        assert_eq!(f64_to_f16(1.5 * 2f64.powi(-25)), 0x0001);
        assert_eq!(f64_to_f16(2f64.powi(-14)), 0x0400);
        assert_eq!(f64_to_f16(1.0 + 2f64.powi(-11)), 0x3c00); // tie to even
        assert_eq!(f64_to_f16(1.0 + 3.0 * 2f64.powi(-11)), 0x3c02);
        assert!(f16_to_f64(f64_to_f16(f64::NAN)).is_nan());
        assert_eq!(f64_to_f16(f64::NEG_INFINITY), 0xfc00);
        for h in [0x0001u16, 0x03ff, 0x0400, 0x3555, 0x7bff, 0x8001, 0xbc00] {
            assert_eq!(f64_to_f16(f16_to_f64(h)), h);
        }
        assert_eq!(f64_to_bf16(1.0), 0x3f80);
        assert_eq!(f64_to_bf16(1.0 + 2f64.powi(-8)), 0x3f80);
        assert_eq!(f64_to_bf16(1.0 + 3.0 * 2f64.powi(-8)), 0x3f82);
        assert_eq!(f64_to_bf16(1e39), 0x7f80);
        assert_eq!(round_to(ElemType::BF16, 3.0), 3.0);
    }
}
