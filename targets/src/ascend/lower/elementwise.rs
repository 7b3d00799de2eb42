//! Elementwise kernels on the vector cores, one CANN operator per IR op (Add, Sub, Mul,
//! RealDiv, the unary activations, comparisons, Cast, ...), with ONNX broadcasting: each
//! input binding keeps its own shape and the kernel broadcasts it to the output's. Tiling:
//! [`crate::ascend::tiling::vector`], with UB for every input and the output (times
//! `bufferNum`) plus an f32 temporary per value (the kernels compute in f32).

use kiln_ir::graph::NodeId;
use kiln_runtime::ascend::descriptor::{CoreType, Format, Tiling};
use kiln_runtime::ElemType;

use super::{norm, DevTensor, LowerFn, Lowerer};
use crate::ascend::tiling::vector;
use crate::error::TargetError;

pub const OPS: &[(&str, LowerFn)] = &[
    ("Add", arith),
    ("Sub", arith),
    ("Mul", arith),
    ("Div", arith),
    ("Pow", arith),
    ("Max", arith),
    ("Min", arith),
    ("Neg", arith),
    ("Abs", arith),
    ("Sqrt", arith),
    ("Reciprocal", arith),
    ("Exp", arith),
    ("Log", arith),
    ("Sigmoid", arith),
    ("Tanh", arith),
    ("Relu", arith),
    ("Erf", arith),
    ("Sin", arith),
    ("Cos", arith),
    ("Softplus", arith),
    ("Equal", compare),
    ("Less", compare),
    ("LessOrEqual", compare),
    ("Greater", compare),
    ("GreaterOrEqual", compare),
    ("And", logical),
    ("Or", logical),
    ("Not", logical),
    ("IsNaN", compare),
    ("Where", select),
    ("Clip", clip),
    ("Cast", cast_op),
];

/// The CANN operator of an IR op, with whether it takes floats only.
fn kernel_name(op: &str) -> Option<(&'static str, bool)> {
    Some(match op {
        "Add" => ("Add", false),
        "Sub" => ("Sub", false),
        "Mul" => ("Mul", false),
        "Div" => ("RealDiv", true),
        "Pow" => ("Pow", true),
        "Max" => ("Maximum", false),
        "Min" => ("Minimum", false),
        "Neg" => ("Neg", false),
        "Abs" => ("Abs", false),
        "Sqrt" => ("Sqrt", true),
        "Reciprocal" => ("Reciprocal", true),
        "Exp" => ("Exp", true),
        "Log" => ("Log", true),
        "Sigmoid" => ("Sigmoid", true),
        "Tanh" => ("Tanh", true),
        "Relu" => ("Relu", false),
        "Erf" => ("Erf", true),
        "Sin" => ("Sin", true),
        "Cos" => ("Cos", true),
        "Softplus" => ("Softplus", true),
        "Equal" => ("Equal", false),
        "Less" => ("Less", false),
        "LessOrEqual" => ("LessEqual", false),
        "Greater" => ("Greater", false),
        "GreaterOrEqual" => ("GreaterEqual", false),
        "IsNaN" => ("IsNan", true),
        "And" => ("LogicalAnd", false),
        "Or" => ("LogicalOr", false),
        "Not" => ("LogicalNot", false),
        _ => return None,
    })
}

/// Arithmetic: every input converted to the output's dtype first (ONNX requires equal
/// dtypes except Pow's exponent, which CANN's Pow also wants equal).
fn arith(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let op = lw.graph.node(id).op.clone();
    let (name, float_only) = kernel_name(&op).ok_or_else(|| lw.unsupported(&op))?;
    if op == "Add" && norm::add_rms_norm(lw, id)? {
        return Ok(());
    }
    let out = lw.output(id, 0)?;
    if float_only && !is_float(out.dtype) {
        return Err(lw.unsupported(format!("{op} of {}", out.dtype)));
    }
    if !is_float(out.dtype)
        && !matches!(
            out.dtype,
            ElemType::I64 | ElemType::I32 | ElemType::I8 | ElemType::U8
        )
    {
        return Err(lw.unsupported(format!("{op} of {}", out.dtype)));
    }
    let mut inputs = Vec::new();
    for i in 0..lw.graph.node(id).inputs().len() {
        let x = lw.input(id, i)?;
        let x = lw.to_format(&x, Format::Nd)?;
        inputs.push(lw.cast(&x, out.dtype)?);
    }
    if inputs.is_empty() || inputs.len() > 2 {
        return Err(lw.unsupported(format!("{op} with {} inputs", inputs.len())));
    }
    launch(lw, name, &inputs, &out)
}

