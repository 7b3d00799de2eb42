//! Linear algebra: `MatMul`, `Gemm`, `Einsum`, `MatMulInteger`, `Det`.
//!
//! Float products accumulate in f64 and round to the output dtype once; integer products
//! are exact in i64 (wrapping into the output dtype). The matrix kernels run in i-k-j order
//! over contiguous rows, which keeps MatMul fast enough for whole models.

use crate::attr::AttrsExt;
use crate::bail;
use crate::dim::Dim;
use crate::dtype::DType;
use crate::ops::util::one;
use crate::ops::{EvalCtx, InferCtx, OpResult, OpSpec};
use crate::tensor::strided_offsets;
use crate::tensor::{numel, strides, Tensor};
use crate::types::{broadcast_concrete, broadcast_shapes, Shape, ValueType};

pub const SPECS: &[OpSpec] = &[
    OpSpec::new("MatMul", infer_matmul, eval_matmul),
    OpSpec::new("Gemm", infer_gemm, eval_gemm),
    OpSpec::new("Einsum", infer_einsum, eval_einsum),
    OpSpec::new("MatMulInteger", infer_matmul_integer, eval_matmul_integer),
    OpSpec::new("Det", infer_det, eval_det),
];

// ---- shared helpers ----

/// For each element of `out` (row-major), the flat index of the element of a tensor of
/// shape `inp` that numpy broadcasting maps to it. `inp` must broadcast to `out`.
pub(crate) fn broadcast_map(out: &[usize], inp: &[usize]) -> Vec<usize> {
    let pad = out.len() - inp.len();
    let st = strides(inp);
    let stride: Vec<usize> = (0..out.len())
        .map(|i| {
            if i < pad || inp[i - pad] == 1 {
                0
            } else {
                st[i - pad]
            }
        })
        .collect();
    strided_offsets(out, &stride)
}

/// Column and inner-dim tile sizes of the matrix kernels: a `KB x JB` tile of `b` (1 MiB of
/// f64) stays in cache while every row of `a` passes over it.
const JB: usize = 512;
const KB: usize = 256;

/// `out[m, n] += a[m, k] * b[k, n]` on row-major slices, in i-k-j order within tiles of
/// `b`. Each output still sums its products in ascending `k`.
fn matmul_f64(a: &[f64], b: &[f64], m: usize, k: usize, n: usize, out: &mut [f64]) {
    for j0 in (0..n).step_by(JB) {
        let j1 = n.min(j0 + JB);
        for p0 in (0..k).step_by(KB) {
            let p1 = k.min(p0 + KB);
            for i in 0..m {
                let row = &mut out[i * n + j0..i * n + j1];
                for p in p0..p1 {
                    let av = a[i * k + p];
                    let brow = &b[p * n + j0..p * n + j1];
                    for (o, &bv) in row.iter_mut().zip(brow) {
                        *o += av * bv;
                    }
                }
            }
        }
    }
}

/// As [`matmul_f64`] in wrapping i64 arithmetic.
fn matmul_i64(a: &[i64], b: &[i64], m: usize, k: usize, n: usize, out: &mut [i64]) {
    for i in 0..m {
        let row = &mut out[i * n..(i + 1) * n];
        let arow = &a[i * k..(i + 1) * k];
        for (p, &av) in arow.iter().enumerate() {
            let brow = &b[p * n..(p + 1) * n];
            for (o, &bv) in row.iter_mut().zip(brow) {
                *o = o.wrapping_add(av.wrapping_mul(bv));
            }
        }
    }
}

/// The shapes of a numpy matmul: `(batch, m, k, n, output shape)`, with 1-D operands
/// promoted (a: [k] -> [1, k]; b: [k] -> [k, 1]) and the promoted axes dropped from the
/// output.
struct MatMulShape<D> {
    a_batch: Vec<D>,
    b_batch: Vec<D>,
    m: D,
    ka: D,
    kb: D,
    n: D,
}

fn split_matmul<D: Clone>(a: &[D], b: &[D], one: D) -> OpResult<MatMulShape<D>> {
    if a.is_empty() || b.is_empty() {
        bail!("MatMul operands must have rank >= 1");
    }
    let (a_batch, m, ka) = if a.len() == 1 {
        (vec![], one.clone(), a[0].clone())
    } else {
        let r = a.len();
        (a[..r - 2].to_vec(), a[r - 2].clone(), a[r - 1].clone())
    };
    let (b_batch, kb, n) = if b.len() == 1 {
        (vec![], b[0].clone(), one)
    } else {
        let r = b.len();
        (b[..r - 2].to_vec(), b[r - 2].clone(), b[r - 1].clone())
    };
    Ok(MatMulShape {
        a_batch,
        b_batch,
        m,
        ka,
        kb,
        n,
    })
}

