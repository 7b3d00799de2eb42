//! The pass manager: parses a pipeline, runs it, verifies after every pass, and prints or
//! dumps the IR along the way.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;

use kiln_ir::Graph;

use super::fuse::{report::FusedRegion, rule_names};
use super::{create, known_names, lookup, Pass, Stats};
use crate::error::CompileError;

/// What to print or dump while a pipeline runs, and where to stop.
#[derive(Clone, Debug, Default)]
pub struct Instrumentation {
    /// Print the IR before each run of these passes.
    pub print_before: BTreeSet<String>,
    /// Print the IR after each run of these passes.
    pub print_after: BTreeSet<String>,
    /// Print the IR after every pass that is not itself made of passes.
    pub print_after_all: bool,
    /// Stop the pipeline after the first run of this pass.
    pub stop_after: Option<String>,
    /// Write the IR text to `DIR/00-input.kir`, then `DIR/NN-<pass>.kir` after every pass
    /// that is not itself made of passes (text only: weights are not written).
    pub dump_dir: Option<PathBuf>,
    /// Fusion rules that find their regions (and report them) but do not rewrite them.
    pub disabled_rules: BTreeSet<String>,
}

impl Instrumentation {
    fn any_output(&self) -> bool {
        !self.print_before.is_empty()
            || !self.print_after.is_empty()
            || self.print_after_all
            || self.dump_dir.is_some()
    }
}

/// What passes share while a pipeline runs: rule counters, instrumentation, where printed IR
/// goes.
///
/// Inside a composite pass (canonicalize), member runs that changed nothing are neither
/// printed after nor dumped, so a fixed-point loop shows only the steps that did something.
pub struct PassContext<'a> {
    /// Per-rule counters, keyed `pass/rule`.
    pub stats: Stats,
    /// The regions each fusion rule found, by rule name.
    pub fusions: BTreeMap<&'static str, Vec<FusedRegion>>,
    instrument: Instrumentation,
    out: Box<dyn Write + 'a>,
    /// Composite passes being run, with their current iteration.
    stack: Vec<(&'static str, usize)>,
    dumps: usize,
    stopped: bool,
}

impl Default for PassContext<'_> {
    fn default() -> Self {
        PassContext::new()
    }
}

impl<'a> PassContext<'a> {
    /// A context that prints nothing.
    pub fn new() -> PassContext<'a> {
        PassContext::with_output(Instrumentation::default(), Box::new(std::io::sink()))
    }

    /// A context printing the IR as `instrument` says to `out`.
    pub fn with_output(instrument: Instrumentation, out: Box<dyn Write + 'a>) -> PassContext<'a> {
        PassContext {
            stats: Stats::new(),
            fusions: BTreeMap::new(),
            instrument,
            out,
            stack: Vec::new(),
            dumps: 0,
            stopped: false,
        }
    }

    /// Counts one match of rule `rule` of pass `pass`, applied or not.
    pub fn record(&mut self, pass: &str, rule: &str, applied: bool) {
        let s = self.stats.entry(format!("{pass}/{rule}")).or_default();
        s.matched += 1;
        if applied {
            s.applied += 1;
        }
    }

    /// Whether fusion rule `rule` may rewrite what it finds (not `--disable-rule`d).
    pub fn rule_enabled(&self, rule: &str) -> bool {
        !self.instrument.disabled_rules.contains(rule)
    }

    /// Records a region fusion rule `rule` found (and applied, or not): counted in the
    /// stats as `rule/form`, listed in the fusion report.
    pub fn record_region(
        &mut self,
        rule: &'static str,
        form: &'static str,
        nodes: Vec<String>,
        applied: bool,
    ) {
        self.record(rule, form, applied);
        self.fusions.entry(rule).or_default().push(FusedRegion {
            form,
            applied,
            nodes,
        });
    }

    /// True once the pass named by `stop_after` has run: composites stop iterating.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Marks the start of iteration `iteration` (from 1) of composite pass `name`.
    pub fn enter(&mut self, name: &'static str, iteration: usize) {
        self.stack.push((name, iteration));
    }

    /// Marks the end of the innermost composite iteration.
    pub fn leave(&mut self) {
        self.stack.pop();
    }

    fn where_suffix(&self) -> String {
        match self.stack.last() {
            Some((name, it)) => format!(" ({name}, iteration {it})"),
            None => String::new(),
        }
    }

    fn print_ir(&mut self, when: &str, name: &str, g: &Graph) -> Result<(), CompileError> {
        let header = format!("// ----- IR {when} {name}{} -----\n", self.where_suffix());
        let text = kiln_ir::text::print(g);
        self.out
            .write_all(header.as_bytes())
            .and_then(|_| self.out.write_all(text.as_bytes()))
            .map_err(|e| CompileError::io("<output>", e))
    }

    fn dump(&mut self, name: &str, g: &Graph) -> Result<(), CompileError> {
        let Some(dir) = &self.instrument.dump_dir else {
            return Ok(());
        };
        std::fs::create_dir_all(dir).map_err(|e| CompileError::io(dir, e))?;
        let path = dir.join(format!("{:02}-{name}.kir", self.dumps));
        self.dumps += 1;
        std::fs::write(&path, kiln_ir::text::print(g)).map_err(|e| CompileError::io(&path, e))
    }

    /// Dumps the pipeline's input as `00-input.kir` (if dumping).
    pub fn dump_input(&mut self, g: &Graph) -> Result<(), CompileError> {
        self.dump("input", g)
    }

    /// Runs one pass with instrumentation and verification; composites call this for each
    /// of their members.
    pub fn run_pass(&mut self, pass: &dyn Pass, g: &mut Graph) -> Result<bool, CompileError> {
        let name = pass.name();
        let nested = !self.stack.is_empty();
        let leaf = pass.members().is_empty();
        if self.instrument.print_before.contains(name) {
            self.print_ir("before", name, g)?;
        }
        let changed = pass.run(g, self).map_err(|e| match e {
            CompileError::Pass(msg) => CompileError::Pass(msg),
            e => CompileError::Pass(format!("pass `{name}` failed: {e}")),
        })?;
        kiln_ir::verify::verify(g).map_err(|e| {
            CompileError::Pass(format!(
                "the IR does not verify after pass `{name}`{}: {e}",
                self.where_suffix()
            ))
        })?;
        if self.instrument.any_output() && (changed || !nested) {
            if self.instrument.print_after.contains(name)
                || (leaf && self.instrument.print_after_all)
            {
                self.print_ir("after", name, g)?;
            }
            if leaf {
                self.dump(name, g)?;
            }
        }
        if self.instrument.stop_after.as_deref() == Some(name) {
            self.stopped = true;
        }
        Ok(changed)
    }
}

