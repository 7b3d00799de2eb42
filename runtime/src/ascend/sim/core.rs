//! One kernel launch on the device model, and the cores that run its blocks.
//!
//! A kernel simulation ([`crate::ascend::kernels`]) gets a [`KernelSim`]: its descriptor,
//! tiling fields and tensor bindings, and global memory. For each block it takes a
//! [`Core`], allocates its local buffers from the tiling (as a real kernel's pipe does at
//! start: `L1`, `L0A`, `L0B`, `L0C` on cube cores, `UB` on vector cores), then walks its
//! tiles with the moves and computations the hardware has:
//!
//! ```text
//! cube:   GM --load--> L1 --copy--> L0A/L0B --mmad--> L0C --fixpipe--> GM
//! vector: GM --load--> UB --vector ops--> UB --store--> GM
//! ```
//!
//! Every allocation is checked against the memory's capacity and alignment, every tile
//! moved into a buffer against the buffer's size (fractal-padded in L1/L0, 32-byte rows in
//! UB), every global memory access against its binding. A tile holds a row-major matrix of
//! values exactly representable in its dtype. Each move and computation is counted in the
//! block's [`BlockStats`] for the cost model.

use crate::ascend::cost::BlockStats;
use crate::ascend::descriptor::{CoreType, Format, KernelDesc, TensorBinding};
use crate::ascend::profile::Profile;
use crate::ascend::sim::values;
use crate::model::tensor::ElemType;

/// Why the device model refused to go on: a hardware limit broken, a descriptor that does
/// not add up. The device wraps it with the kernel's index and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reject(pub String);

pub type SimResult<T> = Result<T, Reject>;

/// `Err(Reject(format!(..)))`.
#[macro_export]
macro_rules! reject {
    ($($t:tt)*) => { return Err($crate::ascend::sim::core::Reject(format!($($t)*))) };
}

/// A core's local memories.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mem {
    L1,
    L0A,
    L0B,
    L0C,
    Ub,
}

impl Mem {
    pub fn name(self) -> &'static str {
        match self {
            Mem::L1 => "L1",
            Mem::L0A => "L0A",
            Mem::L0B => "L0B",
            Mem::L0C => "L0C",
            Mem::Ub => "UB",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    fn capacity(self, p: &Profile) -> u64 {
        match self {
            Mem::L1 => p.l1_bytes,
            Mem::L0A => p.l0a_bytes,
            Mem::L0B => p.l0b_bytes,
            Mem::L0C => p.l0c_bytes,
            Mem::Ub => p.ub_bytes,
        }
    }

    fn align(self, p: &Profile) -> u64 {
        match self {
            Mem::L1 => p.l1_align,
            Mem::L0A | Mem::L0B => p.l0ab_align,
            Mem::L0C => p.l0c_align,
            Mem::Ub => p.ub_align,
        }
    }

    /// Whether a core of this type has the memory.
    fn on(self, core: CoreType) -> bool {
        match core {
            CoreType::Aic => self != Mem::Ub,
            CoreType::Aiv => self == Mem::Ub,
            CoreType::Mix => true,
        }
    }

    /// Bytes a rows x cols matrix of `t` occupies here: matrices for the cube are held as
    /// 16x16 fractals (both dims padded to 16); UB, and vectors in L1 (a bias row), as rows
    /// padded to 32-byte blocks.
    fn footprint(self, p: &Profile, rows: usize, cols: usize, t: ElemType, rowwise: bool) -> u64 {
        let (rows, cols, size) = (rows as u64, cols as u64, t.size() as u64);
        if self == Mem::Ub || rowwise {
            rows * (cols * size).div_ceil(p.ub_align) * p.ub_align
        } else {
            rows.div_ceil(16) * 16 * cols.div_ceil(16) * 16 * size
        }
    }
}

/// The launch being simulated.
pub struct KernelSim<'a> {
    pub profile: &'a Profile,
    pub desc: &'a KernelDesc,
    hbm: &'a mut [u8],
    blocks: Vec<BlockStats>,
    /// Walk the tiles and check and count everything, but move and compute no values (to
    /// price launches too big to simulate, such as a 4096^3 matmul).
    dry: bool,
}

