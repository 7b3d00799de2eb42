//! `rope(x, cos, sin) {interleaved = 0, rotary_dim?}`: rotary position embedding over the
//! last axis.
//!
//! - `x`: float `[..., S, D]`, rank >= 2, usually `[batch, heads, seq, head_dim]`.
//! - `cos`, `sin`: float `[..., S, R/2]` (already gathered for the positions, one angle per
//!   rotated pair), where `cos.shape[..-1]` numpy-broadcasts to `x.shape[..-1]` without
//!   changing it: `[S, R/2]`, `[batch, 1, S, R/2]`, ... Same shape for both.
//! - `rotary_dim` (int, optional): `R`, the number of leading elements of the last axis that
//!   are rotated; default (and the only value accepted) `2 * cos.shape[-1]`; must be even
//!   and `<= D`. Elements `R..D` pass through unchanged (partial rotary, e.g. Phi, GLM).
//! - `interleaved` (int, default 0): how the first `R` elements form pairs. With
//!   `h = R/2`, `c = cos[..., p]`, `s = sin[..., p]` for pair `p in 0..h`:
//!
//! ```text
//! interleaved = 0 (halves, "rotate_half", GPT-NeoX / LLaMA in HF):
//!     pair p = (x[p], x[p + h])
//!     y[p]     = x[p] * c - x[p + h] * s
//!     y[p + h] = x[p + h] * c + x[p] * s
//! interleaved = 1 (adjacent pairs, GPT-J / Meta LLaMA / DeepSeek-V3's MLA rope):
//!     pair p = (x[2p], x[2p + 1])
//!     y[2p]     = x[2p] * c - x[2p + 1] * s
//!     y[2p + 1] = x[2p + 1] * c + x[2p] * s
//! ```
//!
//! Output: x's dtype and shape; computed in f64. Equals ONNX `RotaryEmbedding` (opset 23)
//! and `com.microsoft.RotaryEmbedding` with the cos/sin caches already gathered by
//! position (fusion inserts the `Gather` of the cache by position ids).

use crate::attr::AttrsExt;
use crate::bail;
use crate::ops::{EvalCtx, InferCtx, OpResult};
use crate::tensor::Tensor;
use crate::types::{broadcast_concrete, broadcast_shapes, ValueType};

use super::{broadcast_index, float_input, float_tensor};

/// `interleaved` and `rotary_dim` checked against x's last dim `d` and cos's last dim `half`.
fn attrs_of(attrs: &crate::attr::Attrs, d: Option<i64>, half: Option<i64>) -> OpResult<bool> {
    let inter = match attrs.int_or("interleaved", 0)? {
        0 => false,
        1 => true,
        v => bail!("interleaved must be 0 or 1, got {v}"),
    };
    if let Some(r) = attrs.int("rotary_dim")? {
        if r <= 0 || r % 2 != 0 {
            bail!("rotary_dim must be even and > 0, got {r}");
        }
        if let Some(h) = half {
            if r != 2 * h {
                bail!("rotary_dim {r} differs from 2 * cos.shape[-1] = {}", 2 * h);
            }
        }
    }
    if let (Some(d), Some(h)) = (d, half) {
        if 2 * h > d {
            bail!("rotary dim {} exceeds the last dim {d} of x", 2 * h);
        }
    }
    Ok(inter)
}

pub fn infer(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = float_input(ctx, 0)?;
    let c = float_input(ctx, 1)?;
    let s = float_input(ctx, 2)?;
    if x.rank() < 2 {
        bail!("x must have rank >= 2, got {x}");
    }
    if c.rank() < 2 || c.shape != s.shape {
        bail!("cos {c} and sin {s} must have the same shape, of rank >= 2");
    }
    let lead = &x.shape[..x.rank() - 1];
    match broadcast_shapes(&[lead, &c.shape[..c.rank() - 1]]) {
        Some(b) if b.as_slice() == lead => {}
        _ => bail!("cos {c} does not broadcast to x {x} (ignoring the last axis)"),
    }
    let last = |t: &ValueType| t.shape[t.rank() - 1].as_const();
    attrs_of(ctx.attrs, last(x), last(c))?;
    Ok(vec![x.clone()])
}

pub fn eval(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = float_tensor(ctx, 0)?;
    let c = float_tensor(ctx, 1)?;
    let s = float_tensor(ctx, 2)?;
    if x.rank() < 2 || c.rank() < 2 || c.shape() != s.shape() {
        bail!("rope needs x of rank >= 2 and cos, sin of the same shape, rank >= 2");
    }
    let d = x.shape()[x.rank() - 1];
    let half = c.shape()[c.rank() - 1];
    let inter = attrs_of(ctx.attrs, Some(d as i64), Some(half as i64))?;
    let lead = &x.shape()[..x.rank() - 1];
    let clead = &c.shape()[..c.rank() - 1];
    if broadcast_concrete(&[lead, clead]).as_deref() != Some(lead) {
        bail!(
            "cos {:?} does not broadcast to x {:?}",
            c.shape(),
            x.shape()
        );
    }
    // Row r of x uses row rows[r] of cos/sin.
    let rows = broadcast_index(lead, clead);
    let (xv, cv, sv) = (x.to_f64(), c.to_f64(), s.to_f64());
    let mut y = xv.clone();
    if d > 0 {
        for (r, (xs, ys)) in xv.chunks(d).zip(y.chunks_mut(d)).enumerate() {
            let cr = &cv[rows[r] * half..(rows[r] + 1) * half];
            let sr = &sv[rows[r] * half..(rows[r] + 1) * half];
            for p in 0..half {
                let (i, j) = if inter {
                    (2 * p, 2 * p + 1)
                } else {
                    (p, p + half)
                };
                ys[i] = xs[i] * cr[p] - xs[j] * sr[p];
                ys[j] = xs[j] * cr[p] + xs[i] * sr[p];
            }
        }
    }
    Ok(vec![Tensor::from_f64(x.dtype(), x.shape().to_vec(), &y)])
}

