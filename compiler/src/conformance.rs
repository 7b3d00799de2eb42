//! The ONNX backend node test runner behind `kiln conformance`.
