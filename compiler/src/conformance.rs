//! The ONNX backend node test runner behind `kiln conformance`.
//!
//! A case is a folder `NAME/` with `model.onnx` and `test_data_set_*/{input,output}_K.pb`
//! (serialized `TensorProto`s). Inputs bind, in order, to the graph inputs (the ONNX inputs
//! that are not initializers); outputs compare, in order, with the graph outputs, like ONNX's
//! backend test runner: same dtype and shape, then `np.testing.assert_allclose` with
//! rtol 1e-3 and atol 1e-7 (a case's `data.json` may override them; bf16 gets rtol >= 2^-6),
//! NaN equal to NaN; integers and bools exactly.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use kiln_ir::{DType, Tensor};
use regex::Regex;

use crate::frontend::onnx::tensor::read_tensor_pb;

/// The default relative tolerance of ONNX's backend tests.
pub const RTOL: f64 = 1e-3;
/// The default absolute tolerance of ONNX's backend tests.
pub const ATOL: f64 = 1e-7;

/// Where a case failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The model does not import.
    Import,
    /// The test data cannot be read or does not fit the graph.
    Data,
    /// The compiler rejected the graph (compiled engine).
    Compile,
    /// The interpreter or the compiled artifact failed.
    Run,
    /// An output differs from the expected one.
    Mismatch,
    /// kiln panicked (a bug).
    Panic,
    /// The case ran longer than the timeout.
    Timeout,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Import => "import error",
            Stage::Data => "test data error",
            Stage::Compile => "compile error",
            Stage::Run => "run error",
            Stage::Mismatch => "mismatch",
            Stage::Panic => "panic",
            Stage::Timeout => "timeout",
        })
    }
}

/// Why a case failed.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    pub stage: Stage,
    /// One line.
    pub msg: String,
}

impl Failure {
    fn new(stage: Stage, msg: impl fmt::Display) -> Failure {
        Failure {
            stage,
            msg: one_line(&msg.to_string()),
        }
    }

    /// The reason class for an expected-failures list (`unsupported op X`, `numerics`, ...).
    pub fn class(&self) -> String {
        classify(self)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.stage, self.msg)
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The result of one case.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Pass,
    Fail(Failure),
    /// Not a runnable test case (no model or no test data).
    Skip(String),
}

#[derive(Clone, Debug)]
pub struct CaseResult {
    pub name: String,
    pub outcome: Outcome,
}

/// The case folders of `dir` whose names match `filter`, sorted.
pub fn list_cases(dir: &Path, filter: Option<&Regex>) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if !e.file_type()?.is_dir() {
            continue;
        }
        let name = e.file_name().to_string_lossy().to_string();
        if filter.is_none_or(|f| f.is_match(&name)) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Files `PREFIX_K.pb` of a data set folder, ordered by K.
fn numbered(dir: &Path, prefix: &str) -> std::io::Result<Vec<PathBuf>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let name = e?.file_name().to_string_lossy().to_string();
        if let Some(k) = name
            .strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(".pb"))
            .and_then(|k| k.parse::<usize>().ok())
        {
            v.push((k, dir.join(&name)));
        }
    }
    v.sort();
    Ok(v.into_iter().map(|(_, p)| p).collect())
}

/// rtol/atol of a case: ONNX's defaults, or its `data.json`.
fn tolerances(case: &Path) -> (f64, f64) {
    let (mut rtol, mut atol) = (RTOL, ATOL);
    if let Ok(s) = std::fs::read_to_string(case.join("data.json")) {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&s) {
            rtol = v.get("rtol").and_then(|x| x.as_f64()).unwrap_or(rtol);
            atol = v.get("atol").and_then(|x| x.as_f64()).unwrap_or(atol);
        }
    }
    (rtol, atol)
}

/// What runs a case: the reference interpreter, or the CPU compiler and the runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Interpreter,
    Compiled,
}

/// A graph ready to run test sets on.
enum Runner {
    Interpreter(kiln_ir::Graph),
    Compiled(Box<kiln_runtime::Model>, Vec<String>),
}

