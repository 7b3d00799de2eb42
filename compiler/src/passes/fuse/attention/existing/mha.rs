//! `com.microsoft.MultiHeadAttention` -> `attention`, form `com.microsoft.MultiHeadAttention`.
//!
//! - Q, K, V: 3-D `[B, S, N * H]` split into heads; packed QKV `[B, S, N, 3, H]` and packed
//!   KV `[B, L, N, 2, H]` sliced; K, V already `[B, N, L, H]` pass through.
//! - `bias` `[D + D + Dv]` is added to the projections (to K and V only when they are not
//!   already in heads, as ONNX Runtime does).
//! - `unidirectional` -> `causal` (ONNX Runtime masks later keys with the lowest float,
//!   which weighs exactly as `-inf` since key 0 always stays visible).
//! - `key_padding_mask` (int; `[B]` key counts, `[B, T]` or `[B, S, T]` 0/1) becomes an
//!   additive float mask of `mask_filter_value` (default -10000) on padding keys, plus
//!   `attention_bias` `[B|1, N|1, S, T]` when given.
//! - `past_key` / `past_value` and the present outputs are `attention`'s own.
//!
//! Left as it is when the `qk` output is read, with `past_sequence_length` or
//! `cache_indirection`, or when shapes or dtypes cannot be shown to fit.

use kiln_ir::attr::AttrsExt;
use kiln_ir::{Attr, DType, Dim, Graph, NodeId, Value};

use super::common::{arange, bin, bsnh_to_heads, read_outputs, to_heads, unsqueeze, used, Sdpa};
use crate::error::CompileError;
use crate::passes::fuse::pattern::{out, out0, Builder};
use crate::passes::fuse::Match;

type R<T> = Result<T, CompileError>;

#[derive(Clone, Copy, PartialEq)]
enum Layout {
    /// Separate 3-D Q, K, V.
    Separate,
    /// Packed QKV in input 0.
    PackedQkv,
    /// 3-D Q and packed KV in input 1.
    PackedKv,
    /// 3-D Q; K, V already `[B, N, L, H]`.
    KvHeads,
}

struct Plan {
    layout: Layout,
    n: i64,
    /// Q / K head size and V head size.
    h: i64,
    hv: i64,
    bias: Option<Value>,
    padding: Option<Value>,
    attn_bias: Option<Value>,
    past: Option<(Value, Value)>,
    scale: Option<f32>,
    causal: bool,
    filter: f32,
}

