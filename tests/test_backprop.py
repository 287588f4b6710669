"""The worked examples of backpropagation, on every backend: the reference
interpreter, the eager tape and compiled Functions."""

import numpy as np
import pytest

import graphc as gc
from graphc import tape

BACKENDS = ["evaluate", "tape", "compiled"]


def value_and_grads(backend, build, values):
    """Run `build` (written once with gc functions) and its gradients on a backend."""
    if backend == "tape":
        tensors = [tape.Tensor(np.float64(v), requires_grad=True) for v in values]
        out = build(*tensors)
        out.backward()
        return float(out.data), [float(t.grad) for t in tensors]
    inputs = [gc.scalar(f"s{i}") for i in range(len(values))]
    out = build(*inputs)
    outputs = [out] + gc.grad(out, inputs)
    if backend == "evaluate":
        result = gc.evaluate(outputs, dict(zip(inputs, values)))
    else:
        result = gc.compile(inputs, outputs)(*values)
    return float(result[0]), [float(r) for r in result[1:]]


@pytest.mark.parametrize("backend", BACKENDS)
def test_x_plus_y_times_z(backend):
    value, grads = value_and_grads(backend, lambda x, y, z: (x + y) * z, [-2.0, 5.0, -4.0])
    assert value == -12.0 and grads == [-4.0, -4.0, 3.0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_node_used_by_two_paths(backend):
    x, y = 1.5, -0.5
    value, grads = value_and_grads(backend, lambda a, b: a ** 2 + a * b, [x, y])
    assert value == pytest.approx(x ** 2 + x * y)
    assert grads == pytest.approx([2 * x + y, x])        # both paths through x summed


def sigma(z):
    return 1 / (1 + np.exp(-z))


def chain_numpy(w, b, a0, y):
    """Hand-written forward and backward passes of the one-neuron-per-layer chain."""
    a, zs = [a0], []
    for wl, bl in zip(w, b):
        zs.append(wl * a[-1] + bl)
        a.append(sigma(zs[-1]))
    cost = (a[-1] - y) ** 2
    delta = 2 * (a[-1] - y)                   # dC/da_L
    gw, gb = np.zeros(len(w)), np.zeros(len(w))
    for l in reversed(range(len(w))):
        delta_z = delta * sigma(zs[l]) * (1 - sigma(zs[l]))
        gw[l], gb[l] = delta_z * a[l], delta_z
        delta = delta_z * w[l]                # dC/da_(l-1)
    return cost, gw, gb, a, zs


W, B, A0, Y = [0.8, -1.2, 1.5, 0.6], [0.1, 0.3, -0.2, 0.05], 0.9, 0.25


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_neuron_chain(backend):
    L = len(W)

    def build(*args):
        ws, bs, a, y = args[:L], args[L:2 * L], args[2 * L], args[2 * L + 1]
        for w, b in zip(ws, bs):
            a = gc.sigmoid(w * a + b)
        return gc.square(a - y)
    value, grads = value_and_grads(backend, build, W + B + [A0, Y])
    cost, gw, gb, a, zs = chain_numpy(np.array(W), np.array(B), A0, Y)
    assert value == pytest.approx(cost, rel=1e-12)
    np.testing.assert_allclose(grads[:L], gw, rtol=1e-10)
    np.testing.assert_allclose(grads[L:2 * L], gb, rtol=1e-10)
    # the lesson's formulas for the last layer
    s_prime = sigma(zs[-1]) * (1 - sigma(zs[-1]))
    assert grads[L - 1] == pytest.approx(a[-2] * s_prime * 2 * (a[-1] - Y), rel=1e-10)
    assert grads[2 * L - 1] == pytest.approx(s_prime * 2 * (a[-1] - Y), rel=1e-10)


def test_gradient_with_respect_to_an_intermediate_activation():
    ws = [gc.scalar(f"w{l}") for l in range(len(W))]
    bs = [gc.scalar(f"b{l}") for l in range(len(W))]
    a0, y = gc.scalar("a0"), gc.scalar("y")
    acts, a = [], a0
    for w, b in zip(ws, bs):
        a = gc.sigmoid(w * a + b)
        acts.append(a)
    cost = gc.square(a - y)
    d_prev = gc.grad(cost, acts[-2])                 # dC/da_(L-1): an intermediate node
    feed = dict(zip(ws + bs + [a0, y], W + B + [A0, Y]))
    _, _, _, act, zs = chain_numpy(np.array(W), np.array(B), A0, Y)
    s_prime = sigma(zs[-1]) * (1 - sigma(zs[-1]))
    assert float(gc.evaluate(d_prev, feed)) == pytest.approx(W[-1] * s_prime * 2 * (act[-1] - Y))
