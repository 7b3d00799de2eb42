//! f16 and bf16 to and from f32 with integer code (round to nearest even, subnormals,
//! infinities and NaN), and rounding of f32/f64 values to narrower float dtypes.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{types, InstBuilder, Value};
use kiln_ir::dtype::DType;

use super::emit::Emitter;
use super::Ty;
use crate::error::TargetError;

impl Emitter<'_, '_, '_> {
    /// `a op b` on the f32 bits type with a constant `b`.
    fn icmp_c(&mut self, cc: IntCC, a: Value, b: i64) -> Value {
        let k = self.bconst(Ty::F32, b);
        self.kb.b.ins().icmp(cc, a, k)
    }

    fn band_c(&mut self, a: Value, b: i64) -> Value {
        let k = self.bconst(Ty::F32, b);
        self.kb.b.ins().band(a, k)
    }

    fn iadd_c(&mut self, a: Value, b: i64) -> Value {
        let k = self.bconst(Ty::F32, b);
        self.kb.b.ins().iadd(a, k)
    }

    /// f16 or bf16 bits (in the low 16 bits of i32 lanes) to f32 values.
    pub fn half_to_f32(&mut self, dt: DType, h: Value) -> Result<Value, TargetError> {
        if dt == DType::BF16 {
            let u = self.kb.b.ins().ishl_imm_u(h, 16);
            return self.bits_as(Ty::F32, u);
        }
        let mag = self.band_c(h, 0x7fff);
        let o = self.kb.b.ins().ishl_imm_u(mag, 13);
        let e = self.band_c(o, 0x0f80_0000);
        let o = self.iadd_c(o, 0x3800_0000);
        // Infinity or NaN: the exponent moves up once more.
        let inf = self.icmp_c(IntCC::Equal, e, 0x0f80_0000);
        let o_inf = self.iadd_c(o, 0x3800_0000);
        // Zero or subnormal: renormalise through a float subtraction.
        let den = self.icmp_c(IntCC::Equal, e, 0);
        let t = self.iadd_c(o, 0x0080_0000);
        let t = self.bits_as(Ty::F32, t)?;
        let magic = self.fconst(Ty::F32, f64::from(f32::from_bits(0x3880_0000)));
        let d = self.kb.b.ins().fsub(t, magic);
        let o_den = self.as_bits(Ty::F32, d);
        let o = self.sel(den, o_den, o);
        let o = self.sel(inf, o_inf, o);
        let s = self.band_c(h, 0x8000);
        let s = self.kb.b.ins().ishl_imm_u(s, 16);
        let o = self.kb.b.ins().bor(o, s);
        self.bits_as(Ty::F32, o)
    }

    /// f32 values to f16 or bf16 bits (in the low 16 bits of i32 lanes), rounding to
    /// nearest even; NaN stays NaN.
    pub fn f32_to_half(&mut self, dt: DType, v: Value) -> Result<Value, TargetError> {
        let u = self.as_bits(Ty::F32, v);
        let a = self.band_c(u, 0x7fff_ffff);
        let nan = self.icmp_c(IntCC::SignedGreaterThan, a, 0x7f80_0000);
        if dt == DType::BF16 {
            let hi = self.kb.b.ins().ushr_imm_u(u, 16);
            let quiet = self.bconst(Ty::F32, 0x40);
            let q = self.kb.b.ins().bor(hi, quiet);
            let odd = self.band_c(hi, 1);
            let r = self.iadd_c(u, 0x7fff);
            let r = self.kb.b.ins().iadd(r, odd);
            let r = self.kb.b.ins().ushr_imm_u(r, 16);
            return Ok(self.sel(nan, q, r));
        }
        let sign = self.kb.b.ins().bxor(u, a);
        // Overflow to infinity (or NaN).
        let big = self.icmp_c(IntCC::SignedGreaterThanOrEqual, a, 0x4780_0000);
        let k_nan = self.bconst(Ty::F32, 0x7e00);
        let k_inf = self.bconst(Ty::F32, 0x7c00);
        let r_big = self.sel(nan, k_nan, k_inf);
        // Subnormal or zero: let a float addition do the rounding.
        let sub = self.icmp_c(IntCC::SignedLessThan, a, 0x3880_0000);
        let fa = self.bits_as(Ty::F32, a)?;
        let half = self.fconst(Ty::F32, 0.5);
        let fa = self.kb.b.ins().fadd(fa, half);
        let fa = self.as_bits(Ty::F32, fa);
        let r_sub = self.iadd_c(fa, -0x3f00_0000);
        // Normal: rebias the exponent and round the mantissa to 10 bits.
        let m = self.kb.b.ins().ushr_imm_u(a, 13);
        let odd = self.band_c(m, 1);
        let r = self.iadd_c(a, -0x3800_0000 + 0xfff);
        let r = self.kb.b.ins().iadd(r, odd);
        let r_norm = self.kb.b.ins().ushr_imm_u(r, 13);
        let r = self.sel(sub, r_sub, r_norm);
        let r = self.sel(big, r_big, r);
        let s = self.kb.b.ins().ushr_imm_u(sign, 16);
        Ok(self.kb.b.ins().bor(r, s))
    }

    /// `x` (of type `xt`) rounded to nearest even in dtype `d`, kept in type `xt`.
    pub fn round_to(&mut self, x: Value, xt: Ty, d: DType) -> Result<Value, TargetError> {
        match (xt, d) {
            (Ty::F32, DType::F32) | (Ty::F64, DType::F64) => Ok(x),
            (Ty::F32, DType::F16 | DType::BF16) => {
                let h = self.f32_to_half(d, x)?;
                self.half_to_f32(d, h)
            }
            (Ty::F64, DType::F32 | DType::F16 | DType::BF16) => {
                let w = self.w;
                let mut lanes = Vec::with_capacity(w as usize);
                for l in 0..w {
                    let s = if w == 1 {
                        x
                    } else {
                        self.kb.b.ins().extractlane(x, l)
                    };
                    self.w = 1;
                    let r = self.round_f64_scalar(s, d);
                    self.w = w;
                    lanes.push(r?);
                }
                if w == 1 {
                    return Ok(lanes[0]);
                }
                let mut v = self.kb.b.ins().splat(types::F64X2, lanes[0]);
                for (l, &x) in lanes.iter().enumerate().skip(1) {
                    v = self.kb.b.ins().insertlane(v, x, l as u8);
                }
                Ok(v)
            }
            _ => Err(TargetError::Lower(format!(
                "elementwise kernel: rounding {xt:?} to {d}"
            ))),
        }
    }

    /// A scalar f64 rounded to f32, f16 or bf16 (once: through f32 rounded to odd).
    fn round_f64_scalar(&mut self, x: Value, d: DType) -> Result<Value, TargetError> {
        let y = self.kb.b.ins().fdemote(types::F32, x);
        if d == DType::F32 {
            return Ok(self.kb.b.ins().fpromote(types::F64, y));
        }
        let back = self.kb.b.ins().fpromote(types::F64, y);
        let inexact = self.kb.b.ins().fcmp(FloatCC::OrderedNotEqual, back, x);
        let yb = self.as_bits(Ty::F32, y);
        let low = self.kb.b.ins().band_imm_u(yb, 1);
        let even = self.kb.b.ins().icmp_imm_s(IntCC::Equal, low, 0);
        let ax = self.kb.b.ins().fabs(x);
        let ab = self.kb.b.ins().fabs(back);
        let away = self.kb.b.ins().fcmp(FloatCC::GreaterThan, ax, ab);
        let up = self.kb.b.ins().iadd_imm_s(yb, 1);
        let down = self.kb.b.ins().iadd_imm_s(yb, -1);
        let adj = self.kb.b.ins().select(away, up, down);
        let fix = self.kb.b.ins().band(inexact, even);
        let yb = self.kb.b.ins().select(fix, adj, yb);
        let y = self.bits_as(Ty::F32, yb)?;
        let r = self.round_to(y, Ty::F32, d)?;
        Ok(self.kb.b.ins().fpromote(types::F64, r))
    }
}
