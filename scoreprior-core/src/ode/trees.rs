//! Rooted trees and the Runge–Kutta order conditions. A method `(A, b)` has order `p`
//! iff `bᵀΦ(t) = 1/γ(t)` for every rooted tree `t` with `|t| ≤ p`, where the elementary
//! weight is `Φ(•) = 𝟙`, `Φ([t₁,…,t_m]) = ⊙_k AΦ(t_k)` and the density is
//! `γ(t) = |t|·Π_k γ(t_k)` (Butcher; Hairer–Nørsett–Wanner I, §II.2).
//!
//! This file is written once and used twice: `scoreprior-core` compiles it as
//! `ode::trees` (run-time re-checks of the emitted `f64` tableaux, in `f64`), and
//! `scoreprior-macros` includes the very same file with `#[path]` and instantiates it
//! with exact `BigRational`s at compile time. Sharing the source rather than a crate
//! avoids a dependency cycle (the proc-macro crate cannot depend on the crate it
//! generates code for) and avoids two copies of the tree code drifting apart. The file
//! therefore must stay self-contained: no `crate::` paths, `std` only.

use std::fmt;

/// Arithmetic needed to evaluate order conditions: a commutative ring with the
/// rationals `1/γ` embedded. Implemented for `f64` here and for exact rationals in the
/// macro crate.
pub trait Weight: Clone {
    /// Additive identity.
    fn zero() -> Self;
    /// `num / den`.
    fn ratio(num: u64, den: u64) -> Self;
    /// `self + other`.
    fn add(&self, other: &Self) -> Self;
    /// `self − other`.
    fn sub(&self, other: &Self) -> Self;
    /// `self · other`.
    fn mul(&self, other: &Self) -> Self;
    /// Whether the value is exactly zero (used to skip structural zeros of `A`).
    fn is_zero(&self) -> bool;
}

/// `add`, `sub` and `mul` of a [`Weight`] by the type's own operators on references
/// (`&a + &b`, …), written inside its `impl Weight`: the same three methods serve `f64` here
/// and exact rationals in the macro crate.
macro_rules! weight_arithmetic {
    () => {
        fn add(&self, other: &Self) -> Self {
            self + other
        }
        fn sub(&self, other: &Self) -> Self {
            self - other
        }
        fn mul(&self, other: &Self) -> Self {
            self * other
        }
    };
}
// The macro crate imports it by path; this crate uses it in place.
#[allow(unused_imports)]
pub(crate) use weight_arithmetic;

impl Weight for f64 {
    fn zero() -> Self {
        0.0
    }
    fn ratio(num: u64, den: u64) -> Self {
        num as f64 / den as f64
    }
    weight_arithmetic!();
    fn is_zero(&self) -> bool {
        *self == 0.0
    }
}

/// Number of rooted trees with `n` nodes for `n = 1, 2, …` (OEIS A000081), i.e. the
/// number of new order conditions at each order.
pub const TREE_COUNTS: [usize; 10] = [1, 1, 2, 4, 9, 20, 48, 115, 286, 719];

/// One rooted tree of a [`Forest`], stored by the ids of its children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeNode {
    /// Number of nodes `|t|`.
    pub order: usize,
    /// Ids of the child subtrees, non-increasing (the canonical form of the multiset).
    pub children: Vec<usize>,
    /// Density `γ(t)`.
    pub density: u64,
}

/// All rooted trees with at most `max_order` nodes, each exactly once, sorted by order.
///
/// Trees are generated canonically: a tree of `n` nodes is a multiset of subtrees whose
/// orders sum to `n − 1`; listing the children by non-increasing id enumerates every
/// multiset once, so no deduplication is needed.
#[derive(Debug, Clone)]
pub struct Forest {
    nodes: Vec<TreeNode>,
    /// `starts[n]` = first id of order `n` (`starts[0] = starts[1] = 0`).
    starts: Vec<usize>,
}

impl Forest {
    /// Generates every rooted tree with `1 ≤ |t| ≤ max_order`.
    pub fn up_to(max_order: usize) -> Self {
        let mut nodes = vec![];
        let mut starts = vec![0, 0];
        if max_order >= 1 {
            nodes.push(TreeNode { order: 1, children: vec![], density: 1 });
        }
        for n in 2..=max_order {
            starts.push(nodes.len());
            let max_id = nodes.len() - 1;
            let mut current = vec![];
            let mut found = vec![];
            Self::children_multisets(&nodes, n - 1, max_id, &mut current, &mut found);
            for children in found {
                let density = n as u64 * children.iter().map(|&c| nodes[c].density).product::<u64>();
                nodes.push(TreeNode { order: n, children, density });
            }
        }
        starts.push(nodes.len());
        Self { nodes, starts }
    }

