//! A value's elements as a formula of their position, for reading attention masks.
//!
//! Exporters build causal and sliding-window masks from index arithmetic: Range, Unsqueeze,
//! Expand, Slice, Concat, GatherND, comparisons, Where, Trilu, constant triangles. To decide
//! what such a mask is, [`Formulas::of`] interprets the computation symbolically: each
//! element of a value becomes an [`Expr`] of its indices (integer index arithmetic is kept
//! as exact [`Affine`] functions, with symbolic dims as constants). Anything it cannot see
//! through (a graph input, a data-dependent op) is an opaque [`Expr::Leaf`] read at an
//! affine position, so a formula is always exact; it is only more or less informative.

use std::collections::HashMap;

use kiln_ir::attr::AttrsExt;
use kiln_ir::{DType, Dim, Graph, Tensor, Value};

/// `c + Σ coef[a] * index[a]` over the axes of a value.
#[derive(Clone, Debug, PartialEq)]
pub struct Affine {
    pub coef: Vec<i64>,
    pub c: Dim,
}

impl Affine {
    pub fn constant(rank: usize, c: Dim) -> Affine {
        Affine {
            coef: vec![0; rank],
            c,
        }
    }

    pub fn index(rank: usize, axis: usize) -> Affine {
        let mut coef = vec![0; rank];
        coef[axis] = 1;
        Affine {
            coef,
            c: Dim::from(0i64),
        }
    }

    pub fn is_const(&self) -> bool {
        self.coef.iter().all(|&k| k == 0)
    }

    pub fn as_i64(&self) -> Option<i64> {
        if self.is_const() {
            self.c.as_const()
        } else {
            None
        }
    }

    fn add(&self, o: &Affine) -> Affine {
        Affine {
            coef: self.coef.iter().zip(&o.coef).map(|(a, b)| a + b).collect(),
            c: self.c.add(&o.c),
        }
    }

    fn scale(&self, k: i64) -> Affine {
        Affine {
            coef: self.coef.iter().map(|a| a * k).collect(),
            c: self.c.mul(&Dim::from(k)),
        }
    }

    fn sub(&self, o: &Affine) -> Affine {
        self.add(&o.scale(-1))
    }

    /// This function with index `a` replaced by `map[a]` (affines over another rank).
    pub fn compose(&self, map: &[Affine], rank: usize) -> Affine {
        let mut out = Affine::constant(rank, self.c.clone());
        for (k, m) in self.coef.iter().zip(map) {
            if *k != 0 {
                out = out.add(&m.scale(*k));
            }
        }
        out
    }

    /// True if the value is provably >= 0 (indices are).
    fn nonneg(&self) -> bool {
        self.coef.iter().all(|&k| k >= 0) && self.c.as_const().is_some_and(|c| c >= 0)
    }
}

/// An elementwise function.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fun {
    Not,
    Neg,
    IsNaN,
    Cast(DType),
    Add,
    Sub,
    Mul,
    Div,
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    Xor,
    Max,
    Min,
    Where,
}

impl Fun {
    fn of_op(op: &str) -> Option<Fun> {
        Some(match op {
            "Not" => Fun::Not,
            "Neg" => Fun::Neg,
            "IsNaN" => Fun::IsNaN,
            "Add" => Fun::Add,
            "Sub" => Fun::Sub,
            "Mul" => Fun::Mul,
            "Div" => Fun::Div,
            "Equal" => Fun::Eq,
            "Less" => Fun::Lt,
            "LessOrEqual" => Fun::Le,
            "Greater" => Fun::Gt,
            "GreaterOrEqual" => Fun::Ge,
            "And" => Fun::And,
            "Or" => Fun::Or,
            "Xor" => Fun::Xor,
            "Max" => Fun::Max,
            "Min" => Fun::Min,
            "Where" => Fun::Where,
            _ => return None,
        })
    }

