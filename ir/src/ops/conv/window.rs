//! Sliding-window geometry shared by every convolution and pool: reading `kernel_shape`,
//! `strides`, `dilations`, `pads`, `auto_pad` and `ceil_mode`; the output spatial dims
//! (symbolic, for `infer`); and for concrete shapes the resolved pads and the input position
//! every tap of every window reads (for `eval`).
//!
//! Along one axis, window `o` tap `j` reads input position `o*stride - pad_begin + j*dilation`.
//! The window spans `(kernel-1)*dilation + 1` positions.

use crate::attr::{Attrs, AttrsExt};
use crate::bail;
use crate::dim::Dim;
use crate::ops::OpResult;
use crate::tensor::{numel, strides};

/// The `auto_pad` attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoPad {
    NotSet,
    SameUpper,
    SameLower,
    Valid,
}

impl AutoPad {
    pub fn from_attrs(attrs: &Attrs) -> OpResult<AutoPad> {
        Ok(match attrs.str_or("auto_pad", "NOTSET")? {
            "NOTSET" | "" => AutoPad::NotSet,
            "SAME_UPPER" => AutoPad::SameUpper,
            "SAME_LOWER" => AutoPad::SameLower,
            "VALID" => AutoPad::Valid,
            other => {
                bail!("auto_pad \"{other}\" is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID")
            }
        })
    }

    pub fn is_same(self) -> bool {
        matches!(self, AutoPad::SameUpper | AutoPad::SameLower)
    }

    /// Splits a total padding into (begin, end): SAME_UPPER puts the odd one at the end,
    /// everything else at the beginning.
    pub fn split(self, total: i64) -> (i64, i64) {
        let half = total.div_euclid(2);
        if self == AutoPad::SameUpper {
            (half, total - half)
        } else {
            (total - half, half)
        }
    }
}

/// Where one tap of one window lands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tap {
    /// Inside the input, at this flat spatial offset (row-major over the spatial dims).
    In(usize),
    /// In the padding.
    Pad,
    /// Past the end padding (only a `ceil_mode` last window reaches there).
    Beyond,
}

/// Reads an int-list attribute of `n` values, each at least `min`, or `default` if absent.
pub fn ints_attr(
    attrs: &Attrs,
    name: &str,
    n: usize,
    default: i64,
    min: i64,
) -> OpResult<Vec<i64>> {
    match attrs.ints(name)? {
        None => Ok(vec![default; n]),
        Some(v) if v.is_empty() => Ok(vec![default; n]),
        Some(v) => {
            if v.len() != n {
                bail!("`{name}` has {} values, expected {n}", v.len());
            }
            if let Some(bad) = v.iter().find(|&&x| x < min) {
                bail!("`{name}` value {bad} is below {min}");
            }
            Ok(v)
        }
    }
}

/// The window attributes of a convolution or pool with `n` spatial axes.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    pub kernel: Vec<i64>,
    pub strides: Vec<i64>,
    pub dilations: Vec<i64>,
    /// Explicit pads `[begin_0, .., begin_n-1, end_0, .., end_n-1]` (NOTSET only).
    pub pads: Vec<i64>,
    pub auto_pad: AutoPad,
    pub ceil_mode: bool,
}

impl Window {
    /// Reads the attributes; `kernel` is the kernel's spatial shape (from `kernel_shape` or
    /// the weight).
    pub fn from_attrs(attrs: &Attrs, kernel: Vec<i64>) -> OpResult<Window> {
        let n = kernel.len();
        if let Some(bad) = kernel.iter().find(|&&k| k < 1) {
            bail!("kernel size {bad} must be positive");
        }
        let auto_pad = AutoPad::from_attrs(attrs)?;
        let pads = ints_attr(attrs, "pads", 2 * n, 0, 0)?;
        Ok(Window {
            strides: ints_attr(attrs, "strides", n, 1, 1)?,
            dilations: ints_attr(attrs, "dilations", n, 1, 1)?,
            pads,
            auto_pad,
            ceil_mode: attrs.int_or("ceil_mode", 0)? != 0,
            kernel,
        })
    }

