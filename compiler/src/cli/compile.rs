//! `kiln compile`: a model to a deployable artifact.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::bail;
use kiln_compiler::backend::{self, DEFAULT_PIPELINE};
use kiln_compiler::passes::fuse::report::FusionReport;
use kiln_compiler::passes::{Instrumentation, PassContext, PassManager};
use kiln_targets::cpu::codegen::isa::CpuFeatures;

/// Compile a model into one deployable artifact.
///
/// Reads INPUT (.onnx, or .kir with its weights), runs the pass pipeline, lowers the graph
/// for the target and writes OUT.kiln: native code, prepacked weights (mapped at load, never
/// copied) and a manifest with the inputs, outputs, kernels and memory plan. Run it with
/// `kiln run OUT.kiln` or with kiln-runtime's `Model::load` alone; `kiln inspect` shows it.
#[derive(clap::Args)]
#[command(after_long_help = "\
DIMS:
  One artifact serves every size of the model's symbolic dims (such as `seq`) within bounds
  fixed at compile time: the activation arena is planned for the upper bounds, and a run
  outside them fails with a clear error. Give bounds with --dim NAME=MIN..MAX; dims without
  one get 0..N, with N the largest power of two up to 4096 for which the arena stays under
  2 GiB (printed after compiling).

  An Ascend target (--target ascend910b2, ascend910b4, ascend910_93) is different: its launch
  list has static shapes, as CANN's offline compiler wants (tiling, block counts and HBM
  offsets are fixed per kernel). Give every symbolic dim one size with --dim NAME=N; a range
  is refused, and compiling without them names every dim the model has. Compile one artifact
  per shape you serve (say a prefill at seq=512 and a decode step at seq=1).

EXAMPLES:
  kiln compile model.onnx -o model.kiln
  kiln compile model.onnx -o model.kiln --dim seq=1..2048 --dim batch=1..8
  kiln compile model.onnx -o model.kiln --print-after-all > ir.txt
  kiln compile model.onnx -o model.kiln --target ascend910b2 --dtype bf16 --dim seq=1")]
pub struct CompileArgs {
    /// The model: .onnx, or .kir (with INPUT.weights if present)
    input: PathBuf,

    /// Where to write the artifact
    #[arg(short = 'o', long = "output", value_name = "OUT.kiln")]
    output: PathBuf,

    /// What to compile for: `cpu` (this machine's x86-64 features), or an Ascend NPU
    /// (`ascend910b2`, `ascend910b4`, `ascend910_93`: a launch list, static shapes)
    #[arg(long, default_value = "cpu")]
    target: String,

    /// Ascend only: the device dtype of float values, `fp16` or `bf16`
    #[arg(long, value_name = "DTYPE")]
    dtype: Option<String>,

    /// The pass pipeline run before lowering
    #[arg(long, value_name = "LIST", default_value = DEFAULT_PIPELINE)]
    passes: String,

    /// Bounds of a symbolic dim, NAME=MIN..MAX or NAME=N (repeatable); Ascend targets need
    /// NAME=N for every dim (static shapes)
    #[arg(long = "dim", value_name = "NAME=MIN..MAX")]
    dims: Vec<String>,

    /// Print the IR after every pass
    #[arg(long)]
    print_after_all: bool,

    /// Print the IR before each run of PASS (repeatable, or comma separated)
    #[arg(long, value_name = "PASS", value_delimiter = ',')]
    print_before: Vec<String>,

    /// Print the IR after each run of PASS (repeatable, or comma separated)
    #[arg(long, value_name = "PASS", value_delimiter = ',')]
    print_after: Vec<String>,

    /// Write the fusion report to FILE: per fusion rule the regions it matched and applied
    /// (with their nodes), and the op histogram of the final graph, as JSON
    #[arg(long, value_name = "FILE")]
    fusion_report: Option<PathBuf>,

    /// Let fusion rule RULE find its regions but not rewrite them (repeatable, or comma
    /// separated; `kiln opt --list-passes` lists the rules, named fuse-*)
    #[arg(long, value_name = "RULE", value_delimiter = ',')]
    disable_rule: Vec<String>,

