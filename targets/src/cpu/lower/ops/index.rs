//! Indexing: the gathers and scatters, OneHot, TopK, Resize, GridSample.

use super::LowerFn;

pub const OPS: &[(&str, LowerFn)] = &[];