    /// A window from the `kernel_shape` attribute, which is required (pools).
    pub fn from_kernel_attr(attrs: &Attrs) -> OpResult<Window> {
        match attrs.ints("kernel_shape")? {
            Some(k) if !k.is_empty() => Window::from_attrs(attrs, k),
            _ => bail!("`kernel_shape` is required"),
        }
    }

    pub fn rank(&self) -> usize {
        self.kernel.len()
    }

    /// The number of input positions one window spans along `axis`.
    pub fn span(&self, axis: usize) -> i64 {
        (self.kernel[axis] - 1) * self.dilations[axis] + 1
    }

    /// The output spatial dims for input spatial dims `input`.
    pub fn out_dims(&self, input: &[Dim]) -> OpResult<Vec<Dim>> {
        let n = self.rank();
        if input.len() != n {
            bail!(
                "the input has {} spatial dims, the kernel has {n}",
                input.len()
            );
        }
        let mut out = Vec::with_capacity(n);
        for (i, x) in input.iter().enumerate() {
            let s = Dim::from(self.strides[i]);
            let one = Dim::from(1i64);
            let span = self.span(i);
            let d = match self.auto_pad {
                AutoPad::SameUpper | AutoPad::SameLower => x.ceil_div(&s),
                AutoPad::Valid => x.sub(&Dim::from(span)).floor_div(&s).add(&one),
                AutoPad::NotSet => {
                    let (pb, pe) = (self.pads[i], self.pads[n + i]);
                    let num = x.add(&Dim::from(pb + pe - span));
                    if !self.ceil_mode {
                        num.floor_div(&s).add(&one)
                    } else {
                        // The last window must start inside the input or the begin padding.
                        let o = num.ceil_div(&s).add(&one);
                        match (o.as_const(), x.as_const()) {
                            (Some(oc), Some(xc)) => {
                                let s = self.strides[i];
                                Dim::from(if (oc - 1) * s >= xc + pb { oc - 1 } else { oc })
                            }
                            _ => o.minimum(&x.add(&Dim::from(pb)).ceil_div(&s)),
                        }
                    }
                }
            };
            if let Some(c) = d.as_const() {
                if c < 1 {
                    bail!(
                        "the window (kernel {:?}, dilations {:?}) does not fit the input's spatial dims {input:?}",
                        self.kernel,
                        self.dilations
                    );
                }
            }
            out.push(d);
        }
        Ok(out)
    }

    /// The concrete geometry for input spatial dims `input`: output dims and pads.
    pub fn resolve(&self, input: &[usize]) -> OpResult<Geometry> {
        let n = self.rank();
        let dims: Vec<Dim> = input.iter().map(|&d| Dim::from(d)).collect();
        let out: Vec<usize> = self
            .out_dims(&dims)?
            .iter()
            .map(|d| d.as_const().unwrap_or(0).max(0) as usize)
            .collect();
        let mut pad_begin = vec![0i64; n];
        let mut pad_end = vec![0i64; n];
        for i in 0..n {
            match self.auto_pad {
                AutoPad::NotSet => {
                    pad_begin[i] = self.pads[i];
                    pad_end[i] = self.pads[n + i];
                }
                AutoPad::Valid => {}
                AutoPad::SameUpper | AutoPad::SameLower => {
                    let total = ((out[i] as i64 - 1) * self.strides[i] + self.span(i)
                        - input[i] as i64)
                        .max(0);
                    (pad_begin[i], pad_end[i]) = self.auto_pad.split(total);
                }
            }
        }
        Ok(Geometry {
            input: input.to_vec(),
            out,
            kernel: self.kernel.iter().map(|&k| k as usize).collect(),
            strides: self.strides.clone(),
            dilations: self.dilations.clone(),
            pad_begin,
            pad_end,
        })
    }
}

/// Concrete window geometry: `out[i]` windows along axis `i` over an input of `input[i]`
/// positions.
#[derive(Clone, Debug, PartialEq)]
pub struct Geometry {
    pub input: Vec<usize>,
    pub out: Vec<usize>,
    pub kernel: Vec<usize>,
    pub strides: Vec<i64>,
    pub dilations: Vec<i64>,
    pub pad_begin: Vec<i64>,
    pub pad_end: Vec<i64>,
}

impl Geometry {
    pub fn in_size(&self) -> usize {
        numel(&self.input)
    }

    pub fn out_size(&self) -> usize {
        numel(&self.out)
    }

