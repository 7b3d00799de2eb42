//! Recurrent layers: RNN, GRU, LSTM (forward, reverse, bidirectional; layout 0 and 1;
//! sequence_lens; initial states; activations with alpha/beta; clip; GRU's
//! linear_before_reset; LSTM's peepholes and input_forget).
//!
//! Inputs (newest opset): X, W, R, B, sequence_lens, initial_h (LSTM: initial_c, P).
//! Layout 0: X `[seq, batch, input]`, Y `[seq, dirs, batch, hidden]`, states
//! `[dirs, batch, hidden]`; layout 1: X `[batch, seq, input]`, Y `[batch, seq, dirs, hidden]`,
//! states `[batch, dirs, hidden]`. Gate order in W/R/B: RNN `i`; GRU `z, r, h`; LSTM
//! `i, o, f, c`; peepholes `i, o, f`.
//!
//! With sequence_lens, batch entry `b` runs `len[b]` steps (reverse: from step `len[b]-1`
//! down); Y is zero past `len[b]` and the final states are those after its last step.

use crate::attr::{Attrs, AttrsExt};
use crate::bail;
use crate::dim::Dim;
use crate::ops::{EvalCtx, InferCtx, OpResult, OpSpec};
use crate::tensor::Tensor;
use crate::types::{Shape, ValueType};

pub const SPECS: &[OpSpec] = &[
    OpSpec::new("RNN", infer_rnn, eval_rnn),
    OpSpec::new("GRU", infer_gru, eval_gru),
    OpSpec::new("LSTM", infer_lstm, eval_lstm),
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Cell {
    Rnn,
    Gru,
    Lstm,
}

impl Cell {
    fn name(self) -> &'static str {
        match self {
            Cell::Rnn => "RNN",
            Cell::Gru => "GRU",
            Cell::Lstm => "LSTM",
        }
    }

    fn gates(self) -> usize {
        match self {
            Cell::Rnn => 1,
            Cell::Gru => 3,
            Cell::Lstm => 4,
        }
    }

    /// Default activations (f, g, h) of one direction.
    fn default_activations(self) -> &'static [&'static str] {
        match self {
            Cell::Rnn => &["Tanh"],
            Cell::Gru => &["Sigmoid", "Tanh"],
            Cell::Lstm => &["Sigmoid", "Tanh", "Tanh"],
        }
    }

    fn outputs(self) -> usize {
        if self == Cell::Lstm {
            3
        } else {
            2
        }
    }
}

fn num_directions(attrs: &Attrs) -> OpResult<usize> {
    Ok(match attrs.str_or("direction", "forward")? {
        "forward" | "reverse" => 1,
        "bidirectional" => 2,
        d => bail!("direction \"{d}\" is not forward, reverse or bidirectional"),
    })
}

fn layout(attrs: &Attrs) -> OpResult<bool> {
    match attrs.int_or("layout", 0)? {
        0 => Ok(false),
        1 => Ok(true),
        l => bail!("layout must be 0 or 1, got {l}"),
    }
}

// ---- infer ----

fn infer(ctx: &InferCtx, cell: Cell) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    if x.rank() != 3 {
        bail!("{} input X must be rank 3, got {x}", cell.name());
    }
    let r = ctx.input(2)?;
    if r.rank() != 3 {
        bail!("{} input R must be rank 3, got {r}", cell.name());
    }
    if ctx.num_outputs > cell.outputs() {
        bail!("{} has at most {} outputs", cell.name(), cell.outputs());
    }
    let dirs = Dim::from(num_directions(ctx.attrs)?);
    let hidden = match ctx.attrs.int("hidden_size")? {
        Some(h) => Dim::from(h),
        None => r.shape[2].clone(),
    };
    let batch_major = layout(ctx.attrs)?;
    let (seq, batch) = if batch_major {
        (x.shape[1].clone(), x.shape[0].clone())
    } else {
        (x.shape[0].clone(), x.shape[1].clone())
    };
    let y: Shape = if batch_major {
        vec![batch.clone(), seq, dirs.clone(), hidden.clone()]
    } else {
        vec![seq, dirs.clone(), batch.clone(), hidden.clone()]
    };
    let state: Shape = if batch_major {
        vec![batch, dirs, hidden]
    } else {
        vec![dirs, batch, hidden]
    };
    let mut out = vec![ValueType::new(x.dtype, y)];
    for _ in 1..ctx.num_outputs {
        out.push(ValueType::new(x.dtype, state.clone()));
    }
    Ok(out)
}