impl<'a> KernelSim<'a> {
    pub fn new(profile: &'a Profile, desc: &'a KernelDesc, hbm: &'a mut [u8]) -> KernelSim<'a> {
        KernelSim {
            profile,
            desc,
            hbm,
            blocks: vec![BlockStats::default(); desc.block_dim as usize],
            dry: false,
        }
    }

    /// A launch that moves and computes no values: tiles are checked and counted only.
    pub fn dry(profile: &'a Profile, desc: &'a KernelDesc) -> KernelSim<'a> {
        KernelSim {
            profile,
            desc,
            hbm: &mut [],
            blocks: vec![BlockStats::default(); desc.block_dim as usize],
            dry: true,
        }
    }

    pub fn block_dim(&self) -> usize {
        self.blocks.len()
    }

    /// Tiling field `name`.
    pub fn tiling(&self, name: &str) -> SimResult<i64> {
        match self.desc.tiling.get(name) {
            Some(v) => Ok(v),
            None => reject!("tiling field `{name}` is missing"),
        }
    }

    /// Tiling field `name`, which must be a count (>= 0).
    pub fn tiling_count(&self, name: &str) -> SimResult<usize> {
        let v = self.tiling(name)?;
        match usize::try_from(v) {
            Ok(u) => Ok(u),
            Err(_) => reject!("tiling field `{name}` = {v} must not be negative"),
        }
    }

    /// Tiling field `name`, which must be >= 1.
    pub fn tiling_positive(&self, name: &str) -> SimResult<usize> {
        match self.tiling_count(name)? {
            0 => reject!("tiling field `{name}` must be at least 1"),
            v => Ok(v),
        }
    }

    pub fn input(&self, i: usize) -> SimResult<&'a TensorBinding> {
        match self.desc.inputs.get(i) {
            Some(Some(b)) => Ok(b),
            _ => reject!("input {i} is missing"),
        }
    }

    pub fn opt_input(&self, i: usize) -> Option<&'a TensorBinding> {
        self.desc.inputs.get(i).and_then(|b| b.as_ref())
    }

    pub fn output(&self, i: usize) -> SimResult<&'a TensorBinding> {
        match self.desc.outputs.get(i) {
            Some(b) => Ok(b),
            None => reject!("output {i} is missing"),
        }
    }

    /// The core that runs block `block`, with empty local memories.
    pub fn core(&mut self, block: usize) -> Core<'_, 'a> {
        Core {
            sim: self,
            block,
            next: [0; 5],
            tiles: Vec::new(),
        }
    }

    pub fn into_stats(self) -> Vec<BlockStats> {
        self.blocks
    }
}

/// A buffer allocated in a core's local memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TileId(usize);

struct Tile {
    mem: Mem,
    name: String,
    bytes: u64,
    rows: usize,
    cols: usize,
    dtype: ElemType,
    data: Vec<f64>,
}

/// The storage index of logical element (row, col) of `b`, seen as a matrix of
/// rows = product of all dims but the last, cols = the last dim. For FRACTAL_NZ, a
/// [.., R, C] matrix stored as [.., C1, R1, 16, 16] with the leading dims folded into the
/// row count (each batch a whole number of fractal rows).
pub fn storage_index(b: &TensorBinding, row: usize, col: usize) -> usize {
    match b.format {
        Format::Nd => {
            let cols = b.shape.last().copied().unwrap_or(1).max(1) as usize;
            row * cols + col
        }
        Format::FractalNz => {
            let n = b.shape.len();
            let r = if n >= 2 { b.shape[n - 2] as usize } else { 1 };
            let c = b.shape[n - 1] as usize;
            let (r1, c1) = (r.div_ceil(16), c.div_ceil(16));
            let (batch, row) = (row / r.max(1), row % r.max(1));
            batch * (r1 * c1 * 256)
                + (col / 16) * (r1 * 256)
                + (row / 16) * 256
                + (row % 16) * 16
                + col % 16
        }
    }
}

