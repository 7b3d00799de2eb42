use std::process::ExitCode;

/// (not built yet)
#[derive(clap::Args)]
pub struct ConformanceArgs {}

pub fn run(_args: ConformanceArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}
