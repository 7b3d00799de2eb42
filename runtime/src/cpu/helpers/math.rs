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
