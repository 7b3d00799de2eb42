//! Normalisations: `LayerNormalization`, `layer_norm`, `RMSNormalization`, `rms_norm`,
//! `SimplifiedLayerNormalization`, `com.microsoft.Skip(Simplified)LayerNormalization`,
//! `InstanceNormalization`, `GroupNormalization`, `BatchNormalization` (inference).

use kiln_ir::attr::AttrsExt;
use kiln_ir::dim::Dim;
use kiln_ir::graph::NodeId;

use super::{attr_err, float_elem, norm_axis, product, wanted};
use crate::cpu::codegen::kernels::reduce::norm::{self, NormSpec};
use crate::cpu::codegen::kernels::reduce::Elem;
use crate::cpu::lower::{Arg, Lowerer, Operand};
use crate::error::TargetError;

fn int_attr(lw: &Lowerer, id: NodeId, name: &str, default: i64) -> Result<i64, TargetError> {
    lw.graph
        .node(id)
        .attrs
        .int_or(name, default)
        .map_err(|e| attr_err(lw, e))
}

fn float_attr(lw: &Lowerer, id: NodeId, name: &str, default: f32) -> Result<f64, TargetError> {
    lw.graph
        .node(id)
        .attrs
        .float_or(name, default)
        .map(f64::from)
        .map_err(|e| attr_err(lw, e))
}

/// How parameter `p` (broadcast to x) varies over rows normalised from axis `a`: `false`
/// one value per row element, `true` one value for everything; `None` for other forms.
fn param_mode(x: &[Dim], a: usize, p: &[Dim]) -> Option<bool> {
    if p.len() > x.len() {
        return None;
    }
    let pad = x.len() - p.len();
    let one = Dim::from(1i64);
    let at = |i: usize| {
        if i < pad {
            one.clone()
        } else {
            p[i - pad].clone()
        }
    };
    if (0..a).any(|i| at(i) != one) {
        return None;
    }
    if (a..x.len()).all(|i| at(i) == one) {
        return Some(true);
    }
    if (a..x.len()).all(|i| at(i) == x[i]) {
        return Some(false);
    }
    None
}

fn same_dtype(lw: &Lowerer, x: &Operand, p: &Operand, what: &str) -> Result<(), TargetError> {
    if p.dtype != x.dtype {
        return Err(lw.unsupported(format!(
            "{what} of dtype {} with input {}",
            p.dtype, x.dtype
        )));
    }
    Ok(())
}

fn zero() -> Arg {
    Arg::Int(Dim::from(0i64))
}

/// Emits a `norm_rows` step. `outs` = (y, sum, mean, inv) operands.
#[allow(clippy::too_many_arguments)]
fn emit_norm(
    lw: &mut Lowerer,
    e: Elem,
    spec: NormSpec,
    x: &Operand,
    rows: Dim,
    n: Dim,
    eps: f64,
    scale: &Operand,
    beta: Option<&Operand>,
    skip: Option<(&Operand, Dim)>,
    in_bias: Option<&Operand>,
    outs: (Operand, Option<Operand>, Option<Operand>, Option<Operand>),
) -> Result<(), TargetError> {
    let key = format!("norm_rows_{}_{spec:?}", x.dtype);
    let k = lw.kernel(&key, |kb| norm::norm_rows(kb, e, spec))?;
    let k = super::softmax::parallel_rows(lw, k, &key, &rows.mul(&n), 14, 2)?;
    let ptr = |o: Option<&Operand>| o.map_or_else(zero, Operand::ptr);
    let (y, sum, mean, inv) = outs;
    let args = vec![
        x.ptr(),
        y.ptr(),
        zero(),
        Arg::Int(rows),
        Arg::Int(n),
        Arg::Bits(eps.to_bits()),
        scale.ptr(),
        ptr(beta),
        ptr(skip.as_ref().map(|s| s.0)),
        skip.map_or_else(|| Arg::Int(Dim::from(1i64)), |s| Arg::Int(s.1)),
        ptr(in_bias),
        ptr(sum.as_ref()),
        ptr(mean.as_ref()),
        ptr(inv.as_ref()),
    ];
    lw.emit(k, args);
    Ok(())
}

/// The dtype element of statistics output `i`.
fn stat_elem(lw: &Lowerer, id: NodeId, i: usize) -> Result<Elem, TargetError> {
    let d = lw.graph.node(id).outputs[i].dtype;
    match Elem::of(d) {
        Some(e) if e.is_float() => Ok(e),
        _ => Err(lw.unsupported(format!("statistics of dtype {d}"))),
    }
}

