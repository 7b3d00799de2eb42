//! The parser: text (see the module doc of [`crate::text`]) back to a graph.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use half::{bf16, f16};

use crate::attr::{Attr, Attrs};
use crate::dim::Dim;
use crate::dtype::DType;
use crate::fp8;
use crate::graph::{Graph, NodeId, Value, WeightStore, INPUT_OP};
use crate::infer::{infer_node, FreshSymbols, KnownValues};
use crate::ops::{self, Known};
use crate::tensor::{Data, Tensor};
use crate::types::ValueType;

use super::print::type_to_string;

/// A parse error at `line:col` (1-based; the column counts characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub col: usize,
    pub msg: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.col, self.msg)
    }
}

impl std::error::Error for ParseError {}

/// Parses a graph with an empty weight store (`@weight` constants keep their printed types).
pub fn parse(text: &str) -> Result<Graph, ParseError> {
    parse_with_weights(text, WeightStore::default())
}

/// Parses a graph whose `@weight("name")` constants read from `weights`. A weight missing
/// from the store keeps the type the text gives it; one present must have that type.
///
/// After parsing, every node's types are inferred (in textual order) and must equal the
/// printed ones, and the graph is verified.
pub fn parse_with_weights(text: &str, weights: WeightStore) -> Result<Graph, ParseError> {
    let mut p = Parser {
        src: text,
        pos: 0,
        values: HashMap::new(),
        positions: Vec::new(),
        output_decls: Vec::new(),
    };
    let mut g = p.graph(weights)?;
    p.infer_and_check(&mut g)?;
    crate::verify::verify(&g).map_err(|e| ParseError {
        line: 1,
        col: 1,
        msg: e.to_string(),
    })?;
    Ok(g)
}

/// How a value is referred to: `%3` or `%name` / `%"name"`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
enum Ref {
    Num(u64),
    Name(String),
}

impl fmt::Display for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ref::Num(n) => write!(f, "%{n}"),
            Ref::Name(s) => write!(f, "%{}", super::print::quote_name(s)),
        }
    }
}

/// Deepest bracket nesting accepted inside a dim expression (keeps recursion bounded).
const MAX_DIM_DEPTH: usize = 64;

struct Parser<'a> {
    src: &'a str,
    pos: usize,
    values: HashMap<Ref, Value>,
    /// Where each statement's node starts, for inference errors.
    positions: Vec<(NodeId, usize)>,
    /// The signature's output types and where each is declared.
    output_decls: Vec<(ValueType, usize)>,
}

type PResult<T> = Result<T, ParseError>;

impl<'a> Parser<'a> {
    // ----- positions and errors -----

    fn line_col(&self, pos: usize) -> (usize, usize) {
        let before = &self.src[..pos.min(self.src.len())];
        let line = before.matches('\n').count() + 1;
        let col = match before.rfind('\n') {
            Some(i) => before[i + 1..].chars().count() + 1,
            None => before.chars().count() + 1,
        };
        (line, col)
    }

    fn err_at<T>(&self, pos: usize, msg: impl Into<String>) -> PResult<T> {
        let (line, col) = self.line_col(pos);
        Err(ParseError {
            line,
            col,
            msg: msg.into(),
        })
    }

    /// Describes the token at the current position, for "expected X, found Y".
    fn found(&mut self) -> String {
        self.skip_ws();
        let rest = &self.src[self.pos..];
        let Some(c) = rest.chars().next() else {
            return "end of input".to_string();
        };
        if c.is_ascii_alphanumeric() || c == '_' {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                .unwrap_or(rest.len());
            return format!("`{}`", &rest[..end]);
        }
        if c == '"' {
            return "a string".to_string();
        }
        if rest.starts_with("->") {
            return "`->`".to_string();
        }
        format!("`{c}`")
    }

    fn expected<T>(&mut self, what: &str) -> PResult<T> {
        let found = self.found();
        self.err_at(self.pos, format!("expected {what}, found {found}"))
    }

    // ----- characters -----

