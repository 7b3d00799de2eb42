//! Activations with attributes on the vector cores: `swiglu` -> SwiGlu (gate and up as
//! two inputs; alpha, beta and the optional limit as f32 bits in the tiling), ONNX `Gelu`
//! -> GeluV2 (`approximate` = none or tanh).

use kiln_ir::graph::NodeId;
use kiln_ir::AttrsExt;
use kiln_runtime::ascend::descriptor::{Format, Tiling};

use super::{elementwise, LowerFn, Lowerer};
use crate::error::TargetError;

pub const OPS: &[(&str, LowerFn)] = &[("swiglu", swiglu), ("Gelu", gelu)];

fn swiglu(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let attrs = &lw.graph.node(id).attrs;
    let f = |name: &str, default: f32| attrs.float_or(name, default).unwrap_or(default);
    let (alpha, beta) = (f("alpha", 1.0), f("beta", 0.0));
    let limit = attrs.float("limit").ok().flatten();
    let out = lw.output(id, 0)?;
    let mut ins = Vec::new();
    for i in 0..2 {
        let x = lw.input(id, i)?;
        let x = lw.to_format(&x, Format::Nd)?;
        ins.push(lw.cast(&x, out.dtype)?);
    }
    let t = Tiling::new()
        .with("alphaBits", alpha.to_bits() as i64)
        .with("betaBits", beta.to_bits() as i64)
        .with("limitBits", limit.unwrap_or(0.0).to_bits() as i64)
        .with("hasLimit", limit.is_some() as i64);
    elementwise::launch_attrs(lw, "SwiGlu", &ins, &out, t)
}

fn gelu(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let approx = lw
        .graph
        .node(id)
        .attrs
        .str_or("approximate", "none")
        .unwrap_or("none")
        .to_string();
    let tanh = match approx.as_str() {
        "none" => 0,
        "tanh" => 1,
        a => return Err(lw.unsupported(format!("Gelu with approximate = {a}"))),
    };
    let out = lw.output(id, 0)?;
    let x = lw.input(id, 0)?;
    let x = lw.to_format(&x, Format::Nd)?;
    let x = lw.cast(&x, out.dtype)?;
    elementwise::launch_attrs(
        lw,
        "GeluV2",
        &[x],
        &out,
        Tiling::new().with("approximate", tanh),
    )
}

#[cfg(test)]
mod tests {
    use crate::ascend::testing::{check, floats};
    use kiln_runtime::ElemType;

    #[test]
    fn swiglu_plain_and_clamped_and_gelu() {
        let text = "graph @t(%g: f32[4, 40], %u: f32[4, 40]) -> (a: f32[4, 40], b: f32[4, 40], c: f32[4, 40], d: f32[4, 40]) {
            %0 = swiglu(%g, %u) : f32[4, 40]
            %1 = swiglu(%g, %u) {alpha = 1.702, beta = 1.0, limit = 0.5} : f32[4, 40]
            %2 = Gelu(%g) : f32[4, 40]
            %3 = Gelu(%u) {approximate = \"tanh\"} : f32[4, 40]
            return %0, %1, %2, %3
        }";
        let inputs = [floats(&[4, 40], 1), floats(&[4, 40], 2)];
        for dtype in [ElemType::F16, ElemType::BF16] {
            let tol = if dtype == ElemType::F16 { 2e-3 } else { 1.6e-2 };
            check(text, &inputs, &[], dtype, tol);
        }
    }
}
