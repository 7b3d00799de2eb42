//! Strided copy kernels: an N-d view of a source into an N-d view of a destination, both
//! given by extents and byte strides (negative or zero strides included), plus fills and the
//! row-level building blocks (`copy_row`, `fill_row`) other movement kernels share.
//!
//! The code depends only on the rank, the element size and the innermost loop's form
//! ([`Inner`]); extents and strides are arguments, so one kernel serves every shape.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, ConstantData, InstBuilder, Type, Value};

use crate::cpu::codegen::kernel::{mem, KernelBuilder};
use crate::error::TargetError;

pub mod generate;

/// How the innermost loop of a strided copy moves elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Inner {
    /// The last dim is contiguous in source and destination: rows copied with 128-bit moves.
    Contig,
    /// The last dim has source stride 0 and destination stride 1: one element splatted.
    Bcast,
    /// Element by element, any strides.
    Gather,
    /// The last two dims form a transpose: dim `R-2` is contiguous in the source, dim `R-1`
    /// in the destination. Moved in register tiles of 16 x 16 bytes (4x4 4-byte elements,
    /// 8x8 2-byte, ...).
    Transpose,
}

impl Inner {
    fn name(self) -> &'static str {
        match self {
            Inner::Contig => "contig",
            Inner::Bcast => "bcast",
            Inner::Gather => "gather",
            Inner::Transpose => "transpose",
        }
    }
}

/// The integer type of one element of `esize` bytes.
pub fn elem_type(esize: usize) -> Type {
    match esize {
        1 => types::I8,
        2 => types::I16,
        4 => types::I32,
        _ => types::I64,
    }
}

/// The 128-bit vector of `esize`-byte lanes.
fn vec_type(esize: usize) -> Type {
    match esize {
        1 => types::I8X16,
        2 => types::I16X8,
        4 => types::I32X4,
        _ => types::I64X2,
    }
}

/// The kernel key of [`strided_copy`].
pub fn copy_key(rank: usize, esize: usize, inner: Inner) -> String {
    format!("strided_copy_r{rank}_e{esize}_{}", inner.name())
}

/// `dst[i] = src[i]` over an N-d index space. Args:
/// `[src, dst, n_0..n_(R-1), ss_0..ss_(R-1), ds_0..ds_(R-1)]`: extents, then source and
/// destination strides in bytes. Source and destination do not overlap. The innermost loop
/// takes the form `inner` (whose stride conditions the caller guarantees).
pub fn strided_copy(
    kb: &mut KernelBuilder,
    rank: usize,
    esize: usize,
    inner: Inner,
) -> Result<(), TargetError> {
    let inner_dims = if inner == Inner::Transpose { 2 } else { 1 };
    if rank < inner_dims || !matches!(esize, 1 | 2 | 4 | 8) {
        return Err(TargetError::Lower(format!(
            "strided copy of rank {rank}, element size {esize}, {inner:?}"
        )));
    }
    let (src, dst) = (kb.arg(0), kb.arg(1));
    let n: Vec<Value> = (0..rank).map(|k| kb.arg(2 + k)).collect();
    let ss: Vec<Value> = (0..rank).map(|k| kb.arg(2 + rank + k)).collect();
    let ds: Vec<Value> = (0..rank).map(|k| kb.arg(2 + 2 * rank + k)).collect();
    let outer = rank - inner_dims;
    let (nl, ssl, dsl) = (n[rank - 1], ss[rank - 1], ds[rank - 1]);
    match inner {
        Inner::Contig => {
            let bytes = kb.b.ins().imul_imm_s(nl, esize as i64);
            nest(
                kb,
                &n[..outer],
                &ss[..outer],
                &ds[..outer],
                src,
                dst,
                &|kb, s, d| copy_row(kb, s, d, bytes),
            )
        }
        Inner::Bcast => nest(
            kb,
            &n[..outer],
            &ss[..outer],
            &ds[..outer],
            src,
            dst,
            &|kb, s, d| {
                let v = kb.b.ins().load(elem_type(esize), mem(), s, 0);
                fill_row(kb, d, nl, v, esize)
            },
        ),
        Inner::Gather => nest(
            kb,
            &n[..outer],
            &ss[..outer],
            &ds[..outer],
            src,
            dst,
            &|kb, s, d| gather_row(kb, s, d, nl, ssl, dsl, esize),
        ),
        Inner::Transpose => {
            let (na, dsa) = (n[rank - 2], ds[rank - 2]);
            nest(
                kb,
                &n[..outer],
                &ss[..outer],
                &ds[..outer],
                src,
                dst,
                &|kb, s, d| transpose_tile(kb, s, d, na, dsa, nl, ssl, esize),
            )
        }
    }
}