fn matmul_out_type(a: &ValueType, b: &ValueType, dtype: DType) -> OpResult<Vec<ValueType>> {
    let s = split_matmul(&a.shape, &b.shape, Dim::from(1i64))?;
    if let (Some(x), Some(y)) = (s.ka.as_const(), s.kb.as_const()) {
        if x != y {
            bail!("MatMul inner dims differ: {a} x {b}");
        }
    }
    let mut out = broadcast_shapes(&[&s.a_batch, &s.b_batch]).ok_or_else(|| {
        crate::ops::OpError::new(format!("MatMul batch dims of {a} and {b} do not broadcast"))
    })?;
    if a.rank() > 1 {
        out.push(s.m);
    }
    if b.rank() > 1 {
        out.push(s.n);
    }
    one(dtype, out)
}

fn infer_matmul(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let (a, b) = (ctx.input(0)?, ctx.input(1)?);
    if a.dtype != b.dtype {
        bail!("MatMul operands have different dtypes: {a} x {b}");
    }
    if a.dtype == DType::Bool {
        bail!("MatMul does not take bool operands");
    }
    matmul_out_type(a, b, a.dtype)
}

/// Batched numpy matmul on concrete shapes. `mm(a_off, b_off, out_off)` multiplies one
/// pair of matrices; returns the output shape.
fn batched(
    a: &[usize],
    b: &[usize],
    mut mm: impl FnMut(usize, usize, usize),
) -> OpResult<(Vec<usize>, usize, usize, usize)> {
    let s = split_matmul(a, b, 1usize)?;
    if s.ka != s.kb {
        bail!("MatMul inner dims differ: {a:?} x {b:?}");
    }
    let batch = broadcast_concrete(&[&s.a_batch, &s.b_batch]).ok_or_else(|| {
        crate::ops::OpError::new(format!(
            "MatMul batch dims of {a:?} and {b:?} do not broadcast"
        ))
    })?;
    let amap = broadcast_map(&batch, &s.a_batch);
    let bmap = broadcast_map(&batch, &s.b_batch);
    let (m, k, n) = (s.m, s.ka, s.n);
    for (i, (&ai, &bi)) in amap.iter().zip(&bmap).enumerate() {
        mm(ai * m * k, bi * k * n, i * m * n);
    }
    let mut out = batch;
    if a.len() > 1 {
        out.push(m);
    }
    if b.len() > 1 {
        out.push(n);
    }
    Ok((out, m, k, n))
}

/// numpy matmul of `a` and `b` (already offset by zero points where needed) in f64 or i64.
fn matmul_values(a: &Tensor, b: &Tensor, out_dtype: DType, int: bool) -> OpResult<Tensor> {
    let s = split_matmul(a.shape(), b.shape(), 1usize)?;
    let (m, k, n) = (s.m, s.ka, s.n);
    let batch = broadcast_concrete(&[&s.a_batch, &s.b_batch]).unwrap_or_default();
    let total = numel(&batch) * m * n;
    if int {
        let (av, bv) = (a.to_i64(), b.to_i64());
        let mut out = vec![0i64; total];
        let (shape, ..) = batched(a.shape(), b.shape(), |ao, bo, oo| {
            matmul_i64(
                &av[ao..ao + m * k],
                &bv[bo..bo + k * n],
                m,
                k,
                n,
                &mut out[oo..oo + m * n],
            )
        })?;
        Ok(Tensor::from_i64(out_dtype, shape, &out))
    } else {
        let (av, bv) = (a.to_f64(), b.to_f64());
        let mut out = vec![0f64; total];
        let (shape, ..) = batched(a.shape(), b.shape(), |ao, bo, oo| {
            matmul_f64(
                &av[ao..ao + m * k],
                &bv[bo..bo + k * n],
                m,
                k,
                n,
                &mut out[oo..oo + m * n],
            )
        })?;
        Ok(Tensor::from_f64(out_dtype, shape, &out))
    }
}

fn eval_matmul(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let (a, b) = (ctx.input(0)?, ctx.input(1)?);
    if a.dtype() != b.dtype() {
        bail!(
            "MatMul operands have different dtypes: {} x {}",
            a.dtype(),
            b.dtype()
        );
    }
    let int = !a.dtype().is_float();
    Ok(vec![matmul_values(a, b, a.dtype(), int)?])
}

// ---- Gemm ----

