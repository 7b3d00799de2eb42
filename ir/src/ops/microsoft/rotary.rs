//! `com.microsoft.RotaryEmbedding`, as ONNX Runtime 1.31's CPU kernel computes it.
//!
//! Inputs: 0 input `(B, S, D)` or `(B, N, S, H)`, 1 position_ids `(B, S)` or `(1)` (an offset:
//! token `s` is at `offset + s`), 2 cos_cache, 3 sin_cache `(max_pos, rotary_dim / 2)`.
//! For a 3-D input the head size is `D / num_heads`, or without `num_heads` the rotary
//! dimension (`rotary_embedding_dim`, else twice cos_cache's second dim). The first
//! `rotary_dim` values of each head turn (halves or `interleaved` pairs); the rest pass
//! through. `scale` has no effect; `is_packed_batching` is not supported.

use crate::attr::AttrsExt;
use crate::bail;
use crate::ops::attention::common::{float_input, float_input_type, rotate, RopeCache};
use crate::ops::{EvalCtx, InferCtx, OpResult};
use crate::tensor::Tensor;
use crate::types::ValueType;

pub(crate) fn infer(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = float_input_type(ctx, 0, "input", &[3, 4])?;
    float_input_type(ctx, 2, "cos_cache", &[2])?;
    float_input_type(ctx, 3, "sin_cache", &[2])?;
    Ok(vec![x.clone()])
}

pub(crate) fn eval(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x_t = float_input(ctx, 0, "input", &[3, 4])?;
    let cos_t = float_input(ctx, 2, "cos_cache", &[2])?;
    let sin_t = float_input(ctx, 3, "sin_cache", &[2])?;
    let a = ctx.attrs;
    if a.int_or("is_packed_batching", 0)? != 0 {
        bail!("is_packed_batching is not supported");
    }
    let interleaved = a.int_or("interleaved", 0)? != 0;
    let num_heads = a.int_or("num_heads", 0)?;
    let rot_attr = a.int_or("rotary_embedding_dim", 0)?;
    if num_heads < 0 || rot_attr < 0 {
        bail!("num_heads and rotary_embedding_dim must be nonnegative");
    }
    let cache = RopeCache::new(cos_t, sin_t)?;
    let s = x_t.shape();
    // (batch, seq, heads, head size, strides of batch / token / head)
    let (b, seq, n, h, strides) = if x_t.rank() == 4 {
        let (b, n, seq, h) = (s[0], s[1], s[2], s[3]);
        (b, seq, n, h, [n * seq * h, h, seq * h])
    } else {
        let d = s[2];
        let h = if num_heads > 0 {
            if d % num_heads as usize != 0 {
                bail!("hidden size {d} is not divisible by num_heads {num_heads}");
            }
            d / num_heads as usize
        } else if rot_attr > 0 {
            rot_attr as usize
        } else {
            2 * cache.half
        };
        if h == 0 || d % h != 0 {
            bail!("hidden size {d} is not a whole number of heads of {h}");
        }
        (s[0], s[1], d / h, h, [s[1] * d, d, h])
    };
    let rd = if rot_attr > 0 { rot_attr as usize } else { h };
    if rd > h || rd != 2 * cache.half {
        bail!(
            "cos_cache's second dim ({}) must be half the rotary dimension ({rd}, head size {h})",
            cache.half
        );
    }
    let pos_t = ctx.input(1)?;
    if !pos_t.dtype().is_int() {
        bail!("position_ids must be integers, got {}", pos_t.dtype());
    }
    let pos = pos_t.to_i64();
    let offset = if pos_t.rank() == 1 && pos_t.len() == 1 {
        Some(pos[0])
    } else if pos_t.shape() == [b, seq] {
        None
    } else {
        bail!(
            "position_ids must be (1) or ({b}, {seq}), got {:?}",
            pos_t.shape()
        );
    };
    let mut data = x_t.to_f64();
    for bi in 0..b {
        for si in 0..seq {
            let p = match offset {
                Some(o) => o + si as i64,
                None => pos[bi * seq + si],
            };
            let (c, sn) = cache.at(p)?;
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
    fn offset_positions_interleaved() {
        // Two tokens of one head of 2 at positions 1 and 2 (offset 1): 90 and 180 degrees.
        let x = f32s(&[1, 2, 2], &[1.0, 2.0, 1.0, 2.0]);
        let cos = f32s(&[3, 1], &[1.0, 0.0, -1.0]);
        let sin = f32s(&[3, 1], &[0.0, 1.0, 0.0]);
        let a: Attrs = [("interleaved".to_string(), Attr::Int(1))]
            .into_iter()
            .collect();
        let y = run(
            "com.microsoft.RotaryEmbedding",
            &[Some(x), Some(i64s(&[1], &[1])), Some(cos), Some(sin)],
            a,
            1,
        )
        .expect("rope");
        assert_close(&y[0], &[-2.0, 1.0, -1.0, -2.0], 1e-7);
    }
}
