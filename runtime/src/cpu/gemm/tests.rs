use super::*;

/// `C = A·B` in f64, A element (i, p) at `a[i*rsa + p*csa]`, B row-major `k x n`.
#[allow(clippy::too_many_arguments)]
fn reference(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    rsa: usize,
    csa: usize,
    b: &[f32],
    c0: Option<&[f32]>,
) -> Vec<f32> {
    let mut c = vec![0.0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = c0.map_or(0.0, |c0| c0[i * n + j] as f64);
            for p in 0..k {
                s += a[i * rsa + p * csa] as f64 * b[p * n + j] as f64;
            }
            c[i * n + j] = s as f32;
        }
    }
    c
}

fn data(len: usize, seed: u32) -> Vec<f32> {
    (0..len)
        .map(|i| {
            (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 16) % 17) as f32 / 8.0 - 1.0
        })
        .collect()
}

fn close(got: &[f32], want: &[f32], k: usize, what: &str) {
    for (i, (x, y)) in got.iter().zip(want).enumerate() {
        assert!(
            (x - y).abs() <= 1e-5 * (k as f32 + 1.0) * (1.0 + y.abs()),
            "{what} at {i}: {x} vs {y}"
        );
    }
}

const SIZES: &[usize] = &[1, 2, 3, 5, 8, 11, 12, 13, 17, 31, 32, 33, 47, 64, 70];
const DEPTHS: &[usize] = &[0, 1, 4, 7, 33, 70, 255, 256, 257, 600];

/// `sgemm` with row-major (or transposed) A and packed or strided B, single-threaded.
#[allow(clippy::too_many_arguments)]
fn run_sgemm(
    kernel: Kernel,
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: BMatrix<'_>,
    c: &mut [f32],
    accumulate: bool,
) {
    assert!(m == 0 || k == 0 || a.len() > (m - 1) * rsa + (k - 1) * csa);
    assert!(c.len() >= m * n);
    // SAFETY: A, B and C are in bounds for the given strides (asserted / built by callers).
    unsafe {
        sgemm(
            kernel,
            m,
            n,
            k,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b,
            c.as_mut_ptr(),
            n as isize,
            accumulate,
        )
    }
}

#[test]
fn every_kernel_matches_reference_on_ragged_shapes() {
    for kernel in Kernel::available() {
        for &m in SIZES {
            for &n in SIZES {
                for &k in DEPTHS {
                    if m * n * k > 400_000 {
                        continue;
                    }
                    let a = data(m * k, 1);
                    let b = data(k * n, 2);
                    let want = reference(m, n, k, &a, k, 1, &b, None);
                    let packed = PackedB::pack(&b, k, n, n);
                    let mut c = vec![f32::NAN; m * n];
                    let what = format!("{kernel:?} m{m} n{n} k{k}");
                    gemm(kernel, m, &a, k, packed.view(), &mut c, n, false).unwrap();
                    close(&c, &want, k, &what);
                    // Accumulating adds to what is there.
                    let c0 = data(m * n, 3);
                    let want = reference(m, n, k, &a, k, 1, &b, Some(&c0));
                    let mut c = c0.clone();
                    gemm(kernel, m, &a, k, packed.view(), &mut c, n, true).unwrap();
                    close(&c, &want, k, &format!("{what} accumulate"));
                }
            }
        }
    }
}

