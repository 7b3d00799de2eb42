//! MatMul, Gemm, MatMulInteger, QLinearMatMul, Einsum.
//!
//! f32 products go to the GEMM helpers: a constant B (weights) is packed into GEMM panels
//! at compile time and stored only in that form; batch dims become up to a few strided
//! loops inside one helper call (or fold into M when B has none). Every other dtype, and
//! the integer / quantized products, go to the generic `contract` helper.
//!
//! A MatMul by a constant 2-D B takes the nodes after it into its GEMM's epilogue
//! ([`epilogue::plan`]); sibling MatMuls of that kind reading the same A share one GEMM
//! step ([`siblings`]).

use kiln_ir::attr::{Attr, AttrsExt};
use kiln_ir::dim::Dim;
use kiln_ir::dtype::DType;
use kiln_ir::graph::NodeId;
use kiln_ir::Tensor;
use kiln_runtime::cpu::gemm::PackedB;
use kiln_runtime::cpu::helpers::gemm::MAX_LOOPS;

use super::epilogue::{self, GemmFusion};
use super::siblings;
use super::{
    bcast_strides, contiguous, dtype_code, emit_contract, has_input, input_type, prod, Mode, Term,
};
use crate::cpu::lower::{Arg, Lowerer, Operand};
use crate::error::TargetError;

fn one() -> Dim {
    Dim::from(1i64)
}

fn zero() -> Dim {
    Dim::from(0i64)
}

/// The loop space of a numpy matmul: `[batch..., m, n, k]`, and how each operand maps onto
/// it.
struct Plan {
    /// The output's batch dims (numpy broadcast of both operands').
    batch: Vec<Dim>,
    m: Dim,
    n: Dim,
    k: Dim,
    /// A promoted to rank >= 2 (`[k]` -> `[1, k]`), B too (`[k]` -> `[k, 1]`).
    a2: Vec<Dim>,
    b2: Vec<Dim>,
}

impl Plan {
    fn new(lw: &Lowerer, a: &[Dim], b: &[Dim]) -> Result<Plan, TargetError> {
        if a.is_empty() || b.is_empty() {
            return Err(lw.error("MatMul operands must have rank >= 1"));
        }
        let a2 = if a.len() == 1 {
            vec![one(), a[0].clone()]
        } else {
            a.to_vec()
        };
        let b2 = if b.len() == 1 {
            vec![b[0].clone(), one()]
        } else {
            b.to_vec()
        };
        let (ab, bb) = (&a2[..a2.len() - 2], &b2[..b2.len() - 2]);
        let nb = ab.len().max(bb.len());
        let mut batch = Vec::with_capacity(nb);
        for j in 0..nb {
            let get = |v: &[Dim]| {
                (j + v.len())
                    .checked_sub(nb)
                    .map_or_else(one, |i| v[i].clone())
            };
            let (x, y) = (get(ab), get(bb));
            batch.push(if x == y || y.as_const() == Some(1) {
                x
            } else if x.as_const() == Some(1) {
                y
            } else {
                return Err(lw.unsupported(format!(
                    "MatMul batch dims {x} and {y} that may not broadcast"
                )));
            });
        }
        Ok(Plan {
            m: a2[a2.len() - 2].clone(),
            k: a2[a2.len() - 1].clone(),
            n: b2[b2.len() - 1].clone(),
            batch,
            a2,
            b2,
        })
    }

    fn nb(&self) -> usize {
        self.batch.len()
    }

    /// Loop strides `[batch..., m, n, k]` of a tensor laid over A's promoted shape with
    /// strides `st` (per A axis, 0 where it broadcasts).
    fn a_loop(&self, st: &[Dim]) -> Vec<Dim> {
        let r = self.a2.len();
        let mut out = self.batch_part(&self.a2, st);
        out.extend([st[r - 2].clone(), zero(), st[r - 1].clone()]);
        out
    }

    /// As [`Plan::a_loop`] for B's promoted shape.
    fn b_loop(&self, st: &[Dim]) -> Vec<Dim> {
        let r = self.b2.len();
        let mut out = self.batch_part(&self.b2, st);
        out.extend([zero(), st[r - 1].clone(), st[r - 2].clone()]);
        out
    }

    fn batch_part(&self, shape: &[Dim], st: &[Dim]) -> Vec<Dim> {
        let nb = self.nb();
        let own = shape.len() - 2;
        (0..nb)
            .map(|j| match (j + own).checked_sub(nb) {
                Some(i) if shape[i].as_const() != Some(1) => st[i].clone(),
                _ => zero(),
            })
            .collect()
    }

    /// The output's strides over `[batch..., m, n]` (contiguous `[batch..., m, n]`).
    fn out_strides(&self) -> Vec<Dim> {
        let mut full = self.batch.clone();
        full.extend([self.m.clone(), self.n.clone()]);
        contiguous(&full)
    }

    fn sizes(&self) -> Vec<Dim> {
        let mut s = self.batch.clone();
        s.extend([self.m.clone(), self.n.clone(), self.k.clone()]);
        s
    }
}

/// A zero point's or scale's strides over an operand of (promoted) shape `shape`: numpy
/// broadcasting, except that a 1-D parameter of A with A's row count (and not 1) is per row.
fn param_strides(
    lw: &Lowerer,
    p: &[Dim],
    shape: &[Dim],
    per_row: bool,
) -> Result<Vec<Dim>, TargetError> {
    let mut ps = p.to_vec();
    if per_row
        && ps.len() == 1
        && ps[0].as_const() != Some(1)
        && shape.len() >= 2
        && ps[0] == shape[shape.len() - 2]
    {
        ps.push(one());
    }
    bcast_strides(&ps, shape).ok_or_else(|| {
        lw.unsupported(format!(
            "a parameter of shape {p:?} that may not broadcast to {shape:?}"
        ))
    })
}

/// The GEMM helper call's loops: `(count, a, b, c)` strides per batch loop, size-1 loops
/// dropped and adjacent loops that walk memory as one merged.
fn batch_loops(counts: &[Dim], a: &[Dim], b: &[Dim], c: &[Dim]) -> Vec<[Dim; 4]> {
    let mut loops: Vec<[Dim; 4]> = Vec::new();
    for j in 0..counts.len() {
        if counts[j].as_const() == Some(1) {
            continue;
        }
        let cur = [counts[j].clone(), a[j].clone(), b[j].clone(), c[j].clone()];
        if let Some(last) = loops.last_mut() {
            let n = &cur[0];
            if last[1] == cur[1].mul(n) && last[2] == cur[2].mul(n) && last[3] == cur[3].mul(n) {
                *last = [
                    last[0].mul(n),
                    cur[1].clone(),
                    cur[2].clone(),
                    cur[3].clone(),
                ];
                continue;
            }
        }
        loops.push(cur);
    }
    loops
}

