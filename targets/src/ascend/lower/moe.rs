//! `moe` (semantics: kiln-ir's `ops/fused/moe.rs`) as CANN runs a mixture of experts:
//!
//! ```text
//! router logits (f32) --MoeGatingTopK--> weights [N, k] f32, experts [N, k] i32
//!                     (--MoeGatingTopKHash--> for hash-routed layers: kiln's own kernel)
//! x, experts --MoeInitRoutingV2--> x by expert [N·k, H], row index, expert cumsum [E]
//!   --GroupedMatmulSwiglu--> h = act(x·gate[e] + bg, x·up[e] + bu)  [N·k, I]
//!      (GroupedMatmul then the activation when the experts have no up projection)
//!   --GroupedMatmul--> h·down[e]                                   [N·k, H]
//!   --MoeFinalizeRouting--> y = shared(x) + sum_j w_j · (row + b2[e])  [N, H]
//! ```
//!
//! Routing is computed in f32 (the logits stay f32 from the router matmul, see
//! [`super::precision`]). The expert weights are converted at compile time
//! ([`super::moe_experts`]); the shared experts run on MatMulV3 and vector kernels
//! ([`super::moe_shared`]). Every launch carries its attributes in words, so a launch list
//! reads "MoeGatingTopK (routing: group-limited ..., scores: sigmoid, bias: ...)".

use kiln_ir::graph::NodeId;
use kiln_ir::tensor::Tensor;
use kiln_ir::AttrsExt;
use kiln_runtime::ascend::descriptor::{CoreType, Format, Tiling};
use kiln_runtime::ascend::Profile;
use kiln_runtime::ElemType;

use super::{elementwise, moe_experts, moe_shared, DevTensor, LowerFn, Lowerer};
use crate::ascend::format;
use crate::ascend::tiling::cube::{self, CubeTiling};
use crate::ascend::tiling::vector::{self, row_bytes};
use crate::error::TargetError;

pub const OPS: &[(&str, LowerFn)] = &[("moe", moe)];

/// The experts' activation, as GroupedMatmulSwiglu's tiling (`activation` 0: swiglu with
/// alpha, beta, limit; 1: gelu(g)·u; 2: relu(g)·u; 3: g·u) and as vector kernels.
pub struct Activation {
    name: String,
    kind: i64,
    alpha: f32,
    beta: f32,
    limit: Option<f32>,
}

impl Activation {
    fn read(lw: &Lowerer, id: NodeId) -> Result<Activation, TargetError> {
        let attrs = &lw.graph.node(id).attrs;
        let err = |e: kiln_ir::ops::OpError| lw.error(e);
        let name = attrs.str_or("activation_type", "swiglu").map_err(err)?;
        let (kind, alpha, beta, limit) = match name {
            "swiglu" => (
                0,
                attrs.float_or("activation_alpha", 1.0).map_err(err)?,
                attrs.float_or("activation_beta", 0.0).map_err(err)?,
                attrs.float("swiglu_limit").map_err(err)?,
            ),
            "silu" => (0, 1.0, 0.0, None),
            "gelu" => (1, 0.0, 0.0, None),
            "relu" => (2, 0.0, 0.0, None),
            "identity" => (3, 0.0, 0.0, None),
            a => return Err(lw.unsupported(format!("moe with activation_type {a:?}"))),
        };
        Ok(Activation {
            name: name.to_string(),
            kind,
            alpha,
            beta,
            limit,
        })
    }

    fn tiling(&self, t: &mut Tiling) {
        t.push("activation", self.kind);
        t.push("alphaBits", self.alpha.to_bits() as i64);
        t.push("betaBits", self.beta.to_bits() as i64);
        t.push("limitBits", self.limit.unwrap_or(0.0).to_bits() as i64);
        t.push("hasLimit", self.limit.is_some() as i64);
    }

    /// "swiglu (alpha 1.702, beta 1, limit 7)", "gelu".
    fn describe(&self) -> String {
        if self.name != "swiglu" {
            return format!("{}(gate)·up", self.name);
        }
        let mut s = format!("swiglu (alpha {}, beta {}", self.alpha, self.beta);
        if let Some(l) = self.limit {
            s.push_str(&format!(", limit {l}"));
        }
        s + ")"
    }