#[cfg(test)]
mod tests {
    use crate::attr::Attr;
    use crate::dtype::DType;
    use crate::ops::fused::test_util::G;
    use crate::ops::reduce::test_util::*;
    use crate::tensor::Tensor;

    #[test]
    fn halves_and_interleaved_with_pass_through() {
        // One row x = [1, 2, 3, 4, 5, 6], rotary dim 4 (two pairs), tail [5, 6] passes.
        // Pair 0: cos 0, sin 1 (90 degrees). Pair 1: cos 1, sin 0 (identity).
        let x = f32s(&[1, 6], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let c = f32s(&[1, 2], &[0.0, 1.0]);
        let s = f32s(&[1, 2], &[1.0, 0.0]);
        let ins = [Some(x), Some(c), Some(s)];
        // Halves: pairs (x0, x2) and (x1, x3): y0 = -3, y2 = 1; y1 = 2, y3 = 4.
        let y = run1("rope", &attrs(&[]), &ins).unwrap();
        assert_close(&y, &[1, 6], &[-3.0, 2.0, 1.0, 4.0, 5.0, 6.0], 0.0);
        // Interleaved: pairs (x0, x1) and (x2, x3): y0 = -2, y1 = 1; y2 = 3, y3 = 4.
        let a = attrs(&[("interleaved", Attr::Int(1)), ("rotary_dim", Attr::Int(4))]);
        let y = run1("rope", &a, &ins).unwrap();
        assert_close(&y, &[1, 6], &[-2.0, 1.0, 3.0, 4.0, 5.0, 6.0], 0.0);
        let a = attrs(&[("rotary_dim", Attr::Int(6))]);
        assert!(run1("rope", &a, &ins).is_err());
    }

    #[test]
    fn cos_broadcasts_over_batch_and_heads() {
        // x [1, 2, 2, 2]: two heads, two positions; angle 0 at position 0, 90 at position 1.
        let x = f32s(&[1, 2, 2, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
        let c = f32s(&[2, 1], &[1.0, 0.0]);
        let s = f32s(&[2, 1], &[0.0, 1.0]);
        let y = run1("rope", &attrs(&[]), &[Some(x), Some(c), Some(s)]).unwrap();
        let want = [1.0, 2.0, -4.0, 3.0, 5.0, 6.0, -8.0, 7.0];
        assert_close(&y, &[1, 2, 2, 2], &want, 0.0);
    }

    /// rope (halves) == x * cat(cos, cos) + rotate_half(x) * cat(sin, sin), spelled with
    /// Slice, Neg, Concat, Mul, Add as HF exports it.
    #[test]
    fn equals_onnx_spelling() {
        let (b, h, s, d) = (2usize, 2usize, 3usize, 4usize);
        let xs: Vec<f64> = (0..b * h * s * d)
            .map(|i| (i as f64 * 0.37).sin())
            .collect();
        let x = Tensor::from_f64(DType::F32, vec![b, h, s, d], &xs);
        let ang: Vec<f64> = (0..s * d / 2).map(|i| i as f64 * 0.5).collect();
        let cos = Tensor::from_f64(
            DType::F32,
            vec![s, d / 2],
            &ang.iter().map(|a| a.cos()).collect::<Vec<_>>(),
        );
        let sin = Tensor::from_f64(
            DType::F32,
            vec![s, d / 2],
            &ang.iter().map(|a| a.sin()).collect::<Vec<_>>(),
        );
        let mut g = G::new();
        let (vx, vc, vs) = (g.input("x", &x), g.input("cos", &cos), g.input("sin", &sin));
        let k = |g: &mut G, v: &[i64]| {
            let t = i64s(&[v.len()], v);
            g.op("constant", attrs(&[("value", Attr::Tensor(t.into()))]), &[])
        };
        let last = attrs(&[("axis", Attr::Int(-1))]);
        let cc = g.op("Concat", last.clone(), &[Some(vc), Some(vc)]);
        let ss = g.op("Concat", last.clone(), &[Some(vs), Some(vs)]);
        let (z, m, e, ax) = (
            k(&mut g, &[0]),
            k(&mut g, &[2]),
            k(&mut g, &[4]),
            k(&mut g, &[-1]),
        );
        let x1 = g.op("Slice", attrs(&[]), &[Some(vx), Some(z), Some(m), Some(ax)]);
        let x2 = g.op("Slice", attrs(&[]), &[Some(vx), Some(m), Some(e), Some(ax)]);
        let nx2 = g.op("Neg", attrs(&[]), &[Some(x2)]);
        let rot = g.op("Concat", last, &[Some(nx2), Some(x1)]);
        let a1 = g.op("Mul", attrs(&[]), &[Some(vx), Some(cc)]);
        let a2 = g.op("Mul", attrs(&[]), &[Some(rot), Some(ss)]);
        let want = g.op("Add", attrs(&[]), &[Some(a1), Some(a2)]);
        let got = g.op("rope", attrs(&[]), &[Some(vx), Some(vc), Some(vs)]);
        let out = g.run(&[want, got]);
        assert_close(&out[1], &[b, h, s, d], &out[0].to_f64(), 1e-6);
    }
}
