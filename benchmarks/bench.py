"""graphc against the eager tape, the reference interpreter, hand-written NumPy and a
hand-written Numba kernel (and PyTorch/JAX when installed), in one run, interleaved.

    python benchmarks/bench.py [--quick] [--only W1,W4] [--json results.json]

Each workload is checked first: every system must compute the same numbers as the
NumPy reference (the "ok" column).  Times are medians over rounds in which the systems
take turns in a rotating order; ratios are against graphc's compiled Function.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

os.environ.setdefault("GRAPHC_CACHE_DIR", tempfile.mkdtemp(prefix="graphc-bench-"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

import graphc as gc  # noqa: E402
import workloads as W  # noqa: E402

RESULTS: dict = {}


def interleaved(systems, rounds, number):
    """Median seconds per call of each system, taking turns in a rotating order."""
    names = list(systems)
    times = {n: [] for n in names}
    for r in range(rounds):
        for n in names[r % len(names):] + names[:r % len(names)]:
            fn = systems[n]
            start = time.perf_counter()
            for _ in range(number):
                fn()
            times[n].append((time.perf_counter() - start) / number)
    return {n: statistics.median(t) for n, t in times.items()}


def close(a, b, rtol=1e-4, atol=1e-6):
    """Same numbers?  (A gradient the tape never reached is None: zero.)"""
    a = [0.0 if x is None else x for x in a]
    try:
        return all(np.allclose(np.asarray(x, float), np.asarray(y, float), rtol=rtol, atol=atol)
                   for x, y in zip(a, b))
    except Exception:
        return False


def report(title, systems, checks, rounds, number, unit="µs"):
    scale = {"µs": 1e6, "ms": 1e3, "s": 1.0}[unit]
    medians = interleaved(systems, rounds, number)
    ref = medians.get("graphc compiled")
    best = min(medians.values())
    print(f"\n### {title}\n")
    print(f"| system | median ({unit}) | × graphc | × best | ok |")
    print("|---|---:|---:|---:|:-:|")
    for name, t in sorted(medians.items(), key=lambda kv: kv[1]):
        rel = f"{t / ref:.2f}" if ref else "-"
        print(f"| {name} | {t * scale:,.2f} | {rel} | {t / best:.2f} | "
              f"{'✓' if checks.get(name, True) else '✗'} |")
    RESULTS[title] = {n: {"seconds": t, "ok": checks.get(n, True)} for n, t in medians.items()}
    sys.stdout.flush()


def optional_frameworks():
    found = {}
    for name in ("torch", "jax"):
        try:
            found[name] = __import__(name)
        except ImportError:
            print(f"({name} is not installed: skipped)")
    return found


def timed_compile(inputs, outputs, args):
    start = time.perf_counter()
    fn = gc.compile(inputs, outputs)
    result = fn(*args)
    return fn, result, time.perf_counter() - start


def bench_w1(quick):
    for kind in ("(x+y)*z", "x*x+x*y"):
        inputs, outputs = W.w1_graph(kind)
        values = [1.5, -2.0, 0.5][:len(inputs)]
        fn = gc.compile(inputs, outputs)
        njit = W.w1_njit_xyz if kind == "(x+y)*z" else W.w1_njit_xx
        ref = njit(*values)
        systems = {"graphc compiled": lambda: fn(*values),
                   "bare njit (hand formula)": lambda: njit(*values),
                   "graphc tape": lambda: W.w1_tape(kind, values),
                   "gc.evaluate": lambda: gc.evaluate(outputs, dict(zip(inputs, values)))}
        checks = {"graphc compiled": close(fn(*values), ref),
                  "graphc tape": close(W.w1_tape(kind, values), ref),
                  "gc.evaluate": close(gc.evaluate(outputs, dict(zip(inputs, values))), ref)}
        report(f"W1 {kind}: value and all gradients, per call", systems, checks,
               rounds=5 if quick else 15, number=2000)


def bench_w2(quick):
    for L in (10, 100, 1000):
        inputs, outputs = W.w2_graph(L)
        values = W.w2_values(L)
        fn, got, seconds = timed_compile(inputs, outputs, values)
        w, b, a0, y = np.array(values[:L]), np.array(values[L:2 * L]), values[-2], values[-1]
        ref = W.w2_numpy(w, b, a0, y)
        flat_ref = [ref[0], *ref[1], *ref[2]]
        print(f"\nW2 L={L}: graphc cold compile (compile + first call) {seconds:.2f} s "
              f"({'interpreter' if 'CODE = np.frombuffer' in fn.source else 'straight-line'})")
        RESULTS.setdefault("compile", {})[f"W2 L={L}"] = seconds
        number = max(1, 2000 // L)
        systems = {"graphc compiled": lambda: fn(*values),
                   "hand njit (arrays)": lambda: W.w2_njit(w, b, a0, y),
                   "hand NumPy": lambda: W.w2_numpy(w, b, a0, y),
                   "graphc tape": lambda: W.w2_tape(values, L)}
        checks = {"graphc compiled": close(got, flat_ref, 1e-9, 1e-12),
                  "hand njit (arrays)": close(W.w2_njit(w, b, a0, y)[:1], ref[:1])}
        if L <= 100:
            systems["gc.evaluate"] = lambda: gc.evaluate(outputs, dict(zip(inputs, values)))
        report(f"W2 sigmoid chain L={L}: value and gradients, per call", systems, checks,
               rounds=3 if quick else 9, number=number)


def bench_w3(quick):
    inputs, outputs = W.w3_graph(1000)
    values = [0.1 * i for i in range(10)]
    fn, got, seconds = timed_compile(inputs, outputs, values)
    print(f"\nW3 DAG 1000 nodes: graphc cold compile (compile + first call) {seconds:.2f} s")
    RESULTS.setdefault("compile", {})["W3 1000 nodes"] = seconds
    feed = dict(zip(inputs, values))
    ref = gc.evaluate(outputs, feed)
    systems = {"graphc compiled": lambda: fn(*values),
               "gc.evaluate": lambda: gc.evaluate(outputs, feed),
               "graphc tape": lambda: W.w3_tape(values)}
    report("W3 random DAG, 1,000 nodes over 10 inputs: value and gradient, per call",
           systems, {"graphc compiled": close(got, ref, 1e-9, 1e-12),
                     "graphc tape": close(W.w3_tape(values), ref, 1e-9, 1e-12)},
           rounds=3 if quick else 9, number=20)


def bench_w4(quick, frameworks):
    inputs, outputs = W.w4_graph()
    values = W.w4_values()
    fn = gc.compile(inputs, outputs)
    par = gc.compile(inputs, outputs, parallel=True)
    ref = W.w4_numpy(*values)
    inplace = w4_numpy_inplace(len(values[0]))
    systems = {"graphc compiled": lambda: fn(*values),
               "graphc parallel=True": lambda: par(*values),
               "hand NumPy": lambda: W.w4_numpy(*values),
               "hand NumPy (in place)": lambda: inplace(*values),
               "hand njit": lambda: W.w4_njit(*values),
               "graphc tape": lambda: W.w4_tape(*values)}
    checks = {"graphc compiled": close(fn(*values), ref), "graphc parallel=True":
              close(par(*values), ref), "hand njit": close(W.w4_njit(*values), ref),
              "hand NumPy (in place)": close(inplace(*values), ref)}
    report("W4 sum(softplus(-t*(w*x+b))) over 10^6 points: value and gradients", systems,
           checks, rounds=5 if quick else 15, number=1, unit="ms")


def w4_numpy_inplace(n):
    """W4 in NumPy with preallocated buffers and in-place ufuncs (exp/log1p of
    -|m|, NumPy's SIMD loops): the formulation issue 17's W4 target refers to."""
    m, e, s, a = (np.empty(n) for _ in range(4))

    def run(x, t, w, b):
        np.multiply(x, w, out=m)
        np.add(m, b, out=m)
        np.multiply(m, t, out=m)
        np.negative(m, out=m)                      # m = -t * (w*x + b)
        np.abs(m, out=e)
        np.negative(e, out=e)
        np.exp(e, out=e)                           # e = exp(-|m|)
        np.log1p(e, out=a)
        np.maximum(m, 0.0, out=s)
        np.add(a, s, out=a)                        # softplus(m)
        c = a.sum()
        np.add(e, 1.0, out=a)
        np.divide(1.0, a, out=a)                   # 1 / (1 + e)
        np.multiply(a, e, out=s)
        np.copyto(s, a, where=m >= 0)              # sigmoid(m)
        np.multiply(s, t, out=s)
        np.negative(s, out=s)                      # d cost / d (w*x + b)
        return c, np.dot(s, x), s.sum(), s * w
    return run


def bench_w5(quick, frameworks):
    for activation in ("sigmoid", "relu"):
        inputs, loss, outputs = W.w5_graph(activation)
        grad_fn = gc.compile(inputs, outputs)
        par_fn = gc.compile(inputs, outputs, parallel=True)
        fwd_fn = gc.compile(inputs, loss)
        numpy_step = W.w5_numpy(activation)
        tape_step = W.w5_tape(activation)
        for B in (32, 128, 1024):
            values = W.w5_values(B)
            X, Y, W1, b1, W2, b2 = values
            h = np.zeros((B, 128), np.float32)
            g2, g1 = np.zeros((B, 10), np.float32), np.zeros((B, 128), np.float32)
            W.gemm_floor(X, W1, W2, h, g2, g1)
            ref = numpy_step(*values)
            systems = {"graphc compiled": lambda: grad_fn(*values),
                       "graphc parallel=True": lambda: par_fn(*values),
                       "graphc forward only": lambda: fwd_fn(*values),
                       "GEMM floor (5 products, njit)": lambda: W.gemm_floor(X, W1, W2, h, g2, g1),
                       "hand NumPy backprop": lambda: numpy_step(*values),
                       "graphc tape": lambda: tape_step(*values)}
            checks = {"graphc compiled": close(grad_fn(*values), ref, 1e-3, 1e-5),
                      "graphc parallel=True": close(par_fn(*values), ref, 1e-3, 1e-5)}
            report(f"W5 MLP 784-128-10 ({activation}), B={B}: value and gradients", systems,
                   checks, rounds=5 if quick else 11, number=3 if B == 1024 else 10, unit="ms")


W6_SCRIPT = textwrap.dedent("""
    import sys, time
    t0 = time.perf_counter()
    import numpy as np, graphc as gc
    sys.path.insert(0, {bench!r})
    import workloads as W
    t1 = time.perf_counter()
    if {which!r} == "W3":
        inputs, outputs = W.w3_graph(1000); args = [0.1 * i for i in range(10)]
    else:
        inputs, _, outputs = W.w5_graph("sigmoid"); args = W.w5_values(32)
    t2 = time.perf_counter()
    fn = gc.compile(inputs, outputs); fn(*args)
    t3 = time.perf_counter()
    print(t1 - t0, t3 - t2)
""")


def bench_w6(quick):
    print("\n### W6 compile time (fresh processes; graph building and imports excluded)\n")
    print("| graph | cold: empty cache (s) | cold graph, runtime cached (s) | warm (s) | import (s) |")
    print("|---|---:|---:|---:|---:|")
    bench = str(Path(__file__).resolve().parent)
    for which in ("W3", "W5"):
        cache = tempfile.mkdtemp(prefix="graphc-w6-")
        numba_cache = tempfile.mkdtemp(prefix="numba-w6-")
        env = dict(os.environ, GRAPHC_CACHE_DIR=cache, NUMBA_CACHE_DIR=numba_cache)
        script = W6_SCRIPT.format(bench=bench, which=which)
        runs = []
        for phase in ("cold", "graph-cold", "warm"):
            if phase == "graph-cold":          # keep the shared runtime, drop the graph
                for p in Path(cache).glob("graphc_[0-9a-f]*.py"):
                    p.unlink()
                for p in Path(numba_cache).rglob("graphc_[0-9a-f]*"):
                    p.unlink()
            out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                 env=env, timeout=900)
            if out.returncode:
                raise RuntimeError(out.stderr)
            runs.append([float(v) for v in out.stdout.split()])
        print(f"| {which} | {runs[0][1]:.2f} | {runs[1][1]:.2f} | {runs[2][1]:.2f} | "
              f"{runs[2][0]:.2f} |")
        RESULTS.setdefault("compile", {})[f"W6 {which}"] = {
            "cold": runs[0][1], "graph_cold": runs[1][1], "warm": runs[2][1], "import": runs[2][0]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--only", help="comma-separated workloads, e.g. W1,W4")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    chosen = set(args.only.split(",")) if args.only else {f"W{i}" for i in range(1, 7)}
    import numba
    print(f"graphc {gc.__version__}, numba {numba.__version__}, numpy {np.__version__}, "
          f"Python {platform.python_version()}, {os.cpu_count()} cores, "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    frameworks = optional_frameworks()
    for name, fn in [("W1", lambda: bench_w1(args.quick)), ("W2", lambda: bench_w2(args.quick)),
                     ("W3", lambda: bench_w3(args.quick)),
                     ("W4", lambda: bench_w4(args.quick, frameworks)),
                     ("W5", lambda: bench_w5(args.quick, frameworks)),
                     ("W6", lambda: bench_w6(args.quick))]:
        if name in chosen:
            fn()
    if args.json:
        Path(args.json).write_text(json.dumps(RESULTS, indent=1, default=float))


if __name__ == "__main__":
    main()
