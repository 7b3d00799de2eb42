//! Mixture-of-experts kernel: routing, tokens grouped by expert, each expert's gated MLP as
//! GEMMs over only its tokens, the weighted combine, and dense shared experts.
//!
//! Expert weights are `(out, in)` matrices (`W x`), given either prepacked (each expert's
//! `Wᵀ` as [`PackedB`] panels, one after another: what the lowering stores for constant
//! weights) or dense f32 `(E, out, in)` (packed per call).
//!
//! Routing is computed in f64 (the choice of experts is discrete; the reference's order must
//! be reproduced exactly); the expert MLPs in f32. Each token's expert outputs are kept per
//! slot and summed in slot order, so results do not depend on the thread count.

use rayon::prelude::*;

use crate::cpu::attention::{load, load1, load_int, store, Elem};
use crate::cpu::gemm::{gemm, Kernel, PackedB, PackedBRef};

/// How the router's logits become scores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Score {
    Softmax,
    Sigmoid,
    SqrtSoftplus,
}

/// The expert activation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    /// `min(g, limit) * sigmoid(alpha * min(g, limit)) * (clamp(u, -limit, limit) + beta)`.
    Swiglu {
        alpha: f32,
        beta: f32,
        limit: Option<f32>,
    },
    Silu,
    /// Exact (erf).
    Gelu,
    /// The tanh approximation.
    GeluTanh,
    Relu,
    Identity,
}

/// How the chosen weights are normalised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Normalize {
    None,
    /// Divided by their sum when it is not 0 (kiln's `moe`).
    Sum,
    /// Divided by their sum when it is above 1e-8, else `1/k` each (ONNX Runtime's MoE).
    SumOrUniform,
}

/// An `(E, out, in)` weight: prepacked per expert, or dense f32.
#[derive(Clone, Copy, Debug)]
pub struct Weight {
    pub addr: usize,
    pub packed: bool,
}

/// Where up (the linear half of a gated unit) comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Up {
    None,
    /// From `w3`.
    W3,
    /// Interleaved in `w1`'s rows: gate `2i`, up `2i + 1`.
    Interleaved,
    /// Halves of `w1`'s rows: gate `0..I`, up `I..2I`.
    Halves,
}

/// A hash-routing table `(addr, elem, rows, cols)` and the token ids `(addr, elem)`.
pub type HashRouting = ((usize, Elem, usize, usize), (usize, Elem));

/// One MoE call.
#[derive(Clone, Debug)]
pub struct Moe {
    pub tokens: usize,
    pub hidden: usize,
    pub experts: usize,
    pub inter: usize,
    pub k: usize,
    pub x: (usize, Elem),
    pub logits: (usize, Elem),
    pub out: (usize, Elem),
    pub score: Score,
    pub selection_bias: Option<(usize, Elem)>,
    pub n_group: usize,
    pub topk_group: usize,
    pub hash: Option<HashRouting>,
    pub normalize: Normalize,
    pub scaling: f32,
    /// Ties go to the higher expert index (ONNX Runtime) instead of the lower.
    pub ties_high: bool,
    /// Experts whose weight is <= 0 are skipped (ONNX Runtime).
    pub skip_nonpositive: bool,
    pub act: Act,
    pub up: Up,
    pub w1: Weight,
    pub b1: Option<(usize, Elem)>,
    pub w2: Weight,
    pub b2: Option<(usize, Elem)>,
    pub w3: Option<Weight>,
    pub b3: Option<(usize, Elem)>,
    pub shared: Option<Shared>,
}

/// Shared experts: `w1`, `w3` `(Is, H)`, `w2` `(H, Is)`, an optional sigmoid gate `(H)`.
#[derive(Clone, Copy, Debug)]
pub struct Shared {
    pub inter: usize,
    pub w1: Weight,
    pub w2: Weight,
    pub w3: Option<Weight>,
    pub gate: Option<(usize, Elem)>,
}

/// The rows of w1 (gate, or gate and up fused).
fn rows1(p: &Moe) -> usize {
    match p.up {
        Up::Interleaved | Up::Halves => 2 * p.inter,
        _ => p.inter,
    }
}

/// Packs the `(out, in)` matrix `w` (dense, row-major) as `Wᵀ` panels.
fn pack_t(w: &[f32], out: usize, inp: usize) -> PackedB {
    let mut t = vec![0f32; out * inp];
    for o in 0..out {
        for i in 0..inp {
            t[i * out + o] = w[o * inp + i];
        }
    }
    PackedB::pack(&t, inp, out, out)
}