/// Rows and cols of `b` seen as a matrix (see [`storage_index`]).
pub fn matrix_dims(b: &TensorBinding) -> (usize, usize) {
    let cols = b.shape.last().copied().unwrap_or(1).max(0) as usize;
    let rows = b.shape[..b.shape.len().saturating_sub(1)]
        .iter()
        .map(|&d| d.max(0) as usize)
        .product();
    (rows, cols)
}

impl Core<'_, '_> {
    pub fn profile(&self) -> &Profile {
        self.sim.profile
    }

    /// Whether values are left out (see [`KernelSim::dry`]): tiles then hold no data, and a
    /// kernel passes zeros as its vector results.
    pub fn is_dry(&self) -> bool {
        self.sim.dry
    }

    fn stats(&mut self) -> &mut BlockStats {
        &mut self.sim.blocks[self.block]
    }

    /// Allocates `bytes` of `mem` for a buffer called `name` (for messages), at the next
    /// aligned address. `bytes` must be a multiple of the memory's alignment.
    pub fn alloc(&mut self, mem: Mem, name: &str, bytes: u64) -> SimResult<TileId> {
        let p = self.sim.profile;
        let core = self.sim.desc.core_type;
        if !mem.on(core) {
            reject!("tile `{name}`: an {core} core has no {}", mem.name());
        }
        let align = mem.align(p);
        if !bytes.is_multiple_of(align) {
            reject!(
                "tile `{name}` of {bytes} B in {} is not a multiple of its {align}-byte alignment",
                mem.name()
            );
        }
        let offset = self.next[mem.index()].div_ceil(align) * align;
        let end = offset + bytes;
        let cap = mem.capacity(p);
        if end > cap {
            reject!(
                "{} overflow: tile `{name}` of {bytes} B at offset {offset} ends at {end} B, past the {cap} B of {}",
                mem.name(),
                mem.name()
            );
        }
        self.next[mem.index()] = end;
        self.tiles.push(Tile {
            mem,
            name: name.to_string(),
            bytes,
            rows: 0,
            cols: 0,
            dtype: ElemType::F32,
            data: Vec::new(),
        });
        Ok(TileId(self.tiles.len() - 1))
    }

    /// Checks that a rows x cols matrix of `t` fits tile `id`, then makes it its content.
    fn fill(
        &mut self,
        id: TileId,
        rows: usize,
        cols: usize,
        t: ElemType,
        data: Vec<f64>,
    ) -> SimResult<()> {
        self.fill_as(id, rows, cols, t, data, false)
    }

    fn fill_as(
        &mut self,
        id: TileId,
        rows: usize,
        cols: usize,
        t: ElemType,
        data: Vec<f64>,
        rowwise: bool,
    ) -> SimResult<()> {
        let p = self.sim.profile;
        let tile = &mut self.tiles[id.0];
        let need = tile.mem.footprint(p, rows, cols, t, rowwise);
        if need > tile.bytes {
            reject!(
                "{} overflow: a {rows}x{cols} {t} tile needs {need} B, buffer `{}` has {} B",
                tile.mem.name(),
                tile.name,
                tile.bytes
            );
        }
        tile.rows = rows;
        tile.cols = cols;
        tile.dtype = t;
        tile.data = data;
        Ok(())
    }

    /// The values tile `id` holds, row-major, with its rows and cols.
    pub fn data(&self, id: TileId) -> (&[f64], usize, usize) {
        let t = &self.tiles[id.0];
        (&t.data, t.rows, t.cols)
    }

    /// Reads logical elements of `src` (a global memory tensor) into `dst`, a rows x cols
    /// tile in L1 or UB: element (i, j) of the tile is `src`'s matrix element
    /// (row0 + i, col0 + j). MTE2.
    pub fn load(
        &mut self,
        dst: TileId,
        src: &TensorBinding,
        (row0, rows): (usize, usize),
        (col0, cols): (usize, usize),
    ) -> SimResult<()> {
        let mem = self.tiles[dst.0].mem;
        if !matches!(mem, Mem::L1 | Mem::Ub) {
            reject!("global memory loads into L1 or UB, not {}", mem.name());
        }
        let (r, c) = matrix_dims(src);
        if row0 + rows > r || col0 + cols > c {
            reject!(
                "load of rows {row0}..{} cols {col0}..{} outside a {r}x{c} tensor",
                row0 + rows,
                col0 + cols
            );
        }
        let mut data = Vec::with_capacity(if self.sim.dry { 0 } else { rows * cols });
        for i in (row0..row0 + rows).filter(|_| !self.sim.dry) {
            for j in col0..col0 + cols {
                data.push(self.read_gm(src, storage_index(src, i, j))?);
            }
        }
        self.stats().mte2_bytes += (rows * cols * src.dtype.size()) as u64;
        self.fill(dst, rows, cols, src.dtype, data)
    }

