"""One gradient checker for every test: central differences and random-direction
VJP/JVP checks (as HIPS autograd's check_vjp and JAX's check_grads), run against every
backend: the reference interpreter, the eager tape and compiled Functions."""

from __future__ import annotations

import numpy as np

import graphc as gc
from graphc import tape


def central_difference(f, values, eps=1e-6):
    """d f / d values[i] for a scalar function of a list of float64 arrays."""
    grads = []
    for i, v in enumerate(values):
        g = np.zeros_like(v, dtype=np.float64)
        for idx in np.ndindex(v.shape):
            plus = [np.array(a, dtype=np.float64, copy=True) for a in values]
            minus = [np.array(a, dtype=np.float64, copy=True) for a in values]
            h = eps * max(1.0, abs(float(v[idx])))
            plus[i][idx] += h
            minus[i][idx] -= h
            g[idx] = (f(plus) - f(minus)) / (2 * h)
        grads.append(g)
    return grads


def graph_case(build, values, seed=0, prefix="a"):
    """Inputs, a scalar cost (the op's output weighted by a fixed random array) and its
    gradients, as graphs."""
    inputs = [gc.tensor(f"{prefix}{i}", np.shape(v), "float64") for i, v in enumerate(values)]
    out = build(*inputs)
    weights = np.random.default_rng(seed).uniform(0.5, 1.5, size=out.shape)
    cost = gc.sum(out * weights) if out.shape else out * 1.25
    return inputs, cost, gc.grad(cost, inputs), weights


def on_tape(build, values, weights):
    tensors = [tape.Tensor(np.array(v, dtype=np.float64), requires_grad=True) for v in values]
    out = build(*tensors)
    cost = gc.sum(out * weights) if np.shape(weights) else out * 1.25
    cost.backward()
    return float(cost.data), [t.grad for t in tensors]


def assert_close(got, want, what, rtol=1e-6, atol=1e-8):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=what)


def check_against_finite_differences(build, values, name, rtol=1e-5, atol=1e-7, prefix="a"):
    """The reference interpreter's gradient, the tape's and forward mode against
    central differences; returns the graph pieces for further backends."""
    inputs, cost, grads, weights = graph_case(build, values, prefix=prefix)
    feed = dict(zip(inputs, values))
    value, *analytic = gc.evaluate([cost] + grads, feed)

    def f(vals):
        return float(gc.evaluate(cost, dict(zip(inputs, vals))))
    numeric = central_difference(f, values)
    for i, (a, n) in enumerate(zip(analytic, numeric)):
        assert_close(a, n, f"{name}: d cost / d arg{i}, evaluate vs finite differences",
                     rtol, atol)
    tape_value, tape_grads = on_tape(build, values, weights)
    assert_close(tape_value, value, f"{name}: tape value")
    for i, (t, a) in enumerate(zip(tape_grads, analytic)):
        assert_close(t, a, f"{name}: d cost / d arg{i}, tape vs evaluate", 1e-10, 1e-12)
    # forward mode along a random direction: <grad, v> = jvp
    rng = np.random.default_rng(1)
    directions = [rng.standard_normal(np.shape(v)) for v in values]
    (tangent,) = gc.jvp([cost], inputs, [gc.const(d) for d in directions])
    expected = sum(float(np.sum(a * d)) for a, d in zip(analytic, directions))
    assert_close(gc.evaluate(tangent, feed), expected, f"{name}: jvp vs <grad, v>", 1e-8, 1e-10)
    return inputs, cost, grads, value, analytic