fn gemm_dims<D: Clone>(a: &[D], b: &[D], ta: bool, tb: bool) -> OpResult<(D, D, D, D)> {
    if a.len() != 2 || b.len() != 2 {
        bail!(
            "Gemm operands must be 2-D, got ranks {} and {}",
            a.len(),
            b.len()
        );
    }
    let (m, ka) = if ta {
        (a[1].clone(), a[0].clone())
    } else {
        (a[0].clone(), a[1].clone())
    };
    let (kb, n) = if tb {
        (b[1].clone(), b[0].clone())
    } else {
        (b[0].clone(), b[1].clone())
    };
    Ok((m, ka, kb, n))
}

fn gemm_flags(ctx_attrs: &crate::attr::Attrs) -> OpResult<(bool, bool, f64, f64)> {
    Ok((
        ctx_attrs.int_or("transA", 0)? != 0,
        ctx_attrs.int_or("transB", 0)? != 0,
        ctx_attrs.float_or("alpha", 1.0)? as f64,
        ctx_attrs.float_or("beta", 1.0)? as f64,
    ))
}

fn infer_gemm(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let (a, b) = (ctx.input(0)?, ctx.input(1)?);
    let (ta, tb, _, _) = gemm_flags(ctx.attrs)?;
    if a.dtype != b.dtype {
        bail!("Gemm operands have different dtypes: {a} x {b}");
    }
    let (m, ka, kb, n) = gemm_dims(&a.shape, &b.shape, ta, tb)?;
    if let (Some(x), Some(y)) = (ka.as_const(), kb.as_const()) {
        if x != y {
            bail!("Gemm inner dims differ: {a} x {b} (transA {ta}, transB {tb})");
        }
    }
    let out = vec![m, n];
    if let Some(c) = ctx.opt_input(2) {
        match broadcast_shapes(&[&out, &c.shape]) {
            Some(s) if s.len() == 2 && c.rank() <= 2 => {
                if let (Some(x), Some(y)) = (s[0].as_const(), out[0].as_const()) {
                    if x != y {
                        bail!("Gemm C {c} does not broadcast to [{}, {}]", out[0], out[1]);
                    }
                }
                if let (Some(x), Some(y)) = (s[1].as_const(), out[1].as_const()) {
                    if x != y {
                        bail!("Gemm C {c} does not broadcast to [{}, {}]", out[0], out[1]);
                    }
                }
            }
            _ => bail!("Gemm C {c} does not broadcast to [{}, {}]", out[0], out[1]),
        }
    }
    one(a.dtype, out)
}

/// Row-major transpose of an `r x c` matrix.
fn transpose<T: Copy>(v: &[T], r: usize, c: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(v.len());
    for j in 0..c {
        for i in 0..r {
            out.push(v[i * c + j]);
        }
    }
    out
}

fn eval_gemm(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let (a, b) = (ctx.input(0)?, ctx.input(1)?);
    let (ta, tb, alpha, beta) = gemm_flags(ctx.attrs)?;
    let (m, ka, kb, n) = gemm_dims(a.shape(), b.shape(), ta, tb)?;
    if ka != kb {
        bail!("Gemm inner dims differ: {:?} x {:?}", a.shape(), b.shape());
    }
    let mut av = a.to_f64();
    if ta {
        av = transpose(&av, ka, m);
    }
    let mut bv = b.to_f64();
    if tb {
        bv = transpose(&bv, n, kb);
    }
    let mut out = vec![0f64; m * n];
    matmul_f64(&av, &bv, m, ka, n, &mut out);
    for o in out.iter_mut() {
        *o *= alpha;
    }
    if let Some(c) = ctx.opt_input(2) {
        let shape = [m, n];
        if c.rank() > 2 || broadcast_concrete(&[&shape, c.shape()]).as_deref() != Some(&shape[..]) {
            bail!("Gemm C {:?} does not broadcast to [{m}, {n}]", c.shape());
        }
        let cv = c.to_f64();
        for (o, i) in out.iter_mut().zip(broadcast_map(&shape, c.shape())) {
            *o += beta * cv[i];
        }
    }
    Ok(vec![Tensor::from_f64(a.dtype(), vec![m, n], &out)])
}

// ---- MatMulInteger ----

fn infer_matmul_integer(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let (a, b) = (ctx.input(0)?, ctx.input(1)?);
    for t in [a, b] {
        if !matches!(t.dtype, DType::I8 | DType::U8) {
            bail!("MatMulInteger takes i8/u8 operands, got {t}");
        }
    }
    matmul_out_type(a, b, DType::I32)
}

