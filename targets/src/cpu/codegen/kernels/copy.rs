//! Plain memory copies.

use cranelift_codegen::ir::{types, InstBuilder};

use crate::cpu::codegen::kernel::{mem, KernelBuilder};
use crate::error::TargetError;

/// `memcpy(dst, src, n)`. Args: `[src, dst, n_bytes]`; the buffers do not overlap.
pub fn copy_bytes(kb: &mut KernelBuilder) -> Result<(), TargetError> {
    let (src, dst, n) = (kb.arg(0), kb.arg(1), kb.arg(2));
    let zero = kb.iconst(0);
    let rest = kb.for_chunks(zero, n, 16, |kb, i| {
        let s = kb.b.ins().iadd(src, i);
        let d = kb.b.ins().iadd(dst, i);
        let v = kb.b.ins().load(types::I8X16, mem(), s, 0);
        kb.b.ins().store(mem(), v, d, 0);
        Ok(())
    })?;
    kb.for_range(rest, n, 1, |kb, i| {
        let s = kb.b.ins().iadd(src, i);
        let d = kb.b.ins().iadd(dst, i);
        let v = kb.b.ins().load(types::I8, mem(), s, 0);
        kb.b.ins().store(mem(), v, d, 0);
        Ok(())
    })
}

/// Writes `n` integers to `dst`. Args: `[dst, v0, .., v(n-1)]`.
pub fn write_i64s(kb: &mut KernelBuilder, n: usize) -> Result<(), TargetError> {
    let dst = kb.arg(0);
    for i in 0..n {
        let v = kb.arg(1 + i);
        kb.b.ins().store(mem(), v, dst, (8 * i) as i32);
    }
    Ok(())
}