#[test]
fn strided_a_and_b_match_packed() {
    for kernel in Kernel::available() {
        for &(m, n, k) in &[
            (1, 1, 1),
            (13, 33, 7),
            (70, 65, 300),
            (12, 32, 256),
            (25, 100, 513),
            (128, 128, 32),
            (3, 5, 0),
        ] {
            let what = format!("{kernel:?} m{m} n{n} k{k}");
            let a = data(m * k, 1);
            let b = data(k * n, 2);
            let packed = PackedB::pack(&b, k, n, n);
            let mut want = vec![f32::NAN; m * n];
            run_sgemm(
                kernel,
                m,
                n,
                k,
                &a,
                (k, 1),
                BMatrix::Packed(packed.view()),
                &mut want,
                false,
            );
            close(&want, &reference(m, n, k, &a, k, 1, &b, None), k, &what);

            // Transposed A (column-major, with padding between columns): same products in the
            // same order, so the same bits.
            let lda = m + 3;
            let mut at = vec![f32::NAN; lda * k];
            for i in 0..m {
                for p in 0..k {
                    at[p * lda + i] = a[i * k + p];
                }
            }
            let mut c = vec![f32::NAN; m * n];
            run_sgemm(
                kernel,
                m,
                n,
                k,
                &at,
                (1, lda),
                BMatrix::Packed(packed.view()),
                &mut c,
                false,
            );
            assert_eq!(c, want, "{what} transposed A");

            // A with both strides non-unit.
            let mut a2 = vec![f32::NAN; 2 * m * 3 * k.max(1)];
            for i in 0..m {
                for p in 0..k {
                    a2[i * 3 * k + 2 * p] = a[i * k + p];
                }
            }
            let mut c = vec![f32::NAN; m * n];
            run_sgemm(
                kernel,
                m,
                n,
                k,
                &a2,
                (3 * k, 2),
                BMatrix::Packed(packed.view()),
                &mut c,
                false,
            );
            assert_eq!(c, want, "{what} strided A");

            // Row-major strided B with a padded row.
            let ldb = n + 5;
            let mut bs = vec![f32::NAN; ldb * k];
            for p in 0..k {
                bs[p * ldb..p * ldb + n].copy_from_slice(&b[p * n..p * n + n]);
            }
            let mut c = vec![f32::NAN; m * n];
            let sb = BMatrix::Strided {
                ptr: bs.as_ptr(),
                rs: ldb as isize,
                cs: 1,
            };
            run_sgemm(kernel, m, n, k, &a, (k, 1), sb, &mut c, false);
            assert_eq!(c, want, "{what} row-major strided B");

            // B given as Kᵀ: B(p, j) = K[j][p], K row-major n x k.
            let mut kt = vec![f32::NAN; n * k];
            for p in 0..k {
                for j in 0..n {
                    kt[j * k + p] = b[p * n + j];
                }
            }
            let mut c = vec![f32::NAN; m * n];
            let sb = BMatrix::Strided {
                ptr: kt.as_ptr(),
                rs: 1,
                cs: k as isize,
            };
            run_sgemm(kernel, m, n, k, &a, (k, 1), sb, &mut c, false);
            assert_eq!(c, want, "{what} transposed strided B");

            // Accumulate into C with strided B.
            let c0 = data(m * n, 5);
            let mut c = c0.clone();
            run_sgemm(kernel, m, n, k, &a, (k, 1), sb, &mut c, true);
            close(&c, &reference(m, n, k, &a, k, 1, &b, Some(&c0)), k, &what);
        }
    }
}

#[test]
fn k_zero_zeroes_or_keeps_c() {
    let kernel = Kernel::detect();
    let packed = PackedB::pack(&[], 0, 5, 5);
    let mut c = vec![7.0f32; 15];
    run_sgemm(
        kernel,
        3,
        5,
        0,
        &[],
        (0, 1),
        BMatrix::Packed(packed.view()),
        &mut c,
        true,
    );
    assert!(c.iter().all(|&x| x == 7.0));
    run_sgemm(
        kernel,
        3,
        5,
        0,
        &[],
        (0, 1),
        BMatrix::Packed(packed.view()),
        &mut c,
        false,
    );
    assert!(c.iter().all(|&x| x == 0.0));
}

#[test]
fn c_row_stride_leaves_the_gap_alone() {
    let (m, n, k) = (20, 40, 30);
    let a = data(m * k, 1);
    let b = data(k * n, 2);
    let packed = PackedB::pack(&b, k, n, n);
    let ldc = n + 7;
    for kernel in Kernel::available() {
        let mut c = vec![-3.0f32; m * ldc];
        gemm(kernel, m, &a, k, packed.view(), &mut c, ldc, false).unwrap();
        let want = reference(m, n, k, &a, k, 1, &b, None);
        for i in 0..m {
            close(
                &c[i * ldc..i * ldc + n],
                &want[i * n..i * n + n],
                k,
                kernel.name,
            );
            assert!(c[i * ldc + n..i * ldc + ldc].iter().all(|&x| x == -3.0));
        }
    }
}

#[test]
fn pack_into_matches_pack() {
    let (k, n, ldb) = (37, 70, 75);
    let b = data(k * ldb, 9);
    let packed = PackedB::pack(&b, k, n, ldb);
    let mut out = vec![f32::NAN; PackedB::packed_len(k, n)];
    PackedB::pack_into(&b, k, n, ldb, &mut out);
    assert_eq!(packed.data(), &out[..]);
    assert_eq!(out[(2 * k + 3) * NR + 5], b[3 * ldb + 2 * NR + 5]);
    assert_eq!(out[(2 * k + 3) * NR + 6], 0.0, "padding past n is zero");
}

