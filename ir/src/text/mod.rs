//! The text IR: a deterministic printer ([`print`]) and a parser that reads it back
//! ([`parse`], [`parse_with_weights`]), such that `print(parse(print(g))) == print(g)` byte
//! for byte.
//!
//! ```text
//! graph @main(%input_ids: i64[1, seq], %mask: bool[1, seq]) -> (logits: f32[1, seq, 256]) {
//!   %0 = constant {value = @weight("model.embed.weight")} : f32[256, 64]
//!   %1 = constant {value = dense<i64[2]>[1, -1]} : i64[2]
//!   %2 = Gather(%0, %input_ids) {axis = 0} : f32[1, seq, 64]
//!   %3, %4 = TopK(%2, %1) {axis = -1, largest = 1, sorted = 1} : f32[1, seq, 2], i64[1, seq, 2]
//!   %5 = Clip(%2, _, %1) : f32[1, seq, 64]
//!   %6 = dims {value = dims<[1, seq, 4, 16]>} : i64[4]
//!   return %5, %3
//! }
//! ```
//!
//! # Grammar
//!
//! ```text
//! file      := 'graph' '@' name '(' [param {',' param}] ')' '->' '(' [result {',' result}] ')'
//!              '{' stmt* 'return' [value {',' value}] '}'
//! param     := '%' name ':' type                      graph input
//! result    := name ':' type                          graph output (name and type)
//! stmt      := [value {',' value} '='] OP ['(' [arg {',' arg}] ')'] [attrs] ':' types
//! arg       := value | '_'                            `_`: an absent optional input
//! value     := '%' DIGITS | '%' name                  node outputs are numbered, inputs named
//! types     := type {',' type} | '(' ')'              one type per output
//! type      := DTYPE '[' [dim {',' dim}] ']'          `f32[1, seq, 64]`; scalar: `f32[]`
//! dim       := INT | SYMBOL | expression              `seq`, `past+seq`, `seq*4`, `floordiv(seq, 2)`
//! attrs     := '{' [name '=' attr {',' name '=' attr}] '}'
//! attr      := INT                                    `3`, `-1`
//!            | FLOAT                                  always with `.` or `e`: `1.0`, `1e-6`;
//!                                                     `inf`, `-inf`, `nan`, `nan(0x7fc00001)`
//!            | STRING                                 `"swiglu"`, escapes \" \\ \n \r \t \u{7f}
//!            | DTYPE                                  `f16`
//!            | '[' INT {',' INT} ']'                  ints; `[]` is an empty ints list
//!            | '[' FLOAT {',' FLOAT} ']'              floats
//!            | '[' STRING {',' STRING} ']'            strings
//!            | 'ints<' list '>' | 'floats<' list '>' | 'strs<' list '>'
//!                                                     typed lists (empty floats/strings print so)
//!            | 'dims<' '[' [dim {',' dim}] ']' '>'    symbolic integers, `dims<[1, seq]>`
//!            | 'dense<' DTYPE '[' [INT {',' INT}] ']' '>' '[' [elem {',' elem}] ']'
//!                                                     inline tensor, elements flat, row-major;
//!                                                     floats as FLOAT, ints as INT, bools as
//!                                                     `true`/`false`
//!            | '@weight(' STRING ')'                  a tensor of the weight store
//! name      := IDENT | STRING                         IDENT is [A-Za-z_][A-Za-z0-9_]*;
//!                                                     other names are quoted: %"past.0.key"
//! OP        := IDENT with dots                        `MatMul`, `com.microsoft.MoE`, `constant`
//! ```
//!
//! Whitespace is free between tokens; `//` starts a comment that runs to the end of the line.
//!
//! # Printing rules
//!
//! - Graph inputs are printed in the signature by name; every other node is a statement, in
//!   [`Graph::topo_order`](crate::graph::Graph::topo_order) (which keeps textual order after
//!   parsing); node outputs are numbered `%0, %1, ...` in that order.
//! - Parentheses are left out for ops without inputs (`constant {...}`), attributes when there
//!   are none. Attributes are sorted by name.
//! - Floats print as Rust's shortest round-trip spelling (`{:?}`), so they read back bit-exact;
//!   f16/bf16/fp8 elements print as the exact f32 of their value. A NaN other than the dtype's
//!   canonical one prints its bits: `nan(0x7fc00001)` (f32), `nan(0xff)` (an fp8 code).
//! - Node origins (ONNX node names) are not printed; parsed nodes have none.
//!
//! # Parsing
//!
//! Errors are one line, `line:col: message` (`3:14: expected `)`, found `,``). Unknown ops are
//! errors naming the op. After parsing, every node's types are inferred in textual order and
//! must equal the printed ones (a `@weight` missing from the weight store keeps its printed
//! type), the signature's output types must match the returned values, and the graph is
//! verified.

mod parse;
mod print;

pub use parse::{parse, parse_with_weights, ParseError};
pub use print::{
    attr_to_string, attrs_to_string, is_plain_name, print, quote_name, quote_str, tensor_to_string,
    type_to_string,
};

#[cfg(test)]
mod tests;
