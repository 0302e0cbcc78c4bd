//! `C (+)= A·B` on the CPU, for `A` (`m×k`, any row and column strides) and `B` (`k×n`) read
//! in column panels of [`NR`] = 16: `C[i, 16p..16p + 16] = Σ_κ A[i, κ]·B[κ, 16p..16p + 16]`,
//! accumulated in a register tile of `R` rows × `V` panels with one broadcast of `A[i, κ]` and
//! `V` vector loads of `B` per step of `κ`.
//!
//! Why our own kernel: dfdx 0.13 multiplies through `gemm` 0.15, whose AVX-512 kernels are
//! compiled only on nightly Rust. The network's products are skinny (`m` = pixels × images in
//! the thousands, `k` = 9·c_in ≤ 576, `n` = c_out ≤ 64): only the small operand `B` (the
//! weights, or the output gradient) is packed, once per call, and `A` is read in place, with
//! the same runtime dispatch as `score/packed.rs` (AVX-512F, AVX2 + FMA, plain code), which
//! tests can force (see [`Kernel`]).

use num_traits::Float;
use rayon::prelude::*;

/// Columns per panel: one 512-bit vector of `f32` (two of `f64`).
pub(crate) const NR: usize = 16;

/// Steps of `κ` per pass over the tiles: for the weight gradient `Aᵀ·dC` the reduction runs
/// over all `m` rows of the batch, and blocking it keeps the `KC` rows of `A` and `dC` that
/// a pass reads in L2 while every output tile sweeps them.
const KC: usize = 256;

/// Multiply–adds below which a product is not split over threads (the threshold of
/// `score/packed.rs`).
const PAR_WORK: usize = 1 << 17;

/// Which micro-kernel runs a product: [`Kernel::host`] picks the widest the CPU supports;
/// tests force each one that is [`supported`](Kernel::supported) to check all paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// Plain Rust (multiply then add, no FMA: without the `fma` target feature `mul_add`
    /// would be a library call), for CPUs without AVX2.
    Scalar,
    /// AVX2 + FMA: 16 256-bit registers.
    Avx2,
    /// AVX-512F: 32 512-bit registers, one panel row per register in `f32`.
    Avx512,
}

impl Kernel {
    /// The widest kernel this CPU runs.
    pub(crate) fn host() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Kernel::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                return Kernel::Avx2;
            }
        }
        Kernel::Scalar
    }

    /// Whether this CPU runs this kernel.
    pub(crate) fn supported(self) -> bool {
        match self {
            Kernel::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }
}

/// The left operand: `A[i, κ] = data[i·rs + κ·cs]` for `i < rows`. `rs = k, cs = 1` is a
/// row-major matrix; `rs = 1, cs = ·` reads the transpose of one in place (the weight
/// gradient's `Aᵀ`, where a tile's `R` rows are then contiguous).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lhs<'a, E> {
    data: &'a [E],
    rows: usize,
    rs: usize,
    cs: usize,
}

impl<'a, E> Lhs<'a, E> {
    /// A row-major `rows × (data.len()/rows)` matrix.
    pub(crate) fn rows(data: &'a [E], rows: usize) -> Self {
        let k = data.len().checked_div(rows).unwrap_or(0);
        Self { data, rows, rs: k, cs: 1 }
    }
    /// The transpose of a row-major `k × cols` matrix: `cols` rows of `k` entries.
    pub(crate) fn transposed(data: &'a [E], cols: usize) -> Self {
        Self { data, rows: cols, rs: 1, cs: cols }
    }
}

/// The right operand `B` (`k×n`) as panels of [`NR`] columns: `B[κ, NR·p + j] = data[p·ps +
/// κ·rs + j]`, zero beyond column `n` in a packed copy ([`Packed`]); a row-major matrix whose
/// `n` is a multiple of `NR` is read in place (`ps = NR`, `rs = n`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rhs<'a, E> {
    data: &'a [E],
    k: usize,
    n: usize,
    ps: usize,
    rs: usize,
}

impl<'a, E> Rhs<'a, E> {
    /// Its number of columns `n`.
    pub(crate) fn cols(&self) -> usize {
        self.n
    }
    /// A row-major `k × n` matrix with `n % NR == 0`, read in place.
    pub(crate) fn in_place(data: &'a [E], n: usize) -> Self {
        assert!(
            n > 0 && n.is_multiple_of(NR) && data.len().is_multiple_of(n),
            "Rhs::in_place: n must be a multiple of NR"
        );
        Self { data, k: data.len() / n, n, ps: NR, rs: n }
    }
}

