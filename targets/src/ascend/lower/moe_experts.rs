//! The routed experts' weights as the grouped matmuls read them, converted once at compile
//! time: kiln's `moe` stores them as linear layers ([E, out, in]: w1 [E, I, H] or, fused,
//! [E, 2I, H]; w2 [E, H, I]); GroupedMatmul multiplies x [M, K] by a [E, K, N] weight, so
//! each expert's matrix is transposed, gate and up are split out of a fused w1
//! (interleaved rows or halves, per `swiglu_fusion`), and the result is stored FRACTAL_NZ.
//! Biases stay ND in the device dtype: gate/up [E, I], down [E, H] (for
//! MoeFinalizeRouting).

use kiln_ir::graph::NodeId;
use kiln_ir::tensor::Tensor;
use kiln_runtime::ascend::descriptor::Format;

use super::{DevTensor, Lowerer};
use crate::ascend::format;
use crate::error::TargetError;

/// The experts' device weights.
pub struct Experts {
    pub experts: i64,
    pub hidden: i64,
    pub inter: i64,
    /// [E, H, I] FRACTAL_NZ.
    pub gate: DevTensor,
    /// [E, H, I] FRACTAL_NZ, when the experts have an up projection.
    pub up: Option<DevTensor>,
    /// [E, I] ND each, both or neither.
    pub gate_bias: Option<DevTensor>,
    pub up_bias: Option<DevTensor>,
    /// [E, I, H] FRACTAL_NZ.
    pub down: DevTensor,
    /// [E, H] ND.
    pub down_bias: Option<DevTensor>,
}

/// Rows of w1 (and columns of b1) holding the gate and the up projection of each expert.
fn split_rows(fusion: i64, rows: usize) -> (Vec<usize>, Vec<usize>) {
    match fusion {
        1 => (
            (0..rows / 2).map(|i| 2 * i).collect(),
            (0..rows / 2).map(|i| 2 * i + 1).collect(),
        ),
        2 => ((0..rows / 2).collect(), (rows / 2..rows).collect()),
        _ => ((0..rows).collect(), Vec::new()),
    }
}

/// The constant input `i` of node `id`, or an error naming it.
fn constant(lw: &Lowerer, id: NodeId, i: usize, what: &str) -> Result<Tensor, TargetError> {
    match lw.const_input(id, i) {
        Some(t) => Ok((*t).clone()),
        None => Err(lw.unsupported(format!(
            "moe with {what} computed at run time (expert weights must be constants)"
        ))),
    }
}

/// Stores `[E, K, N]` values `v` as a FRACTAL_NZ weight.
fn store_nz(
    lw: &mut Lowerer,
    name: String,
    like: &Tensor,
    shape: [usize; 3],
    v: &[f64],
) -> Result<DevTensor, TargetError> {
    let t = Tensor::from_f64(like.dtype(), shape.to_vec(), v);
    let dtype = lw.device_dtype(like.dtype())?;
    let bytes = format::encode(&t, dtype, Format::FractalNz).map_err(|e| lw.error(e))?;
    let shape = shape.iter().map(|&d| d as i64).collect();
    Ok(lw.weight(&name, dtype, Format::FractalNz, shape, bytes))
}

/// Stores `[E, C]` values as an ND weight in the device dtype.
fn store_nd(
    lw: &mut Lowerer,
    name: String,
    like: &Tensor,
    shape: [usize; 2],
    v: &[f64],
) -> Result<DevTensor, TargetError> {
    let t = Tensor::from_f64(like.dtype(), shape.to_vec(), v);
    let dtype = lw.device_dtype(like.dtype())?;
    let bytes = format::encode(&t, dtype, Format::Nd).map_err(|e| lw.error(e))?;
    let shape = shape.iter().map(|&d| d as i64).collect();
    Ok(lw.weight(&name, dtype, Format::Nd, shape, bytes))
}

/// `w[e, rows[i], h]` as `[E, H, rows.len()]` (each expert's selected rows, transposed).
fn transposed(w: &[f64], (e, r, c): (usize, usize, usize), rows: &[usize]) -> Vec<f64> {
    let n = rows.len();
    let mut out = vec![0.0; e * c * n];
    for ex in 0..e {
        for (j, &row) in rows.iter().enumerate() {
            for h in 0..c {
                out[(ex * c + h) * n + j] = w[(ex * r + row) * c + h];
            }
        }
    }
    out
}

/// Columns `cols` of each row of an `[E, C]` bias.
fn columns(b: &[f64], (e, c): (usize, usize), cols: &[usize]) -> Vec<f64> {
    (0..e)
        .flat_map(|ex| cols.iter().map(move |&j| b[ex * c + j]))
        .collect()
}