/// Whatever the pool size, every element of C comes out with the same bits.
#[test]
fn thread_count_does_not_change_results() {
    let pools: Vec<rayon::ThreadPool> = [1, 2, 3]
        .iter()
        .map(|&t| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap()
        })
        .collect();
    for kernel in Kernel::available() {
        for &(m, n, k) in &[
            (1, 2000, 700),
            (5, 1000, 600),
            (128, 384, 384),
            (128, 384, 1536),
            (100, 640, 1100),
            (200, 70, 300),
            (300, 300, 300),
        ] {
            let a = data(m * k, 1);
            // A transposed (element (i, p) at p*m + i), for the strided packing path.
            let at: Vec<f32> = (0..m * k).map(|x| a[(x % m) * k + x / m]).collect();
            let b = data(k * n, 2);
            let packed = PackedB::pack(&b, k, n, n);
            let c0 = data(m * n, 3);
            let results: Vec<(Vec<f32>, Vec<f32>)> = pools
                .iter()
                .map(|pool| {
                    pool.install(|| {
                        let mut c = c0.clone();
                        run_sgemm(
                            kernel,
                            m,
                            n,
                            k,
                            &a,
                            (k, 1),
                            BMatrix::Packed(packed.view()),
                            &mut c,
                            true,
                        );
                        let mut d = vec![f32::NAN; m * n];
                        let sb = BMatrix::Strided {
                            ptr: b.as_ptr(),
                            rs: n as isize,
                            cs: 1,
                        };
                        run_sgemm(kernel, m, n, k, &at, (1, m), sb, &mut d, false);
                        (c, d)
                    })
                })
                .collect();
            close(
                &results[0].1,
                &reference(m, n, k, &a, k, 1, &b, None),
                k,
                kernel.name,
            );
            for r in &results[1..] {
                assert!(
                    r == &results[0],
                    "{kernel:?} m{m} n{n} k{k}: threads changed bits"
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

/// A single row (the GEMV path), a row-major A read in place and a packed A all compute each
/// element with the same operations.
#[test]
fn one_row_matches_its_row_in_a_bigger_gemm() {
    for kernel in Kernel::available() {
        for &(n, k) in &[(1, 1), (33, 7), (200, 600), (130, 1100)] {
            let m = 13;
            let a = data(m * k, 1);
            let b = data(k * n, 2);
            let packed = PackedB::pack(&b, k, n, n);
            let mut big = vec![f32::NAN; m * n];
            run_sgemm(
                kernel,
                m,
                n,
                k,
                &a,
                (k, 1),
                BMatrix::Packed(packed.view()),
                &mut big,
                false,
            );
            for i in [0, 5, 12] {
                let mut one = vec![f32::NAN; n];
                let row = &a[i * k..i * k + k];
                run_sgemm(
                    kernel,
                    1,
                    n,
                    k,
                    row,
                    (k, 1),
                    BMatrix::Packed(packed.view()),
                    &mut one,
                    false,
                );
                assert_eq!(one, big[i * n..i * n + n], "{kernel:?} n{n} k{k} row {i}");
            }
        }
    }
}

/// `sgemm_fused` on one pool: `C = act(A·B + bias) + residual`, C in column blocks of
/// `block` (0: plain rows); returns C as plain rows.
#[allow(clippy::too_many_arguments)]
fn run_fused(
    kernel: Kernel,
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    b: &PackedB,
    bias: &[f32],
    act: Activation,
    residual: &[f32],
    block: usize,
) -> Vec<f32> {
    let blocks = if block == 0 { 1 } else { n.div_ceil(block) };
    let bw = if block == 0 { n } else { block };
    // Blocked: [blocks, m, block], each block's rows `block` apart.
    let layout = if block == 0 {
        CLayout::rows(n as isize)
    } else {
        CLayout {
            rsc: block as isize,
            block,
            block_stride: (m * block) as isize,
        }
    };
    let mut c = vec![f32::NAN; blocks * m * bw];
    let ep = Epilogue {
        bias: bias.as_ptr(),
        act,
        residual: residual.as_ptr(),
        rsr: n as isize,
    };
    // SAFETY: A is m x k row-major, B packed k x n, C covers every blocked element, bias n
    // floats, residual m x n.
    unsafe {
        sgemm_fused(
            kernel,
            m,
            n,
            k,
            a.as_ptr(),
            k as isize,
            1,
            BMatrix::Packed(b.view()),
            c.as_mut_ptr(),
            layout,
            &ep,
            false,
        )
    };
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = c[(i as isize * layout.rsc + layout.col(j)) as usize];
        }
    }
    out
}

#[test]
fn epilogues_and_column_blocks_match_the_unfused_steps() {
    let pools: Vec<rayon::ThreadPool> = [1, 2]
        .iter()
        .map(|&t| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap()
        })
        .collect();
    for kernel in Kernel::available() {
        for &(m, n, k) in &[
            (1, 96, 40),
            (1, 200, 600),
            (13, 64, 7),
            (128, 384, 384),
            (20, 96, 1100),
            (3, 64, 0),
        ] {
            let a = data(m * k, 1);
            let b = data(k * n, 2);
            let packed = PackedB::pack(&b, k, n, n);
            let bias = data(n, 4);
            let residual = data(m * n, 5);
            let plain = reference(m, n, k, &a, k, 1, &b, None);
            for act in [Activation::None, Activation::Gelu, Activation::GeluTanh] {
                let want: Vec<f32> = plain
                    .iter()
                    .enumerate()
                    .map(|(x, &v)| {
                        let v = (v + bias[x % n]) as f64;
                        let y = match act {
                            Activation::Gelu | Activation::GeluTanh => {
                                let z = (2.0 / std::f64::consts::PI).sqrt()
                                    * (v + 0.044715 * v * v * v);
                                0.5 * v * (1.0 + z.tanh())
                            }
                            _ => v,
                        };
                        (y + residual[x] as f64) as f32
                    })
                    .collect();
                for block in [0, 32, 64] {
                    if block != 0 && n % block != 0 {
                        continue;
                    }
                    let what = format!("{kernel:?} m{m} n{n} k{k} {act:?} block {block}");
                    let got: Vec<Vec<f32>> = pools
                        .iter()
                        .map(|p| {
                            p.install(|| {
                                run_fused(
                                    kernel,
                                    (m, n, k),
                                    &a,
                                    &packed,
                                    &bias,
                                    act,
                                    &residual,
                                    block,
                                )
                            })
                        })
                        .collect();
                    assert!(got[0] == got[1], "{what}: threads changed bits");
                    // The erf and tanh forms of GELU differ by up to ~1e-3 absolute.
                    let tol = if act == Activation::None { 0.0 } else { 2e-3 };
                    for (i, (x, y)) in got[0].iter().zip(&want).enumerate() {
                        assert!(
                            (x - y).abs() <= tol + 1e-5 * (k as f32 + 1.0) * (1.0 + y.abs()),
                            "{what} at {i}: {x} vs {y}"
                        );
                    }
                    if block == 0 && act == Activation::None {
                        // No activation: the same as the plain product plus two adds.
                        let mut c = vec![f32::NAN; m * n];
                        run_sgemm(
                            kernel,
                            m,
                            n,
                            k,
                            &a,
                            (k, 1),
                            BMatrix::Packed(packed.view()),
                            &mut c,
                            false,
                        );
                        for (x, v) in c.iter_mut().enumerate() {
                            *v = (*v + bias[x % n]) + residual[x];
                        }
                        assert_eq!(got[0], c, "{what}: fused and separate adds");
                    }
                }
            }
        }
    }
}

/// A strided B of one panel's width with rows `NR` apart is read in place as the packed
/// panel: the same bits as packing it.
#[test]
fn one_panel_row_major_b_is_read_in_place() {
    for kernel in Kernel::available() {
        for &(m, k) in &[(1, 5), (13, 128), (64, 300), (130, 600)] {
            let n = NR;
            let a = data(m * k, 1);
            let b = data(k * n, 2);
            let packed = PackedB::pack(&b, k, n, n);
            let mut want = vec![f32::NAN; m * n];
            run_sgemm(
                kernel,
                m,
                n,
                k,
                &a,
                (k, 1),
                BMatrix::Packed(packed.view()),
                &mut want,
                false,
            );
            let sb = BMatrix::Strided {
                ptr: b.as_ptr(),
                rs: n as isize,
                cs: 1,
            };
            let mut c = vec![f32::NAN; m * n];
            run_sgemm(kernel, m, n, k, &a, (k, 1), sb, &mut c, false);
            assert_eq!(c, want, "{kernel:?} m{m} k{k}");
            close(&c, &reference(m, n, k, &a, k, 1, &b, None), k, kernel.name);
        }
    }
}

#[test]
fn panel_shares_hand_out_every_panel_once() {
    // Threads that work through their own share and then steal, as run() does; one thread
    // is slowed so that the others take blocks from its share.
    for (panels, threads, block) in [(48, 2, 2), (12, 2, 2), (37, 3, 2), (5, 4, 4), (1, 2, 2)] {
        let shares = PanelShares::new(panels, threads, block);
        let taken = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for t in 0..threads {
                let (shares, taken) = (&shares, &taken);
                s.spawn(move || {
                    let mut mine = Vec::new();
                    while let Some(r) = shares.take_own(t) {
                        if t == 0 {
                            std::thread::sleep(std::time::Duration::from_millis(2));
                        }
                        mine.push(r);
                    }
                    while let Some(r) = shares.steal() {
                        mine.push(r);
                    }
                    taken.lock().unwrap().extend(mine);
                });
            }
        });
        let mut taken = taken.into_inner().unwrap();
        taken.sort();
        let mut next = 0;
        for &(lo, hi) in &taken {
            assert_eq!(lo, next, "{panels} panels, {threads} threads: {taken:?}");
            assert!(hi > lo && hi - lo <= block, "{taken:?}");
            next = hi;
        }
        assert_eq!(next, panels, "{taken:?}");
        assert_eq!(shares.peek_own(0), None);
    }
}

