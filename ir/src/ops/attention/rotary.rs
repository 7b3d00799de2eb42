//! ONNX `RotaryEmbedding` (opset 23).
//!
//! X is 4-D `(batch, heads, seq, head_size)` or 3-D `(batch, seq, heads * head_size)` with the
//! `num_heads` attribute. The first `rotary_embedding_dim` (default: all) values of each head
//! are rotated, pairwise as halves or interleaved; the rest pass through. With `position_ids`
//! `(batch, seq)` the caches are `(max_position + 1, rotary_dim / 2)` tables indexed by
//! position; without, they hold the values per token directly: `(batch, seq, rotary_dim / 2)`
//! (a batch of 1 is shared by every entry).

use crate::attr::AttrsExt;
use crate::bail;
use crate::ops::{EvalCtx, InferCtx, OpResult};
use crate::tensor::Tensor;
use crate::types::ValueType;

use super::common::{float_input, float_input_type, rotate};

pub(crate) fn infer(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = float_input_type(ctx, 0, "X", &[3, 4])?;
    float_input_type(ctx, 1, "cos_cache", &[2, 3])?;
    float_input_type(ctx, 2, "sin_cache", &[2, 3])?;
    if x.rank() == 3 && ctx.attrs.int_or("num_heads", 0)? <= 0 {
        bail!("a 3-D input needs the `num_heads` attribute");
    }
    Ok(vec![x.clone()])
}

pub(crate) fn eval(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x_t = float_input(ctx, 0, "X", &[3, 4])?;
    let cos_t = float_input(ctx, 1, "cos_cache", &[2, 3])?;
    let sin_t = float_input(ctx, 2, "sin_cache", &[2, 3])?;
    if cos_t.shape() != sin_t.shape() {
        bail!(
            "cos_cache {:?} and sin_cache {:?} differ in shape",
            cos_t.shape(),
            sin_t.shape()
        );
    }
    let interleaved = ctx.attrs.int_or("interleaved", 0)? != 0;
    let s = x_t.shape();
    // (batch, seq, heads, head_size) and the strides of X for each.
    let (b, seq, n, h, strides) = if x_t.rank() == 4 {
        let (b, n, seq, h) = (s[0], s[1], s[2], s[3]);
        (b, seq, n, h, [n * seq * h, h, seq * h])
    } else {
        let n = ctx.attrs.int_or("num_heads", 0)?;
        if n <= 0 {
            bail!("a 3-D input needs the `num_heads` attribute");
        }
        let n = n as usize;
        if s[2] % n != 0 {
            bail!("hidden size {} is not divisible by num_heads {n}", s[2]);
        }
        let h = s[2] / n;
        (s[0], s[1], n, h, [s[1] * s[2], s[2], h])
    };
    let rd = match ctx.attrs.int_or("rotary_embedding_dim", 0)? {
        0 => h,
        r if r > 0 && r as usize <= h && r % 2 == 0 => r as usize,
        r => bail!("rotary_embedding_dim {r} must be even and at most the head size {h}"),
    };
    let half = rd / 2;
    let cs = cos_t.shape();
    if cs[cs.len() - 1] != half {
        bail!(
            "cos_cache's last dim ({}) must be rotary_embedding_dim / 2 ({half})",
            cs[cs.len() - 1]
        );
    }
    let cos = cos_t.to_f64();
    let sin = sin_t.to_f64();
    // The row of the caches for token (batch, position in sequence).
    let row: Box<dyn Fn(usize, usize) -> OpResult<usize>> = match ctx.opt_input(3) {
        Some(p) => {
            if cos_t.rank() != 2 {
                bail!("with position_ids the caches must be 2-D, got {cs:?}");
            }
            if p.shape() != [b, seq] || !p.dtype().is_int() {
                bail!(
                    "position_ids must be integers of shape ({b}, {seq}), got {} {:?}",
                    p.dtype(),
                    p.shape()
                );
            }
            let pos = p.to_i64();
            let rows = cs[0];
            Box::new(move |bi, si| {
                let v = pos[bi * seq + si];
                if v < 0 || v as usize >= rows {
                    bail!("position id {v} is out of range for a cache of {rows} positions");
                }
                Ok(v as usize)
            })
        }
        None => {
            if cos_t.rank() != 3 || (cs[0] != b && cs[0] != 1) || cs[1] != seq {
                bail!("without position_ids the caches must be ({b}, {seq}, {half}), got {cs:?}");
            }
            let per_batch = cs[0] != 1;
            Box::new(move |bi, si| Ok(if per_batch { bi * seq + si } else { si }))
        }
    };

    let mut data = x_t.to_f64();
    for bi in 0..b {
        for si in 0..seq {
            let r = row(bi, si)?;
            let (c, sn) = (
                &cos[r * half..(r + 1) * half],
                &sin[r * half..(r + 1) * half],
            );
            for ni in 0..n {
                let o = bi * strides[0] + si * strides[1] + ni * strides[2];
                rotate(&mut data[o..o + h], c, sn, interleaved);
            }
        }
    }
    Ok(vec![Tensor::from_f64(x_t.dtype(), s.to_vec(), &data)])
}

#[cfg(test)]
mod tests {
    use crate::attr::{Attr, Attrs};
    use crate::ops::attention::common::testing::{assert_close, f32s, i64s, run};

    #[test]
    fn rotary_3d_with_positions_and_partial() {
        // One token, two heads of 4, rotary dim 2: only the first pair of each head turns.
        let x = f32s(&[1, 1, 8], &[1., 2., 3., 4., 5., 6., 7., 8.]);
        // Position 1: 90 degrees.
        let cos = f32s(&[2, 1], &[1.0, 0.0]);
        let sin = f32s(&[2, 1], &[0.0, 1.0]);
        let a: Attrs = [
            ("num_heads".to_string(), Attr::Int(2)),
            ("rotary_embedding_dim".to_string(), Attr::Int(2)),
        ]
        .into_iter()
        .collect();
        let y = run(
            "RotaryEmbedding",
            &[Some(x), Some(cos), Some(sin), Some(i64s(&[1, 1], &[1]))],
            a,
            1,
        )
        .expect("rope");
        assert_close(&y[0], &[-2., 1., 3., 4., -6., 5., 7., 8.], 1e-7);
    }

    #[test]
    fn rotary_4d_without_positions() {
        // (1 batch, 1 head, 2 tokens, 4): per-token caches, half split.
        let x = f32s(&[1, 1, 2, 4], &[1., 2., 3., 4., 1., 2., 3., 4.]);
        let cos = f32s(&[1, 2, 2], &[1., 1., 0., -1.]);
        let sin = f32s(&[1, 2, 2], &[0., 0., 1., 0.]);
        let a: Attrs = Attrs::new();
        let y = run("RotaryEmbedding", &[Some(x), Some(cos), Some(sin)], a, 1).expect("rope");
        // Token 0 unchanged; token 1: pair (1,3) by 90 degrees -> (-3, 1); pair (2,4) by 180.
        assert_close(&y[0], &[1., 2., 3., 4., -3., -2., 1., -4.], 1e-7);
    }
}
