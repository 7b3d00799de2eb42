//! The runtime's tensor: an element type, a shape and 8-byte-aligned bytes.

use std::fmt;

/// Element types an artifact's inputs and outputs may have (named as in kiln's IR text).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ElemType {
    F32,
    F64,
    F16,
    BF16,
    F8E4M3FN,
    F8E4M3FNUZ,
    F8E5M2,
    F8E5M2FNUZ,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    Bool,
}

impl ElemType {
    pub const ALL: [ElemType; 17] = [
        ElemType::F32,
        ElemType::F64,
        ElemType::F16,
        ElemType::BF16,
        ElemType::F8E4M3FN,
        ElemType::F8E4M3FNUZ,
        ElemType::F8E5M2,
        ElemType::F8E5M2FNUZ,
        ElemType::I8,
        ElemType::I16,
        ElemType::I32,
        ElemType::I64,
        ElemType::U8,
        ElemType::U16,
        ElemType::U32,
        ElemType::U64,
        ElemType::Bool,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ElemType::F32 => "f32",
            ElemType::F64 => "f64",
            ElemType::F16 => "f16",
            ElemType::BF16 => "bf16",
            ElemType::F8E4M3FN => "f8e4m3fn",
            ElemType::F8E4M3FNUZ => "f8e4m3fnuz",
            ElemType::F8E5M2 => "f8e5m2",
            ElemType::F8E5M2FNUZ => "f8e5m2fnuz",
            ElemType::I8 => "i8",
            ElemType::I16 => "i16",
            ElemType::I32 => "i32",
            ElemType::I64 => "i64",
            ElemType::U8 => "u8",
            ElemType::U16 => "u16",
            ElemType::U32 => "u32",
            ElemType::U64 => "u64",
            ElemType::Bool => "bool",
        }
    }

    pub fn from_name(name: &str) -> Option<ElemType> {
        ElemType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            ElemType::F64 | ElemType::I64 | ElemType::U64 => 8,
            ElemType::F32 | ElemType::I32 | ElemType::U32 => 4,
            ElemType::F16 | ElemType::BF16 | ElemType::I16 | ElemType::U16 => 2,
            _ => 1,
        }
    }
}

impl fmt::Display for ElemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A Rust type that is the storage of an element type.
pub trait Element: Copy + 'static {
    const TYPE: ElemType;
}

macro_rules! element {
    ($($t:ty => $e:ident),*) => { $(impl Element for $t { const TYPE: ElemType = ElemType::$e; })* };
}
element!(f32 => F32, f64 => F64, i8 => I8, i16 => I16, i32 => I32, i64 => I64, u8 => U8, u16 => U16, u32 => U32, u64 => U64, bool => Bool);

/// A dense row-major tensor. Bool elements are stored as one byte, 0 or 1.
#[derive(Clone, PartialEq)]
pub struct Tensor {
    dtype: ElemType,
    shape: Vec<usize>,
    /// u64 words so that every element type is naturally aligned.
    words: Vec<u64>,
    len: usize,
}

impl Tensor {
    /// A tensor of zeros.
    pub fn zeros(dtype: ElemType, shape: &[usize]) -> Tensor {
        let len = shape.iter().product::<usize>() * dtype.size();
        Tensor {
            dtype,
            shape: shape.to_vec(),
            words: vec![0; len.div_ceil(8)],
            len,
        }
    }

    /// A tensor from little-endian element bytes; `None` when the byte count does not fit
    /// the shape.
    pub fn from_bytes(dtype: ElemType, shape: &[usize], bytes: &[u8]) -> Option<Tensor> {
        let mut t = Tensor::zeros(dtype, shape);
        if bytes.len() != t.len {
            return None;
        }
        t.bytes_mut().copy_from_slice(bytes);
        Some(t)
    }

    /// A tensor from typed elements; `None` when the count does not fit the shape.
    pub fn from_slice<T: Element>(shape: &[usize], data: &[T]) -> Option<Tensor> {
        let mut t = Tensor::zeros(T::TYPE, shape);
        if data.len() * T::TYPE.size() != t.len {
            return None;
        }
        t.as_mut_slice::<T>()?.copy_from_slice(data);
        Some(t)
    }

    pub fn dtype(&self) -> ElemType {
        self.dtype
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `words` holds at least `len` initialised bytes; u8 has no alignment needs.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) }
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, borrowed mutably through `self`.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast::<u8>(), self.len) }
    }

    /// The elements as `T`, when `T` is this tensor's element type.
    pub fn as_slice<T: Element>(&self) -> Option<&[T]> {
        (T::TYPE == self.dtype).then(|| {
            // SAFETY: the storage is 8-byte aligned (enough for every element type), holds
            // `numel` elements of this type, and every bit pattern of it is valid (bool is
            // only ever written as 0 or 1 by kiln's code and by `from_slice`).
            unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<T>(), self.numel()) }
        })
    }

    /// The elements as `T`, mutably, when `T` is this tensor's element type.
    pub fn as_mut_slice<T: Element>(&mut self) -> Option<&mut [T]> {
        (T::TYPE == self.dtype).then(|| {
            let n = self.numel();
            // SAFETY: as in `as_slice`, borrowed mutably through `self`.
            unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast::<T>(), n) }
        })
    }

    pub(crate) fn as_ptr(&self) -> *const u8 {
        self.words.as_ptr().cast()
    }

    pub(crate) fn as_mut_ptr(&mut self) -> *mut u8 {
        self.words.as_mut_ptr().cast()
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor({}{:?})", self.dtype, self.shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_views_check_the_type() {
        let t = Tensor::from_slice(&[2, 2], &[1.0f32, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!(t.as_slice::<f32>().unwrap(), &[1.0, 2.0, 3.0, 4.0]);
        assert!(t.as_slice::<i32>().is_none());
        assert_eq!(t.bytes().len(), 16);
        assert!(Tensor::from_slice(&[3], &[1.0f32]).is_none());
        assert_eq!(ElemType::from_name("bf16"), Some(ElemType::BF16));
    }
}
