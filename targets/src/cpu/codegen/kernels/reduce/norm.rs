//! Normalisation kernels.
//!
//! - [`norm_rows`]: layer and RMS normalisation of contiguous rows, with the com.microsoft
//!   residual forms (`s = x + skip (+ bias)`) and optional statistics outputs. Rows are
//!   walked three times (sum, centred squares, output): a row of a transformer's hidden size
//!   stays in L1, and the two-pass variance keeps f32 accuracy where `E[x^2] - mean^2`
//!   would cancel.
//! - [`channel_norm`]: instance and group normalisation over `[N, C, spatial]`.
//! - [`batch_norm`]: inference-mode batch normalisation.

use cranelift_codegen::ir::{types, InstBuilder, Type, Value};

use super::{fconst, float_arg, hfold, int_to_float, pin, Bin, Elem, Splat};
use crate::cpu::codegen::kernel::KernelBuilder;
use crate::error::TargetError;

/// Visits `n` contiguous elements: `f(ty, i)` on vector blocks, then single elements.
pub fn contiguous(
    kb: &mut KernelBuilder,
    e: Elem,
    n: Value,
    mut f: impl FnMut(&mut KernelBuilder, Type, Value) -> Result<(), TargetError>,
) -> Result<(), TargetError> {
    let zero = kb.iconst(0);
    let rest = match e.vector() {
        Some(vt) => kb.for_chunks(zero, n, e.lanes(), |kb, i| f(kb, vt, i))?,
        None => zero,
    };
    kb.for_range(rest, n, 1, |kb, i| f(kb, e.scalar(), i))
}

/// Sums `f(x_i)` over `n` contiguous elements at `row`; returns a scalar. Two vector
/// accumulators hide the add latency.
pub fn row_sum(
    kb: &mut KernelBuilder,
    e: Elem,
    row: Value,
    n: Value,
    mut f: impl FnMut(&mut KernelBuilder, Type, Value) -> Value,
) -> Result<Value, TargetError> {
    let st = e.scalar();
    let size = e.size();
    let zs = fconst(kb, st, 0.0);
    let acc_s = kb.var(st, zs);
    let zero = kb.iconst(0);
    let mut rest = zero;
    let mut vacc = None;
    if let Some(vt) = e.vector() {
        let zv = fconst(kb, vt, 0.0);
        let (a0, a1) = (kb.var(vt, zv), kb.var(vt, zv));
        let lanes = e.lanes();
        let r = kb.for_chunks(zero, n, 2 * lanes, |kb, i| {
            let p = kb.addr(row, i, size);
            for (k, acc) in [a0, a1].into_iter().enumerate() {
                let x = kb.b.ins().load(
                    vt,
                    crate::cpu::codegen::kernel::mem(),
                    p,
                    (k as i64 * lanes * size) as i32,
                );
                let y = f(kb, vt, x);
                let v = kb.b.use_var(acc);
                let v = kb.b.ins().fadd(v, y);
                kb.b.def_var(acc, v);
            }
            Ok(())
        })?;
        let r = kb.for_chunks(r, n, lanes, |kb, i| {
            let p = kb.addr(row, i, size);
            let x = e.load(kb, vt, p);
            let y = f(kb, vt, x);
            let v = kb.b.use_var(a0);
            let v = kb.b.ins().fadd(v, y);
            kb.b.def_var(a0, v);
            Ok(())
        })?;
        rest = r;
        vacc = Some((a0, a1));
    }
    kb.for_range(rest, n, 1, |kb, i| {
        let p = kb.addr(row, i, size);
        let x = e.load(kb, st, p);
        let y = f(kb, st, x);
        let v = kb.b.use_var(acc_s);
        let v = kb.b.ins().fadd(v, y);
        kb.b.def_var(acc_s, v);
        Ok(())
    })?;
    let mut r = kb.b.use_var(acc_s);
    if let Some((a0, a1)) = vacc {
        let v0 = kb.b.use_var(a0);
        let v1 = kb.b.use_var(a1);
        let v = kb.b.ins().fadd(v0, v1);
        let h = hfold(kb, e, Bin::Add, v);
        r = kb.b.ins().fadd(h, r);
    }
    Ok(r)
}

