//! Sibling projections: f32 MatMuls that read the same A, each with a constant 2-D B and an
//! epilogue [`epilogue::plan`] gives them (attention's Q, K and V: bias, head split), become
//! one `gemm_f32_packed_fused` step. A is read and packed once and the threads fork and join
//! once, where separate steps would do it per projection.
//!
//! The step's B is the siblings' weights side by side (`[k, n_1 + n_2 + ...]`, packed once),
//! its bias their biases end to end (zeros for a sibling without one), and its C layout
//! puts sibling `i`'s output in its own contiguous region of one arena buffer; each
//! sibling's last absorbed node becomes a view of its region and the other MatMuls emit
//! nothing. The arena plan sees one buffer, live until the last read of any region.
//!
//! Siblings merge when they agree on what the step computes after the product:
//! - the same activation; no residual (it would be a second, per-sibling input);
//! - either all a head split with the same head size `D` (C is `[H_1 + H_2 + ..., S, D]`,
//!   so sibling `i`'s heads follow sibling `i - 1`'s; their head counts may differ, as
//!   K/V's do under grouped-query attention), which needs a batch of one (the user's
//!   `--dim batch=1..1` counts), since with more the regions would interleave;
//! - or all plain rows of the same width `n` (C is `[siblings, rows, n]`, blocks of `n`
//!   columns `rows * n` apart);
//! - every `n_i` a multiple of the GEMM's panel width, so no block straddles two siblings.
//!
//! Their inputs besides A are constants, so no sibling depends on another and the step can
//! run where the first of them is lowered. Consumers read each output as a whole tensor (an
//! operand at its region's offset); a sibling whose output is a graph output gets a copy.

use kiln_ir::dim::Dim;
use kiln_ir::dtype::DType;
use kiln_ir::graph::{NodeId, Value};
use kiln_runtime::cpu::gemm::NR;

use super::epilogue::{self, GemmFusion};
use super::matmul::{const_name, emit_gemm_with, f32s, pack_weights, FusedSlots, GemmCall};
use super::prod;
use crate::cpu::lower::{Lowerer, Operand};
use crate::error::TargetError;

/// How the merged step lays out C.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Layout {
    /// Head-major `[H, S, D]` per sibling, heads of size `D`.
    Heads(i64),
    /// Row-major `[rows, n]` per sibling, every sibling `n` wide.
    Rows(i64),
}

/// What siblings must agree on to share a step.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Key {
    act: u64,
    layout: Layout,
}

/// One projection of a group.
#[derive(Clone, Debug)]
pub(super) struct Member {
    id: NodeId,
    fusion: GemmFusion,
    n: i64,
}

/// MatMuls computed by one GEMM step, in node order.
#[derive(Clone, Debug)]
pub(super) struct Group {
    members: Vec<Member>,
    layout: Layout,
    act: u64,
}

/// MatMul `id`'s A, merge key and member entry, when it could share a step with siblings.
fn member(lw: &Lowerer, id: NodeId) -> Option<(Value, Key, Member)> {
    let g = lw.graph;
    let fusion = epilogue::plan(g, id)?;
    if fusion.residual.is_some() {
        return None;
    }
    let node = g.node(id);
    let a = node.input(0)?;
    let n = g.value_type(node.input(1)?).shape[1].as_const()?;
    if n <= 0 || n % NR as i64 != 0 {
        return None;
    }
    let layout = match fusion.heads {
        Some(d) => {
            let sa = &g.value_type(a).shape;
            if lw.fixed_dim(&prod(&sa[..sa.len() - 2])) != Some(1) {
                return None;
            }
            Layout::Heads(d)
        }
        None => Layout::Rows(n),
    };
    let key = Key {
        act: fusion.act.code(),
        layout,
    };
    Some((a, key, Member { id, fusion, n }))
}

