use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use kiln_compiler::{backend, driver, npy};
use kiln_ir::Tensor;

/// Run a model: a compiled artifact, or a model on the reference interpreter.
///
/// Loads INPUT (a .kiln artifact from `kiln compile`; or .onnx, or .kir with its weights, run
/// op by op with the reference semantics), binds each `--input NAME=FILE.npy`, writes each
/// output to DIR/<output name>.npy and prints one line per output, e.g.
/// `logits f32[1, 7, 256]`.
///
/// Every graph input must be given, with the dtype the graph declares; symbolic dims (such
/// as `seq`) take their sizes from the arrays given.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  kiln run model.onnx --input input_ids=ids.npy --output-dir out/"
)]
pub struct RunArgs {
    /// The model: a .kiln artifact, an .onnx file (external data beside it) or a .kir file.
    input: PathBuf,
    /// A graph input, as NAME=FILE.npy; repeat for every input.
    #[arg(long = "input", short = 'i', value_name = "NAME=FILE.npy")]
    inputs: Vec<String>,
    /// Where to write the outputs, one NAME.npy each (characters other than letters, digits,
    /// `.`, `-` and `_` become `_`).
    #[arg(long, short = 'o', value_name = "DIR", default_value = ".")]
    output_dir: PathBuf,
    /// Ascend artifacts: print each kernel's estimated cost on the device model and the
    /// total estimated device time.
    #[arg(long)]
    profile: bool,
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

/// Reads the `--input NAME=FILE.npy` arguments.
pub fn read_inputs(specs: &[String]) -> anyhow::Result<HashMap<String, Tensor>> {
    let mut inputs = HashMap::new();
    for spec in specs {
        let Some((name, file)) = spec.split_once('=') else {
            bail!("--input {spec}: expected NAME=FILE.npy");
        };
        if inputs.contains_key(name) {
            bail!("--input {name} is given twice");
        }
        let t = npy::read(Path::new(file)).map_err(|e| anyhow::anyhow!("{e}"))?;
        inputs.insert(name.to_string(), t);
    }
    Ok(inputs)
}

/// Orders named inputs as `expected` lists them (name, type for messages), with one-line
/// errors for a missing or unknown name.
pub fn order_inputs(
    mut given: HashMap<String, Tensor>,
    expected: &[(String, String)],
) -> anyhow::Result<Vec<Tensor>> {
    let mut out = Vec::new();
    for (name, ty) in expected {
        match given.remove(name) {
            Some(t) => out.push(t),
            None => bail!("input \"{name}\" is missing ({ty})"),
        }
    }
    if let Some(name) = given.keys().min() {
        let names: Vec<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
        bail!(
            "the model has no input named \"{name}\" (its inputs: {})",
            names.join(", ")
        );
    }
    Ok(out)
}

/// Named outputs, in the model's order.
type Outputs = Vec<(String, Tensor)>;

/// Runs an Ascend .kiln artifact on the device model of its profile; with `profile`,
/// prints the cost of every kernel after the outputs.
fn run_ascend(
    path: &Path,
    inputs: HashMap<String, Tensor>,
    profile: bool,
) -> anyhow::Result<(Outputs, Option<String>)> {
    let model = kiln_runtime::ascend::AscendModel::load(path)?;
    let list = model.launch_list();
    let expected: Vec<(String, String)> = list
        .inputs
        .iter()
        .map(|s| (s.name.clone(), format!("{}{:?}", s.dtype, s.shape)))
        .collect();
    let ordered = order_inputs(inputs, &expected)?;
    let rt: Vec<_> = ordered.iter().map(backend::to_runtime).collect();
    let (outs, costs) = model.run_profiled(&rt)?;
    let named = list
        .outputs
        .iter()
        .zip(&outs)
        .map(|(s, t)| Ok((s.name.clone(), backend::from_runtime(t)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let report = profile.then(|| kiln_runtime::ascend::report::profile(list, &costs));
    Ok((named, report))
}

/// Runs a .kiln artifact.
fn run_artifact(
    path: &Path,
    inputs: HashMap<String, Tensor>,
) -> anyhow::Result<Vec<(String, Tensor)>> {
    let model = kiln_runtime::Model::load(path)?;
    let m = model.manifest();
    let names: Vec<String> = m.symbols.iter().map(|s| s.name.clone()).collect();
    let expected: Vec<(String, String)> = m
        .inputs
        .iter()
        .map(|s| {
            let dims: Vec<String> = s.shape.iter().map(|d| d.display(&names)).collect();
            (s.name.clone(), format!("{}[{}]", s.dtype, dims.join(", ")))
        })
        .collect();
    let ordered = order_inputs(inputs, &expected)?;
    let rt: Vec<_> = ordered.iter().map(backend::to_runtime).collect();
    let outs = model.run(&rt)?;
    m.outputs
        .iter()
        .zip(&outs)
        .map(|(s, t)| Ok((s.name.clone(), backend::from_runtime(t)?)))
        .collect()
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let inputs = read_inputs(&args.inputs)?;
    let mut report = None;
    let is_kiln = args.input.extension().is_some_and(|e| e == "kiln");
    let ascend = is_kiln && {
        let f = kiln_runtime::artifact::ArtifactFile::open_with_features(
            &args.input,
            kiln_runtime::artifact::Features::from_bits(u64::MAX),
        )?;
        f.header.target == kiln_runtime::artifact::Target::Ascend
    };
    if args.profile && !ascend {
        bail!(
            "--profile prices Ascend launch lists; time a CPU artifact with `kiln bench --profile`"
        );
    }
    let outputs = if ascend {
        let (outs, r) = run_ascend(&args.input, inputs, args.profile)?;
        report = r;
        outs
    } else if is_kiln {
        run_artifact(&args.input, inputs)?
    } else {
        let g = driver::load_model(&args.input).map_err(|e| anyhow::anyhow!("{e}"))?;
        kiln_ir::interp::run(&g, &inputs).map_err(|e| anyhow::anyhow!("{e}"))?
    };
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
    if let Some(r) = report {
        print!("{r}");
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

#[cfg(test)]
mod run_tests {
    use super::*;
    use onnx_protobuf::{
        tensor_shape_proto, type_proto, GraphProto, Message, ModelProto, NodeProto,
        OperatorSetIdProto, TensorShapeProto, TypeProto, ValueInfoProto,
    };

    fn input(name: &str, dims: &[tensor_shape_proto::dimension::Value]) -> ValueInfoProto {
        let mut shape = TensorShapeProto::new();
        for d in dims {
            let mut dim = tensor_shape_proto::Dimension::new();
            dim.value = Some(d.clone());
            shape.dim.push(dim);
        }
        let mut t = type_proto::Tensor::new();
        t.elem_type = 1;
        t.shape = Some(shape).into();
        let mut tp = TypeProto::new();
        tp.value = Some(type_proto::Value::TensorType(t));
        let mut v = ValueInfoProto::new();
        v.name = name.into();
        v.type_ = Some(tp).into();
        v
    }

    /// `out/y = x + x` with x: f32[seq].
    fn write_model(dir: &Path) -> PathBuf {
        let mut n = NodeProto::new();
        n.op_type = "Add".into();
        n.input = vec!["x".into(), "x".into()];
        n.output = vec!["out/y".into()];
        let mut g = GraphProto::new();
        g.node.push(n);
        g.input.push(input(
            "x",
            &[tensor_shape_proto::dimension::Value::DimParam("seq".into())],
        ));
        let mut o = ValueInfoProto::new();
        o.name = "out/y".into();
        g.output.push(o);
        let mut m = ModelProto::new();
        let mut op = OperatorSetIdProto::new();
        op.version = 18;
        m.opset_import.push(op);
        m.graph = Some(g).into();
        let path = dir.join("m.onnx");
        std::fs::write(&path, m.write_to_bytes().unwrap()).unwrap();
        path
    }

    #[test]
    fn runs_a_model_and_writes_npy_outputs() {
        let dir = std::env::temp_dir().join(format!("kiln-run-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let model = write_model(&dir);
        let x = Tensor::from_f32s(vec![3], vec![1.0, 2.0, 3.5]).unwrap();
        npy::write(&dir.join("x.npy"), &x).unwrap();
        let args = |inputs: Vec<String>| RunArgs {
            input: model.clone(),
            inputs,
            output_dir: dir.join("out"),
            profile: false,
        };
        let x_arg = format!("x={}", dir.join("x.npy").display());
        run(args(vec![x_arg.clone()])).unwrap();
        let y = npy::read(&dir.join("out/out_y.npy")).unwrap();
        assert_eq!(y, Tensor::from_f32s(vec![3], vec![2.0, 4.0, 7.0]).unwrap());

        let e = run(args(vec![])).unwrap_err().to_string();
        assert_eq!(e, "input \"x\" is missing (f32[seq])");
        let e = run(args(vec![
            x_arg.clone(),
            format!("z={}", dir.join("x.npy").display()),
        ]))
        .unwrap_err()
        .to_string();
        assert_eq!(e, "the graph has no input named \"z\" (its inputs: x)");
        let e = run(args(vec!["x".into()])).unwrap_err().to_string();
        assert_eq!(e, "--input x: expected NAME=FILE.npy");
        let i = Tensor::from_i64s(vec![1], vec![1]).unwrap();
        npy::write(&dir.join("i.npy"), &i).unwrap();
        let e = run(args(vec![format!("x={}", dir.join("i.npy").display())]))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "input \"x\" has dtype i64, the graph expects f32");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