/// What [`norm_rows`] computes; every flag is part of the kernel key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NormSpec {
    /// RMS normalisation (no centring) instead of layer normalisation.
    pub rms: bool,
    /// The scale has one value for the whole row (else one per element).
    pub scalar_scale: bool,
    /// A bias (beta) is added after scaling; `scalar_bias`: one value for the row.
    pub beta: bool,
    pub scalar_beta: bool,
    /// The normalised row is `x + skip (+ in_bias)`.
    pub skip: bool,
    pub in_bias: bool,
    /// Write the row sum `x + skip (+ bias)`.
    pub out_sum: bool,
    /// Write the mean / the inverse standard deviation per row, as `stat`.
    pub out_mean: bool,
    pub out_inv: bool,
    pub stat: Elem,
}

/// Row normalisation of rows `begin..end`. Args: `[x, y, begin, end, n, eps_bits, scale,
/// beta, skip, skip_rows, in_bias, sum_out, mean_out, inv_out]` (unused pointers may be 0;
/// the layout `parallel_rows` splits). Row `r` adds skip row `r % skip_rows`.
pub fn norm_rows(kb: &mut KernelBuilder, e: Elem, spec: NormSpec) -> Result<(), TargetError> {
    let st = e.scalar();
    let size = e.size();
    let x = kb.arg(0);
    let y = kb.arg(1);
    let begin = kb.arg(2);
    let end = kb.arg(3);
    let n = kb.arg(4);
    let eps = float_arg(kb, 5, st);
    let scale = kb.arg(6);
    let beta = kb.arg(7);
    let skip = kb.arg(8);
    let skip_rows = kb.arg(9);
    let in_bias = kb.arg(10);
    let sum_out = kb.arg(11);
    let mean_out = kb.arg(12);
    let inv_out = kb.arg(13);
    let nf = int_to_float(kb, st, n);
    let one = fconst(kb, st, 1.0);
    let inv_n = kb.b.ins().fdiv(one, nf);
    // An empty skip (only with mismatched shapes) leaves nothing to add: no rows run, and
    // no division by zero.
    let end = if spec.skip {
        let none =
            kb.b.ins()
                .icmp_imm_s(cranelift_codegen::ir::condcodes::IntCC::Equal, skip_rows, 0);
        kb.b.ins().select(none, begin, end)
    } else {
        end
    };
    kb.for_range(begin, end, 1, |kb, r| {
        let off = kb.b.ins().imul(r, n);
        let xr = kb.addr(x, off, size);
        let xr = pin(kb, xr);
        let yr = kb.addr(y, off, size);
        let yr = pin(kb, yr);
        // The row to normalise: x itself, or x + skip (+ bias) stored in sum_out or y.
        let src = if spec.skip {
            let dst = if spec.out_sum {
                kb.addr(sum_out, off, size)
            } else {
                yr
            };
            let sr = kb.b.ins().urem(r, skip_rows);
            let so = kb.b.ins().imul(sr, n);
            let skr = kb.addr(skip, so, size);
            let skr = pin(kb, skr);
            let dst = pin(kb, dst);
            contiguous(kb, e, n, |kb, ty, i| {
                let a = kb.addr(xr, i, size);
                let v = e.load(kb, ty, a);
                let a = kb.addr(skr, i, size);
                let s = e.load(kb, ty, a);
                let mut v = kb.b.ins().fadd(v, s);
                if spec.in_bias {
                    let a = kb.addr(in_bias, i, size);
                    let b = e.load(kb, ty, a);
                    v = kb.b.ins().fadd(v, b);
                }
                let a = kb.addr(dst, i, size);
                e.store(kb, v, a);
                Ok(())
            })?;
            dst
        } else {
            xr
        };
        let (mean, inv) = if spec.rms {
            let ss = row_sum(kb, e, src, n, |kb, _, v| kb.b.ins().fmul(v, v))?;
            let ms = kb.b.ins().fmul(ss, inv_n);
            let t = kb.b.ins().fadd(ms, eps);
            let t = kb.b.ins().sqrt(t);
            let one = fconst(kb, st, 1.0);
            (fconst(kb, st, 0.0), kb.b.ins().fdiv(one, t))
        } else {
            let s = row_sum(kb, e, src, n, |_, _, v| v)?;
            let mean = kb.b.ins().fmul(s, inv_n);
            let ms = Splat::new(kb, e, mean);
            let ss = row_sum(kb, e, src, n, |kb, ty, v| {
                let d = kb.b.ins().fsub(v, ms.get(ty));
                kb.b.ins().fmul(d, d)
            })?;
            let var = kb.b.ins().fmul(ss, inv_n);
            let t = kb.b.ins().fadd(var, eps);
            let t = kb.b.ins().sqrt(t);
            let one = fconst(kb, st, 1.0);
            (mean, kb.b.ins().fdiv(one, t))
        };
        let scale0 = if spec.scalar_scale {
            let v = e.load(kb, st, scale);
            let k = kb.b.ins().fmul(v, inv);
            Some(Splat::new(kb, e, k))
        } else {
            None
        };
        let beta0 = if spec.beta && spec.scalar_beta {
            let b = e.load(kb, st, beta);
            Some(Splat::new(kb, e, b))
        } else {
            None
        };
        let mean_s = Splat::new(kb, e, mean);
        let inv_s = Splat::new(kb, e, inv);
        contiguous(kb, e, n, |kb, ty, i| {
            let a = kb.addr(src, i, size);
            let v = e.load(kb, ty, a);
            let v = if spec.rms {
                v
            } else {
                kb.b.ins().fsub(v, mean_s.get(ty))
            };
            let k = match scale0 {
                Some(k) => k.get(ty),
                None => {
                    let a = kb.addr(scale, i, size);
                    let g = e.load(kb, ty, a);
                    kb.b.ins().fmul(g, inv_s.get(ty))
                }
            };
            let mut out = kb.b.ins().fmul(v, k);
            if spec.beta {
                let b = match beta0 {
                    Some(b) => b.get(ty),
                    None => {
                        let a = kb.addr(beta, i, size);
                        e.load(kb, ty, a)
                    }
                };
                out = kb.b.ins().fadd(out, b);
            }
            let a = kb.addr(yr, i, size);
            e.store(kb, out, a);
            Ok(())
        })?;
        let stat_ty = spec.stat.scalar();
        let conv = |kb: &mut KernelBuilder, v: Value| {
            if stat_ty == st {
                v
            } else if stat_ty == types::F64 {
                kb.b.ins().fpromote(types::F64, v)
            } else {
                kb.b.ins().fdemote(types::F32, v)
            }
        };
        if spec.out_mean {
            let a = kb.addr(mean_out, r, spec.stat.size());
            let m = conv(kb, mean);
            spec.stat.store(kb, m, a);
        }
        if spec.out_inv {
            let a = kb.addr(inv_out, r, spec.stat.size());
            let m = conv(kb, inv);
            spec.stat.store(kb, m, a);
        }
        Ok(())
    })
}

