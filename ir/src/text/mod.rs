//! The text IR: a deterministic printer and a parser that reads it back.
