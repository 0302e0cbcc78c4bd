"""Reference timing: NCSN++-small as a JAX conv net on CPU (jit, float32), the peer of
`cargo bench --bench ncsnpp`: forward on a batch of 64 images, and forward+VJP on 4 images x 16
Rademacher probes = 64 image-probe pairs stacked into one batch (the Hutchinson estimator's
call), at 16x16 and at 32x32, on one thread and on two.

The network (`ncsnpp_small.py`, shared with numpy_sgemm.py) has the layer shapes of
`NcsnppConfig::small()` with one input channel: the same 3x3 convolutions (here XLA's own
convolutions, NHWC/HWIO, not im2col), channels, 2x2 average pooling / nearest upsampling, skips,
GroupNorm (+SiLU), time-embedding projections and single-head attention at 8x8, with its
parameter count (321,921) and weights drawn as the Rust init does (fan-average uniform,
init_scale 1 as in the bench); it is not bit-for-bit the Rust network. The FLOPs of its matrix
products are counted analytically as scoreprior's `ops::MATMUL_FLOPS` counts them (a 3x3 conv
as its im2col product, attention as 4*b*(hw)^2*c) and printed; GFLOP/s = those FLOPs / time.

Three timed calls per size and thread count (best of `--repeats` after a warm-up):
  forward        eps-hat for 64 images;
  fwd+VJP(x)     the output and probe^T d(out)/dx for the 64 pairs (jax.vjp in x only: XLA
                 drops the weight gradients), FLOPs = forward + each product on x's path again
                 (attention's backward being two products per forward one), about 2x forward;
  fwd+VJP(x,w)   the same VJP also forming every weight gradient, which is what dfdx's
                 backward does in the Rust bench: 3x the forward FLOPs, the bench's own count.
Pairs/s (images/s for forward) compare across implementations without any FLOP convention.

Threads: each thread count runs in a child process pinned to that many CPUs
(os.sched_setaffinity, as `taskset -c 0` / `-c 0,1`) before jax is imported; for one thread
XLA_FLAGS also gets `--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1`.

Usage, from the repository root (a few minutes, mostly XLA compiling the six programs; 3.4 min
on the 2-core machine under a load average of 4-6):
    python benches/reference/jax_convnet.py [--sizes 16 32] [--threads 1 2]
with any Python that has jax (e.g. `python -m venv /work/venv-jax && /work/venv-jax/bin/pip
install 'jax[cpu]'`, JAX 0.10.2 when last measured); not a project dependency: a measuring
stick only. `--out PATH` (default benches/reference/out/jax_convnet.json) gets the settings,
FLOP counts, timings and versions.
"""
import argparse
import importlib.metadata
import json
import math
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no __pycache__ beside the scripts
import ncsnpp_small  # noqa: E402
import peer_record  # noqa: E402


