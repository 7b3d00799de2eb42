//! Node attributes.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::dim::Dim;
use crate::dtype::DType;
use crate::ops::OpError;
use crate::tensor::Tensor;

/// One attribute value.
#[derive(Clone, PartialEq, Debug)]
pub enum Attr {
    Int(i64),
    Float(f32),
    Str(String),
    Ints(Vec<i64>),
    Floats(Vec<f32>),
    Strs(Vec<String>),
    DType(DType),
    /// Symbolic integers, such as a shape (`[1, seq, 4]`).
    Dims(Vec<Dim>),
    /// A small tensor, held inline and printed in full.
    Tensor(Arc<Tensor>),
    /// A named tensor in the graph's weight store, printed as `@weight("name")`.
    Weight(Arc<str>),
}

/// A node's attributes, sorted by name so that printing is deterministic.
pub type Attrs = BTreeMap<String, Attr>;

fn wrong(name: &str, want: &str, got: &Attr) -> OpError {
    OpError::new(format!("attribute `{name}` must be {want}, got {got:?}"))
}

/// Typed getters; each returns an error naming the attribute when its kind is wrong.
pub trait AttrsExt {
    fn int(&self, name: &str) -> Result<Option<i64>, OpError>;
    fn int_or(&self, name: &str, default: i64) -> Result<i64, OpError>;
    fn float_or(&self, name: &str, default: f32) -> Result<f32, OpError>;
    fn float(&self, name: &str) -> Result<Option<f32>, OpError>;
    fn ints(&self, name: &str) -> Result<Option<Vec<i64>>, OpError>;
    fn floats(&self, name: &str) -> Result<Option<Vec<f32>>, OpError>;
    fn str(&self, name: &str) -> Result<Option<&str>, OpError>;
    fn str_or<'a>(&'a self, name: &str, default: &'a str) -> Result<&'a str, OpError>;
    fn strs(&self, name: &str) -> Result<Option<Vec<String>>, OpError>;
    fn dtype(&self, name: &str) -> Result<Option<DType>, OpError>;
    fn dims(&self, name: &str) -> Result<Option<Vec<Dim>>, OpError>;
    fn tensor(&self, name: &str) -> Result<Option<Arc<Tensor>>, OpError>;
}

impl AttrsExt for Attrs {
    fn int(&self, name: &str) -> Result<Option<i64>, OpError> {
        match self.get(name) {
            None => Ok(None),
            Some(Attr::Int(i)) => Ok(Some(*i)),
            Some(a) => Err(wrong(name, "an int", a)),
        }
    }

    fn int_or(&self, name: &str, default: i64) -> Result<i64, OpError> {
        Ok(self.int(name)?.unwrap_or(default))
    }

    fn float(&self, name: &str) -> Result<Option<f32>, OpError> {
        match self.get(name) {
            None => Ok(None),
            Some(Attr::Float(f)) => Ok(Some(*f)),
            Some(Attr::Int(i)) => Ok(Some(*i as f32)),
            Some(a) => Err(wrong(name, "a float", a)),
        }
    }

    fn float_or(&self, name: &str, default: f32) -> Result<f32, OpError> {
        Ok(self.float(name)?.unwrap_or(default))
    }

    fn ints(&self, name: &str) -> Result<Option<Vec<i64>>, OpError> {
        match self.get(name) {
            None => Ok(None),
            Some(Attr::Ints(v)) => Ok(Some(v.clone())),
            Some(Attr::Int(i)) => Ok(Some(vec![*i])),
            Some(a) => Err(wrong(name, "a list of ints", a)),
        }
    }

    fn floats(&self, name: &str) -> Result<Option<Vec<f32>>, OpError> {
        match self.get(name) {
            None => Ok(None),
            Some(Attr::Floats(v)) => Ok(Some(v.clone())),
            Some(Attr::Float(f)) => Ok(Some(vec![*f])),
            Some(a) => Err(wrong(name, "a list of floats", a)),
        }
    }

    fn str(&self, name: &str) -> Result<Option<&str>, OpError> {
        match self.get(name) {
            None => Ok(None),
            Some(Attr::Str(s)) => Ok(Some(s)),
            Some(a) => Err(wrong(name, "a string", a)),
        }
    }

    fn str_or<'a>(&'a self, name: &str, default: &'a str) -> Result<&'a str, OpError> {
        Ok(self.str(name)?.unwrap_or(default))
    }

    fn strs(&self, name: &str) -> Result<Option<Vec<String>>, OpError> {
        match self.get(name) {
            None => Ok(None),
            Some(Attr::Strs(v)) => Ok(Some(v.clone())),
            Some(a) => Err(wrong(name, "a list of strings", a)),
        }
    }

    fn dtype(&self, name: &str) -> Result<Option<DType>, OpError> {
        match self.get(name) {
            None => Ok(None),
            Some(Attr::DType(d)) => Ok(Some(*d)),
            Some(a) => Err(wrong(name, "a dtype", a)),
        }
    }

    fn dims(&self, name: &str) -> Result<Option<Vec<Dim>>, OpError> {
        match self.get(name) {
            None => Ok(None),
            Some(Attr::Dims(v)) => Ok(Some(v.clone())),
            Some(Attr::Ints(v)) => Ok(Some(v.iter().map(|&i| Dim::from(i)).collect())),
            Some(a) => Err(wrong(name, "a list of dims", a)),
        }
    }

    fn tensor(&self, name: &str) -> Result<Option<Arc<Tensor>>, OpError> {
        match self.get(name) {
            None => Ok(None),
            Some(Attr::Tensor(t)) => Ok(Some(t.clone())),
            Some(a) => Err(wrong(name, "a tensor", a)),
        }
    }
}
