//! `canonicalize`: constant-fold, shape-propagation, simplify, cse and dce, repeated until an
//! iteration changes nothing (at most [`MAX_ITERATIONS`] times).

use kiln_ir::Graph;

use super::{constant_fold, cse, dce, shape_propagation, simplify, Pass, PassContext};
use crate::error::CompileError;

/// The bound on fixed-point iterations. Each member only shrinks the graph or turns
/// computations into constants, so real models settle in two or three.
pub const MAX_ITERATIONS: usize = 10;

pub struct Canonicalize {
    members: Vec<Box<dyn Pass>>,
}

impl Canonicalize {
    pub fn new() -> Canonicalize {
        Canonicalize {
            members: vec![
                Box::new(constant_fold::ConstantFold),
                Box::new(shape_propagation::ShapePropagation),
                Box::new(simplify::Simplify),
                Box::new(cse::Cse),
                Box::new(dce::Dce),
            ],
        }
    }
}

impl Default for Canonicalize {
    fn default() -> Self {
        Canonicalize::new()
    }
}

impl Pass for Canonicalize {
    fn name(&self) -> &'static str {
        "canonicalize"
    }

    fn members(&self) -> Vec<&'static str> {
        self.members.iter().map(|p| p.name()).collect()
    }

    fn run(&self, g: &mut Graph, ctx: &mut PassContext) -> Result<bool, CompileError> {
        let mut any = false;
        for iteration in 1..=MAX_ITERATIONS {
            ctx.enter(self.name(), iteration);
            let mut changed = false;
            for p in &self.members {
                let r = ctx.run_pass(p.as_ref(), g);
                let c = match r {
                    Ok(c) => c,
                    Err(e) => {
                        ctx.leave();
                        return Err(e);
                    }
                };
                changed |= c;
                if ctx.stopped() {
                    ctx.leave();
                    return Ok(any | changed);
                }
            }
            ctx.leave();
            any |= changed;
            if !changed {
                break;
            }
        }
        Ok(any)
    }
}
