//! `com.microsoft.GroupQueryAttention` -> `rope` (q and k, with `do_rotary`) and
//! `attention`, forms `com.microsoft.GroupQueryAttention` and
//! `com.microsoft.GroupQueryAttention-windowed-cache` (`sliding_window_cache = 1`).
//!
//! ONNX Runtime's op keeps each batch entry's keys in a buffer of its own length: entry `b`
//! has `tot[b] = seqlens_k[b] + 1` positions, of which `r[b]` are cached rows at the front of
//! `past_key[b]` (`r = max(tot - S, 0)`: a first prompt reads no past; with a windowed cache,
//! the rows still resident, see below) and the `S` new ones follow. `attention` instead reads
//! `concat(past_key, key)`: the whole past buffer (`P` rows), then the new rows. The rewrite
//! makes the two agree exactly, for any batch (padding included):
//!
//! - rotary positions are `r0[b] + s` with `r0 = max(tot - S, 0)`; the cos / sin rows are
//!   gathered at them (`[B, 1, S, R/2]`) for `rope`;
//! - a bool mask `[B, 1, S|1, P + S]` keeps exactly the keys ONNX Runtime reads: past row `j`
//!   if `j < r[b]`, new row `m` (at `P + m`) if `r[b] + m < tot[b]`, and with
//!   `local_window_size = W` those of position `>= end - W`, `end = min(r + i + 1, keys)`.
//!   `causal = 1` stays set (the mask implies it); `attention`'s own `window` does not, as it
//!   counts from `P`, not from `r[b]`. Without a window the mask does not depend on the query
//!   (`[B, 1, 1, P + S]`): the per-batch valid length;
//! - the present outputs have ONNX Runtime's layout: row `x` of entry `b` is the entry's key
//!   `off[b] + x` (`off = 0`, or what a windowed cache drops) if `x < cnt[b]`, else zero,
//!   gathered from `attention`'s `concat(past, key)` output.
//!
//! Windowed cache (capacity `C` = past length, window `W`, reclaiming `G = C - W + 1` rows at
//! a time): after `n` positions the cache holds `R(n) = n - G * ceil(max(n - C, 0) / G)` of
//! them; `r = R(tot - S)`, `cnt = R(tot)`, `off = r + S - cnt`.
//!
//! `head_sink` -> `sinks` (`smooth_softmax` without one: sinks of 0); `softcap` and `scale`
//! carry over. Left as it is when the `output_qk` output is read, with `position_ids`,
//! `attention_bias`, quantised caches or q/k norms, caches of another dtype than the query,
//! or a head size that is not a known constant.

use kiln_ir::attr::AttrsExt;
use kiln_ir::{Attr, DType, Graph, NodeId, Tensor, Value};

use super::common::{arange, bin, from_heads, int, read_outputs, to_heads, unsqueeze, used, Sdpa};
use crate::error::CompileError;
use crate::passes::fuse::pattern::{is_bound, out, out0, Builder};
use crate::passes::fuse::Match;

type R<T> = Result<T, CompileError>;

struct Plan {
    n: i64,
    nk: i64,
    h: i64,
    packed: bool,
    past: Option<(Value, Value)>,
    seqlens: Value,
    total: Value,
    /// Rotary: cos, sin caches and whether pairs are interleaved.
    rotary: Option<(Value, Value, bool)>,
    sinks: Option<Value>,
    smooth: bool,
    scale: Option<f32>,
    softcap: f32,
    causal: bool,
    /// local_window_size; -1: none.
    window: i64,
    windowed_cache: bool,
}

