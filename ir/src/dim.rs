//! Symbolic dimensions.
//!
//! A [`Dim`] is a constant, a named symbol (`seq`), or an expression of symbols
//! (`past+seq`, `seq*4`, `floordiv(seq+1, 2)`). It is kept in a canonical form (a sum of
//! products with integer coefficients, sorted) so that two equal expressions compare equal
//! and print the same.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

/// A symbolic dimension (or any symbolic integer, such as the content of a shape tensor).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Dim {
    /// Sorted by monomial; no zero coefficients; the constant term has the empty monomial.
    terms: Vec<(Vec<Atom>, i64)>,
}

/// An indivisible factor of a monomial.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum Atom {
    Sym(Arc<str>),
    /// An operation that does not distribute over sums.
    Op(DimOp, Box<Dim>, Box<Dim>),
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum DimOp {
    FloorDiv,
    Mod,
    Min,
    Max,
}

impl DimOp {
    fn name(self) -> &'static str {
        match self {
            DimOp::FloorDiv => "floordiv",
            DimOp::Mod => "mod",
            DimOp::Min => "min",
            DimOp::Max => "max",
        }
    }
}

/// Errors evaluating a symbolic dimension.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DimError {
    #[error("symbol `{0}` is not bound")]
    Unbound(String),
    #[error("division by zero in `{0}`")]
    DivByZero(String),
}

impl Dim {
    pub fn from_i64(c: i64) -> Dim {
        if c == 0 {
            Dim { terms: vec![] }
        } else {
            Dim {
                terms: vec![(vec![], c)],
            }
        }
    }

    pub fn sym(name: &str) -> Dim {
        Dim::atom(Atom::Sym(name.into()))
    }

    fn atom(a: Atom) -> Dim {
        Dim {
            terms: vec![(vec![a], 1)],
        }
    }

    fn from_map(map: BTreeMap<Vec<Atom>, i64>) -> Dim {
        Dim {
            terms: map.into_iter().filter(|(_, c)| *c != 0).collect(),
        }
    }

    /// The value, if it is a constant.
    pub fn as_const(&self) -> Option<i64> {
        match self.terms.as_slice() {
            [] => Some(0),
            [(m, c)] if m.is_empty() => Some(*c),
            _ => None,
        }
    }

    pub fn is_const(&self) -> bool {
        self.as_const().is_some()
    }

    /// The symbol's name, if this dim is exactly one symbol.
    pub fn as_sym(&self) -> Option<&str> {
        match self.terms.as_slice() {
            [(m, 1)] => match m.as_slice() {
                [Atom::Sym(s)] => Some(s),
                _ => None,
            },
            _ => None,
        }
    }

    /// Every symbol this dim mentions.
    pub fn symbols(&self, out: &mut Vec<Arc<str>>) {
        for (m, _) in &self.terms {
            for a in m {
                match a {
                    Atom::Sym(s) => {
                        if !out.contains(s) {
                            out.push(s.clone())
                        }
                    }
                    Atom::Op(_, a, b) => {
                        a.symbols(out);
                        b.symbols(out);
                    }
                }
            }
        }
    }

    pub fn add(&self, other: &Dim) -> Dim {
        let mut map: BTreeMap<Vec<Atom>, i64> = self.terms.iter().cloned().collect();
        for (m, c) in &other.terms {
            let e = map.entry(m.clone()).or_insert(0);
            *e = e.wrapping_add(*c);
        }
        Dim::from_map(map)
    }

    pub fn neg(&self) -> Dim {
        Dim {
            terms: self
                .terms
                .iter()
                .map(|(m, c)| (m.clone(), c.wrapping_neg()))
                .collect(),
        }
    }

    pub fn sub(&self, other: &Dim) -> Dim {
        self.add(&other.neg())
    }

    pub fn mul(&self, other: &Dim) -> Dim {
        let mut map: BTreeMap<Vec<Atom>, i64> = BTreeMap::new();
        for (m1, c1) in &self.terms {
            for (m2, c2) in &other.terms {
                let mut m: Vec<Atom> = m1.iter().chain(m2.iter()).cloned().collect();
                m.sort();
                let e = map.entry(m).or_insert(0);
                *e = e.wrapping_add(c1.wrapping_mul(*c2));
            }
        }
        Dim::from_map(map)
    }

