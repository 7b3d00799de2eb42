//! Opset normalization: older forms of default-domain ops rewritten to the newest signature
//! (the op contract: IR ops take the inputs and attributes of their newest ONNX opset).
//!
//! Everything lives in two tables, [`RENAMES`] and [`REWRITES`]; each entry applies to nodes
//! whose model imports a default-domain opset *below* `before`.

use kiln_ir::{Attr, Attrs, DType, Dim, Tensor, Value};

use super::Importer;
use crate::error::CompileError;

/// A node on its way into the graph.
pub(crate) struct Draft {
    /// The IR op name (after [`RENAMES`]).
    pub op: String,
    /// The ONNX op type as written in the model.
    pub op_type: String,
    /// The model's opset for the node's domain.
    pub opset: i64,
    pub inputs: Vec<Option<Value>>,
    pub attrs: Attrs,
    pub num_outputs: usize,
    pub origin: String,
}

/// What a rewrite did.
pub(crate) enum Outcome {
    /// The draft (possibly changed) is to be added as one node.
    Node,
    /// The rewrite built the node's outputs itself.
    Replaced(Vec<Value>),
}

type RewriteFn = fn(&mut Importer, &mut Draft) -> Result<Outcome, CompileError>;

/// One rewrite: ONNX op type (`*` for every op), the first opset that no longer needs it,
/// what it does, and the function.
pub(crate) struct Rewrite {
    pub op: &'static str,
    pub before: i64,
    pub what: &'static str,
    pub apply: RewriteFn,
}

/// Deprecated ops that became others: (old op type, before opset, new op).
pub const RENAMES: &[(&str, i64, &str)] = &[
    ("Upsample", i64::MAX, "Resize"),
    ("Scatter", i64::MAX, "ScatterElements"),
];

macro_rules! rw {
    ($op:expr, $before:expr, $what:expr, $f:expr) => {
        Rewrite {
            op: $op,
            before: $before,
            what: $what,
            apply: $f,
        }
    };
}

