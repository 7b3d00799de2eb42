//! f32 GEMM: `C[m, n] (+)= A[m, k] · B[k, n]`.
//!
//! The classic blocked design. B lives in column panels of [`NR`] (packed once, at compile
//! time for weights; a strided B is packed on the fly into the same layout), A is packed per
//! block into row panels of the kernel's `mr`, and a register-tile microkernel computes
//! `rows x cols` (at most `mr x NR`) of C at a time. Every kernel shares the B layout, so an
//! artifact's prepacked weights serve whichever kernel the CPU picks at load.
//!
//! Loop order (outer to inner): K blocks of `kc`; M blocks of `mc` rows (A packed); N blocks
//! of `NB` panels (this `kc x NB*NR` block of B stays in L2); row panels of `mr` (this
//! `mr x kc` micro-panel of A stays in L1); B panels (streamed from L2, prefetched by the
//! kernel); microkernel. Meanwhile the microkernel calls of one N block fetch the task's
//! next N block into L2, a slice each ([`prefetch`]). A row-major A feeding at most
//! `DIRECT_MAX_PANELS` panels is read in place rather than packed (attention's `P·V`), and a
//! single row of A (GEMV) goes to a one-row kernel covering several panels per call.
//!
//! Threads: a GEMM with enough products, or enough of B to stream, splits its rows or its
//! panels over `rayon::current_num_threads()` tasks (whichever balances better; panels when
//! A has few rows). Tasks that split the panels of one M block first pack a share of A's
//! row panels each into one buffer that all of them read, rather than each packing all of A.
//! Such threads take their panels a block at a time, and one done early takes blocks from
//! the back of another's share ([`shares`]).
//!
//! Results do not depend on the thread count, nor on which thread computes what: work is
//! split over M blocks and B panels only,
//! never over K, and each kernel computes every element of C the same way wherever it lies
//! (a sum over one K block in order, from zero, then added to C; the K blocks depend on the
//! shape only), so one thread and many give bit-identical C.

mod avx2;
mod avx512;
mod epilogue;
mod pack;
mod portable;
mod prefetch;
mod shares;

use std::cell::RefCell;

pub use epilogue::{Activation, CLayout, Epilogue};
use prefetch::{NextBlock, Prefetch};
use shares::PanelShares;

/// Columns of C a microkernel computes at once; B panels are this wide.
pub const NR: usize = 32;
/// Largest depth of a K block: an A micro-panel (`mr x KC_MAX` f32, 24 KiB for avx512)
/// stays in L1 while B panels stream through. Deeper blocks re-read C less often.
const KC_MAX: usize = 512;
/// Largest number of rows of A packed per block (`MC_MAX x KC_MAX`, 576 KiB, in L2).
const MC_MAX: usize = 288;
/// B panels per N block: `NB x KC_MAX x NR` f32 (128 KiB) stays in L2 while every A
/// micro-panel of the M block passes over it. The block after it is fetched into L2 while
/// it runs ([`NextBlock`]), so only a thread's first block comes cold from L3 or memory: a
/// small block keeps that part small, and is the unit threads share panels in.
const NB: usize = 2;
/// Largest strided B (floats, 4 MiB) whose packing buffer a thread keeps for the next call.
const KEEP_BPACK_MAX: usize = 1 << 20;
/// Tasks with at most this many B panels read a row-major A in place instead of packing it.
const DIRECT_MAX_PANELS: usize = 4;
/// A GEMM splits over threads from this many multiply-adds (`m*n*k`, ~50 us on one core)...
const PARALLEL_MIN_MNK: usize = 1 << 22;
/// ...or from this many elements of B (256 KiB streamed from L3 or memory, ~10 us on one
/// core: a decode step's small projections gain from the second core's bandwidth).
const PARALLEL_MIN_KN: usize = 1 << 16;