#[test]
fn the_next_block_is_handed_out_line_by_line_within_its_calls() {
    // B of k = 96 rows: the next block is panels 3..5, rows 32..96 (a later K block).
    let k = 96;
    let b = 0x1000 as *const f32;
    let (q0, q1, row0, rows) = (3, 5, 32, 64);
    let panel_lines = rows * NR / 16;
    let want: Vec<usize> = (q0..q1)
        .flat_map(|q| (0..panel_lines).map(move |l| 0x1000 + 4 * ((q * k + row0) * NR + 16 * l)))
        .collect();
    for calls in [2, 3, 7, 11, 64, 500] {
        let mut next = NextBlock::new(b, k, (q0, q1), (row0, rows), calls);
        let mut got = Vec::new();
        for _ in 0..calls {
            let slice = next.take();
            got.extend((0..slice.lines).map(|i| slice.line(i) as usize));
        }
        assert_eq!(got, want, "{calls} calls");
        assert_eq!(
            next.take().lines,
            0,
            "{calls} calls: nothing after the block"
        );
    }
    // Fewer calls than panels: what fits, in order, and never past the block.
    let mut next = NextBlock::new(b, k, (q0, q1), (row0, rows), 1);
    let slice = next.take();
    let got: Vec<usize> = (0..slice.lines).map(|i| slice.line(i) as usize).collect();
    assert_eq!(got, want[..panel_lines]);
    let mut empty = NextBlock::EMPTY;
    assert_eq!(empty.take().lines, 0);
}

