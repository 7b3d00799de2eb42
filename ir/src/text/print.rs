//! The printer: a graph to its text form (see the module doc of [`crate::text`]).

use std::collections::HashMap;
use std::fmt::Write as _;

use half::{bf16, f16};

use crate::attr::{Attr, Attrs};
use crate::dim::Dim;
use crate::dtype::DType;
use crate::fp8;
use crate::graph::{Graph, Value, INPUT_OP};
use crate::tensor::{Data, Tensor};
use crate::types::ValueType;

/// Prints `g` in the text format. Deterministic: the same graph always prints the same
/// text, and parsing that text back prints it again byte for byte.
///
/// Never fails: an invalid graph (a cycle, a dangling input) still prints, with the bad
/// references spelled `%!invalid` so that the text does not parse back.
pub fn print(g: &Graph) -> String {
    let order = g.topo_order().unwrap_or_else(|| g.node_ids());
    let mut names: HashMap<Value, String> = HashMap::new();
    for &v in g.inputs() {
        if g.contains(v.node) {
            names.insert(v, format!("%{}", quote_name(g.input_name(v).unwrap_or(""))));
        }
    }
    let mut next = 0usize;
    let mut body = String::new();
    for &id in &order {
        let node = g.node(id);
        if node.op == INPUT_OP && g.inputs().iter().any(|v| v.node == id) {
            continue;
        }
        body.push_str("  ");
        if !node.outputs.is_empty() {
            for i in 0..node.outputs.len() {
                let name = format!("%{next}");
                next += 1;
                if i > 0 {
                    body.push_str(", ");
                }
                body.push_str(&name);
                names.insert(
                    Value {
                        node: id,
                        output: i,
                    },
                    name,
                );
            }
            body.push_str(" = ");
        }
        body.push_str(&node.op);
        if !node.inputs().is_empty() {
            body.push('(');
            for (i, v) in node.inputs().iter().enumerate() {
                if i > 0 {
                    body.push_str(", ");
                }
                match v {
                    None => body.push('_'),
                    Some(v) => body.push_str(value_name(&names, *v)),
                }
            }
            body.push(')');
        }
        if !node.attrs.is_empty() {
            body.push(' ');
            body.push_str(&attrs_to_string(&node.attrs));
        }
        body.push_str(" : ");
        if node.outputs.is_empty() {
            body.push_str("()");
        }
        for (i, t) in node.outputs.iter().enumerate() {
            if i > 0 {
                body.push_str(", ");
            }
            body.push_str(&type_to_string(t));
        }
        body.push('\n');
    }

    let mut out = String::new();
    let _ = write!(out, "graph @{}(", quote_name(&g.name));
    for (i, &v) in g.inputs().iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(value_name(&names, v));
        out.push_str(": ");
        out.push_str(&value_type_or_invalid(g, v));
    }
    out.push_str(") -> (");
    for (i, (name, v)) in g.outputs().iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(
            out,
            "{}: {}",
            quote_name(name),
            value_type_or_invalid(g, *v)
        );
    }
    out.push_str(") {\n");
    out.push_str(&body);
    out.push_str("  return");
    for (i, (_, v)) in g.outputs().iter().enumerate() {
        out.push_str(if i == 0 { " " } else { ", " });
        out.push_str(value_name(&names, *v));
    }
    out.push_str("\n}\n");
    out
}

fn value_name(names: &HashMap<Value, String>, v: Value) -> &str {
    names.get(&v).map(|s| s.as_str()).unwrap_or("%!invalid")
}

fn value_type_or_invalid(g: &Graph, v: Value) -> String {
    if g.contains(v.node) {
        if let Some(t) = g.node(v.node).outputs.get(v.output) {
            return type_to_string(t);
        }
    }
    "!invalid".to_string()
}

/// True if `s` can be printed without quotes: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_plain_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'_')
}

/// A name as printed: bare if it is an identifier, else quoted.
pub fn quote_name(s: &str) -> String {
    if is_plain_name(s) {
        s.to_string()
    } else {
        quote_str(s)
    }
}

/// A string literal with escapes: `\"`, `\\`, `\n`, `\r`, `\t`, other control characters as
/// `\u{..}`.
pub fn quote_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A value type: `f32[1, seq, 64]`, `i64[]` for a scalar.
pub fn type_to_string(t: &ValueType) -> String {
    t.to_string()
}

/// A node's attributes: `{axis = 0, perm = [1, 0]}` (sorted by name, as stored).
pub fn attrs_to_string(attrs: &Attrs) -> String {
    let mut out = String::from("{");
    for (i, (k, a)) in attrs.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&quote_name(k));
        out.push_str(" = ");
        write_attr(&mut out, a);
    }
    out.push('}');
    out
}

/// One attribute value in its text form.
pub fn attr_to_string(a: &Attr) -> String {
    let mut s = String::new();
    write_attr(&mut s, a);
    s
}

fn write_list<T>(out: &mut String, items: &[T], f: impl Fn(&mut String, &T)) {
    out.push('[');
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        f(out, x);
    }
    out.push(']');
}

