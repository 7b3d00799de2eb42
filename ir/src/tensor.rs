//! Concrete tensors: the values the interpreter computes on and the constants of a graph.

use half::{bf16, f16};

use crate::dtype::DType;
use crate::fp8;

/// Element storage, one variant per storage type. The four fp8 dtypes share `F8` (raw codes);
/// the tensor's dtype says which one.
#[derive(Clone, PartialEq, Debug)]
pub enum Data {
    F32(Vec<f32>),
    F64(Vec<f64>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    F8(Vec<u8>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
    U64(Vec<u64>),
    Bool(Vec<bool>),
}

/// Runs `$body` with `$v` bound to the data's vector, whatever its element type.
#[macro_export]
macro_rules! with_data {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            $crate::tensor::Data::F32($v) => $body,
            $crate::tensor::Data::F64($v) => $body,
            $crate::tensor::Data::F16($v) => $body,
            $crate::tensor::Data::BF16($v) => $body,
            $crate::tensor::Data::F8($v) => $body,
            $crate::tensor::Data::I8($v) => $body,
            $crate::tensor::Data::I16($v) => $body,
            $crate::tensor::Data::I32($v) => $body,
            $crate::tensor::Data::I64($v) => $body,
            $crate::tensor::Data::U8($v) => $body,
            $crate::tensor::Data::U16($v) => $body,
            $crate::tensor::Data::U32($v) => $body,
            $crate::tensor::Data::U64($v) => $body,
            $crate::tensor::Data::Bool($v) => $body,
        }
    };
}

/// Like [`with_data!`], rewrapping the result vector in the same variant.
#[macro_export]
macro_rules! map_data {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            $crate::tensor::Data::F32($v) => $crate::tensor::Data::F32($body),
            $crate::tensor::Data::F64($v) => $crate::tensor::Data::F64($body),
            $crate::tensor::Data::F16($v) => $crate::tensor::Data::F16($body),
            $crate::tensor::Data::BF16($v) => $crate::tensor::Data::BF16($body),
            $crate::tensor::Data::F8($v) => $crate::tensor::Data::F8($body),
            $crate::tensor::Data::I8($v) => $crate::tensor::Data::I8($body),
            $crate::tensor::Data::I16($v) => $crate::tensor::Data::I16($body),
            $crate::tensor::Data::I32($v) => $crate::tensor::Data::I32($body),
            $crate::tensor::Data::I64($v) => $crate::tensor::Data::I64($body),
            $crate::tensor::Data::U8($v) => $crate::tensor::Data::U8($body),
            $crate::tensor::Data::U16($v) => $crate::tensor::Data::U16($body),
            $crate::tensor::Data::U32($v) => $crate::tensor::Data::U32($body),
            $crate::tensor::Data::U64($v) => $crate::tensor::Data::U64($body),
            $crate::tensor::Data::Bool($v) => $crate::tensor::Data::Bool($body),
        }
    };
}

/// Errors building tensors.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TensorError {
    #[error("shape {shape:?} needs {expected} elements, got {got}")]
    Length {
        shape: Vec<usize>,
        expected: usize,
        got: usize,
    },
    #[error("data of type {data} cannot hold dtype {dtype}")]
    Storage { data: &'static str, dtype: DType },
}

/// A dense, row-major tensor.
#[derive(Clone, PartialEq, Debug)]
pub struct Tensor {
    dtype: DType,
    shape: Vec<usize>,
    data: Data,
}