    /// The ONNX op computing this function (with Cast's `to`).
    pub fn op(self) -> &'static str {
        match self {
            Fun::Not => "Not",
            Fun::Neg => "Neg",
            Fun::IsNaN => "IsNaN",
            Fun::Cast(_) => "Cast",
            Fun::Add => "Add",
            Fun::Sub => "Sub",
            Fun::Mul => "Mul",
            Fun::Div => "Div",
            Fun::Eq => "Equal",
            Fun::Lt => "Less",
            Fun::Le => "LessOrEqual",
            Fun::Gt => "Greater",
            Fun::Ge => "GreaterOrEqual",
            Fun::And => "And",
            Fun::Or => "Or",
            Fun::Xor => "Xor",
            Fun::Max => "Max",
            Fun::Min => "Min",
            Fun::Where => "Where",
        }
    }

    pub fn is_comparison(self) -> bool {
        matches!(self, Fun::Eq | Fun::Lt | Fun::Le | Fun::Gt | Fun::Ge)
    }
}

/// An element of a value as a function of its position.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// A number (bools as 0 / 1).
    Num(f64),
    /// An integer affine in the indices.
    Lin(Affine),
    /// Value `v` read at a position affine in the indices.
    Leaf(Value, Vec<Affine>),
    /// A function (with its result dtype) of other elements.
    App(Fun, DType, Vec<Expr>),
}

impl Expr {
    /// The number, if the element is one.
    pub fn num(&self) -> Option<f64> {
        match self {
            Expr::Num(x) => Some(*x),
            Expr::Lin(a) => a.as_i64().map(|x| x as f64),
            _ => None,
        }
    }

    fn lin(&self, rank: usize) -> Option<Affine> {
        match self {
            Expr::Lin(a) => Some(a.clone()),
            Expr::Num(x) if x.fract() == 0.0 && x.abs() < 9e15 => {
                Some(Affine::constant(rank, Dim::from(*x as i64)))
            }
            _ => None,
        }
    }

    /// Every affine the formula uses (in Lin and Leaf positions).
    pub fn affines<'a>(&'a self, out: &mut Vec<&'a Affine>) {
        match self {
            Expr::Num(_) => {}
            Expr::Lin(a) => out.push(a),
            Expr::Leaf(_, at) => out.extend(at.iter()),
            Expr::App(_, _, args) => args.iter().for_each(|a| a.affines(out)),
        }
    }

    pub fn has_leaf(&self) -> bool {
        match self {
            Expr::Leaf(..) => true,
            Expr::App(_, _, args) => args.iter().any(Expr::has_leaf),
            _ => false,
        }
    }

    /// The formula with index `a` replaced by `map[a]` (affines over rank `rank`).
    pub fn subst(&self, map: &[Affine], rank: usize) -> Expr {
        match self {
            Expr::Num(x) => Expr::Num(*x),
            Expr::Lin(a) => Expr::Lin(a.compose(map, rank)),
            Expr::Leaf(v, at) => Expr::Leaf(*v, at.iter().map(|a| a.compose(map, rank)).collect()),
            Expr::App(f, dt, args) => mk(
                *f,
                *dt,
                args.iter().map(|a| a.subst(map, rank)).collect(),
                rank,
            ),
        }
    }
}

/// Rounds `x` to dtype `dt`, if the result is exactly known.
fn round_to(dt: DType, x: f64) -> Option<f64> {
    match dt {
        DType::F64 => Some(x),
        DType::F32 => Some(x as f32 as f64),
        DType::Bool => Some(if x != 0.0 { 1.0 } else { 0.0 }),
        d if d.is_int() => (x.fract() == 0.0 && x.abs() < 9e15).then_some(x),
        DType::F16 | DType::BF16 => Some(Tensor::from_f64(dt, vec![], &[x]).to_f64()[0]),
        _ => None,
    }
}

