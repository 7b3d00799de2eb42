//! Data movement: strided copies (Transpose, Slice, Expand, Concat, Split, Pad, Tile, ...) and generated data (Range, ConstantOfShape, Trilu, ...).

use super::LowerFn;

pub const OPS: &[(&str, LowerFn)] = &[];
