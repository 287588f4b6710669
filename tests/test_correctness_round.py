"""Regressions of the correctness issue (#11): wrong values and crashes found by other
projects' autodiff suites and by new users.  Each test failed before its fix."""

import numpy as np
import pytest
import sympy

import graphc as gc
from graphc import nn, optim, tape, train

from checks import assert_close

rng = np.random.default_rng(11)


@pytest.fixture(scope="module")
def structure_bundle():
    """Identity and 2-axis transposes, and structure ops of scalars, compiled once per
    optimize level (the identity rule in the passes must not be what makes it right)."""
    x, w, s = gc.tensor("x", (2, 3)), gc.tensor("w", (2, 3)), gc.scalar("s")
    outs = [gc.transpose(x, (0, 1)), gc.sum(gc.transpose(x, (0, 1)) * w),
            gc.transpose(x, (1, 0)), gc.reshape(gc.transpose(s, ()), (1, 1)),
            gc.reshape(gc.reshape(s, (1, 1)), ()) * 2.0, gc.expand_dims(s, 0) + x]
    X, W = np.arange(6.0).reshape(2, 3), np.full((2, 3), 0.5)
    feed = {x: X, w: W, s: 2.0}
    want = gc.evaluate(outs, feed)
    return [(gc.compile([x, w, s], outs, optimize=level)(X, W, 2.0), want)
            for level in ("full", "none")]


def test_identity_transpose_compiles_as_identity(structure_bundle):
    X = np.arange(6.0).reshape(2, 3)
    for got, want in structure_bundle:
        assert got[0].shape == (2, 3)
        assert_close(got[0], X, "transpose(x, (0, 1))")
        assert_close(got[1], 7.5, "sum(transpose(x, (0, 1)) * w)")
        assert_close(got[2], X.T, "transpose(x, (1, 0))")
        for g, e in zip(got, want):
            assert_close(g, e, "compiled vs evaluate")


def test_structure_ops_of_scalars_compile(structure_bundle):
    for got, _ in structure_bundle:
        assert_close(got[3], [[2.0]], "reshape(transpose(s, ()), (1, 1))")
        assert_close(got[4], 4.0, "reshape to () and back")
        assert_close(got[5], 2.0 + np.arange(6.0).reshape(2, 3), "expand_dims(s) + x")


@pytest.mark.parametrize("build, hessian", [
    (lambda x: gc.sum(gc.sin(x)), lambda X: np.diag(-np.sin(X))),
    (lambda x: gc.sum(x ** 3), lambda X: np.diag(6 * X)),
    (lambda x: gc.sum(gc.exp(x)), lambda X: np.diag(np.exp(X))),
    (lambda x: gc.max(x * x), lambda X: np.diag(np.where(X * X == np.max(X * X), 2.0, 0))),
    (lambda x: gc.logsumexp(x), lambda X: np.diag(np.exp(X) / np.exp(X).sum())
     - np.outer(np.exp(X), np.exp(X)) / np.exp(X).sum() ** 2),
])
def test_forward_over_reverse_is_the_hessian_vector_product(build, hessian):
    x, v = gc.vector("x", 4), gc.vector("v", 4)
    X, V = rng.uniform(0.5, 1.5, 4), rng.normal(size=4)
    (hvp,) = gc.jvp(gc.grad(build(x), x), [x], [v])
    assert_close(gc.evaluate(hvp, {x: X, v: V}), hessian(X) @ V, "jvp of grad", 1e-10, 1e-12)


def test_reductions_of_bool_count_on_every_backend():
    a, b = gc.vector("a", 4), gc.vector("b", 4)
    A, B = np.array([0.0, 0.0, 0.0, 1.0]), np.array([1.0, 1.0, 1.0, 0.0])
    outs = [gc.sum(a < b) + 0.0, gc.mean(a < b) + 0.0, gc.sum(a < b)]
    want = [3.0, 0.75, 3]
    fn = gc.compile([a, b], outs)
    ta, tb = tape.Tensor(A), tape.Tensor(B)
    taped = [gc.sum(ta < tb) + 0.0, gc.mean(ta < tb) + 0.0, gc.sum(ta < tb)]
    for backend, got in (("evaluate", gc.evaluate(outs, {a: A, b: B})),
                         ("compiled", fn(A, B)), ("tape", [t.data for t in taped])):
        for g, w in zip(got, want):
            assert_close(g, w, f"{backend}: reduction of bool")
        assert np.asarray(got[2]).dtype == np.int64, backend


def test_pow_gradients_at_zero_are_zero_not_nan():
    x, y = gc.scalar("x"), gc.scalar("y")
    outs = [gc.grad(gc.pow(x, y), y), gc.grad(x ** 0.0, x), gc.grad(gc.grad(x ** 0.0, x), x),
            gc.grad(x ** 2.0, x), gc.grad(gc.grad(gc.pow(x, y), y), y)]
    want = [0.0, 0.0, 0.0, 0.0, 0.0]
    assert_close(gc.evaluate(outs, {x: 0.0, y: 0.14}), want, "evaluate")
    for level in ("full", "none"):
        assert_close(gc.compile([x, y], outs, optimize=level)(0.0, 0.14), want, level)
    t, u = tape.Tensor(0.0, requires_grad=True), tape.Tensor(0.14, requires_grad=True)
    gc.pow(t, u).backward()
    assert u.grad == 0.0 and t.grad == np.inf
    # away from zero, the rules are the plain ones
    assert_close(gc.evaluate(outs[:2], {x: 2.0, y: 0.5}), [np.sqrt(2) * np.log(2), 0.0], "x=2")


