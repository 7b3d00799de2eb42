//! ONNX attributes -> kiln attributes.

use std::sync::Arc;

use kiln_ir::{Attr, DType};
use onnx_protobuf::AttributeProto;

use super::tensor::{onnx_dtype_name, tensor_from_proto, ExternalData};
use crate::error::CompileError;

/// `(op, attribute)` pairs whose integer value is an ONNX dtype code; they become
/// `Attr::DType` (a code of 0, "unspecified", drops the attribute).
pub const DTYPE_ATTRS: &[(&str, &str)] = &[
    ("Cast", "to"),
    ("BitCast", "to"),
    ("EyeLike", "dtype"),
    ("RandomNormal", "dtype"),
    ("RandomUniform", "dtype"),
    ("RandomNormalLike", "dtype"),
    ("RandomUniformLike", "dtype"),
    ("Bernoulli", "dtype"),
    ("Multinomial", "dtype"),
    ("QuantizeLinear", "output_dtype"),
    ("DequantizeLinear", "output_dtype"),
    ("HannWindow", "output_datatype"),
    ("HammingWindow", "output_datatype"),
    ("BlackmanWindow", "output_datatype"),
    ("MelWeightMatrix", "output_datatype"),
];

pub fn is_dtype_attr(op: &str, attr: &str) -> bool {
    DTYPE_ATTRS.iter().any(|&(o, a)| o == op && a == attr)
}

/// ONNX's `AttributeProto.AttributeType` codes.
mod kind {
    pub const FLOAT: i32 = 1;
    pub const INT: i32 = 2;
    pub const STRING: i32 = 3;
    pub const TENSOR: i32 = 4;
    pub const GRAPH: i32 = 5;
    pub const FLOATS: i32 = 6;
    pub const INTS: i32 = 7;
    pub const STRINGS: i32 = 8;
    pub const TENSORS: i32 = 9;
    pub const GRAPHS: i32 = 10;
    pub const SPARSE_TENSOR: i32 = 11;
    pub const SPARSE_TENSORS: i32 = 12;
    pub const TYPE_PROTO: i32 = 13;
    pub const TYPE_PROTOS: i32 = 14;
}

pub fn kind_name(k: i32) -> &'static str {
    match k {
        kind::FLOAT => "FLOAT",
        kind::INT => "INT",
        kind::STRING => "STRING",
        kind::TENSOR => "TENSOR",
        kind::GRAPH => "GRAPH",
        kind::FLOATS => "FLOATS",
        kind::INTS => "INTS",
        kind::STRINGS => "STRINGS",
        kind::TENSORS => "TENSORS",
        kind::GRAPHS => "GRAPHS",
        kind::SPARSE_TENSOR => "SPARSE_TENSOR",
        kind::SPARSE_TENSORS => "SPARSE_TENSORS",
        kind::TYPE_PROTO => "TYPE_PROTO",
        kind::TYPE_PROTOS => "TYPE_PROTOS",
        _ => "UNDEFINED",
    }
}

/// The attribute's kind; old exporters leave `type` unset, so it is guessed from the field
/// that holds a value.
pub fn attr_kind(a: &AttributeProto) -> i32 {
    let k = a.type_.value();
    if k != 0 {
        return k;
    }
    if a.t.is_some() {
        kind::TENSOR
    } else if a.g.is_some() {
        kind::GRAPH
    } else if a.sparse_tensor.is_some() {
        kind::SPARSE_TENSOR
    } else if !a.floats.is_empty() {
        kind::FLOATS
    } else if !a.ints.is_empty() {
        kind::INTS
    } else if !a.strings.is_empty() {
        kind::STRINGS
    } else if !a.s.is_empty() {
        kind::STRING
    } else if a.f != 0.0 {
        kind::FLOAT
    } else {
        kind::INT
    }
}

/// The DType of a dtype attribute's value: an ONNX code, or a name (Cast-1's STRING `to`).
fn dtype_attr(op: &str, a: &AttributeProto) -> Result<Option<DType>, CompileError> {
    let code = match attr_kind(a) {
        kind::INT => a.i as i32,
        kind::STRING => {
            let s = String::from_utf8_lossy(&a.s).to_ascii_uppercase();
            match s.as_str() {
                "FLOAT" => 1,
                "UINT8" => 2,
                "INT8" => 3,
                "UINT16" => 4,
                "INT16" => 5,
                "INT32" => 6,
                "INT64" => 7,
                "STRING" => 8,
                "BOOL" => 9,
                "FLOAT16" => 10,
                "DOUBLE" => 11,
                "UINT32" => 12,
                "UINT64" => 13,
                "BFLOAT16" => 16,
                _ => {
                    return Err(CompileError::Invalid(format!(
                        "{op}.{}: unknown dtype name \"{s}\"",
                        a.name
                    )))
                }
            }
        }
        k => {
            return Err(CompileError::Invalid(format!(
                "{op}.{} must be an INT dtype code, got {}",
                a.name,
                kind_name(k)
            )))
        }
    };
    if code == 0 && op != "Cast" {
        return Ok(None);
    }
    DType::from_onnx_code(code).map(Some).ok_or_else(|| {
        CompileError::Unsupported(format!(
            "unsupported dtype {} ({op}.{})",
            onnx_dtype_name(code),
            a.name
        ))
    })
}

fn utf8(op: &str, name: &str, b: &[u8]) -> Result<String, CompileError> {
    String::from_utf8(b.to_vec())
        .map_err(|_| CompileError::Invalid(format!("{op}.{name}: string is not UTF-8")))
}

/// Converts one attribute of an `op` node. GRAPH attributes are the caller's business
/// (If-inlining); here they are unsupported.
pub fn convert(
    op: &str,
    a: &AttributeProto,
    ext: &mut ExternalData,
) -> Result<Option<Attr>, CompileError> {
    if !a.ref_attr_name.is_empty() {
        return Err(CompileError::Unsupported(format!(
            "unsupported attribute reference {op}.{} -> {} (only inside functions)",
            a.name, a.ref_attr_name
        )));
    }
    if is_dtype_attr(op, &a.name) {
        return Ok(dtype_attr(op, a)?.map(Attr::DType));
    }
    let k = attr_kind(a);
    Ok(Some(match k {
        kind::INT => Attr::Int(a.i),
        kind::FLOAT => Attr::Float(a.f),
        kind::STRING => Attr::Str(utf8(op, &a.name, &a.s)?),
        kind::INTS => Attr::Ints(a.ints.clone()),
        kind::FLOATS => Attr::Floats(a.floats.clone()),
        kind::STRINGS => Attr::Strs(
            a.strings
                .iter()
                .map(|s| utf8(op, &a.name, s))
                .collect::<Result<_, _>>()?,
        ),
        kind::TENSOR => {
            let t = a.t.as_ref().ok_or_else(|| {
                CompileError::Invalid(format!(
                    "{op}.{}: TENSOR attribute without a tensor",
                    a.name
                ))
            })?;
            Attr::Tensor(Arc::new(tensor_from_proto(
                t,
                &format!("attribute {op}.{}", a.name),
                ext,
            )?))
        }
        _ => {
            return Err(CompileError::Unsupported(format!(
                "unsupported {} attribute {op}.{}",
                kind_name(k),
                a.name
            )))
        }
    }))
}
