//! Reduction and row kernels (reduce, arg-reduce, softmax, normalisation).