/// `B` copied into `⌈n/NR⌉` panels of `k × NR`, zero-padded to whole panels.
#[derive(Debug, Clone)]
pub(crate) struct Packed<E> {
    data: Vec<E>,
    k: usize,
    n: usize,
}

impl<E: Float> Packed<E> {
    /// Packs `B = b` for a row-major `b` of `k × n`, or `B = bᵀ` for a row-major `b` of
    /// `n × k` (`transpose`).
    pub(crate) fn new(b: &[E], k: usize, n: usize, transpose: bool) -> Self {
        assert_eq!(b.len(), k * n, "Packed::new: shape");
        let np = n.div_ceil(NR);
        let mut data = vec![E::zero(); np * k * NR];
        for (p, panel) in data.chunks_exact_mut(k * NR).enumerate() {
            let (j0, w) = (p * NR, NR.min(n - p * NR));
            if transpose {
                for j in 0..w {
                    for (kk, v) in b[(j0 + j) * k..(j0 + j + 1) * k].iter().enumerate() {
                        panel[kk * NR + j] = *v;
                    }
                }
            } else {
                for (kk, row) in panel.chunks_exact_mut(NR).enumerate() {
                    row[..w].copy_from_slice(&b[kk * n + j0..kk * n + j0 + w]);
                }
            }
        }
        Self { data, k, n }
    }

    /// The packed matrix as the right operand of [`gemm`].
    pub(crate) fn rhs(&self) -> Rhs<'_, E> {
        Rhs { data: &self.data, k: self.k, n: self.n, ps: self.k * NR, rs: NR }
    }
}

/// Element types with a kernel per [`Kernel`] (sealed: `f32` and `f64`).
pub trait GemmElem: Float + Send + Sync + 'static {
    /// Runs one product on the calling thread (`args` checked by [`gemm_with`]).
    #[doc(hidden)]
    fn run(kernel: Kernel, args: Args<Self>);
}

/// Raw operands of one product (the pointers' extents checked by [`gemm_with`]).
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct Args<E> {
    a: *const E,
    ars: usize,
    acs: usize,
    m: usize,
    k: usize,
    n: usize,
    b: *const E,
    bps: usize,
    brs: usize,
    c: *mut E,
    ldc: usize,
    accumulate: bool,
}

/// `C = A·B` (or `C += A·B` with `accumulate`) for `C` row-major with row stride `ldc`,
/// with [`Kernel::host`], split over blocks of rows where the current rayon pool has
/// several threads and the product is large (the network's chunks run in one-thread pools,
/// so there it stays on the chunk's thread).
pub(crate) fn gemm<E: GemmElem>(a: Lhs<'_, E>, b: Rhs<'_, E>, c: &mut [E], ldc: usize, accumulate: bool) {
    let threads = rayon::current_num_threads();
    let (m, k, n) = (a.rows, b.k, b.n);
    if threads > 1 && m * k * n >= PAR_WORK && m >= 2 * 16 {
        // Blocks of rows, a multiple of every kernel's row tile (12, 8, 6, 4, 3).
        let blk = (m.div_ceil(2 * threads)).div_ceil(24) * 24;
        let kernel = Kernel::host();
        // Only the rows of C (a caller may pass a longer slice).
        let c = &mut c[..(m - 1) * ldc + n];
        c.par_chunks_mut(blk * ldc).enumerate().for_each(|(j, cb)| {
            let r0 = j * blk;
            let rows = blk.min(m - r0);
            let sub = Lhs { data: &a.data[r0 * a.rs..], rows, ..a };
            gemm_with(kernel, sub, b, cb, ldc, accumulate);
        });
    } else {
        gemm_with(Kernel::host(), a, b, c, ldc, accumulate);
    }
}