/// A constant's name in the weights section.
pub(super) fn const_name(lw: &Lowerer, id: NodeId, i: usize) -> String {
    let Some(v) = lw.graph.node(id).input(i) else {
        return String::from("const");
    };
    match lw.graph.node(v.node).attrs.get("value") {
        Some(Attr::Weight(w)) => w.to_string(),
        _ => format!("const {}", v.node.index()),
    }
}

/// Packs `count` row-major `k x n` matrices (each `b(i)`) into GEMM panels, stored as one
/// weight; returns the operand and the packed length of one matrix.
pub(super) fn pack_weights(
    lw: &mut Lowerer,
    name: &str,
    count: usize,
    k: usize,
    n: usize,
    b: impl Fn(usize) -> Vec<f32>,
) -> (Operand, usize) {
    let plen = PackedB::packed_len(k, n);
    let mut bytes = Vec::with_capacity(count * plen * 4);
    for i in 0..count {
        let dense = b(i);
        let packed = PackedB::pack(&dense, k, n, n.max(1));
        let view = packed.view();
        for v in &view.data[..plen] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
    }
    let op = lw.weight(
        &format!("{name} (packed)"),
        DType::F32,
        vec![Dim::from((count * plen) as i64)],
        bytes,
        "packed_b",
    );
    (op, plen)
}

/// The f32 values of a constant tensor.
pub(super) fn f32s(t: &Tensor) -> Vec<f32> {
    match t.as_f32() {
        Some(v) => v.to_vec(),
        None => t.to_f64().iter().map(|&x| x as f32).collect(),
    }
}

/// One GEMM helper call.
pub(super) struct GemmCall {
    pub m: Dim,
    pub n: Dim,
    pub k: Dim,
    pub a: (Arg, Dim, Dim),
    /// B pointer and strides (ignored when packed).
    pub b: (Arg, Dim, Dim),
    pub packed: bool,
    pub c: (Arg, Dim),
    pub accumulate: bool,
    pub alpha: f64,
    pub loops: Vec<[Dim; 4]>,
}

/// The fused form's slots: epilogue and C layout (see `gemm_f32_packed_fused`).
pub(super) struct FusedSlots {
    pub bias: Option<Arg>,
    pub act: u64,
    pub residual: Option<(Arg, Dim)>,
    /// Column block and block stride (heads of `D` columns, `S*D` apart).
    pub block: (Dim, Dim),
}

fn emit_gemm(lw: &mut Lowerer, g: GemmCall) -> Result<(), TargetError> {
    emit_gemm_with(lw, g, None)
}

pub(super) fn emit_gemm_with(
    lw: &mut Lowerer,
    g: GemmCall,
    fused: Option<FusedSlots>,
) -> Result<(), TargetError> {
    if g.loops.len() > MAX_LOOPS {
        return Err(lw.unsupported(format!("a MatMul with {} batch loops", g.loops.len())));
    }
    let callee = lw.helper(match (&fused, g.packed) {
        (Some(_), _) => "gemm_f32_packed_fused",
        (None, true) => "gemm_f32_packed",
        (None, false) => "gemm_f32",
    })?;
    let mut args = vec![
        Arg::Int(g.m),
        Arg::Int(g.n),
        Arg::Int(g.k),
        g.a.0,
        Arg::Int(g.a.1),
        Arg::Int(g.a.2),
        g.b.0,
        Arg::Int(g.b.1),
        Arg::Int(g.b.2),
        g.c.0,
        Arg::Int(g.c.1),
        Arg::Bits(u64::from(g.accumulate)),
        Arg::Bits(g.alpha.to_bits()),
        Arg::Bits(g.loops.len() as u64),
    ];
    if let Some(f) = fused {
        args.push(f.bias.unwrap_or(Arg::Bits(0)));
        args.push(Arg::Bits(f.act));
        match f.residual {
            Some((r, rs)) => args.extend([r, Arg::Int(rs)]),
            None => args.extend([Arg::Bits(0), Arg::Bits(0)]),
        }
        args.extend([Arg::Int(f.block.0), Arg::Int(f.block.1)]);
    }
    for l in g.loops {
        args.extend(l.into_iter().map(Arg::Int));
    }
    lw.emit(callee, args);
    Ok(())
}

/// f32 numpy matmul `out (+)= alpha · a · b` through the GEMM helpers.
fn matmul_f32(
    lw: &mut Lowerer,
    id: NodeId,
    plan: &Plan,
    out: &Operand,
    accumulate: bool,
) -> Result<(), TargetError> {
    let a = lw.input(id, 0)?;
    let nb = plan.nb();
    let a_loop = plan.a_loop(&contiguous(&plan.a2));
    let b_dense = contiguous(&plan.b2);
    let b_loop = plan.b_loop(&b_dense);
    let c_loop = plan.out_strides();
    let (m, n, k) = (plan.m.clone(), plan.n.clone(), plan.k.clone());
    // B constant: GEMM panels, one packed matrix per B batch entry.
    let b_const = lw.const_input(id, 1);
    let (b_arg, b_batch, packed) = match b_const {
        Some(t) => {
            let (kc, nc) = match (k.as_const(), n.as_const()) {
                (Some(x), Some(y)) if x >= 0 && y >= 0 => (x as usize, y as usize),
                _ => return Err(lw.error("a constant B has symbolic dims")),
            };
            let v = f32s(&t);
            let count = v.len().checked_div(kc * nc).unwrap_or(0).max(1);
            let name = const_name(lw, id, 1);
            let (op, plen) = pack_weights(lw, &name, count, kc, nc, |i| {
                if kc * nc == 0 {
                    Vec::new()
                } else {
                    v[i * kc * nc..(i + 1) * kc * nc].to_vec()
                }
            });
            // Dense batch strides are multiples of k*n; packed ones count panels.
            let per = Dim::from((kc * nc).max(1) as i64);
            let bb: Vec<Dim> = b_loop[..nb]
                .iter()
                .map(|s| s.floor_div(&per).mul(&Dim::from(plen as i64)))
                .collect();
            (op.ptr(), bb, true)
        }
        None => {
            let b = lw.input(id, 1)?;
            (b.ptr(), b_loop[..nb].to_vec(), false)
        }
    };
    let (rsb, csb) = (b_loop[nb + 2].clone(), b_loop[nb + 1].clone());
    // B shared by the whole batch and A covering it contiguously: one tall GEMM.
    let b_shared = b_batch.iter().all(|s| s.as_const() == Some(0));
    let a_contig = {
        let mut full = plan.batch.clone();
        full.extend([m.clone(), k.clone()]);
        let st = contiguous(&full);
        (0..nb).all(|j| plan.batch[j].as_const() == Some(1) || a_loop[j] == st[j])
    };
    let (m_eff, loops) = if b_shared && a_contig {
        (prod(&plan.batch).mul(&m), Vec::new())
    } else {
        (
            m,
            batch_loops(&plan.batch, &a_loop[..nb], &b_batch, &c_loop[..nb]),
        )
    };
    emit_gemm(
        lw,
        GemmCall {
            m: m_eff,
            n,
            k,
            a: (a.ptr(), a_loop[nb].clone(), a_loop[nb + 2].clone()),
            b: (b_arg, rsb, csb),
            packed,
            c: (out.ptr(), c_loop[nb].clone()),
            accumulate,
            alpha: 1.0,
            loops,
        },
    )
}