/// Packs every expert of an `(E, out, in)` f32 weight (for a dense one) or views the
/// prepacked panels.
///
/// # Safety
/// `w` holds `e` experts in its layout, valid for `'a`.
unsafe fn expert_panels<'a>(w: Weight, e: usize, out: usize, inp: usize) -> Panels<'a> {
    let len = PackedB::packed_len(inp, out);
    if w.packed {
        // SAFETY: e packed panels of `len` floats (caller).
        let data = unsafe { std::slice::from_raw_parts(w.addr as *const f32, e * len) };
        Panels::Borrowed(data, len)
    } else {
        // SAFETY: e dense (out, in) f32 matrices (caller).
        let dense = unsafe { std::slice::from_raw_parts(w.addr as *const f32, e * out * inp) };
        let packed: Vec<PackedB> = (0..e)
            .map(|x| pack_t(&dense[x * out * inp..(x + 1) * out * inp], out, inp))
            .collect();
        Panels::Owned(packed)
    }
}

enum Panels<'a> {
    Borrowed(&'a [f32], usize),
    Owned(Vec<PackedB>),
}

impl Panels<'_> {
    fn get(&self, e: usize, k: usize, n: usize) -> PackedBRef<'_> {
        match self {
            Panels::Borrowed(d, len) => PackedBRef {
                k,
                n,
                data: &d[e * len..(e + 1) * len],
            },
            Panels::Owned(v) => v[e].view(),
        }
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// erf to about 1e-7 (relative), from Numerical Recipes' Chebyshev fit of erfc.
fn erf(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        1.0 - r
    } else {
        r - 1.0
    }
}

fn activate(act: Act, g: f32, u: Option<f32>) -> f32 {
    let f = |v: f32| -> f32 {
        let v64 = v as f64;
        (match act {
            Act::Silu | Act::Swiglu { .. } => v64 * sigmoid(v64),
            Act::Gelu => 0.5 * v64 * (1.0 + erf(v64 / std::f64::consts::SQRT_2)),
            Act::GeluTanh => {
                const C: f64 = 0.797_884_560_802_865_4;
                0.5 * v64 * (1.0 + (C * (v64 + 0.044715 * v64 * v64 * v64)).tanh())
            }
            Act::Relu => v64.max(0.0),
            Act::Identity => v64,
        }) as f32
    };
    match (act, u) {
        (Act::Swiglu { alpha, beta, limit }, Some(u)) => {
            let (g, u) = match limit {
                Some(l) => (g.min(l), u.clamp(-l, l)),
                None => (g, u),
            };
            let (g, u) = (g as f64, u as f64);
            (g * sigmoid(alpha as f64 * g) * (u + beta as f64)) as f32
        }
        (_, Some(u)) => f(g) * u,
        (_, None) => f(g),
    }
}

/// Indices of the `k` largest of `v` among `allowed`, descending; ties to the lower index
/// (or the higher with `high`).
fn top_k(v: &[f64], k: usize, high: bool, allowed: impl Fn(usize) -> bool) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..v.len()).filter(|&i| allowed(i)).collect();
    if high {
        idx.sort_by(|&a, &b| {
            v[b].partial_cmp(&v[a])
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(b.cmp(&a))
        });
    } else {
        idx.sort_by(|&a, &b| v[b].total_cmp(&v[a]).then(a.cmp(&b)));
    }
    idx.truncate(k);
    idx
}

