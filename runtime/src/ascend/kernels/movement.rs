//! Data movement kernels (AIV), each output element a copy of one input element:
//! Transpose, StridedSlice, BroadcastTo, ConcatD, SplitV, and the gathers GatherV2,
//! GatherNd, GatherElements (whose source depends on index values read from GM first).
//!
//! Tiling: the 1-D split ([`super::split`]) over the output elements (all outputs end to
//! end for SplitV), plus the op's attributes: `perm{d}` (Transpose), `begin{d}` and
//! `stride{d}` (StridedSlice), `axis` (ConcatD, SplitV, GatherV2, GatherElements). Per
//! tile, a block reads the index values it needs into UB, then for each input the elements
//! the tile takes from it (a gather from GM into a UB staging buffer), assembles the output
//! tile in UB and stores it.

use crate::ascend::descriptor::{Format, TensorBinding};
use crate::ascend::kernels::split::{dims, ravel, unravel, Split};
use crate::ascend::kernels::SimulateFn;
use crate::ascend::sim::core::{KernelSim, SimResult};
use crate::reject;

pub const KERNELS: &[(&str, SimulateFn)] = &[
    ("Transpose", run),
    ("StridedSlice", run),
    ("BroadcastTo", run),
    ("ConcatD", run),
    ("SplitV", run),
    ("GatherV2", run),
    ("GatherNd", run),
    ("GatherElements", run),
];

/// How an output element finds its source.
enum Map {
    /// out multi-index -> in multi-index by `perm`: in[perm[d]] = out[d].
    Transpose(Vec<usize>),
    /// in[d] = begin[d] + out[d] * stride[d].
    Slice(Vec<i64>, Vec<i64>),
    Broadcast,
    Concat(usize),
    Split(usize),
    Gather(usize),
    GatherNd,
    GatherElements(usize),
}

struct Kernel<'a> {
    map: Map,
    data: Vec<&'a TensorBinding>,
    indices: Option<&'a TensorBinding>,
    outs: Vec<&'a TensorBinding>,
}

fn axis(sim: &KernelSim, rank: usize) -> SimResult<usize> {
    let a = sim.tiling_count("axis")?;
    if a >= rank.max(1) {
        reject!("tiling axis {a} is not below the rank {rank}");
    }
    Ok(a)
}

fn kernel<'a>(sim: &KernelSim<'a>) -> SimResult<Kernel<'a>> {
    let name = sim.desc.kernel_name.as_str();
    let ins: Vec<&'a TensorBinding> = (0..sim.desc.inputs.len())
        .map(|i| sim.input(i))
        .collect::<SimResult<_>>()?;
    let outs: Vec<&'a TensorBinding> = (0..sim.desc.outputs.len())
        .map(|i| sim.output(i))
        .collect::<SimResult<_>>()?;
    if ins.is_empty() || outs.is_empty() {
        reject!("{name} needs inputs and outputs");
    }
    for b in ins.iter().chain(&outs) {
        if b.format != Format::Nd {
            reject!("{name} takes ND tensors, not {}", b.format);
        }
    }
    let rank = outs[0].shape.len();
    let (map, data, indices) = match name {
        "Transpose" => {
            let perm = (0..rank)
                .map(|d| sim.tiling_count(&format!("perm{d}")))
                .collect::<SimResult<Vec<_>>>()?;
            let mut seen = vec![false; rank];
            for &p in &perm {
                if p >= rank || std::mem::replace(&mut seen[p], true) {
                    reject!("tiling perm {perm:?} is not a permutation");
                }
            }
            (Map::Transpose(perm), ins, None)
        }
        "StridedSlice" => {
            let begin = (0..rank)
                .map(|d| sim.tiling(&format!("begin{d}")))
                .collect::<SimResult<Vec<_>>>()?;
            let stride = (0..rank)
                .map(|d| sim.tiling(&format!("stride{d}")))
                .collect::<SimResult<Vec<_>>>()?;
            (Map::Slice(begin, stride), ins, None)
        }
        "BroadcastTo" => (Map::Broadcast, ins, None),
        "ConcatD" => (Map::Concat(axis(sim, rank)?), ins, None),
        "SplitV" => (Map::Split(axis(sim, ins[0].shape.len())?), ins, None),
        "GatherV2" | "GatherNd" | "GatherElements" => {
            if ins.len() != 2 {
                reject!("{name} takes data and indices");
            }
            let map = match name {
                "GatherV2" => Map::Gather(axis(sim, ins[0].shape.len())?),
                "GatherNd" => Map::GatherNd,
                _ => Map::GatherElements(axis(sim, ins[0].shape.len())?),
            };
            (map, vec![ins[0]], Some(ins[1]))
        }
        _ => reject!("no movement kernel {name}"),
    };
    for o in &outs[1..] {
        if o.dtype != outs[0].dtype {
            reject!("outputs of different dtypes");
        }
    }
    for d in &data {
        if d.dtype != outs[0].dtype {
            reject!("copies {} into {}", d.dtype, outs[0].dtype);
        }
    }
    Ok(Kernel {
        map,
        data,
        indices,
        outs,
    })
}

