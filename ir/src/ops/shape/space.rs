//! DepthToSpace, SpaceToDepth, ReverseSequence.

use crate::attr::AttrsExt;
use crate::bail;
use crate::dim::Dim;
use crate::ops::shape::common::{ints, transpose, want_int};
use crate::ops::util::one;
use crate::ops::{EvalCtx, InferCtx, OpError, OpResult};
use crate::tensor::{strides, Tensor};
use crate::types::ValueType;

/// `blocksize` and whether the mode is CRD (else DCR).
fn block_params(attrs: &crate::attr::Attrs) -> OpResult<(i64, bool)> {
    let Some(b) = attrs.int("blocksize")? else {
        bail!("`blocksize` is required");
    };
    if !(1..=1 << 16).contains(&b) {
        bail!("blocksize {b} is out of range");
    }
    let crd = match attrs.str_or("mode", "DCR")? {
        "DCR" => false,
        "CRD" => true,
        m => bail!("mode \"{m}\" is not supported (DCR or CRD)"),
    };
    Ok((b, crd))
}

fn reshaped(t: &Tensor, shape: Vec<usize>) -> OpResult<Tensor> {
    t.reshaped(shape).map_err(|e| OpError::new(e.to_string()))
}

pub fn infer_depth_to_space(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    let (b, _) = block_params(ctx.attrs)?;
    if x.rank() != 4 {
        bail!("DepthToSpace needs a 4-D input, got {x}");
    }
    let bb = Dim::from(b * b);
    if x.shape[1].as_const().is_some_and(|c| c % (b * b) != 0) {
        bail!(
            "DepthToSpace channels of {x} are not divisible by {}",
            b * b
        );
    }
    let b = Dim::from(b);
    let s = &x.shape;
    one(
        x.dtype,
        vec![
            s[0].clone(),
            s[1].floor_div(&bb),
            s[2].mul(&b),
            s[3].mul(&b),
        ],
    )
}

pub fn eval_depth_to_space(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = ctx.input(0)?;
    let (b, crd) = block_params(ctx.attrs)?;
    let b = b as usize;
    let &[n, c, h, w] = x.shape() else {
        bail!("DepthToSpace needs a 4-D input, got {:?}", x.shape());
    };
    if c % (b * b) != 0 {
        bail!("DepthToSpace channels {c} are not divisible by {}", b * b);
    }
    let c2 = c / (b * b);
    let t = if crd {
        transpose(&reshaped(x, vec![n, c2, b, b, h, w])?, &[0, 1, 4, 2, 5, 3])?
    } else {
        transpose(&reshaped(x, vec![n, b, b, c2, h, w])?, &[0, 3, 4, 1, 5, 2])?
    };
    Ok(vec![reshaped(&t, vec![n, c2, h * b, w * b])?])
}

pub fn infer_space_to_depth(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    let (b, _) = block_params(ctx.attrs)?;
    if x.rank() != 4 {
        bail!("SpaceToDepth needs a 4-D input, got {x}");
    }
    for a in [2, 3] {
        if x.shape[a].as_const().is_some_and(|c| c % b != 0) {
            bail!("SpaceToDepth dims of {x} are not divisible by {b}");
        }
    }
    let s = &x.shape;
    let bd = Dim::from(b);
    one(
        x.dtype,
        vec![
            s[0].clone(),
            s[1].mul(&Dim::from(b * b)),
            s[2].floor_div(&bd),
            s[3].floor_div(&bd),
        ],
    )
}

pub fn eval_space_to_depth(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = ctx.input(0)?;
    let (b, crd) = block_params(ctx.attrs)?;
    let b = b as usize;
    let &[n, c, h, w] = x.shape() else {
        bail!("SpaceToDepth needs a 4-D input, got {:?}", x.shape());
    };
    if h % b != 0 || w % b != 0 {
        bail!("SpaceToDepth dims {:?} are not divisible by {b}", x.shape());
    }
    let r = reshaped(x, vec![n, c, h / b, b, w / b, b])?;
    let perm = if crd {
        [0, 1, 3, 5, 2, 4]
    } else {
        [0, 3, 5, 1, 2, 4]
    };
    let t = transpose(&r, &perm)?;
    Ok(vec![reshaped(&t, vec![n, c * b * b, h / b, w / b])?])
}