/// The chosen experts and their weights for one token, or None on bad data.
///
/// # Safety
/// The routing inputs are valid for `p.tokens` tokens.
unsafe fn route(p: &Moe, t: usize) -> Option<Vec<(usize, f32)>> {
    let e = p.experts;
    let mut l = vec![0f32; e];
    let (la, le) = p.logits;
    // SAFETY: logits row t holds e values.
    unsafe { load(le, (la + t * e * le.size()) as *const u8, &mut l) };
    let l: Vec<f64> = l.into_iter().map(f64::from).collect();
    let s: Vec<f64> = match p.score {
        Score::Softmax => {
            let m = l.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let ex: Vec<f64> = l.iter().map(|v| (v - m).exp()).collect();
            let sum: f64 = ex.iter().sum();
            ex.into_iter().map(|v| v / sum).collect()
        }
        Score::Sigmoid => l.iter().map(|&v| sigmoid(v)).collect(),
        Score::SqrtSoftplus => l
            .iter()
            .map(|&v| (v.max(0.0) + (-v.abs()).exp().ln_1p()).sqrt())
            .collect(),
    };
    let chosen: Vec<usize> = if let Some(((ta, te, rows, cols), (ia, ie))) = p.hash {
        // SAFETY: one id per token.
        let id = unsafe { load_int(ie, (ia + t * ie.size()) as *const u8) };
        if id < 0 || id as usize >= rows {
            return None;
        }
        let mut c = Vec::with_capacity(cols);
        for j in 0..cols {
            let at = ta + (id as usize * cols + j) * te.size();
            // SAFETY: table row id holds cols entries.
            let ex = unsafe { load_int(te, at as *const u8) };
            if ex < 0 || ex as usize >= e {
                return None;
            }
            c.push(ex as usize);
        }
        c
    } else {
        let sel: Vec<f64> = match p.selection_bias {
            Some((ba, be)) => s
                .iter()
                .enumerate()
                // SAFETY: the bias holds e values.
                .map(|(i, v)| v + unsafe { load1(be, (ba + i * be.size()) as *const u8) } as f64)
                .collect(),
            None => s.clone(),
        };
        let gsize = e / p.n_group.max(1);
        let groups: Vec<usize> = if p.n_group > 1 {
            let gs: Vec<f64> = (0..p.n_group)
                .map(|g| {
                    let part = &sel[g * gsize..(g + 1) * gsize];
                    top_k(part, 2, false, |_| true)
                        .iter()
                        .map(|&i| part[i])
                        .sum()
                })
                .collect();
            top_k(&gs, p.topk_group, false, |_| true)
        } else {
            vec![0]
        };
        top_k(&sel, p.k, p.ties_high, |i| {
            p.n_group <= 1 || groups.contains(&(i / gsize))
        })
    };
    let mut w: Vec<f64> = chosen.iter().map(|&c| s[c]).collect();
    match p.normalize {
        Normalize::None => {}
        Normalize::Sum => {
            let sum: f64 = w.iter().sum();
            if sum != 0.0 {
                w.iter_mut().for_each(|v| *v /= sum);
            }
        }
        Normalize::SumOrUniform => {
            let sum: f64 = w.iter().sum();
            let k = w.len() as f64;
            if sum > 1e-8 {
                w.iter_mut().for_each(|v| *v /= sum);
            } else {
                w.iter_mut().for_each(|v| *v = 1.0 / k);
            }
        }
    }
    Some(
        chosen
            .into_iter()
            .zip(w)
            .map(|(c, wv)| (c, (wv * p.scaling as f64) as f32))
            .collect(),
    )
}

/// A gated MLP over `m` rows of `xs` (row-major `m x hidden`): returns `m x hidden`.
///
/// # Safety
/// The bias pointers (if any) hold their rows for expert `e`.
#[allow(clippy::too_many_arguments)]
unsafe fn mlp(
    kernel: Kernel,
    xs: &[f32],
    m: usize,
    hidden: usize,
    inter: usize,
    act: Act,
    up: Up,
    w1: PackedBRef,
    b1: Option<(usize, Elem)>,
    w3: Option<PackedBRef>,
    b3: Option<(usize, Elem)>,
    w2: PackedBRef,
    b2: Option<(usize, Elem)>,
) -> Vec<f32> {
    let r1 = w1.n;
    let mut g = vec![0f32; m * r1];
    let _ = gemm(kernel, m, xs, hidden, w1, &mut g, r1, false);
    let add_bias = |buf: &mut [f32], n: usize, bias: Option<(usize, Elem)>| {
        if let Some((addr, e)) = bias {
            let mut bv = vec![0f32; n];
            // SAFETY: the bias row holds n values (caller).
            unsafe { load(e, addr as *const u8, &mut bv) };
            for row in buf.chunks_mut(n) {
                row.iter_mut().zip(&bv).for_each(|(x, b)| *x += b);
            }
        }
    };
    add_bias(&mut g, r1, b1);
    let u = match (up, w3) {
        (Up::W3, Some(w3)) => {
            let mut u = vec![0f32; m * inter];
            let _ = gemm(kernel, m, xs, hidden, w3, &mut u, inter, false);
            add_bias(&mut u, inter, b3);
            Some(u)
        }
        _ => None,
    };
    let mut h = vec![0f32; m * inter];
    for r in 0..m {
        let gr = &g[r * r1..(r + 1) * r1];
        for i in 0..inter {
            let (gv, uv) = match up {
                Up::Interleaved => (gr[2 * i], Some(gr[2 * i + 1])),
                Up::Halves => (gr[i], Some(gr[inter + i])),
                Up::W3 => (gr[i], u.as_ref().map(|u| u[r * inter + i])),
                Up::None => (gr[i], None),
            };
            h[r * inter + i] = activate(act, gv, uv);
        }
    }
    let mut y = vec![0f32; m * hidden];
    let _ = gemm(kernel, m, &h, inter, w2, &mut y, hidden, false);
    add_bias(&mut y, hidden, b2);
    y
}