pub fn find(g: &Graph, root: NodeId) -> Option<Match> {
    let nd = g.node(root);
    if used(g, root, 3) {
        return None;
    }
    // position_ids, attention_bias and everything after head_sink (quantisation scales,
    // q/k norms) are not supported.
    if nd.input(9).is_some()
        || nd.input(10).is_some()
        || (12..nd.inputs().len()).any(|i| nd.input(i).is_some())
    {
        return None;
    }
    let a = &nd.attrs;
    let n = a.int("num_heads").ok()??;
    let nk = a.int("kv_num_heads").ok()??;
    if n <= 0 || nk <= 0 || n % nk != 0 {
        return None;
    }
    for qt in ["k_quant_type", "v_quant_type"] {
        if a.str_or(qt, "NONE").ok()? != "NONE" {
            return None;
        }
    }
    let window = a.int_or("local_window_size", -1).ok()?;
    let causal = match a.int_or("causal", 1).ok()? {
        0 => false,
        1 => true,
        _ => return None,
    };
    let windowed_cache = a.int_or("sliding_window_cache", 0).ok()? == 1;
    if window < -1 || (!causal && window != -1) || (windowed_cache && window <= 0) {
        return None;
    }
    let q = nd.input(0)?;
    let qt = g.value_type(q);
    let dt = qt.dtype;
    if !dt.is_float() || qt.rank() != 3 {
        return None;
    }
    let d = qt.shape[2].as_const()?;
    let packed = nd.input(1).is_none();
    let h = if packed {
        if nd.input(2).is_some() || d % (n + 2 * nk) != 0 {
            return None;
        }
        d / (n + 2 * nk)
    } else {
        let (kt, vt) = (g.value_type(nd.input(1)?), g.value_type(nd.input(2)?));
        if d % n != 0 || kt.dtype != dt || vt.dtype != dt || kt.rank() != 3 || vt.rank() != 3 {
            return None;
        }
        let h = d / n;
        if kt.shape[2].as_const()? != nk * h || vt.shape[2].as_const()? != nk * h {
            return None;
        }
        h
    };
    let past = match (nd.input(3), nd.input(4)) {
        (Some(pk), Some(pv)) => {
            let (pkt, pvt) = (g.value_type(pk), g.value_type(pv));
            if pkt.rank() != 4 || pvt.rank() != 4 || pkt.dtype != dt || pvt.dtype != dt {
                return None;
            }
            Some((pk, pv))
        }
        (None, None) => None,
        _ => return None,
    };
    if windowed_cache && past.is_none() {
        return None;
    }
    let seqlens = nd.input(5)?;
    if !g.value_type(seqlens).dtype.is_int() {
        return None;
    }
    // total_sequence_length only sizes the present outputs.
    let total = nd.input(6)?;
    if !g.value_type(total).dtype.is_int() {
        return None;
    }
    let rotary = if a.int_or("do_rotary", 0).ok()? == 1 {
        let (c, s) = (nd.input(7)?, nd.input(8)?);
        let (ct, st) = (g.value_type(c), g.value_type(s));
        if ct.rank() != 2 || ct.dtype != dt || st.dtype != dt || ct.shape != st.shape {
            return None;
        }
        let half = ct.shape[1].as_const()?;
        if half <= 0 || 2 * half > h {
            return None;
        }
        Some((c, s, a.int_or("rotary_interleaved", 0).ok()? == 1))
    } else {
        None
    };
    let sinks = nd.input(11);
    if let Some(sk) = sinks {
        let st = g.value_type(sk);
        if st.dtype != dt || st.rank() != 1 || st.shape[0].as_const()? != n {
            return None;
        }
    }
    let softcap = a.float_or("softcap", 0.0).ok()?;
    if softcap.is_nan() || softcap < 0.0 {
        return None;
    }
    let plan = Plan {
        n,
        nk,
        h,
        packed,
        past,
        seqlens,
        total,
        rotary,
        sinks,
        smooth: a.int_or("smooth_softmax", 0).ok()? == 1,
        scale: a.float("scale").ok()?.filter(|&x| x != 0.0),
        softcap,
        causal,
        window,
        windowed_cache,
    };
    let presents = read_outputs(g, root, &[1, 2]);
    let present_types: Vec<_> = presents.iter().map(|&o| nd.outputs[o].clone()).collect();
    let (key, value) = (nd.input(1), nd.input(2));
    let origin = nd.origin.clone();
    Some(Match {
        form: if windowed_cache {
            "com.microsoft.GroupQueryAttention-windowed-cache"
        } else {
            "com.microsoft.GroupQueryAttention"
        },
        nodes: vec![root],
        rewrite: Box::new(move |g: &mut Graph| {
            let mut bld = Builder::new(g, &origin);
            let (attended, caches) = rewrite(&mut bld, &plan, q, key, value, !presents.is_empty())?;
            let mut pairs = vec![(out0(root), attended)];
            for (&o, ty) in presents.iter().zip(&present_types) {
                let new = present(&mut bld, &plan, &caches, o - 1, ty.shape[2].clone())?;
                pairs.push((out(root, o), new));
            }
            Ok(pairs)
        }),
    })
}

