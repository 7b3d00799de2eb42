//! The CPU model of an Ascend device: HBM as a byte array, and kernels run block by block
//! through the local memories of a core ([`core`]), every limit of the profile enforced
//! ([`validate`] before a kernel runs, [`core`] while it runs), every launch priced
//! ([`crate::ascend::cost`]). It is the oracle for the descriptors kiln emits: simple and
//! strict, not fast.

pub mod core;
pub mod validate;
pub mod values;

use crate::ascend::cost::{price, KernelCost};
use crate::ascend::descriptor::LaunchList;
use crate::ascend::device::AscendDevice;
use crate::ascend::error::AscendError;
use crate::ascend::kernels;
use crate::ascend::profile::Profile;

use self::core::KernelSim;

/// The device model of one profile.
pub struct SimDevice {
    profile: &'static Profile,
    hbm: Vec<u8>,
}

impl SimDevice {
    pub fn new(profile: &'static Profile) -> SimDevice {
        SimDevice {
            profile,
            hbm: Vec::new(),
        }
    }

    fn range(&self, offset: u64, len: usize) -> Result<std::ops::Range<usize>, AscendError> {
        let start = offset as usize;
        match start.checked_add(len) {
            Some(end) if end <= self.hbm.len() => Ok(start..end),
            _ => Err(AscendError::Plan(format!(
                "a copy of {len} B at HBM offset {offset} lies outside the {} B loaded",
                self.hbm.len()
            ))),
        }
    }
}

impl AscendDevice for SimDevice {
    fn profile(&self) -> &Profile {
        self.profile
    }

    fn load(&mut self, list: &LaunchList, weights: &[u8]) -> Result<(), AscendError> {
        validate::plan(list, self.profile).map_err(AscendError::Plan)?;
        if weights.len() as u64 != list.hbm.weights_bytes {
            return Err(AscendError::Plan(format!(
                "the weights section has {} B, the plan expects {} B",
                weights.len(),
                list.hbm.weights_bytes
            )));
        }
        self.hbm = vec![0u8; list.hbm.bytes as usize];
        self.hbm[..weights.len()].copy_from_slice(weights);
        Ok(())
    }

    fn write(&mut self, offset: u64, bytes: &[u8]) -> Result<(), AscendError> {
        let r = self.range(offset, bytes.len())?;
        self.hbm[r].copy_from_slice(bytes);
        Ok(())
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), AscendError> {
        let r = self.range(offset, out.len())?;
        out.copy_from_slice(&self.hbm[r]);
        Ok(())
    }

    fn launch(&mut self, list: &LaunchList, index: usize) -> Result<KernelCost, AscendError> {
        run_kernel(self.profile, list, index, Some(&mut self.hbm))
    }
}

/// Prices every kernel of `list` on `profile` without data: each descriptor is checked and
/// each kernel's tiles walked (allocations, tile sizes and alignment checked, moves and
/// cube steps counted) but no value moved or computed. For launches too big to simulate.
pub fn estimate(list: &LaunchList, profile: &Profile) -> Result<Vec<KernelCost>, AscendError> {
    validate::plan(list, profile).map_err(AscendError::Plan)?;
    (0..list.kernels.len())
        .map(|i| run_kernel(profile, list, i, None))
        .collect()
}

/// Checks and runs kernel `index` (on `hbm`, or dry without it) and prices it.
fn run_kernel(
    profile: &Profile,
    list: &LaunchList,
    index: usize,
    hbm: Option<&mut [u8]>,
) -> Result<KernelCost, AscendError> {
    let desc = list
        .kernels
        .get(index)
        .ok_or_else(|| AscendError::Plan(format!("there is no kernel {index}")))?;
    let fail = |msg: String| AscendError::Kernel {
        index,
        name: desc.kernel_name.clone(),
        op: desc.op.clone(),
        msg,
    };
    validate::kernel(list, index, profile).map_err(fail)?;
    let simulate = kernels::simulator(&desc.kernel_name).ok_or_else(|| {
        fail(format!(
            "the device model has no kernel named {}",
            desc.kernel_name
        ))
    })?;
    let mut sim = match hbm {
        Some(hbm) => KernelSim::new(profile, desc, hbm),
        None => KernelSim::dry(profile, desc),
    };
    simulate(&mut sim).map_err(|r| fail(r.0))?;
    let stats = sim.into_stats();
    let footprint: u64 = desc
        .inputs
        .iter()
        .flatten()
        .chain(&desc.outputs)
        .map(|b| b.bytes())
        .sum();
    Ok(price(
        profile,
        &desc.kernel_name,
        &desc.op,
        &stats,
        footprint,
    ))
}
