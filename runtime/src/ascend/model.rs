//! `AscendModel`: a loaded Ascend artifact (its launch list and weights) on a device.

use std::path::Path;
use std::sync::Mutex;

use crate::artifact::{ArtifactFile, Target};
use crate::ascend::cost::KernelCost;
use crate::ascend::descriptor::LaunchList;
use crate::ascend::device::{execute, AscendDevice};
use crate::ascend::error::AscendError;
use crate::ascend::profile::Profile;
use crate::ascend::sim::SimDevice;
use crate::error::RuntimeError;
use crate::model::tensor::Tensor;

/// A launch list loaded on the device model of its profile. `Send + Sync`; runs take turns
/// on the one device.
pub struct AscendModel {
    list: LaunchList,
    device: Mutex<SimDevice>,
}

/// Parses the launch list of an opened artifact (which must be an Ascend one).
pub fn launch_list(file: &ArtifactFile) -> Result<LaunchList, RuntimeError> {
    if file.header.target != Target::Ascend {
        return Err(RuntimeError::Corrupt(format!(
            "this is a {} artifact, not an Ascend one",
            file.header.target.name()
        )));
    }
    serde_json::from_slice(&file.manifest)
        .map_err(|e| RuntimeError::Corrupt(format!("launch list: {e}")))
}

impl AscendModel {
    /// Loads `path` onto the device model of the profile it was compiled for.
    pub fn load(path: &Path) -> Result<AscendModel, AscendError> {
        let file = ArtifactFile::open(path).map_err(|e| AscendError::Plan(e.to_string()))?;
        let list = launch_list(&file).map_err(|e| AscendError::Plan(e.to_string()))?;
        let weights = file.weights.as_deref().unwrap_or(&[]);
        AscendModel::new(list, weights)
    }

    /// Loads a launch list and its weights section.
    pub fn new(list: LaunchList, weights: &[u8]) -> Result<AscendModel, AscendError> {
        let profile = Profile::by_name(&list.profile).ok_or_else(|| {
            AscendError::Plan(format!(
                "unknown profile `{}` (this runtime knows {})",
                list.profile,
                Profile::names().join(", ")
            ))
        })?;
        let mut device = SimDevice::new(profile);
        device.load(&list, weights)?;
        Ok(AscendModel {
            list,
            device: Mutex::new(device),
        })
    }

    pub fn launch_list(&self) -> &LaunchList {
        &self.list
    }

    /// Runs the model on `inputs` (in the launch list's input order).
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, AscendError> {
        Ok(self.run_profiled(inputs)?.0)
    }

    /// Runs the model and returns each kernel's estimated cost too.
    pub fn run_profiled(
        &self,
        inputs: &[Tensor],
    ) -> Result<(Vec<Tensor>, Vec<KernelCost>), AscendError> {
        let mut device = self
            .device
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        execute(&mut *device, &self.list, inputs)
    }
}