/// `x - zero_point` with numpy broadcasting; a 1-D zero point of A (per row) is aligned with
/// A's row axis.
fn minus_zero_point(x: &Tensor, zp: Option<&Tensor>, is_a: bool) -> OpResult<Tensor> {
    let v = x.to_i64();
    let Some(zp) = zp else {
        return Ok(Tensor::from_i64(DType::I64, x.shape().to_vec(), &v));
    };
    let mut zshape = zp.shape().to_vec();
    if is_a && zshape.len() == 1 && x.rank() >= 2 {
        zshape.push(1);
    }
    if broadcast_concrete(&[x.shape(), &zshape]).as_deref() != Some(x.shape()) {
        bail!(
            "zero point {:?} does not broadcast to the operand {:?}",
            zp.shape(),
            x.shape()
        );
    }
    let z = zp.to_i64();
    let out: Vec<i64> = broadcast_map(x.shape(), &zshape)
        .into_iter()
        .zip(&v)
        .map(|(i, &x)| x - z[i])
        .collect();
    Ok(Tensor::from_i64(DType::I64, x.shape().to_vec(), &out))
}

fn eval_matmul_integer(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let a = minus_zero_point(ctx.input(0)?, ctx.opt_input(2), true)?;
    let b = minus_zero_point(ctx.input(1)?, ctx.opt_input(3), false)?;
    Ok(vec![matmul_values(&a, &b, DType::I32, true)?])
}

// ---- Det ----

fn infer_det(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    let r = x.rank();
    if r < 2 {
        bail!("Det needs a tensor of rank >= 2, got {x}");
    }
    if !x.dtype.is_float() {
        bail!("Det needs a float tensor, got {x}");
    }
    if let (Some(p), Some(q)) = (x.shape[r - 2].as_const(), x.shape[r - 1].as_const()) {
        if p != q {
            bail!("Det needs square matrices, got {x}");
        }
    }
    one(x.dtype, x.shape[..r - 2].to_vec())
}

/// Determinant by LU decomposition with partial pivoting.
fn det(mut a: Vec<f64>, n: usize) -> f64 {
    let mut d = 1.0;
    for c in 0..n {
        let p = (c..n)
            .max_by(|&i, &j| a[i * n + c].abs().total_cmp(&a[j * n + c].abs()))
            .unwrap_or(c);
        if a[p * n + c] == 0.0 {
            return 0.0;
        }
        if p != c {
            for j in 0..n {
                a.swap(p * n + j, c * n + j);
            }
            d = -d;
        }
        let piv = a[c * n + c];
        d *= piv;
        for i in c + 1..n {
            let f = a[i * n + c] / piv;
            if f != 0.0 {
                for j in c..n {
                    a[i * n + j] -= f * a[c * n + j];
                }
            }
        }
    }
    d
}

fn eval_det(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = ctx.input(0)?;
    let r = x.rank();
    if r < 2 || x.shape()[r - 1] != x.shape()[r - 2] {
        bail!("Det needs square matrices, got {:?}", x.shape());
    }
    let n = x.shape()[r - 1];
    let batch = x.shape()[..r - 2].to_vec();
    let v = x.to_f64();
    let out: Vec<f64> = (0..numel(&batch))
        .map(|i| det(v[i * n * n..(i + 1) * n * n].to_vec(), n))
        .collect();
    Ok(vec![Tensor::from_f64(x.dtype(), batch, &out)])
}

// ---- Einsum ----

/// A parsed einsum equation: each operand's axes as label ids, the output's label ids, and
/// how many labels there are. Ellipsis dims get their own ids, right-aligned across operands.
#[derive(Debug, PartialEq)]
struct EinsumPlan {
    inputs: Vec<Vec<usize>>,
    output: Vec<usize>,
    num_labels: usize,
}

/// One term of an equation: letters, with the position of `...` if present.
fn parse_term(t: &str) -> OpResult<(Vec<u8>, Option<usize>)> {
    let mut letters = Vec::new();
    let mut ell = None;
    let b = t.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'.' {
            if b.get(i + 1) != Some(&b'.') || b.get(i + 2) != Some(&b'.') || ell.is_some() {
                bail!("bad ellipsis in einsum term \"{t}\"");
            }
            ell = Some(letters.len());
            i += 3;
        } else if b[i].is_ascii_alphabetic() {
            letters.push(b[i]);
            i += 1;
        } else {
            bail!("bad character {:?} in einsum term \"{t}\"", b[i] as char);
        }
    }
    Ok((letters, ell))
}

