use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use kiln_compiler::{driver, npy};

/// Run a model on the reference interpreter.
///
/// Loads INPUT (.onnx, or .kir with its weights), binds each `--input NAME=FILE.npy`, runs
/// every op with its reference semantics, writes each output to DIR/<output name>.npy and
/// prints one line per output, e.g. `logits f32[1, 7, 256]`.
///
/// Every graph input must be given, with the dtype the graph declares; symbolic dims (such
/// as `seq`) take their sizes from the arrays given.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  kiln run model.onnx --input input_ids=ids.npy --output-dir out/"
)]
pub struct RunArgs {
    /// The model: an .onnx file (external data beside it) or a .kir file.
    input: PathBuf,
    /// A graph input, as NAME=FILE.npy; repeat for every input.
    #[arg(long = "input", short = 'i', value_name = "NAME=FILE.npy")]
    inputs: Vec<String>,
    /// Where to write the outputs, one NAME.npy each (characters other than letters, digits,
    /// `.`, `-` and `_` become `_`). Default: the current directory.
    #[arg(long, short = 'o', value_name = "DIR", default_value = ".")]
    output_dir: PathBuf,
}

/// A file name for an output name: path separators and other odd characters become `_`.
pub fn sanitize_file_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    match s.as_str() {
        "" | "." | ".." => format!("_{s}"),
        _ => s,
    }
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let g = driver::load_model(&args.input).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut inputs = HashMap::new();
    for spec in &args.inputs {
        let Some((name, file)) = spec.split_once('=') else {
            bail!("--input {spec}: expected NAME=FILE.npy");
        };
        if inputs.contains_key(name) {
            bail!("--input {name} is given twice");
        }
        let t = npy::read(Path::new(file)).map_err(|e| anyhow::anyhow!("{e}"))?;
        inputs.insert(name.to_string(), t);
    }
    let outputs = kiln_ir::interp::run(&g, &inputs).map_err(|e| anyhow::anyhow!("{e}"))?;
    std::fs::create_dir_all(&args.output_dir)
        .with_context(|| format!("creating {}", args.output_dir.display()))?;
    let mut used: HashMap<String, usize> = HashMap::new();
    for (name, t) in &outputs {
        let mut file = sanitize_file_name(name);
        // Two names that sanitize alike get distinct files.
        let n = used.entry(file.clone()).or_default();
        *n += 1;
        if *n > 1 {
            file = format!("{file}.{}", *n - 1);
        }
        let path = args.output_dir.join(format!("{file}.npy"));
        npy::write(&path, t).map_err(|e| anyhow::anyhow!("output \"{name}\": {e}"))?;
        println!("{name} {}", npy::type_string(t));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_safe() {
        assert_eq!(sanitize_file_name("logits"), "logits");
        assert_eq!(sanitize_file_name("present.0.key"), "present.0.key");
        assert_eq!(sanitize_file_name("/model/out:0"), "_model_out_0");
        assert_eq!(sanitize_file_name(".."), "_..");
        assert_eq!(sanitize_file_name(""), "_");
    }
}
