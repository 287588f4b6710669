"""gc.scan and gc.fori_loop: evaluate, tape, compiled loops, grad, jvp, grad of grad."""

import re

import numpy as np
import pytest

import graphc as gc
from graphc import tape

RNG = np.random.default_rng(0)
B, D, H = 2, 3, 4


def _fd(f, x, eps=1e-6):
    """Central finite differences of scalar f at array x."""
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = eps
        g[i] = (f(x + e) - f(x - e)) / (2 * eps)
    return g


# -- cumsum ---------------------------------------------------------------------

XS = gc.vector("xs", None)
CARRY, YS = gc.scan(lambda c, x: (c + x, c + x), gc.const(0.0), XS)
CUMSUM_COST = gc.sum(YS * YS) + CARRY
CUMSUM_GRAD = gc.grad(CUMSUM_COST, XS)


def _cumsum_cost(v):
    cs = np.cumsum(v)
    return (cs ** 2).sum() + cs[-1]


@pytest.fixture(scope="module")
def cumsum_fn():
    return gc.compile([XS], [CARRY, YS, CUMSUM_GRAD])


def test_cumsum_evaluate():
    v = RNG.normal(size=7)
    c, ys = gc.evaluate([CARRY, YS], {XS: v})
    np.testing.assert_allclose(ys, np.cumsum(v))
    np.testing.assert_allclose(c, v.sum())
    g = gc.evaluate(CUMSUM_GRAD, {XS: v})
    np.testing.assert_allclose(g, _fd(_cumsum_cost, v), rtol=1e-6, atol=1e-6)


def test_cumsum_compiled_is_a_loop_for_any_length(cumsum_fn):
    for n in (1, 5, 200):
        v = RNG.normal(size=n)
        c, ys, g = cumsum_fn(v)
        np.testing.assert_allclose(ys, np.cumsum(v))
        np.testing.assert_allclose(c, v.sum())
        np.testing.assert_allclose(g, gc.evaluate(CUMSUM_GRAD, {XS: v}), rtol=1e-10)
    assert "_op_scan_" in cumsum_fn.source       # one call of the loop, not unrolled


def test_source_dot_and_trace_show_the_loop_with_its_body(cumsum_fn):
    src = cumsum_fn.source
    assert src.startswith(cumsum_fn.module_source)
    assert "def loop(" in src and "for s in range(n):" in src          # the loop ...
    assert "def _kernel(carry_0, x_0)" in src                           # ... and its body
    dot = gc.to_dot([CARRY, YS], grads=[CUMSUM_GRAD])
    assert dot.count("subgraph cluster_") >= 2                        # forward and reverse
    assert 'label="scan' in dot and "compiled once" in dot
    v = RNG.normal(size=4)
    tr = gc.trace(CUMSUM_COST, {XS: v})
    scans = [r for r in tr.forward if re.search(r"scan_[0-9a-f]{20}\(", r["computation"])]
    assert len(scans) == 1                                            # the loop: one node
    np.testing.assert_allclose(tr.forward[-1]["value"], _cumsum_cost(v))
    import shutil
    import subprocess
    if shutil.which("dot"):
        subprocess.run(["dot", "-Tsvg"], input=dot.encode(), check=True, capture_output=True,
                       timeout=30)


def test_reverse():
    v = RNG.normal(size=6)
    c, ys = gc.scan(lambda c, x: (c + x, c + x), gc.const(0.0), XS, reverse=True)
    cv, ysv = gc.evaluate([c, ys], {XS: v})
    np.testing.assert_allclose(ysv, np.cumsum(v[::-1])[::-1])
    np.testing.assert_allclose(cv, v.sum())
    g = gc.evaluate(gc.grad(gc.sum(ys * ys), XS), {XS: v})
    np.testing.assert_allclose(g, _fd(lambda u: (np.cumsum(u[::-1]) ** 2).sum(), v), atol=1e-6)


