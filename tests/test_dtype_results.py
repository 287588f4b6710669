"""Integer and boolean results on every backend: comparisons give bool; reductions of
bool count (NumPy's sum of a bool array is an integer count, its mean the fraction
that is true); max/min of bool; bools used in arithmetic and in gradients.

Each case is checked against NumPy on the reference interpreter, the eager tape and
compiled code at optimize="full" and "none" (all cases in one Function per level)."""

import numpy as np
import pytest

import graphc as gc
from graphc import tape

from checks import Bundle, assert_same

# x and y share some elements exactly, so == and the non-strict comparisons have ties
X = np.array([[0.5, -1.0, 2.0, 0.0], [1.5, 0.25, -0.75, 3.0], [-2.0, 1.0, 1.0, -0.5]])
Y = np.array([[0.5, 1.0, -2.0, 0.0], [1.0, 0.25, 0.5, -3.0], [-2.0, 2.0, 1.0, 0.5]])
ROW = np.array([1.0, 0.25, 2.0, -1.0])      # a constant, broadcast against (3, 4)

# name -> (build(x, y) on graphs and tape tensors, NumPy reference, kind of the result's
# dtype: "b" bool, "n" a number that is not bool (int or float), "f" float)
CASES = {
    "less": (lambda x, y: gc.less(x, y), np.less, "b"),
    "less_equal": (lambda x, y: gc.less_equal(x, y), np.less_equal, "b"),
    "greater": (lambda x, y: gc.greater(x, y), np.greater, "b"),
    "greater_equal": (lambda x, y: gc.greater_equal(x, y), np.greater_equal, "b"),
    "equal": (lambda x, y: gc.equal(x, y), np.equal, "b"),
    "operator <": (lambda x, y: x < y, lambda x, y: x < y, "b"),
    "operator <=": (lambda x, y: x <= y, lambda x, y: x <= y, "b"),
    "operator >": (lambda x, y: x > y, lambda x, y: x > y, "b"),
    "operator >=": (lambda x, y: x >= y, lambda x, y: x >= y, "b"),
    "comparison, broadcast (3,4) < (4,)": (lambda x, y: x < ROW, lambda x, y: x < ROW, "b"),
    "comparison with a number": (lambda x, y: x > 0.5, lambda x, y: x > 0.5, "b"),
    "sum of bool (all)": (lambda x, y: gc.sum(x < y), lambda x, y: np.sum(x < y), "n"),
    "sum of bool (all, == ties)": (lambda x, y: gc.sum(gc.equal(x, y)),
                                   lambda x, y: np.sum(x == y), "n"),
    "sum of bool, axis=0": (lambda x, y: gc.sum(x <= y, axis=0),
                            lambda x, y: np.sum(x <= y, axis=0), "n"),
    "sum of bool, axis=1 keepdims": (lambda x, y: gc.sum(x >= y, axis=1, keepdims=True),
                                     lambda x, y: np.sum(x >= y, axis=1, keepdims=True), "n"),
    "sum of bool + 0.0": (lambda x, y: gc.sum(x < y) + 0.0,
                          lambda x, y: np.sum(x < y) + 0.0, "f"),
    "sum of bool * x-dependent float": (lambda x, y: gc.sum(x > y) * gc.sum(x),
                                        lambda x, y: np.sum(x > y) * np.sum(x), "f"),
    "mean of bool (all)": (lambda x, y: gc.mean(x < y), lambda x, y: np.mean(x < y), "f"),
    "mean of bool, axis=1": (lambda x, y: gc.mean(gc.equal(x, y), axis=1),
                             lambda x, y: np.mean(x == y, axis=1), "f"),
    "mean of bool, axis=0 keepdims": (lambda x, y: gc.mean(x > y, axis=0, keepdims=True),
                                      lambda x, y: np.mean(x > y, axis=0, keepdims=True), "f"),
    "max of bool (all)": (lambda x, y: gc.max(x < y), lambda x, y: np.max(x < y), None),
    "max of bool, axis=1": (lambda x, y: gc.max(x > 2.5, axis=1),
                            lambda x, y: np.max(x > 2.5, axis=1), None),
    "min of bool, axis=0": (lambda x, y: gc.min(x <= y, axis=0),
                            lambda x, y: np.min(x <= y, axis=0), None),
    "max of bool + 0.0": (lambda x, y: gc.max(x < y, axis=0) + 0.0,
                          lambda x, y: np.max(x < y, axis=0) + 0.0, "f"),
    "min of bool * 2.0": (lambda x, y: gc.min(x > -3.0, axis=1) * 2.0,
                          lambda x, y: np.min(x > -3.0, axis=1) * 2.0, "f"),
    "bool * float": (lambda x, y: (x < y) * 2.0, lambda x, y: (x < y) * 2.0, "f"),
    "bool * input": (lambda x, y: (x < y) * x, lambda x, y: (x < y) * x, "f"),
    "(bool + 0.0) + bool": (lambda x, y: ((x < y) + 0.0) + (x > y),
                           lambda x, y: ((x < y) + 0.0) + (x > y), "f"),
    "(bool * 1.0) - bool + 0.5": (lambda x, y: (x <= y) * 1.0 - (x >= y) + 0.5,
                                  lambda x, y: (x <= y) * 1.0 - (x >= y) + 0.5, "f"),
    "float - bool": (lambda x, y: x - gc.equal(x, y), lambda x, y: x - (x == y), "f"),
    "bool / float": (lambda x, y: gc.greater(x, y) / 4.0, lambda x, y: (x > y) / 4.0, "f"),
    "sum(bool * input)": (lambda x, y: gc.sum((x < y) * x, axis=1),
                          lambda x, y: np.sum((x < y) * x, axis=1), "f"),
    "where(bool)": (lambda x, y: gc.where(x < y, x, y * 2.0),
                    lambda x, y: np.where(x < y, x, 2 * y), "f"),
    "comparison of bool-derived floats": (lambda x, y: gc.less((x < y) * 1.0, 0.5),
                                          lambda x, y: (x < y) * 1.0 < 0.5, "b"),
    "astype(bool, float64)": (lambda x, y: gc.astype(x < y, "float64"),
                              lambda x, y: (x < y).astype(np.float64), "f"),
    "logsumexp of bool-derived": (lambda x, y: gc.logsumexp((x < y) * 1.0, axis=1),
                                  lambda x, y: np.log(np.exp((x < y) * 1.0).sum(1)), "f"),
    "matmul of bool-derived": (lambda x, y: ((x < y) * 1.0) @ ROW,
                               lambda x, y: ((x < y) * 1.0) @ ROW, "f"),
}

