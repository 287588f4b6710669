"""All gradients of f: R^n -> R by n forward-mode passes (one JVP per input direction)
against one reverse sweep, compiled, for growing n; and what finite differences would
cost for the MNIST MLP's ~100,000 parameters.  Plots the ratio if matplotlib is here."""

import sys
import time

import numpy as np

import graphc as gc
from graphc import nn


def median_time(fn, *args, repeats=7):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


rows = []
for n in (1, 10, 100, 1000):
    x = gc.vector("x", n)
    f = gc.sum(gc.tanh(x) * gc.sin(x)) + gc.square(gc.sum(x))
    reverse = gc.compile([x], gc.grad(f, x))
    v = gc.vector("v", n)                                 # one JVP, compiled once ...
    (tangent,) = gc.jvp([f], [x], [v])
    forward = gc.compile([x, v], tangent)
    point = np.linspace(-1, 1, n)
    basis = np.eye(n)

    def all_by_forward_mode():                            # ... and run n times
        return np.array([forward(point, basis[i]) for i in range(n)])
    assert np.allclose(all_by_forward_mode(), reverse(point))
    t_fwd, t_rev = median_time(all_by_forward_mode, repeats=3), median_time(reverse, point)
    rows.append((n, t_fwd, t_rev))
    print(f"n = {n:5d}: n forward passes {1e6 * t_fwd:10.1f} µs, one reverse sweep "
          f"{1e6 * t_rev:8.1f} µs, ratio {t_fwd / t_rev:8.1f}")

# Finite differences for the MNIST MLP: one forward pass per parameter.
X, Y = gc.tensor("X", (None, 784), "float32"), gc.tensor("Y", (None, 10), "float32")
logits, params, init = nn.mlp(X, (784, 128, 10), "sigmoid")
loss = nn.softmax_cross_entropy(logits, Y)
forward_pass = gc.compile([X, Y] + params, loss)
backprop = gc.compile([X, Y] + params, [loss] + gc.grad(loss, params))
rng = np.random.default_rng(0)
xb = rng.random((64, 784), dtype=np.float32)
yb = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 64)]
values = [init[p] for p in params]
n_params = sum(v.size for v in values)
t_forward = median_time(forward_pass, xb, yb, *values)
t_backprop = median_time(backprop, xb, yb, *values)
sample = 200                                   # time central differences on 200 parameters
start = time.perf_counter()
w = values[0].reshape(-1)
for i in range(sample):
    old = w[i]
    w[i] = old + 1e-3
    forward_pass(xb, yb, *values)
    w[i] = old - 1e-3
    forward_pass(xb, yb, *values)
    w[i] = old
per_parameter = (time.perf_counter() - start) / sample
print(f"\nMNIST MLP, {n_params:,} parameters, batch 64: one forward pass "
      f"{1e3 * t_forward:.2f} ms, backprop (value + all gradients) {1e3 * t_backprop:.2f} ms")
print(f"central differences: {1e3 * per_parameter:.2f} ms per parameter (measured on "
      f"{sample}), {per_parameter * n_params:.0f} s for all: "
      f"{per_parameter * n_params / t_backprop:,.0f}x backprop")

if "--plot" in sys.argv:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("--plot needs matplotlib: pip install 'graphc[plot]'")
    else:
        ns, fwd, rev = zip(*rows)
        plt.loglog(ns, np.array(fwd) / np.array(rev), marker="o")
        plt.xlabel("n (inputs)"), plt.ylabel("n forward passes / one reverse sweep")
        plt.savefig("forward_vs_reverse.png")
        print("saved forward_vs_reverse.png")
