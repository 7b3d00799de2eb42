//! Attention helpers: the entry points compiled code calls for attention-family steps, on
//! top of the kernels in [`crate::cpu::attention`].
//!
//! Every slot is a u64. Common groups:
//! - a *view* (5 slots): `addr, elem, stride_b, stride_h, stride_s` (strides in elements,
//!   signed; the last axis is contiguous); `addr = 0` means absent.
//! - `elem` codes: 0 f32, 1 f16, 2 bf16, 3 bool, 4 i32, 5 i64.
//! - floats are f32 bits in the low 32 bits.
//!
//! `attention` (ONNX `Attention`, kiln's `attention`):
//! ```text
//!  0 batch   1 q_heads   2 kv_heads   3 q_len   4 dk   5 dv   6 past_len   7 new_len
//!  8 Q view          13 K past view    18 K new view   23 V past view   28 V new view
//! 33 out view        38 present_k view 43 present_v view   (present: concat(past, new),
//!                    written first when given; keys are then read from it)
//! 48 scale  49 softcap  50 flags (1 causal, 2 window_from_end, 4 smooth)
//! 51 left window (i64, -1 none)   52 right window (i64, -1 none)
//! 53 mask0: addr, elem, s_b, s_h, s_i, s_j, cols   (7 slots; addr 0: none)
//! 60 mask1: same
//! 67 sinks addr  68 sinks elem
//! 69 qk: addr, elem, s_b, s_h, s_s, cols, mode (0 raw 1 capped 2 biased 3 probs), all_keys
//! 77 nonpad addr (0: none)  78 nonpad elem   per-batch key counts; query 0 of entry b
//!                                            then sits at nonpad[b] - q_len
//! 79 q_pos0 (i64): position of query 0 otherwise (the cache length)
//! ```
//!
//! `gqa` (com.microsoft.GroupQueryAttention):
//! ```text
//!  0 batch  1 num_heads  2 kv_num_heads  3 seq  4 head_size  5 past_len  6 present_len
//!  7 Q view  12 K new view  17 V new view  22 past_k view  27 past_v view
//! 32 out view  37 present_k view  42 present_v view
//! 47 seqlens_k addr  48 elem   49 total_sequence_length addr  50 elem
//! 51 scale  52 softcap  53 flags (1 causal, 2 rotary, 4 interleaved, 8 smooth,
//!                                 16 sliding_window_cache)
//! 54 local_window_size (i64)
//! 55 cos addr  56 cos elem  57 sin addr  58 sin elem  59 cache rows  60 rotary half
//! 61 position_ids addr (0: none)  62 elem
//! 63 attention_bias: addr, elem, s_b, s_h, s_i, s_j, cols
//! 70 head_sink addr  71 elem
//! 72 qk: addr, elem, s_b, s_h, s_s, cols, mode (1 scores, 2 probabilities)
//! ```
//!
//! `rotary` (ONNX and com.microsoft `RotaryEmbedding`, kiln's `rope`):
//! ```text
//!  0 batch  1 heads  2 seq  3 head  4 half  5 interleaved
//!  6 X view  11 out view
//! 16 cos addr  17 cos elem  18 sin addr  19 sin elem  20 table rows
//! 21 position kind: 0 strided rows (22, 23, 24: row strides for b, h, s)
//!                   1 ids (22 addr, 23 elem, 24 stride_b, 25 stride_s)
//!                   2 offset tensor (22 addr, 23 elem): row = offset + s
//! ```
//!
//! `mha` (com.microsoft.MultiHeadAttention):
//! ```text
//!  0 batch  1 heads  2 q_len  3 kv_len (new)  4 dk  5 dv  6 past_len
//!  7 Q view  12 K view  17 V view  22 past_k view  27 past_v view
//! 32 out view  37 present_k view  42 present_v view
//! 47 bias addr (0: none)  48 elem   [q bias (N*dk), k bias (N*dk), v bias (N*dv)]
//! 49 flags (1 unidirectional, 2 add the bias to k and v)
//! 50 scale  51 mask_filter_value
//! 52 key_padding_mask addr  53 elem  54 kind (0 none, 1 (B) lengths, 2 (B, T), 3 (B, S, T))
//! 55 attention_bias: addr, elem, s_b, s_h, s_i, s_j, cols
//! 62 qk: addr, elem, s_b, s_h, s_s, cols
//! ```

