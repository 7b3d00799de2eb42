use std::process::ExitCode;

/// (not built yet)
#[derive(clap::Args)]
pub struct OptArgs {}

pub fn run(_args: OptArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}
