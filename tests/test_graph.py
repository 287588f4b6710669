"""Graph construction: hash-consing, dtypes, shapes and their errors, zero gradients,
higher-order derivatives, evaluate's conventions, numerical stability."""

import numpy as np
import pytest

import graphc as gc
from graphc import tape


def test_hash_consing_and_identity():
    x, y = gc.scalar("x"), gc.scalar("y")
    assert (x + y) is (x + y)
    assert gc.sin(x) * 2.0 is gc.sin(x) * 2.0
    assert {x: 1}[x] == 1 and not (x == y) and x == x      # == is identity, not a node
    assert gc.scalar("x") is not x                          # every input is its own


def test_dtypes():
    x32, x64 = gc.vector("x32", 3, "float32"), gc.vector("x64", 3)
    assert gc.scalar("s").dtype == np.float64
    assert (x32 * 2.0).dtype == np.float32 and (2 * x32).dtype == np.float32
    assert (x32 + x64).dtype == np.float64
    assert (x32 + np.ones(3, np.float32)).dtype == np.float32
    assert (np.ones(3) + x32).dtype == np.float64            # NumPy arrays keep their dtype
    assert isinstance(np.ones(3) + x32, gc.Expr)
    assert gc.const(2.0).dtype == np.float64
    assert gc.grad(gc.sum(x32 * x64), x32).dtype == np.float32
    for bad in ("float16", "complex128", "uint8", "foo"):
        with pytest.raises(TypeError, match="dtype"):
            gc.tensor("t", (3,), bad)
    labels = gc.tensor("labels", (None,), "int64")          # integer and bool inputs ...
    mask = gc.tensor("mask", (3,), "bool")
    assert (labels + 1).dtype == np.int64 and (mask ^ True).dtype == np.bool_
    assert (labels * 0.5).dtype == np.float64 and gc.exp(mask).dtype == np.float64
    with pytest.raises(TypeError, match="'labels'.*int64"):     # ... are never differentiated
        gc.grad(gc.sum(labels * 1.0), labels)


def test_shapes_and_build_time_errors():
    X = gc.tensor("X", (None, 784))
    W = gc.tensor("W", (784, 128))
    assert (X @ W).shape == (None, 128)
    assert (X @ W + gc.vector("b", 128)).shape == (None, 128)
    assert gc.sum(X, axis=1, keepdims=True).shape == (None, 1)
    with pytest.raises(ValueError, match=r"\(3,\).*\(4,\)"):
        gc.vector("a", 3) + gc.vector("c", 4)
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 5\)"):
        gc.matrix("m", (2, 3)) @ gc.matrix("n", (4, 5))
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        gc.sum(gc.matrix("m", (2, 3)), axis=2)
    with pytest.raises(ValueError, match="cannot reshape"):
        gc.reshape(gc.matrix("m", (2, 3)), (4, 2))


def test_grad_errors_and_zero_gradients():
    x, v = gc.scalar("x"), gc.vector("v", None)
    with pytest.raises(ValueError, match="scalar"):
        gc.grad(v * x, x)
    with pytest.raises(TypeError):
        gc.grad(x * 2.0, "x")
    unused = gc.tensor("u", (None, 3))
    gx, gu = gc.grad(x * x, [x, unused])
    assert gu.shape == (None, 3)
    got = gc.evaluate([gx, gu], {x: 3.0, unused: np.ones((5, 3))})
    assert got[0] == 6.0 and got[1].shape == (5, 3) and not got[1].any()


def test_higher_order_derivatives():
    x, y = gc.scalar("x"), gc.scalar("y")
    d3 = gc.grad(gc.grad(gc.grad(x ** 3, x), x), x)
    assert gc.evaluate(gc.grad(gc.grad(x ** 3, x), x), {x: 2.0}) == 12.0
    assert gc.evaluate(d3, {x: 2.0}) == pytest.approx(6.0)
    assert gc.evaluate(gc.grad(gc.grad(gc.sin(x), x), x), {x: 0.7}) == pytest.approx(-np.sin(0.7))
    f = x * y * y
    dxy = gc.grad(gc.grad(f, x), y)
    dyx = gc.grad(gc.grad(f, y), x)
    assert gc.evaluate([dxy, dyx], {x: 1.5, y: -2.0}) == (pytest.approx(-4.0),) * 2


def test_jvp_matches_grad():
    x = gc.vector("x", 4)
    f = gc.sum(gc.tanh(x) * gc.exp(-x))
    v = np.array([0.3, -1.0, 2.0, 0.5])
    (jv,) = gc.jvp([f], [x], [v])
    point = np.array([0.1, -0.4, 0.9, 1.3])
    g = gc.evaluate(gc.grad(f, x), {x: point})
    assert gc.evaluate(jv, {x: point}) == pytest.approx(float(g @ v))


def test_evaluate_conventions_and_argument_checks():
    X, t = gc.tensor("X", (None, 3)), gc.vector("t", None)
    w = gc.vector("w", 3)
    r = X @ w - t
    feed = {X: np.ones((4, 3)), w: np.ones(3), t: np.zeros(4)}
    assert isinstance(gc.evaluate(r, feed), np.ndarray)
    assert isinstance(gc.evaluate([r], feed), tuple)
    first = gc.evaluate(r, feed)
    first[0] = 99.0
    assert gc.evaluate(r, feed)[0] == 3.0                      # a fresh array each time
    with pytest.raises(ValueError, match="no value given for input.*'t'"):
        gc.evaluate(r, {X: np.ones((4, 3)), w: np.ones(3)})
    with pytest.raises(ValueError, match="'w'"):
        gc.evaluate(r, {**feed, w: np.ones(4)})
    with pytest.raises(ValueError, match="'t'.*'X'"):
        gc.evaluate(r, {**feed, t: np.zeros(5)})              # dynamic dims disagree


STABLE = {
    "sigmoid": lambda x: gc.sum(gc.sigmoid(x)),
    "softplus": lambda x: gc.sum(gc.softplus(x)),
    "logsumexp": lambda x: gc.logsumexp(x),
    "log_softmax": lambda x: gc.sum(gc.log_softmax(x)),
    "cross_entropy": lambda x: gc.cross_entropy(x, np.array([0.0, 1.0, 0.0, 0.0])),
    "log(sigmoid)": lambda x: gc.sum(gc.log(gc.sigmoid(x))),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(STABLE))
def test_stable_at_large_inputs(name, dtype):
    point = np.array([1e4, -1e4, 0.0, 5.0], dtype=dtype)
    x = gc.vector("x", 4, dtype)
    cost = STABLE[name](x)
    g = gc.grad(cost, x)
    results = [gc.evaluate([cost, g], {x: point}), gc.compile([x], [cost, g])(point)]
    if name != "log(sigmoid)":      # rewritten when a graph is built; the tape is eager
        t = tape.Tensor(point, requires_grad=True)
        out = STABLE[name](t)
        out.backward()
        results.append((out.data, t.grad))
    for value, slope in results:
        assert np.all(np.isfinite(value)) and np.all(np.isfinite(slope)), (name, value, slope)