    /// Reads elements col0..col0+cols of the 1-D tensor `src` into `dst`, a row in L1 (a
    /// bias, kept as a row rather than fractals). MTE2.
    pub fn load_row(
        &mut self,
        dst: TileId,
        src: &TensorBinding,
        col0: usize,
        cols: usize,
    ) -> SimResult<()> {
        if self.tiles[dst.0].mem != Mem::L1 {
            reject!(
                "a row is loaded into L1, not {}",
                self.tiles[dst.0].mem.name()
            );
        }
        if (col0 + cols) as u64 > src.numel() {
            reject!(
                "load of elements {col0}..{} of a {}-element tensor",
                col0 + cols,
                src.numel()
            );
        }
        let data = (col0..col0 + cols)
            .filter(|_| !self.sim.dry)
            .map(|i| self.read_gm(src, i))
            .collect::<SimResult<Vec<_>>>()?;
        self.stats().mte2_bytes += (cols * src.dtype.size()) as u64;
        self.fill_as(dst, 1, cols, src.dtype, data, true)
    }

    /// Reads the storage elements `idx` of `src` into `dst` (a 1 x idx.len() tile in UB):
    /// gathers, broadcasts. MTE2.
    pub fn load_elements(
        &mut self,
        dst: TileId,
        src: &TensorBinding,
        idx: &[usize],
    ) -> SimResult<()> {
        if self.tiles[dst.0].mem != Mem::Ub {
            reject!("element loads go to UB");
        }
        if let Some(&i) = idx.iter().max().filter(|_| self.sim.dry) {
            if i as u64 >= src.storage_numel() {
                reject!(
                    "reads element {i} of a tensor of {} elements",
                    src.storage_numel()
                );
            }
        }
        let data = idx
            .iter()
            .filter(|_| !self.sim.dry)
            .map(|&i| self.read_gm(src, i))
            .collect::<SimResult<Vec<_>>>()?;
        self.stats().mte2_bytes += (idx.len() * src.dtype.size()) as u64;
        self.fill(dst, 1, idx.len(), src.dtype, data)
    }

    /// Reads element `i` of `src` with the core's scalar unit (control data such as a
    /// grouped matmul's group list). None when the run is dry (no values).
    pub fn scalar_read(&mut self, src: &TensorBinding, i: usize) -> SimResult<Option<f64>> {
        if i as u64 >= src.storage_numel() {
            reject!(
                "reads element {i} of a tensor of {} elements",
                src.storage_numel()
            );
        }
        self.stats().mte2_bytes += src.dtype.size() as u64;
        if self.sim.dry {
            return Ok(None);
        }
        self.read_gm(src, i).map(Some)
    }

    fn read_gm(&self, b: &TensorBinding, i: usize) -> SimResult<f64> {
        if i as u64 >= b.storage_numel() {
            reject!(
                "reads element {i} of a tensor of {} elements",
                b.storage_numel()
            );
        }
        Ok(values::decode(
            b.dtype,
            &self.sim.hbm[b.offset as usize..],
            i,
        ))
    }

    fn write_gm(&mut self, b: &TensorBinding, i: usize, v: f64) -> SimResult<()> {
        if i as u64 >= b.storage_numel() {
            reject!(
                "writes element {i} of a tensor of {} elements",
                b.storage_numel()
            );
        }
        values::encode(b.dtype, &mut self.sim.hbm[b.offset as usize..], i, v);
        Ok(())
    }