fn einsum_plan(equation: &str, ranks: &[usize]) -> OpResult<EinsumPlan> {
    let eq: String = equation.chars().filter(|c| !c.is_whitespace()).collect();
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l, Some(r)),
        None => (eq.as_str(), None),
    };
    let terms: Vec<&str> = lhs.split(',').collect();
    if terms.len() != ranks.len() {
        bail!(
            "einsum \"{equation}\" has {} operands, the node has {} inputs",
            terms.len(),
            ranks.len()
        );
    }
    let parsed = terms
        .iter()
        .map(|t| parse_term(t))
        .collect::<OpResult<Vec<_>>>()?;
    // Ellipsis rank per operand.
    let mut ell_ranks = Vec::new();
    for ((letters, ell), &r) in parsed.iter().zip(ranks) {
        let e = match ell {
            Some(_) if r >= letters.len() => r - letters.len(),
            None if r == letters.len() => 0,
            _ => bail!(
                "einsum \"{equation}\": term with {} labels does not fit an operand of rank {r}",
                letters.len()
            ),
        };
        ell_ranks.push(e);
    }
    let ell_rank = ell_ranks.iter().copied().max().unwrap_or(0);
    // Ids: ellipsis dims 0..ell_rank, then letters in order of appearance.
    let mut letter_ids: Vec<(u8, usize)> = Vec::new();
    let id_of = |c: u8, ids: &mut Vec<(u8, usize)>| -> usize {
        if let Some(&(_, i)) = ids.iter().find(|(l, _)| *l == c) {
            return i;
        }
        let i = ell_rank + ids.len();
        ids.push((c, i));
        i
    };
    let mut inputs = Vec::new();
    let mut counts: Vec<(u8, usize)> = Vec::new();
    for ((letters, ell), &e) in parsed.iter().zip(&ell_ranks) {
        let mut axes = Vec::new();
        for (pos, &c) in letters.iter().enumerate() {
            if *ell == Some(pos) {
                axes.extend(ell_rank - e..ell_rank);
            }
            axes.push(id_of(c, &mut letter_ids));
            match counts.iter_mut().find(|(l, _)| *l == c) {
                Some(x) => x.1 += 1,
                None => counts.push((c, 1)),
            }
        }
        if *ell == Some(letters.len()) {
            axes.extend(ell_rank - e..ell_rank);
        }
        inputs.push(axes);
    }
    let output = match rhs {
        Some(r) => {
            let (letters, ell) = parse_term(r)?;
            let mut out = Vec::new();
            for (pos, &c) in letters.iter().enumerate() {
                if ell == Some(pos) {
                    out.extend(0..ell_rank);
                }
                let Some(&(_, i)) = letter_ids.iter().find(|(l, _)| *l == c) else {
                    bail!(
                        "einsum \"{equation}\": output label {} is not an input label",
                        c as char
                    );
                };
                if out.contains(&i) {
                    bail!("einsum \"{equation}\": output label {} repeats", c as char);
                }
                out.push(i);
            }
            if ell == Some(letters.len()) {
                out.extend(0..ell_rank);
            }
            out
        }
        None => {
            let mut once: Vec<u8> = counts
                .iter()
                .filter(|(_, n)| *n == 1)
                .map(|(c, _)| *c)
                .collect();
            once.sort_unstable();
            let mut out: Vec<usize> = (0..ell_rank).collect();
            for c in once {
                out.extend(letter_ids.iter().filter(|(l, _)| *l == c).map(|(_, i)| *i));
            }
            out
        }
    };
    Ok(EinsumPlan {
        inputs,
        output,
        num_labels: ell_rank + letter_ids.len(),
    })
}

fn einsum_equation(attrs: &crate::attr::Attrs) -> OpResult<&str> {
    attrs
        .str("equation")?
        .ok_or_else(|| crate::ops::OpError::new("Einsum needs an `equation`"))
}

fn infer_einsum(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let types = (0..ctx.inputs.len())
        .map(|i| ctx.input(i))
        .collect::<OpResult<Vec<_>>>()?;
    let Some(first) = types.first() else {
        bail!("Einsum needs at least one input");
    };
    if types.iter().any(|t| t.dtype != first.dtype) {
        bail!("Einsum operands have different dtypes");
    }
    let ranks: Vec<usize> = types.iter().map(|t| t.rank()).collect();
    let plan = einsum_plan(einsum_equation(ctx.attrs)?, &ranks)?;
    let mut sizes: Vec<Option<Dim>> = vec![None; plan.num_labels];
    for (t, axes) in types.iter().zip(&plan.inputs) {
        for (d, &l) in t.shape.iter().zip(axes) {
            sizes[l] = Some(match sizes[l].take() {
                None => d.clone(),
                Some(s) => {
                    let b = broadcast_shapes(&[std::slice::from_ref(&s), std::slice::from_ref(d)]);
                    match b {
                        Some(v) => v[0].clone(),
                        None => bail!("Einsum: a label has sizes {s} and {d}"),
                    }
                }
            });
        }
    }
    let shape: Shape = plan
        .output
        .iter()
        .map(|&l| sizes[l].clone().unwrap_or_else(|| Dim::from(1i64)))
        .collect();
    one(first.dtype, shape)
}

