//! Work fused after the product: a bias per column, an activation and a residual, applied to
//! each tile of C once its sum over K is complete (the tile is still in L1), so that
//! `MatMul -> Add(bias) -> Gelu -> Add(residual)` costs one pass over C instead of four.
//! Also where C's columns go ([`CLayout`]): row-major, or in blocks of columns (attention
//! heads) so that a `[rows, heads * d]` product lands as `[heads, rows, d]`.

/// The activation of an [`Epilogue`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Activation {
    #[default]
    None,
    Relu,
    /// `x/2 · (1 + erf(x/√2))`.
    Gelu,
    /// `x/2 · (1 + tanh(√(2/π) · (x + 0.044715 x³)))`.
    GeluTanh,
}

impl Activation {
    /// The code the GEMM helpers receive.
    pub fn code(self) -> u64 {
        match self {
            Activation::None => 0,
            Activation::Relu => 1,
            Activation::Gelu => 2,
            Activation::GeluTanh => 3,
        }
    }

    pub fn from_code(c: u64) -> Option<Activation> {
        Some(match c {
            0 => Activation::None,
            1 => Activation::Relu,
            2 => Activation::Gelu,
            3 => Activation::GeluTanh,
            _ => return None,
        })
    }
}

/// `C[i, j] = act(sum + bias[j]) + residual[i, j]`, each part optional.
#[derive(Clone, Copy, Debug)]
pub struct Epilogue {
    /// One float per column of C (null: none).
    pub bias: *const f32,
    pub act: Activation,
    /// Element `(i, j)` at `residual + i*rsr + j` (null: none).
    pub residual: *const f32,
    pub rsr: isize,
}

impl Epilogue {
    pub const NONE: Epilogue = Epilogue {
        bias: std::ptr::null(),
        act: Activation::None,
        residual: std::ptr::null(),
        rsr: 0,
    };

    pub fn is_none(&self) -> bool {
        self.bias.is_null() && self.act == Activation::None && self.residual.is_null()
    }
}

/// Where element `(i, j)` of C goes: `c + i*rsc + (j / block)*block_stride + j % block`
/// (`block == 0`: `c + i*rsc + j`). `block` is a multiple of the panel width
/// [`NR`](super::NR), so a microkernel's tile never straddles two blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CLayout {
    pub rsc: isize,
    pub block: usize,
    pub block_stride: isize,
}

impl CLayout {
    /// Plain rows `rsc` apart.
    pub fn rows(rsc: isize) -> CLayout {
        CLayout {
            rsc,
            block: 0,
            block_stride: 0,
        }
    }

    /// The offset of column `j` from its row's start.
    pub fn col(&self, j: usize) -> isize {
        match j.checked_div(self.block) {
            None => j as isize,
            Some(q) => q as isize * self.block_stride + (j % self.block) as isize,
        }
    }

    /// Columns from `j` to the end of its block (all of them when not blocked).
    pub fn run_from(&self, j: usize) -> usize {
        if self.block == 0 {
            usize::MAX
        } else {
            self.block - j % self.block
        }
    }
}

/// erf(x) = x P(x²) / Q(x²) for |x| < ERF_ONE (a rational fit, relative error 2e-8, the
/// one kiln's generated code uses), ±1 beyond.
#[allow(clippy::approx_constant)] // fitted, not 2/sqrt(pi) rounded
const ERF_P: [f32; 6] = [
    0.000_002_035_851_8,
    0.000_284_745_1,
    0.003_789_976,
    0.052_821_115,
    0.191_064_7,
    1.128_379_1,
];
const ERF_Q: [f32; 6] = [
    0.000_037_937_556,
    0.001_167_178_6,
    0.015_018_376_5,
    0.114_367_88,
    0.502_659_4,
    1.0,
];
const ERF_ONE: f32 = 3.9375;
/// √(2/π), for the tanh form of GELU.
const GELU_TANH_C: f32 = 0.797_884_6;
const GELU_TANH_CUBE: f32 = 0.044_715;

fn erf(x: f32) -> f32 {
    if x.abs() >= ERF_ONE {
        return 1f32.copysign(x);
    }
    let s = x * x;
    let p = ERF_P[1..].iter().fold(ERF_P[0], |acc, &c| acc * s + c);
    let q = ERF_Q[1..].iter().fold(ERF_Q[0], |acc, &c| acc * s + c);
    x * p / q
}

fn act1(act: Activation, x: f32) -> f32 {
    match act {
        Activation::None => x,
        Activation::Relu => {
            if x < 0.0 {
                0.0
            } else {
                x
            }
        }
        Activation::Gelu => 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2)),
        Activation::GeluTanh => {
            let z = GELU_TANH_C * (x + GELU_TANH_CUBE * x * x * x);
            0.5 * x * (1.0 + z.tanh())
        }
    }
}

