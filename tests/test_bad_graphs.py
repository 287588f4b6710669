"""Building bad graphs gives clear TypeError/ValueError, never an internal traceback."""

import numpy as np
import pytest

import graphc as gc

UNARY = [gc.exp, gc.log, gc.log1p, gc.sqrt, gc.square, gc.abs, gc.sign, gc.sin, gc.cos, gc.tanh,
         gc.sigmoid, gc.relu, gc.softplus, gc.sum, gc.mean, gc.max, gc.min, gc.logsumexp,
         gc.softmax, gc.log_softmax, gc.transpose]
BINARY = [gc.maximum, gc.minimum, gc.matmul, gc.cross_entropy, gc.mse, gc.add, gc.mul]
BAD = ["a string", None, {"a": 1}, object(), [1, [2, 3]], 1 + 2j]


@pytest.mark.parametrize("fn", UNARY + BINARY, ids=lambda f: f.__name__)
@pytest.mark.parametrize("bad", BAD, ids=lambda b: type(b).__name__)
def test_wrong_argument_types(fn, bad):
    x = gc.matrix("x", (2, 3))
    args = (bad,) if fn in UNARY else (x, bad)
    with pytest.raises((TypeError, ValueError)) as info:
        fn(*args)
    assert str(info.value)          # a message, not an internal KeyError/AttributeError


def test_wrong_parameters():
    x = gc.matrix("x", (2, 3))
    for call, error in [(lambda: gc.sum(x, axis="0"), TypeError),
                        (lambda: gc.sum(x, axis=5), ValueError),
                        (lambda: gc.sum(x, axis=(0, 0)), ValueError),
                        (lambda: gc.reshape(x, "abc"), TypeError),
                        (lambda: gc.reshape(x, (5,)), ValueError),
                        (lambda: gc.transpose(x, (0, 0)), ValueError),
                        (lambda: gc.broadcast_to(x, (3, 3)), ValueError),
                        (lambda: gc.where(x > 0, x, gc.vector("v", 4)), ValueError),
                        (lambda: gc.tensor("x y", (2,)), ValueError),
                        (lambda: gc.tensor("x", (2, -3)), TypeError),
                        (lambda: gc.tensor("x", (2.5,)), TypeError),
                        (lambda: gc.tensor("t", (3,), "float16"), TypeError),
                        (lambda: x[5], IndexError),
                        (lambda: x[x > 0], TypeError),
                        (lambda: (x > 0) & x, TypeError),
                        (lambda: gc.const("abc"), TypeError),
                        (lambda: bool(x > 0), TypeError)]:
        with pytest.raises(error):
            call()


def test_bad_differentiation():
    x, v = gc.scalar("x"), gc.vector("v", 3)
    with pytest.raises(ValueError, match="scalar"):
        gc.grad(v * x, x)
    with pytest.raises(TypeError):
        gc.grad(x, "x")
    with pytest.raises(TypeError):
        gc.grad(np.float64(1.0), x)
    assert gc.evaluate(gc.grad(x * 2.0, v), {x: 1.0, v: np.ones(3)}).tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="tangents"):
        gc.jvp([x * 2.0], [x], [])


def test_bad_compile_calls():
    x, y = gc.scalar("x"), gc.scalar("y")
    with pytest.raises(ValueError, match="not among the inputs"):
        gc.compile([x], x + y)
    with pytest.raises(TypeError, match="inputs"):
        gc.compile([x * 2.0], x)
    with pytest.raises(ValueError, match="named"):
        gc.compile([x, gc.scalar("x")], x)
    with pytest.raises(TypeError, match="outputs"):
        gc.compile([x], ["x"])
    with pytest.raises(TypeError, match="Function"):
        gc.export("not a function", "out.py")