pub(crate) const REWRITES: &[Rewrite] = &[
    rw!(
        "*",
        6,
        "drop the legacy `consumed_inputs` attribute",
        drop_consumed_inputs
    ),
    rw!(
        "Add",
        7,
        "legacy broadcast/axis attributes",
        legacy_broadcast
    ),
    rw!(
        "Sub",
        7,
        "legacy broadcast/axis attributes",
        legacy_broadcast
    ),
    rw!(
        "Mul",
        7,
        "legacy broadcast/axis attributes",
        legacy_broadcast
    ),
    rw!(
        "Div",
        7,
        "legacy broadcast/axis attributes",
        legacy_broadcast
    ),
    rw!(
        "Pow",
        7,
        "legacy broadcast/axis attributes",
        legacy_broadcast
    ),
    rw!(
        "And",
        7,
        "legacy broadcast/axis attributes",
        legacy_broadcast
    ),
    rw!(
        "Or",
        7,
        "legacy broadcast/axis attributes",
        legacy_broadcast
    ),
    rw!(
        "Xor",
        7,
        "legacy broadcast/axis attributes",
        legacy_broadcast
    ),
    rw!(
        "Equal",
        7,
        "legacy broadcast/axis attributes",
        legacy_broadcast
    ),
    rw!(
        "Greater",
        7,
        "legacy broadcast/axis attributes",
        legacy_broadcast
    ),
    rw!(
        "Less",
        7,
        "legacy broadcast/axis attributes",
        legacy_broadcast
    ),
    rw!("Gemm", 7, "legacy broadcast attribute", legacy_broadcast),
    rw!("Concat", 4, "axis defaulted to 1", concat_default_axis),
    rw!(
        "Reshape",
        5,
        "shape attribute -> input 1",
        reshape_shape_attr
    ),
    rw!("Tile", 6, "tiles/axis inputs", tile_v1),
    rw!(
        "Dropout",
        12,
        "ratio attribute -> input 1; drop is_test",
        dropout_ratio
    ),
    rw!(
        "BatchNormalization",
        9,
        "drop spatial/is_test",
        batchnorm_old
    ),
    rw!(
        "Slice",
        10,
        "starts/ends/axes attributes -> inputs 1-3",
        slice_attrs
    ),
    rw!("TopK", 10, "k attribute -> input 1", topk_k),
    rw!(
        "Resize",
        11,
        "Resize-10 (X, scales) -> (X, roi, scales, sizes), asymmetric",
        resize_v10
    ),
    rw!(
        "Upsample",
        i64::MAX,
        "Upsample -> Resize, asymmetric",
        upsample
    ),
    rw!(
        "Resize",
        i64::MAX,
        "empty roi/scales constants -> absent",
        resize_empty_inputs
    ),
    rw!("Pad", 11, "pads/value attributes -> inputs 1-2", pad_attrs),
    rw!("Clip", 11, "min/max attributes -> inputs 1-2", clip_attrs),
    rw!("ReduceSum", 13, "axes attribute -> input 1", axes_to_input),
    rw!("ReduceL1", 18, "axes attribute -> input 1", axes_to_input),
    rw!("ReduceL2", 18, "axes attribute -> input 1", axes_to_input),
    rw!(
        "ReduceLogSum",
        18,
        "axes attribute -> input 1",
        axes_to_input
    ),
    rw!(
        "ReduceLogSumExp",
        18,
        "axes attribute -> input 1",
        axes_to_input
    ),
    rw!("ReduceMax", 18, "axes attribute -> input 1", axes_to_input),
    rw!("ReduceMean", 18, "axes attribute -> input 1", axes_to_input),
    rw!("ReduceMin", 18, "axes attribute -> input 1", axes_to_input),
    rw!("ReduceProd", 18, "axes attribute -> input 1", axes_to_input),
    rw!(
        "ReduceSumSquare",
        18,
        "axes attribute -> input 1",
        axes_to_input
    ),
    rw!("Squeeze", 13, "axes attribute -> input 1", axes_to_input),
    rw!("Unsqueeze", 13, "axes attribute -> input 1", axes_to_input),
    rw!("Split", 13, "split attribute -> input 1", split_attr),
    rw!(
        "Split",
        18,
        "num_outputs from the node's outputs",
        split_num_outputs
    ),
    rw!("Softmax", 13, "coerce-to-2D semantics", softmax_2d),
    rw!("LogSoftmax", 13, "coerce-to-2D semantics", softmax_2d),
    rw!("Hardmax", 13, "coerce-to-2D semantics", softmax_2d),
    rw!(
        "GridSample",
        20,
        "mode bilinear/bicubic -> linear/cubic",
        grid_sample_mode
    ),
    rw!("DFT", 20, "axis attribute (default 1) -> input 2", dft_axis),
    rw!("RNN", 7, "drop output_sequence", drop_output_sequence),
    rw!("GRU", 7, "drop output_sequence", drop_output_sequence),
    rw!("LSTM", 7, "drop output_sequence", drop_output_sequence),
];

/// The rewrite table as (op type, before opset, what it does), for documentation and tests.
pub fn table() -> Vec<(&'static str, i64, &'static str)> {
    REWRITES.iter().map(|r| (r.op, r.before, r.what)).collect()
}

/// The IR op for a default-domain op type at `opset`.
pub fn rename(op_type: &str, opset: i64) -> &str {
    RENAMES
        .iter()
        .find(|(old, before, _)| *old == op_type && opset < *before)
        .map_or(op_type, |(_, _, new)| new)
}

/// Applies every rewrite for the draft's op and opset, in table order.
pub(crate) fn apply(imp: &mut Importer, d: &mut Draft) -> Result<Outcome, CompileError> {
    // Only default-domain ops have older forms.
    if d.op.starts_with("com.microsoft.") {
        return Ok(Outcome::Node);
    }
    for r in REWRITES {
        if (r.op == "*" || r.op == d.op_type) && d.opset < r.before {
            if let Outcome::Replaced(v) = (r.apply)(imp, d)? {
                return Ok(Outcome::Replaced(v));
            }
        }
    }
    Ok(Outcome::Node)
}

// ---- helpers ----

fn ints_attr(d: &mut Draft, name: &str) -> Result<Option<Vec<i64>>, CompileError> {
    match d.attrs.remove(name) {
        None => Ok(None),
        Some(Attr::Ints(v)) => Ok(Some(v)),
        Some(Attr::Int(i)) => Ok(Some(vec![i])),
        Some(a) => Err(CompileError::Invalid(format!(
            "{}.{name} must be a list of ints, got {a:?}",
            d.op_type
        ))),
    }
}

fn float_attr(d: &mut Draft, name: &str) -> Result<Option<f32>, CompileError> {
    match d.attrs.remove(name) {
        None => Ok(None),
        Some(Attr::Float(f)) => Ok(Some(f)),
        Some(Attr::Int(i)) => Ok(Some(i as f32)),
        Some(a) => Err(CompileError::Invalid(format!(
            "{}.{name} must be a float, got {a:?}",
            d.op_type
        ))),
    }
}

