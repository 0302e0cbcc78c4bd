"""Reference timing: diffrax (JAX, CPU, jit) log p of 16 images under the probability-flow ODE
of the VP SDE with the shipped 16x16 Gaussian as the data distribution, the same problem that
`cargo bench --bench logprob` times in Rust.

The whole batch is one ODE state (as the reference implementation does), Dopri5 +
PIDController(rtol, atol), t0 = 1e-3 -> T = 1, beta 0.1..20. The score is analytic:
s(x, t) = -(a^2 S + s^2 I)^-1 (x - a m) applied through the eigendecomposition of S.
Divergence: exact trace (closed form) or Hutchinson with K Rademacher probes via jax.vjp.

The gradient d(sum_i log p_i)/dx is taken, as in the reference code, through
BacksolveAdjoint(Dopri5, PIDController(rtol, atol, norm=adjoint_rms_seminorm)) (the continuous
adjoint). The first step is `--dt0` (default None: diffrax's automatic choice; the reference
script uses 0.001).

Usage: python3 benches/reference/diffrax_logprob.py [--rtol 1e-3 --atol 1e-5 --probes 16]
Needs `pip install jax diffrax` (not a project dependency: a measuring stick only).

`--json PATH` also writes the settings, the counts of each forward solve (accepted and rejected
steps, and the vector-field evaluations, counted by a callback in one extra untimed solve), the
log p of every image and their mean, the timings and the versions of jax/diffrax. The archived
run that the Rust tests read their diffrax counts from (scoreprior-core/tests/reference_problem.rs,
scoreprior-cli/tests/cli_logprob.rs) is made, from the repository root, by

    python3 benches/reference/diffrax_logprob.py --dt0 0.001 --json benches/reference/out/diffrax_logprob.json
"""
import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import sys
import time

import numpy as np

import jax
import jax.numpy as jnp

jax.config.update("jax_enable_x64", True)
import diffrax  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--rtol", type=float, default=1e-3)
p.add_argument("--atol", type=float, default=1e-5)
p.add_argument("--probes", type=int, default=16)
p.add_argument("--batch", type=int, default=16)
p.add_argument("--repeats", type=int, default=20)
p.add_argument("--dt0", type=float, default=None)
p.add_argument("--json", default=None, help="also write the settings, counts, log p and versions here")
args = p.parse_args()

mean = np.load("assets/gaussian16/mean.npy").astype(np.float64)
cov = np.load("assets/gaussian16/cov.npy").astype(np.float64)
x0 = np.load("assets/fashion16_test.npy").astype(np.float64).reshape(-1, 256)[: args.batch]
lam, U = np.linalg.eigh(cov)
lam, U, mean = jnp.asarray(lam), jnp.asarray(U), jnp.asarray(mean)
D = 256
bmin, bmax = 0.1, 20.0


def coefs(t):
    beta = bmin + t * (bmax - bmin)
    integral = bmin * t + 0.5 * t * t * (bmax - bmin)
    alpha = jnp.exp(-0.5 * integral)
    var = -jnp.expm1(-integral)
    return beta, alpha, var


def score(x, t):
    _, alpha, var = coefs(t)
    z = (x - alpha * mean) @ U
    return -((z / (alpha**2 * lam + var)) @ U.T)


def drift(x, t):
    beta, _, _ = coefs(t)
    return -0.5 * beta * x - 0.5 * beta * score(x, t)


def exact_div(t):
    beta, alpha, var = coefs(t)
    return -0.5 * beta * D + 0.5 * beta * jnp.sum(1.0 / (alpha**2 * lam + var))


EVALUATIONS = [0]


def _count():
    EVALUATIONS[0] += 1


def make_field(probes, count=False):
    def field(t, state, _):
        x, _ = state
        if count:
            # Runs once per evaluation actually executed (not when diffrax traces the field).
            jax.debug.callback(_count)
        if probes is None:
            return drift(x, t), jnp.full((x.shape[0],), exact_div(t))
        dx, vjp = jax.vjp(lambda y: drift(y, t), x)
        div = jnp.zeros(x.shape[0])
        for k in range(probes.shape[0]):
            eps = jnp.broadcast_to(probes[k], x.shape)
            (g,) = vjp(eps)
            div = div + jnp.sum(g * eps, axis=1)
        return dx, div / probes.shape[0]

    return field


def solve_logp(x, probes, adjoint, count=False):
    term = diffrax.ODETerm(make_field(probes, count))
    ctrl = diffrax.PIDController(rtol=args.rtol, atol=args.atol)
    sol = diffrax.diffeqsolve(term, diffrax.Dopri5(), 1e-3, 1.0, args.dt0, (x, jnp.zeros(x.shape[0])),
                              stepsize_controller=ctrl, max_steps=4096, adjoint=adjoint)
    xT, delta = sol.ys[0][-1], sol.ys[1][-1]
    prior = -0.5 * jnp.sum(xT**2, axis=1) - 0.5 * D * jnp.log(2 * jnp.pi)
    return prior + delta, sol.stats


