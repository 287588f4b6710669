"""The benchmark workloads, each built for every system: graphc (a graph), the tape
(the same gc.* code on tape tensors), hand-written NumPy, and a hand-written Numba
kernel of the same math."""

from __future__ import annotations

import numba
import numpy as np

import graphc as gc
from graphc import tape


# W1 - tiny scalar graphs ------------------------------------------------------------

def w1_graph(kind):
    x, y, z = gc.scalar("x"), gc.scalar("y"), gc.scalar("z")
    if kind == "(x+y)*z":
        f, inputs = (x + y) * z, [x, y, z]
    else:
        f, inputs = x * x + x * y, [x, y]
    return inputs, [f] + gc.grad(f, inputs)


@numba.njit(cache=True)
def w1_njit_xyz(x, y, z):
    q = x + y
    return q * z, z, z, q


@numba.njit(cache=True)
def w1_njit_xx(x, y):
    return x * x + x * y, 2 * x + y, x


def w1_tape(kind, values):
    ts = [tape.Tensor(v, requires_grad=True) for v in values]
    out = (ts[0] + ts[1]) * ts[2] if kind == "(x+y)*z" else ts[0] * ts[0] + ts[0] * ts[1]
    out.backward()
    return (out.data, *[t.grad for t in ts])


# W2 - the one-neuron-per-layer chain ---------------------------------------------------

def w2_graph(L):
    ws = [gc.scalar(f"w{i}") for i in range(L)]
    bs = [gc.scalar(f"b{i}") for i in range(L)]
    a0, y = gc.scalar("a0"), gc.scalar("y")
    a = a0
    for w, b in zip(ws, bs):
        a = gc.sigmoid(w * a + b)
    c = gc.square(a - y)
    return ws + bs + [a0, y], [c] + gc.grad(c, ws + bs)


def w2_values(L, seed=0):
    rng = np.random.default_rng(seed)
    return list(rng.uniform(0.5, 1.5, L)) + list(rng.uniform(-0.2, 0.2, L)) + [0.3, 0.8]


@numba.njit(cache=True)
def w2_njit(w, b, a0, y):
    L = w.shape[0]
    a = np.empty(L + 1)
    a[0] = a0
    for i in range(L):
        a[i + 1] = 1.0 / (1.0 + np.exp(-(w[i] * a[i] + b[i])))
    delta = 2.0 * (a[L] - y)
    gw, gb = np.empty(L), np.empty(L)
    for i in range(L - 1, -1, -1):
        delta = delta * a[i + 1] * (1.0 - a[i + 1])
        gw[i] = delta * a[i]
        gb[i] = delta
        delta = delta * w[i]
    return (a[L] - y) ** 2, gw, gb


def w2_numpy(w, b, a0, y):
    a = [a0]
    for i in range(len(w)):
        a.append(1.0 / (1.0 + np.exp(-(w[i] * a[i] + b[i]))))
    delta = 2.0 * (a[-1] - y)
    gw, gb = np.empty(len(w)), np.empty(len(w))
    for i in reversed(range(len(w))):
        delta = delta * a[i + 1] * (1.0 - a[i + 1])
        gw[i], gb[i] = delta * a[i], delta
        delta = delta * w[i]
    return (a[-1] - y) ** 2, gw, gb


def w2_tape(values, L):
    ts = [tape.Tensor(v, requires_grad=True) for v in values]
    a = ts[2 * L]
    for w, b in zip(ts[:L], ts[L:2 * L]):
        a = gc.sigmoid(w * a + b)
    c = gc.square(a - ts[2 * L + 1])
    c.backward()
    return c.data


# W3 - a random scalar DAG ------------------------------------------------------------

def w3_cost(xs, n=1000, seed=0):
    """The seeded random DAG over leaves `xs` (graph inputs or tape tensors)."""
    rng = np.random.default_rng(seed)
    nodes = list(xs)
    for _ in range(n):
        a = nodes[rng.integers(max(0, len(nodes) - 50), len(nodes))]
        b = nodes[rng.integers(0, len(nodes))]
        k = rng.integers(0, 7)
        nodes.append([lambda: a + b, lambda: a - b, lambda: a * b * 0.5, lambda: gc.sin(a),
                      lambda: gc.exp(gc.tanh(a)), lambda: gc.tanh(a),
                      lambda: gc.sigmoid(a)][k]())
    cost = nodes[-1]
    for e in nodes[-20:-1]:
        cost = cost + e
    return cost


def w3_graph(n=1000, seed=0):
    xs = [gc.scalar(f"x{i}") for i in range(10)]
    cost = w3_cost(xs, n, seed)
    return xs, [cost] + gc.grad(cost, xs)


