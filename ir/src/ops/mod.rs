//! The op registry. Every op is one [`OpSpec`]: its name, its shape and dtype rule
//! (`infer`), its reference semantics (`eval`, run by the interpreter), and optionally its
//! symbolic evaluation (`sym`), which lets shape computations such as
//! `Shape -> Gather -> Concat` be followed statically.
//!
//! ONNX-level ops keep ONNX's spelling (`MatMul`; `com.microsoft.MoE` outside the default
//! domain) and follow the newest opset's signature (the frontend rewrites older forms).
//! kiln's own ops are snake_case (`constant`, `dims`, `rms_norm`, `attention`, `moe`).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use crate::attr::{Attrs, AttrsExt};
use crate::dim::Dim;
use crate::dtype::DType;
use crate::graph::WeightStore;
use crate::tensor::Tensor;
use crate::types::{Shape, ValueType};

pub mod activation;
pub mod attention;
pub mod conv;
pub mod core;
pub mod elementwise;
pub mod fused;
pub mod indexing;
pub mod linalg;
pub mod loss;
pub mod microsoft;
pub mod misc;
pub mod normalization;
pub mod quantize;
pub mod reduce;
pub mod rnn;
pub mod shape;

/// An error of an op: bad attributes, inputs it cannot take, or a failure computing.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct OpError(pub String);

impl OpError {
    pub fn new(msg: impl Into<String>) -> OpError {
        OpError(msg.into())
    }
}

/// Returns early with an [`OpError`] built like `format!`.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::ops::OpError::new(format!($($arg)*)))
    };
}

pub type OpResult<T> = Result<T, OpError>;

/// What is known statically about an input's content.
#[derive(Clone, Debug)]
pub enum Known {
    /// A constant tensor.
    Tensor(Arc<Tensor>),
    /// An integer tensor of rank 0 or 1 whose elements are known symbolically (flattened).
    Dims(Vec<Dim>),
}

/// What an op's `infer` and `sym` see.
pub struct InferCtx<'a> {
    pub attrs: &'a Attrs,
    /// Input types; `None` for an absent optional input.
    pub inputs: Vec<Option<&'a ValueType>>,
    /// Statically known input contents, where known.
    pub known: Vec<Option<Known>>,
    pub num_outputs: usize,
    pub weights: &'a WeightStore,
    /// The output types this node had before, if any: data-dependent dims keep their names.
    pub previous: Option<&'a [ValueType]>,
    /// Makes a fresh symbol for a data-dependent dim.
    pub fresh: &'a dyn Fn() -> Dim,
}

impl<'a> InferCtx<'a> {
    /// The type of input `i`, or an error if it is absent.
    pub fn input(&self, i: usize) -> OpResult<&'a ValueType> {
        match self.inputs.get(i) {
            Some(Some(t)) => Ok(t),
            _ => Err(OpError::new(format!("input {i} is required"))),
        }
    }

    /// The type of input `i`, if present.
    pub fn opt_input(&self, i: usize) -> Option<&'a ValueType> {
        self.inputs.get(i).copied().flatten()
    }

    pub fn has_input(&self, i: usize) -> bool {
        self.opt_input(i).is_some()
    }

    /// Input `i`'s content as a constant tensor, if known.
    pub fn const_input(&self, i: usize) -> Option<&Arc<Tensor>> {
        match self.known.get(i)? {
            Some(Known::Tensor(t)) => Some(t),
            _ => None,
        }
    }

    /// Input `i`'s content as symbolic integers (flattened), if known: from a constant
    /// integer tensor or from symbolic evaluation.
    pub fn dims_input(&self, i: usize) -> Option<Vec<Dim>> {
        match self.known.get(i)? {
            Some(Known::Tensor(t)) if t.dtype().is_int() => {
                Some(t.to_i64().into_iter().map(Dim::from).collect())
            }
            Some(Known::Dims(d)) => Some(d.clone()),
            _ => None,
        }
    }

    /// A dim for output `output`, axis `axis` whose size depends on data: the previous dim
    /// if this node had one there (a name, or a constant the model declared), else a fresh
    /// symbol.
    pub fn data_dim(&self, output: usize, axis: usize) -> Dim {
        if let Some(prev) = self.previous {
            if let Some(d) = prev.get(output).and_then(|t| t.shape.get(axis)) {
                return d.clone();
            }
        }
        (self.fresh)()
    }

    /// A fully data-dependent shape of the given rank for output `output`.
    pub fn data_shape(&self, output: usize, rank: usize) -> Shape {
        (0..rank).map(|a| self.data_dim(output, a)).collect()
    }
}