fn set_input(d: &mut Draft, i: usize, v: Option<Value>) {
    if d.inputs.len() <= i {
        d.inputs.resize(i + 1, None);
    }
    d.inputs[i] = v;
}

fn i64_const(
    imp: &mut Importer,
    d: &Draft,
    v: Vec<i64>,
    what: &str,
) -> Result<Value, CompileError> {
    let n = v.len();
    let t = Tensor::from_i64s(vec![n], v).map_err(|e| CompileError::Invalid(e.to_string()))?;
    imp.konst(t, &format!("{}.{what}", d.origin), &d.origin)
}

/// A scalar constant of the dtype of input 0.
fn scalar_like_input(
    imp: &mut Importer,
    d: &Draft,
    x: f64,
    what: &str,
) -> Result<Value, CompileError> {
    let dtype = match d.inputs.first().copied().flatten() {
        Some(v) => imp.ty(v).dtype,
        None => DType::F32,
    };
    imp.konst(
        Tensor::from_f64(dtype, vec![], &[x]),
        &format!("{}.{what}", d.origin),
        &d.origin,
    )
}

// ---- rewrites ----

fn drop_consumed_inputs(_: &mut Importer, d: &mut Draft) -> Result<Outcome, CompileError> {
    d.attrs.remove("consumed_inputs");
    Ok(Outcome::Node)
}

fn legacy_broadcast(_: &mut Importer, d: &mut Draft) -> Result<Outcome, CompileError> {
    d.attrs.remove("broadcast");
    if d.op_type != "Gemm" && d.attrs.remove("axis").is_some() {
        return Err(CompileError::Unsupported(format!(
            "unsupported legacy broadcast with an axis ({} opset {})",
            d.op_type, d.opset
        )));
    }
    Ok(Outcome::Node)
}

fn concat_default_axis(_: &mut Importer, d: &mut Draft) -> Result<Outcome, CompileError> {
    d.attrs.entry("axis".into()).or_insert(Attr::Int(1));
    Ok(Outcome::Node)
}

fn reshape_shape_attr(imp: &mut Importer, d: &mut Draft) -> Result<Outcome, CompileError> {
    if let Some(shape) = ints_attr(d, "shape")? {
        let v = i64_const(imp, d, shape, "shape")?;
        set_input(d, 1, Some(v));
    }
    Ok(Outcome::Node)
}

fn tile_v1(_: &mut Importer, d: &mut Draft) -> Result<Outcome, CompileError> {
    Err(CompileError::Unsupported(format!(
        "unsupported Tile opset {} form (tiles and axis inputs)",
        d.opset
    )))
}

fn dropout_ratio(imp: &mut Importer, d: &mut Draft) -> Result<Outcome, CompileError> {
    d.attrs.remove("is_test");
    if let Some(r) = float_attr(d, "ratio")? {
        let v = imp.konst(
            Tensor::scalar_f32(r),
            &format!("{}.ratio", d.origin),
            &d.origin,
        )?;
        set_input(d, 1, Some(v));
    }
    Ok(Outcome::Node)
}

fn batchnorm_old(_: &mut Importer, d: &mut Draft) -> Result<Outcome, CompileError> {
    d.attrs.remove("is_test");
    if let Some(a) = d.attrs.remove("spatial") {
        if a != Attr::Int(1) {
            return Err(CompileError::Unsupported(
                "unsupported BatchNormalization with spatial = 0".into(),
            ));
        }
    }
    Ok(Outcome::Node)
}

fn slice_attrs(imp: &mut Importer, d: &mut Draft) -> Result<Outcome, CompileError> {
    for (i, name) in [(1, "starts"), (2, "ends"), (3, "axes")] {
        if let Some(v) = ints_attr(d, name)? {
            let c = i64_const(imp, d, v, name)?;
            set_input(d, i, Some(c));
        }
    }
    Ok(Outcome::Node)
}

fn topk_k(imp: &mut Importer, d: &mut Draft) -> Result<Outcome, CompileError> {
    if let Some(k) = ints_attr(d, "k")? {
        let c = i64_const(imp, d, k, "k")?;
        set_input(d, 1, Some(c));
    }
    Ok(Outcome::Node)
}

fn set_str(d: &mut Draft, name: &str, v: &str) {
    d.attrs.insert(name.into(), Attr::Str(v.into()));
}