# float32 inputs: the same cases, and the result's dtype must be NumPy's exactly (a mask
# times float32 data stays float32; a count times float32 data is float64 in NumPy 2)
FLOAT32 = ["less", "equal", "operator >=", "sum of bool (all)", "sum of bool, axis=0",
           "mean of bool (all)", "mean of bool, axis=1", "max of bool, axis=1", "bool * input",
           "sum(bool * input)", "where(bool)", "sum of bool * x-dependent float",
           "float - bool"]
for _name in FLOAT32:
    CASES[f"float32: {_name}"] = CASES[_name]


def inputs_for(name):
    return (X.astype(np.float32), Y.astype(np.float32)) if name.startswith("float32") else (X, Y)


def check_result(value, reference, kind, what):
    value, reference = np.asarray(value), np.asarray(reference)
    assert value.shape == reference.shape, f"{what}: shape {value.shape} != {reference.shape}"
    if kind == "b":
        assert value.dtype == np.bool_, f"{what}: dtype {value.dtype}, expected bool"
    elif kind == "n":
        assert value.dtype.kind in "iuf", f"{what}: dtype {value.dtype}: a count is not a bool"
    elif kind == "f":
        assert value.dtype.kind == "f", f"{what}: dtype {value.dtype}, expected a float"
    else:
        assert value.dtype.kind in "biuf", what
    if what.startswith("float32"):
        assert value.dtype == reference.dtype, f"{what}: dtype {value.dtype}, NumPy {reference.dtype}"
    # exact: counts, fractions of 12 and bool arithmetic are exact in float64 except
    # for the transcendental cases, which are NumPy's own values to rounding
    np.testing.assert_allclose(value.astype(np.float64), reference.astype(np.float64),
                               rtol=1e-15, atol=0, err_msg=what)