/// Applies `ep` to the `rows x cols` tile at `c` (row stride `rsc`, columns contiguous),
/// whose first element is `C(i0, j0)`.
///
/// # Safety
/// The tile is readable and writable; `ep.bias` holds columns `j0..j0+cols` and
/// `ep.residual` rows `i0..i0+rows` of those columns, when given.
pub(super) unsafe fn apply(
    ep: &Epilogue,
    c: *mut f32,
    rsc: isize,
    rows: usize,
    cols: usize,
    i0: usize,
    j0: usize,
) {
    if ep.is_none() || rows == 0 || cols == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: forwarded; the CPU has AVX-512F.
        unsafe { x86::apply(ep, c, rsc, rows, cols, i0, j0) };
        return;
    }
    for r in 0..rows {
        // SAFETY: row r of the tile, its bias columns and residual row (caller).
        unsafe {
            let out = c.offset(r as isize * rsc);
            for j in 0..cols {
                let mut v = *out.add(j);
                if !ep.bias.is_null() {
                    v += *ep.bias.add(j0 + j);
                }
                v = act1(ep.act, v);
                if !ep.residual.is_null() {
                    v += *ep
                        .residual
                        .offset((i0 + r) as isize * ep.rsr + (j0 + j) as isize);
                }
                *out.add(j) = v;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Activation, Epilogue, ERF_ONE, ERF_P, ERF_Q, GELU_TANH_C, GELU_TANH_CUBE};

    #[inline(always)]
    unsafe fn horner(c: &[f32; 6], s: __m512) -> __m512 {
        // SAFETY: register operations (AVX-512F in the caller).
        unsafe {
            let mut acc = _mm512_set1_ps(c[0]);
            for &k in &c[1..] {
                acc = _mm512_fmadd_ps(acc, s, _mm512_set1_ps(k));
            }
            acc
        }
    }

    /// erf by the scalar `erf`'s rational fit (to about an ulp: 1/Q by estimate and Newton step).
    #[inline(always)]
    unsafe fn erf(x: __m512) -> __m512 {
        // SAFETY: register operations (AVX-512F in the caller).
        unsafe {
            let s = _mm512_mul_ps(x, x);
            // x P / Q with 1/Q from the 14-bit estimate and one Newton step (about 2^-28
            // relative): a division would take as long as both polynomials.
            let q = horner(&ERF_Q, s);
            let q0 = _mm512_rcp14_ps(q);
            let q1 = _mm512_fmadd_ps(q0, _mm512_fnmadd_ps(q, q0, _mm512_set1_ps(1.0)), q0);
            let r = _mm512_mul_ps(_mm512_mul_ps(x, horner(&ERF_P, s)), q1);
            let sign = _mm512_set1_epi32(i32::MIN);
            let xi = _mm512_castps_si512(x);
            let one = _mm512_castsi512_ps(_mm512_or_si512(
                _mm512_and_si512(xi, sign),
                _mm512_castps_si512(_mm512_set1_ps(1.0)),
            ));
            let ax = _mm512_castsi512_ps(_mm512_andnot_si512(sign, xi));
            let big = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(ax, _mm512_set1_ps(ERF_ONE));
            _mm512_mask_blend_ps(big, r, one)
        }
    }

    /// exp(x) for x <= 0 (Cephes' reduction and polynomial; 2^n by scalef).
    #[inline(always)]
    unsafe fn exp_neg(x: __m512) -> __m512 {
        // SAFETY: register operations (AVX-512F in the caller).
        unsafe {
            let x = _mm512_max_ps(x, _mm512_set1_ps(-88.0));
            let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
            );
            let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_359_4), x);
            let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.121_944_4e-4), r);
            let mut p = _mm512_set1_ps(1.987_569_1e-4);
            for k in [
                1.398_199_9e-3,
                8.333_452e-3,
                4.166_579_6e-2,
                0.166_666_65,
                0.5,
            ] {
                p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(k));
            }
            let y = _mm512_fmadd_ps(
                _mm512_mul_ps(p, r),
                r,
                _mm512_add_ps(r, _mm512_set1_ps(1.0)),
            );
            _mm512_scalef_ps(y, n)
        }
    }

    #[inline(always)]
    unsafe fn act(a: Activation, x: __m512) -> __m512 {
        // SAFETY: register operations (AVX-512F in the caller).
        unsafe {
            let half_x = _mm512_mul_ps(x, _mm512_set1_ps(0.5));
            match a {
                Activation::None => x,
                Activation::Relu => {
                    let neg = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, _mm512_setzero_ps());
                    _mm512_mask_blend_ps(neg, x, _mm512_setzero_ps())
                }
                Activation::Gelu => {
                    let u = _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::FRAC_1_SQRT_2));
                    _mm512_fmadd_ps(half_x, erf(u), half_x)
                }
                Activation::GeluTanh => {
                    let x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
                    let z = _mm512_mul_ps(
                        _mm512_fmadd_ps(x3, _mm512_set1_ps(GELU_TANH_CUBE), x),
                        _mm512_set1_ps(GELU_TANH_C),
                    );
                    // tanh(|z|) = (1 - e) / (1 + e), e = exp(-2|z|); the sign of z back on.
                    let sign = _mm512_set1_epi32(i32::MIN);
                    let zi = _mm512_castps_si512(z);
                    let az = _mm512_castsi512_ps(_mm512_andnot_si512(sign, zi));
                    let e = exp_neg(_mm512_mul_ps(az, _mm512_set1_ps(-2.0)));
                    let one = _mm512_set1_ps(1.0);
                    let t = _mm512_div_ps(_mm512_sub_ps(one, e), _mm512_add_ps(one, e));
                    let t = _mm512_castsi512_ps(_mm512_or_si512(
                        _mm512_castps_si512(t),
                        _mm512_and_si512(zi, sign),
                    ));
                    _mm512_fmadd_ps(half_x, t, half_x)
                }
            }
        }
    }

    /// See `super::apply`.
    ///
    /// # Safety
    /// As `super::apply`, with AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn apply(
        ep: &Epilogue,
        c: *mut f32,
        rsc: isize,
        rows: usize,
        cols: usize,
        i0: usize,
        j0: usize,
    ) {
        // SAFETY: every access is inside the tile, its bias columns or residual row (the
        // caller's contract); the last vector of a row is masked to the columns left.
        unsafe {
            for r in 0..rows {
                let out = c.offset(r as isize * rsc);
                let res = if ep.residual.is_null() {
                    std::ptr::null()
                } else {
                    ep.residual.offset((i0 + r) as isize * ep.rsr + j0 as isize)
                };
                let mut j = 0;
                while j < cols {
                    let left = cols - j;
                    let mask: __mmask16 = if left >= 16 {
                        0xffff
                    } else {
                        ((1u32 << left) - 1) as __mmask16
                    };
                    let mut v = _mm512_maskz_loadu_ps(mask, out.add(j));
                    if !ep.bias.is_null() {
                        v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, ep.bias.add(j0 + j)));
                    }
                    v = act(ep.act, v);
                    if !res.is_null() {
                        v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, res.add(j)));
                    }
                    _mm512_mask_storeu_ps(out.add(j), mask, v);
                    j += 16;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gelu_ref(x: f64) -> f64 {
        0.5 * x * (1.0 + libm_erf(x / std::f64::consts::SQRT_2))
    }

    /// erf in f64 by its Taylor series (|x| small) or continued fraction of erfc (large).
    fn libm_erf(x: f64) -> f64 {
        if x.abs() < 3.0 {
            let mut sum = 0.0f64;
            let mut term = x;
            let mut n = 0.0;
            while term.abs() > 1e-17 * sum.abs().max(1e-300) || n < 3.0 {
                sum += term / (2.0 * n + 1.0);
                n += 1.0;
                term *= -x * x / n;
                if n > 200.0 {
                    break;
                }
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            let t = x.abs();
            let mut f = 0.0;
            for k in (1..60).rev() {
                f = (k as f64 / 2.0) / (t + f);
            }
            let erfc = (-t * t).exp() / (t + f) / std::f64::consts::PI.sqrt();
            (1.0 - erfc).copysign(x)
        }
    }

    #[test]
    fn activations_match_their_definitions() {
        let xs: Vec<f32> = (-400..=400).map(|i| i as f32 * 0.0251).collect();
        let cols = xs.len();
        let bias: Vec<f32> = (0..cols).map(|j| (j % 7) as f32 * 0.01).collect();
        let res: Vec<f32> = (0..cols).map(|j| (j % 5) as f32 * -0.1).collect();
        for act in [
            Activation::None,
            Activation::Relu,
            Activation::Gelu,
            Activation::GeluTanh,
        ] {
            let mut c = xs.clone();
            let ep = Epilogue {
                bias: bias.as_ptr(),
                act,
                residual: res.as_ptr(),
                rsr: 0,
            };
            // SAFETY: one row of `cols` floats; bias and residual hold `cols`.
            unsafe { apply(&ep, c.as_mut_ptr(), 0, 1, cols, 0, 0) };
            for j in 0..cols {
                let v = (xs[j] + bias[j]) as f64;
                let y = match act {
                    Activation::None => v,
                    Activation::Relu => v.max(0.0),
                    Activation::Gelu => gelu_ref(v),
                    Activation::GeluTanh => {
                        let z = (2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v * v * v);
                        0.5 * v * (1.0 + z.tanh())
                    }
                } + res[j] as f64;
                // f32 rounding in x/2 · (1 + erf) is relative to x, not to the result.
                assert!(
                    (c[j] as f64 - y).abs() <= 3e-7 * (1.0 + v.abs()),
                    "{act:?} at x = {v}: {} vs {y}",
                    c[j]
                );
            }
        }
    }

    #[test]
    fn blocked_columns() {
        let l = CLayout {
            rsc: 64,
            block: 32,
            block_stride: 1000,
        };
        assert_eq!(l.col(0), 0);
        assert_eq!(l.col(31), 31);
        assert_eq!(l.col(32), 1000);
        assert_eq!(l.col(70), 2006);
        assert_eq!(l.run_from(40), 24);
        assert_eq!(CLayout::rows(5).col(70), 70);
    }
}