/// A microkernel: `C[rows, cols] (+)= A[rows, kc] · Bpanel[kc][NR]` (rows <= mr,
/// cols <= NR; `accumulate` adds to C, else C is overwritten). A is a packed panel
/// (`rsa == 0`: element `(r, p)` at `a + p*mr + r`) or row-major (element `(r, p)` at
/// `a + r*rsa + p`). Meanwhile it fetches `prefetch`'s lines into L2.
///
/// # Safety
/// `a` holds those A elements (packed: `kc * mr` floats, of which only the first `rows` of
/// each group of `mr` are read), `b` holds `kc * NR` floats, `c` points at a `rows x cols`
/// tile with row stride `rsc` (elements), all valid for the call; the CPU has the kernel's
/// features.
type Microkernel = unsafe fn(
    kc: usize,
    a: *const f32,
    rsa: isize,
    b: *const f32,
    c: *mut f32,
    rsc: isize,
    rows: usize,
    cols: usize,
    accumulate: bool,
    prefetch: Prefetch,
);

/// A microkernel and its register-tile height.
#[derive(Clone, Copy)]
pub struct Kernel {
    pub name: &'static str,
    pub mr: usize,
    run: Microkernel,
    /// For a single row of A (GEMV): several panels per call, for more loads in flight.
    row: Option<RowKernel>,
}

/// Panels a [`RowKernel`] covers per call.
const ROW_PANELS: usize = 4;

