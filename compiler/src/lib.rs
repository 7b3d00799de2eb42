//! kiln-compiler: the ONNX frontend, the passes and pass manager, and the driver behind the
//! `kiln` command.

pub mod backend;
pub mod conformance;
pub mod driver;
pub mod error;
pub mod frontend;
pub mod npy;
pub mod passes;
pub mod weights_file;

pub use error::CompileError;