/// Converts the experts of moe node `id` (inputs 2-7) with `swiglu_fusion` = `fusion`.
pub fn convert(lw: &mut Lowerer, id: NodeId, fusion: i64) -> Result<Experts, TargetError> {
    let label = lw.graph.node(id).label();
    let w1 = constant(lw, id, 2, "w1")?;
    let w2 = constant(lw, id, 4, "w2")?;
    let (&[e, r1, h], &[_, _, i2]) = (w1.shape(), w2.shape()) else {
        return Err(lw.error("w1 and w2 must have rank 3"));
    };
    let (grows, urows) = split_rows(fusion, r1);
    let inter = grows.len();
    if inter != i2 {
        return Err(lw.error(format!(
            "w1 {:?} and w2 {:?} disagree on the intermediate size",
            w1.shape(),
            w2.shape()
        )));
    }
    let w1v = w1.to_f64();
    let gate = transposed(&w1v, (e, r1, h), &grows);
    let gate = store_nz(lw, format!("{label} gate"), &w1, [e, h, inter], &gate)?;
    let up = if fusion != 0 {
        let u = transposed(&w1v, (e, r1, h), &urows);
        Some(store_nz(lw, format!("{label} up"), &w1, [e, h, inter], &u)?)
    } else if lw.const_input(id, 6).is_some() {
        let w3 = constant(lw, id, 6, "w3")?;
        let u = transposed(&w3.to_f64(), (e, inter, h), &(0..inter).collect::<Vec<_>>());
        Some(store_nz(lw, format!("{label} up"), &w3, [e, h, inter], &u)?)
    } else if lw.graph.node(id).input(6).is_some() {
        return Err(lw.unsupported("moe with w3 computed at run time"));
    } else {
        None
    };
    let down = transposed(&w2.to_f64(), (e, h, inter), &(0..h).collect::<Vec<_>>());
    let down = store_nz(lw, format!("{label} down"), &w2, [e, inter, h], &down)?;
    let bias = |lw: &Lowerer, i: usize, what: &str| -> Result<Option<Tensor>, TargetError> {
        match lw.graph.node(id).input(i) {
            None => Ok(None),
            Some(_) => constant(lw, id, i, what).map(Some),
        }
    };
    let (b1, b3, b2) = (bias(lw, 3, "b1")?, bias(lw, 7, "b3")?, bias(lw, 5, "b2")?);
    let (mut gate_bias, mut up_bias) = (None, None);
    if let Some(b1) = &b1 {
        let v = b1.to_f64();
        let g = columns(&v, (e, r1), &grows);
        gate_bias = Some(store_nd(
            lw,
            format!("{label} gate bias"),
            b1,
            [e, inter],
            &g,
        )?);
        if fusion != 0 {
            let u = columns(&v, (e, r1), &urows);
            up_bias = Some(store_nd(
                lw,
                format!("{label} up bias"),
                b1,
                [e, inter],
                &u,
            )?);
        }
    }
    if let Some(b3) = &b3 {
        up_bias = Some(store_nd(
            lw,
            format!("{label} up bias"),
            b3,
            [e, inter],
            &b3.to_f64(),
        )?);
    }
    // The grouped matmul takes gate and up biases together or not at all: a missing one is
    // zeros.
    if up.is_some() && gate_bias.is_some() != up_bias.is_some() {
        let like = b1.as_ref().or(b3.as_ref()).expect("one bias is present");
        let zeros = vec![0.0; e * inter];
        let z = store_nd(lw, format!("{label} zero bias"), like, [e, inter], &zeros)?;
        gate_bias.get_or_insert(z.clone());
        up_bias.get_or_insert(z);
    }
    let down_bias = match &b2 {
        Some(b2) => Some(store_nd(
            lw,
            format!("{label} down bias"),
            b2,
            [e, h],
            &b2.to_f64(),
        )?),
        None => None,
    };
    Ok(Experts {
        experts: e as i64,
        hidden: h as i64,
        inter: inter as i64,
        gate,
        up,
        gate_bias,
        up_bias,
        down,
        down_bias,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fused_gate_up_split_and_transposed() {
        // One expert, w1 [4, 2] = rows g0 u0 g1 u1 interleaved.
        let w = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let (g, u) = split_rows(1, 4);
        assert_eq!(transposed(&w, (1, 4, 2), &g), [1.0, 5.0, 2.0, 6.0]);
        assert_eq!(transposed(&w, (1, 4, 2), &u), [3.0, 7.0, 4.0, 8.0]);
        let (g, u) = split_rows(2, 4);
        assert_eq!((g, u), (vec![0, 1], vec![2, 3]));
        assert_eq!(columns(&[1.0, 2.0, 3.0, 4.0], (1, 4), &[1, 3]), [2.0, 4.0]);
    }
}
