//! Sampling at computed coordinates: GridSample (any number of spatial dims), AffineGrid,
//! RoiAlign. Computed in f64 like kiln's reference interpreter.

use super::{bytes, bytes_mut, count, elem, numel, strides, Args};

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Nearest,
    Linear,
    Cubic,
}

#[derive(Clone, Copy, PartialEq)]
enum Padding {
    Zeros,
    Border,
    Reflection,
}

/// Reflects `x` into `[lo, hi]` by bouncing off the borders.
fn reflect(x: f64, lo: f64, hi: f64) -> f64 {
    let range = hi - lo;
    if range <= 0.0 {
        return lo;
    }
    if x < lo {
        let dx = lo - x;
        let n = (dx / range).trunc();
        let r = dx - n * range;
        if n as i64 % 2 == 0 {
            lo + r
        } else {
            hi - r
        }
    } else if x > hi {
        let dx = x - hi;
        let n = (dx / range).trunc();
        let r = dx - n * range;
        if n as i64 % 2 == 0 {
            hi - r
        } else {
            lo + r
        }
    } else {
        x
    }
}

fn cubic_coeffs(t: f64) -> [f64; 4] {
    let a = -0.75;
    let k1 = |x: f64| ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    let k2 = |x: f64| ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a;
    [k2(t + 1.0), k1(t), k1(1.0 - t), k2(2.0 - t)]
}