/// A one-row kernel: `C[0, cols] (+)= A[0, kc] · B[kc, cols]` for `cols <= ROW_PANELS*NR`,
/// B being `cols.div_ceil(NR)` panels `pstride` floats apart (each `kc x NR`), A element `p`
/// at `a + p*csa`. Every element of C gets the same operations as in a [`Microkernel`].
///
/// # Safety
/// As [`Microkernel`] for the given A, panels and a `1 x cols` C.
type RowKernel = unsafe fn(
    kc: usize,
    a: *const f32,
    csa: isize,
    b: *const f32,
    pstride: usize,
    c: *mut f32,
    cols: usize,
    accumulate: bool,
);

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl Kernel {
    /// The best kernel for this CPU.
    pub fn detect() -> Kernel {
        Kernel::available()[0]
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

/// 64 bytes of floats, so that buffers of them start on a cache line.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C, align(64))]
struct Line([f32; 16]);

/// A zeroed, cache-line-aligned buffer of at least `len` floats.
fn aligned_buffer(len: usize) -> Vec<Line> {
    vec![Line([0.0; 16]); len.div_ceil(16)]
}

/// Runs `f` on a cache-line-aligned buffer of at least `len` floats (contents unspecified): this
/// thread's in `key`, kept for the next call, when it is free and `keep`; else a fresh one (a
/// nested call on this thread, from a task it picks up while waiting, or a buffer too big to
/// keep around).
fn with_scratch<R>(
    key: &'static std::thread::LocalKey<RefCell<Vec<Line>>>,
    len: usize,
    keep: bool,
    f: impl FnOnce(*mut f32) -> R,
) -> R {
    key.with(|cell| {
        let mut fresh = Vec::new();
        let mut borrowed = cell.try_borrow_mut();
        let buf = match borrowed.as_deref_mut() {
            Ok(v) if keep => v,
            _ => &mut fresh,
        };
        if buf.len() * 16 < len {
            *buf = aligned_buffer(len);
        }
        f(buf.as_mut_ptr().cast::<f32>())
    })
}

/// B packed into panels of [`NR`] columns: panel `p` holds, for each `k`, columns
/// `p*NR .. p*NR+NR` (zero-padded past `n`), i.e. float `(p*k + kk)*NR + j` is
/// `B[kk, p*NR + j]`. The buffer starts on a 64-byte boundary (B is read in 64-byte vectors;
/// packed data mapped from a file is fastest at 64-byte-aligned offsets too).
#[derive(Clone, Debug, PartialEq)]
pub struct PackedB {
    pub k: usize,
    pub n: usize,
    buf: Vec<Line>,
}

impl PackedB {
    /// Number of floats a packed `k x n` B takes.
    pub fn packed_len(k: usize, n: usize) -> usize {
        n.div_ceil(NR) * k * NR
    }

    /// Packs row-major `b` (`k x n`, row stride `ldb`).
    ///
    /// # Panics
    /// If `b` is shorter than `(k-1)*ldb + n` or `ldb < n`.
    pub fn pack(b: &[f32], k: usize, n: usize, ldb: usize) -> PackedB {
        let len = PackedB::packed_len(k, n);
        let mut packed = PackedB {
            k,
            n,
            buf: aligned_buffer(len),
        };
        PackedB::pack_into(b, k, n, ldb, packed.data_mut());
        packed
    }

    /// Packs row-major `b` (`k x n`, row stride `ldb`) into `out`, which must hold
    /// [`PackedB::packed_len`]`(k, n)` floats (e.g. a region of an artifact being written).
    ///
    /// # Panics
    /// If `b` is shorter than `(k-1)*ldb + n`, `ldb < n`, or `out` is shorter than the packed
    /// length.
    pub fn pack_into(b: &[f32], k: usize, n: usize, ldb: usize, out: &mut [f32]) {
        let len = PackedB::packed_len(k, n);
        assert!(
            out.len() >= len,
            "pack_into: out holds {} < {len}",
            out.len()
        );
        assert!(
            ldb >= n && (k == 0 || n == 0 || b.len() >= (k - 1) * ldb + n),
            "pack_into: b ({} floats, ldb {ldb}) too small for {k} x {n}",
            b.len()
        );
        if len == 0 {
            return;
        }
        // SAFETY: the asserts above bound every read of b and write of out.
        unsafe { pack::pack_b(k, n, b.as_ptr(), ldb as isize, 1, out.as_mut_ptr()) }
    }

    /// The packed floats ([`PackedB::packed_len`] of them).
    pub fn data(&self) -> &[f32] {
        let len = PackedB::packed_len(self.k, self.n);
        // SAFETY: buf holds at least len floats (Line is 16 plain f32s).
        unsafe { std::slice::from_raw_parts(self.buf.as_ptr().cast::<f32>(), len) }
    }

    fn data_mut(&mut self) -> &mut [f32] {
        let len = PackedB::packed_len(self.k, self.n);
        // SAFETY: as in data(), and we hold the buffer mutably.
        unsafe { std::slice::from_raw_parts_mut(self.buf.as_mut_ptr().cast::<f32>(), len) }
    }

    /// Views the packed data without copying.
    pub fn view(&self) -> PackedBRef<'_> {
        PackedBRef {
            k: self.k,
            n: self.n,
            data: self.data(),
        }
    }
}

/// A borrowed packed B (e.g. mapped from an artifact): `data` holds
/// [`PackedB::packed_len`]`(k, n)` floats in [`PackedB`]'s layout.
#[derive(Clone, Copy, Debug)]
pub struct PackedBRef<'a> {
    pub k: usize,
    pub n: usize,
    pub data: &'a [f32],
}

/// How B is given: prepacked panels (weights) or a strided matrix (activations, e.g. Kᵀ in
/// attention).
#[derive(Clone, Copy, Debug)]
pub enum BMatrix<'a> {
    Packed(PackedBRef<'a>),
    /// Element `(p, j)` at `ptr + p*rs + j*cs` (strides in elements).
    Strided {
        ptr: *const f32,
        rs: isize,
        cs: isize,
    },
}

/// Shape errors of a GEMM call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GemmShapeError(pub String);

/// `C = A·B` (or `C += A·B` with `accumulate`), A row-major `m x k` with row stride `lda`,
/// C row-major `m x n` with row stride `ldc`: the checked form of [`sgemm`].
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
    // SAFETY: the checks above keep every A, B and C access in bounds; c is borrowed mutably.
    unsafe {
        sgemm(
            kernel,
            m,
            n,
            k,
            a.as_ptr(),
            lda as isize,
            1,
            BMatrix::Packed(b),
            c.as_mut_ptr(),
            ldc as isize,
            accumulate,
        )
    }
    Ok(())
}