use super::{Helper, HelperFn, RunContext};
use crate::cpu::attention::{
    attention as run_attention, load, load_int, rotary as run_rotary, store, Attention, Elem, Mask,
    Positions, QkMode, QkOut, Rotary, Segment, View,
};
use crate::cpu::gemm::Kernel;

/// The argument slots of one call.
struct Slots<'a>(&'a [u64]);

impl Slots<'_> {
    fn u(&self, i: usize) -> usize {
        self.0[i] as usize
    }
    fn i(&self, i: usize) -> i64 {
        self.0[i] as i64
    }
    fn f(&self, i: usize) -> f32 {
        f32::from_bits(self.0[i] as u32)
    }
    fn elem(&self, i: usize) -> Option<Elem> {
        Elem::from_code(self.0[i])
    }
    /// The view at slot `i`, if its address is set.
    fn view(&self, i: usize) -> Option<View> {
        if self.0[i] == 0 {
            return None;
        }
        Some(View {
            addr: self.u(i),
            elem: self.elem(i + 1)?,
            strides: [
                self.i(i + 2) as isize,
                self.i(i + 3) as isize,
                self.i(i + 4) as isize,
            ],
        })
    }
    /// A 7-slot mask.
    fn mask(&self, i: usize) -> Option<Mask> {
        if self.0[i] == 0 {
            return None;
        }
        Some(Mask {
            addr: self.u(i),
            elem: self.elem(i + 1)?,
            strides: [
                self.i(i + 2) as isize,
                self.i(i + 3) as isize,
                self.i(i + 4) as isize,
                self.i(i + 5) as isize,
            ],
            cols: self.u(i + 6),
        })
    }
    fn ptr(&self, i: usize) -> Option<(usize, Elem)> {
        if self.0[i] == 0 {
            return None;
        }
        Some((self.u(i), self.elem(i + 1)?))
    }
}

/// A view that is never read (an empty segment).
fn empty_view() -> View {
    View {
        addr: 0,
        elem: Elem::F32,
        strides: [0; 3],
    }
}

/// Copies `rows` rows of `len` values from `src` row `s0` to `dst` row `d0`, for every
/// (batch, head), converting the element type if needed.
///
/// # Safety
/// Both views are valid for the rows named.
#[allow(clippy::too_many_arguments)]
unsafe fn copy_rows(
    src: &View,
    dst: &View,
    batch: usize,
    heads: usize,
    s0: usize,
    d0: usize,
    rows: usize,
    len: usize,
) {
    let mut buf = vec![0f32; len];
    for b in 0..batch {
        for h in 0..heads {
            for r in 0..rows {
                let (sp, dp) = (src.row(b, h, s0 + r), dst.row(b, h, d0 + r));
                // SAFETY: both rows exist (caller); distinct buffers.
                unsafe {
                    if src.elem == dst.elem {
                        std::ptr::copy_nonoverlapping(sp, dp, len * src.elem.size());
                    } else {
                        load(src.elem, sp, &mut buf);
                        store(dst.elem, dp, &buf);
                    }
                }
            }
        }
    }
}

/// Fills `rows` rows of `len` values of `dst` from row `d0` with `v`.
///
/// # Safety
/// The view is valid for the rows named.
unsafe fn fill_rows(
    dst: &View,
    batch: usize,
    heads: usize,
    d0: usize,
    rows: usize,
    len: usize,
    v: f32,
) {
    let buf = vec![v; len];
    for b in 0..batch {
        for h in 0..heads {
            for r in 0..rows {
                // SAFETY: the row exists (caller).
                unsafe { store(dst.elem, dst.row(b, h, d0 + r), &buf) };
            }
        }
    }
}