/// `base + i * stride`.
fn madd(kb: &mut KernelBuilder, base: Value, i: Value, stride: Value) -> Value {
    let off = kb.b.ins().imul(i, stride);
    kb.b.ins().iadd(base, off)
}

type Body<'a> = dyn Fn(&mut KernelBuilder, Value, Value) -> Result<(), TargetError> + 'a;

/// Nested loops over `n` (outermost first), advancing `src` and `dst` by their strides; the
/// innermost iteration runs `body(src, dst)`.
fn nest(
    kb: &mut KernelBuilder,
    n: &[Value],
    ss: &[Value],
    ds: &[Value],
    src: Value,
    dst: Value,
    body: &Body<'_>,
) -> Result<(), TargetError> {
    let Some((&n0, n_rest)) = n.split_first() else {
        return body(kb, src, dst);
    };
    let zero = kb.iconst(0);
    kb.for_range(zero, n0, 1, |kb, i| {
        let s = madd(kb, src, i, ss[0]);
        let d = madd(kb, dst, i, ds[0]);
        nest(kb, n_rest, &ss[1..], &ds[1..], s, d, body)
    })
}

fn move_bytes(kb: &mut KernelBuilder, ty: Type, src: Value, dst: Value, off: Value) {
    let s = kb.b.ins().iadd(src, off);
    let d = kb.b.ins().iadd(dst, off);
    let v = kb.b.ins().load(ty, mem(), s, 0);
    kb.b.ins().store(mem(), v, d, 0);
}

/// Copies `bytes` (>= 0) from `src` to `dst` (not overlapping): 64 bytes per iteration, then
/// 16, then one last 16-byte move ending at the end (overlapping what was copied). Rows
/// under 16 bytes take two overlapping moves of 8, 4, 2 bytes, or one byte.
pub fn copy_row(
    kb: &mut KernelBuilder,
    src: Value,
    dst: Value,
    bytes: Value,
) -> Result<(), TargetError> {
    let big = kb.b.create_block();
    let small = kb.b.create_block();
    let done = kb.b.create_block();
    let is_big =
        kb.b.ins()
            .icmp_imm_s(IntCC::SignedGreaterThanOrEqual, bytes, 16);
    kb.b.ins().brif(is_big, big, &[], small, &[]);

    kb.b.switch_to_block(big);
    let zero = kb.iconst(0);
    let rest = kb.for_chunks(zero, bytes, 64, |kb, i| {
        for k in 0..4 {
            let o = kb.b.ins().iadd_imm_s(i, 16 * k);
            move_bytes(kb, types::I8X16, src, dst, o);
        }
        Ok(())
    })?;
    kb.for_chunks(rest, bytes, 16, |kb, i| {
        move_bytes(kb, types::I8X16, src, dst, i);
        Ok(())
    })?;
    let last = kb.b.ins().iadd_imm_s(bytes, -16);
    move_bytes(kb, types::I8X16, src, dst, last);
    kb.b.ins().jump(done, &[]);

    // Under 16 bytes: the widest w with w <= bytes, moved at 0 and at bytes - w.
    kb.b.switch_to_block(small);
    for (w, ty) in [(8, types::I64), (4, types::I32), (2, types::I16)] {
        let this = kb.b.create_block();
        let next = kb.b.create_block();
        let fits =
            kb.b.ins()
                .icmp_imm_s(IntCC::SignedGreaterThanOrEqual, bytes, w);
        kb.b.ins().brif(fits, this, &[], next, &[]);
        kb.b.switch_to_block(this);
        let zero = kb.iconst(0);
        move_bytes(kb, ty, src, dst, zero);
        let end = kb.b.ins().iadd_imm_s(bytes, -w);
        move_bytes(kb, ty, src, dst, end);
        kb.b.ins().jump(done, &[]);
        kb.b.switch_to_block(next);
    }
    let one =
        kb.b.ins()
            .icmp_imm_s(IntCC::SignedGreaterThanOrEqual, bytes, 1);
    kb.if_then(one, |kb| {
        let zero = kb.iconst(0);
        move_bytes(kb, types::I8, src, dst, zero);
        Ok(())
    })?;
    kb.b.ins().jump(done, &[]);
    kb.b.switch_to_block(done);
    Ok(())
}