/// An f32 MatMul with a constant 2-D B and the nodes after it that its GEMM computes
/// (see [`epilogue::plan`]): one `gemm_f32_packed_fused` step writing the last one's output.
fn matmul_fused(lw: &mut Lowerer, id: NodeId, f: &GemmFusion) -> Result<(), TargetError> {
    let a = lw.input(id, 0)?;
    let tb = input_type(lw, id, 1)?;
    let (k, n) = (tb.shape[0].clone(), tb.shape[1].clone());
    let (kc, nc) = match (k.as_const(), n.as_const()) {
        (Some(x), Some(y)) if x >= 0 && y >= 0 => (x as usize, y as usize),
        _ => return Err(lw.error("a constant B has symbolic dims")),
    };
    let b = lw
        .const_input(id, 1)
        .ok_or_else(|| lw.error("B is not a constant"))?;
    let v = f32s(&b);
    let name = const_name(lw, id, 1);
    let (packed, _) = pack_weights(lw, &name, 1, kc, nc, |_| v.clone());
    let last = *f.nodes.last().ok_or_else(|| lw.error("an empty fusion"))?;
    let out = lw.output(last, 0);
    let bias = match f.bias {
        Some((node, i)) => Some(lw.input(node, i)?.ptr()),
        None => None,
    };
    let residual = match f.residual {
        Some((node, i)) => Some((lw.input(node, i)?.ptr(), n.clone())),
        None => None,
    };
    // A is [batch.., m, k]; C [batch.., m, n], or [batch.., H, m, D] with a head split.
    let r = a.shape.len();
    let m = a.shape[r - 2].clone();
    let batch = &a.shape[..r - 2];
    let (m_eff, rsc, block, loops) = match f.heads {
        None => (prod(batch).mul(&m), n.clone(), (zero(), zero()), Vec::new()),
        Some(d) => {
            let d = Dim::from(d);
            let counts = batch.to_vec();
            let a_st: Vec<Dim> = contiguous(&a.shape)[..r - 2].to_vec();
            let mut full = batch.to_vec();
            full.extend([n.clone(), m.clone()]);
            let c_st: Vec<Dim> = contiguous(&full)[..r - 2].to_vec();
            let zeros = vec![zero(); r - 2];
            let loops = batch_loops(&counts, &a_st, &zeros, &c_st);
            (m.clone(), d.clone(), (d.clone(), m.mul(&d)), loops)
        }
    };
    emit_gemm_with(
        lw,
        GemmCall {
            m: m_eff,
            n,
            k: k.clone(),
            a: (a.ptr(), k, one()),
            b: (packed.ptr(), zero(), zero()),
            packed: true,
            c: (out.ptr(), rsc),
            accumulate: false,
            alpha: 1.0,
            loops,
        },
        Some(FusedSlots {
            bias,
            act: f.act.code(),
            residual,
            block,
        }),
    )
}

/// MatMul: numpy semantics (batch broadcasting, 1-D operands).
pub fn matmul(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    if let Some(f) = epilogue::plan(lw.graph, id) {
        if let Some(group) = siblings::group(lw, id) {
            return siblings::lower(lw, &group);
        }
        return matmul_fused(lw, id, &f);
    }
    let (ta, tb) = (input_type(lw, id, 0)?, input_type(lw, id, 1)?);
    let plan = Plan::new(lw, &ta.shape, &tb.shape)?;
    let out = lw.output(id, 0);
    match ta.dtype {
        DType::F32 => matmul_f32(lw, id, &plan, &out, false),
        DType::Bool => Err(lw.unsupported("bool MatMul")),
        d => {
            let (a, b) = (lw.input(id, 0)?, lw.input(id, 1)?);
            let mode = if d.is_float() { Mode::Float } else { Mode::Int };
            let terms = [
                Term {
                    strides: plan.a_loop(&contiguous(&plan.a2)),
                    x: a,
                    zp: None,
                },
                Term {
                    strides: plan.b_loop(&contiguous(&plan.b2)),
                    x: b,
                    zp: None,
                },
            ];
            emit_contract(
                lw,
                &out,
                &plan.out_strides(),
                &plan.sizes(),
                mode,
                1.0,
                false,
                &terms,
            )
        }
    }
}

/// MatMulInteger: `(a - a_zero_point) · (b - b_zero_point)` in i32.
pub fn matmul_integer(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let (ta, tb) = (input_type(lw, id, 0)?, input_type(lw, id, 1)?);
    let plan = Plan::new(lw, &ta.shape, &tb.shape)?;
    let out = lw.output(id, 0);
    let (a, b) = (lw.input(id, 0)?, lw.input(id, 1)?);
    let mut terms = Vec::new();
    for (x, i, is_a) in [(a, 2, true), (b, 3, false)] {
        let shape = if is_a { &plan.a2 } else { &plan.b2 };
        let map = |st: &[Dim]| {
            if is_a {
                plan.a_loop(st)
            } else {
                plan.b_loop(st)
            }
        };
        let zp = match lw.opt_input(id, i) {
            Some(z) => {
                let st = param_strides(lw, &z.shape, shape, is_a)?;
                Some((z, map(&st)))
            }
            None => None,
        };
        terms.push(Term {
            strides: map(&contiguous(shape)),
            x,
            zp,
        });
    }
    emit_contract(
        lw,
        &out,
        &plan.out_strides(),
        &plan.sizes(),
        Mode::Int,
        1.0,
        false,
        &terms,
    )
}