/// [`gemm`] with a given kernel, on the calling thread.
pub(crate) fn gemm_with<E: GemmElem>(
    kernel: Kernel,
    a: Lhs<'_, E>,
    b: Rhs<'_, E>,
    c: &mut [E],
    ldc: usize,
    accumulate: bool,
) {
    let (m, k, n) = (a.rows, b.k, b.n);
    if m == 0 || n == 0 {
        return;
    }
    assert!(ldc >= n && c.len() >= (m - 1) * ldc + n, "gemm: C too small");
    if k == 0 {
        if !accumulate {
            c.chunks_mut(ldc).take(m).for_each(|r| r[..n].fill(E::zero()));
        }
        return;
    }
    assert!((m - 1) * a.rs + (k - 1) * a.cs < a.data.len(), "gemm: A too small");
    let np = n.div_ceil(NR);
    assert!((np - 1) * b.ps + (k - 1) * b.rs + NR <= b.data.len(), "gemm: B too small");
    assert!(kernel.supported(), "gemm: {kernel:?} is not supported by this CPU");
    let args = Args {
        a: a.data.as_ptr(),
        ars: a.rs,
        acs: a.cs,
        m,
        k,
        n,
        b: b.data.as_ptr(),
        bps: b.ps,
        brs: b.rs,
        c: c.as_mut_ptr(),
        ldc,
        accumulate,
    };
    E::run(kernel, args)
}

/// The kernels of one element type: `$avx512` and `$avx2` are `(R, V, R2)` — row tile,
/// panels per tile, and the smaller row tile for the remainder rows — chosen so that the
/// `R·V` accumulators (times the vectors per panel row) fit the register file.
macro_rules! impl_gemm_elem {
    ($t:ty, avx512: ($r5:literal, $v5:literal, $q5:literal), avx2: ($r2:literal, $v2:literal, $q2:literal)) => {
        impl GemmElem for $t {
            fn run(kernel: Kernel, args: Args<Self>) {
                #[cfg(target_arch = "x86_64")]
                {
                    #[target_feature(enable = "avx512f,fma")]
                    unsafe fn avx512(args: Args<$t>) {
                        driver::<$t, $r5, $v5, $q5, true>(args)
                    }
                    #[target_feature(enable = "avx2,fma")]
                    unsafe fn avx2(args: Args<$t>) {
                        driver::<$t, $r2, $v2, $q2, true>(args)
                    }
                    match kernel {
                        // SAFETY: `gemm_with` checked that the CPU supports the kernel, and the
                        // extents.
                        Kernel::Avx512 => return unsafe { avx512(args) },
                        Kernel::Avx2 => return unsafe { avx2(args) },
                        Kernel::Scalar => {}
                    }
                }
                // SAFETY: the extents were checked by `gemm_with`.
                unsafe { driver::<$t, 4, 1, 1, false>(args) }
            }
        }
    };
}

// f32: 12 rows × 2 panels = 24 of the 32 zmm registers (the rest hold B and the broadcast);
// with AVX2 a panel row is two ymm registers, so 6 rows × 1 panel = 12 of 16.
impl_gemm_elem!(f32, avx512: (12, 2, 4), avx2: (6, 1, 3));
// f64: a panel row is two zmm (four ymm) registers: 8 × 1 = 16 zmm, 3 × 1 = 12 ymm.
impl_gemm_elem!(f64, avx512: (8, 1, 4), avx2: (3, 1, 1));

/// Blocks of [`KC`] steps of `κ`; in each, tiles of `R` rows (then `R2`, then single rows)
/// × `V` panels (then single panels). The first block overwrites `C` unless accumulating.
#[inline(always)]
unsafe fn driver<E: Float, const R: usize, const V: usize, const R2: usize, const FMA: bool>(x: Args<E>) {
    let np = x.n.div_ceil(NR);
    let mut k0 = 0;
    while k0 < x.k {
        let kc = KC.min(x.k - k0);
        let load = x.accumulate || k0 > 0;
        // SAFETY (all offsets below): rows < m, κ < k and panels < np, within the extents
        // that `gemm_with` checked.
        let a = x.a.add(k0 * x.acs);
        let b = x.b.add(k0 * x.brs);
        let mut i = 0;
        while i < x.m {
            let left = x.m - i;
            let rows = if left >= R {
                R
            } else if left >= R2 {
                R2
            } else {
                1
            };
            let ai = a.add(i * x.ars);
            let ci = x.c.add(i * x.ldc);
            let mut p = 0;
            while p < np {
                let cols = (x.n - p * NR).min(V * NR);
                let (bp, cp) = (b.add(p * x.bps), ci.add(p * NR));
                let wide = np - p >= V;
                match (rows == R, rows == R2, wide) {
                    (true, _, true) => {
                        tile::<E, R, V, FMA>(ai, x.ars, x.acs, kc, bp, x.bps, x.brs, cp, x.ldc, cols, load)
                    }
                    (true, _, false) => {
                        tile::<E, R, 1, FMA>(ai, x.ars, x.acs, kc, bp, x.bps, x.brs, cp, x.ldc, cols, load)
                    }
                    (false, true, true) => {
                        tile::<E, R2, V, FMA>(ai, x.ars, x.acs, kc, bp, x.bps, x.brs, cp, x.ldc, cols, load)
                    }
                    (false, true, false) => {
                        tile::<E, R2, 1, FMA>(ai, x.ars, x.acs, kc, bp, x.bps, x.brs, cp, x.ldc, cols, load)
                    }
                    (false, false, true) => {
                        tile::<E, 1, V, FMA>(ai, x.ars, x.acs, kc, bp, x.bps, x.brs, cp, x.ldc, cols, load)
                    }
                    (false, false, false) => {
                        tile::<E, 1, 1, FMA>(ai, x.ars, x.acs, kc, bp, x.bps, x.brs, cp, x.ldc, cols, load)
                    }
                }
                p += if wide { V } else { 1 };
            }
            i += rows;
        }
        k0 += kc;
    }
}

