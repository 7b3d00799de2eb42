//! Device formats of constants, decided at compile time: the device dtype, and for weights
//! a cube reads, FRACTAL_NZ (what TransData would produce on the device, done once here).

use kiln_ir::tensor::Tensor;
use kiln_runtime::ascend::descriptor::Format;
use kiln_runtime::ascend::sim::values;
use kiln_runtime::ElemType;

/// The stored shape of a tensor of logical `shape` in `format`: FRACTAL_NZ stores a
/// [.., R, C] matrix as [.., ceil(C/16), ceil(R/16), 16, 16].
pub fn storage_shape(shape: &[i64], format: Format) -> Vec<i64> {
    match format {
        Format::Nd => shape.to_vec(),
        Format::FractalNz => {
            let n = shape.len();
            let (r, c) = if n >= 2 {
                (shape[n - 2], shape[n - 1])
            } else {
                (1, shape.last().copied().unwrap_or(1))
            };
            let mut s = shape[..n.saturating_sub(2)].to_vec();
            s.extend([(c + 15) / 16, (r + 15) / 16, 16, 16]);
            s
        }
    }
}

/// The storage index of element (batch b, row i, col j) of a FRACTAL_NZ [.., R, C] matrix.
pub fn nz_index(r: usize, c: usize, b: usize, i: usize, j: usize) -> usize {
    let (r1, c1) = (r.div_ceil(16), c.div_ceil(16));
    b * r1 * c1 * 256 + (j / 16) * r1 * 256 + (i / 16) * 256 + (i % 16) * 16 + j % 16
}

/// `t`'s bytes in `dtype` (floats rounded to nearest even) and `format` (padding zero).
pub fn encode(t: &Tensor, dtype: ElemType, format: Format) -> Result<Vec<u8>, String> {
    let shape: Vec<i64> = t.shape().iter().map(|&d| d as i64).collect();
    let stored: i64 = storage_shape(&shape, format).iter().product();
    let mut out = vec![0u8; stored as usize * dtype.size()];
    let vals = if t.dtype().is_float() || t.dtype().is_int() || t.dtype().name() == "bool" {
        t.to_f64()
    } else {
        return Err(format!("a {} constant", t.dtype()));
    };
    match format {
        Format::Nd => {
            for (i, &v) in vals.iter().enumerate() {
                values::encode(dtype, &mut out, i, values::round(dtype, v));
            }
        }
        Format::FractalNz => {
            let n = shape.len();
            let (r, c) = (shape[n - 2] as usize, shape[n - 1] as usize);
            for (k, &v) in vals.iter().enumerate() {
                let (b, i, j) = (k / (r * c), (k / c) % r, k % c);
                values::encode(
                    dtype,
                    &mut out,
                    nz_index(r, c, b, i, j),
                    values::round(dtype, v),
                );
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_runtime::ascend::descriptor::TensorBinding;
    use kiln_runtime::ascend::sim::core::storage_index;

    #[test]
    fn nz_layout_agrees_with_the_device_model() {
        let shape = vec![2, 20, 35];
        let b = TensorBinding {
            buffer: 0,
            offset: 0,
            dtype: ElemType::F16,
            format: Format::FractalNz,
            shape: shape.clone(),
            storage_shape: storage_shape(&shape, Format::FractalNz),
        };
        assert_eq!(b.storage_shape, vec![2, 3, 2, 16, 16]);
        for (bb, i, j) in [(0, 0, 0), (0, 17, 3), (1, 19, 34), (1, 0, 16)] {
            assert_eq!(
                storage_index(&b, bb * 20 + i, j),
                nz_index(20, 35, bb, i, j)
            );
        }
        let t = Tensor::from_f32s(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let bytes = encode(&t, ElemType::F16, Format::FractalNz).unwrap();
        assert_eq!(bytes.len(), 256 * 2);
        // Row 1, col 2 (6.0) sits at 1 * 16 + 2 of the one fractal.
        assert_eq!(values::decode(ElemType::F16, &bytes, 18), 6.0);
        assert_eq!(values::decode(ElemType::F16, &bytes, 3), 0.0);
    }
}
