//! f32 GEMM: `C[m, n] (+)= A[m, k] · B[k, n]` with B prepacked.
//!
//! The classic blocked design: B lives in column panels of [`NR`] (packed once, at compile
//! time for weights), A is packed per block into row panels of the kernel's `mr`, and a
//! register-tile microkernel computes `mr x NR` of C at a time. Every kernel shares the B
//! layout, so an artifact's prepacked weights serve whichever kernel the CPU picks at load.

mod avx2;
mod avx512;
mod portable;

/// Columns of C a microkernel computes at once; B panels are this wide.
pub const NR: usize = 32;
/// Depth of a block: one B micro-panel (`KC x NR` f32 = 24 KiB) stays in L1.
const KC: usize = 192;
/// Rows of A packed per block (a multiple of every kernel's `mr`): `MC x KC` stays in L2.
const MC: usize = 144;

/// A microkernel: `C[mr, NR] (+)= Apanel[kc][mr] · Bpanel[kc][NR]`.
///
/// # Safety
/// `a` holds `kc * mr` floats, `b` holds `kc * NR`, and `c` points at an `mr x NR` tile with
/// row stride `ldc`, all valid for the call; the CPU has the kernel's features.
type Microkernel =
    unsafe fn(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, accumulate: bool);

/// A microkernel and its register-tile height.
#[derive(Clone, Copy)]
pub struct Kernel {
    pub name: &'static str,
    pub mr: usize,
    run: Microkernel,
}

impl Kernel {
    /// The best kernel for this CPU.
    pub fn detect() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return avx512::KERNEL;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return avx2::KERNEL;
            }
        }
        portable::KERNEL
    }

    /// The portable kernel (for tests and CPUs without AVX2).
    pub fn portable() -> Kernel {
        portable::KERNEL
    }

    /// Every kernel this CPU can run, best first.
    pub fn available() -> Vec<Kernel> {
        let mut v = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                v.push(avx512::KERNEL);
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                v.push(avx2::KERNEL);
            }
        }
        v.push(portable::KERNEL);
        v
    }
}

/// B packed into panels of [`NR`] columns: panel `p` holds, for each `k`, columns
/// `p*NR .. p*NR+NR` (zero-padded past `n`).
#[derive(Clone, Debug, PartialEq)]
pub struct PackedB {
    pub k: usize,
    pub n: usize,
    pub data: Vec<f32>,
}

impl PackedB {
    /// Number of floats a packed `k x n` B takes.
    pub fn packed_len(k: usize, n: usize) -> usize {
        n.div_ceil(NR) * k * NR
    }

    /// Packs row-major `b` (`k x n`, row stride `ldb`).
    pub fn pack(b: &[f32], k: usize, n: usize, ldb: usize) -> PackedB {
        let panels = n.div_ceil(NR);
        let mut data = vec![0.0f32; panels * k * NR];
        for p in 0..panels {
            let cols = NR.min(n - p * NR);
            for kk in 0..k {
                let src = &b[kk * ldb + p * NR..kk * ldb + p * NR + cols];
                let dst = (p * k + kk) * NR;
                data[dst..dst + cols].copy_from_slice(src);
            }
        }
        PackedB { k, n, data }
    }

    /// Views packed data (e.g. mapped from an artifact) without copying.
    pub fn view(&self) -> PackedBRef<'_> {
        PackedBRef {
            k: self.k,
            n: self.n,
            data: &self.data,
        }
    }
}

/// A borrowed packed B.
#[derive(Clone, Copy)]
pub struct PackedBRef<'a> {
    pub k: usize,
    pub n: usize,
    pub data: &'a [f32],
}

/// Shape errors of a GEMM call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GemmShapeError(pub String);