class JaxOps:
    """`ncsnpp_small`'s ops on JAX arrays (NHWC), reading parameters from `params` by name."""

    def __init__(self, jnp, lax, params):
        self.jnp, self.lax, self.p = jnp, lax, params

    @staticmethod
    def side(a):
        return a.shape[1]

    @staticmethod
    def channels(a):
        return a.shape[-1]

    def time_features(self, t, nf):
        jnp = self.jnp
        half = nf // 2
        freq = jnp.exp(-math.log(10000.0) * jnp.arange(half, dtype=jnp.float32) / (half - 1))
        arg = (999.0 * t)[:, None] * freq[None, :]
        return jnp.concatenate([jnp.sin(arg), jnp.cos(arg)], axis=1)

    def dense(self, name, a, o):
        return self.jnp.dot(a, self.p[f"{name}.w"]) + self.p[f"{name}.b"]

    def conv(self, name, a, o):
        y = self.lax.conv_general_dilated(a, self.p[f"{name}.w"], (1, 1), "SAME",
                                          dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return y + self.p[f"{name}.b"]

    def group_norm(self, name, a, silu):
        b, h, w, c = a.shape
        g = ncsnpp_small.groups(c)
        x = a.reshape(b, h, w, g, c // g)
        mean = x.mean(axis=(1, 2, 4), keepdims=True)
        var = ((x - mean) ** 2).mean(axis=(1, 2, 4), keepdims=True)
        y = ((x - mean) * self.lax.rsqrt(var + 1e-6)).reshape(b, h, w, c)
        y = y * self.p[f"{name}.gamma"] + self.p[f"{name}.beta"]
        return self.silu(y) if silu else y

    def attention(self, q, k, v):
        jnp = self.jnp
        b, h, w, c = q.shape
        q, k, v = (z.reshape(b, h * w, c) for z in (q, k, v))
        s = jnp.einsum("bic,bjc->bij", q, k) / math.sqrt(c)
        o = jnp.einsum("bij,bjc->bic", self._softmax(s), v)
        return o.reshape(b, h, w, c)

    def _softmax(self, s):
        e = self.jnp.exp(s - s.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    def silu(self, a):
        return a * self.lax.logistic(a)

    def affine(self, a, scale, shift):
        return a * scale + shift

    def pool(self, a):
        b, h, w, c = a.shape
        return a.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))

    def upsample(self, a):
        return self.jnp.repeat(self.jnp.repeat(a, 2, axis=1), 2, axis=2)

    def concat(self, a, s):
        return self.jnp.concatenate([a, s], axis=-1)

    def add_scaled(self, a, s, scale):
        return (a + s) * scale

    def add_per_image(self, a, e):
        return a + e[:, None, None, :]


def init_params(np, shapes, seed=0):
    """Fan-average uniform weights (conv fans 9*c_in / 9*c_out, as params.rs), zero biases and
    betas, unit gammas."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in shapes.items():
        if name.endswith(".w"):
            fan_in, fan_out = (9 * shape[2], 9 * shape[3]) if len(shape) == 4 else shape
            lim = math.sqrt(3.0 / ((fan_in + fan_out) / 2.0))
            out[name] = rng.uniform(-lim, lim, shape).astype(np.float32)
        elif name.endswith(".gamma"):
            out[name] = np.ones(shape, np.float32)
        else:
            out[name] = np.zeros(shape, np.float32)
    return out


def measure(threads, args):
    """Times the three calls at each size inside this (already pinned) process."""
    import numpy as np
    import jax
    import jax.numpy as jnp
    from jax import lax

    def best(f, *a):
        jax.block_until_ready(f(*a))  # warm-up after compilation
        s = float("inf")
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(f(*a))
            s = min(s, time.perf_counter() - t0)
        return s

    rows = []
    for size in args.sizes:
        shapes = ncsnpp_small.trace(size, 1).params
        params = {k: jnp.asarray(v) for k, v in init_params(np, shapes).items()}
        rng = np.random.default_rng(1)
        n = args.images * args.probes
        t = jnp.full((n,), 0.5, jnp.float32)

        def net(p, x):
            return ncsnpp_small.forward(JaxOps(jnp, lax, p), x, t)

        x64 = jnp.asarray(rng.random((n, size, size, 1), dtype=np.float32))
        x4 = rng.random((args.images, size, size, 1), dtype=np.float32)
        xp = jnp.asarray(np.repeat(x4, args.probes, axis=0))  # image i's probes are rows 16i..16i+15
        probes = jnp.asarray(rng.choice(np.array([-1.0, 1.0], np.float32), (n, size, size, 1)))

        forward = jax.jit(net)

        @jax.jit
        def vjp_x(p, x, e):
            out, pull = jax.vjp(lambda x: net(p, x), x)
            return out, pull(e)[0]

        @jax.jit
        def vjp_xw(p, x, e):
            out, pull = jax.vjp(net, p, x)
            gp, gx = pull(e)
            return out, gx, gp

        fl = ncsnpp_small.flops(size, n)
        for call, f, a, key in (("forward", forward, (params, x64), "forward"),
                                ("fwd+VJP(x)", vjp_x, (params, xp, probes), "forward_vjp_x"),
                                ("fwd+VJP(x,w)", vjp_xw, (params, xp, probes), "forward_vjp_x_and_weights")):
            t0 = time.perf_counter()
            jax.block_until_ready(f(*a))
            compile_s = time.perf_counter() - t0
            s = best(f, *a)
            rows.append({"size": size, "threads": threads, "call": call, "batch": n, "flops": fl[key],
                         "seconds": s, "gflops": fl[key] / s / 1e9, "per_s": n / s, "first_call_s": compile_s})
    versions = {"jax": jax.__version__, "jaxlib": importlib.metadata.version("jaxlib"), "numpy": np.__version__,
                "backend": jax.default_backend()}
    return {"rows": rows, "versions": versions, "affinity": sorted(os.sched_getaffinity(0)),
            "xla_flags": os.environ.get("XLA_FLAGS", "")}


def child(threads, args):
    """Runs `measure` for one thread count in a fresh process: pinned to the first `threads`
    CPUs and with XLA's flags set before jax starts (its thread pools are sized at start-up)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < threads:
        sys.exit(f"{threads} threads asked for, {len(cpus)} CPUs available")
    env = dict(os.environ)
    if threads == 1:
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                            " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()
    cmd = [sys.executable, os.path.abspath(__file__), "--child", str(threads), "--repeats", str(args.repeats),
           "--images", str(args.images), "--probes", str(args.probes), "--sizes", *map(str, args.sizes)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True,
                       preexec_fn=lambda: os.sched_setaffinity(0, cpus[:threads]))
    if r.returncode != 0:
        sys.exit(f"child for {threads} thread(s) failed:\n{r.stderr}")
    return json.loads(r.stdout)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    peer_record.add_common_args(p, "jax_convnet.json", repeats=5)
    for flag, default, what in [("--images", 4, "images of the VJP call (forward: images*probes)"),
                                ("--probes", 16, "probes per image of the VJP call")]:
        p.add_argument(flag, type=int, default=default, help=what)
    args = peer_record.parse_args(p, measure)
    if args is None:
        return

    runs = {t: child(t, args) for t in args.threads}
    rows = [r for t in args.threads for r in runs[t]["rows"]]
    n = args.images * args.probes
    for size in args.sizes:
        f = ncsnpp_small.flops(size, 1)
        print(f"{size}x{size}: matrix products {f['forward'] / 1e6:.2f} MFLOP per image forward, "
              f"{f['forward_vjp_x'] / 1e6:.2f} with the VJP in x, {f['forward_vjp_x_and_weights'] / 1e6:.2f} "
              f"with the weight gradients too")
    print(f"{'size':>6} {'threads':>7} {'call':<13} {'GFLOP/call':>10} {'best ms':>9} {'GFLOP/s':>8} "
          f"{'per s':>8}  (forward: images/s, batch {n}; VJP: pairs/s, {args.images} images x {args.probes} probes)")
    for r in rows:
        print(f"{r['size']:>4}^2 {r['threads']:>7} {r['call']:<13} {r['flops'] / 1e9:>10.3f} {r['seconds'] * 1e3:>9.1f} "
              f"{r['gflops']:>8.1f} {r['per_s']:>8.0f}")

    record = {
        "what": "NCSN++-small as a JAX conv net (benches/reference/jax_convnet.py): best of `repeats` jitted "
                "calls per size, thread count and call; FLOPs of the matrix products counted analytically "
                "as scoreprior's MATMUL_FLOPS",
        "settings": {"sizes": args.sizes, "threads": args.threads, "images": args.images, "probes": args.probes,
                     "repeats": args.repeats},
        "rows": rows,
        "children": {str(t): {k: v for k, v in runs[t].items() if k != "rows"} for t in args.threads},
        "machine": peer_record.machine(),
    }
    peer_record.write_record(args.out, record)


if __name__ == "__main__":
    main()
