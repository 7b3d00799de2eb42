//! `kiln inspect`: what a .kiln artifact holds, for people (`--json` for tools).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use kiln_runtime::artifact::{ArtifactFile, Features, Header};
use kiln_runtime::model::manifest::TensorSpec;
use kiln_runtime::model::Manifest;

/// Show what a compiled artifact holds.
///
/// Prints the header (format version, target, the CPU features the code needs and whether
/// this CPU has them), the inputs and outputs with their dtypes and symbolic shapes, the
/// dims and the bounds they were compiled for, the kernels and their code size, the schedule
/// summarised by op, the memory plan and the weights. Large tables show their biggest rows;
/// `--all` lists every row. The file's checksum is verified first.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  kiln inspect model.kiln\n  kiln inspect model.kiln --all\n  \
    kiln inspect model.kiln --json | jq .manifest.arena.bytes"
)]
pub struct InspectArgs {
    /// The artifact (.kiln, from `kiln compile`).
    input: PathBuf,
    /// Print the whole manifest and the header as JSON.
    #[arg(long)]
    json: bool,
    /// List every kernel, step, buffer and weight instead of summaries.
    #[arg(long)]
    all: bool,
}

/// Rows shown by the summaries when `--all` is not given.
const TOP: usize = 8;

/// Opens `path` whatever CPU features it needs (nothing is run) and parses its manifest.
pub fn open(path: &Path) -> anyhow::Result<(ArtifactFile, Manifest)> {
    let file = ArtifactFile::open_with_features(path, Features::from_bits(u64::MAX))?;
    let manifest: Manifest = serde_json::from_slice(&file.manifest)
        .map_err(|e| anyhow::anyhow!("{}: corrupt manifest: {e}", path.display()))?;
    Ok((file, manifest))
}

/// A byte count for people: `812 B`, `12.3 KiB`, `86.7 MiB`, `1.20 GiB`.
pub fn size(bytes: u64) -> String {
    let b = bytes as f64;
    if bytes < 1024 {
        format!("{bytes} B")
    } else if b < 1024.0 * 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else if b < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    } else {
        format!("{:.2} GiB", b / (1024.0 * 1024.0 * 1024.0))
    }
}

/// Shortens `s` to at most `max` characters, keeping its start and end.
fn clip(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    let head = (max - 1) / 2;
    let tail = max - 1 - head;
    let start: String = s.chars().take(head).collect();
    let end: String = s.chars().skip(n - tail).collect();
    format!("{start}…{end}")
}

/// Rows of cells, printed with each column padded to its widest cell; columns listed in
/// `right` are right-aligned.
struct Table {
    rows: Vec<Vec<String>>,
    right: Vec<usize>,
}