/// Runs one MoE call. Returns false on bad routing data (a token id or hash-table entry
/// out of range); the output is then NaN.
///
/// # Safety
/// Every address describes memory valid for the shapes in `p` (weights in their layout);
/// the output overlaps no input.
pub unsafe fn moe(kernel: Kernel, p: &Moe) -> bool {
    let (n, hd, e, inter) = (p.tokens, p.hidden, p.experts, p.inter);
    let r1 = rows1(p);
    let (xa, xe) = p.x;
    let mut x = vec![0f32; n * hd];
    // SAFETY: x holds n x hd values.
    unsafe { load(xe, xa as *const u8, &mut x) };
    // Routing.
    let routes: Vec<Option<Vec<(usize, f32)>>> = (0..n)
        .into_par_iter()
        // SAFETY: routing inputs hold n tokens.
        .map(|t| unsafe { route(p, t) })
        .collect();
    let (oa, oe) = p.out;
    if routes.iter().any(|r| r.is_none()) {
        let nan = vec![f32::NAN; n * hd];
        // SAFETY: out holds n x hd values.
        unsafe { store(oe, oa as *mut u8, &nan) };
        return false;
    }
    let routes: Vec<Vec<(usize, f32)>> = routes.into_iter().flatten().collect();
    let slots = routes.iter().map(|r| r.len()).max().unwrap_or(0);
    // (token, slot) pairs per expert, in token order.
    let mut by_expert: Vec<Vec<(usize, usize)>> = vec![Vec::new(); e];
    for (t, r) in routes.iter().enumerate() {
        for (j, &(ex, w)) in r.iter().enumerate() {
            if p.skip_nonpositive && w <= 0.0 {
                continue;
            }
            by_expert[ex].push((t, j));
        }
    }
    // SAFETY: the weights hold e experts in their layouts (caller).
    let (w1, w2, w3) = unsafe {
        (
            expert_panels(p.w1, e, r1, hd),
            expert_panels(p.w2, e, hd, inter),
            p.w3.map(|w| expert_panels(w, e, inter, hd)),
        )
    };
    let bias_row = |b: Option<(usize, Elem)>, ex: usize, len: usize| {
        b.map(|(addr, el)| (addr + ex * len * el.size(), el))
    };
    // Each expert's outputs for its (token, slot) pairs.
    let outs: Vec<Vec<f32>> = (0..e)
        .into_par_iter()
        .map(|ex| {
            let pairs = &by_expert[ex];
            if pairs.is_empty() {
                return Vec::new();
            }
            let m = pairs.len();
            let mut xs = vec![0f32; m * hd];
            for (r, &(t, _)) in pairs.iter().enumerate() {
                xs[r * hd..(r + 1) * hd].copy_from_slice(&x[t * hd..(t + 1) * hd]);
            }
            // SAFETY: the bias rows of expert ex exist (caller).
            unsafe {
                mlp(
                    kernel,
                    &xs,
                    m,
                    hd,
                    inter,
                    p.act,
                    p.up,
                    w1.get(ex, hd, r1),
                    bias_row(p.b1, ex, r1),
                    w3.as_ref().map(|w| w.get(ex, hd, inter)),
                    bias_row(p.b3, ex, inter),
                    w2.get(ex, inter, hd),
                    bias_row(p.b2, ex, hd),
                )
            }
        })
        .collect();
    // Slot buffer: out of (token, slot), then the weighted sum in slot order.
    let mut y_slots = vec![0f32; n * slots * hd];
    let mut present = vec![false; n * slots];
    for ex in 0..e {
        for (r, &(t, j)) in by_expert[ex].iter().enumerate() {
            let dst = (t * slots + j) * hd;
            y_slots[dst..dst + hd].copy_from_slice(&outs[ex][r * hd..(r + 1) * hd]);
            present[t * slots + j] = true;
        }
    }
    let mut y = vec![0f32; n * hd];
    y.par_chunks_mut(hd.max(1)).enumerate().for_each(|(t, yr)| {
        for (j, &(_, w)) in routes[t].iter().enumerate() {
            if !present[t * slots + j] {
                continue;
            }
            let src = &y_slots[(t * slots + j) * hd..(t * slots + j + 1) * hd];
            yr.iter_mut().zip(src).for_each(|(a, b)| *a += w * b);
        }
    });
    if let Some(sh) = p.shared {
        let is = sh.inter;
        // SAFETY: shared weights in their layouts (caller).
        let (s1, s2, s3) = unsafe {
            (
                expert_panels(sh.w1, 1, is, hd),
                expert_panels(sh.w2, 1, hd, is),
                sh.w3.map(|w| expert_panels(w, 1, is, hd)),
            )
        };
        let up = if s3.is_some() { Up::W3 } else { Up::None };
        // Row blocks of tokens in parallel; each block is an independent GEMM chain.
        const BLOCK: usize = 64;
        let blocks: Vec<Vec<f32>> = (0..n.div_ceil(BLOCK))
            .into_par_iter()
            .map(|bk| {
                let (t0, t1) = (bk * BLOCK, ((bk + 1) * BLOCK).min(n));
                // SAFETY: no biases.
                unsafe {
                    mlp(
                        kernel,
                        &x[t0 * hd..t1 * hd],
                        t1 - t0,
                        hd,
                        is,
                        p.act,
                        up,
                        s1.get(0, hd, is),
                        None,
                        s3.as_ref().map(|w| w.get(0, hd, is)),
                        None,
                        s2.get(0, is, hd),
                        None,
                    )
                }
            })
            .collect();
        let gate = sh.gate.map(|(addr, el)| {
            let mut g = vec![0f32; hd];
            // SAFETY: the gate holds hd values.
            unsafe { load(el, addr as *const u8, &mut g) };
            g
        });
        for (bk, blk) in blocks.iter().enumerate() {
            for (r, sr) in blk.chunks(hd.max(1)).enumerate() {
                let t = bk * BLOCK + r;
                let xr = &x[t * hd..(t + 1) * hd];
                let gs = gate.as_ref().map_or(1.0, |g| {
                    let z: f64 = g.iter().zip(xr).map(|(a, b)| *a as f64 * *b as f64).sum();
                    sigmoid(z) as f32
                });
                y[t * hd..(t + 1) * hd]
                    .iter_mut()
                    .zip(sr)
                    .for_each(|(a, b)| *a += gs * b);
            }
        }
    }
    // SAFETY: out holds n x hd values.
    unsafe { store(oe, oa as *mut u8, &y) };
    true
}

/// Packs an `(E, out, in)` weight given as f32 values into the prepacked layout [`moe`]
/// reads (`E` consecutive `Wᵀ` panels), for the lowering to store.
pub fn prepack(w: &[f32], experts: usize, out: usize, inp: usize) -> Vec<f32> {
    let len = PackedB::packed_len(inp, out);
    let mut v = Vec::with_capacity(experts * len);
    for e in 0..experts {
        let p = pack_t(&w[e * out * inp..(e + 1) * out * inp], out, inp);
        v.extend_from_slice(&p.view().data[..len]);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_is_accurate() {
        for (x, want) in [
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (3.0, 0.999_977_909_503_001_4),
            (-2.0, -0.995_322_265_018_952_7),
        ] {
            assert!((erf(x) - want).abs() < 2e-7, "erf({x})");
        }
    }

    #[test]
    fn top_k_ties() {
        let v = [1.0, 3.0, 3.0, 2.0];
        assert_eq!(top_k(&v, 2, false, |_| true), vec![1, 2]);
        assert_eq!(top_k(&v, 2, true, |_| true), vec![2, 1]);
        assert_eq!(top_k(&v, 2, false, |i| i != 1), vec![2, 3]);
    }
}
