//! kiln-targets: code generation for the CPU and Ascend targets (later issues).