fn write_attr(out: &mut String, a: &Attr) {
    match a {
        Attr::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Attr::Float(x) => out.push_str(&fmt_f32(*x)),
        Attr::Str(s) => out.push_str(&quote_str(s)),
        Attr::Ints(v) => write_list(out, v, |o, i| {
            let _ = write!(o, "{i}");
        }),
        Attr::Floats(v) => {
            if v.is_empty() {
                out.push_str("floats<[]>");
            } else {
                write_list(out, v, |o, x| o.push_str(&fmt_f32(*x)));
            }
        }
        Attr::Strs(v) => {
            if v.is_empty() {
                out.push_str("strs<[]>");
            } else {
                write_list(out, v, |o, s| o.push_str(&quote_str(s)));
            }
        }
        Attr::DType(d) => out.push_str(d.name()),
        Attr::Dims(v) => {
            out.push_str("dims<");
            write_list(out, v, |o, d: &Dim| {
                let _ = write!(o, "{d}");
            });
            out.push('>');
        }
        Attr::Tensor(t) => write_tensor(out, t),
        Attr::Weight(name) => {
            out.push_str("@weight(");
            out.push_str(&quote_str(name));
            out.push(')');
        }
    }
}

/// An inline tensor: `dense<i64[2]>[1, -1]`, elements flat in row-major order.
pub fn tensor_to_string(t: &Tensor) -> String {
    let mut s = String::new();
    write_tensor(&mut s, t);
    s
}

fn write_tensor(out: &mut String, t: &Tensor) {
    let _ = write!(out, "dense<{}[", t.dtype());
    for (i, d) in t.shape().iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{d}");
    }
    out.push_str("]>");
    fn ints<T: std::fmt::Display>(out: &mut String, v: &[T]) {
        write_list(out, v, |o, x| {
            let _ = write!(o, "{x}");
        });
    }
    match t.data() {
        Data::F32(v) => write_list(out, v, |o, x| o.push_str(&fmt_f32(*x))),
        Data::F64(v) => write_list(out, v, |o, x| o.push_str(&fmt_f64(*x))),
        Data::F16(v) => write_list(out, v, |o, x| o.push_str(&fmt_f16(*x))),
        Data::BF16(v) => write_list(out, v, |o, x| o.push_str(&fmt_bf16(*x))),
        Data::F8(v) => {
            let dt = t.dtype();
            write_list(out, v, |o, &c| o.push_str(&fmt_fp8(dt, c)))
        }
        Data::I8(v) => ints(out, v),
        Data::I16(v) => ints(out, v),
        Data::I32(v) => ints(out, v),
        Data::I64(v) => ints(out, v),
        Data::U8(v) => ints(out, v),
        Data::U16(v) => ints(out, v),
        Data::U32(v) => ints(out, v),
        Data::U64(v) => ints(out, v),
        Data::Bool(v) => write_list(out, v, |o, &b| o.push_str(if b { "true" } else { "false" })),
    }
}

/// A finite float's shortest round-tripping spelling (always with `.` or `e`), `inf`,
/// `-inf`, `nan` for the type's canonical NaN, or `nan(0x<bits>)` for any other NaN.
fn fmt_special(is_nan: bool, canonical: bool, bits: String, inf: Option<bool>) -> Option<String> {
    if is_nan {
        return Some(if canonical {
            "nan".to_string()
        } else {
            format!("nan(0x{bits})")
        });
    }
    inf.map(|pos| if pos { "inf" } else { "-inf" }.to_string())
}

fn inf_sign(x: f64) -> Option<bool> {
    x.is_infinite().then_some(x > 0.0)
}

pub(crate) fn fmt_f32(x: f32) -> String {
    fmt_special(
        x.is_nan(),
        x.to_bits() == f32::NAN.to_bits(),
        format!("{:08x}", x.to_bits()),
        inf_sign(x as f64),
    )
    .unwrap_or_else(|| format!("{x:?}"))
}

pub(crate) fn fmt_f64(x: f64) -> String {
    fmt_special(
        x.is_nan(),
        x.to_bits() == f64::NAN.to_bits(),
        format!("{:016x}", x.to_bits()),
        inf_sign(x),
    )
    .unwrap_or_else(|| format!("{x:?}"))
}

fn fmt_f16(x: f16) -> String {
    fmt_special(
        x.is_nan(),
        x.to_bits() == f16::NAN.to_bits(),
        format!("{:04x}", x.to_bits()),
        inf_sign(x.to_f64()),
    )
    .unwrap_or_else(|| format!("{:?}", x.to_f32()))
}

fn fmt_bf16(x: bf16) -> String {
    fmt_special(
        x.is_nan(),
        x.to_bits() == bf16::NAN.to_bits(),
        format!("{:04x}", x.to_bits()),
        inf_sign(x.to_f64()),
    )
    .unwrap_or_else(|| format!("{:?}", x.to_f32()))
}

fn fmt_fp8(dtype: DType, code: u8) -> String {
    let x = fp8::decode(dtype, code);
    fmt_special(
        x.is_nan(),
        code == fp8::encode(dtype, f32::NAN, false),
        format!("{code:02x}"),
        inf_sign(x as f64),
    )
    .unwrap_or_else(|| format!("{x:?}"))
}