fn qk_mode(code: u64) -> QkMode {
    match code {
        0 => QkMode::Raw,
        1 => QkMode::Capped,
        2 => QkMode::Biased,
        _ => QkMode::Probs,
    }
}

/// # Safety
/// `args` holds the `attention` slots the module documents, describing valid memory.
unsafe extern "C" fn attention(ctx: *const RunContext, args: *const u64) {
    // SAFETY: the run context outlives the call.
    let kernel = unsafe { (*ctx).gemm };
    // SAFETY: the caller passes 80 readable slots.
    let a = Slots(unsafe { std::slice::from_raw_parts(args, 80) });
    // SAFETY: forwarded from the caller.
    unsafe { attention_call(kernel, &a) };
}

/// # Safety
/// As [`attention`].
unsafe fn attention_call(kernel: Kernel, a: &Slots) -> Option<()> {
    let (batch, hq, hkv, sq, dk, dv) = (a.u(0), a.u(1), a.u(2), a.u(3), a.u(4), a.u(5));
    let (past, new) = (a.u(6), a.u(7));
    if hkv == 0 || hq % hkv != 0 {
        return None;
    }
    let q = a.view(8)?;
    let kn = a.view(18)?;
    let vn = a.view(28)?;
    let out = a.view(33)?;
    let (kp, vp) = match (a.view(13), a.view(23)) {
        (Some(k), Some(v)) if past > 0 => (k, v),
        _ => (empty_view(), empty_view()),
    };
    let past = if kp.addr == 0 { 0 } else { past };
    let (mut k, mut v) = (
        [
            Segment {
                view: kp,
                len: past,
            },
            Segment { view: kn, len: new },
        ],
        [
            Segment {
                view: vp,
                len: past,
            },
            Segment { view: vn, len: new },
        ],
    );
    if let (Some(pk), Some(pv)) = (a.view(38), a.view(43)) {
        // SAFETY: present holds past + new rows per (batch, kv head).
        unsafe {
            copy_rows(&kp, &pk, batch, hkv, 0, 0, past, dk);
            copy_rows(&kn, &pk, batch, hkv, 0, past, new, dk);
            copy_rows(&vp, &pv, batch, hkv, 0, 0, past, dv);
            copy_rows(&vn, &pv, batch, hkv, 0, past, new, dv);
        }
        k = [
            Segment {
                view: pk,
                len: past + new,
            },
            Segment {
                view: empty_view(),
                len: 0,
            },
        ];
        v = [
            Segment {
                view: pv,
                len: past + new,
            },
            Segment {
                view: empty_view(),
                len: 0,
            },
        ];
    }
    let flags = a.u(50);
    let (mut kv_len, mut q_pos) = (Vec::new(), vec![a.i(79); batch]);
    if let Some((addr, e)) = a.ptr(77) {
        for (b, pos) in q_pos.iter_mut().enumerate() {
            // SAFETY: nonpad holds one integer per batch entry.
            let n = unsafe { load_int(e, (addr + b * e.size()) as *const u8) };
            kv_len.push(n.clamp(0, (past + new) as i64) as usize);
            *pos = n - sq as i64;
        }
    }
    let window = |i: usize| if a.i(i) < 0 { None } else { Some(a.i(i)) };
    let qk = a.ptr(69).map(|(addr, elem)| QkOut {
        view: View {
            addr,
            elem,
            strides: [a.i(71) as isize, a.i(72) as isize, a.i(73) as isize],
        },
        cols: a.u(74),
        mode: qk_mode(a.0[75]),
        all_keys: a.0[76] != 0,
    });
    let p = Attention {
        batch,
        q_heads: hq,
        kv_heads: hkv,
        q_len: sq,
        dk,
        dv,
        q,
        k,
        v,
        out,
        scale: a.f(48),
        softcap: a.f(49),
        causal: flags & 1 != 0,
        left: window(51),
        right: window(52),
        window_from_end: flags & 2 != 0,
        kv_len,
        q_pos,
        masks: [a.mask(53), a.mask(60)],
        sinks: a.ptr(67),
        smooth: flags & 4 != 0,
        qk,
    };
    // SAFETY: the lowering described valid memory in the slots.
    unsafe { run_attention(kernel, &p) };
    Some(())
}

