//! Reductions and row-wise ops: Reduce*, ArgMax/ArgMin, Softmax family, CumSum, normalisations, losses.

use super::LowerFn;

pub const OPS: &[(&str, LowerFn)] = &[];