/// `LayerNormalization(x, scale, bias?)` and the fused `layer_norm`.
pub fn lower_layer_norm(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let fused = lw.graph.node(id).op == "layer_norm";
    norm_common(lw, id, false, if fused { "eps" } else { "epsilon" })
}

/// `RMSNormalization(x, scale)`, `rms_norm`, `SimplifiedLayerNormalization`.
pub fn lower_rms_norm(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let fused = lw.graph.node(id).op == "rms_norm";
    norm_common(lw, id, true, if fused { "eps" } else { "epsilon" })
}

fn norm_common(lw: &mut Lowerer, id: NodeId, rms: bool, eps_name: &str) -> Result<(), TargetError> {
    let op = lw.graph.node(id).op.clone();
    let x = lw.input(id, 0)?;
    let e = float_elem(lw, &x)?;
    let rank = x.shape.len();
    if rank == 0 {
        return Err(lw.unsupported("a scalar input"));
    }
    let a = norm_axis(lw, int_attr(lw, id, "axis", -1)?, rank)?;
    let eps = float_attr(lw, id, eps_name, 1e-5)?;
    let scale = lw.input(id, 1)?;
    same_dtype(lw, &x, &scale, "a scale")?;
    let scalar_scale = param_mode(&x.shape, a, &scale.shape)
        .ok_or_else(|| lw.unsupported(format!("a scale of shape {:?}", scale.shape)))?;
    let bias = if rms { None } else { lw.opt_input(id, 2) };
    let scalar_beta = match &bias {
        Some(b) => {
            same_dtype(lw, &x, b, "a bias")?;
            param_mode(&x.shape, a, &b.shape)
                .ok_or_else(|| lw.unsupported(format!("a bias of shape {:?}", b.shape)))?
        }
        None => false,
    };
    // Statistics outputs: LayerNormalization's mean (1) and inv std (2);
    // SimplifiedLayerNormalization's inv std (1).
    let (mean_i, inv_i) = match op.as_str() {
        "LayerNormalization" => (Some(1), Some(2)),
        "SimplifiedLayerNormalization" => (None, Some(1)),
        _ => (None, None),
    };
    let mean_i = mean_i.filter(|&i| wanted(lw, id, i));
    let inv_i = inv_i.filter(|&i| wanted(lw, id, i));
    let stat = match mean_i.or(inv_i) {
        Some(i) => stat_elem(lw, id, i)?,
        None => e,
    };
    if let (Some(m), Some(v)) = (mean_i, inv_i) {
        if stat_elem(lw, id, m)? != stat_elem(lw, id, v)? {
            return Err(lw.unsupported("statistics of two dtypes"));
        }
    }
    let spec = NormSpec {
        rms,
        scalar_scale,
        beta: bias.is_some(),
        scalar_beta,
        skip: false,
        in_bias: false,
        out_sum: false,
        out_mean: mean_i.is_some(),
        out_inv: inv_i.is_some(),
        stat,
    };
    let y = lw.output(id, 0);
    if y.dtype != x.dtype {
        return Err(lw.unsupported(format!("an output of dtype {}", y.dtype)));
    }
    let mean = mean_i.map(|i| lw.output(id, i));
    let inv = inv_i.map(|i| lw.output(id, i));
    let rows = product(&x.shape[..a]);
    let n = product(&x.shape[a..]);
    emit_norm(
        lw,
        e,
        spec,
        &x,
        rows,
        n,
        eps,
        &scale,
        bias.as_ref(),
        None,
        None,
        (y, None, mean, inv),
    )
}