def test_tuple_carry_no_y_and_fori_loop():
    a0, b0 = gc.scalar("a0"), gc.scalar("b0")
    (a, b), ys = gc.scan(lambda c, _: ((c[1], c[0] + c[1]), None), (a0, b0), length=10)
    assert ys is None
    assert gc.evaluate([a, b], {a0: 0.0, b0: 1.0}) == (55.0, 89.0)
    da = gc.grad(b, [a0, b0])
    assert gc.evaluate(da, {a0: 0.0, b0: 1.0}) == (55.0, 89.0)       # b10 = F10 a0 + F11 b0
    c = gc.fori_loop(0, 5, lambda i, c: c * 2.0 + gc.astype(i, "float64"), a0)
    ref = 3.0
    for i in range(5):
        ref = ref * 2 + i
    assert gc.evaluate(c, {a0: 3.0}) == ref
    assert gc.evaluate(gc.grad(c, a0), {a0: 3.0}) == 32.0


# -- vector-weight sigmoid chain (W2) ---------------------------------------------

W, BIAS, A0 = gc.vector("w", None), gc.vector("b", None), gc.scalar("a0")
A_L, _ = gc.scan(lambda a, wb: (gc.sigmoid(wb[0] * a + wb[1]), None), A0, (W, BIAS))
CHAIN_GRADS = gc.grad(A_L, [W, BIAS, A0])


def _chain_backprop(w, b, a0):
    a = [a0]
    for wl, bl in zip(w, b):
        a.append(1 / (1 + np.exp(-(wl * a[-1] + bl))))
    dw, db, delta = np.zeros_like(w), np.zeros_like(b), 1.0
    for l in range(len(w) - 1, -1, -1):
        dz = delta * a[l + 1] * (1 - a[l + 1])
        dw[l], db[l], delta = dz * a[l], dz, dz * w[l]
    return a[-1], dw, db, delta


@pytest.fixture(scope="module")
def chain_fn():
    return gc.compile([W, BIAS, A0], [A_L] + CHAIN_GRADS)


def test_sigmoid_chain_against_backprop(chain_fn):
    for L in (4, 300):
        w, b = RNG.normal(size=L), RNG.normal(size=L) * 0.1
        ref = _chain_backprop(w, b, 0.3)
        got = gc.evaluate([A_L] + CHAIN_GRADS, {W: w, BIAS: b, A0: 0.3})
        for r, g in zip(ref, got):
            np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-14)
        for r, g in zip(ref, chain_fn(w, b, 0.3)):
            np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-14)


def test_jvp_and_hvp_through_scan():
    L = 5
    w, b, v = RNG.normal(size=L), RNG.normal(size=L) * 0.1, RNG.normal(size=L)
    feed = {W: w, BIAS: b, A0: 0.3}
    g_w = CHAIN_GRADS[0]
    (tangent,) = gc.jvp([A_L], [W], [gc.const(v)])
    np.testing.assert_allclose(gc.evaluate(tangent, feed), gc.evaluate(g_w, feed) @ v, rtol=1e-10)
    hvp = gc.grad(gc.sum(g_w * gc.const(v)), W)
    grad_at = lambda u: _chain_backprop(u, b, 0.3)[1]                  # noqa: E731
    fd = (grad_at(w + 1e-5 * v) - grad_at(w - 1e-5 * v)) / 2e-5
    np.testing.assert_allclose(gc.evaluate(hvp, feed), fd, rtol=1e-5, atol=1e-8)


# -- vanilla RNN --------------------------------------------------------------------

XR = gc.tensor("X", (None, B, D))
WH, UX, BH, H0 = gc.tensor("W", (H, H)), gc.tensor("U", (D, H)), gc.vector("bh", H), gc.tensor("h0", (B, H))


def _rnn_step(h, x):
    h = gc.tanh(h @ WH + x @ UX + BH)
    return h, gc.sum(h * h)


H_T, RNN_YS = gc.scan(_rnn_step, H0, XR)
RNN_COST = gc.sum(H_T) + gc.sum(RNN_YS)
RNN_PARAMS = [WH, UX, BH, H0, XR]
RNN_GRADS = gc.grad(RNN_COST, RNN_PARAMS)


def _rnn_values(T):
    r = np.random.default_rng(T)
    return {XR: r.normal(size=(T, B, D)), WH: r.normal(size=(H, H)) * 0.5,
            UX: r.normal(size=(D, H)) * 0.5, BH: r.normal(size=H) * 0.1, H0: r.normal(size=(B, H))}


