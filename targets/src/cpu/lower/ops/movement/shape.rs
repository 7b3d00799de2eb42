//! Ops that rearrange their input: each output element is some input element (or a fill),
//! at a position given by affine index maps.

use kiln_ir::attr::AttrsExt;
use kiln_ir::dim::Dim;
use kiln_ir::graph::NodeId;

use super::{
    attr_err, c, const_ints, copy, copy_to_output, fill_all, has_input, is_used, nonneg, norm_axis,
    out_type, strides, Axis, FillValue,
};
use crate::cpu::lower::{Lowerer, Operand};
use crate::error::TargetError;

/// Past-the-end sentinel of Slice starts (as the reference: `i32::MAX` and above exceed
/// every dim).
const HUGE: i64 = i32::MAX as i64;

pub fn transpose(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    let out = out_type(lw, id, 0);
    let rank = x.shape.len();
    let perm = match lw.graph.node(id).attrs.ints("perm").map_err(attr_err(lw))? {
        Some(p) => p
            .iter()
            .map(|&a| norm_axis(lw, a, rank))
            .collect::<Result<Vec<_>, _>>()?,
        None => (0..rank).rev().collect(),
    };
    if perm.len() != rank || out.shape.len() != rank {
        return Err(lw.error(format!("perm {perm:?} does not fit rank {rank}")));
    }
    let (xs, os) = (strides(&x.shape), strides(&out.shape));
    let axes = (0..rank)
        .map(|k| Axis::new(&out.shape[k], &xs[perm[k]], &os[k]))
        .collect();
    copy_to_output(lw, id, 0, &x, &c(0), axes)
}

/// The first index of a slice `start::step` of an axis of size `d` (ONNX's clamping).
fn slice_start(d: &Dim, start: &Dim, step: i64) -> Dim {
    let hi = if step > 0 { d.clone() } else { d.sub(&c(1)) };
    if let (Some(dc), Some(s)) = (d.as_const(), start.as_const()) {
        if dc == 0 {
            return c(0);
        }
        let n = if s < 0 { s.saturating_add(dc) } else { s };
        return c(if step > 0 {
            n.clamp(0, dc)
        } else {
            n.clamp(0, dc - 1)
        });
    }
    match start.as_const() {
        Some(s) if s >= HUGE => hi,
        Some(s) if s <= -HUGE => c(0),
        Some(0) => c(0),
        // -k counts from the end; d - k <= hi for steps either way.
        Some(s) if s < 0 => d.add(start).maximum(&c(0)),
        Some(_) => start.minimum(&hi),
        None if nonneg(start) => start.minimum(&hi),
        // Sign unknown at compile time: `floordiv(v, 2^40)` is -1 for the negative starts
        // (which count from the end) and 0 for the others.
        None => {
            let from_end = start.floor_div(&c(1 << 40)).mul(d);
            start.sub(&from_end).minimum(&hi).maximum(&c(0))
        }
    }
}

pub fn slice(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    let out = out_type(lw, id, 0);
    let rank = x.shape.len();
    let starts = lw
        .dims_input(id, 1)
        .ok_or_else(|| lw.unsupported("Slice with starts computed at run time"))?;
    let n = starts.len();
    let axes = if has_input(lw, id, 3) {
        const_ints(lw, id, 3).ok_or_else(|| lw.unsupported("Slice with run-time axes"))?
    } else {
        (0..n as i64).collect()
    };
    let steps = if has_input(lw, id, 4) {
        const_ints(lw, id, 4).ok_or_else(|| lw.unsupported("Slice with run-time steps"))?
    } else {
        vec![1; n]
    };
    if axes.len() != n || steps.len() != n || out.shape.len() != rank {
        return Err(lw.error("Slice starts, axes and steps differ in length"));
    }
    let xs = strides(&x.shape);
    let mut ss = xs.clone();
    let mut soff = c(0);
    for k in 0..n {
        let a = norm_axis(lw, axes[k], rank)?;
        let step = steps[k];
        if step == 0 {
            return Err(lw.error("Slice step 0"));
        }
        let first = slice_start(&x.shape[a], &starts[k], step);
        soff = soff.add(&first.mul(&xs[a]));
        ss[a] = xs[a].mul(&c(step));
    }
    let os = strides(&out.shape);
    let axes = (0..rank)
        .map(|k| Axis::new(&out.shape[k], &ss[k], &os[k]))
        .collect();
    copy_to_output(lw, id, 0, &x, &soff, axes)
}

