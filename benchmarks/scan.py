"""W2 (the one-neuron-per-layer sigmoid chain) with gc.scan over vector weights, against a
hand-written njit loop (value + both weight-vector gradients), interleaved, medians;
and cold compile time against the chain length (each length in a fresh process).

    python benchmarks/scan.py
"""

import subprocess
import sys
import time

import numba
import numpy as np

import graphc as gc


@numba.njit(cache=True)
def hand(w, b, a0):
    L = w.shape[0]
    a = np.empty(L + 1)
    a[0] = a0
    for l in range(L):
        a[l + 1] = 1.0 / (1.0 + np.exp(-(w[l] * a[l] + b[l])))
    dw, db = np.empty(L), np.empty(L)
    delta = 1.0
    for l in range(L - 1, -1, -1):
        dz = delta * a[l + 1] * (1.0 - a[l + 1])
        dw[l], db[l], delta = dz * a[l], dz, dz * w[l]
    return a[L], dw, db


def chain():
    w, b, a0 = gc.vector("w", None), gc.vector("b", None), gc.scalar("a0")
    a_L, _ = gc.scan(lambda a, wb: (gc.sigmoid(wb[0] * a + wb[1]), None), a0, (w, b))
    return gc.compile([w, b, a0], [a_L] + gc.grad(a_L, [w, b]))


def per_call(L=1000, rounds=30, reps=200):
    fn = chain()
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=L), rng.normal(size=L) * 0.1
    ref, got = hand(w, b, 0.3), fn(w, b, 0.3)
    for r, g in zip(ref, got):
        np.testing.assert_allclose(g, r, rtol=1e-9, atol=1e-300)
    times = {"graphc scan": [], "hand njit": []}
    systems = [("graphc scan", lambda: fn(w, b, 0.3)), ("hand njit", lambda: hand(w, b, 0.3))]
    for k in range(rounds):
        for name, f in systems[k % 2:] + systems[:k % 2]:
            t0 = time.perf_counter()
            for _ in range(reps):
                f()
            times[name].append((time.perf_counter() - t0) / reps)
    for name, ts in times.items():
        print(f"W2 L={L}: {name:12s} {np.median(ts) * 1e6:8.1f} us per call (value + dw + db)")


COLD = """
import time, numpy as np
t0 = time.perf_counter()
import graphc as gc
from benchmarks.scan import chain
fn = chain(); L = {L}
fn(np.ones(L) * 0.1, np.zeros(L), 0.3)
print(time.perf_counter() - t0)
"""


def compile_vs_length():
    import os
    import tempfile
    for L in (100, 10_000):
        with tempfile.TemporaryDirectory() as d:
            env = dict(os.environ, GRAPHC_CACHE_DIR=d, NUMBA_CACHE_DIR=d)
            out = subprocess.run([sys.executable, "-c", COLD.format(L=L)], env=env, text=True,
                                 capture_output=True, check=True).stdout
            print(f"cold import + compile + first call, L={L}: {float(out):.2f} s")


if __name__ == "__main__":
    per_call()
    compile_vs_length()