/// The register tile: `R × V·NR` accumulators in fixed-size arrays, so that the compiler
/// keeps them in vector registers under each caller's target features; `cols ≤ V·NR` of
/// them are stored (added to `C` with `load`).
#[inline(always)]
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)] // index loops over the fixed-size tile
unsafe fn tile<E: Float, const R: usize, const V: usize, const FMA: bool>(
    a: *const E,
    ars: usize,
    acs: usize,
    kc: usize,
    b: *const E,
    bps: usize,
    brs: usize,
    c: *mut E,
    ldc: usize,
    cols: usize,
    load: bool,
) {
    let mut acc = [[[E::zero(); NR]; V]; R];
    for kk in 0..kc {
        let bk = b.add(kk * brs);
        let bv: [[E; NR]; V] = std::array::from_fn(|v| *(bk.add(v * bps) as *const [E; NR]));
        for r in 0..R {
            let x = *a.add(r * ars + kk * acs);
            for v in 0..V {
                for j in 0..NR {
                    acc[r][v][j] = if FMA { x.mul_add(bv[v][j], acc[r][v][j]) } else { x * bv[v][j] + acc[r][v][j] };
                }
            }
        }
    }
    // Stores with constant bounds only: a slice of `acc` of run-time length (a partial last
    // panel) made the compiler keep `acc` in memory and store every accumulator on every
    // step of `κ`; the partial panel goes through a copy instead.
    if cols == V * NR {
        for (r, row) in acc.iter().enumerate() {
            for (v, vals) in row.iter().enumerate() {
                // Whole arrays in and out, so that the sum is one vector operation.
                let dst = c.add(r * ldc + v * NR) as *mut [E; NR];
                let mut out = *vals;
                if load {
                    let old = dst.read_unaligned();
                    for j in 0..NR {
                        out[j] = out[j] + old[j];
                    }
                }
                dst.write_unaligned(out);
            }
        }
    } else {
        store_partial(acc, c, ldc, cols, load);
    }
}