/// Stores element `v` (an integer of `esize` bytes) `n` times from `dst` on: 16-byte
/// splats with a last overlapping one when the row has at least 16 bytes, else one by one.
pub fn fill_row(
    kb: &mut KernelBuilder,
    dst: Value,
    n: Value,
    v: Value,
    esize: usize,
) -> Result<(), TargetError> {
    let bytes = kb.b.ins().imul_imm_s(n, esize as i64);
    let big = kb.b.create_block();
    let small = kb.b.create_block();
    let done = kb.b.create_block();
    let is_big =
        kb.b.ins()
            .icmp_imm_s(IntCC::SignedGreaterThanOrEqual, bytes, 16);
    kb.b.ins().brif(is_big, big, &[], small, &[]);

    kb.b.switch_to_block(big);
    let splat = kb.b.ins().splat(vec_type(esize), v);
    let zero = kb.iconst(0);
    let rest = kb.for_chunks(zero, bytes, 64, |kb, i| {
        let d = kb.b.ins().iadd(dst, i);
        for k in 0..4 {
            kb.b.ins().store(mem(), splat, d, 16 * k);
        }
        Ok(())
    })?;
    kb.for_chunks(rest, bytes, 16, |kb, i| {
        let d = kb.b.ins().iadd(dst, i);
        kb.b.ins().store(mem(), splat, d, 0);
        Ok(())
    })?;
    let last = kb.b.ins().iadd(dst, bytes);
    kb.b.ins().store(mem(), splat, last, -16);
    kb.b.ins().jump(done, &[]);

    kb.b.switch_to_block(small);
    let zero = kb.iconst(0);
    kb.for_range(zero, n, 1, |kb, i| {
        let d = kb.addr(dst, i, esize as i64);
        kb.b.ins().store(mem(), v, d, 0);
        Ok(())
    })?;
    kb.b.ins().jump(done, &[]);
    kb.b.switch_to_block(done);
    Ok(())
}

/// `n` elements, one by one, from `src` by `ss` bytes to `dst` by `ds` bytes.
fn gather_row(
    kb: &mut KernelBuilder,
    src: Value,
    dst: Value,
    n: Value,
    ss: Value,
    ds: Value,
    esize: usize,
) -> Result<(), TargetError> {
    let ty = elem_type(esize);
    let zero = kb.iconst(0);
    kb.for_range(zero, n, 1, |kb, i| {
        let s = madd(kb, src, i, ss);
        let d = madd(kb, dst, i, ds);
        let v = kb.b.ins().load(ty, mem(), s, 0);
        kb.b.ins().store(mem(), v, d, 0);
        Ok(())
    })
}

/// A byte shuffle of two 16-byte vectors with Cranelift's mask convention (indices 0-15 pick
/// from `a`, 16-31 from `b`).
fn shuffle(kb: &mut KernelBuilder, a: Value, b: Value, mask: [u8; 16]) -> Value {
    let imm =
        kb.b.func
            .dfg
            .immediates
            .push(ConstantData::from(mask.to_vec()));
    kb.b.ins().shuffle(a, b, imm)
}