impl Runner {
    fn new(g: kiln_ir::Graph, engine: Engine, case: &Path) -> Result<Runner, Failure> {
        match engine {
            Engine::Interpreter => Ok(Runner::Interpreter(g)),
            Engine::Compiled => {
                let mut g = g;
                let names = g
                    .inputs()
                    .iter()
                    .map(|&v| g.input_name(v).unwrap_or_default().to_string())
                    .collect();
                let pipeline = crate::passes::PassManager::parse(crate::backend::DEFAULT_PIPELINE)
                    .map_err(|e| Failure::new(Stage::Compile, e))?;
                let mut ctx = crate::passes::PassContext::new();
                let art = crate::backend::compile_cpu(
                    &mut g,
                    &pipeline,
                    &mut ctx,
                    HashMap::new(),
                    kiln_targets::cpu::codegen::isa::CpuFeatures::host(),
                )
                .map_err(|e| Failure::new(Stage::Compile, e))?;
                let dir =
                    std::env::temp_dir().join(format!("kiln-conformance-{}", std::process::id()));
                std::fs::create_dir_all(&dir).map_err(|e| Failure::new(Stage::Compile, e))?;
                let name = case.file_name().unwrap_or_default().to_string_lossy();
                let path = dir.join(format!("{name}.kiln"));
                art.write(&path)
                    .map_err(|e| Failure::new(Stage::Compile, e))?;
                let model = kiln_runtime::Model::load_with(
                    &path,
                    &kiln_runtime::ModelOptions {
                        threads: 1,
                        features: None,
                    },
                )
                .map_err(|e| Failure::new(Stage::Compile, e));
                let _ = std::fs::remove_file(&path);
                Ok(Runner::Compiled(Box::new(model?), names))
            }
        }
    }

    fn inputs(&self) -> usize {
        match self {
            Runner::Interpreter(g) => g.inputs().len(),
            Runner::Compiled(_, names) => names.len(),
        }
    }

    fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<(String, Tensor)>, String> {
        match self {
            Runner::Interpreter(g) => {
                let named = g
                    .inputs()
                    .iter()
                    .map(|&v| g.input_name(v).unwrap_or_default().to_string())
                    .zip(inputs)
                    .collect();
                kiln_ir::interp::run(g, &named).map_err(|e| e.to_string())
            }
            Runner::Compiled(model, _) => {
                let rt: Vec<_> = inputs.iter().map(crate::backend::to_runtime).collect();
                let outs = model.run(&rt).map_err(|e| e.to_string())?;
                model
                    .manifest()
                    .outputs
                    .iter()
                    .zip(&outs)
                    .map(|(s, t)| {
                        Ok((
                            s.name.clone(),
                            crate::backend::from_runtime(t).map_err(|e| e.to_string())?,
                        ))
                    })
                    .collect()
            }
        }
    }
}

/// Runs one case folder on the interpreter.
pub fn run_case(case: &Path) -> Outcome {
    run_case_on(case, Engine::Interpreter)
}