/// `GridSample`: x `[N, C, D_0..D_{r-1}]`, grid `[N, P_0..P_{r-1}, r]` (coordinates in
/// [-1, 1], innermost dim first) -> out `[N, C, P_0..P_{r-1}]`.
///
/// Args: `[x, grid, out, x_code, grid_code, mode, padding, align_corners, rank,
/// x_shape[rank], grid_shape[rank]]`; mode 0 nearest 1 linear 2 cubic, padding 0 zeros 1
/// border 2 reflection.
///
/// # Safety
/// The slots hold valid pointers to buffers of the sizes the other slots imply; `out` is
/// disjoint from the inputs.
pub unsafe fn grid_sample(args: *const u64) {
    // SAFETY: slot 8 is the rank.
    let n = unsafe { count(args, 8, 9, 2) };
    // SAFETY: `n` slots.
    let mut a = unsafe { Args::new(args, n) };
    let (x, grid, out) = (a.ptr(), a.ptr(), a.ptr());
    let (e, ge) = (a.elem(), a.elem());
    let mode = [Mode::Nearest, Mode::Linear, Mode::Cubic][a.u().min(2)];
    let padding = [Padding::Zeros, Padding::Border, Padding::Reflection][a.u().min(2)];
    let align = a.u() != 0;
    let rank = a.u();
    let (xs, gs) = (a.list(rank), a.list(rank));
    if rank < 3 || gs[rank - 1] != rank - 2 || gs[0] != xs[0] {
        return;
    }
    let r = rank - 2;
    let (nb, c) = (xs[0], xs[1]);
    let dims = &xs[2..];
    let out_sp = &gs[1..rank - 1];
    let npts = numel(out_sp);
    // SAFETY: the lowering passes the sizes of these buffers.
    let (x, grid, out) = unsafe {
        (
            bytes(x, numel(&xs) * e.size()),
            bytes(grid, numel(&gs) * ge.size()),
            bytes_mut(out, nb * c * npts * e.size()),
        )
    };
    out.fill(0);
    if dims.contains(&0) {
        return;
    }
    let spatial = numel(dims);
    let dstr = strides(dims);
    let borders: Vec<(f64, f64)> = dims
        .iter()
        .map(|&d| {
            if align {
                (0.0, d as f64 - 1.0)
            } else {
                (-0.5, d as f64 - 0.5)
            }
        })
        .collect();
    let fetch = |i: i64, d: usize| -> Option<usize> {
        let len = dims[d] as i64;
        match padding {
            Padding::Zeros => (0..len).contains(&i).then_some(i as usize),
            Padding::Border => Some(i.clamp(0, len - 1) as usize),
            Padding::Reflection => {
                let (lo, hi) = borders[d];
                Some((reflect(i as f64, lo, hi) as i64).clamp(0, len - 1) as usize)
            }
        }
    };
    let mut taps: Vec<Vec<(Option<usize>, f64)>> = vec![Vec::new(); r];
    let mut combos: Vec<(Option<usize>, f64)> = Vec::new();
    let mut next: Vec<(Option<usize>, f64)> = Vec::new();
    for b in 0..nb {
        for p in 0..npts {
            let gbase = (b * npts + p) * r;
            for d in 0..r {
                let nv = elem::read_f64(grid, ge, gbase + r - 1 - d);
                let len = dims[d] as f64;
                let mut v = if align {
                    (nv + 1.0) / 2.0 * (len - 1.0)
                } else {
                    ((nv + 1.0) * len - 1.0) / 2.0
                };
                v = elem::round_to(ge, v);
                if mode == Mode::Nearest {
                    v = v.round_ties_even();
                }
                let (lo, hi) = borders[d];
                if v < lo || v > hi {
                    match padding {
                        Padding::Border => v = v.clamp(0.0, len - 1.0),
                        Padding::Reflection => v = reflect(v, lo, hi),
                        Padding::Zeros => {}
                    }
                }
                let t = &mut taps[d];
                t.clear();
                match mode {
                    Mode::Nearest => t.push((fetch(v as i64, d), 1.0)),
                    Mode::Linear => {
                        let f = v.floor();
                        let w = v - f;
                        t.push((fetch(f as i64, d), 1.0 - w));
                        t.push((fetch((f as i64).saturating_add(1), d), w));
                    }
                    Mode::Cubic => {
                        let f = v.floor();
                        let cs = cubic_coeffs(v - f);
                        for (k, &cw) in cs.iter().enumerate() {
                            let i = (f as i64).saturating_add(k as i64 - 1);
                            t.push((fetch(i, d), cw));
                        }
                    }
                }
            }
            combos.clear();
            combos.push((Some(0), 1.0));
            for (d, t) in taps.iter().enumerate() {
                next.clear();
                for &(off, w) in &combos {
                    for &(i, tw) in t {
                        let o = match (off, i) {
                            (Some(o), Some(i)) => Some(o + i * dstr[d]),
                            _ => None,
                        };
                        next.push((o, w * tw));
                    }
                }
                std::mem::swap(&mut combos, &mut next);
            }
            for ch in 0..c {
                let base = (b * c + ch) * spatial;
                let v: f64 = combos
                    .iter()
                    .filter_map(|&(o, w)| o.map(|o| w * elem::read_f64(x, e, base + o)))
                    .sum();
                elem::write_f64(out, e, (b * c + ch) * npts + p, v);
            }
        }
    }
}

