"""gc.linalg: values against NumPy/SciPy on every backend (one compiled Function for all
of them), gradients against finite differences, LinAlgError naming the op on evaluate,
the tape and compiled code, ShapeErrors at build time, and a Gaussian-process negative
log marginal likelihood with its gradient in the kernel's hyperparameters.  The
op-table checks (finite differences, tape, jvp/vjp, second order) are the cases in
tests/op_cases_linalg.py."""

import numpy as np
import pytest
import scipy.linalg as sla

import graphc as gc
from graphc import tape

N = 4
_R = np.random.default_rng(3)
M_VAL = _R.normal(size=(N, N))
A_VAL = M_VAL @ M_VAL.T + N * np.eye(N)          # SPD
G_VAL = _R.normal(size=(N, N)) + 2.0 * np.eye(N)  # general
B_VAL = _R.normal(size=(N, 3))
b_VAL = _R.normal(size=N)

A, G, B, b = (gc.matrix("A", (N, N)), gc.matrix("G", (N, N)), gc.matrix("B", (N, 3)),
              gc.vector("b", N))
L_VAL = np.linalg.cholesky(A_VAL)


def _outputs():
    L = gc.linalg.cholesky(A)
    w, V = gc.linalg.eigh(A)
    sign, logabs = gc.linalg.slogdet(G)
    return {
        "cholesky": (L, L_VAL),
        "solve vector": (gc.linalg.solve(G, b), np.linalg.solve(G_VAL, b_VAL)),
        "solve matrix": (gc.linalg.solve(G, B), np.linalg.solve(G_VAL, B_VAL)),
        "solve_triangular lower": (gc.linalg.solve_triangular(L, B, lower=True),
                                   sla.solve_triangular(L_VAL, B_VAL, lower=True)),
        "solve_triangular upper": (gc.linalg.solve_triangular(gc.transpose(L), b, lower=False),
                                   sla.solve_triangular(L_VAL.T, b_VAL, lower=False)),
        "inv": (gc.linalg.inv(G), np.linalg.inv(G_VAL)),
        "det": (gc.linalg.det(G), np.linalg.det(G_VAL)),
        "slogdet sign": (sign, np.linalg.slogdet(G_VAL)[0]),
        "slogdet logabsdet": (logabs, np.linalg.slogdet(G_VAL)[1]),
        "eigh w": (w, np.linalg.eigh(A_VAL)[0]),
        "eigh |V|": (gc.abs(V), np.abs(np.linalg.eigh(A_VAL)[1])),
    }


OUTPUTS = _outputs()


@pytest.fixture(scope="module")
def compiled():
    return gc.compile([A, G, B, b], [e for e, _ in OUTPUTS.values()])


def test_values_on_every_backend(compiled):
    feed = {A: A_VAL, G: G_VAL, B: B_VAL, b: b_VAL}
    got = compiled(A_VAL, G_VAL, B_VAL, b_VAL)
    for (name, (expr, want)), value in zip(OUTPUTS.items(), got):
        np.testing.assert_allclose(gc.evaluate(expr, feed), want, rtol=1e-10, atol=1e-12,
                                   err_msg=f"{name}: evaluate")
        np.testing.assert_allclose(value, want, rtol=1e-10, atol=1e-12, err_msg=f"{name}: compiled")
    t = tape.Tensor(A_VAL)
    np.testing.assert_allclose(gc.linalg.cholesky(t).data, L_VAL, rtol=1e-12)
    np.testing.assert_allclose(gc.linalg.solve(tape.Tensor(G_VAL), b_VAL).data,
                               np.linalg.solve(G_VAL, b_VAL), rtol=1e-12)


def test_singular_determinants_are_zero():
    f = gc.compile([G], [gc.linalg.det(G), *gc.linalg.slogdet(G)])
    assert list(f(np.ones((N, N)))) == [0.0, 0.0, -np.inf]


def _backends(expr, inputs, values, build):
    yield "evaluate", lambda: gc.evaluate(expr, dict(zip(inputs, values)))
    yield "tape", lambda: build(*[tape.Tensor(v, requires_grad=True) for v in values])
    f = gc.compile(inputs, expr)
    yield "compiled", lambda: f(*values)