/// Runs one case folder on `engine`.
pub fn run_case_on(case: &Path, engine: Engine) -> Outcome {
    let model = case.join("model.onnx");
    if !model.is_file() {
        return Outcome::Skip("no model.onnx".into());
    }
    let mut sets: Vec<PathBuf> = match std::fs::read_dir(case) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("test_data_set_")
                    && e.path().is_dir()
            })
            .map(|e| e.path())
            .collect(),
        Err(e) => return Outcome::Skip(format!("cannot list the case: {e}")),
    };
    if sets.is_empty() {
        return Outcome::Skip("no test_data_set_* folder".into());
    }
    sets.sort();
    let g = match crate::frontend::onnx::import_file(&model) {
        Ok(g) => g,
        Err(e) => return Outcome::Fail(Failure::new(Stage::Import, e)),
    };
    let (rtol, atol) = tolerances(case);
    let runner = match Runner::new(g, engine, case) {
        Ok(r) => r,
        Err(f) => return Outcome::Fail(f),
    };
    for set in &sets {
        let set_name = set.file_name().unwrap_or_default().to_string_lossy();
        let prefix = if sets.len() > 1 {
            format!("{set_name}: ")
        } else {
            String::new()
        };
        let (ins, outs) = match (numbered(set, "input_"), numbered(set, "output_")) {
            (Ok(i), Ok(o)) => (i, o),
            (Err(e), _) | (_, Err(e)) => {
                return Outcome::Fail(Failure::new(Stage::Data, format!("{prefix}{e}")))
            }
        };
        if ins.len() != runner.inputs() {
            return Outcome::Fail(Failure::new(
                Stage::Data,
                format!(
                    "{prefix}{} input files for {} graph inputs",
                    ins.len(),
                    runner.inputs()
                ),
            ));
        }
        let mut inputs = Vec::new();
        for path in &ins {
            match read_tensor_pb(path) {
                Ok((_, t)) => inputs.push(t),
                Err(e) => return Outcome::Fail(Failure::new(Stage::Data, format!("{prefix}{e}"))),
            }
        }
        let results = match runner.run(inputs) {
            Ok(r) => r,
            Err(e) => return Outcome::Fail(Failure::new(Stage::Run, format!("{prefix}{e}"))),
        };
        if outs.len() != results.len() {
            return Outcome::Fail(Failure::new(
                Stage::Data,
                format!(
                    "{prefix}{} output files for {} graph outputs",
                    outs.len(),
                    results.len()
                ),
            ));
        }
        for (k, (path, (name, got))) in outs.iter().zip(&results).enumerate() {
            let want = match read_tensor_pb(path) {
                Ok((_, t)) => t,
                Err(e) => return Outcome::Fail(Failure::new(Stage::Data, format!("{prefix}{e}"))),
            };
            if let Err(m) = compare(&want, got, rtol, atol) {
                return Outcome::Fail(Failure::new(
                    Stage::Mismatch,
                    format!("{prefix}output {k} \"{name}\": {m}"),
                ));
            }
        }
    }
    Outcome::Pass
}

/// A flat index as a multi-index for messages.
fn multi_index(mut i: usize, shape: &[usize]) -> String {
    let mut idx = vec![0; shape.len()];
    for a in (0..shape.len()).rev() {
        if shape[a] > 0 {
            idx[a] = i % shape[a];
            i /= shape[a];
        }
    }
    format!("{idx:?}")
}

/// Compares like ONNX's backend tests; `Err` says how the tensors differ, on one line.
pub fn compare(want: &Tensor, got: &Tensor, rtol: f64, atol: f64) -> Result<(), String> {
    if want.dtype() != got.dtype() {
        return Err(format!(
            "dtype: expected {}, got {}",
            want.dtype(),
            got.dtype()
        ));
    }
    if want.shape() != got.shape() {
        return Err(format!(
            "shape: expected {:?}, got {:?}",
            want.shape(),
            got.shape()
        ));
    }
    let dtype = want.dtype();
    if !dtype.is_float() {
        let (w, g) = (want.to_i64(), got.to_i64());
        let bad: Vec<usize> = (0..w.len()).filter(|&i| w[i] != g[i]).collect();
        if let Some(&i) = bad.first() {
            let show = |v: i64| -> String {
                match dtype {
                    DType::Bool => (v != 0).to_string(),
                    DType::U64 => (v as u64).to_string(),
                    _ => v.to_string(),
                }
            };
            return Err(format!(
                "{} of {} elements differ, first at {}: expected {}, got {}",
                bad.len(),
                w.len(),
                multi_index(i, want.shape()),
                show(w[i]),
                show(g[i])
            ));
        }
        return Ok(());
    }
    let rtol = if dtype == DType::BF16 {
        rtol.max(1.0 / 64.0)
    } else {
        rtol
    };
    let (w, g) = (want.to_f64(), got.to_f64());
    let mut first = None;
    let mut count = 0usize;
    let (mut max_abs, mut max_rel) = (0f64, 0f64);
    for i in 0..w.len() {
        let (e, a) = (w[i], g[i]);
        let ok = if e.is_nan() || a.is_nan() {
            e.is_nan() && a.is_nan()
        } else if e.is_infinite() || a.is_infinite() {
            e == a
        } else {
            let d = (a - e).abs();
            max_abs = max_abs.max(d);
            if e != 0.0 {
                max_rel = max_rel.max(d / e.abs());
            }
            d <= atol + rtol * e.abs()
        };
        if !ok {
            count += 1;
            first.get_or_insert(i);
        }
    }
    if let Some(i) = first {
        return Err(format!(
            "{count} of {} elements differ, first at {}: expected {}, got {} (max abs error {:.3e}, max rel error {:.3e}; rtol {rtol:e}, atol {atol:e})",
            w.len(),
            multi_index(i, want.shape()),
            show_float(w[i], dtype),
            show_float(g[i], dtype),
            max_abs,
            max_rel
        ));
    }
    Ok(())
}