def _rnn_numpy_cost(v):
    h = v[H0]
    total = 0.0
    for x in v[XR]:
        h = np.tanh(h @ v[WH] + x @ v[UX] + v[BH])
        total += (h * h).sum()
    return h.sum() + total


@pytest.fixture(scope="module")
def rnn_fn():
    return gc.compile([XR, WH, UX, BH, H0], [RNN_COST] + RNN_GRADS)


def test_rnn_against_unrolled_and_finite_differences():
    T = 3
    vals = _rnn_values(T)
    h, ys = H0, []
    for t in range(T):
        h, y = _rnn_step(h, XR[t])
        ys.append(y)
    unrolled = gc.sum(h) + gc.sum(gc.stack(ys))
    ref = gc.evaluate([unrolled] + gc.grad(unrolled, RNN_PARAMS), vals)
    got = gc.evaluate([RNN_COST] + RNN_GRADS, vals)
    for r, g in zip(ref, got):
        np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got[0], _rnn_numpy_cost(vals))
    for p, g in zip(RNN_PARAMS, got[1:]):
        def f(value, p=p):
            return _rnn_numpy_cost({**vals, p: value})
        np.testing.assert_allclose(g, _fd(f, vals[p]), rtol=1e-5, atol=1e-7)


def _rnn_numpy_bptt(v):
    """Cost and gradients (W, U, bh, h0, X) by hand: backpropagation through time."""
    W_, U_, b_, X_ = v[WH], v[UX], v[BH], v[XR]
    hs = [v[H0]]
    for x in X_:
        hs.append(np.tanh(hs[-1] @ W_ + x @ U_ + b_))
    cost = hs[-1].sum() + sum((h * h).sum() for h in hs[1:])
    dW, dU, db, dX = np.zeros_like(W_), np.zeros_like(U_), np.zeros_like(b_), np.zeros_like(X_)
    dh = np.ones_like(hs[-1])
    for t in range(len(X_) - 1, -1, -1):
        dz = (dh + 2 * hs[t + 1]) * (1 - hs[t + 1] ** 2)
        dW += hs[t].T @ dz
        dU += X_[t].T @ dz
        db += dz.sum(0)
        dX[t] = dz @ U_.T
        dh = dz @ W_.T
    return cost, dW, dU, db, dh, dX


def test_rnn_compiled_dynamic_length(rnn_fn):
    """One compiled Function, T = 3 and T = 500: against hand BPTT (and the interpreter
    at T = 3)."""
    for T in (3, 500):
        vals = _rnn_values(T)
        got = rnn_fn(vals[XR], vals[WH], vals[UX], vals[BH], vals[H0])
        for r, g in zip(_rnn_numpy_bptt(vals), got):
            np.testing.assert_allclose(g, r, rtol=1e-9, atol=1e-10)
        if T == 3:
            ref = gc.evaluate([RNN_COST] + RNN_GRADS, vals)
            for r, g in zip(ref, got):
                np.testing.assert_allclose(g, r, rtol=1e-9, atol=1e-12)


# -- nested scans, T = 0, dynamic carries -------------------------------------------

MN = gc.tensor("M", (None, 3))


def _outer_step(c, row):
    s, _ = gc.scan(lambda a, x: (gc.sin(a * x + c), None), gc.const(0.5), row)
    return c + s, s * c


NEST_C, NEST_YS = gc.scan(_outer_step, gc.const(0.1), MN)
NEST_COST = NEST_C + gc.sum(NEST_YS * NEST_YS)
NEST_GRAD = gc.grad(NEST_COST, MN)


def _nested_numpy(m):
    c, ys = 0.1, []
    for row in m:
        a = 0.5
        for x in row:
            a = np.sin(a * x + c)
        ys.append(a * c)
        c = c + a
    return c, np.array(ys)