    fn skip_ws(&mut self) {
        loop {
            let rest = &self.src[self.pos..];
            let trimmed = rest.trim_start();
            self.pos += rest.len() - trimmed.len();
            if trimmed.starts_with("//") {
                self.pos += trimmed.find('\n').unwrap_or(trimmed.len());
            } else {
                return;
            }
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_ws();
        self.src[self.pos..].chars().next()
    }

    fn at(&mut self, s: &str) -> bool {
        self.skip_ws();
        self.src[self.pos..].starts_with(s)
    }

    fn eat(&mut self, s: &str) -> bool {
        if self.at(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, s: &str) -> PResult<()> {
        if self.eat(s) {
            Ok(())
        } else {
            self.expected(&format!("`{s}`"))
        }
    }

    /// A word: `[A-Za-z_][A-Za-z0-9_]*`, plus `.` inside when `dots` (op names).
    fn word(&mut self, dots: bool) -> Option<&'a str> {
        self.skip_ws();
        let rest = &self.src[self.pos..];
        let first = rest.chars().next()?;
        if !(first.is_ascii_alphabetic() || first == '_') {
            return None;
        }
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || (dots && c == '.')))
            .unwrap_or(rest.len());
        self.pos += end;
        Some(&rest[..end])
    }

    /// Consumes `kw` if the next word is exactly `kw`.
    fn keyword(&mut self, kw: &str) -> bool {
        let save = self.pos;
        if self.word(false) == Some(kw) {
            true
        } else {
            self.pos = save;
            false
        }
    }

    fn string(&mut self) -> PResult<String> {
        self.skip_ws();
        let start = self.pos;
        if !self.eat("\"") {
            return self.expected("a string");
        }
        let mut out = String::new();
        let mut chars = self.src[self.pos..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += i + 1;
                    return Ok(out);
                }
                '\n' => break,
                '\\' => {
                    let esc_pos = self.pos + i;
                    match chars.next() {
                        Some((_, 'n')) => out.push('\n'),
                        Some((_, 'r')) => out.push('\r'),
                        Some((_, 't')) => out.push('\t'),
                        Some((_, '"')) => out.push('"'),
                        Some((_, '\\')) => out.push('\\'),
                        Some((j, 'u')) => {
                            let rest = &self.src[self.pos + j + 1..];
                            let close = rest.find('}');
                            let code = match (rest.starts_with('{'), close) {
                                (true, Some(e)) => u32::from_str_radix(&rest[1..e], 16)
                                    .ok()
                                    .and_then(char::from_u32),
                                _ => None,
                            };
                            let Some(ch) = code else {
                                return self.err_at(esc_pos, "bad `\\u{...}` escape");
                            };
                            out.push(ch);
                            // Skip the `{hex}` part.
                            let skip = close.unwrap_or(0) + 1;
                            for _ in 0..rest[..skip].chars().count() {
                                chars.next();
                            }
                        }
                        _ => return self.err_at(esc_pos, "unknown escape in string"),
                    }
                }
                c => out.push(c),
            }
        }
        self.err_at(start, "unterminated string")
    }

    /// A name: an identifier or a quoted string.
    fn name(&mut self, what: &str) -> PResult<String> {
        if self.peek() == Some('"') {
            return self.string();
        }
        match self.word(false) {
            Some(w) => Ok(w.to_string()),
            None => self.expected(what),
        }
    }

    /// A value reference after `%`: digits, an identifier, or a quoted name.
    fn value_ref(&mut self) -> PResult<Ref> {
        self.skip_ws();
        let start = self.pos;
        if !self.eat("%") {
            return self.expected("a value (`%...`)");
        }
        let rest = &self.src[self.pos..];
        if rest.starts_with(|c: char| c.is_ascii_digit()) {
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            let n = rest[..end].parse::<u64>();
            self.pos += end;
            return match n {
                Ok(n) => Ok(Ref::Num(n)),
                Err(_) => self.err_at(start, "value number is too large"),
            };
        }
        if rest.starts_with('"') {
            return Ok(Ref::Name(self.string()?));
        }
        if rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            if let Some(w) = self.word(false) {
                return Ok(Ref::Name(w.to_string()));
            }
        }
        self.err_at(self.pos, "expected a value name or number after `%`")
    }

    fn lookup(&self, r: &Ref, pos: usize) -> PResult<Value> {
        match self.values.get(r) {
            Some(v) => Ok(*v),
            None => self.err_at(pos, format!("use of undefined value {r}")),
        }
    }

    // ----- types, dims, numbers -----

    fn dtype(&mut self) -> PResult<DType> {
        self.skip_ws();
        let start = self.pos;
        match self.word(false) {
            Some(w) => match w.parse::<DType>() {
                Ok(d) => Ok(d),
                Err(_) => self.err_at(start, format!("unknown dtype `{w}`")),
            },
            None => self.expected("a dtype"),
        }
    }

    /// One dim expression, up to a `,` or `]` outside parentheses.
    fn dim(&mut self) -> PResult<Dim> {
        self.skip_ws();
        let start = self.pos;
        let rest = &self.src[self.pos..];
        let mut depth = 0usize;
        let mut end = rest.len();
        for (i, c) in rest.char_indices() {
            match c {
                '(' => {
                    depth += 1;
                    if depth > MAX_DIM_DEPTH {
                        return self.err_at(start + i, "dim expression is nested too deeply");
                    }
                }
                ')' if depth > 0 => depth -= 1,
                ',' | ']' if depth == 0 => {
                    end = i;
                    break;
                }
                '\n' | '{' | '}' | '[' | '>' | '<' | '=' | ':' | '%' | '"' => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        let text = rest[..end].trim_end();
        if text.is_empty() {
            return self.expected("a dim");
        }
        match Dim::parse(text) {
            Ok(d) => {
                self.pos += end;
                Ok(d)
            }
            Err(e) => self.err_at(start, format!("bad dim `{text}`: {e}")),
        }
    }

    /// `[d, d, ...]` of dims.
    fn dim_list(&mut self) -> PResult<Vec<Dim>> {
        self.expect("[")?;
        let mut dims = Vec::new();
        if self.eat("]") {
            return Ok(dims);
        }
        loop {
            dims.push(self.dim()?);
            if self.eat("]") {
                return Ok(dims);
            }
            if !self.eat(",") {
                return self.expected("`,` or `]`");
            }
        }
    }

    /// `dtype[dims]`.
    fn value_type(&mut self) -> PResult<ValueType> {
        let dtype = self.dtype()?;
        let shape = self.dim_list()?;
        Ok(ValueType::new(dtype, shape))
    }

    /// A number token: `[+-]digits[.digits][e[+-]digits]`, `inf`, `-inf`, `nan`,
    /// `nan(0xHEX)`. Returns its text (not consumed on failure).
    fn number_text(&mut self) -> Option<&'a str> {
        self.skip_ws();
        let rest = &self.src[self.pos..];
        let b = rest.as_bytes();
        let mut i = 0;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        let word_end = |from: usize| {
            from + rest[from..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len() - from)
        };
        let w = &rest[i..word_end(i)];
        if w == "inf" {
            i += 3;
        } else if w == "nan" {
            i += 3;
            if rest[i..].starts_with("(0x") {
                let close = rest[i..].find(')')?;
                i += close + 1;
            }
        } else {
            let digits = |i: &mut usize| {
                let s = *i;
                while *i < b.len() && b[*i].is_ascii_digit() {
                    *i += 1;
                }
                *i > s
            };
            if !digits(&mut i) {
                return None;
            }
            if i < b.len() && b[i] == b'.' {
                i += 1;
                digits(&mut i);
            }
            if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                let mut j = i + 1;
                if j < b.len() && (b[j] == b'-' || b[j] == b'+') {
                    j += 1;
                }
                if digits(&mut j) {
                    i = j;
                }
            }
            // `12abc` is not a number.
            if i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                return None;
            }
        }
        self.pos += i;
        Some(&rest[..i])
    }

    fn int_value(&mut self, what: &str) -> PResult<i128> {
        self.skip_ws();
        let start = self.pos;
        match self.number_text() {
            Some(t) if !is_float_text(t) => match t.parse::<i128>() {
                Ok(v) => Ok(v),
                Err(_) => self.err_at(start, format!("integer `{t}` is out of range")),
            },
            Some(t) => self.err_at(start, format!("expected {what}, found `{t}`")),
            None => self.expected(what),
        }
    }

    // ----- graph -----

    fn graph(&mut self, weights: WeightStore) -> PResult<Graph> {
        if !self.keyword("graph") {
            return self.expected("`graph`");
        }
        self.expect("@")?;
        let name = self.name("a graph name")?;
        let mut g = Graph::new(&name);
        g.weights = weights;

        self.expect("(")?;
        if !self.eat(")") {
            loop {
                self.skip_ws();
                let pos = self.pos;
                let r = self.value_ref()?;
                let Ref::Name(input_name) = r.clone() else {
                    return self.err_at(pos, "graph inputs are named, not numbered");
                };
                if self.values.contains_key(&r) {
                    return self.err_at(pos, format!("value {r} is defined twice"));
                }
                self.expect(":")?;
                let ty = self.value_type()?;
                let v = g.add_input(&input_name, ty);
                self.values.insert(r, v);
                if self.eat(")") {
                    break;
                }
                if !self.eat(",") {
                    return self.expected("`,` or `)`");
                }
            }
        }

        self.expect("->")?;
        self.expect("(")?;
        let mut outputs: Vec<(String, ValueType, usize)> = Vec::new();
        if !self.eat(")") {
            loop {
                self.skip_ws();
                let pos = self.pos;
                let name = self.name("an output name")?;
                self.expect(":")?;
                let ty = self.value_type()?;
                outputs.push((name, ty, pos));
                if self.eat(")") {
                    break;
                }
                if !self.eat(",") {
                    return self.expected("`,` or `)`");
                }
            }
        }
        self.expect("{")?;

        loop {
            self.skip_ws();
            let pos = self.pos;
            if self.keyword("return") {
                break;
            }
            if self.peek().is_none() {
                return self.expected("a statement or `return`");
            }
            self.statement(&mut g, pos)?;
        }

        let mut returned = Vec::new();
        self.skip_ws();
        if self.peek() == Some('%') {
            loop {
                self.skip_ws();
                let pos = self.pos;
                let r = self.value_ref()?;
                returned.push((self.lookup(&r, pos)?, pos));
                if !self.eat(",") {
                    break;
                }
            }
        }
        self.skip_ws();
        let close = self.pos;
        self.expect("}")?;
        if returned.len() != outputs.len() {
            return self.err_at(
                close,
                format!(
                    "`return` gives {}, the signature declares {}",
                    count(returned.len(), "value"),
                    count(outputs.len(), "output")
                ),
            );
        }
        self.skip_ws();
        if self.pos != self.src.len() {
            return self.expected("end of input");
        }
        for ((name, ty, pos), (v, _)) in outputs.into_iter().zip(returned) {
            g.add_output(&name, v);
            self.output_decls.push((ty, pos));
        }
        Ok(g)
    }
}

