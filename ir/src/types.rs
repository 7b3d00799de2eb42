//! Value types: a dtype and a symbolic shape.

use std::collections::HashMap;
use std::fmt;

use crate::dim::{Dim, DimError};
use crate::dtype::DType;

/// A shape: one symbolic dim per axis (rank 0 for scalars).
pub type Shape = Vec<Dim>;

/// The type of a value in the graph.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ValueType {
    pub dtype: DType,
    pub shape: Shape,
}

impl ValueType {
    pub fn new(dtype: DType, shape: Shape) -> ValueType {
        ValueType { dtype, shape }
    }

    /// A type with a concrete shape.
    pub fn of(dtype: DType, dims: &[usize]) -> ValueType {
        ValueType {
            dtype,
            shape: dims.iter().map(|&d| Dim::from(d)).collect(),
        }
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// The concrete shape, if every dim is a constant.
    pub fn concrete_shape(&self) -> Option<Vec<usize>> {
        self.shape
            .iter()
            .map(|d| d.as_const().map(|c| c as usize))
            .collect()
    }

    /// The shape with every symbol bound.
    pub fn eval_shape(&self, bindings: &HashMap<String, i64>) -> Result<Vec<usize>, DimError> {
        self.shape
            .iter()
            .map(|d| d.eval(bindings).map(|v| v.max(0) as usize))
            .collect()
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[", self.dtype)?;
        for (i, d) in self.shape.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

impl fmt::Debug for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// Numpy-style broadcast of symbolic shapes. `None` when two constant dims conflict.
pub fn broadcast_shapes(shapes: &[&[Dim]]) -> Option<Shape> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let one = Dim::from(1i64);
    let mut out = Vec::with_capacity(rank);
    for axis in 0..rank {
        let mut acc = one.clone();
        for s in shapes {
            let pad = rank - s.len();
            if axis < pad {
                continue;
            }
            let d = &s[axis - pad];
            acc = match (acc.as_const(), d.as_const()) {
                (_, Some(1)) => acc,
                (Some(1), _) => d.clone(),
                (Some(a), Some(b)) => {
                    if a != b {
                        return None;
                    }
                    acc
                }
                _ if acc == *d => acc,
                (Some(_), None) => acc,
                (None, Some(_)) => d.clone(),
                // Two different symbols: valid broadcasting makes the result the larger.
                (None, None) => acc.maximum(d),
            };
        }
        out.push(acc);
    }
    Some(out)
}

/// Numpy-style broadcast of concrete shapes. `None` when they conflict.
pub fn broadcast_concrete(shapes: &[&[usize]]) -> Option<Vec<usize>> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![1usize; rank];
    for s in shapes {
        let pad = rank - s.len();
        for (i, &d) in s.iter().enumerate() {
            let o = &mut out[pad + i];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return None;
            }
        }
    }
    Some(out)
}