/// Gemm: `alpha · op(A) · op(B) + beta · C`, C broadcast to `[M, N]`.
pub fn gemm(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let attrs = &lw.graph.node(id).attrs;
    let flags = (|| -> Result<_, kiln_ir::ops::OpError> {
        Ok((
            attrs.int_or("transA", 0)? != 0,
            attrs.int_or("transB", 0)? != 0,
            attrs.float_or("alpha", 1.0)? as f64,
            attrs.float_or("beta", 1.0)? as f64,
        ))
    })();
    let (trans_a, trans_b, alpha, beta) = flags.map_err(|e| lw.error(e))?;
    let (ta, tb) = (input_type(lw, id, 0)?, input_type(lw, id, 1)?);
    if ta.shape.len() != 2 || tb.shape.len() != 2 {
        return Err(lw.error("Gemm operands must be 2-D"));
    }
    let out = lw.output(id, 0);
    let (m, k) = if trans_a {
        (ta.shape[1].clone(), ta.shape[0].clone())
    } else {
        (ta.shape[0].clone(), ta.shape[1].clone())
    };
    let n = if trans_b {
        tb.shape[0].clone()
    } else {
        tb.shape[1].clone()
    };
    // Element strides of op(A) and op(B).
    let (rsa, csa) = if trans_a {
        (one(), ta.shape[1].clone())
    } else {
        (ta.shape[1].clone(), one())
    };
    let (rsb, csb) = if trans_b {
        (one(), tb.shape[1].clone())
    } else {
        (tb.shape[1].clone(), one())
    };
    let mn = [m.clone(), n.clone()];
    let has_c = has_input(lw, id, 2);
    if has_c {
        let c = lw.input(id, 2)?;
        let st = bcast_strides(&c.shape, &mn)
            .ok_or_else(|| lw.unsupported(format!("Gemm C {:?} broadcast to {mn:?}", c.shape)))?;
        if c.dtype == DType::F32 && out.dtype == DType::F32 {
            let callee = lw.helper("fill_f32")?;
            let [rs, cs] = [st[0].clone(), st[1].clone()];
            lw.emit(
                callee,
                vec![
                    out.ptr(),
                    c.ptr(),
                    Arg::Int(m.clone()),
                    Arg::Int(n.clone()),
                    Arg::Int(rs),
                    Arg::Int(cs),
                    Arg::Bits(beta.to_bits()),
                ],
            );
        } else {
            emit_contract(
                lw,
                &out,
                &contiguous(&mn),
                &mn,
                Mode::Float,
                beta,
                false,
                &[Term {
                    x: c,
                    strides: st,
                    zp: None,
                }],
            )?;
        }
    }
    if ta.dtype != DType::F32 {
        if ta.dtype == DType::Bool {
            return Err(lw.unsupported("bool Gemm"));
        }
        let (a, b) = (lw.input(id, 0)?, lw.input(id, 1)?);
        let terms = [
            Term {
                x: a,
                strides: vec![rsa, zero(), csa],
                zp: None,
            },
            Term {
                x: b,
                strides: vec![zero(), csb, rsb],
                zp: None,
            },
        ];
        return emit_contract(
            lw,
            &out,
            &contiguous(&mn),
            &[m, n, k],
            Mode::Float,
            alpha,
            has_c,
            &terms,
        );
    }
    let a = lw.input(id, 0)?;
    let (b_arg, packed) = match lw.const_input(id, 1) {
        Some(t) => {
            let (kc, nc) = match (k.as_const(), n.as_const()) {
                (Some(x), Some(y)) if x >= 0 && y >= 0 => (x as usize, y as usize),
                _ => return Err(lw.error("a constant B has symbolic dims")),
            };
            let v = f32s(&t);
            let name = const_name(lw, id, 1);
            let (op, _) = pack_weights(lw, &name, 1, kc, nc, |_| {
                if trans_b {
                    let mut d = vec![0f32; kc * nc];
                    for j in 0..nc {
                        for p in 0..kc {
                            d[p * nc + j] = v[j * kc + p];
                        }
                    }
                    d
                } else {
                    v.clone()
                }
            });
            (op.ptr(), true)
        }
        None => (lw.input(id, 1)?.ptr(), false),
    };
    emit_gemm(
        lw,
        GemmCall {
            m,
            n: n.clone(),
            k,
            a: (a.ptr(), rsa, csa),
            b: (b_arg, rsb, csb),
            packed,
            c: (out.ptr(), n),
            accumulate: has_c,
            alpha,
            loops: Vec::new(),
        },
    )
}

/// QLinearMatMul: the integer product of `a - a_zero_point` and `b - b_zero_point`
/// (exact in f64), requantized with `a_scale · b_scale / y_scale` and `y_zero_point`.
pub fn qlinear_matmul(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let (ta, tb) = (input_type(lw, id, 0)?, input_type(lw, id, 3)?);
    let plan = Plan::new(lw, &ta.shape, &tb.shape)?;
    let out = lw.output(id, 0);
    let out_dt = out.dtype;
    if !matches!(out_dt, DType::I8 | DType::U8) {
        return Err(lw.unsupported(format!("QLinearMatMul producing {out_dt}")));
    }
    let mut full = plan.batch.clone();
    full.extend([plan.m.clone(), plan.n.clone()]);
    let acc = lw.scratch("accumulator", DType::F64, full.clone());
    let (a, az, b, bz) = (
        lw.input(id, 0)?,
        lw.input(id, 2)?,
        lw.input(id, 3)?,
        lw.input(id, 5)?,
    );
    let a_st = param_strides(lw, &az.shape, &plan.a2, true)?;
    let b_st = param_strides(lw, &bz.shape, &plan.b2, false)?;
    let terms = [
        Term {
            strides: plan.a_loop(&contiguous(&plan.a2)),
            x: a,
            zp: Some((az, plan.a_loop(&a_st))),
        },
        Term {
            strides: plan.b_loop(&contiguous(&plan.b2)),
            x: b,
            zp: Some((bz, plan.b_loop(&b_st))),
        },
    ];
    emit_contract(
        lw,
        &acc,
        &plan.out_strides(),
        &plan.sizes(),
        Mode::Float,
        1.0,
        false,
        &terms,
    )?;
    // Parameters broadcast over the full [batch..., m, n] output.
    let mut params = Vec::new();
    for (i, per_row) in [(1, true), (4, false), (6, false), (7, false)] {
        let p = lw.input(id, i)?;
        let st = param_strides(lw, &p.shape, &full, per_row)?;
        params.push((p, st));
    }
    let callee = lw.helper("qlinear_requantize")?;
    let mut args = vec![
        acc.ptr(),
        out.ptr(),
        Arg::Bits(dtype_code(out_dt)),
        Arg::Bits(dtype_code(params[0].0.dtype)),
        Arg::Bits(full.len() as u64),
    ];
    args.extend(full.iter().cloned().map(Arg::Int));
    for (p, st) in params {
        args.push(p.ptr());
        args.push(Arg::Bits(dtype_code(p.dtype)));
        args.extend(st.into_iter().map(Arg::Int));
    }
    lw.emit(callee, args);
    Ok(())
}