/// The rows a sliding-window cache of capacity `c`, reclaiming `gap` rows at a time, keeps
/// after `n` positions.
fn resident(n: usize, c: usize, gap: usize) -> usize {
    if n <= c || gap == 0 {
        n.min(c)
    } else {
        n - gap * (n - c).div_ceil(gap)
    }
}

/// # Safety
/// `args` holds the `gqa` slots the module documents, describing valid memory.
unsafe extern "C" fn gqa(ctx: *const RunContext, args: *const u64) {
    // SAFETY: the run context outlives the call.
    let kernel = unsafe { (*ctx).gemm };
    // SAFETY: the caller passes 80 readable slots.
    let a = Slots(unsafe { std::slice::from_raw_parts(args, 80) });
    // SAFETY: forwarded from the caller.
    if unsafe { gqa_call(kernel, &a) }.is_none() {
        // Bad data (lengths or positions out of range): the outputs become NaN.
        if let Some(out) = a.view(32) {
            // SAFETY: the output view is valid for batch x heads x seq rows.
            unsafe { fill_rows(&out, a.u(0), a.u(1), 0, a.u(3), a.u(4), f32::NAN) };
        }
    }
}

/// # Safety
/// As [`gqa`].
unsafe fn gqa_call(kernel: Kernel, a: &Slots) -> Option<()> {
    let (batch, n, nk, s, h) = (a.u(0), a.u(1), a.u(2), a.u(3), a.u(4));
    let (past_len, present_len) = (a.u(5), a.u(6));
    if nk == 0 || n % nk != 0 {
        return None;
    }
    let flags = a.u(53);
    let (causal, rotary, interleaved, smooth, windowed) = (
        flags & 1 != 0,
        flags & 2 != 0,
        flags & 4 != 0,
        flags & 8 != 0,
        flags & 16 != 0,
    );
    let window = a.i(54);
    let q_in = a.view(7)?;
    let k_in = a.view(12)?;
    let v_in = a.view(17)?;
    let past = match (a.view(22), a.view(27)) {
        (Some(k), Some(v)) => Some((k, v)),
        _ => None,
    };
    let past_len = if past.is_some() { past_len } else { 0 };
    let out = a.view(32)?;
    let (pk_out, pv_out) = (a.view(37), a.view(42));
    let (sl_addr, sl_elem) = a.ptr(47)?;
    let (tl_addr, tl_elem) = a.ptr(49)?;
    // SAFETY: total_sequence_length is one integer.
    let total = unsafe { load_int(tl_elem, tl_addr as *const u8) };
    if total < 0 {
        return None;
    }
    let total = total as usize;
    let prompt = s == total;
    let first_prompt = prompt && !windowed;
    if windowed && (past.is_none() || window <= 0 || past_len < window as usize) {
        return None;
    }
    let mut tot = Vec::with_capacity(batch);
    for b in 0..batch {
        // SAFETY: seqlens_k holds one integer per batch entry.
        let sk = unsafe { load_int(sl_elem, (sl_addr + b * sl_elem.size()) as *const u8) };
        if sk < 0 || (!windowed && sk as usize >= present_len) {
            return None;
        }
        if !first_prompt && (sk as usize) + 1 < s {
            return None;
        }
        tot.push(sk as usize + 1);
    }
    // Rotary: Q into a (B, N, S, H) buffer, the new K into (B, Nk, S, H).
    // Rotated copies, alive until the end of the call (views point into them).
    let (mut q_rot, mut k_rot): (Vec<f32>, Vec<f32>);
    let (q, k_new) = if rotary {
        let (cos, sin) = (a.ptr(55)?, a.ptr(57)?);
        let (rows, half) = (a.u(59), a.u(60));
        if 2 * half > h {
            return None;
        }
        let ids = a.ptr(61);
        let positions = match (ids, prompt) {
            (Some((addr, e)), true) => {
                // SAFETY: position_ids holds batch x seq integers.
                let first = unsafe { load_int(e, addr as *const u8) };
                Positions::Offset(vec![first; batch])
            }
            (Some((addr, e)), false) => Positions::Ids {
                addr,
                elem: e,
                strides: [s as isize, 1],
            },
            (None, true) => Positions::Offset(vec![0; batch]),
            (None, false) => Positions::Offset(tot.iter().map(|&t| (t - s) as i64).collect()),
        };
        // SAFETY: position_ids (when read) holds batch x seq integers.
        if !unsafe { positions_in_range(&positions, batch, s, rows) } {
            return None;
        }
        q_rot = vec![0f32; batch * n * s * h];
        k_rot = vec![0f32; batch * nk * s * h];
        let dense = |p: &mut Vec<f32>, heads: usize| View {
            addr: p.as_mut_ptr() as usize,
            elem: Elem::F32,
            strides: [(heads * s * h) as isize, (s * h) as isize, h as isize],
        };
        let (qv, kv) = (dense(&mut q_rot, n), dense(&mut k_rot, nk));
        for (x, o, heads) in [(q_in, qv, n), (k_in, kv, nk)] {
            let r = Rotary {
                batch,
                heads,
                seq: s,
                head: h,
                half,
                interleaved,
                x,
                out: o,
                cos,
                sin,
                rows,
                positions: positions.clone(),
            };
            // SAFETY: the views and tables are valid (lowering); the outputs are ours.
            unsafe { run_rotary(&r) };
        }
        (qv, kv)
    } else {
        (q_in, k_in)
    };
    let scale = match a.f(51) {
        0.0 => 1.0 / (h as f32).sqrt(),
        x => x,
    };
    let qk = a.ptr(72).map(|(addr, elem)| QkOut {
        view: View {
            addr,
            elem,
            strides: [a.i(74) as isize, a.i(75) as isize, a.i(76) as isize],
        },
        cols: a.u(77),
        mode: if a.0[78] == 1 {
            QkMode::Biased
        } else {
            QkMode::Probs
        },
        all_keys: false,
    });
    if let Some(qk) = &qk {
        // SAFETY: the score output holds batch x heads x seq rows of `cols`.
        unsafe { fill_rows(&qk.view, batch, n, 0, s, qk.cols, 0.0) };
    }
    let bias = a.mask(63);
    // Per batch entry: keys = past rows [0, rows) then the new keys.
    for (b, &tot_b) in tot.iter().enumerate() {
        let at = |v: &View| View {
            addr: v.row(b, 0, 0) as usize,
            ..*v
        };
        let (rows, kv_len, base) = if windowed {
            let gap = past_len - window as usize + 1;
            let before = tot_b.saturating_sub(s);
            let res = resident(before, past_len, gap);
            (res, res + s, before - res)
        } else {
            let rows = if first_prompt { 0 } else { tot_b - s };
            if rows > past_len || rows + s > present_len {
                return None;
            }
            (rows, tot_b, 0)
        };
        let (pk, pv) = match past {
            Some((k, v)) => (at(&k), at(&v)),
            None => (empty_view(), empty_view()),
        };
        let mask = bias.and_then(|m| {
            let off = b as isize * m.strides[0] + base as isize * m.strides[3];
            Some(Mask {
                addr: (m.addr as isize + off * m.elem.size() as isize) as usize,
                cols: m.cols.checked_sub(base)?,
                ..m
            })
        });
        if bias.is_some() && mask.is_none() {
            return None;
        }
        let p = Attention {
            batch: 1,
            q_heads: n,
            kv_heads: nk,
            q_len: s,
            dk: h,
            dv: h,
            q: at(&q),
            k: [
                Segment {
                    view: pk,
                    len: rows,
                },
                Segment {
                    view: at(&k_new),
                    len: s,
                },
            ],
            v: [
                Segment {
                    view: pv,
                    len: rows,
                },
                Segment {
                    view: at(&v_in),
                    len: s,
                },
            ],
            out: at(&out),
            scale,
            softcap: a.f(52),
            causal,
            left: if causal && window >= 0 {
                Some(window - 1)
            } else {
                None
            },
            right: None,
            window_from_end: true,
            kv_len: vec![kv_len],
            q_pos: vec![rows as i64],
            masks: [mask, None],
            sinks: a.ptr(70),
            smooth,
            qk: qk.map(|q| QkOut {
                view: at(&q.view),
                ..q
            }),
        };
        // SAFETY: every view is valid for the rows it names (lowering and checks above).
        unsafe { run_attention(kernel, &p) };
        // Present: the rows attention read, zeros after (windowed: the most recent ones).
        for (dst, past_v, new_v) in [(pk_out, pk, at(&k_new)), (pv_out, pv, at(&v_in))] {
            let Some(dst) = dst else { continue };
            let dst = at(&dst);
            // SAFETY: present holds present_len rows per kv head; the sources hold the rows
            // copied.
            unsafe {
                if windowed {
                    let after = resident(rows + s + base, past_len, past_len - window as usize + 1)
                        .min(rows + s);
                    let skip = rows + s - after;
                    let from_past = rows.saturating_sub(skip);
                    copy_rows(&past_v, &dst, 1, nk, skip.min(rows), 0, from_past, h);
                    let new_from = skip.saturating_sub(rows);
                    copy_rows(&new_v, &dst, 1, nk, new_from, from_past, s - new_from, h);
                    fill_rows(&dst, 1, nk, after, present_len - after, h, 0.0);
                } else {
                    copy_rows(&past_v, &dst, 1, nk, 0, 0, rows, h);
                    copy_rows(&new_v, &dst, 1, nk, 0, rows, s, h);
                    fill_rows(&dst, 1, nk, rows + s, present_len - rows - s, h, 0.0);
                }
            }
        }
    }
    Some(())
}

