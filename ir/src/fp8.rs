//! The four 8-bit float formats ONNX knows, decoded and encoded exactly.
//!
//! Encoding searches the 256 codes for the nearest value (ties to even mantissa): slow, and
//! obviously right, which is what the reference interpreter wants.

use crate::dtype::DType;

struct Format {
    exp_bits: u32,
    man_bits: u32,
    bias: i32,
    /// No negative zero, and 0x80 is the one NaN.
    fnuz: bool,
    /// All-ones exponent encodes infinities and NaNs (E5M2).
    ieee_specials: bool,
}

fn format(dtype: DType) -> Format {
    match dtype {
        DType::F8E4M3FN => Format {
            exp_bits: 4,
            man_bits: 3,
            bias: 7,
            fnuz: false,
            ieee_specials: false,
        },
        DType::F8E4M3FNUZ => Format {
            exp_bits: 4,
            man_bits: 3,
            bias: 8,
            fnuz: true,
            ieee_specials: false,
        },
        DType::F8E5M2 => Format {
            exp_bits: 5,
            man_bits: 2,
            bias: 15,
            fnuz: false,
            ieee_specials: true,
        },
        _ => Format {
            exp_bits: 5,
            man_bits: 2,
            bias: 16,
            fnuz: true,
            ieee_specials: false,
        },
    }
}

/// Decodes one fp8 code of `dtype` (one of the four fp8 dtypes).
pub fn decode(dtype: DType, code: u8) -> f32 {
    let f = format(dtype);
    if f.fnuz && code == 0x80 {
        return f32::NAN;
    }
    let sign = if code & 0x80 != 0 { -1.0f32 } else { 1.0 };
    let e = ((code >> f.man_bits) as u32) & ((1 << f.exp_bits) - 1);
    let m = (code as u32) & ((1 << f.man_bits) - 1);
    let e_max = (1 << f.exp_bits) - 1;
    if f.ieee_specials && e == e_max {
        return if m == 0 {
            sign * f32::INFINITY
        } else {
            f32::NAN
        };
    }
    if dtype == DType::F8E4M3FN && e == e_max && m == (1 << f.man_bits) - 1 {
        return f32::NAN;
    }
    let scale = |p: i32| 2f32.powi(p);
    let v = if e == 0 {
        m as f32 * scale(1 - f.bias - f.man_bits as i32)
    } else {
        (1.0 + m as f32 / (1 << f.man_bits) as f32) * scale(e as i32 - f.bias)
    };
    sign * v
}

fn nan_code(dtype: DType) -> u8 {
    match dtype {
        DType::F8E4M3FNUZ | DType::F8E5M2FNUZ => 0x80,
        _ => 0x7F,
    }
}

/// The largest finite positive code.
fn max_code(dtype: DType) -> u8 {
    match dtype {
        DType::F8E4M3FN => 0x7E,
        DType::F8E5M2 => 0x7B,
        _ => 0x7F,
    }
}

/// Encodes `x` as `dtype`, rounding to nearest even. With `saturate`, values beyond the
/// largest finite one (and infinities) clamp to it; without, they become infinity where the
/// format has one, else NaN.
pub fn encode(dtype: DType, x: f32, saturate: bool) -> u8 {
    if x.is_nan() {
        return nan_code(dtype);
    }
    let neg = x.is_sign_negative();
    let sign_bit = if neg { 0x80u8 } else { 0 };
    let a = x.abs();
    let max = max_code(dtype);
    let overflow = || -> u8 {
        if saturate {
            return sign_bit | max;
        }
        if dtype == DType::F8E5M2 {
            sign_bit | 0x7C
        } else {
            nan_code(dtype)
        }
    };
    if a.is_infinite() {
        return overflow();
    }
    // Nearest among the positive finite codes, plus one virtual step past the maximum that
    // stands for overflow.
    let max_v = decode(dtype, max);
    let step = max_v - decode(dtype, max - 1);
    let mut best = 0u8;
    let mut best_d = f32::INFINITY;
    for code in 0..=max {
        let d = (decode(dtype, code) - a).abs();
        if d < best_d || (d == best_d && code & 1 == 0) {
            best = code;
            best_d = d;
        }
    }
    let d_over = (max_v + step - a).abs();
    if d_over < best_d || (d_over == best_d && best == max && max & 1 == 1) {
        return overflow();
    }
    let fnuz = matches!(dtype, DType::F8E4M3FNUZ | DType::F8E5M2FNUZ);
    if best == 0 && fnuz {
        return 0;
    }
    sign_bit | best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(decode(DType::F8E4M3FN, 0x7E), 448.0);
        assert_eq!(decode(DType::F8E4M3FNUZ, 0x7F), 240.0);
        assert_eq!(decode(DType::F8E5M2, 0x7B), 57344.0);
        assert_eq!(decode(DType::F8E5M2, 0x7C), f32::INFINITY);
        assert!(decode(DType::F8E4M3FN, 0x7F).is_nan());
        assert_eq!(encode(DType::F8E4M3FN, 1000.0, true), 0x7E);
        assert_eq!(encode(DType::F8E4M3FN, 1000.0, false), 0x7F);
        assert_eq!(encode(DType::F8E5M2, 1e6, false), 0x7C);
        assert_eq!(encode(DType::F8E4M3FN, -1.0, true), 0xB8);
        assert_eq!(encode(DType::F8E4M3FNUZ, -0.0, true), 0);
        for code in 0..=0x7Eu8 {
            let v = decode(DType::F8E4M3FN, code);
            assert_eq!(encode(DType::F8E4M3FN, v, true), code);
        }
    }
}
