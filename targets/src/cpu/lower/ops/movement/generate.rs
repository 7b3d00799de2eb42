//! Ops that generate data or select by position: Trilu, EyeLike, Range, ConstantOfShape,
//! ReverseSequence, Shape and Size (when they were not folded to constants).

use kiln_ir::attr::{Attr, AttrsExt};
use kiln_ir::dim::Dim;
use kiln_ir::dtype::DType;
use kiln_ir::graph::NodeId;
use kiln_ir::tensor::Tensor;

use super::{
    attr_err, c, const_ints, fill, fill_all, has_input, in_type, out_type, prod, FillValue,
};
use crate::cpu::codegen::kernels::strided::generate as gen;
use crate::cpu::codegen::kernels::write_i64s;
use crate::cpu::lower::{Arg, Lowerer};
use crate::error::TargetError;

pub fn trilu(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    let rank = x.shape.len();
    if rank < 2 {
        return Err(lw.error("Trilu needs rank >= 2"));
    }
    let upper = lw
        .graph
        .node(id)
        .attrs
        .int_or("upper", 1)
        .map_err(attr_err(lw))?
        != 0;
    let (k_arg, k_ptr) = match const_ints(lw, id, 1) {
        Some(k) if k.len() == 1 => (Arg::Int(c(k[0])), false),
        Some(_) => return Err(lw.error("Trilu k must hold one value")),
        None if has_input(lw, id, 1) => {
            let k = lw.input(id, 1)?;
            if k.dtype != DType::I64 || k.numel().as_const() != Some(1) {
                return Err(lw.unsupported("Trilu k that is not one i64"));
            }
            (k.ptr(), true)
        }
        None => (Arg::Int(c(0)), false),
    };
    let esize = x.dtype.size();
    let dst = lw.output(id, 0);
    let key = gen::trilu_key(esize, upper, k_ptr);
    let kernel = lw.kernel(&key, |kb| gen::trilu(kb, esize, upper, k_ptr))?;
    let batch = prod(&x.shape[..rank - 2]);
    lw.emit(
        kernel,
        vec![
            x.ptr(),
            dst.ptr(),
            Arg::Int(batch),
            Arg::Int(x.shape[rank - 2].clone()),
            Arg::Int(x.shape[rank - 1].clone()),
            k_arg,
        ],
    );
    Ok(())
}

/// The bits of `v` in `dtype` (its first element's little-endian bytes).
fn bits_of(dtype: DType, v: f64) -> FillValue {
    FillValue::of_tensor(&Tensor::from_f64(dtype, vec![1], &[v]))
}

pub fn eye_like(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let out = out_type(lw, id, 0);
    if out.shape.len() != 2 {
        return Err(lw.error("EyeLike needs a 2-D input"));
    }
    let k = lw
        .graph
        .node(id)
        .attrs
        .int_or("k", 0)
        .map_err(attr_err(lw))?;
    let dst = lw.output(id, 0);
    fill_all(lw, &dst, &FillValue::Bits(0))?;
    let (rows, cols) = (&out.shape[0], &out.shape[1]);
    // The diagonal from (max(-k, 0), max(k, 0)), one row and one column a step.
    let (start, count) = if k >= 0 {
        (c(k), rows.minimum(&cols.sub(&c(k))))
    } else {
        (c(-k).mul(cols), rows.add(&c(k)).minimum(cols))
    };
    let count = count.maximum(&c(0));
    fill(
        lw,
        &dst,
        &start,
        vec![(count, cols.add(&c(1)))],
        &bits_of(out.dtype, 1.0),
    )
}

pub fn constant_of_shape(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let value = match lw.graph.node(id).attrs.get("value") {
        Some(Attr::Tensor(t)) => FillValue::of_tensor(t),
        _ => FillValue::Bits(0),
    };
    let dst = lw.output(id, 0);
    fill_all(lw, &dst, &value)
}

