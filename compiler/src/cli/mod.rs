//! The command line: one file per subcommand.

mod bench;
mod compile;
mod conformance;
mod inspect;
mod opt;
mod run;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// kiln: an ahead-of-time compiler for mixture-of-experts and attention models.
///
/// ONNX in; IR dumps, reference runs and deployable artifacts (.kiln) out.
#[derive(Parser)]
#[command(name = "kiln", version)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Opt(opt::OptArgs),
    Compile(compile::CompileArgs),
    Run(run::RunArgs),
    Inspect(inspect::InspectArgs),
    Bench(bench::BenchArgs),
    Conformance(conformance::ConformanceArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Opt(a) => opt::run(a),
        Command::Compile(a) => compile::run(a),
        Command::Run(a) => run::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Conformance(a) => conformance::run(a),
    }
}
