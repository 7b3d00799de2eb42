//! ScatterElements (and the deprecated Scatter), ScatterND, TensorScatter.

use crate::attr::AttrsExt;
use crate::bail;
use crate::ops::indexing::{check_index_dtype, norm_index};
use crate::ops::shape::common::{cat_data, count, ints, make};
use crate::ops::util::{attr_axis, axis};
use crate::ops::{EvalCtx, InferCtx, OpResult};
use crate::tensor::{strides, Tensor};
use crate::types::ValueType;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Reduction {
    None,
    Add,
    Mul,
    Max,
    Min,
}

fn reduction(attrs: &crate::attr::Attrs) -> OpResult<Reduction> {
    Ok(match attrs.str_or("reduction", "none")? {
        "none" => Reduction::None,
        "add" => Reduction::Add,
        "mul" => Reduction::Mul,
        "max" => Reduction::Max,
        "min" => Reduction::Min,
        r => bail!("reduction \"{r}\" is not supported"),
    })
}

/// `data` with `writes` (target flat index in data, source flat index in updates) applied
/// in order, combining by `red`.
fn apply(
    data: &Tensor,
    updates: &Tensor,
    writes: &[(usize, usize)],
    red: Reduction,
) -> OpResult<Tensor> {
    let (dtype, shape) = (data.dtype(), data.shape().to_vec());
    if updates.dtype() != dtype {
        bail!(
            "updates of {} do not match data of {dtype}",
            updates.dtype()
        );
    }
    if red == Reduction::None {
        let n = data.len();
        let mut src: Vec<usize> = (0..n).collect();
        for &(t, s) in writes {
            src[t] = n + s;
        }
        let all = cat_data(&[data.data(), updates.data()])?;
        return make(dtype, shape, all.take(&src));
    }
    if dtype.is_float() {
        let (mut d, u) = (data.to_f64(), updates.to_f64());
        for &(t, s) in writes {
            d[t] = match red {
                Reduction::Add => d[t] + u[s],
                Reduction::Mul => d[t] * u[s],
                Reduction::Max => d[t].max(u[s]),
                _ => d[t].min(u[s]),
            };
        }
        Ok(Tensor::from_f64(dtype, shape, &d))
    } else {
        let (mut d, u) = (data.to_i64(), updates.to_i64());
        for &(t, s) in writes {
            d[t] = match red {
                Reduction::Add => d[t].wrapping_add(u[s]),
                Reduction::Mul => d[t].wrapping_mul(u[s]),
                Reduction::Max => d[t].max(u[s]),
                _ => d[t].min(u[s]),
            };
        }
        Ok(Tensor::from_i64(dtype, shape, &d))
    }
}

/// ScatterElements, Scatter and ScatterND all return the data's type.
pub fn infer_scatter(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let (x, i, u) = (ctx.input(0)?, ctx.input(1)?, ctx.input(2)?);
    check_index_dtype(i.dtype, "scatter indices")?;
    reduction(ctx.attrs)?;
    if u.dtype != x.dtype {
        bail!("scatter updates {u} do not match data {x}");
    }
    Ok(vec![x.clone()])
}

pub fn eval_scatter_elements(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let (x, i, u) = (ctx.input(0)?, ctx.input(1)?, ctx.input(2)?);
    let red = reduction(ctx.attrs)?;
    if x.rank() == 0 || i.rank() != x.rank() || i.shape() != u.shape() {
        bail!(
            "ScatterElements data {:?}, indices {:?} and updates {:?} do not fit",
            x.shape(),
            i.shape(),
            u.shape()
        );
    }
    let a = attr_axis(ctx.attrs, 0, x.rank())?;
    for k in 0..x.rank() {
        if k != a && i.shape()[k] > x.shape()[k] {
            bail!(
                "ScatterElements indices {:?} exceed data {:?}",
                i.shape(),
                x.shape()
            );
        }
    }
    let (xs, is) = (strides(x.shape()), strides(i.shape()));
    let d = x.shape()[a];
    let writes = ints(i, "ScatterElements indices")?
        .into_iter()
        .enumerate()
        .map(|(f, k)| {
            let k = norm_index(k, d, "ScatterElements")?;
            let t = (0..x.rank())
                .map(|ax| {
                    let c = if ax == a {
                        k
                    } else {
                        (f / is[ax]) % i.shape()[ax]
                    };
                    c * xs[ax]
                })
                .sum();
            Ok((t, f))
        })
        .collect::<OpResult<Vec<_>>>()?;
    Ok(vec![apply(x, u, &writes, red)?])
}

