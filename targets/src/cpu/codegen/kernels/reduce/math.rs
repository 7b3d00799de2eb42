//! Transcendental functions the row kernels need: `exp` inline for f32 (scalar or f32x4),
//! through the runtime's f64 helpers otherwise; `log` through the helper.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{types, Endianness, InstBuilder, MemFlagsData, Type, Value};
use kiln_runtime::cpu::helpers::HelperSig;

use super::fconst;
use crate::cpu::codegen::kernel::KernelBuilder;

/// Helper-table indices of the scalar math the kernels call (registered by the lowering).
#[derive(Clone, Copy, Debug)]
pub struct MathHelpers {
    pub exp: usize,
    pub log: usize,
    /// The ISA has fused multiply-add (part of every kernel key through the ISA).
    pub fma: bool,
}

fn lanes_flags() -> MemFlagsData {
    MemFlagsData::new().with_endianness(Endianness::Little)
}

/// `exp(x)` of a float scalar or vector of type `ty`.
pub fn exp(kb: &mut KernelBuilder, m: MathHelpers, ty: Type, x: Value) -> Value {
    exp_with(kb, m, ty, x, false)
}

/// `exp(x)`; with `nonpositive` the caller guarantees `x <= 0` or NaN (a softmax's
/// `x - max`), which saves the overflow check.
pub fn exp_with(
    kb: &mut KernelBuilder,
    m: MathHelpers,
    ty: Type,
    x: Value,
    nonpositive: bool,
) -> Value {
    if ty.lane_type() == types::F32 {
        exp_f32(kb, m.fma, ty, x, nonpositive)
    } else {
        map_lanes(kb, ty, x, |kb, s| {
            kb.call_helper(m.exp, HelperSig::F64ToF64, &[s])
                .expect("exp returns a value")
        })
    }
}

/// `ln(x)` of a float scalar or vector (through the f64 helper, lane by lane).
pub fn log(kb: &mut KernelBuilder, m: MathHelpers, ty: Type, x: Value) -> Value {
    map_lanes(kb, ty, x, |kb, s| {
        kb.call_helper(m.log, HelperSig::F64ToF64, &[s])
            .expect("log returns a value")
    })
}

/// Applies an f64 -> f64 function to every lane of `x` (promoting f32 lanes).
fn map_lanes(
    kb: &mut KernelBuilder,
    ty: Type,
    x: Value,
    mut f: impl FnMut(&mut KernelBuilder, Value) -> Value,
) -> Value {
    let lane = ty.lane_type();
    let mut one = |kb: &mut KernelBuilder, s: Value| {
        let d = if lane == types::F32 {
            kb.b.ins().fpromote(types::F64, s)
        } else {
            s
        };
        let r = f(kb, d);
        if lane == types::F32 {
            kb.b.ins().fdemote(types::F32, r)
        } else {
            r
        }
    };
    if !ty.is_vector() {
        return one(kb, x);
    }
    let mut v = x;
    for i in 0..ty.lane_count() {
        let s = kb.b.ins().extractlane(x, i as u8);
        let r = one(kb, s);
        v = kb.b.ins().insertlane(v, r, i as u8);
    }
    v
}