/// The byte mask interleaving the low (`high = false`) or high halves of two vectors in
/// `lane`-byte lanes (`punpckl*` / `punpckh*` on x86).
fn unpack_mask(lane: usize, high: bool) -> [u8; 16] {
    let mut mask = [0u8; 16];
    let base = if high { 8 } else { 0 };
    for (k, m) in mask.iter_mut().enumerate() {
        let (pair, byte) = (k / (2 * lane), k % lane);
        let from_b = (k / lane) % 2 == 1;
        *m = (base + pair * lane + byte + if from_b { 16 } else { 0 }) as u8;
    }
    mask
}

fn unpack(kb: &mut KernelBuilder, a: Value, b: Value, lane: usize, high: bool) -> Value {
    shuffle(kb, a, b, unpack_mask(lane, high))
}

/// Transposes the t x t tile of `esize`-byte elements held in `rows` (t = 16 / esize):
/// log2(t) rounds of interleaving pairs of vectors, lanes doubling each round, leave column
/// `bitreverse(j)` in vector `j`.
fn transpose_regs(kb: &mut KernelBuilder, rows: Vec<Value>, esize: usize) -> Vec<Value> {
    let t = rows.len();
    let mut v = rows;
    let mut lane = esize;
    while lane <= 8 {
        let mut w = v.clone();
        for j in 0..t / 2 {
            w[j] = unpack(kb, v[2 * j], v[2 * j + 1], lane, false);
            w[j + t / 2] = unpack(kb, v[2 * j], v[2 * j + 1], lane, true);
        }
        v = w;
        lane *= 2;
    }
    let bits = t.trailing_zeros();
    let mut cols = v.clone();
    for (j, x) in v.into_iter().enumerate() {
        let r = if bits == 0 {
            0
        } else {
            j.reverse_bits() >> (usize::BITS - bits)
        };
        cols[r] = x;
    }
    cols
}

/// Elements of a cache block side (256 bytes): blocks of tiles keep both the source and the
/// destination lines they touch in L1.
const BLOCK_BYTES: i64 = 256;

/// The transpose of two dims: `dst[a*dsa + b*esize] = src[a*esize + b*ssb]` for `a < na`,
/// `b < nb`. Full tiles of t x t elements (t = 16 / esize) go through registers, in blocks
/// of 256 x 256 bytes; the edges element by element.
#[allow(clippy::too_many_arguments)]
fn transpose_tile(
    kb: &mut KernelBuilder,
    src: Value,
    dst: Value,
    na: Value,
    dsa: Value,
    nb: Value,
    ssb: Value,
    esize: usize,
) -> Result<(), TargetError> {
    let t = (16 / esize) as i64;
    let blk = BLOCK_BYTES / esize as i64;
    let es = esize as i64;
    // Negative extents (empty views) copy nothing.
    let zero = kb.iconst(0);
    let na = kb.b.ins().smax(na, zero);
    let nb = kb.b.ins().smax(nb, zero);
    // The extents of the full tiles.
    let na_t = kb.b.ins().band_imm_s(na, -t);
    let nb_t = kb.b.ins().band_imm_s(nb, -t);
    let zero = kb.iconst(0);
    kb.for_range(zero, nb_t, blk, |kb, b0| {
        let b_end = kb.b.ins().iadd_imm_s(b0, blk);
        let b1 = kb.b.ins().smin(b_end, nb_t);
        let zero = kb.iconst(0);
        kb.for_range(zero, na_t, blk, |kb, a0| {
            let a_end = kb.b.ins().iadd_imm_s(a0, blk);
            let a1 = kb.b.ins().smin(a_end, na_t);
            kb.for_range(a0, a1, t, |kb, a| {
                let s_a = kb.addr(src, a, es);
                let d_a = madd(kb, dst, a, dsa);
                kb.for_range(b0, b1, t, |kb, b| {
                    let s = madd(kb, s_a, b, ssb);
                    let d = kb.addr(d_a, b, es);
                    // Row r: elements a..a+t of source column b+r.
                    let mut rows = Vec::with_capacity(t as usize);
                    let mut p = s;
                    for r in 0..t {
                        if r > 0 {
                            p = kb.b.ins().iadd(p, ssb);
                        }
                        rows.push(kb.b.ins().load(types::I8X16, mem(), p, 0));
                    }
                    let cols = transpose_regs(kb, rows, esize);
                    let mut q = d;
                    for (k, c) in cols.into_iter().enumerate() {
                        if k > 0 {
                            q = kb.b.ins().iadd(q, dsa);
                        }
                        kb.b.ins().store(mem(), c, q, 0);
                    }
                    Ok(())
                })
            })
        })
    })?;
    let es_v = kb.iconst(es);
    // Columns past the last full tile, for the rows of full tiles.
    let rest_b = kb.b.ins().isub(nb, nb_t);
    let zero = kb.iconst(0);
    kb.for_range(zero, na_t, 1, |kb, a| {
        let s_a = kb.addr(src, a, es);
        let s = madd(kb, s_a, nb_t, ssb);
        let d_a = madd(kb, dst, a, dsa);
        let d = kb.addr(d_a, nb_t, es);
        gather_row(kb, s, d, rest_b, ssb, es_v, esize)
    })?;
    // Rows past the last full tile.
    kb.for_range(na_t, na, 1, |kb, a| {
        let s_a = kb.addr(src, a, es);
        let d_a = madd(kb, dst, a, dsa);
        gather_row(kb, s_a, d_a, nb, ssb, es_v, esize)
    })
}

