//! The HBM plan: weights at the start (the weights section as it is in the artifact),
//! then every other buffer placed first-fit by liveness, so buffers never live at the same
//! time share memory. A buffer is live from the first to the last launch that binds it;
//! inputs from launch 0, outputs to the last launch.

use kiln_runtime::ascend::descriptor::{BufferKind, HbmBuffer, HbmPlan};

use crate::ascend::lower::Program;

/// Buffers start on this boundary (one HBM burst).
pub const ALIGN: u64 = 512;

/// Placements in `program.buffers` order.
pub fn plan(program: &Program) -> HbmPlan {
    let n = program.launches.len() as u32;
    let last = n.saturating_sub(1);
    let mut live: Vec<Option<(u32, u32)>> = vec![None; program.buffers.len()];
    let mut touch = |buf: usize, i: u32| {
        live[buf] = Some(match live[buf] {
            None => (i, i),
            Some((a, b)) => (a.min(i), b.max(i)),
        })
    };
    for (i, l) in program.launches.iter().enumerate() {
        let i = i as u32;
        for t in l.inputs.iter().flatten().chain(&l.outputs) {
            touch(t.buf, i);
        }
        if let Some(w) = l.workspace {
            touch(w, i);
        }
    }
    let weights_bytes = program.weights.len() as u64;
    let start = weights_bytes.div_ceil(ALIGN) * ALIGN;
    let mut placed: Vec<(u64, u64, (u32, u32))> = Vec::new(); // offset, bytes, live
    let mut buffers = Vec::with_capacity(program.buffers.len());
    let mut end = start;
    for (i, b) in program.buffers.iter().enumerate() {
        let mut range = live[i].unwrap_or((0, 0));
        match b.kind {
            BufferKind::Weight => {
                buffers.push(HbmBuffer {
                    name: b.name.clone(),
                    kind: b.kind,
                    offset: b.weight_offset.unwrap_or(0),
                    bytes: b.bytes,
                    live: (0, last),
                });
                continue;
            }
            BufferKind::Input => range.0 = 0,
            BufferKind::Output => range.1 = last,
            _ => {}
        }
        let size = b.bytes.div_ceil(ALIGN) * ALIGN;
        // The lowest offset where no live-overlapping buffer sits.
        let mut conflicts: Vec<(u64, u64)> = placed
            .iter()
            .filter(|(_, _, l)| l.0 <= range.1 && range.0 <= l.1)
            .map(|&(o, s, _)| (o, o + s))
            .collect();
        conflicts.sort();
        let mut offset = start;
        for (lo, hi) in conflicts {
            if offset + size <= lo {
                break;
            }
            offset = offset.max(hi);
        }
        placed.push((offset, size, range));
        end = end.max(offset + size);
        buffers.push(HbmBuffer {
            name: b.name.clone(),
            kind: b.kind,
            offset,
            bytes: b.bytes,
            live: range,
        });
    }
    HbmPlan {
        bytes: end,
        weights_bytes,
        buffers,
    }
}
