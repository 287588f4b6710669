"""Extreme inputs and kinks: every backend stays finite where the mathematics is, and
takes the same documented subgradient at kinks (relu'(0) = 0, abs'(0) = 0, ties split
the gradient equally)."""

import numpy as np
import pytest

import graphc as gc
from graphc import tape

BIG = {"float32": [1e4, -1e4, 3e38, -3e38, 1e-40, 0.0],
       "float64": [1e4, -1e4, 1e308, -1e308, 1e-310, 0.0]}

FINITE = {   # functions whose value and gradient are finite for every finite input
    "sigmoid": lambda x: gc.sum(gc.sigmoid(x)),
    "tanh": lambda x: gc.sum(gc.tanh(x)),
    "logsumexp": lambda x: gc.logsumexp(x),
    "log_softmax": lambda x: gc.sum(gc.log_softmax(x) * np.array([1, 0, 0, 0, 0, 1.0])),
    "cross_entropy": lambda x: gc.cross_entropy(x, np.array([0, 1.0, 0, 0, 0, 0])),
}


def backends(build, point, dtype):
    x = gc.vector("x", len(point), dtype)
    cost = build(x)
    g = gc.grad(cost, x)
    yield "evaluate", gc.evaluate([cost, g], {x: point})
    yield "compiled", gc.compile([x], [cost, g])(point)
    t = tape.Tensor(point, requires_grad=True)
    out = build(t)
    out.backward()
    yield "tape", (out.data, np.zeros_like(point) if t.grad is None else t.grad)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["sigmoid", "tanh", "logsumexp", "log_softmax", "cross_entropy"])
def test_finite_at_extremes(name, dtype):
    # log_softmax of [3e38, -3e38] is -6e38: not a finite float32, so those two stop at 1e4
    big = name not in ("log_softmax", "cross_entropy")
    point = np.array(BIG[dtype] if big else [1e4, -1e4, 5.0, -3.0, 1e-40, 0.0], dtype=dtype)
    for backend, (value, slope) in backends(FINITE[name], point, dtype):
        assert np.isfinite(value) and np.all(np.isfinite(slope)), (backend, value, slope)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softplus_does_not_overflow(dtype):
    point = np.array([1e4, -1e4, 50.0, -50.0], dtype=dtype)
    for backend, (value, slope) in backends(lambda x: gc.sum(gc.softplus(x)), point, dtype):
        assert value == pytest.approx(1e4 + 50.0, rel=1e-6), backend
        np.testing.assert_allclose(slope, [1.0, 0.0, 1.0, 0.0], atol=1e-6, err_msg=backend)


def test_logsumexp_of_huge_values():
    point = np.array([1e308, 1e308, -1e308])
    for backend, (value, slope) in backends(gc.logsumexp, point, "float64"):
        assert value == pytest.approx(1e308 + np.log(2), rel=1e-12), backend
        np.testing.assert_allclose(slope, [0.5, 0.5, 0.0], err_msg=backend)


KINKS = [
    ("relu'(0) = 0", lambda x: gc.sum(gc.relu(x)), [0.0, -0.0, 1.0], [0.0, 0.0, 1.0]),
    ("abs'(0) = 0", lambda x: gc.sum(gc.abs(x)), [0.0, -2.0, 3.0], [0.0, -1.0, 1.0]),
    ("sign' = 0", lambda x: gc.sum(gc.sign(x)), [0.0, -2.0, 3.0], [0.0, 0.0, 0.0]),
    ("maximum tie", lambda x: gc.maximum(gc.sum(x * np.array([1.0, 0, 0])),
                                         gc.sum(x * np.array([0, 1.0, 0]))),
     [2.0, 2.0, 5.0], [0.5, 0.5, 0.0]),
    ("max reduction tie", gc.max, [3.0, 1.0, 3.0], [0.5, 0.0, 0.5]),
    ("min reduction tie", gc.min, [-1.0, -1.0, 4.0], [0.5, 0.5, 0.0]),
    ("sqrt at a denormal", lambda x: gc.sum(gc.sqrt(x)), [1e-310, 4.0, 1.0],
     [0.5 / np.sqrt(1e-310), 0.25, 0.5]),
]


@pytest.mark.parametrize("name, build, point, expected", KINKS, ids=[k[0] for k in KINKS])
def test_the_same_subgradient_in_every_backend(name, build, point, expected):
    point = np.array(point)
    for backend, (_, slope) in backends(build, point, "float64"):
        np.testing.assert_allclose(slope, expected, rtol=1e-12, err_msg=backend)