/// Einsum: every pattern through the generic contraction (labels become loop axes; a
/// repeated label in one operand sums its strides, a diagonal).
pub fn einsum(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let eq = lw
        .graph
        .node(id)
        .attrs
        .str("equation")
        .map_err(|e| lw.error(e))?
        .ok_or_else(|| lw.error("Einsum needs an `equation`"))?
        .to_string();
    let n_in = lw.graph.node(id).inputs().len();
    let mut ops = Vec::with_capacity(n_in);
    for i in 0..n_in {
        ops.push(lw.input(id, i)?);
    }
    let ranks: Vec<usize> = ops.iter().map(|o| o.shape.len()).collect();
    let plan = einsum_labels(&eq, &ranks).map_err(|e| lw.error(e))?;
    // Label sizes: the first operand axis that is not a broadcast 1.
    let mut sizes: Vec<Option<Dim>> = vec![None; plan.labels];
    for (op, axes) in ops.iter().zip(&plan.inputs) {
        for (d, &l) in op.shape.iter().zip(axes) {
            match &sizes[l] {
                None => sizes[l] = Some(d.clone()),
                Some(s) if s.as_const() == Some(1) => sizes[l] = Some(d.clone()),
                Some(s) if s == d || d.as_const() == Some(1) => {}
                Some(s) => {
                    return Err(
                        lw.unsupported(format!("Einsum label sizes {s} and {d} that may differ"))
                    )
                }
            }
        }
    }
    let sizes: Vec<Dim> = sizes.into_iter().map(|s| s.unwrap_or_else(one)).collect();
    let mut order = plan.output.clone();
    order.extend((0..plan.labels).filter(|l| !plan.output.contains(l)));
    let loop_sizes: Vec<Dim> = order.iter().map(|&l| sizes[l].clone()).collect();
    let out = lw.output(id, 0);
    let out_st = contiguous(&out.shape);
    let mut terms = Vec::with_capacity(ops.len());
    for (op, axes) in ops.into_iter().zip(&plan.inputs) {
        let st = contiguous(&op.shape);
        let strides = order
            .iter()
            .map(|&l| {
                axes.iter()
                    .enumerate()
                    .filter(|&(i, &a)| a == l && op.shape[i].as_const() != Some(1))
                    .fold(zero(), |acc, (i, _)| acc.add(&st[i]))
            })
            .collect();
        terms.push(Term {
            x: op,
            strides,
            zp: None,
        });
    }
    let mode = if out.dtype.is_float() {
        Mode::Float
    } else {
        Mode::Int
    };
    emit_contract(lw, &out, &out_st, &loop_sizes, mode, 1.0, false, &terms)
}

/// Det: the determinant of every trailing `n x n` matrix.
pub fn det(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    let r = x.shape.len();
    if r < 2 || !x.dtype.is_float() {
        return Err(lw.error("Det needs float matrices of rank >= 2"));
    }
    let y = lw.output(id, 0);
    let callee = lw.helper("det")?;
    lw.emit(
        callee,
        vec![
            x.ptr(),
            Arg::Bits(dtype_code(x.dtype)),
            y.ptr(),
            Arg::Int(y.numel()),
            Arg::Int(x.shape[r - 1].clone()),
        ],
    );
    Ok(())
}

/// An einsum equation resolved against operand ranks: each operand's axes as label ids, the
/// output's label ids, the number of labels. Ellipsis dims get ids `0..ell_rank`,
/// right-aligned across operands; letters follow in order of appearance.
struct Labels {
    inputs: Vec<Vec<usize>>,
    output: Vec<usize>,
    labels: usize,
}

fn einsum_labels(equation: &str, ranks: &[usize]) -> Result<Labels, String> {
    let eq: String = equation.chars().filter(|c| !c.is_whitespace()).collect();
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l, Some(r)),
        None => (eq.as_str(), None),
    };
    let parse = |t: &str| -> Result<(Vec<u8>, Option<usize>), String> {
        let (mut letters, mut ell) = (Vec::new(), None);
        let b = t.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i..].starts_with(b"...") && ell.is_none() {
                ell = Some(letters.len());
                i += 3;
            } else if b[i].is_ascii_alphabetic() {
                letters.push(b[i]);
                i += 1;
            } else {
                return Err(format!("bad einsum term \"{t}\""));
            }
        }
        Ok((letters, ell))
    };
    let terms: Vec<&str> = lhs.split(',').collect();
    if terms.len() != ranks.len() {
        return Err(format!(
            "einsum \"{equation}\" has {} operands, the node {}",
            terms.len(),
            ranks.len()
        ));
    }
    let parsed = terms
        .iter()
        .map(|t| parse(t))
        .collect::<Result<Vec<_>, _>>()?;
    let mut ell_ranks = Vec::new();
    for ((letters, ell), &r) in parsed.iter().zip(ranks) {
        ell_ranks.push(match ell {
            Some(_) if r >= letters.len() => r - letters.len(),
            None if r == letters.len() => 0,
            _ => return Err(format!("einsum \"{equation}\" does not fit rank {r}")),
        });
    }
    let ell_rank = ell_ranks.iter().copied().max().unwrap_or(0);
    let mut ids: Vec<u8> = Vec::new();
    let mut counts: Vec<usize> = Vec::new();
    let mut inputs = Vec::new();
    for ((letters, ell), &e) in parsed.iter().zip(&ell_ranks) {
        let mut axes = Vec::new();
        for (pos, &c) in letters.iter().enumerate() {
            if *ell == Some(pos) {
                axes.extend(ell_rank - e..ell_rank);
            }
            let i = match ids.iter().position(|&x| x == c) {
                Some(i) => i,
                None => {
                    ids.push(c);
                    counts.push(0);
                    ids.len() - 1
                }
            };
            counts[i] += 1;
            axes.push(ell_rank + i);
        }
        if *ell == Some(letters.len()) {
            axes.extend(ell_rank - e..ell_rank);
        }
        inputs.push(axes);
    }
    let output = match rhs {
        Some(r) => {
            let (letters, ell) = parse(r)?;
            let mut out = Vec::new();
            for (pos, &c) in letters.iter().enumerate() {
                if ell == Some(pos) {
                    out.extend(0..ell_rank);
                }
                let i = ids
                    .iter()
                    .position(|&x| x == c)
                    .ok_or_else(|| format!("einsum output label {} is unknown", c as char))?;
                out.push(ell_rank + i);
            }
            if ell == Some(letters.len()) {
                out.extend(0..ell_rank);
            }
            out
        }
        None => {
            let mut once: Vec<(u8, usize)> = ids
                .iter()
                .zip(&counts)
                .enumerate()
                .filter(|(_, (_, &n))| n == 1)
                .map(|(i, (&c, _))| (c, i))
                .collect();
            once.sort_unstable();
            let mut out: Vec<usize> = (0..ell_rank).collect();
            out.extend(once.into_iter().map(|(_, i)| ell_rank + i));
            out
        }
    };
    Ok(Labels {
        inputs,
        output,
        labels: ell_rank + ids.len(),
    })
}

#[cfg(test)]
mod tests {
    use crate::cpu::testing::{check, dense, floats};
    use kiln_ir::{DType, Tensor};