/// Upsample's and Resize-10's sampling: `asymmetric` coordinates, nearest rounds down.
fn asymmetric_mode(d: &mut Draft) -> Result<(), CompileError> {
    let mode = match d.attrs.get("mode") {
        None => "nearest".to_string(),
        Some(Attr::Str(s)) => s.clone(),
        Some(a) => {
            return Err(CompileError::Invalid(format!(
                "{}.mode must be a string, got {a:?}",
                d.op_type
            )))
        }
    };
    let mode = match mode.as_str() {
        "nearest" => "nearest",
        "linear" | "bilinear" | "trilinear" => "linear",
        m => {
            return Err(CompileError::Unsupported(format!(
                "unsupported {} mode \"{m}\"",
                d.op_type
            )))
        }
    };
    set_str(d, "mode", mode);
    set_str(d, "coordinate_transformation_mode", "asymmetric");
    if mode == "nearest" {
        set_str(d, "nearest_mode", "floor");
    }
    Ok(())
}

fn resize_v10(_: &mut Importer, d: &mut Draft) -> Result<Outcome, CompileError> {
    let x = d.inputs.first().copied().flatten();
    let scales = d.inputs.get(1).copied().flatten();
    d.inputs = vec![x, None, scales];
    asymmetric_mode(d)?;
    Ok(Outcome::Node)
}

fn upsample(imp: &mut Importer, d: &mut Draft) -> Result<Outcome, CompileError> {
    let x = d.inputs.first().copied().flatten();
    let h = float_attr(d, "height_scale")?;
    let w = float_attr(d, "width_scale")?;
    let scales = match (d.attrs.remove("scales"), h, w) {
        (Some(Attr::Floats(s)), _, _) => Some(s),
        (Some(a), _, _) => {
            return Err(CompileError::Invalid(format!(
                "Upsample.scales must be floats, got {a:?}"
            )))
        }
        // Upsample-1: NCHW with height and width scales.
        (None, Some(h), Some(w)) => Some(vec![1.0, 1.0, h, w]),
        (None, _, _) => None,
    };
    let scales = match scales {
        Some(s) => {
            let t = Tensor::from_f32s(vec![s.len()], s)
                .map_err(|e| CompileError::Invalid(e.to_string()))?;
            Some(imp.konst(t, &format!("{}.scales", d.origin), &d.origin)?)
        }
        None => d.inputs.get(1).copied().flatten(),
    };
    d.inputs = vec![x, None, scales];
    asymmetric_mode(d)?;
    Ok(Outcome::Node)
}

fn resize_empty_inputs(imp: &mut Importer, d: &mut Draft) -> Result<Outcome, CompileError> {
    for i in [1, 2] {
        if let Some(v) = d.inputs.get(i).copied().flatten() {
            if imp.const_of(v).is_some_and(|t| t.is_empty()) {
                d.inputs[i] = None;
            }
        }
    }
    Ok(Outcome::Node)
}

fn pad_attrs(imp: &mut Importer, d: &mut Draft) -> Result<Outcome, CompileError> {
    let pads = match ints_attr(d, "pads")? {
        Some(p) => Some(p),
        None => ints_attr(d, "paddings")?,
    };
    if let Some(p) = pads {
        let c = i64_const(imp, d, p, "pads")?;
        set_input(d, 1, Some(c));
    }
    if let Some(v) = float_attr(d, "value")? {
        let c = scalar_like_input(imp, d, v as f64, "value")?;
        set_input(d, 2, Some(c));
    }
    Ok(Outcome::Node)
}

fn clip_attrs(imp: &mut Importer, d: &mut Draft) -> Result<Outcome, CompileError> {
    for (i, name) in [(1, "min"), (2, "max")] {
        if let Some(v) = float_attr(d, name)? {
            let c = scalar_like_input(imp, d, v as f64, name)?;
            set_input(d, i, Some(c));
        }
    }
    Ok(Outcome::Node)
}

fn axes_to_input(imp: &mut Importer, d: &mut Draft) -> Result<Outcome, CompileError> {
    if let Some(axes) = ints_attr(d, "axes")? {
        let c = i64_const(imp, d, axes, "axes")?;
        set_input(d, 1, Some(c));
    }
    Ok(Outcome::Node)
}

