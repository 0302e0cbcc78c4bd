//! Minimal independent closure sets per scan. With `N` stations up, closure phases live in
//! the `(N−1)(N−2)/2`-dimensional space of baseline-phase combinations that cancel station
//! phases, and log closure amplitudes in the `N(N−3)/2`-dimensional space that cancels
//! station log-gains. We enumerate candidate triangles `(a<b<c)`, `ψ = φ_ab + φ_bc − φ_ac`,
//! and the three quadrangle ratios of each `(a<b<c<d)`, and keep a candidate when its
//! baseline-space vector is linearly independent of those kept (Gram–Schmidt), until the
//! dimension is reached. In lexicographic order this picks the triangles through the first
//! station, eht-imaging's `count='min'` choice; any independent set carries the same
//! information.

use super::UvCoverage;

/// Closure triangles and quadrangles as indices into a coverage's visibilities.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClosureSets {
    /// `[(visibility, ±1); 3]`: `ψ = Σ ±arg V`.
    pub triangles: Vec<[(usize, f64); 3]>,
    /// `[num₁, num₂, den₁, den₂]`: `ln|V_num₁| + ln|V_num₂| − ln|V_den₁| − ln|V_den₂|`.
    pub quadrangles: Vec<[usize; 4]>,
    /// `(time, stations up, closure phases, log closure amplitudes)` per scan.
    pub per_scan: Vec<(f64, usize, usize, usize)>,
}

/// Greedy independent selection by Gram–Schmidt.
struct Basis {
    vecs: Vec<Vec<f64>>,
}
impl Basis {
    fn try_add(&mut self, mut v: Vec<f64>) -> bool {
        for b in &self.vecs {
            let d: f64 = v.iter().zip(b).map(|(x, y)| x * y).sum();
            v.iter_mut().zip(b).for_each(|(x, y)| *x -= d * y);
        }
        let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if n < 1e-8 {
            return false;
        }
        v.iter_mut().for_each(|x| *x /= n);
        self.vecs.push(v);
        true
    }
}

/// The minimal independent closure sets of every scan of `cov`.
pub fn closure_sets(cov: &UvCoverage) -> ClosureSets {
    closure_sets_with(cov, 0.0)
}

/// [`closure_sets`] with closure phases formed only from baselines at least `phase_uv_min`
/// wavelengths long (eht-imaging's `cp_uv_min`, which keeps intra-site baselines out of
/// closure phases). Unlike eht-imaging's `count='min'`, which keeps only the triangles through
/// the reference station and so loses those whose edge to it was cut, the independent set
/// here spans every closure phase the remaining baselines have (ehtim's `min-cut0bl` count).
///
/// ```
/// use scoreprior_core::forward::interferometry::{closure_sets, closure_sets_with, UvCoverage, UvPoint};
/// let p = |i, j, u: f64| UvPoint { time_hour: 1.0, i, j, u, v: 0.0, sigma: 0.1 };
/// // four stations, all six baselines, 0–1 an intra-site one
/// let cov = UvCoverage { stations: vec!["A".into(), "B".into(), "C".into(), "D".into()],
///     points: vec![p(0, 1, 1e3), p(0, 2, 1e9), p(0, 3, 2e9), p(1, 2, 1e9), p(1, 3, 2e9), p(2, 3, 3e9)] };
/// assert_eq!(closure_sets(&cov).triangles.len(), 3);
/// assert_eq!(closure_sets_with(&cov, 1e8).triangles.len(), 2); // 5 baselines − 4 stations + 1
/// assert_eq!(closure_sets_with(&cov, 1e8).quadrangles.len(), 2); // amplitudes keep every baseline
/// ```
pub fn closure_sets_with(cov: &UvCoverage, phase_uv_min: f64) -> ClosureSets {
    let mut out = ClosureSets::default();
    let pts = &cov.points;
    let mut start = 0;
    while start < pts.len() {
        let t = pts[start].time_hour;
        let end = start + pts[start..].iter().take_while(|p| p.time_hour == t).count();
        // Local baseline numbering and lookup.
        let mut st: Vec<usize> = pts[start..end].iter().flat_map(|p| [p.i, p.j]).collect();
        st.sort_unstable();
        st.dedup();
        let n = st.len();
        let nb = end - start;
        let find = |a: usize, b: usize| -> Option<usize> {
            let (a, b) = (a.min(b), a.max(b));
            (start..end).find(|&k| pts[k].i == a && pts[k].j == b)
        };
        let unit = |ks: &[(usize, f64)]| {
            let mut v = vec![0.0; nb];
            ks.iter().for_each(|&(k, s)| v[k - start] += s);
            v
        };
        let (mut n_cp, mut n_lca) = (0, 0);
        if n >= 3 {
            let target = (n - 1) * (n - 2) / 2;
            let mut basis = Basis { vecs: vec![] };
            'tri: for a in 0..n {
                for b in a + 1..n {
                    for c in b + 1..n {
                        let (sa, sb, sc) = (st[a], st[b], st[c]);
                        let long = |k: Option<usize>| k.filter(|&k| pts[k].u.hypot(pts[k].v) >= phase_uv_min);
                        let (Some(ab), Some(bc), Some(ac)) =
                            (long(find(sa, sb)), long(find(sb, sc)), long(find(sa, sc)))
                        else {
                            continue;
                        };
                        let tri = [(ab, 1.0), (bc, 1.0), (ac, -1.0)];
                        if basis.try_add(unit(&tri)) {
                            out.triangles.push(tri);
                            n_cp += 1;
                            if n_cp == target {
                                break 'tri;
                            }
                        }
                    }
                }
            }
        }
        if n >= 4 {
            let target = n * (n - 3) / 2;
            let mut basis = Basis { vecs: vec![] };
            'quad: for a in 0..n {
                for b in a + 1..n {
                    for c in b + 1..n {
                        for d in c + 1..n {
                            let s = [st[a], st[b], st[c], st[d]];
                            let pair = |x: usize, y: usize| find(s[x], s[y]);
                            // (ab·cd)/(ac·bd), (ab·cd)/(ad·bc), (ac·bd)/(ad·bc)
                            for (p, q, r, w) in [
                                ((0, 1), (2, 3), (0, 2), (1, 3)),
                                ((0, 1), (2, 3), (0, 3), (1, 2)),
                                ((0, 2), (1, 3), (0, 3), (1, 2)),
                            ] {
                                let (Some(k1), Some(k2), Some(k3), Some(k4)) =
                                    (pair(p.0, p.1), pair(q.0, q.1), pair(r.0, r.1), pair(w.0, w.1))
                                else {
                                    continue;
                                };
                                if basis.try_add(unit(&[(k1, 1.0), (k2, 1.0), (k3, -1.0), (k4, -1.0)])) {
                                    out.quadrangles.push([k1, k2, k3, k4]);
                                    n_lca += 1;
                                    if n_lca == target {
                                        break 'quad;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        out.per_scan.push((t, n, n_cp, n_lca));
        start = end;
    }
    out
}
