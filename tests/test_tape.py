"""The eager tape: agreement with the reference interpreter, accumulation, mixing with
numbers and arrays, operators, non-scalar backward."""

import numpy as np
import pytest

import graphc as gc
from graphc import tape

GRAPHS = {
    "mlp": lambda X, W, b: gc.mean(gc.cross_entropy(gc.tanh(X @ W + b), np.eye(3)[[0, 2, 1, 1]])),
    "reductions": lambda X, W, b: gc.sum(gc.max(X, axis=0) * gc.logsumexp(W, axis=1)) + gc.sum(b),
    "broadcast": lambda X, W, b: gc.sum(gc.sigmoid(X) * b) + gc.sum(gc.softplus(W.T) / b),
}


@pytest.mark.parametrize("name", list(GRAPHS))
def test_tape_agrees_with_evaluate(name):
    rng = np.random.default_rng(0)
    values = [rng.standard_normal((4, 3)), rng.standard_normal((3, 3)), rng.standard_normal(3)]
    build = GRAPHS[name]
    inputs = [gc.tensor(n, v.shape) for n, v in zip("XWb", values)]
    cost = build(*inputs)
    want = gc.evaluate([cost] + gc.grad(cost, inputs), dict(zip(inputs, values)))
    tensors = [tape.Tensor(v, requires_grad=True) for v in values]
    out = build(*tensors)
    out.backward()
    np.testing.assert_allclose(out.data, want[0], rtol=1e-12)
    for t, w in zip(tensors, want[1:]):
        np.testing.assert_allclose(t.grad, w, rtol=1e-12, atol=1e-15)


def test_accumulation_and_zero_grad():
    t = tape.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    assert t.grad is None
    gc.sum(t * t).backward()
    gc.sum(t * 3.0).backward()
    np.testing.assert_array_equal(t.grad, 2 * t.data + 3.0)
    t.zero_grad()
    assert t.grad is None


def test_mixing_and_operators():
    a = tape.Tensor(np.array([[1.0, 2.0], [3.0, 4.0]]), requires_grad=True)
    v = np.array([0.5, -1.0])
    out = gc.sum((2.0 - a) ** 2 / 4) + gc.sum(v @ a.T) + gc.sum(gc.where(a > 2.5, a, -a))
    out.backward()
    A = a.data
    want = -(2 - A) / 2 + v[None, :] + np.where(A > 2.5, 1.0, -1.0)
    np.testing.assert_allclose(a.grad, want)
    assert isinstance(np.ones(2) + a, tape.Tensor) and isinstance(a <= 1.0, tape.Tensor)


def test_non_leaf_and_non_scalar_backward():
    x = tape.Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    y = x * 2.0
    with pytest.raises(ValueError, match="scalar"):
        y.backward()
    y.backward(np.array([1.0, 0.0, -1.0]))
    np.testing.assert_array_equal(x.grad, [2.0, 0.0, -2.0])
    assert y.grad is None                                   # only leaves keep gradients
    c = tape.Tensor(np.array([1.0, 2.0]))                   # requires_grad=False
    assert (gc.exp(c) * 2).requires_grad is False
