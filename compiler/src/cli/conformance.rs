use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use kiln_compiler::conformance::{self, ExpectedFailures, Outcome, Summary};
use regex::Regex;

/// Run the ONNX backend node tests in DIR on the reference interpreter.
///
/// Each case is DIR/NAME/model.onnx with DIR/NAME/test_data_set_*/input_K.pb and
/// output_K.pb. Outputs are compared like ONNX's backend tests (same dtype and shape,
/// rtol 1e-3, atol 1e-7, NaN equals NaN, integers and bools exactly).
///
/// Prints each failing case with its reason, then `conformance: N passed, M failed, K
/// skipped` (skipped: folders that are not runnable cases). Exits non-zero when a case fails
/// that the expected-failures file does not list, or a listed case passes; without a file,
/// when any case fails.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    kiln conformance ../shared/onnx-node --filter '^test_(reduce_sum|argmax)'\n  \
    kiln conformance ../shared/onnx-node --expected-failures tests/onnx-node-expected-failures.txt\n  \
    kiln conformance ../shared/onnx-node --write-expected-failures tests/onnx-node-expected-failures.txt")]
pub struct ConformanceArgs {
    /// The folder of test cases (one folder per case).
    dir: PathBuf,
    /// Run only cases whose folder name matches this regex.
    #[arg(long, value_name = "REGEX")]
    filter: Option<String>,
    /// Cases expected to fail, one per line: `test_name  # reason class`.
    #[arg(long, value_name = "FILE")]
    expected_failures: Option<PathBuf>,
    /// Write the cases that fail now, with their reason classes, to FILE (and exit 0).
    #[arg(long, value_name = "FILE")]
    write_expected_failures: Option<PathBuf>,
    /// Cases run in parallel (default: the number of cores).
    #[arg(long, short = 'j', value_name = "N")]
    jobs: Option<usize>,
    /// A case still running after this many seconds fails as timed out.
    #[arg(long, value_name = "SECS", default_value_t = conformance::DEFAULT_TIMEOUT.as_secs())]
    timeout: u64,
    /// Print every case, not only failures.
    #[arg(long, short = 'v')]
    verbose: bool,
    /// What runs each case: `interpreter` (the reference semantics) or `compiled` (compile
    /// the case for this CPU with `kiln compile`'s defaults and run the artifact)
    #[arg(long, value_name = "ENGINE", default_value = "interpreter")]
    engine: String,
}

pub fn run(args: ConformanceArgs) -> anyhow::Result<ExitCode> {
    let filter = args
        .filter
        .as_deref()
        .map(Regex::new)
        .transpose()
        .context("--filter")?;
    let expected = match &args.expected_failures {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            Some(
                ExpectedFailures::parse(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
            )
        }
        None => None,
    };
    let names = conformance::list_cases(&args.dir, filter.as_ref())
        .with_context(|| format!("reading {}", args.dir.display()))?;
    let jobs = args.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let listed = |name: &str| expected.as_ref().is_some_and(|e| e.contains(name));
    let timeout = std::time::Duration::from_secs(args.timeout.max(1));
    let engine = match args.engine.as_str() {
        "interpreter" => conformance::Engine::Interpreter,
        "compiled" => conformance::Engine::Compiled,
        e => anyhow::bail!("--engine {e}: expected `interpreter` or `compiled`"),
    };
    let results =
        conformance::run_cases_with_timeout(&args.dir, &names, jobs, timeout, engine, |r| match &r
            .outcome
        {
            Outcome::Pass if listed(&r.name) => {
                println!("listed as expected failure but passes: {}", r.name)
            }
            Outcome::Pass if args.verbose => println!("ok    {}", r.name),
            Outcome::Pass => {}
            Outcome::Fail(f) if listed(&r.name) => println!("xfail {}: {f}", r.name),
            Outcome::Fail(f) => println!("FAIL  {}: {f}", r.name),
            Outcome::Skip(why) => println!("skip  {}: {why}", r.name),
        });
    let summary = Summary::of(&results, expected.as_ref());
    if let Some(path) = &args.write_expected_failures {
        let list = ExpectedFailures::from_results(&results);
        std::fs::write(path, list.to_text())
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!(
            "wrote {} expected failures to {}",
            list.cases.len(),
            path.display()
        );
    }
    if expected.is_some() {
        println!(
            "expected failures: {} failed as listed, {} failed unlisted, {} listed but pass",
            summary.expected_failed,
            summary.unexpected_failed.len(),
            summary.unexpected_passed.len()
        );
    }
    println!("{}", summary.line());
    let bad = if expected.is_some() {
        !summary.unexpected_failed.is_empty() || !summary.unexpected_passed.is_empty()
    } else {
        summary.failed > 0
    };
    Ok(if bad && args.write_expected_failures.is_none() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