/// `f(args)` on numbers.
fn fold(f: Fun, dt: DType, a: &[f64]) -> Option<f64> {
    let b = |x: f64| if x != 0.0 { 1.0 } else { 0.0 };
    let t = |c: bool| if c { 1.0 } else { 0.0 };
    let x = match (f, a) {
        (Fun::Not, [x]) => 1.0 - b(*x),
        (Fun::Neg, [x]) => -x,
        (Fun::IsNaN, [x]) => t(x.is_nan()),
        (Fun::Cast(to), [x]) => {
            return if to.is_int() {
                (x.is_finite() && x.abs() < 9e15).then(|| x.trunc())
            } else {
                round_to(to, *x)
            }
        }
        (Fun::Add, [x, y]) => x + y,
        (Fun::Sub, [x, y]) => x - y,
        (Fun::Mul, [x, y]) => x * y,
        (Fun::Div, [x, y]) => {
            if dt.is_int() && (*y == 0.0 || x % y != 0.0) {
                return None;
            }
            x / y
        }
        (Fun::Eq, [x, y]) => t(x == y),
        (Fun::Lt, [x, y]) => t(x < y),
        (Fun::Le, [x, y]) => t(x <= y),
        (Fun::Gt, [x, y]) => t(x > y),
        (Fun::Ge, [x, y]) => t(x >= y),
        (Fun::And, [x, y]) => b(*x) * b(*y),
        (Fun::Or, [x, y]) => b(b(*x) + b(*y)),
        (Fun::Xor, [x, y]) => t(b(*x) != b(*y)),
        (Fun::Max, [x, y]) => x.max(*y),
        (Fun::Min, [x, y]) => x.min(*y),
        (Fun::Where, [c, x, y]) => {
            if *c != 0.0 {
                *x
            } else {
                *y
            }
        }
        _ => return None,
    };
    if f.is_comparison() || matches!(f, Fun::Not | Fun::IsNaN | Fun::And | Fun::Or | Fun::Xor) {
        return Some(x);
    }
    round_to(dt, x)
}

/// `f(args)` with result dtype `dt`, simplified: numbers folded, integer index arithmetic
/// kept affine, comparisons of affines reduced to `difference OP 0`, bool identities.
pub fn mk(f: Fun, dt: DType, args: Vec<Expr>, rank: usize) -> Expr {
    let nums: Option<Vec<f64>> = args.iter().map(Expr::num).collect();
    if let Some(n) = nums {
        if let Some(x) = fold(f, dt, &n) {
            return Expr::Num(x);
        }
    }
    let lins: Option<Vec<Affine>> = args.iter().map(|a| a.lin(rank)).collect();
    let has_lin = args.iter().any(|a| matches!(a, Expr::Lin(_)));
    if let (Some(l), true) = (&lins, has_lin) {
        match (f, l.as_slice()) {
            (Fun::Add, [a, b]) if dt.is_int() => return Expr::Lin(a.add(b)),
            (Fun::Sub, [a, b]) if dt.is_int() => return Expr::Lin(a.sub(b)),
            (Fun::Neg, [a]) if dt.is_int() => return Expr::Lin(a.scale(-1)),
            (Fun::Mul, [a, b]) if dt.is_int() => {
                if let Some(k) = b.as_i64() {
                    return Expr::Lin(a.scale(k));
                }
                if let Some(k) = a.as_i64() {
                    return Expr::Lin(b.scale(k));
                }
            }
            (f, [a, b]) if f.is_comparison() => {
                let d = a.sub(b);
                let nonneg = d.nonneg();
                let nonpos = d.scale(-1).nonneg();
                let known = match f {
                    Fun::Ge if nonneg => Some(true),
                    Fun::Lt if nonneg => Some(false),
                    Fun::Le if nonpos => Some(true),
                    Fun::Gt if nonpos => Some(false),
                    _ => None,
                };
                if let Some(k) = known {
                    return Expr::Num(if k { 1.0 } else { 0.0 });
                }
                let zero = Affine::constant(rank, Dim::from(0i64));
                return Expr::App(f, dt, vec![Expr::Lin(d), Expr::Lin(zero)]);
            }
            _ => {}
        }
    }
    let truth = |e: &Expr| e.num().map(|x| x != 0.0);
    match (f, args.as_slice()) {
        (Fun::And, [x, y]) | (Fun::And, [y, x]) if truth(x).is_some() => {
            return if truth(x) == Some(true) {
                y.clone()
            } else {
                Expr::Num(0.0)
            };
        }
        (Fun::Or, [x, y]) | (Fun::Or, [y, x]) if truth(x).is_some() => {
            return if truth(x) == Some(true) {
                Expr::Num(1.0)
            } else {
                y.clone()
            };
        }
        (Fun::Not, [Expr::App(Fun::Not, _, inner)]) => return inner[0].clone(),
        (Fun::Where, [c, x, y]) => {
            if let Some(c) = truth(c) {
                return if c { x.clone() } else { y.clone() };
            }
            if x == y {
                return x.clone();
            }
        }
        (Fun::Cast(DType::Bool), [x @ Expr::App(g, DType::Bool, _)]) if g.is_comparison() => {
            return x.clone();
        }
        _ => {}
    }
    Expr::App(f, dt, args)
}