/// `exp` of f32 lanes: range reduction by `n = round(x / ln 2)`, a degree-6 polynomial on
/// `r = x - n ln 2` (Cephes' coefficients, about 1 ulp), and `2^n` built in the exponent
/// bits. Below -87.33 (where the result would be subnormal) it gives 0, above 88.72
/// infinity; NaN stays NaN. Exact zeros matter: a softmax of masked (`-inf`) logits would
/// otherwise carry ~1e-38 values that turn subnormal when normalized, and subnormal
/// operands make the products after it many times slower.
fn exp_f32(kb: &mut KernelBuilder, fma: bool, ty: Type, x: Value, nonpositive: bool) -> Value {
    const LO: f64 = -87.336_54;
    const HI: f64 = 88.0;
    const OVER: f64 = 88.722_83;
    let ity = ty.as_int();
    let c = |kb: &mut KernelBuilder, v: f64| fconst(kb, ty, v);
    // a * b + c, fused when the CPU can.
    let mul_add = |kb: &mut KernelBuilder, a: Value, b: Value, cc: Value| {
        if fma {
            kb.b.ins().fma(a, b, cc)
        } else {
            let p = kb.b.ins().fmul(a, b);
            kb.b.ins().fadd(p, cc)
        }
    };
    let lo = c(kb, LO);
    // Clamp with compare-and-select (NaN passes through unchanged).
    let xc = select_f(kb, ty, FloatCC::LessThan, x, lo, lo, x);
    let xc = if nonpositive {
        xc
    } else {
        let hi = c(kb, HI);
        select_f(kb, ty, FloatCC::GreaterThan, xc, hi, hi, xc)
    };
    // t = x * log2(e) + 1.5 * 2^23: its low mantissa bits hold round(x * log2(e)).
    let magic = c(kb, 12_582_912.0);
    let log2e = c(kb, std::f64::consts::LOG2_E);
    let t = mul_add(kb, xc, log2e, magic);
    let n = kb.b.ins().fsub(t, magic);
    let neg_ln2_hi = c(kb, -0.693_359_375);
    let neg_ln2_lo = c(kb, 2.121_944_4e-4);
    let r = mul_add(kb, n, neg_ln2_hi, xc);
    let r = mul_add(kb, n, neg_ln2_lo, r);
    // exp(r) = 1 + r + r^2 * p(r).
    let coefs = [
        1.987_569_150_0e-4,
        1.398_199_950_7e-3,
        8.333_451_907_3e-3,
        4.166_579_589_4e-2,
        1.666_666_545_9e-1,
        5.000_000_120_1e-1,
    ];
    let mut p = c(kb, coefs[0]);
    for &k in &coefs[1..] {
        let kc = c(kb, k);
        p = mul_add(kb, p, r, kc);
    }
    let r2 = kb.b.ins().fmul(r, r);
    let one = c(kb, 1.0);
    let r1 = kb.b.ins().fadd(r, one);
    let p = mul_add(kb, p, r2, r1);
    // 2^n: (n + 127) << 23 as float bits, with n = bits(t) - bits(magic).
    let tb = kb.b.ins().bitcast(ity, lanes_flags(), t);
    let bias = 127 - 0x4B40_0000i64;
    let bias = if ty.is_vector() {
        let s = kb.b.ins().iconst(types::I32, bias);
        kb.b.ins().splat(ity, s)
    } else {
        kb.b.ins().iconst(types::I32, bias)
    };
    let e = kb.b.ins().iadd(tb, bias);
    let e = kb.b.ins().ishl_imm_u(e, 23);
    let scale = kb.b.ins().bitcast(ty, lanes_flags(), e);
    let y = kb.b.ins().fmul(p, scale);
    // Underflow to 0, overflow to infinity.
    let zero = c(kb, 0.0);
    let y = select_f(kb, ty, FloatCC::LessThan, x, lo, zero, y);
    if nonpositive {
        return y;
    }
    let inf = c(kb, f64::INFINITY);
    let over = c(kb, OVER);
    select_f(kb, ty, FloatCC::GreaterThan, x, over, inf, y)
}

/// `if a <cc> b { yes } else { no }`, lane by lane.
pub fn select_f(
    kb: &mut KernelBuilder,
    ty: Type,
    cc: FloatCC,
    a: Value,
    b: Value,
    yes: Value,
    no: Value,
) -> Value {
    let m = kb.b.ins().fcmp(cc, a, b);
    if ty.is_vector() {
        let m = kb.b.ins().bitcast(ty, lanes_flags(), m);
        kb.b.ins().bitselect(m, yes, no)
    } else {
        kb.b.ins().select(m, yes, no)
    }
}
