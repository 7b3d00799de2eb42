//! `kiln bench`: the latency of a compiled model.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{anyhow, bail};
use kiln_compiler::backend::{self, DEFAULT_PIPELINE};
use kiln_compiler::passes::{PassContext, PassManager};
use kiln_ir::{DType, Tensor};
use kiln_runtime::model::manifest::TensorSpec;
use kiln_runtime::{Model, ModelOptions};
use kiln_targets::cpu::codegen::isa::CpuFeatures;

use crate::cli::inspect::type_string;
use crate::cli::run::read_inputs;

/// Measure how long a model takes to run.
///
/// INPUT is a .kiln artifact, or an .onnx / .kir model, which is first compiled for this CPU
/// with the default pipeline (into a temporary file, removed after loading), its dims bounded
/// to exactly the sizes benchmarked.
///
/// Inputs come from `--input NAME=FILE.npy` where given, else are generated: floats
/// normally distributed (mean 0, deviation 1), integers that index a table (a Gather's
/// indices: the artifact records the table size) uniformly inside it, other integers 1
/// (masks), bools true. Symbolic dims come from the given files, then `--dim`, else default
/// to 128 for dims whose name contains `seq` or `len` (within the compiled bounds) and to
/// their lower bound otherwise. Prints what it used, then runs the model `--warmup` times
/// untimed and `--runs` times timed, and prints e.g.
/// `median 12.3 ms (min 11.9, max 13.0, 50 runs)`.
///
/// With `--profile`, the timed runs also record when each step of the schedule ends (a
/// clock read per step), and a table follows: the time of each step (its median over the
/// runs, or with `--stat min` its minimum), summed by op type and by kernel or helper, then
/// the slowest steps (`--top`). Steps are numbered as in `kiln inspect --all`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    kiln bench minilm.kiln --dim batch=1 --dim seq=128 --threads 2\n  \
    kiln bench model.onnx --input ids=ids.npy --runs 100\n  \
    kiln bench minilm.kiln --threads 2 --profile --top 20")]
