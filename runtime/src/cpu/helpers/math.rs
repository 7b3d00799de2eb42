//! Scalar math the generated code does not inline: computed in f64 with Rust's libm.

use super::{Helper, HelperFn};

extern "C" fn sin(x: f64) -> f64 {
    x.sin()
}
extern "C" fn cos(x: f64) -> f64 {
    x.cos()
}
extern "C" fn tan(x: f64) -> f64 {
    x.tan()
}
extern "C" fn asin(x: f64) -> f64 {
    x.asin()
}
extern "C" fn acos(x: f64) -> f64 {
    x.acos()
}
extern "C" fn atan(x: f64) -> f64 {
    x.atan()
}
extern "C" fn sinh(x: f64) -> f64 {
    x.sinh()
}
extern "C" fn cosh(x: f64) -> f64 {
    x.cosh()
}
extern "C" fn asinh(x: f64) -> f64 {
    x.asinh()
}
extern "C" fn acosh(x: f64) -> f64 {
    x.acosh()
}
extern "C" fn atanh(x: f64) -> f64 {
    x.atanh()
}
extern "C" fn exp(x: f64) -> f64 {
    x.exp()
}
extern "C" fn log(x: f64) -> f64 {
    x.ln()
}
extern "C" fn tanh(x: f64) -> f64 {
    x.tanh()
}
extern "C" fn expm1(x: f64) -> f64 {
    x.exp_m1()
}
extern "C" fn log1p(x: f64) -> f64 {
    x.ln_1p()
}

/// The error function to about 1e-16: `2/sqrt(pi) exp(-x^2) sum 2^n x^(2n+1) / (1*3*..*(2n+1))`
/// (positive terms) below 2.5, the continued fraction of erfc above, ±1 from 6 on.
extern "C" fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    let r = if a < 2.5 {
        let x2 = 2.0 * a * a;
        let (mut term, mut sum, mut k) = (a, a, 1.0);
        while term > sum * 1e-17 {
            term *= x2 / (2.0 * k + 1.0);
            sum += term;
            k += 1.0;
        }
        std::f64::consts::FRAC_2_SQRT_PI * (-a * a).exp() * sum
    } else if a < 6.0 {
        // erfc(a) = exp(-a^2) / sqrt(pi) / (a + (1/2) / (a + 1 / (a + (3/2) / (a + ...))))
        let mut t = a;
        for k in (1..=60).rev() {
            t = a + f64::from(k) / 2.0 / t;
        }
        1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / t
    } else {
        1.0
    };
    r.copysign(x)
}

/// 1 - erf(x): the continued fraction from 2.5 on, where the difference would cancel.
extern "C" fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x < 2.5 {
        return 1.0 - erf(x);
    }
    if x > 27.3 {
        return 0.0;
    }
    let mut t = x;
    for k in (1..=60).rev() {
        t = x + f64::from(k) / 2.0 / t;
    }
    (-x * x).exp() / std::f64::consts::PI.sqrt() / t
}

/// The remainder with the sign of the divisor (ONNX `Mod` with `fmod = 0` on floats): ±0
/// takes the divisor's sign; an infinite divisor leaves a finite x of its sign alone.
extern "C" fn float_mod(x: f64, y: f64) -> f64 {
    if y.is_infinite() && x.is_finite() {
        if x == 0.0 {
            return 0f64.copysign(y);
        }
        return if (x < 0.0) == (y < 0.0) { x } else { y };
    }
    let r = x % y;
    if r == 0.0 {
        0f64.copysign(y)
    } else if (r < 0.0) != (y < 0.0) {
        r + y
    } else {
        r
    }
}

/// `x` truncated toward zero to an i128 (NaN to 0, saturating), keeping the low 64 bits;
/// returned as the bits of an f64.
extern "C" fn f64_to_i128_low64(x: f64) -> f64 {
    f64::from_bits(x as i128 as u64)
}

/// Integer power by squaring, wrapping; arguments and result are i64 bits carried in f64s.
/// A negative exponent gives the truncated reciprocal: 1 or -1 for bases 1 and -1, else 0.
extern "C" fn int_pow(base: f64, exp: f64) -> f64 {
    let (base, exp) = (base.to_bits() as i64, exp.to_bits() as i64);
    let r = if exp < 0 {
        match base {
            1 => 1,
            -1 if exp % 2 == 0 => 1,
            -1 => -1,
            _ => 0,
        }
    } else {
        let (mut acc, mut b, mut e) = (1i64, base, exp);
        while e > 0 {
            if e & 1 == 1 {
                acc = acc.wrapping_mul(b);
            }
            b = b.wrapping_mul(b);
            e >>= 1;
        }
        acc
    };
    f64::from_bits(r as u64)
}