impl<'a> Parser<'a> {
    // ----- statements -----

    /// `[%r, ... =] op[(args)] [{attrs}] : types`
    fn statement(&mut self, g: &mut Graph, pos: usize) -> PResult<()> {
        let mut results: Vec<(Ref, usize)> = Vec::new();
        if self.peek() == Some('%') {
            loop {
                self.skip_ws();
                let rpos = self.pos;
                let r = self.value_ref()?;
                if self.values.contains_key(&r) || results.iter().any(|(x, _)| *x == r) {
                    return self.err_at(rpos, format!("value {r} is defined twice"));
                }
                results.push((r, rpos));
                if !self.eat(",") {
                    break;
                }
            }
            self.expect("=")?;
        }
        self.skip_ws();
        let op_pos = self.pos;
        let Some(op) = self.word(true) else {
            return self.expected("an op name");
        };
        if op == INPUT_OP {
            return self.err_at(
                op_pos,
                "graph inputs are declared in the signature, not with `input`",
            );
        }
        if ops::lookup(op).is_none() {
            return self.err_at(op_pos, format!("unknown op `{op}`"));
        }

        let mut inputs = Vec::new();
        if self.eat("(") && !self.eat(")") {
            loop {
                self.skip_ws();
                let apos = self.pos;
                if self.peek() == Some('%') {
                    let r = self.value_ref()?;
                    inputs.push(Some(self.lookup(&r, apos)?));
                } else if self.keyword("_") {
                    inputs.push(None);
                } else {
                    return self.expected("a value (`%...`) or `_`");
                }
                if self.eat(")") {
                    break;
                }
                if !self.eat(",") {
                    return self.expected("`,` or `)`");
                }
            }
        }

        let mut attrs = Attrs::new();
        if self.eat("{") && !self.eat("}") {
            loop {
                self.skip_ws();
                let npos = self.pos;
                let name = self.name("an attribute name")?;
                self.expect("=")?;
                let value = self.attr_value()?;
                if attrs.insert(name.clone(), value).is_some() {
                    return self.err_at(npos, format!("attribute `{name}` is given twice"));
                }
                if self.eat("}") {
                    break;
                }
                if !self.eat(",") {
                    return self.expected("`,` or `}`");
                }
            }
        }

        self.skip_ws();
        let colon = self.pos;
        self.expect(":")?;
        let mut types = Vec::new();
        if self.eat("(") {
            self.expect(")")?;
        } else {
            loop {
                types.push(self.value_type()?);
                if !self.eat(",") {
                    break;
                }
            }
        }
        if types.len() != results.len() {
            return self.err_at(
                colon,
                format!(
                    "{} defined but {} given",
                    count(results.len(), "value"),
                    count(types.len(), "type")
                ),
            );
        }
        let id = g.add_node(op, attrs, inputs, types, "");
        for (i, (r, _)) in results.into_iter().enumerate() {
            self.values.insert(
                r,
                Value {
                    node: id,
                    output: i,
                },
            );
        }
        self.positions.push((id, pos));
        Ok(())
    }

