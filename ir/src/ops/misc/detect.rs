//! Detection ops: `RoiAlign` (opset 22) and `NonMaxSuppression` (opset 11).

use crate::attr::AttrsExt;
use crate::bail;
use crate::dim::Dim;
use crate::dtype::DType;
use crate::ops::util::one;
use crate::ops::{EvalCtx, InferCtx, OpResult};
use crate::tensor::Tensor;
use crate::types::ValueType;

pub fn infer_roi_align(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    let rois = ctx.input(1)?;
    let bi = ctx.input(2)?;
    if x.rank() != 4 || rois.rank() != 2 || bi.rank() != 1 {
        bail!(
            "RoiAlign takes X [N, C, H, W], rois [R, 4], batch_indices [R]; got {x}, {rois}, {bi}"
        );
    }
    let oh = ctx.attrs.int_or("output_height", 1)?;
    let ow = ctx.attrs.int_or("output_width", 1)?;
    if oh < 1 || ow < 1 {
        bail!("RoiAlign output size {oh}x{ow} must be positive");
    }
    one(
        x.dtype,
        vec![
            rois.shape[0].clone(),
            x.shape[1].clone(),
            Dim::from(oh),
            Dim::from(ow),
        ],
    )
}

/// One bilinear sample: four flat positions in an H x W plane and their weights.
#[derive(Clone, Copy, Default)]
struct Sample {
    pos: [usize; 4],
    w: [f64; 4],
}

fn bilinear_sample(h: usize, w: usize, y: f64, x: f64) -> Sample {
    if y < -1.0 || y > h as f64 || x < -1.0 || x > w as f64 {
        return Sample::default();
    }
    let (mut y, mut x) = (y.max(0.0), x.max(0.0));
    let mut y_low = y as usize;
    let mut x_low = x as usize;
    let y_high;
    let x_high;
    if y_low >= h - 1 {
        y_low = h - 1;
        y_high = h - 1;
        y = y_low as f64;
    } else {
        y_high = y_low + 1;
    }
    if x_low >= w - 1 {
        x_low = w - 1;
        x_high = w - 1;
        x = x_low as f64;
    } else {
        x_high = x_low + 1;
    }
    let ly = y - y_low as f64;
    let lx = x - x_low as f64;
    let (hy, hx) = (1.0 - ly, 1.0 - lx);
    Sample {
        pos: [
            y_low * w + x_low,
            y_low * w + x_high,
            y_high * w + x_low,
            y_high * w + x_high,
        ],
        w: [hy * hx, hy * lx, ly * hx, ly * lx],
    }
}

pub fn eval_roi_align(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = ctx.input(0)?;
    let rois = ctx.input(1)?;
    let bi = ctx.input(2)?.to_i64();
    let a = ctx.attrs;
    let half_pixel = match a.str_or("coordinate_transformation_mode", "half_pixel")? {
        "half_pixel" => true,
        "output_half_pixel" => false,
        m => bail!("RoiAlign coordinate_transformation_mode \"{m}\" is not supported"),
    };
    let max_mode = match a.str_or("mode", "avg")? {
        "avg" => false,
        "max" => true,
        m => bail!("RoiAlign mode \"{m}\" is not one of avg, max"),
    };
    let ph_n = a.int_or("output_height", 1)?;
    let pw_n = a.int_or("output_width", 1)?;
    let sampling = a.int_or("sampling_ratio", 0)?;
    let scale = a.float_or("spatial_scale", 1.0)? as f64;
    if ph_n < 1 || pw_n < 1 || sampling < 0 {
        bail!("RoiAlign output size {ph_n}x{pw_n} and sampling_ratio {sampling} are invalid");
    }
    let (ph_n, pw_n) = (ph_n as usize, pw_n as usize);
    let xs = x.shape();
    let rs = rois.shape();
    if xs.len() != 4 || rs.len() != 2 || rs[1] != 4 || bi.len() != rs[0] {
        bail!(
            "RoiAlign takes X [N, C, H, W], rois [R, 4], batch_indices [R]; got {xs:?}, {rs:?}, [{}]",
            bi.len()
        );
    }
    let (n, c, h, w) = (xs[0], xs[1], xs[2], xs[3]);
    let nr = rs[0];
    let xv = x.to_f64();
    let rv = rois.to_f64();
    let mut out = vec![0.0f64; nr * c * ph_n * pw_n];
    let offset = if half_pixel { 0.5 } else { 0.0 };
    for r in 0..nr {
        let b = bi[r];
        if b < 0 || b as usize >= n {
            bail!("RoiAlign batch index {b} is out of range for batch {n}");
        }
        if h == 0 || w == 0 {
            continue;
        }
        let roi = &rv[r * 4..r * 4 + 4];
        let start_w = roi[0] * scale - offset;
        let start_h = roi[1] * scale - offset;
        let end_w = roi[2] * scale - offset;
        let end_h = roi[3] * scale - offset;
        let mut roi_w = end_w - start_w;
        let mut roi_h = end_h - start_h;
        if !half_pixel {
            roi_w = roi_w.max(1.0);
            roi_h = roi_h.max(1.0);
        }
        let bin_h = roi_h / ph_n as f64;
        let bin_w = roi_w / pw_n as f64;
        let grid_h = if sampling > 0 {
            sampling as usize
        } else {
            (roi_h / ph_n as f64).ceil().max(0.0) as usize
        };
        let grid_w = if sampling > 0 {
            sampling as usize
        } else {
            (roi_w / pw_n as f64).ceil().max(0.0) as usize
        };
        let count = (grid_h * grid_w).max(1) as f64;
        // Samples shared by all channels, per output bin.
        let mut samples = Vec::with_capacity(ph_n * pw_n * grid_h * grid_w);
        for ph in 0..ph_n {
            for pw in 0..pw_n {
                for iy in 0..grid_h {
                    let yy =
                        start_h + ph as f64 * bin_h + (iy as f64 + 0.5) * bin_h / grid_h as f64;
                    for ix in 0..grid_w {
                        let xx =
                            start_w + pw as f64 * bin_w + (ix as f64 + 0.5) * bin_w / grid_w as f64;
                        samples.push(bilinear_sample(h, w, yy, xx));
                    }
                }
            }
        }
        let per_bin = grid_h * grid_w;
        for ch in 0..c {
            let plane = &xv[(b as usize * c + ch) * h * w..(b as usize * c + ch + 1) * h * w];
            for bin in 0..ph_n * pw_n {
                let ss = &samples[bin * per_bin..(bin + 1) * per_bin];
                let v = if max_mode {
                    // ONNX's max mode: the largest weighted corner over all samples.
                    let mut best: Option<f64> = None;
                    for s in ss {
                        let m = (0..4)
                            .map(|k| s.w[k] * plane[s.pos[k]])
                            .fold(f64::NEG_INFINITY, f64::max);
                        best = Some(best.map_or(m, |b: f64| b.max(m)));
                    }
                    best.unwrap_or(0.0)
                } else {
                    let sum: f64 = ss
                        .iter()
                        .map(|s| (0..4).map(|k| s.w[k] * plane[s.pos[k]]).sum::<f64>())
                        .sum();
                    sum / count
                };
                out[(r * c + ch) * ph_n * pw_n + bin] = v;
            }
        }
    }
    Ok(vec![Tensor::from_f64(
        x.dtype(),
        vec![nr, c, ph_n, pw_n],
        &out,
    )])
}