    /// Appends to `out` every non-increasing list of ids `≤ max_id` whose orders sum to
    /// `remaining`.
    fn children_multisets(
        nodes: &[TreeNode],
        remaining: usize,
        max_id: usize,
        current: &mut Vec<usize>,
        out: &mut Vec<Vec<usize>>,
    ) {
        if remaining == 0 {
            out.push(current.clone());
            return;
        }
        for id in (0..=max_id).rev() {
            if nodes[id].order <= remaining {
                current.push(id);
                Self::children_multisets(nodes, remaining - nodes[id].order, id, current, out);
                current.pop();
            }
        }
    }

    /// Largest order generated.
    pub fn max_order(&self) -> usize {
        self.starts.len() - 2
    }

    /// Number of trees.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the forest is empty (`max_order = 0`).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The tree with id `id`.
    pub fn tree(&self, id: usize) -> &TreeNode {
        &self.nodes[id]
    }

    /// Ids of the trees with exactly `n` nodes.
    pub fn ids_of_order(&self, n: usize) -> std::ops::Range<usize> {
        if n == 0 || n > self.max_order() {
            return 0..0;
        }
        self.starts[n]..self.starts[n + 1]
    }

    /// Number of trees with at most `n` nodes (the number of order conditions for order `n`).
    pub fn count_up_to(&self, n: usize) -> usize {
        self.starts[n.min(self.max_order()) + 1]
    }

    /// The tree in bracket notation: `•` is the single node and `[t₁,…,t_m]` grafts the
    /// subtrees onto a new root, e.g. `[•,[•]]` for `Σ bᵢ cᵢ aᵢⱼ cⱼ = 1/8`.
    pub fn bracket(&self, id: usize) -> Bracket<'_> {
        Bracket { forest: self, id }
    }

    /// Elementary weights `Φ(t)` (one entry per stage) of every tree, by id.
    ///
    /// `a` holds the strictly lower-triangular rows: row `i` has (at least) `i` entries
    /// and only the first `i` are read.
    pub fn elementary_weights<W: Weight, R: AsRef<[W]>>(&self, a: &[R]) -> Vec<Vec<W>> {
        let s = a.len();
        let mut phi: Vec<Vec<W>> = Vec::with_capacity(self.nodes.len());
        // aphi[id] = A·Φ(t_id), computed only for trees that can be children.
        let mut aphi: Vec<Vec<W>> = Vec::with_capacity(self.nodes.len());
        let max = self.max_order();
        for node in &self.nodes {
            let p: Vec<W> = if node.children.is_empty() {
                vec![W::ratio(1, 1); s]
            } else {
                let mut p = aphi[node.children[0]].clone();
                for &c in &node.children[1..] {
                    for (x, y) in p.iter_mut().zip(&aphi[c]) {
                        *x = x.mul(y);
                    }
                }
                p
            };
            if node.order < max {
                let ap: Vec<W> = (0..s)
                    .map(|i| {
                        let row = a[i].as_ref();
                        let mut acc = W::zero();
                        for j in 0..i {
                            if !row[j].is_zero() && !p[j].is_zero() {
                                acc = acc.add(&row[j].mul(&p[j]));
                            }
                        }
                        acc
                    })
                    .collect();
                aphi.push(ap);
            } else {
                aphi.push(vec![]);
            }
            phi.push(p);
        }
        phi
    }

    /// Residuals `wᵀΦ(t) − 1/γ(t)` of the weights `w` for every tree, by id.
    pub fn residuals<W: Weight>(&self, phi: &[Vec<W>], w: &[W]) -> Vec<W> {
        self.nodes
            .iter()
            .zip(phi)
            .map(|(node, p)| {
                let mut acc = W::zero();
                for (wi, pi) in w.iter().zip(p) {
                    if !wi.is_zero() {
                        acc = acc.add(&wi.mul(pi));
                    }
                }
                acc.sub(&W::ratio(1, node.density))
            })
            .collect()
    }
}

/// [`Forest::bracket`]'s display adapter.
#[derive(Debug, Clone, Copy)]
pub struct Bracket<'a> {
    forest: &'a Forest,
    id: usize,
}

impl fmt::Display for Bracket<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let node = self.forest.tree(self.id);
        if node.children.is_empty() {
            return f.write_str("•");
        }
        f.write_str("[")?;
        // Smallest subtrees first, so leaves lead: `[•,[•]]`.
        for (k, &c) in node.children.iter().rev().enumerate() {
            if k > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}", Bracket { forest: self.forest, id: c })?;
        }
        f.write_str("]")
    }
}