/// `C = A·B` (or `C += A·B` with `accumulate`), A row-major `m x k` with row stride `lda`,
/// C row-major `m x n` with row stride `ldc`.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    kernel: Kernel,
    m: usize,
    a: &[f32],
    lda: usize,
    b: PackedBRef<'_>,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) -> Result<(), GemmShapeError> {
    let (k, n) = (b.k, b.n);
    if b.data.len() < PackedB::packed_len(k, n)
        || (m > 0 && k > 0 && a.len() < (m - 1) * lda + k)
        || (m > 0 && n > 0 && c.len() < (m - 1) * ldc + n)
        || lda < k
        || ldc < n
    {
        return Err(GemmShapeError(format!(
            "gemm m={m} n={n} k={k}: buffers too small (a {}, b {}, c {}) or strides short (lda {lda}, ldc {ldc})",
            a.len(),
            b.data.len(),
            c.len()
        )));
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                c[i * ldc..i * ldc + n].fill(0.0);
            }
        }
        return Ok(());
    }
    let mr = kernel.mr;
    let panels = n.div_ceil(NR);
    let mut apack = vec![0.0f32; MC.div_ceil(mr) * mr * KC];
    let mut tile = [0.0f32; 32 * NR];
    for pc in (0..k).step_by(KC) {
        let kc = KC.min(k - pc);
        let acc = accumulate || pc > 0;
        for ic in (0..m).step_by(MC) {
            let mc = MC.min(m - ic);
            pack_a(&a[ic * lda + pc..], lda, mc, kc, mr, &mut apack);
            for p in 0..panels {
                let cols = NR.min(n - p * NR);
                let bp = &b.data[(p * k + pc) * NR..(p * k + pc + kc) * NR];
                for ir in (0..mc).step_by(mr) {
                    let rows = mr.min(mc - ir);
                    let ap = &apack[ir * kc..(ir + mr) * kc];
                    let c0 = (ic + ir) * ldc + p * NR;
                    if rows == mr && cols == NR {
                        // SAFETY: ap has kc*mr floats and bp kc*NR; the C tile's last element
                        // is c0 + (mr-1)*ldc + NR-1 < c.len(), checked above through m, n.
                        unsafe {
                            (kernel.run)(
                                kc,
                                ap.as_ptr(),
                                bp.as_ptr(),
                                c[c0..].as_mut_ptr(),
                                ldc,
                                acc,
                            )
                        }
                    } else {
                        // Edge tile: compute the full tile into scratch, copy the valid part.
                        for r in 0..rows {
                            tile[r * NR..r * NR + cols]
                                .copy_from_slice(&c[c0 + r * ldc..c0 + r * ldc + cols]);
                        }
                        // SAFETY: scratch holds 32 x NR >= mr x NR floats with row stride NR.
                        unsafe {
                            (kernel.run)(kc, ap.as_ptr(), bp.as_ptr(), tile.as_mut_ptr(), NR, acc)
                        }
                        for r in 0..rows {
                            c[c0 + r * ldc..c0 + r * ldc + cols]
                                .copy_from_slice(&tile[r * NR..r * NR + cols]);
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Packs `mc x kc` of A (row stride `lda`) into row panels of `mr`: panel `q` holds, for
/// each k, rows `q*mr .. q*mr+mr` (zero-padded past `mc`).
fn pack_a(a: &[f32], lda: usize, mc: usize, kc: usize, mr: usize, out: &mut [f32]) {
    for q in 0..mc.div_ceil(mr) {
        let rows = mr.min(mc - q * mr);
        let panel = &mut out[q * mr * kc..(q + 1) * mr * kc];
        for r in 0..rows {
            let src = &a[(q * mr + r) * lda..(q * mr + r) * lda + kc];
            for (kk, &v) in src.iter().enumerate() {
                panel[kk * mr + r] = v;
            }
        }
        for r in rows..mr {
            for kk in 0..kc {
                panel[kk * mr + r] = 0.0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(m: usize, n: usize, k: usize, a: &[f32], b: &[f32]) -> Vec<f32> {
        let mut c = vec![0.0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0f64;
                for kk in 0..k {
                    s += a[i * k + kk] as f64 * b[kk * n + j] as f64;
                }
                c[i * n + j] = s as f32;
            }
        }
        c
    }

    fn data(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 16) % 17) as f32 / 8.0
                    - 1.0
            })
            .collect()
    }

    #[test]
    fn every_kernel_matches_reference_on_ragged_shapes() {
        for kernel in Kernel::available() {
            for &(m, n, k) in &[
                (1, 1, 1),
                (13, 33, 7),
                (150, 70, 200),
                (12, 32, 192),
                (40, 100, 400),
                (3, 5, 0),
            ] {
                let a = data(m * k, 1);
                let b = data(k * n, 2);
                let want = reference(m, n, k, &a, &b);
                let packed = PackedB::pack(&b, k, n, n);
                let mut c = vec![f32::NAN; m * n];
                gemm(kernel, m, &a, k, packed.view(), &mut c, n, false).unwrap();
                for (i, (x, y)) in c.iter().zip(&want).enumerate() {
                    assert!(
                        (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                        "{} m{m} n{n} k{k} at {i}: {x} vs {y}",
                        kernel.name
                    );
                }
                // Accumulating adds to what is there.
                gemm(kernel, m, &a, k, packed.view(), &mut c, n, true).unwrap();
                for (x, y) in c.iter().zip(&want) {
                    assert!(
                        (x - 2.0 * y).abs() <= 2e-4 * (1.0 + y.abs()),
                        "{} accumulate",
                        kernel.name
                    );
                }
            }
        }
    }

    #[test]
    fn short_buffers_are_an_error() {
        let packed = PackedB::pack(&[1.0; 4], 2, 2, 2);
        let mut c = vec![0.0; 3];
        let err = gemm(
            Kernel::portable(),
            2,
            &[1.0; 4],
            2,
            packed.view(),
            &mut c,
            2,
            false,
        );
        assert!(err.is_err());
    }
}
