//! Frontends: model formats in, kiln IR out.

pub mod onnx;