/// The four ONNX fp8 formats, by the index kiln's code passes: E4M3FN, E4M3FNUZ, E5M2,
/// E5M2FNUZ.
#[derive(Clone, Copy)]
struct Fp8 {
    exp_bits: u32,
    man_bits: u32,
    bias: i32,
    /// No negative zero; 0x80 is the one NaN.
    fnuz: bool,
    /// All-ones exponent for infinities and NaNs (E5M2).
    ieee: bool,
    /// The largest finite code.
    max: u8,
}

const FP8: [Fp8; 4] = [
    Fp8 {
        exp_bits: 4,
        man_bits: 3,
        bias: 7,
        fnuz: false,
        ieee: false,
        max: 0x7E,
    },
    Fp8 {
        exp_bits: 4,
        man_bits: 3,
        bias: 8,
        fnuz: true,
        ieee: false,
        max: 0x7F,
    },
    Fp8 {
        exp_bits: 5,
        man_bits: 2,
        bias: 15,
        fnuz: false,
        ieee: true,
        max: 0x7B,
    },
    Fp8 {
        exp_bits: 5,
        man_bits: 2,
        bias: 16,
        fnuz: true,
        ieee: false,
        max: 0x7F,
    },
];

fn fp8_value(f: Fp8, code: u8) -> f64 {
    if f.fnuz && code == 0x80 {
        return f64::NAN;
    }
    let sign = if code & 0x80 != 0 { -1.0 } else { 1.0 };
    let e = (u32::from(code) >> f.man_bits) & ((1 << f.exp_bits) - 1);
    let m = u32::from(code) & ((1 << f.man_bits) - 1);
    let e_max = (1 << f.exp_bits) - 1;
    if f.ieee && e == e_max {
        return if m == 0 {
            sign * f64::INFINITY
        } else {
            f64::NAN
        };
    }
    if !f.fnuz && !f.ieee && e == e_max && m == (1 << f.man_bits) - 1 {
        return f64::NAN;
    }
    let v = if e == 0 {
        f64::from(m) * 2f64.powi(1 - f.bias - f.man_bits as i32)
    } else {
        (1.0 + f64::from(m) / f64::from(1u32 << f.man_bits)) * 2f64.powi(e as i32 - f.bias)
    };
    sign * v
}

/// `code` (an fp8 code of format `fmt`) as its value.
extern "C" fn fp8_decode(code: f64, fmt: f64) -> f64 {
    fp8_value(FP8[(fmt as usize) & 3], code as u8)
}

/// `x` (an f32 value) as the nearest code (ties to even) of format `cfg & 3`, saturating
/// beyond the largest finite value when `cfg & 4`, else overflowing to infinity (E5M2) or NaN.
extern "C" fn fp8_encode(x: f64, cfg: f64) -> f64 {
    let cfg = cfg as usize;
    let f = FP8[cfg & 3];
    let saturate = cfg & 4 != 0;
    let nan = if f.fnuz { 0x80u8 } else { 0x7F };
    if x.is_nan() {
        return f64::from(nan);
    }
    let sign = if x.is_sign_negative() { 0x80u8 } else { 0 };
    let overflow = || {
        f64::from(if saturate {
            sign | f.max
        } else if f.ieee {
            sign | 0x7C
        } else {
            nan
        })
    };
    let a = x.abs();
    if a.is_infinite() {
        return overflow();
    }
    let e_min = 1 - f.bias;
    let m = f.man_bits as i32;
    // The quantum of a's binade (subnormals share the lowest one), then round to even.
    let e = if a == 0.0 {
        e_min
    } else {
        (a.log2().floor() as i32).max(e_min)
    };
    // log2 may be off by one at binade edges: fix e so that 2^e <= a < 2^(e+1).
    let e = if e > e_min && a < 2f64.powi(e) {
        e - 1
    } else if a >= 2f64.powi(e + 1) {
        e + 1
    } else {
        e
    };
    let q = 2f64.powi(e - m);
    let r = (a / q).round_ties_even() * q;
    if r > fp8_value(f, f.max) {
        return overflow();
    }
    if r == 0.0 {
        return f64::from(if f.fnuz { 0 } else { sign });
    }
    let code = if r < 2f64.powi(e_min) {
        (r / 2f64.powi(e_min - m)) as u32
    } else {
        let e = r.log2().floor() as i32;
        let e = if r < 2f64.powi(e) { e - 1 } else { e };
        let mant = (r / 2f64.powi(e - m)) as u32 - (1 << f.man_bits);
        (((e + f.bias) as u32) << f.man_bits) | mant
    };
    f64::from(sign | code as u8)
}

