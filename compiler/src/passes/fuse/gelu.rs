//! `fuse-gelu`: GELU spelled out -> ONNX `Gelu(x) {approximate}` (already an exact op with a
//! kernel; kiln has no op of its own for it).
//!
//! Forms (after canonicalize):
//! - `erf`: `0.5 * x * (1 + Erf(x / sqrt(2)))` (BERT, MiniLM: Div, Erf, Add, Mul, Mul) ->
//!   `approximate = "none"`;
//! - `tanh`: `0.5 * x * (1 + Tanh(sqrt(2 / pi) * (x + 0.044715 * x^3)))` (GPT-2's
//!   `gelu_new`, BLOOM's `x * (1 + 0.044715 * x * x)`) -> `approximate = "tanh"`.
//!
//! Both are recognised as polynomials, not as one node order: the region around an `Erf` or
//! `Tanh` of Add, Sub, Mul, Div by a constant, Neg and Pow by a small integer, with scalar
//! constants, must compute `0.5 x + 0.5 x t` where `t` is the Erf/Tanh of exactly
//! `x / sqrt(2)` (or the tanh polynomial), coefficients within 1e-4 relative (exporters
//! round them to f32 or fewer digits). Any other polynomial (`x * erf(x)`, another scale) is
//! left alone.

use std::collections::BTreeMap;

use kiln_ir::{Attr, Attrs, Graph, NodeId, Value};

use super::pattern::{add, out0, Matcher};
use super::{Match, Rule};

pub struct FuseGelu;

impl Rule for FuseGelu {
    fn name(&self) -> &'static str {
        "fuse-gelu"
    }

    fn find(&self, g: &Graph, root: NodeId) -> Option<Match> {
        if !matches!(g.node(root).op.as_str(), "Mul" | "Div" | "Add") {
            return None;
        }
        let r = out0(root);
        if !g.value_type(r).dtype.is_float() {
            return None;
        }
        for atom in atoms(g, r) {
            let approx = if g.node(atom).op == "Erf" {
                "none"
            } else {
                "tanh"
            };
            let z = g.node(atom).input(0)?;
            for x in candidates(g, z) {
                if g.value_type(x) != g.value_type(r) {
                    continue;
                }
                let mut m = Matcher::new(g);
                let Some(inner) = poly(&mut m, z, x, None, 0) else {
                    continue;
                };
                if !is_gelu_argument(&inner, approx) {
                    continue;
                }
                m.take(atom);
                let Some(outer) = poly(&mut m, r, x, Some(out0(atom)), 0) else {
                    continue;
                };
                if !same_poly(&outer, &[((1, 0), 0.5), ((1, 1), 0.5)]) {
                    continue;
                }
                return Some(rewrite(g, &m, root, x, approx));
            }
        }
        None
    }
}

/// A polynomial in x and t (the Erf/Tanh value): (degree of x, degree of t) -> coefficient.
type Poly = BTreeMap<(u8, u8), f64>;

const MAX_X: u8 = 3;
const MAX_T: u8 = 1;
const MAX_DEPTH: usize = 12;

/// Ops a GELU region is made of, besides the Erf/Tanh.
fn is_arith(op: &str) -> bool {
    matches!(op, "Add" | "Sub" | "Mul" | "Div" | "Neg" | "Pow")
}

/// The Erf/Tanh nodes under `v` through arithmetic.
fn atoms(g: &Graph, v: Value) -> Vec<NodeId> {
    let mut found = Vec::new();
    let mut seen = Vec::new();
    let mut stack = vec![(v, 0usize)];
    while let Some((v, depth)) = stack.pop() {
        let n = g.node(v.node);
        if v.output != 0 || depth > MAX_DEPTH || seen.contains(&v) {
            continue;
        }
        seen.push(v);
        if matches!(n.op.as_str(), "Erf" | "Tanh") {
            if !found.contains(&v.node) {
                found.push(v.node);
            }
        } else if is_arith(&n.op) {
            stack.extend(n.inputs().iter().flatten().map(|&i| (i, depth + 1)));
        }
    }
    found
}

/// Values under `z` through arithmetic that could be x (not constants), nearest first.
fn candidates(g: &Graph, z: Value) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut queue = std::collections::VecDeque::from([(z, 0usize)]);
    while let Some((v, depth)) = queue.pop_front() {
        if g.const_of(v).is_some() || out.contains(&v) || depth > MAX_DEPTH || out.len() > 16 {
            continue;
        }
        out.push(v);
        let n = g.node(v.node);
        if v.output == 0 && is_arith(&n.op) {
            queue.extend(n.inputs().iter().flatten().map(|&i| (i, depth + 1)));
        }
    }
    out
}

