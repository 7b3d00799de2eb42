//! Projections: a linear layer with one matrix (shared experts, per-expert loops) and the
//! batched_mm projection of each (token, expert) slot by its gathered expert matrix.

use kiln_ir::attr::AttrsExt;
use kiln_ir::{Dim, Value};

use super::layout::{Bias, Mat, Weight};
use super::view::{attempt, chain, reshaped_from};
use crate::passes::fuse::pattern::Matcher;

/// `x W (+ b)` with one matrix.
pub struct Linear {
    pub x: Value,
    pub w: Mat,
    pub bias: Option<Value>,
}

/// `MatMul(x, W)` (`W` `[in, out]`) or `Gemm(x, W)` (transB: `[out, in]`), plus an optional
/// `[out]` bias (Gemm's C or an Add). The matrix must be usable by the op (constant unless
/// already `[out, in]`).
pub fn linear(m: &mut Matcher, v: Value) -> Option<Linear> {
    if let Some(l) = attempt(m, |m| bare(m, v)) {
        return Some(l);
    }
    attempt(m, |m| {
        let add = m.op(v, "Add")?;
        let (mut l, b) = m.either(add, |m, core| bare(m, core))?;
        if l.bias.is_some() || !is_bias(m, b, &l.w) {
            return None;
        }
        l.bias = Some(b);
        Some(l)
    })
}

/// True if `b` is a `[out]` vector for matrix `w`.
fn is_bias(m: &Matcher, b: Value, w: &Mat) -> bool {
    let Some((out, _)) = w.dims(m.g) else {
        return false;
    };
    m.g.value_type(b).concrete_shape() == Some(vec![out])
}

fn bare(m: &mut Matcher, v: Value) -> Option<Linear> {
    let g = m.g;
    let l = if let Some(mm) = attempt(m, |m| m.op(v, "MatMul")) {
        let w = m.input(mm, 1)?;
        Linear {
            x: m.input(mm, 0)?,
            w: Mat {
                v: w,
                out_major: false,
            },
            bias: None,
        }
    } else {
        let gemm = m.op(v, "Gemm")?;
        let a = &g.node(gemm).attrs;
        if a.float_or("alpha", 1.0).ok()? != 1.0
            || a.float_or("beta", 1.0).ok()? != 1.0
            || a.int_or("transA", 0).ok()? != 0
        {
            return None;
        }
        let l = Linear {
            x: m.input(gemm, 0)?,
            w: Mat {
                v: m.input(gemm, 1)?,
                out_major: a.int_or("transB", 0).ok()? != 0,
            },
            bias: m.input(gemm, 2),
        };
        if l.bias.is_some_and(|b| !is_bias(m, b, &l.w)) {
            return None;
        }
        l
    };
    (g.value_type(l.w.v).rank() == 2 && l.w.usable(g)).then_some(l)
}

/// A batched_mm projection of the `S` slots: slot `s` is `x[s]` times the matrix of expert
/// `idx[s]` (plus its bias).
pub struct Gathered {
    /// `[S, in]`.
    pub x: Value,
    pub w: Weight,
    pub bias: Option<Bias>,
    /// The index value the gathers read (`[S, 1]` for GatherND, `[S]` for Gather).
    pub idx: Value,
}

/// `v` (`[S, out]`) as a gathered projection: `W[idx] @ x[..., None]` (`[E, out, in]`) or
/// `x[:, None] @ W[idx]` (`[E, in, out]`), then squeezed, plus `b[idx]`.
pub fn gathered(m: &mut Matcher, v: Value, s: &Dim) -> Option<Gathered> {
    if let Some(p) = attempt(m, |m| bare_gathered(m, v, s)) {
        return Some(p);
    }
    attempt(m, |m| {
        let add = m.op(v, "Add")?;
        let (mut p, b) = m.either(add, |m, core| bare_gathered(m, core, s))?;
        let (table, idx) = gather_rows(m, b)?;
        let (e, out, _) = p.w.dims(m.g)?;
        if idx != p.idx || m.g.value_type(table).concrete_shape()? != [e, out] {
            return None;
        }
        p.bias = Some(Bias::Stacked(table));
        Some(p)
    })
}

/// `v` may be any view of the MatMul's output that keeps `out` as its last axis (`[S, out]`,
/// `[N, k, out]`).
fn bare_gathered(m: &mut Matcher, v: Value, s: &Dim) -> Option<Gathered> {
    // The MatMul this is a squeezed view of.
    let mm = chain(m.g, v)
        .into_iter()
        .find(|u| u.output == 0 && m.g.node(u.node).op == "MatMul")?;
    reshaped_from(m, v, &m.g.value_type(mm).shape.clone())?;
    let mm = m.op(mm, "MatMul")?;
    let (a, b) = (m.input(mm, 0)?, m.input(mm, 1)?);
    let (a_ty, b_ty) = (m.g.value_type(a).clone(), m.g.value_type(b).clone());
    if a_ty.rank() != 3 || b_ty.rank() != 3 {
        return None;
    }
    let one = Dim::from(1i64);
    // W[idx] @ x[..., None]: a = [S, out, in], b = [S, in, 1].
    let (gw, xcol, out_major) = if b_ty.shape[2] == one && a_ty.shape[0] == *s {
        (a, b, true)
    } else if a_ty.shape[1] == one && b_ty.shape[0] == *s {
        (b, a, false)
    } else {
        return None;
    };
    let (table, idx) = gather_rows(m, gw)?;
    let (in_dim, out_dim) = if out_major {
        (a_ty.shape[2].clone(), a_ty.shape[1].clone())
    } else {
        (b_ty.shape[1].clone(), b_ty.shape[2].clone())
    };
    if m.g.value_type(v).shape.last() != Some(&out_dim) {
        return None;
    }
    let x = reshaped_from(m, xcol, &[s.clone(), in_dim])?;
    let w = Weight::Stacked {
        v: table,
        out_major,
    };
    (m.g.value_type(table).rank() == 3 && w.usable(m.g)).then_some(Gathered {
        x,
        w,
        bias: None,
        idx,
    })
}

/// `table[idx]` along the first axis: `GatherND(table, idx [S, 1])` or
/// `Gather(table, idx [S], axis 0)`; returns `(table, idx)`.
pub fn gather_rows(m: &mut Matcher, v: Value) -> Option<(Value, Value)> {
    if let Some(id) = attempt(m, |m| m.op(v, "GatherND")) {
        let n = m.g.node(id);
        let idx = n.input(1)?;
        let it = m.g.value_type(idx);
        if n.attrs.int_or("batch_dims", 0).ok()? != 0
            || it.rank() != 2
            || it.shape[1] != Dim::from(1i64)
        {
            return None;
        }
        return Some((n.input(0)?, idx));
    }
    let id = m.op(v, "Gather")?;
    let n = m.g.node(id);
    let idx = n.input(1)?;
    (n.attrs.int_or("axis", 0).ok()? == 0 && m.g.value_type(idx).rank() == 1)
        .then_some((n.input(0)?, idx))
}
