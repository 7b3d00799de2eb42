//! `Dropout` (opset 22) and `BitCast` (opset 26).

use crate::attr::AttrsExt;
use crate::bail;
use crate::dtype::DType;
use crate::ops::misc::{dtype_attr, round_to};
use crate::ops::{EvalCtx, InferCtx, OpResult};
use crate::tensor::Tensor;
use crate::types::ValueType;

pub fn infer_dropout(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    if !x.dtype.is_float() {
        bail!("Dropout takes a float tensor, got {x}");
    }
    let mut out = vec![x.clone()];
    if ctx.num_outputs > 1 {
        out.push(ValueType::new(DType::Bool, x.shape.clone()));
    }
    Ok(out)
}

/// The Mersenne Twister MT19937 with numpy's `RandomState` seeding and doubles, so that
/// training-mode Dropout with a `seed` drops the same elements as ONNX's reference.
struct Mt19937 {
    state: [u32; 624],
    pos: usize,
}

impl Mt19937 {
    fn new(seed: u32) -> Mt19937 {
        let mut state = [0u32; 624];
        state[0] = seed;
        for i in 1..624 {
            let p = state[i - 1];
            state[i] = 1812433253u32
                .wrapping_mul(p ^ (p >> 30))
                .wrapping_add(i as u32);
        }
        Mt19937 { state, pos: 624 }
    }

    fn next_u32(&mut self) -> u32 {
        if self.pos >= 624 {
            for i in 0..624 {
                let y = (self.state[i] & 0x8000_0000) | (self.state[(i + 1) % 624] & 0x7fff_ffff);
                let mut v = self.state[(i + 397) % 624] ^ (y >> 1);
                if y & 1 != 0 {
                    v ^= 0x9908_b0df;
                }
                self.state[i] = v;
            }
            self.pos = 0;
        }
        let mut y = self.state[self.pos];
        self.pos += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// A double in [0, 1) from 53 random bits.
    fn next_f64(&mut self) -> f64 {
        let a = (self.next_u32() >> 5) as f64;
        let b = (self.next_u32() >> 6) as f64;
        (a * 67108864.0 + b) / 9007199254740992.0
    }
}

pub fn eval_dropout(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = ctx.input(0)?;
    let training = ctx
        .opt_input(2)
        .and_then(|t| t.to_bool().first().copied())
        .unwrap_or(false);
    let (ratio, rdt) = match ctx.opt_input(1) {
        Some(t) => (
            t.first_f64()
                .ok_or_else(|| crate::ops::OpError::new("Dropout ratio is empty"))?,
            t.dtype(),
        ),
        None => (ctx.attrs.float_or("ratio", 0.5)? as f64, DType::F32),
    };
    let n = x.len();
    if !training || ratio == 0.0 {
        let mut out = vec![x.clone()];
        if ctx.num_outputs > 1 {
            out.push(
                Tensor::from_bools(x.shape().to_vec(), vec![true; n])
                    .map_err(|e| crate::ops::OpError::new(e.to_string()))?,
            );
        }
        return Ok(out);
    }
    if !(0.0..1.0).contains(&ratio) {
        bail!("Dropout ratio {ratio} must lie in [0, 1)");
    }
    let seed = ctx.attrs.int_or("seed", 0)?;
    let mut rng = Mt19937::new(seed as u32);
    let mask: Vec<bool> = (0..n).map(|_| rng.next_f64() >= ratio).collect();
    let scale = round_to(rdt, 1.0 / round_to(rdt, 1.0 - ratio));
    let dt = x.dtype();
    let v: Vec<f64> = x
        .to_f64()
        .iter()
        .zip(&mask)
        .map(|(&v, &m)| if m { round_to(dt, v * scale) } else { 0.0 * v })
        .collect();
    let mut out = vec![Tensor::from_f64(dt, x.shape().to_vec(), &v)];
    if ctx.num_outputs > 1 {
        out.push(
            Tensor::from_bools(x.shape().to_vec(), mask)
                .map_err(|e| crate::ops::OpError::new(e.to_string()))?,
        );
    }
    Ok(out)
}

fn bitcast_to(ctx_attrs: &crate::attr::Attrs, from: DType) -> OpResult<DType> {
    let to = dtype_attr(ctx_attrs, "to")?
        .ok_or_else(|| crate::ops::OpError::new("BitCast needs `to`"))?;
    if to.size() != from.size() {
        bail!("BitCast from {from} to {to}: the bit widths differ");
    }
    Ok(to)
}

pub fn infer_bitcast(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    Ok(vec![ValueType::new(
        bitcast_to(ctx.attrs, x.dtype)?,
        x.shape.clone(),
    )])
}

pub fn eval_bitcast(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = ctx.input(0)?;
    let to = bitcast_to(ctx.attrs, x.dtype())?;
    let t = Tensor::from_le_bytes(to, x.shape().to_vec(), &x.to_le_bytes())
        .map_err(|e| crate::ops::OpError::new(e.to_string()))?;
    Ok(vec![t])
}

#[cfg(test)]
mod tests {
    use super::Mt19937;
    use crate::attr::Attr;
    use crate::dtype::DType;
    use crate::ops::misc::testutil::{attrs, f32t, run_op};
    use crate::tensor::Tensor;

    #[test]
    fn mt19937_matches_numpy() {
        // numpy.random.RandomState(0).uniform(0, 1, 3)
        let mut r = Mt19937::new(0);
        let v: Vec<f64> = (0..3).map(|_| r.next_f64()).collect();
        assert_eq!(
            v,
            vec![0.5488135039273248, 0.7151893663724195, 0.6027633760716439]
        );
    }

    #[test]
    fn dropout_inference_is_identity_with_true_mask() {
        let x = f32t(&[3], &[-1., 0., 1.]);
        let out = run_op("Dropout", &attrs(&[]), vec![x, f32t(&[], &[0.3])], 2).unwrap();
        assert_eq!(out[0].to_f64(), vec![-1., 0., 1.]);
        assert_eq!(out[1].to_bool(), vec![true, true, true]);
    }

    #[test]
    fn dropout_training_with_seed() {
        // With seed 0 the first uniforms are 0.549, 0.715, 0.603, 0.545: ratio 0.55 keeps
        // the 2nd and 3rd, scaled by 1 / 0.45.
        let x = f32t(&[4], &[1., 2., 3., 4.]);
        let t = Some(Tensor::from_bools(vec![], vec![true]).unwrap());
        let a = attrs(&[("seed", Attr::Int(0))]);
        let out = run_op("Dropout", &a, vec![x, f32t(&[], &[0.55]), t], 2).unwrap();
        assert_eq!(out[1].to_bool(), vec![false, true, true, false]);
        let s = (1.0f32 / (1.0f32 - 0.55f32)) as f64;
        let v = out[0].to_f64();
        assert_eq!(v[0], 0.0);
        assert_eq!(v[1], (2.0 * s) as f32 as f64);
    }

    #[test]
    fn bitcast_reinterprets_bits() {
        let x = f32t(&[2], &[1.0, -0.0]);
        let a = attrs(&[("to", Attr::DType(DType::I32))]);
        let out = run_op("BitCast", &a, vec![x], 1).unwrap();
        assert_eq!(out[0].to_i64(), vec![0x3f80_0000, i32::MIN as i64]);
        let a = attrs(&[("to", Attr::DType(DType::I16))]);
        assert!(run_op("BitCast", &a, vec![f32t(&[1], &[1.0])], 1).is_err());
    }
}
