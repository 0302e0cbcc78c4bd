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
"""
import argparse
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


def make_field(probes):
    def field(t, state, _):
        x, _ = state
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


def solve_logp(x, probes, adjoint):
    term = diffrax.ODETerm(make_field(probes))
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
for name, probes in [("exact", None), (f"hutchinson{args.probes}", hutch)]:
    out, stats, dt, dt_grad = run(probes)
    print(f"{name:14s} batch={args.batch} rtol={args.rtol} atol={args.atol} dt0={args.dt0}: "
          f"log_prob {dt * 1e3:8.2f} ms, grad_log_prob {dt_grad * 1e3:8.2f} ms (best of {args.repeats}), "
          f"steps={int(stats['num_accepted_steps'])} "
          f"rejected={int(stats['num_rejected_steps'])} "
          f"mean log p={float(jnp.mean(out)):.4f}")
