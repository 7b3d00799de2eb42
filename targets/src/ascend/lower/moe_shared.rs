//! The shared experts of a `moe` (inputs 11-14): a dense gated MLP every token goes
//! through, on the ordinary kernels: MatMulV3 by the transposed weights (FRACTAL_NZ from
//! compile time) for gate, up and down; SwiGlu (or GeluV2 / Relu and Mul) between; for
//! Qwen2-MoE's gate, MatMulV3 by the [H, 1] gate vector, Sigmoid and a broadcasting Mul.
//! The result is MoeFinalizeRouting's skip input, so it is added in the combine.

use kiln_ir::graph::NodeId;
use kiln_ir::tensor::Tensor;
use kiln_runtime::ascend::descriptor::{Format, Tiling};

use super::moe::Activation;
use super::{elementwise, matmul, DevTensor, Lowerer};
use crate::ascend::format;
use crate::error::TargetError;

/// Constant input `i` ([R, C], or [C] read as [1, C]) transposed to [C, R] and stored
/// FRACTAL_NZ.
fn transposed_weight(lw: &mut Lowerer, id: NodeId, i: usize) -> Result<DevTensor, TargetError> {
    let Some(t) = lw.const_input(id, i) else {
        return Err(lw.unsupported("moe with shared expert weights computed at run time"));
    };
    let (r, c) = match t.shape() {
        [c] => (1, *c),
        [r, c] => (*r, *c),
        s => return Err(lw.error(format!("shared expert weight of shape {s:?}"))),
    };
    let v = t.to_f64();
    let tv: Vec<f64> = (0..r * c).map(|k| v[(k % r) * c + k / r]).collect();
    let tt = Tensor::from_f64(t.dtype(), vec![c, r], &tv);
    let dtype = lw.device_dtype(t.dtype())?;
    let bytes = format::encode(&tt, dtype, Format::FractalNz).map_err(|e| lw.error(e))?;
    let name = format!(
        "{} shared input {i} (transposed)",
        lw.graph.node(id).label()
    );
    Ok(lw.weight(
        &name,
        dtype,
        Format::FractalNz,
        vec![c as i64, r as i64],
        bytes,
    ))
}

/// `x` [.., H] times the transposed weight `w` [H, C] into a new [.., C] tensor.
fn project(
    lw: &mut Lowerer,
    x: &DevTensor,
    w: DevTensor,
    what: &str,
) -> Result<DevTensor, TargetError> {
    let mut shape = x.shape.clone();
    *shape.last_mut().expect("x has a rank") = w.shape[1];
    let out = lw.scratch(what, lw.dtype, Format::Nd, shape);
    matmul::emit(lw, x.clone(), w, None, out.clone())?;
    Ok(out)
}

/// The shared experts' output for `x` [.., H] (device dtype, ND), if the node has them.
pub fn lower(
    lw: &mut Lowerer,
    id: NodeId,
    x: &DevTensor,
    act: &Activation,
) -> Result<Option<DevTensor>, TargetError> {
    let node = lw.graph.node(id);
    if node.input(11).is_none() {
        return Ok(None);
    }
    let has_up = node.input(13).is_some();
    let has_gate = node.input(14).is_some();
    let w1 = transposed_weight(lw, id, 11)?;
    let g = project(lw, x, w1, "shared gate projection")?;
    let h = match has_up {
        true => {
            let w3 = transposed_weight(lw, id, 13)?;
            let u = project(lw, x, w3, "shared up projection")?;
            let h = lw.scratch("shared activation", lw.dtype, Format::Nd, g.shape.clone());
            act.launch_pair(lw, &g, &u, &h)?;
            h
        }
        false => {
            let h = lw.scratch("shared activation", lw.dtype, Format::Nd, g.shape.clone());
            act.launch_single(lw, &g, &h)?;
            h
        }
    };
    let w2 = transposed_weight(lw, id, 12)?;
    let s = project(lw, &h, w2, "shared down projection")?;
    if !has_gate {
        return Ok(Some(s));
    }
    let gw = transposed_weight(lw, id, 14)?;
    let z = project(lw, x, gw, "shared gate logit")?;
    let zs = lw.scratch("shared gate", lw.dtype, Format::Nd, z.shape.clone());
    elementwise::launch_attrs(lw, "Sigmoid", &[z], &zs, Tiling::new())?;
    let gated = lw.scratch(
        "gated shared experts",
        lw.dtype,
        Format::Nd,
        s.shape.clone(),
    );
    elementwise::launch_attrs(lw, "Mul", &[s, zs], &gated, Tiling::new())?;
    Ok(Some(gated))
}