def test_elementwise_with_step_functions_differentiates():
    floor_x = gc.elementwise("floor_times_x", lambda t: sympy.floor(t) * t)
    ceil_sq = gc.elementwise("ceil_of_square", lambda t: sympy.ceiling(t * t) + t)
    mod = gc.elementwise("mod_ab", lambda a, b: sympy.Mod(a, b))
    x, y = gc.scalar("x"), gc.scalar("y")
    outs = [gc.grad(floor_x(x), x), gc.grad(ceil_sq(x), x), *gc.grad(mod(x, y), [x, y]),
            mod(x, y)]
    want = [1.0, 1.0, 1.0, -np.floor(1.5 / 0.4), 1.5 % 0.4]
    assert_close(gc.evaluate(outs, {x: 1.5, y: 0.4}), want, "evaluate")
    assert_close(gc.compile([x, y], outs)(1.5, 0.4), want, "compiled")


def test_underivable_formula_names_the_op():
    opaque = gc.elementwise("opaque_g", lambda t: sympy.Function("g")(t) + t)
    x = gc.scalar("x")
    with pytest.raises(TypeError, match="opaque_g"):
        gc.grad(opaque(x), x)


def test_sympy_failure_in_loop_bodies_falls_back():
    A, R = gc.tensor("A", (3, 4)), gc.tensor("R", (3, 4))
    cost = gc.sum(gc.softplus(gc.tanh(A) * 3.0 - gc.sigmoid(A)) * gc.exp(-gc.square(A)) * R)
    outs = [cost, gc.grad(cost, A)]
    Av, Rv = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    got = gc.compile([A, R], outs)(Av, Rv)        # optimize="full": SymPy on loop bodies
    for g, w in zip(got, gc.evaluate(outs, {A: Av, R: Rv})):
        assert_close(g, w, "compiled vs evaluate", 1e-11, 1e-12)


def test_tape_leaves_behind_zero_derivatives_get_zero_grads():
    t = tape.Tensor(np.ones((3, 4)), requires_grad=True)
    gc.sum(gc.sign(t) * 2.0).backward()
    assert t.grad is not None and t.grad.shape == (3, 4) and not t.grad.any()
    u = tape.Tensor(np.array([1.0, -2.0]), requires_grad=True)
    gc.sum(gc.where(u > 0, 1.0, 2.0)).backward()     # only through a comparison
    assert u.grad is not None and not u.grad.any()


def test_cross_entropy_refuses_targets_of_another_shape():
    logits, labels = gc.tensor("logits", (None, 10)), gc.tensor("labels", (None,))
    with pytest.raises(ValueError, match=r"\(\?, 10\).*\(\?,\)"):
        gc.cross_entropy(logits, labels)
    with pytest.raises(ValueError, match="shape"):
        gc.cross_entropy(gc.tensor("z", (4, 10)), gc.tensor("t", (4, 9)))
    assert gc.cross_entropy(logits, gc.tensor("onehot", (None, 10))).shape == (None,)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_check_grad_follows_the_dtype(dtype):
    X, Y = gc.tensor("X", (None, 6), dtype), gc.tensor("Y", (None, 3), dtype)
    logits, params, init = nn.mlp(X, (6, 5, 3), "tanh", dtype=dtype)
    loss = nn.softmax_cross_entropy(logits, Y)
    point = {X: rng.normal(size=(8, 6)).astype(dtype),
             Y: np.eye(3)[rng.integers(0, 3, 8)].astype(dtype), **init}
    good = gc.check_grad(loss, params, point)
    assert good.ok, str(good)
    wrong = gc.check_grad(loss, params[:1], point, gradient=[gc.grad(loss, params[0]) * 1.05])
    assert not wrong.ok


def test_fit_records_extra_outputs():
    X, Y = gc.tensor("X", (None, 4), "float32"), gc.tensor("Y", (None, 3), "float32")
    logits, params, init = nn.mlp(X, (4, 3), "relu")
    loss = nn.softmax_cross_entropy(logits, Y)
    acc = nn.accuracy(logits, Y)
    step = optim.compile_step(loss, params, [X, Y], optim.SGD(0.1), init=init,
                              extra_outputs={"accuracy": acc})
    x = rng.normal(size=(40, 4)).astype("float32")
    y = np.eye(3, dtype="float32")[rng.integers(0, 3, 40)]
    history = train.fit(step, x, y, epochs=2, batch_size=40, progress=False, shuffle=False)
    assert len(history["accuracy"]) == 2
    # one batch per epoch: the first epoch's accuracy is the initial model's
    assert_close(history["accuracy"][0], gc.evaluate(acc, {X: x, Y: y, **init}), "accuracy",
                 1e-6, 1e-7)