/// `v` as a polynomial in `x` and `t`, taking its arithmetic nodes into the region.
fn poly(m: &mut Matcher, v: Value, x: Value, t: Option<Value>, depth: usize) -> Option<Poly> {
    if v == x {
        return Some(Poly::from([((1, 0), 1.0)]));
    }
    if Some(v) == t {
        return Some(Poly::from([((0, 1), 1.0)]));
    }
    if let Some(c) = m.scalar(v) {
        return Some(Poly::from([((0, 0), c)]));
    }
    let g = m.g;
    let n = g.node(v.node);
    if v.output != 0 || depth > MAX_DEPTH || !is_arith(&n.op) {
        return None;
    }
    m.take(v.node);
    let arg = |m: &mut Matcher, i: usize| poly(m, n.input(i)?, x, t, depth + 1);
    let p = arg(m, 0)?;
    match n.op.as_str() {
        "Neg" => Some(scale(&p, -1.0)),
        "Add" => Some(sum(&p, &arg(m, 1)?, 1.0)),
        "Sub" => Some(sum(&p, &arg(m, 1)?, -1.0)),
        "Mul" => product(&p, &arg(m, 1)?),
        "Div" => {
            let c = constant_term(&arg(m, 1)?)?;
            (c != 0.0).then(|| scale(&p, 1.0 / c))
        }
        "Pow" => {
            let e = constant_term(&arg(m, 1)?)?;
            if e.fract() != 0.0 || !(1.0..=3.0).contains(&e) {
                return None;
            }
            let mut r = p.clone();
            for _ in 1..e as u8 {
                r = product(&r, &p)?;
            }
            Some(r)
        }
        _ => None,
    }
}

/// The value of a constant polynomial.
fn constant_term(p: &Poly) -> Option<f64> {
    let mut c = 0.0;
    for (&k, &v) in p {
        if k == (0, 0) {
            c = v;
        } else if v != 0.0 {
            return None;
        }
    }
    Some(c)
}

fn scale(p: &Poly, c: f64) -> Poly {
    p.iter().map(|(&k, &v)| (k, v * c)).collect()
}

fn sum(p: &Poly, q: &Poly, sign: f64) -> Poly {
    let mut r = p.clone();
    for (&k, &v) in q {
        *r.entry(k).or_insert(0.0) += sign * v;
    }
    r
}

fn product(p: &Poly, q: &Poly) -> Option<Poly> {
    let mut r = Poly::new();
    for (&(px, pt), &a) in p {
        for (&(qx, qt), &b) in q {
            if a == 0.0 || b == 0.0 {
                continue;
            }
            let k = (px + qx, pt + qt);
            if k.0 > MAX_X || k.1 > MAX_T {
                return None;
            }
            *r.entry(k).or_insert(0.0) += a * b;
        }
    }
    Some(r)
}

/// True if `p` has exactly the terms `want` (within 1e-4 relative) and no others.
fn same_poly(p: &Poly, want: &[((u8, u8), f64)]) -> bool {
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-4 * b.abs();
    p.iter().all(|(k, &v)| {
        want.iter()
            .find(|(wk, _)| wk == k)
            .map_or(v.abs() <= 1e-12, |&(_, w)| close(v, w))
    }) && want
        .iter()
        .all(|(wk, w)| p.get(wk).is_some_and(|&v| close(v, *w)))
}

/// True if `p` is Erf's argument `x / sqrt(2)` or Tanh's `sqrt(2 / pi) (x + 0.044715 x^3)`.
fn is_gelu_argument(p: &Poly, approx: &str) -> bool {
    if approx == "none" {
        return same_poly(p, &[((1, 0), std::f64::consts::FRAC_1_SQRT_2)]);
    }
    let k = (2.0 / std::f64::consts::PI).sqrt();
    same_poly(p, &[((1, 0), k), ((3, 0), k * 0.044715)])
}

fn rewrite(g: &Graph, m: &Matcher, root: NodeId, x: Value, approx: &'static str) -> Match {
    let origin = g.node(root).origin.clone();
    Match {
        form: if approx == "none" { "erf" } else { "tanh" },
        nodes: m.nodes(),
        rewrite: Box::new(move |g: &mut Graph| {
            let mut attrs = Attrs::new();
            attrs.insert("approximate".into(), Attr::Str(approx.into()));
            let y = add(g, "Gelu", attrs, vec![Some(x)], &origin)?;
            Ok(vec![(out0(root), y)])
        }),
    }
}