impl Data {
    pub fn len(&self) -> usize {
        with_data!(self, v => v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn storage_name(&self) -> &'static str {
        match self {
            Data::F32(_) => "f32",
            Data::F64(_) => "f64",
            Data::F16(_) => "f16",
            Data::BF16(_) => "bf16",
            Data::F8(_) => "fp8",
            Data::I8(_) => "i8",
            Data::I16(_) => "i16",
            Data::I32(_) => "i32",
            Data::I64(_) => "i64",
            Data::U8(_) => "u8",
            Data::U16(_) => "u16",
            Data::U32(_) => "u32",
            Data::U64(_) => "u64",
            Data::Bool(_) => "bool",
        }
    }

    /// The elements at `indices`, in that order.
    pub fn take(&self, indices: &[usize]) -> Data {
        map_data!(self, v => indices.iter().map(|&i| v[i]).collect())
    }

    fn fits(&self, dtype: DType) -> bool {
        matches!(
            (self, dtype),
            (Data::F32(_), DType::F32)
                | (Data::F64(_), DType::F64)
                | (Data::F16(_), DType::F16)
                | (Data::BF16(_), DType::BF16)
                | (Data::I8(_), DType::I8)
                | (Data::I16(_), DType::I16)
                | (Data::I32(_), DType::I32)
                | (Data::I64(_), DType::I64)
                | (Data::U8(_), DType::U8)
                | (Data::U16(_), DType::U16)
                | (Data::U32(_), DType::U32)
                | (Data::U64(_), DType::U64)
                | (Data::Bool(_), DType::Bool)
        ) || (matches!(self, Data::F8(_)) && dtype.is_fp8())
    }

    fn natural_dtype(&self) -> DType {
        match self {
            Data::F32(_) => DType::F32,
            Data::F64(_) => DType::F64,
            Data::F16(_) => DType::F16,
            Data::BF16(_) => DType::BF16,
            Data::F8(_) => DType::F8E4M3FN,
            Data::I8(_) => DType::I8,
            Data::I16(_) => DType::I16,
            Data::I32(_) => DType::I32,
            Data::I64(_) => DType::I64,
            Data::U8(_) => DType::U8,
            Data::U16(_) => DType::U16,
            Data::U32(_) => DType::U32,
            Data::U64(_) => DType::U64,
            Data::Bool(_) => DType::Bool,
        }
    }
}

pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Row-major strides of `shape`, in elements.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Source offsets visiting `shape` in row-major order, where axis `i` advances the source
/// by `stride[i]`.
pub fn strided_offsets(shape: &[usize], stride: &[usize]) -> Vec<usize> {
    let n = numel(shape);
    let mut out = Vec::with_capacity(n);
    if n == 0 {
        return out;
    }
    let rank = shape.len();
    let mut idx = vec![0usize; rank];
    let mut off = 0usize;
    for _ in 0..n {
        out.push(off);
        for a in (0..rank).rev() {
            idx[a] += 1;
            off += stride[a];
            if idx[a] < shape[a] {
                break;
            }
            off -= stride[a] * shape[a];
            idx[a] = 0;
        }
    }
    out
}

impl Tensor {
    /// A tensor from data whose storage names its dtype (fp8 data: use [`Tensor::with_dtype`]).
    pub fn new(shape: Vec<usize>, data: Data) -> Result<Tensor, TensorError> {
        let dtype = data.natural_dtype();
        Tensor::with_dtype(dtype, shape, data)
    }

    pub fn with_dtype(dtype: DType, shape: Vec<usize>, data: Data) -> Result<Tensor, TensorError> {
        if !data.fits(dtype) {
            return Err(TensorError::Storage {
                data: data.storage_name(),
                dtype,
            });
        }
        if numel(&shape) != data.len() {
            return Err(TensorError::Length {
                expected: numel(&shape),
                got: data.len(),
                shape,
            });
        }
        Ok(Tensor { dtype, shape, data })
    }

    pub fn scalar_f32(x: f32) -> Tensor {
        Tensor {
            dtype: DType::F32,
            shape: vec![],
            data: Data::F32(vec![x]),
        }
    }

    pub fn scalar_i64(x: i64) -> Tensor {
        Tensor {
            dtype: DType::I64,
            shape: vec![],
            data: Data::I64(vec![x]),
        }
    }

    pub fn from_i64s(shape: Vec<usize>, v: Vec<i64>) -> Result<Tensor, TensorError> {
        Tensor::new(shape, Data::I64(v))
    }

    pub fn from_f32s(shape: Vec<usize>, v: Vec<f32>) -> Result<Tensor, TensorError> {
        Tensor::new(shape, Data::F32(v))
    }