    // ----- attribute values -----

    fn attr_value(&mut self) -> PResult<Attr> {
        self.skip_ws();
        let start = self.pos;
        match self.peek() {
            Some('"') => return Ok(Attr::Str(self.string()?)),
            Some('[') => return self.untyped_list(),
            Some('@') => {
                self.pos += 1;
                if !self.keyword("weight") {
                    return self.expected("`weight` after `@`");
                }
                self.expect("(")?;
                let name = self.string()?;
                self.expect(")")?;
                return Ok(Attr::Weight(name.into()));
            }
            _ => {}
        }
        if let Some(t) = self.number_text() {
            return if is_float_text(t) {
                match parse_f32(t) {
                    Some(x) => Ok(Attr::Float(x)),
                    None => self.err_at(start, format!("bad float `{t}`")),
                }
            } else {
                match t.parse::<i64>() {
                    Ok(i) => Ok(Attr::Int(i)),
                    Err(_) => self.err_at(start, format!("integer `{t}` is out of range")),
                }
            };
        }
        let Some(w) = self.word(false) else {
            return self.expected("an attribute value");
        };
        match w {
            "dims" => {
                self.expect("<")?;
                let d = self.dim_list()?;
                self.expect(">")?;
                Ok(Attr::Dims(d))
            }
            "ints" | "floats" | "strs" => {
                self.expect("<")?;
                self.expect("[")?;
                let mut ints = Vec::new();
                let mut floats = Vec::new();
                let mut strs = Vec::new();
                if !self.eat("]") {
                    loop {
                        self.skip_ws();
                        let epos = self.pos;
                        match w {
                            "ints" => ints.push(self.i64_value()?),
                            "floats" => floats.push(self.f32_value(epos)?),
                            _ => strs.push(self.string()?),
                        }
                        if self.eat("]") {
                            break;
                        }
                        if !self.eat(",") {
                            return self.expected("`,` or `]`");
                        }
                    }
                }
                self.expect(">")?;
                Ok(match w {
                    "ints" => Attr::Ints(ints),
                    "floats" => Attr::Floats(floats),
                    _ => Attr::Strs(strs),
                })
            }
            "dense" => Ok(Attr::Tensor(Arc::new(self.tensor()?))),
            _ => match w.parse::<DType>() {
                Ok(d) => Ok(Attr::DType(d)),
                Err(_) => self.err_at(start, format!("unknown attribute value `{w}`")),
            },
        }
    }

