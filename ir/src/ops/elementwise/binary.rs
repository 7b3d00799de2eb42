//! Broadcasting binary and variadic ops: arithmetic, Pow, Mod, bit and logic ops,
//! comparisons, Sum/Mean/Max/Min.

use super::kernel::{arith, bits, extremum, f64_to_int, Vals};
use crate::attr::AttrsExt;
use crate::bail;
use crate::ops::{EvalCtx, InferCtx, OpResult};
use crate::tensor::Tensor;
use crate::types::ValueType;

pub fn add(a: Vals, b: Vals) -> OpResult<Vals> {
    arith(a, b, |x, y| x + y, |x, y| Ok(x.wrapping_add(y)))
}

pub fn sub(a: Vals, b: Vals) -> OpResult<Vals> {
    arith(a, b, |x, y| x - y, |x, y| Ok(x.wrapping_sub(y)))
}

pub fn mul(a: Vals, b: Vals) -> OpResult<Vals> {
    arith(a, b, |x, y| x * y, |x, y| Ok(x.wrapping_mul(y)))
}

/// Integer division truncates toward zero (as in C and ONNX); by zero it is an error.
pub fn div(a: Vals, b: Vals) -> OpResult<Vals> {
    arith(a, b, |x, y| x / y, int_div)
}

pub fn int_div(x: i128, y: i128) -> OpResult<i128> {
    if y == 0 {
        bail!("integer division by zero");
    }
    Ok(x.wrapping_div(y))
}

/// Integer remainder: with `fmod` the sign of the dividend (C's `%`), else the divisor's.
pub fn int_mod(x: i128, y: i128, fmod: bool) -> OpResult<i128> {
    if y == 0 {
        bail!("integer modulo by zero");
    }
    let r = x.wrapping_rem(y);
    Ok(if !fmod && r != 0 && (r < 0) != (y < 0) {
        r + y
    } else {
        r
    })
}

