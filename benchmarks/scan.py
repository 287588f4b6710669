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


# -- RNN: gc.scan against hand NumPy BPTT (H = 64, batch 32) ------------------------

H_RNN, B_RNN, D_RNN = 64, 32, 32


def rnn():
    X = gc.tensor("X", (None, B_RNN, D_RNN))
    W, U = gc.tensor("W", (H_RNN, H_RNN)), gc.tensor("U", (D_RNN, H_RNN))
    b, h0 = gc.vector("b", H_RNN), gc.tensor("h0", (B_RNN, H_RNN))

    def step(h, x):
        h = gc.tanh(h @ W + x @ U + b)
        return h, gc.sum(h * h)
    h, ys = gc.scan(step, h0, X)
    cost = gc.sum(h) + gc.sum(ys)
    return gc.compile([X, W, U, b, h0], [cost] + gc.grad(cost, [W, U, b]))


def rnn_numpy(X, W, U, b, h0):
    """Value and dW, dU, db by hand: backpropagation through time."""
    hs = [h0]
    for x in X:
        hs.append(np.tanh(hs[-1] @ W + x @ U + b))
    cost = hs[-1].sum() + sum(float((h * h).sum()) for h in hs[1:])
    dW, dU, db = np.zeros_like(W), np.zeros_like(U), np.zeros_like(b)
    dh = np.ones_like(h0)
    for t in range(len(X) - 1, -1, -1):
        dz = (dh + 2 * hs[t + 1]) * (1 - hs[t + 1] ** 2)
        dW += hs[t].T @ dz
        dU += X[t].T @ dz
        db += dz.sum(0)
        dh = dz @ W.T
    return cost, dW, dU, db


def rnn_rows(lengths=(50, 500, 5000), rounds=7):
    t0 = time.perf_counter()
    fn = rnn()
    rng = np.random.default_rng(0)
    W, U = rng.normal(size=(H_RNN, H_RNN)) * 0.1, rng.normal(size=(D_RNN, H_RNN)) * 0.1
    b, h0 = rng.normal(size=H_RNN) * 0.1, rng.normal(size=(B_RNN, H_RNN)) * 0.1
    fn(rng.normal(size=(2, B_RNN, D_RNN)), W, U, b, h0)
    print(f"RNN H={H_RNN} B={B_RNN}: compile + first call {time.perf_counter() - t0:.2f} s "
          "(warm Numba cache of the shared runtime)")
    for T in lengths:
        X = rng.normal(size=(T, B_RNN, D_RNN))
        for r, g in zip(rnn_numpy(X, W, U, b, h0), fn(X, W, U, b, h0)):
            np.testing.assert_allclose(g, r, rtol=1e-8, atol=1e-8)
        times = {"graphc scan": [], "NumPy BPTT": []}
        systems = [("graphc scan", lambda: fn(X, W, U, b, h0)),
                   ("NumPy BPTT", lambda: rnn_numpy(X, W, U, b, h0))]
        reps = max(1, 500 // T)
        for k in range(rounds):
            for name, f in systems[k % 2:] + systems[:k % 2]:
                t1 = time.perf_counter()
                for _ in range(reps):
                    f()
                times[name].append((time.perf_counter() - t1) / reps)
        g, n = np.median(times["graphc scan"]), np.median(times["NumPy BPTT"])
        print(f"RNN T={T:5d}: graphc scan {g * 1e3:8.2f} ms, NumPy BPTT {n * 1e3:8.2f} ms "
              f"(ratio {g / n:.2f})")


COLD = """
import time, numpy as np
t0 = time.perf_counter()
import graphc as gc
from benchmarks.scan import chain
fn = chain(); L = {L}
fn(np.ones(L) * 0.1, np.zeros(L), 0.3)
print(time.perf_counter() - t0)
"""


COLD_RNN = """
import time, numpy as np
t0 = time.perf_counter()
import graphc as gc
from benchmarks.scan import rnn, B_RNN, D_RNN, H_RNN
fn = rnn(); T = 500
fn(np.ones((T, B_RNN, D_RNN)) * 0.1, np.eye(H_RNN) * 0.1, np.ones((D_RNN, H_RNN)) * 0.01,
   np.zeros(H_RNN), np.zeros((B_RNN, H_RNN)))
print(time.perf_counter() - t0)
"""


def _cold(code):
    """Seconds of a fresh process with empty caches (import, compile, first call)."""
    import os
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, GRAPHC_CACHE_DIR=d, NUMBA_CACHE_DIR=d)
        out = subprocess.run([sys.executable, "-c", code], env=env, text=True,
                             capture_output=True, check=True).stdout
    return float(out)


def compile_vs_length(rounds=3):
    """Cold times, interleaved over the lengths, medians."""
    times = {100: [], 10_000: []}
    for k in range(rounds):
        for L in (list(times) if k % 2 == 0 else list(times)[::-1]):
            times[L].append(_cold(COLD.format(L=L)))
    for L, ts in times.items():
        print(f"W2 cold import + compile + first call, L={L}: {np.median(ts):.2f} s")
    print(f"  ratio L=10000 / L=100: {np.median(times[10_000]) / np.median(times[100]):.2f}")
    rnn_cold = [_cold(COLD_RNN) for _ in range(rounds)]
    print(f"RNN cold import + compile + first call, T=500: {np.median(rnn_cold):.2f} s")


if __name__ == "__main__":
    per_call()
    rnn_rows()
    compile_vs_length()
