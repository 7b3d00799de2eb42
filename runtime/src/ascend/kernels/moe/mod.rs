//! The mixture-of-experts chain, kiln's `moe` as CANN runs it:
//!
//! ```text
//! router logits --MoeGatingTopK--> weights [N, k] (f32), experts [N, k] (i32)
//!               (MoeGatingTopKHash, kiln's own, for hash-routed layers)
//! x, experts --MoeInitRoutingV2--> x permuted by expert [N·k, H], row map, per-expert cumsum
//!            --GroupedMatmulSwiglu--> h = act(x·W1[e], x·W3[e]) per expert's rows  [N·k, I]
//!            --GroupedMatmul--> h·W2[e]                                              [N·k, H]
//!            --MoeFinalizeRouting--> y = shared + sum_j weight_j · (row of (n, j) + b2[e]) [N, H]
//! ```
//!
//! One file per step: [`gating`], [`routing`] (init and finalize), [`grouped`].

mod gating;
mod grouped;
mod routing;

use crate::ascend::kernels::SimulateFn;

pub const KERNELS: &[(&str, SimulateFn)] = &[
    ("MoeGatingTopK", gating::run),
    ("MoeGatingTopKHash", gating::run),
    ("MoeInitRoutingV2", routing::init),
    ("MoeFinalizeRouting", routing::finalize),
    ("GroupedMatmul", grouped::run),
    ("GroupedMatmulSwiglu", grouped::run),
];