pub fn expand(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    let out = out_type(lw, id, 0);
    let Some(pad) = out.shape.len().checked_sub(x.shape.len()) else {
        return Err(lw.error("Expand to a lower rank"));
    };
    let (xs, os) = (strides(&x.shape), strides(&out.shape));
    let mut axes = Vec::with_capacity(out.shape.len());
    for (k, n) in out.shape.iter().enumerate() {
        let ss = if k < pad {
            c(0)
        } else {
            let d = &x.shape[k - pad];
            match d.as_const() {
                _ if d == n => xs[k - pad].clone(),
                Some(1) => c(0),
                Some(_) => xs[k - pad].clone(),
                // A symbolic dim broadcasts: it is 1 (stride 0) or the output's (stride 1
                // times the input's), whichever it is when the model runs.
                None => xs[k - pad].mul(&d.sub(&c(1)).minimum(&c(1))),
            }
        };
        axes.push(Axis::new(n, &ss, &os[k]));
    }
    copy_to_output(lw, id, 0, &x, &c(0), axes)
}

pub fn concat(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let out = out_type(lw, id, 0);
    let rank = out.shape.len();
    let axis = lw
        .graph
        .node(id)
        .attrs
        .int("axis")
        .map_err(attr_err(lw))?
        .ok_or_else(|| lw.error("Concat needs an axis"))?;
    let axis = norm_axis(lw, axis, rank)?;
    let n_in = lw.graph.node(id).inputs().len();
    let os = strides(&out.shape);
    // A single input is the output itself.
    if n_in == 1 {
        let x = lw.input(id, 0)?;
        return lw.alias_output(id, 0, &x);
    }
    let dst = lw.output(id, 0);
    let mut at = c(0);
    for i in 0..n_in {
        let x = lw.input(id, i)?;
        if x.shape.len() != rank {
            return Err(lw.error("Concat inputs differ in rank"));
        }
        let xs = strides(&x.shape);
        let axes = (0..rank)
            .map(|k| Axis::new(&x.shape[k], &xs[k], &os[k]))
            .collect();
        copy(lw, &x, &c(0), &dst, &at.mul(&os[axis]), axes)?;
        at = at.add(&x.shape[axis]);
    }
    Ok(())
}

pub fn split(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    let rank = x.shape.len();
    let axis = lw
        .graph
        .node(id)
        .attrs
        .int_or("axis", 0)
        .map_err(attr_err(lw))?;
    let axis = norm_axis(lw, axis, rank)?;
    let xs = strides(&x.shape);
    let mut at = c(0);
    for i in 0..lw.graph.node(id).outputs.len() {
        let out = out_type(lw, id, i);
        if out.shape.len() != rank {
            return Err(lw.error("Split output rank differs from the input's"));
        }
        let os = strides(&out.shape);
        let axes: Vec<Axis> = (0..rank)
            .map(|k| Axis::new(&out.shape[k], &xs[k], &os[k]))
            .collect();
        if is_used(lw, id, i) {
            copy_to_output(lw, id, i, &x, &at.mul(&xs[axis]), axes)?;
        }
        at = at.add(&out.shape[axis]);
    }
    Ok(())
}