pub fn range(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let out = out_type(lw, id, 0);
    if !gen::range_supports(out.dtype) {
        return Err(lw.unsupported(format!("Range of {}", out.dtype.name())));
    }
    let n = out
        .shape
        .first()
        .cloned()
        .ok_or_else(|| lw.error("Range output is not 1-D"))?;
    let start = lw.input(id, 0)?;
    let delta = lw.input(id, 2)?;
    let dst = lw.output(id, 0);
    let key = gen::range_key(out.dtype);
    let k = lw.kernel(&key, |kb| gen::range(kb, out.dtype))?;
    lw.emit(k, vec![dst.ptr(), Arg::Int(n), start.ptr(), delta.ptr()]);
    Ok(())
}

pub fn reverse_sequence(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    let lens = lw.input(id, 1)?;
    if lens.dtype != DType::I64 {
        return Err(lw.unsupported(format!("sequence_lens of {}", lens.dtype.name())));
    }
    let attrs = &lw.graph.node(id).attrs;
    let ba = attrs.int_or("batch_axis", 1).map_err(attr_err(lw))?;
    let ta = attrs.int_or("time_axis", 0).map_err(attr_err(lw))?;
    if !matches!((ba, ta), (0, 1) | (1, 0)) || x.shape.len() < 2 {
        return Err(lw.error("ReverseSequence needs batch and time axes 0 and 1"));
    }
    let (ba, ta) = (ba as usize, ta as usize);
    let e = c(x.dtype.size() as i64);
    let row = prod(&x.shape[2..]).mul(&e);
    let stride = |a: usize| {
        if a == 0 {
            x.shape[1].mul(&row)
        } else {
            row.clone()
        }
    };
    let dst = lw.output(id, 0);
    let k = lw.kernel(&gen::reverse_sequence_key(), gen::reverse_sequence)?;
    lw.emit(
        k,
        vec![
            x.ptr(),
            dst.ptr(),
            lens.ptr(),
            Arg::Int(x.shape[ba].clone()),
            Arg::Int(x.shape[ta].clone()),
            Arg::Int(stride(ba)),
            Arg::Int(stride(ta)),
            Arg::Int(row.clone()),
        ],
    );
    Ok(())
}

/// Writes `dims` as i64s to output 0.
fn write_dims(lw: &mut Lowerer, id: NodeId, dims: Vec<Dim>) -> Result<(), TargetError> {
    let dst = lw.output(id, 0);
    let n = dims.len();
    if n == 0 {
        return Ok(());
    }
    let k = lw.kernel(&format!("write_i64x{n}"), |kb| write_i64s(kb, n))?;
    let mut args = vec![dst.ptr()];
    args.extend(dims.into_iter().map(Arg::Int));
    lw.emit(k, args);
    Ok(())
}

pub fn shape(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = in_type(lw, id, 0).ok_or_else(|| lw.error("input 0 is missing"))?;
    let attrs = &lw.graph.node(id).attrs;
    let r = x.shape.len() as i64;
    let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let s = clamp(attrs.int_or("start", 0).map_err(attr_err(lw))?);
    let e = clamp(attrs.int_or("end", r).map_err(attr_err(lw))?).max(s);
    write_dims(lw, id, x.shape[s..e].to_vec())
}

pub fn size(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = in_type(lw, id, 0).ok_or_else(|| lw.error("input 0 is missing"))?;
    write_dims(lw, id, vec![prod(&x.shape)])
}

/// The same bytes read as another dtype of the same size: a view.
pub fn bit_cast(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    let out = out_type(lw, id, 0);
    if out.dtype.size() != x.dtype.size() {
        return Err(lw.error("BitCast between dtypes of different sizes"));
    }
    lw.alias_output(id, 0, &x)
}