    /// Copies rows row0.. x cols col0.. of L1 tile `src` into `dst` in L0A or L0B. MTE1.
    pub fn copy_to_l0(
        &mut self,
        dst: TileId,
        src: TileId,
        rows: (usize, usize),
        cols: (usize, usize),
    ) -> SimResult<()> {
        self.copy_l1(dst, src, rows, cols, false)
    }

    fn copy_l1(
        &mut self,
        dst: TileId,
        src: TileId,
        (row0, rows): (usize, usize),
        (col0, cols): (usize, usize),
        transpose: bool,
    ) -> SimResult<()> {
        let (s, d) = (&self.tiles[src.0], &self.tiles[dst.0]);
        if s.mem != Mem::L1 || !matches!(d.mem, Mem::L0A | Mem::L0B) {
            reject!(
                "MTE1 copies L1 to L0A/L0B, not {} to {}",
                s.mem.name(),
                d.mem.name()
            );
        }
        if row0 + rows > s.rows || col0 + cols > s.cols {
            reject!(
                "copy of rows {row0}..{} cols {col0}..{} outside the {}x{} tile in `{}`",
                row0 + rows,
                col0 + cols,
                s.rows,
                s.cols,
                s.name
            );
        }
        let mut data = Vec::with_capacity(rows * cols);
        for i in (row0..row0 + rows).filter(|_| !self.sim.dry) {
            data.extend_from_slice(&s.data[i * s.cols + col0..i * s.cols + col0 + cols]);
        }
        let t = s.dtype;
        let bytes = d.mem.footprint(self.sim.profile, rows, cols, t, false);
        self.stats().mte1_bytes += bytes;
        if transpose {
            let mut tr = vec![0f64; data.len()];
            for i in 0..rows.min(data.len() / cols.max(1)) {
                for j in 0..cols {
                    tr[j * rows + i] = data[i * cols + j];
                }
            }
            return self.fill(dst, cols, rows, t, tr);
        }
        self.fill(dst, rows, cols, t, data)
    }

    /// [`Core::copy_to_l0`] of the transpose: the rows x cols block lands as cols x rows
    /// (the load-with-transpose path of MTE1, for a Kᵀ operand).
    pub fn copy_to_l0_transposed(
        &mut self,
        dst: TileId,
        src: TileId,
        rows: (usize, usize),
        cols: (usize, usize),
    ) -> SimResult<()> {
        self.copy_l1(dst, src, rows, cols, true)
    }

    /// `c = a·b` (or `c += a·b` unless `init`): a m x k tile in L0A, a k x n tile in L0B, a
    /// m x n f32 tile in L0C. Products and sums in f32, one 16x16x16 step per cycle.
    pub fn mmad(&mut self, c: TileId, a: TileId, b: TileId, init: bool) -> SimResult<()> {
        let (ta, tb, tc) = (&self.tiles[a.0], &self.tiles[b.0], &self.tiles[c.0]);
        if ta.mem != Mem::L0A || tb.mem != Mem::L0B || tc.mem != Mem::L0C {
            reject!(
                "mmad takes L0A x L0B -> L0C, not {} x {} -> {}",
                ta.mem.name(),
                tb.mem.name(),
                tc.mem.name()
            );
        }
        if !matches!(ta.dtype, ElemType::F16 | ElemType::BF16) || ta.dtype != tb.dtype {
            reject!(
                "mmad multiplies f16 or bf16 matrices, not {} x {}",
                ta.dtype,
                tb.dtype
            );
        }
        let (m, k, n) = (ta.rows, ta.cols, tb.cols);
        if tb.rows != k {
            reject!("mmad of a {m}x{k} by a {}x{n} tile", tb.rows);
        }
        if !init && (tc.rows != m || tc.cols != n || tc.dtype != ElemType::F32) {
            reject!(
                "mmad accumulates a {m}x{n} product into a {}x{} tile",
                tc.rows,
                tc.cols
            );
        }
        let mut out = if self.sim.dry {
            Vec::new()
        } else if init {
            vec![0f32; m * n]
        } else {
            tc.data.iter().map(|&v| v as f32).collect()
        };
        for i in (0..m).filter(|_| !self.sim.dry) {
            for kk in 0..k {
                let x = ta.data[i * k + kk] as f32;
                if x == 0.0 {
                    continue;
                }
                let row = &tb.data[kk * n..(kk + 1) * n];
                for (o, &y) in out[i * n..(i + 1) * n].iter_mut().zip(row) {
                    *o += x * y as f32;
                }
            }
        }
        let steps = (m.div_ceil(16) * n.div_ceil(16) * k.div_ceil(16)) as u64;
        self.stats().cube_cycles += steps;
        self.fill(
            c,
            m,
            n,
            ElemType::F32,
            out.into_iter().map(|v| v as f64).collect(),
        )
    }