/// The group MatMul `id` is computed in (itself included), when it has siblings to merge
/// with. The same for every member, whichever is lowered first.
pub(super) fn group(lw: &Lowerer, id: NodeId) -> Option<Group> {
    let (a, key, _) = member(lw, id)?;
    let mut users: Vec<NodeId> = lw
        .graph
        .users(a)
        .into_iter()
        .filter(|&(_, i)| i == 0)
        .map(|(u, _)| u)
        .collect();
    users.sort_by_key(|u| u.index());
    users.dedup();
    let members: Vec<Member> = users
        .into_iter()
        .filter_map(|u| member(lw, u))
        .filter(|(ua, uk, _)| *ua == a && *uk == key)
        .map(|(_, _, m)| m)
        .collect();
    (members.len() >= 2).then_some(Group {
        members,
        layout: key.layout,
        act: key.act,
    })
}

/// Emits `group`'s one GEMM step and binds every member's output to its region.
pub(super) fn lower(lw: &mut Lowerer, group: &Group) -> Result<(), TargetError> {
    let first = group.members[0].id;
    let a = lw.input(first, 0)?;
    let r = a.shape.len();
    let kc = match a.shape[r - 1].as_const() {
        Some(k) if k >= 0 => k as usize,
        _ => return Err(lw.error("a constant B has symbolic dims")),
    };
    let total: usize = group.members.iter().map(|m| m.n as usize).sum();
    // The weights side by side: row p is every sibling's row p in turn.
    let mut dense = vec![0f32; kc * total];
    let mut names = Vec::new();
    let mut col = 0;
    for m in &group.members {
        let n = m.n as usize;
        let b = lw
            .const_input(m.id, 1)
            .ok_or_else(|| lw.error("B is not a constant"))?;
        let v = f32s(&b);
        if v.len() != kc * n {
            return Err(lw.error(format!("B has {} values, not {kc} x {n}", v.len())));
        }
        for p in 0..kc {
            dense[p * total + col..p * total + col + n].copy_from_slice(&v[p * n..(p + 1) * n]);
        }
        col += n;
        names.push(const_name(lw, m.id, 1));
    }
    let name = names.join(" + ");
    let (packed, _) = pack_weights(lw, &name, 1, kc, total, |_| dense.clone());
    let bias = if group.members.iter().any(|m| m.fusion.bias.is_some()) {
        let mut v = Vec::with_capacity(total);
        for m in &group.members {
            match m.fusion.bias {
                Some((node, i)) => {
                    let t = lw
                        .const_input(node, i)
                        .ok_or_else(|| lw.error("a bias is not a constant"))?;
                    let b = f32s(&t);
                    if b.len() != m.n as usize {
                        return Err(lw.error(format!(
                            "a bias has {} values, not {}",
                            b.len(),
                            m.n
                        )));
                    }
                    v.extend(b);
                }
                None => v.extend(std::iter::repeat_n(0f32, m.n as usize)),
            }
        }
        let bytes = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        let op = lw.weight(
            &format!("{name} (biases)"),
            DType::F32,
            vec![Dim::from(total as i64)],
            bytes,
            "dense",
        );
        Some(op.ptr())
    } else {
        None
    };
    let k = Dim::from(kc as i64);
    let n = Dim::from(total as i64);
    // Rows of C: S (a head split has a batch of one) or every row of A.
    let rows = match group.layout {
        Layout::Heads(_) => a.shape[r - 2].clone(),
        Layout::Rows(_) => prod(&a.shape[..r - 1]),
    };
    let (rsc, block, shape) = match group.layout {
        Layout::Heads(d) => {
            let d = Dim::from(d);
            let heads = Dim::from(total as i64).floor_div(&d);
            (
                d.clone(),
                (d.clone(), rows.mul(&d)),
                vec![heads, rows.clone(), d],
            )
        }
        Layout::Rows(w) => {
            let w = Dim::from(w);
            let count = Dim::from(group.members.len() as i64);
            (
                w.clone(),
                (w.clone(), rows.mul(&w)),
                vec![count, rows.clone(), w],
            )
        }
    };
    let out = lw.scratch("sibling outputs", DType::F32, shape);
    emit_gemm_with(
        lw,
        GemmCall {
            m: rows.clone(),
            n,
            k: k.clone(),
            a: (a.ptr(), k, Dim::from(1i64)),
            b: (packed.ptr(), Dim::from(0i64), Dim::from(0i64)),
            packed: true,
            c: (out.ptr(), rsc),
            accumulate: false,
            alpha: 1.0,
            loops: Vec::new(),
        },
        Some(FusedSlots {
            bias,
            act: group.act,
            residual: None,
            block,
        }),
    )?;
    // Sibling i's region starts after the n_j * rows floats of those before it.
    let mut start = Dim::from(0i64);
    for m in &group.members {
        let last = *m
            .fusion
            .nodes
            .last()
            .ok_or_else(|| lw.error("an empty fusion"))?;
        let shape = lw
            .graph
            .value_type(Value {
                node: last,
                output: 0,
            })
            .shape
            .clone();
        let bytes = start.mul(&Dim::from(DType::F32.size() as i64));
        let view = Operand {
            buf: out.buf,
            offset: out.offset.add(&bytes),
            dtype: DType::F32,
            shape,
        };
        lw.alias_output(last, 0, &view)?;
        start = start.add(&rows.mul(&Dim::from(m.n)));
        lw.absorb(m.id);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use kiln_ir::Tensor;

    use crate::cpu::codegen::isa::{x86_64_isa, CpuFeatures};
    use crate::cpu::lower::{lower_bounded, Callee};
    use crate::cpu::testing::{dense, floats, graph, interpret, load_with, run};
    use crate::cpu::CpuOptions;

    /// One projection of `%{x}` (`[{lead}, k]`) named `p`: MatMul by a constant `[k, n]`, a
    /// bias Add, an activation, and a head split into heads of `d`, each when asked for.
    /// Returns the text and the type of its last value, `%{p}`.
    pub(super) struct Proj<'a> {
        p: &'a str,
        x: &'a str,
        lead: &'a str,
        k: usize,
        n: usize,
        bias: bool,
        act: &'a str,
        heads: Option<usize>,
    }

    impl Proj<'_> {
        fn text(&self, seed: u64) -> (String, String) {
            let Proj {
                p, x, lead, k, n, ..
            } = *self;
            let mut t = format!(
                "%{p}w = constant {{value = {}}} : f32[{k}, {n}]\n",
                dense(&[k, n], seed)
            );
            let ty = format!("f32[{lead}, {n}]");
            t += &format!("%{p}0 = MatMul(%{x}, %{p}w) : {ty}\n");
            let mut last = format!("%{p}0");
            if self.bias {
                t += &format!(
                    "%{p}b = constant {{value = {}}} : f32[{n}]\n",
                    dense(&[n], seed + 100)
                );
                t += &format!("%{p}1 = Add({last}, %{p}b) : {ty}\n");
                last = format!("%{p}1");
            }
            if !self.act.is_empty() {
                t += &format!("%{p}2 = {}({last}) : {ty}\n", self.act);
                last = format!("%{p}2");
            }
            let mut out_ty = ty;
            if let Some(d) = self.heads {
                let h = n / d;
                let rank = lead.split(',').count();
                let (perm, split, heads_ty) = if rank == 1 {
                    (
                        "[1, 0, 2]",
                        format!("{lead}, {h}, {d}"),
                        format!("{h}, {lead}, {d}"),
                    )
                } else {
                    let (b, s) = lead.split_once(", ").unwrap();
                    (
                        "[0, 2, 1, 3]",
                        format!("{lead}, {h}, {d}"),
                        format!("{b}, {h}, {s}, {d}"),
                    )
                };
                t += &format!(
                    "%{p}s = dims {{value = dims<[{split}]>}} : i64[{}]\n",
                    rank + 2
                );
                t += &format!("%{p}3 = Reshape({last}, %{p}s) : f32[{split}]\n");
                t += &format!("%{p} = Transpose(%{p}3) {{perm = {perm}}} : f32[{heads_ty}]\n");
                out_ty = format!("f32[{heads_ty}]");
            } else {
                t += &format!("%{p} = Identity({last}) : {out_ty}\n");
            }
            (t, out_ty)
        }
    }

    /// Compiles `text` (with `bounds` on its dims), runs it on `inputs` (two threads, so
    /// the merged step's columns are split), compares every output with the reference
    /// interpreter's, and returns how many GEMM steps the program has.
    fn check_gemms(text: &str, inputs: &[Tensor], bounds: &[(&str, i64, i64)]) -> usize {
        let g = graph(text);
        let bounds: HashMap<String, (i64, i64)> = bounds
            .iter()
            .map(|&(s, lo, hi)| (s.to_string(), (lo, hi)))
            .collect();
        let want = interpret(&g, inputs);
        let options = CpuOptions {
            features: CpuFeatures::host(),
            bounds: bounds.clone(),
        };
        let model = load_with(&g, &options, 2).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let got = run(&model, inputs);
        assert_eq!(got.len(), want.len());
        for ((name, w), g) in want.iter().zip(&got) {
            assert_eq!(w.shape(), g.shape(), "output {name}: shape");
            for (i, (a, b)) in w.to_f64().iter().zip(g.to_f64()).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-5 + 1e-4 * a.abs(),
                    "output {name}[{i}]: want {a}, got {b}\n{text}"
                );
            }
        }
        let isa = x86_64_isa(CpuFeatures::host()).unwrap();
        let program = lower_bounded(&g, &isa, &bounds).unwrap();
        program
            .steps
            .iter()
            .filter(|s| match s.callee {
                Callee::Helper(h) => program.helpers[h].starts_with("gemm_f32"),
                Callee::Kernel(_) => false,
            })
            .count()
    }

    /// A graph of `projs` with inputs `params` and body `tail` after the projections.
    pub(super) fn graph_text(params: &str, outs: &str, projs: &[Proj], tail: &str) -> String {
        let body: String = projs
            .iter()
            .enumerate()
            .map(|(i, p)| p.text(i as u64 + 1).0)
            .collect();
        format!("graph @t({params}) -> ({outs}) {{\n{body}{tail}\n}}")
    }

    pub(super) fn qkv<'a>(
        x: &'a str,
        lead: &'a str,
        k: usize,
        n: [usize; 3],
        d: usize,
    ) -> [Proj<'a>; 3] {
        let proj = |p, n| Proj {
            p,
            x,
            lead,
            k,
            n,
            bias: true,
            act: "",
            heads: Some(d),
        };
        [proj("q", n[0]), proj("k", n[1]), proj("v", n[2])]
    }

    #[test]
    fn attention_projections_become_one_gemm() {
        let projs = qkv("x", "1, seq", 40, [96, 96, 96], 32);
        let text = graph_text(
            "%x: f32[1, seq, 40]",
            "y: f32[1, 3, seq, 32]",
            &projs,
            "%y = attention(%q, %k, %v) {scale = 0.25} : f32[1, 3, seq, 32]\nreturn %y",
        );
        for s in [1, 5, 17] {
            assert_eq!(check_gemms(&text, &[floats(&[1, s, 40], 7)], &[]), 1);
        }
        // Unbatched, the head-major outputs are graph outputs (copied out of the regions);
        // a sibling without a bias adds zeros.
        let mut projs = qkv("x", "seq", 24, [64, 64, 64], 32);
        projs[1].bias = false;
        let text = graph_text(
            "%x: f32[seq, 24]",
            "q: f32[2, seq, 32], k: f32[2, seq, 32], v: f32[2, seq, 32]",
            &projs,
            "return %q, %k, %v",
        );
        assert_eq!(check_gemms(&text, &[floats(&[9, 24], 8)], &[]), 1);
    }

    #[test]
    fn grouped_query_projections_of_different_widths() {
        let mut projs = qkv("x", "1, seq", 48, [128, 64, 64], 32);
        projs[2].bias = false;
        let text = graph_text(
            "%x: f32[1, seq, 48]",
            "y: f32[1, 4, seq, 32]",
            &projs,
            "%y = attention(%q, %k, %v) : f32[1, 4, seq, 32]\nreturn %y",
        );
        assert_eq!(check_gemms(&text, &[floats(&[1, 11, 48], 9)], &[]), 1);
    }

    #[test]
    fn symbolic_batch_merges_when_bounded_to_one() {
        let projs = qkv("x", "batch, seq", 40, [64, 64, 64], 32);
        let text = graph_text(
            "%x: f32[batch, seq, 40]",
            "y: f32[batch, 2, seq, 32]",
            &projs,
            "%y = attention(%q, %k, %v) : f32[batch, 2, seq, 32]\nreturn %y",
        );
        // With more than one batch entry the head-major regions would interleave.
        assert_eq!(check_gemms(&text, &[floats(&[2, 6, 40], 3)], &[]), 3);
        let one = [("batch", 1, 1), ("seq", 1, 64)];
        assert_eq!(check_gemms(&text, &[floats(&[1, 6, 40], 3)], &one), 1);
    }

    #[test]
    fn plain_rows_merge_and_live_until_the_last_read() {
        let proj = |p, bias| Proj {
            p,
            x: "x",
            lead: "batch, seq",
            k: 20,
            n: 64,
            bias,
            act: "Gelu",
            heads: None,
        };
        let projs = [proj("a", true), proj("b", false), proj("c", true)];
        // `a` is read first, `c` last, with other buffers live in between.
        let text = graph_text(
            "%x: f32[batch, seq, 20]",
            "y: f32[batch, seq, 64]",
            &projs,
            "%r = Softmax(%a) {axis = -1} : f32[batch, seq, 64]
             %t = Softmax(%b) {axis = 1} : f32[batch, seq, 64]
             %u = Mul(%r, %t) : f32[batch, seq, 64]
             %w = Softmax(%u) {axis = 0} : f32[batch, seq, 64]
             %y = Sub(%w, %c) : f32[batch, seq, 64]
             return %y",
        );
        assert_eq!(check_gemms(&text, &[floats(&[3, 5, 20], 4)], &[]), 1);
    }

    #[test]
    fn near_misses_stay_separate_gemms() {
        let tail = "%y = attention(%q, %k, %v) : f32[1, 3, seq, 32]\nreturn %y";
        let outs = "y: f32[1, 3, seq, 32]";
        // Different A for each.
        let mut projs = qkv("x", "1, seq", 16, [96, 96, 96], 32);
        projs[1].x = "x2";
        projs[2].x = "x3";
        let text = graph_text(
            "%x: f32[1, seq, 16], %x2: f32[1, seq, 16], %x3: f32[1, seq, 16]",
            outs,
            &projs,
            tail,
        );
        let xs: Vec<Tensor> = (0..3).map(|i| floats(&[1, 7, 16], 20 + i)).collect();
        assert_eq!(check_gemms(&text, &xs, &[]), 3);
        // V's weights are an input: Q and K merge, V is its own product.
        let projs = qkv("x", "1, seq", 16, [96, 96, 96], 32);
        let text = graph_text("%x: f32[1, seq, 16], %vv: f32[16, 96]", outs, &projs, tail)
            .replace("MatMul(%x, %vw)", "MatMul(%x, %vv)");
        let ins = [floats(&[1, 7, 16], 1), floats(&[16, 96], 2)];
        assert_eq!(check_gemms(&text, &ins, &[]), 2);
        // One sibling with an activation the others lack.
        let mut projs = qkv("x", "1, seq", 16, [96, 96, 96], 32);
        projs[0].act = "Relu";
        let text = graph_text("%x: f32[1, seq, 16]", outs, &projs, tail);
        assert_eq!(check_gemms(&text, &[floats(&[1, 7, 16], 3)], &[]), 2);
        // Different head sizes: Q and V merge, K (heads of 64) does not.
        let mut projs = qkv("x", "1, seq", 16, [64, 64, 64], 32);
        projs[1].heads = Some(64);
        let text = graph_text(
            "%x: f32[1, seq, 16]",
            "q: f32[1, 2, seq, 32], k: f32[1, 1, seq, 64], v: f32[1, 2, seq, 32]",
            &projs,
            "return %q, %k, %v",
        );
        assert_eq!(check_gemms(&text, &[floats(&[1, 7, 16], 4)], &[]), 2);
        // Widths that are not a multiple of the panel width.
        let proj = |p| Proj {
            p,
            x: "x",
            lead: "seq",
            k: 16,
            n: 48,
            bias: true,
            act: "",
            heads: None,
        };
        let text = graph_text(
            "%x: f32[seq, 16]",
            "y: f32[seq, 48]",
            &[proj("a"), proj("b"), proj("c")],
            "%s = Add(%a, %b) : f32[seq, 48]\n%y = Mul(%s, %c) : f32[seq, 48]\nreturn %y",
        );
        assert_eq!(check_gemms(&text, &[floats(&[7, 16], 5)], &[]), 3);
    }
}