    #[test]
    fn matmul_2d_activation_and_constant_b() {
        for (m, k, n) in [(1, 1, 1), (5, 7, 3), (13, 40, 70), (33, 129, 65)] {
            let a = floats(&[m, k], 1);
            let b = floats(&[k, n], 2);
            check(
                &format!(
                    "graph @t(%a: f32[{m}, {k}], %b: f32[{k}, {n}]) -> (y: f32[{m}, {n}]) {{
                       %0 = MatMul(%a, %b) : f32[{m}, {n}]
                       return %0
                     }}"
                ),
                &[a.clone(), b],
                1e-4,
                1e-5,
            );
            check(
                &format!(
                    "graph @t(%a: f32[{m}, {k}]) -> (y: f32[{m}, {n}]) {{
                       %w = constant {{value = {}}} : f32[{k}, {n}]
                       %0 = MatMul(%a, %w) : f32[{m}, {n}]
                       return %0
                     }}",
                    dense(&[k, n], 3)
                ),
                &[a],
                1e-4,
                1e-5,
            );
        }
    }

    #[test]
    fn matmul_batched_broadcast_and_1d() {
        let cases: &[(&[usize], &[usize], &[usize])] = &[
            (&[2, 3, 4], &[4, 5], &[2, 3, 5]),
            (&[2, 3, 4], &[2, 4, 5], &[2, 3, 5]),
            (&[3, 4], &[2, 4, 5], &[2, 3, 5]),
            (&[2, 1, 3, 4], &[3, 4, 5], &[2, 3, 3, 5]),
            (&[1, 2, 3, 4], &[2, 1, 4, 5], &[2, 2, 3, 5]),
            (&[4], &[4, 5], &[5]),
            (&[3, 4], &[4], &[3]),
            (&[4], &[4], &[]),
            (&[4], &[2, 4, 5], &[2, 5]),
            (&[2, 3, 4], &[4], &[2, 3]),
            (&[5, 6, 37], &[5, 37, 1], &[5, 6, 1]),
        ];
        let fmt = |s: &[usize]| {
            s.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        for (i, &(sa, sb, sy)) in cases.iter().enumerate() {
            let a = floats(sa, 10 + i as u64);
            let b = floats(sb, 20 + i as u64);
            check(
                &format!(
                    "graph @t(%a: f32[{}], %b: f32[{}]) -> (y: f32[{}]) {{
                       %0 = MatMul(%a, %b) : f32[{}]
                       return %0
                     }}",
                    fmt(sa),
                    fmt(sb),
                    fmt(sy),
                    fmt(sy)
                ),
                &[a.clone(), b],
                1e-4,
                1e-5,
            );
            check(
                &format!(
                    "graph @t(%a: f32[{}]) -> (y: f32[{}]) {{
                       %w = constant {{value = {}}} : f32[{}]
                       %0 = MatMul(%a, %w) : f32[{}]
                       return %0
                     }}",
                    fmt(sa),
                    fmt(sy),
                    dense(sb, 30 + i as u64),
                    fmt(sb),
                    fmt(sy)
                ),
                &[a],
                1e-4,
                1e-5,
            );
        }
    }

    #[test]
    fn matmul_symbolic_seq_and_attention_shapes() {
        let x = floats(&[1, 7, 16], 1);
        check(
            &format!(
                "graph @t(%x: f32[1, seq, 16]) -> (y: f32[1, seq, 24]) {{
                   %w = constant {{value = {}}} : f32[16, 24]
                   %0 = MatMul(%x, %w) : f32[1, seq, 24]
                   return %0
                 }}",
                dense(&[16, 24], 5)
            ),
            &[x],
            1e-4,
            1e-5,
        );
        let q = floats(&[1, 3, 9, 8], 2);
        let k = floats(&[1, 3, 8, 9], 3);
        check(
            "graph @t(%q: f32[1, 3, seq, 8], %k: f32[1, 3, 8, seq]) -> (y: f32[1, 3, seq, seq]) {
               %0 = MatMul(%q, %k) : f32[1, 3, seq, seq]
               return %0
             }",
            &[q, k],
            1e-4,
            1e-5,
        );
    }

    /// The steps of the compiled graph, as `op / callee` lines.
    fn steps(text: &str) -> Vec<String> {
        let g = crate::cpu::testing::graph(text);
        let m =
            crate::cpu::testing::load(&g, crate::cpu::codegen::isa::CpuFeatures::host()).unwrap();
        m.manifest()
            .steps
            .iter()
            .map(|s| format!("{} / {}", s.op.split(' ').next().unwrap_or(""), s.kernel))
            .collect()
    }

    #[test]
    fn gemm_epilogues_bias_activation_residual() {
        let (k, n) = (40, 64);
        let w = dense(&[k, n], 3);
        let bias = dense(&[n], 4);
        let bias2 = dense(&[1, 1, n], 5);
        for (act, act_ty) in [
            ("%3 = Gelu(%2) : f32[batch, seq, 64]", "Gelu"),
            (
                "%3 = Gelu(%2) {approximate = \"tanh\"} : f32[batch, seq, 64]",
                "Gelu",
            ),
            ("%3 = Relu(%2) : f32[batch, seq, 64]", "Relu"),
            ("%3 = Mul(%2, %2) : f32[batch, seq, 64]", "Mul"),
        ] {
            let text = format!(
                "graph @t(%x: f32[batch, seq, {k}], %r: f32[batch, seq, {n}]) -> (y: f32[batch, seq, {n}]) {{
                   %w = constant {{value = {w}}} : f32[{k}, {n}]
                   %b = constant {{value = {bias}}} : f32[{n}]
                   %1 = MatMul(%x, %w) : f32[batch, seq, {n}]
                   %2 = Add(%b, %1) : f32[batch, seq, {n}]
                   {act}
                   %4 = Add(%3, %r) : f32[batch, seq, {n}]
                   return %4
                 }}"
            );
            for (b, s) in [(1, 5), (2, 13)] {
                check(
                    &text,
                    &[floats(&[b, s, k], 1), floats(&[b, s, n], 2)],
                    1e-5,
                    1e-5,
                );
            }
            let got = steps(&text);
            if act_ty == "Mul" {
                // Not an activation: the GEMM takes the bias only; the rest is elementwise.
                assert_eq!(got.len(), 2, "{got:?}");
                assert_eq!(got[0], "MatMul / helper gemm_f32_packed_fused");
            } else {
                assert_eq!(got, ["MatMul / helper gemm_f32_packed_fused"]);
            }
        }
        // A bias of shape [1, 1, n], added on the right; a residual first in its Add.
        let text = format!(
            "graph @t(%x: f32[seq, {k}], %r: f32[seq, {n}]) -> (y: f32[1, seq, {n}]) {{
               %w = constant {{value = {w}}} : f32[{k}, {n}]
               %b = constant {{value = {bias2}}} : f32[1, 1, {n}]
               %1 = MatMul(%x, %w) : f32[seq, {n}]
               %2 = Add(%1, %b) : f32[1, seq, {n}]
               return %2
             }}"
        );
        // The bias broadcast grows the rank: not absorbed.
        check(&text, &[floats(&[7, k], 1), floats(&[7, n], 2)], 1e-5, 1e-5);
        assert_eq!(steps(&text).len(), 2);
        let text = format!(
            "graph @t(%x: f32[seq, {k}], %r: f32[seq, {n}]) -> (y: f32[seq, {n}], z: f32[seq, {n}]) {{
               %w = constant {{value = {w}}} : f32[{k}, {n}]
               %b = constant {{value = {bias}}} : f32[{n}]
               %1 = MatMul(%x, %w) : f32[seq, {n}]
               %2 = Add(%1, %b) : f32[seq, {n}]
               %3 = Add(%r, %2) : f32[seq, {n}]
               %4 = Relu(%3) : f32[seq, {n}]
               return %4, %2
             }}"
        );
        // %2 is a graph output: the GEMM stops there, the residual Add stays a step.
        check(&text, &[floats(&[7, k], 1), floats(&[7, n], 2)], 1e-5, 1e-5);
        assert_eq!(steps(&text)[0], "MatMul / helper gemm_f32_packed_fused");
        assert!(steps(&text).len() >= 2);
    }

    #[test]
    fn gemm_writes_head_split_layout() {
        let (k, h, d) = (24, 3, 32);
        let n = h * d;
        let w = dense(&[k, n], 3);
        let bias = dense(&[n], 4);
        for (batch, x_ty, r_ty, perm, t_ty) in [
            (
                true,
                "f32[batch, seq, 24]",
                "f32[batch, seq, 3, 32]",
                "[0, 2, 1, 3]",
                "f32[batch, 3, seq, 32]",
            ),
            (
                false,
                "f32[seq, 24]",
                "f32[seq, 3, 32]",
                "[1, 0, 2]",
                "f32[3, seq, 32]",
            ),
        ] {
            let out = if batch {
                "f32[batch, seq, 96]"
            } else {
                "f32[seq, 96]"
            };
            let shape = if batch {
                "[batch, seq, 3, 32]"
            } else {
                "[seq, 3, 32]"
            };
            let text = format!(
                "graph @t(%x: {x_ty}) -> (y: {t_ty}) {{
                   %w = constant {{value = {w}}} : f32[{k}, {n}]
                   %b = constant {{value = {bias}}} : f32[{n}]
                   %s = dims {{value = dims<{shape}>}} : i64[{}]
                   %1 = MatMul(%x, %w) : {out}
                   %2 = Add(%1, %b) : {out}
                   %3 = Reshape(%2, %s) : {r_ty}
                   %4 = Transpose(%3) {{perm = {perm}}} : {t_ty}
                   return %4
                 }}",
                if batch { 4 } else { 3 }
            );
            for (b, s) in [(1, 5), (2, 17)] {
                let x = if batch {
                    floats(&[b, s, k], 1)
                } else {
                    floats(&[s, k], 1)
                };
                check(&text, &[x], 1e-5, 1e-5);
            }
            assert_eq!(
                steps(&text),
                ["MatMul / helper gemm_f32_packed_fused"],
                "{text}"
            );
        }
        // A head size that is not a multiple of the panel width: the transpose stays.
        let text = format!(
            "graph @t(%x: f32[seq, 24]) -> (y: f32[6, seq, 16]) {{
               %w = constant {{value = {w}}} : f32[{k}, {n}]
               %b = constant {{value = {bias}}} : f32[{n}]
               %s = dims {{value = dims<[seq, 6, 16]>}} : i64[3]
               %1 = MatMul(%x, %w) : f32[seq, 96]
               %2 = Add(%1, %b) : f32[seq, 96]
               %3 = Reshape(%2, %s) : f32[seq, 6, 16]
               %4 = Transpose(%3) {{perm = [1, 0, 2]}} : f32[6, seq, 16]
               return %4
             }}"
        );
        check(&text, &[floats(&[9, k], 1)], 1e-5, 1e-5);
        assert_eq!(steps(&text).len(), 2);
    }

    #[test]
    fn matmul_other_dtypes() {
        let a = floats(&[2, 3, 4], 1).cast(DType::F64);
        let b = floats(&[4, 5], 2).cast(DType::F64);
        check(
            "graph @t(%a: f64[2, 3, 4], %b: f64[4, 5]) -> (y: f64[2, 3, 5]) {
               %0 = MatMul(%a, %b) : f64[2, 3, 5]
               return %0
             }",
            &[a, b],
            1e-12,
            1e-12,
        );
        let a = Tensor::from_i64(
            DType::I32,
            vec![3, 4],
            &(0..12).map(|x| x - 5).collect::<Vec<_>>(),
        );
        let b = Tensor::from_i64(
            DType::I32,
            vec![4, 2],
            &(0..8).map(|x| 3 - x).collect::<Vec<_>>(),
        );
        check(
            "graph @t(%a: i32[3, 4], %b: i32[4, 2]) -> (y: i32[3, 2]) {
               %0 = MatMul(%a, %b) : i32[3, 2]
               return %0
             }",
            &[a, b],
            0.0,
            0.0,
        );
        let a = floats(&[3, 4], 1).cast(DType::F16);
        let b = floats(&[4, 2], 2).cast(DType::F16);
        check(
            "graph @t(%a: f16[3, 4], %b: f16[4, 2]) -> (y: f16[3, 2]) {
               %0 = MatMul(%a, %b) : f16[3, 2]
               return %0
             }",
            &[a, b],
            1e-3,
            1e-3,
        );
    }

    #[test]
    fn gemm_flags_and_bias() {
        let a = floats(&[4, 3], 1);
        let at = floats(&[3, 4], 2);
        let b = floats(&[3, 5], 3);
        let bt = floats(&[5, 3], 4);
        for (ta, tb, c) in [
            (0, 0, "f32[5]"),
            (1, 0, "f32[4, 1]"),
            (0, 1, "f32[]"),
            (1, 1, "f32[4, 5]"),
            (0, 0, ""),
        ] {
            let (sa, av) = if ta == 1 { ("3, 4", &at) } else { ("4, 3", &a) };
            let (sb, bv) = if tb == 1 { ("5, 3", &bt) } else { ("3, 5", &b) };
            let mut inputs = vec![av.clone(), bv.clone()];
            let (cparam, carg) = if c.is_empty() {
                (String::new(), String::new())
            } else {
                let shape: Vec<usize> = c[4..c.len() - 1]
                    .split(", ")
                    .filter(|s| !s.is_empty())
                    .map(|s| s.parse().unwrap())
                    .collect();
                inputs.push(floats(&shape, 9));
                (format!(", %c: {c}"), ", %c".to_string())
            };
            check(
                &format!(
                    "graph @t(%a: f32[{sa}], %b: f32[{sb}]{cparam}) -> (y: f32[4, 5]) {{
                       %0 = Gemm(%a, %b{carg}) {{alpha = 0.5, beta = 2.0, transA = {ta}, transB = {tb}}} : f32[4, 5]
                       return %0
                     }}"
                ),
                &inputs,
                1e-4,
                1e-5,
            );
            // Constant B (packed, transposed at compile time).
            check(
                &format!(
                    "graph @t(%a: f32[{sa}]{cparam}) -> (y: f32[4, 5]) {{
                       %b = constant {{value = {}}} : f32[{sb}]
                       %0 = Gemm(%a, %b{carg}) {{alpha = 1.5, transA = {ta}, transB = {tb}}} : f32[4, 5]
                       return %0
                     }}",
                    dense(if tb == 1 { &[5, 3] } else { &[3, 5] }, 7)
                ),
                &[&inputs[..1], &inputs[2..]].concat(),
                1e-4,
                1e-5,
            );
        }
    }

    #[test]
    fn integer_products() {
        let a = Tensor::from_i64(
            DType::U8,
            vec![2, 3, 4],
            &(0..24).map(|x| x * 10 % 256).collect::<Vec<_>>(),
        );
        let b = Tensor::from_i64(
            DType::U8,
            vec![4, 3],
            &(0..12).map(|x| 255 - x * 7).collect::<Vec<_>>(),
        );
        let az = Tensor::from_i64(DType::U8, vec![3], &[12, 0, 200]);
        let bz = Tensor::from_i64(DType::U8, vec![3], &[1, 2, 3]);
        check(
            "graph @t(%a: u8[2, 3, 4], %b: u8[4, 3], %az: u8[3], %bz: u8[3]) -> (y: i32[2, 3, 3]) {
               %0 = MatMulInteger(%a, %b, %az, %bz) : i32[2, 3, 3]
               return %0
             }",
            &[a.clone(), b.clone(), az, bz],
            0.0,
            0.0,
        );
        let s = |v: f32| Tensor::from_f32s(vec![], vec![v]).unwrap();
        let z = |v: i64| Tensor::from_i64(DType::U8, vec![], &[v]);
        check(
            "graph @t(%a: u8[2, 3, 4], %as: f32[], %az: u8[], %b: u8[4, 3], %bs: f32[], %bz: u8[], %ys: f32[], %yz: u8[]) -> (y: u8[2, 3, 3]) {
               %0 = QLinearMatMul(%a, %as, %az, %b, %bs, %bz, %ys, %yz) : u8[2, 3, 3]
               return %0
             }",
            &[a, s(0.02), z(100), b, s(0.01), z(120), s(0.5), z(128)],
            0.0,
            0.0,
        );
    }

    #[test]
    fn determinants() {
        check(
            "graph @t(%x: f32[2, 3, 3]) -> (y: f32[2]) {
               %0 = Det(%x) : f32[2]
               return %0
             }",
            &[floats(&[2, 3, 3], 1)],
            1e-5,
            1e-6,
        );
    }

    #[test]
    fn einsum_patterns() {
        type Case<'a> = (&'a str, &'a [&'a [usize]], &'a [usize]);
        let cases: &[Case] = &[
            ("bij,bjk->bik", &[&[2, 3, 4], &[2, 4, 5]], &[2, 3, 5]),
            ("ij->ji", &[&[3, 4]], &[4, 3]),
            ("i,i", &[&[5], &[5]], &[]),
            ("ii->i", &[&[4, 4]], &[4]),
            ("...ii->...i", &[&[2, 3, 3]], &[2, 3]),
            ("ij", &[&[3, 4]], &[3, 4]),
            ("ij->", &[&[3, 4]], &[]),
        ];
        let fmt = |s: &[usize]| {
            s.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        for (eq, shapes, out) in cases {
            let params: Vec<String> = shapes
                .iter()
                .enumerate()
                .map(|(i, s)| format!("%x{i}: f32[{}]", fmt(s)))
                .collect();
            let args: Vec<String> = (0..shapes.len()).map(|i| format!("%x{i}")).collect();
            let inputs: Vec<Tensor> = shapes
                .iter()
                .enumerate()
                .map(|(i, s)| floats(s, i as u64))
                .collect();
            check(
                &format!(
                    "graph @t({}) -> (y: f32[{}]) {{
                       %0 = Einsum({}) {{equation = \"{eq}\"}} : f32[{}]
                       return %0
                     }}",
                    params.join(", "),
                    fmt(out),
                    args.join(", "),
                    fmt(out)
                ),
                &inputs,
                1e-5,
                1e-6,
            );
        }
    }
}