/// Stores the first `cols < V·NR` columns of a tile (out of line and by value, so that only
/// this copy of the accumulators lives in memory: see [`tile`]).
#[inline(never)]
unsafe fn store_partial<E: Float, const R: usize, const V: usize>(
    acc: [[[E; NR]; V]; R],
    c: *mut E,
    ldc: usize,
    cols: usize,
    load: bool,
) {
    for (r, row) in acc.iter().enumerate() {
        let cr = c.add(r * ldc);
        for (v, vals) in row.iter().enumerate() {
            let w = cols.saturating_sub(v * NR).min(NR);
            if w == 0 {
                break;
            }
            let dst = std::slice::from_raw_parts_mut(cr.add(v * NR), w);
            if load {
                dst.iter_mut().zip(vals).for_each(|(d, s)| *d = *d + *s);
            } else {
                dst.copy_from_slice(&vals[..w]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KERNELS: [Kernel; 3] = [Kernel::Scalar, Kernel::Avx2, Kernel::Avx512];

    fn fill<E: Float>(n: usize, seed: usize) -> Vec<E> {
        (0..n).map(|i| E::from(((i * 37 + seed * 11) % 101) as f64 / 25.0 - 2.0).unwrap()).collect()
    }

    /// `C = A·B` by a triple loop in f64 (`a` row-major `m×k`, `b` row-major `k×n`).
    fn naive<E: Float>(a: &[E], b: &[E], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for kk in 0..k {
                let x = a[i * k + kk].to_f64().unwrap();
                for j in 0..n {
                    c[i * n + j] += x * b[kk * n + j].to_f64().unwrap();
                }
            }
        }
        c
    }

    fn transpose<E: Copy>(v: &[E], r: usize, c: usize) -> Vec<E> {
        (0..r * c).map(|i| v[(i % r) * c + i / r]).collect()
    }

    fn check<E: Float>(got: &[E], want: &[f64], ldc: usize, n: usize, tol: f64, what: &str) {
        for (i, wr) in want.chunks(n).enumerate() {
            for (j, w) in wr.iter().enumerate() {
                let g = got[i * ldc + j].to_f64().unwrap();
                assert!((g - w).abs() <= tol * (1.0 + w.abs()), "{what} [{i},{j}]: {g} vs {w}");
            }
        }
    }

    /// Shapes with every remainder: rows not a multiple of any row tile, `n < NR`, `n` not a
    /// multiple of `NR` (a partial last panel), `k = 1`, `k` beyond one `KC` block.
    const SHAPES: [(usize, usize, usize); 10] = [
        (1, 1, 1),
        (5, 1, 7),
        (13, 3, 16),
        (29, 17, 33),
        (37, 144, 32),
        (50, 9, 64),
        (11, 300, 5),
        (25, 40, 48),
        (64, 513, 20),
        (7, 2, 100),
    ];

    fn all_paths<E: GemmElem>(tol: f64) {
        for kernel in KERNELS.into_iter().filter(|k| k.supported()) {
            for &(m, k, n) in &SHAPES {
                let what = format!("{kernel:?} ({m},{k},{n})");
                let a: Vec<E> = fill(m * k, 1);
                let b: Vec<E> = fill(k * n, 2);
                let want = naive(&a, &b, m, k, n);
                // A·B with B packed, C overwritten (NaN first, so unwritten entries show) and
                // with a row stride beyond n.
                let ldc = n + 3;
                let mut c = vec![E::nan(); m * ldc];
                gemm_with(kernel, Lhs::rows(&a, m), Packed::new(&b, k, n, false).rhs(), &mut c, ldc, false);
                check(&c, &want, ldc, n, tol, &format!("{what} packed"));
                // Accumulating onto ones.
                let mut c1 = vec![E::one(); m * n];
                gemm_with(kernel, Lhs::rows(&a, m), Packed::new(&b, k, n, false).rhs(), &mut c1, n, true);
                let want1: Vec<f64> = want.iter().map(|v| v + 1.0).collect();
                check(&c1, &want1, n, n, tol, &format!("{what} accumulate"));
                // B packed from its transpose.
                let bt = transpose(&b, k, n);
                let mut c2 = vec![E::nan(); m * n];
                gemm_with(kernel, Lhs::rows(&a, m), Packed::new(&bt, k, n, true).rhs(), &mut c2, n, false);
                check(&c2, &want, n, n, tol, &format!("{what} transposed B"));
                // A read as the transpose of a row-major k' × m matrix, B in place.
                let at = transpose(&a, m, k);
                if n.is_multiple_of(NR) {
                    let mut c3 = vec![E::nan(); m * n];
                    gemm_with(kernel, Lhs::transposed(&at, m), Rhs::in_place(&b, n), &mut c3, n, false);
                    check(&c3, &want, n, n, tol, &format!("{what} transposed A, B in place"));
                }
            }
        }
    }

    #[test]
    fn every_kernel_matches_a_naive_loop_f64() {
        all_paths::<f64>(1e-12);
    }

    #[test]
    fn every_kernel_matches_a_naive_loop_f32() {
        all_paths::<f32>(2e-5);
    }

    /// The parallel split (in a two-thread pool) gives the sequential result.
    #[test]
    fn row_blocks_over_threads_match() {
        let (m, k, n) = (301, 72, 40);
        let a: Vec<f32> = fill(m * k, 3);
        let b: Vec<f32> = fill(k * n, 4);
        let pb = Packed::new(&b, k, n, false);
        let mut seq = vec![0.0f32; m * n];
        gemm_with(Kernel::host(), Lhs::rows(&a, m), pb.rhs(), &mut seq, n, false);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let mut par = vec![f32::NAN; m * n];
        pool.install(|| gemm(Lhs::rows(&a, m), pb.rhs(), &mut par, n, false));
        assert_eq!(seq, par);
    }
}
