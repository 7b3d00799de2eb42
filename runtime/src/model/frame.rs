//! The frame: the array of 64-bit slots through which the runtime hands a run to the
//! compiled entry function. Both sides use these indices; nothing else is shared.
//!
//! ```text
//! slot                         holds
//! 0                            helper table (*const u64: function pointers, manifest order)
//! 1                            run context (*const RunContext, passed on to helpers)
//! 2                            arena base (activations)
//! 3                            weights base (the mapped weights section)
//! 4 .. 4+I                     input pointers, manifest order
//! 4+I .. 4+I+O                 output pointers
//! 4+I+O .. 4+I+O+S             symbol values (i64), manifest order
//! ```
//! Generated kernels take `(frame, args)`: the same frame, so they can reach helpers,
//! and an argument array the entry function fills per call.

pub const HELPER_TABLE: usize = 0;
pub const RUN_CONTEXT: usize = 1;
pub const ARENA: usize = 2;
pub const WEIGHTS: usize = 3;
const FIRST_INPUT: usize = 4;

/// Slot positions for a model with `inputs` inputs and `outputs` outputs.
#[derive(Clone, Copy, Debug)]
pub struct FrameLayout {
    pub inputs: usize,
    pub outputs: usize,
    pub symbols: usize,
}

impl FrameLayout {
    pub fn input(&self, i: usize) -> usize {
        FIRST_INPUT + i
    }

    pub fn output(&self, i: usize) -> usize {
        FIRST_INPUT + self.inputs + i
    }

    pub fn symbol(&self, i: usize) -> usize {
        FIRST_INPUT + self.inputs + self.outputs + i
    }

    pub fn len(&self) -> usize {
        FIRST_INPUT + self.inputs + self.outputs + self.symbols
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}
