//! The launch list: what an Ascend artifact holds (as JSON, its manifest) and what a device
//! runs. One [`KernelDesc`] per kernel launch, carrying what CANN's kernel metadata carries
//! (kernelName, coreType, blockDim, workspace, opParaSize and the tiling data) plus the
//! tensor bindings a launcher passes as kernel arguments (HBM address, shape, dtype,
//! format). A real runtime launches each entry one to one with `aclrtLaunchKernel`.
//!
//! Everything is static: shapes are concrete (the launch list was compiled for the symbol
//! values in `dims`), addresses are offsets into one HBM block of `hbm.bytes` bytes whose
//! start holds the weights section of the artifact.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::tensor::ElemType;

/// The launch list's format, bumped with any incompatible change of these types.
pub const LAUNCH_FORMAT: &str = "kiln-ascend-1";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LaunchList {
    pub format: String,
    /// The graph's name.
    pub name: String,
    /// The hardware profile it was compiled for (`ascend910b2`, ...).
    pub profile: String,
    /// The device dtype of float activations and weights (`f16` or `bf16`).
    #[serde(with = "elem_type")]
    pub dtype: ElemType,
    /// The symbol values the shapes were computed for.
    pub dims: BTreeMap<String, i64>,
    pub inputs: Vec<IoBinding>,
    pub outputs: Vec<IoBinding>,
    pub hbm: HbmPlan,
    pub kernels: Vec<KernelDesc>,
}

/// A graph input or output: where the host copies it to or from, in the graph's dtype.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoBinding {
    pub name: String,
    /// Index into `hbm.buffers`.
    pub buffer: u32,
    #[serde(with = "elem_type")]
    pub dtype: ElemType,
    pub shape: Vec<i64>,
}

/// Device memory: one block of `bytes`, weights first (`weights_bytes`, the artifact's
/// weights section copied once at load), then activations. Buffers that are never live at
/// the same time may share addresses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HbmPlan {
    pub bytes: u64,
    pub weights_bytes: u64,
    pub buffers: Vec<HbmBuffer>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HbmBuffer {
    /// The value it holds (an IR value, a weight, a workspace).
    pub name: String,
    pub kind: BufferKind,
    pub offset: u64,
    pub bytes: u64,
    /// First and last kernel (indices into `kernels`) that touch it, inclusive. Inputs are
    /// live from kernel 0, outputs to the last kernel; weights always.
    pub live: (u32, u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BufferKind {
    Weight,
    Input,
    Output,
    Activation,
    Workspace,
}

/// Which cores a kernel runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CoreType {
    /// Cube cores only (matmuls).
    #[serde(rename = "AIC")]
    Aic,
    /// Vector cores only.
    #[serde(rename = "AIV")]
    Aiv,
    /// A cube core with its two vector cores per block (fused cube + vector kernels).
    #[serde(rename = "MIX")]
    Mix,
}

impl fmt::Display for CoreType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CoreType::Aic => "AIC",
            CoreType::Aiv => "AIV",
            CoreType::Mix => "MIX",
        })
    }
}

/// A tensor's layout in global memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Format {
    /// Row-major.
    #[serde(rename = "ND")]
    Nd,
    /// A matrix [.., R, C] stored as [.., C/16, R/16, 16, 16]: 16x16 fractals, the fractals
    /// of a column block contiguous (padded to multiples of 16). What the cube loads fastest.
    #[serde(rename = "FRACTAL_NZ")]
    FractalNz,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Nd => "ND",
            Format::FractalNz => "FRACTAL_NZ",
        })
    }
}

/// A kernel argument: a tensor in HBM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorBinding {
    /// Index into `hbm.buffers` of the buffer it lies in.
    pub buffer: u32,
    /// Absolute HBM byte offset.
    pub offset: u64,
    #[serde(with = "elem_type")]
    pub dtype: ElemType,
    pub format: Format,
    /// The logical (view) shape.
    pub shape: Vec<i64>,
    /// The shape as stored: `shape` for ND; [.., ceil(C/16), ceil(R/16), 16, 16] for
    /// FRACTAL_NZ of a [.., R, C] matrix.
    #[serde(rename = "storageShape")]
    pub storage_shape: Vec<i64>,
}