/// `com.microsoft.SkipLayerNormalization(input, skip, gamma, beta?, bias?)` and
/// `com.microsoft.SkipSimplifiedLayerNormalization(input, skip, gamma, bias?)`: outputs
/// the result, mean, inv std dev and `input + skip + bias`.
pub fn lower_skip_layer_norm(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let simplified = lw.graph.node(id).op.contains("Simplified");
    let x = lw.input(id, 0)?;
    let e = float_elem(lw, &x)?;
    let Some(hd) = x.shape.last().cloned() else {
        return Err(lw.unsupported("a scalar input"));
    };
    let skip = lw.input(id, 1)?;
    same_dtype(lw, &x, &skip, "a skip")?;
    if skip.shape.last() != Some(&hd) {
        return Err(lw.unsupported(format!("a skip of shape {:?}", skip.shape)));
    }
    let skip_rows = product(&skip.shape[..skip.shape.len() - 1]);
    let gamma = lw.input(id, 2)?;
    same_dtype(lw, &x, &gamma, "a gamma")?;
    let vec_ok = |p: &Operand| p.numel() == hd;
    if !vec_ok(&gamma) {
        return Err(lw.unsupported(format!("a gamma of shape {:?}", gamma.shape)));
    }
    let (beta, bias) = if simplified {
        (None, lw.opt_input(id, 3))
    } else {
        (lw.opt_input(id, 3), lw.opt_input(id, 4))
    };
    for p in beta.iter().chain(bias.iter()) {
        same_dtype(lw, &x, p, "a bias")?;
        if !vec_ok(p) {
            return Err(lw.unsupported(format!("a bias of shape {:?}", p.shape)));
        }
    }
    let want = |i| wanted(lw, id, i);
    let (wm, wi, ws) = (want(1), want(2), want(3));
    let stat = if wm {
        stat_elem(lw, id, 1)?
    } else if wi {
        stat_elem(lw, id, 2)?
    } else {
        e
    };
    if wm && wi && stat_elem(lw, id, 2)? != stat {
        return Err(lw.unsupported("statistics of two dtypes"));
    }
    let spec = NormSpec {
        rms: simplified,
        scalar_scale: false,
        beta: beta.is_some(),
        scalar_beta: false,
        skip: true,
        in_bias: bias.is_some(),
        out_sum: ws,
        out_mean: wm,
        out_inv: wi,
        stat,
    };
    let eps = float_attr(lw, id, "epsilon", 1e-12)?;
    let y = lw.output(id, 0);
    let mean = wm.then(|| lw.output(id, 1));
    let inv = wi.then(|| lw.output(id, 2));
    let sum = ws.then(|| lw.output(id, 3));
    let rows = product(&x.shape[..x.shape.len() - 1]);
    emit_norm(
        lw,
        e,
        spec,
        &x,
        rows,
        hd,
        eps,
        &gamma,
        beta.as_ref(),
        Some((&skip, skip_rows)),
        bias.as_ref(),
        (y, sum, mean, inv),
    )
}

/// `[N, C, spatial]` of an `[N, C, ...]` input.
fn ncs(lw: &Lowerer, x: &Operand) -> Result<(Dim, Dim, Dim), TargetError> {
    if x.shape.len() < 2 {
        return Err(lw.error(format!("expected [N, C, ...], got {:?}", x.shape)));
    }
    Ok((
        x.shape[0].clone(),
        x.shape[1].clone(),
        product(&x.shape[2..]),
    ))
}

fn channel_param(
    lw: &mut Lowerer,
    id: NodeId,
    i: usize,
    x: &Operand,
    len: &Dim,
) -> Result<Operand, TargetError> {
    let p = lw.input(id, i)?;
    same_dtype(lw, x, &p, "a parameter")?;
    if p.numel() != *len {
        return Err(lw.unsupported(format!("a parameter of shape {:?}", p.shape)));
    }
    Ok(p)
}

fn emit_channel_norm(
    lw: &mut Lowerer,
    id: NodeId,
    group_params: bool,
    groups: Dim,
    per: Dim,
    params: (Operand, Operand),
) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    let e = float_elem(lw, &x)?;
    let (nb, _, sp) = ncs(lw, &x)?;
    let eps = float_attr(lw, id, "epsilon", 1e-5)?;
    let key = format!("channel_norm_{}_{group_params}", x.dtype);
    let k = lw.kernel(&key, |kb| norm::channel_norm(kb, e, group_params))?;
    let y = lw.output(id, 0);
    lw.emit(
        k,
        vec![
            x.ptr(),
            y.ptr(),
            params.0.ptr(),
            params.1.ptr(),
            Arg::Bits(eps.to_bits()),
            Arg::Int(nb),
            Arg::Int(groups),
            Arg::Int(per),
            Arg::Int(sp),
        ],
    );
    Ok(())
}

pub fn lower_instance_norm(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    float_elem(lw, &x)?;
    let (_, c, _) = ncs(lw, &x)?;
    let scale = channel_param(lw, id, 1, &x, &c)?;
    let bias = channel_param(lw, id, 2, &x, &c)?;
    emit_channel_norm(lw, id, false, c, Dim::from(1i64), (scale, bias))
}