fn infer_rnn(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    infer(ctx, Cell::Rnn)
}

fn infer_gru(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    infer(ctx, Cell::Gru)
}

fn infer_lstm(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    infer(ctx, Cell::Lstm)
}

// ---- activations ----

#[derive(Clone, Copy, Debug, PartialEq)]
enum ActKind {
    Relu,
    Tanh,
    Sigmoid,
    Affine,
    LeakyRelu,
    ThresholdedRelu,
    ScaledTanh,
    HardSigmoid,
    Elu,
    Softsign,
    Softplus,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Act {
    kind: ActKind,
    alpha: f64,
    beta: f64,
}

impl Act {
    fn apply(&self, x: f64) -> f64 {
        let (a, b) = (self.alpha, self.beta);
        match self.kind {
            ActKind::Relu => x.max(0.0),
            ActKind::Tanh => x.tanh(),
            ActKind::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            ActKind::Affine => a * x + b,
            ActKind::LeakyRelu => {
                if x >= 0.0 {
                    x
                } else {
                    a * x
                }
            }
            ActKind::ThresholdedRelu => {
                if x > a {
                    x
                } else {
                    0.0
                }
            }
            ActKind::ScaledTanh => a * (b * x).tanh(),
            ActKind::HardSigmoid => (a * x + b).clamp(0.0, 1.0),
            ActKind::Elu => {
                if x >= 0.0 {
                    x
                } else {
                    a * (x.exp() - 1.0)
                }
            }
            ActKind::Softsign => x / (1.0 + x.abs()),
            ActKind::Softplus => {
                // log(1 + e^x), stable for large |x|.
                x.max(0.0) + (-x.abs()).exp().ln_1p()
            }
        }
    }
}

/// The activations of every direction, `dirs * per` of them (direction-major), with
/// alpha/beta consumed in order by the activations that take them.
fn activations(attrs: &Attrs, cell: Cell, dirs: usize) -> OpResult<Vec<Act>> {
    let per = cell.default_activations().len();
    let names: Vec<String> = match attrs.strs("activations")? {
        None => cell
            .default_activations()
            .iter()
            .map(|s| s.to_string())
            .collect(),
        Some(v) => v,
    };
    let names: Vec<String> = if names.len() == per * dirs {
        names
    } else if names.len() == per {
        names.iter().cycle().take(per * dirs).cloned().collect()
    } else if names.len() > per * dirs {
        names[..per * dirs].to_vec()
    } else {
        bail!(
            "{} needs {} activations for {dirs} direction(s), got {names:?}",
            cell.name(),
            per * dirs
        );
    };
    let alphas = attrs.floats("activation_alpha")?.unwrap_or_default();
    let betas = attrs.floats("activation_beta")?.unwrap_or_default();
    let (mut ai, mut bi) = (alphas.iter(), betas.iter());
    let mut out = Vec::with_capacity(names.len());
    for name in &names {
        // (kind, default alpha if it takes one, default beta if it takes one)
        let (kind, da, db) = match name.to_ascii_lowercase().as_str() {
            "relu" => (ActKind::Relu, None, None),
            "tanh" => (ActKind::Tanh, None, None),
            "sigmoid" => (ActKind::Sigmoid, None, None),
            "affine" => (ActKind::Affine, Some(1.0), Some(0.0)),
            "leakyrelu" => (ActKind::LeakyRelu, Some(0.01), None),
            "thresholdedrelu" => (ActKind::ThresholdedRelu, Some(1.0), None),
            "scaledtanh" => (ActKind::ScaledTanh, Some(1.0), Some(1.0)),
            "hardsigmoid" => (ActKind::HardSigmoid, Some(0.2), Some(0.5)),
            "elu" => (ActKind::Elu, Some(1.0), None),
            "softsign" => (ActKind::Softsign, None, None),
            "softplus" => (ActKind::Softplus, None, None),
            _ => bail!("unsupported {} activation \"{name}\"", cell.name()),
        };
        let alpha = da.map_or(0.0, |d| ai.next().map_or(d, |&v| v as f64));
        let beta = db.map_or(0.0, |d| bi.next().map_or(d, |&v| v as f64));
        out.push(Act { kind, alpha, beta });
    }
    Ok(out)
}

// ---- eval ----

/// Everything one run needs, as f64, in layout 0 index order.
struct Run {
    cell: Cell,
    seq: usize,
    batch: usize,
    input: usize,
    hidden: usize,
    dirs: usize,
    batch_major: bool,
    reverse_only: bool,
    clip: Option<f64>,
    acts: Vec<Act>,
    linear_before_reset: bool,
    input_forget: bool,
    x: Vec<f64>,
    w: Vec<f64>,
    r: Vec<f64>,
    /// `[dirs, 2 * gates * hidden]` (zeros if absent).
    b: Vec<f64>,
    lens: Vec<usize>,
    /// `[dirs, batch, hidden]` in layout-0 order.
    h0: Vec<f64>,
    c0: Vec<f64>,
    /// `[dirs, 3 * hidden]` (zeros if absent).
    p: Vec<f64>,
}

/// A `[dirs, batch, hidden]` state input in layout-0 order (zeros if absent).
fn state_input(
    t: Option<&Tensor>,
    what: &str,
    dirs: usize,
    batch: usize,
    hidden: usize,
    batch_major: bool,
) -> OpResult<Vec<f64>> {
    let Some(t) = t else {
        return Ok(vec![0.0; dirs * batch * hidden]);
    };
    let want = if batch_major {
        [batch, dirs, hidden]
    } else {
        [dirs, batch, hidden]
    };
    if t.shape() != want {
        bail!("{what} has shape {:?}, expected {want:?}", t.shape());
    }
    let v = t.to_f64();
    if !batch_major {
        return Ok(v);
    }
    let mut out = vec![0.0; v.len()];
    for b in 0..batch {
        for d in 0..dirs {
            let src = &v[(b * dirs + d) * hidden..][..hidden];
            out[(d * batch + b) * hidden..][..hidden].copy_from_slice(src);
        }
    }
    Ok(out)
}

impl Run {
    fn new(ctx: &EvalCtx, cell: Cell) -> OpResult<Run> {
        let attrs = ctx.attrs;
        let dirs = num_directions(attrs)?;
        let batch_major = layout(attrs)?;
        let (x, w, r) = (ctx.input(0)?, ctx.input(1)?, ctx.input(2)?);
        if x.rank() != 3 || w.rank() != 3 || r.rank() != 3 {
            bail!(
                "X {:?}, W {:?}, R {:?} must all be rank 3",
                x.shape(),
                w.shape(),
                r.shape()
            );
        }
        let (seq, batch, input) = if batch_major {
            (x.shape()[1], x.shape()[0], x.shape()[2])
        } else {
            (x.shape()[0], x.shape()[1], x.shape()[2])
        };
        let hidden = r.shape()[2];
        if let Some(h) = attrs.int("hidden_size")? {
            if h != hidden as i64 {
                bail!("hidden_size {h} does not match R {:?}", r.shape());
            }
        }
        let g = cell.gates();
        if w.shape() != [dirs, g * hidden, input] || r.shape() != [dirs, g * hidden, hidden] {
            bail!(
                "W {:?} and R {:?} must be [{dirs}, {}, {input}] and [{dirs}, {}, {hidden}]",
                w.shape(),
                r.shape(),
                g * hidden,
                g * hidden
            );
        }
        let b = match ctx.opt_input(3) {
            Some(b) if b.shape() == [dirs, 2 * g * hidden] => b.to_f64(),
            Some(b) => bail!(
                "B has shape {:?}, expected [{dirs}, {}]",
                b.shape(),
                2 * g * hidden
            ),
            None => vec![0.0; dirs * 2 * g * hidden],
        };
        let lens = match ctx.opt_input(4) {
            Some(l) => {
                if l.shape() != [batch] {
                    bail!(
                        "sequence_lens has shape {:?}, expected [{batch}]",
                        l.shape()
                    );
                }
                l.to_i64()
                    .into_iter()
                    .map(|v| {
                        if v < 0 || v as usize > seq {
                            bail!("sequence length {v} is outside 0..={seq}");
                        }
                        Ok(v as usize)
                    })
                    .collect::<OpResult<Vec<_>>>()?
            }
            None => vec![seq; batch],
        };
        let h0 = state_input(
            ctx.opt_input(5),
            "initial_h",
            dirs,
            batch,
            hidden,
            batch_major,
        )?;
        let (c0, p) = if cell == Cell::Lstm {
            let c0 = state_input(
                ctx.opt_input(6),
                "initial_c",
                dirs,
                batch,
                hidden,
                batch_major,
            )?;
            let p = match ctx.opt_input(7) {
                Some(p) if p.shape() == [dirs, 3 * hidden] => p.to_f64(),
                Some(p) => bail!(
                    "P has shape {:?}, expected [{dirs}, {}]",
                    p.shape(),
                    3 * hidden
                ),
                None => vec![0.0; dirs * 3 * hidden],
            };
            (c0, p)
        } else {
            (vec![], vec![])
        };
        let clip = match attrs.float("clip")? {
            Some(c) if c > 0.0 => Some(c as f64),
            Some(c) => bail!("clip must be positive, got {c}"),
            None => None,
        };
        // X in layout-0 order.
        let xv = x.to_f64();
        let x = if batch_major {
            let mut v = vec![0.0; xv.len()];
            for b in 0..batch {
                for t in 0..seq {
                    v[(t * batch + b) * input..][..input]
                        .copy_from_slice(&xv[(b * seq + t) * input..][..input]);
                }
            }
            v
        } else {
            xv
        };
        Ok(Run {
            cell,
            seq,
            batch,
            input,
            hidden,
            dirs,
            batch_major,
            reverse_only: attrs.str_or("direction", "forward")? == "reverse",
            clip,
            acts: activations(attrs, cell, dirs)?,
            linear_before_reset: attrs.int_or("linear_before_reset", 0)? != 0,
            input_forget: attrs.int_or("input_forget", 0)? != 0,
            x,
            w: w.to_f64(),
            r: r.to_f64(),
            b,
            lens,
            h0,
            c0,
            p,
        })
    }