/// Whether every token's table row is inside the `rows` rows of the rotary tables.
///
/// # Safety
/// Id positions point at batch x seq readable integers.
unsafe fn positions_in_range(p: &Positions, batch: usize, seq: usize, rows: usize) -> bool {
    let ok = |r: i64| r >= 0 && (r as usize) < rows;
    match p {
        Positions::Offset(o) => o
            .iter()
            .all(|&o| seq == 0 || (ok(o) && ok(o + seq as i64 - 1))),
        Positions::Ids {
            addr,
            elem,
            strides,
        } => (0..batch).all(|b| {
            (0..seq).all(|i| {
                let off = b as isize * strides[0] + i as isize * strides[1];
                // SAFETY: (b, i) is inside the id tensor (caller).
                ok(unsafe {
                    load_int(
                        *elem,
                        (*addr as isize + off * elem.size() as isize) as *const u8,
                    )
                })
            })
        }),
        Positions::Strided { .. } => true,
    }
}

/// # Safety
/// `args` holds the `rotary` slots the module documents, describing valid memory.
unsafe extern "C" fn rotary(_ctx: *const RunContext, args: *const u64) {
    // SAFETY: the caller passes 26 readable slots.
    let a = Slots(unsafe { std::slice::from_raw_parts(args, 26) });
    // SAFETY: forwarded from the caller.
    unsafe { rotary_call(&a) };
}