def w3_tape(values, n=1000, seed=0):
    ts = [tape.Tensor(np.float64(v), requires_grad=True) for v in values]
    cost = w3_cost(ts, n, seed)
    cost.backward()
    return (cost.data, *[t.grad for t in ts])


# W4 - elementwise over a million points ------------------------------------------------

def w4_graph():
    x, t = gc.vector("x"), gc.vector("t")
    w, b = gc.scalar("w"), gc.scalar("b")
    c = gc.sum(gc.softplus(-t * (w * x + b)))
    return [x, t, w, b], [c] + gc.grad(c, [w, b, x])


def w4_values(n=1_000_000, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(n), np.sign(rng.standard_normal(n)), 0.7, 0.1]


def w4_numpy(x, t, w, b):
    m = -t * (w * x + b)
    s = -t / (1.0 + np.exp(-m))
    return np.sum(np.logaddexp(0.0, m)), np.sum(s * x), np.sum(s), s * w


@numba.njit(cache=True, fastmath=False)
def w4_njit(x, t, w, b):
    c, gw, gb = 0.0, 0.0, 0.0
    gx = np.empty_like(x)
    for i in range(x.shape[0]):
        m = -t[i] * (w * x[i] + b)
        e = np.exp(-abs(m))
        c += max(m, 0.0) + np.log1p(e)
        sig = 1.0 / (1.0 + e) if m >= 0 else e / (1.0 + e)
        s = -t[i] * sig
        gw += s * x[i]
        gb += s
        gx[i] = s * w
    return c, gw, gb, gx


def w4_tape(x, t, w, b):
    tw, tb, tx = (tape.Tensor(np.float64(w), requires_grad=True),
                  tape.Tensor(np.float64(b), requires_grad=True), tape.Tensor(x, requires_grad=True))
    c = gc.sum(gc.softplus(-t * (tw * tx + tb)))
    c.backward()
    return c.data


# W5 - the MNIST MLP step --------------------------------------------------------------

def w5_graph(activation):
    X, Y = gc.tensor("X", (None, 784), "float32"), gc.tensor("Y", (None, 10), "float32")
    params = [gc.tensor("W1", (784, 128), "float32"), gc.tensor("b1", (128,), "float32"),
              gc.tensor("W2", (128, 10), "float32"), gc.tensor("b2", (10,), "float32")]
    W1, b1, W2, b2 = params
    act = gc.sigmoid if activation == "sigmoid" else gc.relu
    loss = gc.mean(gc.cross_entropy(act(X @ W1 + b1) @ W2 + b2, Y))
    return [X, Y] + params, loss, [loss] + gc.grad(loss, params)


def w5_values(B, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.random((B, 784), dtype=np.float32),
            np.eye(10, dtype=np.float32)[rng.integers(0, 10, B)],
            (rng.standard_normal((784, 128)) * 0.05).astype(np.float32),
            np.zeros(128, np.float32),
            (rng.standard_normal((128, 10)) * 0.1).astype(np.float32),
            np.zeros(10, np.float32)]


def w5_numpy(activation):
    def step(X, Y, W1, b1, W2, b2):
        z1 = X @ W1 + b1
        if activation == "sigmoid":
            h = 1.0 / (1.0 + np.exp(-z1))
        else:
            h = np.maximum(z1, 0)
        z2 = h @ W2 + b2
        m = z2.max(axis=1, keepdims=True)
        e = np.exp(z2 - m)
        s = e.sum(axis=1, keepdims=True)
        loss = np.mean(-(Y * (z2 - m - np.log(s))).sum(axis=1))
        g2 = (e / s - Y) / len(X)
        gW2, gb2 = h.T @ g2, g2.sum(0)
        gh = g2 @ W2.T
        g1 = gh * (h * (1 - h)) if activation == "sigmoid" else gh * (z1 > 0)
        return loss, X.T @ g1, g1.sum(0), gW2, gb2
    return step


@numba.njit(cache=True)
def gemm_floor(X, W1, W2, h, g2, g1):
    """The five matrix products of one MLP training step, and nothing else."""
    a = np.dot(X, W1)
    b = np.dot(h, W2)
    c = np.dot(g2, W2.T)
    d = np.dot(X.T, g1)
    e = np.dot(h.T, g2)
    return a[0, 0] + b[0, 0] + c[0, 0] + d[0, 0] + e[0, 0]


def w5_tape(activation):
    def step(X, Y, *params):
        ts = [tape.Tensor(p, requires_grad=True) for p in params]
        W1, b1, W2, b2 = ts
        act = gc.sigmoid if activation == "sigmoid" else gc.relu
        loss = gc.mean(gc.cross_entropy(act(tape.Tensor(X) @ W1 + b1) @ W2 + b2, tape.Tensor(Y)))
        loss.backward()
        return loss.data
    return step