    pub fn zeros(dtype: DType, shape: Vec<usize>) -> Tensor {
        let n = numel(&shape);
        Tensor::from_f64(dtype, shape, &vec![0.0; n])
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn data(&self) -> &Data {
        &self.data
    }

    pub fn into_data(self) -> Data {
        self.data
    }

    /// The same elements under another shape of equal element count.
    pub fn reshaped(&self, shape: Vec<usize>) -> Result<Tensor, TensorError> {
        Tensor::with_dtype(self.dtype, shape, self.data.clone())
    }

    /// A new tensor of the elements at `indices` (flat, row-major), shaped `shape`.
    pub fn take(&self, indices: &[usize], shape: Vec<usize>) -> Result<Tensor, TensorError> {
        Tensor::with_dtype(self.dtype, shape, self.data.take(indices))
    }

    /// Elements as f64 (bool as 0/1; fp8 decoded).
    pub fn to_f64(&self) -> Vec<f64> {
        match &self.data {
            Data::F32(v) => v.iter().map(|&x| x as f64).collect(),
            Data::F64(v) => v.clone(),
            Data::F16(v) => v.iter().map(|x| x.to_f64()).collect(),
            Data::BF16(v) => v.iter().map(|x| x.to_f64()).collect(),
            Data::F8(v) => v
                .iter()
                .map(|&c| fp8::decode(self.dtype, c) as f64)
                .collect(),
            Data::I8(v) => v.iter().map(|&x| x as f64).collect(),
            Data::I16(v) => v.iter().map(|&x| x as f64).collect(),
            Data::I32(v) => v.iter().map(|&x| x as f64).collect(),
            Data::I64(v) => v.iter().map(|&x| x as f64).collect(),
            Data::U8(v) => v.iter().map(|&x| x as f64).collect(),
            Data::U16(v) => v.iter().map(|&x| x as f64).collect(),
            Data::U32(v) => v.iter().map(|&x| x as f64).collect(),
            Data::U64(v) => v.iter().map(|&x| x as f64).collect(),
            Data::Bool(v) => v.iter().map(|&x| x as u8 as f64).collect(),
        }
    }

    /// Elements as i64 (floats truncated toward zero; u64 reinterpreted).
    pub fn to_i64(&self) -> Vec<i64> {
        match &self.data {
            Data::I8(v) => v.iter().map(|&x| x as i64).collect(),
            Data::I16(v) => v.iter().map(|&x| x as i64).collect(),
            Data::I32(v) => v.iter().map(|&x| x as i64).collect(),
            Data::I64(v) => v.clone(),
            Data::U8(v) => v.iter().map(|&x| x as i64).collect(),
            Data::U16(v) => v.iter().map(|&x| x as i64).collect(),
            Data::U32(v) => v.iter().map(|&x| x as i64).collect(),
            Data::U64(v) => v.iter().map(|&x| x as i64).collect(),
            Data::Bool(v) => v.iter().map(|&x| x as i64).collect(),
            _ => self.to_f64().into_iter().map(|x| x as i64).collect(),
        }
    }

    /// Elements as bool (non-zero is true).
    pub fn to_bool(&self) -> Vec<bool> {
        match &self.data {
            Data::Bool(v) => v.clone(),
            _ if self.dtype.is_float() => self.to_f64().into_iter().map(|x| x != 0.0).collect(),
            _ => self.to_i64().into_iter().map(|x| x != 0).collect(),
        }
    }

    /// A tensor of `dtype` from f64 values: floats round to nearest, integers truncate toward
    /// zero and wrap, bools are non-zero; fp8 saturates.
    pub fn from_f64(dtype: DType, shape: Vec<usize>, v: &[f64]) -> Tensor {
        Tensor::from_f64_sat(dtype, shape, v, true)
    }

    /// As [`Tensor::from_f64`], choosing fp8 saturation.
    pub fn from_f64_sat(dtype: DType, shape: Vec<usize>, v: &[f64], saturate: bool) -> Tensor {
        let int = |x: f64| -> i64 {
            if x.is_nan() {
                0
            } else {
                x as i64
            }
        };
        let data = match dtype {
            DType::F32 => Data::F32(v.iter().map(|&x| x as f32).collect()),
            DType::F64 => Data::F64(v.to_vec()),
            DType::F16 => Data::F16(v.iter().map(|&x| f16::from_f64(x)).collect()),
            DType::BF16 => Data::BF16(v.iter().map(|&x| bf16::from_f64(x)).collect()),
            d if d.is_fp8() => Data::F8(
                v.iter()
                    .map(|&x| fp8::encode(d, x as f32, saturate))
                    .collect(),
            ),
            DType::Bool => Data::Bool(v.iter().map(|&x| x != 0.0).collect()),
            // Through i128 so that u64 values above i64::MAX survive.
            DType::U64 => Data::U64(v.iter().map(|&x| x as i128 as u64).collect()),
            d => return Tensor::from_i64(d, shape, &v.iter().map(|&x| int(x)).collect::<Vec<_>>()),
        };
        Tensor { dtype, shape, data }
    }

    /// A tensor of `dtype` from i64 values: integers wrap, floats convert.
    pub fn from_i64(dtype: DType, shape: Vec<usize>, v: &[i64]) -> Tensor {
        let data = match dtype {
            DType::I8 => Data::I8(v.iter().map(|&x| x as i8).collect()),
            DType::I16 => Data::I16(v.iter().map(|&x| x as i16).collect()),
            DType::I32 => Data::I32(v.iter().map(|&x| x as i32).collect()),
            DType::I64 => Data::I64(v.to_vec()),
            DType::U8 => Data::U8(v.iter().map(|&x| x as u8).collect()),
            DType::U16 => Data::U16(v.iter().map(|&x| x as u16).collect()),
            DType::U32 => Data::U32(v.iter().map(|&x| x as u32).collect()),
            DType::U64 => Data::U64(v.iter().map(|&x| x as u64).collect()),
            DType::Bool => Data::Bool(v.iter().map(|&x| x != 0).collect()),
            d => {
                return Tensor::from_f64(d, shape, &v.iter().map(|&x| x as f64).collect::<Vec<_>>())
            }
        };
        Tensor { dtype, shape, data }
    }

    pub fn from_bools(shape: Vec<usize>, v: Vec<bool>) -> Result<Tensor, TensorError> {
        Tensor::new(shape, Data::Bool(v))
    }

    /// Converts to `dtype` with ONNX `Cast` semantics (fp8 saturating).
    pub fn cast(&self, dtype: DType) -> Tensor {
        self.cast_sat(dtype, true)
    }

    pub fn cast_sat(&self, dtype: DType, saturate: bool) -> Tensor {
        if dtype == self.dtype {
            return self.clone();
        }
        let shape = self.shape.clone();
        if dtype == DType::Bool {
            return Tensor {
                dtype,
                shape,
                data: Data::Bool(self.to_bool()),
            };
        }
        if self.dtype.is_float() || dtype.is_float() {
            if let Data::U64(v) = &self.data {
                let f: Vec<f64> = v.iter().map(|&x| x as f64).collect();
                return Tensor::from_f64_sat(dtype, shape, &f, saturate);
            }
            // i64 to f32 directly: through f64 would round twice above 2^53.
            if let (DType::F32, Data::I64(v)) = (dtype, &self.data) {
                return Tensor {
                    dtype,
                    shape,
                    data: Data::F32(v.iter().map(|&x| x as f32).collect()),
                };
            }
            return Tensor::from_f64_sat(dtype, shape, &self.to_f64(), saturate);
        }
        Tensor::from_i64(dtype, shape, &self.to_i64())
    }

    /// The single element as f64 (the first, if there are more).
    pub fn first_f64(&self) -> Option<f64> {
        if self.is_empty() {
            return None;
        }
        Some(self.take(&[0], vec![]).ok()?.to_f64()[0])
    }

    /// The single element as i64 (the first, if there are more).
    pub fn first_i64(&self) -> Option<i64> {
        if self.is_empty() {
            return None;
        }
        Some(self.take(&[0], vec![]).ok()?.to_i64()[0])
    }

    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            Data::F32(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<&[i64]> {
        match &self.data {
            Data::I64(v) => Some(v),
            _ => None,
        }
    }

    /// Raw little-endian bytes of the elements (fp8 as codes, bool as 0/1).
    pub fn to_le_bytes(&self) -> Vec<u8> {
        match &self.data {
            Data::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Data::F64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Data::F16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Data::BF16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Data::F8(v) => v.clone(),
            Data::I8(v) => v.iter().map(|&x| x as u8).collect(),
            Data::I16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Data::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Data::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Data::U8(v) => v.clone(),
            Data::U16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Data::U32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Data::U64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Data::Bool(v) => v.iter().map(|&x| x as u8).collect(),
        }
    }

    /// A tensor from raw little-endian bytes.
    pub fn from_le_bytes(dtype: DType, shape: Vec<usize>, b: &[u8]) -> Result<Tensor, TensorError> {
        let n = numel(&shape);
        if b.len() != n * dtype.size() {
            return Err(TensorError::Length {
                expected: n,
                got: b.len() / dtype.size(),
                shape,
            });
        }
        macro_rules! chunks {
            ($t:ty, $w:expr) => {
                b.chunks_exact($w)
                    .map(|c| <$t>::from_le_bytes(c.try_into().unwrap_or([0; $w])))
                    .collect()
            };
        }
        let data = match dtype {
            DType::F32 => Data::F32(chunks!(f32, 4)),
            DType::F64 => Data::F64(chunks!(f64, 8)),
            DType::F16 => Data::F16(chunks!(f16, 2)),
            DType::BF16 => Data::BF16(chunks!(bf16, 2)),
            DType::I8 => Data::I8(b.iter().map(|&x| x as i8).collect()),
            DType::I16 => Data::I16(chunks!(i16, 2)),
            DType::I32 => Data::I32(chunks!(i32, 4)),
            DType::I64 => Data::I64(chunks!(i64, 8)),
            DType::U8 => Data::U8(b.to_vec()),
            DType::U16 => Data::U16(chunks!(u16, 2)),
            DType::U32 => Data::U32(chunks!(u32, 4)),
            DType::U64 => Data::U64(chunks!(u64, 8)),
            DType::Bool => Data::Bool(b.iter().map(|&x| x != 0).collect()),
            _ => Data::F8(b.to_vec()),
        };
        Ok(Tensor { dtype, shape, data })
    }
}