/// A float for messages: shortest round-trip text at the dtype's precision, with an
/// exponent when very small or large.
fn show_float(x: f64, dtype: DType) -> String {
    let small = x != 0.0 && (x.abs() < 1e-4 || x.abs() >= 1e7);
    if dtype == DType::F64 {
        if small {
            format!("{x:e}")
        } else {
            format!("{x}")
        }
    } else {
        let y = x as f32;
        if small {
            format!("{y:e}")
        } else {
            format!("{y}")
        }
    }
}

/// The reason class of a failure, for expected-failure lists.
pub fn classify(f: &Failure) -> String {
    let m = f.msg.as_str();
    match f.stage {
        Stage::Panic => "panic".into(),
        Stage::Timeout => "timeout".into(),
        Stage::Mismatch => {
            let tail = m.split_once("\": ").map_or(m, |(_, t)| t);
            if tail.starts_with("dtype:") {
                "output dtype".into()
            } else if tail.starts_with("shape:") {
                "output shape".into()
            } else {
                "numerics".into()
            }
        }
        Stage::Data => "test data".into(),
        Stage::Compile => match op_of_label(m) {
            Some(op) => format!("no CPU kernel {op}"),
            None if m.contains("data-dependent") => "data-dependent shape".into(),
            None => "compile error".into(),
        },
        Stage::Run => match op_of_label(m) {
            Some(op) => format!("run error {op}"),
            None => "run error".into(),
        },
        Stage::Import => {
            if let Some(rest) = m.strip_prefix("unsupported op ") {
                let op = rest.split_whitespace().next().unwrap_or("");
                if rest.contains("(domain ai.onnx.preview.training") {
                    return "training op".into();
                }
                if rest.contains("(domain ai.onnx.ml") {
                    return "ai.onnx.ml op".into();
                }
                if matches!(op, "If" | "Loop" | "Scan") {
                    return "control flow (If/Loop/Scan)".into();
                }
                return format!("unsupported op {op}");
            }
            if m.contains("unsupported sequence type")
                || m.contains("unsupported map type")
                || m.contains("unsupported optional type")
            {
                return "sequence/map/optional type".into();
            }
            if let Some(rest) = m.split("unsupported dtype ").nth(1) {
                let d = rest.split_whitespace().next().unwrap_or("");
                return match d {
                    "string" => "string dtype".into(),
                    "int4" | "uint4" | "float4e2m1" => "int4/fp4 dtype".into(),
                    d => format!("{d} dtype"),
                };
            }
            if m.starts_with("unsupported ") {
                return "unsupported feature".into();
            }
            match op_of_label(m) {
                Some(op) => format!("infer error {op}"),
                None => "import error".into(),
            }
        }
    }
}

/// `Add node "n": ...` -> `Add`.
fn op_of_label(m: &str) -> Option<&str> {
    let (op, rest) = m.split_once(' ')?;
    (rest.starts_with("node ") || rest.starts_with("node:") || rest.starts_with("node\""))
        .then_some(op)
}

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-text panic)".into()
    }
}

/// Runs one case, turning a panic into a failure.
pub fn run_case_caught(case: &Path, engine: Engine) -> Outcome {
    caught(|| run_case_on(case, engine))
}

