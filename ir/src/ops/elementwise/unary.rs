//! Scalar math of the unary ops that need more than one line.

/// The error function, to near f64 precision: `2/sqrt(pi) * exp(-x^2) * sum (2x^2)^n x /
/// (1*3*...*(2n+1))`, a series of positive terms (no cancellation); beyond |x| = 6, erf is
/// ±1 to within 2e-17.
pub fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x.abs() >= 6.0 {
        return x.signum();
    }
    let x2 = 2.0 * x * x;
    let mut term = x;
    let mut sum = x;
    let mut n = 0.0;
    loop {
        n += 1.0;
        term *= x2 / (2.0 * n + 1.0);
        sum += term;
        if term.abs() <= sum.abs() * 1e-17 {
            break;
        }
    }
    std::f64::consts::FRAC_2_SQRT_PI * (-x * x).exp() * sum
}

/// Sign: -1, 0 or 1; NaN stays NaN.
pub fn sign(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        x
    }
}

#[cfg(test)]
#[allow(clippy::cloned_ref_to_slice_refs)]
mod tests {
    use super::super::kernel::testing::*;
    use super::*;
    use crate::attr::Attr;
    use crate::dtype::DType;
    use crate::tensor::Data;

    #[test]
    fn erf_matches_known_values() {
        // Values from high-precision tables.
        let cases = [
            (0.0, 0.0),
            (0.1, 0.1124629160182849),
            (0.5, 0.5204998778130465),
            (1.0, 0.8427007929497149),
            (2.0, 0.9953222650189527),
            (3.0, 0.9999779095030014),
            (4.5, 0.9999999998033839),
            (-1.5, -0.9661051464753108),
        ];
        for (x, want) in cases {
            assert!((erf(x) - want).abs() < 1e-15, "erf({x}) = {}", erf(x));
        }
        assert_eq!(erf(7.0), 1.0);
        assert_eq!(erf(f64::NEG_INFINITY), -1.0);
        assert!(erf(f64::NAN).is_nan());
        // 1 + erf(x) for negative x keeps its relative accuracy well enough for Gelu.
        let tail = 1.0 + erf(-4.0);
        assert!((tail - 1.541725790028002e-8).abs() < 1e-15);
    }

    #[test]
    fn unary_math() {
        let none = attrs(&[]);
        let x = f32s(&[5], &[-2.5, -0.5, 0.5, 1.5, 2.5]);
        let r = run("Round", &none, &[x.clone()]).unwrap();
        assert_close(&r, &[-2., -0., 0., 2., 2.], 0.);
        assert_close(
            &run("Ceil", &none, &[x.clone()]).unwrap(),
            &[-2., -0., 1., 2., 3.],
            0.,
        );
        assert_close(
            &run("Floor", &none, &[x.clone()]).unwrap(),
            &[-3., -1., 0., 1., 2.],
            0.,
        );
        assert_close(
            &run("Abs", &none, &[x.clone()]).unwrap(),
            &[2.5, 0.5, 0.5, 1.5, 2.5],
            0.,
        );
        assert_close(
            &run("Neg", &none, &[x.clone()]).unwrap(),
            &[2.5, 0.5, -0.5, -1.5, -2.5],
            0.,
        );
        assert_close(
            &run("Reciprocal", &none, &[x.clone()]).unwrap(),
            &[-0.4, -2., 2., 2. / 3., 0.4],
            1e-7,
        );
        let s = f32s(&[4], &[-3., 0., 2., f32::NAN]);
        assert_close(
            &run("Sign", &none, &[s.clone()]).unwrap(),
            &[-1., 0., 1., f64::NAN],
            0.,
        );
        assert_close(
            &run("Sqrt", &none, &[f32s(&[2], &[4., -1.])]).unwrap(),
            &[2., f64::NAN],
            0.,
        );
        let r = run("Exp", &none, &[f32s(&[1], &[1.])]).unwrap();
        assert_eq!(r.as_f32(), Some(&[std::f32::consts::E][..]));
        let r = run("Log", &none, &[f32s(&[2], &[1., 0.])]).unwrap();
        assert_close(&r, &[0., f64::NEG_INFINITY], 0.);
        let r = run("Atanh", &none, &[f32s(&[1], &[0.5])]).unwrap();
        assert_close(&r, &[0.5493061443340549], 1e-7);
        let r = run("Acosh", &none, &[f32s(&[1], &[2.])]).unwrap();
        assert_close(&r, &[1.3169578969248166], 1e-7);
        // Integers: Abs and Neg wrap, Sign works, Sqrt is refused.
        let i = ints(DType::I8, &[3], &[-128, -5, 7]);
        let r = run("Abs", &none, &[i.clone()]).unwrap();
        assert_eq!(r.data(), &Data::I8(vec![-128, 5, 7]));
        let r = run("Neg", &none, &[i.clone()]).unwrap();
        assert_eq!(r.data(), &Data::I8(vec![-128, 5, -7]));
        let r = run("Sign", &none, &[i.clone()]).unwrap();
        assert_eq!(r.data(), &Data::I8(vec![-1, -1, 1]));
        assert!(run("Sqrt", &none, &[i]).is_err());
        // f16 results are rounded to f16.
        let h = Tensor::from_f64(DType::F16, vec![1], &[2.0]);
        let r = run("Sqrt", &none, &[h]).unwrap();
        assert_eq!(r.dtype(), DType::F16);
        assert_close(&r, &[half::f16::from_f64(2f64.sqrt()).to_f64()], 0.);
    }

    use crate::tensor::Tensor;

    #[test]
    fn isnan_isinf() {
        let none = attrs(&[]);
        let x = f32s(&[4], &[1., f32::NAN, f32::INFINITY, f32::NEG_INFINITY]);
        let r = run("IsNaN", &none, &[x.clone()]).unwrap();
        assert_eq!(r.data(), &Data::Bool(vec![false, true, false, false]));
        let r = run("IsInf", &none, &[x.clone()]).unwrap();
        assert_eq!(r.data(), &Data::Bool(vec![false, false, true, true]));
        let neg = attrs(&[("detect_positive", Attr::Int(0))]);
        let r = run("IsInf", &neg, &[x.clone()]).unwrap();
        assert_eq!(r.data(), &Data::Bool(vec![false, false, false, true]));
        let pos = attrs(&[("detect_negative", Attr::Int(0))]);
        let r = run("IsInf", &pos, &[x]).unwrap();
        assert_eq!(r.data(), &Data::Bool(vec![false, false, true, false]));
    }
}