    /// h = act(g, u) on the vector cores.
    pub fn launch_pair(
        &self,
        lw: &mut Lowerer,
        g: &DevTensor,
        u: &DevTensor,
        h: &DevTensor,
    ) -> Result<(), TargetError> {
        if self.kind == 0 {
            let t = Tiling::new()
                .with("alphaBits", self.alpha.to_bits() as i64)
                .with("betaBits", self.beta.to_bits() as i64)
                .with("limitBits", self.limit.unwrap_or(0.0).to_bits() as i64)
                .with("hasLimit", self.limit.is_some() as i64);
            return elementwise::launch_attrs(lw, "SwiGlu", &[g.clone(), u.clone()], h, t);
        }
        let a = match self.kind {
            3 => g.clone(),
            _ => {
                let a = lw.scratch("activated gate", h.dtype, Format::Nd, g.shape.clone());
                self.launch_single(lw, g, &a)?;
                a
            }
        };
        elementwise::launch_attrs(lw, "Mul", &[a, u.clone()], h, Tiling::new())
    }

    /// h = act(g) on the vector cores (experts without an up projection).
    pub fn launch_single(
        &self,
        lw: &mut Lowerer,
        g: &DevTensor,
        h: &DevTensor,
    ) -> Result<(), TargetError> {
        let (name, t) = match self.name.as_str() {
            "gelu" => ("GeluV2", Tiling::new().with("approximate", 0)),
            "relu" => ("Relu", Tiling::new()),
            "identity" => ("TensorMove", Tiling::new()),
            a => {
                return Err(lw.unsupported(format!(
                    "moe experts with activation {a} and no up projection"
                )))
            }
        };
        elementwise::launch_attrs(lw, name, std::slice::from_ref(g), h, t)
    }
}

fn up(x: i64, a: i64) -> i64 {
    (x + a - 1) / a * a
}

/// A constant (or computed) float input kept f32 on the device: the selection bias.
fn f32_input(lw: &mut Lowerer, id: NodeId, i: usize) -> Result<Option<DevTensor>, TargetError> {
    let Some(t) = lw.const_input(id, i) else {
        return match lw.opt_input(id, i)? {
            Some(t) => {
                let t = lw.to_format(&t, Format::Nd)?;
                lw.cast(&t, ElemType::F32).map(Some)
            }
            None => Ok(None),
        };
    };
    let flat = Tensor::from_f64(t.dtype(), vec![t.len()], &t.to_f64());
    let bytes = format::encode(&flat, ElemType::F32, Format::Nd).map_err(|e| lw.error(e))?;
    let name = format!("{} selection bias (f32)", lw.graph.node(id).label());
    Ok(Some(lw.weight(
        &name,
        ElemType::F32,
        Format::Nd,
        vec![t.len() as i64],
        bytes,
    )))
}