impl Kernel<'_> {
    /// The positions in `indices` output element `o` (of output 0) needs.
    fn index_positions(&self, o: usize, out: &[usize], pos: &mut Vec<usize>) -> SimResult<()> {
        let ishape = dims(self.indices.map_or(&[][..], |b| &b.shape[..]));
        let mut oi = vec![0; out.len()];
        unravel(o, out, &mut oi);
        match &self.map {
            Map::Gather(a) => {
                // out = data[..a] ++ indices ++ data[a+1..]
                let r = ishape.len();
                pos.push(ravel(&oi[*a..*a + r], &ishape));
            }
            Map::GatherNd => {
                let k = *ishape.last().unwrap_or(&0);
                let lead = ishape.len() - 1;
                let base = ravel(&oi[..lead], &ishape[..lead]) * k;
                pos.extend(base..base + k);
            }
            Map::GatherElements(_) => pos.push(o),
            _ => {}
        }
        Ok(())
    }

    /// The (data input, storage index) of element `o` of output `j`, given the index
    /// values it needs.
    fn source(&self, j: usize, o: usize, idx: &[f64]) -> SimResult<(usize, usize)> {
        let out = dims(&self.outs[j].shape);
        let mut oi = vec![0; out.len()];
        unravel(o, &out, &mut oi);
        let in0 = dims(&self.data[0].shape);
        let wrap = |v: f64, n: usize| -> SimResult<usize> {
            let v = v as i64;
            let w = if v < 0 { v + n as i64 } else { v };
            if w < 0 || w >= n as i64 {
                reject!("index {v} is out of range for an axis of {n}");
            }
            Ok(w as usize)
        };
        Ok(match &self.map {
            Map::Transpose(perm) => {
                let mut ii = vec![0; out.len()];
                for (d, &p) in perm.iter().enumerate() {
                    ii[p] = oi[d];
                }
                (0, ravel(&ii, &in0))
            }
            Map::Slice(begin, stride) => {
                let mut ii = vec![0; out.len()];
                for d in 0..out.len() {
                    let v = begin[d] + oi[d] as i64 * stride[d];
                    if v < 0 || v >= in0[d] as i64 {
                        reject!("slice reads index {v} of an axis of {}", in0[d]);
                    }
                    ii[d] = v as usize;
                }
                (0, ravel(&ii, &in0))
            }
            Map::Broadcast => {
                let off = out.len() - in0.len();
                let ii: Vec<usize> = (0..in0.len())
                    .map(|d| if in0[d] == 1 { 0 } else { oi[d + off] })
                    .collect();
                (0, ravel(&ii, &in0))
            }
            Map::Concat(a) => {
                let mut x = oi[*a];
                for (i, d) in self.data.iter().enumerate() {
                    let n = d.shape[*a] as usize;
                    if x < n {
                        let mut ii = oi.clone();
                        ii[*a] = x;
                        return Ok((i, ravel(&ii, &dims(&d.shape))));
                    }
                    x -= n;
                }
                reject!("concat position {} beyond its inputs", oi[*a]);
            }
            Map::Split(a) => {
                let first: usize = self.outs[..j].iter().map(|b| b.shape[*a] as usize).sum();
                let mut ii = oi.clone();
                ii[*a] += first;
                (0, ravel(&ii, &in0))
            }
            Map::Gather(a) => {
                let r = self.indices.map_or(0, |b| b.shape.len());
                let mut ii: Vec<usize> = oi[..*a].to_vec();
                ii.push(wrap(idx[0], in0[*a])?);
                ii.extend_from_slice(&oi[*a + r..]);
                (0, ravel(&ii, &in0))
            }
            Map::GatherNd => {
                let ishape = dims(self.indices.map_or(&[][..], |b| &b.shape[..]));
                let lead = ishape.len() - 1;
                let mut ii: Vec<usize> = Vec::with_capacity(in0.len());
                for (d, &v) in idx.iter().enumerate() {
                    ii.push(wrap(v, in0[d])?);
                }
                ii.extend_from_slice(&oi[lead..]);
                (0, ravel(&ii, &in0))
            }
            Map::GatherElements(a) => {
                let mut ii = oi.clone();
                ii[*a] = wrap(idx[0], in0[*a])?;
                (0, ravel(&ii, &in0))
            }
        })
    }
}