def timed(fn, x):
    out = fn(x)
    jax.block_until_ready(out)
    best = float("inf")
    for _ in range(args.repeats):
        t = time.perf_counter()
        out = fn(x)
        jax.block_until_ready(out)
        best = min(best, time.perf_counter() - t)
    return out, best


def count_evaluations(probes, x):
    """Vector-field evaluations of one forward solve (a separate, untimed solve)."""
    counted = jax.jit(lambda x: solve_logp(x, probes, diffrax.RecursiveCheckpointAdjoint(), count=True))
    EVALUATIONS[0] = 0
    jax.block_until_ready(counted(x))
    jax.effects_barrier()
    return EVALUATIONS[0]


def run(probes):
    logp = jax.jit(lambda x: solve_logp(x, probes, diffrax.RecursiveCheckpointAdjoint()))
    adjoint = diffrax.BacksolveAdjoint(
        solver=diffrax.Dopri5(),
        stepsize_controller=diffrax.PIDController(rtol=args.rtol, atol=args.atol, norm=diffrax.adjoint_rms_seminorm))
    grad = jax.jit(jax.value_and_grad(lambda x: jnp.sum(solve_logp(x, probes, adjoint)[0])))
    x = jnp.asarray(x0)
    (out, stats), dt = timed(logp, x)
    _, dt_grad = timed(grad, x)
    return out, stats, dt, dt_grad


rng = np.random.default_rng(0)
hutch = jnp.asarray(rng.choice([-1.0, 1.0], size=(args.probes, D)))
load = os.getloadavg() if hasattr(os, "getloadavg") else None
runs = {}
for name, probes in [("exact", None), (f"hutchinson{args.probes}", hutch)]:
    out, stats, dt, dt_grad = run(probes)
    evaluations = count_evaluations(probes, jnp.asarray(x0))
    print(f"{name:14s} batch={args.batch} rtol={args.rtol} atol={args.atol} dt0={args.dt0}: "
          f"log_prob {dt * 1e3:8.2f} ms, grad_log_prob {dt_grad * 1e3:8.2f} ms (best of {args.repeats}), "
          f"steps={int(stats['num_accepted_steps'])} "
          f"rejected={int(stats['num_rejected_steps'])} "
          f"evaluations={evaluations} "
          f"mean log p={float(jnp.mean(out)):.4f}")
    runs[name] = {
        "divergence": "exact trace" if probes is None else f"Hutchinson, {args.probes} Rademacher probes (numpy seed 0)",
        "accepted_steps": int(stats["num_accepted_steps"]),
        "rejected_steps": int(stats["num_rejected_steps"]),
        "rhs_evaluations": evaluations,
        "mean_log_p": float(jnp.mean(out)),
        "log_p": [float(v) for v in np.asarray(out)],
        "log_prob_ms": dt * 1e3,
        "grad_log_prob_ms": dt_grad * 1e3,
    }

if args.json:
    def version(pkg):
        try:
            return importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            return None

    record = {
        "script": "benches/reference/diffrax_logprob.py",
        "argv": sys.argv[1:],
        "problem": {
            "images": f"the first {args.batch} of assets/fashion16_test.npy, one ODE state",
            "prior": "assets/gaussian16 (analytic score)",
            "sde": {"kind": "vp", "beta_min": bmin, "beta_max": bmax},
            "t0": 1e-3,
            "t1": 1.0,
            "solver": "Dopri5",
            "controller": "PIDController(rtol, atol)",
            "max_steps": 4096,
            "dtype": "float64",
        },
        "settings": {"rtol": args.rtol, "atol": args.atol, "dt0": args.dt0, "probes": args.probes,
                     "batch": args.batch, "repeats": args.repeats},
        "runs": runs,
        "timings": "log_prob_ms and grad_log_prob_ms: best of `repeats` jitted calls on this machine "
                   "(grad: BacksolveAdjoint with adjoint_rms_seminorm); rhs_evaluations: one more, "
                   "untimed forward solve with a counting callback",
        "versions": {"python": platform.python_version(), **{k: version(k) for k in
                     ["jax", "jaxlib", "diffrax", "equinox", "numpy"]}},
        "machine": {"system": platform.system(), "machine": platform.machine(), "cpus": os.cpu_count(),
                    "load_average": list(load) if load else None, "jax_backend": jax.default_backend()},
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(record, f, indent=1)
        f.write("\n")
    print(f"wrote {args.json}")
