//! Elementwise ops: numpy-broadcasting binary ops, variadic Sum/Mean/Max/Min, unary math,
//! Where, Clip, Cast and CastLike.
//!
//! Floats compute in f64 and round once to the output dtype; integers compute in i128 and
//! wrap to theirs; bools stay bool. The shared machinery (values, broadcasting, drivers) is
//! in [`kernel`]; the activations (`activation.rs`) use it too.

use std::cmp::Ordering::{Equal, Greater, Less};

use crate::attr::AttrsExt;
use crate::dtype::DType;
use crate::ops::OpSpec;

mod binary;
pub(crate) mod kernel;
mod select;
mod sym;
mod unary;

pub(crate) use unary::erf;

use kernel::{
    binary, bits, compare, infer_binary, infer_unary, infer_variadic, logic, map_bool, map_float,
    map_int, map_num, op, test_float, unary, variadic, Accept,
};

/// A float-only unary op computing `$f` on f64.
macro_rules! float_unary {
    ($name:literal, $f:expr) => {
        op!($name, |ctx| infer_unary(ctx, Accept::Float, None), |ctx| {
            unary(ctx, |v| map_float(v, $f))
        })
    };
}

pub const SPECS: &[OpSpec] = &[
    // Broadcasting arithmetic.
    op!("Add", |ctx| infer_binary(ctx, Accept::Num, false), |ctx| {
        binary(ctx, binary::add)
    })
    .with_sym(sym::add),
    op!("Sub", |ctx| infer_binary(ctx, Accept::Num, false), |ctx| {
        binary(ctx, binary::sub)
    })
    .with_sym(sym::sub),
    op!("Mul", |ctx| infer_binary(ctx, Accept::Num, false), |ctx| {
        binary(ctx, binary::mul)
    })
    .with_sym(sym::mul),
    op!("Div", |ctx| infer_binary(ctx, Accept::Num, false), |ctx| {
        binary(ctx, binary::div)
    })
    .with_sym(sym::div),
    op!(
        "Mod",
        |ctx| {
            ctx.attrs.int_or("fmod", 0)?;
            infer_binary(ctx, Accept::Num, false)
        },
        |ctx| binary::eval_mod(ctx)
    )
    .with_sym(sym::modulo),
    op!("Pow", |ctx| binary::infer_pow(ctx), |ctx| binary::eval_pow(
        ctx
    )),
    // Bits and logic.
    op!("BitShift", |ctx| binary::infer_bitshift(ctx), |ctx| {
        binary::eval_bitshift(ctx)
    }),
    op!(
        "BitwiseAnd",
        |ctx| infer_binary(ctx, Accept::Int, false),
        |ctx| binary(ctx, |a, b| bits(a, b, |x, y| x & y))
    ),
    op!(
        "BitwiseOr",
        |ctx| infer_binary(ctx, Accept::Int, false),
        |ctx| binary(ctx, |a, b| bits(a, b, |x, y| x | y))
    ),
    op!(
        "BitwiseXor",
        |ctx| infer_binary(ctx, Accept::Int, false),
        |ctx| binary(ctx, |a, b| bits(a, b, |x, y| x ^ y))
    ),
    op!(
        "BitwiseNot",
        |ctx| infer_unary(ctx, Accept::Int, None),
        |ctx| unary(ctx, |v| map_int(v, |x| !x))
    ),
    op!("And", |ctx| infer_binary(ctx, Accept::Bool, false), |ctx| {
        binary(ctx, |a, b| logic(a, b, |x, y| x & y))
    }),
    op!("Or", |ctx| infer_binary(ctx, Accept::Bool, false), |ctx| {
        binary(ctx, |a, b| logic(a, b, |x, y| x | y))
    }),
    op!("Xor", |ctx| infer_binary(ctx, Accept::Bool, false), |ctx| {
        binary(ctx, |a, b| logic(a, b, |x, y| x ^ y))
    }),
    op!("Not", |ctx| infer_unary(ctx, Accept::Bool, None), |ctx| {
        unary(ctx, |v| map_bool(v, |x| !x))
    }),
    // Comparisons (NaN compares false).
    op!("Equal", |ctx| infer_binary(ctx, Accept::Any, true), |ctx| {
        binary(ctx, |a, b| compare(a, b, |o| o == Some(Equal)))
    })
    .with_sym(sym::equal),
    op!("Less", |ctx| infer_binary(ctx, Accept::Num, true), |ctx| {
        binary(ctx, |a, b| compare(a, b, |o| o == Some(Less)))
    }),
    op!(
        "LessOrEqual",
        |ctx| infer_binary(ctx, Accept::Num, true),
        |ctx| binary(ctx, |a, b| compare(a, b, |o| matches!(
            o,
            Some(Less | Equal)
        )))
    ),
    op!(
        "Greater",
        |ctx| infer_binary(ctx, Accept::Num, true),
        |ctx| binary(ctx, |a, b| compare(a, b, |o| o == Some(Greater)))
    ),
    op!(
        "GreaterOrEqual",
        |ctx| infer_binary(ctx, Accept::Num, true),
        |ctx| binary(ctx, |a, b| compare(a, b, |o| matches!(
            o,
            Some(Greater | Equal)
        )))
    ),
    // Variadic.
    op!("Sum", |ctx| infer_variadic(ctx, Accept::Num), |ctx| {
        variadic(ctx, binary::add, |v, _| Ok(v))
    })
    .with_sym(sym::sum),
    op!("Mean", |ctx| infer_variadic(ctx, Accept::Num), |ctx| {
        variadic(ctx, binary::add, binary::mean_of)
    }),
    op!("Max", |ctx| infer_variadic(ctx, Accept::Num), |ctx| {
        variadic(ctx, binary::max, |v, _| Ok(v))
    })
    .with_sym(sym::max),
    op!("Min", |ctx| infer_variadic(ctx, Accept::Num), |ctx| {
        variadic(ctx, binary::min, |v, _| Ok(v))
    })
    .with_sym(sym::min),
    // Unary math.
    op!("Abs", |ctx| infer_unary(ctx, Accept::Num, None), |ctx| {
        unary(ctx, |v| map_num(v, f64::abs, i128::wrapping_abs))
    })
    .with_sym(sym::abs),
    op!("Neg", |ctx| infer_unary(ctx, Accept::Num, None), |ctx| {
        unary(ctx, |v| map_num(v, |x| -x, i128::wrapping_neg))
    })
    .with_sym(sym::neg),
    op!("Sign", |ctx| infer_unary(ctx, Accept::Num, None), |ctx| {
        unary(ctx, |v| map_num(v, unary::sign, i128::signum))
    }),
    float_unary!("Reciprocal", |x| 1.0 / x),
    float_unary!("Sqrt", f64::sqrt),
    float_unary!("Exp", f64::exp),
    float_unary!("Log", f64::ln),
    float_unary!("Ceil", f64::ceil),
    float_unary!("Floor", f64::floor),
    float_unary!("Round", f64::round_ties_even),
    float_unary!("Erf", unary::erf),
    float_unary!("Sin", f64::sin),
    float_unary!("Cos", f64::cos),
    float_unary!("Tan", f64::tan),
    float_unary!("Asin", f64::asin),
    float_unary!("Acos", f64::acos),
    float_unary!("Atan", f64::atan),
    float_unary!("Sinh", f64::sinh),
    float_unary!("Cosh", f64::cosh),
    float_unary!("Asinh", f64::asinh),
    float_unary!("Acosh", f64::acosh),
    float_unary!("Atanh", f64::atanh),
    op!(
        "IsNaN",
        |ctx| infer_unary(ctx, Accept::Float, Some(DType::Bool)),
        |ctx| unary(ctx, |v| test_float(v, f64::is_nan))
    ),
    op!(
        "IsInf",
        |ctx| infer_unary(ctx, Accept::Float, Some(DType::Bool)),
        |ctx| {
            let neg = ctx.attrs.int_or("detect_negative", 1)? != 0;
            let pos = ctx.attrs.int_or("detect_positive", 1)? != 0;
            unary(ctx, |v| {
                test_float(v, |x| x.is_infinite() && if x > 0.0 { pos } else { neg })
            })
        }
    ),
    // Selection and conversion.
    op!("Where", |ctx| select::infer_where(ctx), |ctx| {
        select::eval_where(ctx)
    })
    .with_sym(sym::where_),
    op!("Clip", |ctx| select::infer_clip(ctx), |ctx| {
        select::eval_clip(ctx)
    }),
    op!("Cast", |ctx| select::infer_cast(ctx), |ctx| {
        select::eval_cast(ctx)
    })
    .with_sym(sym::cast),
    op!("CastLike", |ctx| select::infer_castlike(ctx), |ctx| {
        select::eval_castlike(ctx)
    })
    .with_sym(sym::castlike),
];
