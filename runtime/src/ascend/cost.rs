//! The cost model: what one kernel launch costs on a profile, from what its blocks did.
//!
//! Each block runs on its own core. Its pipes (cube, vector, MTE2 GM->local, MTE1
//! L1->L0, fixpipe L0C->GM, MTE3 local->GM) overlap, as double buffering makes them do, so a
//! block takes as long as its busiest pipe plus the cycles the kernel reported as not
//! overlapped (pipeline fill, an L0C that is not double-buffered). The kernel takes as long
//! as its slowest block, or as HBM needs to serve its traffic if that is longer: the bytes
//! the kernel touches once when they fit in L2, every byte the cores move when they do not.
//! Plus a fixed launch cost.

use serde::Serialize;

use crate::ascend::profile::Profile;

/// What one block (one core) did, counted by the device model as it ran.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockStats {
    /// Cube fractal steps (16x16x16 multiply-adds), one per cycle.
    pub cube_cycles: u64,
    pub vector_cycles: u64,
    /// Global memory -> L1/UB.
    pub mte2_bytes: u64,
    /// L1 -> L0A/L0B.
    pub mte1_bytes: u64,
    /// L0C -> global memory.
    pub fixpipe_bytes: u64,
    /// UB -> global memory.
    pub mte3_bytes: u64,
    /// Cycles that overlap with nothing.
    pub serial_cycles: u64,
}

/// Which resource bounds a kernel's time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    Cube,
    Vector,
    /// Data movement inside the cores (MTE, fixpipe), or their serial phases.
    Mte,
    Hbm,
    Launch,
}

impl Bound {
    pub fn name(self) -> &'static str {
        match self {
            Bound::Cube => "cube",
            Bound::Vector => "vector",
            Bound::Mte => "mte",
            Bound::Hbm => "hbm",
            Bound::Launch => "launch",
        }
    }
}

/// The price of one kernel launch.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KernelCost {
    pub kernel_name: String,
    pub op: String,
    pub block_dim: u32,
    /// Of the busiest block.
    pub cube_cycles: u64,
    pub vector_cycles: u64,
    /// The busiest block's cycles (its busiest pipe plus its serial cycles).
    pub block_cycles: u64,
    /// Bytes all blocks moved between global memory and the cores.
    pub gm_bytes: u64,
    /// Of those, what HBM serves (the rest hits L2).
    pub hbm_bytes: u64,
    /// Estimated device time, seconds, launch included.
    pub time_s: f64,
    pub bound: Bound,
}

/// Prices a kernel from its blocks' stats; `footprint` is the bytes of the distinct
/// tensors it reads and writes.
pub fn price(
    p: &Profile,
    kernel_name: &str,
    op: &str,
    blocks: &[BlockStats],
    footprint: u64,
) -> KernelCost {
    let div = |bytes: u64, rate: u64| bytes.div_ceil(rate.max(1));
    let mut worst = (0u64, Bound::Launch);
    let (mut cube, mut vector, mut gm) = (0, 0, 0);
    for b in blocks {
        let pipes = [
            (b.cube_cycles, Bound::Cube),
            (b.vector_cycles, Bound::Vector),
            (div(b.mte2_bytes, p.gm_bytes_per_cycle), Bound::Mte),
            (div(b.mte3_bytes, p.gm_bytes_per_cycle), Bound::Mte),
            (div(b.mte1_bytes, p.l1_to_l0_bytes_per_cycle), Bound::Mte),
            (div(b.fixpipe_bytes, p.fixpipe_bytes_per_cycle), Bound::Mte),
        ];
        let busiest = pipes
            .iter()
            .copied()
            .max_by_key(|x| x.0)
            .unwrap_or((0, Bound::Launch));
        let cycles = busiest.0 + b.serial_cycles;
        if cycles > worst.0 {
            worst = (cycles, busiest.1);
        }
        cube = cube.max(b.cube_cycles);
        vector = vector.max(b.vector_cycles);
        gm += b.mte2_bytes + b.mte3_bytes + b.fixpipe_bytes;
    }
    let hbm_bytes = if footprint <= p.l2_bytes {
        footprint.min(gm)
    } else {
        gm
    };
    let core_s = worst.0 as f64 / p.clock_hz;
    let hbm_s = hbm_bytes as f64 / p.hbm_bytes_per_s;
    let (busy_s, bound) = if hbm_s > core_s {
        (hbm_s, Bound::Hbm)
    } else {
        (core_s, worst.1)
    };
    KernelCost {
        kernel_name: kernel_name.to_string(),
        op: op.to_string(),
        block_dim: blocks.len() as u32,
        cube_cycles: cube,
        vector_cycles: vector,
        block_cycles: worst.0,
        gm_bytes: gm,
        hbm_bytes,
        time_s: p.launch_s + busy_s,
        bound: if busy_s < p.launch_s {
            Bound::Launch
        } else {
            bound
        },
    }
}