/// The kernel key of [`strided_fill`].
pub fn fill_key(rank: usize, esize: usize, contig: bool, from_ptr: bool) -> String {
    format!(
        "strided_fill_r{rank}_e{esize}_{}_{}",
        if contig { "contig" } else { "gather" },
        if from_ptr { "ptr" } else { "bits" }
    )
}

/// Fills an N-d view of `dst` with one element. Args: `[dst, value, n_0..n_(R-1),
/// ds_0..ds_(R-1)]`, strides in bytes; `value` is the element's bits (low `esize` bytes), or
/// with `from_ptr` the address of the element. With `contig` the last dim has stride
/// `esize`.
pub fn strided_fill(
    kb: &mut KernelBuilder,
    rank: usize,
    esize: usize,
    contig: bool,
    from_ptr: bool,
) -> Result<(), TargetError> {
    if rank == 0 || !matches!(esize, 1 | 2 | 4 | 8) {
        return Err(TargetError::Lower(format!(
            "fill of rank {rank}, element size {esize}"
        )));
    }
    let ty = elem_type(esize);
    let dst = kb.arg(0);
    let raw = kb.arg(1);
    let v = if from_ptr {
        kb.b.ins().load(ty, mem(), raw, 0)
    } else if esize == 8 {
        raw
    } else {
        kb.b.ins().ireduce(ty, raw)
    };
    let n: Vec<Value> = (0..rank).map(|k| kb.arg(2 + k)).collect();
    let ds: Vec<Value> = (0..rank).map(|k| kb.arg(2 + rank + k)).collect();
    let (nl, dsl) = (n[rank - 1], ds[rank - 1]);
    // The source pointer of `nest` is unused: pass dst twice with zero strides.
    let zeros: Vec<Value> = (0..rank).map(|_| kb.iconst(0)).collect();
    nest(
        kb,
        &n[..rank - 1],
        &zeros[..rank - 1],
        &ds[..rank - 1],
        dst,
        dst,
        &|kb, _, d| {
            if contig {
                fill_row(kb, d, nl, v, esize)
            } else {
                let zero = kb.iconst(0);
                kb.for_range(zero, nl, 1, |kb, i| {
                    let p = madd(kb, d, i, dsl);
                    kb.b.ins().store(mem(), v, p, 0);
                    Ok(())
                })
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpack_masks_are_the_x86_interleaves() {
        // punpckldq / punpckhdq / punpcklqdq / punpckhqdq byte masks.
        let m = unpack_mask;
        assert_eq!(
            m(4, false),
            [0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23]
        );
        assert_eq!(
            m(4, true),
            [8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31]
        );
        assert_eq!(
            m(8, false),
            [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23]
        );
        assert_eq!(
            m(8, true),
            [8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31]
        );
    }
}
