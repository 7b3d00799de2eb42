//! Reductions on the vector cores: ReduceSum, ReduceMean, ReduceMax, ReduceMin (CANN's
//! operators of the same names). Tiling: the 1-D split over output elements, `axes` (a
//! bitmask of the input's reduced axes) and `chunkLength` (reduced elements per output
//! loaded at a time, so any reduction length fits UB).

use kiln_ir::graph::NodeId;
use kiln_ir::AttrsExt;
use kiln_runtime::ascend::descriptor::{CoreType, Format};

use super::{LowerFn, Lowerer};
use crate::ascend::tiling::vector;
use crate::error::TargetError;

pub const OPS: &[(&str, LowerFn)] = &[
    ("ReduceSum", reduce),
    ("ReduceMean", reduce),
    ("ReduceMax", reduce),
    ("ReduceMin", reduce),
];

/// Reduced elements per output loaded at a time, at most.
const MAX_CHUNK: i64 = 512;

fn reduce(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let op = lw.graph.node(id).op.clone();
    let x = lw.input(id, 0)?;
    let x = lw.to_format(&x, Format::Nd)?;
    let rank = x.shape.len() as i64;
    let attrs = &lw.graph.node(id).attrs;
    let noop = attrs.int_or("noop_with_empty_axes", 0).unwrap_or(0) != 0;
    let axes = match lw.graph.node(id).input(1) {
        Some(_) => lw
            .ints_input(id, 1)
            .ok_or_else(|| lw.unsupported(format!("{op} with axes computed at run time")))?,
        None => match attrs.ints("axes") {
            Ok(a) => a.unwrap_or_default(),
            Err(e) => return Err(lw.error(e.to_string())),
        },
    };
    if axes.is_empty() && noop {
        return lw.alias_output(id, 0, &x);
    }
    let mut mask = 0i64;
    let all: Vec<i64> = if axes.is_empty() {
        (0..rank).collect()
    } else {
        axes
    };
    for a in all {
        let n = if a < 0 { a + rank } else { a };
        if n < 0 || n >= rank {
            return Err(lw.error(format!("axis {a} is out of range for rank {rank}")));
        }
        mask |= 1 << n;
    }
    let r: i64 = (0..rank)
        .filter(|d| mask >> d & 1 == 1)
        .map(|d| x.shape[d as usize])
        .product();
    let out = lw.output(id, 0)?;
    let x = lw.cast(&x, out.dtype)?;
    let chunk = r.clamp(1, MAX_CHUNK);
    let size = x.dtype.size() as i64;
    let t = vector::split(lw.profile, out.numel(), |b| b * (chunk * size + size + 4))
        .map_err(|e| lw.error(e))?;
    let mut tiling = t.data();
    tiling.push("axes", mask);
    tiling.push("chunkLength", chunk);
    lw.launch(
        &op,
        CoreType::Aiv,
        t.block_dim,
        tiling,
        vec![Some(x)],
        vec![out],
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::ascend::testing::{check, floats};
    use kiln_runtime::ElemType;

    #[test]
    fn sums_means_and_extremes() {
        let text = "graph @t(%x: f32[3, 4, 700]) -> (a: f32[3, 1, 700], b: f32[3, 4], c: f32[], d: f32[4]) {
            %0 = constant {value = dense<i64[1]>[1]} : i64[1]
            %1 = ReduceSum(%x, %0) {keepdims = 1} : f32[3, 1, 700]
            %2 = constant {value = dense<i64[1]>[-1]} : i64[1]
            %3 = ReduceMean(%x, %2) {keepdims = 0} : f32[3, 4]
            %4 = ReduceMax(%x) {keepdims = 0} : f32[]
            %5 = constant {value = dense<i64[2]>[0, 2]} : i64[2]
            %6 = ReduceMin(%x, %5) {keepdims = 0} : f32[4]
            return %1, %3, %4, %6
        }";
        for dtype in [ElemType::F16, ElemType::BF16] {
            let k = check(text, &[floats(&[3, 4, 700], 1)], &[], dtype, 1e-2);
            assert!(k.contains(&"ReduceMin".to_string()));
        }
    }
}