fn caught(f: impl FnOnce() -> Outcome) -> Outcome {
    LAST_PANIC.with(|p| p.borrow_mut().take());
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(o) => o,
        Err(payload) => {
            let text = LAST_PANIC
                .with(|p| p.borrow_mut().take())
                .unwrap_or_else(|| panic_text(&*payload));
            Outcome::Fail(Failure::new(Stage::Panic, text))
        }
    }
}

/// How long one case may run before [`run_cases`] reports it as timed out.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// Runs the cases named `names` in `dir` on `jobs` threads; calls `report` for each result
/// in the order of `names` as soon as it and all before it are done. Panics in cases are
/// caught (the panic hook is replaced for the duration and restored after); a case still
/// running after [`DEFAULT_TIMEOUT`] fails as timed out.
pub fn run_cases(
    dir: &Path,
    names: &[String],
    jobs: usize,
    report: impl FnMut(&CaseResult),
) -> Vec<CaseResult> {
    run_cases_with_timeout(
        dir,
        names,
        jobs,
        DEFAULT_TIMEOUT,
        Engine::Interpreter,
        report,
    )
}

struct Work {
    dir: PathBuf,
    engine: Engine,
    names: Vec<String>,
    next: AtomicUsize,
    /// When each running case started, by index.
    started: Mutex<HashMap<usize, Instant>>,
}

fn spawn_worker(work: Arc<Work>, tx: mpsc::Sender<(usize, CaseResult)>) {
    let h = std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || loop {
            let i = work.next.fetch_add(1, Ordering::SeqCst);
            let Some(name) = work.names.get(i) else { break };
            if let Ok(mut s) = work.started.lock() {
                s.insert(i, Instant::now());
            }
            let outcome = run_case_caught(&work.dir.join(name), work.engine);
            if let Ok(mut s) = work.started.lock() {
                s.remove(&i);
            }
            let r = CaseResult {
                name: name.clone(),
                outcome,
            };
            if tx.send((i, r)).is_err() {
                break;
            }
        });
    if let Err(e) = h {
        eprintln!("warning: cannot start a conformance thread: {e}");
    }
}

