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
use crate::cpu::gemm::{self, gemm, Kernel, PackedB, PackedBRef, NR};

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

/// The chosen experts and their weights for one token, or what is wrong with its data.
///
/// # Safety
/// The routing inputs are valid for `p.tokens` tokens.
unsafe fn route(p: &Moe, t: usize) -> Result<Vec<(usize, f32)>, String> {
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
            return Err(format!(
                "MoE: token id {id} is outside the hash table's {rows} rows"
            ));
        }
        let mut c = Vec::with_capacity(cols);
        for j in 0..cols {
            let at = ta + (id as usize * cols + j) * te.size();
            // SAFETY: table row id holds cols entries.
            let ex = unsafe { load_int(te, at as *const u8) };
            if ex < 0 || ex as usize >= e {
                return Err(format!("MoE: the hash table names expert {ex} of {e}"));
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
    Ok(chosen
        .into_iter()
        .zip(w)
        .map(|(c, wv)| (c, (wv * p.scaling as f64) as f32))
        .collect())
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

/// Runs one MoE call. Bad routing data (a token id or hash-table entry out of range) is an
/// error; the output is then NaN.
///
/// # Safety
/// Every address describes memory valid for the shapes in `p` (weights in their layout);
/// the output overlaps no input.
pub unsafe fn moe(kernel: Kernel, p: &Moe) -> Result<(), String> {
    // SAFETY: the caller's contract.
    unsafe { moe_with(kernel, p, p.tokens <= FEW_TOKENS) }
}

/// [`moe`], sharing the experts' columns out (`few`) or the experts.
///
/// # Safety
/// As [`moe`].
unsafe fn moe_with(kernel: Kernel, p: &Moe, few: bool) -> Result<(), String> {
    let (n, hd, e, inter) = (p.tokens, p.hidden, p.experts, p.inter);
    let r1 = rows1(p);
    let (xa, xe) = p.x;
    let mut x = vec![0f32; n * hd];
    // SAFETY: x holds n x hd values.
    unsafe { load(xe, xa as *const u8, &mut x) };
    // Routing.
    let routes: Vec<Result<Vec<(usize, f32)>, String>> = (0..n)
        .into_par_iter()
        // SAFETY: routing inputs hold n tokens.
        .map(|t| unsafe { route(p, t) })
        .collect();
    let (oa, oe) = p.out;
    let routes = match routes.into_iter().collect::<Result<Vec<_>, String>>() {
        Ok(r) => r,
        Err(msg) => {
            let nan = vec![f32::NAN; n * hd];
            // SAFETY: out holds n x hd values.
            unsafe { store(oe, oa as *mut u8, &nan) };
            return Err(msg);
        }
    };
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
    if few {
        let mut units = Vec::new();
        let mut unit_of = vec![usize::MAX; e];
        for (ex, pairs) in by_expert.iter().enumerate() {
            if pairs.is_empty() {
                continue;
            }
            let mut xs = vec![0f32; pairs.len() * hd];
            for (r, &(t, _)) in pairs.iter().enumerate() {
                xs[r * hd..(r + 1) * hd].copy_from_slice(&x[t * hd..(t + 1) * hd]);
            }
            unit_of[ex] = units.len();
            units.push(Unit {
                xs: std::borrow::Cow::Owned(xs),
                m: pairs.len(),
                inter,
                up: p.up,
                w1: w1.get(ex, hd, r1),
                b1: bias_row(p.b1, ex, r1),
                w3: w3.as_ref().map(|w| w.get(ex, hd, inter)),
                b3: bias_row(p.b3, ex, inter),
                w2: w2.get(ex, inter, hd),
                b2: bias_row(p.b2, ex, hd),
            });
        }
        // Each token's (unit, row there, weight) in slot order, the slots [`moe`] sums.
        let mut row_of = vec![vec![usize::MAX; slots]; n];
        for pairs in &by_expert {
            for (r, &(t, j)) in pairs.iter().enumerate() {
                row_of[t][j] = r;
            }
        }
        let combine: Vec<Vec<(usize, usize, f32)>> = routes
            .iter()
            .enumerate()
            .map(|(t, r)| {
                r.iter()
                    .enumerate()
                    .filter(|&(j, _)| row_of[t][j] != usize::MAX)
                    .map(|(j, &(ex, w))| (unit_of[ex], row_of[t][j], w))
                    .collect()
            })
            .collect();
        let shared = match p.shared {
            Some(sh) => {
                // SAFETY: shared weights in their layouts (caller).
                let (s1, s2, s3) = unsafe {
                    (
                        expert_panels(sh.w1, 1, sh.inter, hd),
                        expert_panels(sh.w2, 1, hd, sh.inter),
                        sh.w3.map(|w| expert_panels(w, 1, sh.inter, hd)),
                    )
                };
                let gates: Vec<f32> = match sh.gate {
                    Some((addr, el)) => {
                        let mut g = vec![0f32; hd];
                        // SAFETY: the gate holds hd values.
                        unsafe { load(el, addr as *const u8, &mut g) };
                        x.chunks(hd.max(1))
                            .map(|xr| {
                                let z: f64 =
                                    g.iter().zip(xr).map(|(a, b)| *a as f64 * *b as f64).sum();
                                sigmoid(z) as f32
                            })
                            .collect()
                    }
                    None => vec![1.0; n],
                };
                Some((s1, s2, s3, sh.inter, gates))
            }
            None => None,
        };
        if let Some((s1, s2, s3, is, _)) = &shared {
            units.push(Unit {
                xs: std::borrow::Cow::Borrowed(&x),
                m: n,
                inter: *is,
                up: if s3.is_some() { Up::W3 } else { Up::None },
                w1: s1.get(0, hd, *is),
                b1: None,
                w3: s3.as_ref().map(|w| w.get(0, hd, *is)),
                b3: None,
                w2: s2.get(0, *is, hd),
                b2: None,
            });
        }
        let shared_unit = shared
            .as_ref()
            .map(|(.., g)| (units.len() - 1, g.as_slice()));
        // SAFETY: the bias rows of every unit exist (caller).
        let y = unsafe { few_tokens(kernel, p.act, hd, n, &units, &combine, shared_unit) };
        // SAFETY: out holds n x hd values.
        unsafe { store(oe, oa as *mut u8, &y) };
        return Ok(());
    }
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
    Ok(())
}

/// Up to this many tokens, [`moe`] shares every chosen expert's columns out among the threads
/// (two hand-offs per call, each thread streaming its part of every expert's weights)
/// instead of giving whole experts to threads: a decode step's token picks a few experts,
/// too few to keep two threads busy, and they may all fall to one.
const FEW_TOKENS: usize = 8;

/// A gated MLP over some rows: a routed expert's tokens, or every token for the shared
/// experts.
struct Unit<'a> {
    /// `m x hidden`, row-major.
    xs: std::borrow::Cow<'a, [f32]>,
    m: usize,
    inter: usize,
    up: Up,
    w1: PackedBRef<'a>,
    b1: Option<(usize, Elem)>,
    w3: Option<PackedBRef<'a>>,
    b3: Option<(usize, Elem)>,
    w2: PackedBRef<'a>,
    b2: Option<(usize, Elem)>,
}

/// Columns `lo..hi` of a unit's activations: `(unit, lo, hi, m x (hi - lo) values)`.
type HBlock = (usize, usize, usize, Vec<f32>);

/// `xs · W[:, lo..hi]` (`m` rows of `k`), `m x (hi - lo)` row-major, from the panels
/// covering those columns: every element as the whole product computes it.
fn columns(kernel: Kernel, xs: &[f32], m: usize, w: PackedBRef, lo: usize, hi: usize) -> Vec<f32> {
    let k = w.k;
    let (p0, p1) = (lo / NR, hi.div_ceil(NR));
    let width = w.n.min(p1 * NR) - p0 * NR;
    let start = p0 * k * NR;
    let sub = PackedBRef {
        k,
        n: width,
        data: &w.data[start..start + PackedB::packed_len(k, width)],
    };
    let mut c = vec![0f32; m * width];
    let _ = gemm(kernel, m, xs, k, sub, &mut c, width, false);
    if (lo, hi) == (p0 * NR, p0 * NR + width) {
        return c;
    }
    let off = lo - p0 * NR;
    c.chunks(width)
        .flat_map(|row| row[off..off + hi - lo].iter().copied())
        .collect()
}

/// Adds columns `lo..hi` of a bias row (if any) to every row of `buf` (`hi - lo` wide).
///
/// # Safety
/// The bias row holds at least `hi` values.
unsafe fn add_bias_columns(buf: &mut [f32], bias: Option<(usize, Elem)>, lo: usize, hi: usize) {
    if let Some((addr, e)) = bias {
        let mut bv = vec![0f32; hi - lo];
        // SAFETY: values lo..hi of the bias row (caller).
        unsafe { load(e, (addr + lo * e.size()) as *const u8, &mut bv) };
        for row in buf.chunks_mut(hi - lo) {
            row.iter_mut().zip(&bv).for_each(|(x, b)| *x += b);
        }
    }
}

/// Columns `lo..hi` of a unit's activations `act(xs·W1 + b1, xs·W3 + b3)`, `m x (hi - lo)`,
/// with the arithmetic of [`mlp`].
///
/// # Safety
/// The unit's bias rows are readable.
unsafe fn activations(kernel: Kernel, act: Act, u: &Unit, lo: usize, hi: usize) -> Vec<f32> {
    let (m, w) = (u.m, hi - lo);
    let part = |wt: PackedBRef, bias, a: usize, b: usize| {
        let mut c = columns(kernel, &u.xs, m, wt, a, b);
        // SAFETY: the bias row spans the weight's columns (caller).
        unsafe { add_bias_columns(&mut c, bias, a, b) };
        c
    };
    let mut h = vec![0f32; m * w];
    match (u.up, u.w3) {
        (Up::Interleaved, _) => {
            let g = part(u.w1, u.b1, 2 * lo, 2 * hi);
            for (hr, gr) in h.chunks_mut(w).zip(g.chunks(2 * w)) {
                for (i, hv) in hr.iter_mut().enumerate() {
                    *hv = activate(act, gr[2 * i], Some(gr[2 * i + 1]));
                }
            }
        }
        (Up::Halves, _) => {
            let g = part(u.w1, u.b1, lo, hi);
            let up = part(u.w1, u.b1, u.inter + lo, u.inter + hi);
            for (i, hv) in h.iter_mut().enumerate() {
                *hv = activate(act, g[i], Some(up[i]));
            }
        }
        (Up::W3, Some(w3)) => {
            let g = part(u.w1, u.b1, lo, hi);
            let up = part(w3, u.b3, lo, hi);
            for (i, hv) in h.iter_mut().enumerate() {
                *hv = activate(act, g[i], Some(up[i]));
            }
        }
        _ => {
            let g = part(u.w1, u.b1, lo, hi);
            for (hv, &gv) in h.iter_mut().zip(&g) {
                *hv = activate(act, gv, None);
            }
        }
    }
    h
}

/// The experts' part of [`moe`] for a few tokens: `units` (routed experts, then the shared
/// experts if `shared` names that unit with each token's gate), `combine[t]` the (unit, row,
/// weight) of token `t`'s slots in slot order. Returns `tokens x hidden`, summed as the
/// many-token path sums (slots in order, then the shared experts), bit for bit.
///
/// # Safety
/// Every unit's bias rows are readable.
unsafe fn few_tokens(
    kernel: Kernel,
    act: Act,
    hidden: usize,
    tokens: usize,
    units: &[Unit],
    combine: &[Vec<(usize, usize, f32)>],
    shared: Option<(usize, &[f32])>,
) -> Vec<f32> {
    let threads = rayon::current_num_threads().max(1);
    // Phase 1: the activations, in chunks of NR of their columns, the chunks of all units
    // dealt out to the threads in contiguous runs.
    let chunks: Vec<(usize, usize)> = units
        .iter()
        .enumerate()
        .flat_map(|(ui, u)| (0..u.inter.div_ceil(NR)).map(move |c| (ui, c)))
        .collect();
    let pieces: Vec<Vec<HBlock>> = (0..threads)
        .into_par_iter()
        .map(|t| {
            let run = &chunks[chunks.len() * t / threads..chunks.len() * (t + 1) / threads];
            let mut out = Vec::new();
            let mut i = 0;
            while i < run.len() {
                let ui = run[i].0;
                let mut j = i;
                while j < run.len() && run[j].0 == ui {
                    j += 1;
                }
                let u = &units[ui];
                let (lo, hi) = (run[i].1 * NR, (run[j - 1].1 * NR + NR).min(u.inter));
                // SAFETY: the unit's bias rows (caller).
                let h = gemm::serial(|| unsafe { activations(kernel, act, u, lo, hi) });
                out.push((ui, lo, hi, h));
                i = j;
            }
            out
        })
        .collect();
    let mut hs: Vec<Vec<f32>> = units.iter().map(|u| vec![0f32; u.m * u.inter]).collect();
    for (ui, lo, hi, h) in pieces.into_iter().flatten() {
        let inter = units[ui].inter;
        for (r, hr) in h.chunks(hi - lo).enumerate() {
            hs[ui][r * inter + lo..r * inter + hi].copy_from_slice(hr);
        }
    }
    // Phase 2: the output columns dealt out to the threads; each thread projects every
    // unit onto its columns and combines them there.
    let panels = hidden.div_ceil(NR);
    let blocks: Vec<(usize, usize, Vec<f32>)> = (0..threads)
        .into_par_iter()
        .map(|t| {
            let (lo, hi) = (
                (panels * t / threads * NR).min(hidden),
                (panels * (t + 1) / threads * NR).min(hidden),
            );
            let w = hi - lo;
            if w == 0 {
                return (lo, hi, Vec::new());
            }
            let ys: Vec<Vec<f32>> = units
                .iter()
                .zip(&hs)
                .map(|(u, h)| {
                    let mut y = gemm::serial(|| columns(kernel, h, u.m, u.w2, lo, hi));
                    // SAFETY: the unit's bias rows (caller).
                    unsafe { add_bias_columns(&mut y, u.b2, lo, hi) };
                    y
                })
                .collect();
            let mut y = vec![0f32; tokens * w];
            for (t, yr) in y.chunks_mut(w).enumerate() {
                for &(ui, r, wt) in &combine[t] {
                    let src = &ys[ui][r * w..(r + 1) * w];
                    yr.iter_mut().zip(src).for_each(|(a, b)| *a += wt * b);
                }
                if let Some((ui, gates)) = shared {
                    let src = &ys[ui][t * w..(t + 1) * w];
                    yr.iter_mut().zip(src).for_each(|(a, b)| *a += gates[t] * b);
                }
            }
            (lo, hi, y)
        })
        .collect();
    let mut y = vec![0f32; tokens * hidden];
    for (lo, hi, blk) in blocks {
        if hi > lo {
            for (t, yr) in blk.chunks(hi - lo).enumerate() {
                y[t * hidden + lo..t * hidden + hi].copy_from_slice(yr);
            }
        }
    }
    y
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

    /// Deterministic values in [-1, 1).
    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                let h = (i as u32 ^ seed.wrapping_mul(0x9e37_79b9)).wrapping_mul(2_654_435_761);
                (h >> 8) as f32 / (1u32 << 23) as f32 - 1.0
            })
            .collect()
    }

    #[test]
    fn few_tokens_match_the_many_token_path_bit_for_bit() {
        // Odd sizes: inter and hidden not multiples of the panel width, so column ranges
        // start inside panels (the second half of a `Halves` w1 in particular).
        let (hd, e, inter, k, is) = (40, 6, 20, 3, 36);
        for (up, act, gated, tokens) in [
            (
                Up::Interleaved,
                Act::Swiglu {
                    alpha: 1.702,
                    beta: 1.0,
                    limit: Some(0.9),
                },
                false,
                1,
            ),
            (Up::Halves, Act::Silu, true, 5),
            (Up::W3, Act::Gelu, true, 3),
            (Up::None, Act::Relu, false, 8),
        ] {
            let r1 = if matches!(up, Up::Interleaved | Up::Halves) {
                2 * inter
            } else {
                inter
            };
            let w1 = prepack(&values(e * r1 * hd, 1), e, r1, hd);
            let w2 = prepack(&values(e * hd * inter, 2), e, hd, inter);
            let w3 = prepack(&values(e * inter * hd, 3), e, inter, hd);
            let (b1, b2, b3) = (values(e * r1, 4), values(e * hd, 5), values(e * inter, 6));
            let s1 = prepack(&values(is * hd, 7), 1, is, hd);
            let s2 = prepack(&values(hd * is, 8), 1, hd, is);
            let s3 = prepack(&values(is * hd, 9), 1, is, hd);
            let gate = values(hd, 10);
            let x = values(tokens * hd, 11);
            let logits = values(tokens * e, 12);
            let f32p = |v: &Vec<f32>| (v.as_ptr() as usize, Elem::F32);
            let packed = |v: &Vec<f32>| Weight {
                addr: v.as_ptr() as usize,
                packed: true,
            };
            let run = |few: bool, threads: usize| {
                let mut out = vec![0f32; tokens * hd];
                let p = Moe {
                    tokens,
                    hidden: hd,
                    experts: e,
                    inter,
                    k,
                    x: f32p(&x),
                    logits: f32p(&logits),
                    out: (out.as_mut_ptr() as usize, Elem::F32),
                    score: Score::Softmax,
                    selection_bias: None,
                    n_group: 1,
                    topk_group: 1,
                    hash: None,
                    normalize: Normalize::Sum,
                    scaling: 1.5,
                    ties_high: false,
                    skip_nonpositive: false,
                    act,
                    up,
                    w1: packed(&w1),
                    b1: Some(f32p(&b1)),
                    w2: packed(&w2),
                    b2: Some(f32p(&b2)),
                    w3: (up == Up::W3).then(|| packed(&w3)),
                    b3: (up == Up::W3).then(|| f32p(&b3)),
                    shared: Some(Shared {
                        inter: is,
                        w1: packed(&s1),
                        w2: packed(&s2),
                        w3: gated.then(|| packed(&s3)),
                        gate: gated.then(|| f32p(&gate)),
                    }),
                };
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                // SAFETY: every address is one of the vectors above, at its size.
                pool.install(|| unsafe { moe_with(Kernel::detect(), &p, few) })
                    .unwrap();
                out
            };
            let want = run(false, 1);
            assert!(want.iter().any(|&v| v != 0.0) && want.iter().all(|v| v.is_finite()));
            for threads in [1, 2, 3] {
                let got = run(true, threads);
                let same = got
                    .iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(
                    same,
                    "{up:?} {tokens} tokens, {threads} threads: {got:?} vs {want:?}"
                );
            }
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

#[cfg(test)]
mod bench {
    use super::*;

    /// `cargo test --release -p kiln-runtime moe_timing -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn moe_timing() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let (hd, e, i, k) = (1024, 16, 1024, 4);
        let w1 = prepack(&vec![0.01f32; e * 2 * i * hd], e, 2 * i, hd);
        let w2 = prepack(&vec![0.01f32; e * hd * i], e, hd, i);
        for n in [1usize, 128] {
            let x = vec![0.1f32; n * hd];
            let logits: Vec<f32> = (0..n * e).map(|v| (v % 7) as f32 * 0.1).collect();
            let mut out = vec![0f32; n * hd];
            let p = Moe {
                tokens: n,
                hidden: hd,
                experts: e,
                inter: i,
                k,
                x: (x.as_ptr() as usize, Elem::F32),
                logits: (logits.as_ptr() as usize, Elem::F32),
                out: (out.as_mut_ptr() as usize, Elem::F32),
                score: Score::Softmax,
                selection_bias: None,
                n_group: 1,
                topk_group: 1,
                hash: None,
                normalize: Normalize::Sum,
                scaling: 1.0,
                ties_high: false,
                skip_nonpositive: false,
                act: Act::Swiglu {
                    alpha: 1.702,
                    beta: 1.0,
                    limit: Some(7.0),
                },
                up: Up::Interleaved,
                w1: Weight {
                    addr: w1.as_ptr() as usize,
                    packed: true,
                },
                b1: None,
                w2: Weight {
                    addr: w2.as_ptr() as usize,
                    packed: true,
                },
                b2: None,
                w3: None,
                b3: None,
                shared: None,
            };
            let runs = 5;
            let start = std::time::Instant::now();
            for _ in 0..runs {
                // SAFETY: the pointers describe the vectors above.
                pool.install(|| unsafe { moe(Kernel::detect(), &p) })
                    .unwrap();
            }
            let ms = start.elapsed().as_secs_f64() * 1e3 / runs as f64;
            let flops = 2.0 * (n * k * 3 * i * hd) as f64;
            println!("moe n={n}: {ms:.2} ms, {:.1} GFLOP/s", flops / ms / 1e6);
        }
    }
    /// A decode step's MoE (deepseek_v3_bench's sizes: 32 experts, 4 chosen, one shared),
    /// whole experts per thread against columns shared out, interleaved; best and median:
    /// `cargo test --release -p kiln-runtime moe_decode_timing -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn moe_decode_timing() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let (hd, e, i, k) = (512, 32, 256, 4);
        let w1 = prepack(&vec![0.01f32; e * 2 * i * hd], e, 2 * i, hd);
        let w2 = prepack(&vec![0.01f32; e * hd * i], e, hd, i);
        let s1 = prepack(&vec![0.01f32; i * hd], 1, i, hd);
        let s2 = prepack(&vec![0.01f32; hd * i], 1, hd, i);
        let s3 = prepack(&vec![0.01f32; i * hd], 1, i, hd);
        let x = vec![0.1f32; hd];
        let logits: Vec<f32> = (0..e).map(|v| ((v * 7) % 11) as f32 * 0.1).collect();
        let mut out = vec![0f32; hd];
        let packed = |v: &Vec<f32>| Weight {
            addr: v.as_ptr() as usize,
            packed: true,
        };
        let p = Moe {
            tokens: 1,
            hidden: hd,
            experts: e,
            inter: i,
            k,
            x: (x.as_ptr() as usize, Elem::F32),
            logits: (logits.as_ptr() as usize, Elem::F32),
            out: (out.as_mut_ptr() as usize, Elem::F32),
            score: Score::Sigmoid,
            selection_bias: None,
            n_group: 4,
            topk_group: 2,
            hash: None,
            normalize: Normalize::Sum,
            scaling: 2.5,
            ties_high: false,
            skip_nonpositive: false,
            act: Act::Silu,
            up: Up::Halves,
            w1: packed(&w1),
            b1: None,
            w2: packed(&w2),
            b2: None,
            w3: None,
            b3: None,
            shared: Some(Shared {
                inter: i,
                w1: packed(&s1),
                w2: packed(&s2),
                w3: Some(packed(&s3)),
                gate: None,
            }),
        };
        let mut times = [Vec::new(), Vec::new()];
        for r in 0..600 {
            let few = r % 2 == 1;
            let start = std::time::Instant::now();
            // SAFETY: the pointers describe the vectors above.
            pool.install(|| unsafe { moe_with(Kernel::detect(), &p, few) })
                .unwrap();
            times[few as usize].push(start.elapsed().as_secs_f64() * 1e6);
        }
        for (name, t) in ["whole experts", "columns"].iter().zip(&mut times) {
            t.sort_by(f64::total_cmp);
            println!(
                "{name}: best {:.1} us, median {:.1} us",
                t[0],
                t[t.len() / 2]
            );
        }
    }
}