    /// Writes L0C tile `c` to `dst` at matrix position (row0, col0), converting to `dst`'s
    /// dtype. Fixpipe.
    pub fn fixpipe(
        &mut self,
        dst: &TensorBinding,
        c: TileId,
        row0: usize,
        col0: usize,
    ) -> SimResult<()> {
        let t = &self.tiles[c.0];
        if t.mem != Mem::L0C {
            reject!("fixpipe writes from L0C, not {}", t.mem.name());
        }
        let (rows, cols) = (t.rows, t.cols);
        let data = std::mem::take(&mut self.tiles[c.0].data);
        let res = self.write_matrix(dst, &data, rows, cols, row0, col0);
        self.tiles[c.0].data = data;
        res?;
        self.stats().fixpipe_bytes += (rows * cols * dst.dtype.size()) as u64;
        Ok(())
    }

    /// Writes UB tile `src` (rows x cols) to `dst` at matrix position (row0, col0). MTE3.
    pub fn store(
        &mut self,
        dst: &TensorBinding,
        src: TileId,
        row0: usize,
        col0: usize,
    ) -> SimResult<()> {
        let t = &self.tiles[src.0];
        if t.mem != Mem::Ub {
            reject!("stores to global memory go from UB, not {}", t.mem.name());
        }
        if t.dtype != dst.dtype {
            reject!("stores a {} tile into a {} tensor", t.dtype, dst.dtype);
        }
        let (rows, cols) = (t.rows, t.cols);
        let data = std::mem::take(&mut self.tiles[src.0].data);
        let res = self.write_matrix(dst, &data, rows, cols, row0, col0);
        self.tiles[src.0].data = data;
        res?;
        self.stats().mte3_bytes += (rows * cols * dst.dtype.size()) as u64;
        Ok(())
    }

    /// Writes UB tile `src` (its values in row-major order) to the storage elements
    /// `start..` of `dst`. MTE3.
    pub fn store_flat(&mut self, dst: &TensorBinding, src: TileId, start: usize) -> SimResult<()> {
        let t = &self.tiles[src.0];
        if t.mem != Mem::Ub {
            reject!("stores to global memory go from UB, not {}", t.mem.name());
        }
        if t.dtype != dst.dtype {
            reject!("stores a {} tile into a {} tensor", t.dtype, dst.dtype);
        }
        let data = std::mem::take(&mut self.tiles[src.0].data);
        let n = self.tiles[src.0].rows * self.tiles[src.0].cols;
        let mut res = Ok(());
        if self.sim.dry && (start + n) as u64 > dst.storage_numel() {
            reject!(
                "writes element {} of a tensor of {} elements",
                start + n - 1,
                dst.storage_numel()
            );
        }
        for (i, &v) in data.iter().enumerate() {
            res = self.write_gm(dst, start + i, v);
            if res.is_err() {
                break;
            }
        }
        self.tiles[src.0].data = data;
        res?;
        self.stats().mte3_bytes += (n * dst.dtype.size()) as u64;
        Ok(())
    }

    /// Writes the values of UB tile `src` to the storage elements `targets` of `dst` (one
    /// per value; a scatter). MTE3.
    pub fn scatter(
        &mut self,
        dst: &TensorBinding,
        src: TileId,
        targets: &[usize],
    ) -> SimResult<()> {
        let t = &self.tiles[src.0];
        if t.mem != Mem::Ub || t.dtype != dst.dtype {
            reject!(
                "scatters a {} tile in {} into a {} tensor",
                t.dtype,
                t.mem.name(),
                dst.dtype
            );
        }
        let n = t.rows * t.cols;
        if !self.sim.dry && targets.len() != n {
            reject!("scatters {n} values to {} places", targets.len());
        }
        let data = std::mem::take(&mut self.tiles[src.0].data);
        let mut res = Ok(());
        for (&i, &v) in targets.iter().zip(&data) {
            res = self.write_gm(dst, i, v);
            if res.is_err() {
                break;
            }
        }
        self.tiles[src.0].data = data;
        res?;
        self.stats().mte3_bytes += (n * dst.dtype.size()) as u64;
        Ok(())
    }

