"""Compile time against graph size, split into phases, and what the passes remove.

    python benchmarks/compile_scaling.py [--sizes 100,1000,3000,10000]

For seeded random scalar DAGs (the W3 family) it times each phase of gc.compile in
this process: autodiff, graph passes, code generation (lowering, scheduling, emission,
writing the cache entry), and Numba (the first call, which compiles, or loads the
interpreter).  SymPy is not used on these graphs (their ops all have code templates),
so it appears as 0.  Then it counts, for the benchmark graphs, the nodes of the
value+gradient graph and the floating-point operations of the generated code, with
optimize="none" and "full"."""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time


os.environ.setdefault("GRAPHC_CACHE_DIR", tempfile.mkdtemp(prefix="graphc-scaling-"))

import numpy as np  # noqa: E402

import graphc as gc  # noqa: E402
from graphc.codegen.lower import lower  # noqa: E402
from graphc.graph import toposort  # noqa: E402
from graphc.passes import optimize  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from workloads import w3_cost  # noqa: E402


def random_dag(n, seed=0):
    """The W3 family: n random nodes over 10 scalar inputs (see workloads.w3_cost)."""
    xs = [gc.scalar(f"x{i}") for i in range(10)]
    return xs, w3_cost(xs, n, seed)


def phases(n):
    xs, cost = random_dag(n)
    t0 = time.perf_counter()
    outputs = [cost] + gc.grad(cost, xs)
    t1 = time.perf_counter()
    optimize(outputs, "full")
    t2 = time.perf_counter()
    fn = gc.compile(xs, outputs)           # passes again + codegen + cache write + import
    t3 = time.perf_counter()
    fn(*[0.1 * i for i in range(len(xs))])
    t4 = time.perf_counter()
    mode = "interpreter" if "CODE = np.frombuffer" in fn.source else "straight-line"
    return {"nodes": n, "grad": t1 - t0, "passes": t2 - t1, "sympy": 0.0,
            "codegen": (t3 - t2) - (t2 - t1), "numba": t4 - t3, "total": t4 - t0,
            "mode": mode}


_FLOPS = re.compile(r"[-+*/](?![=*])|\*\*|math\.\w+\(|_\w+\(")


def flop_count(source):
    """Arithmetic operations and math calls in the kernel's statements (comments and
    argument checking excluded): a proxy for the work per element or per call."""
    kernel = source.split("def _kernel(", 1)[-1].split("def check_args(", 1)[0]
    count = 0
    for line in kernel.splitlines():
        code = line.split("#", 1)[0]
        if "=" in code and "np." not in code and "range(" not in code:
            count += len(_FLOPS.findall(code.split("=", 1)[1]))
    return count


def run_time(fn, args, rounds=7, number=20):
    """Median seconds per call."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(number):
            fn(*args)
        times.append((time.perf_counter() - start) / number)
    return float(np.median(times))


ARGUMENTS = {
    "W3 DAG 1000": lambda: [0.1 * i for i in range(10)],
    "W2 chain L=100": lambda: list(np.linspace(0.5, 1.5, 100)) + list(np.linspace(-0.2, 0.2, 100))
    + [0.3, 0.8],
    "W4 softplus": lambda: [np.linspace(-2, 2, 10**6), np.sign(np.linspace(-1, 1, 10**6)), 0.7, 0.1],
    "W5 MLP": lambda: [np.random.default_rng(0).random((128, 784), dtype=np.float32),
                       np.eye(10, dtype=np.float32)[np.arange(128) % 10],
                       np.full((784, 128), 0.01, np.float32), np.zeros(128, np.float32),
                       np.full((128, 10), 0.1, np.float32), np.zeros(10, np.float32)],
}


def workloads():
    xs, cost = random_dag(1000)
    yield "W3 DAG 1000", xs, [cost] + gc.grad(cost, xs)
    L = 100
    ws = [gc.scalar(f"w{i}") for i in range(L)]
    bs = [gc.scalar(f"b{i}") for i in range(L)]
    a0, y = gc.scalar("a0"), gc.scalar("y")
    a = a0
    for w, b in zip(ws, bs):
        a = gc.sigmoid(w * a + b)
    c = gc.square(a - y)
    yield "W2 chain L=100", ws + bs + [a0, y], [c] + gc.grad(c, ws + bs)
    x, t = gc.vector("x"), gc.vector("t")
    w, b = gc.scalar("w"), gc.scalar("b")
    c = gc.sum(gc.softplus(-t * (w * x + b)))
    yield "W4 softplus", [x, t, w, b], [c] + gc.grad(c, [w, b, x])
    X = gc.tensor("X", (None, 784), "float32")
    Y = gc.tensor("Y", (None, 10), "float32")
    params = [gc.tensor("W1", (784, 128), "float32"), gc.tensor("b1", (128,), "float32"),
              gc.tensor("W2", (128, 10), "float32"), gc.tensor("b2", (10,), "float32")]
    W1, b1, W2, b2 = params
    c = gc.mean(gc.cross_entropy(gc.sigmoid(X @ W1 + b1) @ W2 + b2, Y))
    yield "W5 MLP", [X, Y] + params, [c] + gc.grad(c, params)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,3000,10000")
    args = parser.parse_args(argv)
    print("| nodes | grad s | passes s | SymPy s | codegen s | Numba s | total s | kernel |")
    print("|---:|---:|---:|---:|---:|---:|---:|---|")
    for n in map(int, args.sizes.split(",")):
        p = phases(n)
        print(f"| {n} | {p['grad']:.2f} | {p['passes']:.2f} | {p['sympy']:.2f} | "
              f"{p['codegen']:.2f} | {p['numba']:.2f} | {p['total']:.2f} | {p['mode']} |")
        sys.stdout.flush()
    print()
    print("| graph | nodes (none) | nodes (full) | flops (none) | flops (full) "
          "| µs per call (none) | µs per call (full) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, inputs, outputs in workloads():
        counts, flops, fns = [], [], []
        for level in ("none", "full"):
            counts.append(len(toposort(lower(optimize(outputs, level)))))
            fns.append(gc.compile(inputs, outputs, optimize=level))
            flops.append(flop_count(fns[-1].source))
        args = ARGUMENTS[name]()
        for fn in fns:
            fn(*args)
        seconds = [[], []]
        for _ in range(3):                       # interleaved: none, full, none, full ...
            for k, fn in enumerate(fns):
                seconds[k].append(run_time(fn, args, rounds=3, number=5))
        t_none, t_full = (1e6 * float(np.median(s)) for s in seconds)
        print(f"| {name} | {counts[0]} | {counts[1]} | {flops[0]} | {flops[1]} "
              f"| {t_none:,.1f} | {t_full:,.1f} |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