def test_nested_scans_values_and_gradients():
    m = RNG.normal(size=(4, 3))
    cost = lambda u: (lambda c, ys: c + (ys * ys).sum())(*_nested_numpy(u))  # noqa: E731
    fd = _fd(cost, m)
    c, ys, g = gc.evaluate([NEST_C, NEST_YS, NEST_GRAD], {MN: m})
    ref_c, ref_ys = _nested_numpy(m)
    np.testing.assert_allclose(c, ref_c, rtol=1e-12)
    np.testing.assert_allclose(ys, ref_ys, rtol=1e-12)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)
    fn = gc.compile([MN], [NEST_C, NEST_YS, NEST_GRAD])
    for got, ref in zip(fn(m), (c, ys, g)):
        np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)
    # grad of grad through both levels (a second-order directional derivative)
    v = RNG.normal(size=m.shape)
    hvp = gc.evaluate(gc.grad(gc.sum(NEST_GRAD * gc.const(v)), MN), {MN: m})
    gfun = lambda u: gc.evaluate(NEST_GRAD, {MN: u})                  # noqa: E731
    np.testing.assert_allclose(hvp, (gfun(m + 1e-5 * v) - gfun(m - 1e-5 * v)) / 2e-5,
                               rtol=1e-4, atol=1e-6)


def test_zero_length_is_a_clear_error(cumsum_fn):
    with pytest.raises(ValueError, match="at least one step"):
        gc.evaluate(YS, {XS: np.zeros(0)})
    with pytest.raises(ValueError, match="at least one step"):
        cumsum_fn(np.zeros(0))
    with pytest.raises(ValueError, match="at least one step"):
        gc.scan(lambda c, x: (c + x, None), gc.const(0.0), gc.const(np.zeros(0)))


def test_dynamic_carry_shape_is_a_clear_error():
    v = gc.vector("v", None)
    with pytest.raises(gc.ShapeError, match="dynamic shape"):
        gc.scan(lambda c, x: (c * x, None), v, XS)


# -- the bound on what is still unrolled --------------------------------------------

UNROLLED = """
import numpy as np, graphc as gc
from graphc import codesize
T = 1300                      # about ten times the straight-line limit
W, X, h0 = gc.tensor("W", (4, 4)), gc.tensor("X", (T, 2, 4)), gc.tensor("h0", (2, 4))
h = h0
for t in range(T):
    h = gc.tanh(h @ W + X[t])
cost = gc.sum(h)
try:
    gc.compile([W, X, h0], [cost, gc.grad(cost, W)])
except codesize.KernelTooLarge as exc:
    print(exc)
"""


def test_unrolled_array_graph_past_the_limit_fails_fast(tmp_path):
    import os
    import subprocess
    import sys
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(tmp_path), NUMBA_CACHE_DIR=str(tmp_path))
    env.pop("GRAPHC_MAX_KERNEL_SIZE", None)
    out = subprocess.run([sys.executable, "-c", UNROLLED], env=env, text=True,
                         capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "estimated size" in out.stdout and "gc.scan" in out.stdout, out.stdout
    size = int(out.stdout.split("estimated size ")[1].split()[0].replace(",", ""))
    assert size > 10 * 25_000 and "GRAPHC_MAX_KERNEL_SIZE" in out.stdout


# -- the tape -----------------------------------------------------------------------

def test_scan_on_the_tape():
    vals = _rnn_values(4)
    Wt = tape.Tensor(vals[WH], requires_grad=True)
    Xt = tape.Tensor(vals[XR], requires_grad=True)
    h0 = tape.Tensor(vals[H0])

    def step(h, x):
        h = gc.tanh(h @ Wt + x @ vals[UX] + vals[BH])
        return h, gc.sum(h * h)
    h, ys = gc.scan(step, h0, Xt)
    cost = gc.sum(h) + gc.sum(ys)
    cost.backward()
    ref = gc.evaluate([RNN_COST, RNN_GRADS[0], RNN_GRADS[4]], vals)
    np.testing.assert_allclose(cost.data, ref[0])
    np.testing.assert_allclose(Wt.grad, ref[1], rtol=1e-10)
    np.testing.assert_allclose(Xt.grad, ref[2], rtol=1e-10)


def test_errors():
    with pytest.raises(gc.ShapeError, match="carry component 0"):
        gc.scan(lambda c, x: (gc.stack([c, c]), None), gc.const(0.0), XS)
    with pytest.raises(TypeError, match="xs or length"):
        gc.scan(lambda c, x: (c, None), gc.const(0.0))
    with pytest.raises(TypeError, match="bounds"):
        gc.fori_loop(0, gc.scalar("n"), lambda i, c: c, gc.const(0.0))