fn moe(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let attrs = lw.graph.node(id).attrs.clone();
    let int = |n: &str, d: i64| attrs.int_or(n, d).map_err(|e| lw.error(e));
    let (k, n_group, topk_group) = (int("k", 1)?, int("n_group", 1)?, int("topk_group", 1)?);
    let renorm = int("normalize_routing_weights", 0)?;
    let fusion = int("swiglu_fusion", 0)?;
    let scale = attrs
        .float_or("routed_scaling_factor", 1.0)
        .map_err(|e| lw.error(e))?;
    let score = attrs
        .str_or("scoring_func", "softmax")
        .map_err(|e| lw.error(e))?
        .to_string();
    let norm_type = match score.as_str() {
        "softmax" => 0,
        "sigmoid" => 1,
        "sqrt_softplus" => 2,
        s => return Err(lw.unsupported(format!("moe with scoring_func {s:?}"))),
    };
    let act = Activation::read(lw, id)?;
    let out = lw.output(id, 0)?;
    let dt = out.dtype;
    let x = lw.input(id, 0)?;
    let x = lw.to_format(&x, Format::Nd)?;
    let x = lw.cast(&x, dt)?;
    let logits = lw.input(id, 1)?;
    let logits = lw.to_format(&logits, Format::Nd)?;
    let logits = lw.cast(&logits, ElemType::F32)?;
    let experts = moe_experts::convert(lw, id, fusion)?;
    let (n, h) = x.matrix();
    let e = experts.experts;
    if logits.matrix() != (n, e) || experts.hidden != h {
        return Err(lw.error(format!(
            "router logits {:?} for x {:?} and {e} experts of hidden size {}",
            logits.shape, x.shape, experts.hidden
        )));
    }
    let hashed = lw.graph.node(id).input(9).is_some();
    let p = lw.profile;

    // Routing.
    let bias = f32_input(lw, id, 8)?;
    let weights = lw.scratch("routing weights", ElemType::F32, Format::Nd, vec![n, k]);
    let chosen = lw.scratch("routed experts", ElemType::I32, Format::Nd, vec![n, k]);
    let t = vector::rows(
        p,
        n,
        e,
        |b| b * row_bytes(e, 4) + 2 * row_bytes(e, 4) + 2 * b * row_bytes(k, 4) + row_bytes(k, 8),
        row_bytes(e, 4),
    )
    .map_err(|err| lw.error(format!("MoeGatingTopK of {e} experts: {err}")))?;
    let mut tiling = t.data();
    tiling.push("k", k);
    tiling.push("kGroup", topk_group);
    tiling.push("groupCount", n_group);
    tiling.push("normType", norm_type);
    tiling.push("renorm", renorm);
    tiling.push("routedScalingFactorBits", scale.to_bits() as i64);
    tiling.push("hasBias", bias.is_some() as i64);
    let mut inputs = vec![Some(logits), bias.clone()];
    let routing = if hashed {
        let table = lw.input(id, 9)?;
        let ids = lw.input(id, 10)?;
        inputs.extend([Some(table), Some(ids)]);
        format!("hash of the token id (tid2eid), {k} per token")
    } else if n_group > 1 {
        format!("group-limited (best {topk_group} of {n_group} groups) top-{k} of {e}")
    } else {
        format!("top-{k} of {e}")
    };
    let gating = if hashed {
        "MoeGatingTopKHash"
    } else {
        "MoeGatingTopK"
    };
    lw.launch(
        gating,
        CoreType::Aiv,
        t.block_dim,
        tiling,
        inputs,
        vec![weights.clone(), chosen.clone()],
    );
    let mut a = vec![
        ("scores", score.replace('_', "-")),
        ("routing", routing),
        (
            "weights",
            match renorm {
                0 => format!("scores times {scale}"),
                _ => format!("renormalised times {scale}"),
            },
        ),
    ];
    if bias.is_some() {
        a.push(("bias", "added for selection".into()));
    }
    lw.set_attrs(&a);

    // Permutation by expert.
    let nk = n * k;
    let size = dt.size() as i64;
    let expanded = lw.scratch("tokens by expert", dt, Format::Nd, vec![nk, h]);
    let row_index = lw.scratch("expanded row index", ElemType::I32, Format::Nd, vec![nk]);
    let group_list = lw.scratch("expert token cumsum", ElemType::I64, Format::Nd, vec![e]);
    let fixed = row_bytes(nk, 8) + row_bytes(nk, 4) + row_bytes(e, 8);
    let t = vector::rows(p, nk, h, |b| b * row_bytes(h, size), fixed)
        .map_err(|err| lw.error(format!("MoeInitRoutingV2 of {nk} rows: {err}")))?;
    let mut tiling = t.data();
    tiling.push("k", k);
    tiling.push("experts", e);
    lw.launch(
        "MoeInitRoutingV2",
        CoreType::Aiv,
        t.block_dim,
        tiling,
        vec![Some(x.clone()), Some(chosen.clone())],
        vec![expanded.clone(), row_index.clone(), group_list.clone()],
    );
    lw.set_attrs(&[
        ("expertTokens", "cumsum".into()),
        ("dropPad", "none".into()),
    ]);

    // The experts.
    let inter = experts.inter;
    let hidden = lw.scratch("expert activations", dt, Format::Nd, vec![nk, inter]);
    match &experts.up {
        Some(upw) => {
            let ins = vec![
                Some(expanded.clone()),
                Some(experts.gate.clone()),
                Some(upw.clone()),
                experts.gate_bias.clone(),
                experts.up_bias.clone(),
                Some(group_list.clone()),
            ];
            grouped(lw, ins, &hidden, (nk, inter, h, e), Some(&act))?;
            lw.set_attrs(&[
                ("activation", act.describe()),
                ("groupList", "cumsum".into()),
            ]);
        }
        None => {
            let pre = lw.scratch("expert gate projections", dt, Format::Nd, vec![nk, inter]);
            let ins = vec![
                Some(expanded.clone()),
                Some(experts.gate.clone()),
                experts.gate_bias.clone(),
                Some(group_list.clone()),
            ];
            grouped(lw, ins, &pre, (nk, inter, h, e), None)?;
            lw.set_attrs(&[("groupList", "cumsum".into())]);
            act.launch_single(lw, &pre, &hidden)?;
        }
    }
    let down = lw.scratch("expert outputs", dt, Format::Nd, vec![nk, h]);
    let ins = vec![
        Some(hidden),
        Some(experts.down.clone()),
        None,
        Some(group_list),
    ];
    grouped(lw, ins, &down, (nk, h, inter, e), None)?;
    lw.set_attrs(&[("groupList", "cumsum".into())]);

    // Shared experts, then the combine.
    let shared = moe_shared::lower(lw, id, &x, &act)?;
    let down_bias = experts.down_bias.clone();
    let per_row = |b: i64| {
        b * row_bytes(h * k, size)
            + row_bytes(h * k, size)
            + b * row_bytes(h, size)
            + 3 * row_bytes(k, 4)
            + row_bytes(h, 4)
            + b * row_bytes(h, size)
    };
    let t = vector::rows(p, n, h, per_row, 0)
        .map_err(|err| lw.error(format!("MoeFinalizeRouting of {n} rows: {err}")))?;
    let mut tiling = t.data();
    tiling.push("k", k);
    tiling.push("hasSkip", shared.is_some() as i64);
    tiling.push("hasBias", down_bias.is_some() as i64);
    let has_shared = shared.is_some();
    lw.launch(
        "MoeFinalizeRouting",
        CoreType::Aiv,
        t.block_dim,
        tiling,
        vec![
            Some(down),
            shared,
            down_bias,
            Some(weights),
            Some(row_index),
            Some(chosen),
        ],
        vec![out],
    );
    let mut a = vec![("combine", format!("weighted sum of {k} experts"))];
    if has_shared {
        a.push(("skip", "shared experts".into()));
    }
    lw.set_attrs(&a);
    Ok(())
}

