"""Graphs 100,000 nodes deep build, differentiate and evaluate without recursion, on the
graph and on the tape, and match a hand-written loop."""

import numpy as np

import graphc as gc
from graphc import tape
from graphc.graph import toposort

LAYERS = 33_334        # three nodes per layer: a chain 100,002 nodes deep


def step(y, x):
    return gc.tanh(y) * 0.9 + x


def reference(x0):
    y, dy_dx = x0, 1.0
    for _ in range(LAYERS):
        t = np.tanh(y)
        y, dy_dx = 0.9 * t + x0, 0.9 * (1 - t * t) * dy_dx + 1.0
    return y, dy_dx


def test_deep_graph():
    x = gc.scalar("x")
    y = x
    for _ in range(LAYERS):
        y = step(y, x)
    assert len(toposort([y])) >= 100_000
    g = gc.grad(y, x)
    value, slope = gc.evaluate([y, g], {x: 0.3})
    want_value, want_slope = reference(0.3)
    assert value == np.float64(want_value) or abs(value - want_value) < 1e-12
    assert abs(slope - want_slope) < 1e-9 * abs(want_slope)


def test_deep_tape():
    x = tape.Tensor(np.float64(0.3), requires_grad=True)
    y = x
    for _ in range(LAYERS):
        y = step(y, x)
    y.backward()
    want_value, want_slope = reference(0.3)
    assert abs(float(y.data) - want_value) < 1e-12
    assert abs(float(x.grad) - want_slope) < 1e-9 * abs(want_slope)