/// `C[m,n] = A[m,k]·B[k,n]` (or `+=` with `accumulate`).
///
/// A element `(i, p)` is at `a + i*rsa + p*csa` (strides in elements, any positive values:
/// a transposed A works); C element `(i, j)` at `c + i*rsc + j`. `k` may be 0 (C is zeroed,
/// or left as is with `accumulate`). The work is split over `rayon::current_num_threads()`
/// when the GEMM is big enough to gain, inside whatever rayon pool the caller runs in; the
/// result is bit-identical for every thread count.
///
/// # Safety
/// - For `i < m`, `p < k`: `a + i*rsa + p*csa` is readable.
/// - For `i < m`, `j < n`: `c + i*rsc + j` is readable and writable, no two `(i, j)` alias,
///   and C overlaps neither A nor B; nothing else accesses C during the call.
/// - `BMatrix::Strided`: for `p < k`, `j < n`, `ptr + p*rs + j*cs` is readable.
/// - `kernel` came from [`Kernel::detect`] / [`Kernel::available`] on this CPU.
///
/// # Panics
/// If a `BMatrix::Packed` B does not have this `k` and `n` or its data is short.
#[allow(clippy::too_many_arguments)]
pub unsafe fn sgemm(
    kernel: Kernel,
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    rsa: isize,
    csa: isize,
    b: BMatrix<'_>,
    c: *mut f32,
    rsc: isize,
    accumulate: bool,
) {
    // SAFETY: the caller's contract is sgemm_fused's with plain rows and no epilogue.
    unsafe {
        sgemm_fused(
            kernel,
            m,
            n,
            k,
            a,
            rsa,
            csa,
            b,
            c,
            CLayout::rows(rsc),
            &Epilogue::NONE,
            accumulate,
        )
    }
}

/// [`sgemm`] with C laid out by `layout` and `ep` applied to every element of C once its
/// sum is complete: `C = act(A·B (+ C) + bias) + residual`.
///
/// # Safety
/// As [`sgemm`], with C element `(i, j)` at `c + i*layout.rsc + layout.col(j)`
/// (`layout.block` a multiple of [`NR`]), and the epilogue's bias (`n` floats) and
/// residual (`m x n` at its row stride) readable, not overlapping C.
#[allow(clippy::too_many_arguments)]
pub unsafe fn sgemm_fused(
    kernel: Kernel,
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    rsa: isize,
    csa: isize,
    b: BMatrix<'_>,
    c: *mut f32,
    layout: CLayout,
    ep: &Epilogue,
    accumulate: bool,
) {
    assert!(
        layout.block.is_multiple_of(NR),
        "sgemm: column blocks of {} are not a multiple of {NR}",
        layout.block
    );
    if let BMatrix::Packed(pb) = b {
        assert!(
            pb.k == k && pb.n == n && pb.data.len() >= PackedB::packed_len(k, n),
            "sgemm: packed B is {}x{} with {} floats, the call is k={k} n={n}",
            pb.k,
            pb.n,
            pb.data.len()
        );
    }
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        let mut j = 0;
        while j < n {
            let cols = layout.run_from(j).min(n - j);
            for i in 0..m {
                // SAFETY: columns j..j+cols of row i are one contiguous run of C (contract).
                unsafe {
                    let row = c.offset(i as isize * layout.rsc + layout.col(j));
                    if !accumulate {
                        std::ptr::write_bytes(row, 0, cols);
                    }
                    epilogue::apply(ep, row, 0, 1, cols, i, j);
                }
            }
            j += cols;
        }
        return;
    }
    match b {
        BMatrix::Packed(pb) => {
            // SAFETY: the contract of sgemm, and pb was checked above.
            unsafe {
                run(
                    kernel,
                    m,
                    n,
                    k,
                    a,
                    rsa,
                    csa,
                    pb.data.as_ptr(),
                    c,
                    layout,
                    ep,
                    accumulate,
                )
            }
        }
        // One panel's width of contiguous rows NR apart (attention's V with 32-wide heads)
        // is already in the packed layout.
        BMatrix::Strided { ptr, rs, cs } if n == NR && cs == 1 && rs == NR as isize => {
            // SAFETY: B's k rows of NR floats are the packed panel; the rest is sgemm's
            // contract.
            unsafe { run(kernel, m, n, k, a, rsa, csa, ptr, c, layout, ep, accumulate) }
        }
        BMatrix::Strided { ptr, rs, cs } => {
            thread_local! {
                static BPACK: RefCell<Vec<Line>> = const { RefCell::new(Vec::new()) };
            }
            let len = PackedB::packed_len(k, n);
            with_scratch(&BPACK, len, len <= KEEP_BPACK_MAX, |bp| {
                // SAFETY: B is readable per the contract; bp holds packed_len(k, n) floats,
                // all written by pack_b before run reads them.
                unsafe {
                    pack::pack_b(k, n, ptr, rs, cs, bp);
                    run(kernel, m, n, k, a, rsa, csa, bp, c, layout, ep, accumulate)
                }
            })
        }
    }
}

