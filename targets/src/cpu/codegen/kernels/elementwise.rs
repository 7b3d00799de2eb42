//! Elementwise kernels: an expression over broadcast operands, f32x4 where the innermost dim allows.