/// Instance / group normalisation of `[N, C, S]` with `C = groups * per`: statistics over
/// each group's `per * S` elements, then `y = (x - mean) * inv * scale[c] + bias[c]`.
/// Args: `[x, y, scale, bias, eps_bits, N, groups, per, S]`. With `group_params` the scale
/// and bias hold one value per group instead of per channel.
pub fn channel_norm(
    kb: &mut KernelBuilder,
    e: Elem,
    group_params: bool,
) -> Result<(), TargetError> {
    let st = e.scalar();
    let size = e.size();
    let (x, y, scale, bias) = (kb.arg(0), kb.arg(1), kb.arg(2), kb.arg(3));
    let eps = float_arg(kb, 4, st);
    let (nb, groups, per, sp) = (kb.arg(5), kb.arg(6), kb.arg(7), kb.arg(8));
    let len = kb.b.ins().imul(per, sp);
    let lf = int_to_float(kb, st, len);
    let one = fconst(kb, st, 1.0);
    let inv_len = kb.b.ins().fdiv(one, lf);
    let rows = kb.b.ins().imul(nb, groups);
    let zero = kb.iconst(0);
    kb.for_range(zero, rows, 1, |kb, r| {
        let g = kb.b.ins().urem(r, groups);
        let off = kb.b.ins().imul(r, len);
        let xr = kb.addr(x, off, size);
        let yr = kb.addr(y, off, size);
        let xr = pin(kb, xr);
        let yr = pin(kb, yr);
        let s = row_sum(kb, e, xr, len, |_, _, v| v)?;
        let mean = kb.b.ins().fmul(s, inv_len);
        let ms = Splat::new(kb, e, mean);
        let ss = row_sum(kb, e, xr, len, |kb, ty, v| {
            let d = kb.b.ins().fsub(v, ms.get(ty));
            kb.b.ins().fmul(d, d)
        })?;
        let var = kb.b.ins().fmul(ss, inv_len);
        let t = kb.b.ins().fadd(var, eps);
        let t = kb.b.ins().sqrt(t);
        let one = fconst(kb, st, 1.0);
        let inv = kb.b.ins().fdiv(one, t);
        let z = kb.iconst(0);
        kb.for_range(z, per, 1, |kb, c| {
            let p = if group_params {
                g
            } else {
                let gp = kb.b.ins().imul(g, per);
                kb.b.ins().iadd(gp, c)
            };
            let a = kb.addr(scale, p, size);
            let k = e.load(kb, st, a);
            let k = kb.b.ins().fmul(k, inv);
            let a = kb.addr(bias, p, size);
            let b = e.load(kb, st, a);
            let mk = kb.b.ins().fmul(mean, k);
            let b = kb.b.ins().fsub(b, mk);
            let co = kb.b.ins().imul(c, sp);
            let xc = kb.addr(xr, co, size);
            let yc = kb.addr(yr, co, size);
            affine(kb, e, xc, yc, sp, k, b)
        })
    })
}

