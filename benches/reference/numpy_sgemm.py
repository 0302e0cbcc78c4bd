"""Reference GEMM rates: float32 matrix products through numpy's BLAS (OpenBLAS in the numpy
wheels) at NCSN++-small's own product shapes, on one thread and on two, the ceiling that
`cargo bench --bench ncsnpp` compares the network's achieved GFLOP/s against.

Shapes (`ncsnpp_small.py` lists them from the network's structure):
  - the bench's own reference product, (16*256) x 288 . 288 x 32 (the im2col product of a 32->32
    3x3 convolution on 16 images of 16x16), which `cargo bench --bench ncsnpp` reads back;
  - every distinct product of one forward pass of NCSN++-small on a chunk of `--images` images
    (default 32, the chunk the bench's score model runs) at 16x16 and at 32x32: the 3x3
    convolutions as im2col products (images*h*w) x (9*c_in) . (9*c_in) x c_out, the 1x1/dense
    layers, the time-embedding layers and attention's batched q.k^T and softmax.v;
  - a square 1024^3 product (what the library reaches on a shape it is tuned for).
Each rate is the best of `--repeats` samples, a sample timing enough back-to-back calls
(`numpy.matmul` into a preallocated output) to last `--sample-ms`. "network" rows are the rate
of the whole pass's products, sum of FLOPs over sum of times (each product's best time).

Threads: with threadpoolctl installed, the BLAS pool is resized in this process; without it,
the script reruns itself once per thread count with OPENBLAS_NUM_THREADS (and OMP_NUM_THREADS)
set. Prints a table and writes JSON (`--out`, default benches/reference/out/numpy_sgemm.json,
which `cargo bench --bench ncsnpp` looks for).

Usage, from the repository root:
    python benches/reference/numpy_sgemm.py [--threads 1 2] [--out PATH]
Needs numpy (any venv with numpy's OpenBLAS wheel, e.g. /work/venv or /work/venv-jax here).
Not a project dependency: a measuring stick only.
"""
import argparse
import ctypes
import glob
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no __pycache__ beside the scripts
import ncsnpp_small  # noqa: E402
import peer_record  # noqa: E402

BENCH_SHAPE = (16 * 256, 288, 32)  # the `gemm_gflops` shape of benches/ncsnpp.rs


def shapes(images, sizes):
    """(label, m, k, n, batch, {size: count per pass}) for every product to time."""
    out = {}

    def add(key, label, size=None):
        if key not in out:
            out[key] = [label, {}]
        if size is not None:
            out[key][1][size] = out[key][1].get(size, 0) + 1

    add((*BENCH_SHAPE, 1), "bench: conv3x3 32->32 @16x16, 16 images")
    for size in sizes:
        for p in ncsnpp_small.trace(size, images).products:
            if p["kind"] == "conv3x3":
                label = f"conv3x3 {p['k'] // 9}->{p['n']} @{p['side']}x{p['side']}"
            elif p["kind"] == "dense":
                where = f"@{p['side']}x{p['side']}" if p["side"] else "(time embedding)"
                label = f"dense {p['k']}->{p['n']} {where}"
            else:
                label = f"{p['layer']} @{p['side']}x{p['side']} (batched)"
            add((p["m"], p["k"], p["n"], p["batch"]), label, size)
    add((1024, 1024, 1024, 1), "square 1024^3")
    return [(label, m, k, n, b, counts) for (m, k, n, b), (label, counts) in out.items()]


def best_seconds(m, k, n, batch, repeats, sample_s):
    """Best seconds per call of a float32 (batch x) m x k . k x n product."""
    rng = np.random.default_rng(0)
    lead = (batch,) if batch > 1 else ()
    a = rng.standard_normal(lead + (m, k), dtype=np.float32)
    b = rng.standard_normal(lead + (k, n), dtype=np.float32)
    c = np.empty(lead + (m, n), dtype=np.float32)
    np.matmul(a, b, out=c)  # warm-up: thread pool start, page faults of `c`
    t0 = time.perf_counter()
    np.matmul(a, b, out=c)
    calls = max(1, int(sample_s / max(time.perf_counter() - t0, 1e-7)))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            np.matmul(a, b, out=c)
        best = min(best, (time.perf_counter() - t0) / calls)
    return best