/// What the present outputs are gathered from.
struct Caches {
    /// `concat(past, new)` keys and values (`attention`'s outputs 1, 2).
    kv: Vec<Value>,
    /// Per entry `[B, 1]`: cached rows before the new ones, rows kept, rows dropped (none
    /// without a windowed cache).
    r: Value,
    cnt: Value,
    off: Option<Value>,
    /// Past length P (i64 scalar), if there is a past.
    past_len: Option<Value>,
}

/// `n - G * ceil(max(n - C, 0) / G)`: the rows a windowed cache of capacity `c` holds after
/// `n` positions.
fn resident(b: &mut Builder, n: Value, c: Value, gap: Value) -> R<Value> {
    let over = bin(b, "Sub", n, c)?;
    let zero = int(b, 0)?;
    let over = bin(b, "Max", over, zero)?;
    let one = int(b, 1)?;
    let gm1 = bin(b, "Sub", gap, one)?;
    let up = bin(b, "Add", over, gm1)?;
    let steps = bin(b, "Div", up, gap)?;
    let drop = bin(b, "Mul", steps, gap)?;
    bin(b, "Sub", n, drop)
}

fn rewrite(
    b: &mut Builder,
    p: &Plan,
    q_in: Value,
    key: Option<Value>,
    value: Option<Value>,
    presents: bool,
) -> R<(Value, Caches)> {
    let (n, nk, h) = (p.n, p.nk, p.h);
    let (q3, k3, v3) = if p.packed {
        let part = |b: &mut Builder, start: i64, len: i64| -> R<Value> {
            let (s, e, ax) = (b.ints(&[start])?, b.ints(&[start + len])?, b.ints(&[2])?);
            b.op("Slice", &[q_in, s, e, ax], &[])
        };
        (
            part(b, 0, n * h)?,
            part(b, n * h, nk * h)?,
            part(b, (n + nk) * h, nk * h)?,
        )
    } else {
        let missing = || CompileError::Pass("GroupQueryAttention needs key and value".into());
        (q_in, key.ok_or_else(missing)?, value.ok_or_else(missing)?)
    };
    let mut q = to_heads(b, q3, n)?;
    let mut k = to_heads(b, k3, nk)?;
    let v = to_heads(b, v3, nk)?;

    // Per entry (as [B]): total positions, absolute positions before the new ones.
    let s = b.size(q_in, 1)?;
    let sl = b.op("Cast", &[p.seqlens], &[("to", Attr::DType(DType::I64))])?;
    let one = int(b, 1)?;
    let tot = bin(b, "Add", sl, one)?;
    let zero = int(b, 0)?;
    let d = bin(b, "Sub", tot, s)?;
    let before = bin(b, "Max", d, zero)?;

    if let Some((cos, sin, inter)) = p.rotary {
        let si = arange(b, s)?; // [S]
        let base = unsqueeze(b, before, &[1])?; // [B, 1]
        let pos = bin(b, "Add", base, si)?; // [B, S]
        let mut rot = Vec::new();
        for cache in [cos, sin] {
            let rows = b.op("Gather", &[cache, pos], &[("axis", Attr::Int(0))])?;
            rot.push(unsqueeze(b, rows, &[1])?); // [B, 1, S, R/2]
        }
        let a = [("interleaved", Attr::Int(i64::from(inter)))];
        q = b.op("rope", &[q, rot[0], rot[1]], &a)?;
        k = b.op("rope", &[k, rot[0], rot[1]], &a)?;
    }

    // r: rows of the entry's keys before the new ones; keys: how many it has; and, for the
    // present outputs, how many it keeps (cnt) from which one (off).
    let past_len = match p.past {
        Some((pk, _)) => Some(b.size(pk, 2)?),
        None => None,
    };
    let (r, keys, cnt, off) = if p.windowed_cache {
        let c = past_len.ok_or_else(|| CompileError::Pass("windowed cache without past".into()))?;
        let wm1 = int(b, p.window - 1)?;
        let gap = bin(b, "Sub", c, wm1)?;
        let r = resident(b, before, c, gap)?;
        let after = bin(b, "Add", before, s)?;
        let cnt = resident(b, after, c, gap)?;
        let keys = bin(b, "Add", r, s)?;
        let rs = bin(b, "Add", r, s)?;
        let off = bin(b, "Sub", rs, cnt)?;
        (r, keys, cnt, Some(off))
    } else {
        let cnt = bin(b, "Add", before, s)?;
        (before, tot, cnt, None)
    };

    // The mask over attention's keys j in 0..P+S; x: the entry's key index of key j.
    let t = match past_len {
        Some(pl) => bin(b, "Add", pl, s)?,
        None => s,
    };
    let j = arange(b, t)?;
    let j = unsqueeze(b, j, &[0, 1])?; // [1, 1, T]
    let r3 = unsqueeze(b, r, &[1, 2])?; // [B, 1, 1]
    let keys3 = unsqueeze(b, keys, &[1, 2])?;
    let (x, valid) = match past_len {
        Some(pl) => {
            let in_past = bin(b, "Less", j, pl)?;
            let jp = bin(b, "Sub", j, pl)?;
            let shifted = bin(b, "Add", jp, r3)?;
            let x = b.op("Where", &[in_past, j, shifted], &[])?; // [B, 1, T]
            let not_past = b.op("Not", &[in_past], &[])?;
            let cached = bin(b, "Less", j, r3)?;
            (x, Some(bin(b, "Or", not_past, cached)?))
        }
        None => (j, None),
    };
    let mut allowed = bin(b, "Less", x, keys3)?;
    if p.causal && p.window >= 0 {
        // The entry's window: keys [end - W, end), end = min(r + i + 1, keys).
        let si = arange(b, s)?;
        let i3 = unsqueeze(b, si, &[0, 2])?; // [1, S, 1]
        let ri = bin(b, "Add", r3, i3)?;
        let ri1 = bin(b, "Add", ri, one)?;
        let end = bin(b, "Min", ri1, keys3)?; // [B, S, 1]
        let w = int(b, p.window)?;
        let lo = bin(b, "Sub", end, w)?;
        let lo = bin(b, "Max", lo, zero)?;
        let after_lo = bin(b, "GreaterOrEqual", x, lo)?;
        let below = bin(b, "Less", x, end)?;
        let win = bin(b, "And", after_lo, below)?;
        allowed = bin(b, "And", allowed, win)?;
    }
    if let Some(valid) = valid {
        allowed = bin(b, "And", allowed, valid)?;
    }
    let mask = unsqueeze(b, allowed, &[1])?; // [B, 1, S|1, T]

    let mut sdpa = Sdpa::new(q, k, v);
    sdpa.mask = Some(mask);
    sdpa.past = p.past;
    sdpa.causal = p.causal;
    sdpa.scale = p.scale;
    sdpa.softcap = p.softcap;
    sdpa.sinks = match (p.sinks, p.smooth) {
        (Some(sk), _) => Some(sk),
        (None, true) => {
            let dt = b.g.value_type(q).dtype;
            Some(b.constant(Tensor::from_f64(
                dt,
                vec![n as usize],
                &vec![0.0; n as usize],
            ))?)
        }
        (None, false) => None,
    };
    let outs = sdpa.build(b, presents)?;
    let out = from_heads(b, outs[0])?;
    let r2 = unsqueeze(b, r, &[1])?;
    let cnt2 = unsqueeze(b, cnt, &[1])?;
    let off2 = match off {
        Some(o) => Some(unsqueeze(b, o, &[1])?),
        None => None,
    };
    Ok((
        out,
        Caches {
            kv: outs[1..].to_vec(),
            r: r2,
            cnt: cnt2,
            off: off2,
            past_len,
        },
    ))
}

