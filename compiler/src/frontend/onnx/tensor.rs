//! ONNX `TensorProto` -> kiln `Tensor`, in every encoding ONNX allows: `raw_data`, the
//! typed fields, and external data beside the model file.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};

use half::{bf16, f16};
use kiln_ir::{DType, Data, Tensor};
use onnx_protobuf::TensorProto;

use crate::error::CompileError;

/// The name of an ONNX `TensorProto.DataType` code, for messages.
pub fn onnx_dtype_name(code: i32) -> String {
    match code {
        0 => "undefined".into(),
        8 => "string".into(),
        14 => "complex64".into(),
        15 => "complex128".into(),
        21 => "uint4".into(),
        22 => "int4".into(),
        23 => "float4e2m1".into(),
        24 => "float8e8m0".into(),
        25 => "uint2".into(),
        26 => "int2".into(),
        c => match DType::from_onnx_code(c) {
            Some(d) => d.name().into(),
            None => format!("dtype code {c}"),
        },
    }
}

/// The kiln dtype of an ONNX dtype code, or an "unsupported dtype" error; `what` says where
/// the dtype was found (`input "x"`, `initializer "w"`).
pub fn dtype_of(code: i32, what: &str) -> Result<DType, CompileError> {
    DType::from_onnx_code(code).ok_or_else(|| {
        CompileError::Unsupported(format!(
            "unsupported dtype {} ({what})",
            onnx_dtype_name(code)
        ))
    })
}

/// External data files, each opened once, resolved inside the model's folder.
#[derive(Default)]
pub struct ExternalData {
    base: Option<PathBuf>,
    files: HashMap<String, (PathBuf, File, u64)>,
}

impl ExternalData {
    /// External data resolved relative to `base` (the model file's folder); `None` rejects
    /// external data (a model given as bytes).
    pub fn new(base: Option<&Path>) -> ExternalData {
        ExternalData {
            base: base.map(Path::to_path_buf),
            files: HashMap::new(),
        }
    }

    fn file(
        &mut self,
        location: &str,
        tensor: &str,
    ) -> Result<&(PathBuf, File, u64), CompileError> {
        if !self.files.contains_key(location) {
            let bad =
                |msg: String| CompileError::Invalid(format!("initializer \"{tensor}\": {msg}"));
            let base = self.base.as_ref().ok_or_else(|| {
                bad(format!(
                    "external data \"{location}\" needs the model's folder (load the model from a file)"
                ))
            })?;
            let rel = Path::new(location);
            if location.is_empty()
                || !rel
                    .components()
                    .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
            {
                return Err(bad(format!(
                    "external data location \"{location}\" must be a relative path inside the model's folder"
                )));
            }
            let path = base.join(rel);
            let canon = path
                .canonicalize()
                .map_err(|e| CompileError::io(&path, e))?;
            let canon_base = base.canonicalize().map_err(|e| CompileError::io(base, e))?;
            if !canon.starts_with(&canon_base) {
                return Err(bad(format!(
                    "external data location \"{location}\" resolves outside the model's folder"
                )));
            }
            let f = File::open(&path).map_err(|e| CompileError::io(&path, e))?;
            let len = f.metadata().map_err(|e| CompileError::io(&path, e))?.len();
            self.files.insert(location.to_string(), (path, f, len));
        }
        Ok(&self.files[location])
    }

    /// Reads `length` bytes (or up to `need` when `length` is absent) at `offset`.
    fn read(
        &mut self,
        location: &str,
        offset: u64,
        length: Option<u64>,
        need: u64,
        tensor: &str,
    ) -> Result<Vec<u8>, CompileError> {
        let (path, f, size) = self.file(location, tensor)?;
        let len = length.unwrap_or(need);
        if len != need {
            return Err(CompileError::Invalid(format!(
                "initializer \"{tensor}\": external data length {len} does not match its shape and dtype ({need} bytes)"
            )));
        }
        let end = offset.checked_add(len).filter(|&e| e <= *size);
        if end.is_none() {
            return Err(CompileError::Invalid(format!(
                "initializer \"{tensor}\": external data {}..{} is past the end of {} ({size} bytes)",
                offset,
                offset.saturating_add(len),
                path.display()
            )));
        }
        let mut buf = vec![0u8; len as usize];
        f.read_exact_at(&mut buf, offset)
            .map_err(|e| CompileError::io(path, e))?;
        Ok(buf)
    }
}

fn invalid(name: &str, msg: impl std::fmt::Display) -> CompileError {
    CompileError::Invalid(format!("tensor \"{name}\": {msg}"))
}

