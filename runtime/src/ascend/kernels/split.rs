//! The 1-D work split most vector kernels share (tiling `totalLength`, `blockLength`,
//! `tileLength`, `bufferNum`): block b covers elements b·blockLength.. of `totalLength`, in
//! tiles of `tileLength`, with `bufferNum` UB buffers per queue.

use std::ops::Range;

use crate::ascend::sim::core::{Core, KernelSim, Mem, SimResult, TileId};
use crate::reject;

pub struct Split {
    pub total: usize,
    pub block_length: usize,
    pub tile: usize,
    pub buffers: usize,
}

impl Split {
    /// Reads the split from the tiling and checks it covers `total` elements.
    pub fn read(sim: &KernelSim, total: usize) -> SimResult<Split> {
        let s = Split {
            total: sim.tiling_count("totalLength")?,
            block_length: sim.tiling_positive("blockLength")?,
            tile: sim.tiling_positive("tileLength")?,
            buffers: sim.tiling_positive("bufferNum")?,
        };
        if s.total != total {
            reject!(
                "tiling totalLength {} but the kernel has {total} elements",
                s.total
            );
        }
        if s.block_length * sim.block_dim() < total {
            reject!(
                "{} blocks of {} elements do not cover the {total} elements",
                sim.block_dim(),
                s.block_length
            );
        }
        Ok(s)
    }

    /// The elements block `b` covers.
    pub fn block(&self, b: usize) -> Range<usize> {
        let start = (b * self.block_length).min(self.total);
        start..self.total.min(start + self.block_length)
    }

    /// The tiles of `range`: (tile number, first element, elements).
    pub fn tiles(&self, range: Range<usize>) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
        let end = range.end;
        range
            .step_by(self.tile)
            .enumerate()
            .map(move |(t, s)| (t, s, self.tile.min(end - s)))
    }

    /// A queue of `bufferNum` UB buffers of `tileLength` elements of `elem_bytes` each.
    pub fn queue(&self, core: &mut Core, name: &str, elem_bytes: usize) -> SimResult<Vec<TileId>> {
        let align = core.profile().ub_align as usize;
        let bytes = (self.tile * elem_bytes).div_ceil(align) * align;
        (0..self.buffers)
            .map(|j| core.alloc(Mem::Ub, &format!("{name}.{j}"), bytes as u64))
            .collect()
    }
}

/// Row-major multi-index of flat index `o` in `shape`.
pub fn unravel(mut o: usize, shape: &[usize], out: &mut [usize]) {
    for d in (0..shape.len()).rev() {
        let n = shape[d].max(1);
        out[d] = o % n;
        o /= n;
    }
}

/// Flat index of multi-index `idx` in `shape`.
pub fn ravel(idx: &[usize], shape: &[usize]) -> usize {
    idx.iter().zip(shape).fold(0, |acc, (&i, &n)| acc * n + i)
}

/// A binding's shape as sizes.
pub fn dims(shape: &[i64]) -> Vec<usize> {
    shape.iter().map(|&d| d.max(0) as usize).collect()
}

/// The row split of row-wise kernels (Softmax, norms; tiling `rows`, `cols`,
/// `rowsPerCore`, `tileRows`, `bufferNum`): block b covers rows b·rowsPerCore.., in tiles
/// of `tileRows` whole rows; a UB buffer holds a tile with each row padded to 32 bytes.
#[derive(Clone, Copy)]
pub struct RowSplit {
    pub rows: usize,
    pub cols: usize,
    pub per_core: usize,
    pub tile_rows: usize,
    pub buffers: usize,
}

impl RowSplit {
    pub fn read(sim: &KernelSim, rows: usize, cols: usize) -> SimResult<RowSplit> {
        let s = RowSplit {
            rows: sim.tiling_count("rows")?,
            cols: sim.tiling_count("cols")?,
            per_core: sim.tiling_positive("rowsPerCore")?,
            tile_rows: sim.tiling_positive("tileRows")?,
            buffers: sim.tiling_positive("bufferNum")?,
        };
        if (s.rows, s.cols) != (rows, cols) {
            reject!(
                "tiling rows x cols {}x{} but the tensor is {rows}x{cols}",
                s.rows,
                s.cols
            );
        }
        if s.per_core * sim.block_dim() < rows {
            reject!(
                "{} blocks of {} rows do not cover {rows} rows",
                sim.block_dim(),
                s.per_core
            );
        }
        Ok(s)
    }

    /// The row tiles of block `b`: (tile number, first row, rows).
    pub fn tiles(&self, b: usize) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
        let start = (b * self.per_core).min(self.rows);
        let end = self.rows.min(start + self.per_core);
        (start..end)
            .step_by(self.tile_rows)
            .enumerate()
            .map(move |(t, r)| (t, r, self.tile_rows.min(end - r)))
    }

    /// `count` UB buffers of a tile of `tileRows` rows of `cols` elements of `elem_bytes`.
    pub fn buffers(
        &self,
        core: &mut Core,
        name: &str,
        elem_bytes: usize,
        count: usize,
    ) -> SimResult<Vec<TileId>> {
        let align = core.profile().ub_align as usize;
        let row = (self.cols * elem_bytes).div_ceil(align) * align;
        (0..count)
            .map(|j| {
                core.alloc(
                    Mem::Ub,
                    &format!("{name}.{j}"),
                    (self.tile_rows * row) as u64,
                )
            })
            .collect()
    }
}

/// Maps an output element index to the index of the input element broadcast to it.
pub struct Broadcast {
    out_strides: Vec<usize>,
    in_strides: Vec<usize>,
}

impl Broadcast {
    pub fn new(out: &[i64], input: &[i64]) -> SimResult<Broadcast> {
        let n = out.len();
        if input.len() > n {
            reject!("an input of shape {input:?} does not broadcast to {out:?}");
        }
        let mut out_strides = vec![0; n];
        let mut in_strides = vec![0; n];
        let (mut so, mut si) = (1usize, 1usize);
        for d in (0..n).rev() {
            out_strides[d] = so;
            so *= out[d].max(0) as usize;
            let k = d as isize - (n - input.len()) as isize;
            if k >= 0 {
                let dim = input[k as usize];
                if dim != 1 && dim != out[d] {
                    reject!("an input of shape {input:?} does not broadcast to {out:?}");
                }
                in_strides[d] = if dim == 1 { 0 } else { si };
                si *= dim.max(0) as usize;
            }
        }
        Ok(Broadcast {
            out_strides,
            in_strides,
        })
    }

    pub fn index(&self, mut o: usize) -> usize {
        let mut i = 0;
        for (os, is) in self.out_strides.iter().zip(&self.in_strides) {
            let q = o / os;
            o %= os;
            i += q * is;
        }
        i
    }
}
