"""gc.custom_op on every backend: values, gradients (finite differences), grad of grad,
forward mode, and the two error cases (no VJP; an implementation returning the wrong
shape or dtype).  And the op table's promise: an op without a lowering never compiles
into another op's code."""

import warnings

import numba
import numpy as np
import pytest

import graphc as gc
from graphc import api, tape
from graphc.lowering import View
from graphc.ops import OPS, Op, register

from checks import assert_close, central_difference


@gc.custom_op(shape=lambda s: s)
def unit(x):
    """x / |x| (NumPy only: compiled through objmode)."""
    return x / np.sqrt(np.sum(x * x))


@unit.defvjp
def _(g, out, x):
    return ((g - out * gc.sum(g * out)) / gc.sqrt(gc.sum(x * x)),)


@numba.njit(cache=True)
def _softclip_numba(x, c):
    return c * np.tanh(x / c)


@gc.custom_op(shape=lambda xs, cs: xs, njit=_softclip_numba)
def softclip(x, c):
    """c * tanh(x / c), with a Numba implementation for compiled code."""
    return c * np.tanh(x / c)


@softclip.defvjp
def _(g, out, x, c):
    t = out / c
    return g * (1.0 - t * t), gc.sum(g * (t - x / c * (1.0 - t * t)))


@gc.custom_op(shape=lambda s: s)
def no_vjp(x):
    return x * 2.0


@gc.custom_op(shape=lambda s: s)
def wrong_shape(x):
    return x[:-1]


@gc.custom_op(shape=lambda s: s)
def wrong_dtype(x):
    return x.astype(np.float32)


@numba.njit(cache=True)
def _wrong_shape_numba(x):
    return x[:-1].copy()


@gc.custom_op(shape=lambda s: s, njit=_wrong_shape_numba)
def wrong_shape_njit(x):
    return x.copy()


X = np.array([0.3, -1.0, 2.0, 1.5, 2.5])
C = 1.7
WEIGHTS = np.arange(1.0, 6.0)


def model(x, c):
    return gc.sum(unit(x * 1.0) * WEIGHTS) + gc.sum(gc.square(softclip(x, c)))


def reference(x, c):
    return float(np.sum(x / np.linalg.norm(x) * WEIGHTS) + np.sum((c * np.tanh(x / c)) ** 2))


@pytest.fixture(scope="module")
def compiled():
    x, c = gc.vector("x", None), gc.scalar("c")
    cost = model(x, c)
    gx, gc_ = gc.grad(cost, [x, c])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn = gc.compile([x, c], [cost, gx, gc_])
    return x, c, cost, (gx, gc_), fn, [str(w.message) for w in caught]


def test_values_and_gradients_on_every_backend(compiled):
    x, c, cost, grads, fn, _ = compiled
    numeric = central_difference(lambda v: reference(v[0], float(v[1])), [X, np.array(C)])
    value, *analytic = gc.evaluate([cost, *grads], {x: X, c: C})
    assert_close(value, reference(X, C), "evaluate value", 1e-12, 1e-12)
    for a, n in zip(analytic, numeric):
        assert_close(a, n, "evaluate gradient vs finite differences", 1e-6, 1e-8)
    for g, e in zip(fn(X, C), [value, *analytic]):
        assert_close(g, e, "compiled vs evaluate", 1e-12, 1e-12)
    tx, tc = tape.Tensor(X, requires_grad=True), tape.Tensor(np.array(C), requires_grad=True)
    out = model(tx, tc)
    out.backward()
    assert_close(out.data, value, "tape value", 1e-12, 1e-12)
    assert_close(tx.grad, analytic[0], "tape d/dx", 1e-12, 1e-12)
    assert_close(tc.grad, analytic[1], "tape d/dc", 1e-12, 1e-12)


def test_objmode_warns_once_naming_the_op(compiled):
    messages = compiled[-1]
    assert any("'unit'" in m and "objmode" in m for m in messages), messages
    assert not any("softclip" in m for m in messages)          # it has njit=
    assert "_op_softclip(" in compiled[4].source and "numba.objmode" in compiled[4].source


