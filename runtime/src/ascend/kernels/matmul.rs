//! MatMulV3 and BatchMatMulV3 (AIC): C[b] = A[b]·B[b or 0] (+ bias), f16/bf16 inputs,
//! f32 accumulation.
//!
//! Inputs: A ([.., M, K] ND; for MatMulV3 its leading dims are folded into M), B ([K, N]
//! or [batch, K, N], ND or FRACTAL_NZ), optional bias ([N]). Tiling fields (see kiln's
//! `targets/src/ascend/tiling/cube.rs`): batch, m, n, k, baseM, baseN, baseK, stepKa,
//! stepKb, depthA1, depthB1, dbL0A, dbL0B, dbL0C, tilesPerCore, usedCoreNum, batchB,
//! hasBias.
//!
//! Block b takes output tiles b·tilesPerCore .. (b+1)·tilesPerCore (batch-major, then M,
//! then N). For each tile it walks K in baseK steps: every stepKa steps a baseM x
//! stepKa·baseK block of A goes GM -> L1 (into one of depthA1/stepKa slots), likewise B;
//! each step copies its baseM x baseK and baseK x baseN blocks L1 -> L0A/L0B (alternating
//! dbL0A/dbL0B buffers) and the cube accumulates into the tile's L0C buffer, which the
//! fixpipe then writes to C in C's dtype.

use crate::ascend::descriptor::{Format, TensorBinding};
use crate::ascend::kernels::SimulateFn;
use crate::ascend::sim::core::{matrix_dims, KernelSim, Mem, SimResult};
use crate::reject;

pub const KERNELS: &[(&str, SimulateFn)] = &[("MatMulV3", run), ("BatchMatMulV3", run)];

struct Tiling {
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    base_m: usize,
    base_n: usize,
    base_k: usize,
    step_ka: usize,
    step_kb: usize,
    depth_a1: usize,
    depth_b1: usize,
    db_l0a: usize,
    db_l0b: usize,
    db_l0c: usize,
    tiles_per_core: usize,
    batch_b: usize,
    has_bias: bool,
}

fn read_tiling(sim: &KernelSim) -> SimResult<Tiling> {
    let t = Tiling {
        batch: sim.tiling_positive("batch")?,
        m: sim.tiling_positive("m")?,
        n: sim.tiling_positive("n")?,
        k: sim.tiling_positive("k")?,
        base_m: sim.tiling_positive("baseM")?,
        base_n: sim.tiling_positive("baseN")?,
        base_k: sim.tiling_positive("baseK")?,
        step_ka: sim.tiling_positive("stepKa")?,
        step_kb: sim.tiling_positive("stepKb")?,
        depth_a1: sim.tiling_positive("depthA1")?,
        depth_b1: sim.tiling_positive("depthB1")?,
        db_l0a: sim.tiling_positive("dbL0A")?,
        db_l0b: sim.tiling_positive("dbL0B")?,
        db_l0c: sim.tiling_positive("dbL0C")?,
        tiles_per_core: sim.tiling_positive("tilesPerCore")?,
        batch_b: sim.tiling_positive("batchB")?,
        has_bias: sim.tiling_count("hasBias")? != 0,
    };
    let [fm, fn_, fk] = sim.profile.cube_mnk.map(|x| x as usize);
    for (name, v, f) in [
        ("baseM", t.base_m, fm),
        ("baseN", t.base_n, fn_),
        ("baseK", t.base_k, fk),
    ] {
        if v % f != 0 {
            reject!("tiling {name} = {v} is not a multiple of the cube's {f}");
        }
    }
    for (name, depth, step) in [("A", t.depth_a1, t.step_ka), ("B", t.depth_b1, t.step_kb)] {
        if depth % step != 0 {
            reject!(
                "tiling depth{name}1 = {depth} is not a multiple of stepK{}",
                name.to_lowercase()
            );
        }
    }
    if ![1, 2].contains(&t.db_l0a) || ![1, 2].contains(&t.db_l0b) || ![1, 2].contains(&t.db_l0c) {
        reject!("tiling dbL0A/dbL0B/dbL0C must be 1 or 2");
    }
    Ok(t)
}

/// Checks that the bindings are the matrices the tiling says.
fn check_shapes(
    t: &Tiling,
    a: &TensorBinding,
    b: &TensorBinding,
    c: &TensorBinding,
) -> SimResult<()> {
    let (ar, ac) = matrix_dims(a);
    let (br, bc) = matrix_dims(b);
    let (cr, cc) = matrix_dims(c);
    if a.format != Format::Nd || c.format != Format::Nd {
        reject!("A and C must be ND");
    }
    if ac != t.k || ar != t.batch * t.m {
        reject!(
            "A is {ar}x{ac}, the tiling says {} x {}x{}",
            t.batch,
            t.m,
            t.k
        );
    }
    if bc != t.n || br != t.batch_b * t.k || t.batch_b != 1 && t.batch_b != t.batch {
        reject!(
            "B is {br}x{bc}, the tiling says {} x {}x{}",
            t.batch_b,
            t.k,
            t.n
        );
    }
    if cc != t.n || cr != t.batch * t.m {
        reject!(
            "C is {cr}x{cc}, the tiling says {} x {}x{}",
            t.batch,
            t.m,
            t.n
        );
    }
    if a.dtype != b.dtype {
        reject!("A is {} and B {}", a.dtype, b.dtype);
    }
    Ok(())
}

