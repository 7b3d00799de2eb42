//! The MoE helper compiled code calls for `moe` / com.microsoft.MoE steps, on top of
//! [`crate::cpu::moe`].
//!
//! Slots (u64; `addr = 0` means absent; `elem` codes as in the attention helpers: 0 f32,
//! 1 f16, 2 bf16, 4 i32, 5 i64; a weight `layout` is 0 for prepacked panels, 1 for dense f32
//! `(E, out, in)`; floats are f32 bits):
//! ```text
//!  0 tokens  1 hidden  2 experts  3 inter  4 k
//!  5 x addr  6 elem    7 router logits addr  8 elem    9 out addr  10 elem
//! 11 w1 addr 12 layout   13 b1 addr 14 elem     (w1: (E, I or 2I, H))
//! 15 w2 addr 16 layout   17 b2 addr 18 elem     (w2: (E, H, I))
//! 19 w3 addr 20 layout   21 b3 addr 22 elem     (w3: (E, I, H))
//! 23 selection_bias addr 24 elem
//! 25 hash table addr 26 elem 27 rows 28 cols    29 token ids addr 30 elem
//! 31 shared_w1 addr 32 layout  33 shared_w2 addr 34 layout  35 shared_w3 addr 36 layout
//! 37 shared inter   38 shared_gate addr  39 elem
//! 40 score (0 softmax, 1 sigmoid, 2 sqrt_softplus)   41 n_group   42 topk_group
//! 43 normalize (0 none, 1 by the sum if nonzero, 2 by the sum if > 1e-8 else 1/k)
//! 44 routed_scaling_factor
//! 45 activation (0 swiglu, 1 silu, 2 gelu, 3 gelu tanh, 4 relu, 5 identity)
//! 46 up (0 none, 1 w3, 2 interleaved in w1, 3 halves of w1)
//! 47 alpha  48 beta  49 limit  50 has limit
//! 51 flags (1 ties to the higher expert index, 2 skip experts of weight <= 0)
//! ```

use super::{Helper, HelperFn, RunContext};
use crate::cpu::attention::Elem;
use crate::cpu::moe::{moe as run_moe, Act, Moe, Normalize, Score, Shared, Up, Weight};

pub const ARGS: usize = 52;

/// # Safety
/// `ctx` is the run context; `args` holds the slots above, describing valid memory.
unsafe extern "C" fn moe(ctx: *const RunContext, args: *const u64) {
    // SAFETY: forwarded from the caller.
    let (ctx, s) = unsafe { (&*ctx, std::slice::from_raw_parts(args, ARGS)) };
    if let Some(p) = read(s) {
        // SAFETY: the lowering described valid memory.
        unsafe { run_moe(ctx.gemm, &p) };
    }
}

fn read(s: &[u64]) -> Option<Moe> {
    let u = |i: usize| s[i] as usize;
    let f = |i: usize| f32::from_bits(s[i] as u32);
    let ptr = |i: usize| -> Option<Option<(usize, Elem)>> {
        if s[i] == 0 {
            Some(None)
        } else {
            Some(Some((u(i), Elem::from_code(s[i + 1])?)))
        }
    };
    let weight = |i: usize| {
        (s[i] != 0).then(|| Weight {
            addr: u(i),
            packed: s[i + 1] == 0,
        })
    };
    let act = match s[45] {
        0 => Act::Swiglu {
            alpha: f(47),
            beta: f(48),
            limit: (s[50] != 0).then(|| f(49)),
        },
        1 => Act::Silu,
        2 => Act::Gelu,
        3 => Act::GeluTanh,
        4 => Act::Relu,
        _ => Act::Identity,
    };
    let hash = match (ptr(25)?, ptr(29)?) {
        (Some((ta, te)), Some(ids)) => Some(((ta, te, u(27), u(28)), ids)),
        _ => None,
    };
    let shared = match (weight(31), weight(33)) {
        (Some(w1), Some(w2)) => Some(Shared {
            inter: u(37),
            w1,
            w2,
            w3: weight(35),
            gate: ptr(38)?,
        }),
        _ => None,
    };
    let p = Moe {
        tokens: u(0),
        hidden: u(1),
        experts: u(2),
        inter: u(3),
        k: u(4),
        x: ptr(5)??,
        logits: ptr(7)??,
        out: ptr(9)??,
        score: match s[40] {
            0 => Score::Softmax,
            1 => Score::Sigmoid,
            _ => Score::SqrtSoftplus,
        },
        selection_bias: ptr(23)?,
        n_group: u(41).max(1),
        topk_group: u(42).max(1),
        hash,
        normalize: match s[43] {
            0 => Normalize::None,
            1 => Normalize::Sum,
            _ => Normalize::SumOrUniform,
        },
        scaling: f(44),
        ties_high: s[51] & 1 != 0,
        skip_nonpositive: s[51] & 2 != 0,
        act,
        up: match s[46] {
            0 => Up::None,
            1 => Up::W3,
            2 => Up::Interleaved,
            _ => Up::Halves,
        },
        w1: weight(11)?,
        b1: ptr(13)?,
        w2: weight(15)?,
        b2: ptr(17)?,
        w3: weight(19),
        b3: ptr(21)?,
        shared,
    };
    if p.experts == 0 || !p.experts.is_multiple_of(p.n_group) {
        return None;
    }
    Some(p)
}

pub(super) const HELPERS: &[Helper] = &[Helper {
    name: "moe",
    func: HelperFn::Call(moe),
}];