/// `y[i] = x[i] * k + b` over `n` contiguous elements.
fn affine(
    kb: &mut KernelBuilder,
    e: Elem,
    x: Value,
    y: Value,
    n: Value,
    k: Value,
    b: Value,
) -> Result<(), TargetError> {
    let size = e.size();
    let (x, y) = (pin(kb, x), pin(kb, y));
    let (k, b) = (Splat::new(kb, e, k), Splat::new(kb, e, b));
    contiguous(kb, e, n, |kb, ty, i| {
        let a = kb.addr(x, i, size);
        let v = e.load(kb, ty, a);
        let v = kb.b.ins().fmul(v, k.get(ty));
        let v = kb.b.ins().fadd(v, b.get(ty));
        let a = kb.addr(y, i, size);
        e.store(kb, v, a);
        Ok(())
    })
}

/// Inference batch normalisation of `[N, C, S]`:
/// `y = (x - mean[c]) * scale[c] / sqrt(var[c] + eps) + bias[c]`.
/// Args: `[x, y, scale, bias, mean, var, eps_bits, N, C, S]`.
pub fn batch_norm(kb: &mut KernelBuilder, e: Elem) -> Result<(), TargetError> {
    let st = e.scalar();
    let size = e.size();
    let (x, y, scale, bias, mean, var) = (
        kb.arg(0),
        kb.arg(1),
        kb.arg(2),
        kb.arg(3),
        kb.arg(4),
        kb.arg(5),
    );
    let eps = float_arg(kb, 6, st);
    let (nb, c, sp) = (kb.arg(7), kb.arg(8), kb.arg(9));
    let rows = kb.b.ins().imul(nb, c);
    let zero = kb.iconst(0);
    kb.for_range(zero, rows, 1, |kb, r| {
        let ch = kb.b.ins().urem(r, c);
        let ld = |kb: &mut KernelBuilder, p: Value| {
            let a = kb.addr(p, ch, size);
            e.load(kb, st, a)
        };
        let (g, b, m, v) = (ld(kb, scale), ld(kb, bias), ld(kb, mean), ld(kb, var));
        let t = kb.b.ins().fadd(v, eps);
        let t = kb.b.ins().sqrt(t);
        let k = kb.b.ins().fdiv(g, t);
        let mk = kb.b.ins().fmul(m, k);
        let b = kb.b.ins().fsub(b, mk);
        let off = kb.b.ins().imul(r, sp);
        let xr = kb.addr(x, off, size);
        let yr = kb.addr(y, off, size);
        affine(kb, e, xr, yr, sp, k, b)
    })
}