fn split_attr(imp: &mut Importer, d: &mut Draft) -> Result<Outcome, CompileError> {
    if let Some(split) = ints_attr(d, "split")? {
        let c = i64_const(imp, d, split, "split")?;
        set_input(d, 1, Some(c));
    }
    Ok(Outcome::Node)
}

fn split_num_outputs(_: &mut Importer, d: &mut Draft) -> Result<Outcome, CompileError> {
    if d.inputs.get(1).copied().flatten().is_none() {
        d.attrs
            .insert("num_outputs".into(), Attr::Int(d.num_outputs as i64));
    }
    Ok(Outcome::Node)
}

/// Softmax/LogSoftmax/Hardmax before 13 work on the input flattened to 2D at `axis`
/// (default 1): reshape to [outer, inner], apply on the last axis, reshape back.
fn softmax_2d(imp: &mut Importer, d: &mut Draft) -> Result<Outcome, CompileError> {
    let axis = match d.attrs.remove("axis") {
        None => 1,
        Some(Attr::Int(a)) => a,
        Some(a) => {
            return Err(CompileError::Invalid(format!(
                "{}.axis must be an int, got {a:?}",
                d.op_type
            )))
        }
    };
    let x = d
        .inputs
        .first()
        .copied()
        .flatten()
        .ok_or_else(|| CompileError::Invalid(format!("{} needs an input", d.op_type)))?;
    let shape = imp.ty(x).shape.clone();
    let r = shape.len() as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if r == 0 || a < 0 || a >= r {
        return Err(CompileError::Invalid(format!(
            "{}.axis {axis} is out of range for rank {r}",
            d.op_type
        )));
    }
    let a = a as usize;
    if a as i64 == r - 1 {
        d.attrs.insert("axis".into(), Attr::Int(-1));
        return Ok(Outcome::Node);
    }
    let prod = |ds: &[Dim]| ds.iter().fold(Dim::from(1i64), |acc, d| acc.mul(d));
    let flat = dims_value(
        imp,
        d,
        vec![prod(&shape[..a]), prod(&shape[a..])],
        "shape2d",
    )?;
    let back = dims_value(imp, d, shape.clone(), "shape")?;
    let origin = d.origin.clone();
    let x2 = imp.add1("Reshape", Attrs::new(), vec![Some(x), Some(flat)], &origin)?;
    let mut attrs = std::mem::take(&mut d.attrs);
    attrs.insert("axis".into(), Attr::Int(-1));
    let y2 = imp.add1(&d.op, attrs, vec![Some(x2)], &origin)?;
    let y = imp.add1("Reshape", Attrs::new(), vec![Some(y2), Some(back)], &origin)?;
    Ok(Outcome::Replaced(vec![y]))
}

/// A 1-D i64 value of symbolic integers: a constant when all are known, else a `dims` node.
fn dims_value(
    imp: &mut Importer,
    d: &Draft,
    dims: Vec<Dim>,
    what: &str,
) -> Result<Value, CompileError> {
    if let Some(c) = dims.iter().map(Dim::as_const).collect::<Option<Vec<i64>>>() {
        return i64_const(imp, d, c, what);
    }
    let mut attrs = Attrs::new();
    attrs.insert("value".into(), Attr::Dims(dims));
    imp.add1("dims", attrs, vec![], &d.origin)
}

fn grid_sample_mode(_: &mut Importer, d: &mut Draft) -> Result<Outcome, CompileError> {
    if let Some(Attr::Str(m)) = d.attrs.get_mut("mode") {
        match m.as_str() {
            "bilinear" => *m = "linear".into(),
            "bicubic" => *m = "cubic".into(),
            _ => {}
        }
    }
    Ok(Outcome::Node)
}

fn dft_axis(imp: &mut Importer, d: &mut Draft) -> Result<Outcome, CompileError> {
    // DFT-17's axis defaults to 1; DFT-20's axis input defaults to -2: always pass it.
    let axis = match d.attrs.remove("axis") {
        None => 1,
        Some(Attr::Int(a)) => a,
        Some(a) => {
            return Err(CompileError::Invalid(format!(
                "DFT.axis must be an int, got {a:?}"
            )))
        }
    };
    let c = imp.konst(
        Tensor::scalar_i64(axis),
        &format!("{}.axis", d.origin),
        &d.origin,
    )?;
    set_input(d, 2, Some(c));
    Ok(Outcome::Node)
}

fn drop_output_sequence(_: &mut Importer, d: &mut Draft) -> Result<Outcome, CompileError> {
    d.attrs.remove("output_sequence");
    Ok(Outcome::Node)
}