pub fn tile(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    let out = out_type(lw, id, 0);
    let reps = lw
        .dims_input(id, 1)
        .ok_or_else(|| lw.unsupported("Tile with repeats computed at run time"))?;
    let rank = x.shape.len();
    if reps.len() != rank || out.shape.len() != rank {
        return Err(lw.error("Tile repeats do not fit the input"));
    }
    let (xs, os) = (strides(&x.shape), strides(&out.shape));
    let mut axes = Vec::with_capacity(2 * rank);
    for a in 0..rank {
        axes.push(Axis::new(&reps[a], &c(0), &x.shape[a].mul(&os[a])));
        axes.push(Axis::new(&x.shape[a], &xs[a], &os[a]));
    }
    copy_to_output(lw, id, 0, &x, &c(0), axes)
}

fn block_attrs(lw: &Lowerer, id: NodeId) -> Result<(i64, bool), TargetError> {
    let attrs = &lw.graph.node(id).attrs;
    let b = attrs
        .int("blocksize")
        .map_err(attr_err(lw))?
        .ok_or_else(|| lw.error("blocksize is required"))?;
    if b < 1 {
        return Err(lw.error(format!("blocksize {b}")));
    }
    let crd = match attrs.str_or("mode", "DCR").map_err(attr_err(lw))? {
        "DCR" => false,
        "CRD" => true,
        m => return Err(lw.unsupported(format!("mode {m}"))),
    };
    Ok((b, crd))
}

/// 4-D input and output shapes of DepthToSpace / SpaceToDepth.
fn nchw(lw: &Lowerer, x: &Operand, out: &[Dim]) -> Result<(), TargetError> {
    if x.shape.len() != 4 || out.len() != 4 {
        return Err(lw.error("needs 4-D tensors"));
    }
    Ok(())
}

pub fn depth_to_space(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    let out = out_type(lw, id, 0);
    let (b, crd) = block_attrs(lw, id)?;
    nchw(lw, &x, &out.shape)?;
    let (n, h, w) = (&x.shape[0], &x.shape[2], &x.shape[3]);
    let c2 = &out.shape[1];
    let bd = c(b);
    let (hw, xs) = (h.mul(w), strides(&x.shape));
    // Input channel = (b1, b2, c2) for DCR, (c2, b1, b2) for CRD.
    let (s_b1, s_b2, s_c2) = if crd {
        (bd.mul(&hw), hw.clone(), bd.mul(&bd).mul(&hw))
    } else {
        (bd.mul(c2).mul(&hw), c2.mul(&hw), hw.clone())
    };
    // Output viewed as [n, c2, h, b1, w, b2].
    let shape = [
        n.clone(),
        c2.clone(),
        h.clone(),
        bd.clone(),
        w.clone(),
        bd.clone(),
    ];
    let src = [xs[0].clone(), s_c2, w.clone(), s_b1, c(1), s_b2];
    let os = strides(&shape);
    let axes = (0..6)
        .map(|k| Axis::new(&shape[k], &src[k], &os[k]))
        .collect();
    copy_to_output(lw, id, 0, &x, &c(0), axes)
}

pub fn space_to_depth(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    let out = out_type(lw, id, 0);
    let (b, crd) = block_attrs(lw, id)?;
    nchw(lw, &x, &out.shape)?;
    let (n, ch, w) = (&x.shape[0], &x.shape[1], &x.shape[3]);
    let (hh, ww) = (&out.shape[2], &out.shape[3]);
    let bd = c(b);
    let xs = strides(&x.shape);
    // Input viewed as [n, c, hh, b1, ww, b2].
    let (sn, sc, shh, sb1, sww, sb2) = (
        xs[0].clone(),
        xs[1].clone(),
        bd.mul(w),
        w.clone(),
        bd.clone(),
        c(1),
    );
    let (shape, src) = if crd {
        // Output channel = (c, b1, b2).
        (
            [
                n.clone(),
                ch.clone(),
                bd.clone(),
                bd.clone(),
                hh.clone(),
                ww.clone(),
            ],
            [sn, sc, sb1, sb2, shh, sww],
        )
    } else {
        // Output channel = (b1, b2, c).
        (
            [
                n.clone(),
                bd.clone(),
                bd.clone(),
                ch.clone(),
                hh.clone(),
                ww.clone(),
            ],
            [sn, sb1, sb2, sc, shh, sww],
        )
    };
    let os = strides(&shape);
    let axes = (0..6)
        .map(|k| Axis::new(&shape[k], &src[k], &os[k]))
        .collect();
    copy_to_output(lw, id, 0, &x, &c(0), axes)
}

