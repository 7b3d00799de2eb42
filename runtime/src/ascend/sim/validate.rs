//! The device model's checks of a launch list before anything runs: the HBM plan (sizes,
//! alignment, no two live buffers sharing bytes) when it is loaded, and each kernel's
//! descriptor (blockDim, tiling size, bindings inside live buffers) when it is launched.
//! Tile-level limits are checked while the kernel runs ([`crate::ascend::sim::core`]).

use crate::ascend::descriptor::{
    BufferKind, Format, HbmBuffer, KernelDesc, LaunchList, TensorBinding, LAUNCH_FORMAT,
};
use crate::ascend::profile::Profile;
use crate::ascend::sim::values;

/// Checks the launch list as a whole against `p`.
pub fn plan(list: &LaunchList, p: &Profile) -> Result<(), String> {
    if list.format != LAUNCH_FORMAT {
        return Err(format!("format `{}` is not `{LAUNCH_FORMAT}`", list.format));
    }
    if list.profile != p.name {
        return Err(format!(
            "compiled for {}, this device is {}",
            list.profile, p.name
        ));
    }
    let hbm = &list.hbm;
    if hbm.bytes > p.hbm_bytes {
        return Err(format!(
            "needs {} B of HBM, the {} has {} B",
            hbm.bytes, p.name, p.hbm_bytes
        ));
    }
    if hbm.weights_bytes > hbm.bytes {
        return Err(format!(
            "the weights ({} B) do not fit the {} B of HBM",
            hbm.weights_bytes, hbm.bytes
        ));
    }
    let last = list.kernels.len().saturating_sub(1) as u32;
    for b in &hbm.buffers {
        let end = b.offset.checked_add(b.bytes);
        if end.is_none_or(|e| e > hbm.bytes) {
            return Err(format!(
                "buffer `{}` ({} B at {}) lies outside the {} B of HBM",
                b.name, b.bytes, b.offset, hbm.bytes
            ));
        }
        if !b.offset.is_multiple_of(p.gm_align) {
            return Err(format!(
                "buffer `{}` at HBM offset {} is not {}-byte aligned",
                b.name, b.offset, p.gm_align
            ));
        }
        let in_weights = b.offset + b.bytes <= hbm.weights_bytes;
        if (b.kind == BufferKind::Weight) != in_weights && b.bytes > 0 {
            return Err(format!(
                "buffer `{}` ({:?}) is {} the weights region",
                b.name,
                b.kind,
                if in_weights { "inside" } else { "outside" }
            ));
        }
        if b.live.0 > b.live.1 || b.live.1 > last && !list.kernels.is_empty() {
            return Err(format!(
                "buffer `{}` is live over kernels {}..{}, the list has {} kernels",
                b.name,
                b.live.0,
                b.live.1,
                list.kernels.len()
            ));
        }
    }
    // Two buffers may share bytes only if they are never live at once. Sorting by offset
    // keeps this near-linear: only buffers that start before another ends are compared.
    let mut order: Vec<&HbmBuffer> = hbm
        .buffers
        .iter()
        .filter(|b| b.bytes > 0 && b.kind != BufferKind::Weight)
        .collect();
    order.sort_by_key(|b| b.offset);
    for (i, a) in order.iter().enumerate() {
        for b in &order[i + 1..] {
            if b.offset >= a.offset + a.bytes {
                break;
            }
            if a.live.0 <= b.live.1 && b.live.0 <= a.live.1 {
                return Err(format!(
                    "buffers `{}` ({} B at {}, kernels {}..{}) and `{}` ({} B at {}, kernels {}..{}) overlap while both are live",
                    a.name, a.bytes, a.offset, a.live.0, a.live.1,
                    b.name, b.bytes, b.offset, b.live.0, b.live.1
                ));
            }
        }
    }
    for (what, io) in [("input", &list.inputs), ("output", &list.outputs)] {
        for b in io {
            let Some(buf) = hbm.buffers.get(b.buffer as usize) else {
                return Err(format!(
                    "{what} \"{}\": buffer {} does not exist",
                    b.name, b.buffer
                ));
            };
            let bytes =
                b.shape.iter().map(|&d| d.max(0) as u64).product::<u64>() * b.dtype.size() as u64;
            if bytes > buf.bytes || !values::supported(b.dtype) {
                return Err(format!(
                    "{what} \"{}\" ({} {:?}) does not fit buffer `{}` ({} B)",
                    b.name, b.dtype, b.shape, buf.name, buf.bytes
                ));
            }
        }
    }
    Ok(())
}

