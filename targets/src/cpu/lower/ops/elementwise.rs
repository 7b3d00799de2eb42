//! Elementwise ops: unary, binary and ternary maps over broadcast operands, casts, comparisons.

use super::LowerFn;

pub const OPS: &[(&str, LowerFn)] = &[];