/// Integer constants of `v` (a `constant` or a `dims` node with constant contents).
pub fn const_ints(g: &Graph, v: Value) -> Option<Vec<i64>> {
    if let Some(t) = g.const_of(v) {
        return t.dtype().is_int().then(|| t.to_i64());
    }
    dims_of(g, v)?.iter().map(Dim::as_const).collect()
}

/// The symbolic contents of a `dims` node's value.
fn dims_of(g: &Graph, v: Value) -> Option<Vec<Dim>> {
    let n = g.node(v.node);
    (n.op == "dims" && v.output == 0)
        .then(|| n.attrs.dims("value").ok().flatten())
        .flatten()
}

/// For an input of shape `src` broadcast to `dst` (numpy rules): where each input index
/// comes from.
pub fn broadcast_map(src: &[Dim], dst: &[Dim]) -> Option<Vec<Affine>> {
    let r = dst.len();
    let lead = r.checked_sub(src.len())?;
    Some(
        src.iter()
            .enumerate()
            .map(|(a, d)| {
                if d.as_const() == Some(1) && dst[a + lead].as_const() != Some(1) {
                    Affine::constant(r, Dim::from(0i64))
                } else {
                    Affine::index(r, a + lead)
                }
            })
            .collect(),
    )
}

/// For a reshape that only inserts or removes size-1 axes: where each input index comes
/// from.
fn ones_map(src: &[Dim], dst: &[Dim]) -> Option<Vec<Affine>> {
    let r = dst.len();
    let one = |d: &Dim| d.as_const() == Some(1);
    let mut o = 0;
    let mut map = Vec::with_capacity(src.len());
    for d in src {
        if one(d) {
            map.push(Affine::constant(r, Dim::from(0i64)));
            continue;
        }
        while o < r && one(&dst[o]) {
            o += 1;
        }
        if o == r || dst[o] != *d {
            return None;
        }
        map.push(Affine::index(r, o));
        o += 1;
    }
    dst[o..].iter().all(one).then_some(map)
}

/// Symbolic interpretation of a graph's values, memoised.
pub struct Formulas<'g> {
    g: &'g Graph,
    memo: HashMap<Value, Expr>,
}

