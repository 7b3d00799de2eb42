//! `kiln opt`: load a model, run a pass pipeline, print or write the IR.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use kiln_compiler::backend::DEFAULT_PIPELINE;
use kiln_compiler::passes::fuse::report::FusionReport;
use kiln_compiler::passes::{Instrumentation, PassContext, PassManager, PASSES};

/// Run IR passes on a model and print or write the result.
///
/// Reads INPUT (an .onnx model, or a .kir IR file with its `.kir.weights` beside it), runs
/// the pass pipeline, and prints the final IR to stdout, or writes it to OUT.kir (and its
/// weights to OUT.kir.weights) with -o.
#[derive(clap::Args)]
#[command(after_long_help = "\
OUTPUT:
  --print-before/--print-after/--print-after-all write the IR to stdout as the pipeline runs,
  each copy preceded by a header line such as
      // ----- IR after constant-fold -----
      // ----- IR after cse (canonicalize, iteration 2) -----
  The final IR comes last (without a header), unless -o writes it to a file. Inside a
  composite pass (canonicalize), member runs that changed nothing are not printed after and
  not dumped.

  --dump-dir DIR writes 00-input.kir, then NN-<pass>.kir after every pass (text only: the
  weights are not copied; a .kir without its weights still reads back, keeping the weights'
  types).

EXAMPLES:
  kiln opt model.onnx -o model.kir
  kiln opt model.kir --passes constant-fold,dce --print-after-all
  kiln opt model.onnx --stop-after shape-propagation --dump-dir /tmp/ir
  kiln opt model.onnx --fusion-report fusions.json --print-after fuse-attention
  kiln opt model.onnx --disable-rule fuse-moe
  kiln opt --list-passes")]
pub struct OptArgs {
    /// The model: .onnx, or .kir (with INPUT.weights if present)
    #[arg(required_unless_present = "list_passes")]
    input: Option<PathBuf>,

    /// The pass pipeline: pass names separated by commas ("" runs none)
    #[arg(long, value_name = "LIST", default_value = DEFAULT_PIPELINE)]
    passes: String,

    /// Print the IR after every pass
    #[arg(long)]
    print_after_all: bool,

    /// Print the IR before each run of PASS (repeatable, or comma separated)
    #[arg(long, value_name = "PASS", value_delimiter = ',')]
    print_before: Vec<String>,

    /// Print the IR after each run of PASS (repeatable, or comma separated)
    #[arg(long, value_name = "PASS", value_delimiter = ',')]
    print_after: Vec<String>,

    /// Stop the pipeline after the first run of PASS
    #[arg(long, value_name = "PASS")]
    stop_after: Option<String>,

    /// Write the IR before the pipeline and after every pass to numbered files in DIR
    #[arg(long, value_name = "DIR")]
    dump_dir: Option<PathBuf>,

    /// Write the final IR to OUT.kir (and its weights to OUT.kir.weights) instead of stdout
    #[arg(short = 'o', long = "output", value_name = "OUT.kir")]
    output: Option<PathBuf>,

    /// Write the fusion report to FILE: per fusion rule the regions it matched and applied
    /// (with their nodes), and the op histogram of the final graph, as JSON
    #[arg(long, value_name = "FILE")]
    fusion_report: Option<PathBuf>,

    /// Let fusion rule RULE find its regions but not rewrite them (repeatable, or comma
    /// separated; `kiln opt --list-passes` lists the rules, named fuse-*)
    #[arg(long, value_name = "RULE", value_delimiter = ',')]
    disable_rule: Vec<String>,

    /// Write how often each rewrite rule matched and was applied to FILE, as JSON
    /// (`{"simplify/identity": {"matched": 2, "applied": 2}, ...}`)
    #[arg(long, value_name = "FILE")]
    stats: Option<PathBuf>,

    /// List the passes with a one-line description each, and exit
    #[arg(long)]
    list_passes: bool,
}

pub fn run(args: OptArgs) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout();
    if args.list_passes {
        let width = PASSES.iter().map(|p| p.name.len()).max().unwrap_or(0);
        for p in PASSES {
            writeln!(stdout, "{:width$}  {}", p.name, p.description)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let Some(input) = args.input else {
        anyhow::bail!("no input model given");
    };
    let manager = PassManager::parse(&args.passes)?;
    let instrument = Instrumentation {
        print_before: args.print_before.into_iter().collect::<BTreeSet<_>>(),
        print_after: args.print_after.into_iter().collect::<BTreeSet<_>>(),
        print_after_all: args.print_after_all,
        stop_after: args.stop_after,
        dump_dir: args.dump_dir,
        disabled_rules: args.disable_rule.into_iter().collect::<BTreeSet<_>>(),
    };
    manager.check_instrumentation(&instrument)?;
    let mut g = kiln_compiler::driver::load_model(&input)?;
    let (stats, report) = {
        let mut ctx = PassContext::with_output(instrument, Box::new(&mut stdout));
        manager.run(&mut g, &mut ctx)?;
        let report = FusionReport::new(&ctx, &g, &manager.names());
        (std::mem::take(&mut ctx.stats), report)
    };
    if let Some(path) = &args.fusion_report {
        std::fs::write(path, report.to_json())
            .map_err(|e| kiln_compiler::CompileError::io(path, e))?;
    }
    if let Some(path) = &args.stats {
        let json = serde_json::to_string_pretty(&stats)? + "\n";
        std::fs::write(path, json).map_err(|e| kiln_compiler::CompileError::io(path, e))?;
    }
    match &args.output {
        Some(out) => kiln_compiler::weights_file::write_kir(&g, out)?,
        None => stdout.write_all(kiln_ir::text::print(&g).as_bytes())?,
    }
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}
