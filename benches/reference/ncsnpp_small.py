"""NCSN++-small's layer structure, written once against a small set of abstract ops, for the
peer scripts `numpy_sgemm.py` (which lists its matrix products) and `jax_convnet.py` (which runs
it in JAX). Not a measurement itself; needs nothing beyond the standard library.

It follows `NcsnppConfig::small()` and `NcsnppNet` (scoreprior-models/src/ncsnpp/net.rs,
resblock.rs, attn.rs) with one input channel: nf 16, ch_mult (1, 2, 2), one residual block per
level, attention at 8x8, positional time embedding (Dense 16->64, SiLU, Dense 64->64, SiLU, and
a Dense 64->c per block), BigGAN residual blocks (GroupNorm+SiLU, [resample], 3x3 conv,
+ time projection, GroupNorm+SiLU, 3x3 conv, 1x1 skip where channels or grid change, sum
scaled by 1/sqrt 2), single-head attention blocks, 2x2 average pooling / nearest upsampling,
the residual input pyramid (pooled input -> 3x3 conv, added), skips concatenated on the way up,
and GroupNorm+SiLU+3x3 conv at the output. GroupNorm has clamp(c/4, 1, 32) groups.

Every matrix product is counted as scoreprior's `ops::MATMUL_FLOPS` counts it: a 3x3
convolution is the im2col product (rows = images*h*w) x (9*c_in) . (9*c_in) x c_out, a dense
layer rows x c_in . c_in x c_out, and attention 4*b*(hw)^2*c (q.k^T and softmax.v).
"""
import math

SMALL = {"nf": 16, "ch_mult": (1, 2, 2), "num_res_blocks": 1, "attn_resolutions": (8,)}
SQRT_HALF = 1.0 / math.sqrt(2.0)