/// [`run_cases`] with a given per-case timeout. A timed-out case's thread is left to finish
/// on its own (a thread cannot be stopped) and a new one takes its place.
pub fn run_cases_with_timeout(
    dir: &Path,
    names: &[String],
    jobs: usize,
    timeout: Duration,
    engine: Engine,
    mut report: impl FnMut(&CaseResult),
) -> Vec<CaseResult> {
    let prev_hook = panic::take_hook();
    panic::set_hook(Box::new(|info| {
        let msg = panic_text(info.payload());
        let at = info
            .location()
            .map(|l| format!(" (at {}:{})", l.file(), l.line()))
            .unwrap_or_default();
        LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{msg}{at}")));
    }));
    let work = Arc::new(Work {
        dir: dir.to_path_buf(),
        engine,
        names: names.to_vec(),
        next: AtomicUsize::new(0),
        started: Mutex::new(HashMap::new()),
    });
    let (tx, rx) = mpsc::channel::<(usize, CaseResult)>();
    for _ in 0..jobs.max(1).min(names.len().max(1)) {
        spawn_worker(work.clone(), tx.clone());
    }
    let mut pending: BTreeMap<usize, CaseResult> = BTreeMap::new();
    let mut timed_out: HashSet<usize> = HashSet::new();
    let mut out = Vec::with_capacity(names.len());
    let poll = timeout.min(Duration::from_millis(500));
    while out.len() < names.len() {
        match rx.recv_timeout(poll) {
            Ok((i, r)) => {
                if !timed_out.contains(&i) {
                    pending.insert(i, r);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        let late: Vec<usize> = match work.started.lock() {
            Ok(s) => s
                .iter()
                .filter(|(i, t)| t.elapsed() > timeout && !timed_out.contains(i))
                .map(|(i, _)| *i)
                .collect(),
            Err(_) => Vec::new(),
        };
        for i in late {
            timed_out.insert(i);
            let r = CaseResult {
                name: names[i].clone(),
                outcome: Outcome::Fail(Failure::new(
                    Stage::Timeout,
                    format!("still running after {} s", timeout.as_secs_f64()),
                )),
            };
            pending.insert(i, r);
            spawn_worker(work.clone(), tx.clone());
        }
        while let Some(r) = pending.remove(&out.len()) {
            report(&r);
            out.push(r);
        }
    }
    panic::set_hook(prev_hook);
    out
}

/// An expected-failures list: case name -> reason class.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExpectedFailures {
    pub cases: BTreeMap<String, String>,
}

impl ExpectedFailures {
    /// Parses `test_name  # reason class` lines; blank lines and `#` comments are allowed.
    pub fn parse(text: &str) -> Result<ExpectedFailures, String> {
        let mut cases = BTreeMap::new();
        for (k, line) in text.lines().enumerate() {
            let (name, reason) = match line.split_once('#') {
                Some((n, r)) => (n.trim(), r.trim()),
                None => (line.trim(), ""),
            };
            if name.is_empty() {
                continue;
            }
            if name.contains(char::is_whitespace) {
                return Err(format!(
                    "line {}: expected `test_name  # reason`, got {line:?}",
                    k + 1
                ));
            }
            cases.insert(name.to_string(), reason.to_string());
        }
        Ok(ExpectedFailures { cases })
    }

    pub fn contains(&self, name: &str) -> bool {
        self.cases.contains_key(name)
    }

    /// The list of the failures in `results`, with their reason classes.
    pub fn from_results(results: &[CaseResult]) -> ExpectedFailures {
        let cases = results
            .iter()
            .filter_map(|r| match &r.outcome {
                Outcome::Fail(f) => Some((r.name.clone(), f.class())),
                _ => None,
            })
            .collect();
        ExpectedFailures { cases }
    }

    /// The file text: a header, then `name  # class` lines sorted by name.
    pub fn to_text(&self) -> String {
        let mut s = String::from(
            "# ONNX node tests kiln is expected to fail: `test_name  # reason class`.\n\
             # Regenerate with `kiln conformance DIR --write-expected-failures FILE`.\n\n",
        );
        let width = self.cases.keys().map(|k| k.len()).max().unwrap_or(0);
        for (name, class) in &self.cases {
            s.push_str(&format!("{name:width$}  # {class}\n"));
        }
        s
    }
}

/// Counts for the summary line.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    /// Failed cases that the expected-failures list names.
    pub expected_failed: usize,
    /// Failed cases that it does not name.
    pub unexpected_failed: Vec<String>,
    /// Listed cases that pass.
    pub unexpected_passed: Vec<String>,
}

impl Summary {
    pub fn of(results: &[CaseResult], expected: Option<&ExpectedFailures>) -> Summary {
        let mut s = Summary::default();
        for r in results {
            let listed = expected.is_some_and(|e| e.contains(&r.name));
            match &r.outcome {
                Outcome::Pass => {
                    s.passed += 1;
                    if listed {
                        s.unexpected_passed.push(r.name.clone());
                    }
                }
                Outcome::Fail(_) => {
                    s.failed += 1;
                    if listed {
                        s.expected_failed += 1;
                    } else {
                        s.unexpected_failed.push(r.name.clone());
                    }
                }
                Outcome::Skip(_) => s.skipped += 1,
            }
        }
        s
    }

    /// `conformance: N passed, M failed, K skipped`
    pub fn line(&self) -> String {
        format!(
            "conformance: {} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32s(shape: Vec<usize>, v: Vec<f32>) -> Tensor {
        Tensor::from_f32s(shape, v).unwrap()
    }

    #[test]
    fn compare_like_assert_allclose() {
        let want = f32s(vec![3], vec![1.0, f32::NAN, f32::INFINITY]);
        assert_eq!(compare(&want, &want.clone(), RTOL, ATOL), Ok(()));
        // Within rtol of the expected value.
        let got = f32s(vec![3], vec![1.0009, f32::NAN, f32::INFINITY]);
        assert_eq!(compare(&want, &got, RTOL, ATOL), Ok(()));
        let got = f32s(vec![3], vec![1.002, f32::NAN, f32::INFINITY]);
        let e = compare(&want, &got, RTOL, ATOL).unwrap_err();
        assert!(
            e.starts_with(
                "1 of 3 elements differ, first at [0]: expected 1, got 1.002 (max abs error"
            ),
            "{e}"
        );
        let got = f32s(vec![3], vec![1.0, 0.0, f32::INFINITY]);
        assert!(compare(&want, &got, RTOL, ATOL).is_err());
        let got = f32s(vec![3], vec![1.0, f32::NAN, f32::NEG_INFINITY]);
        assert!(compare(&want, &got, RTOL, ATOL).is_err());
        // atol around zero.
        let z = f32s(vec![1], vec![0.0]);
        assert!(compare(&z, &f32s(vec![1], vec![5e-8]), RTOL, ATOL).is_ok());
        let e = compare(&z, &f32s(vec![1], vec![2e-7]), RTOL, ATOL).unwrap_err();
        assert!(e.contains("expected 0, got 2e-7 "), "{e}");
    }

    #[test]
    fn compare_checks_dtype_shape_and_ints_exactly() {
        let a = Tensor::from_i64s(vec![2, 2], vec![1, 2, 3, 4]).unwrap();
        let b = Tensor::from_i64s(vec![2, 2], vec![1, 2, 3, 5]).unwrap();
        assert_eq!(
            compare(&a, &b, RTOL, ATOL).unwrap_err(),
            "1 of 4 elements differ, first at [1, 1]: expected 4, got 5"
        );
        let c = Tensor::from_i64s(vec![4], vec![1, 2, 3, 4]).unwrap();
        assert_eq!(
            compare(&a, &c, RTOL, ATOL).unwrap_err(),
            "shape: expected [2, 2], got [4]"
        );
        let d = a.cast(DType::I32);
        assert_eq!(
            compare(&a, &d, RTOL, ATOL).unwrap_err(),
            "dtype: expected i64, got i32"
        );
        let t = Tensor::from_bools(vec![2], vec![true, false]).unwrap();
        let u = Tensor::from_bools(vec![2], vec![true, true]).unwrap();
        assert_eq!(
            compare(&t, &u, RTOL, ATOL).unwrap_err(),
            "1 of 2 elements differ, first at [1]: expected false, got true"
        );
    }

    #[test]
    fn classes() {
        let f = |stage, msg: &str| Failure::new(stage, msg).class();
        assert_eq!(
            f(
                Stage::Import,
                "unsupported op LabelEncoder (domain ai.onnx.ml, opset 2) at node \"n\""
            ),
            "ai.onnx.ml op"
        );
        assert_eq!(
            f(
                Stage::Import,
                "unsupported op Adam (domain ai.onnx.preview.training, opset 1) at node \"n\""
            ),
            "training op"
        );
        assert_eq!(
            f(
                Stage::Import,
                "unsupported op Loop (domain ai.onnx, opset 13) at node \"n\""
            ),
            "control flow (If/Loop/Scan)"
        );
        assert_eq!(
            f(
                Stage::Import,
                "unsupported op Foo (domain ai.onnx, opset 13) at node \"n\""
            ),
            "unsupported op Foo"
        );
        assert_eq!(
            f(Stage::Import, "unsupported sequence type (input \"x\")"),
            "sequence/map/optional type"
        );
        assert_eq!(
            f(Stage::Import, "unsupported dtype string (input \"x\")"),
            "string dtype"
        );
        assert_eq!(
            f(Stage::Import, "unsupported dtype int4 (input \"x\")"),
            "int4/fp4 dtype"
        );
        assert_eq!(
            f(Stage::Import, "Reshape node \"r\": bad shape"),
            "infer error Reshape"
        );
        assert_eq!(f(Stage::Run, "Add node \"a\": oops"), "run error Add");
        assert_eq!(
            f(Stage::Mismatch, "output 0 \"y\": 1 of 3 elements differ"),
            "numerics"
        );
        assert_eq!(
            f(
                Stage::Mismatch,
                "output 0 \"y\": shape: expected [1], got [2]"
            ),
            "output shape"
        );
        assert_eq!(f(Stage::Panic, "index out of bounds"), "panic");
    }

    #[test]
    fn expected_failures_roundtrip() {
        let text = "# header\n\ntest_a  # numerics\ntest_b\n   # only a comment\n";
        let e = ExpectedFailures::parse(text).unwrap();
        assert_eq!(e.cases.len(), 2);
        assert_eq!(e.cases["test_a"], "numerics");
        assert_eq!(e.cases["test_b"], "");
        assert_eq!(ExpectedFailures::parse(&e.to_text()).unwrap(), e);
        assert!(ExpectedFailures::parse("test a # x").is_err());
    }

    #[test]
    fn summary_counts() {
        let r = |name: &str, outcome| CaseResult {
            name: name.into(),
            outcome,
        };
        let fail = Outcome::Fail(Failure::new(Stage::Run, "x"));
        let results = vec![
            r("a", Outcome::Pass),
            r("b", fail.clone()),
            r("c", fail),
            r("d", Outcome::Skip("no data".into())),
            r("e", Outcome::Pass),
        ];
        let exp = ExpectedFailures::parse("b # x\ne # y\n").unwrap();
        let s = Summary::of(&results, Some(&exp));
        assert_eq!(s.line(), "conformance: 2 passed, 2 failed, 1 skipped");
        assert_eq!(s.expected_failed, 1);
        assert_eq!(s.unexpected_failed, vec!["c".to_string()]);
        assert_eq!(s.unexpected_passed, vec!["e".to_string()]);
    }

    #[test]
    fn panics_become_failures() {
        let o = caught(|| panic!("boom {}", 42));
        assert_eq!(o, Outcome::Fail(Failure::new(Stage::Panic, "boom 42")));
        let dir = std::env::temp_dir().join(format!("kiln-conf-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("nodata")).unwrap();
        let results = run_cases(&dir, &["nodata".to_string()], 2, |_| {});
        assert_eq!(results[0].outcome, Outcome::Skip("no model.onnx".into()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stuck_cases_time_out() {
        use onnx_protobuf::{Message, ModelProto, NodeProto, OperatorSetIdProto, ValueInfoProto};
        let dir = std::env::temp_dir().join(format!("kiln-conf-timeout-{}", std::process::id()));
        let case = dir.join("test_stuck");
        std::fs::create_dir_all(case.join("test_data_set_0")).unwrap();
        // y = Identity(x), x: f32 scalar.
        let mut m = ModelProto::new();
        let mut o = OperatorSetIdProto::new();
        o.version = 18;
        m.opset_import.push(o);
        let mut g = onnx_protobuf::GraphProto::new();
        let mut n = NodeProto::new();
        n.op_type = "Identity".into();
        n.input = vec!["x".into()];
        n.output = vec!["y".into()];
        g.node.push(n);
        let mut x = ValueInfoProto::new();
        x.name = "x".into();
        let mut t = onnx_protobuf::type_proto::Tensor::new();
        t.elem_type = 1;
        t.shape = Some(onnx_protobuf::TensorShapeProto::new()).into();
        let mut tp = onnx_protobuf::TypeProto::new();
        tp.value = Some(onnx_protobuf::type_proto::Value::TensorType(t));
        x.type_ = Some(tp).into();
        g.input.push(x);
        let mut y = ValueInfoProto::new();
        y.name = "y".into();
        g.output.push(y);
        m.graph = Some(g).into();
        std::fs::write(case.join("model.onnx"), m.write_to_bytes().unwrap()).unwrap();
        // Reading a FIFO nobody writes blocks forever: a stuck case.
        let fifo = case.join("test_data_set_0/input_0.pb");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !made.is_ok_and(|s| s.success()) {
            eprintln!("mkfifo is not available; skipping");
            return;
        }
        let results = run_cases_with_timeout(
            &dir,
            &["test_stuck".to_string()],
            1,
            Duration::from_millis(300),
            Engine::Interpreter,
            |_| {},
        );
        assert_eq!(
            results[0].outcome,
            Outcome::Fail(Failure::new(Stage::Timeout, "still running after 0.3 s"))
        );
        assert_eq!(Failure::new(Stage::Timeout, "x").class(), "timeout");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