/// MT19937 with numpy's `RandomState` seeding and 53-bit doubles: the reference's draws
/// for training-mode Dropout.
fn uniforms(seed: u32, n: usize) -> Vec<f64> {
    let mut state = [0u32; 624];
    state[0] = seed;
    for i in 1..624 {
        let p = state[i - 1];
        state[i] = 1812433253u32
            .wrapping_mul(p ^ (p >> 30))
            .wrapping_add(i as u32);
    }
    let mut pos = 624;
    let mut next = || {
        if pos >= 624 {
            for i in 0..624 {
                let y = (state[i] & 0x8000_0000) | (state[(i + 1) % 624] & 0x7fff_ffff);
                let mut v = state[(i + 397) % 624] ^ (y >> 1);
                if y & 1 != 0 {
                    v ^= 0x9908_b0df;
                }
                state[i] = v;
            }
            pos = 0;
        }
        let mut y = state[pos];
        pos += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    };
    (0..n)
        .map(|_| {
            let a = (next() >> 5) as f64;
            let b = (next() >> 6) as f64;
            (a * 67108864.0 + b) / 9007199254740992.0
        })
        .collect()
}

/// Dropout. At inference (no training mode, or a zero ratio) the input itself and an
/// all-true mask; in training mode (known or decided at run time) the reference's draws,
/// precomputed for the `seed` attribute, decide which elements stay.
pub fn dropout(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let training = match lw.const_input(id, 2) {
        Some(t) => t.to_bool().first().copied().unwrap_or(false),
        None => has_input(lw, id, 2),
    };
    let zero_ratio = lw
        .const_input(id, 1)
        .is_some_and(|t| t.first_f64() == Some(0.0));
    let want_mask = lw.graph.node(id).outputs.len() > 1 && super::is_used(lw, id, 1);
    let x = lw.input(id, 0)?;
    if !training || zero_ratio {
        lw.alias_output(id, 0, &x)?;
        if want_mask {
            let mask = lw.output(id, 1);
            fill_all(lw, &mask, &FillValue::Bits(1))?;
        }
        return Ok(());
    }
    let n = x
        .numel()
        .as_const()
        .ok_or_else(|| lw.unsupported("training-mode Dropout of a symbolic shape"))?;
    let attrs = &lw.graph.node(id).attrs;
    let seed = attrs.int_or("seed", 0).map_err(attr_err(lw))?;
    let ratio_attr = attrs.float_or("ratio", 0.5).map_err(attr_err(lw))?;
    let ratio = match lw.opt_input(id, 1) {
        Some(r) => r,
        None => lw.weight(
            "dropout ratio",
            DType::F32,
            vec![c(1)],
            ratio_attr.to_le_bytes().to_vec(),
            "dense",
        ),
    };
    let flag = match lw.const_input(id, 2) {
        Some(_) => lw.weight(
            "dropout training",
            DType::Bool,
            vec![c(1)],
            vec![1],
            "dense",
        ),
        None => lw.input(id, 2)?,
    };
    if flag.dtype != DType::Bool || ratio.numel().as_const() != Some(1) {
        return Err(lw.unsupported("Dropout with a ratio or training flag of another form"));
    }
    let draws: Vec<u8> = uniforms(seed as u32, n.max(0) as usize)
        .iter()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    let u = lw.weight("dropout draws", DType::F64, vec![c(n)], draws, "dense");
    let y = lw.output(id, 0);
    let mask = if want_mask {
        lw.output(id, 1)
    } else {
        lw.scratch("mask", DType::Bool, x.shape.clone())
    };
    let (xd, rd) = (x.dtype, ratio.dtype);
    let k = lw.kernel(&gen::dropout_key(xd, rd), |kb| gen::dropout(kb, xd, rd))?;
    lw.emit(
        k,
        vec![
            x.ptr(),
            y.ptr(),
            mask.ptr(),
            Arg::Int(c(n)),
            u.ptr(),
            ratio.ptr(),
            flag.ptr(),
        ],
    );
    Ok(())
}