    /// Write the IR before the pipeline and after every pass to numbered files in DIR
    #[arg(long, value_name = "DIR")]
    dump_dir: Option<PathBuf>,
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

pub fn run(args: CompileArgs) -> anyhow::Result<ExitCode> {
    let ascend = match args.target.as_str() {
        "cpu" => None,
        t => Some(kiln_runtime::ascend::Profile::by_name(t).ok_or_else(|| {
            anyhow::anyhow!(
                "--target {t}: unknown target (this kiln compiles for: cpu, {})",
                kiln_runtime::ascend::Profile::names().join(", ")
            )
        })?),
    };
    let device_dtype = match (&args.dtype, ascend) {
        (Some(d), Some(_)) => backend::parse_device_dtype(d).map_err(anyhow::Error::msg)?,
        (None, _) => kiln_runtime::ElemType::F16,
        (Some(_), None) => {
            bail!("--dtype is for Ascend targets; the CPU computes in the graph's dtypes")
        }
    };
    let mut bounds = HashMap::new();
    for spec in &args.dims {
        let (name, b) = backend::parse_dim_bound(spec).map_err(anyhow::Error::msg)?;
        if bounds.insert(name.clone(), b).is_some() {
            bail!("--dim {name} is given twice");
        }
    }
    let manager = PassManager::parse(&args.passes)?;
    let instrument = Instrumentation {
        print_before: args.print_before.into_iter().collect::<BTreeSet<_>>(),
        print_after: args.print_after.into_iter().collect::<BTreeSet<_>>(),
        print_after_all: args.print_after_all,
        stop_after: None,
        dump_dir: args.dump_dir,
        disabled_rules: args.disable_rule.into_iter().collect::<BTreeSet<_>>(),
    };
    manager.check_instrumentation(&instrument)?;
    let start = Instant::now();
    eprintln!("kiln: loading {}", args.input.display());
    let mut g = kiln_compiler::driver::load_model(&args.input)?;
    eprintln!(
        "kiln: {} nodes; running {} and compiling for {}",
        g.node_count(),
        args.passes,
        ascend.map_or("the CPU", |p| p.name)
    );
    let mut stdout = std::io::stdout();
    if let Some(profile) = ascend {
        let out = (args.output.as_path(), args.fusion_report.as_deref());
        return compile_ascend(
            out,
            g,
            &manager,
            instrument,
            profile,
            device_dtype,
            bounds,
            start,
        );
    }
    let artifact = {
        let mut ctx = PassContext::with_output(instrument, Box::new(&mut stdout));
        let artifact =
            backend::compile_cpu(&mut g, &manager, &mut ctx, bounds, CpuFeatures::host())?;
        if let Some(path) = &args.fusion_report {
            let report = FusionReport::new(&ctx, &g, &manager.names());
            std::fs::write(path, report.to_json())
                .map_err(|e| kiln_compiler::CompileError::io(path, e))?;
        }
        artifact
    };
    artifact.write(&args.output)?;
    let m = &artifact.manifest;
    let code: u64 = m.kernels.iter().map(|k| k.len).sum::<u64>() + m.entry.len;
    let weights: u64 = m.weights.iter().map(|w| w.bytes).sum();
    eprintln!(
        "kiln: wrote {} in {:.2} s: {} steps, {} kernels ({:.1} KiB of code), arena {}, weights {}",
        args.output.display(),
        start.elapsed().as_secs_f64(),
        m.steps.len(),
        m.kernels.len(),
        code as f64 / 1024.0,
        mib(m.arena.bytes),
        mib(weights)
    );
    for s in &m.symbols {
        let how = if artifact.defaulted.iter().any(|d| d.0 == s.name) {
            " (default; set with --dim)"
        } else {
            ""
        };
        eprintln!("kiln: dim {} = {}..{}{how}", s.name, s.min, s.max);
    }
    Ok(ExitCode::SUCCESS)
}

/// `kiln compile --target ascend*`: a launch list for static shapes (every `--dim` N..N).
#[allow(clippy::too_many_arguments)]
fn compile_ascend(
    (output, fusion_report): (&std::path::Path, Option<&std::path::Path>),
    mut g: kiln_ir::Graph,
    manager: &PassManager,
    instrument: Instrumentation,
    profile: &'static kiln_runtime::ascend::Profile,
    dtype: kiln_runtime::ElemType,
    bounds: HashMap<String, (i64, i64)>,
    start: Instant,
) -> anyhow::Result<ExitCode> {
    let mut dims = HashMap::new();
    for (name, (lo, hi)) in bounds {
        if lo != hi {
            bail!("--dim {name}={lo}..{hi}: an Ascend launch list has static shapes; give --dim {name}=N");
        }
        dims.insert(name, lo);
    }
    let mut stdout = std::io::stdout();
    let mut ctx = PassContext::with_output(instrument, Box::new(&mut stdout));
    let options = kiln_targets::ascend::AscendOptions {
        profile,
        dtype,
        dims,
    };
    let artifact = backend::compile_ascend(&mut g, manager, &mut ctx, &options)?;
    if let Some(path) = fusion_report {
        let report = FusionReport::new(&ctx, &g, &manager.names());
        std::fs::write(path, report.to_json())
            .map_err(|e| kiln_compiler::CompileError::io(path, e))?;
    }
    artifact.write(output)?;
    let l = &artifact.launch;
    eprintln!(
        "kiln: wrote {} in {:.2} s: {} kernels for {} in {}, HBM {} (weights {})",
        output.display(),
        start.elapsed().as_secs_f64(),
        l.kernels.len(),
        l.profile,
        l.dtype,
        kiln_runtime::ascend::report::size(l.hbm.bytes),
        kiln_runtime::ascend::report::size(l.hbm.weights_bytes)
    );
    Ok(ExitCode::SUCCESS)
}