/// Training-mode batch normalisation of `[N, C, S]`: per-channel mean and (population)
/// variance over `N` and `S`, `y = (x - mean) * scale / sqrt(var + eps) + bias`, and the
/// running statistics `in * momentum + batch * (1 - momentum)`.
/// Args: `[x, y, scale, bias, in_mean, in_var, eps_bits, momentum_bits, N, C, S,
/// mean_out, var_out]` (the outputs may be 0 when `running` is false).
pub fn batch_norm_train(kb: &mut KernelBuilder, e: Elem, running: bool) -> Result<(), TargetError> {
    let st = e.scalar();
    let size = e.size();
    let (x, y, scale, bias) = (kb.arg(0), kb.arg(1), kb.arg(2), kb.arg(3));
    let (in_mean, in_var) = (kb.arg(4), kb.arg(5));
    let eps = float_arg(kb, 6, st);
    let momentum = float_arg(kb, 7, st);
    let (nb, c, sp) = (kb.arg(8), kb.arg(9), kb.arg(10));
    let (mean_out, var_out) = (kb.arg(11), kb.arg(12));
    let count = kb.b.ins().imul(nb, sp);
    let cf = int_to_float(kb, st, count);
    let one = fconst(kb, st, 1.0);
    let inv_count = kb.b.ins().fdiv(one, cf);
    let zero = kb.iconst(0);
    kb.for_range(zero, c, 1, |kb, ch| {
        // The row of batch item b, channel ch.
        let row = |kb: &mut KernelBuilder, base: Value, b: Value| {
            let r = kb.b.ins().imul(b, c);
            let r = kb.b.ins().iadd(r, ch);
            let r = kb.b.ins().imul(r, sp);
            kb.addr(base, r, size)
        };
        let z = fconst(kb, st, 0.0);
        let total = kb.var(st, z);
        let zi = kb.iconst(0);
        kb.for_range(zi, nb, 1, |kb, b| {
            let xr = row(kb, x, b);
            let xr = pin(kb, xr);
            let s = row_sum(kb, e, xr, sp, |_, _, v| v)?;
            let t = kb.b.use_var(total);
            let t = kb.b.ins().fadd(t, s);
            kb.b.def_var(total, t);
            Ok(())
        })?;
        let t = kb.b.use_var(total);
        let mean = kb.b.ins().fmul(t, inv_count);
        let ms = Splat::new(kb, e, mean);
        let z = fconst(kb, st, 0.0);
        let sq = kb.var(st, z);
        let zi = kb.iconst(0);
        kb.for_range(zi, nb, 1, |kb, b| {
            let xr = row(kb, x, b);
            let xr = pin(kb, xr);
            let s = row_sum(kb, e, xr, sp, |kb, ty, v| {
                let d = kb.b.ins().fsub(v, ms.get(ty));
                kb.b.ins().fmul(d, d)
            })?;
            let t = kb.b.use_var(sq);
            let t = kb.b.ins().fadd(t, s);
            kb.b.def_var(sq, t);
            Ok(())
        })?;
        let t = kb.b.use_var(sq);
        let var = kb.b.ins().fmul(t, inv_count);
        let ld = |kb: &mut KernelBuilder, p: Value| {
            let a = kb.addr(p, ch, size);
            e.load(kb, st, a)
        };
        let (g, bi) = (ld(kb, scale), ld(kb, bias));
        let t = kb.b.ins().fadd(var, eps);
        let t = kb.b.ins().sqrt(t);
        let k = kb.b.ins().fdiv(g, t);
        let mk = kb.b.ins().fmul(mean, k);
        let bb = kb.b.ins().fsub(bi, mk);
        let zi = kb.iconst(0);
        kb.for_range(zi, nb, 1, |kb, b| {
            let xr = row(kb, x, b);
            let yr = row(kb, y, b);
            affine(kb, e, xr, yr, sp, k, bb)
        })?;
        if running {
            let one = fconst(kb, st, 1.0);
            let rest = kb.b.ins().fsub(one, momentum);
            for (inp, batch, out) in [(in_mean, mean, mean_out), (in_var, var, var_out)] {
                let v = ld(kb, inp);
                let v = kb.b.ins().fmul(v, momentum);
                let w = kb.b.ins().fmul(batch, rest);
                let v = kb.b.ins().fadd(v, w);
                let a = kb.addr(out, ch, size);
                e.store(kb, v, a);
            }
        }
        Ok(())
    })
}

/// Nested loops over `(size, stride_a, stride_b)` triples, outermost first: calls `body`
/// with both running offsets.
fn nest2(
    kb: &mut KernelBuilder,
    dims: &[(Value, Value, Value)],
    (a, b): (Value, Value),
    body: &mut dyn FnMut(&mut KernelBuilder, Value, Value) -> Result<(), TargetError>,
) -> Result<(), TargetError> {
    match dims.split_first() {
        None => body(kb, a, b),
        Some((&(n, sa, sb), rest)) => {
            let zero = kb.iconst(0);
            kb.for_range(zero, n, 1, |kb, i| {
                let oa = kb.b.ins().imul(i, sa);
                let oa = kb.b.ins().iadd(a, oa);
                let ob = kb.b.ins().imul(i, sb);
                let ob = kb.b.ins().iadd(b, ob);
                nest2(kb, rest, (oa, ob), body)
            })
        }
    }
}