/// # Safety
/// As [`rotary`].
unsafe fn rotary_call(a: &Slots) -> Option<()> {
    let positions = match a.0[21] {
        0 => Positions::Strided {
            rows: [a.u(22), a.u(23), a.u(24)],
        },
        1 => Positions::Ids {
            addr: a.u(22),
            elem: a.elem(23)?,
            strides: [a.i(24) as isize, a.i(25) as isize],
        },
        _ => {
            let (addr, e) = a.ptr(22)?;
            // SAFETY: the offset tensor holds one integer.
            let off = unsafe { load_int(e, addr as *const u8) };
            Positions::Offset(vec![off; a.u(0)])
        }
    };
    let r = Rotary {
        batch: a.u(0),
        heads: a.u(1),
        seq: a.u(2),
        head: a.u(3),
        half: a.u(4),
        interleaved: a.0[5] != 0,
        x: a.view(6)?,
        out: a.view(11)?,
        cos: a.ptr(16)?,
        sin: a.ptr(18)?,
        rows: a.u(20),
        positions,
    };
    if 2 * r.half > r.head {
        return None;
    }
    // SAFETY: the lowering described valid memory.
    unsafe { run_rotary(&r) };
    Some(())
}

/// # Safety
/// `args` holds the `mha` slots the module documents, describing valid memory.
unsafe extern "C" fn mha(ctx: *const RunContext, args: *const u64) {
    // SAFETY: the run context outlives the call.
    let kernel = unsafe { (*ctx).gemm };
    // SAFETY: the caller passes 68 readable slots.
    let a = Slots(unsafe { std::slice::from_raw_parts(args, 68) });
    // SAFETY: forwarded from the caller.
    unsafe { mha_call(kernel, &a) };
}