/// What an op's `eval` sees.
pub struct EvalCtx<'a> {
    pub attrs: &'a Attrs,
    /// Input tensors; `None` for an absent optional input.
    pub inputs: Vec<Option<Arc<Tensor>>>,
    pub num_outputs: usize,
    /// The output types the graph declares (with symbols) — some ops need the dtype.
    pub output_types: &'a [ValueType],
    pub weights: &'a WeightStore,
    /// Symbol values bound from the graph inputs.
    pub bindings: &'a HashMap<String, i64>,
}

impl EvalCtx<'_> {
    pub fn input(&self, i: usize) -> OpResult<&Tensor> {
        match self.inputs.get(i) {
            Some(Some(t)) => Ok(t),
            _ => Err(OpError::new(format!("input {i} is required"))),
        }
    }

    pub fn opt_input(&self, i: usize) -> Option<&Tensor> {
        self.inputs.get(i).and_then(|t| t.as_deref())
    }

    /// The declared dtype of output `i`.
    pub fn output_dtype(&self, i: usize) -> OpResult<DType> {
        self.output_types
            .get(i)
            .map(|t| t.dtype)
            .ok_or_else(|| OpError::new(format!("output {i} has no declared type")))
    }
}

pub type InferFn = fn(&InferCtx) -> OpResult<Vec<ValueType>>;
pub type EvalFn = fn(&EvalCtx) -> OpResult<Vec<Tensor>>;
pub type SymFn = fn(&InferCtx) -> Option<Vec<Dim>>;

/// One op: name, shape rule, reference semantics, optional symbolic evaluation.
pub struct OpSpec {
    pub name: &'static str,
    pub infer: InferFn,
    pub eval: EvalFn,
    /// Symbolic content of output 0 from the symbolic contents of the inputs.
    pub sym: Option<SymFn>,
}

impl OpSpec {
    pub const fn new(name: &'static str, infer: InferFn, eval: EvalFn) -> OpSpec {
        OpSpec {
            name,
            infer,
            eval,
            sym: None,
        }
    }

    pub const fn with_sym(mut self, sym: SymFn) -> OpSpec {
        self.sym = Some(sym);
        self
    }
}

/// Every op family's specs.
fn families() -> [&'static [OpSpec]; 16] {
    [
        core::SPECS,
        elementwise::SPECS,
        activation::SPECS,
        shape::SPECS,
        indexing::SPECS,
        reduce::SPECS,
        linalg::SPECS,
        normalization::SPECS,
        conv::SPECS,
        rnn::SPECS,
        misc::SPECS,
        quantize::SPECS,
        attention::SPECS,
        microsoft::SPECS,
        loss::SPECS,
        fused::SPECS,
    ]
}

fn registry() -> &'static HashMap<&'static str, &'static OpSpec> {
    static REG: OnceLock<HashMap<&'static str, &'static OpSpec>> = OnceLock::new();
    REG.get_or_init(|| {
        let mut m = HashMap::new();
        for fam in families() {
            for spec in fam {
                m.insert(spec.name, spec);
            }
        }
        m
    })
}

/// The spec of op `name`.
pub fn lookup(name: &str) -> Option<&'static OpSpec> {
    registry().get(name).copied()
}

/// Every registered op name, sorted.
pub fn op_names() -> Vec<&'static str> {
    let mut v: Vec<_> = registry().keys().copied().collect();
    v.sort();
    v
}

/// Shared helpers for op implementations.
pub mod util {
    use super::*;

    /// Normalises a possibly negative axis against `rank`.
    pub fn axis(a: i64, rank: usize) -> OpResult<usize> {
        let r = rank as i64;
        let n = if a < 0 { a + r } else { a };
        if n < 0 || n >= r {
            bail!("axis {a} is out of range for rank {rank}");
        }
        Ok(n as usize)
    }

    /// Like [`axis`] for insertion points, which may equal `rank`.
    pub fn axis_incl(a: i64, rank: usize) -> OpResult<usize> {
        axis(a, rank + 1)
    }

    /// The one output type `dtype[shape]`.
    pub fn one(dtype: DType, shape: Shape) -> OpResult<Vec<ValueType>> {
        Ok(vec![ValueType::new(dtype, shape)])
    }

    /// The same type as input `i`.
    pub fn same_as(ctx: &InferCtx, i: usize) -> OpResult<Vec<ValueType>> {
        Ok(vec![ctx.input(i)?.clone()])
    }

    /// Reads the `axis` attribute (default `default`) normalised against `rank`.
    pub fn attr_axis(attrs: &Attrs, default: i64, rank: usize) -> OpResult<usize> {
        axis(attrs.int_or("axis", default)?, rank)
    }
}