impl<'g> Formulas<'g> {
    pub fn new(g: &'g Graph) -> Formulas<'g> {
        Formulas {
            g,
            memo: HashMap::new(),
        }
    }

    /// The formula of `v`'s elements over its own indices.
    pub fn of(&mut self, v: Value) -> Expr {
        if let Some(e) = self.memo.get(&v) {
            return e.clone();
        }
        let e = self.interpret(v).unwrap_or_else(|| self.leaf(v));
        self.memo.insert(v, e.clone());
        e
    }

    fn rank(&self, v: Value) -> usize {
        self.g.value_type(v).rank()
    }

    fn shape(&self, v: Value) -> Vec<Dim> {
        self.g.value_type(v).shape.clone()
    }

    fn leaf(&self, v: Value) -> Expr {
        let r = self.rank(v);
        Expr::Leaf(v, (0..r).map(|a| Affine::index(r, a)).collect())
    }

    /// Input `u` read at `map` (affines over rank `rank`).
    fn at(&mut self, u: Value, map: &[Affine], rank: usize) -> Expr {
        self.of(u).subst(map, rank)
    }

    /// Input `u` broadcast to the shape `dst`.
    fn broadcast(&mut self, u: Value, dst: &[Dim]) -> Option<Expr> {
        let map = broadcast_map(&self.shape(u), dst)?;
        Some(self.at(u, &map, dst.len()))
    }

    fn interpret(&mut self, v: Value) -> Option<Expr> {
        let g = self.g;
        if v.output != 0 {
            return None;
        }
        let n = g.node(v.node);
        let out = n.outputs[0].shape.clone();
        let dt = n.outputs[0].dtype;
        let r = out.len();
        let input = |i: usize| n.input(i);
        match n.op.as_str() {
            "constant" => {
                let t = g.const_of(v)?;
                let x = t.to_f64();
                let first = *x.first()?;
                if x.iter()
                    .all(|&y| y == first || (y.is_nan() && first.is_nan()))
                {
                    return Some(Expr::Num(first));
                }
                band(t.shape(), &x, r, dt)
            }
            "dims" => {
                let d = dims_of(g, v)?;
                (d.len() == 1).then(|| Expr::Lin(Affine::constant(r, d[0].clone())))
            }
            "ConstantOfShape" => {
                let x = match n.attrs.tensor("value").ok().flatten() {
                    Some(t) => *t.to_f64().first()?,
                    None => 0.0,
                };
                Some(Expr::Num(x))
            }
            "Range" => {
                if !dt.is_int() || r != 1 {
                    return None;
                }
                let start = self.of(input(0)?).lin(0)?;
                let delta = self.of(input(2)?).num()?;
                if !start.is_const() || delta.fract() != 0.0 {
                    return None;
                }
                Some(Expr::Lin(Affine {
                    coef: vec![delta as i64],
                    c: start.c,
                }))
            }
            "Unsqueeze" | "Squeeze" | "Reshape" => {
                let u = input(0)?;
                let map = ones_map(&self.shape(u), &out)?;
                Some(self.at(u, &map, r))
            }
            "Transpose" => {
                let u = input(0)?;
                let ru = self.rank(u);
                let perm = match n.attrs.ints("perm").ok()? {
                    Some(p) => p,
                    None => (0..ru as i64).rev().collect(),
                };
                let mut map = vec![Affine::constant(r, Dim::from(0i64)); ru];
                for (o, &p) in perm.iter().enumerate() {
                    *map.get_mut(usize::try_from(p).ok()?)? = Affine::index(r, o);
                }
                Some(self.at(u, &map, r))
            }
            "Expand" => self.broadcast(input(0)?, &out),
            "Slice" => self.slice(v, &out),
            "Concat" => self.concat(v, &out, dt),
            "Gather" => self.gather(v, &out),
            "GatherND" => self.gather_nd(v, &out),
            "CumSum" => (self.of(input(0)?).num() == Some(0.0)).then_some(Expr::Num(0.0)),
            "Trilu" => {
                if r < 2 {
                    return None;
                }
                let k = match input(1) {
                    Some(kv) => self.of(kv).num()?,
                    None => 0.0,
                };
                let x = self.of(input(0)?);
                // j - i - k, with i, j the last two indices.
                let mut d = Affine::index(r, r - 1).sub(&Affine::index(r, r - 2));
                d.c = Dim::from(-(k as i64));
                let f = if n.attrs.int_or("upper", 1).ok()? != 0 {
                    Fun::Ge
                } else {
                    Fun::Le
                };
                let zero = Expr::Num(0.0);
                let keep = mk(f, DType::Bool, vec![Expr::Lin(d), zero.clone()], r);
                Some(mk(Fun::Where, dt, vec![keep, x, zero], r))
            }
            "Cast" => {
                let to = n.attrs.dtype("to").ok().flatten()?;
                let x = self.of(input(0)?);
                Some(mk(Fun::Cast(to), to, vec![x], r))
            }
            op => {
                let f = Fun::of_op(op)?;
                let mut args = Vec::new();
                for i in 0..n.inputs().len() {
                    args.push(self.broadcast(input(i)?, &out)?);
                }
                let arity = match f {
                    Fun::Not | Fun::Neg | Fun::IsNaN => 1,
                    Fun::Where => 3,
                    _ => 2,
                };
                (args.len() == arity).then(|| mk(f, dt, args, r))
            }
        }
    }

    fn slice(&mut self, v: Value, out: &[Dim]) -> Option<Expr> {
        let n = self.g.node(v.node);
        let u = n.input(0)?;
        let r = out.len();
        let starts = const_ints(self.g, n.input(1)?)?;
        let axes = match n.input(3) {
            Some(a) => const_ints(self.g, a)?,
            None => (0..starts.len() as i64).collect(),
        };
        if let Some(s) = n.input(4) {
            if const_ints(self.g, s)?.iter().any(|&x| x != 1) {
                return None;
            }
        }
        let mut map: Vec<Affine> = (0..r).map(|a| Affine::index(r, a)).collect();
        for (&s, &a) in starts.iter().zip(&axes) {
            let a = usize::try_from(if a < 0 { a + r as i64 } else { a }).ok()?;
            // Negative starts count from the end (clamped): not followed.
            if s < 0 || a >= r {
                return None;
            }
            map[a].c = Dim::from(s);
        }
        Some(self.at(u, &map, r))
    }

    fn concat(&mut self, v: Value, out: &[Dim], dt: DType) -> Option<Expr> {
        let n = self.g.node(v.node);
        let r = out.len();
        let axis = n.attrs.int_or("axis", 0).ok()?;
        let axis = usize::try_from(if axis < 0 { axis + r as i64 } else { axis }).ok()?;
        let parts: Vec<Value> = n.inputs().iter().copied().collect::<Option<_>>()?;
        let mut offsets = vec![Dim::from(0i64)];
        for p in &parts {
            let len = self.shape(*p).get(axis)?.clone();
            offsets.push(offsets.last()?.add(&len));
        }
        let piece = |me: &mut Self, k: usize| {
            let mut map: Vec<Affine> = (0..r).map(|a| Affine::index(r, a)).collect();
            map[axis].c = offsets[k].neg();
            me.at(parts[k], &map, r)
        };
        let at_point = |e: &Expr, p: &Dim| {
            let mut map: Vec<Affine> = (0..r).map(|a| Affine::index(r, a)).collect();
            map[axis] = Affine::constant(r, p.clone());
            e.subst(&map, r)
        };
        let len_one = |k: usize| offsets[k + 1].sub(&offsets[k]).as_const() == Some(1);
        let last = parts.len() - 1;
        let mut acc = piece(self, last);
        for k in (0..last).rev() {
            let p = piece(self, k);
            let both_lin = matches!((&p, &acc), (Expr::Lin(_), Expr::Lin(_)));
            // A one-element piece that continues its neighbour's affine sequence (the
            // `Concat(pos[0] - 1, pos)` of shifted positions) merges into it.
            if both_lin && len_one(k) && at_point(&p, &offsets[k]) == at_point(&acc, &offsets[k]) {
                continue;
            }
            if both_lin
                && k + 1 == last
                && len_one(last)
                && at_point(&p, &offsets[last]) == at_point(&acc, &offsets[last])
            {
                acc = p;
                continue;
            }
            let mut before = Affine::index(r, axis);
            before.c = offsets[k + 1].neg();
            let cond = mk(
                Fun::Lt,
                DType::Bool,
                vec![Expr::Lin(before), Expr::Num(0.0)],
                r,
            );
            acc = mk(Fun::Where, dt, vec![cond, p, acc], r);
        }
        Some(acc)
    }

    fn gather(&mut self, v: Value, out: &[Dim]) -> Option<Expr> {
        let n = self.g.node(v.node);
        let (data, idx) = (n.input(0)?, n.input(1)?);
        let r = out.len();
        let rd = self.rank(data);
        let ri = self.rank(idx);
        let axis = n.attrs.int_or("axis", 0).ok()?;
        let axis = usize::try_from(if axis < 0 { axis + rd as i64 } else { axis }).ok()?;
        let imap: Vec<Affine> = (0..ri).map(|a| Affine::index(r, axis + a)).collect();
        let pos = self.at(idx, &imap, r).lin(r)?;
        if !pos.nonneg() {
            return None;
        }
        let map: Vec<Affine> = (0..rd)
            .map(|a| match a.cmp(&axis) {
                std::cmp::Ordering::Less => Affine::index(r, a),
                std::cmp::Ordering::Equal => pos.clone(),
                std::cmp::Ordering::Greater => Affine::index(r, a - 1 + ri),
            })
            .collect();
        Some(self.at(data, &map, r))
    }

    fn gather_nd(&mut self, v: Value, out: &[Dim]) -> Option<Expr> {
        let n = self.g.node(v.node);
        if n.attrs.int_or("batch_dims", 0).ok()? != 0 {
            return None;
        }
        let (data, idx) = (n.input(0)?, n.input(1)?);
        let r = out.len();
        let ishape = self.shape(idx);
        let ri = ishape.len();
        let k = usize::try_from(ishape.last()?.as_const()?).ok()?;
        let mut comps = Vec::with_capacity(k);
        for c in 0..k {
            let mut imap: Vec<Affine> = (0..ri - 1).map(|a| Affine::index(r, a)).collect();
            imap.push(Affine::constant(r, Dim::from(c as i64)));
            let pos = self.at(idx, &imap, r).lin(r)?;
            if !pos.nonneg() {
                return None;
            }
            comps.push(pos);
        }
        let rd = self.rank(data);
        let map: Vec<Affine> = (0..rd)
            .map(|a| {
                if a < k {
                    comps[a].clone()
                } else {
                    Affine::index(r, ri - 1 + a - k)
                }
            })
            .collect();
        Some(self.at(data, &map, r))
    }
}

/// A constant whose last two axes form a band: value `a` where `lo <= j - i <= hi`, `b`
/// elsewhere (a causal triangle, its complement, a sliding window), over leading axes of
/// size 1.
fn band(shape: &[usize], x: &[f64], r: usize, dt: DType) -> Option<Expr> {
    if r < 2 || shape[..r - 2].iter().any(|&d| d != 1) {
        return None;
    }
    let (rows, cols) = (shape[r - 2], shape[r - 1]);
    if rows == 0 || cols == 0 {
        return None;
    }
    // The value on each diagonal d = j - i (Toeplitz), d from -(rows - 1) to cols - 1.
    let off = rows as i64 - 1;
    let mut diag: Vec<Option<f64>> = vec![None; rows + cols - 1];
    for i in 0..rows {
        for j in 0..cols {
            let slot = &mut diag[(j as i64 - i as i64 + off) as usize];
            let y = x[i * cols + j];
            match slot {
                None => *slot = Some(y),
                Some(z) if *z == y => {}
                _ => return None,
            }
        }
    }
    let diag: Vec<f64> = diag.into_iter().collect::<Option<_>>()?;
    let first = diag[0];
    let last = *diag.last()?;
    // Inside: the value of one contiguous run; outside: the other value on both sides.
    let (inside, outside) = if first == last {
        let other = *diag.iter().find(|&&y| y != first)?;
        (other, first)
    } else {
        (last, first)
    };
    let runs: Vec<usize> = (0..diag.len()).filter(|&k| diag[k] == inside).collect();
    let (lo, hi) = (*runs.first()?, *runs.last()?);
    if runs.len() != hi - lo + 1 || diag.iter().any(|&y| y != inside && y != outside) {
        return None;
    }
    let d = Affine::index(r, r - 1).sub(&Affine::index(r, r - 2));
    let at = |k: usize| {
        let mut a = d.clone();
        a.c = Dim::from(-(k as i64 - off));
        Expr::Lin(a)
    };
    let zero = Expr::Num(0.0);
    let mut cond = Expr::Num(1.0);
    if lo > 0 {
        let ge = mk(Fun::Ge, DType::Bool, vec![at(lo), zero.clone()], r);
        cond = mk(Fun::And, DType::Bool, vec![cond, ge], r);
    }
    if hi + 1 < diag.len() {
        let le = mk(Fun::Le, DType::Bool, vec![at(hi), zero], r);
        cond = mk(Fun::And, DType::Bool, vec![cond, le], r);
    }
    Some(mk(
        Fun::Where,
        dt,
        vec![cond, Expr::Num(inside), Expr::Num(outside)],
        r,
    ))
}