def test_grad_of_grad_and_forward_mode():
    x, c = gc.vector("x", 5), gc.scalar("c")
    cost = gc.sum(gc.square(softclip(x, c)))
    g = gc.grad(cost, x)
    v = np.array([0.5, -1.0, 0.25, 2.0, 1.0])
    hvp = gc.grad(gc.sum(g * v), x)                          # reverse over reverse
    (jvp_of_grad,) = gc.jvp([g], [x], [v])                   # forward over reverse
    (directional,) = gc.jvp([cost], [x], [v])                # forward mode, from the VJP

    def grad_at(values):
        return gc.evaluate(g, {x: values[0], c: C})
    numeric_hvp = [(grad_at([X + 1e-6 * v]) - grad_at([X - 1e-6 * v])) / 2e-6]
    feed = {x: X, c: C}
    assert_close(gc.evaluate(hvp, feed), numeric_hvp[0], "Hessian-vector product", 1e-6, 1e-8)
    assert_close(gc.evaluate(jvp_of_grad, feed), numeric_hvp[0], "jvp of grad", 1e-6, 1e-8)
    assert_close(gc.evaluate(directional, feed), np.dot(gc.evaluate(g, feed), v), "jvp", 1e-12)
    fn = gc.compile([x, c], [hvp, jvp_of_grad, directional])
    for got, want in zip(fn(X, C), gc.evaluate([hvp, jvp_of_grad, directional], feed)):
        assert_close(got, want, "compiled second order", 1e-11, 1e-12)


def test_grad_through_an_op_without_vjp_names_it():
    x = gc.vector("x", 3)
    with pytest.raises(TypeError, match="no_vjp"):
        gc.grad(gc.sum(no_vjp(x)), x)
    t = tape.Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(TypeError, match="no_vjp"):
        gc.sum(no_vjp(t)).backward()


@pytest.mark.parametrize("op, error", [(wrong_shape, ValueError), (wrong_dtype, TypeError)])
def test_a_wrong_result_is_reported_on_every_backend(op, error):
    x = gc.vector("x", 4)
    out = gc.sum(op(x))
    with pytest.raises(error, match=op.__name__):
        gc.evaluate(out, {x: np.ones(4)})
    with pytest.raises(error, match=op.__name__):
        op(tape.Tensor(np.ones(4)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fn = gc.compile([x], out)
    with pytest.raises(error, match=op.__name__):
        fn(np.ones(4))


def test_a_wrong_numba_result_is_an_error_not_a_bad_read():
    x = gc.vector("x", 4)
    fn = gc.compile([x], gc.sum(wrong_shape_njit(x)))
    with pytest.raises(ValueError, match="wrong_shape_njit"):
        fn(np.ones(4))


def test_custom_ops_cannot_be_exported(tmp_path, compiled):
    with pytest.raises(TypeError, match="custom ops"):
        gc.export(compiled[4], tmp_path / "f.py")


@pytest.fixture
def flip_without_lowering():
    """A correct op (impl, shape, vjp) that the code generator was never taught."""
    op = register(Op(name="flip_test", kind="structure", arity=1, impl=lambda x: x[::-1],
                     shape=lambda shapes, meet: shapes[0],
                     vjp=lambda F, g, out, x: (F.apply("flip_test", g),)))
    yield op
    del OPS["flip_test"]


def test_an_op_without_lowering_never_compiles_as_another(flip_without_lowering):
    x = gc.vector("x", 4)
    out = api.apply("flip_test", x)
    assert_close(gc.evaluate(out, {x: np.arange(4.0)}), [3, 2, 1, 0], "evaluate")
    with pytest.raises(NotImplementedError, match="flip_test"):
        gc.compile([x], [gc.sum(out * np.arange(4.0)), out])


def test_every_op_has_a_lowering():
    missing = [name for name, op in OPS.items() if op.lowering is None]
    assert not missing, f"ops the compiler cannot compile: {missing}"
    assert isinstance(OPS["transpose"].lowering, View)