/// A pipeline of passes, parsed from text.
pub struct PassManager {
    passes: Vec<Box<dyn Pass>>,
}

impl PassManager {
    /// Parses `canonicalize,dce`: pass names separated by commas (spaces allowed). An empty
    /// pipeline runs nothing.
    pub fn parse(pipeline: &str) -> Result<PassManager, CompileError> {
        let mut passes = Vec::new();
        if pipeline.trim().is_empty() {
            return Ok(PassManager { passes });
        }
        for name in pipeline.split(',') {
            let name = name.trim();
            if name.is_empty() {
                return Err(CompileError::Pass(format!(
                    "empty pass name in pipeline `{pipeline}`"
                )));
            }
            passes.push(create(name)?);
        }
        Ok(PassManager { passes })
    }

    /// Every pass name that runs, members of composites included, in order, unique.
    pub fn names(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        fn add(out: &mut Vec<&'static str>, name: &'static str) {
            if !out.contains(&name) {
                out.push(name);
            }
        }
        for p in &self.passes {
            add(&mut out, p.name());
            for m in p.members() {
                add(&mut out, m);
            }
        }
        out
    }

    /// Checks that every pass the instrumentation names exists and runs in this pipeline.
    pub fn check_instrumentation(&self, instr: &Instrumentation) -> Result<(), CompileError> {
        let runs = self.names();
        let named = instr
            .print_before
            .iter()
            .map(|n| ("--print-before", n))
            .chain(instr.print_after.iter().map(|n| ("--print-after", n)))
            .chain(instr.stop_after.iter().map(|n| ("--stop-after", n)));
        for (flag, name) in named {
            if lookup(name).is_none() {
                return Err(CompileError::Pass(format!(
                    "{flag}: unknown pass `{name}` (known passes: {})",
                    known_names()
                )));
            }
            if !runs.contains(&name.as_str()) {
                return Err(CompileError::Pass(format!(
                    "{flag}: pass `{name}` does not run in this pipeline (it runs: {})",
                    runs.join(", ")
                )));
            }
        }
        let rules = rule_names();
        for name in &instr.disabled_rules {
            if !rules.contains(&name.as_str()) {
                return Err(CompileError::Pass(format!(
                    "--disable-rule: unknown fusion rule `{name}` (fusion rules: {})",
                    rules.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// Runs the pipeline on `g`: verifies the input, then runs each pass (verifying after
    /// each) until the end or the pass `stop_after` names.
    pub fn run(&self, g: &mut Graph, ctx: &mut PassContext) -> Result<(), CompileError> {
        kiln_ir::verify::verify(g)
            .map_err(|e| CompileError::Pass(format!("the input IR does not verify: {e}")))?;
        ctx.dump_input(g)?;
        for p in &self.passes {
            ctx.run_pass(p.as_ref(), g)?;
            if ctx.stopped() {
                break;
            }
        }
        Ok(())
    }
}