thread_local! {
    /// Set inside [`serial`]: GEMMs on this thread stay on it.
    static SERIAL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with every GEMM it calls on the calling thread, for callers that already share
/// their work out among the threads (a nested split would only add hand-offs).
pub fn serial<R>(f: impl FnOnce() -> R) -> R {
    let before = SERIAL.replace(true);
    let r = f();
    SERIAL.set(before);
    r
}

/// Pointers moved into rayon tasks.
#[derive(Clone, Copy)]
struct Shared<'e> {
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ep: &'e Epilogue,
}
// SAFETY: tasks read A and B and write disjoint parts of C (see run()).
unsafe impl Send for Shared<'_> {}
unsafe impl Sync for Shared<'_> {}

/// How one GEMM is blocked: the K block depth and the M block height.
#[derive(Clone, Copy, Debug)]
struct Blocking {
    kc: usize,
    mc: usize,
    /// B panels per N block.
    nb: usize,
}

impl Blocking {
    /// Equal-sized blocks no bigger than the maxima; a function of the shape only (never of
    /// the thread count), so every thread count sums over the same K blocks.
    fn new(kernel: &Kernel, m: usize, k: usize) -> Blocking {
        let kc = k.div_ceil(k.div_ceil(KC_MAX));
        let mc_max = MC_MAX / kernel.mr * kernel.mr;
        let mc = m.div_ceil(m.div_ceil(mc_max)).next_multiple_of(kernel.mr);
        Blocking { kc, mc, nb: NB }
    }
}