pub fn find(g: &Graph, root: NodeId) -> Option<Match> {
    let nd = g.node(root);
    if used(g, root, 3) || nd.input(8).is_some() || nd.input(9).is_some() {
        return None;
    }
    let a = &nd.attrs;
    let n = a.int("num_heads").ok()??;
    if n <= 0 {
        return None;
    }
    let q = nd.input(0)?;
    let qt = g.value_type(q);
    let dt = qt.dtype;
    if !dt.is_float() {
        return None;
    }
    let konst = |d: &Dim| d.as_const();
    let (key, value) = (nd.input(1), nd.input(2));
    let same = |v: Option<Value>| v.is_none_or(|v| g.value_type(v).dtype == dt);
    if !same(key) || !same(value) {
        return None;
    }
    let (layout, h, hv, l) = match qt.rank() {
        5 => {
            if key.is_some() || value.is_some() || konst(&qt.shape[2]) != Some(n) {
                return None;
            }
            if konst(&qt.shape[3]) != Some(3) {
                return None;
            }
            let h = konst(&qt.shape[4])?;
            (Layout::PackedQkv, h, h, qt.shape[1].clone())
        }
        3 => {
            let d = konst(&qt.shape[2])?;
            if d % n != 0 {
                return None;
            }
            let h = d / n;
            let kt = g.value_type(key?);
            match kt.rank() {
                5 => {
                    if value.is_some()
                        || konst(&kt.shape[2]) != Some(n)
                        || konst(&kt.shape[3]) != Some(2)
                        || konst(&kt.shape[4]) != Some(h)
                    {
                        return None;
                    }
                    (Layout::PackedKv, h, h, kt.shape[1].clone())
                }
                4 => {
                    let vt = g.value_type(value?);
                    if vt.rank() != 4
                        || konst(&kt.shape[1]) != Some(n)
                        || konst(&kt.shape[3]) != Some(h)
                        || konst(&vt.shape[1]) != Some(n)
                        || vt.shape[2] != kt.shape[2]
                    {
                        return None;
                    }
                    (
                        Layout::KvHeads,
                        h,
                        konst(&vt.shape[3])?,
                        kt.shape[2].clone(),
                    )
                }
                3 => {
                    let vt = g.value_type(value?);
                    if vt.rank() != 3
                        || konst(&kt.shape[2]) != Some(d)
                        || vt.shape[1] != kt.shape[1]
                    {
                        return None;
                    }
                    let dv = konst(&vt.shape[2])?;
                    if dv % n != 0 {
                        return None;
                    }
                    (Layout::Separate, h, dv / n, kt.shape[1].clone())
                }
                _ => return None,
            }
        }
        _ => return None,
    };
    let bias = nd.input(3);
    if let Some(bv) = bias {
        let bt = g.value_type(bv);
        if bt.dtype != dt || bt.rank() != 1 || konst(&bt.shape[0]) != Some(2 * n * h + n * hv) {
            return None;
        }
    }
    let past = match (nd.input(6), nd.input(7)) {
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
    // Keys after the cache: T.
    let t = match past {
        Some((pk, _)) => g.value_type(pk).shape[2].add(&l),
        None => l,
    };
    let (b, s) = (qt.shape[0].clone(), qt.shape[1].clone());
    let padding = nd.input(4);
    if let Some(m) = padding {
        let mt = g.value_type(m);
        let fits = match mt.rank() {
            1 => mt.shape[0] == b,
            2 => mt.shape[0] == b && mt.shape[1] == t,
            3 => mt.shape[0] == b && mt.shape[1] == s && mt.shape[2] == t,
            _ => false,
        };
        if !mt.dtype.is_int() || !fits {
            return None;
        }
    }
    let attn_bias = nd.input(5);
    if let Some(ab) = attn_bias {
        let at = g.value_type(ab);
        let one = Dim::from(1i64);
        let ok = at.rank() == 4
            && at.dtype == dt
            && (at.shape[0] == one || at.shape[0] == b)
            && (at.shape[1] == one || at.shape[1] == Dim::from(n))
            && at.shape[2] == s
            && at.shape[3] == t;
        if !ok {
            return None;
        }
    }
    let plan = Plan {
        layout,
        n,
        h,
        hv,
        bias,
        padding,
        attn_bias,
        past,
        scale: a.float("scale").ok()?.filter(|&x| x != 0.0),
        causal: a.int_or("unidirectional", 0).ok()? != 0,
        filter: a.float_or("mask_filter_value", -10000.0).ok()?,
    };
    let presents = read_outputs(g, root, &[1, 2]);
    let origin = nd.origin.clone();
    Some(Match {
        form: "com.microsoft.MultiHeadAttention",
        nodes: vec![root],
        rewrite: Box::new(move |g: &mut Graph| {
            let mut bld = Builder::new(g, &origin);
            let outs = rewrite(&mut bld, &plan, q, key, value, !presents.is_empty())?;
            let presents = presents.into_iter().map(|o| (out(root, o), outs[o]));
            Ok(std::iter::once((out0(root), outs[0]))
                .chain(presents)
                .collect())
        }),
    })
}

/// Elements `[start, end)` of the last axis of `x`.
fn slice_last(b: &mut Builder, x: Value, start: i64, end: i64, axis: i64) -> R<Value> {
    let (s, e, ax) = (b.ints(&[start])?, b.ints(&[end])?, b.ints(&[axis])?);
    b.op("Slice", &[x, s, e, ax], &[])
}

/// Part `p` of a packed `[B, S, N, parts, H]` tensor, as `[B, S, N, H]`.
fn unpack(b: &mut Builder, x: Value, p: i64) -> R<Value> {
    let part = slice_last(b, x, p, p + 1, 3)?;
    let shape = b.ints(&[0, 0, 0, -1])?;
    b.op("Reshape", &[part, shape], &[])
}

fn rewrite(
    b: &mut Builder,
    p: &Plan,
    q: Value,
    key: Option<Value>,
    value: Option<Value>,
    presents: bool,
) -> R<Vec<Value>> {
    let (n, h, hv) = (p.n, p.h, p.hv);
    let d = n * h;
    // The bias parts, as [D] (3-D layout) and [N, H] (packed layout).
    let bias_part = |b: &mut Builder, i: i64, heads: bool| -> R<Option<Value>> {
        let Some(bv) = p.bias else { return Ok(None) };
        let (start, len, hh) = [(0, d, h), (d, d, h), (2 * d, n * hv, hv)][i as usize];
        let part = slice_last(b, bv, start, start + len, 0)?;
        if !heads {
            return Ok(Some(part));
        }
        let shape = b.ints(&[n, hh])?;
        Ok(Some(b.op("Reshape", &[part, shape], &[])?))
    };
    let add = |b: &mut Builder, x: Value, bias: Option<Value>| -> R<Value> {
        match bias {
            Some(bv) => bin(b, "Add", x, bv),
            None => Ok(x),
        }
    };
    let (q, k, v) = match p.layout {
        Layout::PackedQkv => {
            let mut parts = Vec::new();
            for i in 0..3 {
                let x = unpack(b, q, i)?;
                let bias = bias_part(b, i, true)?;
                let x = add(b, x, bias)?;
                parts.push(bsnh_to_heads(b, x)?);
            }
            (parts[0], parts[1], parts[2])
        }
        _ => {
            let bq = bias_part(b, 0, false)?;
            let q3 = add(b, q, bq)?;
            let qh = to_heads(b, q3, n)?;
            let key =
                key.ok_or_else(|| CompileError::Pass("MultiHeadAttention needs key".into()))?;
            match p.layout {
                Layout::PackedKv => {
                    let mut parts = Vec::new();
                    for i in 0..2 {
                        let x = unpack(b, key, i)?;
                        let bias = bias_part(b, i + 1, true)?;
                        let x = add(b, x, bias)?;
                        parts.push(bsnh_to_heads(b, x)?);
                    }
                    (qh, parts[0], parts[1])
                }
                Layout::KvHeads => {
                    let value = value.ok_or_else(|| CompileError::Pass("needs value".into()))?;
                    (qh, key, value)
                }
                _ => {
                    let value = value.ok_or_else(|| CompileError::Pass("needs value".into()))?;
                    let bk = bias_part(b, 1, false)?;
                    let k3 = add(b, key, bk)?;
                    let bv = bias_part(b, 2, false)?;
                    let v3 = add(b, value, bv)?;
                    (qh, to_heads(b, k3, n)?, to_heads(b, v3, n)?)
                }
            }
        }
    };
    let dt = b.g.value_type(q).dtype;
    let mut mask = None;
    if let Some(m) = p.padding {
        // Where a key is padding: its score gets the filter value.
        let mt = b.g.value_type(m).clone();
        let pad = if mt.rank() == 1 {
            let t = b.size(k, 2)?;
            let t = match p.past {
                Some((pk, _)) => {
                    let pl = b.size(pk, 2)?;
                    bin(b, "Add", pl, t)?
                }
                None => t,
            };
            let j = arange(b, t)?; // [T]
            let cnt = b.op("Cast", &[m], &[("to", Attr::DType(DType::I64))])?;
            let cnt = unsqueeze(b, cnt, &[1])?; // [B, 1]
            let pad = bin(b, "GreaterOrEqual", j, cnt)?; // [B, T]
            unsqueeze(b, pad, &[1, 2])?
        } else {
            let zero = b.constant(kiln_ir::Tensor::from_i64(mt.dtype, vec![], &[0]))?;
            let pad = bin(b, "LessOrEqual", m, zero)?;
            let axes: &[i64] = if mt.rank() == 2 { &[1, 2] } else { &[1] };
            unsqueeze(b, pad, axes)?
        };
        let filter = b.scalar(dt, f64::from(p.filter))?;
        let zero = b.scalar(dt, 0.0)?;
        mask = Some(b.op("Where", &[pad, filter, zero], &[])?);
    }
    if let Some(ab) = p.attn_bias {
        mask = Some(match mask {
            Some(m) => bin(b, "Add", m, ab)?,
            None => ab,
        });
    }
    let mut sdpa = Sdpa::new(q, k, v);
    sdpa.mask = mask;
    sdpa.past = p.past;
    sdpa.scale = p.scale;
    sdpa.causal = p.causal;
    let mut outs = sdpa.build(b, presents)?;
    outs[0] = super::common::from_heads(b, outs[0])?;
    Ok(outs)
}