/// A run of output positions along one axis: `len` positions from `o`, read from input
/// positions `i0, i0 + step, ...`, or filled when `src` is `None`.
#[derive(Clone, Debug)]
struct Run {
    o: Dim,
    len: Dim,
    src: Option<(Dim, i64)>,
}

/// The runs of an axis of `n` outputs whose input position is `map(o)`.
fn runs_of(n: i64, map: impl Fn(i64) -> Option<i64>) -> Vec<Run> {
    let mut runs = Vec::new();
    let mut o = 0;
    while o < n {
        let first = map(o);
        let mut len = 1;
        let step = match first {
            None => {
                while o + len < n && map(o + len).is_none() {
                    len += 1;
                }
                0
            }
            Some(i) => {
                let step = match map(o + 1) {
                    Some(j) if o + 1 < n && (-1..=1).contains(&(j - i)) => j - i,
                    _ => 1,
                };
                while o + len < n && map(o + len) == Some(i + len * step) {
                    len += 1;
                }
                step
            }
        };
        runs.push(Run {
            o: c(o),
            len: c(len),
            src: first.map(|i| (c(i), step)),
        });
        o += len;
    }
    runs
}

/// The identity run of an axis of `d` elements.
fn whole(d: &Dim) -> Vec<Run> {
    vec![Run {
        o: c(0),
        len: d.clone(),
        src: Some((c(0), 1)),
    }]
}

/// Writes output 0 of `node` from `x` by `runs` per axis: the cells of every combination of
/// runs that read the input are copied, the rest (if any) filled with `value` first.
fn piecewise(
    lw: &mut Lowerer,
    node: NodeId,
    x: &Operand,
    runs: &[Vec<Run>],
    value: FillValue,
) -> Result<(), TargetError> {
    let out = out_type(lw, node, 0);
    let (xs, os) = (strides(&x.shape), strides(&out.shape));
    let needs_fill = runs.iter().flatten().any(|r| r.src.is_none());
    let mut combos: Vec<(Dim, Dim, Vec<Axis>)> = vec![(c(0), c(0), Vec::new())];
    for (a, rs) in runs.iter().enumerate() {
        let mut next = Vec::new();
        for (so, dof, axes) in &combos {
            for r in rs {
                if let Some((i0, step)) = &r.src {
                    let mut axes = axes.clone();
                    axes.push(Axis::new(&r.len, &xs[a].mul(&c(*step)), &os[a]));
                    next.push((so.add(&i0.mul(&xs[a])), dof.add(&r.o.mul(&os[a])), axes));
                }
            }
        }
        combos = next;
        if combos.len() > 4096 {
            return Err(lw.unsupported("a pad of more than 4096 pieces"));
        }
    }
    if !needs_fill && combos.len() == 1 {
        let (so, _, axes) = combos.remove(0);
        return copy_to_output(lw, node, 0, x, &so, axes);
    }
    let dst = lw.output(node, 0);
    if needs_fill {
        fill_all(lw, &dst, &value)?;
    }
    for (so, dof, axes) in combos {
        copy(lw, x, &so, &dst, &dof, axes)?;
    }
    Ok(())
}

