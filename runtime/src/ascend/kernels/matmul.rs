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
use crate::ascend::sim::core::{matrix_dims, Core, KernelSim, Mem, SimResult, TileId};
use crate::reject;

pub const KERNELS: &[(&str, SimulateFn)] = &[("MatMulV3", run), ("BatchMatMulV3", run)];

/// The cube blocking every cube kernel's tiling has (see [`Cube`]).
#[derive(Clone, Debug)]
pub struct Blocking {
    pub base_m: usize,
    pub base_n: usize,
    pub base_k: usize,
    pub step_ka: usize,
    pub step_kb: usize,
    pub depth_a1: usize,
    pub depth_b1: usize,
    pub db_l0a: usize,
    pub db_l0b: usize,
    pub db_l0c: usize,
}

impl Blocking {
    pub fn read(sim: &KernelSim) -> SimResult<Blocking> {
        let t = Blocking {
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
        if ![1, 2].contains(&t.db_l0a) || ![1, 2].contains(&t.db_l0b) || ![1, 2].contains(&t.db_l0c)
        {
            reject!("tiling dbL0A/dbL0B/dbL0C must be 1 or 2");
        }
        Ok(t)
    }
}

struct Tiling {
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    base_m: usize,
    base_n: usize,
    tiles_per_core: usize,
    batch_b: usize,
    has_bias: bool,
}

fn read_tiling(sim: &KernelSim) -> SimResult<(Tiling, Blocking)> {
    let b = Blocking::read(sim)?;
    let t = Tiling {
        batch: sim.tiling_positive("batch")?,
        m: sim.tiling_positive("m")?,
        n: sim.tiling_positive("n")?,
        k: sim.tiling_positive("k")?,
        base_m: b.base_m,
        base_n: b.base_n,
        tiles_per_core: sim.tiling_positive("tilesPerCore")?,
        batch_b: sim.tiling_positive("batchB")?,
        has_bias: sim.tiling_count("hasBias")? != 0,
    };
    Ok((t, b))
}

/// A cube core's buffers for the blocking, and the product of one output tile.
pub struct Cube {
    b: Blocking,
    a_l1: Vec<TileId>,
    b_l1: Vec<TileId>,
    bias_l1: Option<TileId>,
    a_l0: Vec<TileId>,
    b_l0: Vec<TileId>,
    /// The L0C accumulators (dbL0C of them, or as many as asked).
    pub c_l0: Vec<TileId>,
    loads: (usize, usize),
    step: usize,
}

impl Cube {
    /// Allocates L1 (A and B slots, a bias row), L0A, L0B and `acc` L0C buffers (at least
    /// dbL0C) for `size`-byte inputs.
    pub fn new(core: &mut Core, b: Blocking, size: u64, bias: bool, acc: usize) -> SimResult<Cube> {
        let (bm, bn, bk) = (b.base_m as u64, b.base_n as u64, b.base_k as u64);
        let (slots_a, slots_b) = (b.depth_a1 / b.step_ka, b.depth_b1 / b.step_kb);
        let align = core.profile().l1_align;
        let a_l1 = (0..slots_a)
            .map(|i| core.alloc(Mem::L1, &format!("A{i}"), b.step_ka as u64 * bm * bk * size))
            .collect::<SimResult<Vec<_>>>()?;
        let b_l1 = (0..slots_b)
            .map(|i| core.alloc(Mem::L1, &format!("B{i}"), b.step_kb as u64 * bk * bn * size))
            .collect::<SimResult<Vec<_>>>()?;
        let bias_l1 = match bias {
            true => Some(core.alloc(Mem::L1, "bias", (bn * size).div_ceil(align) * align)?),
            false => None,
        };
        let a_l0 = (0..b.db_l0a)
            .map(|i| core.alloc(Mem::L0A, &format!("a{i}"), bm * bk * size))
            .collect::<SimResult<Vec<_>>>()?;
        let b_l0 = (0..b.db_l0b)
            .map(|i| core.alloc(Mem::L0B, &format!("b{i}"), bk * bn * size))
            .collect::<SimResult<Vec<_>>>()?;
        let c_l0 = (0..b.db_l0c.max(acc))
            .map(|i| core.alloc(Mem::L0C, &format!("c{i}"), bm * bn * 4))
            .collect::<SimResult<Vec<_>>>()?;
        Ok(Cube {
            b,
            a_l1,
            b_l1,
            bias_l1,
            a_l0,
            b_l0,
            c_l0,
            loads: (0, 0),
            step: 0,
        })
    }

