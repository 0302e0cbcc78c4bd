//! The self-attention block (the reference's `AttnBlockpp`): `h = GroupNorm(x)`,
//! `q, k, v = Dense(h)`, output `(x + Dense(softmax(q·kᵀ/√c)·v))·s` with `s = 1/√2` under
//! `skip_rescale`.

use dfdx::prelude::*;

use super::net::Ctx;
use super::params::{Builder, Dense, Gn, Params};
use crate::ops::dual::*;
use crate::ops::*;

/// The layers of one attention block.
#[derive(Debug, Clone)]
pub(super) struct Attn {
    gn: Gn,
    q: Dense,
    k: Dense,
    v: Dense,
    o: Dense,
}

/// Adds the parameters of an attention block named `name` over `c` channels.
pub(super) fn attn(b: &mut Builder, name: &str, c: usize, init_scale: f64) -> Attn {
    Attn {
        gn: b.gn(&format!("{name}.gn"), c),
        q: b.dense(&format!("{name}.q"), c, c, 1.0),
        k: b.dense(&format!("{name}.k"), c, c, 1.0),
        v: b.dense(&format!("{name}.v"), c, c, 1.0),
        o: b.dense(&format!("{name}.o"), c, c, init_scale.max(1e-10)),
    }
}

impl<E: Elem> Ctx<'_, E>
where
    Cpu: Device<E>,
{
    /// The attention block `a` on `x` over the grid `g`.
    pub(super) fn attn<T: Tape<E, Cpu>>(&mut self, x: Mat<E, T>, g: Grid, a: &Attn, sr: E) -> Mat<E, T> {
        let p = self.p;
        let hn = p.group_norm(x.with_empty_tape(), g, &a.gn);
        let q = p.dense(hn.with_empty_tape(), &a.q);
        let k = p.dense(hn.with_empty_tape(), &a.k);
        let v = p.dense(hn, &a.v);
        let h = p.dense(attention(q, k, v, g), &a.o);
        add_scaled(x, h, sr)
    }
}

impl Attn {
    /// [`Ctx::attn`] on a forward-over-reverse tape (`ops::dual`), op for op.
    pub(super) fn dual<E: Elem>(&self, p: &Params<E>, tape: &mut DualTape<E>, x: &Dual<E>, g: Grid, sr: E) -> Dual<E>
    where
        Cpu: Device<E>,
    {
        let hn = p.dual_group_norm(tape, x, g, &self.gn, false);
        let q = p.dual_dense(tape, &hn, &self.q);
        let k = p.dual_dense(tape, &hn, &self.k);
        let v = p.dual_dense(tape, &hn, &self.v);
        let o = dual_attention(tape, &q, &k, &v, g);
        let h = p.dual_dense(tape, &o, &self.o);
        dual_add_scaled(tape, x, &h, sr)
    }
}