/// Timing of MiniLM's products (`cargo test --release -p kiln-targets minilm_products --
/// --ignored --nocapture`).
#[cfg(test)]
mod bench {
    use std::collections::HashMap;
    use std::time::Instant;

    use kiln_runtime::{ElemType, Model, Tensor as RtTensor};

    use crate::cpu::codegen::isa::CpuFeatures;
    use crate::cpu::testing::{floats, graph, load_with};
    use crate::cpu::CpuOptions;

    fn load(text: &str, threads: usize) -> Model {
        let options = CpuOptions {
            features: CpuFeatures::host(),
            bounds: HashMap::new(),
        };
        load_with(&graph(text), &options, threads).unwrap()
    }

    fn input(shape: &[usize]) -> RtTensor {
        let t = floats(shape, 1);
        RtTensor::from_bytes(ElemType::F32, shape, &t.to_le_bytes()).unwrap()
    }

    fn time(name: &str, text: &str, inputs: &[RtTensor], flops: f64) {
        for threads in [1, 2] {
            let m = load(text, threads);
            for _ in 0..3 {
                m.run(inputs).unwrap();
            }
            let n = 50;
            let t = Instant::now();
            for _ in 0..n {
                m.run(inputs).unwrap();
            }
            let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
            println!(
                "{name:40} {threads} thr: {us:8.1} us  {:6.1} GFLOP/s",
                flops / us / 1e3
            );
        }
    }

