//! kiln-runtime: loads a .kiln artifact and runs it. It depends on no other kiln crate.

pub mod cpu;