pub fn eval_scatter_nd(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let (x, i, u) = (ctx.input(0)?, ctx.input(1)?, ctx.input(2)?);
    let red = reduction(ctx.attrs)?;
    let q = i.rank();
    if q == 0 {
        bail!("ScatterND indices must have rank >= 1");
    }
    let m = i.shape()[q - 1];
    if m > x.rank() {
        bail!("ScatterND index depth {m} exceeds data rank {}", x.rank());
    }
    let mut want = i.shape()[..q - 1].to_vec();
    want.extend_from_slice(&x.shape()[m..]);
    if u.shape() != want.as_slice() {
        bail!("ScatterND updates {:?} should be {want:?}", u.shape());
    }
    let xs = strides(x.shape());
    let inner = count(&x.shape()[m..]);
    let v = ints(i, "ScatterND indices")?;
    let n = count(&i.shape()[..q - 1]);
    let mut writes = Vec::with_capacity(n * inner);
    for t in 0..n {
        let mut off = 0;
        for k in 0..m {
            off += norm_index(v[t * m + k], x.shape()[k], "ScatterND")? * xs[k];
        }
        writes.extend((0..inner).map(|j| (off + j, t * inner + j)));
    }
    Ok(vec![apply(x, u, &writes, red)?])
}

fn ts_params(attrs: &crate::attr::Attrs, rank: usize) -> OpResult<(usize, bool)> {
    let a = axis(attrs.int_or("axis", -2)?, rank)?;
    if a == 0 {
        bail!("TensorScatter axis must not be the batch axis 0");
    }
    let circular = match attrs.str_or("mode", "linear")? {
        "linear" => false,
        "circular" => true,
        m => bail!("TensorScatter mode \"{m}\" is not supported"),
    };
    Ok((a, circular))
}

pub fn infer_tensor_scatter(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let (c, u) = (ctx.input(0)?, ctx.input(1)?);
    check_index_dtype(
        ctx.opt_input(2)
            .map_or(crate::dtype::DType::I64, |t| t.dtype),
        "write_indices",
    )?;
    ts_params(ctx.attrs, c.rank())?;
    if u.dtype != c.dtype || u.rank() != c.rank() {
        bail!("TensorScatter update {u} does not match the cache {c}");
    }
    Ok(vec![c.clone()])
}

pub fn eval_tensor_scatter(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let (c, u) = (ctx.input(0)?, ctx.input(1)?);
    let (a, circular) = ts_params(ctx.attrs, c.rank())?;
    let (cs, us) = (c.shape(), u.shape());
    if us.len() != cs.len()
        || (0..cs.len()).any(|k| {
            if k == a {
                us[k] > cs[k]
            } else {
                us[k] != cs[k]
            }
        })
    {
        bail!("TensorScatter update {us:?} does not fit the cache {cs:?}");
    }
    let wi = match ctx.opt_input(2) {
        Some(t) => ints(t, "TensorScatter write_indices")?,
        None => vec![0; cs[0]],
    };
    if wi.len() != cs[0] {
        bail!(
            "TensorScatter has {} write indices for a batch of {}",
            wi.len(),
            cs[0]
        );
    }
    let (max_len, len) = (cs[a] as i64, us[a]);
    let prefix = count(&cs[..a]);
    let per_batch = count(&cs[1..a]);
    let inner = count(&cs[a + 1..]);
    let mut writes = Vec::with_capacity(prefix * len * inner);
    for p in 0..prefix {
        let w = wi[p / per_batch.max(1)];
        for s in 0..len {
            let mut ci = w + s as i64;
            if circular && max_len > 0 {
                ci = ci.rem_euclid(max_len);
            }
            if ci < 0 || ci >= max_len {
                bail!("TensorScatter write position {ci} is outside the cache of {max_len}");
            }
            let t = (p * cs[a] + ci as usize) * inner;
            let src = (p * len + s) * inner;
            writes.extend((0..inner).map(|j| (t + j, src + j)));
        }
    }
    Ok(vec![apply(c, u, &writes, Reduction::None)?])
}

