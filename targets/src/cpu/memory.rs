//! The static memory plan: every arena buffer gets a fixed offset in one activation arena,
//! sized at the symbols' upper bounds; buffers whose live ranges (first to last step that
//! touches them) do not overlap share memory. First fit, largest buffers first.

use std::collections::HashMap;

use kiln_ir::dim::Dim;

use crate::cpu::lower::{Arg, BufKind, Program};
use crate::error::TargetError;

/// Buffers start on this boundary (a cache line; also what AVX-512 loads like).
pub const ALIGN: u64 = 64;

#[derive(Clone, Debug)]
pub struct Placement {
    pub offset: u64,
    /// Size at the bounds.
    pub max_bytes: u64,
    /// First and last step, inclusive.
    pub live: (u32, u32),
}

#[derive(Clone, Debug, Default)]
pub struct MemoryPlan {
    /// Per buffer of the program: its place, for arena buffers that some step touches.
    pub placements: Vec<Option<Placement>>,
    pub arena_bytes: u64,
}

/// The largest value `d` takes with every symbol at its upper or at its lower bound (sizes
/// grow with the symbols; the runtime checks each buffer's actual size on every run anyway).
/// An expression undefined at the lower bounds (a division by a dim that is 0 there) is
/// sized at the upper bounds alone.
pub fn upper_bound(d: &Dim, bounds: &HashMap<String, (i64, i64)>) -> Result<u64, TargetError> {
    let at = |pick: fn(&(i64, i64)) -> i64| {
        let b: HashMap<String, i64> = bounds.iter().map(|(k, v)| (k.clone(), pick(v))).collect();
        d.eval(&b)
    };
    let hi = at(|b| b.1).map_err(|e| TargetError::Lower(format!("cannot size `{d}`: {e}")))?;
    let hi = hi.max(at(|b| b.0).unwrap_or(hi));
    u64::try_from(hi)
        .map_err(|_| TargetError::Lower(format!("size `{d}` is negative at the bounds")))
}

/// Plans the arena of `program`.
pub fn plan(
    program: &Program,
    bounds: &HashMap<String, (i64, i64)>,
) -> Result<MemoryPlan, TargetError> {
    let n = program.buffers.len();
    let mut live: Vec<Option<(u32, u32)>> = vec![None; n];
    for (s, step) in program.steps.iter().enumerate() {
        for a in &step.args {
            if let Arg::Ptr { buf, .. } = a {
                let s = s as u32;
                live[*buf] = Some(match live[*buf] {
                    Some((a, b)) => (a.min(s), b.max(s)),
                    None => (s, s),
                });
            }
        }
    }
    let mut order = Vec::new();
    let mut sizes = vec![0u64; n];
    for (i, buf) in program.buffers.iter().enumerate() {
        if buf.kind == BufKind::Arena && live[i].is_some() {
            sizes[i] = upper_bound(&buf.bytes, bounds)?.div_ceil(ALIGN) * ALIGN;
            order.push(i);
        }
    }
    order.sort_by_key(|&i| (std::cmp::Reverse(sizes[i]), i));
    let mut placements: Vec<Option<Placement>> = vec![None; n];
    let mut placed: Vec<usize> = Vec::new();
    let mut arena_bytes = 0u64;
    for &i in &order {
        let (a0, a1) = live[i].expect("ordered buffers are live");
        // Intervals of memory taken by placed buffers whose lifetimes overlap this one.
        let mut taken: Vec<(u64, u64)> = placed
            .iter()
            .filter_map(|&j| {
                let p = placements[j].as_ref()?;
                (p.live.0 <= a1 && a0 <= p.live.1).then_some((p.offset, p.offset + sizes[j]))
            })
            .collect();
        taken.sort();
        let mut offset = 0u64;
        for (lo, hi) in taken {
            if offset + sizes[i] <= lo {
                break;
            }
            offset = offset.max(hi);
        }
        arena_bytes = arena_bytes.max(offset + sizes[i]);
        placements[i] = Some(Placement {
            offset,
            max_bytes: sizes[i],
            live: (a0, a1),
        });
        placed.push(i);
    }
    Ok(MemoryPlan {
        placements,
        arena_bytes,
    })
}