    /// Sets L0C tile `c` to `rows` copies of the 1 x n row in L1 tile `bias`, as f32 (the
    /// bias table path of a matmul with bias).
    pub fn bias_init(&mut self, c: TileId, bias: TileId, rows: usize) -> SimResult<()> {
        let (tb, tc) = (&self.tiles[bias.0], &self.tiles[c.0]);
        if tb.mem != Mem::L1 || tc.mem != Mem::L0C || tb.rows != 1 {
            reject!(
                "a bias goes from a row in L1 to L0C, not from a {}x{} tile in {} to {}",
                tb.rows,
                tb.cols,
                tb.mem.name(),
                tc.mem.name()
            );
        }
        let n = tb.cols;
        let row: Vec<f64> = tb.data.iter().map(|&v| v as f32 as f64).collect();
        let data = (0..rows)
            .filter(|_| !self.sim.dry)
            .flat_map(|_| row.iter().copied())
            .collect();
        self.stats().mte1_bytes += (n * 4) as u64;
        self.fill(c, rows, n, ElemType::F32, data)
    }

    fn write_matrix(
        &mut self,
        dst: &TensorBinding,
        data: &[f64],
        rows: usize,
        cols: usize,
        row0: usize,
        col0: usize,
    ) -> SimResult<()> {
        let (r, c) = matrix_dims(dst);
        if row0 + rows > r || col0 + cols > c {
            reject!(
                "write of rows {row0}..{} cols {col0}..{} outside a {r}x{c} tensor",
                row0 + rows,
                col0 + cols
            );
        }
        let rows = if self.sim.dry { 0 } else { rows };
        for i in 0..rows {
            for j in 0..cols {
                let v = values::round(dst.dtype, data[i * cols + j]);
                self.write_gm(dst, storage_index(dst, row0 + i, col0 + j), v)?;
            }
        }
        Ok(())
    }

    /// Sets UB tile `dst` to `data` (rows x cols, computed by the kernel from other UB
    /// tiles) rounded to `t`, charging `ops` vector instructions over it (each as many
    /// cycles as 256-byte chunks of the wider of f32 and `t`: f16 math on the vector unit
    /// is usually done in f32 by CANN kernels, bf16 always).
    pub fn vector(
        &mut self,
        dst: TileId,
        t: ElemType,
        (rows, cols): (usize, usize),
        data: Vec<f64>,
        ops: u64,
    ) -> SimResult<()> {
        if self.tiles[dst.0].mem != Mem::Ub {
            reject!(
                "vector results go to UB, not {}",
                self.tiles[dst.0].mem.name()
            );
        }
        if data.len() != rows * cols {
            reject!("a {rows}x{cols} vector result has {} values", data.len());
        }
        let data = data
            .into_iter()
            .filter(|_| !self.sim.dry)
            .map(|v| values::round(t, v))
            .collect();
        let width = (rows * cols * t.size().max(4)) as u64;
        let cycles = ops * width.div_ceil(self.sim.profile.vector_bytes_per_cycle);
        self.stats().vector_cycles += cycles;
        self.fill(dst, rows, cols, t, data)
    }

    /// Cycles in which nothing else overlaps (pipeline fill, serialised phases).
    pub fn serial(&mut self, cycles: u64) {
        self.stats().serial_cycles += cycles;
    }
}

/// A core running one block.
pub struct Core<'s, 'a> {
    sim: &'s mut KernelSim<'a>,
    block: usize,
    next: [u64; 5],
    tiles: Vec<Tile>,
}

impl Core<'_, '_> {
    /// The block this core runs.
    pub fn block(&self) -> usize {
        self.block
    }
}