/// The GEMM over packed B at `b`: splits rows and panels over the rayon pool's threads.
///
/// # Safety
/// As [`sgemm`], with `b` pointing at `packed_len(k, n)` packed floats; m, n, k > 0.
#[allow(clippy::too_many_arguments)]
unsafe fn run(
    kernel: Kernel,
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    rsa: isize,
    csa: isize,
    b: *const f32,
    c: *mut f32,
    layout: CLayout,
    ep: &Epilogue,
    accumulate: bool,
) {
    let blocking = Blocking::new(&kernel, m, k);
    let panels = n.div_ceil(NR);
    let threads = if SERIAL.get() {
        1
    } else {
        rayon::current_num_threads()
    };
    // Worth a second thread: enough products, or enough of B to stream (a GEMV is bound by
    // memory bandwidth, which a second core adds to).
    let big = m * n * k >= PARALLEL_MIN_MNK || k * n >= PARALLEL_MIN_KN;
    let (tm, tn) = if threads <= 1 || !big {
        (1, 1)
    } else {
        split(&kernel, m, panels, threads)
    };
    let rsc = layout.rsc;
    let row_tiles = m.div_ceil(kernel.mr);
    // Row tiles r0..r1 and panels p0..p1 of C. `packed`: A already packed by pack_shared
    // (one M block, the task's rows all of them); `then`: the panels the thread will
    // probably do next.
    let task = |sh: Shared,
                (r0, r1): (usize, usize),
                (p0, p1): (usize, usize),
                packed: Option<SharedA>,
                then: Option<(usize, usize)>| {
        let (i0, i1) = (r0 * kernel.mr, (r1 * kernel.mr).min(m));
        if i0 >= i1 || p0 >= p1 {
            return;
        }
        // SAFETY: this task reads rows i0..i1 of A and writes rows i0..i1, columns
        // p0*NR..min(p1*NR, n) of C, disjoint from every other task's part of C.
        unsafe {
            block(
                &kernel,
                blocking,
                (i0, i1),
                (p0, p1),
                n,
                k,
                sh.a.offset(i0 as isize * rsa),
                rsa,
                csa,
                sh.b,
                sh.c.offset(i0 as isize * rsc),
                layout,
                sh.ep,
                accumulate,
                packed,
                then,
            )
        }
    };
    let sh = Shared { a, b, c, ep };
    if tm * tn == 1 {
        task(sh, (0, row_tiles), (0, panels), None, None);
        return;
    }
    use rayon::prelude::*;
    // Threads that split only B's panels take them a block at a time (PanelShares), where
    // no block packs A anew: A read in place (one row, or few panels), or packed once for
    // them all.
    let share_panels = |packed: Option<SharedA>, claim: usize| {
        let shares = PanelShares::new(panels, tn, claim);
        (0..tn).into_par_iter().for_each(|t| {
            while let Some(own) = shares.take_own(t) {
                task(sh, (0, row_tiles), own, packed, shares.peek_own(t));
            }
            while let Some(stolen) = shares.steal() {
                let before = (stolen.0.saturating_sub(claim), stolen.0);
                task(sh, (0, row_tiles), stolen, packed, Some(before));
            }
        });
    };
    let row_kernel = m == 1 && kernel.row.is_some();
    let direct = csa == 1 && rsa != 0 && panels.div_ceil(tn) <= DIRECT_MAX_PANELS;
    if tm == 1 && row_kernel {
        share_panels(None, ROW_PANELS);
    } else if tm == 1 && direct {
        share_panels(None, blocking.nb);
    } else if tm == 1 && m <= blocking.mc {
        // Each thread would pack all of A: they pack a share of its row panels each into one
        // buffer first, and all read it.
        let len = m.next_multiple_of(kernel.mr) * k;
        with_scratch(&SHARED_APACK, len, true, |buf| {
            let apack = SharedA(buf);
            // The row panels of A are shared out as B's panels are, one at a time.
            let rows = PanelShares::new(row_tiles, tn, 1);
            (0..tn).into_par_iter().for_each(|t| {
                while let Some(q) = rows.take_own(t).or_else(|| rows.steal()) {
                    // SAFETY: each row panel is packed once, by whoever takes it: this call
                    // writes only row panels q of every K block of the buffer (len floats,
                    // see pack_shared) and reads rows of A inside 0..m.
                    unsafe { pack_shared(&kernel, blocking, q, m, k, sh, rsa, csa, apack) };
                }
            });
            share_panels(Some(apack), blocking.nb);
        });
    } else {
        (0..tm * tn).into_par_iter().for_each(|t| {
            let (ti, tj) = (t / tn, t % tn);
            let rows = (row_tiles * ti / tm, row_tiles * (ti + 1) / tm);
            let cols = (panels * tj / tn, panels * (tj + 1) / tn);
            task(sh, rows, cols, None, None)
        });
    }
}

thread_local! {
    /// The buffer a calling thread's split GEMMs pack A into for all their tasks.
    static SHARED_APACK: RefCell<Vec<Line>> = const { RefCell::new(Vec::new()) };
}

/// A packed A that every task of one GEMM reads.
#[derive(Clone, Copy)]
struct SharedA(*mut f32);
// SAFETY: while tasks pack, each writes its own row panels; afterwards all only read.
unsafe impl Send for SharedA {}
unsafe impl Sync for SharedA {}