def graphs(name, k):
    xv, yv = inputs_for(name)
    x, y = gc.tensor(f"b{k}x", X.shape, xv.dtype), gc.tensor(f"b{k}y", Y.shape, yv.dtype)
    return [x, y], [xv, yv], [CASES[name][0](x, y)]


@pytest.mark.parametrize("name", list(CASES))
def test_graph_dtype_and_interpreter(name):
    build, reference, kind = CASES[name]
    (x, y), (xv, yv), (out,) = graphs(name, 0)
    want = reference(xv, yv)
    if kind == "b":
        assert out.dtype == np.bool_, f"{name}: the node's dtype is {out.dtype}"
    elif kind is not None:
        assert out.dtype != np.bool_, f"{name}: the node's dtype is bool"
    check_result(gc.evaluate(out, {x: xv, y: yv}), want, kind, f"{name}: evaluate")


@pytest.mark.parametrize("name", list(CASES))
def test_tape(name):
    build, reference, kind = CASES[name]
    xv, yv = inputs_for(name)
    for requires_grad in (False, True):
        tx = tape.Tensor(xv.copy(), requires_grad=requires_grad)
        ty = tape.Tensor(yv.copy(), requires_grad=requires_grad)
        check_result(build(tx, ty).data, reference(xv, yv), kind,
                     f"{name}: tape (requires_grad={requires_grad})")


_bundle = None


def bundle():
    global _bundle
    if _bundle is None:
        _bundle = Bundle("bool/int results")
        for k, name in enumerate(CASES):
            _bundle.add(name, lambda name=name, k=k: graphs(name, k))
    return _bundle


@pytest.mark.parametrize("level", ["full", "none"])
@pytest.mark.parametrize("name", list(CASES))
def test_compiled(name, level):
    build, reference, kind = CASES[name]
    got, want = bundle().result(name, level)
    check_result(got[0], reference(*inputs_for(name)), kind, f"{name}: compiled ({level})")
    assert_same(got[0], want[0], f"{name}: compiled ({level}) vs evaluate", 1e-15, 0)


# Gradients through bool masks and counts: d/dx sum(mask * x * x) = 2 x mask (the mask
# has no derivative), and a count scales a gradient like any number.
GRAD_CASES = {
    "mask * x^2": (lambda x, y: gc.sum((x < y) * x * x), lambda x, y: 2 * x * (x < y)),
    "count * sum(x)": (lambda x, y: gc.sum(x > y) * gc.sum(x),
                       lambda x, y: np.full(x.shape, float(np.sum(x > y)))),
    "mean(bool) * sum(x * y)": (lambda x, y: gc.mean(x <= y) * gc.sum(x * y),
                                lambda x, y: np.mean(x <= y) * y),
    "where(x < y, x^2, -x)": (lambda x, y: gc.sum(gc.where(x < y, x * x, -x)),
                              lambda x, y: np.where(x < y, 2 * x, -1.0)),
}


@pytest.mark.parametrize("name", list(GRAD_CASES))
def test_gradients_through_bools(name):
    build, reference = GRAD_CASES[name]
    x, y = gc.tensor("gx", X.shape), gc.tensor("gy", Y.shape)
    cost = build(x, y)
    g = gc.grad(cost, x)
    want = reference(X, Y)
    np.testing.assert_allclose(gc.evaluate(g, {x: X, y: Y}), want, rtol=1e-15,
                               err_msg=f"{name}: evaluate")
    tx, ty = tape.Tensor(X.copy(), requires_grad=True), tape.Tensor(Y.copy())
    build(tx, ty).backward()
    np.testing.assert_allclose(tx.grad, want, rtol=1e-15, err_msg=f"{name}: tape")