extern "C" fn pow(x: f64, y: f64) -> f64 {
    x.powf(y)
}
extern "C" fn fmod(x: f64, y: f64) -> f64 {
    x % y
}

pub(super) const HELPERS: &[Helper] = &[
    Helper {
        name: "sin",
        func: HelperFn::F64ToF64(sin),
    },
    Helper {
        name: "cos",
        func: HelperFn::F64ToF64(cos),
    },
    Helper {
        name: "tan",
        func: HelperFn::F64ToF64(tan),
    },
    Helper {
        name: "asin",
        func: HelperFn::F64ToF64(asin),
    },
    Helper {
        name: "acos",
        func: HelperFn::F64ToF64(acos),
    },
    Helper {
        name: "atan",
        func: HelperFn::F64ToF64(atan),
    },
    Helper {
        name: "sinh",
        func: HelperFn::F64ToF64(sinh),
    },
    Helper {
        name: "cosh",
        func: HelperFn::F64ToF64(cosh),
    },
    Helper {
        name: "asinh",
        func: HelperFn::F64ToF64(asinh),
    },
    Helper {
        name: "acosh",
        func: HelperFn::F64ToF64(acosh),
    },
    Helper {
        name: "atanh",
        func: HelperFn::F64ToF64(atanh),
    },
    Helper {
        name: "exp",
        func: HelperFn::F64ToF64(exp),
    },
    Helper {
        name: "log",
        func: HelperFn::F64ToF64(log),
    },
    Helper {
        name: "tanh",
        func: HelperFn::F64ToF64(tanh),
    },
    Helper {
        name: "pow",
        func: HelperFn::F64F64ToF64(pow),
    },
    Helper {
        name: "fmod",
        func: HelperFn::F64F64ToF64(fmod),
    },
    Helper {
        name: "expm1",
        func: HelperFn::F64ToF64(expm1),
    },
    Helper {
        name: "log1p",
        func: HelperFn::F64ToF64(log1p),
    },
    Helper {
        name: "erf",
        func: HelperFn::F64ToF64(erf),
    },
    Helper {
        name: "erfc",
        func: HelperFn::F64ToF64(erfc),
    },
    Helper {
        name: "float_mod",
        func: HelperFn::F64F64ToF64(float_mod),
    },
    Helper {
        name: "f64_to_i128_low64",
        func: HelperFn::F64ToF64(f64_to_i128_low64),
    },
    Helper {
        name: "int_pow",
        func: HelperFn::F64F64ToF64(int_pow),
    },
    Helper {
        name: "fp8_decode",
        func: HelperFn::F64F64ToF64(fp8_decode),
    },
    Helper {
        name: "fp8_encode",
        func: HelperFn::F64F64ToF64(fp8_encode),
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_tables() {
        let cases = [
            (0.0, 0.0),
            (0.1, 0.1124629160182849),
            (0.5, 0.5204998778130465),
            (1.0, 0.8427007929497149),
            (2.0, 0.9953222650189527),
            (2.6, 0.9997639655834707),
            (3.0, 0.9999779095030014),
            (4.5, 0.9999999998033839),
            (-1.5, -0.9661051464753108),
        ];
        for (x, want) in cases {
            assert!((erf(x) - want).abs() < 5e-16, "erf({x}) = {}", erf(x));
        }
        assert_eq!(erf(7.0), 1.0);
        let tail = erfc(4.0);
        assert!(
            (tail - 1.541725790028002e-8).abs() < 1e-22,
            "erfc(4) = {tail}"
        );
        assert!((erfc(-1.0) - 1.8427007929497148).abs() < 1e-15);
        assert_eq!(erf(f64::NEG_INFINITY), -1.0);
        assert!(erf(f64::NAN).is_nan());
    }

    /// The encoding by search: the nearest code (ties to the even code), with one virtual
    /// step past the largest finite value standing for overflow.
    fn encode_by_search(fmt: usize, x: f32, saturate: bool) -> u8 {
        let f = FP8[fmt];
        let nan = if f.fnuz { 0x80u8 } else { 0x7F };
        if x.is_nan() {
            return nan;
        }
        let sign = if x.is_sign_negative() { 0x80u8 } else { 0 };
        let over = if saturate {
            sign | f.max
        } else if f.ieee {
            sign | 0x7C
        } else {
            nan
        };
        let a = f64::from(x.abs());
        if a.is_infinite() {
            return over;
        }
        let max_v = fp8_value(f, f.max);
        let step = max_v - fp8_value(f, f.max - 1);
        let (mut best, mut best_d) = (0u8, f64::INFINITY);
        for code in 0..=f.max {
            let d = (fp8_value(f, code) - a).abs();
            if d < best_d || (d == best_d && code & 1 == 0) {
                best = code;
                best_d = d;
            }
        }
        let d_over = (max_v + step - a).abs();
        if d_over < best_d || (d_over == best_d && best == f.max && f.max & 1 == 1) {
            return over;
        }
        if best == 0 && f.fnuz {
            return 0;
        }
        sign | best
    }

    #[test]
    fn fp8_round_trips_and_rounds_like_a_search() {
        for (fmt, f) in FP8.iter().enumerate() {
            for code in 0..=255u8 {
                let v = fp8_decode(f64::from(code), fmt as f64);
                if v.is_finite() && !(v == 0.0 && f.fnuz) {
                    let back = fp8_encode(v, (fmt + 4) as f64) as u8;
                    assert_eq!(back, code, "format {fmt} code {code:#x} value {v}");
                }
            }
            let mut x = 0x1234_5678u64;
            let mut samples: Vec<f32> = (0..20000)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let mant = (x >> 40) as f32 / (1u64 << 24) as f32;
                    let exp = ((x >> 20) % 48) as i32 - 28;
                    let s = if x & 1 == 1 { -1.0 } else { 1.0 };
                    s * (1.0 + mant) * 2f32.powi(exp)
                })
                .collect();
            // Midpoints between neighbouring codes, and the specials.
            for code in 0..0x7Fu8 {
                let a = fp8_decode(f64::from(code), fmt as f64);
                let b = fp8_decode(f64::from(code + 1), fmt as f64);
                if a.is_finite() && b.is_finite() {
                    samples.push(((a + b) / 2.0) as f32);
                }
            }
            samples.extend([0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 1e-30]);
            samples.extend([464.0, 480.0, 61440.0, 65536.0, 248.0, 1e9, -1e9]);
            for &v in &samples {
                for sat in [false, true] {
                    let cfg = (fmt + if sat { 4 } else { 0 }) as f64;
                    let got = fp8_encode(f64::from(v), cfg) as u8;
                    assert_eq!(
                        got,
                        encode_by_search(fmt, v, sat),
                        "format {fmt} x {v} sat {sat}"
                    );
                }
            }
        }
    }

    #[test]
    fn integer_helpers() {
        let i = |v: i64| f64::from_bits(v as u64);
        let back = |f: f64| f.to_bits() as i64;
        assert_eq!(back(int_pow(i(3), i(4))), 81);
        assert_eq!(back(int_pow(i(-2), i(63))), i64::MIN);
        assert_eq!(back(int_pow(i(2), i(64))), 0);
        assert_eq!(back(int_pow(i(-1), i(-3))), -1);
        assert_eq!(back(int_pow(i(5), i(-1))), 0);
        assert_eq!(back(f64_to_i128_low64(-1.5)), -1);
        assert_eq!(
            f64_to_i128_low64(1.8e19).to_bits(),
            18_000_000_000_000_000_000
        );
        assert_eq!(back(f64_to_i128_low64(f64::NAN)), 0);
        assert_eq!(float_mod(-7.0, 2.0), 1.0);
        assert_eq!(float_mod(7.0, -2.0), -1.0);
        assert_eq!(float_mod(3.0, f64::NEG_INFINITY), f64::NEG_INFINITY);
    }
}