fn run(sim: &mut KernelSim) -> SimResult<()> {
    let k = kernel(sim)?;
    let sizes: Vec<usize> = k.outs.iter().map(|b| b.numel() as usize).collect();
    let total: usize = sizes.iter().sum();
    let split = Split::read(sim, total)?;
    let out_dtype = k.outs[0].dtype;
    let in_size = k.data.iter().map(|b| b.dtype.size()).max().unwrap_or(1);
    let per_index = match (&k.map, k.indices) {
        (Map::GatherNd, Some(i)) => *i.shape.last().unwrap_or(&1) as usize,
        (_, Some(_)) => 1,
        _ => 0,
    };
    let out0 = dims(&k.outs[0].shape);
    for b in 0..sim.block_dim() {
        let mut core = sim.core(b);
        let idx_q = match k.indices {
            Some(i) => split.queue(&mut core, "indices", per_index * i.dtype.size())?,
            None => Vec::new(),
        };
        let src_q = split.queue(&mut core, "src", in_size)?;
        let out_q = split.queue(&mut core, "out", out_dtype.size())?;
        let dry = core.is_dry();
        for (t, s, n) in split.tiles(split.block(b)) {
            let slot = t % split.buffers;
            // Which output each element is in, and its index there.
            let place = |e: usize| {
                let mut o = s + e;
                let mut j = 0;
                while o >= sizes[j] {
                    o -= sizes[j];
                    j += 1;
                }
                (j, o)
            };
            let mut vals: Vec<Vec<f64>> = vec![Vec::new(); n];
            if let Some(ib) = k.indices {
                let mut pos = Vec::new();
                for e in 0..n {
                    k.index_positions(place(e).1, &out0, &mut pos)?;
                }
                core.load_elements(idx_q[slot], ib, &pos)?;
                let data = core.data(idx_q[slot]).0;
                for (e, v) in vals.iter_mut().enumerate() {
                    *v = if dry {
                        vec![0.0; per_index]
                    } else {
                        data[e * per_index..(e + 1) * per_index].to_vec()
                    };
                }
            }
            let mut sources = Vec::with_capacity(n);
            for (e, v) in vals.iter().enumerate() {
                let (j, o) = place(e);
                sources.push(k.source(j, o, v)?);
            }
            let mut tile = vec![0f64; n];
            for (i, input) in k.data.iter().enumerate() {
                let (es, idx): (Vec<usize>, Vec<usize>) = sources
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.0 == i)
                    .map(|(e, s)| (e, s.1))
                    .unzip();
                if idx.is_empty() {
                    continue;
                }
                core.load_elements(src_q[slot], input, &idx)?;
                if !dry {
                    let data = core.data(src_q[slot]).0;
                    for (x, &e) in es.iter().enumerate() {
                        tile[e] = data[x];
                    }
                }
            }
            // Store each output's run of the tile.
            let mut e = 0;
            while e < n {
                let (j, o) = place(e);
                let len = (sizes[j] - o).min(n - e);
                let part = tile[e..e + len].to_vec();
                core.vector(out_q[slot], out_dtype, (1, len), part, 1)?;
                core.store_flat(k.outs[j], out_q[slot], o)?;
                e += len;
            }
        }
    }
    Ok(())
}