/// (batch_axis, time_axis), validated.
fn rs_axes(attrs: &crate::attr::Attrs) -> OpResult<(usize, usize)> {
    let b = attrs.int_or("batch_axis", 1)?;
    let t = attrs.int_or("time_axis", 0)?;
    match (b, t) {
        (0, 1) => Ok((0, 1)),
        (1, 0) => Ok((1, 0)),
        _ => bail!("ReverseSequence needs batch_axis/time_axis 0 and 1, got {b} and {t}"),
    }
}

pub fn infer_reverse_sequence(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    rs_axes(ctx.attrs)?;
    want_int(ctx, 1, "ReverseSequence sequence_lens")?;
    ctx.input(1)?;
    if x.rank() < 2 {
        bail!("ReverseSequence needs rank >= 2, got {x}");
    }
    Ok(vec![x.clone()])
}

pub fn eval_reverse_sequence(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = ctx.input(0)?;
    let (ba, ta) = rs_axes(ctx.attrs)?;
    if x.rank() < 2 {
        bail!("ReverseSequence needs rank >= 2, got {:?}", x.shape());
    }
    let lens = ints(ctx.input(1)?, "ReverseSequence sequence_lens")?;
    let (nb, nt) = (x.shape()[ba], x.shape()[ta]);
    if lens.len() != nb {
        bail!(
            "ReverseSequence has {} lengths for a batch of {nb}",
            lens.len()
        );
    }
    if let Some(l) = lens.iter().find(|&&l| l < 0 || l as usize > nt) {
        bail!("ReverseSequence length {l} is out of range for a time axis of {nt}");
    }
    let st = strides(x.shape());
    let idx: Vec<usize> = (0..x.len())
        .map(|f| {
            let (bi, ti) = ((f / st[ba]) % nb, (f / st[ta]) % nt);
            let l = lens[bi] as usize;
            if ti < l {
                f - ti * st[ta] + (l - 1 - ti) * st[ta]
            } else {
                f
            }
        })
        .collect();
    x.take(&idx, x.shape().to_vec())
        .map(|t| vec![t])
        .map_err(|e| OpError::new(e.to_string()))
}

#[cfg(test)]
mod tests {
    use crate::attr::Attr;
    use crate::ops::shape::testutil::*;

    #[test]
    fn depth_space_round_trip() {
        let x = floats(&[1, 8, 1, 1], &[0., 1., 2., 3., 4., 5., 6., 7.]);
        for mode in ["DCR", "CRD"] {
            let a = attrs(&[
                ("blocksize", Attr::Int(2)),
                ("mode", Attr::Str(mode.into())),
            ]);
            let y = eval("DepthToSpace", &a, &[Some(x.clone())], 1).unwrap();
            assert_eq!(y[0].shape(), &[1, 2, 2, 2]);
            let z = eval("SpaceToDepth", &a, &[Some(y[0].clone())], 1).unwrap();
            assert_eq!(z[0], x);
        }
        let a = attrs(&[("blocksize", Attr::Int(2))]);
        let y = eval("DepthToSpace", &a, &[Some(x.clone())], 1).unwrap();
        // DCR: channel c*4 + ... -> output (c2=0..2): blocks read depth-first.
        assert_eq!(y[0].to_f64(), vec![0., 2., 4., 6., 1., 3., 5., 7.]);
        let a = attrs(&[
            ("blocksize", Attr::Int(2)),
            ("mode", Attr::Str("CRD".into())),
        ]);
        let y = eval("DepthToSpace", &a, &[Some(x)], 1).unwrap();
        assert_eq!(y[0].to_f64(), vec![0., 1., 2., 3., 4., 5., 6., 7.]);
    }

    #[test]
    fn reverse_sequence() {
        // time_axis 0, batch_axis 1: columns are sequences.
        let x = floats(&[3, 2], &[1., 2., 3., 4., 5., 6.]);
        let y = eval(
            "ReverseSequence",
            &attrs(&[]),
            &[Some(x), Some(ints(&[2], &[3, 2]))],
            1,
        )
        .unwrap();
        assert_eq!(y[0].to_f64(), vec![5., 4., 3., 2., 1., 6.]);
    }
}