    /// Floor division. Exact when every coefficient is divisible by a constant divisor.
    pub fn floor_div(&self, other: &Dim) -> Dim {
        if let (Some(a), Some(b)) = (self.as_const(), other.as_const()) {
            if b != 0 {
                return Dim::from_i64(a.div_euclid(b) - i64::from(b < 0 && a.rem_euclid(b) != 0));
            }
        }
        if let Some(b) = other.as_const() {
            if b == 1 {
                return self.clone();
            }
            if b != 0 && self.terms.iter().all(|(_, c)| c % b == 0) {
                return Dim {
                    terms: self.terms.iter().map(|(m, c)| (m.clone(), c / b)).collect(),
                };
            }
        }
        if self == other && !self.terms.is_empty() {
            return Dim::from_i64(1);
        }
        Dim::atom(Atom::Op(
            DimOp::FloorDiv,
            Box::new(self.clone()),
            Box::new(other.clone()),
        ))
    }

    /// Ceiling division: `-floordiv(-a, b)`.
    pub fn ceil_div(&self, other: &Dim) -> Dim {
        self.neg().floor_div(other).neg()
    }

    /// Remainder with the sign of the divisor (Python's `%`).
    pub fn modulo(&self, other: &Dim) -> Dim {
        if let (Some(a), Some(b)) = (self.as_const(), other.as_const()) {
            if b != 0 {
                let r = a % b;
                return Dim::from_i64(if r != 0 && (r < 0) != (b < 0) {
                    r + b
                } else {
                    r
                });
            }
        }
        if let Some(b) = other.as_const() {
            if b != 0 && self.terms.iter().all(|(_, c)| c % b == 0) {
                return Dim::from_i64(0);
            }
        }
        Dim::atom(Atom::Op(
            DimOp::Mod,
            Box::new(self.clone()),
            Box::new(other.clone()),
        ))
    }

    pub fn minimum(&self, other: &Dim) -> Dim {
        self.min_max(other, DimOp::Min)
    }

    pub fn maximum(&self, other: &Dim) -> Dim {
        self.min_max(other, DimOp::Max)
    }

    fn min_max(&self, other: &Dim, op: DimOp) -> Dim {
        if let (Some(a), Some(b)) = (self.as_const(), other.as_const()) {
            return Dim::from_i64(if op == DimOp::Min { a.min(b) } else { a.max(b) });
        }
        if self == other {
            return self.clone();
        }
        // Absorption: max(x, min(x, y)) = x and min(x, max(x, y)) = x; idempotence:
        // max(x, max(x, y)) = max(x, y) (and the same for min).
        for (x, y) in [(self, other), (other, self)] {
            if let Some((o, p, q)) = y.as_min_max() {
                if p == x || q == x {
                    return if o == op { y.clone() } else { x.clone() };
                }
            }
        }
        // Operands sorted: min/max commute, and one spelling keeps printing canonical.
        let (a, b) = if self <= other {
            (self, other)
        } else {
            (other, self)
        };
        Dim::atom(Atom::Op(op, Box::new(a.clone()), Box::new(b.clone())))
    }

    /// The terms of the canonical sum: (monomial of atoms, coefficient), the constant term
    /// having the empty monomial. For code that reasons about the structure (bounds).
    pub fn terms(&self) -> &[(Vec<Atom>, i64)] {
        &self.terms
    }

    /// `(op, a, b)` when this dim is exactly `min(a, b)` or `max(a, b)`.
    fn as_min_max(&self) -> Option<(DimOp, &Dim, &Dim)> {
        match self.terms.as_slice() {
            [(m, 1)] => match m.as_slice() {
                [Atom::Op(op @ (DimOp::Min | DimOp::Max), a, b)] => Some((*op, a, b)),
                _ => None,
            },
            _ => None,
        }
    }

    /// Evaluates with every symbol bound.
    pub fn eval(&self, bindings: &HashMap<String, i64>) -> Result<i64, DimError> {
        let mut total: i64 = 0;
        for (m, c) in &self.terms {
            let mut p = *c;
            for a in m {
                p = p.wrapping_mul(eval_atom(a, bindings)?);
            }
            total = total.wrapping_add(p);
        }
        Ok(total)
    }