/// Present output `which` (0 keys, 1 values) of length `len`, in ONNX Runtime's layout.
fn present(b: &mut Builder, p: &Plan, c: &Caches, which: usize, len: kiln_ir::Dim) -> R<Value> {
    let src = c.kv[which];
    let len = if is_bound(b.g, &len) {
        b.dims(&[len], true)?
    } else {
        match (p.windowed_cache, c.past_len) {
            (true, Some(pl)) => pl,
            // max(total_sequence_length, P), as ONNX Runtime sizes it.
            (_, pl) => {
                let scalar = b.ints(&[])?;
                let tot = b.op("Reshape", &[p.total, scalar], &[])?;
                let tot = b.op("Cast", &[tot], &[("to", Attr::DType(DType::I64))])?;
                match pl {
                    Some(pl) => bin(b, "Max", tot, pl)?,
                    None => tot,
                }
            }
        }
    };
    let rows = arange(b, len)?;
    let rows = unsqueeze(b, rows, &[0])?; // [1, L]
                                          // The entry's key index of each row ([B, L], or [1, L] if the same for all).
    let x = match c.off {
        Some(off) => bin(b, "Add", rows, off)?,
        None => rows,
    };
    let idx = match c.past_len {
        Some(pl) => {
            let cached = bin(b, "Less", x, c.r)?;
            let xr = bin(b, "Sub", x, c.r)?;
            let shifted = bin(b, "Add", xr, pl)?;
            b.op("Where", &[cached, x, shifted], &[])?
        }
        None => x,
    };
    // Rows past cnt hold zeros; clamp their index into range.
    let t = b.size(src, 2)?;
    let one = int(b, 1)?;
    let last = bin(b, "Sub", t, one)?;
    let idx = bin(b, "Min", idx, last)?;
    let idx = unsqueeze(b, idx, &[1, 3])?; // [B, 1, L, 1]
                                           // GatherElements wants the index in full: every entry (its rows may not depend on the
                                           // entry, without a past), head and element.
    let batch = b.g.value_type(src).shape[0].clone();
    let full = if is_bound(b.g, &batch) {
        b.dims(&[batch, p.nk.into(), 1i64.into(), p.h.into()], false)?
    } else {
        let n = b.size(src, 0)?;
        let n = unsqueeze(b, n, &[0])?;
        let rest = b.ints(&[p.nk, 1, p.h])?;
        b.op("Concat", &[n, rest], &[("axis", Attr::Int(0))])?
    };
    let idx = b.op("Expand", &[idx, full], &[])?;
    let rows_of = b.op("GatherElements", &[src, idx], &[("axis", Attr::Int(2))])?;
    let keep = bin(b, "Less", rows, c.cnt)?; // [B, L]
    let keep = unsqueeze(b, keep, &[1, 3])?;
    let dt = b.g.value_type(src).dtype;
    let zero = b.scalar(dt, 0.0)?;
    b.op("Where", &[keep, rows_of, zero], &[])
}
