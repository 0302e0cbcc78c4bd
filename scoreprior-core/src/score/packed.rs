//! Products `C = A·B` of a small batch `A` (`n×K`, row-major, `n` images) with a constant
//! matrix `B` (`K×M`) packed once into column panels.
//!
//! `C[j, p·NR..(p+1)·NR] = Σ_k A[j,k] · B[k, p·NR..(p+1)·NR]`: each panel of `B` is stored
//! `K×NR` contiguously, and a register tile of `MR` rows × `NR` columns accumulates over `k`
//! with one broadcast of `A[j,k]` and `NR/8` vector FMAs per row.
//!
//! Why not a general GEMM crate: for the Gaussian score (`n = 16` images, `K = M = 256`),
//! `matrixmultiply` and `gemm` re-pack the constant `256×256` operand on every call, which
//! costs as much as the arithmetic (measured 38–45 µs per product, 46–55 GFLOP/s on one
//! core of this machine). Packing once removes that (the two products of one Gaussian score
//! then run at about 110 GFLOP/s on one core).

/// Columns per panel: two 512-bit vectors of `f64`.
pub(crate) const NR: usize = 16;
/// Rows per register tile (`MR·NR/8 = 16` accumulator registers with AVX-512).
const MR: usize = 8;

/// A `K×M` matrix packed into `⌈M/NR⌉` column panels of `K×NR` (zero-padded).
#[derive(Debug, Clone)]
pub(crate) struct PackedMatrix {
    k: usize,
    m: usize,
    panels: Vec<f64>,
}

impl PackedMatrix {
    /// Packs `b(k, m)` given as a function of `(row, column)`.
    pub(crate) fn new(k: usize, m: usize, b: impl Fn(usize, usize) -> f64) -> Self {
        let np = m.div_ceil(NR);
        let mut panels = vec![0.0; np * k * NR];
        for (p, panel) in panels.chunks_mut(k * NR).enumerate() {
            for kk in 0..k {
                for c in 0..NR {
                    let col = p * NR + c;
                    if col < m {
                        panel[kk * NR + c] = b(kk, col);
                    }
                }
            }
        }
        Self { k, m, panels }
    }

    /// Number of column panels (`⌈M/NR⌉`).
    pub(crate) fn panel_count(&self) -> usize {
        self.m.div_ceil(NR)
    }

    /// Columns `first..first + width` of `C = A·B` with `first = p0·NR` for the panels
    /// `p0..p1`, written row-major into `c` (`n × width`, `width = min(p1·NR, M) − p0·NR`):
    /// one block of a product split over threads by columns, so that each thread streams
    /// only its part of the (large) constant matrix.
    pub(crate) fn mul_rows_panels(&self, a: &[f64], p0: usize, p1: usize, c: &mut [f64]) {
        let (k, m) = (self.k, self.m);
        let n = a.len() / k;
        let first = p0 * NR;
        let width = (p1 * NR).min(m) - first;
        debug_assert_eq!(c.len(), n * width);
        let mut tile = [0.0; MR * NR];
        for p in p0..p1 {
            let panel = &self.panels[p * k * NR..(p + 1) * k * NR];
            let col0 = p * NR - first;
            let w = NR.min(m - p * NR);
            panel_rows(a, k, panel, w, &mut tile, |j, vals| {
                let o = j * width + col0;
                c[o..o + w].copy_from_slice(vals);
            });
        }
    }

    /// `C = A·B` for a row-major `A` of `n = a.len()/K` rows, written row-major into `c`
    /// (`n×M`), on the calling thread: callers parallelise over blocks of rows (see
    /// [`ROW_BLOCK`]), which needs one fork–join for a chain of products instead of one each.
    pub(crate) fn mul_rows(&self, a: &[f64], c: &mut [f64]) {
        self.mul_rows_then(a, c, |_, _| {})
    }

    /// As [`PackedMatrix::mul_rows`], with `epilogue(col0, values)` applied to each block of
    /// `values = C[j, col0..col0 + values.len()]` while it is still in cache (a fused
    /// column-wise shift and scaling costs no extra pass over `C`).
    #[inline]
    pub(crate) fn mul_rows_then(&self, a: &[f64], c: &mut [f64], epilogue: impl Fn(usize, &mut [f64])) {
        let (k, m) = (self.k, self.m);
        debug_assert_eq!(a.len() % k, 0);
        let n = a.len() / k;
        debug_assert_eq!(c.len(), n * m);
        let mut tile = [0.0; MR * NR];
        for (p, panel) in self.panels.chunks(k * NR).enumerate() {
            let col0 = p * NR;
            let w = NR.min(m - col0);
            panel_rows(a, k, panel, w, &mut tile, |j, vals| {
                let o = j * m + col0;
                let dst = &mut c[o..o + w];
                dst.copy_from_slice(vals);
                epilogue(col0, dst);
            });
        }
    }
}