pub struct BenchArgs {
    /// The model: a .kiln artifact, or an .onnx / .kir model to compile first.
    input: PathBuf,
    /// A graph input, as NAME=FILE.npy (repeatable); the others are generated.
    #[arg(long = "input", short = 'i', value_name = "NAME=FILE.npy")]
    inputs: Vec<String>,
    /// The size of a symbolic dim, NAME=N (repeatable).
    #[arg(long = "dim", value_name = "NAME=N")]
    dims: Vec<String>,
    /// Threads for intra-op parallelism (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Timed runs.
    #[arg(long, default_value_t = 50)]
    runs: usize,
    /// Untimed runs first.
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Seed of the generated inputs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Time every step too, and print where the time goes.
    #[arg(long)]
    profile: bool,
    /// With --profile: how many of the slowest steps to list.
    #[arg(long, default_value_t = 15, value_name = "N")]
    top: usize,
    /// With --profile: a step's time over the runs is its median, or its minimum (closer
    /// to the unloaded time when other work shares the cores).
    #[arg(long, value_enum, default_value_t = StepStat::Median)]
    stat: StepStat,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum StepStat {
    Median,
    Min,
}

/// Whether a dim's name suggests a sequence length.
fn seq_like(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("seq") || n.contains("len")
}

/// The default size of a dim with bounds `min..max`.
fn default_dim(name: &str, min: i64, max: i64) -> i64 {
    if seq_like(name) {
        128.clamp(min, max)
    } else {
        min
    }
}

/// Parses the `--dim NAME=N` arguments.
fn parse_dims(specs: &[String]) -> anyhow::Result<HashMap<String, i64>> {
    let mut dims = HashMap::new();
    for spec in specs {
        let parsed = spec
            .split_once('=')
            .and_then(|(n, v)| Some((n, v.trim().parse::<i64>().ok()?)));
        let Some((name, v)) = parsed.filter(|(n, v)| !n.is_empty() && *v >= 1) else {
            bail!("--dim {spec}: expected NAME=N with N >= 1 (e.g. seq=128)");
        };
        if dims.insert(name.to_string(), v).is_some() {
            bail!("--dim {name} is given twice");
        }
    }
    Ok(dims)
}

/// A small deterministic generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn unit(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// An input generated for `spec` at `shape`, and how it was made.
fn generate(spec: &TensorSpec, shape: &[usize], rng: &mut Rng) -> anyhow::Result<(Tensor, String)> {
    let dtype = kiln_ir::DType::ALL
        .into_iter()
        .find(|d| d.name() == spec.dtype)
        .ok_or_else(|| anyhow!("input \"{}\": unknown dtype {}", spec.name, spec.dtype))?;
    let n: usize = shape.iter().product();
    let shape = shape.to_vec();
    Ok(if dtype == DType::Bool {
        (Tensor::from_bools(shape, vec![true; n])?, "all true".into())
    } else if dtype.is_int() {
        match spec.index_range {
            Some(r) if r > 0 => {
                let v: Vec<i64> = (0..n).map(|_| (rng.next() % r as u64) as i64).collect();
                (
                    Tensor::from_i64(dtype, shape, &v),
                    format!("random indices in 0..{r}"),
                )
            }
            _ => (
                Tensor::from_i64(dtype, shape, &vec![1; n]),
                "all 1 (not an index)".into(),
            ),
        }
    } else if dtype.is_float() {
        let v: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        (Tensor::from_f64(dtype, shape, &v), "random normal".into())
    } else {
        bail!(
            "input \"{}\": cannot generate {} data; give it with --input",
            spec.name,
            spec.dtype
        )
    })
}

/// Compiles a model for this CPU into a temporary artifact, with each symbolic dim bounded
/// to exactly the size benchmarked; loads it and removes the file (the mapping stays).
fn compile_temp(
    path: &Path,
    given: &HashMap<String, Tensor>,
    dims: &HashMap<String, i64>,
    options: &ModelOptions,
) -> anyhow::Result<Model> {
    let start = Instant::now();
    let mut g = kiln_compiler::driver::load_model(path)?;
    // Sizes of the symbols: from the given files, then --dim, then the defaults.
    let mut bounds: HashMap<String, (i64, i64)> = HashMap::new();
    for &v in g.inputs() {
        let name = g.input_name(v).unwrap_or_default();
        let ty = g.value_type(v);
        for (i, d) in ty.shape.iter().enumerate() {
            let Some(sym) = d.as_sym() else { continue };
            if let Some(got) = given.get(name).and_then(|t| t.shape().get(i)) {
                bounds
                    .entry(sym.to_string())
                    .or_insert((*got as i64, *got as i64));
            }
        }
    }
    let mut chosen: Vec<String> = Vec::new();
    for &v in g.inputs() {
        for d in &g.value_type(v).shape {
            let mut syms = Vec::new();
            d.symbols(&mut syms);
            for s in syms {
                if bounds.contains_key(&*s) {
                    continue;
                }
                let n = dims
                    .get(&*s)
                    .copied()
                    .unwrap_or_else(|| default_dim(&s, 1, i64::MAX));
                bounds.insert(s.to_string(), (n, n));
                chosen.push(format!("{s}={n}"));
            }
        }
    }
    eprintln!(
        "kiln: compiling {} for this CPU ({}; dims bounded to the sizes benchmarked{})",
        path.display(),
        DEFAULT_PIPELINE,
        if chosen.is_empty() {
            String::new()
        } else {
            format!(": {}", chosen.join(", "))
        }
    );
    let manager = PassManager::parse(DEFAULT_PIPELINE)?;
    let mut ctx = PassContext::new();
    let art = backend::compile_cpu(&mut g, &manager, &mut ctx, bounds, CpuFeatures::host())?;
    let file = std::env::temp_dir().join(format!("kiln-bench-{}.kiln", std::process::id()));
    art.write(&file)?;
    let model = Model::load_with(&file, options);
    let _ = std::fs::remove_file(&file);
    eprintln!("kiln: compiled in {:.2} s", start.elapsed().as_secs_f64());
    Ok(model?)
}

/// The median of `v` (sorted in place); 0 when empty.
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The op type of a step label (`MatMul node "x"` -> `MatMul`).
fn op_type(label: &str) -> &str {
    label.split(' ').next().unwrap_or(label)
}

/// A kernel name cut to fit a table row (generated kernels' keys can be long).
fn short(name: &str) -> String {
    const MAX: usize = 60;
    match name.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &name[..at]),
        None => name.to_string(),
    }
}

