//! The seam between the host side of a run and the device: [`AscendDevice`] is what a
//! launch list needs from an NPU (device memory, copies, kernel launches). The CPU model
//! ([`SimDevice`](crate::ascend::sim::SimDevice)) implements it today; a real device over
//! AscendCL (`aclrtMalloc`, `aclrtMemcpy`, `aclrtLaunchKernel` with the descriptor's
//! blockDim, arguments and tiling bytes) would implement the same four calls.
//! [`execute`] is the host side: bind inputs, launch every kernel in order, read outputs.

use crate::ascend::cost::KernelCost;
use crate::ascend::descriptor::LaunchList;
use crate::ascend::error::AscendError;
use crate::ascend::profile::Profile;
use crate::model::tensor::Tensor;

pub trait AscendDevice {
    /// The hardware this device is.
    fn profile(&self) -> &Profile;
    /// Prepares the device for `list`: checks its HBM plan, reserves the memory and copies
    /// the weights section (`weights`) to its start.
    fn load(&mut self, list: &LaunchList, weights: &[u8]) -> Result<(), AscendError>;
    /// Host to device copy at an HBM offset.
    fn write(&mut self, offset: u64, bytes: &[u8]) -> Result<(), AscendError>;
    /// Device to host copy from an HBM offset.
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), AscendError>;
    /// Launches kernel `index` of the loaded `list` and waits for it. Returns its cost
    /// (estimated by a model, or measured).
    fn launch(&mut self, list: &LaunchList, index: usize) -> Result<KernelCost, AscendError>;
}

/// Runs a loaded launch list on `inputs` (in the list's input order): copies them in,
/// launches every kernel, copies the outputs out. Returns the outputs and each kernel's cost.
pub fn execute(
    device: &mut dyn AscendDevice,
    list: &LaunchList,
    inputs: &[Tensor],
) -> Result<(Vec<Tensor>, Vec<KernelCost>), AscendError> {
    if inputs.len() != list.inputs.len() {
        return Err(AscendError::BadInput(format!(
            "the model takes {} inputs, {} given",
            list.inputs.len(),
            inputs.len()
        )));
    }
    for (spec, t) in list.inputs.iter().zip(inputs) {
        if t.dtype() != spec.dtype {
            return Err(AscendError::BadInput(format!(
                "input \"{}\" has dtype {}, the model expects {}",
                spec.name,
                t.dtype(),
                spec.dtype
            )));
        }
        let shape: Vec<i64> = t.shape().iter().map(|&d| d as i64).collect();
        if shape != spec.shape {
            return Err(AscendError::BadInput(format!(
                "input \"{}\" has shape {:?}, the model was compiled for {:?} (an Ascend launch list has static shapes)",
                spec.name, shape, spec.shape
            )));
        }
        let buf = buffer(list, spec.buffer)?;
        device.write(buf.offset, t.bytes())?;
    }
    let mut costs = Vec::with_capacity(list.kernels.len());
    for i in 0..list.kernels.len() {
        costs.push(device.launch(list, i)?);
    }
    let mut outputs = Vec::with_capacity(list.outputs.len());
    for spec in &list.outputs {
        let shape: Vec<usize> = spec.shape.iter().map(|&d| d.max(0) as usize).collect();
        let mut t = Tensor::zeros(spec.dtype, &shape);
        let buf = buffer(list, spec.buffer)?;
        device.read(buf.offset, t.bytes_mut())?;
        outputs.push(t);
    }
    Ok((outputs, costs))
}

fn buffer(list: &LaunchList, i: u32) -> Result<&crate::ascend::descriptor::HbmBuffer, AscendError> {
    list.hbm
        .buffers
        .get(i as usize)
        .ok_or_else(|| AscendError::Plan(format!("buffer {i} does not exist")))
}