pub fn lower_group_norm(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    float_elem(lw, &x)?;
    let (_, c, _) = ncs(lw, &x)?;
    let g = int_attr(lw, id, "num_groups", 0)?;
    let Some(cc) = c.as_const() else {
        return Err(lw.unsupported("a symbolic channel count"));
    };
    if g <= 0 || cc % g != 0 {
        return Err(lw.error(format!("num_groups {g} does not divide the {cc} channels")));
    }
    let gd = Dim::from(g);
    let group_params = lw.input(id, 1)?.numel() == gd && g != cc;
    let len = if group_params { gd.clone() } else { c.clone() };
    let scale = channel_param(lw, id, 1, &x, &len)?;
    let bias = channel_param(lw, id, 2, &x, &len)?;
    emit_channel_norm(lw, id, group_params, gd, Dim::from(cc / g), (scale, bias))
}

pub fn lower_batch_norm(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let training = int_attr(lw, id, "training_mode", 0)? != 0;
    let x = lw.input(id, 0)?;
    let e = float_elem(lw, &x)?;
    let (nb, c, sp) = ncs(lw, &x)?;
    let params: Vec<Operand> = (1..5)
        .map(|i| channel_param(lw, id, i, &x, &c))
        .collect::<Result<_, _>>()?;
    let eps = float_attr(lw, id, "epsilon", 1e-5)?;
    let y = lw.output(id, 0);
    let mut args = vec![x.ptr(), y.ptr()];
    args.extend(params.iter().map(Operand::ptr));
    args.push(Arg::Bits(eps.to_bits()));
    if training {
        let momentum = float_attr(lw, id, "momentum", 0.9)?;
        let running = wanted(lw, id, 1) || wanted(lw, id, 2);
        let key = format!("batch_norm_train_{}_{running}", x.dtype);
        let k = lw.kernel(&key, |kb| norm::batch_norm_train(kb, e, running))?;
        args.push(Arg::Bits(momentum.to_bits()));
        args.extend([Arg::Int(nb), Arg::Int(c), Arg::Int(sp)]);
        for i in 1..3 {
            if running {
                let o = lw.output(id, i);
                if o.dtype != x.dtype {
                    return Err(lw.unsupported(format!("running statistics of dtype {}", o.dtype)));
                }
                args.push(o.ptr());
            } else {
                args.push(zero());
            }
        }
        lw.emit(k, args);
        return Ok(());
    }
    let key = format!("batch_norm_{}", x.dtype);
    let k = lw.kernel(&key, |kb| norm::batch_norm(kb, e))?;
    args.extend([Arg::Int(nb), Arg::Int(c), Arg::Int(sp)]);
    lw.emit(k, args);
    // In inference mode the running statistics pass through.
    for i in 1..3 {
        if wanted(lw, id, i) {
            let src = params[i + 2].clone();
            lw.alias_output(id, i, &src)?;
        }
    }
    Ok(())
}

/// `MeanVarianceNormalization` over its `axes` (default `[0, 2, 3]`).
pub fn lower_mvn(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    let e = float_elem(lw, &x)?;
    let rank = x.shape.len();
    let axes = lw
        .graph
        .node(id)
        .attrs
        .ints("axes")
        .map_err(|err| attr_err(lw, err))?
        .unwrap_or_else(|| vec![0, 2, 3]);
    let mut mask = vec![false; rank];
    for &a in &axes {
        let n = norm_axis(lw, a, rank)?;
        if mask[n] {
            return Err(lw.error(format!("axis {a} appears twice in {axes:?}")));
        }
        mask[n] = true;
    }
    let groups = super::reduce_groups(&x.shape, &mask);
    let pattern: Vec<bool> = groups.iter().map(|g| g.1).collect();
    let stats = product(
        &groups
            .iter()
            .filter(|g| !g.1)
            .map(|g| g.0.clone())
            .collect::<Vec<_>>(),
    );
    let pat: String = pattern.iter().map(|&r| if r { 'R' } else { 'K' }).collect();
    let key = format!("mvn_{}_{pat}", x.dtype);
    let k = lw.kernel(&key, |kb| norm::mvn(kb, e, &pattern))?;
    let mean = lw.scratch("mean", x.dtype, vec![stats.clone()]);
    let sd = lw.scratch("std", x.dtype, vec![stats]);
    let y = lw.output(id, 0);
    let mut args = vec![x.ptr(), y.ptr(), mean.ptr(), sd.ptr()];
    args.extend(groups.into_iter().map(|g| Arg::Int(g.0)));
    lw.emit(k, args);
    Ok(())
}
