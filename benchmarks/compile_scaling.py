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
from graphc.passes.lower import lower  # noqa: E402
from graphc.graph import toposort  # noqa: E402
from graphc.passes import optimize  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import workloads as W  # noqa: E402


def random_dag(n, seed=0):
    """The W3 family: n random nodes over 10 scalar inputs (see workloads.w3_cost)."""
    xs = [gc.scalar(f"x{i}") for i in range(10)]
    return xs, W.w3_cost(xs, n, seed)


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


_TRANSCENDENTAL = re.compile(r"math\.(exp|log|log1p|tanh|sin|cos)\(|_sigmoid\(")


def transcendental_count(source):
    """exp/log/tanh/sin/cos evaluations in the kernel's statements (a `_sigmoid` call
    is one exp): the dominant cost of elementwise loops."""
    kernel = source.split("def _kernel(", 1)[-1].split("def check_args(", 1)[0]
    return sum(len(_TRANSCENDENTAL.findall(line.split("#", 1)[0]))
               for line in kernel.splitlines())


def workloads():
    """(name, inputs, outputs, arguments) of the benchmark graphs (benchmarks/workloads.py)."""
    xs, outputs = W.w3_graph(1000)
    yield "W3 DAG 1000", xs, outputs, [0.1 * i for i in range(10)]
    inputs, outputs = W.w2_graph(100)
    yield "W2 chain L=100", inputs, outputs, W.w2_values(100)
    inputs, outputs = W.w4_graph()
    yield "W4 softplus", inputs, outputs, W.w4_values()
    inputs, _, outputs = W.w5_graph("sigmoid")
    yield "W5 MLP", inputs, outputs, W.w5_values(128)


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
          "| exp/log (none) | exp/log (full) | µs per call (none) | µs per call (full) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, inputs, outputs, args in workloads():
        counts, flops, fns, trans = [], [], [], []
        for level in ("none", "full"):
            counts.append(len(toposort(lower(optimize(outputs, level)))))
            fns.append(gc.compile(inputs, outputs, optimize=level))
            flops.append(flop_count(fns[-1].source))
            trans.append(transcendental_count(fns[-1].source))
        for fn in fns:
            fn(*args)
        seconds = [[], []]
        for _ in range(3):                       # interleaved: none, full, none, full ...
            for k, fn in enumerate(fns):
                seconds[k].append(run_time(fn, args, rounds=3, number=5))
        t_none, t_full = (1e6 * float(np.median(s)) for s in seconds)
        print(f"| {name} | {counts[0]} | {counts[1]} | {flops[0]} | {flops[1]} "
              f"| {trans[0]} | {trans[1]} | {t_none:,.1f} | {t_full:,.1f} |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