/// Checks kernel `index`'s descriptor against `p` and the plan.
pub fn kernel(list: &LaunchList, index: usize, p: &Profile) -> Result<(), String> {
    let k: &KernelDesc = &list.kernels[index];
    let cores = p.cores(k.core_type);
    if k.block_dim == 0 || k.block_dim > cores {
        return Err(format!(
            "blockDim {} is not in 1..={cores} (the {} has {cores} {} cores)",
            k.block_dim, p.name, k.core_type
        ));
    }
    if k.op_para_size != k.tiling.size() {
        return Err(format!(
            "opParaSize is {} B but the tiling data ({} fields) is {} B",
            k.op_para_size,
            k.tiling.0.len(),
            k.tiling.size()
        ));
    }
    let bindings = k
        .inputs
        .iter()
        .flatten()
        .map(|b| ("input", b))
        .chain(k.outputs.iter().map(|b| ("output", b)));
    for (what, b) in bindings {
        binding(list, index, b).map_err(|e| format!("{what} at HBM offset {}: {e}", b.offset))?;
    }
    for b in &k.outputs {
        if list.hbm.buffers[b.buffer as usize].kind == BufferKind::Weight {
            return Err(format!(
                "output at HBM offset {} writes into weight `{}`",
                b.offset, list.hbm.buffers[b.buffer as usize].name
            ));
        }
    }
    if let Some(w) = &k.workspace {
        let buf = list
            .hbm
            .buffers
            .get(w.buffer as usize)
            .ok_or_else(|| format!("workspace buffer {} does not exist", w.buffer))?;
        if w.offset < buf.offset || w.offset + w.bytes > buf.offset + buf.bytes {
            return Err(format!(
                "workspace ({} B at {}) lies outside its buffer `{}`",
                w.bytes, w.offset, buf.name
            ));
        }
    }
    Ok(())
}

fn binding(list: &LaunchList, index: usize, b: &TensorBinding) -> Result<(), String> {
    let buf = list
        .hbm
        .buffers
        .get(b.buffer as usize)
        .ok_or_else(|| format!("buffer {} does not exist", b.buffer))?;
    let p_align = Profile::by_name(&list.profile).map_or(32, |p| p.gm_align);
    if !b.offset.is_multiple_of(p_align) {
        return Err(format!("misaligned: not a multiple of {p_align} B"));
    }
    if !values::supported(b.dtype) {
        return Err(format!("dtype {} is not supported on the device", b.dtype));
    }
    let expect = match b.format {
        Format::Nd => b.shape.clone(),
        Format::FractalNz => {
            let n = b.shape.len();
            if n < 2 {
                return Err(format!(
                    "FRACTAL_NZ needs a matrix, the shape is {:?}",
                    b.shape
                ));
            }
            let mut s = b.shape[..n - 2].to_vec();
            s.extend([
                (b.shape[n - 1] + 15) / 16,
                (b.shape[n - 2] + 15) / 16,
                16,
                16,
            ]);
            s
        }
    };
    if b.shape.iter().any(|&d| d < 0) || b.storage_shape != expect {
        return Err(format!(
            "storage shape {:?} does not match shape {:?} in {}",
            b.storage_shape, b.shape, b.format
        ));
    }
    if b.offset < buf.offset || b.offset + b.bytes() > buf.offset + buf.bytes {
        return Err(format!(
            "the tensor ({} B) lies outside its buffer `{}` ({} B at {})",
            b.bytes(),
            buf.name,
            buf.bytes,
            buf.offset
        ));
    }
    let i = index as u32;
    if buf.kind != BufferKind::Weight && (i < buf.live.0 || i > buf.live.1) {
        return Err(format!(
            "buffer `{}` is not live here (kernels {}..{})",
            buf.name, buf.live.0, buf.live.1
        ));
    }
    Ok(())
}
