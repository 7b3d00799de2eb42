//! Element values as the device model holds them: every element of every buffer is an f64
//! that is exactly representable in the buffer's dtype (floats rounded to nearest even on
//! the way in, integers exact up to 2^53), so storing and loading never changes a value.

use half::{bf16, f16};

use crate::model::tensor::ElemType;

/// Whether the device model can hold `t` (the dtypes Ascend kernels take).
pub fn supported(t: ElemType) -> bool {
    matches!(
        t,
        ElemType::F32
            | ElemType::F16
            | ElemType::BF16
            | ElemType::I64
            | ElemType::I32
            | ElemType::I8
            | ElemType::U8
            | ElemType::Bool
    )
}

/// `v` rounded to the nearest value of `t` (floats: nearest even; integers: truncated
/// toward zero and wrapped, as a device cast does; bool: nonzero).
pub fn round(t: ElemType, v: f64) -> f64 {
    match t {
        ElemType::F32 => v as f32 as f64,
        ElemType::F16 => f16::from_f64(v).to_f64(),
        ElemType::BF16 => bf16::from_f64(v).to_f64(),
        ElemType::I64 => v as i64 as f64,
        ElemType::I32 => v as i64 as i32 as f64,
        ElemType::I8 => v as i64 as i8 as f64,
        ElemType::U8 => v as i64 as u8 as f64,
        ElemType::Bool => (v != 0.0) as u8 as f64,
        _ => v,
    }
}

/// Decodes element `i` of `t` from little-endian `bytes` (which hold at least i+1 elements).
pub fn decode(t: ElemType, bytes: &[u8], i: usize) -> f64 {
    let s = t.size();
    let b = &bytes[i * s..(i + 1) * s];
    match t {
        ElemType::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
        ElemType::F16 => f16::from_le_bytes([b[0], b[1]]).to_f64(),
        ElemType::BF16 => bf16::from_le_bytes([b[0], b[1]]).to_f64(),
        ElemType::I64 => {
            let mut x = [0u8; 8];
            x.copy_from_slice(b);
            i64::from_le_bytes(x) as f64
        }
        ElemType::I32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
        ElemType::I8 => b[0] as i8 as f64,
        ElemType::U8 => b[0] as f64,
        ElemType::Bool => (b[0] != 0) as u8 as f64,
        _ => f64::NAN,
    }
}

/// Encodes `v` (already representable in `t`) as element `i` of `bytes`.
pub fn encode(t: ElemType, bytes: &mut [u8], i: usize, v: f64) {
    let s = t.size();
    let b = &mut bytes[i * s..(i + 1) * s];
    match t {
        ElemType::F32 => b.copy_from_slice(&(v as f32).to_le_bytes()),
        ElemType::F16 => b.copy_from_slice(&f16::from_f64(v).to_le_bytes()),
        ElemType::BF16 => b.copy_from_slice(&bf16::from_f64(v).to_le_bytes()),
        ElemType::I64 => b.copy_from_slice(&(v as i64).to_le_bytes()),
        ElemType::I32 => b.copy_from_slice(&(v as i32).to_le_bytes()),
        ElemType::I8 => b[0] = v as i8 as u8,
        ElemType::U8 | ElemType::Bool => b[0] = v as u8,
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_and_round_trips() {
        assert_eq!(round(ElemType::F16, 1.0 + 1.0 / 4096.0), 1.0);
        assert_eq!(round(ElemType::BF16, 1.0 + 1.0 / 256.0), 1.0);
        assert_eq!(round(ElemType::I32, -3.7), -3.0);
        let mut b = vec![0u8; 8];
        for t in [ElemType::F16, ElemType::BF16, ElemType::F32, ElemType::I64] {
            encode(t, &mut b, 0, 0.5);
            assert_eq!(decode(t, &b, 0), if t == ElemType::I64 { 0.0 } else { 0.5 });
        }
    }
}