/// Comparisons (bool out): both sides in one dtype.
fn compare(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let op = lw.graph.node(id).op.clone();
    let (name, float_only) = kernel_name(&op).ok_or_else(|| lw.unsupported(&op))?;
    let out = lw.output(id, 0)?;
    let mut inputs = Vec::new();
    for i in 0..lw.graph.node(id).inputs().len() {
        let x = lw.input(id, i)?;
        inputs.push(lw.to_format(&x, Format::Nd)?);
    }
    if float_only && !inputs.iter().all(|x| is_float(x.dtype)) {
        return Err(lw.unsupported(format!("{op} of non-float inputs")));
    }
    // Two floats of different device dtypes (one kept in f32) compare in f32.
    if let [a, b] = &inputs[..] {
        if a.dtype != b.dtype {
            if !(is_float(a.dtype) && is_float(b.dtype)) {
                return Err(lw.unsupported(format!("{op} of {} and {}", a.dtype, b.dtype)));
            }
            let (a, b) = (a.clone(), b.clone());
            inputs = vec![lw.cast(&a, ElemType::F32)?, lw.cast(&b, ElemType::F32)?];
        }
    }
    launch(lw, name, &inputs, &out)
}

fn logical(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    compare(lw, id)
}

/// Where(cond, x, y) -> SelectV2.
fn select(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let out = lw.output(id, 0)?;
    let c = lw.input(id, 0)?;
    let c = lw.to_format(&c, Format::Nd)?;
    let mut inputs = vec![c];
    for i in 1..3 {
        let x = lw.input(id, i)?;
        let x = lw.to_format(&x, Format::Nd)?;
        inputs.push(lw.cast(&x, out.dtype)?);
    }
    launch(lw, "SelectV2", &inputs, &out)
}

/// Clip(x, min?, max?) -> ClipByValueV2(x, min, max), absent bounds as the dtype's
/// extremes (stored as constants).
fn clip(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let out = lw.output(id, 0)?;
    let x = lw.input(id, 0)?;
    let x = lw.to_format(&x, Format::Nd)?;
    let mut inputs = vec![x];
    for (i, extreme) in [(1, f64::NEG_INFINITY), (2, f64::INFINITY)] {
        let b = match lw.opt_input(id, i)? {
            Some(b) => {
                let b = lw.to_format(&b, Format::Nd)?;
                lw.cast(&b, out.dtype)?
            }
            None => {
                let v = if is_float(out.dtype) {
                    extreme
                } else if extreme < 0.0 {
                    i64::MIN as f64
                } else {
                    i64::MAX as f64
                };
                let mut bytes = vec![0u8; out.dtype.size()];
                kiln_runtime::ascend::sim::values::encode(
                    out.dtype,
                    &mut bytes,
                    0,
                    kiln_runtime::ascend::sim::values::round(out.dtype, v),
                );
                let name = format!(
                    "{} {}",
                    lw.graph.node(id).label(),
                    if i == 1 { "min" } else { "max" }
                );
                lw.weight(&name, out.dtype, Format::Nd, vec![], bytes)
            }
        };
        inputs.push(b);
    }
    launch(lw, "ClipByValueV2", &inputs, &out)
}

fn cast_op(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    let x = lw.to_format(&x, Format::Nd)?;
    let out_dtype = lw.output_type(id, 0)?.0;
    if x.dtype == out_dtype {
        // f32 -> f16 in the graph is f16 -> f16 on an f16 device: nothing to do.
        return lw.alias_output(id, 0, &x);
    }
    let out = lw.output(id, 0)?;
    cast(lw, &x, &out)
}

fn is_float(t: ElemType) -> bool {
    matches!(t, ElemType::F32 | ElemType::F16 | ElemType::BF16)
}

/// Launches Cast of `x` into `out` (same shape).
pub fn cast(lw: &mut Lowerer, x: &DevTensor, out: &DevTensor) -> Result<(), TargetError> {
    launch(lw, "Cast", std::slice::from_ref(x), out)
}