    pub fn kernel_size(&self) -> usize {
        numel(&self.kernel)
    }

    /// The input position of window `o` tap `j` along `axis` (may be outside the input).
    pub fn position(&self, axis: usize, o: usize, j: usize) -> i64 {
        o as i64 * self.strides[axis] - self.pad_begin[axis] + j as i64 * self.dilations[axis]
    }

    /// Every tap of every window: entry `o * kernel_size + k` is where tap `k` (row-major over
    /// the kernel) of window `o` (row-major over the output) lands.
    pub fn taps(&self) -> Vec<Tap> {
        let n = self.input.len();
        let in_strides = strides(&self.input);
        // Per axis: tap of (o, j) as Some(Ok(pos)) inside, Some(Err(())) padding, None beyond.
        let axis_taps: Vec<Vec<Tap>> = (0..n)
            .map(|a| {
                let mut v = Vec::with_capacity(self.out[a] * self.kernel[a]);
                for o in 0..self.out[a] {
                    for j in 0..self.kernel[a] {
                        let p = self.position(a, o, j);
                        let len = self.input[a] as i64;
                        v.push(if p >= 0 && p < len {
                            Tap::In(p as usize)
                        } else if p >= len + self.pad_end[a].max(0) {
                            Tap::Beyond
                        } else {
                            Tap::Pad
                        });
                    }
                }
                v
            })
            .collect();
        let (on, kn) = (self.out_size(), self.kernel_size());
        let mut taps = Vec::with_capacity(on * kn);
        let mut o_idx = vec![0usize; n];
        let mut k_idx = vec![0usize; n];
        for _ in 0..on {
            k_idx.iter_mut().for_each(|k| *k = 0);
            for _ in 0..kn {
                let mut tap = Tap::In(0);
                for a in 0..n {
                    tap = match (tap, axis_taps[a][o_idx[a] * self.kernel[a] + k_idx[a]]) {
                        (Tap::Beyond, _) | (_, Tap::Beyond) => Tap::Beyond,
                        (Tap::Pad, _) | (_, Tap::Pad) => Tap::Pad,
                        (Tap::In(off), Tap::In(p)) => Tap::In(off + p * in_strides[a]),
                    };
                }
                taps.push(tap);
                increment(&mut k_idx, &self.kernel);
            }
            increment(&mut o_idx, &self.out);
        }
        taps
    }
}