    #[test]
    #[ignore]
    fn minilm_products() {
        for (k, n) in [(384, 384), (384, 1536), (1536, 384)] {
            let w: Vec<String> = floats(&[k, n], 2)
                .to_f64()
                .iter()
                .map(|x| format!("{:?}", *x as f32))
                .collect();
            let text = format!(
                "graph @t(%x: f32[1, seq, {k}]) -> (y: f32[1, seq, {n}]) {{
                   %w = constant {{value = dense<f32[{k}, {n}]>[{}]}} : f32[{k}, {n}]
                   %0 = MatMul(%x, %w) : f32[1, seq, {n}]
                   return %0
                 }}",
                w.join(", ")
            );
            time(
                &format!("[128 x {k}] x packed [{k} x {n}]"),
                &text,
                &[input(&[1, 128, k])],
                2.0 * 128.0 * k as f64 * n as f64,
            );
        }
        time(
            "[12 x 128 x 32] x [12 x 32 x 128]",
            "graph @t(%q: f32[1, 12, seq, 32], %k: f32[1, 12, 32, seq]) -> (y: f32[1, 12, seq, seq]) {
               %0 = MatMul(%q, %k) : f32[1, 12, seq, seq]
               return %0
             }",
            &[input(&[1, 12, 128, 32]), input(&[1, 12, 32, 128])],
            2.0 * 12.0 * 128.0 * 128.0 * 32.0,
        );
        time(
            "[12 x 128 x 128] x [12 x 128 x 32]",
            "graph @t(%p: f32[1, 12, seq, seq], %v: f32[1, 12, seq, 32]) -> (y: f32[1, 12, seq, 32]) {
               %0 = MatMul(%p, %v) : f32[1, 12, seq, 32]
               return %0
             }",
            &[input(&[1, 12, 128, 128]), input(&[1, 12, 128, 32])],
            2.0 * 12.0 * 128.0 * 128.0 * 32.0,
        );
    }
}