/// Where the time goes: the steps' median times summed by op type and by callee, then the
/// `top` slowest steps.
fn profile_table(m: &kiln_runtime::model::Manifest, per_step: &[f64], top: usize) -> String {
    use std::fmt::Write;
    let total: f64 = per_step.iter().sum();
    let pct = |t: f64| if total > 0.0 { 100.0 * t / total } else { 0.0 };
    let mut out = String::new();
    let mut group = |title: &str, key: &dyn Fn(usize) -> String| {
        let mut sums: Vec<(String, f64, usize)> = Vec::new();
        for (i, &t) in per_step.iter().enumerate() {
            let k = key(i);
            match sums.iter_mut().find(|s| s.0 == k) {
                Some(s) => {
                    s.1 += t;
                    s.2 += 1;
                }
                None => sums.push((k, t, 1)),
            }
        }
        sums.sort_by(|a, b| b.1.total_cmp(&a.1));
        let w = sums
            .iter()
            .map(|s| s.0.len())
            .max()
            .unwrap_or(0)
            .max(title.len());
        let _ = writeln!(out, "{title:w$}  {:>9}  {:>6}  steps", "ms", "%");
        for (k, t, n) in &sums {
            let _ = writeln!(out, "{k:w$}  {:>9.3}  {:>5.1}%  {n}", t * 1e3, pct(*t));
        }
        let _ = writeln!(out);
    };
    group("op", &|i| op_type(&m.steps[i].op).to_string());
    group("kernel or helper", &|i| short(&m.steps[i].kernel));
    let mut order: Vec<usize> = (0..per_step.len()).collect();
    order.sort_by(|&a, &b| per_step[b].total_cmp(&per_step[a]));
    let _ = writeln!(out, "slowest steps          ms       %  op / callee");
    for &i in order.iter().take(top) {
        let s = &m.steps[i];
        let _ = writeln!(
            out,
            "{i:>5}  {:>12.3}  {:>5.1}%  {} / {}",
            per_step[i] * 1e3,
            pct(per_step[i]),
            s.op,
            short(&s.kernel)
        );
    }
    let _ = writeln!(
        out,
        "sum of step times {} ms over {} steps\n",
        ms(total),
        per_step.len()
    );
    out
}