pub fn infer_nms(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let boxes = ctx.input(0)?;
    let scores = ctx.input(1)?;
    if boxes.rank() != 3 || scores.rank() != 3 {
        bail!(
            "NonMaxSuppression takes boxes [B, N, 4] and scores [B, C, N]; got {boxes}, {scores}"
        );
    }
    one(DType::I64, vec![ctx.data_dim(0, 0), Dim::from(3i64)])
}

/// Whether two boxes overlap by an IoU above `threshold`, in f32 like ONNX's reference.
fn suppress(b1: &[f32], b2: &[f32], center: bool, threshold: f32) -> bool {
    let (x1min, x1max, y1min, y1max, x2min, x2max, y2min, y2max);
    if center {
        let (w1, h1, w2, h2) = (b1[2] / 2.0, b1[3] / 2.0, b2[2] / 2.0, b2[3] / 2.0);
        (x1min, x1max, x2min, x2max) = (b1[0] - w1, b1[0] + w1, b2[0] - w2, b2[0] + w2);
        (y1min, y1max, y2min, y2max) = (b1[1] - h1, b1[1] + h1, b2[1] - h2, b2[1] + h2);
    } else {
        (x1min, x1max) = (b1[1].min(b1[3]), b1[1].max(b1[3]));
        (x2min, x2max) = (b2[1].min(b2[3]), b2[1].max(b2[3]));
        (y1min, y1max) = (b1[0].min(b1[2]), b1[0].max(b1[2]));
        (y2min, y2max) = (b2[0].min(b2[2]), b2[0].max(b2[2]));
    }
    let ix = x1min.max(x2min);
    let ix2 = x1max.min(x2max);
    if ix2 <= ix {
        return false;
    }
    let iy = y1min.max(y2min);
    let iy2 = y1max.min(y2max);
    if iy2 <= iy {
        return false;
    }
    let inter = (ix2 - ix) * (iy2 - iy);
    let a1 = (x1max - x1min) * (y1max - y1min);
    let a2 = (x2max - x2min) * (y2max - y2min);
    let union = a1 + a2 - inter;
    if inter <= 0.0 || a1 <= 0.0 || a2 <= 0.0 || union <= 0.0 {
        return false;
    }
    inter / union > threshold
}

