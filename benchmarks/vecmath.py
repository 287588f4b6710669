"""ns per element of graphc's vectorisable runtime functions (graphc/codegen/vecmath.py)
in a plain Numba loop, against the same loop calling ``math.*`` (libm, one call per
element: PyPI's llvmlite has no vector math library) and against NumPy's ufunc.

    python benchmarks/vecmath.py [--n 1000000] [--rounds 15]

The three systems take turns in a rotating order; medians.  Inputs are uniform over a
range where each function does real work (not saturated)."""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import special

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from graphc.codegen import vecmath  # noqa: E402

DECO = "@numba.njit(cache=True, nogil=True, error_model='numpy')"

#: The libm formulation of each function, as graphc's op table wrote it before.
LIBM = {"exp": "math.exp(v)", "log": "math.log(v)", "log1p": "math.log1p(v)",
        "expm1": "math.expm1(v)", "tanh": "math.tanh(v)",
        "sigmoid": "1.0 / (1.0 + math.exp(-v)) if v >= 0 else math.exp(v) / (1.0 + math.exp(v))",
        "softplus": "max(v, 0.0) + math.log1p(math.exp(-abs(v)))",
        "sin": "math.sin(v)", "cos": "math.cos(v)"}
NUMPY = {"exp": np.exp, "log": np.log, "log1p": np.log1p, "expm1": np.expm1, "tanh": np.tanh,
         "sigmoid": special.expit, "softplus": lambda x, out: np.logaddexp(0, x, out=out),
         "sin": np.sin, "cos": np.cos}
DOMAIN = {"log": (1e-3, 1e3), "log1p": (-0.9, 1e3)}


def loops_module(directory):
    """A module with, per function, a loop over the vecmath version and one over libm."""
    src = ["import math", "import numba", "import numpy as np", ""]
    src += list(vecmath.definitions(DECO).values())
    for name in vecmath.FUNCTIONS:
        for kind, expr in (("vm", f"_{name}(v)"), ("libm", LIBM[name])):
            src += ["", DECO, f"def {kind}_{name}(x, out):", "    for i in range(x.shape[0]):",
                    "        v = x[i]", f"        out[i] = {expr}"]
    path = Path(directory) / "vecmath_bench_loops.py"
    path.write_text("\n".join(src) + "\n")
    spec = importlib.util.spec_from_file_location("vecmath_bench_loops", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def interleaved(systems, rounds):
    names = list(systems)
    times = {n: [] for n in names}
    for r in range(rounds):
        for n in names[r % len(names):] + names[:r % len(names)]:
            start = time.perf_counter()
            systems[n]()
            times[n].append(time.perf_counter() - start)
    return {n: statistics.median(t) for n, t in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--only", nargs="*", default=None, help="these functions only")
    args = parser.parse_args(argv)
    os.environ.setdefault("NUMBA_CACHE_DIR", tempfile.mkdtemp(prefix="vecmath-bench-"))
    module = loops_module(tempfile.mkdtemp(prefix="vecmath-bench-src-"))
    rng = np.random.default_rng(0)
    print(f"n = {args.n:,}, {args.rounds} interleaved rounds, medians (ns per element)\n")
    print("| function | dtype | vecmath (njit loop) | math.* (njit loop) | NumPy | "
          "math.* / vecmath | vecmath / NumPy |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for dtype in (np.float64, np.float32):
        for name in args.only or vecmath.FUNCTIONS:
            lo, hi = DOMAIN.get(name, (-20, 20))
            x = rng.uniform(lo, hi, args.n).astype(dtype)
            out = np.empty_like(x)
            vm, libm = getattr(module, f"vm_{name}"), getattr(module, f"libm_{name}")
            vm(x, out)
            libm(x, out)
            with np.errstate(all="ignore"):
                t = interleaved({"vecmath": lambda: vm(x, out), "libm": lambda: libm(x, out),
                                 "numpy": lambda: NUMPY[name](x, out=out)}, args.rounds)
            ns = {k: v * 1e9 / args.n for k, v in t.items()}
            print(f"| {name} | {np.dtype(dtype).name} | {ns['vecmath']:.2f} | {ns['libm']:.2f} | "
                  f"{ns['numpy']:.2f} | {ns['libm'] / ns['vecmath']:.1f}× | "
                  f"{ns['vecmath'] / ns['numpy']:.2f}× |", flush=True)


if __name__ == "__main__":
    main()
