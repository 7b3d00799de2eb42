//! Symbolic sizes in the artifact: kiln-ir's `Dim` becomes the runtime's `DimExpr` (for the
//! manifest) and Cranelift integer code (for the entry function).

use std::collections::HashMap;

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, InstBuilder, Value};
use cranelift_frontend::FunctionBuilder;
use kiln_ir::dim::{Atom, Dim, DimOp};
use kiln_runtime::model::DimExpr;

use crate::error::TargetError;

/// The model's symbols, in manifest order.
#[derive(Clone, Debug, Default)]
pub struct SymbolTable {
    pub names: Vec<String>,
}

impl SymbolTable {
    pub fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// `d` as a manifest expression; an error names a symbol the table lacks.
    pub fn expr(&self, d: &Dim) -> Result<DimExpr, TargetError> {
        let mut sum = Vec::new();
        for (monomial, coef) in d.terms() {
            let mut product = Vec::new();
            if *coef != 1 || monomial.is_empty() {
                product.push(DimExpr::Const(*coef));
            }
            for atom in monomial {
                product.push(match atom {
                    Atom::Sym(s) => DimExpr::Sym(self.index(s).ok_or_else(|| {
                        TargetError::Lower(format!(
                            "dim `{s}` is not a dim of any input (a data-dependent shape); kiln compiles static and input-derived shapes only"
                        ))
                    })?),
                    Atom::Op(op, a, b) => {
                        let (a, b) = (Box::new(self.expr(a)?), Box::new(self.expr(b)?));
                        match op {
                            DimOp::FloorDiv => DimExpr::FloorDiv(a, b),
                            DimOp::Mod => DimExpr::Mod(a, b),
                            DimOp::Min => DimExpr::Min(a, b),
                            DimOp::Max => DimExpr::Max(a, b),
                        }
                    }
                });
            }
            sum.push(if product.len() == 1 {
                product.pop().expect("one factor")
            } else {
                DimExpr::Mul(product)
            });
        }
        Ok(match sum.len() {
            0 => DimExpr::Const(0),
            1 => sum.pop().expect("one term"),
            _ => DimExpr::Add(sum),
        })
    }
}

/// Emits code for symbolic integers inside one straight-line function, reusing the code of
/// any expression already emitted (every emitted value dominates what follows).
pub struct DimEmitter {
    symbols: Vec<Value>,
    memo: HashMap<DimExpr, Value>,
}

impl DimEmitter {
    /// `symbols[i]` holds the value of symbol `i`.
    pub fn new(symbols: Vec<Value>) -> DimEmitter {
        DimEmitter {
            symbols,
            memo: HashMap::new(),
        }
    }

    pub fn emit(&mut self, b: &mut FunctionBuilder, e: &DimExpr) -> Value {
        if let Some(&v) = self.memo.get(e) {
            return v;
        }
        let v = match e {
            DimExpr::Const(c) => b.ins().iconst(types::I64, *c),
            DimExpr::Sym(i) => self.symbols[*i],
            DimExpr::Add(xs) | DimExpr::Mul(xs) => {
                let mut acc = self.emit(b, &xs[0]);
                for x in &xs[1..] {
                    let y = self.emit(b, x);
                    acc = match e {
                        DimExpr::Add(_) => b.ins().iadd(acc, y),
                        _ => b.ins().imul(acc, y),
                    };
                }
                acc
            }
            DimExpr::FloorDiv(x, y) | DimExpr::Mod(x, y) => {
                let (x, y) = (self.emit(b, x), self.emit(b, y));
                // A zero divisor (impossible for the runtime's checked symbols) gives 0
                // instead of a trap.
                let zero = b.ins().iconst(types::I64, 0);
                let one = b.ins().iconst(types::I64, 1);
                let is_zero = b.ins().icmp(IntCC::Equal, y, zero);
                let y = b.ins().select(is_zero, one, y);
                let q = b.ins().sdiv(x, y);
                let r = b.ins().srem(x, y);
                // Floor semantics: adjust when the remainder's sign differs from y's.
                let r_nonzero = b.ins().icmp(IntCC::NotEqual, r, zero);
                let signs = b.ins().bxor(r, y);
                let differ = b.ins().icmp(IntCC::SignedLessThan, signs, zero);
                let adjust = b.ins().band(r_nonzero, differ);
                let v = if matches!(e, DimExpr::FloorDiv(..)) {
                    let q1 = b.ins().iadd_imm_s(q, -1);
                    b.ins().select(adjust, q1, q)
                } else {
                    let ry = b.ins().iadd(r, y);
                    b.ins().select(adjust, ry, r)
                };
                b.ins().select(is_zero, zero, v)
            }
            DimExpr::Min(x, y) => {
                let (x, y) = (self.emit(b, x), self.emit(b, y));
                b.ins().smin(x, y)
            }
            DimExpr::Max(x, y) => {
                let (x, y) = (self.emit(b, x), self.emit(b, y));
                b.ins().smax(x, y)
            }
        };
        self.memo.insert(e.clone(), v);
        v
    }
}