    /// Replaces symbols by the dims `subst` maps them to.
    pub fn substitute(&self, subst: &dyn Fn(&str) -> Option<Dim>) -> Dim {
        let mut out = Dim::from_i64(0);
        for (m, c) in &self.terms {
            let mut p = Dim::from_i64(*c);
            for a in m {
                let f = match a {
                    Atom::Sym(s) => subst(s).unwrap_or_else(|| Dim::atom(a.clone())),
                    Atom::Op(op, x, y) => {
                        let (x, y) = (x.substitute(subst), y.substitute(subst));
                        match op {
                            DimOp::FloorDiv => x.floor_div(&y),
                            DimOp::Mod => x.modulo(&y),
                            DimOp::Min => x.minimum(&y),
                            DimOp::Max => x.maximum(&y),
                        }
                    }
                };
                p = p.mul(&f);
            }
            out = out.add(&p);
        }
        out
    }

    /// Parses the text form (`seq`, `past+seq`, `seq*4-1`, `floordiv(seq, 2)`).
    pub fn parse(text: &str) -> Result<Dim, String> {
        let mut p = DimParser {
            s: text.as_bytes(),
            pos: 0,
        };
        let d = p.expr()?;
        p.skip_ws();
        if p.pos != p.s.len() {
            return Err(format!("unexpected `{}` in dim `{text}`", &text[p.pos..]));
        }
        Ok(d)
    }
}

fn eval_atom(a: &Atom, bindings: &HashMap<String, i64>) -> Result<i64, DimError> {
    match a {
        Atom::Sym(s) => bindings
            .get(&**s)
            .copied()
            .ok_or_else(|| DimError::Unbound(s.to_string())),
        Atom::Op(op, x, y) => {
            let (x, y) = (x.eval(bindings)?, y.eval(bindings)?);
            Ok(match op {
                DimOp::Min => x.min(y),
                DimOp::Max => x.max(y),
                DimOp::FloorDiv | DimOp::Mod => {
                    if y == 0 {
                        return Err(DimError::DivByZero(Dim::atom(a.clone()).to_string()));
                    }
                    let q = Dim::from_i64(x);
                    let d = Dim::from_i64(y);
                    let r = if *op == DimOp::FloorDiv {
                        q.floor_div(&d)
                    } else {
                        q.modulo(&d)
                    };
                    r.as_const().unwrap_or(0)
                }
            })
        }
    }
}

impl From<i64> for Dim {
    fn from(c: i64) -> Dim {
        Dim::from_i64(c)
    }
}

impl From<usize> for Dim {
    fn from(c: usize) -> Dim {
        Dim::from_i64(c as i64)
    }
}

