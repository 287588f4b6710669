"""Memory stays bounded: compile and call many different small Functions in one
process, and call one Function many times; print the resident set size (RSS).

    python benchmarks/memory.py [--functions 1000] [--calls 100000]
"""

from __future__ import annotations

import argparse
import gc as python_gc
import os
import tempfile

os.environ.setdefault("GRAPHC_CACHE_DIR", tempfile.mkdtemp(prefix="graphc-memory-"))

import numpy as np  # noqa: E402

import graphc as gc  # noqa: E402


def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def many_functions(n):
    """n different graphs (a different constant in each), compiled and called once."""
    x = gc.vector("x", 3)
    for i in range(n):
        fn = gc.compile([x], gc.sum(x * float(i)))
        assert fn(np.ones(3)) == 3.0 * i


def many_calls(n):
    x = gc.vector("x", None)
    cost = gc.sum(gc.tanh(x))
    fn = gc.compile([x], [cost, gc.grad(cost, x)])
    v = np.linspace(-1, 1, 100)
    for _ in range(n):
        fn(v)


def measure(functions, calls):
    many_functions(2)                         # warm up the imports and the runtime
    many_calls(10)
    python_gc.collect()
    start = rss_mb()
    many_functions(functions)
    python_gc.collect()
    after_functions = rss_mb()
    many_calls(calls)
    python_gc.collect()
    after_calls = rss_mb()
    return start, after_functions, after_calls


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--functions", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=100_000)
    args = parser.parse_args(argv)
    start, after_functions, after_calls = measure(args.functions, args.calls)
    print(f"RSS at start: {start:.1f} MB")
    print(f"after compiling and calling {args.functions} different Functions: "
          f"{after_functions:.1f} MB (+{after_functions - start:.1f} MB, "
          f"{1024 * (after_functions - start) / max(args.functions, 1):.1f} KB each)")
    print(f"after {args.calls} calls of one Function: {after_calls:.1f} MB "
          f"(+{after_calls - after_functions:.1f} MB)")


if __name__ == "__main__":
    main()