pub fn eval_nms(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let boxes = ctx.input(0)?;
    let scores = ctx.input(1)?;
    let center = ctx.attrs.int_or("center_point_box", 0)? != 0;
    let present = |i: usize| ctx.opt_input(i).filter(|t| !t.is_empty());
    let max_out = present(2).and_then(|t| t.first_i64()).unwrap_or(0).max(0) as usize;
    let iou = present(3).and_then(|t| t.first_f64()).unwrap_or(0.0) as f32;
    let score_th = present(4).and_then(|t| t.first_f64()).map(|v| v as f32);
    let (bs, ss) = (boxes.shape(), scores.shape());
    if bs.len() != 3 || ss.len() != 3 || bs[2] != 4 || ss[0] != bs[0] || ss[2] != bs[1] {
        bail!("NonMaxSuppression takes boxes [B, N, 4] and scores [B, C, N]; got {bs:?}, {ss:?}");
    }
    let (nb, nbox, ncls) = (bs[0], bs[1], ss[1]);
    let bv: Vec<f32> = boxes.to_f64().iter().map(|&v| v as f32).collect();
    let sv: Vec<f32> = scores.to_f64().iter().map(|&v| v as f32).collect();
    let mut sel: Vec<i64> = Vec::new();
    for b in 0..nb {
        let bb = &bv[b * nbox * 4..(b + 1) * nbox * 4];
        for cl in 0..ncls {
            let sc = &sv[(b * ncls + cl) * nbox..(b * ncls + cl + 1) * nbox];
            let mut cand: Vec<usize> = (0..nbox)
                .filter(|&i| score_th.is_none_or(|t| sc[i] > t))
                .collect();
            // Highest score first; equal scores by lower index.
            cand.sort_by(|&i, &j| sc[j].total_cmp(&sc[i]).then(i.cmp(&j)));
            let mut kept: Vec<usize> = Vec::new();
            for i in cand {
                if kept.len() >= max_out {
                    break;
                }
                let bi = &bb[i * 4..i * 4 + 4];
                if kept
                    .iter()
                    .all(|&k| !suppress(bi, &bb[k * 4..k * 4 + 4], center, iou))
                {
                    kept.push(i);
                    sel.extend([b as i64, cl as i64, i as i64]);
                }
            }
        }
    }
    let n = sel.len() / 3;
    Ok(vec![Tensor::from_i64(DType::I64, vec![n, 3], &sel)])
}

#[cfg(test)]
mod tests {
    use crate::attr::Attr;
    use crate::ops::misc::testutil::{attrs, close, f32t, i64t, run_op, s};

    #[test]
    fn nms_suppresses_overlaps_per_class() {
        // ONNX's test_nonmaxsuppression_suppress_by_IOU.
        let boxes = f32t(
            &[1, 6, 4],
            &[
                0., 0., 1., 1., 0., 0.1, 1., 1.1, 0., -0.1, 1., 0.9, 0., 10., 1., 11., 0., 10.1,
                1., 11.1, 0., 100., 1., 101.,
            ],
        );
        let scores = f32t(&[1, 1, 6], &[0.9, 0.75, 0.6, 0.95, 0.5, 0.3]);
        let out = run_op(
            "NonMaxSuppression",
            &attrs(&[]),
            vec![
                boxes,
                scores,
                i64t(&[1], &[3]),
                f32t(&[1], &[0.5]),
                f32t(&[1], &[0.]),
            ],
            1,
        )
        .unwrap();
        assert_eq!(out[0].shape(), &[3, 3]);
        assert_eq!(out[0].to_i64(), vec![0, 0, 3, 0, 0, 0, 0, 0, 5]);
    }

    #[test]
    fn nms_center_point_boxes_and_no_max() {
        let boxes = f32t(&[1, 2, 4], &[0.5, 0.5, 1., 1., 0.5, 0.6, 1., 1.]);
        let scores = f32t(&[1, 1, 2], &[0.9, 0.8]);
        let a = attrs(&[("center_point_box", Attr::Int(1))]);
        // Without max_output_boxes_per_class nothing is selected.
        let out = run_op(
            "NonMaxSuppression",
            &a,
            vec![boxes.clone(), scores.clone()],
            1,
        )
        .unwrap();
        assert_eq!(out[0].shape(), &[0, 3]);
        let out = run_op(
            "NonMaxSuppression",
            &a,
            vec![boxes, scores, i64t(&[], &[5]), f32t(&[], &[0.5])],
            1,
        )
        .unwrap();
        assert_eq!(out[0].to_i64(), vec![0, 0, 0]);
    }

    #[test]
    fn roi_align_avg_uniform_region() {
        // A linear ramp x + 10 y: bilinear sampling reproduces it, so a bin's average is
        // the ramp at the bin centre.
        let v: Vec<f32> = (0..25)
            .map(|i| (i % 5) as f32 + 10.0 * (i / 5) as f32)
            .collect();
        let a = attrs(&[
            ("output_height", Attr::Int(2)),
            ("output_width", Attr::Int(2)),
            ("sampling_ratio", Attr::Int(2)),
            ("coordinate_transformation_mode", s("output_half_pixel")),
        ]);
        let out = run_op(
            "RoiAlign",
            &a,
            vec![
                f32t(&[1, 1, 5, 5], &v),
                f32t(&[1, 4], &[0., 0., 4., 4.]),
                i64t(&[1], &[0]),
            ],
            1,
        )
        .unwrap();
        assert_eq!(out[0].shape(), &[1, 1, 2, 2]);
        // Bin centres at (1, 1), (1, 3), (3, 1), (3, 3).
        close(&out[0].to_f64(), &[11., 13., 31., 33.], 1e-9);
    }
}
