//! Linear algebra: MatMul and Gemm (prepacked weights), Conv and ConvTranspose, pooling, quantized products.

use super::LowerFn;

pub const OPS: &[(&str, LowerFn)] = &[];
