//! Errors of the Ascend executor: a launch list the device model rejects (a tile over a
//! buffer, a misaligned address, a blockDim over the cores, overlapping live buffers), a
//! kernel it does not know, inputs that do not fit.

#[derive(Debug, thiserror::Error)]
pub enum AscendError {
    /// The launch list as a whole is invalid (its HBM plan, its profile, its format).
    #[error("launch list: {0}")]
    Plan(String),
    /// A kernel's descriptor or tiling breaks a hardware limit, found before or while it ran.
    #[error("kernel {index} ({name}, {op}): {msg}")]
    Kernel {
        index: usize,
        name: String,
        op: String,
        msg: String,
    },
    /// Inputs that do not fit the launch list (count, dtype, shape).
    #[error("{0}")]
    BadInput(String),
}