/// `MeanVarianceNormalization`: `y = (x - mean) / (sqrt(var) + 1e-9)` with statistics over
/// the reduced groups of `pattern` (as for reductions). Scalar code.
/// Args: `[x, y, mean_scratch, std_scratch, size_0, .., size_{m-1}]`; the scratch buffers
/// hold one value per combination of kept groups.
pub fn mvn(kb: &mut KernelBuilder, e: Elem, pattern: &[bool]) -> Result<(), TargetError> {
    let st = e.scalar();
    let size = e.size();
    let (x, y, mean, sd) = (kb.arg(0), kb.arg(1), kb.arg(2), kb.arg(3));
    let m = pattern.len();
    let sizes: Vec<Value> = (0..m).map(|i| kb.arg(4 + i)).collect();
    let mut src_strides = vec![kb.iconst(1); m];
    for i in (0..m.saturating_sub(1)).rev() {
        src_strides[i] = kb.b.ins().imul(src_strides[i + 1], sizes[i + 1]);
    }
    let zero = kb.iconst(0);
    let mut stat_strides = vec![zero; m];
    let mut acc = kb.iconst(1);
    let mut count = kb.iconst(1);
    for i in (0..m).rev() {
        if pattern[i] {
            count = kb.b.ins().imul(count, sizes[i]);
        } else {
            stat_strides[i] = acc;
            acc = kb.b.ins().imul(acc, sizes[i]);
        }
    }
    let stats = acc;
    let dims: Vec<(Value, Value, Value)> = (0..m)
        .map(|i| (sizes[i], src_strides[i], stat_strides[i]))
        .collect();
    let cf = int_to_float(kb, st, count);
    kb.for_range(zero, stats, 1, |kb, s| {
        let z = fconst(kb, st, 0.0);
        for p in [mean, sd] {
            let a = kb.addr(p, s, size);
            e.store(kb, z, a);
        }
        Ok(())
    })?;
    // Accumulates f(x, mean) into `into` over every element.
    let accumulate =
        |kb: &mut KernelBuilder, into: Value, centred: bool| -> Result<(), TargetError> {
            let z = kb.iconst(0);
            nest2(kb, &dims, (z, z), &mut |kb, so, to| {
                let a = kb.addr(x, so, size);
                let v = e.load(kb, st, a);
                let v = if centred {
                    let ma = kb.addr(mean, to, size);
                    let mv = e.load(kb, st, ma);
                    let d = kb.b.ins().fsub(v, mv);
                    kb.b.ins().fmul(d, d)
                } else {
                    v
                };
                let ta = kb.addr(into, to, size);
                let t = e.load(kb, st, ta);
                let t = kb.b.ins().fadd(t, v);
                e.store(kb, t, ta);
                Ok(())
            })
        };
    accumulate(kb, mean, false)?;
    kb.for_range(zero, stats, 1, |kb, s| {
        let a = kb.addr(mean, s, size);
        let v = e.load(kb, st, a);
        let v = kb.b.ins().fdiv(v, cf);
        e.store(kb, v, a);
        Ok(())
    })?;
    accumulate(kb, sd, true)?;
    kb.for_range(zero, stats, 1, |kb, s| {
        let a = kb.addr(sd, s, size);
        let v = e.load(kb, st, a);
        let v = kb.b.ins().fdiv(v, cf);
        let v = kb.b.ins().sqrt(v);
        let tiny = fconst(kb, st, 1e-9);
        let v = kb.b.ins().fadd(v, tiny);
        e.store(kb, v, a);
        Ok(())
    })?;
    let z = kb.iconst(0);
    nest2(kb, &dims, (z, z), &mut |kb, so, to| {
        let a = kb.addr(x, so, size);
        let v = e.load(kb, st, a);
        let ma = kb.addr(mean, to, size);
        let mv = e.load(kb, st, ma);
        let sa = kb.addr(sd, to, size);
        let sv = e.load(kb, st, sa);
        let d = kb.b.ins().fsub(v, mv);
        let r = kb.b.ins().fdiv(d, sv);
        let a = kb.addr(y, so, size);
        e.store(kb, r, a);
        Ok(())
    })
}