/// Launches TensorMove (a device copy) of `x` into `out` (same dtype and shape).
pub fn copy(lw: &mut Lowerer, x: &DevTensor, out: &DevTensor) -> Result<(), TargetError> {
    launch(lw, "TensorMove", std::slice::from_ref(x), out)
}

/// Launches elementwise kernel `name` over `inputs` (each broadcasting to `out`).
fn launch(
    lw: &mut Lowerer,
    name: &str,
    inputs: &[DevTensor],
    out: &DevTensor,
) -> Result<(), TargetError> {
    launch_attrs(lw, name, inputs, out, Tiling::new())
}

/// [`launch`] with the kernel's attributes appended to its tiling.
pub fn launch_attrs(
    lw: &mut Lowerer,
    name: &str,
    inputs: &[DevTensor],
    out: &DevTensor,
    attrs: Tiling,
) -> Result<(), TargetError> {
    let in_bytes: i64 = inputs.iter().map(|x| x.dtype.size() as i64).sum();
    let out_bytes = out.dtype.size() as i64;
    let temps = 4 * (inputs.len() as i64 + 1);
    let t = vector::split(lw.profile, out.numel(), |n| {
        n * (in_bytes + out_bytes) + temps
    })
    .map_err(|e| lw.error(e))?;
    let mut tiling = t.data();
    tiling.0.extend(attrs.0);
    lw.launch(
        name,
        CoreType::Aiv,
        t.block_dim,
        tiling,
        inputs.iter().cloned().map(Some).collect(),
        vec![out.clone()],
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::ascend::testing::{check, floats};
    use kiln_ir::Tensor;
    use kiln_runtime::ElemType;

    #[test]
    fn binary_and_unary_ops_with_broadcasting() {
        let text = "graph @t(%x: f32[2, seq, 33], %y: f32[33]) -> (a: f32[2, seq, 33], b: f32[2, seq, 33], c: bool[2, seq, 33]) {
            %0 = Add(%x, %y) : f32[2, seq, 33]
            %1 = Sigmoid(%0) : f32[2, seq, 33]
            %2 = Mul(%0, %1) : f32[2, seq, 33]
            %3 = constant {value = dense<f32[]>[0.5]} : f32[]
            %4 = Div(%2, %3) : f32[2, seq, 33]
            %7 = constant {value = dense<f32[]>[0.0]} : f32[]
            %5 = Less(%x, %7) : bool[2, seq, 33]
            %6 = Erf(%x) : f32[2, seq, 33]
            return %4, %6, %5
        }";
        let inputs = [floats(&[2, 5, 33], 1), floats(&[33], 2)];
        for dtype in [ElemType::F16, ElemType::BF16] {
            let tol = if dtype == ElemType::F16 { 2e-3 } else { 1.6e-2 };
            let kernels = check(text, &inputs, &[("seq", 5)], dtype, tol);
            assert_eq!(
                kernels,
                [
                    "Cast", "Cast", "Add", "Sigmoid", "Mul", "RealDiv", "Less", "Erf", "Cast",
                    "Cast"
                ]
            );
        }
    }

    #[test]
    fn casts_between_integers_and_floats() {
        let text = "graph @t(%i: i64[3, 40]) -> (f: f32[3, 40], j: i64[3, 40]) {
            %0 = Cast(%i) {to = f32} : f32[3, 40]
            %1 = constant {value = dense<f32[]>[1.5]} : f32[]
            %2 = Mul(%0, %1) : f32[3, 40]
            %3 = Cast(%2) {to = i64} : i64[3, 40]
            return %2, %3
        }";
        let i: Vec<i64> = (0..120).map(|v| v - 60).collect();
        let inputs = [Tensor::from_i64s(vec![3, 40], i).unwrap()];
        check(text, &inputs, &[], ElemType::F16, 0.0);
    }

    #[test]
    fn clips_with_and_without_bounds() {
        let text = "graph @t(%x: f32[4, 9], %lo: f32[]) -> (a: f32[4, 9], b: f32[4, 9]) {
            %0 = constant {value = dense<f32[]>[0.25]} : f32[]
            %1 = Clip(%x, _, %0) : f32[4, 9]
            %2 = Clip(%x, %lo, %0) : f32[4, 9]
            return %1, %2
        }";
        let lo = Tensor::from_f32s(vec![], vec![-0.5]).unwrap();
        check(text, &[floats(&[4, 9], 7), lo], &[], ElemType::F16, 1e-3);
    }
}