/// The rows of `A·B_p` for one column panel `B_p` of `w ≤ NR` valid columns, `MR` rows of `A`
/// (`K` columns) at a time through the register tile: `row(j, values)` receives row `j`'s `w`
/// values while they are in cache. One loop for the products that write their rows to
/// different places.
#[inline(always)]
fn panel_rows(
    a: &[f64],
    k: usize,
    panel: &[f64],
    w: usize,
    tile: &mut [f64; MR * NR],
    mut row: impl FnMut(usize, &[f64]),
) {
    let n = a.len() / k;
    let mut j0 = 0;
    while j0 < n {
        let rows = MR.min(n - j0);
        mul_tile(&a[j0 * k..(j0 + rows) * k], rows, k, panel, &mut tile[..rows * NR]);
        for (r, vals) in tile[..rows * NR].chunks(NR).enumerate() {
            row(j0 + r, &vals[..w]);
        }
        j0 += rows;
    }
}

/// Rows per register tile: callers that split a batch over threads should cut it into
/// multiples of this.
pub(crate) const ROW_BLOCK: usize = MR;

/// Products of at least this many multiply–adds are worth a fork–join over threads.
pub(crate) const PAR_WORK: usize = 1 << 17;

/// `out[r][..] = Σ_k a[r,k] panel[k][..]` for the `rows ≤ MR` rows of `a`.
fn mul_tile(a: &[f64], rows: usize, k: usize, panel: &[f64], out: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above).
            unsafe { mul_tile_avx512(a, rows, k, panel, out) };
            return;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            unsafe { mul_tile_avx2(a, rows, k, panel, out) };
            return;
        }
    }
    mul_tile_generic::<4>(a, rows, k, panel, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn mul_tile_avx512(a: &[f64], rows: usize, k: usize, panel: &[f64], out: &mut [f64]) {
    mul_tile_generic::<MR>(a, rows, k, panel, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn mul_tile_avx2(a: &[f64], rows: usize, k: usize, panel: &[f64], out: &mut [f64]) {
    // 16 ymm registers: 4 rows × 4 vectors of accumulators.
    mul_tile_generic::<4>(a, rows, k, panel, out)
}

/// Full register tiles of `R` rows, then the remaining rows one at a time.
#[inline(always)]
fn mul_tile_generic<const R: usize>(a: &[f64], rows: usize, k: usize, panel: &[f64], out: &mut [f64]) {
    let mut j0 = 0;
    while j0 + R <= rows {
        tile::<R>(a, j0, k, panel, out);
        j0 += R;
    }
    while j0 < rows {
        tile::<1>(a, j0, k, panel, out);
        j0 += 1;
    }
}

/// The register tile, written with fixed-size arrays so that the compiler keeps the
/// accumulators in vector registers under each caller's target features.
#[inline(always)]
fn tile<const R: usize>(a: &[f64], j0: usize, k: usize, panel: &[f64], out: &mut [f64]) {
    let mut acc = [[0.0f64; NR]; R];
    let rows: [&[f64]; R] = std::array::from_fn(|r| &a[(j0 + r) * k..(j0 + r + 1) * k]);
    for (kk, b) in panel.chunks_exact(NR).enumerate().take(k) {
        let b: &[f64; NR] = b.try_into().expect("panel rows have NR entries");
        for r in 0..R {
            let x = rows[r][kk];
            for c in 0..NR {
                acc[r][c] = x.mul_add(b[c], acc[r][c]);
            }
        }
    }
    for r in 0..R {
        out[(j0 + r) * NR..(j0 + r + 1) * NR].copy_from_slice(&acc[r]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Column blocks of panels assemble the full product.
    #[test]
    fn panel_blocks_match_the_full_product() {
        let (n, k, m) = (5, 23, 70);
        let a: Vec<f64> = (0..n * k).map(|i| ((i * 13 % 29) as f64 - 14.0) / 7.0).collect();
        let pm = PackedMatrix::new(k, m, |r, c| ((r * 5 + c * 3) % 11) as f64 - 5.0);
        let mut full = vec![0.0; n * m];
        pm.mul_rows(&a, &mut full);
        let np = pm.panel_count();
        assert_eq!(np, 5);
        for (p0, p1) in [(0, 2), (2, 3), (3, 5)] {
            let width = (p1 * NR).min(m) - p0 * NR;
            let mut c = vec![f64::NAN; n * width];
            pm.mul_rows_panels(&a, p0, p1, &mut c);
            for j in 0..n {
                assert_eq!(&c[j * width..(j + 1) * width], &full[j * m + p0 * NR..j * m + p0 * NR + width]);
            }
        }
    }

    /// Against a naive triple loop for shapes that exercise partial panels and remainder rows.
    #[test]
    fn matches_naive_product() {
        for &(n, k, m) in &[(1, 3, 5), (7, 17, 33), (16, 256, 256), (9, 40, 16), (20, 64, 70)] {
            let a: Vec<f64> = (0..n * k).map(|i| ((i * 37 % 101) as f64 - 50.0) / 17.0).collect();
            let b = |r: usize, c: usize| (((r * 31 + c * 7) % 53) as f64 - 26.0) / 13.0;
            let pm = PackedMatrix::new(k, m, b);
            let mut c = vec![f64::NAN; n * m];
            pm.mul_rows(&a, &mut c);
            for j in 0..n {
                for col in 0..m {
                    let want: f64 = (0..k).map(|kk| a[j * k + kk] * b(kk, col)).sum();
                    let got = c[j * m + col];
                    assert!(
                        (got - want).abs() <= 1e-12 * (1.0 + want.abs()),
                        "({n},{k},{m}) [{j},{col}]: {got} vs {want}"
                    );
                }
            }
        }
    }
}