impl fmt::Display for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Atom::Sym(s) => f.write_str(s),
            Atom::Op(op, a, b) => write!(f, "{}({a}, {b})", op.name()),
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.terms.is_empty() {
            return f.write_str("0");
        }
        // Symbolic terms first, the constant last: `seq+1`, not `1+seq`.
        let mut first = true;
        let ordered = self
            .terms
            .iter()
            .filter(|(m, _)| !m.is_empty())
            .chain(self.terms.iter().filter(|(m, _)| m.is_empty()));
        for (m, c) in ordered {
            let (neg, mag) = (*c < 0, c.unsigned_abs());
            if neg {
                f.write_str("-")?;
            } else if !first {
                f.write_str("+")?;
            }
            first = false;
            if m.is_empty() {
                write!(f, "{mag}")?;
                continue;
            }
            for (i, a) in m.iter().enumerate() {
                if i > 0 {
                    f.write_str("*")?;
                }
                write!(f, "{a}")?;
            }
            if mag != 1 {
                write!(f, "*{mag}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

struct DimParser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl DimParser<'_> {
    fn skip_ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.pos).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expr(&mut self) -> Result<Dim, String> {
        let mut d = self.term()?;
        loop {
            if self.eat(b'+') {
                d = d.add(&self.term()?);
            } else if self.eat(b'-') {
                d = d.sub(&self.term()?);
            } else {
                return Ok(d);
            }
        }
    }

    fn term(&mut self) -> Result<Dim, String> {
        let mut d = self.factor()?;
        while self.eat(b'*') {
            d = d.mul(&self.factor()?);
        }
        Ok(d)
    }

    fn factor(&mut self) -> Result<Dim, String> {
        match self.peek() {
            Some(b'-') => {
                self.pos += 1;
                Ok(self.factor()?.neg())
            }
            Some(b'(') => {
                self.pos += 1;
                let d = self.expr()?;
                if !self.eat(b')') {
                    return Err("expected `)` in dim".into());
                }
                Ok(d)
            }
            Some(c) if c.is_ascii_digit() => {
                let start = self.pos;
                while self.pos < self.s.len() && self.s[self.pos].is_ascii_digit() {
                    self.pos += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or_default();
                text.parse::<i64>()
                    .map(Dim::from_i64)
                    .map_err(|_| format!("dim `{text}` is out of range"))
            }
            Some(c) if is_ident_start(c) => {
                let start = self.pos;
                while self.pos < self.s.len() && is_ident_char(self.s[self.pos]) {
                    self.pos += 1;
                }
                let name = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or_default();
                if self.peek() == Some(b'(') {
                    let op = match name {
                        "floordiv" => DimOp::FloorDiv,
                        "mod" => DimOp::Mod,
                        "min" => DimOp::Min,
                        "max" => DimOp::Max,
                        _ => return Err(format!("unknown dim function `{name}`")),
                    };
                    self.pos += 1;
                    let a = self.expr()?;
                    if !self.eat(b',') {
                        return Err(format!("expected `,` in `{name}(...)`"));
                    }
                    let b = self.expr()?;
                    if !self.eat(b')') {
                        return Err(format!("expected `)` closing `{name}(...)`"));
                    }
                    Ok(match op {
                        DimOp::FloorDiv => a.floor_div(&b),
                        DimOp::Mod => a.modulo(&b),
                        DimOp::Min => a.minimum(&b),
                        DimOp::Max => a.maximum(&b),
                    })
                } else {
                    Ok(Dim::sym(name))
                }
            }
            Some(c) => Err(format!("unexpected `{}` in dim", c as char)),
            None => Err("unexpected end of dim".into()),
        }
    }
}

pub fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

pub fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// True when `name` can be printed as a symbol as it is.
pub fn is_symbol_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && is_ident_start(b[0])
        && b.iter().all(|&c| is_ident_char(c))
        && !matches!(name, "floordiv" | "mod" | "min" | "max")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms_print_and_parse_back() {
        let seq = Dim::sym("seq");
        let past = Dim::sym("past");
        assert_eq!(seq.add(&past).to_string(), "past+seq");
        assert_eq!(past.add(&seq), seq.add(&past));
        assert_eq!(seq.mul(&Dim::from(4i64)).to_string(), "seq*4");
        assert_eq!(seq.sub(&Dim::from(1i64)).to_string(), "seq-1");
        assert_eq!(seq.sub(&seq).to_string(), "0");
        let half = seq.add(&Dim::from(1i64)).floor_div(&Dim::from(2i64));
        assert_eq!(half.to_string(), "floordiv(seq+1, 2)");
        for text in [
            "past+seq",
            "seq*4-1",
            "floordiv(seq+1, 2)",
            "-seq+3",
            "max(1, seq)",
        ] {
            assert_eq!(Dim::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(
            seq.mul(&Dim::from(4i64))
                .floor_div(&Dim::from(2i64))
                .to_string(),
            "seq*2"
        );
    }

    #[test]
    fn min_max_absorb() {
        let seq = Dim::sym("seq");
        let c = Dim::from(512i64);
        let m = c.minimum(&seq);
        assert_eq!(seq.maximum(&m), seq);
        assert_eq!(m.maximum(&seq), seq);
        assert_eq!(seq.maximum(&seq.maximum(&c)), seq.maximum(&c));
        assert_eq!(seq.minimum(&seq.maximum(&c)), seq);
        assert_eq!(m.minimum(&seq), m);
    }

    #[test]
    fn evaluates_with_bindings() {
        let d = Dim::parse("floordiv(seq*3+1, 2)+past").unwrap();
        let b = HashMap::from([("seq".to_string(), 5), ("past".to_string(), 7)]);
        assert_eq!(d.eval(&b), Ok(15));
        assert_eq!(
            Dim::sym("x").eval(&b),
            Err(DimError::Unbound("x".to_string()))
        );
        assert_eq!(
            Dim::from(-7i64).floor_div(&Dim::from(2i64)).as_const(),
            Some(-4)
        );
        assert_eq!(
            Dim::from(-7i64).modulo(&Dim::from(3i64)).as_const(),
            Some(2)
        );
    }
}