    fn i64_value(&mut self) -> PResult<i64> {
        self.skip_ws();
        let start = self.pos;
        let v = self.int_value("an integer")?;
        i64::try_from(v).or_else(|_| self.err_at(start, format!("integer {v} is out of range")))
    }

    fn f32_value(&mut self, start: usize) -> PResult<f32> {
        match self.number_text() {
            Some(t) => match parse_f32(t) {
                Some(x) => Ok(x),
                None => self.err_at(start, format!("bad float `{t}`")),
            },
            None => self.expected("a number"),
        }
    }

    /// `[1, 2]` (ints), `[1.0, 2.5]` (floats, if any element has float syntax),
    /// `["a", "b"]` (strings); `[]` is an empty list of ints.
    fn untyped_list(&mut self) -> PResult<Attr> {
        self.expect("[")?;
        let mut nums: Vec<(&'a str, usize)> = Vec::new();
        let mut strs = Vec::new();
        if !self.eat("]") {
            loop {
                self.skip_ws();
                let epos = self.pos;
                if self.peek() == Some('"') && nums.is_empty() {
                    strs.push(self.string()?);
                } else if !strs.is_empty() {
                    return self.expected("a string");
                } else {
                    match self.number_text() {
                        Some(t) => nums.push((t, epos)),
                        None => return self.expected("a number or a string"),
                    }
                }
                if self.eat("]") {
                    break;
                }
                if !self.eat(",") {
                    return self.expected("`,` or `]`");
                }
            }
        }
        if !strs.is_empty() {
            return Ok(Attr::Strs(strs));
        }
        if nums.iter().any(|(t, _)| is_float_text(t)) {
            let mut v = Vec::with_capacity(nums.len());
            for (t, p) in nums {
                match parse_f32(t) {
                    Some(x) => v.push(x),
                    None => return self.err_at(p, format!("bad float `{t}`")),
                }
            }
            return Ok(Attr::Floats(v));
        }
        let mut v = Vec::with_capacity(nums.len());
        for (t, p) in nums {
            match t.parse::<i64>() {
                Ok(i) => v.push(i),
                Err(_) => return self.err_at(p, format!("integer `{t}` is out of range")),
            }
        }
        Ok(Attr::Ints(v))
    }

    /// After `dense`: `<dtype[shape]>[elements]`.
    fn tensor(&mut self) -> PResult<Tensor> {
        self.expect("<")?;
        let dtype = self.dtype()?;
        self.expect("[")?;
        let mut shape = Vec::new();
        if !self.eat("]") {
            loop {
                self.skip_ws();
                let dpos = self.pos;
                let d = self.int_value("a tensor dim (an integer)")?;
                match usize::try_from(d) {
                    Ok(d) => shape.push(d),
                    Err(_) => return self.err_at(dpos, format!("bad tensor dim {d}")),
                }
                if self.eat("]") {
                    break;
                }
                if !self.eat(",") {
                    return self.expected("`,` or `]`");
                }
            }
        }
        self.expect(">")?;
        self.skip_ws();
        let list_pos = self.pos;
        self.expect("[")?;
        let mut ints: Vec<i64> = Vec::new();
        let mut f32s: Vec<f32> = Vec::new();
        let mut f64s: Vec<f64> = Vec::new();
        let mut bools: Vec<bool> = Vec::new();
        let mut codes: Vec<u8> = Vec::new();
        let mut n = 0usize;
        if !self.eat("]") {
            loop {
                self.skip_ws();
                let epos = self.pos;
                if dtype == DType::Bool {
                    if self.keyword("true") {
                        bools.push(true);
                    } else if self.keyword("false") {
                        bools.push(false);
                    } else {
                        return self.expected("`true` or `false`");
                    }
                } else if dtype.is_int() {
                    let v = self.int_value("an integer")?;
                    if !int_fits(dtype, v) {
                        return self.err_at(epos, format!("{v} is out of range for {dtype}"));
                    }
                    // Wrapping to i64 keeps u64 values above i64::MAX (from_i64 wraps back).
                    ints.push(v as i64);
                } else {
                    let Some(t) = self.number_text() else {
                        return self.expected("a number");
                    };
                    match dtype {
                        d if d.is_fp8() => match parse_fp8(d, t) {
                            Some(c) => codes.push(c),
                            None => return self.err_at(epos, format!("bad {d} value `{t}`")),
                        },
                        DType::F64 => match parse_f64(t) {
                            Some(x) => f64s.push(x),
                            None => return self.err_at(epos, format!("bad float `{t}`")),
                        },
                        _ => match parse_float_as(dtype, t) {
                            Some(x) => f32s.push(x),
                            None => return self.err_at(epos, format!("bad {dtype} value `{t}`")),
                        },
                    }
                }
                n += 1;
                if self.eat("]") {
                    break;
                }
                if !self.eat(",") {
                    return self.expected("`,` or `]`");
                }
            }
        }
        let want = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if want != Some(n) {
            let want = want.map_or("too many".to_string(), |w| w.to_string());
            return self.err_at(
                list_pos,
                format!("tensor of shape {shape:?} needs {want} elements, found {n}"),
            );
        }
        let data = match dtype {
            DType::Bool => Data::Bool(bools),
            DType::F64 => Data::F64(f64s),
            DType::F32 => Data::F32(f32s),
            DType::F16 => Data::F16(f32s.into_iter().map(f16::from_f32).collect()),
            DType::BF16 => Data::BF16(f32s.into_iter().map(bf16::from_f32).collect()),
            d if d.is_fp8() => Data::F8(codes),
            d => return Ok(Tensor::from_i64(d, shape, &ints)),
        };
        match Tensor::with_dtype(dtype, shape, data) {
            Ok(t) => Ok(t),
            Err(e) => self.err_at(list_pos, e.to_string()),
        }
    }

    // ----- inference -----

    fn infer_and_check(&mut self, g: &mut Graph) -> PResult<()> {
        let pos_of: HashMap<NodeId, usize> = self.positions.iter().copied().collect();
        let Some(order) = g.topo_order() else {
            return self.err_at(0, "the graph has a cycle");
        };
        let fresh = FreshSymbols::for_graph(g);
        let mut known = KnownValues::new();
        for id in order {
            let pos = pos_of.get(&id).copied().unwrap_or(0);
            let op = g.node(id).op.clone();
            let (mut types, sym) = match infer_node(g, id, &known, &fresh) {
                Ok(r) => r,
                Err(crate::error::IrError::Op { msg, .. }) => {
                    return self.err_at(pos, format!("{op}: {msg}"))
                }
                Err(e) => return self.err_at(pos, format!("{op}: {e}")),
            };
            let declared = &g.node(id).outputs;
            if types.len() > declared.len() {
                types.truncate(declared.len());
            }
            if types != *declared {
                let show =
                    |ts: &[ValueType]| ts.iter().map(type_to_string).collect::<Vec<_>>().join(", ");
                let msg = if types.len() != declared.len() {
                    format!(
                        "{op} gives {}, the statement defines {}",
                        count(types.len(), "output"),
                        declared.len()
                    )
                } else {
                    format!(
                        "{op} infers {}, the text says {}",
                        show(&types),
                        show(declared)
                    )
                };
                return self.err_at(pos, msg);
            }
            if let Some(s) = sym {
                known.insert(
                    Value {
                        node: id,
                        output: 0,
                    },
                    Known::Dims(s),
                );
            }
        }
        for (i, (ty, pos)) in self.output_decls.iter().enumerate() {
            let (name, v) = &g.outputs()[i];
            let actual = g.value_type(*v);
            if actual != ty {
                return self.err_at(
                    *pos,
                    format!(
                        "output `{name}` is {}, the signature says {}",
                        type_to_string(actual),
                        type_to_string(ty)
                    ),
                );
            }
        }
        Ok(())
    }
}

/// `1 value`, `2 values`.
fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn is_float_text(t: &str) -> bool {
    t.bytes()
        .any(|c| !(c.is_ascii_digit() || c == b'-' || c == b'+'))
}

/// The NaN payload of `nan(0xHEX)`, `Some(None)` for plain `nan`, `None` if not a NaN.
fn nan_bits(t: &str) -> Option<Option<u64>> {
    let t = t.trim_start_matches(['-', '+']);
    if t == "nan" {
        return Some(None);
    }
    let hex = t.strip_prefix("nan(0x")?.strip_suffix(')')?;
    Some(u64::from_str_radix(hex, 16).ok())
}

fn parse_f32(t: &str) -> Option<f32> {
    match nan_bits(t) {
        Some(None) => Some(f32::NAN),
        Some(Some(b)) => u32::try_from(b).ok().map(f32::from_bits),
        None => t.parse::<f32>().ok(),
    }
}

fn parse_f64(t: &str) -> Option<f64> {
    match nan_bits(t) {
        Some(None) => Some(f64::NAN),
        Some(Some(b)) => Some(f64::from_bits(b)),
        None => t.parse::<f64>().ok(),
    }
}

/// A value of float dtype `dtype` (f32, f16 or bf16), widened exactly to f32.
fn parse_float_as(dtype: DType, t: &str) -> Option<f32> {
    let nan = nan_bits(t);
    match dtype {
        DType::F32 => parse_f32(t),
        DType::F16 => match nan {
            Some(None) => Some(f16::NAN.to_f32()),
            Some(Some(b)) => u16::try_from(b).ok().map(|b| f16::from_bits(b).to_f32()),
            None => t.parse::<f32>().ok().map(|x| f16::from_f32(x).to_f32()),
        },
        DType::BF16 => match nan {
            Some(None) => Some(bf16::NAN.to_f32()),
            Some(Some(b)) => u16::try_from(b).ok().map(|b| bf16::from_bits(b).to_f32()),
            None => t.parse::<f32>().ok().map(|x| bf16::from_f32(x).to_f32()),
        },
        _ => None,
    }
}

/// The code of an fp8 value: `nan(0xCODE)` as given, other values encoded exactly
/// (infinities stay infinite where the format has them).
fn parse_fp8(dtype: DType, t: &str) -> Option<u8> {
    match nan_bits(t) {
        Some(None) => Some(fp8::encode(dtype, f32::NAN, false)),
        Some(Some(b)) => u8::try_from(b).ok(),
        None => Some(fp8::encode(dtype, t.parse::<f32>().ok()?, false)),
    }
}

fn int_fits(dtype: DType, v: i128) -> bool {
    let (lo, hi): (i128, i128) = match dtype {
        DType::I8 => (i8::MIN as i128, i8::MAX as i128),
        DType::I16 => (i16::MIN as i128, i16::MAX as i128),
        DType::I32 => (i32::MIN as i128, i32::MAX as i128),
        DType::I64 => (i64::MIN as i128, i64::MAX as i128),
        DType::U8 => (0, u8::MAX as i128),
        DType::U16 => (0, u16::MAX as i128),
        DType::U32 => (0, u32::MAX as i128),
        DType::U64 => (0, u64::MAX as i128),
        _ => return false,
    };
    (lo..=hi).contains(&v)
}