/// Timing of MiniLM's Q/K/V projections (and the attention reading them) with the
/// projections as one step against three, alternating in the same run
/// (`cargo test --release -p kiln-targets qkv_projection_timing -- --ignored --nocapture`).
#[cfg(test)]
mod bench {
    use std::collections::HashMap;
    use std::time::Instant;

    use kiln_runtime::{ElemType, Model, Tensor as RtTensor};

    use super::tests::{graph_text, qkv};
    use crate::cpu::codegen::isa::CpuFeatures;
    use crate::cpu::testing::{floats, graph, load_with};
    use crate::cpu::CpuOptions;

    fn load(text: &str, bounds: &[(&str, i64, i64)], threads: usize) -> Model {
        let bounds = bounds
            .iter()
            .map(|&(s, lo, hi)| (s.to_string(), (lo, hi)))
            .collect::<HashMap<_, _>>();
        let options = CpuOptions {
            features: CpuFeatures::host(),
            bounds,
        };
        load_with(&graph(text), &options, threads).unwrap()
    }

    #[test]
    #[ignore]
    fn qkv_projection_timing() {
        let projs = qkv("x", "batch, seq", 384, [384, 384, 384], 32);
        let text = graph_text(
            "%x: f32[batch, seq, 384]",
            "y: f32[batch, 12, seq, 32]",
            &projs,
            "%y = attention(%q, %k, %v) : f32[batch, 12, seq, 32]\nreturn %y",
        );
        let x = floats(&[1, 128, 384], 1);
        let x = [RtTensor::from_bytes(ElemType::F32, &[1, 128, 384], &x.to_le_bytes()).unwrap()];
        for threads in [1, 2] {
            // Unbounded, the batch may exceed one: three steps. Bounded to one: one step.
            let models = [
                ("three steps", load(&text, &[], threads)),
                ("one step", load(&text, &[("batch", 1, 1)], threads)),
            ];
            let mut times: Vec<Vec<f64>> = vec![Vec::new(); 2];
            for _ in 0..3 {
                for (_, m) in &models {
                    m.run(&x).unwrap();
                }
            }
            for _ in 0..200 {
                for (i, (_, m)) in models.iter().enumerate() {
                    let t = Instant::now();
                    m.run(&x).unwrap();
                    times[i].push(t.elapsed().as_secs_f64() * 1e6);
                }
            }
            let median = |v: &mut Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            let (a, b) = (median(&mut times[0]), median(&mut times[1]));
            for ((name, _), us) in models.iter().zip([a, b]) {
                println!(
                    "Q/K/V [128 x 384] x 3 x [384 x 384] + attention, {name:11} {threads} thr: {us:8.1} us"
                );
            }
            println!("one step / three steps: {:.2}", b / a);
        }
    }
}