/// MiniLM's products on 1 and 2 threads, the fastest of many runs (the least disturbed on a
/// busy machine), beside the microkernel alone on L1/L2-resident panels (the ceiling):
/// `cargo test --release -p kiln-runtime gemm_minilm_min -- --ignored --nocapture`.
#[test]
#[ignore]
fn gemm_minilm_min() {
    let kernel = Kernel::detect();
    // The microkernel alone: one 12 x 384 A panel against 8 B panels, over and over.
    let kc = 384;
    let a = data(kernel.mr * kc, 1);
    let b = data(8 * kc * NR, 2);
    let mut c = vec![0f32; kernel.mr * NR];
    let mut best = f64::INFINITY;
    for _ in 0..200 {
        let t = std::time::Instant::now();
        for _ in 0..20 {
            for p in 0..8 {
                // SAFETY: a packed A panel of kc rows, B panels of kc x NR, C one tile.
                unsafe {
                    (kernel.run)(
                        kc,
                        a.as_ptr(),
                        0,
                        b.as_ptr().add(p * kc * NR),
                        c.as_mut_ptr(),
                        NR as isize,
                        kernel.mr,
                        NR,
                        false,
                        Prefetch::NONE,
                    )
                };
            }
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    let flops = 2.0 * (20 * 8 * kernel.mr * NR * kc) as f64;
    println!(
        "{kernel:?} microkernel alone: {:.1} GFLOP/s",
        flops / best / 1e9
    );
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        for &(m, n, k) in &[
            (128, 384, 384),
            (128, 1152, 384),
            (128, 1536, 384),
            (128, 384, 1536),
        ] {
            let a = data(m * k, 1);
            let b = data(k * n, 2);
            let packed = PackedB::pack(&b, k, n, n);
            let mut c = vec![0f32; m * n];
            let mut best = f64::INFINITY;
            for _ in 0..300 {
                let t = std::time::Instant::now();
                pool.install(|| {
                    gemm(kernel, m, &a, k, packed.view(), &mut c, n, false).unwrap();
                });
                best = best.min(t.elapsed().as_secs_f64());
            }
            // Cold weights, as in a model: a different B each call, 64 of them (more than
            // the caches hold).
            let copies: Vec<PackedB> = (0..64)
                .map(|i| PackedB::pack(&data(k * n, 10 + i), k, n, n))
                .collect();
            let mut cold = f64::INFINITY;
            for r in 0..300 {
                let t = std::time::Instant::now();
                pool.install(|| {
                    gemm(kernel, m, &a, k, copies[r % 64].view(), &mut c, n, false).unwrap();
                });
                cold = cold.min(t.elapsed().as_secs_f64());
            }
            let flops = 2.0 * (m * n * k) as f64;
            println!(
                "{m:4} x {n:4} x {k:4}, {threads} thr: {:6.1} us, {:6.1} GFLOP/s; cold B {:6.1} us, {:6.1} GFLOP/s",
                best * 1e6,
                flops / best / 1e9,
                cold * 1e6,
                flops / cold / 1e9
            );
        }
    }
}

/// One-row products (decode) on 1 and 2 threads, with B cold in L2 (a rotation of copies
/// bigger than L2, as a model's weights are), the fastest of many runs, in GB/s of B read:
/// `cargo test --release -p kiln-runtime gemv_bandwidth_min -- --ignored --nocapture`.
#[test]
#[ignore]
fn gemv_bandwidth_min() {
    let kernel = Kernel::detect();
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        for &(n, k) in &[
            (4096, 512),
            (1024, 512),
            (512, 1024),
            (256, 512),
            (512, 256),
            (128, 512),
        ] {
            let a = data(k, 1);
            let copies = (48 << 20) / (4 * k * n);
            let bs: Vec<PackedB> = (0..copies)
                .map(|i| PackedB::pack(&data(k * n, 10 + i as u32), k, n, n))
                .collect();
            let mut c = vec![0f32; n];
            let mut best = f64::INFINITY;
            for r in 0..400 {
                let t = std::time::Instant::now();
                pool.install(|| {
                    gemm(kernel, 1, &a, k, bs[r % copies].view(), &mut c, n, false).unwrap();
                });
                best = best.min(t.elapsed().as_secs_f64());
            }
            // The ceiling: the same bytes summed, split the same way.
            let mut floor = f64::INFINITY;
            let mut sink = 0f32;
            for r in 0..400 {
                let d = bs[r % copies].view().data;
                let t = std::time::Instant::now();
                let s: f32 = pool.install(|| {
                    use rayon::prelude::*;
                    d.par_chunks(d.len().div_ceil(threads))
                        // SAFETY: avx512f is what Kernel::detect picked on this machine.
                        .map(|ch| unsafe { sum_avx512(ch) })
                        .sum()
                });
                sink += s;
                floor = floor.min(t.elapsed().as_secs_f64());
            }
            println!(
                "1 x {n:4} x {k:4}, {threads} thr: {:7.1} us, {:5.1} GB/s; summing B {:7.1} us, {:5.1} GB/s {}",
                best * 1e6,
                (4 * k * n) as f64 / best / 1e9,
                floor * 1e6,
                (4 * k * n) as f64 / floor / 1e9,
                if sink.is_nan() { "nan" } else { "" }
            );
        }
    }
}

/// Sums `v` with four vector accumulators (a bandwidth ceiling).
///
/// # Safety
/// The CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn sum_avx512(v: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm512_setzero_ps(); 4];
    for c in v.chunks_exact(64) {
        for (q, x) in acc.iter_mut().enumerate() {
            // SAFETY: 16 floats of the chunk.
            *x = _mm512_add_ps(*x, unsafe { _mm512_loadu_ps(c.as_ptr().add(16 * q)) });
        }
    }
    _mm512_reduce_add_ps(_mm512_add_ps(
        _mm512_add_ps(acc[0], acc[1]),
        _mm512_add_ps(acc[2], acc[3]),
    ))
}