/// Packs row panels `q0..q1` of A (`m x k` at `sh.a`, one M block) for every K block into
/// `apack`: K block `pc..pc+kc` starts at float `pc * m.next_multiple_of(mr)`, laid out as
/// [`pack::pack_a`] lays out one block.
///
/// # Safety
/// A's rows `< m`, columns `< k` are readable; `apack` holds
/// `m.next_multiple_of(mr) * k` floats, of which this call writes only its row panels.
#[allow(clippy::too_many_arguments)]
unsafe fn pack_shared(
    kernel: &Kernel,
    blocking: Blocking,
    (q0, q1): (usize, usize),
    m: usize,
    k: usize,
    sh: Shared,
    rsa: isize,
    csa: isize,
    apack: SharedA,
) {
    let (a, mr) = (sh.a, kernel.mr);
    let (i0, i1) = (q0 * mr, (q1 * mr).min(m));
    if i0 >= i1 {
        return;
    }
    let mut pc = 0;
    while pc < k {
        let kc = blocking.kc.min(k - pc);
        // SAFETY: rows i0..i1, columns pc..pc+kc of A; row panels q0..q1 of this K block
        // of the buffer (the caller's contract).
        unsafe {
            pack::pack_a(
                i1 - i0,
                kc,
                mr,
                a.offset(i0 as isize * rsa + pc as isize * csa),
                rsa,
                csa,
                apack.0.add(pc * m.next_multiple_of(mr) + i0 * kc),
            )
        };
        pc += kc;
    }
}

/// How to split `m` rows and `panels` B panels into a grid of `tm x tn` tasks for `threads`.
/// Splitting rows shares no work; splitting panels makes every task read all of packed A
/// but only its share of B, and balances better when there are few row panels.
fn split(kernel: &Kernel, m: usize, panels: usize, threads: usize) -> (usize, usize) {
    let row_tiles = m.div_ceil(kernel.mr);
    let balance = |units: usize| units as f64 / (threads * units.div_ceil(threads)) as f64;
    if panels >= threads && (row_tiles < 4 * threads || balance(panels) > balance(row_tiles) + 0.02)
    {
        return (1, threads);
    }
    if row_tiles >= threads {
        return (threads, 1);
    }
    (1, threads.min(panels))
}

