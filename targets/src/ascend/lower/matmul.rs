//! MatMulV3 / BatchMatMulV3 on the cube cores: C = A·B (+ bias), A activations in ND,
//! B a weight stored FRACTAL_NZ at compile time or an activation in ND, f16/bf16 inputs
//! with f32 accumulation in L0C. A's batch dims fold into M when B is a matrix; a batched
//! B (an activation times an activation) is BatchMatMulV3. Tiling:
//! [`crate::ascend::tiling::cube`].

use kiln_ir::graph::NodeId;
use kiln_ir::AttrsExt;
use kiln_runtime::ascend::descriptor::{CoreType, Format};

use super::{DevTensor, LowerFn, Lowerer};
use crate::ascend::tiling::cube;
use crate::error::TargetError;

pub const OPS: &[(&str, LowerFn)] = &[("MatMul", matmul), ("Gemm", gemm)];

fn matmul(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let a = lw.input(id, 0)?;
    let b_shape = lw.shape_of(lw.graph.node(id).input(1).expect("MatMul has two inputs"))?;
    let b = if b_shape.len() == 2 {
        match lw.nz_weight(id, 1)? {
            Some(w) => w,
            None => lw.input(id, 1)?,
        }
    } else {
        lw.input(id, 1)?
    };
    let out = lw.output(id, 0)?;
    emit(lw, a, b, None, out)
}

/// Gemm: alpha * A' * B' + beta * C with A' = A or Aᵀ, B' = B or Bᵀ. Supported when A is
/// not transposed, B is constant (transposed at compile time if asked, alpha folded into
/// it), and C, if any, is a [N] or [1, N] bias with beta = 1.
fn gemm(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let attrs = &lw.graph.node(id).attrs;
    let trans_a = attrs.int_or("transA", 0).unwrap_or(0);
    let trans_b = attrs.int_or("transB", 0).unwrap_or(0);
    let alpha = attrs.float_or("alpha", 1.0).unwrap_or(1.0);
    let beta = attrs.float_or("beta", 1.0).unwrap_or(1.0);
    if trans_a != 0 {
        return Err(lw.unsupported("Gemm with transA = 1"));
    }
    let Some(b) = lw.const_input(id, 1) else {
        return Err(lw.unsupported("Gemm with a computed B"));
    };
    if b.shape().len() != 2 {
        return Err(lw.error(format!("Gemm's B has shape {:?}", b.shape())));
    }
    let (r, c) = (b.shape()[0], b.shape()[1]);
    let vals = b.to_f64();
    let scaled = |x: f64| x * alpha as f64;
    let b = if trans_b != 0 {
        let v: Vec<f64> = (0..r * c)
            .map(|i| scaled(vals[(i % r) * c + i / r]))
            .collect();
        kiln_ir::tensor::Tensor::from_f64(b.dtype(), vec![c, r], &v)
    } else {
        let v: Vec<f64> = vals.iter().map(|&x| scaled(x)).collect();
        kiln_ir::tensor::Tensor::from_f64(b.dtype(), vec![r, c], &v)
    };
    let name = format!("{} B", lw.graph.node(id).label());
    let dtype = lw.device_dtype(b.dtype())?;
    let shape: Vec<i64> = b.shape().iter().map(|&d| d as i64).collect();
    let bytes =
        crate::ascend::format::encode(&b, dtype, Format::FractalNz).map_err(|e| lw.error(e))?;
    let bw = lw.weight(&name, dtype, Format::FractalNz, shape.clone(), bytes);
    let a = lw.input(id, 0)?;
    let bias = match lw.opt_input(id, 2)? {
        None => None,
        Some(_) if beta == 0.0 => None,
        Some(c) => {
            let n = shape[1];
            if beta != 1.0 || !(c.shape == [n] || c.shape == [1, n]) {
                return Err(lw.unsupported(format!(
                    "Gemm with C of shape {:?} and beta {beta} (a [N] bias with beta = 1 is supported)",
                    c.shape
                )));
            }
            Some(DevTensor {
                shape: vec![n],
                ..c
            })
        }
    };
    let out = lw.output(id, 0)?;
    emit(lw, a, bw, bias, out)
}