/// # Safety
/// As [`mha`].
unsafe fn mha_call(kernel: Kernel, a: &Slots) -> Option<()> {
    let (batch, n, sq, l, dk, dv, past) = (a.u(0), a.u(1), a.u(2), a.u(3), a.u(4), a.u(5), a.u(6));
    let flags = a.u(49);
    let (causal, kv_bias) = (flags & 1 != 0, flags & 2 != 0);
    let mut q = a.view(7)?;
    let mut k = a.view(12)?;
    let mut v = a.view(17)?;
    let past_kv = match (a.view(22), a.view(27)) {
        (Some(k), Some(v)) => Some((k, v)),
        _ => None,
    };
    let past = if past_kv.is_some() { past } else { 0 };
    let t = past + l;
    // The projection bias: added into dense copies.
    let (mut qb, mut kb, mut vb) = (Vec::new(), Vec::new(), Vec::new());
    if let Some((addr, e)) = a.ptr(47) {
        let mut bias = vec![0f32; 2 * n * dk + n * dv];
        // SAFETY: the bias holds 2 * N * dk + N * dv values.
        unsafe { load(e, addr as *const u8, &mut bias) };
        let add = |src: &View, rows: usize, d: usize, off: usize, buf: &mut Vec<f32>| -> View {
            *buf = vec![0f32; batch * n * rows * d];
            let mut row = vec![0f32; d];
            for b in 0..batch {
                for h in 0..n {
                    for r in 0..rows {
                        // SAFETY: the source holds batch x heads x rows rows of d.
                        unsafe { load(src.elem, src.row(b, h, r), &mut row) };
                        let o = ((b * n + h) * rows + r) * d;
                        for x in 0..d {
                            buf[o + x] = row[x] + bias[off + h * d + x];
                        }
                    }
                }
            }
            View {
                addr: buf.as_mut_ptr() as usize,
                elem: Elem::F32,
                strides: [(n * rows * d) as isize, (rows * d) as isize, d as isize],
            }
        };
        q = add(&q, sq, dk, 0, &mut qb);
        if kv_bias {
            k = add(&k, l, dk, n * dk, &mut kb);
            v = add(&v, l, dv, 2 * n * dk, &mut vb);
        }
    }
    let (kp, vp) = past_kv.unwrap_or((empty_view(), empty_view()));
    let mut ks = [
        Segment {
            view: kp,
            len: past,
        },
        Segment { view: k, len: l },
    ];
    let mut vs = [
        Segment {
            view: vp,
            len: past,
        },
        Segment { view: v, len: l },
    ];
    if let (Some(pk), Some(pv)) = (a.view(37), a.view(42)) {
        // SAFETY: present holds past + l rows per (batch, head).
        unsafe {
            copy_rows(&kp, &pk, batch, n, 0, 0, past, dk);
            copy_rows(&k, &pk, batch, n, 0, past, l, dk);
            copy_rows(&vp, &pv, batch, n, 0, 0, past, dv);
            copy_rows(&v, &pv, batch, n, 0, past, l, dv);
        }
        ks = [
            Segment { view: pk, len: t },
            Segment {
                view: empty_view(),
                len: 0,
            },
        ];
        vs = [
            Segment { view: pv, len: t },
            Segment {
                view: empty_view(),
                len: 0,
            },
        ];
    }
    // The additive (B, S, T) mask: key padding (mask_filter_value) and the causal frontier
    // (the lowest f32).
    let filter = a.f(51);
    let mut add = Vec::new();
    let kind = a.0[54];
    if kind != 0 || causal {
        add = vec![0f32; batch * sq * t];
        if let Some((addr, e)) = a.ptr(52) {
            let at = |i: usize| {
                // SAFETY: index i is inside the key padding mask's extent.
                unsafe { load_int(e, (addr + i * e.size()) as *const u8) }
            };
            for b in 0..batch {
                for i in 0..sq {
                    let row = &mut add[(b * sq + i) * t..(b * sq + i + 1) * t];
                    match kind {
                        1 => {
                            let end = at(b).clamp(0, t as i64) as usize;
                            row[end..].iter_mut().for_each(|x| *x = filter);
                        }
                        2 => {
                            for (j, x) in row.iter_mut().enumerate() {
                                if at(b * t + j) <= 0 {
                                    *x = filter;
                                }
                            }
                        }
                        _ => {
                            for (j, x) in row.iter_mut().enumerate() {
                                if at((b * sq + i) * t + j) <= 0 {
                                    *x = filter;
                                }
                            }
                        }
                    }
                }
            }
        }
        if causal {
            for b in 0..batch {
                for i in 0..sq {
                    for j in past + i + 1..t {
                        add[(b * sq + i) * t + j] = f32::MIN;
                    }
                }
            }
        }
    }
    let mask0 = if add.is_empty() {
        None
    } else {
        Some(Mask {
            addr: add.as_ptr() as usize,
            elem: Elem::F32,
            strides: [(sq * t) as isize, 0, t as isize, 1],
            cols: t,
        })
    };
    let qk = a.ptr(62).map(|(addr, elem)| QkOut {
        view: View {
            addr,
            elem,
            strides: [a.i(64) as isize, a.i(65) as isize, a.i(66) as isize],
        },
        cols: a.u(67),
        mode: QkMode::Biased,
        all_keys: true,
    });
    let p = Attention {
        batch,
        q_heads: n,
        kv_heads: n,
        q_len: sq,
        dk,
        dv,
        q,
        k: ks,
        v: vs,
        out: a.view(32)?,
        scale: a.f(50),
        softcap: 0.0,
        causal: false,
        left: None,
        right: None,
        window_from_end: false,
        kv_len: Vec::new(),
        q_pos: Vec::new(),
        masks: [mask0, a.mask(55)],
        sinks: None,
        smooth: false,
        qk,
    };
    // SAFETY: the lowering described valid memory; the buffers above outlive the call.
    unsafe { run_attention(kernel, &p) };
    Some(())
}

pub(super) const HELPERS: &[Helper] = &[
    Helper {
        name: "attention",
        func: HelperFn::Call(attention),
    },
    Helper {
        name: "gqa",
        func: HelperFn::Call(gqa),
    },
    Helper {
        name: "rotary",
        func: HelperFn::Call(rotary),
    },
    Helper {
        name: "mha",
        func: HelperFn::Call(mha),
    },
];