def measure(threads, args):
    """Rows for one thread count (the BLAS pool already limited to `threads`)."""
    rows = []
    for label, m, k, n, batch, counts in shapes(args.images, args.sizes):
        s = best_seconds(m, k, n, batch, args.repeats, args.sample_ms / 1e3)
        fl = 2 * batch * m * k * n
        rows.append({"label": label, "m": m, "k": k, "n": n, "batch": batch, "threads": threads,
                     "seconds": s, "gflops": fl / s / 1e9, "count_per_pass": {str(size): c for size, c in counts.items()}})
    return rows


def openblas_info():
    """OpenBLAS's version and the kernel it picked at run time (numpy's bundled library, looked
    up through ctypes; None where that fails)."""
    info = {"config": None, "corename": None}
    libdir = os.path.dirname(np.__file__) + ".libs"
    for path in glob.glob(os.path.join(libdir, "*openblas*")):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for key, suffix in (("config", "get_config"), ("corename", "get_corename")):
            for name in (f"scipy_openblas_{suffix}64_", f"openblas_{suffix}64_", f"openblas_{suffix}"):
                f = getattr(lib, name, None)
                if f is not None:
                    f.restype = ctypes.c_char_p
                    info[key] = f().decode()
                    break
    return info


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    except OSError:
        return None


def child_rows(threads, args):
    """Runs this script for one thread count with the BLAS pool fixed by the environment."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    cmd = [sys.executable, os.path.abspath(__file__), "--child", str(threads), "--images", str(args.images),
           "--repeats", str(args.repeats), "--sample-ms", str(args.sample_ms), "--sizes", *map(str, args.sizes)]
    return json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    peer_record.add_common_args(p, "numpy_sgemm.json", repeats=9)
    p.add_argument("--images", type=int, default=32, help="images per product (the score model's chunk)")
    p.add_argument("--sample-ms", type=float, default=20.0)
    args = peer_record.parse_args(p, measure)
    if args is None:
        return

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    rows = []
    for t in args.threads:
        if threadpool_limits is not None:
            with threadpool_limits(limits=t, user_api="blas"):
                rows += measure(t, args)
        else:
            rows += child_rows(t, args)

    # The network's products as a whole: sum of FLOPs over sum of best times.
    network = []
    for size in args.sizes:
        for t in args.threads:
            mine = [(r, r["count_per_pass"].get(str(size), 0)) for r in rows if r["threads"] == t]
            fl = sum(c * 2 * r["batch"] * r["m"] * r["k"] * r["n"] for r, c in mine)
            s = sum(c * r["seconds"] for r, c in mine)
            network.append({"size": size, "images": args.images, "threads": t, "flops": fl, "seconds": s,
                            "gflops": fl / s / 1e9})

    print(f"float32 GEMM through numpy {np.__version__} / {openblas_info()['config']}")
    print(f"{'product':<46} {'m x k . k x n':>22} " + " ".join(f"{f'{t} thr GFLOP/s':>14}" for t in args.threads))
    for label, m, k, n, batch, _ in shapes(args.images, args.sizes):
        dims = f"{m}x{k}.{k}x{n}" + (f" x{batch}" if batch > 1 else "")
        rates = [next(r["gflops"] for r in rows if r["threads"] == t and (r["m"], r["k"], r["n"], r["batch"])
                      == (m, k, n, batch)) for t in args.threads]
        print(f"{label:<46} {dims:>22} " + " ".join(f"{g:>14.1f}" for g in rates))
    for size in args.sizes:
        rates = [next(r["gflops"] for r in network if r["size"] == size and r["threads"] == t) for t in args.threads]
        label = f"network: one {size}x{size} pass, {args.images} images"
        print(f"{label:<46} {'':>22} " + " ".join(f"{g:>14.1f}" for g in rates))

    record = {
        "what": "float32 GEMM GFLOP/s through numpy's BLAS at NCSN++-small's product shapes "
                "(benches/reference/numpy_sgemm.py); best of `repeats` samples per product",
        "settings": {"images": args.images, "sizes": args.sizes, "threads": args.threads, "repeats": args.repeats,
                     "sample_ms": args.sample_ms,
                     "thread_control": "threadpoolctl" if threadpool_limits else "OPENBLAS_NUM_THREADS (one process each)"},
        "rates": rows,
        "network": network,
        "blas": {"numpy": np.__version__, **openblas_info()},
        "machine": peer_record.machine(cpu=cpu_model()),
    }
    peer_record.write_record(args.out, record)


if __name__ == "__main__":
    main()