/// Milliseconds with three significant figures.
fn ms(secs: f64) -> String {
    let m = secs * 1e3;
    if m >= 100.0 {
        format!("{m:.0}")
    } else if m >= 10.0 {
        format!("{m:.1}")
    } else if m >= 1.0 {
        format!("{m:.2}")
    } else {
        format!("{m:.3}")
    }
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let mut given = read_inputs(&args.inputs)?;
    let dims = parse_dims(&args.dims)?;
    let options = ModelOptions {
        threads: args.threads,
        features: None,
    };
    let mut loaded = None;
    let model = if args.input.extension().is_some_and(|e| e == "kiln") {
        let start = Instant::now();
        let model = Model::load_with(&args.input, &options)?;
        loaded = Some(start.elapsed().as_secs_f64() * 1e3);
        model
    } else {
        compile_temp(&args.input, &given, &dims, &options)?
    };
    let m = model.manifest();
    let names: Vec<String> = m.symbols.iter().map(|s| s.name.clone()).collect();
    if let Some(name) = given
        .keys()
        .filter(|n| !m.inputs.iter().any(|s| &s.name == *n))
        .min()
    {
        let all: Vec<&str> = m.inputs.iter().map(|s| s.name.as_str()).collect();
        bail!(
            "the model has no input named \"{name}\" (its inputs: {})",
            all.join(", ")
        );
    }
    if let Some(name) = dims.keys().filter(|n| !names.contains(n)).min() {
        bail!(
            "--dim {name}: the model has no dim named `{name}` (its dims: {})",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        );
    }
    // Symbol values: from the given files, then --dim, then defaults.
    let mut values: Vec<Option<(i64, String)>> = vec![None; m.symbols.len()];
    for spec in &m.inputs {
        let Some(t) = given.get(&spec.name) else {
            continue;
        };
        for (d, &got) in spec.shape.iter().zip(t.shape()) {
            if let Some(s) = d.as_sym() {
                if values.get(s).is_some_and(Option::is_none) {
                    values[s] = Some((got as i64, format!("from {}", spec.name)));
                }
            }
        }
    }
    for (i, s) in m.symbols.iter().enumerate() {
        if values[i].is_some() {
            if dims.contains_key(&s.name) {
                eprintln!(
                    "kiln: note: --dim {} is ignored: the size comes from a given input",
                    s.name
                );
            }
            continue;
        }
        values[i] = Some(match dims.get(&s.name) {
            Some(&v) if v < s.min || v > s.max => bail!(
                "--dim {}={v} is outside the bounds the model was compiled for ({}..{})",
                s.name,
                s.min,
                s.max
            ),
            Some(&v) => (v, "--dim".into()),
            None => {
                let v = default_dim(&s.name, s.min, s.max);
                let why = if seq_like(&s.name) && v == 128 {
                    "default for sequence dims"
                } else if seq_like(&s.name) {
                    "default, 128 clamped to the bounds"
                } else {
                    "default: the lower bound"
                };
                (v, why.into())
            }
        });
    }
    if let Some(ms) = loaded {
        eprintln!("kiln: loaded {} in {ms:.1} ms", args.input.display());
    }
    let values: Vec<(i64, String)> = values.into_iter().flatten().collect();
    let symbols: Vec<i64> = values.iter().map(|v| v.0).collect();
    for (s, (v, why)) in m.symbols.iter().zip(&values) {
        eprintln!(
            "kiln: dim {} = {v} ({why}; compiled for {}..{})",
            s.name, s.min, s.max
        );
    }

    // Inputs.
    let mut rng = Rng(args.seed);
    let mut inputs = Vec::with_capacity(m.inputs.len());
    for spec in &m.inputs {
        let (t, how) = match given.remove(&spec.name) {
            Some(t) => (t, "from file".to_string()),
            None => {
                let shape = spec
                    .shape
                    .iter()
                    .map(|d| d.eval(&symbols).and_then(|v| usize::try_from(v).ok()))
                    .collect::<Option<Vec<usize>>>()
                    .ok_or_else(|| {
                        anyhow!(
                            "input \"{}\": cannot size {} for these dims",
                            spec.name,
                            type_string(spec, &names)
                        )
                    })?;
                generate(spec, &shape, &mut rng)?
            }
        };
        eprintln!(
            "kiln: input {} {}[{}]: {how}",
            spec.name,
            t.dtype(),
            t.shape()
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        inputs.push(backend::to_runtime(&t));
    }

    eprintln!(
        "kiln: {} threads; {} warm-up runs, {} timed runs",
        model.threads(),
        args.warmup,
        args.runs
    );
    for _ in 0..args.warmup {
        model.run(&inputs)?;
    }
    let mut times = Vec::with_capacity(args.runs);
    // Per step, its time in each run (profiled runs).
    let mut step_times: Vec<Vec<f64>> = vec![Vec::with_capacity(args.runs); m.steps.len()];
    for _ in 0..args.runs {
        let t = Instant::now();
        let out = if args.profile {
            let (out, steps) = model.run_profiled(&inputs)?;
            for (all, d) in step_times.iter_mut().zip(steps) {
                all.push(d.as_secs_f64());
            }
            out
        } else {
            model.run(&inputs)?
        };
        times.push(t.elapsed().as_secs_f64());
        drop(out);
    }
    let median_time = median(&mut times);
    if args.profile {
        let per_step: Vec<f64> = step_times
            .iter_mut()
            .map(|t| match args.stat {
                StepStat::Median => median(t),
                StepStat::Min => t.iter().copied().fold(f64::INFINITY, f64::min),
            })
            .collect();
        print!("{}", profile_table(m, &per_step, args.top));
    }
    let n = times.len();
    println!(
        "median {} ms (min {}, max {}, {n} runs)",
        ms(median_time),
        ms(times[0]),
        ms(times[n - 1])
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dims_and_defaults() {
        assert_eq!(default_dim("seq", 1, 4096), 128);
        assert_eq!(default_dim("seq_len", 1, 64), 64);
        assert_eq!(default_dim("total_sequence_length", 200, 512), 200);
        assert_eq!(default_dim("batch", 1, 8), 1);
        assert_eq!(default_dim("past", 3, 8), 3);
        let d = parse_dims(&["seq=128".into(), "batch=2".into()]).unwrap();
        assert_eq!(d["seq"], 128);
        assert_eq!(
            parse_dims(&["seq".into()]).unwrap_err().to_string(),
            "--dim seq: expected NAME=N with N >= 1 (e.g. seq=128)"
        );
        assert_eq!(
            parse_dims(&["seq=1".into(), "seq=2".into()])
                .unwrap_err()
                .to_string(),
            "--dim seq is given twice"
        );
    }

    #[test]
    fn profile_tables_sum_by_op_and_callee() {
        use kiln_runtime::model::manifest::{ArenaSpec, FunctionSpan, StepSpec};
        let step = |op: &str, kernel: &str| StepSpec {
            op: op.into(),
            kernel: kernel.into(),
        };
        let m = kiln_runtime::model::Manifest {
            format: String::new(),
            name: "t".into(),
            symbols: vec![],
            inputs: vec![],
            outputs: vec![],
            entry: FunctionSpan { offset: 0, len: 0 },
            kernels: vec![],
            helpers: vec![],
            arena: ArenaSpec {
                bytes: 0,
                buffers: vec![],
            },
            weights: vec![],
            steps: vec![
                step("MatMul node \"a\"", "helper gemm_f32_packed"),
                step("Add node \"b\"", "k1"),
                step("MatMul node \"c\"", "helper gemm_f32"),
            ],
        };
        let table = profile_table(&m, &[0.003, 0.001, 0.004], 2);
        let want = "\
op             ms       %  steps
MatMul      7.000   87.5%  2
Add         1.000   12.5%  1

kernel or helper               ms       %  steps
helper gemm_f32             4.000   50.0%  1
helper gemm_f32_packed      3.000   37.5%  1
k1                          1.000   12.5%  1

slowest steps          ms       %  op / callee
    2         4.000   50.0%  MatMul node \"c\" / helper gemm_f32
    0         3.000   37.5%  MatMul node \"a\" / helper gemm_f32_packed
sum of step times 8.00 ms over 3 steps

";
        assert_eq!(table, want);
        assert_eq!(short(&"x".repeat(70)), format!("{}…", "x".repeat(60)));
        assert_eq!(median(&mut [3.0, 1.0, 2.0, 10.0]), 2.5);
    }

    #[test]
    fn generated_inputs_stay_in_range() {
        let mut rng = Rng(7);
        let spec = TensorSpec {
            name: "ids".into(),
            dtype: "i64".into(),
            shape: vec![],
            index_range: Some(30),
        };
        let (t, how) = generate(&spec, &[1000], &mut rng).unwrap();
        assert_eq!(how, "random indices in 0..30");
        assert!(t.to_i64().iter().all(|&i| (0..30).contains(&i)));
        let mask = TensorSpec {
            index_range: None,
            ..spec
        };
        let (t, _) = generate(&mask, &[4], &mut rng).unwrap();
        assert_eq!(t.to_i64(), vec![1; 4]);
        let x: Vec<f64> = (0..10_000).map(|_| rng.normal()).collect();
        let mean = x.iter().sum::<f64>() / x.len() as f64;
        let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / x.len() as f64;
        assert!(
            mean.abs() < 0.05 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
    }
}
