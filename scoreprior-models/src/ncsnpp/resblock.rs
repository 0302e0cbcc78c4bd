//! The BigGAN residual block: `h = conv1(drop(silu(gn1(conv0(resample(silu(gn0(x)))) +
//! Dense(temb)))))`, output `(skip(resample(x)) + h)·s` with `s = 1/√2` under
//! `skip_rescale` (`skip` a 1×1 convolution where the channels or the grid change).

use dfdx::prelude::*;

use super::net::Ctx;
use super::params::{Builder, Dense, Gn, Params};
use crate::ops::dual::*;
use crate::ops::*;

/// Resampling inside a residual block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Resample {
    None,
    Up,
    Down,
}

/// The layers of one residual block.
#[derive(Debug, Clone)]
pub(super) struct ResBlock {
    gn0: Gn,
    conv0: Dense,
    temb: Option<Dense>,
    gn1: Gn,
    conv1: Dense,
    skip: Option<Dense>,
    resample: Resample,
}

/// Adds the parameters of a residual block named `name` from `i` to `o` channels.
pub(super) fn resblock(
    b: &mut Builder,
    name: &str,
    i: usize,
    o: usize,
    temb: Option<usize>,
    resample: Resample,
    init_scale: f64,
) -> ResBlock {
    let gn0 = b.gn(&format!("{name}.gn0"), i);
    let conv0 = b.conv(&format!("{name}.conv0"), i, o, 1.0);
    let temb = temb.map(|t| b.dense(&format!("{name}.temb"), t, o, 1.0));
    let gn1 = b.gn(&format!("{name}.gn1"), o);
    let conv1 = b.conv(&format!("{name}.conv1"), o, o, init_scale.max(1e-10));
    let skip = (i != o || resample != Resample::None).then(|| b.dense(&format!("{name}.skip"), i, o, 1.0));
    ResBlock { gn0, conv0, temb, gn1, conv1, skip, resample }
}

impl<E: Elem> Ctx<'_, E>
where
    Cpu: Device<E>,
{
    /// The residual block `rb` on `x` over the grid `g` (before its resampling).
    pub(super) fn resblock<T: Tape<E, Cpu>>(&mut self, x: Mat<E, T>, g: Grid, rb: &ResBlock, sr: E) -> Mat<E, T> {
        let p = self.p;
        let mut h = p.group_norm_silu(x.with_empty_tape(), g, &rb.gn0);
        let mut x = x;
        let mut g = g;
        match rb.resample {
            Resample::Up => {
                h = upsample2(h, g);
                x = upsample2(x, g);
                g = g.up();
            }
            Resample::Down => {
                h = avg_pool2(h, g);
                x = avg_pool2(x, g);
                g = g.down();
            }
            Resample::None => {}
        }
        h = p.conv(h, g, &rb.conv0);
        if let (Some(d), Some(te)) = (&rb.temb, self.temb) {
            let e = p.dense(te.clone().retaped::<T>(), d);
            h = add_per_image(h, e, g.h * g.w);
        }
        h = p.group_norm_silu(h, g, &rb.gn1);
        if let (Some(rng), true) = (self.rng.as_deref_mut(), self.dropout > 0.0) {
            let n = h.shape().0 * h.shape().1;
            h = apply_mask(h, dropout_mask(n, self.dropout, rng));
        }
        h = p.conv(h, g, &rb.conv1);
        if let Some(s) = &rb.skip {
            x = p.dense(x, s);
        }
        add_scaled(x, h, sr)
    }
}

impl ResBlock {
    /// [`Ctx::resblock`] on a forward-over-reverse tape (`ops::dual`), op for op, without
    /// dropout; `temb` is the time embedding after its SiLU (a constant: it depends on `t`
    /// only).
    pub(super) fn dual<E: Elem>(
        &self,
        p: &Params<E>,
        tape: &mut DualTape<E>,
        x: &Dual<E>,
        g: Grid,
        temb: Option<&Mat<E>>,
        sr: E,
    ) -> Dual<E>
    where
        Cpu: Device<E>,
    {
        let mut h = p.dual_group_norm(tape, x, g, &self.gn0, true);
        let mut x = x.clone();
        let mut g = g;
        match self.resample {
            Resample::Up => {
                h = dual_upsample2(tape, &h, g);
                x = dual_upsample2(tape, &x, g);
                g = g.up();
            }
            Resample::Down => {
                h = dual_avg_pool2(tape, &h, g);
                x = dual_avg_pool2(tape, &x, g);
                g = g.down();
            }
            Resample::None => {}
        }
        h = p.dual_conv(tape, &h, g, &self.conv0);
        if let (Some(d), Some(te)) = (&self.temb, temb) {
            let e = p.dense(te.clone(), d);
            h = dual_add_per_image(tape, &h, &values(&e), g.h * g.w);
        }
        h = p.dual_group_norm(tape, &h, g, &self.gn1, true);
        h = p.dual_conv(tape, &h, g, &self.conv1);
        if let Some(s) = &self.skip {
            x = p.dual_dense(tape, &x, s);
        }
        dual_add_scaled(tape, &x, &h, sr)
    }
}