/// Float remainder with the sign of the divisor (numpy's `mod`), with ONNX's special cases:
/// ±0 takes the divisor's sign; an infinite divisor leaves a finite x of its sign alone.
pub fn float_mod(x: f64, y: f64) -> f64 {
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

pub fn eval_mod(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let fmod = match ctx.attrs.int_or("fmod", 0)? {
        0 => false,
        1 => true,
        v => bail!("Mod fmod must be 0 or 1, got {v}"),
    };
    super::kernel::binary(ctx, |a, b| {
        arith(
            a,
            b,
            |x, y| if fmod { x % y } else { float_mod(x, y) },
            |x, y| int_mod(x, y, fmod),
        )
    })
}

/// Integer power by squaring, wrapping. A negative exponent gives the truncated reciprocal
/// (0 unless the base is ±1); 0 to a negative power is an error.
pub fn int_pow(base: i128, exp: i128) -> OpResult<i128> {
    if exp < 0 {
        return match base {
            0 => bail!("integer 0 raised to the negative power {exp}"),
            1 => Ok(1),
            -1 => Ok(if exp % 2 == 0 { 1 } else { -1 }),
            _ => Ok(0),
        };
    }
    let (mut acc, mut b, mut e) = (1i128, base, exp);
    while e > 0 {
        if e & 1 == 1 {
            acc = acc.wrapping_mul(b);
        }
        b = b.wrapping_mul(b);
        e >>= 1;
    }
    Ok(acc)
}

/// Pow: the output has the base's dtype whatever the exponent's. An integer base with a
/// float exponent is computed in f64 and truncated.
pub fn pow(a: Vals, b: Vals) -> OpResult<Vals> {
    Ok(match (a, b) {
        (Vals::F(x), Vals::F(y)) => Vals::F(x.iter().zip(&y).map(|(x, y)| x.powf(*y)).collect()),
        (Vals::F(x), Vals::I(y)) => {
            Vals::F(x.iter().zip(&y).map(|(x, &y)| x.powf(y as f64)).collect())
        }
        (Vals::I(x), Vals::I(y)) => Vals::I(
            x.iter()
                .zip(&y)
                .map(|(&x, &y)| int_pow(x, y))
                .collect::<OpResult<_>>()?,
        ),
        (Vals::I(x), Vals::F(y)) => Vals::I(
            x.iter()
                .zip(&y)
                .map(|(&x, y)| f64_to_int((x as f64).powf(*y)))
                .collect(),
        ),
        _ => bail!("Pow expects numeric inputs"),
    })
}

/// Pow's type: the broadcast shape, the base's dtype; both numeric.
pub fn infer_pow(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let (x, y) = (ctx.input(0)?, ctx.input(1)?);
    for t in [x, y] {
        if t.dtype == crate::dtype::DType::Bool {
            bail!("Pow expects numeric inputs, got {t}");
        }
    }
    let shape = crate::types::broadcast_shapes(&[&x.shape, &y.shape])
        .ok_or_else(|| crate::ops::OpError::new(format!("shapes {x} and {y} do not broadcast")))?;
    Ok(vec![ValueType::new(x.dtype, shape)])
}

pub fn eval_pow(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    super::kernel::binary(ctx, pow)
}

/// BitShift: shifts by a negative amount or by at least the bit width give what the sign
/// extension alone gives (-1 for a right shift of a negative value, else 0).
pub fn eval_bitshift(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let left = match ctx.attrs.str("direction")? {
        Some("LEFT") => true,
        Some("RIGHT") => false,
        Some(d) => bail!("BitShift direction must be LEFT or RIGHT, got {d:?}"),
        None => bail!("BitShift needs the `direction` attribute"),
    };
    let width = (ctx.input(0)?.dtype().size() * 8) as i128;
    super::kernel::binary(ctx, |a, b| {
        bits(a, b, |x, s| {
            let in_range = (0..width).contains(&s);
            match (left, in_range) {
                (true, true) => x.wrapping_shl(s as u32),
                (false, true) => x >> s,
                (false, false) if x < 0 => -1,
                _ => 0,
            }
        })
    })
}

pub fn infer_bitshift(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    match ctx.attrs.str("direction")? {
        Some("LEFT") | Some("RIGHT") => {}
        d => bail!("BitShift direction must be LEFT or RIGHT, got {d:?}"),
    }
    super::kernel::infer_binary(ctx, super::kernel::Accept::Int, false)
}

pub fn max(a: Vals, b: Vals) -> OpResult<Vals> {
    extremum(a, b, true)
}

pub fn min(a: Vals, b: Vals) -> OpResult<Vals> {
    extremum(a, b, false)
}

/// Mean: the sum divided by the input count (integers truncate).
pub fn mean_of(sum: Vals, n: usize) -> OpResult<Vals> {
    Ok(match sum {
        Vals::F(v) => Vals::F(v.into_iter().map(|x| x / n as f64).collect()),
        Vals::I(v) => Vals::I(v.into_iter().map(|x| x / n as i128).collect()),
        Vals::B(_) => bail!("Mean expects numeric inputs"),
    })
}

#[cfg(test)]
#[allow(clippy::cloned_ref_to_slice_refs)]
mod tests {
    use super::super::kernel::testing::*;
    use crate::attr::Attr;
    use crate::dtype::DType;
    use crate::tensor::Data;

    fn none() -> crate::attr::Attrs {
        attrs(&[])
    }

    #[test]
    fn arithmetic_broadcasts() {
        let a = f32s(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
        let b = f32s(&[3], &[10., 20., 30.]);
        let r = run("Add", &none(), &[a.clone(), b.clone()]).unwrap();
        assert_eq!(r.shape(), &[2, 3]);
        assert_close(&r, &[11., 22., 33., 14., 25., 36.], 0.);
        let r = run("Sub", &none(), &[b.clone(), a.clone()]).unwrap();
        assert_close(&r, &[9., 18., 27., 6., 15., 24.], 0.);
        let r = run("Div", &none(), &[a, b]).unwrap();
        assert_close(&r, &[0.1, 0.1, 0.1, 0.4, 0.25, 0.2], 1e-7);
        let bad = run(
            "Add",
            &none(),
            &[f32s(&[2], &[1., 2.]), f32s(&[3], &[1., 2., 3.])],
        );
        assert!(bad.is_err());
        let mixed = run(
            "Add",
            &none(),
            &[f32s(&[1], &[1.]), ints(DType::I64, &[1], &[1])],
        );
        assert!(mixed.is_err());
    }

    #[test]
    fn integer_arithmetic_wraps_like_the_dtype() {
        let a = ints(DType::I8, &[3], &[100, -128, 7]);
        let b = ints(DType::I8, &[3], &[100, 1, 2]);
        let r = run("Add", &none(), &[a.clone(), b.clone()]).unwrap();
        assert_eq!(r.data(), &Data::I8(vec![-56, -127, 9]));
        let r = run("Mul", &none(), &[a, b]).unwrap();
        assert_eq!(r.data(), &Data::I8(vec![16, -128, 14]));
        let a = ints(DType::U8, &[2], &[3, 0]);
        let b = ints(DType::U8, &[2], &[5, 1]);
        let r = run("Sub", &none(), &[a, b]).unwrap();
        assert_eq!(r.data(), &Data::U8(vec![254, 255]));
        let big = crate::tensor::Tensor::new(vec![1], Data::U64(vec![u64::MAX])).unwrap();
        let two = crate::tensor::Tensor::new(vec![1], Data::U64(vec![2])).unwrap();
        let r = run("Div", &none(), &[big.clone(), two.clone()]).unwrap();
        assert_eq!(r.data(), &Data::U64(vec![u64::MAX / 2]));
        let r = run("Greater", &none(), &[big, two]).unwrap();
        assert_eq!(r.data(), &Data::Bool(vec![true]));
    }

    #[test]
    fn integer_div_and_mod_follow_onnx() {
        let a = ints(DType::I32, &[4], &[7, -7, 7, -7]);
        let b = ints(DType::I32, &[4], &[2, 2, -2, -2]);
        let r = run("Div", &none(), &[a.clone(), b.clone()]).unwrap();
        assert_eq!(r.data(), &Data::I32(vec![3, -3, -3, 3]));
        let r = run("Mod", &none(), &[a.clone(), b.clone()]).unwrap();
        assert_eq!(r.data(), &Data::I32(vec![1, 1, -1, -1]));
        let r = run("Mod", &attrs(&[("fmod", Attr::Int(1))]), &[a.clone(), b]).unwrap();
        assert_eq!(r.data(), &Data::I32(vec![1, -1, 1, -1]));
        let zero = ints(DType::I32, &[1], &[0]);
        let e = run("Div", &none(), &[a.clone(), zero.clone()]).unwrap_err();
        assert!(e.0.contains("division by zero"), "{e}");
        assert!(run("Mod", &none(), &[a, zero]).is_err());
        // i64::MIN / -1 wraps instead of panicking.
        let r = run(
            "Div",
            &none(),
            &[
                ints(DType::I64, &[], &[i64::MIN]),
                ints(DType::I64, &[], &[-1]),
            ],
        )
        .unwrap();
        assert_eq!(r.data(), &Data::I64(vec![i64::MIN]));
    }

    #[test]
    fn float_mod_signs_and_special_cases() {
        let a = f32s(&[6], &[5.5, -5.5, 5.5, 0.0, -0.0, 3.0]);
        let b = f32s(&[6], &[2., 2., -2., -3., 3., f32::NEG_INFINITY]);
        let r = run("Mod", &none(), &[a.clone(), b.clone()]).unwrap();
        assert_close(&r, &[1.5, 0.5, -0.5, 0.0, 0.0, f64::NEG_INFINITY], 0.);
        let got = r.to_f64();
        assert!(got[3].is_sign_negative() && got[4].is_sign_positive());
        let r = run("Mod", &attrs(&[("fmod", Attr::Int(1))]), &[a, b]).unwrap();
        assert_close(&r, &[1.5, -1.5, 1.5, 0.0, 0.0, 3.0], 0.);
        let r = run(
            "Mod",
            &none(),
            &[f32s(&[2], &[f32::INFINITY, 1.0]), f32s(&[2], &[2.0, 0.0])],
        )
        .unwrap();
        assert_close(&r, &[f64::NAN, f64::NAN], 0.);
    }

    #[test]
    fn pow_keeps_the_base_dtype() {
        let r = run(
            "Pow",
            &none(),
            &[
                ints(DType::I32, &[3], &[2, 3, -2]),
                f32s(&[3], &[0.5, 2.0, 3.0]),
            ],
        )
        .unwrap();
        assert_eq!(r.data(), &Data::I32(vec![1, 9, -8]));
        let r = run(
            "Pow",
            &none(),
            &[f32s(&[2], &[2.0, 4.0]), ints(DType::I64, &[2], &[3, -1])],
        )
        .unwrap();
        assert_close(&r, &[8.0, 0.25], 0.);
        let r = run(
            "Pow",
            &none(),
            &[
                ints(DType::I64, &[4], &[3, 2, -1, 5]),
                ints(DType::I64, &[4], &[4, 64, -3, -1]),
            ],
        )
        .unwrap();
        assert_eq!(r.data(), &Data::I64(vec![81, 0, -1, 0]));
    }

    #[test]
    fn bitshift_out_of_range_amounts() {
        let left = attrs(&[("direction", Attr::Str("LEFT".into()))]);
        let right = attrs(&[("direction", Attr::Str("RIGHT".into()))]);
        let x = ints(DType::I8, &[4], &[1, -3, 64, -128]);
        let s = ints(DType::I8, &[4], &[2, 1, 1, 8]);
        let r = run("BitShift", &left, &[x.clone(), s.clone()]).unwrap();
        assert_eq!(r.data(), &Data::I8(vec![4, -6, -128, 0]));
        let r = run("BitShift", &right, &[x, s]).unwrap();
        assert_eq!(r.data(), &Data::I8(vec![0, -2, 32, -1]));
        let x = ints(DType::U8, &[2], &[255, 255]);
        let s = ints(DType::U8, &[2], &[7, 9]);
        let r = run("BitShift", &right, &[x.clone(), s.clone()]).unwrap();
        assert_eq!(r.data(), &Data::U8(vec![1, 0]));
        let r = run("BitShift", &left, &[x, s]).unwrap();
        assert_eq!(r.data(), &Data::U8(vec![128, 0]));
        let x = ints(DType::I32, &[1], &[-8]);
        let s = ints(DType::I32, &[1], &[-1]);
        let r = run("BitShift", &right, &[x, s]).unwrap();
        assert_eq!(r.data(), &Data::I32(vec![-1]));
    }

    #[test]
    fn bit_logic_and_comparisons() {
        let a = ints(DType::U8, &[2], &[0b1100, 0xF0]);
        let b = ints(DType::U8, &[2], &[0b1010, 0x0F]);
        let r = run("BitwiseAnd", &none(), &[a.clone(), b.clone()]).unwrap();
        assert_eq!(r.data(), &Data::U8(vec![0b1000, 0]));
        let r = run("BitwiseOr", &none(), &[a.clone(), b.clone()]).unwrap();
        assert_eq!(r.data(), &Data::U8(vec![0b1110, 0xFF]));
        let r = run("BitwiseXor", &none(), &[a.clone(), b]).unwrap();
        assert_eq!(r.data(), &Data::U8(vec![0b0110, 0xFF]));
        let r = run("BitwiseNot", &none(), &[a]).unwrap();
        assert_eq!(r.data(), &Data::U8(vec![0xF3, 0x0F]));
        let p = bools(&[4], &[true, true, false, false]);
        let q = bools(&[4], &[true, false, true, false]);
        let r = run("And", &none(), &[p.clone(), q.clone()]).unwrap();
        assert_eq!(r.data(), &Data::Bool(vec![true, false, false, false]));
        let r = run("Or", &none(), &[p.clone(), q.clone()]).unwrap();
        assert_eq!(r.data(), &Data::Bool(vec![true, true, true, false]));
        let r = run("Xor", &none(), &[p.clone(), q]).unwrap();
        assert_eq!(r.data(), &Data::Bool(vec![false, true, true, false]));
        let r = run("Not", &none(), &[p]).unwrap();
        assert_eq!(r.data(), &Data::Bool(vec![false, false, true, true]));
        assert!(run("And", &none(), &[f32s(&[1], &[1.]), f32s(&[1], &[1.])]).is_err());

        let x = f32s(&[4], &[1., 2., f32::NAN, 3.]);
        let y = f32s(&[1], &[2.]);
        let expect = |op: &str, want: [bool; 4]| {
            let r = run(op, &none(), &[x.clone(), y.clone()]).unwrap();
            assert_eq!(r.data(), &Data::Bool(want.to_vec()), "{op}");
        };
        expect("Equal", [false, true, false, false]);
        expect("Less", [true, false, false, false]);
        expect("LessOrEqual", [true, true, false, false]);
        expect("Greater", [false, false, false, true]);
        expect("GreaterOrEqual", [false, true, false, true]);
        let r = run(
            "Equal",
            &none(),
            &[bools(&[2], &[true, false]), bools(&[], &[false])],
        )
        .unwrap();
        assert_eq!(r.data(), &Data::Bool(vec![false, true]));
    }

    #[test]
    fn variadic_ops() {
        let a = f32s(&[3], &[3., 2., 1.]);
        let b = f32s(&[3], &[1., 3., 4.]);
        let c = f32s(&[1], &[2.]);
        let all = [a.clone(), b.clone(), c.clone()];
        assert_close(&run("Sum", &none(), &all).unwrap(), &[6., 7., 7.], 0.);
        assert_close(
            &run("Mean", &none(), &all).unwrap(),
            &[2., 7. / 3., 7. / 3.],
            1e-6,
        );
        assert_close(&run("Max", &none(), &all).unwrap(), &[3., 3., 4.], 0.);
        assert_close(&run("Min", &none(), &all).unwrap(), &[1., 2., 1.], 0.);
        assert_close(&run("Sum", &none(), &[a]).unwrap(), &[3., 2., 1.], 0.);
        let n = f32s(&[2], &[f32::NAN, 1.]);
        assert_close(
            &run("Max", &none(), &[n, f32s(&[2], &[0., 2.])]).unwrap(),
            &[f64::NAN, 2.],
            0.,
        );
        let r = run(
            "Min",
            &none(),
            &[
                ints(DType::U64, &[2], &[-1, 5]),
                ints(DType::U64, &[2], &[3, 9]),
            ],
        )
        .unwrap();
        assert_eq!(r.data(), &Data::U64(vec![3, 5]));
        let r = run(
            "Max",
            &none(),
            &[f32s(&[2, 1], &[1., 5.]), f32s(&[3], &[0., 2., 7.])],
        )
        .unwrap();
        assert_eq!(r.shape(), &[2, 3]);
        assert_close(&r, &[1., 2., 7., 5., 5., 7.], 0.);
    }
}