/// `AffineGrid`: theta `[N, r, r+1]` -> grid `[N, D_0..D_{r-1}, r]`.
///
/// Args: `[theta, out, dtype, align_corners, theta_len, n, r, D[r]]`; a theta of another
/// size than `n * r * (r + 1)` gives zeros.
///
/// # Safety
/// As [`grid_sample`].
pub unsafe fn affine_grid(args: *const u64) {
    // SAFETY: slot 6 is r.
    let cnt = unsafe { count(args, 6, 7, 1) };
    // SAFETY: `cnt` slots.
    let mut a = unsafe { Args::new(args, cnt) };
    let (theta, out) = (a.ptr(), a.ptr());
    let e = a.elem();
    let (align, theta_len, n, r) = (a.u() != 0, a.u(), a.u(), a.u());
    let dims = a.list(r);
    let npts = numel(&dims);
    // SAFETY: the lowering passes the sizes of these buffers.
    let (th, out) = unsafe {
        (
            bytes(theta, theta_len * e.size()),
            bytes_mut(out, n * npts * r * e.size()),
        )
    };
    out.fill(0);
    if theta_len != n * r * (r + 1) {
        return;
    }
    let coords: Vec<Vec<f64>> = dims
        .iter()
        .map(|&d| {
            (0..d)
                .map(|i| {
                    let (i, d) = (i as f64, d as f64);
                    if align {
                        if d <= 1.0 {
                            -1.0
                        } else {
                            -1.0 + i * (2.0 / (d - 1.0))
                        }
                    } else {
                        let step = 2.0 / d;
                        -1.0 + step / 2.0 + i * step
                    }
                })
                .collect()
        })
        .collect();
    let dstr = strides(&dims);
    let mut homo = vec![0.0f64; r + 1];
    let mut at = 0;
    for b in 0..n {
        let t: Vec<f64> = (0..r * (r + 1))
            .map(|k| elem::read_f64(th, e, b * r * (r + 1) + k))
            .collect();
        for p in 0..npts {
            for d in 0..r {
                let idx = (p / dstr[d]) % dims[d];
                homo[r - 1 - d] = coords[d][idx];
            }
            homo[r] = 1.0;
            for row in 0..r {
                let v: f64 = (0..=r).map(|k| t[row * (r + 1) + k] * homo[k]).sum();
                elem::write_f64(out, e, at, v);
                at += 1;
            }
        }
    }
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

/// `RoiAlign`: x `[N, C, H, W]`, rois `[R, 4]`, batch_indices `[R]` -> out `[R, C, OH, OW]`;
/// a region with an out-of-range batch index gives zeros.
///
/// Args: `[x, rois, batch_indices, out, x_code, rois_code, bi_code, half_pixel, max_mode,
/// out_h, out_w, sampling_ratio, spatial_scale (f64 bits), n, c, h, w, r]`.
///
/// # Safety
/// As [`grid_sample`].
pub unsafe fn roi_align(args: *const u64) {
    // SAFETY: 18 slots.
    let mut a = unsafe { Args::new(args, 18) };
    let (x, rois, bi, out) = (a.ptr(), a.ptr(), a.ptr(), a.ptr());
    let (e, re, be) = (a.elem(), a.elem(), a.elem());
    let (half_pixel, max_mode) = (a.u() != 0, a.u() != 0);
    let (ph_n, pw_n, sampling) = (a.u(), a.u(), a.u());
    let scale = a.f();
    let (n, c, h, w, nr) = (a.u(), a.u(), a.u(), a.u(), a.u());
    // SAFETY: the lowering passes the sizes of these buffers.
    let (x, rois, bi, out) = unsafe {
        (
            bytes(x, n * c * h * w * e.size()),
            bytes(rois, nr * 4 * re.size()),
            bytes(bi, nr * be.size()),
            bytes_mut(out, nr * c * ph_n * pw_n * e.size()),
        )
    };
    out.fill(0);
    let offset = if half_pixel { 0.5 } else { 0.0 };
    let mut samples = Vec::new();
    let mut plane = Vec::with_capacity(h * w);
    for r in 0..nr {
        let b = super::index_at(bi, be, r);
        if b < 0 || b as u64 >= n as u64 || h == 0 || w == 0 {
            continue;
        }
        let b = b as usize;
        let roi: Vec<f64> = (0..4)
            .map(|k| elem::read_f64(rois, re, r * 4 + k))
            .collect();
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
        let grid = |roi: f64, bins: usize| -> usize {
            if sampling > 0 {
                sampling
            } else {
                ((roi / bins as f64).ceil().max(0.0) as usize).min(1 << 16)
            }
        };
        let (grid_h, grid_w) = (grid(roi_h, ph_n), grid(roi_w, pw_n));
        let count = (grid_h * grid_w).max(1) as f64;
        samples.clear();
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
            let base = (b * c + ch) * h * w;
            plane.clear();
            plane.extend((0..h * w).map(|i| elem::read_f64(x, e, base + i)));
            for bin in 0..ph_n * pw_n {
                let ss = &samples[bin * per_bin..(bin + 1) * per_bin];
                let v = if max_mode {
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
                elem::write_f64(out, e, (r * c + ch) * ph_n * pw_n + bin, v);
            }
        }
    }
}