    /// Accumulates into `acc` the rows x cols tile A[a_row.., 0..k] · B[b_row0.., n0..]
    /// (plus `bias` elements bias_at.. when given), walking K in baseK steps. Charges the
    /// first loads of the tile as serial cycles.
    #[allow(clippy::too_many_arguments)]
    pub fn product(
        &mut self,
        core: &mut Core,
        acc: TileId,
        (a, a_row): (&TensorBinding, usize),
        (b, b_row0, n0): (&TensorBinding, usize, usize),
        (rows, cols, k): (usize, usize, usize),
        bias: Option<(&TensorBinding, usize)>,
    ) -> SimResult<()> {
        let t = &self.b;
        let size = a.dtype.size() as u64;
        let (slots_a, slots_b) = (self.a_l1.len(), self.b_l1.len());
        if let (Some((bias, at)), Some(bl1)) = (bias, self.bias_l1) {
            core.load_row(bl1, bias, at, cols)?;
            core.bias_init(acc, bl1, rows)?;
        }
        let mut fill = 0;
        let (mut sa, mut sb) = (self.a_l1[0], self.b_l1[0]);
        for (s, k0) in (0..k).step_by(t.base_k).enumerate() {
            let depth = t.base_k.min(k - k0);
            if s % t.step_ka == 0 {
                sa = self.a_l1[self.loads.0 % slots_a];
                self.loads.0 += 1;
                let len = (t.step_ka * t.base_k).min(k - k0);
                core.load(sa, a, (a_row, rows), (k0, len))?;
                if s == 0 {
                    fill += (rows * len) as u64 * size;
                }
            }
            if s % t.step_kb == 0 {
                sb = self.b_l1[self.loads.1 % slots_b];
                self.loads.1 += 1;
                let len = (t.step_kb * t.base_k).min(k - k0);
                core.load(sb, b, (b_row0 + k0, len), (n0, cols))?;
                if s == 0 {
                    fill += (len * cols) as u64 * size;
                }
            }
            let (ka, kb) = ((s % t.step_ka) * t.base_k, (s % t.step_kb) * t.base_k);
            let (l0a, l0b) = (
                self.a_l0[self.step % t.db_l0a],
                self.b_l0[self.step % t.db_l0b],
            );
            self.step += 1;
            core.copy_to_l0(l0a, sa, (0, rows), (ka, depth))?;
            core.copy_to_l0(l0b, sb, (kb, depth), (0, cols))?;
            core.mmad(acc, l0a, l0b, s == 0 && bias.is_none())?;
        }
        let p = core.profile();
        let serial = fill.div_ceil(p.gm_bytes_per_cycle);
        core.serial(serial);
        Ok(())
    }

    /// Writes accumulator `acc` (rows x cols) to `c` at (row0, col0); when L0C is single
    /// buffered the next tile waits for it, so the write-out is serial too.
    pub fn write(
        &self,
        core: &mut Core,
        c: &TensorBinding,
        acc: TileId,
        (row0, col0): (usize, usize),
        (rows, cols): (usize, usize),
    ) -> SimResult<()> {
        core.fixpipe(c, acc, row0, col0)?;
        if self.b.db_l0c == 1 {
            let p = core.profile();
            let cycles = (rows * cols * c.dtype.size()) as u64 / p.fixpipe_bytes_per_cycle;
            core.serial(cycles);
        }
        Ok(())
    }
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
    let (t, blocking) = read_tiling(sim)?;
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
    let db_l0c = blocking.db_l0c;
    for blk in 0..sim.block_dim() {
        let mut core = sim.core(blk);
        let mut cube = Cube::new(&mut core, blocking.clone(), size, bias.is_some(), 1)?;
        let first = blk * t.tiles_per_core;
        for (ti, tile) in (first..tiles.min(first + t.tiles_per_core)).enumerate() {
            let (bi, rest) = (tile / (tiles_m * tiles_n), tile % (tiles_m * tiles_n));
            let (m0, n0) = ((rest / tiles_n) * t.base_m, (rest % tiles_n) * t.base_n);
            let (rows, cols) = (t.base_m.min(t.m - m0), t.base_n.min(t.n - n0));
            let a_row = bi * t.m + m0;
            let b_row0 = if t.batch_b == 1 { 0 } else { bi * t.k };
            let acc = cube.c_l0[ti % db_l0c];
            let bias = bias.map(|bb| (bb, n0));
            cube.product(
                &mut core,
                acc,
                (a, a_row),
                (b, b_row0, n0),
                (rows, cols, t.k),
                bias,
            )?;
            cube.write(&mut core, c, acc, (a_row, n0), (rows, cols))?;
        }
    }
    Ok(())
}