/// Launches `out = a·b (+ bias)`.
pub(super) fn emit(
    lw: &mut Lowerer,
    a: DevTensor,
    b: DevTensor,
    bias: Option<DevTensor>,
    out: DevTensor,
) -> Result<(), TargetError> {
    // Inputs kept in f32 elsewhere ([`super::precision`]) go back to the device dtype.
    let a = lw.cast(&a, lw.dtype)?;
    let b = if b.format == Format::Nd {
        lw.cast(&b, lw.dtype)?
    } else {
        b
    };
    if b.dtype != lw.dtype {
        return Err(lw.unsupported(format!("a matmul by a {} {} weight", b.dtype, b.format)));
    }
    if a.shape.len() < 2 || b.shape.len() < 2 {
        return Err(lw.unsupported(format!(
            "a matmul of shapes {:?} and {:?} (vectors are not supported yet)",
            a.shape, b.shape
        )));
    }
    let a = lw.to_format(&a, Format::Nd)?;
    let (ra, rb) = (a.shape.len(), b.shape.len());
    let (m, k) = (a.shape[ra - 2], a.shape[ra - 1]);
    let n = b.shape[rb - 1];
    if b.shape[rb - 2] != k {
        return Err(lw.error(format!("a matmul of {:?} by {:?}", a.shape, b.shape)));
    }
    let (name, batch, m_total) = if rb == 2 {
        ("MatMulV3", 1, a.numel() / k)
    } else {
        let (ba, bb): (i64, i64) = (
            a.shape[..ra - 2].iter().product(),
            b.shape[..rb - 2].iter().product(),
        );
        let out_batch: i64 = out.shape[..out.shape.len() - 2].iter().product();
        if ba != out_batch
            || bb != out_batch && bb != 1
            || a.shape[..ra - 2] != out.shape[..out.shape.len() - 2]
        {
            return Err(lw.unsupported(format!(
                "a batched matmul of {:?} by {:?} (batch dims must be equal, or B's all 1)",
                a.shape, b.shape
            )));
        }
        ("BatchMatMulV3", out_batch, m)
    };
    let t = cube::tile(lw.profile, batch, m_total, n, k).map_err(|e| lw.error(e))?;
    let mut tiling = t.data();
    tiling.push(
        "batchB",
        if rb == 2 {
            1
        } else {
            b.shape[..rb - 2].iter().product()
        },
    );
    tiling.push("hasBias", bias.is_some() as i64);
    lw.launch(
        name,
        CoreType::Aic,
        t.block_dim,
        tiling,
        vec![Some(a), Some(b), bias],
        vec![out],
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::ascend::testing::{check, floats};
    use kiln_runtime::ElemType;

    fn weights(shape: &[usize], seed: u64) -> String {
        let t = floats(shape, seed);
        let v: Vec<String> = t.to_f64().iter().map(|x| format!("{x}")).collect();
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        format!("dense<f32[{}]>[{}]", dims.join(", "), v.join(", "))
    }

    #[test]
    fn matmul_with_a_fractal_nz_weight() {
        // K = 70 and N = 37 leave partial fractals; seq = 7 a partial M tile.
        let text = format!(
            "graph @t(%x: f32[1, seq, 70]) -> (y: f32[1, seq, 37]) {{
                %0 = constant {{value = {}}} : f32[70, 37]
                %1 = MatMul(%x, %0) : f32[1, seq, 37]
                return %1
            }}",
            weights(&[70, 37], 3)
        );
        for dtype in [ElemType::F16, ElemType::BF16] {
            let tol = if dtype == ElemType::F16 { 2e-3 } else { 1.6e-2 };
            let k = check(&text, &[floats(&[1, 7, 70], 4)], &[("seq", 7)], dtype, tol);
            assert_eq!(k, ["Cast", "MatMulV3", "Cast"]);
        }
    }

    #[test]
    fn large_k_walks_several_l1_loads() {
        let text = format!(
            "graph @t(%x: f32[40, 600]) -> (y: f32[40, 300]) {{
                %0 = constant {{value = {}}} : f32[600, 300]
                %1 = MatMul(%x, %0) : f32[40, 300]
                return %1
            }}",
            weights(&[600, 300], 5)
        );
        check(&text, &[floats(&[40, 600], 6)], &[], ElemType::F16, 2e-3);
    }

    #[test]
    fn batched_matmul_of_activations() {
        let text = "graph @t(%a: f32[2, 3, 5, 24], %b: f32[2, 3, 24, 9]) -> (y: f32[2, 3, 5, 9]) {
            %0 = MatMul(%a, %b) : f32[2, 3, 5, 9]
            return %0
        }";
        let k = check(
            text,
            &[floats(&[2, 3, 5, 24], 7), floats(&[2, 3, 24, 9], 8)],
            &[],
            ElemType::F16,
            2e-3,
        );
        assert_eq!(k, ["Cast", "Cast", "BatchMatMulV3", "Cast"]);
    }

    #[test]
    fn gemm_with_transposed_weight_alpha_and_bias() {
        let text = format!(
            "graph @t(%x: f32[6, 20]) -> (y: f32[6, 17]) {{
                %0 = constant {{value = {}}} : f32[17, 20]
                %1 = constant {{value = {}}} : f32[17]
                %2 = Gemm(%x, %0, %1) {{transB = 1, alpha = 0.5}} : f32[6, 17]
                return %2
            }}",
            weights(&[17, 20], 9),
            weights(&[17], 10)
        );
        check(&text, &[floats(&[6, 20], 11)], &[], ElemType::F16, 2e-3);
    }
}
