"""The generated module reads as backpropagation: gradient outputs are named in its
docstring, the backward marker separates the sweeps whatever the output order, and
backward statements say which forward node's adjoint they compute."""

import re

import pytest

import graphc as gc


@pytest.fixture(scope="module")
def two_layer():
    X, Y = gc.tensor("X", (None, 4)), gc.tensor("Y", (None, 3))
    W1, W2 = gc.tensor("W1", (4, 5)), gc.tensor("W2", (5, 3))
    hidden = gc.tanh(X @ W1)
    loss = gc.mean(gc.cross_entropy(hidden @ W2, Y))
    g1, g2 = gc.grad(loss, [W1, W2])
    return [X, Y, W1, W2], loss, g1, g2, hidden


def _kernel(fn):
    return fn.source.split("def _kernel", 1)[1].split("\n    return", 1)[0]


def test_docstring_names_gradient_outputs(two_layer):
    inputs, loss, g1, g2, _ = two_layer
    fn = gc.compile(inputs, [loss, g1, g2], optimize="none")
    doc = fn.source.split('"""')[1]
    assert "[1] float64 (4, 5) = ∂[0]/∂W1" in doc
    assert "[2] float64 (5, 3) = ∂[0]/∂W2" in doc
    assert "[0] float64 ()" in doc and "[0] float64 () =" not in doc


@pytest.mark.parametrize("order", ["value first", "gradients first"])
def test_backward_marker_splits_the_sweeps(two_layer, order):
    inputs, loss, g1, g2, _ = two_layer
    outputs = [loss, g1, g2] if order == "value first" else [g1, g2, loss]
    kernel = _kernel(gc.compile(inputs, outputs, optimize="none"))
    forward, backward = kernel.split("# ---- backward ----")
    assert "= tanh(" in forward and "= tanh(" not in backward   # forward work stays forward
    assert "[∂/∂W1]" in backward and "[∂/∂W1]" not in forward
    assert "∂/∂" not in forward


def test_backward_statements_name_their_forward_node(two_layer):
    inputs, loss, g1, g2, hidden = two_layer
    fn = gc.compile(inputs, [loss, g1, g2])                        # after the passes too
    kernel = _kernel(fn)
    tanh_line = next(line for line in kernel.splitlines() if "= tanh(" in line)
    hidden_name = re.search(r"(v\d+) = tanh\(", tanh_line).group(1)
    assert f"[∂/∂{hidden_name}, adjoint of tanh(" in kernel
    assert "[∂/∂W2]" in kernel


def test_size_one_axes_get_no_loop():
    x = gc.tensor("x", (None, 1))
    fn = gc.compile([x], gc.sum(gc.exp(x), axis=0))
    assert "range(1)" not in fn.source
    assert "i1 = 0" in fn.source
