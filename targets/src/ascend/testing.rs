//! Test support: compile a graph written in kiln's text IR for a profile, run the launch
//! list on the device model, and compare each output with the reference interpreter's,
//! relative to the output's magnitude (the device computes in f16/bf16).

use kiln_ir::{Graph, Tensor};
use kiln_runtime::ascend::cost::KernelCost;
use kiln_runtime::ascend::{AscendModel, Profile};
use kiln_runtime::{ElemType, Tensor as RtTensor};

use crate::ascend::{compile, AscendArtifact, AscendOptions};
use crate::error::TargetError;

pub use crate::cpu::testing::{floats, graph, interpret};

fn to_runtime(t: &Tensor) -> RtTensor {
    let e = ElemType::from_name(t.dtype().name()).expect("runtime dtype");
    RtTensor::from_bytes(e, t.shape(), &t.to_le_bytes()).expect("bytes fit")
}

fn from_runtime(t: &RtTensor) -> Tensor {
    let d = kiln_ir::DType::ALL
        .into_iter()
        .find(|d| d.name() == t.dtype().name())
        .expect("ir dtype");
    Tensor::from_le_bytes(d, t.shape().to_vec(), t.bytes()).expect("bytes fit")
}

/// Compiles `g` for `profile` in `dtype` with symbols at `dims`.
pub fn build(
    g: &Graph,
    profile: &str,
    dtype: ElemType,
    dims: &[(&str, i64)],
) -> Result<AscendArtifact, TargetError> {
    compile(
        g,
        &AscendOptions {
            profile: Profile::by_name(profile).expect("a profile"),
            dtype,
            dims: dims.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        },
    )
}

/// Runs a compiled artifact on the device model.
pub fn run(art: &AscendArtifact, inputs: &[Tensor]) -> (Vec<Tensor>, Vec<KernelCost>) {
    let model =
        AscendModel::new(art.launch.clone(), &art.weights).unwrap_or_else(|e| panic!("load: {e}"));
    let rt: Vec<_> = inputs.iter().map(to_runtime).collect();
    let (outs, costs) = model
        .run_profiled(&rt)
        .unwrap_or_else(|e| panic!("run: {e}"));
    (outs.iter().map(from_runtime).collect(), costs)
}

/// Compiles the graph in `text` for the 910B2 in `dtype`, runs it on `inputs` on the device
/// model and in the interpreter, and asserts every output matches: same dtype and shape;
/// integers and bools exactly; floats within `tol * max|want|` (NaN equals NaN). Returns
/// the launch list's kernel names in order.
pub fn check(
    text: &str,
    inputs: &[Tensor],
    dims: &[(&str, i64)],
    dtype: ElemType,
    tol: f64,
) -> Vec<String> {
    let g = graph(text);
    let want = interpret(&g, inputs);
    let art =
        build(&g, "ascend910b2", dtype, dims).unwrap_or_else(|e| panic!("compile: {e}\n{text}"));
    let (got, _) = run(&art, inputs);
    assert_eq!(got.len(), want.len());
    for ((name, w), g) in want.iter().zip(&got) {
        assert_eq!(w.dtype(), g.dtype(), "output {name}: dtype");
        assert_eq!(w.shape(), g.shape(), "output {name}: shape");
        if w.dtype().is_float() {
            let wv = w.to_f64();
            let scale = wv
                .iter()
                .fold(0f64, |m, x| if x.is_finite() { m.max(x.abs()) } else { m });
            for (i, (a, b)) in wv.iter().zip(g.to_f64()).enumerate() {
                let ok = (a.is_nan() && b.is_nan()) || *a == b || (a - b).abs() <= tol * scale;
                assert!(
                    ok,
                    "output {name}[{i}]: want {a}, got {b} (scale {scale})\n{text}"
                );
            }
        } else {
            assert_eq!(w.to_le_bytes(), g.to_le_bytes(), "output {name}\n{text}");
        }
    }
    art.launch
        .kernels
        .iter()
        .map(|k| k.kernel_name.clone())
        .collect()
}