/// Decodes a `TensorProto`. `what` names it in messages (`initializer "w"`); `ext` resolves
/// external data.
pub fn tensor_from_proto(
    t: &TensorProto,
    what: &str,
    ext: &mut ExternalData,
) -> Result<Tensor, CompileError> {
    let name = t.name.as_str();
    let dtype = dtype_of(t.data_type, what)?;
    let mut shape = Vec::with_capacity(t.dims.len());
    for &d in &t.dims {
        if d < 0 {
            return Err(invalid(
                name,
                format!("negative dim {d} in shape {:?}", t.dims),
            ));
        }
        shape.push(d as usize);
    }
    let n = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| invalid(name, format!("shape {:?} is too large", t.dims)))?;
    if t.segment.is_some() {
        return Err(CompileError::Unsupported(format!(
            "unsupported segmented tensor ({what})"
        )));
    }
    let need = (n as u64)
        .checked_mul(dtype.size() as u64)
        .ok_or_else(|| invalid(name, format!("shape {:?} is too large", t.dims)))?;
    let external = t.data_location.value() == 1;
    if external {
        let mut location = None;
        let mut offset = 0u64;
        let mut length = None;
        for kv in &t.external_data {
            let num = || {
                kv.value.parse::<u64>().map_err(|_| {
                    invalid(
                        name,
                        format!("external data {} \"{}\" is not a number", kv.key, kv.value),
                    )
                })
            };
            match kv.key.as_str() {
                "location" => location = Some(kv.value.clone()),
                "offset" => offset = num()?,
                "length" => length = Some(num()?),
                _ => {}
            }
        }
        let location = location.ok_or_else(|| invalid(name, "external data without a location"))?;
        let bytes = ext.read(&location, offset, length, need, name)?;
        return Tensor::from_le_bytes(dtype, shape, &bytes).map_err(|e| invalid(name, e));
    }
    if !t.raw_data.is_empty() || n == 0 {
        if t.raw_data.len() as u64 != need {
            return Err(invalid(
                name,
                format!(
                    "raw_data has {} bytes, its shape {:?} and dtype {dtype} need {need}",
                    t.raw_data.len(),
                    t.dims
                ),
            ));
        }
        return Tensor::from_le_bytes(dtype, shape, &t.raw_data).map_err(|e| invalid(name, e));
    }
    let count = |got: usize, field: &str| -> Result<(), CompileError> {
        if got != n {
            return Err(invalid(
                name,
                format!(
                    "{field} has {got} elements, its shape {:?} needs {n}",
                    t.dims
                ),
            ));
        }
        Ok(())
    };
    let i32s = &t.int32_data;
    let data = match dtype {
        DType::F32 => {
            count(t.float_data.len(), "float_data")?;
            Data::F32(t.float_data.clone())
        }
        DType::F64 => {
            count(t.double_data.len(), "double_data")?;
            Data::F64(t.double_data.clone())
        }
        DType::I64 => {
            count(t.int64_data.len(), "int64_data")?;
            Data::I64(t.int64_data.clone())
        }
        DType::U64 => {
            count(t.uint64_data.len(), "uint64_data")?;
            Data::U64(t.uint64_data.clone())
        }
        DType::U32 => {
            count(t.uint64_data.len(), "uint64_data")?;
            Data::U32(t.uint64_data.iter().map(|&x| x as u32).collect())
        }
        DType::I32 => {
            count(i32s.len(), "int32_data")?;
            Data::I32(i32s.clone())
        }
        DType::I16 => {
            count(i32s.len(), "int32_data")?;
            Data::I16(i32s.iter().map(|&x| x as i16).collect())
        }
        DType::I8 => {
            count(i32s.len(), "int32_data")?;
            Data::I8(i32s.iter().map(|&x| x as i8).collect())
        }
        DType::U16 => {
            count(i32s.len(), "int32_data")?;
            Data::U16(i32s.iter().map(|&x| x as u16).collect())
        }
        DType::U8 => {
            count(i32s.len(), "int32_data")?;
            Data::U8(i32s.iter().map(|&x| x as u8).collect())
        }
        DType::Bool => {
            count(i32s.len(), "int32_data")?;
            Data::Bool(i32s.iter().map(|&x| x != 0).collect())
        }
        DType::F16 => {
            count(i32s.len(), "int32_data")?;
            Data::F16(i32s.iter().map(|&x| f16::from_bits(x as u16)).collect())
        }
        DType::BF16 => {
            count(i32s.len(), "int32_data")?;
            Data::BF16(i32s.iter().map(|&x| bf16::from_bits(x as u16)).collect())
        }
        d if d.is_fp8() => {
            count(i32s.len(), "int32_data")?;
            Data::F8(i32s.iter().map(|&x| x as u8).collect())
        }
        d => return Err(invalid(name, format!("no data for dtype {d}"))),
    };
    Tensor::with_dtype(dtype, shape, data).map_err(|e| invalid(name, e))
}

/// Decodes a serialized `TensorProto` file (the ONNX test data `.pb` files).
pub fn read_tensor_pb(path: &Path) -> Result<(String, Tensor), CompileError> {
    use onnx_protobuf::Message;
    let bytes = std::fs::read(path).map_err(|e| CompileError::io(path, e))?;
    let t = TensorProto::parse_from_bytes(&bytes).map_err(|e| CompileError::File {
        path: path.display().to_string(),
        msg: format!("not a TensorProto: {e}"),
    })?;
    let mut ext = ExternalData::new(path.parent());
    let tensor =
        tensor_from_proto(&t, "tensor file", &mut ext).map_err(|e| CompileError::File {
            path: path.display().to_string(),
            msg: e.to_string(),
        })?;
    Ok((t.name.clone(), tensor))
}
