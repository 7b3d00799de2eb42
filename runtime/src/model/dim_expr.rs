//! Symbolic sizes as the manifest stores them: small expression trees over the model's
//! symbols (`seq`, `past`), evaluated once per run from the symbol values.

use serde::{Deserialize, Serialize};

/// An integer expression over the manifest's symbols (by index).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DimExpr {
    Const(i64),
    Sym(usize),
    Add(Vec<DimExpr>),
    Mul(Vec<DimExpr>),
    /// Floor division (rounds towards negative infinity).
    FloorDiv(Box<DimExpr>, Box<DimExpr>),
    /// Modulo with the sign of the divisor (pairs with `FloorDiv`).
    Mod(Box<DimExpr>, Box<DimExpr>),
    Min(Box<DimExpr>, Box<DimExpr>),
    Max(Box<DimExpr>, Box<DimExpr>),
}

impl DimExpr {
    /// Evaluates with `symbols[i]` the value of symbol `i`; `None` on division by zero or
    /// an unknown symbol (both mean a damaged manifest).
    pub fn eval(&self, symbols: &[i64]) -> Option<i64> {
        Some(match self {
            DimExpr::Const(c) => *c,
            DimExpr::Sym(i) => *symbols.get(*i)?,
            DimExpr::Add(xs) => xs
                .iter()
                .try_fold(0i64, |acc, x| Some(acc.wrapping_add(x.eval(symbols)?)))?,
            DimExpr::Mul(xs) => xs
                .iter()
                .try_fold(1i64, |acc, x| Some(acc.wrapping_mul(x.eval(symbols)?)))?,
            DimExpr::FloorDiv(a, b) => {
                let (a, b) = (a.eval(symbols)?, b.eval(symbols)?);
                if b == 0 {
                    return None;
                }
                a.div_euclid(b) - i64::from(b < 0 && a.rem_euclid(b) != 0)
            }
            DimExpr::Mod(a, b) => {
                let (a, b) = (a.eval(symbols)?, b.eval(symbols)?);
                if b == 0 {
                    return None;
                }
                let r = a.rem_euclid(b);
                if b < 0 && r != 0 {
                    r + b
                } else {
                    r
                }
            }
            DimExpr::Min(a, b) => a.eval(symbols)?.min(b.eval(symbols)?),
            DimExpr::Max(a, b) => a.eval(symbols)?.max(b.eval(symbols)?),
        })
    }

    /// The symbol this expression is, when it is exactly one.
    pub fn as_sym(&self) -> Option<usize> {
        match self {
            DimExpr::Sym(i) => Some(*i),
            _ => None,
        }
    }

    /// Prints with symbol names, as kiln's IR text does (`seq*4 + past`).
    pub fn display(&self, names: &[String]) -> String {
        let bin = |op: &str, a: &DimExpr, b: &DimExpr| {
            format!("{op}({}, {})", a.display(names), b.display(names))
        };
        match self {
            DimExpr::Const(c) => c.to_string(),
            DimExpr::Sym(i) => names.get(*i).cloned().unwrap_or_else(|| format!("?{i}")),
            DimExpr::Add(xs) => xs
                .iter()
                .map(|x| x.display(names))
                .collect::<Vec<_>>()
                .join(" + "),
            DimExpr::Mul(xs) => xs
                .iter()
                .map(|x| match x {
                    DimExpr::Add(_) => format!("({})", x.display(names)),
                    _ => x.display(names),
                })
                .collect::<Vec<_>>()
                .join("*"),
            DimExpr::FloorDiv(a, b) => bin("floordiv", a, b),
            DimExpr::Mod(a, b) => bin("mod", a, b),
            DimExpr::Min(a, b) => bin("min", a, b),
            DimExpr::Max(a, b) => bin("max", a, b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DimExpr::*;

    #[test]
    fn evaluates_with_floor_semantics() {
        let s = [7i64, -7];
        let fd = |a, b| FloorDiv(Box::new(a), Box::new(b));
        let md = |a, b| Mod(Box::new(a), Box::new(b));
        assert_eq!(fd(Sym(0), Const(2)).eval(&s), Some(3));
        assert_eq!(fd(Sym(1), Const(2)).eval(&s), Some(-4));
        assert_eq!(fd(Sym(0), Const(-2)).eval(&s), Some(-4));
        assert_eq!(md(Sym(1), Const(2)).eval(&s), Some(1));
        assert_eq!(md(Sym(0), Const(-2)).eval(&s), Some(-1));
        assert_eq!(fd(Sym(0), Const(0)).eval(&s), None);
        assert_eq!(Sym(5).eval(&s), None);
        let e = Add(vec![Mul(vec![Const(4), Sym(0)]), Const(1)]);
        assert_eq!(e.eval(&s), Some(29));
        assert_eq!(e.display(&["seq".into()]), "4*seq + 1");
    }
}