def groups(c):
    """GroupNorm's group count for `c` channels (as `Builder::gn` in params.rs)."""
    return min(max(c // 4, 1), 32)


def forward(ops, x, t, cfg=SMALL, channels=1):
    """One pass of NCSN++ through `ops`; `x` is a batch of images in NHWC (whatever `ops`
    holds for it), `t` the per-image times. Returns eps-hat in the same layout."""
    nf, ch_mult, nrb = cfg["nf"], cfg["ch_mult"], cfg["num_res_blocks"]
    attn_res = cfg["attn_resolutions"]
    temb = ops.time_features(t, nf)
    temb = ops.silu(ops.dense("temb.0", temb, 4 * nf))
    temb = ops.silu(ops.dense("temb.1", temb, 4 * nf))
    x = ops.affine(x, 2.0, -1.0)  # inputs in [0, 1] -> [-1, 1] (centered = false)
    pyramid = x
    h = ops.conv("conv_in", x, nf)
    skips = [h]
    levels = len(ch_mult)
    for lvl in range(levels):
        out = nf * ch_mult[lvl]
        for k in range(nrb):
            h = resblock(ops, f"down.{lvl}.block.{k}", h, out, temb, None)
            if ops.side(h) in attn_res:
                h = attention_block(ops, f"down.{lvl}.attn.{k}", h)
            skips.append(h)
        if lvl + 1 < levels:
            h = resblock(ops, f"down.{lvl}.down", h, ops.channels(h), temb, "down")
            pyramid = ops.conv(f"down.{lvl}.pyramid", ops.pool(pyramid), ops.channels(h))
            h = ops.add_scaled(h, pyramid, SQRT_HALF)
            skips.append(h)
    h = resblock(ops, "mid.0", h, ops.channels(h), temb, None)
    h = attention_block(ops, "mid.attn", h)
    h = resblock(ops, "mid.1", h, ops.channels(h), temb, None)
    for lvl in reversed(range(levels)):
        out = nf * ch_mult[lvl]
        for k in range(nrb + 1):
            h = resblock(ops, f"up.{lvl}.block.{k}", ops.concat(h, skips.pop()), out, temb, None)
        if ops.side(h) in attn_res:
            h = attention_block(ops, f"up.{lvl}.attn", h)
        if lvl > 0:
            h = resblock(ops, f"up.{lvl}.up", h, ops.channels(h), temb, "up")
    assert not skips
    h = ops.group_norm("out.gn", h, silu=True)
    return ops.conv("out.conv", h, channels)


def resblock(ops, name, x, out, temb, resample):
    """BigGAN residual block (resblock.rs)."""
    cin = ops.channels(x)
    h = ops.group_norm(f"{name}.gn0", x, silu=True)
    if resample == "down":
        h, x = ops.pool(h), ops.pool(x)
    elif resample == "up":
        h, x = ops.upsample(h), ops.upsample(x)
    h = ops.conv(f"{name}.conv0", h, out)
    h = ops.add_per_image(h, ops.dense(f"{name}.temb", temb, out))
    h = ops.group_norm(f"{name}.gn1", h, silu=True)
    h = ops.conv(f"{name}.conv1", h, out)
    if cin != out or resample is not None:
        x = ops.dense(f"{name}.skip", x, out)
    return ops.add_scaled(x, h, SQRT_HALF)


def attention_block(ops, name, x):
    """Self-attention block (attn.rs): GroupNorm, q/k/v, softmax(q k^T / sqrt c) v, Dense."""
    c = ops.channels(x)
    hn = ops.group_norm(f"{name}.gn", x, silu=False)
    q, k, v = (ops.dense(f"{name}.{n}", hn, c) for n in "qkv")
    return ops.add_scaled(x, ops.dense(f"{name}.o", ops.attention(q, k, v), c), SQRT_HALF)


class Shapes:
    """The ops on shapes alone: a pass records every parameter's shape (`params`, name ->
    shape, conv weights as HWIO) and every matrix product (`products`: dicts with the layer,
    its grid side, m, k, n, batch, whether it depends on the input image `x`, and its FLOPs)."""

    def __init__(self):
        self.params = {}
        self.products = []

    # A tensor is (shape tuple, depends_on_x).
    @staticmethod
    def side(a):
        return a[0][1]

    @staticmethod
    def channels(a):
        return a[0][-1]

    def _product(self, layer, kind, side, m, k, n, batch, on_x):
        self.products.append({"layer": layer, "kind": kind, "side": side, "m": m, "k": k, "n": n,
                              "batch": batch, "on_x": on_x, "flops": 2 * batch * m * k * n})

    def time_features(self, t, nf):
        return ((t[0][0], nf), False)

    def dense(self, name, a, o):
        shape, on_x = a
        cin = shape[-1]
        self.params[f"{name}.w"] = (cin, o)
        self.params[f"{name}.b"] = (o,)
        side = shape[1] if len(shape) == 4 else None
        self._product(name, "dense", side, math.prod(shape[:-1]), cin, o, 1, on_x)
        return (shape[:-1] + (o,), on_x)

    def conv(self, name, a, o):
        (b, h, w, cin), on_x = a
        self.params[f"{name}.w"] = (3, 3, cin, o)
        self.params[f"{name}.b"] = (o,)
        self._product(name, "conv3x3", h, b * h * w, 9 * cin, o, 1, on_x)
        return ((b, h, w, o), on_x)

    def group_norm(self, name, a, silu):
        c = a[0][-1]
        self.params[f"{name}.gamma"] = (c,)
        self.params[f"{name}.beta"] = (c,)
        return a

    def attention(self, q, k, v):
        (b, h, w, c), on_x = q
        self._product("attention q.k^T", "attention", h, h * w, c, h * w, b, on_x)
        self._product("attention p.v", "attention", h, h * w, h * w, c, b, on_x)
        return q

    def silu(self, a):
        return a

    def affine(self, a, scale, shift):
        return a

    def pool(self, a):
        (b, h, w, c), on_x = a
        return ((b, h // 2, w // 2, c), on_x)

    def upsample(self, a):
        (b, h, w, c), on_x = a
        return ((b, 2 * h, 2 * w, c), on_x)

    def concat(self, a, s):
        return (a[0][:-1] + (a[0][-1] + s[0][-1],), a[1] or s[1])

    def add_scaled(self, a, s, scale):
        return (a[0], a[1] or s[1])

    def add_per_image(self, a, e):
        return (a[0], a[1] or e[1])


def trace(size, images, cfg=SMALL, channels=1):
    """The `Shapes` record of one pass over `images` images of `size` x `size`."""
    s = Shapes()
    forward(s, ((images, size, size, channels), True), ((images,), False), cfg, channels)
    return s


def flops(size, images, cfg=SMALL, channels=1):
    """Matrix-product FLOPs of a forward pass, of the VJP with respect to the input only (forward
    plus each product on the input's path once more, attention's backward being two products
    per forward one) and of a VJP that also forms every weight gradient (dfdx's backward, which
    forms both gradients of every product: three times the forward, the count `cargo bench
    --bench ncsnpp` uses)."""
    s = trace(size, images, cfg, channels)
    fwd = sum(p["flops"] for p in s.products)
    on_x = sum(p["flops"] for p in s.products if p["on_x"])
    return {"forward": fwd, "forward_vjp_x": fwd + on_x, "forward_vjp_x_and_weights": 3 * fwd}


if __name__ == "__main__":
    for size in (16, 32):
        s = trace(size, 1)
        n = sum(math.prod(v) for v in s.params.values())
        f = flops(size, 1)
        print(f"{size}x{size}: {n} parameters, {f['forward'] / 1e6:.2f} MFLOP of matrix products per image "
              f"(forward), {len(s.products)} products")
