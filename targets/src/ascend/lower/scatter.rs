//! Scatters without reduction: ScatterND -> ScatterNdUpdate, ScatterElements ->
//! ScatterElements. Both update their first input in place, so the data is first copied
//! into the output (TensorMove) and the scatter then writes the updates into it. Tiling:
//! the 1-D split over the update elements (and `axis` for ScatterElements).

use kiln_ir::graph::NodeId;
use kiln_ir::AttrsExt;
use kiln_runtime::ascend::descriptor::{CoreType, Format, Tiling};

use super::{elementwise, LowerFn, Lowerer};
use crate::ascend::tiling::vector;
use crate::error::TargetError;

pub const OPS: &[(&str, LowerFn)] = &[("ScatterND", scatter), ("ScatterElements", scatter)];

fn scatter(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let op = lw.graph.node(id).op.clone();
    let attrs = &lw.graph.node(id).attrs;
    let reduction = attrs
        .str_or("reduction", "none")
        .unwrap_or("none")
        .to_string();
    if reduction != "none" {
        return Err(lw.unsupported(format!("{op} with reduction = {reduction}")));
    }
    let axis = attrs.int_or("axis", 0).unwrap_or(0);
    let mut ins = Vec::new();
    for i in 0..3 {
        let x = lw.input(id, i)?;
        ins.push(lw.to_format(&x, Format::Nd)?);
    }
    let out = lw.output(id, 0)?;
    let updates = lw.cast(&ins[2], out.dtype)?;
    elementwise::copy(lw, &ins[0], &out)?;
    let idx = ins[1].clone();
    let per = if op == "ScatterND" {
        idx.shape.last().copied().unwrap_or(1)
    } else {
        1
    };
    let ib = per * idx.dtype.size() as i64;
    let usize_ = updates.dtype.size() as i64;
    let t = vector::split(lw.profile, updates.numel(), |b| b * (ib + usize_))
        .map_err(|e| lw.error(e))?;
    let mut tiling = t.data();
    let name = if op == "ScatterND" {
        "ScatterNdUpdate"
    } else {
        let rank = out.shape.len() as i64;
        let a = if axis < 0 { axis + rank } else { axis };
        tiling.0.extend(Tiling::new().with("axis", a).0);
        "ScatterElements"
    };
    lw.launch(
        name,
        CoreType::Aiv,
        t.block_dim,
        tiling,
        vec![Some(out.clone()), Some(idx), Some(updates)],
        vec![out],
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::ascend::testing::{check, floats};
    use kiln_ir::Tensor;
    use kiln_runtime::ElemType;

    #[test]
    fn scatter_nd_and_elements() {
        let nd = Tensor::from_i64s(vec![2, 1], vec![3, -4]).unwrap();
        let el = Tensor::from_i64s(vec![2, 2], vec![1, 0, 4, -1]).unwrap();
        let text = "graph @t(%d: f32[5, 3], %nd: i64[2, 1], %u: f32[2, 3], %el: i64[2, 2], %v: f32[2, 2]) -> (a: f32[5, 3], b: f32[5, 3]) {
            %0 = ScatterND(%d, %nd, %u) : f32[5, 3]
            %1 = ScatterElements(%d, %el, %v) {axis = 0} : f32[5, 3]
            return %0, %1
        }";
        let inputs = [
            floats(&[5, 3], 1),
            nd,
            floats(&[2, 3], 2),
            el,
            floats(&[2, 2], 3),
        ];
        let k = check(text, &inputs, &[], ElemType::F16, 1e-3);
        assert!(k.contains(&"ScatterNdUpdate".to_string()));
    }
}