    fn clip(&self, v: f64) -> f64 {
        match self.clip {
            Some(c) => v.clamp(-c, c),
            None => v,
        }
    }

    /// `out[j] = bias[j] + sum_k m[row0 + j, k] * v[k]` for `j < out.len()`, where `m` has
    /// `v.len()` columns.
    fn matvec(m: &[f64], row0: usize, v: &[f64], bias: &[f64], out: &mut [f64]) {
        let cols = v.len();
        for (j, o) in out.iter_mut().enumerate() {
            let row = &m[(row0 + j) * cols..][..cols];
            *o = bias[j] + row.iter().zip(v).map(|(a, b)| a * b).sum::<f64>();
        }
    }

    /// Runs every direction; returns Y `[seq, dirs, batch, hidden]`, Y_h and Y_c
    /// `[dirs, batch, hidden]`, all in layout-0 order.
    fn run(&self) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (hs, g) = (self.hidden, self.cell.gates());
        let per_act = self.cell.default_activations().len();
        let mut y = vec![0.0; self.seq * self.dirs * self.batch * hs];
        let mut yh = vec![0.0; self.dirs * self.batch * hs];
        let mut yc = vec![0.0; if self.cell == Cell::Lstm { yh.len() } else { 0 }];
        // Scratch: input and recurrent projections of all gates.
        let mut xp = vec![0.0; g * hs];
        let mut hp = vec![0.0; g * hs];
        let mut rh = vec![0.0; hs];
        for d in 0..self.dirs {
            let reverse = self.reverse_only || d == 1;
            let acts = &self.acts[d * per_act..][..per_act];
            let w = &self.w[d * g * hs * self.input..][..g * hs * self.input];
            let r = &self.r[d * g * hs * hs..][..g * hs * hs];
            let wb = &self.b[d * 2 * g * hs..][..g * hs];
            let rb = &self.b[(d * 2 + 1) * g * hs..][..g * hs];
            for b in 0..self.batch {
                let s0 = (d * self.batch + b) * hs;
                let mut h = self.h0[s0..][..hs].to_vec();
                let mut c = if self.cell == Cell::Lstm {
                    self.c0[s0..][..hs].to_vec()
                } else {
                    vec![]
                };
                let len = self.lens[b];
                for step in 0..len {
                    let t = if reverse { len - 1 - step } else { step };
                    let xt = &self.x[(t * self.batch + b) * self.input..][..self.input];
                    Self::matvec(w, 0, xt, wb, &mut xp);
                    match self.cell {
                        Cell::Rnn => {
                            Self::matvec(r, 0, &h, rb, &mut hp);
                            for j in 0..hs {
                                h[j] = acts[0].apply(self.clip(xp[j] + hp[j]));
                            }
                        }
                        Cell::Gru => {
                            // z and r gates.
                            Self::matvec(r, 0, &h, rb, &mut hp[..2 * hs]);
                            let (f, gact) = (acts[0], acts[1]);
                            let z: Vec<f64> =
                                (0..hs).map(|j| f.apply(self.clip(xp[j] + hp[j]))).collect();
                            let rg: Vec<f64> = (0..hs)
                                .map(|j| f.apply(self.clip(xp[hs + j] + hp[hs + j])))
                                .collect();
                            let cand: Vec<f64> = if self.linear_before_reset {
                                Self::matvec(r, 2 * hs, &h, &rb[2 * hs..], &mut rh);
                                (0..hs)
                                    .map(|j| gact.apply(self.clip(xp[2 * hs + j] + rg[j] * rh[j])))
                                    .collect()
                            } else {
                                let reset: Vec<f64> = (0..hs).map(|j| rg[j] * h[j]).collect();
                                Self::matvec(r, 2 * hs, &reset, &rb[2 * hs..], &mut rh);
                                (0..hs)
                                    .map(|j| gact.apply(self.clip(xp[2 * hs + j] + rh[j])))
                                    .collect()
                            };
                            for j in 0..hs {
                                h[j] = (1.0 - z[j]) * cand[j] + z[j] * h[j];
                            }
                        }
                        Cell::Lstm => {
                            Self::matvec(r, 0, &h, rb, &mut hp);
                            let (f, gact, hact) = (acts[0], acts[1], acts[2]);
                            let p = &self.p[d * 3 * hs..][..3 * hs];
                            for j in 0..hs {
                                let pre = |k: usize| xp[k * hs + j] + hp[k * hs + j];
                                let i = f.apply(self.clip(pre(0) + p[j] * c[j]));
                                let fg = if self.input_forget {
                                    1.0 - i
                                } else {
                                    f.apply(self.clip(pre(2) + p[2 * hs + j] * c[j]))
                                };
                                let cand = gact.apply(self.clip(pre(3)));
                                c[j] = fg * c[j] + i * cand;
                                let o = f.apply(self.clip(pre(1) + p[hs + j] * c[j]));
                                h[j] = o * hact.apply(c[j]);
                            }
                        }
                    }
                    let yo = ((t * self.dirs + d) * self.batch + b) * hs;
                    y[yo..yo + hs].copy_from_slice(&h);
                }
                yh[s0..s0 + hs].copy_from_slice(&h);
                if self.cell == Cell::Lstm {
                    yc[s0..s0 + hs].copy_from_slice(&c);
                }
            }
        }
        (y, yh, yc)
    }
}