@pytest.mark.parametrize("case", ["cholesky", "solve", "inv", "solve_triangular"])
def test_bad_input_is_a_linalg_error_naming_the_op(case):
    x, y = gc.matrix("x", (3, 3)), gc.vector("y", 3)
    if case == "cholesky":
        build, values, msg = (lambda x: gc.linalg.cholesky(x)), [-np.eye(3)], "not positive definite"
        inputs = [x]
    elif case == "solve":
        build, values, msg = (lambda x, y: gc.linalg.solve(x, y)), [np.ones((3, 3)), np.ones(3)], "singular"
        inputs = [x, y]
    elif case == "inv":
        build, values, msg = (lambda x: gc.linalg.inv(x)), [np.zeros((3, 3))], "singular"
        inputs = [x]
    else:
        build, values, msg = (lambda x, y: gc.linalg.solve_triangular(x, y)), [np.tril(np.ones((3, 3))) - np.eye(3), np.ones(3)], "singular"
        inputs = [x, y]
    expr = build(*inputs)
    for backend, run in _backends(expr, inputs, values, build):
        with pytest.raises(np.linalg.LinAlgError, match=f"gc.linalg.{case}: .*{msg}"):
            run()
        assert backend


def test_shape_errors_at_build_time():
    with pytest.raises(gc.ShapeError, match=r"gc.linalg.cholesky: .*square.*\(3, 2\)"):
        gc.linalg.cholesky(gc.matrix("r", (3, 2)))
    with pytest.raises(gc.ShapeError, match=r"gc.linalg.solve: .*\(4, 4\).*\(3,\)"):
        gc.linalg.solve(A, gc.vector("c", 3))
    with pytest.raises(gc.ShapeError, match="gc.linalg.det"):
        gc.linalg.det(gc.vector("c", 3))


# A Gaussian process: RBF kernel on 1-D points, log length-scale and log noise.
X_GP = np.linspace(0.0, 3.0, 7)
Y_GP = np.sin(2.0 * X_GP) + 0.1 * np.cos(7.0 * X_GP)
D_GP = (X_GP[:, None] - X_GP[None, :]) ** 2


def gp_nlml(log_ell, log_noise, y):
    n = len(Y_GP)
    K = gc.exp(-0.5 * D_GP * gc.exp(-2.0 * log_ell)) + gc.exp(2.0 * log_noise) * np.eye(n)
    L = gc.linalg.cholesky(K)
    alpha = gc.linalg.solve_triangular(gc.transpose(L), gc.linalg.solve_triangular(L, y),
                                       lower=False)
    logdiag = gc.sum(gc.log(gc.sum(L * np.eye(n), axis=1)))
    return 0.5 * gc.sum(y * alpha) + logdiag + 0.5 * n * np.log(2 * np.pi)


def gp_nlml_scipy(log_ell, log_noise, y):
    K = np.exp(-0.5 * D_GP / np.exp(2 * log_ell)) + np.exp(2 * log_noise) * np.eye(len(y))
    c = sla.cho_factor(K, lower=True)
    return (0.5 * y @ sla.cho_solve(c, y) + np.sum(np.log(np.diag(c[0])))
            + 0.5 * len(y) * np.log(2 * np.pi))


def test_gaussian_process_nlml_and_gradient():
    ell, noise, y = gc.scalar("log_ell"), gc.scalar("log_noise"), gc.vector("y", len(Y_GP))
    cost = gp_nlml(ell, noise, y)
    grads = gc.grad(cost, [ell, noise])
    f = gc.compile([ell, noise, y], [cost] + list(grads))
    p = (np.log(0.7), np.log(0.2))
    value, g_ell, g_noise = f(*p, Y_GP)
    want = gp_nlml_scipy(*p, Y_GP)
    assert abs(value - want) < 1e-10 * max(1, abs(want))
    assert abs(gc.evaluate(cost, {ell: p[0], noise: p[1], y: Y_GP}) - want) < 1e-10
    h = 1e-6
    fd_ell = (gp_nlml_scipy(p[0] + h, p[1], Y_GP) - gp_nlml_scipy(p[0] - h, p[1], Y_GP)) / (2 * h)
    fd_noise = (gp_nlml_scipy(p[0], p[1] + h, Y_GP) - gp_nlml_scipy(p[0], p[1] - h, Y_GP)) / (2 * h)
    np.testing.assert_allclose([g_ell, g_noise], [fd_ell, fd_noise], rtol=1e-6, atol=1e-8)