fn eval_einsum(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let ts = (0..ctx.inputs.len())
        .map(|i| ctx.input(i))
        .collect::<OpResult<Vec<_>>>()?;
    let Some(first) = ts.first() else {
        bail!("Einsum needs at least one input");
    };
    let dtype = first.dtype();
    let ranks: Vec<usize> = ts.iter().map(|t| t.rank()).collect();
    let plan = einsum_plan(einsum_equation(ctx.attrs)?, &ranks)?;
    let mut sizes = vec![1usize; plan.num_labels];
    let mut seen = vec![false; plan.num_labels];
    for (t, axes) in ts.iter().zip(&plan.inputs) {
        for (&d, &l) in t.shape().iter().zip(axes) {
            if !seen[l] || sizes[l] == 1 {
                sizes[l] = d;
            } else if d != sizes[l] && d != 1 {
                bail!("Einsum: a label has sizes {} and {d}", sizes[l]);
            }
            seen[l] = true;
        }
    }
    // Loop order: output labels, then the summed ones.
    let mut order = plan.output.clone();
    order.extend((0..plan.num_labels).filter(|l| !plan.output.contains(l)));
    let loop_sizes: Vec<usize> = order.iter().map(|&l| sizes[l]).collect();
    // Per operand, the stride each loop label advances it by (repeated labels add up;
    // broadcast axes of size 1 stay put).
    let op_strides: Vec<Vec<usize>> = ts
        .iter()
        .zip(&plan.inputs)
        .map(|(t, axes)| {
            let st = strides(t.shape());
            order
                .iter()
                .map(|&l| {
                    axes.iter()
                        .enumerate()
                        .filter(|&(i, &a)| a == l && t.shape()[i] != 1)
                        .map(|(i, _)| st[i])
                        .sum()
                })
                .collect()
        })
        .collect();
    let out_shape: Vec<usize> = plan.output.iter().map(|&l| sizes[l]).collect();
    let n_out = numel(&out_shape);
    let inner: usize = loop_sizes[plan.output.len()..].iter().product();
    // Offsets split into the output part and the summed part: offset = outer + inner.
    let n_keep = plan.output.len();
    let outer_off: Vec<Vec<usize>> = op_strides
        .iter()
        .map(|s| strided_offsets(&loop_sizes[..n_keep], &s[..n_keep]))
        .collect();
    let inner_off: Vec<Vec<usize>> = op_strides
        .iter()
        .map(|s| strided_offsets(&loop_sizes[n_keep..], &s[n_keep..]))
        .collect();
    let ops = outer_off.iter().zip(&inner_off);
    if dtype.is_float() {
        let vals: Vec<Vec<f64>> = ts.iter().map(|t| t.to_f64()).collect();
        let mut out = vec![0f64; n_out];
        let mut acc = vec![0f64; inner];
        for (o, y) in out.iter_mut().enumerate() {
            acc.fill(1.0);
            for (v, (oo, io)) in vals.iter().zip(ops.clone()) {
                let base = oo[o];
                for (a, &i) in acc.iter_mut().zip(io) {
                    *a *= v[base + i];
                }
            }
            *y = acc.iter().sum();
        }
        Ok(vec![Tensor::from_f64(dtype, out_shape, &out)])
    } else {
        let vals: Vec<Vec<i64>> = ts.iter().map(|t| t.to_i64()).collect();
        let mut out = vec![0i64; n_out];
        let mut acc = vec![0i64; inner];
        for (o, y) in out.iter_mut().enumerate() {
            acc.fill(1);
            for (v, (oo, io)) in vals.iter().zip(ops.clone()) {
                let base = oo[o];
                for (a, &i) in acc.iter_mut().zip(io) {
                    *a = a.wrapping_mul(v[base + i]);
                }
            }
            *y = acc.iter().fold(0i64, |s, &a| s.wrapping_add(a));
        }
        Ok(vec![Tensor::from_i64(dtype, out_shape, &out)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr::Attr;
    use crate::ops::reduce::test_util::*;

    fn seq(shape: &[usize]) -> Tensor {
        let n = numel(shape);
        f32s(shape, &(0..n).map(|i| i as f32).collect::<Vec<_>>())
    }

    /// Naive reference: out[b, i, j] = sum_k a[b, i, k] * b[b, k, j].
    fn naive(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                for p in 0..k {
                    out[i * n + j] += a[i * k + p] * b[p * n + j];
                }
            }
        }
        out
    }

    #[test]
    fn matmul_2d_and_1d_operands() {
        let a = seq(&[2, 3]);
        let b = seq(&[3, 2]);
        let y = run1("MatMul", &attrs(&[]), &[Some(a.clone()), Some(b)]).unwrap();
        assert_close(&y, &[2, 2], &[10.0, 13.0, 28.0, 40.0], 0.0);
        let v = seq(&[3]);
        let y = run1("MatMul", &attrs(&[]), &[Some(a), Some(v.clone())]).unwrap();
        assert_close(&y, &[2], &[5.0, 14.0], 0.0);
        let y = run1("MatMul", &attrs(&[]), &[Some(v.clone()), Some(v)]).unwrap();
        assert_close(&y, &[], &[5.0], 0.0);
    }

    #[test]
    fn matmul_batch_broadcast() {
        let a = seq(&[2, 1, 2, 3]);
        let b = seq(&[3, 3, 2]);
        let y = run1("MatMul", &attrs(&[]), &[Some(a.clone()), Some(b.clone())]).unwrap();
        assert_eq!(y.shape(), &[2, 3, 2, 2]);
        let (av, bv, yv) = (a.to_f64(), b.to_f64(), y.to_f64());
        for i in 0..2 {
            for j in 0..3 {
                let want = naive(&av[i * 6..i * 6 + 6], &bv[j * 6..j * 6 + 6], 2, 3, 2);
                let o = (i * 3 + j) * 4;
                assert_eq!(&yv[o..o + 4], &want[..]);
            }
        }
        let e = run1(
            "MatMul",
            &attrs(&[]),
            &[Some(seq(&[2, 3])), Some(seq(&[2, 3]))],
        );
        assert!(e.is_err());
    }

    #[test]
    fn matmul_ints_are_exact() {
        let a = Tensor::from_i64(DType::I64, vec![1, 2], &[1 << 40, 3]);
        let b = Tensor::from_i64(DType::I64, vec![2, 1], &[(1 << 20) + 1, 5]);
        let y = run1("MatMul", &attrs(&[]), &[Some(a), Some(b)]).unwrap();
        assert_eq!(y.to_i64(), vec![(1i64 << 60) + (1 << 40) + 15]);
    }

    #[test]
    fn gemm_transposes_and_bias() {
        let a = seq(&[3, 2]); // used transposed: [2, 3]
        let b = seq(&[2, 3]); // used transposed: [3, 2]
        let c = f32s(&[2], &[1.0, -1.0]);
        let at = attrs(&[
            ("transA", Attr::Int(1)),
            ("transB", Attr::Int(1)),
            ("alpha", Attr::Float(2.0)),
            ("beta", Attr::Float(0.5)),
        ]);
        let y = run1("Gemm", &at, &[Some(a), Some(b), Some(c)]).unwrap();
        // A' = [[0,2,4],[1,3,5]], B' = [[0,3],[1,4],[2,5]] -> A'B' = [[10,28],[13,40]]
        assert_close(&y, &[2, 2], &[20.5, 55.5, 26.5, 79.5], 0.0);
        let bad = f32s(&[3], &[0.0; 3]);
        assert!(run1(
            "Gemm",
            &at,
            &[Some(seq(&[3, 2])), Some(seq(&[2, 3])), Some(bad)]
        )
        .is_err());
    }

    #[test]
    fn matmul_integer_zero_points() {
        let a = Tensor::from_i64(DType::U8, vec![2, 2], &[10, 11, 20, 21]);
        let b = Tensor::from_i64(DType::U8, vec![2, 2], &[3, 4, 5, 6]);
        let za = Tensor::from_i64(DType::U8, vec![2], &[10, 20]); // per row
        let zb = Tensor::from_i64(DType::U8, vec![2], &[3, 4]); // per column
        let y = run1(
            "MatMulInteger",
            &attrs(&[]),
            &[Some(a), Some(b), Some(za), Some(zb)],
        )
        .unwrap();
        // A - za = [[0,1],[0,1]], B - zb = [[0,0],[2,2]]
        assert_eq!((y.dtype(), y.to_i64()), (DType::I32, vec![2, 2, 2, 2]));
    }

    #[test]
    fn det_batch() {
        let x = f32s(
            &[2, 3, 3],
            &[
                2., 0., 0., 0., 3., 0., 0., 0., 4., 0., 1., 0., 1., 0., 0., 0., 0., 1.,
            ],
        );
        let y = run1("Det", &attrs(&[]), &[Some(x)]).unwrap();
        assert_close(&y, &[2], &[24.0, -1.0], 1e-12);
    }

    fn eins(eq: &str, xs: Vec<Tensor>) -> Tensor {
        let inputs: Vec<Option<Tensor>> = xs.into_iter().map(Some).collect();
        run1(
            "Einsum",
            &attrs(&[("equation", Attr::Str(eq.into()))]),
            &inputs,
        )
        .unwrap()
    }

    #[test]
    fn einsum_forms() {
        let a = seq(&[2, 3]);
        let b = seq(&[3, 2]);
        // Implicit output: the once-used labels sorted -> "ik".
        let y = eins("ij,jk", vec![a.clone(), b.clone()]);
        assert_close(&y, &[2, 2], &[10.0, 13.0, 28.0, 40.0], 0.0);
        // Implicit transpose: "ji" -> output "ij" = transpose.
        let y = eins("ji", vec![a.clone()]);
        assert_close(&y, &[3, 2], &[0.0, 3.0, 1.0, 4.0, 2.0, 5.0], 0.0);
        let y = eins("ij->", vec![a.clone()]);
        assert_close(&y, &[], &[15.0], 0.0);
        let y = eins("i j -> j", vec![a.clone()]);
        assert_close(&y, &[3], &[3.0, 5.0, 7.0], 0.0);
        // Diagonal and trace.
        let m = seq(&[3, 3]);
        assert_close(&eins("ii->i", vec![m.clone()]), &[3], &[0.0, 4.0, 8.0], 0.0);
        assert_close(&eins("ii", vec![m.clone()]), &[], &[12.0], 0.0);
        // Ellipsis batch diagonal.
        let x = seq(&[2, 2, 2]);
        assert_close(
            &eins("...ii ->...i", vec![x.clone()]),
            &[2, 2],
            &[0.0, 3.0, 4.0, 7.0],
            0.0,
        );
        // Batched matmul with ellipsis broadcasting.
        let p = seq(&[2, 1, 2]);
        let q = seq(&[2, 3]);
        let y = eins("...ij,jk->...ik", vec![p, q]);
        assert_close(&y, &[2, 1, 3], &[3.0, 4.0, 5.0, 9.0, 14.0, 19.0], 0.0);
        // Outer product, three operands.
        let v = seq(&[2]);
        let y = eins("i,j,k->ijk", vec![v.clone(), v.clone(), f32s(&[1], &[2.0])]);
        assert_close(&y, &[2, 2, 1], &[0.0, 0.0, 0.0, 2.0], 0.0);
    }

    #[test]
    fn einsum_errors() {
        let a = seq(&[2, 3]);
        let run = |eq: &str| {
            run1(
                "Einsum",
                &attrs(&[("equation", Attr::Str(eq.into()))]),
                &[Some(a.clone())],
            )
        };
        assert!(run("ijk->i").is_err());
        assert!(run("ij->k").is_err());
        assert!(run("ij,jk").is_err());
        assert!(run("ii").is_err());
    }
}

#[cfg(test)]
mod speed {
    use crate::ops::reduce::test_util::*;
    use crate::tensor::Tensor;

    #[test]
    #[ignore]
    fn minilm_sized_matmul() {
        let a = Tensor::from_f32s(vec![1, 128, 384], vec![0.5; 128 * 384]).unwrap();
        let b = Tensor::from_f32s(vec![384, 1536], vec![0.25; 384 * 1536]).unwrap();
        let t = std::time::Instant::now();
        let y = run1("MatMul", &attrs(&[]), &[Some(a), Some(b)]).unwrap();
        eprintln!("MatMul [1,128,384]x[384,1536]: {:?}", t.elapsed());
        let (a, b) = (vec![0.5f64; 128 * 384], vec![0.25f64; 384 * 1536]);
        let mut o = vec![0f64; 128 * 1536];
        let t = std::time::Instant::now();
        super::matmul_f64(&a, &b, 128, 384, 1536, &mut o);
        eprintln!("kernel only: {:?}", t.elapsed());
        assert_eq!(y.to_f64()[0], 48.0);
    }
}