fn eval(ctx: &EvalCtx, cell: Cell) -> OpResult<Vec<Tensor>> {
    if ctx.num_outputs > cell.outputs() {
        bail!("{} has at most {} outputs", cell.name(), cell.outputs());
    }
    let run = Run::new(ctx, cell)?;
    let (y, yh, yc) = run.run();
    let dtype = ctx.input(0)?.dtype();
    let (s, nb, nd, hs) = (run.seq, run.batch, run.dirs, run.hidden);
    let mut out = Vec::with_capacity(ctx.num_outputs);
    if run.batch_major {
        // Y [seq, dirs, batch, h] -> [batch, seq, dirs, h]; states [dirs, batch, h] ->
        // [batch, dirs, h].
        let mut yt = vec![0.0; y.len()];
        for t in 0..s {
            for d in 0..nd {
                for b in 0..nb {
                    yt[((b * s + t) * nd + d) * hs..][..hs]
                        .copy_from_slice(&y[((t * nd + d) * nb + b) * hs..][..hs]);
                }
            }
        }
        let swap = |v: &[f64]| {
            let mut o = vec![0.0; v.len()];
            for d in 0..nd {
                for b in 0..nb {
                    o[(b * nd + d) * hs..][..hs].copy_from_slice(&v[(d * nb + b) * hs..][..hs]);
                }
            }
            o
        };
        out.push(Tensor::from_f64(dtype, vec![nb, s, nd, hs], &yt));
        out.push(Tensor::from_f64(dtype, vec![nb, nd, hs], &swap(&yh)));
        if cell == Cell::Lstm {
            out.push(Tensor::from_f64(dtype, vec![nb, nd, hs], &swap(&yc)));
        }
    } else {
        out.push(Tensor::from_f64(dtype, vec![s, nd, nb, hs], &y));
        out.push(Tensor::from_f64(dtype, vec![nd, nb, hs], &yh));
        if cell == Cell::Lstm {
            out.push(Tensor::from_f64(dtype, vec![nd, nb, hs], &yc));
        }
    }
    out.truncate(ctx.num_outputs.max(1));
    Ok(out)
}

