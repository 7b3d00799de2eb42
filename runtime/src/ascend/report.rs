//! Launch lists and their costs for people: what `kiln inspect` prints for an Ascend
//! artifact and what `kiln run --profile` prints after a run.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::ascend::cost::KernelCost;
use crate::ascend::descriptor::{BufferKind, LaunchList, TensorBinding};

/// Rows of cells printed with every column padded to its widest cell; `right` columns
/// right-aligned.
fn table(rows: &[Vec<String>], right: &[usize], indent: &str) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let width: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = indent.to_string();
        for (c, cell) in r.iter().enumerate() {
            let pad = " ".repeat(width[c] - cell.chars().count());
            if right.contains(&c) {
                line.push_str(&pad);
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&pad);
            }
            line.push_str("  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `812 B`, `12.3 KiB`, `86.7 MiB`, `1.20 GiB`.
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

fn shape(s: &[i64]) -> String {
    let d: Vec<String> = s.iter().map(|x| x.to_string()).collect();
    format!("[{}]", d.join(", "))
}

/// `f16[7, 32]` (`NZ` appended for FRACTAL_NZ).
fn binding(b: &TensorBinding) -> String {
    let nz = match b.format {
        crate::ascend::descriptor::Format::Nd => "",
        crate::ascend::descriptor::Format::FractalNz => " NZ",
    };
    format!("{}{}{nz}", b.dtype, shape(&b.shape))
}

/// Shortens `s` to `max` characters, keeping its start and end.
fn clip(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    let head = (max - 1) / 2;
    let start: String = s.chars().take(head).collect();
    let end: String = s.chars().skip(n - (max - 1 - head)).collect();
    format!("{start}…{end}")
}

/// The launch list: profile, dims, inputs and outputs, HBM plan, then one line per kernel
/// (its name, core type, blockDim, operands, the tiling fields, the IR node and the
/// operator's attributes).
pub fn launch_list(list: &LaunchList) -> String {
    let mut o = String::new();
    let dims: Vec<String> = list.dims.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let _ = writeln!(
        o,
        "launch list: {} for {} in {}{}",
        list.name,
        list.profile,
        list.dtype,
        if dims.is_empty() {
            String::new()
        } else {
            format!(", dims {}", dims.join(", "))
        }
    );
    for (title, io) in [("inputs", &list.inputs), ("outputs", &list.outputs)] {
        let rows: Vec<Vec<String>> = io
            .iter()
            .map(|b| vec![clip(&b.name, 40), format!("{}{}", b.dtype, shape(&b.shape))])
            .collect();
        let _ = writeln!(o, "{title}");
        o.push_str(&table(&rows, &[], "  "));
    }
    let h = &list.hbm;
    let by_kind = |k: BufferKind| -> u64 {
        h.buffers
            .iter()
            .filter(|b| b.kind == k)
            .map(|b| b.bytes)
            .sum()
    };
    let _ = writeln!(
        o,
        "HBM: {} (weights {}, then {} for {} buffers: activations {}, workspaces {}, inputs {}, outputs {}, shared where not live at once)",
        size(h.bytes),
        size(h.weights_bytes),
        size(h.bytes - h.weights_bytes),
        h.buffers.iter().filter(|b| b.kind != BufferKind::Weight).count(),
        size(by_kind(BufferKind::Activation)),
        size(by_kind(BufferKind::Workspace)),
        size(by_kind(BufferKind::Input)),
        size(by_kind(BufferKind::Output)),
    );
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for k in &list.kernels {
        *counts.entry(&k.kernel_name).or_default() += 1;
    }
    let summary: Vec<String> = counts.iter().map(|(k, n)| format!("{k} x{n}")).collect();
    let _ = writeln!(
        o,
        "kernels: {} ({})",
        list.kernels.len(),
        summary.join(", ")
    );
    let mut rows = vec![vec![
        "#".to_string(),
        "kernel".into(),
        "core".into(),
        "blocks".into(),
        "inputs -> outputs".into(),
        "tiling".into(),
        "node".into(),
        "attributes".into(),
    ]];
    for (i, k) in list.kernels.iter().enumerate() {
        let ins: Vec<String> = k
            .inputs
            .iter()
            .map(|b| b.as_ref().map_or("-".to_string(), binding))
            .collect();
        let outs: Vec<String> = k.outputs.iter().map(binding).collect();
        let tiling: Vec<String> = k.tiling.0.iter().map(|(n, v)| format!("{n}={v}")).collect();
        let attrs: Vec<String> = k.attrs.iter().map(|(n, v)| format!("{n}: {v}")).collect();
        rows.push(vec![
            i.to_string(),
            k.kernel_name.clone(),
            k.core_type.to_string(),
            k.block_dim.to_string(),
            format!("{} -> {}", ins.join(", "), outs.join(", ")),
            clip(&tiling.join(" "), 60),
            clip(&k.op, 40),
            attrs.join(", "),
        ]);
    }
    o.push_str(&table(&rows, &[0, 3], "  "));
    o
}

fn micros(s: f64) -> String {
    format!("{:.2}", s * 1e6)
}

/// The per-kernel cost table of a run, the totals by kernel name and the estimated device
/// time.
pub fn profile(list: &LaunchList, costs: &[KernelCost]) -> String {
    let mut o = String::new();
    let total: f64 = costs.iter().map(|c| c.time_s).sum();
    let _ = writeln!(
        o,
        "estimated device time on {}: {} us for {} kernels",
        list.profile,
        micros(total),
        costs.len()
    );
    let mut rows = vec![vec![
        "#".to_string(),
        "kernel".into(),
        "blocks".into(),
        "cube cyc".into(),
        "vector cyc".into(),
        "GM bytes".into(),
        "HBM bytes".into(),
        "bound".into(),
        "us".into(),
        "node".into(),
    ]];
    for (i, c) in costs.iter().enumerate() {
        rows.push(vec![
            i.to_string(),
            c.kernel_name.clone(),
            c.block_dim.to_string(),
            c.cube_cycles.to_string(),
            c.vector_cycles.to_string(),
            size(c.gm_bytes),
            size(c.hbm_bytes),
            c.bound.name().to_string(),
            micros(c.time_s),
            clip(&c.op, 40),
        ]);
    }
    o.push_str(&table(&rows, &[0, 2, 3, 4, 5, 6, 8], "  "));
    let mut by: BTreeMap<&str, (usize, f64)> = BTreeMap::new();
    for c in costs {
        let e = by.entry(&c.kernel_name).or_default();
        e.0 += 1;
        e.1 += c.time_s;
    }
    let mut by: Vec<_> = by.into_iter().collect();
    by.sort_by(|a, b| b.1 .1.total_cmp(&a.1 .1));
    let _ = writeln!(o, "by kernel");
    let mut rows = vec![vec![
        "kernel".to_string(),
        "launches".into(),
        "us".into(),
        "share".into(),
    ]];
    for (k, (n, t)) in by {
        rows.push(vec![
            k.to_string(),
            n.to_string(),
            micros(t),
            format!("{:.1}%", 100.0 * t / total.max(f64::MIN_POSITIVE)),
        ]);
    }
    o.push_str(&table(&rows, &[1, 2, 3], "  "));
    o
}