fn run(sim: &mut KernelSim) -> SimResult<()> {
    let t = read_tiling(sim)?;
    let (a, b, c) = (sim.input(0)?, sim.input(1)?, sim.output(0)?);
    let bias = sim.opt_input(2);
    if bias.is_some() != t.has_bias {
        reject!(
            "tiling hasBias = {} but the bias input is {}",
            t.has_bias as u8,
            if bias.is_some() { "bound" } else { "absent" }
        );
    }
    if let Some(bias) = bias {
        if bias.numel() != t.n as u64 {
            reject!("the bias has {} elements, N is {}", bias.numel(), t.n);
        }
    }
    check_shapes(&t, a, b, c)?;
    let tiles_m = t.m.div_ceil(t.base_m);
    let tiles_n = t.n.div_ceil(t.base_n);
    let tiles = t.batch * tiles_m * tiles_n;
    if t.tiles_per_core * sim.block_dim() < tiles {
        reject!(
            "{} blocks of {} tiles do not cover the {tiles} output tiles",
            sim.block_dim(),
            t.tiles_per_core
        );
    }
    let size = a.dtype.size() as u64;
    let p = sim.profile;
    let (bm, bn, bk) = (t.base_m as u64, t.base_n as u64, t.base_k as u64);
    let (slots_a, slots_b) = (t.depth_a1 / t.step_ka, t.depth_b1 / t.step_kb);
    for blk in 0..sim.block_dim() {
        let mut core = sim.core(blk);
        let a_l1 = (0..slots_a)
            .map(|i| core.alloc(Mem::L1, &format!("A{i}"), t.step_ka as u64 * bm * bk * size))
            .collect::<SimResult<Vec<_>>>()?;
        let b_l1 = (0..slots_b)
            .map(|i| core.alloc(Mem::L1, &format!("B{i}"), t.step_kb as u64 * bk * bn * size))
            .collect::<SimResult<Vec<_>>>()?;
        let bias_l1 = match bias {
            Some(_) => Some(core.alloc(
                Mem::L1,
                "bias",
                (bn * size).div_ceil(p.l1_align) * p.l1_align,
            )?),
            None => None,
        };
        let a_l0 = (0..t.db_l0a)
            .map(|i| core.alloc(Mem::L0A, &format!("a{i}"), bm * bk * size))
            .collect::<SimResult<Vec<_>>>()?;
        let b_l0 = (0..t.db_l0b)
            .map(|i| core.alloc(Mem::L0B, &format!("b{i}"), bk * bn * size))
            .collect::<SimResult<Vec<_>>>()?;
        let c_l0 = (0..t.db_l0c)
            .map(|i| core.alloc(Mem::L0C, &format!("c{i}"), bm * bn * 4))
            .collect::<SimResult<Vec<_>>>()?;
        let (mut la, mut lb, mut step) = (0, 0, 0);
        let first = blk * t.tiles_per_core;
        for (ti, tile) in (first..tiles.min(first + t.tiles_per_core)).enumerate() {
            let (bi, rest) = (tile / (tiles_m * tiles_n), tile % (tiles_m * tiles_n));
            let (m0, n0) = ((rest / tiles_n) * t.base_m, (rest % tiles_n) * t.base_n);
            let (rows, cols) = (t.base_m.min(t.m - m0), t.base_n.min(t.n - n0));
            let a_row = bi * t.m + m0;
            let b_row0 = if t.batch_b == 1 { 0 } else { bi * t.k };
            let acc = c_l0[ti % t.db_l0c];
            if let (Some(bias), Some(bl1)) = (bias, bias_l1) {
                core.load_row(bl1, bias, n0, cols)?;
                core.bias_init(acc, bl1, rows)?;
            }
            let mut fill = 0;
            let (mut sa, mut sb) = (a_l1[0], b_l1[0]);
            for (s, k0) in (0..t.k).step_by(t.base_k).enumerate() {
                let depth = t.base_k.min(t.k - k0);
                if s % t.step_ka == 0 {
                    sa = a_l1[la % slots_a];
                    la += 1;
                    let len = (t.step_ka * t.base_k).min(t.k - k0);
                    core.load(sa, a, (a_row, rows), (k0, len))?;
                    if s == 0 {
                        fill += (rows * len) as u64 * size;
                    }
                }
                if s % t.step_kb == 0 {
                    sb = b_l1[lb % slots_b];
                    lb += 1;
                    let len = (t.step_kb * t.base_k).min(t.k - k0);
                    core.load(sb, b, (b_row0 + k0, len), (n0, cols))?;
                    if s == 0 {
                        fill += (len * cols) as u64 * size;
                    }
                }
                let (ka, kb) = ((s % t.step_ka) * t.base_k, (s % t.step_kb) * t.base_k);
                let (l0a, l0b) = (a_l0[step % t.db_l0a], b_l0[step % t.db_l0b]);
                step += 1;
                core.copy_to_l0(l0a, sa, (0, rows), (ka, depth))?;
                core.copy_to_l0(l0b, sb, (kb, depth), (0, cols))?;
                core.mmad(acc, l0a, l0b, s == 0 && bias.is_none())?;
            }
            core.fixpipe(c, acc, a_row, n0)?;
            // Not overlapped: the first loads of a tile; and the write-out when L0C is
            // single-buffered (the next tile's mmads wait for it).
            let mut serial = fill.div_ceil(p.gm_bytes_per_cycle);
            if t.db_l0c == 1 {
                serial += (rows * cols * c.dtype.size()) as u64 / p.fixpipe_bytes_per_cycle;
            }
            core.serial(serial);
        }
    }
    Ok(())
}