fn eval_rnn(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    eval(ctx, Cell::Rnn)
}

fn eval_gru(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    eval(ctx, Cell::Gru)
}

fn eval_lstm(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    eval(ctx, Cell::Lstm)
}

#[cfg(test)]
mod tests {
    use crate::attr::Attr;
    use crate::ops::conv::testutil::{attrs, close, f32s, run};
    use crate::tensor::Tensor;

    fn sig(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    fn f32v(v: &[f64]) -> Vec<f64> {
        v.iter().map(|&x| x as f32 as f64).collect()
    }

    #[test]
    fn rnn_forward_reverse_and_sequence_lens() {
        // hidden 1, input 1: h' = tanh(0.5 x + 2 h + 0.1)
        let x = f32s(&[3, 2, 1], &[1., 2., 3., 4., 5., 6.]);
        let w = f32s(&[1, 1, 1], &[0.5]);
        let r = f32s(&[1, 1, 1], &[2.0]);
        let b = f32s(&[1, 2], &[0.1, 0.0]);
        let lens = Tensor::from_i64(crate::dtype::DType::I32, vec![2], &[3, 2]);
        let a = attrs(&[("hidden_size", Attr::Int(1))]);
        let out = run(
            "RNN",
            &a,
            vec![
                Some(x.clone()),
                Some(w.clone()),
                Some(r.clone()),
                Some(b.clone()),
                Some(lens.clone()),
            ],
            2,
        )
        .unwrap();
        let step = |x: f64, h: f64| (0.5 * x + 2.0 * h + 0.1).tanh();
        let (a1, a2, a3) = {
            let a1 = step(1., 0.);
            let a2 = step(3., a1);
            (a1, a2, step(5., a2))
        };
        let (b1, b2) = {
            let b1 = step(2., 0.);
            (b1, step(4., b1))
        };
        // Y [3, 1, 2, 1]: batch 1 stops after 2 steps.
        close(&out[0], &f32v(&[a1, b1, a2, b2, a3, 0.0]), 1e-7);
        close(&out[1], &f32v(&[a3, b2]), 1e-7);
        // Reverse: batch 1 runs t = 1 then t = 0.
        let a = attrs(&[("direction", Attr::Str("reverse".into()))]);
        let out = run(
            "RNN",
            &a,
            vec![Some(x), Some(w), Some(r), Some(b), Some(lens)],
            2,
        )
        .unwrap();
        let (a3, b2) = (step(5., 0.), step(4., 0.));
        let (a2, b1) = (step(3., a3), step(2., b2));
        let a1 = step(1., a2);
        close(&out[0], &f32v(&[a1, b1, a2, b2, a3, 0.0]), 1e-7);
        close(&out[1], &f32v(&[a1, b1]), 1e-7);
    }

    #[test]
    fn gru_both_reset_forms_bidirectional_batch_major() {
        // hidden 1, input 1, one step; weights z, r, h.
        let x = f32s(&[1, 1, 1], &[1.0]);
        let w = f32s(&[2, 3, 1], &[0.1, 0.2, 0.3, 0.1, 0.2, 0.3]);
        let r = f32s(&[2, 3, 1], &[0.4, 0.5, 0.6, 0.4, 0.5, 0.6]);
        let b = f32s(
            &[2, 6],
            &[0.0, 0.0, 0.0, 0.0, 0.0, 0.7, 0.0, 0.0, 0.0, 0.0, 0.0, 0.7],
        );
        let h0 = f32s(&[1, 2, 1], &[0.5, -0.5]);
        for lbr in [0, 1] {
            let a = attrs(&[
                ("direction", Attr::Str("bidirectional".into())),
                ("layout", Attr::Int(1)),
                ("linear_before_reset", Attr::Int(lbr)),
            ]);
            let out = run(
                "GRU",
                &a,
                vec![
                    Some(x.clone()),
                    Some(w.clone()),
                    Some(r.clone()),
                    Some(b.clone()),
                    None,
                    Some(h0.clone()),
                ],
                2,
            )
            .unwrap();
            assert_eq!(out[0].shape(), &[1, 1, 2, 1]);
            assert_eq!(out[1].shape(), &[1, 2, 1]);
            let want: Vec<f64> = [0.5f64, -0.5]
                .iter()
                .map(|&h| {
                    let z = sig(0.1 + 0.4 * h);
                    let rg = sig(0.2 + 0.5 * h);
                    let c = if lbr == 1 {
                        (0.3 + rg * (0.6 * h + 0.7)).tanh()
                    } else {
                        (0.3 + 0.6 * rg * h + 0.7).tanh()
                    };
                    (1.0 - z) * c + z * h
                })
                .collect();
            close(&out[0], &f32v(&want), 1e-7);
            close(&out[1], &f32v(&want), 1e-7);
        }
    }

    #[test]
    fn lstm_peepholes_input_forget_and_activations() {
        // hidden 1, input 1, two steps; gates i, o, f, c.
        let x = f32s(&[2, 1, 1], &[1.0, -1.0]);
        let w = f32s(&[1, 4, 1], &[0.1, 0.2, 0.3, 0.4]);
        let r = f32s(&[1, 4, 1], &[0.5, 0.6, 0.7, 0.8]);
        let p = f32s(&[1, 3], &[0.05, 0.1, 0.15]);
        let h0 = f32s(&[1, 1, 1], &[0.2]);
        let c0 = f32s(&[1, 1, 1], &[-0.3]);
        let model = |input_forget: bool, hard: bool| {
            let (mut h, mut c) = (0.2f64, -0.3f64);
            let mut ys = vec![];
            for xv in [1.0f64, -1.0] {
                let f = |v: f64| {
                    if hard {
                        (0.3 * v + 0.4).clamp(0.0, 1.0)
                    } else {
                        sig(v)
                    }
                };
                let i = f(0.1 * xv + 0.5 * h + 0.05 * c);
                let fg = if input_forget {
                    1.0 - i
                } else {
                    f(0.3 * xv + 0.7 * h + 0.15 * c)
                };
                let cand = (0.4 * xv + 0.8 * h).tanh();
                c = fg * c + i * cand;
                let o = f(0.2 * xv + 0.6 * h + 0.1 * c);
                h = o * c.tanh();
                ys.push(h);
            }
            (ys, h, c)
        };
        for (input_forget, hard) in [(false, false), (true, false), (false, true)] {
            let mut a = attrs(&[("input_forget", Attr::Int(input_forget as i64))]);
            if hard {
                a.insert(
                    "activations".into(),
                    Attr::Strs(vec!["HardSigmoid".into(), "Tanh".into(), "Tanh".into()]),
                );
                a.insert("activation_alpha".into(), Attr::Floats(vec![0.3]));
                a.insert("activation_beta".into(), Attr::Floats(vec![0.4]));
            }
            let out = run(
                "LSTM",
                &a,
                vec![
                    Some(x.clone()),
                    Some(w.clone()),
                    Some(r.clone()),
                    None,
                    None,
                    Some(h0.clone()),
                    Some(c0.clone()),
                    Some(p.clone()),
                ],
                3,
            )
            .unwrap();
            let (ys, h, c) = model(input_forget, hard);
            close(&out[0], &f32v(&ys), 1e-6);
            close(&out[1], &f32v(&[h]), 1e-6);
            close(&out[2], &f32v(&[c]), 1e-6);
        }
    }

    #[test]
    fn infer_keeps_symbolic_dims() {
        use crate::dim::Dim;
        use crate::graph::WeightStore;
        use crate::ops::{lookup, InferCtx};
        use crate::types::ValueType;
        let x = ValueType::new(
            crate::dtype::DType::F32,
            vec![Dim::sym("batch"), Dim::sym("seq"), Dim::from(4i64)],
        );
        let w = ValueType::of(crate::dtype::DType::F32, &[2, 12, 4]);
        let r = ValueType::of(crate::dtype::DType::F32, &[2, 12, 3]);
        let a = attrs(&[
            ("direction", Attr::Str("bidirectional".into())),
            ("layout", Attr::Int(1)),
        ]);
        let weights = WeightStore::default();
        let fresh = || Dim::sym("fresh");
        let ctx = InferCtx {
            attrs: &a,
            inputs: vec![Some(&x), Some(&w), Some(&r)],
            known: vec![None, None, None],
            num_outputs: 3,
            weights: &weights,
            previous: None,
            fresh: &fresh,
        };
        let t = (lookup("LSTM").unwrap().infer)(&ctx).unwrap();
        assert_eq!(
            format!("{:?}", t),
            "[f32[batch, seq, 2, 3], f32[batch, 2, 3], f32[batch, 2, 3]]"
        );
    }

    #[test]
    fn clip_bounds_gate_inputs() {
        let x = f32s(&[1, 1, 1], &[10.0]);
        let w = f32s(&[1, 1, 1], &[1.0]);
        let r = f32s(&[1, 1, 1], &[1.0]);
        let a = attrs(&[
            ("clip", Attr::Float(0.5)),
            ("activations", Attr::Strs(vec!["Relu".into()])),
        ]);
        let out = run("RNN", &a, vec![Some(x), Some(w), Some(r)], 1).unwrap();
        close(&out[0], &[0.5], 0.0);
    }
}