#[cfg(test)]
mod tests {
    use crate::attr::Attr;
    use crate::ops::shape::testutil::*;

    #[test]
    fn scatter_elements_reductions() {
        let x = floats(&[1, 5], &[1., 2., 3., 4., 5.]);
        let i = ints(&[1, 2], &[1, -2]);
        let u = floats(&[1, 2], &[10., 20.]);
        let run = |red: &str| {
            let a = attrs(&[("axis", Attr::Int(1)), ("reduction", Attr::Str(red.into()))]);
            eval(
                "ScatterElements",
                &a,
                &[Some(x.clone()), Some(i.clone()), Some(u.clone())],
                1,
            )
            .unwrap()[0]
                .to_f64()
        };
        assert_eq!(run("none"), vec![1., 10., 3., 20., 5.]);
        assert_eq!(run("add"), vec![1., 12., 3., 24., 5.]);
        assert_eq!(run("mul"), vec![1., 20., 3., 80., 5.]);
        assert_eq!(run("min"), vec![1., 2., 3., 4., 5.]);
        // Duplicates accumulate in order.
        let a = attrs(&[
            ("axis", Attr::Int(1)),
            ("reduction", Attr::Str("add".into())),
        ]);
        let out = eval(
            "ScatterElements",
            &a,
            &[
                Some(x.clone()),
                Some(ints(&[1, 2], &[0, 0])),
                Some(u.clone()),
            ],
            1,
        )
        .unwrap();
        assert_eq!(out[0].to_f64(), vec![31., 2., 3., 4., 5.]);
        let out = eval(
            "Scatter",
            &attrs(&[]),
            &[
                Some(x.clone()),
                Some(ints(&[1, 2], &[0, 0])),
                Some(u.clone()),
            ],
            1,
        )
        .unwrap();
        assert_eq!(out[0].to_f64(), vec![10., 20., 3., 4., 5.]);
        let bad = eval(
            "Scatter",
            &attrs(&[]),
            &[Some(x), Some(ints(&[1, 2], &[1, 0])), Some(u)],
            1,
        );
        assert!(bad.is_err(), "index 1 is out of range for axis 0 of size 1");
    }

    #[test]
    fn scatter_nd_slices() {
        let x = floats(&[2, 2], &[1., 2., 3., 4.]);
        let out = eval(
            "ScatterND",
            &attrs(&[]),
            &[
                Some(x.clone()),
                Some(ints(&[1, 1], &[-1])),
                Some(floats(&[1, 2], &[8., 9.])),
            ],
            1,
        )
        .unwrap();
        assert_eq!(out[0].to_f64(), vec![1., 2., 8., 9.]);
        let a = attrs(&[("reduction", Attr::Str("max".into()))]);
        let out = eval(
            "ScatterND",
            &a,
            &[
                Some(x),
                Some(ints(&[2, 2], &[0, 1, 0, 1])),
                Some(floats(&[2], &[0., 7.])),
            ],
            1,
        )
        .unwrap();
        assert_eq!(out[0].to_f64(), vec![1., 7., 3., 4.]);
    }

    #[test]
    fn tensor_scatter_modes() {
        // cache [batch 2, seq 3, 1], update [2, 2, 1].
        let c = floats(&[2, 3, 1], &[0.; 6]);
        let u = floats(&[2, 2, 1], &[1., 2., 3., 4.]);
        let w = ints(&[2], &[1, 2]);
        let out = eval(
            "TensorScatter",
            &attrs(&[]),
            &[Some(c.clone()), Some(u.clone()), Some(w.clone())],
            1,
        );
        assert!(out.is_err(), "batch 1 writes past the end in linear mode");
        let a = attrs(&[("mode", Attr::Str("circular".into()))]);
        let out = eval(
            "TensorScatter",
            &a,
            &[Some(c.clone()), Some(u.clone()), Some(w)],
            1,
        )
        .unwrap();
        assert_eq!(out[0].to_f64(), vec![0., 1., 2., 4., 0., 3.]);
        let out = eval("TensorScatter", &attrs(&[]), &[Some(c), Some(u), None], 1).unwrap();
        assert_eq!(out[0].to_f64(), vec![1., 2., 0., 3., 4., 0.]);
    }
}