impl TensorBinding {
    /// Elements as stored.
    pub fn storage_numel(&self) -> u64 {
        self.storage_shape
            .iter()
            .map(|&d| d.max(0) as u64)
            .product()
    }

    /// Bytes as stored.
    pub fn bytes(&self) -> u64 {
        self.storage_numel() * self.dtype.size() as u64
    }

    /// Logical elements.
    pub fn numel(&self) -> u64 {
        self.shape.iter().map(|&d| d.max(0) as u64).product()
    }
}

/// The device workspace a kernel gets (scratch in HBM, CANN's `workspace`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workspace {
    pub buffer: u32,
    pub offset: u64,
    pub bytes: u64,
}

/// One kernel launch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KernelDesc {
    /// The CANN operator it is named and shaped after (`MatMulV3`, `Add`, `TransData`).
    #[serde(rename = "kernelName")]
    pub kernel_name: String,
    /// The IR node(s) it computes, for people.
    pub op: String,
    #[serde(rename = "coreType")]
    pub core_type: CoreType,
    #[serde(rename = "blockDim")]
    pub block_dim: u32,
    /// Absent when the kernel needs none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<Workspace>,
    /// Size of the tiling data in bytes (must equal the packed size of `tiling`).
    #[serde(rename = "opParaSize")]
    pub op_para_size: u32,
    pub tiling: Tiling,
    /// The operator's attributes as CANN's op definition names them, in words for people
    /// (`scores: sigmoid`, `routing: group-limited ...`); the kernel reads only the tiling.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attrs: BTreeMap<String, String>,
    /// Inputs in the operator's argument order; `None` for an absent optional input.
    pub inputs: Vec<Option<TensorBinding>>,
    pub outputs: Vec<TensorBinding>,
}

/// A kernel's tiling data: named integer fields in the order its TilingData struct declares
/// them. The bytes a kernel receives are the fields packed as little-endian i64 (see
/// [`Tiling::to_bytes`]). In JSON an object whose key order is the field order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tiling(pub Vec<(String, i64)>);

impl Tiling {
    pub fn new() -> Tiling {
        Tiling(Vec::new())
    }

    /// Appends a field (builder style).
    pub fn with(mut self, name: &str, value: i64) -> Tiling {
        self.0.push((name.to_string(), value));
        self
    }

    pub fn push(&mut self, name: &str, value: i64) {
        self.0.push((name.to_string(), value));
    }

    pub fn get(&self, name: &str) -> Option<i64> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }

    /// The tiling data as the kernel receives it.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.iter().flat_map(|(_, v)| v.to_le_bytes()).collect()
    }

    /// Its size in bytes: what `opParaSize` must say.
    pub fn size(&self) -> u32 {
        (self.0.len() * 8) as u32
    }
}

impl Serialize for Tiling {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Tiling {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Tiling, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Tiling;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of integer tiling fields")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Tiling, A::Error> {
                let mut t = Tiling::new();
                while let Some((k, v)) = a.next_entry::<String, i64>()? {
                    if t.get(&k).is_some() {
                        return Err(serde::de::Error::custom(format!(
                            "tiling field `{k}` appears twice"
                        )));
                    }
                    t.0.push((k, v));
                }
                Ok(t)
            }
        }
        d.deserialize_map(V)
    }
}

/// (De)serializes an [`ElemType`] by its IR name (`f16`, `i64`, ...).
pub mod elem_type {
    use super::*;

    pub fn serialize<S: Serializer>(t: &ElemType, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(t.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ElemType, D::Error> {
        let name = String::deserialize(d)?;
        ElemType::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown dtype `{name}`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiling_keeps_field_order_through_json() {
        let t = Tiling::new().with("m", 64).with("baseM", 16).with("k", -1);
        let j = serde_json::to_string(&t).unwrap();
        assert_eq!(j, r#"{"m":64,"baseM":16,"k":-1}"#);
        let back: Tiling = serde_json::from_str(&j).unwrap();
        assert_eq!(back, t);
        assert_eq!(t.size(), 24);
        assert_eq!(&t.to_bytes()[8..16], &16i64.to_le_bytes());
        let e = serde_json::from_str::<Tiling>(r#"{"m":1,"m":2}"#).unwrap_err();
        assert!(e.to_string().starts_with("tiling field `m` appears twice"));
    }
}