pub fn pad(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    let out = out_type(lw, id, 0);
    let rank = x.shape.len();
    let mode = lw
        .graph
        .node(id)
        .attrs
        .str_or("mode", "constant")
        .map_err(attr_err(lw))?
        .to_string();
    let pads = const_ints(lw, id, 1)
        .ok_or_else(|| lw.unsupported("Pad with pads computed at run time"))?;
    let axes: Vec<usize> = if has_input(lw, id, 3) {
        const_ints(lw, id, 3)
            .ok_or_else(|| lw.unsupported("Pad with run-time axes"))?
            .iter()
            .map(|&a| norm_axis(lw, a, rank))
            .collect::<Result<_, _>>()?
    } else {
        (0..rank).collect()
    };
    if pads.len() != 2 * axes.len() || out.shape.len() != rank {
        return Err(lw.error(format!("{} pads for {} axes", pads.len(), axes.len())));
    }
    let mut begin = vec![0i64; rank];
    let mut end = vec![0i64; rank];
    for (k, &a) in axes.iter().enumerate() {
        begin[a] = pads[k];
        end[a] = pads[axes.len() + k];
    }
    let mut runs = Vec::with_capacity(rank);
    for a in 0..rank {
        let (b, e, d) = (begin[a], end[a], &x.shape[a]);
        if b == 0 && e == 0 {
            runs.push(whole(d));
            continue;
        }
        if let Some(dc) = d.as_const() {
            let n = dc + b + e;
            if n < 0 {
                return Err(lw.error("pads crop below zero"));
            }
            if dc == 0 && n > 0 && mode != "constant" {
                return Err(lw.error(format!("Pad mode {mode} cannot pad an empty axis")));
            }
            let m = mode.as_str();
            runs.push(runs_of(n, |o| {
                let i = o - b;
                if (0..dc).contains(&i) {
                    return Some(i);
                }
                match m {
                    "edge" => Some(i.clamp(0, dc - 1)),
                    "wrap" => Some(i.rem_euclid(dc)),
                    "reflect" if dc == 1 => Some(0),
                    "reflect" => {
                        let p = 2 * (dc - 1);
                        let r = i.rem_euclid(p);
                        Some(if r >= dc { p - r } else { r })
                    }
                    _ => None,
                }
            }));
        } else if mode == "constant" {
            // Symbolic size: the input's part (cropped by negative pads) and fills.
            let mut rs = vec![Run {
                o: c(b.max(0)),
                len: d.add(&c(b.min(0) + e.min(0))),
                src: Some((c((-b).max(0)), 1)),
            }];
            if b > 0 || e > 0 {
                // An empty fill run: the rest of the axis is filled.
                rs.push(Run {
                    o: c(0),
                    len: c(0),
                    src: None,
                });
            }
            runs.push(rs);
        } else {
            return Err(lw.unsupported(format!("Pad mode {mode} of a symbolic dim {d}")));
        }
    }
    let value = if mode != "constant" {
        FillValue::Bits(0)
    } else if let Some(t) = lw.const_input(id, 2) {
        FillValue::of_tensor(&t)
    } else if has_input(lw, id, 2) {
        let v = lw.input(id, 2)?;
        if v.numel().as_const() == Some(0) {
            FillValue::Bits(0)
        } else if v.numel().as_const() == Some(1) {
            FillValue::At(v)
        } else {
            return Err(lw.unsupported("Pad with a constant_value of unknown size"));
        }
    } else {
        FillValue::Bits(0)
    };
    piecewise(lw, id, &x, &runs, value)
}

pub fn center_crop_pad(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    let out = out_type(lw, id, 0);
    if out.shape.len() != x.shape.len() {
        return Err(lw.error("CenterCropPad changes the rank"));
    }
    let mut runs = Vec::with_capacity(x.shape.len());
    for (d, n) in x.shape.iter().zip(&out.shape) {
        if d == n {
            runs.push(whole(d));
            continue;
        }
        let (Some(dc), Some(nc)) = (d.as_const(), n.as_const()) else {
            return Err(lw.unsupported(format!("CenterCropPad of {d} to {n}")));
        };
        let shift = if nc <= dc {
            (dc - nc) / 2
        } else {
            -((nc - dc) / 2)
        };
        runs.push(runs_of(nc, |o| {
            let i = o + shift;
            (0..dc).contains(&i).then_some(i)
        }));
    }
    piecewise(lw, id, &x, &runs, FillValue::Bits(0))
}