impl Table {
    fn new(right: &[usize]) -> Table {
        Table {
            rows: Vec::new(),
            right: right.to_vec(),
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn render(&self, out: &mut String, indent: &str) {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let width: Vec<usize> = (0..cols)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for r in &self.rows {
            let mut line = indent.to_string();
            for (c, cell) in r.iter().enumerate() {
                let pad = width[c].saturating_sub(cell.chars().count());
                let last = c + 1 == r.len();
                if self.right.contains(&c) {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    if !last {
                        line.push_str(&" ".repeat(pad));
                    }
                }
                if !last {
                    line.push_str("  ");
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
}

/// The op type of a step label (`MatMul node "/l0/MatMul"` -> `MatMul`).
fn op_type(label: &str) -> &str {
    label.split_whitespace().next().unwrap_or(label)
}

/// `dtype[d0, d1, ...]` with symbol names.
pub fn type_string(spec: &TensorSpec, names: &[String]) -> String {
    let dims: Vec<String> = spec.shape.iter().map(|d| d.display(names)).collect();
    format!("{}[{}]", spec.dtype, dims.join(", "))
}

fn header_json(path: &Path, file_len: u64, h: &Header) -> serde_json::Value {
    let section = |s: kiln_runtime::artifact::header::Section| serde_json::json!({ "offset": s.offset, "len": s.len });
    let missing = h.features.missing_from(Features::host());
    serde_json::json!({
        "file": path.display().to_string(),
        "file_bytes": file_len,
        "format_version": h.version,
        "target": h.target.name(),
        "features": h.features.names(),
        "missing_features": missing.names(),
        "host_has_features": missing.is_empty(),
        "sections": {
            "manifest": section(h.manifest),
            "code": section(h.code),
            "weights": section(h.weights),
        },
        "checksum": format!("{:016x}", h.checksum),
    })
}

pub fn run(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let file = ArtifactFile::open_with_features(&args.input, Features::from_bits(u64::MAX))?;
    if file.header.target == kiln_runtime::artifact::Target::Ascend {
        return inspect_ascend(&args, &file);
    }
    let (file, m) = open(&args.input)?;
    let file_len = std::fs::metadata(&args.input)
        .with_context(|| args.input.display().to_string())?
        .len();
    if args.json {
        let v = serde_json::json!({
            "header": header_json(&args.input, file_len, &file.header),
            "manifest": m,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    print!(
        "{}",
        render(&args.input, file_len, &file.header, &m, args.all)
    );
    Ok(ExitCode::SUCCESS)
}

/// An Ascend artifact: its launch list, readably or (`--json`) whole.
fn inspect_ascend(args: &InspectArgs, file: &ArtifactFile) -> anyhow::Result<ExitCode> {
    let list = kiln_runtime::ascend::model::launch_list(file)?;
    let file_len = std::fs::metadata(&args.input)
        .with_context(|| args.input.display().to_string())?
        .len();
    if args.json {
        let v = serde_json::json!({
            "header": header_json(&args.input, file_len, &file.header),
            "launch_list": list,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "artifact  {} ({}), format version {}, target {} ({})",
            args.input.display(),
            size(file_len),
            file.header.version,
            list.profile,
            file.header.target.name()
        );
        print!("{}", kiln_runtime::ascend::report::launch_list(&list));
    }
    Ok(ExitCode::SUCCESS)
}

/// The human-readable report.
pub fn render(path: &Path, file_len: u64, h: &Header, m: &Manifest, all: bool) -> String {
    let mut o = String::new();
    let names: Vec<String> = m.symbols.iter().map(|s| s.name.clone()).collect();
    let top = if all { usize::MAX } else { TOP };

    // Header.
    let mut t = Table::new(&[]);
    t.row(vec![
        "artifact".into(),
        format!("{} ({})", path.display(), size(file_len)),
    ]);
    t.row(vec![
        "format".into(),
        format!(
            "version {}, target {}, manifest {}",
            h.version,
            h.target.name(),
            m.format
        ),
    ]);
    t.row(vec!["graph".into(), m.name.clone()]);
    let missing = h.features.missing_from(Features::host());
    let verdict = if h.features.is_empty() {
        "none needed".to_string()
    } else if missing.is_empty() {
        format!("{}: this CPU has them all", h.features)
    } else {
        format!(
            "{}: this CPU LACKS {missing} (the artifact will not load here)",
            h.features
        )
    };
    t.row(vec!["features".into(), verdict]);
    t.row(vec![
        "sections".into(),
        format!(
            "manifest {}, code {}, weights {} (mapped at load)",
            size(h.manifest.len),
            size(h.code.len),
            size(h.weights.len)
        ),
    ]);
    t.render(&mut o, "");

    // Dims.
    o.push('\n');
    if m.symbols.is_empty() {
        o.push_str("dims: none (every shape is static)\n");
    } else {
        o.push_str("dims (bounds compiled for)\n");
        let mut t = Table::new(&[]);
        for s in &m.symbols {
            t.row(vec![s.name.clone(), format!("{}..{}", s.min, s.max)]);
        }
        t.render(&mut o, "  ");
    }

    // Inputs and outputs.
    for (title, specs) in [("inputs", &m.inputs), ("outputs", &m.outputs)] {
        let _ = writeln!(o, "{title}");
        let mut t = Table::new(&[]);
        for s in specs.iter() {
            let mut row = vec![clip(&s.name, 48), type_string(s, &names)];
            if let Some(r) = s.index_range {
                row.push(format!("indices in 0..{r}"));
            }
            t.row(row);
        }
        t.render(&mut o, "  ");
    }

    // Code.
    o.push('\n');
    let kernel_code: u64 = m.kernels.iter().map(|k| k.len).sum();
    let _ = writeln!(
        o,
        "code: {} in {} kernel{}, plus the entry function ({})",
        size(kernel_code),
        m.kernels.len(),
        if m.kernels.len() == 1 { "" } else { "s" },
        size(m.entry.len)
    );
    if !m.helpers.is_empty() {
        let _ = writeln!(
            o,
            "runtime helpers called ({}): {}",
            m.helpers.len(),
            m.helpers.join(", ")
        );
    }
    let mut calls: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &m.steps {
        *calls.entry(s.kernel.as_str()).or_default() += 1;
    }
    // Kernels by code size, numbered k1, k2, ... so the schedule can refer to them briefly.
    let mut ks: Vec<_> = m.kernels.iter().collect();
    ks.sort_by(|a, b| b.len.cmp(&a.len).then(a.name.cmp(&b.name)));
    let label: BTreeMap<&str, String> = ks
        .iter()
        .enumerate()
        .map(|(i, k)| (k.name.as_str(), format!("k{}", i + 1)))
        .collect();
    let callee = |name: &str| match label.get(name) {
        Some(l) => l.clone(),
        None => clip(name, 40),
    };
    if !ks.is_empty() {
        let mut t = Table::new(&[2, 3]);
        t.row(vec![
            "".into(),
            "kernel".into(),
            "code".into(),
            "steps".into(),
        ]);
        for k in ks.iter().take(top) {
            t.row(vec![
                label[k.name.as_str()].clone(),
                clip(&k.name, 64),
                size(k.len),
                calls.get(k.name.as_str()).copied().unwrap_or(0).to_string(),
            ]);
        }
        if ks.len() > top {
            let rest = &ks[top..];
            t.row(vec![
                String::new(),
                format!("... {} more (--all lists them)", rest.len()),
                size(rest.iter().map(|k| k.len).sum()),
                rest.iter()
                    .map(|k| calls.get(k.name.as_str()).copied().unwrap_or(0))
                    .sum::<usize>()
                    .to_string(),
            ]);
        }
        t.render(&mut o, "  ");
    }

    // Schedule.
    o.push('\n');
    let _ = writeln!(o, "schedule: {} steps", m.steps.len());
    if all {
        let mut t = Table::new(&[0]);
        for (i, s) in m.steps.iter().enumerate() {
            t.row(vec![i.to_string(), clip(&s.op, 64), callee(&s.kernel)]);
        }
        t.render(&mut o, "  ");
    } else if !m.steps.is_empty() {
        // op type -> (steps, callee -> steps)
        let mut by_op: BTreeMap<&str, (usize, BTreeMap<&str, usize>)> = BTreeMap::new();
        for s in &m.steps {
            let e = by_op.entry(op_type(&s.op)).or_default();
            e.0 += 1;
            *e.1.entry(s.kernel.as_str()).or_default() += 1;
        }
        let mut ops: Vec<_> = by_op.into_iter().collect();
        ops.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(b.0)));
        let mut t = Table::new(&[1]);
        t.row(vec!["op".into(), "steps".into(), "calls".into()]);
        for (op, (n, callees)) in &ops {
            let mut cs: Vec<_> = callees.iter().collect();
            cs.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let mut shown: Vec<String> = cs
                .iter()
                .take(3)
                .map(|(k, c)| {
                    let k = callee(k);
                    if **c == *n {
                        k
                    } else {
                        format!("{k} x{c}")
                    }
                })
                .collect();
            if cs.len() > 3 {
                shown.push(format!("{} more", cs.len() - 3));
            }
            t.row(vec![op.to_string(), n.to_string(), shown.join(", ")]);
        }
        t.render(&mut o, "  ");
    }

    // Memory.
    o.push('\n');
    let at: Vec<String> = m
        .symbols
        .iter()
        .map(|s| format!("{}={}", s.name, s.max))
        .collect();
    let at = if at.is_empty() {
        String::new()
    } else {
        format!(" at {}", at.join(", "))
    };
    let total: u64 = m.arena.buffers.iter().map(|b| b.max_bytes).sum();
    let _ = writeln!(o, "memory: arena {}{at}", size(m.arena.bytes));
    if !m.arena.buffers.is_empty() {
        let reuse = if m.arena.bytes > 0 {
            format!("{:.1}", total as f64 / m.arena.bytes as f64)
        } else {
            "-".into()
        };
        let _ = writeln!(
            o,
            "  {} buffer{}, {} in all: reuse factor {reuse} (sum of buffer sizes / arena)",
            m.arena.buffers.len(),
            if m.arena.buffers.len() == 1 { "" } else { "s" },
            size(total)
        );
        let mut bs: Vec<_> = m.arena.buffers.iter().collect();
        if !all {
            bs.sort_by(|a, b| b.max_bytes.cmp(&a.max_bytes).then(a.offset.cmp(&b.offset)));
        }
        let mut t = Table::new(&[1, 2]);
        t.row(vec![
            if all { "buffer" } else { "largest buffers" }.into(),
            "size".into(),
            "offset".into(),
            "live steps".into(),
            "bytes (symbolic)".into(),
        ]);
        for b in bs.iter().take(top) {
            t.row(vec![
                clip(&b.name, 56),
                size(b.max_bytes),
                b.offset.to_string(),
                format!("{}..{}", b.live.0, b.live.1),
                clip(&b.bytes.display(&names), 32),
            ]);
        }
        t.render(&mut o, "  ");
    }

    // Weights.
    o.push('\n');
    let wtotal: u64 = m.weights.iter().map(|w| w.bytes).sum();
    let mut layouts: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    for w in &m.weights {
        let e = layouts.entry(w.layout.as_str()).or_default();
        e.0 += 1;
        e.1 += w.bytes;
    }
    let per: Vec<String> = layouts
        .iter()
        .map(|(l, (n, b))| format!("{l} {n} ({})", size(*b)))
        .collect();
    let _ = writeln!(
        o,
        "weights: {} tensors, {}{}",
        m.weights.len(),
        size(wtotal),
        if per.is_empty() {
            String::new()
        } else {
            format!(": {}", per.join(", "))
        }
    );
    if !m.weights.is_empty() {
        let mut ws: Vec<_> = m.weights.iter().collect();
        if !all {
            ws.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.offset.cmp(&b.offset)));
        }
        let mut t = Table::new(&[1]);
        t.row(vec![
            if all { "weight" } else { "largest weights" }.into(),
            "size".into(),
            "layout".into(),
        ]);
        for w in ws.iter().take(top) {
            t.row(vec![clip(&w.name, 56), size(w.bytes), w.layout.clone()]);
        }
        if ws.len() > top {
            let rest = &ws[top..];
            t.row(vec![
                format!("... {} more", rest.len()),
                size(rest.iter().map(|w| w.bytes).sum()),
            ]);
        }
        t.render(&mut o, "  ");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_clipping() {
        assert_eq!(size(812), "812 B");
        assert_eq!(size(12_595), "12.3 KiB");
        assert_eq!(size(90_900_000), "86.7 MiB");
        assert_eq!(clip("abcdefghij", 5), "ab…ij");
        assert_eq!(clip("abc", 5), "abc");
        assert_eq!(op_type("MatMul node \"/l0/MatMul\""), "MatMul");
    }

    #[test]
    fn tables_align() {
        let mut t = Table::new(&[1]);
        t.row(vec!["a".into(), "1".into(), "x".into()]);
        t.row(vec!["long".into(), "100".into(), "y".into()]);
        let mut s = String::new();
        t.render(&mut s, "  ");
        assert_eq!(s, "  a       1  x\n  long  100  y\n");
    }
}