/// Advances a row-major multi-index over `shape` (wrapping to zero at the end).
pub fn increment(idx: &mut [usize], shape: &[usize]) {
    for a in (0..idx.len()).rev() {
        idx[a] += 1;
        if idx[a] < shape[a] {
            return;
        }
        idx[a] = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr::Attr;

    fn attrs(list: &[(&str, Attr)]) -> Attrs {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn explicit_pads_floor_and_ceil() {
        let a = attrs(&[
            ("strides", Attr::Ints(vec![2])),
            ("pads", Attr::Ints(vec![1, 1])),
        ]);
        let w = Window::from_attrs(&a, vec![3]).unwrap();
        // (5 + 2 - 3) / 2 + 1 = 3
        assert_eq!(w.resolve(&[5]).unwrap().out, vec![3]);
        // (6 + 2 - 3) / 2 + 1 = 3 (floor)
        assert_eq!(w.resolve(&[6]).unwrap().out, vec![3]);
        let mut a2 = a.clone();
        a2.insert("ceil_mode".into(), Attr::Int(1));
        let w = Window::from_attrs(&a2, vec![3]).unwrap();
        assert_eq!(w.resolve(&[6]).unwrap().out, vec![4]);
    }

    #[test]
    fn ceil_mode_drops_a_window_starting_in_the_end_padding() {
        // in 2, kernel 1, stride 2, pads 1/1: ceil((2+2-1)/2)+1 = 3, but window 2 would start
        // at 2*2-1 = 3 >= 2+1, inside the end padding: 2 windows.
        let a = attrs(&[
            ("strides", Attr::Ints(vec![2])),
            ("pads", Attr::Ints(vec![1, 1])),
            ("ceil_mode", Attr::Int(1)),
        ]);
        let w = Window::from_attrs(&a, vec![1]).unwrap();
        assert_eq!(w.resolve(&[2]).unwrap().out, vec![2]);
        // Symbolic: min(ceil((x+1)/2)+1, ceil((x+1)/2)).
        let d = w.out_dims(&[Dim::sym("x")]).unwrap();
        let b = [("x".to_string(), 2i64)].into_iter().collect();
        assert_eq!(d[0].eval(&b).unwrap(), 2);
    }

    #[test]
    fn same_upper_and_lower_pads() {
        let mut a = attrs(&[
            ("strides", Attr::Ints(vec![2, 1])),
            ("auto_pad", Attr::Str("SAME_UPPER".into())),
        ]);
        let w = Window::from_attrs(&a, vec![4, 3]).unwrap();
        let g = w.resolve(&[5, 4]).unwrap();
        assert_eq!(g.out, vec![3, 4]);
        // total along 0: (3-1)*2 + 4 - 5 = 3 -> 1 / 2; along 1: 3-1 = 2 -> 1 / 1
        assert_eq!(
            (g.pad_begin.clone(), g.pad_end.clone()),
            (vec![1, 1], vec![2, 1])
        );
        a.insert("auto_pad".into(), Attr::Str("SAME_LOWER".into()));
        let g = Window::from_attrs(&a, vec![4, 3])
            .unwrap()
            .resolve(&[5, 4])
            .unwrap();
        assert_eq!((g.pad_begin, g.pad_end), (vec![2, 1], vec![1, 1]));
        // Symbolic: ceil(x / 2).
        let d = w.out_dims(&[Dim::sym("x"), Dim::sym("y")]).unwrap();
        assert_eq!(d[0], Dim::sym("x").ceil_div(&Dim::from(2i64)));
        assert_eq!(d[1], Dim::sym("y"));
    }

    #[test]
    fn valid_and_dilations() {
        let a = attrs(&[
            ("dilations", Attr::Ints(vec![2])),
            ("auto_pad", Attr::Str("VALID".into())),
        ]);
        let w = Window::from_attrs(&a, vec![3]).unwrap();
        // span 5: 7 - 5 + 1 = 3
        assert_eq!(w.resolve(&[7]).unwrap().out, vec![3]);
        assert!(w.resolve(&[4]).is_err());
    }

    #[test]
    fn symbolic_dims_agree_with_concrete_ones() {
        let b = |x: i64| [("x".to_string(), x)].into_iter().collect();
        for ceil in [0, 1] {
            for auto in ["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"] {
                for (k, s, d, pb, pe) in [
                    (3, 2, 1, 1, 1),
                    (2, 3, 2, 0, 1),
                    (3, 1, 1, 2, 0),
                    (1, 2, 1, 0, 0),
                    (4, 3, 1, 2, 3),
                ] {
                    let a = attrs(&[
                        ("strides", Attr::Ints(vec![s])),
                        ("dilations", Attr::Ints(vec![d])),
                        ("pads", Attr::Ints(vec![pb, pe])),
                        ("auto_pad", Attr::Str(auto.into())),
                        ("ceil_mode", Attr::Int(ceil)),
                    ]);
                    let w = Window::from_attrs(&a, vec![k]).unwrap();
                    let sym = w.out_dims(&[Dim::sym("x")]).unwrap();
                    for x in 1..12i64 {
                        if let Ok(g) = w.resolve(&[x as usize]) {
                            assert_eq!(
                                sym[0].eval(&b(x)).unwrap(),
                                g.out[0] as i64,
                                "{auto} ceil {ceil} k {k} s {s} d {d} pads {pb},{pe} x {x}: {}",
                                sym[0]
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn taps_2d() {
        let a = attrs(&[("pads", Attr::Ints(vec![1, 0, 0, 0]))]);
        let g = Window::from_attrs(&a, vec![2, 2])
            .unwrap()
            .resolve(&[2, 3])
            .unwrap();
        assert_eq!(g.out, vec![2, 2]);
        let t = g.taps();
        // Window (0,0): rows -1,0 x cols 0,1.
        assert_eq!(&t[0..4], &[Tap::Pad, Tap::Pad, Tap::In(0), Tap::In(1)]);
        // Window (1,1): rows 0,1 x cols 1,2.
        assert_eq!(
            &t[12..16],
            &[Tap::In(1), Tap::In(2), Tap::In(4), Tap::In(5)]
        );
    }
}