/// The grouped matmul's cube tiling for `m` x `k` rows by [E, K, N] weights: the blocking
/// of a plain matmul, with baseN at most 128 when two accumulators (gate and up) share
/// L0C; blockDim bounded by the output tiles there can be (each expert's rows start a new
/// M tile).
fn grouped_tiling(
    p: &Profile,
    (m, n, k, e): (i64, i64, i64, i64),
    accs: i64,
) -> Result<(CubeTiling, u32), String> {
    let n_cap = if accs == 2 { n.min(128) } else { n };
    let mut t = cube::tile(p, 1, m.max(1), n_cap, k)?;
    t.n = n;
    if accs == 2 {
        t.db_l0c = 1;
        if 2 * t.base_m * t.base_n * 4 > p.l0c_bytes as i64 {
            return Err(format!(
                "gate and up accumulators of {}x{} do not fit L0C",
                t.base_m, t.base_n
            ));
        }
    }
    let tiles = ((m + t.base_m - 1) / t.base_m + e) * ((n + t.base_n - 1) / t.base_n);
    let block_dim = tiles.clamp(1, p.aic_cores as i64) as u32;
    Ok((t, block_dim))
}

/// Launches GroupedMatmul (`act` None) or GroupedMatmulSwiglu over `inputs` (x, the
/// weights, their biases, the group list) into `out`; dims (M, N, K, E).
fn grouped(
    lw: &mut Lowerer,
    inputs: Vec<Option<DevTensor>>,
    out: &DevTensor,
    (m, n, k, e): (i64, i64, i64, i64),
    act: Option<&Activation>,
) -> Result<(), TargetError> {
    let p = lw.profile;
    let accs = if act.is_some() { 2 } else { 1 };
    let (t, block_dim) = grouped_tiling(p, (m, n, k, e), accs).map_err(|err| lw.error(err))?;
    // The first bias follows the weights.
    let has_bias = inputs[if act.is_some() { 3 } else { 2 }].is_some();
    let mut tiling = Tiling::new().with("experts", e);
    for (name, v) in t.data().0 {
        if !matches!(name.as_str(), "batch" | "tilesPerCore" | "usedCoreNum") {
            tiling.push(&name, v);
        }
    }
    tiling.push("hasBias", has_bias as i64);
    match act {
        None => lw.launch(
            "GroupedMatmul",
            CoreType::Aic,
            block_dim,
            tiling,
            inputs,
            vec![out.clone()],
        ),
        Some(act) => {
            act.tiling(&mut tiling);
            let size = out.dtype.size() as i64;
            let ub = 2 * t.base_m * up(t.base_n * 4, 32) + t.base_m * up(t.base_n * size, 32);
            if ub > p.ub_bytes as i64 {
                return Err(lw.error(format!(
                    "GroupedMatmulSwiglu's UB tiles need {ub} B, past the {} B of UB",
                    p.ub_bytes
                )));
            }
            let per = up(2 * t.base_m * t.base_n * 4, 512);
            let ws = lw.workspace((per * block_dim as i64) as u64);
            lw.launch_with_workspace(
                "GroupedMatmulSwiglu",
                CoreType::Mix,
                block_dim,
                tiling,
                inputs,
                vec![out.clone()],
                Some(ws),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::ascend::testing::{check, floats};
    use kiln_ir::Tensor;
    use kiln_runtime::ElemType;

    /// A constant of `shape` in text IR, values from [`floats`] times `scale`.
    fn constant(shape: &[usize], seed: u64, scale: f64) -> String {
        let v: Vec<String> = floats(shape, seed)
            .to_f64()
            .iter()
            .map(|x| format!("{}", x * scale))
            .collect();
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        format!(
            "constant {{value = dense<f32[{}]>[{}]}} : f32[{}]",
            dims.join(", "),
            v.join(", "),
            dims.join(", ")
        )
    }

    /// Checks in f16 and bf16; returns the kernel names.
    fn both(text: &str, inputs: &[Tensor]) -> Vec<String> {
        let mut k = Vec::new();
        for dtype in [ElemType::F16, ElemType::BF16] {
            let tol = if dtype == ElemType::F16 { 3e-3 } else { 2e-2 };
            k = check(text, inputs, &[], dtype, tol);
        }
        k
    }

    fn count(k: &[String], name: &str) -> usize {
        k.iter().filter(|n| *n == name).count()
    }

    #[test]
    fn gpt_oss_softmax_renormalised_clamped_swiglu_with_biases() {
        // w1 holds gate and up interleaved; I = 24 and H = 32 leave partial fractals.
        let text = format!(
            "graph @t(%x: f32[1, 5, 32], %l: f32[1, 5, 4]) -> (y: f32[1, 5, 32]) {{
                %11 = {}
                %12 = {}
                %13 = {}
                %14 = {}
                %0 = moe(%x, %l, %11, %12, %13, %14) {{k = 2, normalize_routing_weights = 1, swiglu_fusion = 1, activation_alpha = 1.702, activation_beta = 1.0, swiglu_limit = 1.0}} : f32[1, 5, 32]
                return %0
            }}",
            constant(&[4, 48, 32], 1, 0.3),
            constant(&[4, 48], 2, 0.5),
            constant(&[4, 32, 24], 3, 0.3),
            constant(&[4, 32], 4, 0.5),
        );
        let k = both(&text, &[floats(&[1, 5, 32], 5), floats(&[1, 5, 4], 6)]);
        assert_eq!(
            k,
            // x to the device dtype; the logits stay f32.
            [
                "Cast",
                "MoeGatingTopK",
                "MoeInitRoutingV2",
                "GroupedMatmulSwiglu",
                "GroupedMatmul",
                "MoeFinalizeRouting",
                "Cast"
            ]
        );
    }

    #[test]
    fn deepseek_v3_sigmoid_group_limited_bias_scaled_with_gated_shared_experts() {
        let text = format!(
            "graph @t(%x: f32[6, 32], %l: f32[6, 8]) -> (y: f32[6, 32]) {{
                %11 = {}
                %13 = {}
                %15 = {}
                %16 = {}
                %17 = {}
                %18 = {}
                %19 = {}
                %20 = {}
                %0 = moe(%x, %l, %11, _, %13, _, %15, _, %16, _, _, %17, %18, %19, %20) {{k = 2, scoring_func = \"sigmoid\", n_group = 4, topk_group = 2, normalize_routing_weights = 1, routed_scaling_factor = 2.5}} : f32[6, 32]
                return %0
            }}",
            constant(&[8, 24, 32], 1, 0.3),
            constant(&[8, 32, 24], 2, 0.3),
            constant(&[8, 24, 32], 3, 0.3),
            constant(&[8], 4, 0.2),
            constant(&[40, 32], 5, 0.3),
            constant(&[32, 40], 6, 0.3),
            constant(&[40, 32], 7, 0.3),
            constant(&[32], 8, 0.3),
        );
        let k = both(&text, &[floats(&[6, 32], 9), floats(&[6, 8], 10)]);
        assert_eq!(count(&k, "MatMulV3"), 4);
        assert_eq!(count(&k, "SwiGlu"), 1);
        assert_eq!(count(&k, "Sigmoid"), 1);
        assert_eq!(count(&k, "MoeFinalizeRouting"), 1);
    }

    #[test]
    fn deepseek_v4_hash_routing_by_token_id_sqrt_softplus() {
        let table: Vec<String> = (0..20).map(|i| ((i * 7 + i / 2) % 6).to_string()).collect();
        let text = format!(
            "graph @t(%x: f32[1, 5, 32], %l: f32[1, 5, 6], %ids: i64[1, 5]) -> (y: f32[1, 5, 32]) {{
                %11 = {}
                %13 = {}
                %21 = constant {{value = dense<i64[10, 2]>[{}]}} : i64[10, 2]
                %17 = {}
                %18 = {}
                %19 = {}
                %0 = moe(%x, %l, %11, _, %13, _, _, _, _, %21, %ids, %17, %18, %19) {{k = 2, scoring_func = \"sqrt_softplus\", normalize_routing_weights = 1, routed_scaling_factor = 1.5, swiglu_fusion = 2, swiglu_limit = 10.0}} : f32[1, 5, 32]
                return %0
            }}",
            constant(&[6, 48, 32], 1, 0.3),
            constant(&[6, 32, 24], 2, 0.3),
            table.join(", "),
            constant(&[16, 32], 5, 0.3),
            constant(&[32, 16], 6, 0.3),
            constant(&[16, 32], 7, 0.3),
        );
        let ids = Tensor::from_i64s(vec![1, 5], vec![3, 9, 0, 3, 7]).unwrap();
        let k = both(&text, &[floats(&[1, 5, 32], 3), floats(&[1, 5, 6], 4), ids]);
        assert_eq!(count(&k, "MoeGatingTopKHash"), 1);
        assert_eq!(count(&k, "MoeGatingTopK"), 0);
    }

    #[test]
    fn gelu_experts_with_one_bias_and_relu_experts_without_up() {
        let text = format!(
            "graph @t(%x: f32[7, 32], %l: f32[7, 4]) -> (a: f32[7, 32], b: f32[7, 32]) {{
                %11 = {}
                %12 = {}
                %13 = {}
                %15 = {}
                %0 = moe(%x, %l, %11, %12, %13, _, %15) {{k = 1, activation_type = \"gelu\"}} : f32[7, 32]
                %1 = moe(%x, %l, %11, _, %13) {{k = 3, activation_type = \"relu\"}} : f32[7, 32]
                return %0, %1
            }}",
            constant(&[4, 24, 32], 1, 0.3),
            constant(&[4, 24], 2, 0.5),
            constant(&[4, 32, 24], 3, 0.3),
            constant(&[4, 24, 32], 4, 0.3),
        );
        let k = both(&text, &[floats(&[7, 32], 5), floats(&[7, 4], 6)]);
        assert_eq!(count(&k, "GroupedMatmulSwiglu"), 1);
        assert_eq!(count(&k, "GroupedMatmul"), 3);
        assert_eq!(count(&k, "Relu"), 1);
    }
}