/// One task's share: rows `i0..i1` (A and C already offset to row `i0`), panels `p0..p1`.
/// `packed`: all of A (`i0 == 0`, one M block) packed by [`pack_shared`].
///
/// # Safety
/// As [`run`], restricted to the given rows and panels; `packed` as [`pack_shared`] wrote it
/// for these rows, `k` and blocking. `then`: the panels this thread will probably work on
/// next, fetched during the last block (only a hint).
#[allow(clippy::too_many_arguments)]
unsafe fn block(
    kernel: &Kernel,
    blocking: Blocking,
    (i0, i1): (usize, usize),
    (p0, p1): (usize, usize),
    n: usize,
    k: usize,
    a: *const f32,
    rsa: isize,
    csa: isize,
    b: *const f32,
    c: *mut f32,
    layout: CLayout,
    ep: &Epilogue,
    accumulate: bool,
    packed: Option<SharedA>,
    then: Option<(usize, usize)>,
) {
    thread_local! {
        static APACK: RefCell<Vec<Line>> = const { RefCell::new(Vec::new()) };
    }
    let rsc = layout.rsc;
    let m = i1 - i0;
    let mr = kernel.mr;
    let Blocking { kc: kc_max, mc, nb } = blocking;
    if let (1, Some(row)) = (m, kernel.row) {
        let mut pc = 0;
        while pc < k {
            let kc = kc_max.min(k - pc);
            let last = pc + kc == k;
            let mut p = p0;
            while p < p1 {
                let cols = (ROW_PANELS * NR)
                    .min(n - p * NR)
                    .min((p1 - p) * NR)
                    .min(layout.run_from(p * NR));
                let out = c.wrapping_offset(layout.col(p * NR));
                // SAFETY: A row 0, columns pc..pc+kc; panels p.. of B, rows pc..pc+kc; C row
                // 0, columns p*NR..p*NR+cols (contiguous: inside one block), inside this
                // task's part.
                unsafe {
                    row(
                        kc,
                        a.offset(pc as isize * csa),
                        csa,
                        b.add((p * k + pc) * NR),
                        k * NR,
                        out,
                        cols,
                        accumulate || pc > 0,
                    );
                    if last {
                        epilogue::apply(ep, out, 0, 1, cols, i0, p * NR);
                    }
                };
                p += cols.div_ceil(NR);
            }
            pc += kc;
        }
        return;
    }
    let need = mc.min(m.next_multiple_of(mr)) * kc_max;
    with_scratch(&APACK, need, true, |apack| {
        let mut pc = 0;
        while pc < k {
            let kc = kc_max.min(k - pc);
            let acc = accumulate || pc > 0;
            let last = pc + kc == k;
            let mut ic = 0;
            while ic < m {
                let mcb = mc.min(m - ic);
                // A row-major block feeding few panels is read in place: packing it would cost
                // about as much as the products.
                let direct =
                    packed.is_none() && csa == 1 && rsa != 0 && p1 - p0 <= DIRECT_MAX_PANELS;
                let a_block = a.wrapping_offset(ic as isize * rsa + pc as isize * csa);
                let apack = match packed {
                    Some(pa) => pa.0.wrapping_add(pc * m.next_multiple_of(mr) + ic * kc),
                    None => apack,
                };
                if !direct && packed.is_none() {
                    // SAFETY: rows ic..ic+mcb, columns pc..pc+kc of A are readable; apack holds
                    // mcb.next_multiple_of(mr) * kc floats.
                    unsafe { pack::pack_a(mcb, kc, mr, a_block, rsa, csa, apack) };
                }
                let mut jb = p0;
                while jb < p1 {
                    let je = (jb + nb).min(p1);
                    // What this task reads after this block: its next N block, else its first
                    // one for the next M block or K block, else what the thread does next.
                    let next = if je < p1 {
                        Some(((je, (je + nb).min(p1)), pc, kc))
                    } else if ic + mcb < m {
                        Some(((p0, (p0 + nb).min(p1)), pc, kc))
                    } else if pc + kc < k {
                        Some(((p0, (p0 + nb).min(p1)), pc + kc, kc_max.min(k - pc - kc)))
                    } else {
                        then.filter(|&(q0, q1)| q0 < q1)
                            .map(|q| (q, 0, kc_max.min(k)))
                    };
                    let calls = mcb.div_ceil(mr) * (je - jb);
                    let mut fetch = match next {
                        Some((q, row0, rows)) => NextBlock::new(b, k, q, (row0, rows), calls),
                        None => NextBlock::EMPTY,
                    };
                    let mut ir = 0;
                    while ir < mcb {
                        let rows = mr.min(mcb - ir);
                        for p in jb..je {
                            let cols = NR.min(n - p * NR);
                            let tile =
                                c.wrapping_offset((ic + ir) as isize * rsc + layout.col(p * NR));
                            // SAFETY: the A micro-panel at ir (packed: kc*mr floats; direct:
                            // rows ic+ir.. of A, columns pc..pc+kc) is readable, panel p of B
                            // rows pc..pc+kc*NR floats; the C tile (rows ic+ir.., columns
                            // p*NR.., contiguous inside one column block) is rows x cols
                            // inside this task's part of C.
                            unsafe {
                                (kernel.run)(
                                    kc,
                                    if direct {
                                        a_block.offset(ir as isize * rsa)
                                    } else {
                                        apack.add(ir * kc)
                                    },
                                    if direct { rsa } else { 0 },
                                    b.add((p * k + pc) * NR),
                                    tile,
                                    rsc,
                                    rows,
                                    cols,
                                    acc,
                                    fetch.take(),
                                );
                                if last {
                                    epilogue::apply(
                                        ep,
                                        tile,
                                        rsc,
                                        rows,
                                        cols,
                                        i0 + ic + ir,
                                        p * NR,
                                    );
                                }
                            }
                        }
                        ir += mr;
                    }
                    jb = je;
                }
                ic += mcb;
            }
            pc += kc;
        }
    });
}

#[cfg(test)]
mod tests;
